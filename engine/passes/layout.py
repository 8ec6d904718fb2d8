"""to_nhwc: a channels-first float graph (zoo, ONNX) rewritten in TFLite's channels-last form.

The result has the shape the TFLite importer produces (engine/importers/tflite_ops.py): spatial ops with
layout="NHWC", conv weights (M, kH, kW, C/group) (depthwise: group=C with W (C*mult, kH, kW, 1)),
ConvTranspose W (M, kH, kW, C), 1-D convs on (N, W, C) with W (M, kW, C/group). The graph inputs that
feed spatial ops become channels last; graph.meta["input_layout"] records, per input, the original and new
layout and `perm` (new = np.transpose(original, perm)); graph.meta["output_layout"] does the same for 4-D/3-D
outputs that stay channels last.

How: every activation carries a permutation relative to its original tensor (none = unchanged). Spatial
ops ask for channels last; element-wise ops pass the permutation on (constants are transposed to match);
ops with axes (Concat, Softmax, Split, Slice, Pad, Reduce*, Gather, Squeeze, Transpose) get their axes
remapped. Reshape/Flatten keep their meaning when the permutation does not reorder non-unit dims
(GlobalAveragePool -> Flatten); a channels-last (N, H, W, C) flattened into fully connected layers
permutes the FC weight columns instead; anything else gets a Transpose back to the original layout
first, so every graph converts, with Transposes only where the layout truly has to change.

    g2, report = to_nhwc(g)
    y2 = run_graph(g2, {"input": x.transpose(0, 2, 3, 1)})     # == run_graph(g, {"input": x}) transposed
"""
from __future__ import annotations

import numpy as np

from engine.ir import FLOAT_DTYPES, Graph, Node, Quant, Tensor, unique_name
from engine.ops import ops_where
from engine.ops.base import norm_axis
from engine.passes.base import PassReport, consumers_of, graph_pass
from engine.passes.conditions import channels_last
from engine.passes.noops import bypass, is_noop
from engine.validate import topological_order

CL = {3: (0, 2, 1), 4: (0, 2, 3, 1)}  # channels first -> channels last
LAYOUT_NAMES = {3: ("NCW", "NWC"), 4: ("NCHW", "NHWC")}
SPATIAL = ops_where(lambda op: op.has_layout)  # converted to NHWC
UNARY = ops_where(lambda op: op.elementwise == "unary")  # layout-agnostic: the permutation passes through
BINARY = ops_where(lambda op: op.elementwise == "binary")
QUANT_BOUNDARY = ops_where(lambda op: op.quant_boundary)
Perm = tuple[int, ...]


def _permuted(convert):
    """A converter for nodes whose first input may be permuted: with the input in its original layout the node is
    emitted unchanged, else convert(self, node, p) gets that input's permutation p."""
    def run(self, node: Node) -> None:
        p = self.perm.get(node.inputs[0])
        if p is None:
            return self.emit(node)
        return convert(self, node, p)
    return run


def _identity(p: Perm | None) -> bool:
    return p is None or tuple(p) == tuple(range(len(p)))


def _drop(p: Perm, removed: set[int]) -> Perm | None:
    """The permutation left when the original axes `removed` disappear (reductions, squeeze)."""
    left = [a for a in p if a not in removed]
    rank = sorted(left)
    q = tuple(rank.index(a) for a in left)
    return None if _identity(q) else q


