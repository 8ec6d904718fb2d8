"""Activation buffers of a graph and their lifetimes for one execution order.

    model = buffer_model(graph, bytes_per_element=1)       # order-independent: groups of aliased tensors
    table = buffer_table(model, order)                      # Buffer(size, first_use, last_use, tensors) list
    live = live_bytes(table.buffers, len(order))            # bytes live at each step; max = lower bound

A buffer is the arena space of one or more tensors. Constants are not buffers (they live in flash).
Graph inputs live from step 0, graph outputs to the last step; any other tensor from the step that
produces it to the last step that reads it (both inclusive: an op reads its inputs while writing its output).

Aliasing, decided in two stages:
- Views and no-ops (OpDef.is_view / is_noop: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) never
  write, so their output is the input's bytes under another name, whatever the order: one group.
- In-place element-wise ops (optional): the output takes over an input's buffer when that buffer dies at this
  step, is not a graph output and has exactly the output's byte size. Whether a buffer dies at a step depends
  on the order, so this is decided per order. A graph input may be overwritten after its last read (TFLM
  reuses that space for other tensors as well). TFLM never runs ops in place, so figures compared with
  TFLM's must say which setting they use (for the four MLPerf Tiny models the peak is the same either way).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import GraphError
from engine.ir import MAX_TENSOR_BYTES, Graph, Node, Tensor
from engine.ops import get_op, ops_where

# Ops that read element i of their full-size input(s) only to write element i of the output, so a kernel
# can write the output over that input (the `inplace` op trait). Softmax (row reductions) and Concat/Pad
# (moved elements) are not.
INPLACE_OPS = ops_where(lambda op: op.inplace)


@dataclass(frozen=True)
class Buffer:
    """One region of the arena: `size` bytes (nbytes rounded up to the alignment) live over
    [first_use, last_use] (steps of the execution order), holding `tensors` (the first one allocates it)."""

    name: str
    size: int
    first_use: int
    last_use: int
    tensors: tuple[str, ...]
    nbytes: int

    def __post_init__(self):
        if self.size < 0 or self.first_use > self.last_use:
            raise ValueError(f"buffer '{self.name}': size {self.size}, lifetime [{self.first_use}, {self.last_use}]")


@dataclass(frozen=True)
class BufferModel:
    """Order-independent facts: the view-alias groups (index g), their sizes and who makes and reads them."""

    nodes: tuple[Node, ...]                # graph.nodes
    group_of: dict[str, int]               # activation tensor -> group
    members: tuple[tuple[str, ...], ...]   # group -> tensors, the allocating one first
    nbytes: tuple[int, ...]                # group -> bytes before alignment
    size: tuple[int, ...]                  # group -> aligned bytes
    producer: tuple[int, ...]              # group -> index of the node writing its first tensor; -1: graph input
    consumers: tuple[tuple[int, ...], ...] # group -> indices of the nodes reading any of its tensors
    is_output: tuple[bool, ...]            # group holds a graph output
    inplace: tuple[tuple[tuple[int, int], ...], ...]  # node -> (input group, output group) it may write over
    alignment: int


@dataclass(frozen=True)
class BufferTable:
    buffers: tuple[Buffer, ...]
    inplace_nodes: tuple[str, ...]         # nodes whose output overwrites an input buffer in this order


def tensor_bytes(t: Tensor, bytes_per_element: float | None) -> int:
    """Bytes of an activation on the target; `bytes_per_element` asks "as if every element took this many"."""
    if bytes_per_element is None:
        return t.nbytes
    return int(math.ceil(t.size * bytes_per_element))


def align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def buffer_model(graph: Graph, bytes_per_element: float | None = None, inplace: bool = True,
                 alignment: int = 16) -> BufferModel:
    """Group the graph's activation tensors into buffers joined by views/no-ops. The graph must be shape-inferred."""
    if alignment < 1:
        raise ValueError(f"alignment must be >= 1, got {alignment}")
    nodes = tuple(graph.nodes)
    is_act = {name for name, t in graph.tensors.items() if t.data is None}
    for n in nodes:
        for t in n.outputs:
            if t not in graph.tensors:
                raise GraphError(f"output '{t}' has no tensor; run infer_shapes first", n.name, n.op)
    # Union-find over view edges; the root is the tensor that is actually written (never a view's output).
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.get(t, t) != t:
            parent[t] = parent.get(parent[t], parent[t])
            t = parent[t]
        return t

    for n in nodes:
        op = get_op(n.op)
        if op is None:
            raise GraphError(f"unknown op '{n.op}'", n.name, n.op)
        # A view of a constant must be copied into the arena: flash is not part of it.
        if (op.is_view or op.is_noop) and n.inputs and n.inputs[0] in is_act and len(n.outputs) == 1:
            parent[n.outputs[0]] = find(n.inputs[0])

    tensors = [name for name in graph.inputs if name in is_act]
    tensors += [t for n in nodes for t in n.outputs if t in is_act]
    roots: dict[str, int] = {}
    group_of: dict[str, int] = {}
    members: list[list[str]] = []
    for t in dict.fromkeys(tensors):
        r = find(t)
        if r not in roots:  # the root (the tensor actually written) leads its group, whatever the node order
            roots[r] = len(members)
            members.append([r])
            group_of[r] = roots[r]
        if t not in group_of:
            group_of[t] = roots[r]
            members[roots[r]].append(t)

    producer = [-1] * len(members)
    for i, n in enumerate(nodes):
        for t in n.outputs:
            if t in group_of and members[group_of[t]][0] == t:
                producer[group_of[t]] = i
    consumers: list[set[int]] = [set() for _ in members]
    for i, n in enumerate(nodes):
        for t in n.inputs:
            if t in group_of:
                consumers[group_of[t]].add(i)
    outputs = {group_of[t] for t in graph.outputs if t in group_of}
    nbytes = [max(tensor_bytes(graph.tensors[t], bytes_per_element) for t in m) for m in members]
    for m, n in zip(members, nbytes):  # sizes go into int64 arrays: refuse absurd ones with a clear message
        if n > MAX_TENSOR_BYTES:
            raise GraphError(f"activation {m[0][:60]!r} needs {n:,} bytes, over the limit of {MAX_TENSOR_BYTES:,}")

    candidates: list[tuple[tuple[int, int], ...]] = []
    for n in nodes:
        pairs = []
        if inplace and n.op in INPLACE_OPS and len(n.outputs) == 1 and n.outputs[0] in group_of:
            out = n.outputs[0]
            go = group_of[out]
            want = tensor_bytes(graph.tensors[out], bytes_per_element)
            for t in dict.fromkeys(n.inputs):
                if t in group_of and group_of[t] != go and nbytes[group_of[t]] == want == nbytes[go]:
                    pairs.append((group_of[t], go))
        candidates.append(tuple(pairs))
    return BufferModel(nodes, group_of, tuple(tuple(m) for m in members), tuple(nbytes),
                       tuple(align(b, alignment) for b in nbytes), tuple(producer),
                       tuple(tuple(sorted(c)) for c in consumers), tuple(g in outputs for g in range(len(members))),
                       tuple(candidates), alignment)


