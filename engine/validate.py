"""Structure checks, topological order and shape/dtype inference over a Graph.

    order = topological_order(graph)        # nodes in a valid execution order (stable)
    graph = infer_shapes(graph)             # new graph with every activation's shape and dtype set
    validate(graph)                         # raises GraphError naming the node, op and problem
"""
from __future__ import annotations

import heapq

from engine.errors import GraphError
from engine.ir import Graph, Node, Tensor
from engine.ops import OpContext, get_op, supported_ops


def producers(graph: Graph) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for n in graph.nodes:
        for t in n.outputs:
            if t in out:
                raise GraphError(f"tensor '{t}' is produced twice (also by '{out[t].name}')", n.name, n.op)
            out[t] = n
    return out


def consumers(graph: Graph) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            if t:
                out.setdefault(t, []).append(n)
    return out


def check_structure(graph: Graph) -> None:
    """Names unique, every input defined, every output produced."""
    seen: set[str] = set()
    for n in graph.nodes:
        if not n.name:
            raise GraphError(f"a {n.op} node has no name")
        if n.name in seen:
            raise GraphError("node name is used twice", n.name, n.op)
        seen.add(n.name)
    prod = producers(graph)
    for name in graph.inputs:
        if name not in graph.tensors:
            raise GraphError(f"graph input '{name}' has no tensor")
        if name in prod:
            raise GraphError(f"graph input '{name}' is also produced by node '{prod[name].name}'")
    for n in graph.nodes:
        for t in n.inputs:
            if not t:
                continue
            if t in prod or t in graph.inputs:
                continue
            tt = graph.tensors.get(t)
            if tt is None or tt.data is None:
                raise GraphError(f"input '{t}' is dangling: no node produces it and it is neither a graph "
                                 "input nor a constant", n.name, n.op)
    for name in graph.outputs:
        if name not in prod and name not in graph.inputs and graph.const(name) is None:
            raise GraphError(f"graph output '{name}' is not produced by any node")


