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
        if op == "Resize" and node.attrs.get("mode", "nearest") != "nearest":
            raise GraphError("cannot quantize to int8: int8 Resize supports mode 'nearest' only", node.name, op)


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
    """Symmetric per-channel int8 (narrow range [-127, 127]) along `axis`."""
    w = np.asarray(w, dtype=np.float64)
    other = tuple(i for i in range(w.ndim) if i != axis)
    m = np.abs(w).max(axis=other) if other else np.abs(w)
    scale = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)  # an all-zero channel: any scale, TFLite uses 1
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(scale, np.zeros(scale.shape, np.int64), axis)


def quantize_bias(b: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> tuple[np.ndarray, Quant]:
    scale = (np.float64(input_scale) * weight_scale.astype(np.float64)).astype(np.float32)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if scale.size == 1 and b.size > 1:
        scale = np.full(b.shape, scale[0], np.float32)
    q = np.clip(np.rint(b / scale.astype(np.float64)), INT32.min, INT32.max).astype(np.int32)
    return q, Quant(scale, np.zeros(scale.shape, np.int64), 0 if scale.size > 1 else None)


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


def _grids(g: Graph, ranges: dict[str, tuple[float, float]], acts: list[str]) -> dict[str, tuple[float, int]]:
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
            grid = activation_grid(min(lo), max(hi))
        for n in names:
            out[n] = grid
    return out


@graph_pass
def quantize_int8(graph: Graph, ranges: dict[str, tuple[float, float]]) -> tuple[Graph, PassReport]:
    """Int8 graph from a float graph and activation ranges (see the module docstring for the rules)."""
    g = graph
    report = PassReport("quantize_int8")
    quantized = [t.name for t in g.tensors.values() if t.quant is not None]
    if quantized:
        raise GraphError(f"cannot quantize: the graph is already quantized (tensor '{quantized[0]}' has a quant)")
    check_int8_support(g)
    _own_constants(g)
    acts = list(dict.fromkeys([n for n in g.inputs if g.tensors[n].dtype in FLOAT_DTYPES]
                              + [o for node in g.nodes for o in node.outputs if g.tensors[o].dtype in FLOAT_DTYPES]))
    grids = _grids(g, ranges, acts)

    def set_grid(name: str) -> None:
        t = g.tensors[name]
        s, z = grids[name]
        q = Quant(np.array([s], np.float32), np.array([z], np.int64))
        data = None if t.data is None else q.quantize(t.data, "int8")
        g.tensors[name] = Tensor(name, t.shape, "int8", q, data, dict(t.meta))

    for name in acts:
        set_grid(name)
    report.count("activations", len(acts))
    quantize_lstms(g, report)  # gate-wise weights, int16 cell state (engine/passes/quantize_lstm.py)
    for node in g.nodes:
        if node.op in OWN_QUANTIZER:  # ops whose constants follow their own TFLite layout (SVDF)
            OWN_QUANTIZER[node.op](g, node, ranges, report)
            continue
        for i, name in enumerate(node.inputs):
            t = g.tensors.get(name) if name else None
            if t is None or t.data is None or t.dtype not in FLOAT_DTYPES:
                continue
            if node.op in WEIGHTED and i == 1:
                axis = OPS[node.op].weight_channel_axis(node)
                q, quant = quantize_weights(t.data, axis)
                g.tensors[name] = Tensor(name, t.shape, "int8", quant, q, dict(t.meta))
                report.count("weights_per_channel")
            elif node.op in WEIGHTED and i == 2:
                continue  # after the weights: the bias scale needs them
            elif name in grids:  # a constant operand of a same-grid op
                set_grid(name)
                report.count("constants_shared_grid")
            else:
                s, z = activation_grid(float(t.data.min()), float(t.data.max()))
                quant = Quant(np.array([s], np.float32), np.array([z], np.int64))
                g.tensors[name] = Tensor(name, t.shape, "int8", quant, quant.quantize(t.data, "int8"), dict(t.meta))
                report.count("constants_per_tensor")
        if node.op in WEIGHTED and len(node.inputs) > 2 and node.inputs[2]:
            b, w, x = (g.tensors[node.inputs[k]] for k in (2, 1, 0))
            q, quant = quantize_bias(b.data, float(x.quant.scale[0]), w.quant.scale)
            # 1-D (n,) even for a (1, n) Gemm bias: the per-channel axis is then axis 0, as TFLite stores it.
            g.tensors[b.name] = Tensor(b.name, q.shape, "int32", quant, q, dict(b.meta))
            report.count("biases_int32")
    g.meta["quantization"] = {
        "scheme": "int8 (TFLite): per-tensor asymmetric activations, per-channel symmetric weights, int32 bias",
        "inputs": {n: _grid_record(g.tensors[n]) for n in g.inputs},
        "outputs": {n: _grid_record(g.tensors[n]) for n in g.outputs},
        "how_to_quantize_input": "q = clip(round(x / scale) + zero_point, -128, 127)",
        "how_to_dequantize_output": "x = scale * (q - zero_point)",
    }
    return g, report


def _grid_record(t: Tensor) -> dict:
    return {"dtype": t.dtype, "scale": float(t.quant.scale[0]), "zero_point": int(t.quant.zero_point[0]),
            "shape": list(t.shape)}
