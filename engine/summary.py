"""Per-layer cost records: an interpreter over the graph that yields frozen, summable records.

    records = layer_records(graph)       # one LayerRecord per node, in execution order
    totals = sum_records(records)        # Cost of the whole graph
The CLI's `inspect` and the app render these; the profiler (memory, latency) extends them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.ir import Graph
from engine.ops import Cost
from engine.validate import infer_shapes, node_context, topological_order


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

    def to_json(self) -> dict:
        d = asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shape"] = list(self.output_shape)
        return d


def _shaped(graph: Graph) -> Graph:
    ok = all(t in graph.tensors for n in graph.nodes for t in n.outputs)
    return graph if ok else infer_shapes(graph)


def layer_records(graph: Graph) -> list[LayerRecord]:
    g = _shaped(graph)
    out = []
    for node in topological_order(g):
        ctx = node_context(g, node)
        c = ctx.op.cost(ctx)
        first = ctx.outs[0]
        out.append(LayerRecord(node.name, node.op,
                               tuple(t.shape for t in ctx.ins if t is not None and t.data is None),
                               first.shape, first.dtype, int(c.macs), int(c.flops), int(c.params)))
    return out


def sum_records(records: list[LayerRecord]) -> Cost:
    total = Cost()
    for r in records:
        total = total + Cost(r.macs, r.flops, r.params)
    return total


def graph_cost(graph: Graph) -> Cost:
    return sum_records(layer_records(graph))
