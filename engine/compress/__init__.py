"""Compression actions: each a function Graph -> Graph + report, with what it buys and costs measured.

    from engine.compress import compress, list_actions
    res = compress(graph, "prune-channels", {"keep": 0.5, "criterion": "l1"}, data=load_dataset("digits"))
    res.graph                      # the new graph (the input is never touched)
    res.before, res.after          # {"macs", "weight_bytes", "activation_peak_bytes", "accuracy", ...}
    res.report                     # what the action did (per-layer details, training history, warnings)
    res.to_json()                  # the `tinystudio compress --json` document

Actions (one small module each): fold-bn, quantize-int8, qat-int8, mixed-precision, ternary,
prune-magnitude, prune-channels, low-rank, distill, early-exit. Each declares its parameters
(`list_actions()`); unknown actions and parameters are one-line errors listing the valid ones.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.compress import (distill, early_exit, fold, lowrank, mixed, prune_channels, quantize, sparse,
                             ternary)
from engine.compress.base import (Action, ActionContext, CompressError, Param, float_form, is_quantized_graph,
                                  parse_params)
from engine.compress.measure import measure
from engine.ir import Graph
from engine.passes.base import Contract

__all__ = ["ACTIONS", "Action", "CompressError", "CompressResult", "Param", "compress", "get_action",
           "list_actions", "load_model_param", "parse_params"]

ACTIONS: dict[str, Action] = {a.name: a for a in (
    fold.ACTION, quantize.PTQ_ACTION, quantize.QAT_ACTION, mixed.ACTION, ternary.ACTION, sparse.ACTION,
    prune_channels.ACTION, lowrank.ACTION, distill.ACTION, early_exit.ACTION)}


def get_action(name: str) -> Action:
    a = ACTIONS.get(str(name).strip().lower())
    if a is None:
        raise CompressError(f"unknown action '{name}'; actions: {', '.join(ACTIONS)}")
    return a


def list_actions() -> list[dict]:
    return [a.to_json() for a in ACTIONS.values()]


@dataclass
class CompressResult:
    action: str
    params: dict
    graph: Graph
    before: dict
    after: dict
    report: dict
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        params = {k: (v.name if isinstance(v, Graph) else v) for k, v in self.params.items()}
        delta = {k: (self.after[k] - self.before[k]) for k in ("macs", "weight_bytes", "activation_peak_bytes",
                                                                "accuracy")
                 if self.before.get(k) is not None and self.after.get(k) is not None}
        return {"action": self.action, "params": params, "before": self.before, "after": self.after, "delta": delta,
                "report": _clean(self.report), "notes": list(self.notes), "seconds": round(self.seconds, 2)}


def _clean(v):
    """JSON-safe: numpy scalars/arrays to Python, inf/nan to strings/None."""
    import math

    import numpy as np
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def load_model_param(value: str) -> Graph:
    """A model named on the command line: a .tsgraph, a model file or a zoo: spec."""
    if value.lower().endswith(".tsgraph"):
        from engine.serialize import load
        return load(value)
    from engine.importers import load_model
    return load_model(value)


def compress(graph: Graph, action: str, params: dict[str, Any] | None = None, data=None, *,
             teacher: Graph | None = None, progress: Callable[[float, str], None] | None = None,
             seed: int = 0, measure_before: dict | None = None) -> CompressResult:
    """Run one action under the pass contract (engine.passes.base.Contract) and measure before and after (see the
    module docstring).

    data: an engine.data.Dataset (needed by every action but fold-bn, which then reports no accuracy).
    teacher: the distillation teacher (the previous version); overrides params["teacher"].
    measure_before: figures of `graph` already measured (the studio has them), to skip measuring twice.
    """
    spec = get_action(action)
    p = parse_params(spec, params)
    if teacher is not None and "teacher" in spec.params:
        p["teacher"] = teacher
    for k, ps in spec.params.items():
        if ps.type == "model" and isinstance(p[k], str):
            p[k] = load_model_param(p[k])
    if spec.needs_data and data is None:
        raise CompressError(f"action '{spec.name}' needs a data set (e.g. --dataset digits)")
    start = time.perf_counter()
    # The pass contract; an action may add outputs (an early exit) and keeps what it leaves unread.
    contract = Contract("action", spec.name, prune=False, extra_outputs=True)
    work = contract.enter(graph)  # validates; a private deep copy the action may edit
    if data is not None:  # channels-last graphs that do not say so get the transpose recorded (see adapt_input_layout)
        from engine.train.graphs import adapt_input_layout
        work = adapt_input_layout(work, data.input_shape)
    before = measure_before if measure_before is not None else measure(work, data)
    notes = []
    # Any action after any action: an int8 version is worked on as the float graph it approximates (weights
    # dequantized exactly); the actions that quantize give int8 again, the others float, and say so.
    if is_quantized_graph(work):
        work = float_form(work)
        notes.append("the version is int8: the action ran on its float form (weights dequantized exactly)"
                     + ("" if spec.name in ("quantize-int8", "qat-int8", "mixed-precision") else
                        "; the result is float, quantize it again (quantize-int8 or qat-int8) to deploy int8"))
    if isinstance(p.get("teacher"), Graph) and is_quantized_graph(p["teacher"]):
        p["teacher"] = float_form(p["teacher"])
    ctx = ActionContext(data, progress, seed)
    out, report = spec.run(work, p, ctx)
    out = contract.leave(graph, out)
    out.meta = {**out.meta, "compressed": [*graph.meta.get("compressed", []),
                                           {"action": spec.name,
                                            "params": {k: (v.name if isinstance(v, Graph) else v)
                                                       for k, v in p.items()}}]}
    after = measure(out, data)
    if spec.name == "prune-magnitude":
        notes.append("weight_bytes and macs are dense figures; see report.storage_bytes for sparse storage")
    return CompressResult(spec.name, p, out, before, after, report, time.perf_counter() - start, notes)
