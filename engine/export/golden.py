"""Test inputs for a generated library and the bytes the int8 reference gives for them.

    cases = make_cases(graph, lib, n_random=20, seed=0)     # golden first, then random int8 tensors
    cases[0].inputs["input_1"], cases[0].outputs["Identity"]
    compare(cases, got) -> (matched, first Mismatch or None)

The golden input is the one the bundle's example program embeds: the first calibration sample when the
user gave calibration data (quantized with the input's scale and zero point), otherwise random int8 from a
seed derived from the graph, so the same model always gets the same golden case.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.int8 import prepare_int8
from engine.serialize import content_hash


@dataclass(frozen=True)
class Case:
    inputs: dict[str, np.ndarray]  # graph input name -> int8 array of the input's shape
    outputs: dict[str, np.ndarray]  # graph output name -> int8 array: what run_int8 gives


@dataclass(frozen=True)
class Mismatch:
    case: int  # index into the cases (0 = golden)
    output: str
    index: tuple[int, ...]
    got: int
    expected: int
    differing: int  # values that differ in this output
    size: int

    def describe(self) -> str:
        return (f"input #{self.case}, output '{self.output}': {self.differing} of {self.size} bytes differ; first at "
                f"{self.index}: C {self.got}, int8 reference {self.expected}")

    def to_json(self) -> dict:
        return {"case": self.case, "output": self.output, "index": list(self.index), "got": self.got,
                "expected": self.expected, "differing": self.differing, "size": self.size}


def graph_seed(graph) -> int:
    return int(content_hash(graph)[:8], 16)


def quantize_sample(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float64) / scale) + zero_point, -128, 127).astype(np.int8)


def _to_shape(x: np.ndarray, shape: tuple[int, ...], perm=None) -> np.ndarray | None:
    """`x` as an array of `shape`: as is (a missing batch dim added), or in the original layout of a graph whose
    inputs were transposed by quantization (`perm`, from graph.meta["input_layout"])."""
    if x.ndim == len(shape) - 1:
        x = x[None]
    if perm is not None and x.ndim == len(perm) and x.transpose(perm).shape == tuple(shape):
        return x.transpose(perm)
    return x if x.shape == tuple(shape) else None


def golden_inputs(graph, lib, sample: dict | None = None) -> dict[str, np.ndarray]:
    """The golden case's inputs: `sample` (one float feed dict in the original model's layout, e.g. the first
    calibration sample) quantized with each input's scale and zero point, else seeded random int8."""
    if sample is not None:
        feeds = {}
        for spec in lib.inputs:
            perm = (graph.meta.get("input_layout") or {}).get(spec.name, {}).get("perm")
            x = sample.get(spec.name)
            x = None if x is None else _to_shape(np.asarray(x), spec.shape, perm)
            if x is None:
                break
            feeds[spec.name] = quantize_sample(x, spec.scale, spec.zero_point)
        else:
            return feeds
    return random_inputs(lib, 1, graph_seed(graph))[0]


def random_inputs(lib, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{s.name: rng.integers(-128, 128, size=s.shape, dtype=np.int8) for s in lib.inputs} for _ in range(n)]


def make_cases(graph, lib, n_random: int = 20, seed: int = 0, sample: dict | None = None) -> list[Case]:
    """The golden case (from `sample`, see golden_inputs) followed by `n_random` random ones, each with the
    int8 reference's outputs. The cases are one stream, as the runners call <name>_run on them in order after
    one <name>_init: a stateful model (SVDF) carries its state from case to case (engine/state.py)."""
    plan = prepare_int8(graph)
    feeds = [golden_inputs(graph, lib, sample)] + random_inputs(lib, n_random, seed)
    cases = []
    state: dict = {}
    for f in feeds:
        outs = plan.run(f, state=state)
        cases.append(Case(f, {s.name: np.asarray(outs[s.name]).astype(np.int8).reshape(s.shape)
                              for s in lib.outputs}))
    return cases


def pack_inputs(lib, cases: list[Case]) -> bytes:
    """All inputs back to back, in the library's input order: what the runners read."""
    return b"".join(c.inputs[s.name].astype(np.int8).tobytes() for c in cases for s in lib.inputs)


def unpack_outputs(lib, blob: bytes, n: int) -> list[dict[str, np.ndarray]]:
    per = sum(s.size for s in lib.outputs)
    if len(blob) != per * n:
        raise ValueError(f"expected {per * n} output bytes for {n} inferences, got {len(blob)}")
    got, pos = [], 0
    for _ in range(n):
        d = {}
        for s in lib.outputs:
            d[s.name] = np.frombuffer(blob[pos:pos + s.size], np.int8).reshape(s.shape)
            pos += s.size
        got.append(d)
    return got


def compare(cases: list[Case], got: list[dict[str, np.ndarray]]) -> tuple[int, Mismatch | None]:
    """How many cases match byte for byte, and the first difference."""
    matched, first = 0, None
    for i, (case, outs) in enumerate(zip(cases, got)):
        ok = True
        for name, exp in case.outputs.items():
            g = np.asarray(outs[name]).reshape(exp.shape)
            diff = np.argwhere(g != exp)
            if len(diff):
                ok = False
                if first is None:
                    idx = tuple(int(v) for v in diff[0])
                    first = Mismatch(i, name, idx, int(g[idx]), int(exp[idx]), len(diff), exp.size)
        matched += ok
    return matched, first


def c_array(name: str, data: np.ndarray, per_line: int = 20, qualifier: str = "static const") -> str:
    """`qualifier int8_t name[n] = {...};` with the values wrapped."""
    flat = np.asarray(data, np.int8).reshape(-1)
    rows = [", ".join(str(int(v)) for v in flat[i:i + per_line]) for i in range(0, flat.size, per_line)]
    return f"{qualifier} int8_t {name}[{flat.size}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"
