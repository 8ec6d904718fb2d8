"""Compact Convolutional Transformer (Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
Transformers"), CCT-2/3x2 by default: a conv tokenizer instead of patches, a few encoder blocks, and
sequence pooling (attention-weighted mean of the tokens) instead of a class token.

    tokenizer: [conv 3x3 (no bias) -> ReLU -> max pool 3x3 s2] x conv_layers   (N, D, H', W')
    tokens:    reshape + transpose -> (N, T, D) + learned positional embedding
    block:     x += MHSA(LN(x)); x = LN(x); x += W2 Gelu(W1 x)                 (CCT's encoder layer)
    head:      LN -> seq pool: softmax_T(x Wp) ^T @ x -> (N, D) -> FC
Attention is written with plain ONNX ops (MatMul, Reshape, Transpose, Mul, Softmax) so any runtime, our
exporter and onnxruntime see the same graph. CCT-2/3x2 @ 32x32: 35.3 M MACs, 283,723 params (paper: 0.28 M).
"""
from __future__ import annotations

import math

import numpy as np

from engine.ir import Graph
from engine.zoo.layers import Net, activation, conv, layernorm, linear, matmul_dense
from engine.zoo.spec import ParamSpec, ZooEntry, ZooSpecError, p_channels, p_classes, p_resolution, p_seed


def self_attention(net: Net, x: str, heads: int, name: str) -> str:
    """Multi-head self-attention on (N, T, D): separate Q/K/V projections (no bias, as CCT), output proj."""
    n, t, d = net.shape(x)
    dh = d // heads
    q = matmul_dense(net, x, d, name=f"{name}_q", bias=False)
    k = matmul_dense(net, x, d, name=f"{name}_k", bias=False)
    v = matmul_dense(net, x, d, name=f"{name}_v", bias=False)
    split = lambda y, perm, nm: net.op(  # noqa: E731 - (N, T, D) -> (N, T, H, Dh) -> perm
        "Transpose", [net.op("Reshape", [y], name=f"{nm}_split", shape=[n, t, heads, dh])], name=f"{nm}_heads",
        perm=perm)
    q = split(q, [0, 2, 1, 3], f"{name}_q")  # (N, H, T, Dh)
    k = split(k, [0, 2, 3, 1], f"{name}_k")  # (N, H, Dh, T)
    v = split(v, [0, 2, 1, 3], f"{name}_v")  # (N, H, T, Dh)
    s = net.op("MatMul", [q, k], name=f"{name}_scores")  # (N, H, T, T)
    scale = net.const(f"{name}_scale", np.full((1,), 1.0 / math.sqrt(dh), np.float32))
    s = net.op("Mul", [s, scale], name=f"{name}_scaled")
    a = net.op("Softmax", [s], name=f"{name}_softmax", axis=-1)
    y = net.op("MatMul", [a, v], name=f"{name}_context")  # (N, H, T, Dh)
    y = net.op("Transpose", [y], name=f"{name}_merge", perm=[0, 2, 1, 3])  # (N, T, H, Dh)
    y = net.op("Reshape", [y], name=f"{name}_concat", shape=[n, t, d])
    return matmul_dense(net, y, d, name=f"{name}_proj")


def encoder_block(net: Net, x: str, heads: int, mlp_ratio: float, name: str) -> str:
    d = net.shape(x)[-1]
    x = net.op("Add", [x, self_attention(net, layernorm(net, x, f"{name}_prenorm"), heads, f"{name}_attn")],
               name=f"{name}_attn_res")
    x = layernorm(net, x, f"{name}_norm1")
    h = activation(net, matmul_dense(net, x, max(1, round(d * mlp_ratio)), name=f"{name}_fc1", gain=2.0), "gelu",
                   name=f"{name}_gelu")
    return net.op("Add", [x, matmul_dense(net, h, d, name=f"{name}_fc2")], name=f"{name}_mlp_res")


def cct(resolution: int, channels: int, classes: int, dim: int, depth: int, heads: int, mlp_ratio: float,
        conv_layers: int, pool: str, seed: int) -> Graph:
    if dim % heads:
        raise ZooSpecError(f"zoo model 'cct': dim {dim} must be divisible by heads {heads}")
    if resolution < 2 ** conv_layers:
        raise ZooSpecError(f"zoo model 'cct': resolution {resolution} is too small for {conv_layers} conv layers "
                           f"(needs at least {2 ** conv_layers})")
    net = Net("cct", seed)
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    widths = [64] * (conv_layers - 1) + [dim]  # CCT's tokenizer: in_planes 64, the last layer gives dim
    for i, c in enumerate(widths, start=1):
        x = activation(net, conv(net, x, c, 3, pad="torch", bias=False, name=f"tok{i}_conv"), "relu",
                       name=f"tok{i}_relu")
        x = net.op("MaxPool", [x], name=f"tok{i}_pool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    n, d, h, w = net.shape(x)
    x = net.op("Reshape", [x], name="tokens", shape=[n, d, h * w])
    x = net.op("Transpose", [x], name="tokens_t", perm=[0, 2, 1])  # (N, T, D)
    pos = net.const("pos_embedding", net.rng.normal(0.0, 0.2, size=(1, h * w, d)))
    x = net.op("Add", [x, pos], name="pos_add")
    for i in range(1, depth + 1):
        x = encoder_block(net, x, heads, mlp_ratio, f"block{i}")
    x = layernorm(net, x, "norm")
    if pool == "seq":
        a = net.op("Softmax", [matmul_dense(net, x, 1, name="seqpool_score")], name="seqpool_softmax", axis=1)
        a = net.op("Transpose", [a], name="seqpool_t", perm=[0, 2, 1])  # (N, 1, T)
        x = net.op("MatMul", [a, x], name="seqpool")  # (N, 1, D)
        x = net.op("Reshape", [x], name="seqpool_flat", shape=[n, d])
    else:
        x = net.op("ReduceMean", [x], name="meanpool", axes=[1], keepdims=0)  # (N, D)
    return net.build(linear(net, x, classes, name="fc"))


ENTRIES = [
    ZooEntry("cct", "Compact Convolutional Transformer (Hassani et al. 2021), CCT-2/3x2: conv tokenizer, "
             "2 encoder blocks (2 heads, MatMul attention, LayerNorm, Gelu MLP), sequence pooling; "
             "32x32x3, 10 classes; 35.3 M MACs", "image_classification",
             {"resolution": p_resolution(32, min_=4, max_=256), "channels": p_channels(3), "classes": p_classes(10),
              "dim": ParamSpec("int", 128, "embedding dimension", min=4, max=1024),
              "depth": ParamSpec("int", 2, "encoder blocks", min=1, max=12),
              "heads": ParamSpec("int", 2, "attention heads (must divide dim)", min=1, max=64),
              "mlp_ratio": ParamSpec("float", 1.0, "MLP hidden size / dim", min=0.25, max=8.0),
              "conv_layers": ParamSpec("int", 2, "conv layers of the tokenizer (each halves H and W)", min=1, max=4),
              "pool": ParamSpec("str", "seq", "token pooling: seq (CCT's attention pooling) or mean",
                                choices=("seq", "mean")),
              "seed": p_seed()},
             cct),
]
