"""Receptive-field geometry of a patch stage (MCUNetV2): which region of every stage tensor each output patch needs.

    shape = stage_shape(graph, ("conv1", "dw1", "pw1"))      # ScheduleError when the nodes cannot form a stage
    geo = PatchGeometry(shape, (3, 3))
    geo.region("dw1_out", i, j)        # (row0, row1, col0, col1) of the tile patch (i, j) computes / reads
    geo.pads("dw1", i, j)              # (pad_top, pad_left) the kernel gets on that tile
    geo.tile_elems("dw1_out")          # elements of the largest tile (the tile buffer's size)
    geo.macs_factor("dw1")             # patch MACs / layer MACs of that node (>= 1: the halos)

A stage is a sub-graph from ONE entry tensor to the split node's output: Conv (regular, grouped, depthwise, any
stride, dilation and asymmetric padding), MaxPool/AveragePool, the element-wise unary ops with int8 tables and Add
of two stage tensors of the same shape (MobileNetV2's residuals), all NHWC (NCHW float graphs get the
memory geometry; the int8 reference and the C refuse them). The split output's rows and columns are
divided as evenly as possible into `grid` (rows, cols); walking the stage backwards, each node's output region
gives the input region its windows touch, clipped to the tensor; a tensor read by several nodes gets the union
(the hull) of their needs. Rows and columns are independent (every op here is separable), so the geometry is kept
per axis: patch (i, j) is row band i x column band j, and the search costs O(nodes x grid) per axis.

A kernel run on a tile sees `in_h x in_w` = the tile and pad_top/left = where the image border (or the tile's
larger-than-needed origin, then negative) lies relative to its first output row: taps outside the tile are
exactly the taps outside the image, which the kernels skip (TFLite's padding with the zero point).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from engine.errors import GraphError
from engine.ir import Graph
from engine.memory.lifetimes import INPLACE_OPS
from engine.memory.schedule import ScheduleError
from engine.ops import ops_where
from engine.validate import node_context

WINDOW_OPS = ("Conv", "MaxPool", "AveragePool")
UNARY_OPS = tuple(sorted(ops_where(lambda op: op.int8_table)))   # Relu, Relu6, Clip, ... (tables in int8)
BINARY_OPS = ("Add",)
STAGE_OPS = (*WINDOW_OPS, *UNARY_OPS, *BINARY_OPS)


@dataclass(frozen=True)
class NodeGeom:
    name: str
    op: str
    inputs: tuple[str, ...]        # activation inputs (stage tensors or the entry)
    output: str
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right

    @property
    def is_window(self) -> bool:
        return self.op in WINDOW_OPS


@dataclass(frozen=True)
class StageShape:
    nodes: tuple[NodeGeom, ...]    # in execution order; the last one is the split node
    entry: str                     # the one tensor from outside the stage
    split_out: str
    hw: dict                       # tensor -> (H, W)
    channels: dict                 # tensor -> C
    batch: int
    node_macs: dict                # node -> layer-by-layer MACs
    layout: str = "NHWC"           # of every stage tensor (the int8 reference and the C take NHWC)

    @property
    def internal(self) -> tuple[str, ...]:
        """Tensors that exist only inside the stage (every node output but the split output)."""
        return tuple(n.output for n in self.nodes[:-1])


def _pointwise(graph: Graph, node) -> bool:
    """An element-wise op of one activation whose other inputs are scalars (or BatchNormalization's per-channel
    constants): spatially pointwise, so it runs on a tile unchanged. Float graphs' memory plans need it (BN, Cast);
    int8 graphs reach the reference and the C only with table ops (Relu, ...), which both refuse otherwise."""
    if node.op not in INPLACE_OPS or node.op in BINARY_OPS:
        return False
    acts = [t for t in node.inputs if t and graph.tensors[t].data is None]
    consts = [graph.tensors[t] for t in node.inputs if t and graph.tensors[t].data is not None]
    return len(acts) == 1 and (node.op == "BatchNormalization" or all(t.size == 1 for t in consts))


def _fail(node, msg: str) -> ScheduleError:
    return ScheduleError(f"schedule.patch: node '{node.name}' ({node.op}): {msg}")


def stage_shape(graph: Graph, names) -> StageShape:
    """Check that `names` (execution order) form a patch stage of the shape-inferred `graph`; ScheduleError naming
    the node and what is wrong otherwise."""
    names = tuple(names)
    if not names:
        raise ScheduleError("schedule.patch.nodes: empty")
    by_name = {n.name: n for n in graph.nodes}
    for nm in names:
        if nm not in by_name:
            raise ScheduleError(f"schedule.patch: no node '{nm}' in the graph")
    if len(set(names)) != len(names):
        raise ScheduleError("schedule.patch.nodes: a node is listed twice")
    produced: dict[str, str] = {}
    entries: list[str] = []
    geoms, hw, ch, macs, batch = [], {}, {}, {}, None

    def spatial(node, tname):
        nonlocal batch
        t = graph.tensors[tname]
        if len(t.shape) != 4:
            raise _fail(node, f"tensor '{tname}' is {len(t.shape)}-D; a patch stage takes 4-D NHWC tensors")
        if batch is None:
            batch = t.shape[0]
        if t.shape[0] != 1:
            raise _fail(node, f"tensor '{tname}' has batch {t.shape[0]}; a patch stage runs batch 1")
        if layout == "NHWC":
            hw[tname], ch[tname] = (t.shape[1], t.shape[2]), t.shape[3]
        else:   # NCHW (float models): the memory geometry is the same, the int8 reference and C refuse it
            hw[tname], ch[tname] = (t.shape[2], t.shape[3]), t.shape[1]

    first = by_name[names[0]]
    if first.op not in WINDOW_OPS:   # the window op fixes the layout every later element-wise op keeps
        raise _fail(first, f"a stage starts with a Conv or a pooling layer, not {first.op}")
    layout = first.attrs.get("layout", "NCHW")
    for nm in names:
        node = by_name[nm]
        if node.op not in STAGE_OPS and not _pointwise(graph, node):
            raise _fail(node, f"{node.op} cannot run patch by patch (stage ops: {', '.join(STAGE_OPS)} and "
                              "element-wise ops of one activation)")
        if len(node.outputs) != 1:
            raise _fail(node, "a stage node has one output")
        if node.op in WINDOW_OPS and node.attrs.get("layout", "NCHW") != layout:
            raise _fail(node, f"layout {node.attrs.get('layout', 'NCHW')} in a {layout} stage")
        acts = [t for t in node.inputs if t and graph.tensors[t].data is None]
        want = 2 if node.op in BINARY_OPS else 1
        if len(acts) != want:
            raise _fail(node, f"expected {want} activation input(s), got {len(acts)}")
        for t in acts:
            if t not in produced and t not in entries:
                entries.append(t)
            spatial(node, t)
        spatial(node, node.outputs[0])
        ctx = node_context(graph, node)
        macs[nm] = int(ctx.op.cost(ctx).macs)
        if node.op in WINDOW_OPS:
            from engine.int8.readers import spatial_2d   # the int8 kernels' own reading of the attributes
            kernel = None
            if node.op == "Conv":
                w = graph.tensors[node.inputs[1]].shape
                kernel = tuple(w[1:-1])
            try:
                _, layout, rank, k, s, d, pads, out = spatial_2d(graph, node, kernel)
            except GraphError as e:
                raise _fail(node, str(e)) from None
            if rank != 2 or layout not in ("NHWC", "NCHW"):
                raise _fail(node, "a patch stage takes 2-D spatial layers, NHWC or NCHW")
            if node.op == "AveragePool" and ctx.attr("count_include_pad") and any(pads):
                raise _fail(node, "count_include_pad with padding cannot be split into patches")
            if tuple(out) != hw[node.outputs[0]]:
                raise _fail(node, f"output {list(out)} does not match tensor '{node.outputs[0]}'")
            geoms.append(NodeGeom(nm, node.op, tuple(acts), node.outputs[0], tuple(k), tuple(s), tuple(d),
                                  tuple(pads)))
        else:
            if any(hw[t] != hw[node.outputs[0]] or ch[t] != ch[node.outputs[0]] for t in acts):
                raise _fail(node, "element-wise inputs must have the output's shape (no broadcasting in a stage)")
            geoms.append(NodeGeom(nm, node.op, tuple(acts), node.outputs[0]))
        produced[node.outputs[0]] = nm
    if len(entries) != 1:
        raise ScheduleError(f"schedule.patch: the stage reads {len(entries)} tensors from outside "
                            f"({', '.join(entries[:3])}); it must start from one entry tensor")
    if entries[0] in graph.outputs:
        raise ScheduleError(f"schedule.patch: the entry tensor '{entries[0]}' is a graph output")
    split_out = by_name[names[-1]].outputs[0]
    # Internal tensors must stay inside the stage: read by stage nodes only, never graph outputs.
    inside = set(names)
    for node in graph.nodes:
        if node.name in inside:
            continue
        for t in node.inputs:
            if t in produced and t != split_out:
                raise ScheduleError(f"schedule.patch: tensor '{t}' of stage node '{produced[t]}' is read by "
                                    f"'{node.name}' outside the stage; only the split output may leave it")
    for t in graph.outputs:
        if t in produced and t != split_out:
            raise ScheduleError(f"schedule.patch: stage tensor '{t}' is a graph output")
    for g in geoms[:-1]:
        if not any(g.output in h.inputs for h in geoms):
            raise ScheduleError(f"schedule.patch: the output of '{g.name}' is not used by the stage")
    return StageShape(tuple(geoms), entries[0], split_out, hw, ch, batch or 1, macs, layout)


def bands(size: int, n: int) -> list[tuple[int, int]]:
    """`size` rows cut into `n` bands as evenly as possible (the larger ones first)."""
    q, r = divmod(size, n)
    out, a = [], 0
    for i in range(n):
        b = a + q + (1 if i < r else 0)
        out.append((a, b))
        a = b
    return out


def regions_1d(shape: StageShape, axis: int, n: int) -> dict[str, list[tuple[int, int]]]:
    """For each stage tensor, the [start, stop) along `axis` (0: rows, 1: cols) of each of the n bands."""
    size = shape.hw[shape.split_out][axis]
    if n > size:
        raise ScheduleError(f"schedule.patch.grid: {n} patches along {'HW'[axis]} but '{shape.split_out}' has "
                            f"{size}")
    reg: dict[str, list[tuple[int, int]]] = {shape.split_out: bands(size, n)}
    for g in reversed(shape.nodes):
        out = reg[g.output]
        for t in g.inputs:
            full = shape.hw[t][axis]
            if g.is_window:
                k, s, d, p = g.kernel[axis], g.strides[axis], g.dilations[axis], g.pads[axis]
                need = [(max(0, a * s - p), min(full, (b - 1) * s - p + (k - 1) * d + 1)) for a, b in out]
            else:
                need = list(out)
            prev = reg.get(t)
            reg[t] = need if prev is None else [(min(x[0], y[0]), max(x[1], y[1])) for x, y in zip(prev, need)]
    for t, rs in reg.items():
        for i, (a, b) in enumerate(rs):
            if b <= a:
                raise ScheduleError(f"schedule.patch: patch band {i} of '{t}' along {'HW'[axis]} is empty "
                                    "(a window entirely in padding)")
    return reg


class PatchGeometry:
    """Regions and kernel pads of every stage tensor and node for one grid."""

    def __init__(self, shape: StageShape, grid: tuple[int, int]):
        self.shape, self.grid = shape, (int(grid[0]), int(grid[1]))
        self.rows = regions_1d(shape, 0, self.grid[0])
        self.cols = regions_1d(shape, 1, self.grid[1])

    @property
    def patches(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.grid[0]) for j in range(self.grid[1])]

    def region(self, tensor: str, i: int, j: int) -> tuple[int, int, int, int]:
        (r0, r1), (c0, c1) = self.rows[tensor][i], self.cols[tensor][j]
        return r0, r1, c0, c1

    def pads(self, node: NodeGeom, i: int, j: int) -> tuple[int, int]:
        """(pad_top, pad_left) of a window node run on its input tile for patch (i, j); negative when the tile
        starts before the first row/col this node needs (a tile shared with a consumer that needs more)."""
        x = node.inputs[0]
        (a_in, _), (oa, _) = self.rows[x][i], self.rows[node.output][i]
        (c_in, _), (oc, _) = self.cols[x][j], self.cols[node.output][j]
        return (a_in + node.pads[0] - oa * node.strides[0], c_in + node.pads[1] - oc * node.strides[1])

    def tile_elems(self, tensor: str) -> int:
        """Elements of the largest tile of `tensor` (rows and columns maximize independently)."""
        h = max(b - a for a, b in self.rows[tensor])
        w = max(b - a for a, b in self.cols[tensor])
        return self.shape.batch * h * w * self.shape.channels[tensor]

    def tile_elems_at(self, tensor: str, i: int, j: int) -> int:
        r0, r1, c0, c1 = self.region(tensor, i, j)
        return self.shape.batch * (r1 - r0) * (c1 - c0) * self.shape.channels[tensor]

    def macs_factor(self, node: NodeGeom) -> float:
        """Output pixels computed over all patches / pixels of the whole output."""
        h, w = self.shape.hw[node.output]
        rows = sum(b - a for a, b in self.rows[node.output])
        cols = sum(b - a for a, b in self.cols[node.output])
        return rows * cols / (h * w)

    @cached_property
    def patch_macs(self) -> int:
        """MACs of the stage run patch by patch (every output pixel of every tile)."""
        total = 0
        for g in self.shape.nodes:
            h, w = self.shape.hw[g.output]
            rows = sum(b - a for a, b in self.rows[g.output])
            cols = sum(b - a for a, b in self.cols[g.output])
            total += self.shape.node_macs[g.name] * rows * cols // (h * w)
        return total

    @property
    def layer_macs(self) -> int:
        return sum(self.shape.node_macs.values())

    @property
    def extra_macs(self) -> int:
        return self.patch_macs - self.layer_macs
