"""The user's own version as a search space (filled in next)."""
from __future__ import annotations


def version_space(graph, marks):
    raise NotImplementedError("version_space: being written on branch search")
