"""ONNX int8 models -> the IR's int8 graphs, the form TFLite int8 files import to (integer activation
tensors with Quant, int8 weights, int32 biases), so that they run on the int8 kernels and export to C.

Two ways onnxruntime.quantization writes an int8 model, both handled:
- QOperator: QLinearConv and QLinearMatMul (ai.onnx), QLinearAdd, QLinearGlobalAveragePool and QGemm
  (com.microsoft) carry the grids of their operands as inputs; their handlers below emit the IR's Conv,
  Gemm, Add, GlobalAveragePool with the grids on the tensors. Ops between them that only move integers
  (MaxPool, Flatten, Reshape ...) import as themselves; their output takes the grid of their input.
- QDQ: every float op sits between DequantizeLinear (of its inputs) and QuantizeLinear (of its output).
  `int8_form` folds the pairs: a DequantizeLinear's consumers read its integer input, an op writes the
  integer output of the QuantizeLinear that follows it. The QuantizeLinear after a graph input and the
  DequantizeLinear before a graph output stay (float edges, as TFLite's QUANTIZE first / DEQUANTIZE last).
  Only a model whose every op folds this way becomes integer; a partly quantized one (some op with float
  operands or output) keeps its QDQ nodes and runs as a float graph that simulates the quantization.
uint8 activations (and uint8 weights) are moved to int8 exactly: q - 128 with zero point - 128 stands for
the same real value, and QuantizeLinear/DequantizeLinear at the edges give the same floats.
Dynamic quantization (quantize_dynamic: ConvInteger/MatMulInteger fed by DynamicQuantizeLinear) is read as
weight-only quantization by onnx_dynamic.py. Softmax/Sigmoid/Tanh outputs on another grid than the int8
kernels' fixed one (onnxruntime's softmax: 1/255) get a requantization after the kernel.
"""
from __future__ import annotations

import numpy as np

from engine.importers.onnx_context import HandlerTable
from engine.ir import FLOAT_DTYPES, INT_DTYPES, Graph, Quant, Tensor
from engine.ops import ops_where

HANDLERS = HandlerTable()       # ai.onnx QLinear* ops
MS_HANDLERS = HandlerTable()    # com.microsoft QLinear* ops onnxruntime's quantizer writes
handles, ms_handles = HANDLERS.handles, MS_HANDLERS.handles
SAME_GRID = ops_where(lambda op: op.same_grid)
_BOUNDARY = ("QuantizeLinear", "DequantizeLinear")


# ---- QOperator handlers -------------------------------------------------------------------------------

def _grid(imp, n, i: int, what: str, axis: int | None = None) -> Quant:
    """The Quant of inputs i (scale) and i+1 (zero point); per channel along `axis` when the scale is 1-D."""
    scale = np.ravel(imp.cin(n, i, f"{what} scale", True)).astype(np.float32)
    zp = imp.cin(n, i + 1, f"{what} zero point")
    zpv = np.zeros(scale.shape, np.int64) if zp is None else np.ravel(zp).astype(np.int64)
    if zpv.size != scale.size:
        raise imp.fail(n, f"{what}: {scale.size} scales but {zpv.size} zero points")
    if scale.size == 0 or not np.all(np.isfinite(scale)) or scale.min() <= 0:
        raise imp.fail(n, f"{what} scale must be positive and finite, got {scale.tolist()[:4]}")
    if scale.size > 1:
        if axis is None:
            raise imp.fail(n, f"{what} must be quantized per tensor (one scale), got {scale.size} scales")
        return Quant(scale, zpv, axis)
    return Quant(scale, zpv)


