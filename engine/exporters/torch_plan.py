"""How an IR op becomes a PyTorch step (engine/exporters/torch_export.py): the step and planner types and the
helpers the planners share (fused activations, layouts, pads, fake quantization).

A planner gets the node's OpContext once, at construction, and returns a step `(input values, module) ->
output values` that only calls torch functions (engine/exporters/torch_ops_nn.py, torch_ops_tensor.py).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.ir import Quant, int_range
from engine.ops.base import OpContext

Step = Callable[[list, nn.Module], list]  # (input values, module) -> output values
Planner = Callable[[OpContext], Step]

TORCH_DTYPE = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
               "int4": torch.int8, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
               "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}


def torch_act(y: torch.Tensor, act: str) -> torch.Tensor:
    if act == "none":
        return y
    if act == "relu":
        return F.relu(y)
    if act == "relu6":
        return torch.clamp(y, 0.0, 6.0)
    if act == "relu_n1_to_1":
        return torch.clamp(y, -1.0, 1.0)
    if act == "tanh":
        return torch.tanh(y)
    if act == "sigmoid":
        return torch.sigmoid(y)
    raise ValueError(act)


def to_channels_first(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Channels-last -> channels-first (torch's layout); NCHW passes through."""
    return x if layout == "NCHW" else x.movedim(-1, 1)


def to_channels_last(y: torch.Tensor, layout: str) -> torch.Tensor:
    return y if layout == "NCHW" else y.movedim(1, -1).contiguous()


def torch_pads(pads: list[int], r: int) -> list[int]:
    """ONNX [b1, .., br, e1, .., er] -> F.pad's last-dim-first [br, er, ..., b1, e1]."""
    out: list[int] = []
    for i in reversed(range(r)):
        out += [pads[i], pads[i + r]]
    return out


def fake_quant(x: torch.Tensor, quant: Quant, dtype: str) -> torch.Tensor:
    """Round to the quantization grid of (quant, dtype) and back to real values.

    Straight-through estimator: the rounding passes gradients unchanged, the clamp to the integer range
    stops them (as torch.fake_quantize does). Computed in float64 so ties round exactly like the numpy
    reference (np.rint: half to even, as torch.round).
    """
    lo, hi = int_range(dtype)
    shape = [1] * x.dim()
    if quant.axis is not None:
        shape[quant.axis] = -1
    s = torch.as_tensor(quant.scale, dtype=torch.float64, device=x.device).reshape(shape)
    z = torch.as_tensor(quant.zero_point, dtype=torch.float64, device=x.device).reshape(shape)
    v = x.double() / s
    v = v + (torch.round(v) - v).detach()
    q = torch.clamp(v + z, float(lo), float(hi))
    return ((q - z) * s).to(x.dtype if x.is_floating_point() else torch.float32)
