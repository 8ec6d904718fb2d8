"""The graph a profile describes at a chosen precision: as is, as deployed (int8), or float32.

    g8, note = graph_at_precision(float_graph, "int8")   # what `tinystudio export` would generate C from
    g32, note = graph_at_precision(int8_graph, "float32")  # dequantized: every int8/int32 value as float32
    precision_of(graph)                                   # "int8" | "float32"

"int8" runs the export's own quantization (engine.passes.ptq.quantize_model: no-ops removed, Gemm
canonical, BN folded, activations fused, NHWC, per-channel int8 weights, int8 activations), so the memory
plan of that graph is the arena of the generated C. It calibrates on synthetic data: the structure, the
byte counts and the arena do not depend on calibration values, only the scales do (and the profile shows
no accuracy). Results are cached by the graph's content hash: the same version profiled on other MCUs or
at the other precision does not quantize again.
"""
from __future__ import annotations

from collections import OrderedDict

from engine.errors import TinyStudioError
from engine.ir import FLOAT_DTYPES, Graph, Tensor
from engine.ops import ops_where

PRECISIONS = ("as-is", "int8", "float32")
_CALIBRATION_SAMPLES = 2  # values do not matter for bytes and arena; two keep min/max ranges non-degenerate
_CACHE: OrderedDict[tuple[str, str], tuple[Graph, str]] = OrderedDict()
_CACHE_SIZE = 16


def is_int8(graph: Graph) -> bool:
    """Quantized activations (an int8 graph as imported from TFLite or made by PTQ), not only quantized weights."""
    return any(t.quant is not None and t.data is None and t.dtype not in FLOAT_DTYPES for t in graph.tensors.values())


def _int16_acts(graph: Graph) -> bool:
    return any(t.quant is not None and t.data is None and t.dtype == "int16" for t in graph.tensors.values())


def precision_of(graph: Graph) -> str:
    return "int8" if is_int8(graph) else "float32"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise TinyStudioError(f"precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    return precision


def graph_at_precision(graph: Graph, precision: str) -> tuple[Graph, str]:
    """(graph to profile, one-line note saying what it is). Raises TinyStudioError when the conversion is not
    possible (an op without an int8 kernel), naming the node and op."""
    check_precision(precision)
    have = precision_of(graph)
    # TFLite 16x8 graphs are quantized ("int8" as a family) with 2-byte activations: say so
    label = "int16x8 (int16 activations, int8 weights)" if _int16_acts(graph) else have
    if precision == "as-is":
        return graph, f"{label}, as the version is"
    if precision == have:
        return graph, f"{label}, as the version is"
    from engine.serialize import content_hash

    key = (content_hash(graph), precision)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    out = _deployed_int8(graph) if precision == "int8" else _dequantized(graph)
    _CACHE[key] = out
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def _deployed_int8(graph: Graph) -> tuple[Graph, str]:
    from engine.passes.ptq import quantize_model

    try:
        qgraph, _ = quantize_model(graph, synthetic_samples=_CALIBRATION_SAMPLES, per_layer=False)
    except TinyStudioError as e:
        raise TinyStudioError(f"int8 (as deployed) is not available for this model: {e}") from None
    removed = {op: sum(1 for n in graph.nodes if n.op == op) - sum(1 for n in qgraph.nodes if n.op == op)
               for op in ("BatchNormalization", "Relu", "Relu6", "Clip")}
    folded = ", ".join(f"{k} {v}" for k, v in removed.items() if v > 0)
    note = ("int8 as deployed: the graph the export generates C from (BN folded, activations fused, NHWC, "
            "per-channel int8 weights, int8 activations"
            + (f"; layers folded away: {folded}" if folded else "") + ")")
    return qgraph, note


def _dequantized(graph: Graph) -> tuple[Graph, str]:
    """Every quantized value as float32: the figures of running this int8 graph in float."""
    from engine.validate import infer_shapes

    g = graph.copy()
    for t in list(g.tensors.values()):
        if t.quant is None or t.dtype in FLOAT_DTYPES:
            continue
        data = t.float_data() if t.data is not None else None
        g.tensors[t.name] = Tensor(t.name, t.shape, "float32", None, data, dict(t.meta))
    q_ops = [n for n in g.nodes if n.op in ops_where(lambda op: op.quant_boundary)]
    if q_ops:
        raise TinyStudioError(f"float32 figures are not available for this int8 model: node '{q_ops[0].name}' "
                              f"({q_ops[0].op}) has no float32 form")
    try:
        g = infer_shapes(g)
    except TinyStudioError as e:
        raise TinyStudioError(f"float32 figures are not available for this int8 model: {e}") from None
    return g, "float32, dequantized: this int8 version's weights and activations as float32 values"