def _operand(imp, n, i: int, q: Quant, what: str) -> str:
    """Input i read on grid q: a constant gets q (a copy when another node reads it on another grid); an
    activation must carry q already, or takes it when a grid-less integer op (MaxPool, Flatten) made it."""
    name = n.ins[i]
    t = imp.ir_tensor(name)
    if t.dtype not in ("int8", "uint8"):
        raise imp.fail(n, f"{what} '{name}' is {t.dtype}; {n.op} takes int8 or uint8")
    if t.data is not None:
        if t.quant is not None and t.quant != q:
            name = imp.new_const(name, t.data)
            t = imp.ir_tensor(name)
        t.quant = q
        return name
    if t.quant is None:
        t.quant = q
    elif not _same_grid(t.quant, q):
        raise imp.fail(n, f"{what} '{name}' has scale {float(t.quant.scale[0]):g}, zero point "
                          f"{int(t.quant.zero_point[0])}, but {n.op} reads it with scale {float(q.scale[0]):g}, "
                          f"zero point {int(q.zero_point[0])}")
    return name


def _same_grid(a: Quant, b: Quant) -> bool:
    return (a.axis == b.axis and a.scale.shape == b.scale.shape and np.allclose(a.scale, b.scale, rtol=1e-6, atol=0)
            and np.array_equal(a.zero_point, b.zero_point))


def _bias(imp, n, i: int, q: Quant) -> list[str]:
    """The int32 bias of QLinearConv / QGemm: zero point 0, scale input scale x weight scale (implicit)."""
    if i >= len(n.ins) or not n.ins[i]:
        return []
    b = imp.cin(n, i, "bias")
    if b.dtype != np.int32:
        raise imp.fail(n, f"bias '{n.ins[i]}' must be int32, got {b.dtype}")
    name = imp.new_const(n.ins[i], b)
    imp.ir_tensor(name).quant = q
    return [name]


@handles("QLinearConv")
def _qlinear_conv(imp, n, a):
    r = imp.rank(n.ins[0])
    if r not in (3, 4):
        raise imp.fail(n, f"a {r - 2}-D QLinearConv is not supported (1-D and 2-D)")
    imp.cin(n, 3, "weight", True)  # int8 convolutions take constant filters
    qx, qw = _grid(imp, n, 1, "input"), _grid(imp, n, 4, "weight", axis=0)
    x, w = _operand(imp, n, 0, qx, "input"), _operand(imp, n, 3, qw, "weight")
    bias = _bias(imp, n, 8, Quant(qx.scale[0] * qw.scale, np.zeros(qw.scale.size, np.int64), qw.axis))
    attrs = imp.attrs(n, a, ("auto_pad", "pads", "strides", "dilations", "kernel_shape", "group"))
    imp.emit(n, "Conv", [x, w, *bias], n.outs[:1], attrs, quant=_grid(imp, n, 6, "output"))


def _gemm(imp, n, x: str, w: str, qx: Quant, qw: Quant, bias: list[str], y: Quant, trans_b: int) -> None:
    if imp.rank(x) != 2 or imp.rank(w) != 2 or w not in imp.consts:
        raise imp.fail(n, f"{n.op} runs as a fully connected layer: a 2-D input times constant 2-D weights "
                          f"(got {list(imp.shape(x))} x {list(imp.shape(w))}{'' if w in imp.consts else ', computed'})")
    imp.emit(n, "Gemm", [x, w, *bias], n.outs[:1], {"transB": trans_b}, quant=y)


@handles("QLinearMatMul")
def _qlinear_matmul(imp, n, a):
    imp.attrs(n, a)
    imp.cin(n, 3, "B", True)  # the weights: constant
    qa, qb = _grid(imp, n, 1, "A"), _grid(imp, n, 4, "B", axis=1)
    x, w = _operand(imp, n, 0, qa, "A"), _operand(imp, n, 3, qb, "B")
    _gemm(imp, n, x, w, qa, qb, [], _grid(imp, n, 6, "output"), 0)


