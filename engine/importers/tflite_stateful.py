"""TFLite handlers of stateful ops, whose state is a variable tensor (engine/state.py): SVDF."""
from __future__ import annotations

from engine.importers.tflite_builder import Builder

# tflite-micro's float SVDF applies the fused activation with ActivationValFloat (TANH and SIGMOID included).
_SVDF_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 6: "sigmoid"}


def svdf(b: Builder) -> None:
    x = b.rec(b.input(0, "input"))
    state = b.rec(b.input(4, "activation state"))
    if not state.variable:
        raise b.error(f"the activation state '{state.name}' is not a variable tensor (is_variable is false)")
    code = int(b.opt("FusedActivationFunction", 0))
    if code not in _SVDF_ACTIVATIONS:
        raise b.error(f"fused activation {code} is not supported")
    act = _SVDF_ACTIVATIONS[code]
    if x.dtype != "float32" and act != "none":
        # tflite-micro's integer SVDF only clamps to int8: the fused activation computes nothing there.
        b.ignored_activation, act = act.upper(), "none"
    rank = int(b.opt("Rank", 0))
    if rank < 1:
        raise b.error(f"rank {rank} must be at least 1")
    ins = [b.tensor(x.index), b.tensor(b.input(1, "weights_feature")), b.tensor(b.input(2, "weights_time")),
           *(b.optional(3) or [""]), b.tensor(state.index)]
    b.add("SVDF", ins, [b.out()], rank=rank, activation=act)
