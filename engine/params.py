"""Declared parameters: one schema class for zoo models and compression actions, one parser for both.

    params = {"keep": Param("float", 0.5, "fraction to keep", min=0.0, max=1.0, min_open=True)}
    parse_param(params, "action 'prune'", "keep", "0.25", CompressError)     # -> 0.25
    parse_param(params, "action 'prune'", "keep", "0", CompressError)
    # CompressError: action 'prune': parameter 'keep' must be float (0..1], got '0'

Values arrive as Python values or as text (a spec string, a `--param key=value`); both are converted to the
declared type and range-checked here, so the zoo and the compression actions accept exactly the same spellings.
`spec=True` spells ranges and defaults the way zoo spec strings are written (`float 0.05..4.0`, `default true`);
the zoo's messages have always read that way, the actions' read `float [0.05..4]`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    type: str  # "int" | "float" | "bool" | "str" | "model" (a Graph, or a path / zoo: spec to load)
    default: Any
    help: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False  # the minimum itself is not allowed (e.g. a fraction in (0, 1])

    def describe(self, spec: bool = False) -> str:
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        if self.type == "bool":
            return "true|false"
        if self.type == "model":
            return "FILE|zoo:NAME"
        lo = "" if self.min is None else (f"{self.min}" if spec else f"{self.min:g}")
        hi = "" if self.max is None else (f"{self.max}" if spec else f"{self.max:g}")
        if not (lo or hi):
            return self.type
        return f"{self.type} {lo}..{hi}" if spec else f"{self.type} {'(' if self.min_open else '['}{lo}..{hi}]"

    def to_json(self, name: str) -> dict:
        return {"name": name, "type": self.type, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices else None, "min": self.min, "max": self.max}

    def convert(self, value: Any) -> Any:
        """`value` in the declared type; ValueError when it is not one (the caller words the message)."""
        if self.type == "model":
            from engine.ir import Graph
            if isinstance(value, Graph) or (isinstance(value, str) and value.strip()):
                return value.strip() if isinstance(value, str) else value
            raise ValueError(value)
        if self.type == "bool":
            if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
                return value.strip().lower() in TRUE
            if isinstance(value, (bool, int)) and value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if self.type in ("int", "float"):
            v = (int(value.strip()) if self.type == "int" else float(value.strip())) if isinstance(value, str) \
                else value  # int("2.5") and float("x") raise ValueError themselves
            if isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or (self.type == "int" and not isinstance(v, int)):
                raise ValueError(value)
            v = float(v) if self.type == "float" else int(v)
            if not math.isfinite(v) or (self.min is not None and (v < self.min or (self.min_open and v == self.min))) \
                    or (self.max is not None and v > self.max):
                raise ValueError(value)
        else:
            v = value.strip() if isinstance(value, str) else value
            if not isinstance(v, str):
                raise ValueError(value)
        if self.choices is not None and v not in self.choices:
            raise ValueError(value)
        return v


def format_value(v: Any, spec: bool = False) -> str:
    """A value as messages show it; `spec=True`: as a zoo spec string writes it (true/false, repr of floats)."""
    if not spec:
        return f"{v}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def param_list(params: dict[str, Param], spec: bool = False) -> str:
    """`name (type range, default value), ...` for messages that list the valid parameters."""
    return ", ".join(f"{k} ({p.describe(spec)}, default {format_value(p.default, spec)})"
                     for k, p in params.items()) or "none"


def parse_param(params: dict[str, Param], owner: str, key: str, value: Any, error: type[Exception],
                spec: bool = False) -> Any:
    """`params[key]`'s conversion of `value`; an unknown key or a bad value raises `error` naming `owner`."""
    p = params.get(key)
    if p is None:
        raise error(f"{owner} has no parameter '{key}'; parameters: {param_list(params, spec)}")
    try:
        return p.convert(value)
    except ValueError:
        raise error(f"{owner}: parameter '{key}' must be {p.describe(spec)}, got {value!r}") from None
