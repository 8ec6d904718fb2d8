"""TFLite UNIDIRECTIONAL_SEQUENCE_LSTM: imported into the IR's LSTM and run by our float reference, against the
tflite-micro interpreter (the real mnist_lstm example model and single-op files written here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from engine.errors import ModelFormatError
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.profile import profile_graph
from tests.engine.tflite_writer import TFLiteWriter

DATA = Path(__file__).resolve().parents[1] / "data" / "models" / "tflite-micro"


def _tflm(data: bytes):
    cfg = runtime.InterpreterConfig.kPreserveAllTensors
    return runtime.Interpreter.from_bytes(data, arena_size=1 << 20, intrepreter_config=cfg)


def test_mnist_lstm_float_matches_tflite_micro():
    path = DATA / "trained_lstm.tflite"
    g = load_tflite(str(path))
    assert [n.op for n in g.nodes].count("LSTM") == 1
    lstm_out = next(t for t in g.tensors.values() if t.meta.get("tflite_index") == 18)
    interp = _tflm(path.read_bytes())
    rng = np.random.default_rng(3)
    for k in range(5):
        x = rng.random((1, 28, 28)).astype(np.float32) * (k + 1) / 5
        interp.reset()
        interp.set_input(x, 0)
        interp.invoke()
        ours = run_graph(g, {g.inputs[0]: x}, outputs=[lstm_out.name, g.outputs[0]])
        ref_seq = interp.GetTensor(18, 0)["tensor_data"]
        np.testing.assert_allclose(ours[lstm_out.name], ref_seq, rtol=1e-4, atol=2e-6, err_msg=f"input {k}: LSTM")
        np.testing.assert_allclose(ours[g.outputs[0]], interp.get_output(0), rtol=1e-4, atol=1e-6)


def test_mnist_lstm_profile_counts_the_gate_products():
    g = load_tflite(str(DATA / "trained_lstm.tflite"))
    prof = profile_graph(g, [("stm32f746ng", "tflm-reference")])
    lstm = [lp.record for lp in prof.layers if lp.record.op == "LSTM"]
    # 28 steps x 4 gates x 20 units x (28 inputs + 20 recurrent) MACs
    assert len(lstm) == 1 and lstm[0].macs == 28 * 4 * 20 * (28 + 20)
    assert lstm[0].params == 4 * 20 * (28 + 20) + 4 * 20 * 2
    assert lstm[0].state_bytes == 2 * 20 * 4   # float hidden and cell state, persistent RAM, not weights
    assert lstm[0].weight_bytes == 4 * (4 * 20 * (28 + 20) + 4 * 20 * 2)   # W, R and B (Rb zeros) as packed
    assert prof.targets and prof.targets[0].latency_ms > 0


def _lstm_file(batch, seq, inp, hidden, *, time_major=False, cell_clip=0.0, seed=0, peephole=False, cifg=False):
    """One float UNIDIRECTIONAL_SEQUENCE_LSTM with random weights (gate order i, f, c, o as TFLite numbers them)."""
    rng = np.random.default_rng(seed)
    w = TFLiteWriter()
    x = w.tensor("x", (seq, batch, inp) if time_major else (batch, seq, inp))
    ins = [x]
    for name in ("i", "f", "c", "o"):
        ins.append(-1 if cifg and name == "i" else
                   w.const(f"input_to_{name}", (rng.standard_normal((hidden, inp)) * 0.5).astype(np.float32)))
    for name in ("i", "f", "c", "o"):
        ins.append(-1 if cifg and name == "i" else
                   w.const(f"recurrent_to_{name}", (rng.standard_normal((hidden, hidden)) * 0.5).astype(np.float32)))
    for name in ("i", "f", "o"):
        ins.append(w.const(f"cell_to_{name}", rng.standard_normal(hidden).astype(np.float32)) if peephole else -1)
    for name in ("i", "f", "c", "o"):
        ins.append(-1 if cifg and name == "i" else w.const(f"{name}_bias", rng.standard_normal(hidden).astype(np.float32)))
    ins += [-1, -1]  # projection
    ins.append(w.tensor("output_state", (batch, hidden), variable=True))
    ins.append(w.tensor("cell_state", (batch, hidden), variable=True))
    ins += [-1, -1, -1, -1]  # layer norm
    y = w.tensor("y", (seq, batch, hidden) if time_major else (batch, seq, hidden))
    w.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], "UnidirectionalSequenceLSTMOptions", FusedActivationFunction=4,
         CellClip=cell_clip, ProjClip=0.0, TimeMajor=time_major)
    return w.finish([x], [y])


@pytest.mark.parametrize("batch,seq,inp,hidden,time_major,clip", [
    (1, 5, 3, 4, False, 0.0), (1, 12, 10, 16, False, 0.0), (2, 6, 5, 7, False, 0.0), (3, 4, 6, 5, True, 0.0),
    (1, 8, 4, 9, False, 0.7), (2, 5, 3, 32, True, 1.5)])
def test_single_lstm_matches_tflite_micro(batch, seq, inp, hidden, time_major, clip, tmp_path):
    data = _lstm_file(batch, seq, inp, hidden, time_major=time_major, cell_clip=clip, seed=hidden)
    path = tmp_path / "lstm.tflite"
    path.write_bytes(data)
    g = load_tflite(str(path))
    interp = _tflm(data)
    rng = np.random.default_rng(batch * seq)
    for k in range(3):
        x = (rng.standard_normal(g.tensors[g.inputs[0]].shape) * 2).astype(np.float32)
        interp.reset()
        interp.set_input(x, 0)
        interp.invoke()
        ours = run_graph(g, {g.inputs[0]: x})[g.outputs[0]]
        np.testing.assert_allclose(ours, interp.get_output(0), rtol=1e-4, atol=1e-5, err_msg=f"input {k}")


@pytest.mark.parametrize("kw,needle", [({"peephole": True}, "peephole"), ({"cifg": True}, "CIFG")])
def test_unsupported_lstm_variants_are_named(kw, needle, tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(_lstm_file(1, 3, 2, 3, **kw))
    with pytest.raises(ModelFormatError) as e:
        load_tflite(str(path))
    assert needle in str(e.value) and "UNIDIRECTIONAL_SEQUENCE_LSTM_0" in str(e.value)


def test_onnx_export_refuses_the_tflite_lstm_by_name():
    """Its state is kept between invocations (variable tensors) and its cell_clip has no ONNX form."""
    from engine.errors import GraphError
    from engine.exporters.onnx_export import to_onnx

    g = load_tflite(str(DATA / "trained_lstm.tflite"))
    with pytest.raises(GraphError, match="UNIDIRECTIONAL_SEQUENCE_LSTM_0.*state between invocations"):
        to_onnx(g)
