"""What an aten op handler (engine/importers/pt2_aten_nn.py, pt2_aten_tensor.py) is given.

Each handler gets the converter, the node's arguments by schema name (defaults filled in from the
overload's schema, tensors as `Ref`) and the serialized output names, and emits IR nodes through
`cx.emit` (which folds nodes whose inputs are all constants). A handler module keeps a table and registers
with `handles = engine.registry.registrar(TABLE)`, then `@handles("name.overload")`.
"""
from __future__ import annotations

from typing import Callable

INT64_MAX = 2**63 - 1


class Ref(str):
    """A tensor operand (its serialized name), as opposed to a str attribute."""


Handler = Callable[..., None]  # (converter, args, outputs) -> None