def buffer_table(model: BufferModel, order: list[Node] | list[str]) -> BufferTable:
    """Buffers and lifetimes for `order` (nodes or node names; a permutation of the graph's nodes)."""
    names = [n if isinstance(n, str) else n.name for n in order]
    index = {n.name: i for i, n in enumerate(model.nodes)}
    if sorted(names) != sorted(index):
        raise ValueError("the order must list every node of the graph exactly once")
    step = [0] * len(model.nodes)  # node index -> step
    for s, name in enumerate(names):
        step[index[name]] = s
    last_step = max(len(names) - 1, 0)
    n_groups = len(model.members)
    first = [0 if model.producer[g] < 0 else step[model.producer[g]] for g in range(n_groups)]
    last = [max([first[g]] + [step[c] for c in model.consumers[g]]) for g in range(n_groups)]
    for g in range(n_groups):
        if model.is_output[g]:
            last[g] = last_step
    written = {t: step[i] for i, n in enumerate(model.nodes) for t in n.outputs}
    for i, n in enumerate(model.nodes):
        for t in n.inputs:
            if t in written and written[t] >= step[i]:
                raise ValueError(f"node '{n.name}' reads '{t}' before it is written: the order is not topological")

    # In-place: walk the order; a merged buffer keeps the lifetime of its latest tensor.
    owner = list(range(n_groups))  # group -> buffer (the group it was merged into)

    def buf(g: int) -> int:
        while owner[g] != g:
            owner[g] = owner[owner[g]]
            g = owner[g]
        return g

    out_flag = list(model.is_output)
    inplace_nodes = []
    for s, name in enumerate(names):
        for gi, go in model.inplace[index[name]]:
            b = buf(gi)
            if last[b] == s and not out_flag[b] and model.size[b] == model.size[go] and b != buf(go):
                owner[go] = b
                last[b] = last[go]
                out_flag[b] = out_flag[go]
                inplace_nodes.append(name)
                break

    held: dict[int, list[str]] = {}
    for g in sorted(range(n_groups), key=lambda g: (first[g], g)):  # the allocating tensor first
        held.setdefault(buf(g), []).extend(model.members[g])
    buffers = [Buffer(model.members[b][0], model.size[b], first[b], last[b], tuple(held[b]), model.nbytes[b])
               for b in sorted(held, key=lambda b: (first[b], b))]
    return BufferTable(tuple(buffers), tuple(inplace_nodes))


def live_bytes(buffers, n_steps: int) -> list[int]:
    """Bytes live at each step (first_use <= s <= last_use), by a difference array: O(buffers + steps)."""
    delta = [0] * (n_steps + 1)
    for b in buffers:
        if b.first_use < n_steps:
            delta[b.first_use] += b.size
            delta[min(b.last_use, n_steps - 1) + 1] -= b.size
    live, acc = [], 0
    for s in range(n_steps):
        acc += delta[s]
        live.append(acc)
    return live


def lower_bound(buffers) -> int:
    """Max over steps of live bytes: no placement of these lifetimes fits in less (the interval graph's
    heaviest clique). Works on any objects with size/first_use/last_use."""
    if not buffers:
        return 0
    steps = max(b.last_use for b in buffers) + 1
    return max(live_bytes(buffers, steps))
