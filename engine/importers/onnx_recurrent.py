"""ONNX LSTM, GRU and RNN -> the IR's recurrent ops (engine/ops/recurrent.py), which are ONNX's time-major
form: a batch-major `layout=1` node becomes Transposes around the time-major op, so the IR keeps one meaning."""
from __future__ import annotations

import numpy as np

from engine.importers.onnx_context import HandlerTable

HANDLERS = HandlerTable()

_COMMON = ("activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size")
_EXTRA = {"LSTM": ("input_forget",), "GRU": ("linear_before_reset",), "RNN": ()}
_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}


def _transposed(imp, n, name: str, perm: list[int]) -> str:
    if name in imp.consts:
        return imp.new_const(f"{name}/time_major", np.transpose(imp.consts[name], perm))
    return imp.emit(n, "Transpose", [name], attrs={"perm": perm}, suffix="Transpose")


@HANDLERS.handles("LSTM", "GRU", "RNN")
def _recurrent(imp, n, a):
    layout = a.pop("layout", 0)
    if layout not in (0, 1):
        raise imp.fail(n, f"attribute layout={layout!r} is not supported (only 0 or 1)")
    if a.get("direction", "forward") not in ("forward", "reverse", "bidirectional"):
        raise imp.fail(n, f"attribute direction={a['direction']!r} is not supported (forward, reverse, bidirectional)")
    attrs = imp.attrs(n, a, _COMMON + _EXTRA[n.op])
    n_out = 3 if n.op == "LSTM" else 2
    if len(n.outs) > n_out:
        raise imp.fail(n, f"has {len(n.outs)} outputs; {n.op} has at most {n_out}")
    ins = list(n.ins)
    if layout == 1:  # batch-major: X (batch, seq, input), states (batch, dirs, H)
        if ins[0]:
            ins[0] = _transposed(imp, n, ins[0], [1, 0, 2])
        for i in _STATE_INPUTS[n.op]:
            if i < len(ins) and ins[i]:
                ins[i] = _transposed(imp, n, ins[i], [1, 0, 2])
    # Every output the IR node writes needs a tensor name; unused trailing ones are left off.
    wanted = [o for o in n.outs]
    while wanted and not wanted[-1]:
        wanted.pop()
    if not wanted:
        wanted = [""]
    outs = [o if o and layout == 0 else imp.fresh_tensor(f"{n.name}/{n.op}_{k}") for k, o in enumerate(wanted)]
    imp.emit(n, n.op, ins, outs, attrs)
    if layout == 1:
        for k, (o, final) in enumerate(zip(wanted, outs)):
            if o:  # Y (seq, dirs, batch, H) -> (batch, seq, dirs, H); Y_h, Y_c (dirs, batch, H) -> (batch, dirs, H)
                imp.emit(n, "Transpose", [final], [o], {"perm": [2, 0, 1, 3] if k == 0 else [1, 0, 2]},
                         suffix="Transpose")