class _Converter:
    def __init__(self, g: Graph, report: PassReport):
        self.g, self.report = g, report
        self.shape0 = {n: t.shape for n, t in g.tensors.items()}  # shapes in the original layout
        self.perm: dict[str, Perm] = {}  # tensor -> p with new = transpose(original, p)
        self.colperm: dict[str, np.ndarray] = {}  # flattened channels-last tensor -> original column of each
        self.nodes: list[Node] = []
        self.cache: dict[tuple, str] = {}
        self.taken = set(g.tensors) | {n.name for n in g.nodes}
        self.uses = consumers_of(g)

    def fresh(self, base: str) -> str:
        return unique_name(base, self.taken)

    def rank(self, name: str) -> int:
        return len(self.shape0[name])

    # ---- conversions ----------------------------------------------------------------------------
    def convert(self, name: str, target: Perm | None) -> str:
        """A tensor holding np.transpose(original(name), target); target None = the original layout."""
        if not name:
            return name
        r = self.rank(name)
        cur = self.perm.get(name) or tuple(range(r))
        tgt = tuple(target) if target is not None else tuple(range(r))
        if cur == tgt:
            return name
        assert name not in self.colperm, name  # only Gemm reads those, and it undoes the column order
        key = (name, tgt)
        if key in self.cache:
            return self.cache[key]
        step = tuple(cur.index(a) for a in tgt)  # new = transpose(current, step)
        t = self.g.tensors[name]
        out = self.fresh(f"{name}_{'nhwc' if tgt == CL.get(r) else 'perm' if not _identity(tgt) else 'nchw'}")
        if t.data is not None:
            q = t.quant
            if q is not None and q.axis is not None:
                q = Quant(q.scale, q.zero_point, step.index(q.axis))
            data = np.ascontiguousarray(np.transpose(t.data, step))
            self.g.tensors[out] = Tensor(out, data.shape, t.dtype, q, data, dict(t.meta))
            self.report.count("constant_transposed")
        else:
            self.g.tensors[out] = Tensor(out, tuple(t.shape[i] for i in step), t.dtype, t.quant)
            self.nodes.append(Node("Transpose", self.fresh(f"{name}_transpose"), [name], [out], {"perm": list(step)}))
            self.report.count("transpose_inserted")
        self.shape0[out] = self.shape0[name]
        if not _identity(tgt):
            self.perm[out] = tgt
        self.cache[key] = out
        return out

    def const_like(self, name: str, p: Perm, rank: int) -> str:
        """A constant operand of a broadcasting op, lifted to `rank` and permuted like its partner."""
        t = self.g.tensors[name]
        key = (name, p, "broadcast")
        if key not in self.cache:
            data = t.data.reshape((1,) * (rank - t.data.ndim) + t.data.shape)
            data = np.ascontiguousarray(np.transpose(data, p))
            out = self.fresh(f"{name}_nhwc")
            quant = t.quant if t.quant is not None and t.quant.axis is None else None
            self.g.tensors[out] = Tensor(out, data.shape, t.dtype, quant, data, dict(t.meta))
            self.shape0[out] = data.shape
            self.cache[key] = out
            self.report.count("constant_transposed")
        return self.cache[key]

    # ---- node handlers ----------------------------------------------------------------------------
    def emit(self, node: Node, out_perm: Perm | None = None) -> None:
        self.nodes.append(node)
        for o in node.outputs:
            if not _identity(out_perm):
                self.perm[o] = tuple(out_perm)

    def fallback(self, node: Node) -> None:
        """Run the node in the original layout: channels-last inputs get a Transpose back."""
        node.inputs = [self.convert(i, None) for i in node.inputs]
        self.emit(node)

    def spatial(self, node: Node) -> None:
        x = node.inputs[0]
        r = self.rank(x)
        if (node.attrs.get("layout", "NCHW") != "NCHW" or r not in CL
                or (node.op == "ConvTranspose" and (r != 4 or node.attrs.get("group", 1) != 1))):
            return self.fallback(node)
        cl = CL[r]
        # BN statistics and biases are per channel: unchanged.
        node.inputs = [self.convert(x, cl)] + [self.convert(i, None) for i in node.inputs[1:]]
        if node.op == "Conv":  # (M, C/g, kH, kW) -> (M, kH, kW, C/g): the activation's own permutation
            node.inputs[1] = self.convert(node.inputs[1], cl)
        elif node.op == "ConvTranspose":  # (C, M, kH, kW) -> (M, kH, kW, C)
            node.inputs[1] = self.convert(node.inputs[1], (1, 2, 3, 0))
        node.attrs["layout"] = "NHWC"
        self.report.count(f"{node.op}_to_NHWC")
        self.emit(node, cl)

    def unary(self, node: Node) -> None:
        p = self.perm.get(node.inputs[0])
        node.inputs = node.inputs[:1] + [self.convert(i, None) for i in node.inputs[1:]]
        self.emit(node, p)

    def binary(self, node: Node) -> None:
        r = self.rank(node.outputs[0])
        acts = [i for i in node.inputs if i and self.g.tensors[i].data is None]
        p = next((self.perm[i] for i in acts if i in self.perm and self.rank(i) == r), None)
        if p is None or any(self.rank(i) != r for i in acts):
            return self.fallback(node)
        node.inputs = [self.const_like(i, p, r) if self.g.tensors[i].data is not None else self.convert(i, p)
                       for i in node.inputs]
        self.emit(node, p)

    def with_axis(self, node: Node) -> None:
        """Softmax, LogSoftmax, Split, Concat: one axis attribute, output in the input's permutation."""
        r = self.rank(node.outputs[0])
        ins = [i for i in node.inputs if i]
        p = next((self.perm[i] for i in ins if i in self.perm and self.rank(i) == r), None)
        if p is None:
            return self.fallback(node)
        node.inputs = [self.convert(i, p) if self.g.tensors[i].data is None else self.const_like(i, p, r)
                       for i in ins]
        default = 1 if node.op == "Concat" else (0 if node.op == "Split" else -1)
        node.attrs["axis"] = p.index(norm_axis(int(node.attrs.get("axis", default)), r))
        self.emit(node, p)

    @_permuted
    def slice_(self, node: Node, p: Perm) -> None:
        r = len(p)
        axes = node.attrs.get("axes") or list(range(len(node.attrs["starts"])))
        node.attrs["axes"] = [p.index(norm_axis(int(a), r)) for a in axes]
        self.emit(node, p)

    @_permuted
    def pad(self, node: Node, p: Perm) -> None:
        r, pads = len(p), list(node.attrs["pads"])
        node.attrs["pads"] = [pads[p[i]] for i in range(r)] + [pads[r + p[i]] for i in range(r)]
        self.emit(node, p)

    @_permuted
    def reduce(self, node: Node, p: Perm) -> None:
        r = len(p)
        axes = node.attrs.get("axes")
        if not axes:
            if node.attrs.get("noop_with_empty_axes", 0):
                return self.emit(node, p)
            axes = list(range(r))
        axes = {norm_axis(int(a), r) for a in axes}
        node.attrs["axes"] = sorted(p.index(a) for a in axes)
        keep = node.attrs.get("keepdims", 1)
        self.emit(node, p if keep else _drop(p, axes))

    def gather(self, node: Node) -> None:
        p = self.perm.get(node.inputs[0])
        if p is None or self.rank(node.inputs[1]) > 1:
            return self.fallback(node)
        axis = norm_axis(int(node.attrs.get("axis", 0)), len(p))
        node.inputs[1] = self.convert(node.inputs[1], None)
        node.attrs["axis"] = p.index(axis)
        self.emit(node, p if self.rank(node.inputs[1]) == 1 else _drop(p, {axis}))

    @_permuted
    def squeeze(self, node: Node, p: Perm) -> None:
        shape, r = self.shape0[node.inputs[0]], len(p)
        axes = node.attrs.get("axes")
        axes = {norm_axis(int(a), r) for a in axes} if axes else {i for i, d in enumerate(shape) if d == 1}
        node.attrs["axes"] = sorted(p.index(a) for a in axes)
        self.emit(node, _drop(p, axes))

    @_permuted
    def transpose(self, node: Node, p: Perm) -> None:
        tp = node.attrs.get("perm") or list(range(len(p)))[::-1]
        node.attrs["perm"] = [p.index(norm_axis(int(a), len(p))) for a in tp]
        self.emit(node)  # the output is in the original layout

    @_permuted
    def reshape(self, node: Node, p: Perm) -> None:
        x, y = node.inputs[0], node.outputs[0]
        xs, ys = self.shape0[x], self.shape0[y]
        moved = [a for a in p if xs[a] != 1]
        flat = Node("Reshape", node.name, [x], [y], {"shape": list(ys)}, node.meta)
        if moved == sorted(moved):  # same element order: e.g. (N, 1, 1, C) from a global pool
            self.report.count("reshape_kept")
            return self.emit(flat)
        readers = self.uses.get(y, [])
        if (len(ys) == 2 and ys[0] == xs[0] and p[0] == 0 and y not in self.g.outputs and readers
                and all(n.op == "Gemm" and slot == 0 and not n.attrs.get("transA", 0)
                        and self.g.tensors[n.inputs[1]].data is not None for n, slot in readers)):
            # Flattening (N, H, W, C) orders features (h, w, c); the FC weights follow (c, h, w).
            idx = np.arange(int(np.prod(xs[1:]))).reshape(xs[1:]).transpose([a - 1 for a in p[1:]]).ravel()
            self.colperm[y] = idx
            self.report.count("fc_weights_permuted")
            return self.emit(flat)
        self.fallback(node)

    def gemm(self, node: Node) -> None:
        a = node.inputs[0]
        node.inputs = [node.inputs[0]] + [self.convert(i, None) for i in node.inputs[1:]]
        if a in self.colperm:
            idx = self.colperm[a]
            w = self.g.tensors[node.inputs[1]]
            data = w.data[:, idx] if node.attrs.get("transB", 0) else w.data[idx, :]
            name = self.fresh(f"{node.inputs[1]}_nhwc")
            out_axis = 0 if node.attrs.get("transB", 0) else 1
            q = w.quant if w.quant is None or w.quant.axis in (None, out_axis) else None  # columns moved, units not
            self.g.tensors[name] = Tensor(name, data.shape, w.dtype, q, np.ascontiguousarray(data), dict(w.meta))
            self.shape0[name] = data.shape
            node.inputs[1] = name
        else:
            node.inputs[0] = self.convert(a, None)
        self.emit(node)

    def visit(self, node: Node) -> None:
        op = node.op
        if op in SPATIAL:
            return self.spatial(node)
        if op in UNARY or (op in QUANT_BOUNDARY and self._per_tensor(node)):
            return self.unary(node)
        handler = _HANDLERS.get(op)
        if handler is not None:
            return handler(self, node)
        self.fallback(node)

    def _per_tensor(self, node: Node) -> bool:
        return all(self.g.tensors[t].quant is None or self.g.tensors[t].quant.axis is None
                   for t in (*node.inputs, *node.outputs) if t)


