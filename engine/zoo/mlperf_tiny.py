"""The four MLPerf Tiny reference models (mlcommons/tiny, benchmark/training/*), layer for layer as in the
trained int8 files of /work/shared/data/mlperf-tiny: same kernels, strides, TF 'SAME' padding (asymmetric
at stride 2), channel counts, input shapes and ReLU activations. With defaults the MAC counts equal the
files': KWS 2,656,768, VWW 7,489,664, IC 12,501,632, AD 264,192. The Keras training graphs have BatchNorm
after every conv/dense layer (bn=true); bn=false gives the folded form stored in the .tflite files, whose
weight + bias count equals the files' (KWS 22,604, VWW 210,850, IC 77,706, AD 265,864).
"""
from __future__ import annotations

from engine.ir import Graph
from engine.zoo.layers import Net, activation, batchnorm, conv_bn_act, global_pool_flatten, linear
from engine.zoo.mobilenet import mobilenet_v1
from engine.zoo.spec import ParamSpec, ZooEntry, p_bn, p_channels, p_classes, p_resolution, p_seed, p_width


def ds_cnn(frames: int, coeffs: int, classes: int, filters: int, blocks: int, bn: bool, seed: int,
           first_kernel: tuple[int, int] = (10, 4), first_stride: int = 2) -> Graph:
    """DS-CNN (Zhang et al. 2017, 'Hello Edge'), MLPerf Tiny KWS: MFCC (1, 1, 49, 10) -> 12 keywords.
    first_kernel / first_stride: the first conv (10x4 stride 2 in the reference; engine.search varies them)."""
    net = Net("kws_dscnn", seed)
    x = net.input((1, 1, frames, coeffs))  # (N, C, time, MFCC)
    x = conv_bn_act(net, x, filters, tuple(first_kernel), first_stride, pad="same", bn=bn, act="relu", name="conv1")
    for i in range(1, blocks + 1):
        x = conv_bn_act(net, x, filters, 3, 1, group=filters, pad="same", bn=bn, act="relu", name=f"block{i}_dw")
        x = conv_bn_act(net, x, filters, 1, 1, pad="same", bn=bn, act="relu", name=f"block{i}_pw")
    y = linear(net, global_pool_flatten(net, x), classes, name="fc")
    return net.build(net.op("Softmax", [y], name="softmax", axis=-1))


def resnet8(resolution: int, classes: int, channels: int, filters: int, bn: bool, seed: int, stacks: int = 3,
            kernel: int = 3) -> Graph:
    """ResNet-8 (MLPerf Tiny IC, resnet_v1_eembc): conv 16 -> 3 stacks of 2 convs (16/32/64, the last two
    stride 2 with a 1x1 stride-2 conv shortcut, no BN on it) -> global avg pool -> FC -> softmax.
    stacks (1-3) and kernel (3 in the reference) are what engine.search varies besides filters/resolution."""
    net = Net("ic_resnet8", seed)
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    x = conv_bn_act(net, x, filters, kernel, 1, pad="same", bn=bn, act="relu", name="conv1")
    for stack, mult in enumerate((1, 2, 4)[:stacks], start=1):
        c, s, name = filters * mult, (1 if mult == 1 else 2), f"stack{stack}"
        y = conv_bn_act(net, x, c, kernel, s, pad="same", bn=bn, act="relu", name=f"{name}_conv1")
        y = conv_bn_act(net, y, c, kernel, 1, pad="same", bn=bn, act="none", name=f"{name}_conv2", gamma=(0.3, 0.6))
        if s != 1:
            x = conv_bn_act(net, x, c, 1, s, pad="same", bn=False, act="none", name=f"{name}_shortcut")
        x = activation(net, net.op("Add", [x, y], name=f"{name}_add"), "relu", name=f"{name}_relu")
    y = linear(net, global_pool_flatten(net, x), classes, name="fc")
    return net.build(net.op("Softmax", [y], name="softmax", axis=-1))


def fc_autoencoder(inputs: int, hidden: int, bottleneck: int, layers: int, bn: bool, seed: int) -> Graph:
    """MLPerf Tiny AD (ToyADMOS): 640 -> [Dense 128, BN, ReLU] x 4 -> 8 -> [128] x 4 -> Dense 640 (linear)."""
    net = Net("ad_autoencoder", seed)
    x = net.input((1, inputs))  # (N, 5 frames x 128 mel bins)
    widths = [hidden] * layers + [bottleneck] + [hidden] * layers
    for i, n in enumerate(widths, start=1):
        x = linear(net, x, n, name=f"dense{i}", gain=2.0)
        if bn:
            x = batchnorm(net, x, name=f"dense{i}_bn")
        x = activation(net, x, "relu", name=f"dense{i}_relu")
    return net.build(linear(net, x, inputs, name=f"dense{len(widths) + 1}"))


ENTRIES = [
    ZooEntry("kws_dscnn", "MLPerf Tiny keyword spotting DS-CNN: conv 64 10x4 s2, 4 depthwise-separable blocks, "
             "avg pool, FC 12, softmax; 49x10 MFCC input; 2,656,768 MACs", "keyword_spotting",
             {"frames": ParamSpec("int", 49, "MFCC frames (time steps)", min=10, max=1000),
              "coeffs": ParamSpec("int", 10, "MFCC coefficients per frame", min=4, max=128),
              "classes": p_classes(12),
              "filters": ParamSpec("int", 64, "channels of every conv layer", min=1, max=1024),
              "blocks": ParamSpec("int", 4, "depthwise-separable blocks", min=1, max=16),
              "bn": p_bn(), "seed": p_seed()},
             ds_cnn),
    ZooEntry("vww_mobilenetv1", "MLPerf Tiny visual wake words: MobileNetV1 x0.25 with ReLU, 96x96x3 input, "
             "2 classes, softmax; 7,489,664 MACs", "visual_wake_words",
             {"width": p_width(0.25), "resolution": p_resolution(96, min_=32), "classes": p_classes(2),
              "channels": p_channels(3), "bn": p_bn(), "seed": p_seed()},
             lambda width, resolution, classes, channels, bn, seed:
             mobilenet_v1(width, resolution, classes, channels, bn, seed, act="relu", softmax=True)),
    ZooEntry("ic_resnet8", "MLPerf Tiny image classification ResNet-8 for CIFAR-10: 32x32x3, stacks 16/32/64, "
             "10 classes, softmax; 12,501,632 MACs", "image_classification",
             {"resolution": p_resolution(32, min_=8), "classes": p_classes(10), "channels": p_channels(3),
              "filters": ParamSpec("int", 16, "channels of the first stack (doubled per stack)", min=1, max=512),
              "bn": p_bn(), "seed": p_seed()},
             resnet8),
    ZooEntry("ad_autoencoder", "MLPerf Tiny anomaly detection (ToyADMOS) FC autoencoder 640-128x4-8-128x4-640; "
             "264,192 MACs", "anomaly_detection",
             {"inputs": ParamSpec("int", 640, "input features (5 frames x 128 mel bins)", min=1, max=65536),
              "hidden": ParamSpec("int", 128, "units of the hidden dense layers", min=1, max=8192),
              "bottleneck": ParamSpec("int", 8, "units of the bottleneck layer", min=1, max=8192),
              "layers": ParamSpec("int", 4, "hidden dense layers on each side of the bottleneck", min=0, max=32),
              "bn": p_bn(), "seed": p_seed()},
             fc_autoencoder),
]