def kahn_order(sources: list[set[int]]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm on indices: `sources[i]` holds the indices node i waits for. Returns (order, stuck):
    ties are broken by index, so the order is stable; `stuck` lists the nodes on or behind a cycle (ascending).
    The one topological sort of the engine (graphs here, ONNX protos in the importer)."""
    deps = [len(s) for s in sources]
    users: list[list[int]] = [[] for _ in sources]
    for i, srcs in enumerate(sources):
        for p in srcs:
            users[p].append(i)
    ready = [i for i in range(len(sources)) if deps[i] == 0]  # ascending: already a heap
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            deps[u] -= 1
            if deps[u] == 0:
                heapq.heappush(ready, u)
    return order, [i for i, d in enumerate(deps) if d > 0]


def cycle_message(stuck: list[str]) -> str:
    return f"the graph has a cycle through nodes {', '.join(stuck[:6])}" + (" ..." if len(stuck) > 6 else "")


def topological_order(graph: Graph) -> list[Node]:
    """Kahn's algorithm; ties broken by original position so the order is stable. O(E log V) on indices
    (it runs several times per save, so it is kept lean for 20,000-node graphs)."""
    nodes = graph.nodes
    made_by: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for t in n.outputs:
            if t in made_by:
                raise GraphError(f"tensor '{t}' is produced twice (also by '{nodes[made_by[t]].name}')", n.name, n.op)
            made_by[t] = i
    order, stuck = kahn_order([{made_by[t] for t in n.inputs if t in made_by} for n in nodes])
    if stuck:
        raise GraphError(cycle_message([nodes[i].name for i in stuck]))
    return [nodes[i] for i in order]


def node_context(graph: Graph, node: Node) -> OpContext:
    op = get_op(node.op)
    if op is None:
        raise GraphError(f"unknown op '{node.op}'; supported: {', '.join(supported_ops())}", node.name, node.op)
    ins = [graph.tensors.get(t) if t else None for t in node.inputs]
    outs = [graph.tensors[t] for t in node.outputs if t in graph.tensors]
    return OpContext(op, node, ins, outs)


def infer_node(g: Graph, node: Node, check_declared: bool = False, allow_empty: bool = True) -> None:
    """Check one node and write the shape and dtype of its outputs into `g` (in place; its inputs must be
    known). Output tensors keep their quantization and meta. With `check_declared`, a stored shape that
    disagrees with the computed one is an error; `allow_empty=False` also refuses zero-sized dimensions."""
    ctx = node_context(g, node)
    ctx.op.check(node)
    for i, t in enumerate(ctx.ins):
        if node.inputs[i] and t is None:
            raise GraphError(f"input '{node.inputs[i]}' has no tensor", node.name, node.op)
    results = ctx.op.infer(ctx)
    if len(results) != len(node.outputs):
        raise GraphError(f"produces {len(results)} outputs but the node lists {len(node.outputs)}",
                         node.name, node.op)
    for name, (shape, dtype) in zip(node.outputs, results):
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape) or (not allow_empty and any(d < 1 for d in shape)):
            raise GraphError(f"computed an empty or negative dimension {list(shape)} for '{name}'",
                             node.name, node.op)
        old = g.tensors.get(name)
        if old is None:
            g.tensors[name] = Tensor(name, shape, dtype)
            continue
        if check_declared and old.shape != shape and old.data is None:
            raise GraphError(f"output '{name}' is declared {list(old.shape)} but the op computes "
                             f"{list(shape)}", node.name, node.op)
        # Quantized outputs keep their declared integer dtype (e.g. int8 with scale/zero point).
        keep_dtype = old.quant is not None and old.dtype != "float32"
        g.tensors[name] = Tensor(name, shape, old.dtype if keep_dtype else dtype, old.quant, None, old.meta)


def infer_shapes(graph: Graph, check_declared: bool = False) -> Graph:
    """Return a copy of `graph` with the shape and dtype of every node output computed by its op.

    Output tensors keep their quantization and meta. With `check_declared`, a tensor whose stored shape
    disagrees with the computed one is an error (importers use it to catch files that contradict
    themselves); otherwise stored activation shapes are simply recomputed (editing a layer reshapes
    everything downstream).
    """
    g = graph.copy()
    check_structure(g)
    for node in topological_order(g):
        infer_node(g, node, check_declared)
    return g


def validate(graph: Graph) -> Graph:
    """Check everything: structure, cycles, attributes, shapes. Returns the shape-inferred graph."""
    return infer_shapes(graph)


def dead_ends(graph: Graph) -> list[tuple[str, str, str]]:
    """Parts of the graph that compute nothing the model returns, as (kind, name, message) with kind "node",
    "input" or "output": a node none of whose outputs is used by a node or returned (a dangling branch), a
    graph input that nothing reads, a graph output that no graph input reaches (it depends on constants
    only). An editor calls a graph valid only when this is empty; an imported model keeps what it has."""
    used = {t for n in graph.nodes for t in n.inputs if t} | set(graph.outputs)
    problems: list[tuple[str, str, str]] = []
    for t in graph.inputs:
        if t not in used:
            problems.append(("input", t, f"graph input '{t}' feeds nothing: connect it to a layer"))
    for n in graph.nodes:
        if n.outputs and not any(t in used for t in n.outputs if t):
            problems.append(("node", n.name, "its output feeds nothing (a dangling branch): connect it to a "
                                              "layer or to a graph output, or delete it"))
    reached = set(graph.inputs)
    for n in topological_order(graph):
        if any(t in reached for t in n.inputs if t):
            reached.update(t for t in n.outputs if t)
    for t in graph.outputs:
        if t not in reached:
            problems.append(("output", t, f"graph output '{t}' is not reached from any graph input"))
    return problems
