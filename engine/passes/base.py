"""What every pass shares: the report, the before/after contract, graph printing and small graph edits.

    @graph_pass
    def my_pass(graph) -> tuple[Graph, PassReport]: ...       # receives a validated private copy

    @graph_pass(ensures=(Condition("no Dropout remains", lambda g: first_node(g, "Dropout")),))
    def drop_dropout(graph) -> tuple[Graph, PassReport]: ...  # the contract checks the condition afterwards

    g2, report = my_pass(g, verbose=True)                       # g is never touched; prints g2 after
    g3, reports = run_passes(g, [fold_batchnorm, fuse_activations], verbose=True)

The contract (onnx-ir's PassBase, DESIGN.md example 4), one implementation for the passes here and the
compression actions (engine.compress): the input is checked with `infer_shapes` (a bad graph is a GraphError
before any work) and against the step's preconditions, the step works on that deep copy so the caller's graph
can never be mutated, and the result is checked again (structure, attributes, shapes, postconditions) and keeps
the graph's input and output names, which callers and the app key their data by. A condition that does not
hold is a GraphError naming the step and the node.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor, dtype_of
from engine.validate import infer_shapes, topological_order

PassFn = Callable[..., "tuple[Graph, PassReport]"]


@dataclass
class PassReport:
    """What a pass did: counts per kind of change, free-text notes, and warnings a user should see."""

    name: str
    changes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, key: str, n: int = 1) -> None:
        self.changes[key] = self.changes.get(key, 0) + n

    @property
    def changed(self) -> bool:
        return any(self.changes.values())

    def summary(self) -> str:
        what = ", ".join(f"{k} x{v}" for k, v in sorted(self.changes.items())) or "no change"
        return f"{self.name}: {what}"

    def to_json(self) -> dict:
        return {"name": self.name, "changes": dict(self.changes), "notes": list(self.notes),
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Condition:
    """A fact about a graph a step needs (precondition) or guarantees (postcondition): `violation(graph)`
    returns the first node that breaks it, None when it holds."""

    text: str
    violation: Callable[[Graph], "Node | None"] = field(repr=False)


def first_node(g: Graph, *ops: str) -> Node | None:
    """The first node running one of `ops` (a condition "no such op remains" is `first_node(g, op) is None`)."""
    return next((n for n in g.nodes if n.op in ops), None)


@dataclass(frozen=True)
class Contract:
    """The before/after checks around one step (a pass, a compression action); see the module docstring."""

    kind: str  # "pass" | "action": how messages name the step
    name: str
    requires: tuple[Condition, ...] = ()
    ensures: tuple[Condition, ...] = ()
    prune: bool = True  # drop what nothing reads before checking the result
    extra_outputs: bool = False  # the result may add graph outputs after the original ones (an early exit)

    def enter(self, graph: Graph) -> Graph:
        """A validated deep copy of `graph` the step may edit freely; preconditions checked."""
        work = infer_shapes(graph)
        self._check(work, self.requires, "precondition")
        return work

    def leave(self, graph: Graph, out: Graph) -> Graph:
        """`out` validated, its input/output names checked against `graph`'s, postconditions checked."""
        out = infer_shapes(drop_unused(out) if self.prune else out)
        outputs = out.outputs[:len(graph.outputs)] if self.extra_outputs else out.outputs
        if out.inputs != graph.inputs or outputs != graph.outputs:
            raise AssertionError(f"{self.kind} {self.name} changed the graph inputs/outputs")  # a bug, not a user error
        self._check(out, self.ensures, "postcondition")
        return out

    def _check(self, g: Graph, conditions: tuple[Condition, ...], what: str) -> None:
        for c in conditions:
            node = c.violation(g)
            if node is not None:
                raise GraphError(f"{what} of {self.kind} {self.name} does not hold: {c.text}", node.name, node.op)


def graph_pass(fn: PassFn | None = None, *, requires: tuple[Condition, ...] = (),
               ensures: tuple[Condition, ...] = ()):
    """Wrap `fn(graph, ...) -> (graph, report)` in the pass contract; adds a `verbose` keyword.
    `@graph_pass` or `@graph_pass(requires=(...), ensures=(...))`."""
    if fn is None:
        return functools.partial(graph_pass, requires=tuple(requires), ensures=tuple(ensures))
    contract = Contract("pass", fn.__name__, tuple(requires), tuple(ensures))

    @functools.wraps(fn)
    def run(graph: Graph, *args, verbose: bool = False, **kwargs):
        out, report = fn(contract.enter(graph), *args, **kwargs)
        out = contract.leave(graph, out)
        if verbose:
            print(f"== after {report.summary()}")
            print(format_graph(out))
        return out, report
    run.contract = contract
    return run


