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
    """Rewrite `g` in place with `rules` until none applies; counts each rewrite in `report`."""
    for _ in range(max_rounds):
        if not _apply_once(g, rules, report):
            return g
    raise AssertionError("rewrite rules did not reach a fixed point")  # a rule that undoes another: a bug


def _apply_once(g: Graph, rules: list[Rule], report: PassReport) -> bool:
    uses = consumers_of(g)
    for r in rules:
        for node in topological_order(g):
            chain = match_chain(g, node, r.pattern, uses)
            if chain is None:
                continue
            replacement = r(g, *chain)
            if replacement is None:
                continue
            last = chain[-1]
            produced = {o for n in replacement for o in n.outputs}
            assert set(last.outputs) <= produced, f"rule {r.name} must keep writing {last.outputs}"
            ids = {id(n) for n in chain}
            pos = next(i for i, n in enumerate(g.nodes) if n is last)
            g.nodes = [n for n in g.nodes[:pos] if id(n) not in ids] + replacement + \
                      [n for n in g.nodes[pos + 1:] if id(n) not in ids]
            report.count(r.name)
            return True
    return False
