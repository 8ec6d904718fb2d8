"""The generated C's variable tensors (engine/state.py): static buffers outside the arena, in the model's .c.

    names = state_symbols(graph)        # {"state": "state_0", ...}: the C array of each variable
    lines = state_definitions(graph, prefix)  # the buffers, their initial values and <prefix>_reset_state()

Each variable keeps its value between <prefix>_run calls, as tflite-micro keeps its variable tensors between
invokes; <prefix>_reset_state() restores the initial values (tflite-micro's interpreter reset), and
<prefix>_init() calls it.
"""
from __future__ import annotations

import numpy as np

from engine.codegen.cwrite import CArray
from engine.errors import GraphError
from engine.ir import Graph, variables

_CTYPES = {"int8": "int8_t", "int16": "int16_t"}


def state_symbols(graph: Graph) -> dict[str, str]:
    return {t.name: f"state_{i}" for i, t in enumerate(variables(graph))}


def state_size(graph: Graph) -> int:
    """Bytes of the static state buffers."""
    return sum(t.nbytes for t in variables(graph))


def state_definitions(graph: Graph, prefix: str) -> tuple[list[str], list[CArray]]:
    """(C lines of the model's .c, const arrays of the initial values that are not all zero)."""
    lines = ["/* Variable tensors (the state of stateful ops), outside the arena; kept between runs. */"]
    reset = [f"void {prefix}_reset_state(void)", "{"]
    arrays = []
    for t in variables(graph):
        sym = state_symbols(graph)[t.name]
        if t.dtype not in _CTYPES:
            raise GraphError(f"variable tensor '{t.name}' is {t.dtype}; the generated C keeps int8 or int16 state")
        lines.append(f"static {_CTYPES[t.dtype]} {sym}[{max(t.size, 1)}];   /* '{t.name}' {list(t.shape)} */")
        init = np.asarray(t.data).reshape(-1)
        if init.any():
            arr = CArray(f"{prefix}_{sym}_init", _CTYPES[t.dtype], init, f"initial value of '{t.name}'")
            arrays.append(arr)
            reset.append(f"    memcpy({sym}, {arr.name}, sizeof {sym});")
        else:
            reset.append(f"    memset({sym}, 0, sizeof {sym});")
    if len(reset) == 2:
        reset.append("    /* the model has no state */")
    return lines + [""] + reset + ["}", ""], arrays
