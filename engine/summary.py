"""Per-layer cost records: an interpreter over the graph that yields frozen, summable records.

    records = layer_records(graph)       # one LayerRecord per node, in execution order
    totals = sum_records(records)        # Cost of the whole graph
The CLI's `inspect` and the app render these; the profiler (memory, latency) extends them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.ir import Graph, is_variable
from engine.ops import Cost
from engine.validate import infer_shapes, node_context, topological_order


# A float32 scale and an int32 zero point (or multiplier/shift) per channel, as int8 runtimes store them.
QUANT_PARAM_BYTES = 8


@dataclass(frozen=True)
class LayerRecord:
    name: str
    op: str
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...]
    output_dtype: str
    macs: int
    flops: int
    params: int
    weight_bytes: int = 0  # constants this layer reads from flash (a constant shared by layers counts once)
    weight_bytes_by_dtype: tuple[tuple[str, int], ...] = ()
    quant_bytes: int = 0  # per-channel/per-tensor scale + zero point of its quantized constants
    input_bytes: int = 0  # activations it reads
    output_bytes: int = 0  # activations it writes
    state_bytes: int = 0  # variable tensors it keeps between invocations (persistent RAM, not flash)

    def to_json(self) -> dict:
        d = asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shape"] = list(self.output_shape)
        d["weight_bytes_by_dtype"] = dict(self.weight_bytes_by_dtype)
        return d


def _shaped(graph: Graph) -> Graph:
    ok = all(t in graph.tensors for n in graph.nodes for t in n.outputs)
    return graph if ok else infer_shapes(graph)


def layer_records(graph: Graph) -> list[LayerRecord]:
    g = _shaped(graph)
    out = []
    seen_consts: set[str] = set()
    for node in topological_order(g):
        ctx = node_context(g, node)
        c = ctx.op.cost(ctx)
        first = ctx.outs[0]
        by_dtype: dict[str, int] = {}
        quant = state = 0
        for t in ctx.ins:
            if t is None or t.data is None or t.name in seen_consts:
                continue
            seen_consts.add(t.name)
            if is_variable(t):  # RAM: its initial value is no weight
                state += t.nbytes
                continue
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.nbytes
            if t.quant is not None and t.dtype != "int32":  # int32 bias scales derive from input x weight
                quant += QUANT_PARAM_BYTES * t.quant.scale.size
        acts_in = [t for t in ctx.ins if t is not None and t.data is None]
        out.append(LayerRecord(node.name, node.op, tuple(t.shape for t in acts_in), first.shape, first.dtype,
                               int(c.macs), int(c.flops), int(c.params), sum(by_dtype.values()),
                               tuple(sorted(by_dtype.items())), quant, sum(t.nbytes for t in acts_in),
                               sum(t.nbytes for t in ctx.outs), state))
    return out


def sum_records(records: list[LayerRecord]) -> Cost:
    total = Cost()
    for r in records:
        total = total + Cost(r.macs, r.flops, r.params)
    return total


def graph_cost(graph: Graph) -> Cost:
    return sum_records(layer_records(graph))
