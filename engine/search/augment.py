"""Training-time augmentation a search can choose per candidate (the `train.augment` knob): Gaussian noise and
a time shift on each training batch, the augmentations the keywords data set is generated with, applied again
while training so a candidate sees new variants every epoch.

    fn = augmenter("noise+shift", data)      # None for "none"
    xb = fn(xb, rng)                          # a batch of samples (N, *data.input_shape), same shape and dtype

noise: + N(0, (NOISE x the training set's standard deviation)^2) per value. shift: each sample moved by a
whole number of steps in -SHIFT..SHIFT of its time axis (frames of a spectrogram (1, T, F): axis 1; the
length of a series (C, L); the rows of an image), the emptied steps zero — the silence a shifted clip starts
or ends with (features are standardized: zero is the mean).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.errors import TinyStudioError

KINDS = ("none", "noise", "shift", "noise+shift")
NOISE = 0.1  # of the training features' standard deviation
SHIFT = 0.1  # of the time axis' length, each way


def _shift(xb: np.ndarray, rng: np.random.Generator, axis: int, most: int) -> np.ndarray:
    out = np.zeros_like(xb)
    n = xb.shape[axis]
    for i, k in enumerate(rng.integers(-most, most + 1, size=len(xb))):
        src = [slice(None)] * (xb.ndim - 1)
        dst = [slice(None)] * (xb.ndim - 1)
        src[axis - 1] = slice(max(0, -k), n - max(0, k))
        dst[axis - 1] = slice(max(0, k), n - max(0, -k))
        out[i][tuple(dst)] = xb[i][tuple(src)]
    return out


def augmenter(kind: str, data) -> Callable[[np.ndarray, np.random.Generator], np.ndarray] | None:
    """The batch transform for `kind` on `data`'s samples (None: no augmentation)."""
    if kind not in KINDS:
        raise TinyStudioError(f"augmentation '{kind}': choose one of {', '.join(KINDS)}")
    if kind == "none":
        return None
    sigma = float(NOISE * np.std(data.x_train))
    axis = 1  # of the batch (N, ...): the sample's first axis after channels for 3-D, its length for 2-D
    if len(data.input_shape) >= 2:
        axis = 2
    most = max(1, int(round(SHIFT * data.input_shape[axis - 1])))

    def fn(xb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if "shift" in kind:
            xb = _shift(xb, rng, axis, most)
        if "noise" in kind:
            xb = xb + rng.normal(0.0, sigma, size=xb.shape).astype(xb.dtype)
        return xb

    return fn
