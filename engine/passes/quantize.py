"""quantize_int8: a float graph plus calibrated activation ranges -> an int8 graph in TFLite's scheme.

    g8, report = quantize_int8(g, ranges)       # ranges: tensor -> (lo, hi), from calibrate.collect_ranges

The conventions are those of TFLite's converter and int8 specification, which engine/int8 runs:
- activations (graph inputs and outputs included): int8, one scale and zero point per tensor, asymmetric;
  the range is widened to contain 0, scale = (hi - lo) / 255 and the zero point is TFLite's nudged
  `round(-128 - lo / scale)` clamped to [-128, 127] (so real 0 is exactly representable);
- conv / fully connected weights: int8 symmetric per output channel (axis 0 of W (M, ...) and of the
  transB=1 FC weight (out, in)), zero point 0, scale = max|w| / 127, values in [-127, 127];
- biases: int32, zero point 0, scale = input scale * weight scale[c] (per channel, axis 0);
- fixed output grids: Softmax and Sigmoid (1/256, -128), Tanh (1/128, 0);
- ops that move integers without rescaling share one grid for all their inputs and outputs: pools,
  reshapes, transposes, slices, pads, concat, max/min (TFLite's "same scale" ops); the shared range
  is the union of the members' ranges (and of any constant operand);
- other constant operands (an Add's constant) are int8 per tensor from their own min/max;
- fused activations are the clamp of the output grid; the calibrated range already follows them.
A user feeds q = clip(round(x / scale) + zero_point, -128, 127) and reads x = scale * (q - zero_point);
graph.meta["quantization"] lists both grids.
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError
from engine.int8.lower import LOWER
from engine.passes.quantize_lstm import quantize_lstms
from engine.ir import FLOAT_DTYPES, Graph, Quant, Tensor
from engine.ops import OPS, ops_where
from engine.passes.base import PassReport, fresh_name, graph_pass
from engine.passes.quantize_svdf import quantize_svdf
from engine.validate import topological_order

INT8_ACTIVATIONS = ("none", "relu", "relu6", "relu_n1_to_1")
SAME_GRID = ops_where(lambda op: op.same_grid)
FIXED_OUTPUT = {name: OPS[name].fixed_grid for name in ops_where(lambda op: op.fixed_grid is not None)}
WEIGHTED = ops_where(lambda op: op.weighted)  # weights at input 1, bias at input 2
QUANT_BOUNDARY = ops_where(lambda op: op.quant_boundary)
INT32 = np.iinfo(np.int32)
OWN_QUANTIZER = {"SVDF": quantize_svdf}   # op -> how its constant inputs and state are quantized
NEAR_ZERO = 1e-6  # the TFLite (MLIR) quantizer's kNearZeroTolerance: narrower activation ranges are widened to it
MIN_WEIGHT = 127 * float(np.finfo(np.float32).tiny)  # below it max|w| / 127 is no normal float32 scale


# ---- what int8 can run -------------------------------------------------------------------------------

def check_int8_support(graph: Graph) -> None:
    """Raise a one-line GraphError naming the first node the int8 executor could not run once quantized."""
    for node in topological_order(graph):
        op = node.op
        if op not in LOWER or op in QUANT_BOUNDARY:
            ops = ", ".join(sorted(set(LOWER) - QUANT_BOUNDARY))
            raise GraphError(f"cannot quantize to int8: no int8 kernel for {op} (int8 ops: {ops})", node.name, op)
        act = node.attrs.get("activation", "none")
        if act not in INT8_ACTIVATIONS:
            raise GraphError(f"cannot quantize to int8: fused activation '{act}' has no int8 form "
                             f"(int8 clamps {', '.join(INT8_ACTIVATIONS[1:])})", node.name, op)
        for name in node.inputs:
            t = graph.tensors.get(name) if name else None
            if t is not None and t.data is None and t.dtype not in FLOAT_DTYPES and not (op == "Gather"
                                                                                          and name == node.inputs[1]):
                raise GraphError(f"cannot quantize to int8: input '{name}' is {t.dtype}, not a float activation",
                                 node.name, op)
        if op in WEIGHTED and graph.tensors[node.inputs[1]].data is None:
            raise GraphError(f"cannot quantize to int8: weights '{node.inputs[1]}' are computed, not constant",
                             node.name, op)
        if op == "Gemm":
            a = node.attrs
            n = graph.tensors[node.outputs[0]].shape[-1]
            c = graph.tensors.get(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or (c is not None and a.get("beta", 1.0) != 1.0):
                raise GraphError("cannot quantize to int8: Gemm needs transA=0, alpha=1, beta=1 (run fuse_gemm)",
                                 node.name, op)
            if c is not None and (c.data is None or c.size != n):
                raise GraphError(f"cannot quantize to int8: bias '{c.name}' must be {n} constant values",
                                 node.name, op)
        if op == "ConvTranspose" and (node.attrs.get("layout", "NCHW") != "NHWC" or node.attrs.get("group", 1) != 1):
            raise GraphError("cannot quantize to int8: integer ConvTranspose takes TFLite's NHWC layout with group 1",
                             node.name, op)
        if op == "Resize" and node.attrs.get("mode", "nearest") != "nearest":
            raise GraphError("cannot quantize to int8: int8 Resize supports mode 'nearest' only", node.name, op)


# TFLite 16x8: the ops the int16 reference and C run (engine/int8/int16.py; data movement moves byte pairs).
INT16_OPS = ("Conv", "Gemm", "Add", "Sub", "LeakyRelu", "ConvTranspose", "Pad", "Slice", "Transpose", "Reshape",
             "Flatten", "Squeeze", "Unsqueeze")


def check_int16_support(graph: Graph) -> None:
    """check_int8_support, then the 16x8 op set: a one-line GraphError naming the first node int16 cannot run."""
    check_int8_support(graph)
    for node in topological_order(graph):
        if node.op not in INT16_OPS:
            raise GraphError(f"cannot quantize to int16 activations: no int16 kernel for {node.op} (int16 ops: "
                             f"{', '.join(sorted(INT16_OPS))})", node.name, node.op)


def int16_grid(lo: float, hi: float) -> tuple[float, int]:
    """(scale, 0): TFLite 16x8 activations are symmetric int16 with zero point 0."""
    m = max(abs(float(lo)), abs(float(hi)))
    return (float(np.float32(m / 32767.0)) if m > 1e-30 else 1.0), 0


# ---- grids -------------------------------------------------------------------------------------------

def activation_grid(lo: float, hi: float, qmin: int = -128, qmax: int = 127) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 grid covering [lo, hi] and 0, TFLite's nudged zero point."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-30:  # an all-zero tensor: any scale represents it; TFLite uses 1
        return 1.0, qmin
    scale = float(np.float32((hi - lo) / (qmax - qmin)))
    zp_from_min = qmin - lo / scale
    zp = qmin if zp_from_min < qmin else qmax if zp_from_min > qmax else int(np.round(zp_from_min))
    return scale, int(zp)


def quantize_weights(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, Quant]:
    """Symmetric per-channel int8 (narrow range [-127, 127]) along `axis`. A nonzero channel so small that
    max|w| / 127 is not a normal float32 (weights of 1e-44 gave a scale of 0, so weights of 127 on a zero grid)
    gets the smallest normal scale instead: its weights quantize to 0, as they nearly are (see
    near_zero_channels; widen_for_bias then makes room for a large bias)."""
    w = np.asarray(w, dtype=np.float64)
    other = tuple(i for i in range(w.ndim) if i != axis)
    m = np.abs(w).max(axis=other) if other else np.abs(w)
    m = np.where((m > 0) & (m < MIN_WEIGHT), MIN_WEIGHT, m)
    scale = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)  # an all-zero channel: any scale, TFLite uses 1
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(scale, np.zeros(scale.shape, np.int64), axis)


def near_zero_channels(w: np.ndarray, axis: int) -> int:
    """How many channels quantize_weights gives the smallest normal scale (nonzero, max|w| < MIN_WEIGHT)."""
    w = np.abs(np.asarray(w, dtype=np.float64))
    other = tuple(i for i in range(w.ndim) if i != axis)
    m = w.max(axis=other) if other else w
    return int(((m > 0) & (m < MIN_WEIGHT)).sum())


def quantize_bias(b: np.ndarray, input_scale: float, weight_scale: np.ndarray,
                  dtype: str = "int32") -> tuple[np.ndarray, Quant]:
    scale = (np.float64(input_scale) * weight_scale.astype(np.float64)).astype(np.float32)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if scale.size == 1 and b.size > 1:
        scale = np.full(b.shape, scale[0], np.float32)
    # int64 (16x8) is clipped to +-2**62: float64's bound below 2**63, far beyond any real accumulator
    lo, hi = (INT32.min, INT32.max) if dtype == "int32" else (-(2.0 ** 62), 2.0 ** 62)
    q = np.clip(np.rint(b / scale.astype(np.float64)), lo, hi).astype(dtype)
    return q, Quant(scale, np.zeros(scale.shape, np.int64), 0 if scale.size > 1 else None)


def widen_for_bias(w: np.ndarray, axis: int, b: np.ndarray, input_scale: float,
                   quant: Quant) -> tuple[np.ndarray, Quant, int] | None:
    """Weights requantized with larger scales on the channels whose bias would not fit int32 with room for
    the sums, or None when every channel fits.

    A near-dead channel (weights ~1e-9) under an ordinary bias gets a tiny scale, and bias / (input scale x
    weight scale) passes 2^31: the int32 bias saturates and the accumulator can wrap (the MLPerf Tiny large
    ResNet's first conv, the VWW model's pointwise layers). As the TFLite converter does (it widens the
    weight scale so the bias fits), the scale of such a channel becomes |bias| / (input scale x limit): its
    weights, far below the bias, round to small integers or zero, and the channel computes what the float
    one does to within the output grid. `limit` leaves room for every tap at the extremes, with the input
    zero point folded into the bias (the DSP kernels' form): 2^31 - 1 - 2 x taps x 127 x 256."""
    wf = np.asarray(w, np.float64)
    taps = wf.size // max(wf.shape[axis], 1)
    limit = float(INT32.max - 2 * taps * 127 * 256)
    scale = quant.scale.astype(np.float64)
    if limit <= 0 or scale.size != np.size(b):
        return None
    need = np.abs(np.asarray(b, np.float64).reshape(-1)) / (float(input_scale) * limit) * (1 + 1e-5)
    widen = need > scale
    if not widen.any():
        return None
    new = np.where(widen, need, scale).astype(np.float32)
    shape = [1] * wf.ndim
    shape[axis] = -1
    q = np.clip(np.rint(wf / new.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(new, np.zeros(new.shape, np.int64), axis), int(widen.sum())


def collapsed_range(lo: float, hi: float, names: list[str], report: PassReport) -> tuple[float, float]:
    """A calibrated range that collapsed, as the TFLite converter handles it, with a warning naming the tensors.

    A range narrower than 1e-6 but not empty (a tensor ~1e-20 on every calibration sample) is widened to 1e-6
    (the MLIR quantizer's ExpandVeryNarrowRange widens it symmetrically around its values; a range with 0 at one
    end, a ReLU output, is widened away from 0 here so that 0 stays its edge): its scale would otherwise be ~1e-23
    and the requantization multipliers of its producer and consumers leave what int32 fixed point (and the C)
    can hold. A range exactly [0, 0] (a dead ReLU: 0 on every sample) keeps the grid activation_grid gives an
    empty range (scale 1, zero point -128), now with a warning."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    which = ", ".join(f"'{n}'" for n in sorted(names)[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    if hi - lo == 0.0:
        report.count("ranges_all_zero")
        report.warnings.append(f"tensor {which} is 0 on every calibration sample (a dead activation?); it gets "
                               "the grid of an empty range (scale 1): check the calibration data")
    elif hi - lo < NEAR_ZERO:
        half = (NEAR_ZERO - (hi - lo)) / 2
        new_lo, new_hi = (0.0, NEAR_ZERO) if lo == 0.0 else (-NEAR_ZERO, 0.0) if hi == 0.0 else (lo - half, hi + half)
        report.count("ranges_widened", 1)
        report.warnings.append(f"tensor {which}: calibrated range [{lo:.3g}, {hi:.3g}] is narrower than {NEAR_ZERO:g}; "
                               f"widened to [{new_lo:.3g}, {new_hi:.3g}] (the TFLite converter's near-zero tolerance)")
        lo, hi = new_lo, new_hi
    return lo, hi


class _Groups:
    """Union-find over tensor names: members of a group share one int8 grid."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, names: list[str]) -> None:
        for b in names[1:]:
            self.parent[self.find(b)] = self.find(names[0])


# ---- the pass ----------------------------------------------------------------------------------------

def _own_constants(g: Graph) -> None:
    """Give every (node, input) that reads a float constant its own copy: its quantization depends on the node."""
    claimed: set[str] = set()
    for node in g.nodes:
        for i, name in enumerate(node.inputs):
            t = g.tensors.get(name) if name else None
            if t is None or t.data is None or t.dtype not in FLOAT_DTYPES:
                continue
            if name in claimed:
                new = fresh_name(g, f"{name}_{node.name}")
                g.tensors[new] = Tensor(new, t.shape, t.dtype, None, t.data.copy(), dict(t.meta))
                node.inputs[i] = new
                name = new
            claimed.add(name)


def _grids(g: Graph, ranges: dict[str, tuple[float, float]], acts: list[str],
           report: PassReport, grid_of=activation_grid) -> dict[str, tuple[float, int]]:
    groups = _Groups()
    fixed: dict[str, tuple[float, int]] = {}
    for node in g.nodes:
        if node.op in SAME_GRID:
            ins = node.inputs[:1] if node.op == "Gather" else [i for i in node.inputs if i]
            groups.union([t for t in (*ins, *node.outputs) if g.tensors[t].dtype in FLOAT_DTYPES])
        if node.op in FIXED_OUTPUT:
            fixed[node.outputs[0]] = FIXED_OUTPUT[node.op]
    members: dict[str, list[str]] = {}
    for name in {*acts, *groups.parent}:
        members.setdefault(groups.find(name), []).append(name)
    out: dict[str, tuple[float, int]] = {}
    for names in members.values():
        pinned = {fixed[n] for n in names if n in fixed}
        if len(pinned) > 1:
            raise GraphError(f"cannot quantize to int8: tensors {', '.join(sorted(names))} must share one grid but "
                             f"two ops fix different grids {sorted(pinned)}")
        if pinned:
            grid = pinned.pop()
        else:
            lo, hi = [], []
            for n in names:
                t = g.tensors[n]
                if t.data is not None:
                    lo.append(float(t.data.min()) if t.size else 0.0)
                    hi.append(float(t.data.max()) if t.size else 0.0)
                elif n in ranges:
                    lo.append(ranges[n][0])
                    hi.append(ranges[n][1])
                else:
                    raise GraphError(f"cannot quantize to int8: no calibration range for tensor '{n}'")
            grid = grid_of(*collapsed_range(min(lo), max(hi), names, report))
        for n in names:
            out[n] = grid
    return out


@graph_pass
def quantize_int8(graph: Graph, ranges: dict[str, tuple[float, float]],
                  activations: str = "int8") -> tuple[Graph, PassReport]:
    """Int8 graph from a float graph and activation ranges (see the module docstring for the rules).
    activations="int16": TFLite's 16x8 scheme (symmetric int16 activations, int8 weights, int64 bias)."""
    if activations not in ("int8", "int16"):
        raise GraphError(f"activations must be int8 or int16, got '{activations}'")
    g = graph
    report = PassReport("quantize_int8")
    quantized = [t.name for t in g.tensors.values() if t.quant is not None]
    if quantized:
        raise GraphError(f"cannot quantize: the graph is already quantized (tensor '{quantized[0]}' has a quant)")
    s16 = activations == "int16"
    if s16:
        check_int16_support(g)
    else:
        check_int8_support(g)
    _own_constants(g)
    acts = list(dict.fromkeys([n for n in g.inputs if g.tensors[n].dtype in FLOAT_DTYPES]
                              + [o for node in g.nodes for o in node.outputs if g.tensors[o].dtype in FLOAT_DTYPES]))
    grid_of = int16_grid if s16 else activation_grid
    grids = _grids(g, ranges, acts, report, grid_of)

    def set_grid(name: str) -> None:
        t = g.tensors[name]
        s, z = grids[name]
        q = Quant(np.array([s], np.float32), np.array([z], np.int64))
        data = None if t.data is None else q.quantize(t.data, activations)
        g.tensors[name] = Tensor(name, t.shape, activations, q, data, dict(t.meta))

    for name in acts:
        set_grid(name)
    report.count("activations", len(acts))
    quantize_lstms(g, report)  # gate-wise weights, int16 cell state (engine/passes/quantize_lstm.py)
    graph_floats: dict[str, np.ndarray] = {}  # float weights, kept for widen_for_bias
    for node in g.nodes:
        if node.op in OWN_QUANTIZER:  # ops whose constants follow their own TFLite layout (SVDF)
            OWN_QUANTIZER[node.op](g, node, ranges, report)
            continue
        for i, name in enumerate(node.inputs):
            t = g.tensors.get(name) if name else None
            if t is None or t.data is None or t.dtype not in FLOAT_DTYPES:
                continue
            if node.op in WEIGHTED and i == 1:
                graph_floats[name] = t.data
                axis = OPS[node.op].weight_channel_axis(node)
                q, quant = quantize_weights(t.data, axis)
                g.tensors[name] = Tensor(name, t.shape, "int8", quant, q, dict(t.meta))
                tiny = near_zero_channels(t.data, axis)
                if tiny:
                    report.count("weight_ranges_widened", tiny)
                    report.warnings.append(f"node '{node.name}' ({node.op}): {tiny} of {quant.scale.size} output "
                                           f"channels have weights below {MIN_WEIGHT:.3g} (float32 subnormals); their "
                                           "scale was raised to the smallest normal float32, so they quantize to 0")
                report.count("weights_per_channel")
            elif node.op in WEIGHTED and i == 2:
                continue  # after the weights: the bias scale needs them
            elif name in grids:  # a constant operand of a same-grid op
                set_grid(name)
                report.count("constants_shared_grid")
            else:
                s, z = grid_of(float(t.data.min()), float(t.data.max()))
                quant = Quant(np.array([s], np.float32), np.array([z], np.int64))
                g.tensors[name] = Tensor(name, t.shape, activations, quant, quant.quantize(t.data, activations),
                                         dict(t.meta))
                report.count("constants_per_tensor")
        if node.op in WEIGHTED and len(node.inputs) > 2 and node.inputs[2]:
            b, w, x = (g.tensors[node.inputs[k]] for k in (2, 1, 0))
            # int16x8 biases are int64: only int32 ones can run out of range
            widened = None if s16 else widen_for_bias(graph_floats[w.name], w.quant.axis, b.data,
                                                      float(x.quant.scale[0]), w.quant)
            if widened is not None:
                q, quant, n = widened
                w = g.tensors[w.name] = Tensor(w.name, w.shape, "int8", quant, q, dict(w.meta))
                report.count("weight_scales_widened_for_bias", n)
                report.warnings.append(f"node '{node.name}' ({node.op}): {n} of {quant.scale.size} output channels "
                                       "have near-zero weights under a large bias; their weight scale was widened "
                                       "so the int32 bias and accumulator fit (as the TFLite converter does)")
            bdt = "int64" if s16 else "int32"
            q, quant = quantize_bias(b.data, float(x.quant.scale[0]), w.quant.scale, bdt)
            # 1-D (n,) even for a (1, n) Gemm bias: the per-channel axis is then axis 0, as TFLite stores it.
            g.tensors[b.name] = Tensor(b.name, q.shape, bdt, quant, q, dict(b.meta))
            report.count(f"biases_{bdt}")
    g.meta["quantization"] = {
        "scheme": ("int16x8 (TFLite 16x8): per-tensor symmetric int16 activations (zero point 0), per-channel "
                   "symmetric int8 weights, int64 bias") if s16 else
                  "int8 (TFLite): per-tensor asymmetric activations, per-channel symmetric weights, int32 bias",
        "inputs": {n: _grid_record(g.tensors[n]) for n in g.inputs},
        "outputs": {n: _grid_record(g.tensors[n]) for n in g.outputs},
        "how_to_quantize_input": ("q = clip(round(x / scale), -32768, 32767)" if s16
                                  else "q = clip(round(x / scale) + zero_point, -128, 127)"),
        "how_to_dequantize_output": "x = scale * (q - zero_point)",
    }
    return g, report


def _grid_record(t: Tensor) -> dict:
    return {"dtype": t.dtype, "scale": float(t.quant.scale[0]), "zero_point": int(t.quant.zero_point[0]),
            "shape": list(t.shape)}
