"""The user's own version as a search space: attributes on the canvas marked as choices, searched around
the current design.

    space = version_space(graph, {"conv1.channels": [8, 16, 24], "conv2.kernel": [3, 5]})
    g = space.build({"conv1.channels": 24, "conv2.kernel": 5}, input_shape, classes, seed=0)

Knobs are "NODE.ATTR": `channels` (output channels of a Conv, units of a Gemm), `kernel` and `stride` (Conv).
A candidate is the version with those attributes changed; every constant whose shape the change touches
(that layer's weights and bias, the BatchNormalization after it, the input side of the next Conv or Gemm,
a depthwise conv's channels) is re-initialized (He normal, seeded), every other weight keeps its value.
Without marks, `default_marks` marks every hidden Conv/Gemm's channels at 0.5-1.5x their current count.
A block's repeat count is not a knob: the IR (and the canvas) have no notion of a repeated block to vary.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from engine.errors import TinyStudioError
from engine.ir import Graph, Tensor
from engine.search.spaces import Knob, Space

ATTRS = {"Conv": ("channels", "kernel", "stride"), "Gemm": ("channels",)}
CHANNEL_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)


def valid_knobs(graph: Graph) -> list[str]:
    outs = set(graph.outputs)
    return [f"{n.name}.{a}" for n in graph.nodes if n.op in ATTRS for a in ATTRS[n.op]
            if not (a == "channels" and (_depthwise(graph, n) or _feeds_output(graph, n, outs)))]


def _depthwise(g: Graph, n) -> bool:
    grp = int(n.attrs.get("group", 1))
    return n.op == "Conv" and grp > 1 and grp == g.tensors[n.inputs[0]].shape[1]


def _feeds_output(g: Graph, n, outs: set) -> bool:
    """The layer's output count is the model's output (classes): not a knob. Followed through a few
    single-reader layers without weights (Softmax, activations, reshapes)."""
    t = n.outputs[0]
    for _ in range(8):
        if t in outs:
            return True
        readers = [m for m in g.nodes if t in m.inputs]
        if len(readers) != 1 or readers[0].op in ATTRS:
            return False
        t = readers[0].outputs[0]
    return t in outs


def default_marks(graph: Graph) -> dict[str, list]:
    marks = {}
    for knob in valid_knobs(graph):
        name, attr = knob.rsplit(".", 1)
        if attr != "channels":
            continue
        c = graph.tensors[graph.node(name).inputs[1]].shape[0]
        marks[knob] = sorted({max(1, int(round(c * f))) for f in CHANNEL_FACTORS})
    if not marks:
        raise TinyStudioError(f"graph '{graph.name}' has no Conv or hidden Gemm layer whose channels could be "
                              "searched; mark knobs NODE.ATTR explicitly")
    return marks


def _check_value(knob: str, attr: str, v):
    if attr == "kernel":
        if isinstance(v, (list, tuple)):
            return tuple(int(x) for x in v)
        return int(v)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise TinyStudioError(f"knob '{knob}': choices must be positive whole numbers, got {v!r}")
    return int(v)


def version_space(graph: Graph, marks: dict[str, list] | None) -> Space:
    """A Space whose knobs are the marked "NODE.ATTR" choices of `graph` (see the module docstring). Unknown
    knobs and choices that do not give a valid graph are one-line errors listing the valid knobs.
    marks None: the marks the version carries (meta "search_marks"), else default_marks; {}: no architecture
    knob at all (the architecture fixed: training hyperparameters and compression searched alone)."""
    if marks is None:
        marks = graph.meta.get("search_marks") or default_marks(graph)
    valid = valid_knobs(graph)
    knobs = []
    for knob, choices in marks.items():
        if knob not in valid:
            shown = ", ".join(valid[:24]) + (f", ... ({len(valid)} in all)" if len(valid) > 24 else "")
            raise TinyStudioError(f"unknown knob '{knob}' for graph '{graph.name}'; knobs: {shown or '(none)'}")
        attr = knob.rsplit(".", 1)[1]
        values = [_check_value(knob, attr, v) for v in (choices if isinstance(choices, (list, tuple)) else [choices])]
        if not values:
            raise TinyStudioError(f"knob '{knob}': give at least one choice")
        key = (lambda v: math.prod(v) if isinstance(v, tuple) else v)
        knobs.append(Knob(knob, tuple(sorted(dict.fromkeys(values), key=key)), f"{attr} of {knob.rsplit('.', 1)[0]}"))
    space = Space("version", f"the version '{graph.name}' with {len(knobs)} marked knobs", tuple(knobs),
                  functools.partial(_build_version, graph), "version")
    for k in knobs:  # each choice alone must give a valid graph: say which does not, now rather than per trial
        for v in k.choices:
            try:
                apply_marks(graph, {k.name: v}, seed=0)
            except TinyStudioError as e:
                raise TinyStudioError(f"knob '{k.name}' = {v}: {e}") from None
    return space


def _build_version(graph: Graph, params: dict, input_shape, classes: int, seed: int) -> Graph:
    g = apply_marks(graph, params, seed)
    g.meta["source"] = {"format": "search", "space": "version", "base": graph.name,
                        "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}}
    return g


def apply_marks(graph: Graph, params: dict, seed: int = 0) -> Graph:
    """A copy of `graph` with each "NODE.ATTR" set and the constants whose shapes change re-initialized."""
    from engine.validate import infer_node, infer_shapes

    g = graph.copy()
    rng = np.random.default_rng(seed)
    want: dict[str, dict] = {}
    for knob, v in params.items():
        name, attr = knob.rsplit(".", 1)
        want.setdefault(name, {})[attr] = v
    old_in = {n.name: graph.tensors[n.inputs[0]].shape for n in graph.nodes if n.inputs and n.inputs[0] in
              graph.tensors}
    for n in g.nodes:
        x = g.tensors[n.inputs[0]].shape if n.inputs and n.inputs[0] in g.tensors else None
        if n.op == "Conv":
            _conv(g, n, x, old_in[n.name], want.get(n.name, {}), rng)
        elif n.op == "Gemm":
            _gemm(g, n, x, want.get(n.name, {}), rng)
        elif n.op == "BatchNormalization" and x is not None:
            _bn(g, n, x[1])
        try:
            infer_node(g, n)
        except TinyStudioError as e:
            raise TinyStudioError(f"the changed shapes do not fit node '{n.name}' ({n.op}): {e}") from None
    return infer_shapes(g)


def _set_const(g: Graph, name: str, data: np.ndarray) -> None:
    t = g.tensors[name]
    g.tensors[name] = Tensor(name, data.shape, "float32", None, data.astype(np.float32), dict(t.meta))


def _conv(g: Graph, n, x, x_old, want: dict, rng) -> None:
    w = g.tensors[n.inputs[1]]
    m_old, cw_old, *k_old = w.shape
    grp = int(n.attrs.get("group", 1))
    depthwise = grp > 1 and grp == x_old[1]
    cin = x[1]
    if depthwise:
        n.attrs["group"] = cin
        m, cw = cin * (m_old // grp), 1
    else:
        if grp > 1 and cin % grp:
            raise TinyStudioError(f"node '{n.name}': {cin} input channels cannot be split in {grp} groups")
        m, cw = int(want.get("channels", m_old)), cin // grp
    k = want.get("kernel")
    k = tuple(k_old) if k is None else ((k,) * len(k_old) if isinstance(k, int) else tuple(k))
    if len(k) != len(k_old):
        raise TinyStudioError(f"node '{n.name}': kernel {list(k)} has {len(k)} dims, the conv {len(k_old)}")
    if k != tuple(k_old):
        n.attrs["kernel_shape"] = list(k)
        if "pads" in n.attrs:
            n.attrs["pads"] = [kk // 2 for kk in k] + [(kk - 1) // 2 for kk in k]
    if "stride" in want:
        n.attrs["strides"] = [int(want["stride"])] * len(k)
    if (m, cw, *k) != tuple(w.shape):
        fan_in = cw * math.prod(k)
        _set_const(g, n.inputs[1], rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(m, cw, *k)))
        if len(n.inputs) > 2 and n.inputs[2] and g.tensors[n.inputs[2]].shape != (m,):
            _set_const(g, n.inputs[2], np.zeros(m))


def _gemm(g: Graph, n, x, want: dict, rng) -> None:
    w = g.tensors[n.inputs[1]]
    trans = bool(n.attrs.get("transB", 0))
    units_old = w.shape[0] if trans else w.shape[1]
    units, k = int(want.get("channels", units_old)), x[-1]
    shape = (units, k) if trans else (k, units)
    if shape != tuple(w.shape):
        _set_const(g, n.inputs[1], rng.normal(0.0, math.sqrt(1.0 / k), size=shape))
        if len(n.inputs) > 2 and n.inputs[2] and g.tensors[n.inputs[2]].data is not None \
                and g.tensors[n.inputs[2]].shape not in ((units,), (1, units)):
            _set_const(g, n.inputs[2], np.zeros(units))


def _bn(g: Graph, n, c: int) -> None:
    if g.tensors[n.inputs[1]].shape == (c,):
        return
    for i, fill in zip(range(1, 5), (1.0, 0.0, 0.0, 1.0)):  # scale, B, mean, var
        _set_const(g, n.inputs[i], np.full(c, fill))
