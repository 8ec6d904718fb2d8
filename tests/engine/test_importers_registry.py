"""The importer registry (engine.importers.formats): one entry per format decides sniffing, extension checks,
messages and dispatch; one function reads model files; the ONNX handler tables are joined explicitly."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.builder import GraphBuilder
from engine.errors import ModelFormatError
from engine.importers import FORMATS, ModelFormat, load_model, load_model_bytes, read_model_bytes, sniff_format
from engine.importers import onnx_import, onnx_ops, onnx_quant, onnx_recurrent, onnx_shape_ops
from engine.importers.tflite_import import load_tflite

MLPERF = Path("/work/shared/data/mlperf-tiny")


def toy_graph(name: str):
    b = GraphBuilder(name)
    b.output(b.node("Relu", [b.input("x", (1, 4))], name="r"))
    return b.build()


TOY = ModelFormat("toy", "a toy", (".toy",), lambda data: data[:4] == b"TOY!",
                  lambda name, data, input_shapes=None, folder=None: toy_graph(name))


def test_the_registry_holds_the_three_formats_in_message_order():
    assert [(f.name, f.extensions, f.weak_magic) for f in FORMATS.values()] == [
        ("onnx", (".onnx",), True), ("tflite", (".tflite",), False), ("pt2", (".pt2",), False)]
    with pytest.raises(ModelFormatError, match=r"^m\.bin: unknown model format; TinyStudio reads \.onnx, \.tflite "
                                               r"and \.pt2 files \(or zoo:NAME, see `tinystudio zoo`\)$"):
        load_model_bytes(b"hello world, not a model", "m.bin")


def test_conclusive_magic_wins_over_onnx_weak_magic():
    tfl = (MLPERF / "ad01_int8.tflite").read_bytes()
    assert sniff_format(tfl, "x.onnx") == sniff_format(tfl, "x") == "tflite"
    onnx_like = b"\x08\x07\x12\x00"
    assert sniff_format(onnx_like, "m.onnx") == sniff_format(onnx_like, "m") == "onnx"
    assert sniff_format(onnx_like, "m.tflite") is None  # weak magic does not count against another extension
    with pytest.raises(ModelFormatError, match=r"x\.onnx: has the extension \.onnx but its contents are a TFLite "
                                               r"model; rename it"):
        load_model_bytes(tfl, "x.onnx")


def test_a_format_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(FORMATS, "toy", TOY)
    g = load_model_bytes(b"TOY!" + bytes(8), "net.toy")
    assert g.name == "net.toy" and [n.op for n in g.nodes] == ["Relu"]
    assert load_model_bytes(b"TOY!", "noext").name == "noext"  # sniffed by its magic, no extension needed
    with pytest.raises(ModelFormatError, match=r"net\.toy: does not look like a toy file"):
        load_model_bytes(b"nope", "net.toy")
    with pytest.raises(ModelFormatError, match=r"net\.onnx: has the extension \.onnx but its contents are a toy "
                                               r"model"):
        load_model_bytes(b"TOY!", "net.onnx")
    with pytest.raises(ModelFormatError, match=r"TinyStudio reads \.onnx, \.tflite, \.pt2 and \.toy files"):
        load_model_bytes(b"hello", "m.bin")


def test_one_file_reader(tmp_path):
    missing = str(tmp_path / "gone.tflite")
    for call in (lambda: read_model_bytes(missing), lambda: load_model(missing), lambda: load_tflite(missing)):
        with pytest.raises(ModelFormatError, match=r"gone\.tflite: no such file$"):
            call()
    with pytest.raises(ModelFormatError, match=r"gone\.onnx: cannot read the file: no such file$"):
        onnx_import.load_onnx(str(tmp_path / "gone.onnx"))
    with pytest.raises(ModelFormatError, match="is a folder, not a model file"):
        load_model(str(tmp_path))
    big = tmp_path / "big.onnx"
    big.write_bytes(bytes(3_000_000))
    with pytest.raises(ModelFormatError, match=r"big\.onnx: file is 3\.0 MB, over the 2 MB limit"):
        load_model(str(big), max_bytes=2_000_000)
    assert read_model_bytes(str(big)) == bytes(3_000_000)


def test_onnx_handler_tables_are_joined_explicitly():
    compute, shape = set(onnx_ops.HANDLERS), set(onnx_shape_ops.HANDLERS)
    quant, ms = set(onnx_quant.HANDLERS), set(onnx_quant.MS_HANDLERS)  # ONNX int8 files (QOperator)
    rec = set(onnx_recurrent.HANDLERS)  # LSTM, GRU, RNN
    assert not compute & shape, "an ONNX op handled in both tables: one would silently win"
    assert not (compute | shape) & quant, "an ONNX op handled in two tables: one would silently win"
    assert not (compute | shape | quant) & rec, "an ONNX op handled in two tables: one would silently win"
    assert set(onnx_import.HANDLERS) == compute | shape | quant | rec
    assert onnx_import.supported_onnx_ops() == sorted(compute | shape | quant | rec) + sorted(
        f"com.microsoft.{op}" for op in ms)
    assert rec == {"LSTM", "GRU", "RNN"}
    assert {"Conv", "Gemm", "Relu"} <= compute and {"Reshape", "Slice", "Pad"} <= shape
    assert {"QLinearConv", "QLinearMatMul"} <= quant and {"QLinearAdd", "QGemm", "QLinearSoftmax"} <= ms
