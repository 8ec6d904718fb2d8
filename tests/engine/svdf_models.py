"""Test-only builders of SVDF .tflite files (float and int8, as the TFLite converter lays them out)."""
from __future__ import annotations

import numpy as np

from tests.engine.tflite_writer import TFLiteWriter

ACT_CODES = {"none": 0, "relu": 1}


def svdf_float(rng, batch=1, n_in=6, units=4, rank=2, memory=5, bias=True, act="none") -> bytes:
    f = units * rank
    w = TFLiteWriter()
    x = w.tensor("x", (batch, n_in))
    wf = w.tensor("weights_feature", (f, n_in), data=rng.normal(0, 0.5, (f, n_in)).astype(np.float32))
    wt = w.tensor("weights_time", (f, memory), data=rng.normal(0, 0.5, (f, memory)).astype(np.float32))
    bvals = rng.normal(0, 0.5, units).astype(np.float32)
    # bias "zero": a zero bias tensor, the oracle of an absent bias (tflite-micro's pip build crashes without one)
    b = w.tensor("bias", (units,), data=bvals * (bias != "zero")) if bias else -1
    st = w.tensor("state", (batch, f * memory), variable=True)
    y = w.tensor("y", (batch, units))
    w.op("SVDF", [x, wf, wt, b, st], [y], "SVDFOptions", Rank=rank, FusedActivationFunction=ACT_CODES[act])
    return w.finish([x], [y])


def svdf_int8(rng, batch=1, n_in=6, units=4, rank=2, memory=5, state_dtype="int16", act="none",
              x_scale=0.05, x_zp=3, y_scale=0.08, y_zp=-5, bias=True) -> bytes:
    """int8 input/output/weights_feature, int16 (or int8) weights_time and state, int32 bias with scale
    state_scale * weights_time_scale, as tflite-micro's PrepareSvdf requires."""
    f = units * rank
    # scales that keep the state and the output mostly inside their ranges (real values of a few units)
    s_scale, wt_scale, wf_scale = 0.02, 1e-5, 0.01
    if state_dtype == "int8":
        s_scale, wt_scale = 0.1, 0.0025
    hi = np.iinfo(np.dtype(state_dtype)).max
    w = TFLiteWriter()
    x = w.tensor("x", (batch, n_in), "int8", scale=x_scale, zero_point=x_zp)
    wf = w.tensor("weights_feature", (f, n_in), "int8", data=rng.integers(-127, 128, (f, n_in)),
                  scale=wf_scale, zero_point=0)
    wt = w.tensor("weights_time", (f, memory), state_dtype, data=rng.integers(-hi, hi + 1, (f, memory)),
                  scale=wt_scale, zero_point=0)
    bvals = rng.integers(-20000, 20000, units) * (bias != "zero")
    b = w.tensor("bias", (units,), "int32", data=bvals, scale=np.float32(s_scale) * np.float32(wt_scale),
                 zero_point=0) if bias else -1
    st = w.tensor("state", (batch, f * memory), state_dtype, scale=s_scale, zero_point=0, variable=True)
    y = w.tensor("y", (batch, units), "int8", scale=y_scale, zero_point=y_zp)
    w.op("SVDF", [x, wf, wt, b, st], [y], "SVDFOptions", Rank=rank, FusedActivationFunction=ACT_CODES[act])
    return w.finish([x], [y])
