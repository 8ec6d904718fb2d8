"""The float32 reference executor: runs every node's numpy reference in topological order.

Quantized graphs (TFLite int8) run "dequantized": integer constants and inputs are turned into real
values with their scale/zero point and the float reference runs on them. With `simulate_quant`, every
quantized activation is also rounded to its int8 grid after it is produced, which tracks the integer
execution closely (the bit-exact integer executor comes with the int8 numerics).
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError, TinyStudioError
from engine.ir import FLOAT_DTYPES, Graph, Tensor
from engine.state import initial_state, save_state, split_state
from engine.validate import infer_shapes, node_context, topological_order


def _as_real(t: Tensor, value: np.ndarray) -> np.ndarray:
    if t.quant is not None and t.dtype not in FLOAT_DTYPES and not np.issubdtype(value.dtype, np.floating):
        return t.quant.dequantize(value)
    if t.dtype in FLOAT_DTYPES or t.quant is not None:
        return np.asarray(value, dtype=np.float32)
    return np.asarray(value)


def run_graph(graph: Graph, feeds: dict[str, np.ndarray], *, outputs: list[str] | None = None,
              simulate_quant: bool = False, keep_all: bool = False,
              state: dict | None = None) -> dict[str, np.ndarray]:
    """Run `graph` on `feeds` (graph input name -> array). Returns the requested outputs as arrays.

    Missing or mis-shaped feeds raise a TinyStudioError naming the input. `state` (engine/state.py): None
    starts every variable tensor from its initial value; a dict is read and gets the new values (streaming).
    """
    g = graph if all(n in graph.tensors for node in graph.nodes for n in node.outputs) else infer_shapes(graph)
    env: dict[str, np.ndarray] = {}
    for name in g.inputs:
        if name not in feeds:
            raise TinyStudioError(f"missing input '{name}' (graph inputs: {', '.join(g.inputs)})")
        t = g.tensors[name]
        value = np.asarray(feeds[name])
        if tuple(value.shape) != t.shape:
            raise TinyStudioError(f"input '{name}' has shape {list(value.shape)}, the model expects {list(t.shape)}")
        env[name] = _as_real(t, value)
    for name, value in initial_state(g, state).items():
        env[name] = _as_real(g.tensors[name], value)
    wanted = outputs or g.outputs
    for node in topological_order(g):
        ctx = node_context(g, node)
        xs = []
        for name in node.inputs:
            if not name:
                xs.append(None)
            elif name in env:
                xs.append(env[name])
            else:
                t = g.tensors[name]
                xs.append(t.float_data() if (t.quant is not None or t.dtype in FLOAT_DTYPES) else t.data)
        try:
            ys = ctx.op.run(ctx, xs)
        except TinyStudioError:
            raise
        except (ValueError, IndexError) as e:  # a reference kernel rejecting its inputs is a graph problem
            raise GraphError(f"reference execution failed: {e}", node.name, node.op) from e
        ys, new_state = split_state(node, ys)
        for name, y in [*zip(node.outputs, ys), *new_state]:
            t = g.tensors[name]
            if simulate_quant and t.quant is not None and t.dtype not in FLOAT_DTYPES:
                y = t.quant.dequantize(t.quant.quantize(y, t.dtype))
            env[name] = y
    save_state(g, env, state)
    if keep_all:
        return env
    return {name: env[name] if name in env else g.tensors[name].float_data() for name in wanted}
