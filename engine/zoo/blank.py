"""The starting graph of a blank canvas: the input wired straight to the output, no layers yet. A layer added
after the input (or dropped on that edge) goes between them, so appending layers extends the chain."""
from __future__ import annotations

from engine.errors import TinyStudioError
from engine.ir import Graph, Tensor


def blank_graph(input_shape: tuple[int, ...]) -> Graph:
    if len(input_shape) not in (2, 3, 4) or min(input_shape) < 1:
        raise TinyStudioError(f"input shape {list(input_shape)}: give N,C,H,W (images), N,C,L (signals) or N,F")
    g = Graph("blank")
    g.tensors["input"] = Tensor("input", tuple(int(d) for d in input_shape), "float32")
    g.inputs = ["input"]
    g.outputs = ["input"]
    g.meta["source"] = {"format": "blank"}
    return g
