"""Small classics: LeNet-5, the micro_speech 'tiny_conv' keyword model, and a 1-D CNN for sensor time series."""
from __future__ import annotations

from engine.ir import Graph
from engine.zoo.layers import Net, activation, conv, conv_bn_act, global_pool_flatten, linear
from engine.zoo.spec import ParamSpec, ZooEntry, p_bn, p_channels, p_classes, p_resolution, p_seed, p_width


def lenet5(resolution: int, classes: int, channels: int, act: str, seed: int) -> Graph:
    """LeCun et al. 1998: C1 conv 6 5x5 -> S2 avg pool -> C3 conv 16 5x5 -> S4 avg pool -> C5 120 -> F6 84 -> out.
    C5 is written as a dense layer (identical to the 5x5 conv at 32x32, and valid at other sizes);
    C3 is fully connected to S2 as in modern re-implementations. 32x32: 416,520 MACs, 61,706 params."""
    net = Net("lenet5", seed)
    x = net.input((1, channels, resolution, resolution))  # (N, C, H, W)
    for i, c in ((1, 6), (3, 16)):
        x = activation(net, conv(net, x, c, 5, pad="valid", name=f"c{i}"), act, name=f"c{i}_{act}")
        x = net.op("AveragePool", [x], name=f"s{i + 1}", kernel_shape=[2, 2], strides=[2, 2])
    x = net.op("Flatten", [x], name="flatten", axis=1)
    x = activation(net, linear(net, x, 120, name="c5", gain=2.0), act, name=f"c5_{act}")
    x = activation(net, linear(net, x, 84, name="f6", gain=2.0), act, name=f"f6_{act}")
    return net.build(linear(net, x, classes, name="output"))


def tiny_conv(frames: int, features: int, classes: int, filters: int, seed: int) -> Graph:
    """TensorFlow micro_speech 'tiny_conv' (speech_commands create_tiny_conv_model): spectrogram 49x40 ->
    conv 8 filters 10x8 stride 2 SAME + ReLU -> FC 4 (silence, unknown, yes, no) -> softmax. 336,000 MACs."""
    net = Net("micro_speech", seed)
    x = net.input((1, 1, frames, features))  # (N, C, time, frequency)
    x = conv_bn_act(net, x, filters, (10, 8), 2, pad="same", bn=False, act="relu", name="conv1")
    x = net.op("Flatten", [x], name="flatten", axis=1)
    y = linear(net, x, classes, name="fc")
    return net.build(net.op("Softmax", [y], name="softmax", axis=-1))


def sensor_cnn1d(width: float, length: int, channels: int, classes: int, bn: bool, seed: int, blocks: int = 3,
                 kernel: int = 5) -> Graph:
    """1-D CNN for inertial/sensor windows (e.g. accelerometer x/y/z, 128 samples, 6 activities as in UCI HAR):
    3 x [conv1d k5 -> BN -> ReLU -> max pool 2] with 16/32/64 x width channels -> global avg pool -> FC.
    blocks (1-4: 16/32/64/128) and kernel are what engine.search varies besides width."""
    net = Net("sensor_cnn1d", seed)
    x = net.input((1, channels, length))  # (N, C, T)
    for i, c in enumerate((16, 32, 64, 128)[:blocks], start=1):
        x = conv_bn_act(net, x, max(1, round(c * width)), kernel, bn=bn, act="relu", name=f"conv{i}")
        x = net.op("MaxPool", [x], name=f"pool{i}", kernel_shape=[2], strides=[2])
    return net.build(linear(net, global_pool_flatten(net, x, name="gap"), classes, name="fc"))


ENTRIES = [
    ZooEntry("lenet5", "LeNet-5 (LeCun et al. 1998): 2 conv 5x5 + avg pool, dense 120-84; 32x32x1, 10 classes; "
             "416,520 MACs, 61,706 params", "image_classification",
             {"resolution": p_resolution(32, min_=16), "classes": p_classes(10), "channels": p_channels(1),
              "act": ParamSpec("str", "tanh", "activation (tanh as published, relu as often re-implemented)",
                               choices=("tanh", "relu")),
              "seed": p_seed()},
             lenet5),
    ZooEntry("micro_speech", "TFLite Micro micro_speech 'tiny_conv': conv 8 10x8 s2 + FC on a 49x40 spectrogram, "
             "4 classes; 336,000 MACs", "keyword_spotting",
             {"frames": ParamSpec("int", 49, "spectrogram frames (time steps)", min=10, max=1000),
              "features": ParamSpec("int", 40, "frequency features per frame", min=8, max=256),
              "classes": p_classes(4),
              "filters": ParamSpec("int", 8, "conv filters", min=1, max=256),
              "seed": p_seed()},
             tiny_conv),
    ZooEntry("sensor_cnn1d", "1-D CNN for sensor time series: 3 conv1d-k5/BN/ReLU/maxpool blocks 16-32-64, "
             "global avg pool, FC; 3 x 128 samples, 6 classes", "time_series_classification",
             {"width": p_width(1.0),
              "length": ParamSpec("int", 128, "samples per window", min=16, max=65536),
              "channels": p_channels(3), "classes": p_classes(6), "bn": p_bn(), "seed": p_seed()},
             sensor_cnn1d),
]
