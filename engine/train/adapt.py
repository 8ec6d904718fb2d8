"""adapt_zoo(): a zoo model built for a data set's sample shape and class count.

    g = adapt_zoo("zoo:lenet5", load_dataset("digits"))   # 1 channel, 10 classes, 8x8 inputs

The data set's shape sets the zoo parameters that describe the input (resolution and channels for image
models, length and channels for 1-D models, frames and coeffs/features for spectrogram models, inputs for
vector models) and `classes` sets the output. When an image model has a minimum resolution above the data's
size (LeNet-5 needs 16x16, digits are 8x8), or the images are not square, the model is built at the
smallest valid square resolution and a nearest-neighbour Resize is put in front of it: the graph still
takes the data set's samples, and nearest Resize runs in the int8 kernels and the generated C like any
other layer. Parameters given in the spec win where they are compatible; contradictions are errors.
"""
from __future__ import annotations

import numpy as np

from engine.data import Dataset, DataError
from engine.ir import Node, Tensor
from engine.validate import infer_shapes
from engine.zoo import ZOO, ZooSpecError, build_zoo_model, parse_zoo_spec

SPATIAL_FEATURES = ("coeffs", "features")  # the frequency axis of spectrogram models


def _derive(name: str, params: dict, given: dict, shape: tuple[int, ...],
            data: Dataset) -> tuple[dict, tuple[int, int] | None]:
    """Zoo parameters implied by the data (and the resolution to resize to, for image models)."""
    want: dict = {}
    resize = None
    fits = f"zoo model '{name}' cannot take samples of shape {list(shape)} from data set '{data.name}'"
    if "resolution" in params:
        if len(shape) != 3:
            raise DataError(f"{fits}: it takes images (channels, height, width)")
        c, h, w = shape
        if "channels" in params:
            want["channels"] = c
        # An explicit resolution in the spec wins: the Resize in front adapts the data to it.
        r = given.get("resolution") or max(h, w, int(params["resolution"].min or 1))
        if (h, w) != (r, r):
            resize = (r, r)
        want["resolution"] = r
    elif "frames" in params:
        feat = next((k for k in SPATIAL_FEATURES if k in params), None)
        if len(shape) != 3 or shape[0] != 1 or feat is None:
            raise DataError(f"{fits}: it takes spectrograms (1, frames, {feat or 'features'})")
        want["frames"], want[feat] = shape[1], shape[2]
    elif "length" in params:
        if len(shape) != 2:
            raise DataError(f"{fits}: it takes time series (channels, length)")
        want["channels"], want["length"] = shape
    elif "inputs" in params:
        if len(shape) != 1:
            raise DataError(f"{fits}: it takes feature vectors (features,)")
        want["inputs"] = shape[0]
    else:
        raise DataError(f"{fits}: it has no input size parameters")
    if data.task == "classification":
        if "classes" not in params:
            raise DataError(f"zoo model '{name}' is not a classifier; data set '{data.name}' is a classification "
                            "data set")
        want["classes"] = data.classes
    elif data.task == "regression":
        if "classes" not in params:
            raise DataError(f"zoo model '{name}' has no output size parameter for regression targets")
        want["classes"] = int(np.prod(data.y_train.shape[1:], dtype=np.int64))
    return want, resize


def prepend_resize(g, size: tuple[int, int], sample: tuple[int, ...]):
    """Feed `g`'s input through a nearest Resize from the data's (C, H, W) to `size`, keeping the input name."""
    g = g.copy()
    x = g.inputs[0]
    t = g.tensors[x]
    inner = f"{x}_resized"
    for node in g.nodes:
        node.inputs = [inner if i == x else i for i in node.inputs]
    g.tensors[inner] = Tensor(inner, t.shape, t.dtype)
    g.tensors[x] = Tensor(x, (t.shape[0], *sample), t.dtype, t.quant, None, dict(t.meta))
    g.nodes.insert(0, Node("Resize", "input_resize", [x], [inner],
                           {"sizes": list(size), "mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                            "nearest_mode": "floor"}))
    return infer_shapes(g)


def adapt_zoo(spec: str, data: Dataset, *, seed: int | None = None):
    """Build zoo `spec` for `data` (see the module docstring); `seed` initializes the weights unless the spec
    sets one."""
    name, given = parse_zoo_spec(spec)
    params = ZOO[name].params
    want, resize = _derive(name, params, given, tuple(data.input_shape), data)
    for k, v in want.items():
        if k in given and given[k] != v:
            raise DataError(f"zoo model '{name}': {k}={given[k]} in the spec contradicts data set '{data.name}' "
                            f"({k}={v})")
    if seed is not None and "seed" in params and "seed" not in given:
        want["seed"] = seed
    try:
        g = build_zoo_model(spec, **want)
    except ZooSpecError as e:
        raise DataError(f"zoo model '{name}' cannot be built for data set '{data.name}' {list(data.input_shape)}: "
                        f"{e}") from None
    if resize is not None:
        g = prepend_resize(g, resize, tuple(data.input_shape))
        g.meta["input_resize"] = {"from": list(data.input_shape[1:]), "to": list(resize), "mode": "nearest"}
    sample = g.tensors[g.inputs[0]].shape[1:]
    if tuple(sample) != tuple(data.input_shape):
        raise DataError(f"zoo model '{name}' takes samples of shape {list(sample)}, data set '{data.name}' has "
                        f"{list(data.input_shape)}")
    g.meta["dataset"] = data.to_json()
    return g
