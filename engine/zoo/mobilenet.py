"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018) with width multiplier.

Channel rules, as in the reference implementations:
- V1 (TF-slim mobilenet_v1): channels = max(int(c * width), 8); TF 'SAME' padding; ReLU6.
- V2 (torchvision / TF-slim mobilenet_v2): channels = make_divisible(c * width, 8); PyTorch padding (k // 2).
  The last 1x1 conv has `last_channels` outputs. 0 selects the paper's rule, also torchvision's and Keras':
  make_divisible(1280 * max(1, width), 8), i.e. 1280 for width <= 1. TF-slim's default
  (finegrain_classification_mode=False) scales it with the width instead: make_divisible(1280 * width, 8),
  448 at width 0.35; pass last_channels=448 for that variant (23.5 M MACs at 144x144, the figure
  papers such as MCUNet quote for "MobileNetV2 0.35 @ 144").
MAC counts (conv + FC): V1 1.0 @ 224 = 568.7 M; V2 1.0 @ 224 = 300.8 M.
"""
from __future__ import annotations

from engine.ir import Graph
from engine.zoo.layers import (Net, conv_bn_act, depthwise_separable, global_pool_flatten, inverted_residual,
                               linear, make_divisible)
from engine.zoo.spec import ParamSpec, ZooEntry, p_bn, p_channels, p_classes, p_resolution, p_seed, p_width

# (output channels, stride) of the 13 depthwise-separable blocks.
V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
# (expansion t, output channels c, repeats n, first stride s) of the inverted-residual stages.
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v1(width: float, resolution: int, classes: int, channels: int, bn: bool, seed: int,
                 act: str = "relu6", softmax: bool = False) -> Graph:
    net = Net("mobilenetv1", seed)
    depth = lambda c: max(int(c * width), 8)  # noqa: E731 - TF-slim's depth() rule
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    x = conv_bn_act(net, x, depth(32), 3, 2, pad="same", bn=bn, act=act, name="conv1")
    for i, (c, s) in enumerate(V1_BLOCKS, start=1):
        x = depthwise_separable(net, x, depth(c), s, pad="same", bn=bn, act=act, name=f"block{i}")
    y = linear(net, global_pool_flatten(net, x), classes, name="fc")
    if softmax:
        y = net.op("Softmax", [y], name="softmax", axis=-1)
    return net.build(y)


def mobilenet_v2(width: float, resolution: int, classes: int, channels: int, last_channels: int, bn: bool,
                 seed: int, stages: list[tuple] | None = None) -> Graph:
    """stages: (expansion t, channels c, repeats n, first stride s[, depthwise kernel k]) per stage; None is the
    paper's V2_STAGES with 3x3 kernels (engine.search varies depth, expansion and kernel per stage)."""
    net = Net("mobilenetv2", seed)
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    x = conv_bn_act(net, x, make_divisible(32 * width), 3, 2, bn=bn, act="relu6", name="conv1")
    block = 0
    for t, c, n, s, *k in stages or V2_STAGES:
        for i in range(n):
            block += 1
            x = inverted_residual(net, x, make_divisible(c * width), s if i == 0 else 1, t, bn, name=f"block{block}",
                                  kernel=k[0] if k else 3)
    last = last_channels or make_divisible(1280 * max(1.0, width))
    x = conv_bn_act(net, x, last, 1, bn=bn, act="relu6", name="conv_last")
    return net.build(linear(net, global_pool_flatten(net, x), classes, name="fc"))


_IMAGE = lambda w, r: {"width": p_width(w), "resolution": p_resolution(r, min_=32),  # noqa: E731
                       "classes": p_classes(1000), "channels": p_channels(3)}

ENTRIES = [
    ZooEntry("mobilenetv1", "MobileNetV1 (Howard et al. 2017): 13 depthwise-separable blocks, ReLU6; "
             "1.0 @ 224 = 568.7 M MACs, 4.2 M params", "image_classification",
             {**_IMAGE(1.0, 224), "bn": p_bn(), "seed": p_seed()},
             lambda width, resolution, classes, channels, bn, seed:
             mobilenet_v1(width, resolution, classes, channels, bn, seed)),
    ZooEntry("mobilenetv2", "MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, "
             "ReLU6; 1.0 @ 224 = 300.8 M MACs, 3.5 M params", "image_classification",
             {**_IMAGE(1.0, 224),
              "last_channels": ParamSpec("int", 0, "outputs of the last 1x1 conv; 0 = the paper's rule "
                                         "make_divisible(1280 * max(1, width), 8); TF-slim's default scales it "
                                         "with width (448 at width 0.35)", min=0, max=8192),
              "bn": p_bn(), "seed": p_seed()},
             mobilenet_v2),
]
