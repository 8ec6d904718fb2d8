"""The integer executor: runs a quantized graph with the int8 kernels, bit-exact to tflite-micro.

    outs = run_int8(graph, {"input_1": x_int8})      # {output name: int8 array}
    plan = prepare_int8(graph)                        # multipliers, tables and weight layouts once,
    for x in inputs: plan.run({"input_1": x})         # then each inference only runs the kernels

Nodes that touch a quantized integer tensor run their int8 kernel (engine/int8/lower.py); a node with
no quantized tensor at all (float pre/post-processing around QuantizeLinear/DequantizeLinear) runs the
float reference. A quantized node without an int8 kernel is a GraphError naming the node and op.
"""
from __future__ import annotations

import numpy as np

from engine.errors import GraphError, TinyStudioError
from engine.int8.lower import Kernel, is_quantized, lower_node
from engine.ir import INT_DTYPES, Graph, Node
from engine.state import initial_state, save_state, split_state
from engine.validate import infer_shapes, node_context, topological_order


def _float_kernel(g: Graph, node: Node) -> Kernel:
    ctx = node_context(g, node)
    return lambda xs: ctx.op.run(ctx, xs)


class Int8Plan:
    """A graph prepared for integer execution: one kernel per node, in execution order."""

    def __init__(self, graph: Graph):
        shaped = all(n in graph.tensors for node in graph.nodes for n in node.outputs)
        self.graph = graph if shaped else infer_shapes(graph)
        g = self.graph
        self.steps: list[tuple[Node, Kernel]] = []
        for node in topological_order(g):
            tensors = [g.tensors.get(n) for n in (*node.inputs, *node.outputs) if n]
            quantized = any(is_quantized(t) for t in tensors)
            self.steps.append((node, lower_node(g, node) if quantized else _float_kernel(g, node)))

    def feed(self, name: str, value) -> np.ndarray:
        """`value` checked against the input `name` (shape, integer range) and cast to its dtype."""
        t = self.graph.tensors[name]
        v = np.asarray(value)
        if tuple(v.shape) != t.shape:
            raise TinyStudioError(f"input '{name}' has shape {list(v.shape)}, the model expects {list(t.shape)}")
        if t.dtype not in INT_DTYPES:
            return v.astype(t.dtype)
        if v.dtype.kind not in "iub":
            grid = (f" (scale {float(t.quant.scale[0]):g}, zero point {int(t.quant.zero_point[0])})"
                    if t.quant is not None and t.quant.scale.size == 1 else "")
            raise TinyStudioError(f"input '{name}' is {t.dtype}{grid}: give integer values, got {v.dtype} "
                                  "(real values go to the float reference)")
        info = np.iinfo(np.dtype(t.dtype) if t.dtype != "int4" else np.int8)
        if v.size and (v.min() < info.min or v.max() > info.max):
            raise TinyStudioError(f"input '{name}' holds values outside {t.dtype} [{info.min}, {info.max}]")
        return v.astype(np.dtype(t.dtype) if t.dtype != "int4" else np.int8)

    def run(self, feeds: dict[str, np.ndarray], *, outputs: list[str] | None = None,
            keep_all: bool = False, state: dict | None = None) -> dict[str, np.ndarray]:
        """`state` as in engine/state.py: None = initial values, a dict is read and gets the new integers."""
        g = self.graph
        env: dict[str, np.ndarray] = {}
        for name in g.inputs:
            if name not in feeds:
                raise TinyStudioError(f"missing input '{name}' (graph inputs: {', '.join(g.inputs)})")
            env[name] = self.feed(name, feeds[name])
        for name, value in initial_state(g, state).items():
            env[name] = np.asarray(value).astype(g.tensors[name].data.dtype)
        for node, kernel in self.steps:
            self.step(node, kernel, env)
        save_state(g, env, state)
        if keep_all:
            return env
        return {n: env[n] if n in env else g.tensors[n].data for n in (outputs or g.outputs)}


    def step(self, node: Node, kernel: Kernel, env: dict) -> None:
        """Run one node's kernel on the tensors in `env` and store its outputs (and new state) there."""
        g = self.graph
        xs = [None if not n else env[n] if n in env else g.tensors[n].data for n in node.inputs]
        try:
            ys = kernel(xs)
        except TinyStudioError:
            raise
        except (ValueError, IndexError) as e:  # a kernel rejecting its inputs is a graph problem
            raise GraphError(f"int8 execution failed: {e}", node.name, node.op) from e
        ys, new_state = split_state(node, ys)
        env.update(zip(node.outputs, ys))
        env.update(new_state)


def prepare_int8(graph: Graph) -> Int8Plan:
    return Int8Plan(graph)


def run_int8(graph: Graph | Int8Plan, feeds: dict[str, np.ndarray], *, outputs: list[str] | None = None,
             keep_all: bool = False, state: dict | None = None) -> dict[str, np.ndarray]:
    """Run a quantized graph with integer kernels; returns integer arrays (float where the graph is float)."""
    plan = graph if isinstance(graph, Int8Plan) else Int8Plan(graph)
    return plan.run(feeds, outputs=outputs, keep_all=keep_all, state=state)