def run_passes(graph: Graph, passes: list[PassFn], verbose: bool = False) -> tuple[Graph, list[PassReport]]:
    reports = []
    for p in passes:
        graph, r = p(graph, verbose=verbose)
        reports.append(r)
    return graph, reports


# ---- printing -------------------------------------------------------------------------------------

def _tensor_text(g: Graph, name: str) -> str:
    t = g.tensors.get(name)
    if t is None:
        return name
    q = ""
    if t.quant is not None:
        q = (f" q(s={float(t.quant.scale[0]):.4g},z={int(t.quant.zero_point[0])})" if t.quant.axis is None
             else f" q(axis {t.quant.axis}, {t.quant.scale.size} scales)")
    kind = "const " if t.data is not None else ""
    return f"{name}:{kind}{t.dtype}{list(t.shape)}{q}"


def format_graph(graph: Graph) -> str:
    """One line per node in execution order: `name = Op(inputs) attrs -> outputs`, shapes and quant inline."""
    g = graph
    lines = [f"graph {g.name}: inputs " + ", ".join(_tensor_text(g, n) for n in g.inputs)]
    for node in topological_order(g):
        attrs = " ".join(f"{k}={v}" for k, v in sorted(node.attrs.items()) if v is not None)
        ins = ", ".join(_tensor_text(g, n) if n else "-" for n in node.inputs)
        outs = ", ".join(_tensor_text(g, n) for n in node.outputs)
        lines.append(f"  {node.name} = {node.op}({ins}){' ' + attrs if attrs else ''} -> {outs}")
    lines.append("outputs " + ", ".join(_tensor_text(g, n) for n in g.outputs))
    return "\n".join(lines)


# ---- small edits ----------------------------------------------------------------------------------

def fresh_name(g: Graph, base: str) -> str:
    """A name used by no tensor and no node of `g`."""
    taken = g.tensors.keys() | {n.name for n in g.nodes}
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def add_const(g: Graph, base: str, data: np.ndarray, like: Tensor | None = None) -> str:
    """A new constant tensor (a fresh name, so tensors shared with other nodes are never changed)."""
    name = fresh_name(g, base)
    data = np.asarray(data)
    dtype = like.dtype if like is not None else dtype_of(data)
    g.tensors[name] = Tensor(name, data.shape, dtype, None, data.astype(dtype, copy=False),
                             dict(like.meta) if like is not None else {})
    return name


def consumers_of(g: Graph) -> dict[str, list[tuple[Node, int]]]:
    """tensor -> [(node, input slot)] for every use."""
    out: dict[str, list[tuple[Node, int]]] = {}
    for n in g.nodes:
        for i, t in enumerate(n.inputs):
            if t:
                out.setdefault(t, []).append((n, i))
    return out


def const_data(g: Graph, name: str) -> np.ndarray | None:
    """Float constant data of a tensor (None for activations and absent inputs)."""
    if not name:
        return None
    t = g.tensors.get(name)
    if t is None or t.data is None:
        return None
    return t.float_data() if t.dtype in ("float32", "float16", "float64") or t.quant is not None else None


def rename_uses(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n.inputs = [new if t == old else t for t in n.inputs]


def drop_unused(g: Graph) -> Graph:
    """Remove nodes whose outputs nobody reads and tensors nothing references (in place; returns g)."""
    keep_outputs = set(g.outputs)
    while True:
        used = {t for n in g.nodes for t in n.inputs if t} | keep_outputs
        dead = [n for n in g.nodes if not any(o in used for o in n.outputs)]
        if not dead:
            break
        dead_ids = {id(n) for n in dead}
        g.nodes = [n for n in g.nodes if id(n) not in dead_ids]
    referenced = set(g.inputs) | set(g.outputs) | {t for n in g.nodes for t in (*n.inputs, *n.outputs) if t}
    g.tensors = {k: v for k, v in g.tensors.items() if k in referenced}
    return g
