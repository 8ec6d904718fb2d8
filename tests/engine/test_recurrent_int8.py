"""int8 LSTM (int8 activations, int16 gates and cell state) bit-exact against the tflite-micro interpreter: the
real mnist_lstm int8 example model and single-op files with random scales written here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import GraphError
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from engine.int8.lstm import sigmoid16, tanh16
from tests.engine.test_int8 import first_diffs, tflm_from_bytes
from tests.engine.tflite_writer import TFLiteWriter

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"


def _check(g, data: bytes, n_inputs: int, seed: int, lstm_index: int | None = None):
    plan = prepare_int8(g)
    interp = tflm_from_bytes(data, preserve=True)
    rng = np.random.default_rng(seed)
    x_t = g.tensors[g.inputs[0]]
    lstm_t = None if lstm_index is None else next(t for t in g.tensors.values()
                                                  if t.meta.get("tflite_index") == lstm_index)
    for k in range(n_inputs):
        x = rng.integers(-128, 128, x_t.shape).astype(np.int8)
        interp.reset()
        interp.set_input(x, 0)
        interp.invoke()
        env = plan.run({g.inputs[0]: x}, keep_all=True)
        if lstm_t is not None:
            ref = interp.GetTensor(lstm_index, 0)["tensor_data"]
            ours = env[lstm_t.name].reshape(ref.shape)
            assert np.array_equal(ours, ref), f"input {k}, LSTM output: {first_diffs(ours, ref)}"
        ref = interp.get_output(0)
        ours = env[g.outputs[0]].reshape(ref.shape)
        assert np.array_equal(ours, ref), f"input {k}, model output: {first_diffs(ours, ref)}"


def test_mnist_lstm_int8_bit_exact_on_20_inputs():
    path = DATA / "trained_lstm_int8.tflite"
    _check(load_tflite(str(path)), path.read_bytes(), 20, 11, lstm_index=23)


def test_dtln_noise_suppression_streams_bit_exact_on_20_frames():
    """tflite-micro's DTLN example (two int8 LSTMs of 128 units, cell states at 2^-11 and 2^-12, a hidden zero
    point of -4, FC keeping dims, logistic): 20 frames streamed without reset, every output bit-exact."""
    from engine.int8 import run_int8

    path = DATA / "dtln_noise_suppression.tflite"
    g = load_tflite(str(path))
    assert [n.op for n in g.nodes].count("LSTM") == 2
    interp = tflm_from_bytes(path.read_bytes())
    rng = np.random.default_rng(21)
    state: dict = {}
    for k in range(20):
        x = rng.integers(-128, 128, (1, 1, 257)).astype(np.int8)
        interp.set_input(x, 0)
        interp.invoke()
        ref = interp.get_output(0)
        ours = run_int8(g, {g.inputs[0]: x}, state=state)[g.outputs[0]].reshape(ref.shape)
        assert np.array_equal(ours, ref), f"frame {k}: {first_diffs(ours, ref)}"
    assert len(state) == 4


def _int8_lstm_file(batch, seq, inp, hidden, *, time_major=False, cell_clip=0.0, cell_pow=-12, h_zp=0, seed=0):
    rng = np.random.default_rng(seed)
    w = TFLiteWriter()
    sx, zx = float(rng.uniform(0.01, 0.05)), int(rng.integers(-20, 20))
    sh = float(rng.uniform(0.005, 0.02))
    x = w.tensor("x", (seq, batch, inp) if time_major else (batch, seq, inp), "int8", scale=sx, zero_point=zx)
    w_scales = {}
    ins = [x]
    for kind, cols in (("input", inp), ("recurrent", hidden)):
        for gate in "ifco":
            s = float(rng.uniform(0.002, 0.02))
            w_scales[(kind, gate)] = s
            ins.append(w.tensor(f"{kind}_to_{gate}", (hidden, cols), "int8",
                                rng.integers(-127, 128, (hidden, cols)), scale=s, zero_point=0))
    ins += [-1, -1, -1]
    for gate in "ifco":
        s = sx * w_scales[("input", gate)]
        ins.append(w.tensor(f"{gate}_bias", (hidden,), "int32", rng.integers(-3000, 3000, hidden), scale=s,
                            zero_point=0))
    ins += [-1, -1]
    ins.append(w.tensor("output_state", (batch, hidden), "int8", scale=sh, zero_point=h_zp, variable=True))
    ins.append(w.tensor("cell_state", (batch, hidden), "int16", scale=2.0 ** cell_pow, zero_point=0,
                        variable=True))
    ins += [-1, -1, -1, -1]
    y = w.tensor("y", (seq, batch, hidden) if time_major else (batch, seq, hidden), "int8", scale=sh,
                 zero_point=h_zp)
    w.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], "UnidirectionalSequenceLSTMOptions", FusedActivationFunction=4,
         CellClip=cell_clip, ProjClip=0.0, TimeMajor=time_major)
    return w.finish([x], [y])


@pytest.mark.parametrize("batch,seq,inp,hidden,kw", [
    (1, 6, 5, 8, {}), (1, 10, 12, 20, {"cell_clip": 3.0}), (2, 5, 4, 6, {"h_zp": 7}),
    (3, 4, 6, 5, {"time_major": True}), (1, 7, 3, 16, {"cell_pow": -11, "cell_clip": 2.0}),
    (1, 5, 4, 9, {"cell_pow": -14, "h_zp": -5})])
def test_single_int8_lstm_bit_exact(batch, seq, inp, hidden, kw, tmp_path):
    data = _int8_lstm_file(batch, seq, inp, hidden, seed=hidden + seq, **kw)
    path = tmp_path / "lstm_int8.tflite"
    path.write_bytes(data)
    _check(load_tflite(str(path)), data, 4, hidden)


def test_integer_sigmoid_and_tanh_track_the_real_functions():
    x = np.arange(-32768, 32768, 7)
    real = x / 4096.0
    assert np.abs(sigmoid16(x) / 32768.0 - 1 / (1 + np.exp(-real))).max() < 2e-3
    assert np.abs(tanh16(x, 3, 0) / 32768.0 - np.tanh(real)).max() < 2e-3


def test_int8_lstm_refuses_a_non_power_of_two_cell_scale(tmp_path):
    data = _int8_lstm_file(1, 3, 2, 4, cell_pow=-12)
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    g = load_tflite(str(path))
    cell = next(t for t in g.tensors.values() if t.dtype == "int16")
    cell.quant.scale[:] = 0.0003
    with pytest.raises(GraphError, match="power of two"):
        prepare_int8(g)


def test_lstm_state_streams_across_invokes_like_tflite_micro(tmp_path):
    """Without a reset, tflite-micro keeps the output and cell state between invokes; so do run_int8 and
    run_graph with a state dict (engine/state.py); state=None starts from the initial values each time."""
    from engine.execute import run_graph
    from engine.int8 import run_int8
    from tests.engine.test_recurrent_tflite import _lstm_file

    data = _int8_lstm_file(1, 4, 3, 6, seed=2)
    path = tmp_path / "s.tflite"
    path.write_bytes(data)
    g = load_tflite(str(path))
    interp = tflm_from_bytes(data)
    rng = np.random.default_rng(0)
    state: dict = {}
    first = None
    for k in range(5):
        x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
        first = x if first is None else first
        interp.set_input(x, 0)
        interp.invoke()
        ours = run_int8(g, {g.inputs[0]: x}, state=state)[g.outputs[0]]
        assert np.array_equal(ours.reshape(-1), interp.get_output(0).reshape(-1)), f"invoke {k}"
    assert sorted(state) == sorted(t.name for t in g.tensors.values() if t.meta.get("variable"))
    fresh = run_int8(g, {g.inputs[0]: first})[g.outputs[0]]
    interp.reset()
    interp.set_input(first, 0)
    interp.invoke()
    assert np.array_equal(fresh.reshape(-1), interp.get_output(0).reshape(-1))

    fdata = _lstm_file(1, 4, 3, 6, seed=4)
    fpath = tmp_path / "f.tflite"
    fpath.write_bytes(fdata)
    fg = load_tflite(str(fpath))
    finterp = tflm_from_bytes(fdata)
    fstate: dict = {}
    for k in range(4):
        x = rng.standard_normal(fg.tensors[fg.inputs[0]].shape).astype(np.float32)
        finterp.set_input(x, 0)
        finterp.invoke()
        ours = run_graph(fg, {fg.inputs[0]: x}, state=fstate)[fg.outputs[0]]
        np.testing.assert_allclose(ours, finterp.get_output(0), rtol=1e-4, atol=1e-5, err_msg=f"float invoke {k}")


def test_c_sigmoid_table_is_the_reference_table():
    """The int8 LSTM's sigmoid/tanh table stands twice, in the numpy reference and in the C kernel; they must
    be the same 256 values (TFLite's sigmoid_table_uint16)."""
    from importlib import resources

    from engine.int8.lstm import SIGMOID_TABLE

    c = resources.files("engine.codegen").joinpath("templates", "ts_lstm_ref.c").read_text()
    start = c.index("ts_sigmoid_table[256] = {") + len("ts_sigmoid_table[256] = {")
    values = [int(v) for v in c[start:c.index("};", start)].replace("\n", " ").split(",")]
    assert values == [int(v) for v in SIGMOID_TABLE]
