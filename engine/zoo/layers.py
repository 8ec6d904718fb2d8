"""Layer helpers shared by the zoo families: a builder that knows shapes while building, plus conv/BN/act,
depthwise-separable, inverted-residual and linear blocks. Graphs are float32, NCHW, plain ONNX ops.

    net = Net("zoo:demo", seed=0)
    x = net.input((1, 3, 32, 32))                  # (N, C, H, W)
    x = conv_bn_act(net, x, 16, 3, stride=2, pad="same", act="relu")
    y = linear(net, global_pool(net, x), 10)
    g = net.build(y)

Initialization is He/Kaiming normal (std = sqrt(2 / fan_in)) before ReLU-family activations and
sqrt(1 / fan_in) before linear outputs, so random activations neither vanish nor explode layer after layer.
BatchNormalization gets random but plausible running statistics (mean ~ 0, var ~ 1, gamma ~ 1).
"""
from __future__ import annotations

import math

import numpy as np

from engine.builder import GraphBuilder
from engine.ir import Graph, Tensor
from engine.validate import node_context

# Activation name -> (ONNX op, attrs). ReLU6 is ONNX Clip(0, 6) (min/max are IR attributes).
ACTIVATIONS = {"relu": ("Relu", {}), "relu6": ("Clip", {"min": 0.0, "max": 6.0}), "gelu": ("Gelu", {}),
               "tanh": ("Tanh", {}), "none": (None, {})}


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Channel rounding of the reference MobileNet code (TF-slim / torchvision `_make_divisible`):
    nearest multiple of `divisor`, never more than 10 % below `v`."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def same_pads(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """TensorFlow 'SAME' padding as explicit ONNX pads [begins..., ends...]: the odd cell goes at the end."""
    begins, ends = [], []
    for n, k, s in zip(size, kernel, stride):
        total = max(0, (math.ceil(n / s) - 1) * s + k - n)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


class Net:
    """GraphBuilder plus a seeded RNG and immediate shape inference (TF 'SAME' pads need input sizes)."""

    def __init__(self, name: str, seed: int):
        self.b = GraphBuilder(name)
        self.rng = np.random.default_rng(seed)

    def input(self, shape: tuple[int, ...], name: str = "input") -> str:
        return self.b.input(name, shape)

    def shape(self, t: str) -> tuple[int, ...]:
        return self.b.g.tensors[t].shape

    def const(self, name: str, data: np.ndarray) -> str:
        return self.b.const(name, np.asarray(data, dtype=np.float32))

    def op(self, op: str, inputs: list[str], name: str | None = None, **attrs) -> str:
        out = self.b.node(op, inputs, name=name, **attrs)
        node = self.b.g.nodes[-1]
        ctx = node_context(self.b.g, node)
        ctx.op.check(node)
        for t, (shape, dtype) in zip(node.outputs, ctx.op.infer(ctx)):
            self.b.g.tensors[t] = Tensor(t, shape, dtype)
        return out

    # ---- random parameters ----------------------------------------------------------------------
    def weight(self, name: str, shape: tuple[int, ...], fan_in: int, gain: float = 2.0) -> str:
        return self.const(name, self.rng.normal(0.0, math.sqrt(gain / fan_in), size=shape))

    def bias(self, name: str, n: int) -> str:
        return self.const(name, self.rng.normal(0.0, 0.02, size=(n,)))

    def build(self, *outputs: str) -> Graph:
        self.b.output(*outputs)
        return self.b.build()


def activation(net: Net, x: str, act: str, name: str | None = None) -> str:
    op, attrs = ACTIVATIONS[act]
    return x if op is None else net.op(op, [x], name=name, **attrs)


def conv(net: Net, x: str, cout: int, k: int | tuple[int, ...], stride: int | tuple[int, ...] = 1, group: int = 1,
         pad: str = "torch", bias: bool = True, gain: float = 2.0, name: str = "conv") -> str:
    """Conv 1-D or 2-D. pad="same": TF SAME (asymmetric when stride > 1), "torch": k // 2 on both sides,
    "valid": none. W is (M, C/group, *k)."""
    n, cin, *spatial = net.shape(x)
    r = len(spatial)
    k = (k,) * r if isinstance(k, int) else tuple(k)
    s = (stride,) * r if isinstance(stride, int) else tuple(stride)
    if pad == "same":
        pads = same_pads(tuple(spatial), k, s)
    elif pad == "torch":
        pads = [kk // 2 for kk in k] * 2
    else:
        pads = [0] * (2 * r)
    fan_in = cin // group * int(np.prod(k))
    w = net.weight(f"{name}_W", (cout, cin // group, *k), fan_in, gain)
    ins = [x, w] + ([net.bias(f"{name}_B", cout)] if bias else [])
    return net.op("Conv", ins, name=name, kernel_shape=list(k), strides=list(s), pads=pads,
                  group=group if group != 1 else None)


def batchnorm(net: Net, x: str, name: str = "bn", gamma: tuple[float, float] = (0.8, 1.2)) -> str:
    c = net.shape(x)[1]
    r = net.rng
    scale = net.const(f"{name}_scale", r.uniform(*gamma, size=c))
    shift = net.const(f"{name}_B", r.normal(0.0, 0.1, size=c))
    mean = net.const(f"{name}_mean", r.normal(0.0, 0.1, size=c))
    var = net.const(f"{name}_var", r.uniform(0.8, 1.25, size=c))
    return net.op("BatchNormalization", [x, scale, shift, mean, var], name=name, epsilon=1e-3)


def conv_bn_act(net: Net, x: str, cout: int, k, stride=1, group: int = 1, pad: str = "torch", bn: bool = True,
                act: str = "relu", name: str = "conv", gamma: tuple[float, float] = (0.8, 1.2)) -> str:
    """Conv -> BatchNorm -> activation (training form), or Conv with bias -> activation (BN folded, as deployed)."""
    gain = 1.0 if act == "none" else 2.0
    y = conv(net, x, cout, k, stride, group, pad, bias=not bn, gain=gain, name=name)
    if bn:
        y = batchnorm(net, y, name=f"{name}_bn", gamma=gamma)
    return activation(net, y, act, name=f"{name}_{act}")


def depthwise_separable(net: Net, x: str, cout: int, stride: int, pad: str, bn: bool, act: str, name: str) -> str:
    """MobileNetV1 block: depthwise 3x3 (stride) -> BN -> act -> pointwise 1x1 -> BN -> act."""
    c = net.shape(x)[1]
    y = conv_bn_act(net, x, c, 3, stride, group=c, pad=pad, bn=bn, act=act, name=f"{name}_dw")
    return conv_bn_act(net, y, cout, 1, 1, pad=pad, bn=bn, act=act, name=f"{name}_pw")


def inverted_residual(net: Net, x: str, cout: int, stride: int, expand: int, bn: bool, name: str,
                      kernel: int = 3) -> str:
    """MobileNetV2 block: [1x1 expand -> BN -> ReLU6] -> dw kxk (3x3 in V2; 5x5/7x7 in MCUNet's space) -> BN
    -> ReLU6 -> 1x1 project -> BN [+ x]."""
    cin = net.shape(x)[1]
    hidden = int(round(cin * expand))
    y = x
    if expand != 1:
        y = conv_bn_act(net, y, hidden, 1, pad="torch", bn=bn, act="relu6", name=f"{name}_expand")
    y = conv_bn_act(net, y, hidden, kernel, stride, group=hidden, pad="torch", bn=bn, act="relu6", name=f"{name}_dw")
    residual = stride == 1 and cin == cout
    # Smaller gamma on the residual branch keeps the variance of the running sum from growing per block.
    y = conv_bn_act(net, y, cout, 1, pad="torch", bn=bn, act="none", name=f"{name}_project",
                    gamma=(0.3, 0.6) if residual else (0.8, 1.2))
    return net.op("Add", [x, y], name=f"{name}_add") if residual else y


def linear(net: Net, x: str, n_out: int, name: str = "fc", gain: float = 1.0) -> str:
    """Fully connected (N, K) -> (N, n_out) as Gemm with W (n_out, K), transB=1 (PyTorch/TFLite layout)."""
    k = net.shape(x)[-1]
    w = net.weight(f"{name}_W", (n_out, k), k, gain)
    return net.op("Gemm", [x, w, net.bias(f"{name}_B", n_out)], name=name, transB=1)


def global_pool_flatten(net: Net, x: str, name: str = "pool") -> str:
    """(N, C, *spatial) -> (N, C): GlobalAveragePool then Flatten."""
    y = net.op("GlobalAveragePool", [x], name=name)
    return net.op("Flatten", [y], name=f"{name}_flatten", axis=1)


def matmul_dense(net: Net, x: str, n_out: int, name: str, gain: float = 1.0, bias: bool = True) -> str:
    """Token-wise dense layer on (N, T, K): MatMul with W (K, n_out) [+ Add bias], as ONNX exporters write it."""
    k = net.shape(x)[-1]
    y = net.op("MatMul", [x, net.weight(f"{name}_W", (k, n_out), k, gain)], name=name)
    return net.op("Add", [y, net.bias(f"{name}_B", n_out)], name=f"{name}_bias") if bias else y


def layernorm(net: Net, x: str, name: str) -> str:
    """LayerNormalization over the last axis with random scale ~ 1 and shift ~ 0."""
    d = net.shape(x)[-1]
    scale = net.const(f"{name}_scale", net.rng.uniform(0.8, 1.2, size=d))
    shift = net.const(f"{name}_B", net.rng.normal(0.0, 0.02, size=d))
    return net.op("LayerNormalization", [x, scale, shift], name=name, axis=-1, epsilon=1e-5)
