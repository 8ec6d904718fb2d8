"""Small, fast graphs for the store tests: an MLP whose widths and seed pick its content."""
from __future__ import annotations

import numpy as np

from engine.builder import GraphBuilder
from engine.ir import Graph


def mlp(widths=(16, 32, 4), seed: int = 0, name: str = "mlp") -> Graph:
    """Gemm layers fc1..fcN with Relu between; MACs = sum of widths[i] * widths[i+1]."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(name)
    x = b.input("X", (1, widths[0]))  # (N, features)
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:]), start=1):
        w = b.const(f"fc{i}_W", rng.standard_normal((n_out, n_in)).astype(np.float32))
        bias = b.const(f"fc{i}_B", rng.standard_normal(n_out).astype(np.float32))
        x = b.node("Gemm", [x, w, bias], name=f"fc{i}", transB=1)
        if i < len(widths) - 1:
            x = b.node("Relu", [x], name=f"relu{i}")
    b.output(x)
    return b.build()


def mlp_macs(widths) -> int:
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))
