"""Post-training int8 quantization of an LSTM in tflite-micro's form (engine/int8/lstm.py), as the TFLite converter
lays it out: each gate's input and recurrent weights symmetric int8 with one scale per gate, the gate biases int32 at
input scale x weight scale (the recurrent bias folded in), the hidden state on the output's int8 grid (starting at
its zero point, real 0) and the cell state int16 at a power-of-two scale covering the cell clip (2^-11, +-16, when
the layer has none). Called by quantize_int8 after the activation grids are set, before the generic constants."""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError
from engine.ir import Graph, Quant, Tensor, is_variable

_GATES = 4
_INT32 = np.iinfo(np.int32)


def _err(node, msg: str) -> GraphError:
    return GraphError(f"cannot quantize to int8: {msg}", node.name, node.op)


def _per_gate(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1, 4H, K) float -> int8 and per-row scales, one symmetric scale per gate block."""
    blocks = np.split(np.asarray(w[0], np.float64), _GATES, axis=0)
    scales = [max(float(np.abs(b).max()), 1e-30) / 127.0 for b in blocks]
    scales = [float(np.float32(s)) for s in scales]
    q = np.concatenate([np.clip(np.rint(b / s), -127, 127) for b, s in zip(blocks, scales)]).astype(np.int8)
    return q[None], np.repeat(np.array(scales, np.float32), w.shape[1] // _GATES)


def _set(g: Graph, name: str, data, dtype: str, quant: Quant) -> None:
    t = g.tensors[name]
    g.tensors[name] = Tensor(name, t.shape, dtype, quant, data, dict(t.meta))


def quantize_lstms(g: Graph, report) -> None:
    for node in g.nodes:
        if node.op != "LSTM":
            continue
        a = node.attrs
        if (a.get("direction", "forward") != "forward" or a.get("clip") is not None or a.get("input_forget", 0)
                or list(a.get("activations") or ["Sigmoid", "Tanh", "Tanh"]) != ["Sigmoid", "Tanh", "Tanh"]
                or any(i < len(node.inputs) and node.inputs[i] for i in (4, 7)) or len(node.outputs) > 1):
            raise _err(node, "the int8 LSTM is tflite-micro's: forward, sigmoid/tanh/tanh, no clip, input_forget, "
                             "sequence_lens or peepholes, output Y only")
        states = [g.tensors.get(node.inputs[i]) if i < len(node.inputs) and node.inputs[i] else None for i in (5, 6)]
        if any(t is None or not is_variable(t) for t in states):
            raise _err(node, "the initial hidden and cell states must be the model's variable tensors (TFLite's "
                             "LSTM state); an LSTM without them has no int8 form here")
        x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
        n = g.tensors[node.inputs[2]].shape[-1]
        wq, ws = _per_gate(g.tensors[node.inputs[1]].data)
        rq, rs = _per_gate(g.tensors[node.inputs[2]].data)
        _set(g, node.inputs[1], wq, "int8", Quant(ws, np.zeros(ws.size, np.int64), 1))
        _set(g, node.inputs[2], rq, "int8", Quant(rs, np.zeros(rs.size, np.int64), 1))
        if len(node.inputs) > 3 and node.inputs[3]:
            b = np.asarray(g.tensors[node.inputs[3]].data, np.float64)[0]
            folded = b[:_GATES * n] + b[_GATES * n:]   # tflite-micro has one bias per gate
            bs = (np.float64(x.quant.scale[0]) * ws.astype(np.float64)).astype(np.float32)
            bq = np.clip(np.rint(folded / bs.astype(np.float64)), _INT32.min, _INT32.max).astype(np.int32)
            data = np.concatenate([bq, np.zeros(_GATES * n, np.int32)])[None]
            scale = np.concatenate([bs, np.ones(_GATES * n, np.float32)])
            _set(g, node.inputs[3], data, "int32", Quant(scale, np.zeros(scale.size, np.int64), 1))
        h, c = states
        zp = int(y.quant.zero_point[0])
        _set(g, h.name, np.full(h.shape, zp, np.int8), "int8", Quant(y.quant.scale.copy(), np.array([zp])))
        clip = float(a.get("cell_clip") or 0.0)
        power = int(np.ceil(np.log2(clip))) - 15 if clip > 0 else -11
        _set(g, c.name, np.zeros(c.shape, np.int16), "int16", Quant(np.array([2.0 ** power], np.float32), np.array([0])))
        report.count("lstm_layers")
