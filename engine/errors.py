"""Errors a user can cause. Each carries one readable line naming what is wrong (file, node, op, field).

The CLI prints `str(err)` and exits non-zero; only errors of these types are treated as user errors,
anything else is a bug and keeps its traceback.

Names inside messages come from user files (tensor and node names, file names, attribute strings) and may
hold newlines or control bytes. `GraphError` and `ModelFormatError` (and their subclasses) escape every
control character of the finished message, so a crafted name can never break the one-line contract or
forge a second line in a log; `one_line` does the same for any other text.
"""
from __future__ import annotations

import re

# C0/C1 control characters, DEL and the Unicode line/paragraph separators: everything a terminal, a log or
# str.splitlines() could treat as a line break or an escape sequence.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` with every control character escaped (\\n, \\r, \\t, \\xNN, \\uNNNN): printable on one line."""
    text = str(text)
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                                               else f"\\u{ord(m.group()):04x}"), text)


class TinyStudioError(Exception):
    """Base class of every error caused by user input."""


class GraphError(TinyStudioError):
    """The graph is not well formed: dangling input, cycle, shape mismatch, bad attribute."""

    def __init__(self, message: str, node: str | None = None, op: str | None = None):
        where = ""
        if node is not None:
            where = f"node '{node}'" + (f" ({op})" if op else "") + ": "
        super().__init__(one_line(where + message))
        self.node = node
        self.op = op


class ModelFormatError(TinyStudioError):
    """A model file could not be read: wrong magic, truncated, corrupted, unsafe paths."""

    def __init__(self, path: str, message: str):
        super().__init__(one_line(f"{path}: {message}"))
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
