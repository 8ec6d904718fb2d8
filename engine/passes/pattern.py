"""Fusions as data (DESIGN.md example 5): a rule is a chain of op names plus a rewrite function.

    @rule("conv_bn", ("Conv",), ("BatchNormalization",))
    def conv_bn(g, conv, bn):           # the matched nodes, producer first
        ...                             # add constants to g if needed
        return [new_conv]               # replacement nodes, or None when a side condition fails

    apply_rules(graph, [conv_bn, conv_relu], report)     # rewrites in place until nothing matches

A chain matches when each node's only output is read by exactly one node, the next one in the pattern,
and is not a graph output: the intermediate values disappear, so nobody else may need them. The
replacement nodes must write the last matched node's outputs (its consumers keep reading the same
names). Rules are tried in list order and the whole list is re-applied until a fixed point, so a
conv -> BN -> ReLU chain folds the BN first and then fuses the ReLU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.ir import Graph, Node
from engine.passes.base import PassReport, consumers_of
from engine.validate import topological_order

Rewrite = Callable[..., "list[Node] | None"]


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: tuple[frozenset[str], ...]  # op names allowed at each position of the chain
    rewrite: Rewrite  # rewrite(graph, *nodes) -> replacement nodes | None
    doc: str = ""

    def __call__(self, g: Graph, *nodes: Node) -> list[Node] | None:
        return self.rewrite(g, *nodes)


def rule(name: str, *pattern: tuple[str, ...]) -> Callable[[Rewrite], Rule]:
    def deco(fn: Rewrite) -> Rule:
        return Rule(name, tuple(frozenset(p) for p in pattern), fn, (fn.__doc__ or "").strip())
    return deco


def match_chain(g: Graph, first: Node, pattern: tuple[frozenset[str], ...],
                uses: dict[str, list[tuple[Node, int]]]) -> list[Node] | None:
    if first.op not in pattern[0]:
        return None
    chain = [first]
    for ops in pattern[1:]:
        prev = chain[-1]
        if len(prev.outputs) != 1 or prev.outputs[0] in g.outputs:
            return None
        readers = uses.get(prev.outputs[0], [])
        if len(readers) != 1 or readers[0][0].op not in ops:
            return None
        chain.append(readers[0][0])
    return chain


def apply_rules(g: Graph, rules: list[Rule], report: PassReport, max_rounds: int = 10_000) -> Graph:
    """Rewrite `g` in place with `rules` until none applies; counts each rewrite in `report`.

    Rules keep their priority: a sweep of the first rule that matches anywhere is applied, then the list starts
    over, as if each rewrite restarted from the first rule. One sweep applies every match of that rule whose
    nodes and intermediate values no earlier rewrite of the same sweep touched (the others wait for the next
    sweep), so a graph of N nodes costs O(N) per sweep instead of O(N) per rewrite (the C export of 4,000
    parallel branches: 23 s, not many minutes)."""
    for _ in range(max_rounds):
        if not any(_sweep(g, r, report) for r in rules):
            return g
    raise AssertionError("rewrite rules did not reach a fixed point")  # a rule that undoes another: a bug


def _sweep(g: Graph, r: Rule, report: PassReport) -> bool:
    uses = consumers_of(g)
    touched: set[str] = set()  # values read or written by a rewrite of this sweep: their `uses` are stale
    gone: set[int] = set()
    put: dict[int, list[Node]] = {}  # id(last matched node) -> its replacement
    for node in topological_order(g):
        if id(node) in gone:
            continue
        chain = match_chain(g, node, r.pattern, uses)
        if chain is None:
            continue
        # `uses` decided the match through the chain's intermediate values only: stale there -> next sweep
        inner = {v for n in chain[:-1] for v in n.outputs}
        if inner & touched or any(id(n) in gone for n in chain):
            continue
        replacement = r(g, *chain)
        if replacement is None:
            continue
        last = chain[-1]
        produced = {o for n in replacement for o in n.outputs}
        assert set(last.outputs) <= produced, f"rule {r.name} must keep writing {last.outputs}"
        touched |= {v for n in (*chain, *replacement) for v in (*n.inputs, *n.outputs) if v}
        gone |= {id(n) for n in chain}
        put[id(last)] = replacement
        report.count(r.name)
    if not put:
        return False
    nodes = []
    for n in g.nodes:  # each replacement where its last matched node was, the other matched nodes dropped
        if id(n) in put:
            nodes += put[id(n)]
        elif id(n) not in gone:
            nodes.append(n)
    g.nodes = nodes
    return True
