"""Try a model on one input: a data set sample or a user's array, through the float and the int8 executors.

    x, label = dataset_sample(data, 7)                   # validation sample 7, normalized, channels first
    res = try_input(graph, x, class_names=data.class_names, label=label)
    res["modes"]   # [{"mode": "float", "prediction": 3, "class": "3", "scores": [...], "top": [...]}, {"mode": "int8", ...}]

A float version runs on the float reference; an int8 version (quantized activations) runs on the integer
kernels (bit-exact to tflite-micro) with its input quantized on the graph's input grid, and, beside it, on
its float form (weights dequantized exactly) so the two can be compared. Inputs are channels-first samples as
in the data sets; NHWC graphs get them transposed (engine.compress.measure.predict). Scores are class
probabilities: a final Softmax's outputs, otherwise the softmax of the logits.
"""
from __future__ import annotations

import io

import numpy as np

from engine.data import Dataset, DataError, normalize
from engine.errors import TinyStudioError
from engine.ir import Graph

MAX_NPY_BYTES = 16 * 1024 * 1024


def dataset_sample(data: Dataset, index: int | None = None, seed: int | None = None,
                   split: str = "val") -> tuple[np.ndarray, int | None, int]:
    """(sample, true label or None, index) from the data set's split; index None draws one with `seed`."""
    x, y = (data.x_val, data.y_val) if split == "val" else (data.x_train, data.y_train)
    n = len(x)
    if index is None:
        index = int(np.random.default_rng(seed).integers(n))
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
        raise DataError(f"sample {index!r} is out of range: data set '{data.name}' has {n} {split} samples "
                        f"(0..{n - 1})")
    label = int(y[index]) if data.task == "classification" else None
    return np.asarray(x[index], np.float32), label, int(index)


def sample_from_npy(raw: bytes, name: str, data: Dataset | None, input_shape: tuple[int, ...]) -> np.ndarray:
    """One raw sample from a .npy file (never unpickled): shape `input_shape` (channels first) or with a
    leading batch of 1, normalized with the data set's statistics like its samples."""
    if len(raw) > MAX_NPY_BYTES:
        raise DataError(f"{name}: {len(raw):,} bytes is over the {MAX_NPY_BYTES:,}-byte limit for one input")
    try:
        arr = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{name}: not a readable .npy array file ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected one numeric .npy array")
    if arr.shape[:1] == (1,) and tuple(arr.shape[1:]) == tuple(input_shape):
        arr = arr[0]
    if tuple(arr.shape) != tuple(input_shape):
        raise DataError(f"{name}: array of shape {list(arr.shape)}; the model takes one sample of shape "
                        f"{list(input_shape)} (channels first, like the data set)")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: the array holds NaN or infinite values")
    return normalize(arr[None], data.normalization)[0] if data is not None else arr


def raw_range(data: Dataset) -> tuple[float, float]:
    """The smallest and largest raw (un-normalized) value of the training samples."""
    norm = data.normalization
    x = data.x_train
    if norm:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        x = x * np.asarray(norm["std"], np.float32).reshape(shape) + np.asarray(norm["mean"], np.float32).reshape(shape)
    return float(x.min()), float(x.max())


def sample_from_image(raw: bytes, name: str, data: Dataset, invert: bool = False) -> np.ndarray:
    """An image file as one sample of an image data set (C, H, W) with C 1 (gray) or 3 (RGB): resized to H x W,
    brightness 0..1 (inverted if asked: dark ink on white paper for white-on-black data) mapped onto the training
    samples' range of raw values, then normalized like them."""
    from PIL import Image, UnidentifiedImageError

    from engine.data.uploads import MAX_IMAGE_SIDE

    shape = tuple(data.input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise DataError(f"{name}: data set '{data.name}' does not hold images (its samples are {list(shape)}); "
                        "give a .npy sample")
    if len(raw) > MAX_NPY_BYTES:
        raise DataError(f"{name}: {len(raw):,} bytes is over the {MAX_NPY_BYTES:,}-byte limit for one input")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if max(img.size) > MAX_IMAGE_SIDE:
                raise DataError(f"{name}: {img.size[0]}x{img.size[1]} pixels is larger than {MAX_IMAGE_SIDE} on a side")
            img = img.convert("L" if shape[0] == 1 else "RGB").resize((shape[2], shape[1]),
                                                                       Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None
    a = np.asarray(img, np.float32) / 255.0
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # (C, H, W)
    if invert:
        a = 1.0 - a
    lo, hi = raw_range(data)
    return normalize((lo + a * (hi - lo))[None], data.normalization)[0].astype(np.float32)


def _softmax(v: np.ndarray) -> np.ndarray:
    e = np.exp(v - v.max())
    return e / e.sum()


def _mode(mode: str, out: np.ndarray, probs: bool, class_names) -> dict:
    raw = np.asarray(out, np.float64).reshape(-1)
    scores = raw / max(raw.sum(), 1e-12) if probs else _softmax(raw)
    pred = int(np.argmax(scores))
    names = list(class_names) if class_names and len(class_names) == len(scores) else [str(i) for i in
                                                                                     range(len(scores))]
    top = [{"class": names[i], "index": int(i), "score": float(scores[i])} for i in np.argsort(-scores)[:5]]
    return {"mode": mode, "prediction": pred, "class": names[pred], "scores": [float(s) for s in scores],
            "raw": [float(v) for v in raw], "top": top}


def try_input(graph: Graph, x: np.ndarray, class_names=None, label: int | None = None) -> dict:
    """Run one channels-first sample `x` through `graph` (see the module docstring)."""
    from engine.compress.base import float_form, is_quantized_graph
    from engine.compress.measure import predict
    from engine.train.graphs import adapt_input_layout, check_fits, ends_in_softmax, sample_shape

    x = np.asarray(x, np.float32)
    graph = adapt_input_layout(graph, tuple(x.shape))
    if len(graph.inputs) == 1 and sample_shape(graph) != tuple(x.shape):
        raise DataError(f"the model takes samples of shape {list(sample_shape(graph))}, this input has shape "
                        f"{list(x.shape)}; train it on this data set first (a zoo model is rebuilt for it)")
    check_fits(graph, tuple(x.shape), "the input")
    out = graph.outputs[0]
    probs = ends_in_softmax(graph, out)
    modes = []
    try:
        if is_quantized_graph(graph):
            modes.append(_mode("int8", predict(graph, x[None], [out])[out][0], probs, class_names))
            fg = float_form(graph)
            modes.insert(0, _mode("float", predict(fg, x[None], [out])[out][0], probs, class_names))
        else:
            modes.append(_mode("float", predict(graph, x[None], [out])[out][0], probs, class_names))
    except TinyStudioError:
        raise
    except (ValueError, IndexError) as e:  # a graph the executors cannot run on this input: one line, no trace
        raise TinyStudioError(f"graph '{graph.name}' cannot run this input: {e}") from None
    names = list(class_names) if class_names else None
    return {"modes": modes, "label": label,
            "label_class": (names[label] if names and label is not None and label < len(names) else
                            (None if label is None else str(label))),
            "agree": len({m["prediction"] for m in modes}) == 1,
            "int8_available": is_quantized_graph(graph)}
