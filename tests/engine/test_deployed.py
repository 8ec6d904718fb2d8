"""engine.deployed and profile_graph(precision=...): the profile of the graph the export would produce.

The oracle for "as deployed" is the export itself: engine.export.pipeline.quantize (the export's own PTQ,
calibrated on its default synthetic set) followed by the C generator, whose static arena is what the
firmware allocates. The as-deployed profile calibrates on fewer samples; bytes and arena must not change.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.codegen import generate_library
from engine.deployed import graph_at_precision, precision_of
from engine.errors import TinyStudioError
from engine.export.pipeline import quantize
from engine.importers import load_model
from engine.profile import profile_graph
from engine.zoo import build_zoo_model

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"


@pytest.fixture(scope="module")
def kws_float():
    return build_zoo_model("zoo:kws_dscnn")  # Conv + BatchNormalization + Relu blocks


def test_as_deployed_arena_is_the_exported_c_arena(kws_float):
    prof = profile_graph(kws_float, [("nrf52840", "tflm-cmsis-nn")], precision="int8")
    qgraph, _ = quantize(kws_float, None, [])  # what export_model generates C from
    lib = generate_library(qgraph, "kws")
    assert prof.precision == "int8" and prof.precision_requested == "int8"
    assert prof.plan.arena_bytes == lib.arena_bytes == prof.targets[0].to_json()["ram_parts"]["arena"]
    assert [lp.record.name for lp in prof.layers if lp.record.op != "Reshape"] == \
        [r["node"] for r in lib.layers if r["op"] != "Reshape"]


def test_as_deployed_has_no_batchnorm_steps_and_int8_weights(kws_float):
    flt = profile_graph(kws_float, precision="as-is")
    dep = profile_graph(kws_float, precision="int8")
    assert flt.precision == "float32"
    assert sum(lp.record.op == "BatchNormalization" for lp in flt.layers) > 0
    assert not any(lp.record.op in ("BatchNormalization", "Relu") for lp in dep.layers)
    assert len(dep.plan.order) < len(flt.plan.order)
    # int8 weights, int32 biases: the bytes of the MLPerf Tiny KWS int8 file (the same network; X-CUBE-AI
    # reports 24,368 bytes of weights for it).
    kws_file = profile_graph(load_model(str(MLPERF / "kws_ref_model.tflite")))
    assert dep.totals()["weight_bytes"] == kws_file.totals()["weight_bytes"] == 24_368
    assert dep.totals()["params"] == kws_file.totals()["params"]
    # and the arena TFLM's RecordingMicroAllocator reports for that file (shared/data/mlperf-tiny/README.md)
    assert dep.plan.arena_bytes == kws_file.plan.arena_bytes == 16_000
    assert flt.totals()["weight_bytes"] == 4 * flt.totals()["params"]
    assert dep.totals()["macs"] == flt.totals()["macs"] - _bn_relu_macs(flt)


def _bn_relu_macs(prof) -> int:
    return sum(lp.record.macs for lp in prof.layers if lp.record.op in ("BatchNormalization", "Relu"))


def test_int8_model_float32_is_dequantized():
    kws = load_model(str(MLPERF / "kws_ref_model.tflite"))
    as_is = profile_graph(kws, precision="as-is")
    f32 = profile_graph(kws, precision="float32")
    same = profile_graph(kws, precision="int8")
    assert as_is.precision == same.precision == "int8" and f32.precision == "float32"
    assert same.plan.arena_bytes == as_is.plan.arena_bytes == 16_000
    # every weight and int32 bias becomes 4 bytes; every activation 4x its int8 size
    assert f32.totals()["weight_bytes"] == 4 * f32.totals()["params"] == 90_416
    assert f32.plan.arena_bytes == 4 * 16_000
    assert "dequantized" in f32.precision_note


def test_cached_by_graph_hash(kws_float):
    a, _ = graph_at_precision(kws_float, "int8")
    b, _ = graph_at_precision(build_zoo_model("zoo:kws_dscnn"), "int8")  # another object, same content
    assert a is b and precision_of(a) == "int8"


def test_clear_errors():
    with pytest.raises(TinyStudioError, match="precision 'int4'"):
        profile_graph(build_zoo_model("zoo:lenet5"), precision="int4")
    with pytest.raises(TinyStudioError, match="unknown MCU 'nope'"):
        profile_graph(build_zoo_model("zoo:lenet5"), [("nope", "tflm-cmsis-nn")], precision="int8")
    with pytest.raises(TinyStudioError, match=r"int8 \(as deployed\) is not available.*node '"):
        profile_graph(build_zoo_model("zoo:cct"), precision="int8")
