"""ResNet-18 (He et al. 2016) as in torchvision: conv 7x7 s2 -> max pool -> 4 stages of 2 basic blocks
(64/128/256/512 x width, 1x1 stride-2 conv + BN shortcuts) -> global avg pool -> FC.
1.0 @ 224, 1000 classes: 1,814 M MACs, 11.69 M parameters (torchvision's count; ours adds BN running stats).
"""
from __future__ import annotations

from engine.ir import Graph
from engine.zoo.layers import Net, activation, conv_bn_act, global_pool_flatten, linear
from engine.zoo.spec import ZooEntry, p_bn, p_channels, p_classes, p_resolution, p_seed, p_width


def basic_block(net: Net, x: str, cout: int, stride: int, bn: bool, name: str) -> str:
    y = conv_bn_act(net, x, cout, 3, stride, bn=bn, act="relu", name=f"{name}_conv1")
    # Small gamma on the branch's last BN keeps the residual sum's variance from doubling every block.
    y = conv_bn_act(net, y, cout, 3, 1, bn=bn, act="none", name=f"{name}_conv2", gamma=(0.3, 0.6))
    if stride != 1 or net.shape(x)[1] != cout:
        x = conv_bn_act(net, x, cout, 1, stride, bn=bn, act="none", name=f"{name}_downsample")
    return activation(net, net.op("Add", [x, y], name=f"{name}_add"), "relu", name=f"{name}_relu")


def resnet18(width: float, resolution: int, classes: int, channels: int, bn: bool, seed: int) -> Graph:
    net = Net("resnet18", seed)
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    base = max(1, round(64 * width))
    x = conv_bn_act(net, x, base, 7, 2, bn=bn, act="relu", name="conv1")
    x = net.op("MaxPool", [x], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for stage, mult in enumerate((1, 2, 4, 8), start=1):
        for i in range(2):
            stride = 2 if stage > 1 and i == 0 else 1
            x = basic_block(net, x, base * mult, stride, bn, name=f"layer{stage}_{i}")
    return net.build(linear(net, global_pool_flatten(net, x), classes, name="fc"))


ENTRIES = [
    ZooEntry("resnet18", "ResNet-18 (He et al. 2016, torchvision layout): 8 basic blocks 64-512; "
             "1.0 @ 224 = 1.814 G MACs, 11.7 M params", "image_classification",
             {"width": p_width(1.0), "resolution": p_resolution(224, min_=32), "classes": p_classes(1000),
              "channels": p_channels(3), "bn": p_bn(), "seed": p_seed()},
             resnet18),
]
