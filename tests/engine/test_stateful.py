"""Stateful ops (engine/state.py): variable tensors imported from TFLite, state=None vs streaming state in
both executors, checked against the tflite-micro interpreter, which keeps its variables between invokes."""
from __future__ import annotations

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from engine.errors import TinyStudioError
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from engine.ir import variables
from engine.state import state_bytes
from tests.engine.svdf_models import svdf_float


def _load(tmp_path, data: bytes, name="m"):
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(data)
    return load_tflite(str(p))


def test_importer_marks_variable_tensors(tmp_path):
    g = _load(tmp_path, svdf_float(np.random.default_rng(0), batch=2, units=3, rank=2, memory=4))
    vs = variables(g)
    assert [t.name for t in vs] == ["state"]
    assert vs[0].meta["variable"] is True and vs[0].shape == (2, 24)
    assert np.array_equal(vs[0].data, np.zeros((2, 24), np.float32))  # the file has no buffer: zeros
    assert g.nodes[0].inputs[4] == "state"
    assert state_bytes(g) == 2 * 24 * 4


def test_stream_matches_tflm_and_none_is_pure(tmp_path):
    rng = np.random.default_rng(1)
    data = svdf_float(rng, batch=1, n_in=5, units=3, rank=1, memory=4)
    g = _load(tmp_path, data)
    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    state: dict = {}
    xs = [rng.normal(size=(1, 5)).astype(np.float32) for _ in range(20)]
    first = run_graph(g, {"x": xs[0]})["y"]
    for k, x in enumerate(xs):
        interp.set_input(x, 0)
        interp.invoke()
        ref = interp.get_output(0).copy()
        ours = run_graph(g, {"x": x}, state=state)["y"]
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5, err_msg=f"step {k}")
        assert set(state) == {"state"}
    # with state=None every call starts from the initial (zero) state: the same as the first streamed step
    assert np.array_equal(run_graph(g, {"x": xs[0]})["y"], first)
    assert np.array_equal(run_graph(g, {"x": xs[0]})["y"], first)
    assert state["state"].any()
    assert not variables(g)[0].data.any()  # the graph's initial value is never written
    # the int8 executor's float fallback keeps state the same way
    st2: dict = {}
    for x in xs[:5]:
        a = run_int8(g, {"x": x}, state=st2)["y"]
    st1: dict = {}
    for x in xs[:5]:
        b = run_graph(g, {"x": x}, state=st1)["y"]
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(st1["state"], st2["state"], rtol=1e-6)


def test_state_dict_missing_name_starts_from_initial_and_bad_shape_is_named(tmp_path):
    rng = np.random.default_rng(2)
    g = _load(tmp_path, svdf_float(rng))
    x = rng.normal(size=(1, 6)).astype(np.float32)
    assert np.array_equal(run_graph(g, {"x": x}, state={})["y"], run_graph(g, {"x": x})["y"])
    with pytest.raises(TinyStudioError, match="state 'state' has shape"):
        run_graph(g, {"x": x}, state={"state": np.zeros((1, 3), np.float32)})
    with pytest.raises(TinyStudioError, match="state 'state' has shape"):
        run_int8(g, {"x": x}, state={"state": np.zeros((2, 40), np.float32)})


def test_variable_flag_survives_save_and_load_and_bad_state_shape_is_one_line(tmp_path):
    from engine.serialize import dumps, loads

    from engine.errors import ModelFormatError
    from tests.engine.tflite_writer import TFLiteWriter

    g = _load(tmp_path, svdf_float(np.random.default_rng(3)))
    back = loads(*dumps(g))
    assert [t.name for t in variables(back)] == ["state"]
    # a state whose size is not batch x filters x memory: the file contradicts itself, named in one line
    w = TFLiteWriter()
    x = w.tensor("x", (1, 3))
    wf = w.const("wf", np.ones((2, 3), np.float32))
    wt = w.const("wt", np.ones((2, 4), np.float32))
    st = w.tensor("state", (1, 7), variable=True)
    y = w.tensor("y", (1, 2))
    w.op("SVDF", [x, wf, wt, -1, st], [y], "SVDFOptions", Rank=1, FusedActivationFunction=0)
    with pytest.raises(ModelFormatError, match=r"SVDF.*state \[1, 7\] \(batch, filters\*memory\)"):
        _load(tmp_path, w.finish([x], [y]), "bad_state")
