"""Search spaces as data: named knobs with their choices, and a function that builds a candidate for a data set.

    space = SPACES["dscnn"].for_data((1, 49, 10))       # data-dependent choices resolved (resolutions)
    params = space.smallest()                            # {"filters": 16, "blocks": 1, ...}
    g = space.build(params, input_shape=(1, 49, 10), classes=12, seed=0)   # an IR Graph (float32, with BN)

Every candidate is one of the zoo's builders (engine.zoo) called with the knob values, so a searched model is
the same kind of graph `tinystudio train zoo:...` trains. Choices are listed smallest first: the first choice
of every knob is the smallest point of the space (used to tell impossible constraints before any training).

Resolution is a first-class knob of the image families (the data is resized in the graph: a nearest Resize in
front, as engine.train.adapt_zoo does), given as a factor of the data's own size and resolved to pixels by
`for_data`. Training hyperparameters and the compression policy are knobs too (TRAINING_KNOBS,
COMPRESSION_KNOBS), added to a space by `with_training()`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from engine.errors import TinyStudioError
from engine.ir import Graph


@dataclass(frozen=True)
class Knob:
    name: str  # "resolution", "stage2.depth", "conv1.kernel_shape", "train.lr", ...
    choices: tuple  # smallest first
    help: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "choices": [list(c) if isinstance(c, tuple) else c for c in self.choices],
                "help": self.help}


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    knobs: tuple[Knob, ...]
    builder: Callable[..., Graph]  # builder(params, input_shape, classes, seed) -> Graph; module-level (pickled)
    takes: str  # "image" (C, H, W) | "spectrogram" (1, T, F) or image | "series" (C, L) | "version"
    resolutions: tuple[float, ...] = ()  # resolution factors of the data's size (image families)

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.knobs)

    def knob(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise TinyStudioError(f"space '{self.name}' has no knob '{name}'; knobs: {', '.join(self.knob_names)}")

    def smallest(self) -> dict:
        return {k.name: k.choices[0] for k in self.knobs}

    def size(self) -> int:
        n = 1
        for k in self.knobs:
            n *= len(k.choices)
        return n

    def for_data(self, input_shape: tuple[int, ...]) -> "Space":
        """The space with data-dependent choices resolved for samples of `input_shape`; a clear error when this
        family cannot take such samples."""
        shape = tuple(int(d) for d in input_shape)
        ok = {"image": len(shape) == 3, "spectrogram": len(shape) == 3, "series": len(shape) == 2,
              "version": True}[self.takes]
        if not ok:
            want = {"image": "images (channels, height, width)", "spectrogram": "spectrograms (1, frames, "
                    "coefficients) or images", "series": "time series (channels, length)"}[self.takes]
            raise TinyStudioError(f"space '{self.name}' takes {want}; the data set's samples are {list(shape)}")
        if self.takes == "spectrogram" and shape[0] != 1:
            raise TinyStudioError(f"space '{self.name}' takes one-channel inputs (1, frames, coefficients); the data "
                                  f"set's samples are {list(shape)}")
        if not self.resolutions:
            return self
        side = max(shape[1:])
        res = tuple(sorted({max(4, int(round(side * f))) for f in self.resolutions}))
        knobs = tuple(replace(k, choices=res) if k.name == "resolution" else k for k in self.knobs)
        return replace(self, knobs=knobs, resolutions=())

    def build(self, params: dict, input_shape: tuple[int, ...], classes: int, seed: int = 0) -> Graph:
        arch = {k: v for k, v in params.items() if not k.startswith(("train.", "compress."))}
        missing = [k for k in self.knob_names if k not in params]
        if missing:
            raise TinyStudioError(f"space '{self.name}': no value for knob(s) {', '.join(missing)}")
        return self.builder(arch, tuple(input_shape), int(classes), int(seed))

    def with_training(self) -> "Space":
        """This space plus the training hyperparameters and the compression policy as knobs."""
        have = set(self.knob_names)
        extra = tuple(k for k in TRAINING_KNOBS + COMPRESSION_KNOBS if k.name not in have)
        return replace(self, knobs=self.knobs + extra)

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "takes": self.takes,
                "knobs": [k.to_json() for k in self.knobs], "size": self.size()}


TRAINING_KNOBS = (
    Knob("train.lr", (0.001, 0.002, 0.003, 0.005, 0.01), "Adam learning rate"),
    Knob("train.batch_size", (16, 32, 64), "mini-batch size"),
    Knob("train.epochs_factor", (0.5, 1.0), "share of the study's --epochs this candidate trains for"),
    Knob("train.weight_decay", (0.0, 0.001, 0.01, 0.1), "AdamW's decoupled weight decay (0: plain Adam)"),
    Knob("train.augment", ("none", "noise", "shift", "noise+shift"),
         "per-batch augmentation while training (engine.search.augment): Gaussian noise, time shift"),
)
# The deployed weights: all int8 (PTQ), or the mixed-precision action's int4 weights for the least sensitive
# layers (engine.compress mixed-precision); structured channel pruning after training (prune-channels).
COMPRESSION_KNOBS = (
    Knob("compress.prune", (0.0, 0.25, 0.5), "share of channels prune-channels removes after training"),
    Knob("compress.weights", ("int8", "mixed-int4"), "deployed weight precision"),
)


def _resized(g: Graph, size: tuple[int, ...], sample: tuple[int, ...]) -> Graph:
    """`g` fed through a nearest Resize from the data's sample size (adapt_zoo's way of adapting resolution)."""
    from engine.train.adapt import prepend_resize

    if tuple(g.tensors[g.inputs[0]].shape[1:]) == tuple(sample):
        return g
    out = prepend_resize(g, size, sample)
    out.meta["input_resize"] = {"from": list(sample[1:]), "to": list(size), "mode": "nearest"}
    return out


def _named(g: Graph, family: str, params: dict) -> Graph:
    g.name = f"search:{family}?" + "&".join(f"{k}={_fmt(v)}" for k, v in sorted(params.items()))
    # No "spec" key: engine.passes.ptq reads source.spec as a zoo spec.
    g.meta["source"] = {"format": "search", "space": family, "params": {k: _fmt(v) for k, v in params.items()}}
    return g


def _fmt(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)


# ---- the families ------------------------------------------------------------------------------------

MBV2_STAGES = ((1, 16, 1), (6, 24, 2), (6, 32, 2), (6, 48, 2), (6, 64, 1))  # (t, c, stride): MCUNet-like, short


def _mobilenetv2(p: dict, shape: tuple[int, ...], classes: int, seed: int) -> Graph:
    from engine.zoo.layers import make_divisible
    from engine.zoo.mobilenet import mobilenet_v2

    stages = []
    for i, (t, c, s) in enumerate(MBV2_STAGES, start=1):
        depth = p.get(f"stage{i}.depth", 1)
        if depth == 0:
            continue
        stages.append((p.get(f"stage{i}.expand", t) if t != 1 else 1, c, depth, s, p.get(f"stage{i}.kernel", 3)))
    r = int(p["resolution"])
    last = make_divisible(p.get("last_channels", 160) * max(1.0, p["width"]))
    g = mobilenet_v2(p["width"], r, classes, shape[0], last, True, seed, stages=stages)
    return _named(_resized(g, (r, r), shape), "mobilenetv2", p)


def _dscnn(p: dict, shape: tuple[int, ...], classes: int, seed: int) -> Graph:
    from engine.zoo.mlperf_tiny import ds_cnn

    g = ds_cnn(shape[1], shape[2], classes, p["filters"], p["blocks"], True, seed,
               first_kernel=tuple(p["first_kernel"]), first_stride=p["first_stride"])
    return _named(g, "dscnn", p)


def _resnet(p: dict, shape: tuple[int, ...], classes: int, seed: int) -> Graph:
    from engine.zoo.mlperf_tiny import resnet8

    r = int(p["resolution"])
    g = resnet8(r, classes, shape[0], p["filters"], True, seed, stacks=p["stacks"], kernel=p["kernel"])
    return _named(_resized(g, (r, r), shape), "resnet", p)


def _cnn1d(p: dict, shape: tuple[int, ...], classes: int, seed: int) -> Graph:
    from engine.zoo.small import sensor_cnn1d

    g = sensor_cnn1d(p["width"], shape[1], shape[0], classes, True, seed, blocks=p["blocks"], kernel=p["kernel"])
    return _named(g, "cnn1d", p)


def _mbv2_knobs() -> tuple[Knob, ...]:
    knobs = [Knob("resolution", (), "input side in pixels (factors 0.5-2 of the data's size)"),
             Knob("width", (0.25, 0.35, 0.5, 0.75, 1.0), "width multiplier of every layer's channels"),
             Knob("last_channels", (64, 96, 128, 160), "outputs of the last 1x1 conv (x width when > 1)")]
    for i, (t, _, _) in enumerate(MBV2_STAGES, start=1):
        knobs.append(Knob(f"stage{i}.depth", (0, 1, 2, 3) if i > 2 else (1, 2), f"blocks in stage {i}"))
        if t != 1:
            knobs.append(Knob(f"stage{i}.expand", (3, 4, 6), f"expansion ratio of stage {i}"))
        knobs.append(Knob(f"stage{i}.kernel", (3, 5, 7), f"depthwise kernel of stage {i}"))
    return tuple(knobs)


SPACES: dict[str, Space] = {s.name: s for s in (
    Space("mobilenetv2", "MobileNetV2 / MCUNet-style inverted residuals: resolution, width, depth, expansion 3/4/6 "
          "and kernel 3/5/7 per stage", _mbv2_knobs(), _mobilenetv2, "image",
          resolutions=(0.5, 0.75, 1.0, 1.5, 2.0)),
    Space("dscnn", "DS-CNN for keyword spotting (Hello Edge / MLPerf Tiny KWS): channels, blocks, first-conv "
          "kernel and stride",
          (Knob("filters", (8, 16, 24, 32, 48, 64, 96), "channels of every conv layer"),
           Knob("blocks", (1, 2, 3, 4, 5), "depthwise-separable blocks"),
           Knob("first_kernel", ((3, 3), (5, 3), (10, 4)), "first conv kernel (time x frequency)"),
           Knob("first_stride", (2, 1), "first conv stride (2 halves the arena)")),
          _dscnn, "spectrogram"),
    Space("resnet", "ResNet-8 style (MLPerf Tiny IC): resolution, filters, stacks and kernel",
          (Knob("resolution", (), "input side in pixels (factors 0.5-2 of the data's size)"),
           Knob("filters", (4, 8, 12, 16, 24, 32), "channels of the first stack (doubled per stack)"),
           Knob("stacks", (1, 2, 3), "residual stacks"),
           Knob("kernel", (3, 5), "conv kernel")),
          _resnet, "image", resolutions=(0.5, 0.75, 1.0, 1.5, 2.0)),
    Space("cnn1d", "1-D CNN for sensor windows: width, blocks and kernel",
          (Knob("width", (0.25, 0.5, 0.75, 1.0, 1.5), "width multiplier of the 16/32/64/128 channels"),
           Knob("blocks", (1, 2, 3, 4), "conv1d + max-pool blocks"),
           Knob("kernel", (3, 5, 7), "conv1d kernel")),
          _cnn1d, "series"),
)}


def get_space(name: str) -> Space:
    s = SPACES.get(str(name).strip().lower())
    if s is None:
        raise TinyStudioError(f"unknown space '{name}'; spaces: {', '.join(SPACES)} (or a model file for its "
                              "marked knobs)")
    return s
