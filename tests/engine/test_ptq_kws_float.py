"""PTQ of MLPerf Tiny's kws_ref_model_float32.tflite (43 KB, in tests/data): the int8 graph we make runs with the
same bytes in tflite-micro (the .tflite written from it by test_ptq.to_tflite) as in our reference, and the
generated C equals the reference; the accuracy proxy (top-1 agreement with float on held-out calibration-like
inputs) is what benchmarks/ptq_real_models.py reports."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tflite_micro.python.tflite_micro import runtime

from benchmarks.ptq_real_models import calibration_like
from engine.compress.base import dequantize_weights
from engine.importers.tflite_import import load_tflite
from engine.int8 import prepare_int8
from engine.passes.ptq import compare_int8, prepare_float, quantize_inputs, quantize_model, to_graph_layout
from tests.engine.test_ptq import to_tflite

KWS = Path(__file__).resolve().parents[1] / "data" / "models" / "mlcommons-tiny" / "kws_ref_model_float32.tflite"
SPAN = (-123.37, 25.73)   # the input grid of the published int8 twin kws_ref_model.tflite (its calibration range)


def test_kws_float_ptq_runs_bit_exact_in_tflite_micro_and_agrees_with_float():
    g = dequantize_weights(load_tflite(str(KWS)))
    qg, rep = quantize_model(g, calibration=calibration_like(g, 16, 0, SPAN), per_layer=False)
    held = calibration_like(g, 24, 1, SPAN)
    interp = runtime.Interpreter.from_bytes(to_tflite(qg), arena_size=1 << 21)
    plan = prepare_int8(qg)
    for i, f in enumerate(held):
        q = quantize_inputs(qg, f)[qg.inputs[0]]
        interp.set_input(q, 0)
        interp.invoke()
        want, got = interp.get_output(0), plan.run({qg.inputs[0]: q})[qg.outputs[0]]
        assert np.array_equal(got, want), f"input {i}: ours {got.ravel()[:6]} tflm {want.ravel()[:6]}"
    prepared, _ = prepare_float(g)
    outs, _ = compare_int8(prepared, qg, [to_graph_layout(prepared, f) for f in held])
    assert outs[0].kind == "classifier" and outs[0].argmax_agreement >= 0.9, outs[0]
