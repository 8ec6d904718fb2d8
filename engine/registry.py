"""Tables of functions by name, filled by a decorator: the PyTorch planners per op, the aten handlers per overload.

    PLANNERS: dict[str, Planner] = {}
    plans = registrar(PLANNERS)

    @plans("Relu", "Relu6")
    def relu(ctx): ...          # PLANNERS["Relu"] is PLANNERS["Relu6"] is relu
"""
from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


def registrar(table: dict[str, Callable]) -> Callable[..., Callable[[F], F]]:
    """A decorator factory `@names("a", "b")` that enters the decorated function in `table` under each name."""
    def names(*keys: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            for key in keys:
                table[key] = fn
            return fn
        return deco
    return names