_HANDLERS = {op: _Converter.binary for op in BINARY}
_HANDLERS.update({"Softmax": _Converter.with_axis, "LogSoftmax": _Converter.with_axis, "Concat": _Converter.with_axis,
                  "Split": _Converter.with_axis, "Slice": _Converter.slice_, "Pad": _Converter.pad,
                  "ReduceMean": _Converter.reduce, "ReduceSum": _Converter.reduce, "ReduceMax": _Converter.reduce,
                  "ReduceMin": _Converter.reduce, "Gather": _Converter.gather, "Squeeze": _Converter.squeeze,
                  "Transpose": _Converter.transpose, "Reshape": _Converter.reshape, "Flatten": _Converter.reshape,
                  "Gemm": _Converter.gemm})


def _channels_first_inputs(g: Graph) -> list[str]:
    """Graph inputs read by a channels-first spatial op: those become channels last."""
    uses = consumers_of(g)
    out = []
    for name in g.inputs:
        t = g.tensors[name]
        if len(t.shape) not in CL or t.dtype not in FLOAT_DTYPES or name in g.outputs:
            continue
        readers = uses.get(name, [])
        if any(n.op in SPATIAL and slot == 0 and n.attrs.get("layout", "NCHW") == "NCHW" for n, slot in readers):
            out.append(name)
    return out


