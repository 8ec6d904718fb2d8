"""Data sets for training and calibration: built-ins and user uploads, split and normalized.

    ds = load_dataset("digits")                     # real 8x8 digits bundled with scikit-learn (no download)
    ds.x_train.shape, ds.classes                    # (1437, 1, 8, 8), 10
    ds = load_dataset("my_data.npz", seed=1)        # arrays x (N, ...) and y (N,) [+ x_val, y_val, class_names]
    ds = load_dataset("photos.zip", resize=32)      # class folders of PNG/JPEG images -> (N, C, 32, 32)
    feeds = dataset_feeds(graph, ds.x_val[:64])     # calibration samples for engine.passes.ptq.quantize_model
    list_datasets()                                 # the built-ins, for `tinystudio datasets` and the app

Samples are channels first like the zoo's float graphs: images (C, H, W), time series (C, L), tables (F,).
Inputs are normalized per channel (per feature for tables) with the training split's mean and std; the
statistics travel in Dataset.normalization. Bad data raises DataError with one line naming the problem.
"""
from __future__ import annotations

import os

import numpy as np

from engine.data.builtin import BUILTINS
from engine.data.dataset import TASKS, DataError, Dataset, make_dataset, normalize
from engine.ir import Graph

__all__ = ["BUILTINS", "DataError", "Dataset", "TASKS", "dataset_feeds", "list_datasets", "load_dataset",
           "make_dataset", "normalize", "resize_images"]

MAX_BYTES = 200 * 1024 * 1024
UPLOAD_EXTENSIONS = (".npz", ".csv", ".zip")


def list_datasets() -> list[dict]:
    """The built-in data sets: name, description, task, input_shape, classes, samples, source."""
    return [b.to_json() for b in BUILTINS.values()]


def _size(resize) -> tuple[int, int] | None:
    if resize is None:
        return None
    hw = (resize, resize) if isinstance(resize, (int, np.integer)) else tuple(resize)
    if len(hw) != 2 or any(int(v) != v or v < 1 or v > 4096 for v in hw):
        raise DataError(f"resize must be a size like 32 or (32, 32) between 1 and 4096, got {resize!r}")
    return int(hw[0]), int(hw[1])


def resize_images(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) -> (N, C, *size), bilinear (antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if x.shape[2:] == tuple(size):
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    y = F.interpolate(torch.from_numpy(np.ascontiguousarray(x, np.float32)), size=tuple(size), mode="bilinear",
                      align_corners=False, antialias=shrink)
    return y.numpy()


def load_dataset(name_or_path: str, *, seed: int = 0, val_fraction: float = 0.2, max_bytes: int = MAX_BYTES,
                 resize: int | tuple[int, int] | None = None, task: str | None = None,
                 normalize_inputs: bool = True) -> Dataset:
    """A built-in by name, or a .npz / .csv / .zip file (see the module docstring).

    seed: the split (and synthetic samples); val_fraction: share of samples held out, per class;
    resize: image size (H, W) for image data (zips of differently sized images need it);
    task: "classification" (default) or "regression" for numeric targets in a .npz / .csv.
    """
    size = _size(resize)
    key = str(name_or_path).strip()
    if key.lower() in BUILTINS:
        b = BUILTINS[key.lower()]
        x, y, names, *given = b.load(seed)  # `keywords` brings its validation split (held-out voices)
        if size is not None:
            if x.ndim != 4:
                raise DataError(f"{b.name}: resize applies to image data, these samples are {list(x.shape[1:])}")
            x = resize_images(x, size)
            given = [(resize_images(v[0], size), v[1]) for v in given]
        return make_dataset(b.name, x, y, task=b.task, class_names=names, seed=seed, val_fraction=val_fraction,
                            source=f"builtin:{b.name}" if b.source != "synthetic" else f"synthetic:{b.name}",
                            normalize_inputs=normalize_inputs, val=given[0] if given else None)
    ext = os.path.splitext(key)[1].lower()
    if not os.path.exists(key):
        if ext in UPLOAD_EXTENSIONS:
            raise DataError(f"{key}: no such file")
        raise DataError(f"unknown data set '{key}'; built-ins: {', '.join(BUILTINS)}; or give a "
                        f"{', '.join(UPLOAD_EXTENSIONS)} file")
    if not os.path.isfile(key):
        raise DataError(f"{key}: not a file")
    if ext not in UPLOAD_EXTENSIONS:
        raise DataError(f"{key}: unsupported data file type '{ext or '(none)'}'; use "
                        f"{', '.join(UPLOAD_EXTENSIONS)}")
    from engine.data import uploads

    base = os.path.basename(key)
    stem = os.path.splitext(base)[0]
    val = None
    names = None
    if ext == ".npz":
        raw = uploads.read_npz(key, max_bytes)
        task = task or raw["task"] or "classification"
        val, names = raw["val"], raw["class_names"]
    elif ext == ".csv":
        task = task or "classification"
        raw = uploads.read_csv(key, max_bytes, task)
        names = raw["class_names"]
    else:
        task = task or "classification"
        if task != "classification":
            raise DataError(f"{key}: a zip of class folders is a classification data set, not {task}")
        raw = uploads.read_image_zip(key, max_bytes, size)
        names = raw["class_names"]
        size = None  # resized while decoding
    x = raw["x"]
    if size is not None:
        if np.ndim(x) != 4:
            raise DataError(f"{key}: resize applies to image data (N, C, H, W), these samples are "
                            f"{list(np.shape(x)[1:])}")
        x = resize_images(np.asarray(x, np.float32), size)
        if val is not None:
            val = (resize_images(np.asarray(val[0], np.float32), size), val[1])
    return make_dataset(stem, x, raw["y"], task=task, class_names=names, seed=seed, val_fraction=val_fraction,
                        source=f"upload:{base}", normalize_inputs=normalize_inputs, val=val, what=key)


def _sample_shape(graph: Graph, name: str) -> tuple[int, ...]:
    """The input's shape in the original (channels-first) layout, without the batch dim."""
    shape = graph.tensors[name].shape
    lay = graph.meta.get("input_layout", {}).get(name)
    if lay is not None:  # e.g. an NHWC int8 graph fed NCHW samples (see engine.passes.ptq.to_graph_layout)
        shape = tuple(shape[i] for i in np.argsort(lay["perm"]))
    return tuple(shape[1:])


def dataset_feeds(graph: Graph, x: np.ndarray, limit: int | None = None) -> list[dict]:
    """One feed dict {input name: (1, *sample shape)} per sample, the calibration format of quantize_model."""
    if len(graph.inputs) != 1:
        raise DataError(f"graph '{graph.name}' has {len(graph.inputs)} inputs; data sets feed one-input models")
    name = graph.inputs[0]
    want = _sample_shape(graph, name)
    x = np.asarray(x, np.float32)
    if tuple(x.shape[1:]) != want:
        raise DataError(f"samples of shape {list(x.shape[1:])} do not fit input '{name}' of graph '{graph.name}', "
                        f"which takes {list(want)} per sample")
    n = len(x) if limit is None else min(limit, len(x))
    return [{name: x[i:i + 1]} for i in range(n)]