@ms_handles("QGemm")
def _qgemm(imp, n, a):
    a = dict(a)
    trans_b = int(a.pop("transB", 0))
    if int(a.pop("transA", 0)) or float(a.pop("alpha", 1.0)) != 1.0:
        raise imp.fail(n, "QGemm needs transA=0 and alpha=1 (a fully connected layer)")
    imp.attrs(n, a)
    if len(n.ins) < 8 or not n.ins[7]:
        raise imp.fail(n, "QGemm without an output scale gives float32; only int8 outputs are supported")
    qa, qb = _grid(imp, n, 1, "A"), _grid(imp, n, 4, "B", axis=0 if trans_b else 1)
    x, w = _operand(imp, n, 0, qa, "A"), _operand(imp, n, 3, qb, "B")
    bias = _bias(imp, n, 6, Quant(qa.scale[0] * qb.scale, np.zeros(qb.scale.size, np.int64), qb.axis))
    _gemm(imp, n, x, w, qa, qb, bias, _grid(imp, n, 7, "output"), trans_b)


@ms_handles("QLinearAdd", "QLinearMul")
def _qlinear_binary(imp, n, a):
    imp.attrs(n, a)
    ins = [_operand(imp, n, 0, _grid(imp, n, 1, "A"), "A"), _operand(imp, n, 3, _grid(imp, n, 4, "B"), "B")]
    imp.emit(n, n.op[len("QLinear"):], ins, n.outs[:1], quant=_grid(imp, n, 6, "output"))


@ms_handles("QLinearSoftmax")
def _qlinear_softmax(imp, n, a):
    a = dict(a)
    axis, opset = int(a.pop("axis", -1)), int(a.pop("opset", 13))
    imp.attrs(n, a)
    r = imp.rank(n.ins[0])
    if opset < 13 and axis % r != r - 1:  # before opset 13 Softmax flattened to 2-D around the axis
        raise imp.fail(n, f"opset-{opset} softmax over axis {axis} of a rank-{r} input is not supported (last axis)")
    x = _operand(imp, n, 0, _grid(imp, n, 1, "input"), "input")
    imp.emit(n, "Softmax", [x], n.outs[:1], {"axis": axis}, quant=_grid(imp, n, 3, "output"))


@ms_handles("QLinearGlobalAveragePool")
def _qlinear_gap(imp, n, a):
    a = dict(a)
    if int(a.pop("channels_last", 0)):
        raise imp.fail(n, "channels_last=1 is not supported (NCHW only)")
    imp.attrs(n, a)
    x = _operand(imp, n, 0, _grid(imp, n, 1, "input"), "input")
    imp.emit(n, "GlobalAveragePool", [x], n.outs[:1], quant=_grid(imp, n, 3, "output"))


# ---- after the import: QDQ folding, grids through integer moves, uint8 -> int8 ----------------------

def _consumers(g: Graph) -> dict[str, list]:
    use: dict[str, list] = {}
    for node in g.nodes:
        for x in node.inputs:
            if x:
                use.setdefault(x, []).append(node)
    return use


def _is_int_act(g: Graph, name: str) -> bool:
    t = g.tensors.get(name)
    return t is not None and t.data is None and t.dtype in INT_DTYPES


def _fold_qdq(g: Graph) -> Graph | None:
    """The QDQ graph with its pairs folded, or None when some op would keep float operands or outputs."""
    out = g.copy()
    use = _consumers(out)
    alias: dict[str, str] = {}
    keep = []
    for node in out.nodes:
        x = node.inputs[0] if node.inputs else ""
        if node.op == "DequantizeLinear" and node.outputs[0] not in out.outputs:
            alias[node.outputs[0]] = x  # consumers read the integer tensor (activation or constant)
            continue
        keep.append(node)
    out.nodes = keep
    producer = {o: node for node in out.nodes for o in node.outputs}
    keep = []
    for node in out.nodes:
        x = node.inputs[0] if node.inputs else ""
        src = producer.get(x)
        if (node.op == "QuantizeLinear" and src is not None and src.op not in _BOUNDARY
                and len(use.get(x, [])) == 1 and x not in out.outputs):
            src.outputs = [node.outputs[0] if o == x else o for o in src.outputs]
            continue
        keep.append(node)
    out.nodes = keep
    for node in out.nodes:
        node.inputs = [alias.get(x, x) for x in node.inputs]
    for node in out.nodes:
        if node.op in _BOUNDARY:
            continue
        names = [x for x in node.inputs if x] + node.outputs
        if any(out.tensors[x].dtype in FLOAT_DTYPES for x in names):
            return None  # a partly quantized model: keep it as the float graph that simulates QDQ
    _drop_unused(out)
    return out


