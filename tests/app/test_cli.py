"""The `tinystudio` CLI: inspect, run, zoo on real models, JSON field names, user errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_json_fields_on_tflite(capsys):
    code, out, err = run_cli(capsys, "inspect", str(MLPERF / "kws_ref_model.tflite"), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert set(rep["model"]) >= {"name", "source", "hash"} and len(rep["model"]["hash"]) == 64
    assert set(rep["totals"]) >= {"macs", "flops", "params"}
    assert rep["totals"]["macs"] == 2_656_768
    layer = rep["layers"][0]
    assert set(layer) >= {"name", "op", "output_shape", "macs", "params"}
    assert sum(l["macs"] for l in rep["layers"]) == rep["totals"]["macs"]


def test_inspect_zoo_text_and_json_agree(capsys):
    code, text, _ = run_cli(capsys, "inspect", "zoo:lenet5")
    assert code == 0 and "total" in text
    code, out, _ = run_cli(capsys, "inspect", "zoo:lenet5", "--json")
    rep = json.loads(out)
    assert f"{rep['totals']['macs']:,} MACs" in text


def test_run_saves_outputs_matching_the_executor(tmp_path, capsys):
    from engine.execute import run_graph
    from engine.importers import load_model
    from engine.int8 import run_int8

    x = np.random.default_rng(1).integers(-128, 127, size=(1, 49, 10, 1), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    model = str(MLPERF / "kws_ref_model.tflite")
    g = load_model(model)
    # A quantized model runs the int8 kernels: integer outputs, the same bytes as run_int8.
    code, out, err = run_cli(capsys, "run", model, "--input", str(tmp_path / "x.npy"), "--output",
                             str(tmp_path / "y.npy"))
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, run_int8(g, {g.inputs[0]: x})[g.outputs[0]])
    assert "argmax" in out and "int8 reference kernels" in err
    # --float keeps the float reference on dequantized values.
    code, out, err = run_cli(capsys, "run", model, "--input", str(tmp_path / "x.npy"), "--output",
                             str(tmp_path / "yf.npy"), "--float", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "float-dequantized"
    np.testing.assert_array_equal(np.load(tmp_path / "yf.npy"), run_graph(g, {g.inputs[0]: x})[g.outputs[0]])


def test_zoo_lists_names_and_params(capsys):
    code, out, _ = run_cli(capsys, "zoo", "--json")
    entries = json.loads(out)
    names = {e["name"] for e in entries}
    assert {"mobilenetv2", "lenet5"} <= names
    code, text, _ = run_cli(capsys, "zoo")
    assert "zoo:mobilenetv2" in text


@pytest.mark.parametrize("argv,msg", [
    (["inspect", "zoo:nosuchmodel"], "nosuchmodel"),
    (["inspect", "missing.onnx"], "missing.onnx: no such file"),
    (["inspect", "zoo:lenet5", "--input-shape", "1,a,3"], "--input-shape '1,a,3'"),
    (["run", "zoo:lenet5", "--input", "nothere.npy"], "nothere.npy: no such input file"),
])
def test_user_errors_are_one_line(argv, msg, capsys):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and msg in err and err.count("\n") == 1, err


def test_run_rejects_pickled_npy(tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run_cli(capsys, "run", "zoo:lenet5", "--input", str(tmp_path / "obj.npy"))
    assert code == 2 and "obj.npy: not a readable .npy/.npz array file" in err


def test_input_shape_fixes_dynamic_dims(tmp_path, capsys):
    from tests.fixtures.malformed import make_cases

    path = next(c["path"] for c in make_cases(tmp_path) if c["case"].startswith("dynamic shape"))
    for shape in ("1,3,16,16", "X:1,3,16,16"):
        code, out, err = run_cli(capsys, "inspect", path, "--input-shape", shape, "--json")
        assert code == 0, err
        rep = json.loads(out)
        assert rep["inputs"][0]["shape"] == [1, 3, 16, 16] and rep["outputs"][0]["shape"] == [1, 4, 16, 16]
        assert rep["totals"]["macs"] == 16 * 16 * 4 * 3 * 9
    code, _, err = run_cli(capsys, "inspect", path, "--input-shape", "Q:1,3,16,16")
    assert code == 2 and "unknown input(s) Q; the model's inputs are X" in err


def test_profile_json_fields(capsys):
    code, out, err = run_cli(capsys, "profile", str(MLPERF / "vww_96_int8.tflite"), "--mcu", "stm32l4r5zi",
                             "--mcu", "esp32s3", "--json")
    assert code == 0, err
    rep = json.loads(out)
    t = rep["totals"]
    assert {"macs", "flops", "params", "weight_bytes", "activation_peak_bytes",
            "activation_lower_bound_bytes"} <= set(t)
    assert t["activation_peak_bytes"] == t["activation_lower_bound_bytes"] == 55_296  # TFLM needs 73,728
    assert {"name", "op", "output_shape", "macs", "params", "weight_bytes", "output_bytes", "live_bytes"} <= set(
        rep["layers"][0])
    assert [x["mcu"] for x in rep["targets"]] == ["stm32l4r5zi", "esp32s3"]
    assert rep["targets"][1]["runtime"] == "tinystudio-c"  # the default: the generated C, on every core
    for tg in rep["targets"]:
        assert {"mcu", "runtime", "latency_ms", "energy_uj", "ram_bytes", "flash_bytes", "fits"} <= set(tg)
        assert tg["label"] == "estimate"


def test_profile_text_and_bad_ids(capsys):
    code, out, _ = run_cli(capsys, "profile", "zoo:kws_dscnn", "--mcu", "nrf5340")
    assert code == 0 and "target nrf5340 + tinystudio-c (estimate)" in out and "activation arena" in out
    code, out, _ = run_cli(capsys, "profile", "zoo:kws_dscnn", "--mcu", "nrf5340", "--runtime", "tflm-cmsis-nn")
    assert code == 0 and "target nrf5340 + tflm-cmsis-nn (estimate)" in out
    code, _, err = run_cli(capsys, "profile", "zoo:kws_dscnn", "--mcu", "nrf9999")
    assert code == 2 and "unknown MCU 'nrf9999'; valid ids:" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "profile", "zoo:kws_dscnn", "--mcu", "esp32", "--runtime", "tflm-cmsis-nn")
    assert code == 2 and "has no profile for core 'xtensa-lx6'" in err


def test_mcus_lists_at_least_20(capsys):
    code, out, _ = run_cli(capsys, "mcus", "--json")
    doc = json.loads(out)
    assert len(doc["mcus"]) >= 20 and {"tflm-cmsis-nn", "vendor-optimized", "tflm-reference"} <= {
        r["id"] for r in doc["runtimes"]}


MBV2 = "zoo:mobilenetv2?width=0.35&resolution=144"


def test_profile_precision_int8_is_as_deployed(capsys):
    """The issue's check: MobileNetV2 0.35 @144 profiled as deployed (BN folded, fused, int8) on an ESP32-S3."""
    from engine.codegen import generate_library
    from engine.export.pipeline import quantize
    from engine.zoo import build_zoo_model

    code, out, err = run_cli(capsys, "profile", MBV2, "--precision", "int8", "--mcu", "esp32s3",
                             "--mcu", "stm32h743zi", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["precision"] == "int8" and rep["precision_requested"] == "int8"
    float_params = build_zoo_model(MBV2)
    params = sum(t.size for t in float_params.tensors.values() if t.data is not None)  # with BN: 1,691,208
    assert abs(rep["totals"]["weight_bytes"] - params) <= 0.05 * params
    assert not any(x["op"] == "BatchNormalization" for x in rep["layers"])
    # the arena of the C the export generates (its own PTQ on its default calibration set, then codegen)
    qgraph, _ = quantize(float_params, None, [])
    arena = generate_library(qgraph, "m").arena_bytes
    assert rep["memory"]["arena_bytes"] == arena == 311_040
    esp, h7 = rep["targets"]
    # The default runtime is what the export deploys: the generated C (static arena, requantization data in
    # flash): arena + scratch + stack, 314,392 B; measured for the STM32H743ZI export: 314,428 B.
    assert esp["runtime"] == h7["runtime"] == "tinystudio-c" and esp["ram_parts"]["arena"] == arena
    assert esp["fits"] and h7["fits"]
    assert esp["ram_bytes"] == sum(esp["ram_parts"].values()) and abs(esp["ram_bytes"] - 314_428) < 0.02 * 314_428
    # TFLM + ESP-NN keeps 78 KB of interpreter state (per-channel requantization data of 8,040 channels,
    # node and tensor structs) beside the arena: 388 KB of the 384 KB an ESP32-S3 leaves free.
    code, out, err = run_cli(capsys, "profile", MBV2, "--precision", "int8", "--mcu", "esp32s3", "--runtime",
                             "esp-nn", "--json")
    assert code == 0, err
    tflm = json.loads(out)["targets"][0]
    assert tflm["runtime"] == "esp-nn" and tflm["ram_parts"]["arena"] == arena
    assert tflm["ram_parts"]["persistent"] > 64_000 and not tflm["fits"] and tflm["fits_flash"]
    assert tflm["fits"] == (tflm["ram_bytes"] <= tflm["sram_bytes"])


def test_profile_precision_default_and_float32(capsys):
    code, out, _ = run_cli(capsys, "profile", "zoo:kws_dscnn", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["precision"] == "float32" and rep["precision_requested"] == "as-is"
    assert any(x["op"] == "BatchNormalization" for x in rep["layers"])
    code, out, _ = run_cli(capsys, "profile", str(MLPERF / "kws_ref_model.tflite"), "--precision", "float32")
    assert code == 0 and "precision  float32: float32, dequantized" in out
    with pytest.raises(SystemExit) as e:
        main(["profile", "zoo:kws_dscnn", "--precision", "int4"])
    assert e.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err
    code, _, err = run_cli(capsys, "profile", "zoo:cct", "--precision", "int8")
    assert code == 2 and err.startswith("error: int8 (as deployed) is not available for this model: node '")
