"""Weight fake-quantization for quantization-aware training, with a straight-through estimator.

train(..., fake_quant=...) takes either a callable `fn(constant name, tensor) -> tensor` (called in every
forward for every trainable constant; return the tensor unchanged to leave it alone) or a spec:

    {"bits": 8 | 4 | {constant name: bits}, "scheme": "per-channel" | "per-tensor" | "ternary" | "ternary-median"}

per-channel / per-tensor: symmetric narrow range [-(2^(b-1)-1), 2^(b-1)-1], scale = max|w| / qmax (per output
channel as engine.passes.quantize stores int8 weights). ternary: BitNet b1.58 absmean, w = scale * clamp(round(
w / scale), -1, 1) with scale = mean|w| per tensor; ternary-median uses median|w| as the scale. An int `bits`
(or a ternary scheme without `bits`) applies to every Conv/ConvTranspose/Gemm/MatMul weight.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.errors import TinyStudioError
from engine.ir import Graph

SCHEMES = ("per-channel", "per-tensor", "ternary", "ternary-median")
WeightFn = Callable[[str, torch.Tensor], torch.Tensor]


def weight_axes(graph: Graph) -> dict[str, int]:
    """Constant name -> output-channel axis, for the weights of Conv, ConvTranspose, Gemm and MatMul."""
    axes = {}
    for node in graph.nodes:
        if len(node.inputs) < 2 or graph.tensors.get(node.inputs[1]) is None or graph.const(node.inputs[1]) is None:
            continue
        if node.op == "Conv":
            axes[node.inputs[1]] = 0
        elif node.op == "ConvTranspose":
            axes[node.inputs[1]] = 1 if node.attrs.get("layout", "NCHW") == "NCHW" else 3
        elif node.op == "Gemm":
            axes[node.inputs[1]] = 0 if node.attrs.get("transB", 0) else 1
        elif node.op == "MatMul":
            axes[node.inputs[1]] = graph.tensors[node.inputs[1]].data.ndim - 1
    return axes


def _ste(w: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward exactly q (w - w.detach() is exactly 0, unlike w + (q - w) in float), backward identity to w."""
    return q.detach() + (w - w.detach())


def quantize_symmetric(w: torch.Tensor, bits: int, axis: int | None) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    if axis is None:
        m = w.detach().abs().max()
    else:
        dims = tuple(d for d in range(w.dim()) if d != axis)
        m = w.detach().abs().amax(dim=dims, keepdim=True) if dims else w.detach().abs()
    scale = torch.clamp(m, min=1e-12) / qmax
    return _ste(w, torch.clamp(torch.round(w / scale), -qmax, qmax) * scale)


def quantize_ternary(w: torch.Tensor, median: bool = False) -> torch.Tensor:
    a = w.detach().abs()
    scale = torch.clamp(a.median() if median else a.mean(), min=1e-12)
    return _ste(w, torch.clamp(torch.round(w / scale), -1, 1) * scale)


def weight_quantizer(graph: Graph, spec) -> WeightFn:
    """The per-constant function train() applies in forward (see the module docstring)."""
    if callable(spec):
        return spec
    if not isinstance(spec, dict):
        raise TinyStudioError(f"fake_quant must be a callable or a dict with 'bits' and 'scheme', got {spec!r}")
    scheme = spec.get("scheme", "per-channel")
    if scheme not in SCHEMES:
        raise TinyStudioError(f"fake_quant scheme must be one of {', '.join(SCHEMES)}, got '{scheme}'")
    axes = weight_axes(graph)
    bits = spec.get("bits", 2 if scheme.startswith("ternary") else 8)
    table = {n: bits for n in axes} if isinstance(bits, int) else dict(bits)
    for name, b in table.items():
        if name not in graph.tensors or graph.const(name) is None:
            raise TinyStudioError(f"fake_quant: '{name}' is not a constant of graph '{graph.name}'")
        if not isinstance(b, int) or not 2 <= b <= 16:
            raise TinyStudioError(f"fake_quant: bits for '{name}' must be an integer 2..16, got {b!r}")

    def fn(name: str, w: torch.Tensor) -> torch.Tensor:
        b = table.get(name)
        if b is None:
            return w
        if scheme.startswith("ternary"):
            return quantize_ternary(w, scheme == "ternary-median")
        return quantize_symmetric(w, b, axes.get(name) if scheme == "per-channel" else None)
    return fn
