"""remove_noops: nodes that compute nothing at inference are bypassed.

Identity, Dropout (inference), Transpose with the identity permutation, Reshape/Flatten/Squeeze/Unsqueeze
whose output shape equals the input shape, and Cast to the input's dtype. Readers of the node's output
read its input instead; when the output is a graph output, the producer of the input writes the output
name directly (graph output names never change). A no-op between a graph input and a graph output stays.

    g2, report = remove_noops(g)
"""
from __future__ import annotations

from engine.ir import Graph, Node, Tensor
from engine.ops import ops_where
from engine.passes.base import PassReport, graph_pass, rename_uses
from engine.validate import producers

_VIEWS = ops_where(lambda op: op.is_view)
_NOOPS = ops_where(lambda op: op.is_noop)


def is_noop(g: Graph, node: Node) -> bool:
    if node.op in _NOOPS:
        return True
    x, y = g.tensors.get(node.inputs[0]) if node.inputs else None, g.tensors.get(node.outputs[0])
    if x is None or y is None or len(node.outputs) != 1:
        return False
    if node.op == "Transpose":
        perm = node.attrs.get("perm")
        return perm is not None and list(perm) == list(range(len(perm)))
    if node.op in _VIEWS:
        return x.shape == y.shape
    if node.op == "Cast":
        return node.attrs.get("to") == x.dtype and x.quant is None
    return False


def bypass(g: Graph, node: Node) -> bool:
    """Remove a single-input no-op node from `g` (in place); False when it must stay."""
    src, dst = node.inputs[0], node.outputs[0]
    if dst not in g.outputs:
        g.nodes.remove(node)
        rename_uses(g, dst, src)
        return True
    prod = producers(g)
    if src not in prod or src in g.outputs:
        return False  # fed by a graph input or a constant, or both names are outputs: keep the node
    g.nodes.remove(node)
    p = prod[src]
    p.outputs = [dst if o == src else o for o in p.outputs]
    rename_uses(g, src, dst)
    s = g.tensors[src]
    g.tensors[dst] = Tensor(dst, s.shape, s.dtype, s.quant, None, dict(g.tensors[dst].meta))
    return True


@graph_pass
def remove_noops(graph: Graph) -> tuple[Graph, PassReport]:
    report = PassReport("remove_noops")
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            if is_noop(graph, node) and bypass(graph, node):
                report.count(f"removed_{node.op}")
                changed = True
                break
    return graph, report
