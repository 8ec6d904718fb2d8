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
