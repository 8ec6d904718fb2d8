"""Errors a user can cause. Each carries one readable line naming what is wrong (file, node, op, field).

The CLI prints `str(err)` and exits non-zero; only errors of these types are treated as user errors,
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class TinyStudioError(Exception):
    """Base class of every error caused by user input."""


class GraphError(TinyStudioError):
    """The graph is not well formed: dangling input, cycle, shape mismatch, bad attribute."""

    def __init__(self, message: str, node: str | None = None, op: str | None = None):
        where = ""
        if node is not None:
            where = f"node '{node}'" + (f" ({op})" if op else "") + ": "
        super().__init__(where + message)
        self.node = node
        self.op = op


class ModelFormatError(TinyStudioError):
    """A model file could not be read: wrong magic, truncated, corrupted, unsafe paths."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


class UnsupportedOpError(ModelFormatError):
    """The model uses an operator TinyStudio does not implement."""

    def __init__(self, path: str, op: str, node: str, supported: list[str]):
        super().__init__(
            path,
            f"unsupported op '{op}' at node '{node}'; supported ops: {', '.join(sorted(supported))}",
        )
        self.op = op
        self.node = node
