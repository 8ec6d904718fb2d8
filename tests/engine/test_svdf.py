"""SVDF against the tflite-micro interpreter, as a stream: the state is carried between invokes and every
output is compared after each one (float within float32 rounding, int8 byte for byte), in the reference
(run_graph / run_int8 with state=) and in the generated C on the host (one process runs the whole stream;
<prefix>_reset_state() restores the start)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from engine.codegen.generate import generate
from engine.codegen.hostbuild import CFLAGS, SANITIZE, compile_hosts, run_host, write_library
from engine.errors import ModelFormatError
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.int8 import run_int8
from engine.validate import node_context
from tests.engine.svdf_models import svdf_float, svdf_int8
from tests.engine.tflite_writer import TFLiteWriter

STEPS = 24
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")


def _load(tmp_path, data: bytes, name: str):
    p = tmp_path / f"{name}.tflite"
    p.write_bytes(data)
    return load_tflite(str(p))


def _tflm_stream(data: bytes, xs) -> np.ndarray:
    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    out = []
    for x in xs:
        interp.set_input(x, 0)
        interp.invoke()
        out.append(interp.get_output(0).copy())
    return np.array(out)


# (batch, input, units, rank, memory, bias, activation)
FLOAT_CASES = [(1, 6, 4, 1, 5, True, "none"), (2, 5, 3, 2, 4, True, "relu"), (1, 8, 2, 3, 10, False, "none"),
               (3, 4, 5, 2, 1, False, "relu"), (1, 10, 6, 4, 8, True, "relu")]


@pytest.mark.parametrize("case", FLOAT_CASES, ids=lambda c: "b{}_i{}_u{}_r{}_m{}_{}_{}".format(*c))
def test_float_stream_matches_tflm(case, tmp_path):
    batch, n_in, units, rank, mem, bias, act = case
    seed = sum(case[:5])
    kw = dict(batch=batch, n_in=n_in, units=units, rank=rank, memory=mem, act=act)
    ours_file = svdf_float(np.random.default_rng(seed), bias=bias, **kw)
    # the oracle of an absent bias is the same model with a zero bias (TFLM's pip build crashes without one)
    oracle_file = ours_file if bias else svdf_float(np.random.default_rng(seed), bias="zero", **kw)
    g = _load(tmp_path, ours_file, "svdf")
    assert (g.nodes[0].inputs[3] == "") != bias
    xs = np.random.default_rng(seed + 1).normal(0, 1, (STEPS, batch, n_in)).astype(np.float32)
    ref = _tflm_stream(oracle_file, xs)
    state: dict = {}
    for k, x in enumerate(xs):
        y = run_graph(g, {"x": x}, state=state)["y"]
        np.testing.assert_allclose(y, ref[k], rtol=1e-5, atol=1e-5, err_msg=f"step {k}")
    if act == "relu":
        assert (ref == 0).any() and (ref > 0).any()
    assert np.abs(ref[-1]).max() > 0


def test_float_svdf_macs_and_params(tmp_path):
    g = _load(tmp_path, svdf_float(np.random.default_rng(0), batch=2, n_in=6, units=4, rank=2, memory=5), "m")
    ctx = node_context(g, g.nodes[0])
    cost = ctx.op.cost(ctx)
    assert cost.macs == 2 * 8 * (6 + 5)     # batch * filters * (input + memory)
    assert cost.params == 8 * 6 + 8 * 5 + 4


# (batch, input, units, rank, memory, state dtype, bias, activation in the file)
INT8_CASES = [(1, 6, 4, 1, 5, "int16", True, "none"), (2, 5, 3, 2, 4, "int16", True, "relu"),
              (1, 8, 2, 3, 10, "int8", True, "none"), (1, 12, 4, 2, 1, "int16", True, "none"),
              (2, 6, 4, 2, 6, "int8", True, "relu"), (1, 10, 8, 1, 16, "int16", False, "none")]


def _int8_case(case, tmp_path, seed):
    batch, n_in, units, rank, mem, sdt, bias, act = case
    kw = dict(batch=batch, n_in=n_in, units=units, rank=rank, memory=mem, state_dtype=sdt, act=act)
    ours_file = svdf_int8(np.random.default_rng(seed), bias=bias, **kw)
    oracle_file = ours_file if bias else svdf_int8(np.random.default_rng(seed), bias="zero", **kw)
    g = _load(tmp_path, ours_file, f"svdf_{seed}")
    xs = np.random.default_rng(seed + 1).integers(-128, 128, (STEPS, batch, n_in)).astype(np.int8)
    return g, xs, _tflm_stream(oracle_file, xs)


@pytest.mark.parametrize("case", INT8_CASES, ids=lambda c: "b{}_i{}_u{}_r{}_m{}_{}_{}_{}".format(*c))
def test_int8_stream_bit_exact_to_tflm(case, tmp_path):
    g, xs, ref = _int8_case(case, tmp_path, sum(case[:5]))
    state: dict = {}
    for k, x in enumerate(xs):
        y = run_int8(g, {"x": x}, state=state)["y"]
        assert np.array_equal(y, ref[k]), f"step {k}: ours {y.tolist()} tflm {ref[k].tolist()}"
    assert state["state"].dtype == np.dtype(case[5]) and state["state"].any()
    assert len(np.unique(ref)) > 4   # outputs spread over the int8 range, not saturated
    if case[5] != "int16":
        return
    # the float reference of the quantized graph (dequantized, streamed too) tracks the integers on the fine
    # int16 state grid (an int8 state rounds too coarsely: its rounding differences add up over memory * rank)
    fstate: dict = {}
    yf = np.array([run_graph(g, {"x": x}, state=fstate, simulate_quant=True)["y"] for x in xs])
    lsb = np.abs(yf - g.tensors["y"].quant.dequantize(ref)) / float(g.tensors["y"].quant.scale[0])
    assert lsb.mean() <= 1.0 and lsb.max() <= 16.5, (lsb.mean(), lsb.max())


@needs_gcc
def test_c_stream_bit_exact_to_tflm_sanitized(tmp_path):
    """Every int8 case as one host runner (ASan + UBSan): the whole stream in one process, state kept."""
    libs, streams = [], []
    for i, case in enumerate(INT8_CASES):
        g, xs, ref = _int8_case(case, tmp_path, sum(case[:5]))
        libs.append(generate(g, f"svdf{i}"))
        streams.append((xs, ref))
    exe = compile_hosts(libs, tmp_path / "c", sanitize=True)
    for lib, (xs, ref) in zip(libs, streams):
        ys = run_host(exe, xs.reshape(STEPS, -1), args=(lib.name,))
        assert np.array_equal(ys.reshape(ref.shape), ref), lib.name
    assert libs[0].stamp["state_bytes"] == 1 * 4 * 5 * 2   # batch * filters * memory * int16


_RESET_MAIN = r"""
#include <stdio.h>
#include "svdf_r.h"
/* argv[1]: the step before which the state is reset; the stream comes on stdin as host_main reads it */
int main(int argc, char **argv)
{
    static int8_t in[SVDF_R_INPUT_SIZE], out[SVDF_R_OUTPUT_SIZE];
    long step = 0, reset_at = argc > 1 ? atol(argv[1]) : -1;
    if (svdf_r_init() != 0) {
        return 3;
    }
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {
        if (step++ == reset_at) {
            svdf_r_reset_state();
        }
        svdf_r_run(in, out);
        fwrite(out, 1, sizeof out, stdout);
    }
    return 0;
}
"""


@needs_gcc
def test_c_reset_state_restarts_the_stream(tmp_path):
    case = INT8_CASES[1]
    g, xs, ref = _int8_case(case, tmp_path, 7)
    lib = generate(g, "svdf_r")
    assert "void svdf_r_reset_state(void);" in lib.files["svdf_r.h"]
    d = write_library(lib, tmp_path / "c")
    (d / "reset_main.c").write_text("#include <stdlib.h>\n" + _RESET_MAIN)
    exe = d / "reset_host"
    r = subprocess.run(["gcc", *CFLAGS, *SANITIZE, "-I", str(d), *(str(d / s) for s in lib.sources),
                        str(d / "reset_main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    half = STEPS // 2
    ys = run_host(exe, xs.reshape(STEPS, -1), args=(str(half),)).reshape(ref.shape)
    assert np.array_equal(ys[:half], ref[:half])
    # after the reset the second half is what a fresh interpreter gives on it (tflite-micro's interp.reset())
    assert np.array_equal(ys[half:], _tflm_stream(_oracle_bytes(case, 7), xs[half:]))
    assert not np.array_equal(ys[half:], ref[half:])   # without the reset the state would differ
    no_reset = run_host(exe, xs.reshape(STEPS, -1), args=("-1",)).reshape(ref.shape)
    assert np.array_equal(no_reset, ref)


def _oracle_bytes(case, seed):
    batch, n_in, units, rank, mem, sdt, _, act = case
    return svdf_int8(np.random.default_rng(seed), batch=batch, n_in=n_in, units=units, rank=rank, memory=mem,
                     state_dtype=sdt, act=act)


def test_int8_activation_is_ignored_as_in_tflm_and_noted(tmp_path):
    g, _, _ = _int8_case(INT8_CASES[1], tmp_path, 3)
    node = g.nodes[0]
    assert node.attrs["activation"] == "none" and node.meta["tflite_ignored_activation"] == "RELU"


def test_state_that_is_not_variable_is_refused(tmp_path):
    w = TFLiteWriter()
    x = w.tensor("x", (1, 3))
    wf = w.const("wf", np.ones((2, 3), np.float32))
    wt = w.const("wt", np.ones((2, 4), np.float32))
    st = w.tensor("state", (1, 8))
    y = w.tensor("y", (1, 2))
    w.op("SVDF", [x, wf, wt, -1, st], [y], "SVDFOptions", Rank=1, FusedActivationFunction=0)
    with pytest.raises(ModelFormatError, match="'state' is not a variable tensor"):
        _load(tmp_path, w.finish([x], [y]), "bad")


def test_rank_that_does_not_divide_filters_is_refused(tmp_path):
    w = TFLiteWriter()
    x = w.tensor("x", (1, 3))
    wf = w.const("wf", np.ones((3, 3), np.float32))
    wt = w.const("wt", np.ones((3, 4), np.float32))
    st = w.tensor("state", (1, 12), variable=True)
    y = w.tensor("y", (1, 1))
    w.op("SVDF", [x, wf, wt, -1, st], [y], "SVDFOptions", Rank=2, FusedActivationFunction=0)
    with pytest.raises(ModelFormatError, match="rank"):
        _load(tmp_path, w.finish([x], [y]), "bad_rank")


def test_int8_time_weights_and_state_of_different_types_are_refused(tmp_path):
    """tflite-micro reads weights_time and the state with one element type; a file mixing them is named."""
    from engine.errors import GraphError

    w = TFLiteWriter()
    x = w.tensor("x", (1, 3), "int8", scale=0.1, zero_point=0)
    wf = w.tensor("wf", (2, 3), "int8", data=np.ones((2, 3)), scale=0.01, zero_point=0)
    wt = w.tensor("wt", (2, 4), "int8", data=np.ones((2, 4)), scale=0.01, zero_point=0)
    b = w.tensor("b", (2,), "int32", data=np.zeros(2), scale=0.0002, zero_point=0)
    st = w.tensor("state", (1, 8), "int16", scale=0.02, zero_point=0, variable=True)
    y = w.tensor("y", (1, 2), "int8", scale=0.1, zero_point=0)
    w.op("SVDF", [x, wf, wt, b, st], [y], "SVDFOptions", Rank=1, FusedActivationFunction=0)
    g = _load(tmp_path, w.finish([x], [y]), "mixed")
    with pytest.raises(GraphError, match="weights_time 'wt' must be quantized int16 like the state 'state'"):
        run_int8(g, {"x": np.zeros((1, 3), np.int8)})
