"""The layers of the trained part of a training step (engine.codegen.train_step): what the C needs of each.

    prefix_nodes, head_nodes = split_head(g, plan)      # the frozen prefix, and the first trained layer onwards
    h = head_layer(g, node, plan, alias)                # HeadLayer: int8 constants, scales, its conv geometry

Every weighted layer is described as a convolution (ts_conv_params, NHWC, batch 1): a fully connected layer
is a 1x1 conv over its rows, a 1x1 conv over its pixels; those two run the fully connected backward
(`fc`), KxK / strided / padded / grouped / depthwise convs the conv backward. The int8 weights keep the
storage of the deployed kernels ((kH, kW, M) depthwise, else (M, kH, kW, C/groups)); the float32 copies of the
trained channels are channel-major, the first `n_upd` output channels only (MIT's sparse update).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import GraphError
from engine.int8.prepare import prepare_node
from engine.ir import Graph
from engine.validate import topological_order

VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


@dataclass(frozen=True)
class HeadLayer:
    node: str
    x: str                 # int8 input tensor
    y: str                 # int8 output tensor
    n: int                 # output channels
    k: int                 # weights per output channel (kH * kW * C/groups)
    update_w: bool
    update_b: bool
    n_upd: int             # channels with float32 weights (the first ones; channel fraction), n for bias-only
    relu: bool
    wq: np.ndarray         # int8, the kernel's storage
    wscale: np.ndarray     # per channel (or one) float32
    bscale: np.ndarray     # per channel float32
    bias_q: np.ndarray     # int32, plain (the kernels add the input offset themselves; zeros when none)
    x_scale: float
    x_zp: int
    y_scale: float
    y_zp: int
    multiplier: np.ndarray
    shift: np.ndarray
    mode: int
    conv: dict             # ts_conv_params (without per_channel / requantization mode)
    fc: bool               # fully connected or 1x1 stride-1 unpadded conv: the fully connected backward
    depthwise: bool = False

    @property
    def batches(self) -> int:
        """Rows of the fully connected form (pixels of a 1x1 conv)."""
        return self.conv["out_h"] * self.conv["out_w"]

    @property
    def in_elems(self) -> int:
        return self.conv["in_h"] * self.conv["in_w"] * self.conv["in_c"]

    @property
    def out_elems(self) -> int:
        return self.conv["out_h"] * self.conv["out_w"] * self.conv["out_c"]

    @property
    def n_bias(self) -> int:
        """Channels with a float32 bias: the trained ones (all of a bias-only layer); 0 without a bias."""
        return (self.n_upd if self.update_w else self.n) if self.update_b else 0

    def channel_major(self, v: np.ndarray) -> np.ndarray:
        """int8 / float weights from the kernel's storage to (n, k), channel-major."""
        if self.depthwise:
            return np.asarray(v).reshape(self.wq.shape).transpose(2, 0, 1).reshape(self.n, self.k)
        return np.asarray(v).reshape(self.n, self.k)

    def dequantized(self) -> np.ndarray:
        """The deployed weights as float32, channel-major (n, k)."""
        w = self.channel_major(self.wq).astype(np.float32)
        s = self.wscale.reshape(-1, 1) if self.wscale.size > 1 else self.wscale[0]
        return (w * s).astype(np.float32)


@dataclass(frozen=True)
class HeadPool:
    """A GlobalAveragePool in the trained part: forward by its own generated inference library `lib`."""
    node: str
    x: str
    y: str
    pixels: int
    c: int
    lib: object


def split_head(g: Graph, plan) -> tuple[list, list]:
    order = topological_order(g)
    trained = set(plan.layers) | set(plan.bias_only)
    unknown = sorted(trained - {n.name for n in order})
    if unknown:
        raise GraphError(f"training plan names layer '{unknown[0]}', which the deployed int8 graph does not have")
    if not trained:
        raise GraphError("the training plan updates no layer")
    first = min(i for i, n in enumerate(order) if n.name in trained)
    head = order[first:]
    if head and head[-1].op == "Softmax":
        head = head[:-1]
    for n in head:
        if n.op not in ("Gemm", "Conv", "GlobalAveragePool", *VIEW_OPS):
            raise GraphError(f"node '{n.name}' ({n.op}) is in the trained part (from the first trained layer to "
                             "the output): the C training step trains chains of fully connected layers, convs "
                             "(KxK, depthwise) and global average pooling only; choose fewer layers")
    return order[:first], head


def view_alias(head) -> dict:
    """Tensor -> the tensor whose bytes it shares (views do not move int8 data)."""
    alias = {}
    for n in head:
        if n.op in VIEW_OPS:
            alias[n.outputs[0]] = alias.get(n.inputs[0], n.inputs[0])
    return alias


