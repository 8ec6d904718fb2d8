"""State of stateful ops (SVDF, LSTM's TFLite "variable" tensors), shared by the executors.

A variable tensor is a `Tensor` with `meta["variable"] = True` whose `data` is its initial value; it is an
input of the stateful node, whose op lists it in `state_inputs` and returns its new value after its outputs.

    state = {}                                    # name -> array, filled by the first call
    for x in stream:
        y = run_graph(g, {"x": x}, state=state)   # reads the state, writes the new one back
    run_graph(g, {"x": x})                        # state=None: starts from the initial values (pure)

Both executors keep the values in their own domain: run_graph real values (a quantized state dequantized),
run_int8 the integers, as the tensor stores them.
"""
from __future__ import annotations

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import Graph, Node, variables
from engine.ops.base import get_op


def initial_state(graph: Graph, state: dict | None) -> dict[str, np.ndarray]:
    """name -> value of every variable: from `state` where it has the name, else the initial value."""
    out = {}
    for t in variables(graph):
        if t.data is None:
            raise TinyStudioError(f"variable tensor '{t.name}' has no initial value")
        value = t.data if state is None or t.name not in state else np.asarray(state[t.name])
        if tuple(value.shape) != t.shape:
            raise TinyStudioError(f"state '{t.name}' has shape {list(value.shape)}, the model keeps "
                                  f"{list(t.shape)}")
        out[t.name] = value
    return out


def split_state(node: Node, ys: list) -> tuple[list, list[tuple[str, np.ndarray]]]:
    """A node's results -> (its outputs, [(state input name, new value), ...])."""
    op = get_op(node.op)
    idx = op.state_inputs if op is not None else ()
    n = len(node.outputs)
    if not idx:
        return ys, []
    if len(ys) != n + len(idx):
        raise TinyStudioError(f"node '{node.name}' ({node.op}) returned {len(ys)} values, expected {n} outputs "
                              f"and {len(idx)} new states")
    return ys[:n], [(node.inputs[i], ys[n + k]) for k, i in enumerate(idx) if i < len(node.inputs) and node.inputs[i]]


def save_state(graph: Graph, env: dict, state: dict | None) -> None:
    """Write every variable's value after a call into `state` (nothing when state is None)."""
    if state is None:
        return
    for t in variables(graph):
        if t.name in env:
            state[t.name] = np.array(env[t.name], copy=True)


def state_bytes(graph: Graph) -> int:
    """Bytes of persistent RAM the variables take on the target (outside the activation arena)."""
    return sum(t.nbytes for t in variables(graph))
