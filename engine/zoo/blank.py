"""The starting graph of a blank canvas: an input and an Identity to the output, ready for layers."""
from __future__ import annotations

from engine.builder import GraphBuilder
from engine.errors import TinyStudioError
from engine.ir import Graph


def blank_graph(input_shape: tuple[int, ...]) -> Graph:
    if len(input_shape) not in (2, 3, 4) or min(input_shape) < 1:
        raise TinyStudioError(f"input shape {list(input_shape)}: give N,C,H,W (images), N,C,L (signals) or N,F")
    b = GraphBuilder("blank")
    x = b.input("input", tuple(input_shape))
    b.output(b.node("Identity", [x], name="output"))
    g = b.build()
    g.meta["source"] = {"format": "blank"}
    return g
