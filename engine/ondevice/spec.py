"""What is trained on the device: the SPEC text, its parsed form, and the concrete set of layers it updates.

    spec = parse_spec("last:2")           # TrainSpec(kind="last", k=2)
    plan = resolve(graph, spec)           # UpdatePlan(layers=("fc1", "fc2"), channel_fraction={...}, bias_only=())
    plan = resolve(graph, parse_spec("sparse:262144"), data=dataset)   # the sparse-update planner (sparse.py)

SPEC: `all` (every weighted layer), `last:K` (the last K weighted layers in execution order), `bias` (the
biases of every weighted layer only), `sparse:BYTES` (the planner's choice under that training-SRAM budget).
A weighted layer is a Conv / ConvTranspose / Gemm / MatMul node whose weight (input 1) is a constant.
`layers` lists the layers whose weights change, `bias_only` those whose bias only changes; `channel_fraction`
gives, per layer of `layers`, the fraction of output channels updated (1.0 = all; the first ones in order,
as MIT's sparse update does).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import TinyStudioError
from engine.ir import Graph

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
KINDS = ("all", "last", "bias", "sparse")
SPEC_HELP = "all, last:K, bias or sparse:BYTES"


@dataclass(frozen=True)
class TrainSpec:
    kind: str  # "all" | "last" | "bias" | "sparse"
    k: int = 0
    budget_bytes: int = 0

    def text(self) -> str:
        return {"last": f"last:{self.k}", "sparse": f"sparse:{self.budget_bytes}"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class UpdatePlan:
    layers: tuple[str, ...]
    channel_fraction: dict[str, float] = field(default_factory=dict)
    bias_only: tuple[str, ...] = ()

    def fraction(self, layer: str) -> float:
        return self.channel_fraction.get(layer, 1.0)

    def to_json(self) -> dict:
        return {"layers": list(self.layers), "channel_fraction": {k: self.fraction(k) for k in self.layers},
                "bias_only": list(self.bias_only)}


def _int(text: str, what: str) -> int:
    try:
        v = int(text.replace("_", ""))
    except ValueError:
        raise TinyStudioError(f"training spec: {what} '{text}' is not an integer ({SPEC_HELP})") from None
    if v <= 0:
        raise TinyStudioError(f"training spec: {what} must be positive, got {v} ({SPEC_HELP})")
    return v


def parse_spec(text: str) -> TrainSpec:
    """TrainSpec from `all`, `last:K`, `bias`, `sparse:BYTES` (BYTES may end in K or KB: 256K = 262144)."""
    t = (text or "").strip().lower()
    kind, _, arg = t.partition(":")
    if kind in ("all", "bias"):
        if arg:
            raise TinyStudioError(f"training spec '{text}': '{kind}' takes no argument ({SPEC_HELP})")
        return TrainSpec(kind)
    if kind == "last":
        return TrainSpec("last", k=_int(arg, "K"))
    if kind == "sparse":
        mult = 1
        for suffix in ("kb", "k"):
            if arg.endswith(suffix):
                arg, mult = arg[: -len(suffix)], 1024
                break
        return TrainSpec("sparse", budget_bytes=_int(arg, "BYTES") * mult)
    raise TinyStudioError(f"training spec '{text}' is not one of {SPEC_HELP}")


def weighted_layers(graph: Graph) -> list[str]:
    """Nodes with a constant weight, in execution (topological) order."""
    from engine.validate import topological_order

    out = []
    for n in topological_order(graph):
        if n.op in WEIGHTED_OPS and len(n.inputs) > 1:
            w = graph.tensors.get(n.inputs[1])
            if w is not None and w.data is not None:
                out.append(n.name)
    return out


def has_bias(graph: Graph, layer: str) -> bool:
    n = next(n for n in graph.nodes if n.name == layer)
    return len(n.inputs) > 2 and bool(n.inputs[2]) and graph.tensors[n.inputs[2]].data is not None


def resolve(graph: Graph, spec: TrainSpec, data=None) -> UpdatePlan:
    """The layers `spec` updates in `graph` (sparse: the planner of engine.ondevice.sparse, which needs `data`).
    Layers are named as in the int8 graph the device runs (BN folded: a conv gains a bias there)."""
    from engine.ondevice.memory import deployed

    g = deployed(graph)[0]
    layers = weighted_layers(g)
    if not layers:
        raise TinyStudioError(f"model '{graph.name}' has no layer with constant weights "
                              f"({', '.join(WEIGHTED_OPS)}): nothing to train on the device")
    if spec.kind == "all":
        return UpdatePlan(tuple(layers), {k: 1.0 for k in layers})
    if spec.kind == "last":
        if spec.k > len(layers):
            raise TinyStudioError(f"training spec last:{spec.k}: the model has only {len(layers)} weighted layers")
        chosen = tuple(layers[-spec.k:])
        return UpdatePlan(chosen, {k: 1.0 for k in chosen})
    if spec.kind == "bias":
        return UpdatePlan((), {}, tuple(k for k in layers if has_bias(g, k)))
    if spec.kind == "sparse":
        from engine.ondevice.sparse import plan_sparse

        return plan_sparse(graph, spec.budget_bytes, data).plan
    raise TinyStudioError(f"training spec kind '{spec.kind}' is not one of {', '.join(KINDS)}")