def _drop_unused(g: Graph) -> None:
    used = {x for node in g.nodes for x in (*node.inputs, *node.outputs) if x} | set(g.inputs) | set(g.outputs)
    for name in [n for n in g.tensors if n not in used]:
        del g.tensors[name]


def _propagate_grids(g: Graph) -> None:
    """Integer outputs of ops that only move values (MaxPool, Flatten ...) take their input's grid."""
    for node in g.nodes:
        if node.op not in SAME_GRID or not node.inputs or not _is_int_act(g, node.inputs[0]):
            continue
        q = g.tensors[node.inputs[0]].quant
        for o in node.outputs:
            t = g.tensors[o]
            if t.quant is None and t.dtype in INT_DTYPES and q is not None:
                t.quant = Quant(q.scale.copy(), q.zero_point.copy(), q.axis)


def _matmul_to_gemm(g: Graph) -> None:
    """An integer MatMul of a 2-D activation by constant 2-D weights (QDQ MatMul) is a fully connected layer."""
    for node in g.nodes:
        if node.op != "MatMul" or len(node.inputs) != 2:
            continue
        x, w = (g.tensors[i] for i in node.inputs)
        if _is_int_act(g, x.name) and w.data is not None and w.quant is not None and len(x.shape) == 2 \
                and len(w.shape) == 2:
            node.op, node.attrs = "Gemm", {"transB": 0}
            node.meta["onnx_op"] = "MatMul"


def _uint8_to_int8(g: Graph) -> bool:
    """Move every quantized uint8 tensor inside the graph to int8 (same real values); True when one moved.
    Graph inputs and outputs keep the file's type (onnxruntime's models have float edges anyway)."""
    moved = False
    for t in g.tensors.values():
        if t.dtype != "uint8" or t.quant is None or t.name in g.inputs or t.name in g.outputs:
            continue
        t.quant = Quant(t.quant.scale, t.quant.zero_point - 128, t.quant.axis)
        if t.data is not None:
            t.data = (t.data.astype(np.int16) - 128).astype(np.int8)
        t.dtype, moved = "int8", True
    for node in g.nodes:
        if node.op == "QuantizeLinear" and node.attrs.get("dtype") == "uint8" and g.tensors[node.outputs[0]].dtype == "int8":
            node.attrs["dtype"] = "int8"
    return moved


def _weight_only(g: Graph) -> Graph:
    """A float graph whose only integers are constants read through DequantizeLinear (weight-only, dynamic
    quantization): the consumers read the quantized constants directly, the IR's form for such weights
    (TFLite dynamic-range files import so; PTQ and export start from their float values)."""
    dq = {n.outputs[0]: n.inputs[0] for n in g.nodes if n.op == "DequantizeLinear" and n.inputs
          and g.tensors[n.inputs[0]].data is not None and n.outputs[0] not in g.outputs}
    if not dq:
        return g
    out = g.copy()
    out.nodes = [n for n in out.nodes if not (n.op == "DequantizeLinear" and n.outputs[0] in dq)]
    for n in out.nodes:
        n.inputs = [dq.get(x, x) for x in n.inputs]
    _drop_unused(out)
    return out


