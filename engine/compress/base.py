"""What every compression action shares: its declared parameters, the action contract, and graph helpers.

An action is `run(graph, params, ctx) -> (graph, report dict)`, registered as an `Action` with a parameter
schema (engine.params.Param, the class zoo models declare their parameters with too). `engine.compress.compress`
wraps it in the pass contract (engine.passes.base.Contract, DESIGN.md example 4): the input graph is validated
and the action receives a private deep copy (the caller's graph is never mutated), the result is validated
again and keeps the graph inputs and every original output (an early exit may add one).

    spec = Action("fold-bn", "...", {"epsilon": Param("float", 1e-5, "...")}, run_fold)
    params = parse_params(spec, {"epsilon": "1e-6"})          # typed, range-checked, defaults filled in
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import FLOAT_DTYPES, Graph, Node, Tensor
from engine.params import Param, parse_param
from engine.params import param_list as params_text
from engine.ops import ops_where

class CompressError(TinyStudioError):
    """A compression action cannot run: unknown action or parameter, bad value, a graph it cannot handle."""


@dataclass
class ActionContext:
    """What an action may use besides the graph: the data, a teacher, a progress callback, the seed."""

    data: Any = None  # engine.data.Dataset
    progress: Callable[[float, str], None] | None = None
    seed: int = 0

    def say(self, fraction: float, message: str) -> None:
        if self.progress is not None:
            self.progress(min(max(float(fraction), 0.0), 1.0), message)

    def sub(self, lo: float, hi: float) -> Callable[[float, str], None] | None:
        """A progress callback for a sub-step that maps its 0..1 onto lo..hi of this action's progress."""
        if self.progress is None:
            return None
        return lambda f, msg: self.say(lo + (hi - lo) * float(f), msg)


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    params: dict[str, Param]
    run: Callable[[Graph, dict, ActionContext], "tuple[Graph, dict]"] = field(repr=False)
    needs_data: bool = True
    trains: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "needs_data": self.needs_data,
                "trains": self.trains, "params": [p.to_json(k) for k, p in self.params.items()]}


def param_list(action: Action) -> str:
    return params_text(action.params)


def parse_value(action: Action, key: str, value: Any) -> Any:
    return parse_param(action.params, f"action '{action.name}'", key, value, CompressError)


def parse_params(action: Action, given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with the given values, each converted to its type and checked."""
    params = {k: p.default for k, p in action.params.items()}
    for k, v in (given or {}).items():
        params[k] = parse_value(action, k, v)
    return params


# ---- graph helpers ---------------------------------------------------------------------------------

WEIGHTED = ops_where(lambda op: op.weighted)
QUANT_BOUNDARY = ops_where(lambda op: op.quant_boundary)


def weighted_nodes(g: Graph) -> list[Node]:
    """Conv and Gemm nodes whose weights (input 1) are constants, in graph order."""
    return [n for n in g.nodes if n.op in WEIGHTED and len(n.inputs) > 1 and g.tensors.get(n.inputs[1]) is not None
            and g.tensors[n.inputs[1]].data is not None]


def float_weight_names(g: Graph) -> list[str]:
    """Names of the float weight tensors of Conv/Gemm layers (each once)."""
    names = [n.inputs[1] for n in weighted_nodes(g) if g.tensors[n.inputs[1]].dtype in FLOAT_DTYPES]
    return list(dict.fromkeys(names))


def out_axis(node: Node) -> int:
    """Axis of the weight tensor that indexes output channels / units."""
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return 0


def set_const(g: Graph, name: str, data: np.ndarray, dtype: str | None = None, quant=None) -> None:
    """Replace constant `name` (keeps its meta); shape follows the data."""
    old = g.tensors.get(name)
    dt = dtype or (old.dtype if old is not None else "float32")
    g.tensors[name] = Tensor(name, tuple(np.shape(data)), dt, quant, np.asarray(data),
                             dict(old.meta) if old is not None else {})


def is_quantized_graph(g: Graph) -> bool:
    """Int8 activations (a graph quantize-int8 produced), not merely quantized weights."""
    return any(t.quant is not None and t.data is None and t.dtype not in FLOAT_DTYPES for t in g.tensors.values())


def dequantize_weights(g: Graph) -> Graph:
    """A copy where weight-only quantized constants (ternary, int4 in a float graph) hold float values again:
    what PTQ and training take. Values are exact (scale x integer)."""
    out = g.copy()
    for t in list(out.tensors.values()):
        if t.data is not None and t.quant is not None and t.dtype not in FLOAT_DTYPES:
            out.tensors[t.name] = Tensor(t.name, t.shape, "float32", None, t.float_data(), dict(t.meta))
    return out


def report_warnings(report: dict) -> list[str]:
    """Warnings an action's report carries for the user (its own, and PTQ's: calibration, what was clamped), once
    each: what the CLI prints and the Compress page shows."""
    found = list(report.get("warnings") or []) + list((report.get("ptq") or {}).get("warnings") or [])
    return [w for w in dict.fromkeys(found) if isinstance(w, str)]


def float_form(g: Graph) -> Graph:
    """An int8 graph (quantized activations) as the float graph it approximates, so that actions which train or
    cut channels can follow quantization: constants dequantized exactly (scale x integer), activations float32,
    Quantize/DequantizeLinear nodes become Identity. The layout (NHWC) and meta["input_layout"] stay, so data
    sets in channels-first order still feed it; meta["quantization"] (the int8 I/O grids) goes."""
    from engine.passes.noops import remove_noops
    from engine.validate import infer_shapes

    out = g.copy()
    for t in list(out.tensors.values()):
        if t.quant is None:
            continue  # float tensors, and integer constants that are not quantized values (shapes, indices)
        data = t.float_data() if t.data is not None else None
        out.tensors[t.name] = Tensor(t.name, t.shape, "float32", None, data, dict(t.meta))
    for i, n in enumerate(out.nodes):
        if n.op in QUANT_BOUNDARY:
            out.nodes[i] = Node("Identity", n.name, n.inputs[:1], n.outputs, {})
    out.meta = {k: v for k, v in out.meta.items() if k != "quantization"}
    out, _ = remove_noops(infer_shapes(out))
    return out


def subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At most n samples, drawn without replacement with a fixed seed (all of them when n is None)."""
    if n is None or n >= len(x):
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return x[idx], y[idx]
