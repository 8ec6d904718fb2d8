"""Zoo entries, their parameter schema, and the "zoo:name?key=value&..." spec strings.

    entry = ZooEntry("lenet5", "LeNet-5 ...", "image_classification", {"classes": ParamSpec("int", 10, ...)}, build)
    name, given = parse_spec("zoo:lenet5?classes=4", ZOO)     # ("lenet5", {"classes": 4})
    canonical_spec("lenet5", resolved)                         # "zoo:lenet5?resolution=32&...&seed=0"

Every user mistake (unknown model, unknown parameter, bad value) is a ZooSpecError with one line that lists
what would have been valid, so the CLI can print it as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from engine.errors import TinyStudioError
from engine.ir import Graph
from engine.params import Param, format_value, param_list, parse_param

PREFIX = "zoo:"


class ZooSpecError(TinyStudioError):
    """A zoo spec names an unknown model or parameter, or gives a value of the wrong type or range."""


# The zoo's name for the shared parameter class (engine.params), kept for the model families' imports.
ParamSpec = Param


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    task: str
    params: dict[str, Param]
    build: Callable[..., Graph] = field(repr=False)  # build(**resolved params) -> Graph

    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}


def _param_list(entry: ZooEntry) -> str:
    return param_list(entry.params, spec=True)


def check_value(entry: ZooEntry, key: str, value: Any) -> Any:
    """`value` (a Python value or the text from a spec) converted to the parameter's type and range-checked."""
    return parse_param(entry.params, f"zoo model '{entry.name}'", key, value, ZooSpecError, spec=True)


def parse_spec(spec: str, zoo: dict[str, ZooEntry]) -> tuple[str, dict]:
    """("name", {given params, typed}) from "zoo:name?k=v&k2=v2" (the "zoo:" prefix is optional)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ZooSpecError(f"empty zoo spec; models: {', '.join(sorted(zoo))}")
    text = spec.strip()
    if text.lower().startswith(PREFIX):
        text = text[len(PREFIX):]
    name, _, query = text.partition("?")
    name = name.strip().lower()
    if name not in zoo:
        raise ZooSpecError(f"unknown zoo model '{name}' in '{spec}'; models: {', '.join(sorted(zoo))}")
    entry = zoo[name]
    given: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ZooSpecError(f"zoo spec '{spec}': '{part}' is not key=value; parameters: {_param_list(entry)}")
        if key in given:
            raise ZooSpecError(f"zoo spec '{spec}': parameter '{key}' is given twice")
        given[key] = check_value(entry, key, value)
    return name, given


def canonical_spec(name: str, params: dict[str, Any]) -> str:
    """Every parameter spelled out in declaration order, so the string alone rebuilds the same graph."""
    return PREFIX + name + "?" + "&".join(f"{k}={format_value(v, spec=True)}" for k, v in params.items())


# ---- the common parameters, one definition each so every family spells them the same way ---------------
def p_width(default: float = 1.0) -> Param:
    return Param("float", default, "width multiplier applied to every layer's channel count", min=0.05, max=4.0)


def p_resolution(default: int, min_: int = 8, max_: int = 1024) -> Param:
    return Param("int", default, "input height and width in pixels", min=min_, max=max_)


# p_classes(10), p_channels(3): only the default differs between families.
p_classes = partial(Param, "int", help="number of output classes", min=1, max=100000)
p_channels = partial(Param, "int", help="input channels", min=1, max=64)


def p_bn() -> Param:
    return Param("bool", True, "BatchNormalization after each conv (training form); false builds the "
                               "deployed form with BN folded into conv biases")


def p_seed() -> Param:
    return Param("int", 0, "seed of the random initialization", min=0, max=2**31 - 1)
