"""The ONNX backend test models shipped inside the onnx package (pytorch-converted, pytorch-operator):
import each, run our float reference, and compare with the stored outputs and with onnxruntime.

Tolerance rtol 1e-4 / atol 1e-4: the stored outputs come from PyTorch in float32 and our reference sums in a
different order (float64 accumulation in places), so agreement is to float32 rounding of sums over up to a
few hundred terms (test_operator_conv: 16*3*3 taps); the largest difference seen is about 1e-5.
Models whose import raises UnsupportedOpError are skipped and counted (3-D convolutions: the IR's Conv is
1-D/2-D, as microcontroller runtimes are).
"""
from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from engine.errors import UnsupportedOpError
from engine.execute import run_graph
from engine.importers.onnx_import import load_onnx
from tests.engine.test_onnx_import import assert_close, ort_run

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
MODELS = sorted(glob.glob(os.path.join(DATA, "pytorch-converted", "*", "model.onnx"))
                + glob.glob(os.path.join(DATA, "pytorch-operator", "*", "model.onnx")))
RTOL = ATOL = 1e-4


def _tensors(folder: str, kind: str) -> list[np.ndarray]:
    files = sorted(glob.glob(os.path.join(folder, "test_data_set_0", f"{kind}_*.pb")),
                   key=lambda f: int(f.rsplit("_", 1)[1].split(".")[0]))
    return [numpy_helper.to_array(onnx.load_tensor(f)) for f in files]


def _fits_float32(arrays) -> bool:
    """A few operator tests feed uninitialized float64 memory (1e-316 .. 1e+300); the float reference
    computes in float32 by design, so those are checked on fresh random inputs instead."""
    for a in arrays:
        if a.dtype == np.float64:
            finite = a[np.isfinite(a)]
            if finite.size and (np.abs(finite).max() > 1e30 or np.abs(finite[finite != 0]).min(initial=1) < 1e-30):
                return False
    return True


def _ort_or_none(model_path: str, feeds: dict):
    """onnxruntime's outputs, or None for the opset-6 models it has no kernel for (PRelu-6, Add-6 with
    `broadcast`)."""
    try:
        with open(model_path, "rb") as f:
            return ort_run(f.read(), feeds)
    except Exception as e:  # onnxruntime raises its own exception types
        if "NOT_IMPLEMENTED" in str(e) or "Could not find an implementation" in str(e):
            return None
        raise


@pytest.mark.parametrize("model_path", MODELS, ids=[p.split(os.sep)[-2] for p in MODELS])
def test_backend_model(model_path):
    folder = os.path.dirname(model_path)
    try:
        g = load_onnx(model_path)
    except UnsupportedOpError as e:
        pytest.skip(f"unsupported: {e.op} at node '{e.node}'")
    inputs, expected = _tensors(folder, "input"), _tensors(folder, "output")
    assert len(inputs) == len(g.inputs) and len(expected) == len(g.outputs)
    if not _fits_float32(inputs):
        rng = np.random.default_rng(0)
        inputs = [rng.standard_normal(a.shape).astype(a.dtype) for a in inputs]
        expected = None
    feeds = dict(zip(g.inputs, inputs))
    got = run_graph(g, feeds)
    reference = _ort_or_none(model_path, feeds)
    if expected is None and reference is None:
        # garbage stored inputs and no onnxruntime kernel for the opset: onnx's own reference evaluator
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model_path).run(None, feeds)
    for i, name in enumerate(g.outputs):
        if expected is not None:
            assert_close(got[name], expected[i], RTOL, ATOL, f"{name} vs stored output")
        if reference is not None:
            assert_close(got[name], reference[i], RTOL, ATOL, f"{name} vs onnxruntime")


def test_backend_support_summary():
    """Counts the models the importer supports; fails if support regresses."""
    unsupported = {}
    for p in MODELS:
        try:
            load_onnx(p)
        except UnsupportedOpError as e:
            unsupported[p.split(os.sep)[-2]] = e.op
    n = len(MODELS) - len(unsupported)
    print(f"\nONNX backend models supported: {n} / {len(MODELS)}; unsupported: "
          + ", ".join(f"{k} ({v})" for k, v in sorted(unsupported.items())))
    assert len(MODELS) >= 100
    assert set(unsupported.values()) <= {"Conv (3-D)"}, unsupported
