"""Whole-model SVDF test: a low-latency SVDF keyword spotter (tests/data/models/tinystudio, built with the
tflite writer because neither tflite-micro nor mlcommons/tiny ships an SVDF model), streamed frame by frame
against the tflite-micro interpreter: the float file in the float reference, the int8 file byte for byte in
the int8 reference and in the generated C (host, sanitized); and through the CLI (profile, export)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from app.cli import main
from engine.codegen.generate import generate
from engine.codegen.hostbuild import compile_host, run_host
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from engine.profile import profile_graph
from tests.engine.svdf_models import kws_calibration, kws_svdf_float, kws_svdf_int8

DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "tinystudio"
FLOAT, INT8 = DIR / "svdf_kws_float.tflite", DIR / "svdf_kws_int8.tflite"
FRAMES = 30


def _tflm(path: Path, xs) -> np.ndarray:
    interp = runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=1 << 20)
    out = []
    for x in xs:
        interp.set_input(x, 0)
        interp.invoke()
        out.append(interp.get_output(0).copy())
    return np.array(out)


def test_files_are_what_the_builder_makes():
    """Provenance: the committed files are exactly the builder's output (README sha256s)."""
    assert FLOAT.read_bytes() == kws_svdf_float()
    assert INT8.read_bytes() == kws_svdf_int8(load_tflite(str(FLOAT)))
    assert hashlib.sha256(INT8.read_bytes()).hexdigest().startswith("68fc7352")


def test_float_model_streams_like_tflm():
    g = load_tflite(str(FLOAT))
    xs = kws_calibration(FRAMES, seed=7)
    ref = _tflm(FLOAT, xs)
    state: dict = {}
    for k, x in enumerate(xs):
        np.testing.assert_allclose(run_graph(g, {"features": x}, state=state)["probs"], ref[k], atol=2e-6,
                                   err_msg=f"frame {k}")
    assert set(state) == {"svdf0/state", "svdf1/state"}


def test_int8_model_reference_and_c_bit_exact_to_tflm(tmp_path):
    g = load_tflite(str(INT8))
    q = g.tensors["features"].quant
    xs = np.array([q.quantize(x, "int8") for x in kws_calibration(FRAMES, seed=7)])
    ref = _tflm(INT8, xs)
    state: dict = {}
    ours = np.array([run_int8(g, {"features": x}, state=state)["probs"] for x in xs])
    assert np.array_equal(ours, ref), f"{int((ours != ref).sum())} bytes differ"
    assert len({int(r.argmax()) for r in ref}) > 1   # the stream changes the decision
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    lib = generate(g, "svdf_kws")
    assert lib.stamp["state_bytes"] == (64 * 32 + 64 * 10) * 2
    exe = compile_host(lib, tmp_path, sanitize=True)
    ys = run_host(exe, xs.reshape(FRAMES, -1)).reshape(ref.shape)
    assert np.array_equal(ys, ref)


def test_profile_counts_the_state_as_ram_not_flash():
    g = load_tflite(str(INT8))
    prof = profile_graph(g, targets=[("stm32f746ng", "tflm-cmsis-nn")])
    t = prof.totals()
    assert t["state_bytes"] == (64 * 32 + 64 * 10) * 2
    consts = sum(x.nbytes for x in g.tensors.values() if x.data is not None and not x.meta.get("variable"))
    assert t["weight_bytes"] == consts
    assert t["macs"] == 64 * (40 + 32) + 64 * (64 + 10) + 4 * 32
    assert dict(prof.targets[0].ram_parts)["persistent"] >= t["state_bytes"]


def test_cli_profile_and_export(tmp_path, capsys):
    assert main(["profile", str(INT8)]) == 0
    out = capsys.readouterr().out
    assert "state  5,376 B of variable tensors" in out
    bundle = tmp_path / "kws.zip"
    code = main(["export", str(INT8), "--mcu", "stm32f746ng", "--out", str(bundle), "--inputs", "20", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rep = json.loads(cap.out)
    assert rep["verify"]["bit_exact"] is True and rep["verify"]["inputs"] == 21


def test_ptq_of_the_float_model_streams_close_to_float():
    """Our own PTQ of the float file (int16 state, as the converter lays it out) tracks the float stream."""
    from engine.passes.ptq import quantize_model

    gf = load_tflite(str(FLOAT))
    calib = kws_calibration(64)
    q, report = quantize_model(gf, [{"features": x} for x in calib])
    svdf = [n for n in q.nodes if n.op == "SVDF"]
    assert len(svdf) == 2
    for n in svdf:
        assert [q.tensors[n.inputs[i]].dtype for i in range(5)] == ["int8", "int8", "int16", "int32", "int16"]
        assert q.tensors[n.inputs[4]].meta["variable"] is True
    assert svdf[0].attrs["activation"] == "relu"   # kept: the int8 kernel clamps it on the output grid
    xs = kws_calibration(FRAMES, seed=7)
    qin, qout = q.tensors[q.inputs[0]].quant, q.tensors[q.outputs[0]].quant
    sf, sq, agree, err = {}, {}, 0, []
    for x in xs:
        yf = run_graph(gf, {"features": x}, state=sf)["probs"]
        yq = qout.dequantize(run_int8(q, {q.inputs[0]: qin.quantize(x, "int8")}, state=sq)[q.outputs[0]])
        agree += int(yf.argmax() == yq.argmax())
        err.append(np.abs(yf - yq).max())
    assert agree >= FRAMES - 3, agree
    assert np.mean(err) < 0.05, np.mean(err)


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm or arm-none-eabi-gcc not installed")
def test_qemu_cortex_m4_stream_bit_exact_to_tflm():
    """The int8 model on QEMU Cortex-M4 (DSP build): 20 frames as one stream, each output equal to tflite-micro's."""
    from engine.export.golden import Case
    from engine.export.verify_qemu import verify_qemu
    from hwmodels.mcu import get_mcu

    g = load_tflite(str(INT8))
    q = g.tensors["features"].quant
    xs = np.array([q.quantize(x, "int8") for x in kws_calibration(20, seed=9)])
    ref = _tflm(INT8, xs)
    cases = [Case({"features": x}, {"probs": r}) for x, r in zip(xs, ref)]
    res = verify_qemu(g, generate(g, "svdf_kws"), get_mcu("stm32l4r5zi"), cases=cases)
    assert res.machine == "mps2-an386" and res.inputs == 20
    assert res.bit_exact, res.first_mismatch


def test_cli_exports_the_float_model(tmp_path, capsys):
    """A float SVDF file: quantized (int16 state) on export, and the C verified against the int8 reference."""
    bundle = tmp_path / "kws_f.zip"
    code = main(["export", str(FLOAT), "--mcu", "stm32f746ng", "--out", str(bundle), "--inputs", "10", "--json"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert json.loads(cap.out)["verify"]["bit_exact"] is True
    assert "ONNX has no such op" in cap.err   # the bundle's ONNX copies are left out, by name
