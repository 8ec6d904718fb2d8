"""`tinystudio export`: end to end on a .tflite and on a float zoo model (quantized first), JSON fields, and
one-line errors for user mistakes."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
needs_data = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@needs_data
def test_export_tflite_json_with_host_verification(tmp_path, capsys):
    out = tmp_path / "kws.zip"
    code, text, err = run_cli(capsys, "export", str(MLPERF / "kws_ref_model.tflite"), "--mcu", "stm32l4r5zi",
                              "--out", str(out), "--verify", "host", "--inputs", "3", "--json")
    assert code == 0, err
    rep = json.loads(text)
    assert set(rep) >= {"model", "mcu", "bundle", "arena_bytes", "estimate", "measured", "verify"}
    assert rep["mcu"] == "stm32l4r5zi" and rep["bundle"] == str(out) and rep["arena_bytes"] >= 16_000
    assert rep["verify"]["mode"] == "host" and rep["verify"]["inputs"] == 4 and rep["verify"]["bit_exact"] is True
    assert set(rep["verify"]) >= {"instructions_per_inference", "instructions_per_mac"}
    assert rep["estimate"]["label"] == "estimate" and rep["estimate"]["flash_bytes"] > 0
    if rep["measured"]["flash_bytes"] is not None:  # measured when arm-none-eabi-gcc is installed
        m = rep["measured"]
        assert m["flash_bytes"] == m["text"] + m["rodata"] + m["data"]
        assert m["ram_bytes"] == m["data"] + m["bss"] + m["stack"]
    with zipfile.ZipFile(out) as z:
        assert "tinystudio_kws_ref_model/report.json" in z.namelist()


@needs_data
def test_export_text_output(tmp_path, capsys):
    code, text, err = run_cli(capsys, "export", str(MLPERF / "ad01_int8.tflite"), "--mcu", "stm32l4r5zi",
                              "--out", str(tmp_path / "ad.zip"), "--inputs", "1")
    assert code == 0, err
    assert "verification: bit-exact on 2 inputs (host gcc)" in text and "estimate" in text


def test_export_float_zoo_model_is_quantized_first(tmp_path, capsys):
    pytest.importorskip("engine.passes.ptq", reason="engine.passes (PTQ) is not there yet")
    code, text, err = run_cli(capsys, "export", "zoo:kws_dscnn", "--mcu", "stm32l4r5zi", "--out",
                              str(tmp_path / "k.zip"), "--verify", "host", "--inputs", "2", "--json")
    assert code == 0, err
    assert "warning:" in err and "synthetic" in err.lower()  # no calibration data given
    rep = json.loads(text)
    assert rep["quantization"]["method"] and rep["verify"]["bit_exact"] is True
    with zipfile.ZipFile(tmp_path / "k.zip") as z:
        names = z.namelist()
    assert any(n.endswith("onnx/model_float.onnx") for n in names)
    assert any(n.endswith("onnx/model_int8_qdq.onnx") for n in names)


def test_export_float_model_with_calibration_file(tmp_path, capsys):
    pytest.importorskip("engine.passes.ptq", reason="engine.passes (PTQ) is not there yet")
    x = np.random.default_rng(0).normal(size=(8, 1, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    code, text, err = run_cli(capsys, "export", "zoo:lenet5", "--mcu", "stm32l4r5zi", "--out",
                              str(tmp_path / "l.zip"), "--verify", "none", "--calibration", str(tmp_path / "cal.npz"),
                              "--json")
    assert code == 0, err
    rep = json.loads(text)
    assert "synthetic" not in err.lower() and rep["verify"]["mode"] == "none"
    # The golden input the examples embed is the first calibration sample, quantized, in the int8 graph's layout.
    with zipfile.ZipFile(tmp_path / "l.zip") as z:
        golden = z.read("tinystudio_lenet5/examples/golden.h").decode()
    body = golden.split("golden_input0[1024] = {", 1)[1].split("};", 1)[0]
    got = np.array([int(v) for v in body.replace("\n", " ").split(",")], np.int8)
    spec = rep["library"]["inputs"][0]
    exp = np.clip(np.round(x[0].transpose(1, 2, 0) / spec["scale"]) + spec["zero_point"], -128, 127)
    assert spec["shape"] == [1, 32, 32, 1]
    assert np.array_equal(got, exp.reshape(-1).astype(np.int8))


@needs_data
@pytest.mark.parametrize("argv, needle", [
    (["--mcu", "nope"], "unknown MCU 'nope'; valid ids:"),
    (["--mcu", "rp2040", "--verify", "qemu"], "QEMU cannot emulate cortex-m0plus"),
    (["--mcu", "esp32", "--verify", "qemu"], "QEMU verification is not available for esp32"),
    (["--mcu", "stm32l4r5zi", "--inputs", "-1"], "--inputs -1"),
    (["--mcu", "stm32l4r5zi", "--calibration", "/nonexistent/cal.npz"], "no such input file"),
])
def test_export_user_errors_are_one_line(tmp_path, capsys, argv, needle):
    code, _, err = run_cli(capsys, "export", str(MLPERF / "ad01_int8.tflite"), "--out", str(tmp_path / "a.zip"),
                           *argv)
    assert code == 2
    assert needle in one_line_error(err)


@needs_data
def test_export_out_path_errors(tmp_path, capsys):
    model = str(MLPERF / "ad01_int8.tflite")
    code, _, err = run_cli(capsys, "export", model, "--mcu", "stm32l4r5zi", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in one_line_error(err)
    code, _, err = run_cli(capsys, "export", model, "--mcu", "stm32l4r5zi", "--out", str(tmp_path / "no" / "a.zip"))
    assert code == 2 and "does not exist" in one_line_error(err)
    code, _, err = run_cli(capsys, "export", str(tmp_path / "missing.tflite"), "--mcu", "stm32l4r5zi", "--out",
                           str(tmp_path / "a.zip"))
    assert code == 2 and "no such file" in one_line_error(err)
