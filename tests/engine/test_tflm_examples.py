"""TFLite Micro's own example model, read as tflite-micro reads it: person_detect.tflite's 1-D conv biases carry
per-channel scales under the filter's quantized_dimension (3), which a strict reader refused as "truncated or
corrupted". It imports, runs bit-exact to the tflite-micro interpreter and exports C that equals our reference."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.codegen import generate_library
from engine.export.verify_host import verify_host
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from tests.engine.test_int8 import first_diffs, mlperf_inputs, tflm_from_bytes, tflm_invoke

PERSON = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro" / "person_detect.tflite"


@pytest.fixture(scope="module")
def person():
    return load_tflite(str(PERSON))


def test_bias_scales_under_the_filters_axis_are_read_along_the_only_axis(person):
    biases = [t for t in person.tensors.values() if t.dtype == "int32" and t.quant is not None and len(t.shape) == 1
              and t.quant.scale.size > 1]
    assert len(biases) >= 10 and all(t.quant.axis == 0 for t in biases)
    assert person.tensors[person.inputs[0]].shape == (1, 96, 96, 1)


def test_person_detect_is_bit_exact_to_tflite_micro_on_20_inputs(person):
    plan = prepare_int8(person)
    interp = tflm_from_bytes(PERSON.read_bytes())
    name, out = person.inputs[0], person.outputs[0]
    seen = set()
    for i, x in enumerate(mlperf_inputs(person.tensors[name].shape, 20, np.random.default_rng(12))):
        ours, ref = plan.run({name: x})[out], tflm_invoke(interp, [x])
        assert np.array_equal(ours, ref), f"input {i}: {first_diffs(ours, ref)}"
        seen.add(ref.tobytes())
    assert len(seen) >= 5   # the inputs reach different outputs


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_person_detect_exports_c_equal_to_the_reference(person, tmp_path):
    lib = generate_library(person, "person")
    res = verify_host(person, lib, n_random=20, workdir=tmp_path)
    assert res.bit_exact, res.summary()
