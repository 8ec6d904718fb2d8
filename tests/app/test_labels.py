"""Web wording of engine messages: no command-line flag reaches a page; the CLI keeps its flags."""
from __future__ import annotations

import io
import re

import onnx
import pytest
from onnx import TensorProto, helper

from app.labels import web_message
from engine.errors import TinyStudioError
from engine.importers import load_model_bytes

FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _dynamic_onnx() -> bytes:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3, "H", "W"])
    g = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"], name="r")], "dyn", [x], [y])
    buf = io.BytesIO()
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), buf)
    return buf.getvalue()


def test_a_real_import_error_names_the_field_not_the_flag():
    with pytest.raises(TinyStudioError) as e:
        load_model_bytes(_dynamic_onnx(), "dynamic.onnx")
    assert "--input-shape" in str(e.value)  # the CLI's wording stays
    web = web_message(str(e.value))
    assert not FLAG.search(web) and web.endswith("in the Input shape field"), web


@pytest.mark.parametrize("text, expected", [
    ("action 'prune-channels' needs a data set (e.g. --dataset digits)",
     "action 'prune-channels' needs a data set (pick one in the Data panel, e.g. digits)"),
    ("--verify qemu: esp32s3 has no emulated board; use --verify host",
     "Verify qemu: esp32s3 has no emulated board; choose Verify: host"),
    ("--inputs -1: must be 0 or more", "Random test inputs -1: must be 0 or more"),
    ("--verify 'x': choose one of none, host, qemu", "Verify 'x': choose one of none, host, qemu"),
    ("k.tflite: TFLite models have fixed input shapes; --input-shape is not used",
     "k.tflite: TFLite models have fixed input shapes; the Input shape field is not used"),
    ("the exit tensor carries everything; give --param after=NODE",
     "the exit tensor carries everything; set the parameter after to NODE"),
    ("something with --some-new-flag", "something with some new flag"),
    ("a range -3--1 and x--y stay", "a range -3--1 and x--y stay"),
])
def test_flag_phrases(text, expected):
    assert web_message(text) == expected
    assert not FLAG.search(web_message(text))
