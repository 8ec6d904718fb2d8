"""The generated C of the int8 LSTM (templates/ts_lstm_ref.c) against tflite-micro, byte for byte: the real
mnist_lstm int8 model and single-op files, 20 inputs each streamed through one process (state kept between
runs, as the interpreter keeps it between invokes), built with ASan + UBSan."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.codegen.generate import generate
from engine.codegen.hostbuild import compile_hosts, run_host
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from tests.engine.test_int8 import first_diffs, tflm_from_bytes
from tests.engine.test_recurrent_int8 import _int8_lstm_file

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
N = 20


def _stream(g, data: bytes, seed: int):
    """N random int8 inputs, tflite-micro's outputs streamed without reset, and run_int8's with a state dict."""
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, (N, *g.tensors[g.inputs[0]].shape)).astype(np.int8)
    interp = tflm_from_bytes(data)
    ref, ours, state = [], [], {}
    for x in xs:
        interp.set_input(x, 0)
        interp.invoke()
        ref.append(interp.get_output(0).copy())
        ours.append(run_int8(g, {g.inputs[0]: x}, state=state)[g.outputs[0]])
    ref = np.array(ref)
    assert np.array_equal(np.array(ours).reshape(ref.shape), ref), "int8 reference vs tflite-micro"
    return xs, ref


@needs_gcc
def test_lstm_c_bit_exact_to_tflite_micro(tmp_path):
    cases = [("mnist", (DATA / "trained_lstm_int8.tflite").read_bytes()),
             ("dtln", (DATA / "dtln_noise_suppression.tflite").read_bytes())]
    for i, (shape, kw) in enumerate([((2, 5, 4, 6), {"h_zp": 7}), ((3, 4, 6, 5), {"time_major": True}),
                                     ((1, 7, 3, 16), {"cell_pow": -11, "cell_clip": 2.0})]):
        cases.append((f"single{i}", _int8_lstm_file(*shape, seed=i + 3, **kw)))
    libs, streams = [], []
    for name, data in cases:
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(data)
        g = load_tflite(str(path))
        libs.append(generate(g, f"lstm_{name}"))
        streams.append(_stream(g, data, len(libs)))
    exe = compile_hosts(libs, tmp_path / "c", sanitize=True)
    for lib, (xs, ref) in zip(libs, streams):
        ys = run_host(exe, xs.reshape(N, -1), args=(lib.name,)).reshape(ref.shape)
        assert np.array_equal(ys, ref), f"{lib.name}: {first_diffs(ys, ref)}"
    # mnist_lstm: the 20-unit hidden state (int8) and cell state (int16) are the model's static state
    assert libs[0].stamp["state_bytes"] == 20 + 20 * 2
    assert "lstm_mnist_reset_state" in libs[0].files["lstm_mnist.h"]


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="qemu-system-arm or arm-none-eabi-gcc not installed")
def test_mnist_lstm_c_on_qemu_cortex_m4_bit_exact():
    """The same C cross-compiled for Cortex-M4 and run on QEMU mps2-an386: 21 streamed inputs equal the int8
    reference (itself equal to tflite-micro above)."""
    from engine.export.verify_qemu import verify_qemu
    from hwmodels.mcu import get_mcu

    g = load_tflite(str(DATA / "trained_lstm_int8.tflite"))
    res = verify_qemu(g, generate(g, "lstm_m4"), get_mcu("stm32f411re"), n_random=N, seed=1)
    assert res.machine == "mps2-an386" and res.inputs == N + 1
    assert res.bit_exact, res.first_mismatch
    assert 1.0 < res.instructions_per_mac < 20.0, res.instructions_per_mac
