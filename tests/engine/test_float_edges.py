"""int8 models with float32 input and output (QUANTIZE first, DEQUANTIZE last, what the TFLite converter makes
without inference_input_type=int8): the C library takes and returns float32, converted in C, and equals the
tflite-micro interpreter bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

from engine.codegen import generate_library
from engine.codegen.float_edges import split_float_edges
from engine.codegen.hostbuild import compile_host
from engine.errors import GraphError
from engine.export.verify_float import float_inputs, verify_float_api
from engine.export.verify_host import verify_host
from engine.importers.tflite_import import load_tflite
from tests.engine.tflite_writer import TFLiteWriter

TOYCAR = Path(__file__).resolve().parents[1] / "data" / "models" / "mlcommons-tiny" / \
    "model_ToyCar_quant_fullint_micro.tflite"


def _first_diff(got: np.ndarray, want: np.ndarray) -> str:
    bad = np.flatnonzero(got.view(np.int32) != want.view(np.int32))
    return "" if not bad.size else f"{bad.size} differ; first at {bad[0]}: C {got[bad[0]]!r}, tflite-micro {want[bad[0]]!r}"


def _run_c_float(lib, feeds: list[dict], workdir: Path) -> list[np.ndarray]:
    import subprocess

    exe = compile_host(lib, workdir, float_api=True)
    blob = b"".join(np.ascontiguousarray(f[s.float_name], "<f4").tobytes() for f in feeds for s in lib.inputs)
    proc = subprocess.run([str(exe)], input=blob, capture_output=True, check=True)
    return np.frombuffer(proc.stdout, "<f4").reshape(len(feeds), -1)


def _tflm(data: bytes, feeds: list[dict], names: list[str]) -> list[np.ndarray]:
    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    out = []
    for f in feeds:
        for i, n in enumerate(names):
            interp.set_input(f[n], i)
        interp.invoke()
        out.append(np.asarray(interp.get_output(0), np.float32).reshape(-1))
    return out


def test_real_toycar_float_api_equals_tflite_micro(tmp_path):
    data = TOYCAR.read_bytes()
    g = load_tflite(TOYCAR.name, data=data)
    assert g.tensors[g.inputs[0]].dtype == "float32" and g.nodes[0].op == "QuantizeLinear"
    lib = generate_library(g, "toycar")
    assert [s.float_name for s in lib.inputs] == g.inputs and [s.float_name for s in lib.outputs] == g.outputs
    assert "toycar_run_float" in lib.files["toycar.h"] and "TOYCAR_FLOAT_IO 1" in lib.files["toycar.h"]
    feeds = float_inputs(lib, 20, seed=5)
    got = _run_c_float(lib, feeds, tmp_path / "c")
    want = _tflm(data, feeds, g.inputs)
    for k in range(len(feeds)):
        assert np.array_equal(got[k].view(np.int32), want[k].view(np.int32)), f"input {k}: {_first_diff(got[k], want[k])}"
    # the int8 API of the same library is the core's, checked as for any model
    core = split_float_edges(g)[0]
    assert verify_host(core, lib, n_random=5).bit_exact


def _two_input_model(readers: int = 1) -> bytes:
    """Two float inputs quantized on different grids, an int8 ADD, a float output; `readers` 2 makes input a
    also feed a float op, so its edge cannot be split."""
    w = TFLiteWriter()
    a, b = w.tensor("a", (1, 6)), w.tensor("b", (1, 6))
    qa = w.tensor("qa", (1, 6), "int8", scale=0.031, zero_point=-7)
    qb = w.tensor("qb", (1, 6), "int8", scale=0.017, zero_point=12)
    s = w.tensor("s", (1, 6), "int8", scale=0.05, zero_point=3)
    y = w.tensor("y", (1, 6))
    w.op("QUANTIZE", [a], [qa])
    w.op("QUANTIZE", [b], [qb])
    w.op("ADD", [qa, qb], [s], "AddOptions", FusedActivationFunction=0)
    w.op("DEQUANTIZE", [s], [y])
    outs = [y]
    if readers == 2:
        r = w.tensor("r", (1, 6))
        w.op("RELU", [a], [r])
        outs.append(r)
    return w.finish([a, b], outs)


def test_two_float_inputs_match_tflite_micro(tmp_path):
    data = _two_input_model()
    g = load_tflite("add.tflite", data=data)
    lib = generate_library(g, "fadd")
    feeds = float_inputs(lib, 24, seed=1)
    got = _run_c_float(lib, feeds, tmp_path)
    want = _tflm(data, feeds, g.inputs)
    for k in range(len(feeds)):
        assert np.array_equal(got[k].view(np.int32), want[k].view(np.int32)), f"input {k}: {_first_diff(got[k], want[k])}"
    res = verify_float_api(g, lib, n_random=8)
    assert res["bit_exact"] and res["inputs"] == 8, res


def test_float_input_read_by_a_float_op_is_refused_by_name():
    g = load_tflite("mixed.tflite", data=_two_input_model(readers=2))
    with pytest.raises(GraphError, match=r"graph input 'a' is float32"):
        generate_library(g, "mixed")


def test_export_bundle_reports_the_float_api(tmp_path):
    import zipfile

    from engine.export import export_model

    g = load_tflite(TOYCAR.name, data=TOYCAR.read_bytes())
    res = export_model(g, "nrf52840", tmp_path / "toycar.zip", n_inputs=4, name="toycar")
    fa = res.report["verify"]["float_api"]
    assert res.report["verify"]["bit_exact"] and fa["bit_exact"] and fa["inputs"] == 4, res.report["verify"]
    with zipfile.ZipFile(res.bundle) as z:
        readme = next(z.read(n).decode() for n in z.namelist() if n.endswith("README.md"))
    assert "toycar_run_float(const float *input, float *output)" in readme
