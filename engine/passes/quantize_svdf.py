"""Post-training quantization of SVDF as the TFLite converter lays it out for tflite-micro's integer kernel:
int8 activations (the pass's grids), int8 weights_feature and int16 weights_time, both symmetric per tensor,
an int16 symmetric state whose scale comes from the state's calibrated range (calibrate.collect_ranges streams
the calibration samples through the state), and an int32 bias on the grid state scale * weights_time scale
(the one tflite-micro's PrepareSvdf requires). The initial state is quantized onto the same grid."""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError
from engine.ir import Graph, Node, Quant, Tensor
from engine.passes.base import PassReport

INT16_MAX = 32767


def _symmetric(t: Tensor, dtype: str, qmax: int, amax: float | None = None) -> Tensor:
    m = float(np.abs(t.data).max()) if amax is None else amax
    scale = np.float32(m / qmax) if m > 0 else np.float32(1.0)
    q = Quant(np.array([scale]), np.array([0]))
    data = np.clip(np.rint(np.asarray(t.data, np.float64) / np.float64(scale)), -qmax, qmax).astype(dtype)
    return Tensor(t.name, t.shape, dtype, q, data, dict(t.meta))


def quantize_svdf(g: Graph, node: Node, ranges: dict[str, tuple[float, float]], report: PassReport) -> None:
    wf, wt, st = (g.tensors[node.inputs[i]] for i in (1, 2, 4))
    if wf.data is None or wt.data is None:
        raise GraphError("cannot quantize to int8: SVDF weights must be constant", node.name, node.op)
    if st.name not in ranges:
        raise GraphError(f"cannot quantize to int8: no calibration range for the state '{st.name}'", node.name,
                         node.op)
    g.tensors[wf.name] = _symmetric(wf, "int8", 127)
    g.tensors[wt.name] = qwt = _symmetric(wt, "int16", INT16_MAX)
    lo, hi = ranges[st.name]
    amax = max(abs(lo), abs(hi), float(np.abs(st.data).max()) if st.size else 0.0)
    g.tensors[st.name] = qst = _symmetric(st, "int16", INT16_MAX, amax)
    report.count("svdf_layers")
    if len(node.inputs) > 3 and node.inputs[3]:
        b = g.tensors[node.inputs[3]]
        scale = np.float32(qst.quant.scale[0]) * np.float32(qwt.quant.scale[0])
        raw = np.rint(np.asarray(b.data, np.float64) / np.float64(scale))
        if np.abs(raw).max(initial=0) > np.iinfo(np.int32).max:
            report.count("svdf_bias_clamped")
        q = np.clip(raw, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        g.tensors[b.name] = Tensor(b.name, b.shape, "int32", Quant(np.array([scale]), np.array([0])), q,
                                   dict(b.meta))