def _geometry(node, r, x, y) -> tuple[dict, bool, bool]:
    """(ts_conv_params, fc, depthwise) of a Gemm or Conv; GraphError for what the step cannot run."""
    zx = -int(x.quant.zero_point[0])
    if node.op == "Gemm":
        if len(x.shape) != 2 or x.shape[0] != 1 or x.dtype != "int8" or y.dtype != "int8":
            raise GraphError(f"layer '{node.name}': the C training step takes batch-1 int8 fully connected layers, "
                             f"got input {list(x.shape)} {x.dtype}")
        k, n = int(x.shape[1]), int(r.centered.shape[0])
        geo = {"in_h": 1, "in_w": 1, "in_c": k, "out_h": 1, "out_w": 1, "out_c": n, "k_h": 1, "k_w": 1,
               "stride_h": 1, "stride_w": 1, "dil_h": 1, "dil_w": 1, "pad_top": 0, "pad_left": 0, "groups": 1}
        fc, dw = True, False
    else:
        if r.layout != "NHWC" or len(x.shape) != 4 or x.shape[0] != 1 or x.dtype != "int8" or y.dtype != "int8":
            raise GraphError(f"layer '{node.name}': the C training step trains NHWC int8 convs of batch 1; this one "
                             f"has layout {r.layout}, input {list(x.shape)} {x.dtype}")
        c = int(x.shape[3])
        dw = r.group > 1 and r.group == c and int(r.centered.shape[-1]) == 1
        fc = tuple(r.kernel) == (1, 1) and tuple(r.strides) == (1, 1) and not any(r.pads) and r.group == 1
        geo = {"in_h": int(x.shape[1]), "in_w": int(x.shape[2]), "in_c": c, "out_h": int(r.out_hw[0]),
               "out_w": int(r.out_hw[1]), "out_c": int(r.centered.shape[0]), "k_h": int(r.kernel[0]),
               "k_w": int(r.kernel[1]), "stride_h": int(r.strides[0]), "stride_w": int(r.strides[1]),
               "dil_h": int(r.dilations[0]), "dil_w": int(r.dilations[1]), "pad_top": int(r.pads[0]),
               "pad_left": int(r.pads[1]), "groups": int(r.group)}
    return {"batches": 1, **geo, "input_offset": zx, "output_offset": int(r.y_zp), "act_min": int(r.act_min),
            "act_max": int(r.act_max)}, fc, dw


def head_layer(g: Graph, node, plan, alias) -> HeadLayer:
    r = prepare_node(g, node)
    x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    conv, fc, depthwise = _geometry(node, r, x, y)
    act = node.attrs.get("activation", "none") or "none"
    if act not in ("none", "relu"):
        raise GraphError(f"layer '{node.name}': fused activation '{act}' has no backward in the C training step "
                         "(relu or none)")
    w = g.tensors[node.inputs[1]]
    n = int(r.centered.shape[0])
    k = int(np.prod(r.centered.shape[1:]))
    wscale = np.asarray(w.quant.scale, np.float32).reshape(-1)
    xs, xz = float(x.quant.scale[0]), int(x.quant.zero_point[0])
    has_b = len(node.inputs) > 2 and bool(node.inputs[2])
    if has_b:
        bt = g.tensors[node.inputs[2]]
        bias_q = np.asarray(bt.data, np.int64).reshape(-1)
        bscale = np.broadcast_to(np.asarray(bt.quant.scale, np.float32).reshape(-1), (n,)).astype(np.float32)
    else:
        bias_q = np.zeros(n, np.int64)
        bscale = (np.float32(xs) * np.broadcast_to(wscale, (n,))).astype(np.float32)
    wq = np.asarray(r.centered, np.int64).reshape(n, k)
    # the deployed kernels' bias: the FC kernel's has the input zero point folded in, the conv kernel's is plain
    expect = bias_q - xz * wq.sum(axis=1) if node.op == "Gemm" else bias_q
    if not np.array_equal(expect, np.asarray(r.dsp.bias, np.int64)) or np.abs(wq).max(initial=0) > 127:
        raise GraphError(f"layer '{node.name}': its int8 constants are not the plain symmetric-weight form the "
                         "training step requantizes (dead channels or asymmetric weights)")
    if depthwise:  # the depthwise kernel's storage: (kH, kW, M)
        wq = np.asarray(r.centered, np.int64)[..., 0].transpose(1, 2, 0)
    trained_w = node.name in plan.layers
    frac = plan.channel_fraction.get(node.name, 1.0) if trained_w else 1.0
    return HeadLayer(node.name, alias.get(x.name, x.name), y.name, n, k, trained_w,
                     has_b and (trained_w or node.name in plan.bias_only),
                     max(1, math.ceil(frac * n)) if trained_w else n, act == "relu", wq.astype(np.int8), wscale,
                     bscale, bias_q.astype(np.int32), xs, xz, float(y.quant.scale[0]), int(y.quant.zero_point[0]),
                     np.asarray(r.dsp.multiplier, np.int32), np.asarray(r.dsp.shift, np.int8), int(r.dsp.mode),
                     conv, fc, depthwise)


def head_pool(g: Graph, node, alias, name: str, plan=None, arena_symbol: str | None = None) -> HeadPool:
    from engine.codegen.generate import generate

    x, y = g.tensors[node.inputs[0]], g.tensors[node.outputs[0]]
    if node.attrs.get("layout") != "NHWC" or len(x.shape) != 4 or x.shape[0] != 1 or x.dtype != "int8":
        raise GraphError(f"node '{node.name}': the C training step takes NHWC int8 global average pooling")
    sub = sub_graph(g, [node], [node.inputs[0]], node.outputs[0], f"{g.name}_{node.name}")
    return HeadPool(node.name, alias.get(x.name, x.name), y.name, int(x.shape[1] * x.shape[2]), int(x.shape[3]),
                    generate(sub, name, plan=plan(sub) if plan else None, arena_symbol=arena_symbol))


def sub_graph(g: Graph, nodes, inputs, out: str, name: str) -> Graph:
    used = {t for n in nodes for t in (*n.inputs, *n.outputs) if t}
    return Graph(name, list(nodes), {k: v for k, v in g.tensors.items() if k in used}, list(inputs), [out],
                 dict(g.meta))