def _fixed_grids(g: Graph) -> None:
    """Softmax, Sigmoid, Tanh: the int8 kernels write TFLite's fixed grid (Softmax 1/256, -128); a file whose
    quantizer chose another (onnxruntime: 1/255) gets the kernel's grid and a requantization to the file's."""
    from engine.ir import Node, unique_name
    from engine.ops import OPS

    taken_t, taken_n = set(g.tensors), {n.name for n in g.nodes}
    nodes = []
    for node in g.nodes:
        nodes.append(node)
        grid = getattr(OPS.get(node.op), "fixed_grid", None)
        y = g.tensors.get(node.outputs[0]) if node.outputs else None
        if grid is None or y is None or y.dtype != "int8" or y.quant is None or y.data is not None:
            continue
        if float(y.quant.scale[0]) == grid[0] and int(y.quant.zero_point[0]) == grid[1]:
            continue
        mid = unique_name(f"{y.name}_fixed_grid", taken_t)
        g.tensors[mid] = Tensor(mid, y.shape, "int8", Quant([grid[0]], [grid[1]]))
        node.outputs = [mid, *node.outputs[1:]]
        nodes.append(Node("QuantizeLinear", unique_name(f"{node.name}/requantize", taken_n), [mid], [y.name],
                          {"dtype": "int8"}))
    g.nodes = nodes


def _uint8_edges(g: Graph) -> None:
    """uint8 graph inputs and outputs read or written by integer ops get a requantization to or from int8
    (same scale, zero point - 128: exact), so the ops between run on int8 and the edges keep the file's type."""
    from engine.ir import Node, unique_name

    taken_t, taken_n = set(g.tensors), {n.name for n in g.nodes}
    heads, tails = [], []
    for name in g.inputs:
        t = g.tensors[name]
        users = [n for n in g.nodes if name in n.inputs and n.op not in _BOUNDARY]
        if t.dtype != "uint8" or t.quant is None or not users:
            continue
        new = unique_name(f"{name}_int8", taken_t)
        g.tensors[new] = Tensor(new, t.shape, "int8", Quant(t.quant.scale, t.quant.zero_point - 128, t.quant.axis))
        for n in users:
            n.inputs = [new if x == name else x for x in n.inputs]
        heads.append(Node("QuantizeLinear", unique_name(f"{name}/to_int8", taken_n), [name], [new], {"dtype": "int8"}))
    for name in g.outputs:
        t = g.tensors[name]
        src = next((n for n in g.nodes if name in n.outputs), None)
        if t.dtype != "uint8" or t.quant is None or src is None or src.op in _BOUNDARY:
            continue
        new = unique_name(f"{name}_int8", taken_t)
        g.tensors[new] = Tensor(new, t.shape, "int8", Quant(t.quant.scale, t.quant.zero_point - 128, t.quant.axis))
        src.outputs = [new if o == name else o for o in src.outputs]
        tails.append(Node("QuantizeLinear", unique_name(f"{name}/to_uint8", taken_n), [new], [name], {"dtype": "uint8"}))
    g.nodes = heads + g.nodes + tails


def int8_form(g: Graph) -> Graph:
    """The IR int8 graph of an ONNX int8 model (QDQ folded, uint8 moved to int8); a weight-only quantized
    graph reads its integer constants directly; other graphs unchanged."""
    if not any(_is_int_act(g, t) and g.tensors[t].quant is not None for t in g.tensors):
        return _weight_only(g)
    dq_outs = {node.outputs[0] for node in g.nodes if node.op == "DequantizeLinear"}
    has_qdq = any(node.op not in _BOUNDARY and dq_outs.intersection(node.inputs) for node in g.nodes)
    if has_qdq:
        folded = _fold_qdq(g)
        if folded is None:
            return g
        g = folded
    else:
        g = g.copy()
    _propagate_grids(g)
    _matmul_to_gemm(g)
    _uint8_edges(g)
    if _uint8_to_int8(g):
        g.meta["onnx_uint8"] = "uint8 tensors were moved to int8 (q - 128, zero point - 128): same real values"
    _fixed_grids(g)
    return g