def _layout_record(r: int, p: Perm) -> dict:
    return {"from": LAYOUT_NAMES[r][0], "to": LAYOUT_NAMES[r][1], "perm": list(p)}


@graph_pass(ensures=(channels_last(SPATIAL),))
def to_nhwc(graph: Graph) -> tuple[Graph, PassReport]:
    """Channels-first spatial ops -> channels last; see the module docstring."""
    g = graph
    report = PassReport("to_nhwc")
    cv = _Converter(g, report)
    input_layout = {}
    for name in _channels_first_inputs(g):
        t = g.tensors[name]
        p = CL[len(t.shape)]
        cv.perm[name] = p
        g.tensors[name] = Tensor(name, tuple(t.shape[i] for i in p), t.dtype, t.quant, None, dict(t.meta))
        input_layout[name] = _layout_record(len(t.shape), p)
    for node in topological_order(g):
        cv.visit(node)
    output_layout = {}
    for name in g.outputs:
        p = cv.perm.get(name)
        if p is None:
            continue
        r = cv.rank(name)
        if CL.get(r) == p:
            output_layout[name] = _layout_record(r, p)
            continue
        # Any other order goes back to the original layout under the output's own name.
        tmp = cv.fresh(f"{name}_perm")
        for n in cv.nodes:
            n.inputs = [tmp if t == name else t for t in n.inputs]
            n.outputs = [tmp if t == name else t for t in n.outputs]
        g.tensors[tmp] = g.tensors[name]
        inv = [int(i) for i in np.argsort(p)]
        cv.nodes.append(Node("Transpose", cv.fresh(f"{name}_to_original"), [tmp], [name], {"perm": inv}))
        report.count("transpose_inserted")
    g.nodes = cv.nodes
    for node in list(g.nodes):  # Transposes that became identities (a Transpose undoing the conversion)
        if node.op == "Transpose" and is_noop(g, node) and bypass(g, node):
            report.count("transpose_removed")
    if input_layout:
        g.meta["input_layout"] = {**g.meta.get("input_layout", {}), **input_layout}
    if output_layout:
        g.meta["output_layout"] = {**g.meta.get("output_layout", {}), **output_layout}
    return g, report
