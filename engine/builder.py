"""GraphBuilder: a terse way to write graphs in code (zoo models, tests, importers).

    b = GraphBuilder("tiny")
    x = b.input("X", (1, 3, 32, 32))
    w = b.const("W", np.zeros((8, 3, 3, 3), np.float32))
    y = b.node("Conv", [x, w], pads=[1, 1, 1, 1])
    b.output(y)
    g = b.build()          # shape-inferred and validated Graph
"""
from __future__ import annotations

import numpy as np

from engine.ir import Graph, Node, Quant, Tensor, dtype_of
from engine.validate import infer_shapes


class GraphBuilder:
    def __init__(self, name: str):
        self.g = Graph(name)
        self._count: dict[str, int] = {}

    def fresh(self, base: str) -> str:
        """A name not used yet by any tensor or node: base, base_1, base_2, ..."""
        taken = self.g.tensors.keys() | {n.name for n in self.g.nodes}
        i = self._count.get(base, 0)
        name = base if i == 0 and base not in taken else f"{base}_{i}"
        while name in taken:
            i += 1
            name = f"{base}_{i}"
        self._count[base] = i + 1
        return name

    def input(self, name: str, shape, dtype: str = "float32", quant: Quant | None = None) -> str:
        self.g.tensors[name] = Tensor(name, tuple(shape), dtype, quant)
        self.g.inputs.append(name)
        return name

    def const(self, name: str, data: np.ndarray, quant: Quant | None = None, dtype: str | None = None) -> str:
        name = self.fresh(name)
        data = np.asarray(data)
        self.g.tensors[name] = Tensor(name, data.shape, dtype or dtype_of(data), quant, data)
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, outputs: int | list[str] = 1,
             **attrs) -> str | list[str]:
        name = self.fresh(name or op)
        outs = outputs if isinstance(outputs, list) else [
            self.fresh(f"{name}_out" if outputs == 1 else f"{name}_out{i}") for i in range(outputs)]
        self.g.nodes.append(Node(op, name, list(inputs), outs, {k: v for k, v in attrs.items() if v is not None}))
        return outs[0] if len(outs) == 1 else outs

    def output(self, *names: str) -> None:
        self.g.outputs.extend(names)

    def build(self) -> Graph:
        return infer_shapes(self.g)
