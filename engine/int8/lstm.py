"""int8 LSTM as tflite-micro runs UNIDIRECTIONAL_SEQUENCE_LSTM (kernels/lstm_eval*.cc): int8 input and hidden
state, int8 weights, int32 bias, int16 gates and cell state.

Per step and gate: gate = act(sat16(FC(x) + FC(h))), each FC requantized to int16 at scale 2^-12 (Q3.12),
the activation (integer sigmoid / tanh, 2^-15 out) from TFLite's 256-entry table; then
c = sat16(f*c) + sat16(i*g) (saturating), clipped to the quantized cell_clip, and h = int8(o * tanh(c)).
The record is computed once (LstmParams); the numpy kernel below and the C emitter read it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.int8.lower import builds
from engine.int8.params import frozen_array
from engine.int8.prepare import prepares
from engine.int8.quant_math import multiply_by_quantized_multiplier, quantize_multiplier
from engine.int8.readers import act_grid, const_data, node_error, tensor_of
from engine.ir import Graph, Node

GATE_SCALE = 2.0 ** -12  # the FC outputs feeding the activations (Q3.12), as tflite-micro fixes them
ACT_SCALE = 2.0 ** -15   # sigmoid / tanh outputs (Q0.15)
# tensorflow/lite/kernels/internal/common.h sigmoid_table_uint16: round(65536 / (1 + exp(-i / 32))), i = 0..255
SIGMOID_TABLE = frozen_array(np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535],
    dtype=np.int64))
GATES = ("i", "f", "c", "o")  # the record's order (TFLite's); the IR packs W, R, B as ONNX's i, o, f, c
_ONNX_BLOCK = {"i": 0, "o": 1, "f": 2, "c": 3}


@dataclass(frozen=True, eq=False)
class LstmParams:
    """One forward LSTM layer. Per gate (i, f, c, o): input and recurrent weights (int8, symmetric), the input
    FC's bias (int32, or zeros) and the two FCs' multipliers/shifts to Q3.12. Inter-gate muls as TFLite's
    ArithmeticParams (multiplier, shift); the hidden state's zero point; tanh's input scaling for the cell."""

    hidden: int
    x_zp: int
    h_zp: int
    w_x: np.ndarray         # (4, H, input) int8, gates i, f, c, o
    w_h: np.ndarray         # (4, H, H) int8
    bias: np.ndarray        # (4, H) int32
    fc_x: np.ndarray        # (4, 2) multiplier, shift of the input FCs
    fc_h: np.ndarray        # (4, 2) of the recurrent FCs
    forget_mul: tuple[int, int]
    input_mul: tuple[int, int]
    output_mul: tuple[int, int]
    cell_tanh: tuple[int, int]  # (input_multiplier, input_left_shift) of tanh on the cell state
    cell_clip: int              # quantized cell clip (0: none)
    n_outputs: int              # the node's outputs (Y [, Y_h, Y_c]); the new h and c states follow them


def _pow2_log(node: Node, scale: float) -> int:
    p = int(round(np.log2(scale)))
    if abs(2.0 ** p - scale) > 1e-6 * scale:
        raise node_error(node, f"the int16 cell state's scale {scale:g} must be a power of two (tflite-micro)")
    return p


def tanh_scaling(scale_power: int) -> tuple[int, int]:
    """(input_multiplier, input_left_shift) for reference_integer_ops::Tanh on Q(15 + power) data (lstm_eval.cc)."""
    shift = (15 + scale_power) - 3
    mult = 0
    if shift < 0:
        shift, mult = -shift, 3
    return (3 << shift, 0) if mult == 0 else (mult, shift)


@prepares("LSTM")
def prepare_lstm(g: Graph, node: Node) -> LstmParams:
    a = node.attrs
    if (a.get("direction", "forward") != "forward" or a.get("clip") is not None or a.get("input_forget", 0)
            or list(a.get("activations") or ["Sigmoid", "Tanh", "Tanh"]) != ["Sigmoid", "Tanh", "Tanh"]):
        raise node_error(node, "the int8 LSTM runs tflite-micro's form only: forward, sigmoid/tanh/tanh, no clip "
                               "or input_forget")
    if any(i < len(node.inputs) and node.inputs[i] for i in (4, 7)):
        raise node_error(node, "the int8 LSTM has no sequence_lens or peepholes")
    x, w, r = tensor_of(g, node, 0), tensor_of(g, node, 1), tensor_of(g, node, 2)
    h0, c0, y = tensor_of(g, node, 5), tensor_of(g, node, 6), tensor_of(g, node, 0, True)
    sx, zx = act_grid(node, x)
    sh, zh = act_grid(node, h0)
    sy, zy = act_grid(node, y)
    if (sy, zy) != (sh, zh):
        raise node_error(node, "the output must share the hidden state's scale and zero point")
    if c0.dtype != "int16" or c0.quant is None:
        raise node_error(node, "the int8 LSTM needs an int16 quantized cell state")
    sc = float(c0.quant.scale[0])
    power = _pow2_log(node, sc)
    n = w.shape[1] // 4
    wd, rd = const_data(node, w, "input weights"), const_data(node, r, "recurrent weights")
    if w.dtype != "int8" or r.dtype != "int8" or w.quant is None or r.quant is None:
        raise node_error(node, "the int8 LSTM needs int8 quantized weights")
    bt = g.tensors.get(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    bd = None if bt is None else const_data(node, bt, "bias")
    w_x, w_h, bias, fc_x, fc_h = [], [], [], [], []
    for gate in GATES:
        rows = slice(_ONNX_BLOCK[gate] * n, (_ONNX_BLOCK[gate] + 1) * n)
        for q, what in ((w.quant, "input"), (r.quant, "recurrent")):
            sc_rows = q.scale[rows] if q.scale.size > 1 else q.scale
            if np.any(sc_rows != sc_rows[0]) or np.any((q.zero_point[rows] if q.zero_point.size > 1 else
                                                        q.zero_point) != 0):
                raise node_error(node, f"the {what} weights of gate {gate} need one symmetric scale")
        swx = float((w.quant.scale[rows] if w.quant.scale.size > 1 else w.quant.scale)[0])
        swh = float((r.quant.scale[rows] if r.quant.scale.size > 1 else r.quant.scale)[0])
        w_x.append(wd[0, rows])
        w_h.append(rd[0, rows])
        bias.append(np.zeros(n, np.int64) if bd is None else np.asarray(bd[0, rows], np.int64))
        # GetQuantizedConvolutionMultipler: double(input scale) * double(weight scale) / double(output scale)
        fc_x.append(quantize_multiplier(float(np.float32(sx)) * swx / GATE_SCALE))
        fc_h.append(quantize_multiplier(float(np.float32(sh)) * swh / GATE_SCALE))
    if bd is not None and np.any(bd[0, 4 * n:] != 0):
        raise node_error(node, "the int8 LSTM has no recurrent bias (Rb must be zero)")
    clip = float(a.get("cell_clip") or 0.0)
    qclip = int(min(max(clip / sc, -32768.0), 32767.0)) if clip > 0 else 0
    return LstmParams(
        n, zx, zh, frozen_array(np.stack(w_x).astype(np.int64)), frozen_array(np.stack(w_h).astype(np.int64)),
        frozen_array(np.stack(bias)), frozen_array(np.array(fc_x, np.int64)), frozen_array(np.array(fc_h, np.int64)),
        quantize_multiplier(ACT_SCALE * sc / sc), quantize_multiplier(ACT_SCALE * ACT_SCALE / sc),
        quantize_multiplier(ACT_SCALE * ACT_SCALE / float(np.float32(sh))), tanh_scaling(power), qclip,
        len(node.outputs))


# ---- numpy kernel --------------------------------------------------------------------------------------------

def _sat16(v):
    return np.clip(v, -32768, 32767)


def sigmoid16(x, mult: int = 3, shift: int = 0) -> np.ndarray:
    """reference_integer_ops::Logistic(int16): Q3.12 in (times 3/4 via `mult`), Q0.15 out."""
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = (np.asarray(x, np.int64) * mult + rnd) >> shift
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    res = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    res = np.where(v >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
    return (res >> 10).astype(np.int64)


def tanh16(x, mult: int, shift: int) -> np.ndarray:
    """reference_integer_ops::Tanh(int16) with lstm_eval's (input_multiplier, input_left_shift)."""
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    v = (np.asarray(x, np.int64) * mult + rnd) >> shift
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[idx], SIGMOID_TABLE[idx + 1]
    res = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    res = np.where(v >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
    return (res >> 8).astype(np.int64)


def _mul(a, b, mul: tuple[int, int], lo: int, hi: int, zp: int = 0) -> np.ndarray:
    return np.clip(zp + multiply_by_quantized_multiplier(a * b, mul[0], mul[1]), lo, hi)


def lstm_step(p: LstmParams, x, h, c):
    """One time step for a (batch, input) int8 slice; returns the new (h int8 values, c int16 values)."""
    gates = []
    for k, gate in enumerate(GATES):
        acc_x = (x - p.x_zp) @ p.w_x[k].T + p.bias[k]
        acc_h = (h - p.h_zp) @ p.w_h[k].T
        v = _sat16(_sat16(multiply_by_quantized_multiplier(acc_x, *p.fc_x[k]))
                   + _sat16(multiply_by_quantized_multiplier(acc_h, *p.fc_h[k])))
        gates.append(tanh16(v, 3, 0) if gate == "c" else sigmoid16(v))
    i, f, g, o = gates
    c = _sat16(_mul(f, c, p.forget_mul, -32768, 32767) + _mul(i, g, p.input_mul, -32768, 32767))
    if p.cell_clip > 0:
        c = np.clip(c, -p.cell_clip, p.cell_clip)
    h = _mul(tanh16(c, *p.cell_tanh), o, p.output_mul, -128, 127, p.h_zp)
    return h, c


@builds(LstmParams)
def _lstm_kernel(p: LstmParams):
    def run(xs):
        x = np.asarray(xs[0], np.int64)  # (seq, batch, input)
        h = np.asarray(xs[5], np.int64)[0]
        c = np.asarray(xs[6], np.int64)[0]
        y = np.zeros((x.shape[0], 1, x.shape[1], p.hidden), np.int8)
        for t in range(x.shape[0]):
            h, c = lstm_step(p, x[t], h, c)
            y[t, 0] = h
        h, c = h[None].astype(np.int8), c[None].astype(np.int16)
        return [y, h, c][:p.n_outputs] + [h, c]
    return run
