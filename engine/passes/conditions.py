"""Conditions passes declare on their input (requires) or result (ensures); the pass contract checks them.

    @graph_pass(ensures=(channels_last(SPATIAL),))
    def to_nhwc(graph): ...

Each is a `Condition(text, violation)` whose `violation(graph)` returns the first node breaking it, so a
broken promise is a GraphError naming the pass and the node (engine.passes.base.Contract).
"""
from __future__ import annotations

from engine.ir import Graph, Node
from engine.passes.base import Condition


def _nchw_with_nhwc_form(g: Graph, n: Node) -> bool:
    """A channels-first node that has a channels-last kernel: 1-D/2-D spatial ops, except ConvTranspose other
    than 2-D with group 1 (no channels-last form; to_nhwc keeps those channels first on purpose)."""
    if n.attrs.get("layout", "NCHW") != "NCHW" or not n.inputs or n.inputs[0] not in g.tensors:
        return False
    rank = len(g.tensors[n.inputs[0]].shape)
    if n.op == "ConvTranspose":
        return rank == 4 and n.attrs.get("group", 1) == 1
    return rank in (3, 4)


def channels_last(ops) -> Condition:
    """No op of `ops` that can run channels last is left channels first (NCHW / NCW)."""
    ops = frozenset(ops)
    return Condition("no NCHW-only op remains (every spatial op with a channels-last form runs NHWC)",
                     lambda g: next((n for n in g.nodes if n.op in ops and _nchw_with_nhwc_form(g, n)), None))
