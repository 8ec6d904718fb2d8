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


# ---- a keyword-spotting model in the low-latency SVDF style (TensorFlow speech_commands' "low_latency_svdf") --
# One 40-bin log-mel frame per invocation: SVDF(40 -> 64 units, rank 1, memory 32, RELU) -> SVDF(64 -> 32,
# rank 2, memory 10) -> FULLY_CONNECTED(4) -> SOFTMAX. The float file has random weights; the int8 file is its
# post-training quantization as the TFLite converter lays it out (int16 state and time weights, int32 bias),
# with grids from streaming the float model over calibration frames (engine.execute.run_graph with state=).
KWS_LAYERS = ((40, 64, 1, 32, "relu"), (64, 32, 2, 10, "none"))
KWS_CLASSES = 4


def kws_float_weights(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    w = {}
    for i, (n_in, units, rank, mem, _) in enumerate(KWS_LAYERS):
        f = units * rank
        w[f"wf{i}"] = rng.normal(0, 1 / np.sqrt(n_in), (f, n_in)).astype(np.float32)
        w[f"wt{i}"] = rng.normal(0, 1 / np.sqrt(mem), (f, mem)).astype(np.float32)
        w[f"b{i}"] = rng.normal(0, 0.1, units).astype(np.float32)
    w["fc_w"] = rng.normal(0, 1 / np.sqrt(KWS_LAYERS[-1][1]), (KWS_CLASSES, KWS_LAYERS[-1][1])).astype(np.float32)
    w["fc_b"] = rng.normal(0, 0.1, KWS_CLASSES).astype(np.float32)
    return w


def kws_svdf_float(seed: int = 0) -> bytes:
    wts = kws_float_weights(seed)
    w = TFLiteWriter()
    x0 = x = w.tensor("features", (1, KWS_LAYERS[0][0]))
    for i, (n_in, units, rank, mem, act) in enumerate(KWS_LAYERS):
        ins = [x, w.const(f"svdf{i}/weights_feature", wts[f"wf{i}"]), w.const(f"svdf{i}/weights_time", wts[f"wt{i}"]),
               w.const(f"svdf{i}/bias", wts[f"b{i}"]), w.tensor(f"svdf{i}/state", (1, units * rank * mem),
                                                               variable=True)]
        y = w.tensor(f"svdf{i}/out", (1, units))
        w.op("SVDF", ins, [y], "SVDFOptions", Rank=rank, FusedActivationFunction=ACT_CODES[act])
        x = y
    logits = w.tensor("logits", (1, KWS_CLASSES))
    w.op("FULLY_CONNECTED", [x, w.const("fc/weights", wts["fc_w"]), w.const("fc/bias", wts["fc_b"])], [logits],
         "FullyConnectedOptions", FusedActivationFunction=0)
    probs = w.tensor("probs", (1, KWS_CLASSES))
    w.op("SOFTMAX", [logits], [probs], "SoftmaxOptions", Beta=1.0)
    return w.finish([x0], [probs], "TinyStudio test model: low-latency SVDF keyword spotter (float)")


def kws_calibration(n: int = 64, seed: int = 1) -> np.ndarray:
    """Frames of a smooth random 'spectrogram' (neighbouring frames alike, as in speech features)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (n, KWS_LAYERS[0][0]))
    return (np.cumsum(base, axis=0)[:, None, :] / np.sqrt(np.arange(1, n + 1))[:, None, None]).astype(np.float32)


def _grid(lo: float, hi: float) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255 or 1.0
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


def kws_svdf_int8(graph_float, seed: int = 0) -> bytes:
    """The int8 file: grids from streaming `graph_float` (the imported float file) over kws_calibration()."""
    from engine.execute import run_graph

    wts = kws_float_weights(seed)
    state: dict = {}
    seen: dict[str, list] = {}
    for x in kws_calibration():
        env = run_graph(graph_float, {"features": x}, state=state, keep_all=True)
        for k, v in env.items():
            if graph_float.tensors[k].data is None or k in state:
                seen.setdefault(k, []).append(np.asarray(v))
    rng_of = {k: (float(np.min(v)), float(np.max(v))) for k, v in seen.items()}
    w = TFLiteWriter()
    xs, xz = _grid(*rng_of["features"])
    x0 = x = w.tensor("features", (1, KWS_LAYERS[0][0]), "int8", scale=xs, zero_point=xz)
    for i, (n_in, units, rank, mem, act) in enumerate(KWS_LAYERS):
        f = units * rank
        wf_s = float(np.abs(wts[f"wf{i}"]).max()) / 127
        wt_s = float(np.abs(wts[f"wt{i}"]).max()) / 32767
        st_s = max(abs(v) for v in rng_of[f"svdf{i}/state"]) / 32767
        wf = w.tensor(f"svdf{i}/weights_feature", (f, n_in), "int8",
                      data=np.round(wts[f"wf{i}"] / wf_s), scale=wf_s, zero_point=0)
        wt = w.tensor(f"svdf{i}/weights_time", (f, mem), "int16", data=np.round(wts[f"wt{i}"] / wt_s),
                      scale=wt_s, zero_point=0)
        b_s = np.float32(st_s) * np.float32(wt_s)
        b = w.tensor(f"svdf{i}/bias", (units,), "int32", data=np.round(wts[f"b{i}"] / b_s), scale=b_s, zero_point=0)
        st = w.tensor(f"svdf{i}/state", (1, f * mem), "int16", scale=st_s, zero_point=0, variable=True)
        ys, yz = _grid(*rng_of[f"svdf{i}/out"])
        y = w.tensor(f"svdf{i}/out", (1, units), "int8", scale=ys, zero_point=yz)
        # the int8 kernel applies no activation (tflite-micro): a RELU layer's output grid starts at 0 instead
        w.op("SVDF", [x, wf, wt, b, st], [y], "SVDFOptions", Rank=rank, FusedActivationFunction=ACT_CODES[act])
        x, xs = y, ys
    fw_s = np.abs(wts["fc_w"]).max(axis=1) / 127
    fcw = w.tensor("fc/weights", (KWS_CLASSES, KWS_LAYERS[-1][1]), "int8", data=np.round(wts["fc_w"] / fw_s[:, None]),
                   scale=fw_s, zero_point=[0] * KWS_CLASSES, axis=0)
    fcb_s = (np.float32(xs) * fw_s.astype(np.float32)).astype(np.float32)
    fcb = w.tensor("fc/bias", (KWS_CLASSES,), "int32", data=np.round(wts["fc_b"] / fcb_s), scale=fcb_s,
                   zero_point=[0] * KWS_CLASSES, axis=0)
    ls, lz = _grid(*rng_of["logits"])
    logits = w.tensor("logits", (1, KWS_CLASSES), "int8", scale=ls, zero_point=lz)
    w.op("FULLY_CONNECTED", [x, fcw, fcb], [logits], "FullyConnectedOptions", FusedActivationFunction=0)
    probs = w.tensor("probs", (1, KWS_CLASSES), "int8", scale=1 / 256, zero_point=-128)
    w.op("SOFTMAX", [logits], [probs], "SoftmaxOptions", Beta=1.0)
    return w.finish([x0], [probs], "TinyStudio test model: low-latency SVDF keyword spotter (int8, int16 state)")
