"""Zoo entries, their parameter schema, and the "zoo:name?key=value&..." spec strings.

    entry = ZooEntry("lenet5", "LeNet-5 ...", "image_classification", {"classes": ParamSpec("int", 10, ...)}, build)
    name, given = parse_spec("zoo:lenet5?classes=4", ZOO)     # ("lenet5", {"classes": 4})
    canonical_spec("lenet5", resolved)                         # "zoo:lenet5?resolution=32&...&seed=0"

Every user mistake (unknown model, unknown parameter, bad value) is a ZooSpecError with one line that lists
what would have been valid, so the CLI can print it as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.errors import TinyStudioError
from engine.ir import Graph

PREFIX = "zoo:"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ZooSpecError(TinyStudioError):
    """A zoo spec names an unknown model or parameter, or gives a value of the wrong type or range."""


@dataclass(frozen=True)
class ParamSpec:
    type: str  # "int" | "float" | "bool" | "str"
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None

    def describe(self) -> str:
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        if self.type == "bool":
            return "true|false"
        lo = "" if self.min is None else f"{self.min}"
        hi = "" if self.max is None else f"{self.max}"
        return f"{self.type} {lo}..{hi}" if (lo or hi) else self.type

    def to_json(self, name: str) -> dict:
        return {"name": name, "type": self.type, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices else None, "min": self.min, "max": self.max}


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    task: str
    params: dict[str, ParamSpec]
    build: Callable[..., Graph] = field(repr=False)  # build(**resolved params) -> Graph

    def defaults(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.params.items()}


def _param_list(entry: ZooEntry) -> str:
    return ", ".join(f"{k} ({p.describe()}, default {format_value(p.default)})" for k, p in entry.params.items())


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def check_value(entry: ZooEntry, key: str, value: Any) -> Any:
    """`value` (a Python value or the text from a spec) converted to the parameter's type and range-checked."""
    p = entry.params.get(key)
    if p is None:
        raise ZooSpecError(f"zoo model '{entry.name}' has no parameter '{key}'; parameters: {_param_list(entry)}")
    bad = f"zoo model '{entry.name}': parameter '{key}' must be {p.describe()}, got {value!r}"
    if p.type == "bool":
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            v = value.strip().lower() in _TRUE
        elif isinstance(value, (bool, int)) and value in (0, 1):
            v = bool(value)
        else:
            raise ZooSpecError(bad)
    elif p.type == "int":
        try:
            v = int(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise ZooSpecError(bad) from None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ZooSpecError(bad)
    elif p.type == "float":
        try:
            v = float(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise ZooSpecError(bad) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ZooSpecError(bad)
        v = float(v)
    else:
        v = value.strip() if isinstance(value, str) else value
    if p.choices is not None and v not in p.choices:
        raise ZooSpecError(bad)
    if (p.min is not None and v < p.min) or (p.max is not None and v > p.max):
        raise ZooSpecError(bad)
    return v


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
    return PREFIX + name + "?" + "&".join(f"{k}={format_value(v)}" for k, v in params.items())


# ---- the common parameters, one definition each so every family spells them the same way ---------------
def p_width(default: float = 1.0) -> ParamSpec:
    return ParamSpec("float", default, "width multiplier applied to every layer's channel count", min=0.05, max=4.0)


def p_resolution(default: int, min_: int = 8, max_: int = 1024) -> ParamSpec:
    return ParamSpec("int", default, "input height and width in pixels", min=min_, max=max_)


def p_classes(default: int) -> ParamSpec:
    return ParamSpec("int", default, "number of output classes", min=1, max=100000)


def p_channels(default: int) -> ParamSpec:
    return ParamSpec("int", default, "input channels", min=1, max=64)


def p_bn() -> ParamSpec:
    return ParamSpec("bool", True, "BatchNormalization after each conv (training form); false builds the "
                                   "deployed form with BN folded into conv biases")


def p_seed() -> ParamSpec:
    return ParamSpec("int", 0, "seed of the random initialization", min=0, max=2**31 - 1)
