"""TFLite UNIDIRECTIONAL_SEQUENCE_LSTM -> the IR's LSTM (ONNX semantics, engine/ops/recurrent.py).

TFLite keeps one tensor per gate (input, forget, cell, output) and the op is batch-major unless `time_major`;
the IR packs them in ONNX's gate order (i, o, f, c) and runs time-major, so the handler adds a Reshape (or
Transpose) on each side. int8 files keep each gate's scale: the packed weights are quantized per output row
(axis 1), every row with its gate's scale. The output and cell states are the file's variable tensors: IR
tensors of shape (1, batch, H) holding their initial value, `meta["variable"] = True`.
"""
from __future__ import annotations

import numpy as np

from engine.importers.tflite_builder import Builder
from engine.ir import Quant, Tensor

# TFLite operand indices (lstm_shared.h): input weights i, f, c, o; recurrent weights; peepholes; biases.
_IN_W, _REC_W, _PEEP, _BIAS = (1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11), (12, 13, 14, 15)
_ONNX_ORDER = (0, 3, 1, 2)  # ONNX packs gates i, o, f, c; TFLite numbers them i, f, c, o
# tflite-micro applies the fused activation to the cell gate (only TANH is valid there) and always tanh to the
# cell state for the output.
_CELL_ACT = {4: "Tanh"}


def _packed(b: Builder, idxs: tuple[int, ...], what: str, pad_rows: int = 0) -> str:
    """One constant (1, rows, ...) stacking the given operands in ONNX gate order (+ zero rows for R's bias)."""
    recs = [b.rec(b.input(i, what)) for i in idxs]
    for r in recs:
        if r.data is None:
            raise b.error(f"the {what} '{r.name}' must be a constant")
    if len({r.dtype for r in recs}) != 1 or len({r.data.shape for r in recs}) != 1:
        raise b.error(f"the {what} tensors differ in type or shape")
    data = np.concatenate([np.asarray(r.data) for r in recs] +
                          [np.zeros((pad_rows,) + recs[0].data.shape[1:], recs[0].data.dtype)])[None]
    quant = None
    if any(r.quant is not None for r in recs):
        if any(r.quant is None or r.quant.per_channel for r in recs):
            raise b.error(f"the {what} tensors must all be quantized per tensor")
        rows = recs[0].data.shape[0]
        scale = np.concatenate([np.repeat(r.quant.scale, rows) for r in recs] + [np.ones(pad_rows, np.float32)])
        zp = np.concatenate([np.repeat(r.quant.zero_point, rows) for r in recs] + [np.zeros(pad_rows, np.int64)])
        quant = Quant(scale, zp, 1)
    name = b.fresh(f"{b.node_name()}/{what.replace(' ', '_')}")
    b.g.tensors[name] = Tensor(name, data.shape, recs[0].dtype, quant, data,
                               {"tflite_index": [r.index for r in recs], "tflite_layout": "gates packed i, o, f, c"})
    return name


def _state(b: Builder, i: int, what: str) -> str:
    """The variable tensor behind operand i, as the IR's initial state (1, batch, H)."""
    r = b.rec(b.input(i, what))
    if len(r.shape) != 2:
        raise b.error(f"the {what} {list(r.shape)} must be 2-D (batch, units)")
    key = (r.index, "state")
    if key not in b.cache:
        data = r.data
        if data is None:  # tflite-micro resets an int8 variable to its zero point (real 0), others to 0
            fill = int(r.quant.zero_point[0]) if r.dtype == "int8" and r.quant is not None else 0
            data = np.full(r.shape, fill, np.dtype(r.dtype))
        name = b.fresh(r.name or f"tensor_{r.index}")
        b.g.tensors[name] = Tensor(name, (1, *r.shape), r.dtype, r.quant, np.asarray(data).reshape(1, *r.shape),
                                   {"tflite_index": r.index, "variable": True})
        b.cache[key] = name
    return b.cache[key]


def unidirectional_sequence_lstm(b: Builder) -> None:
    ins = b.op.inputs
    present = [i < len(ins) and ins[i] >= 0 for i in range(24)]
    if not present[1] or not present[5]:
        raise b.error("CIFG (an LSTM without input gate weights) is not supported")
    if present[16] or present[17]:
        raise b.error("a projection layer (projection weights/bias) is not supported")
    if any(present[20:24]):
        raise b.error("layer normalization coefficients are not supported")
    if any(present[i] for i in _PEEP):  # tflite-micro's kernel ignores them: mapping them would differ from it
        raise b.error("peephole weights (cell_to_*_weights) are not supported")
    cell_clip = float(b.opt("CellClip", 0.0) or 0.0)
    if b.opt("DiagonalRecurrentTensors", False):
        raise b.error("diagonal recurrent tensors are not supported")
    act = int(b.opt("FusedActivationFunction", 4))
    if act not in _CELL_ACT:
        raise b.error(f"fused activation {act} is not supported (only TANH, as in tflite-micro)")
    x = b.rec(b.input(0, "input"))
    time_major = bool(b.opt("TimeMajor", False))
    if len(x.shape) != 3:
        raise b.error(f"the input {list(x.shape)} must be 3-D")
    seq, batch, _ = x.shape if time_major else (x.shape[1], x.shape[0], x.shape[2])
    w = _packed(b, tuple(_IN_W[g] for g in _ONNX_ORDER), "input weights")
    r = _packed(b, tuple(_REC_W[g] for g in _ONNX_ORDER), "recurrent weights")
    hidden = b.rec(ins[_REC_W[0]]).shape[0]
    bias = _packed(b, tuple(_BIAS[g] for g in _ONNX_ORDER), "gate biases", pad_rows=4 * hidden)
    h0, c0 = _state(b, 18, "output state"), _state(b, 19, "cell state")
    out = b.out()
    out_rec = b.rec(b.op.outputs[0])
    xin = b.tensor(x.index)
    if not time_major:  # (batch, seq, input) -> (seq, batch, input)
        xin_tm = b.new_tensor(xin + "_time_major", (seq, batch, x.shape[2]), x)
        if batch == 1:
            b.add("Reshape", [xin], [xin_tm], suffix="_to_time_major", shape=[seq, 1, x.shape[2]])
        else:
            b.add("Transpose", [xin], [xin_tm], suffix="_to_time_major", perm=[1, 0, 2])
        xin = xin_tm
    y4 = b.new_tensor(out + "_onnx", (seq, 1, batch, hidden), out_rec)
    funcs = ["Sigmoid", _CELL_ACT[act], "Tanh"]
    b.add("LSTM", [xin, w, r, bias, "", h0, c0], [y4], suffix="", hidden_size=hidden, activations=funcs,
          cell_clip=cell_clip if cell_clip > 0 else None)
    if time_major or batch == 1:
        b.add("Reshape", [y4], [out], suffix="_output", shape=list(out_rec.shape))
    else:  # (seq, 1, batch, H) -> (batch, seq, 1, H) -> (batch, seq, H)
        mid = b.new_tensor(out + "_batch_major", (batch, seq, 1, hidden), out_rec)
        b.add("Transpose", [y4], [mid], suffix="_to_batch_major", perm=[2, 0, 1, 3])
        b.add("Reshape", [mid], [out], suffix="_output", shape=list(out_rec.shape))
