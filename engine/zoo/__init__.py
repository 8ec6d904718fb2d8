"""The model zoo: published architectures built in code as IR graphs (float32, NCHW, ONNX ops), randomly
initialized from a seed, parameterized by a spec string.

    g = build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=144&last_channels=448")
    g.name                 # "zoo:mobilenetv2?width=0.35&resolution=144&classes=1000&channels=3&last_channels=448&..."
    g.meta["source"]       # {"format": "zoo", "spec": g.name}
    list_zoo()             # [{"name", "description", "task", "params": [{"name", "type", "default", ...}]}]

Defaults are the published configuration. Families live in one small module each; layers.py holds the
shared blocks. The same spec always gives the same graph (and content hash); the seed changes the weights.
"""
from __future__ import annotations

from typing import Any

from engine.ir import Graph
from engine.zoo import mlperf_tiny, mobilenet, resnet, small, transformer
from engine.zoo.spec import ParamSpec, ZooEntry, ZooSpecError, canonical_spec, check_value, parse_spec

__all__ = ["ZOO", "ParamSpec", "ZooEntry", "ZooSpecError", "build_zoo_model", "list_zoo", "parse_zoo_spec"]

ZOO: dict[str, ZooEntry] = {e.name: e for module in (mlperf_tiny, mobilenet, resnet, small, transformer)
                            for e in module.ENTRIES}


def parse_zoo_spec(spec: str) -> tuple[str, dict]:
    """("mobilenetv2", {"width": 0.35, ...}) from "zoo:mobilenetv2?width=0.35..."; only the given params, typed.
    Raises ZooSpecError (a TinyStudioError) with one line listing the valid models or parameters."""
    return parse_spec(spec, ZOO)


def resolve_params(spec_or_name: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """Model name and its full parameter set: defaults, then the spec's values, then `overrides`."""
    name, given = parse_zoo_spec(spec_or_name)
    entry = ZOO[name]
    params = entry.defaults()
    params.update(given)
    params.update({k: check_value(entry, k, v) for k, v in overrides.items()})
    return name, params


def build_zoo_model(spec_or_name: str, **overrides: Any) -> Graph:
    """Build the graph a spec describes; graph.name is the canonical spec (every parameter spelled out)."""
    name, params = resolve_params(spec_or_name, **overrides)
    graph = ZOO[name].build(**params)
    spec = canonical_spec(name, params)
    graph.name = spec
    graph.meta["source"] = {"format": "zoo", "spec": spec}
    return graph


def list_zoo() -> list[dict]:
    """One record per model for the CLI (`tinystudio zoo`) and the app, in a stable order."""
    return [{"name": e.name, "description": e.description, "task": e.task,
             "params": [p.to_json(k) for k, p in e.params.items()]}
            for e in sorted(ZOO.values(), key=lambda e: e.name)]
