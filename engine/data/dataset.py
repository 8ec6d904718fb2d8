"""The Dataset record and make_dataset: validation, stratified train/validation split, normalization.

Every loader (built-ins, .npz, .csv, .zip) ends in make_dataset, so the checks a user's data must pass are
in one place: one sample per row, finite values, integer class labels 0..K-1 with no empty class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import TinyStudioError

TASKS = ("classification", "regression", "reconstruction")


class DataError(TinyStudioError):
    """A data set cannot be used: wrong shapes, NaNs, labels out of range, an empty class, an unsafe archive."""


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; identity is what callers need
class Dataset:
    """Samples ready for training: float32, channels first, normalized with the train split's statistics.

    x_*: (N, *input_shape); y_*: int64 class indices (classification), float32 targets (regression),
    or a copy of x (reconstruction). normalization = {"mean": [...], "std": [...], "axis": "channel"|"feature"}
    was applied already (x = (raw - mean) / std); a deployed model expects inputs normalized the same way.
    """

    name: str
    task: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    classes: int
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    normalization: dict = field(default_factory=dict)
    source: str = ""

    @property
    def samples(self) -> int:
        return int(len(self.x_train) + len(self.x_val))

    def to_json(self) -> dict:
        """The description stored with a session (no arrays)."""
        return {"name": self.name, "task": self.task, "classes": self.classes, "class_names": list(self.class_names),
                "input_shape": list(self.input_shape), "train_samples": int(len(self.x_train)),
                "val_samples": int(len(self.x_val)), "normalization": self.normalization, "source": self.source}


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])


def _check_x(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: inputs must be numbers, got arrays of {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{what}: inputs must hold one sample per row, shape (N, features...), got {list(x.shape)}")
    if x.shape[0] == 0 or x[0].size == 0:
        raise DataError(f"{what}: inputs are empty (shape {list(x.shape)})")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError(f"{what}: sample {_first_bad(bad)} holds NaN or infinite values")
    return x


def _labels(y, n: int, classes: int | None, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(1) == 1).all():
        y = y.argmax(1)  # one-hot rows
    if y.ndim != 1:
        raise DataError(f"{what}: labels must be one class index per sample, shape ({n},), got {list(y.shape)}")
    if len(y) != n:
        raise DataError(f"{what}: {n} samples but {len(y)} labels")
    if y.dtype.kind not in "biuf":
        raise DataError(f"{what}: labels must be class indices 0..K-1, got {y.dtype} values")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(f"{what}: label of sample {int(np.flatnonzero(bad)[0])} is NaN or infinite")
        frac = y != np.round(y)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataError(f"{what}: label {y[i]:g} of sample {i} is not a class index (for numeric targets "
                            "use task 'regression')")
    if y.dtype.kind in "uf" and y.size:  # beyond int64: the cast below would wrap around
        huge = np.abs(y) >= 2.0 ** 62
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            raise DataError(f"{what}: label {y[i]:g} of sample {i} is out of range (labels are class indices 0..K-1)")
    y = y.astype(np.int64)
    top = classes if classes is not None else int(y.max()) + 1
    out = (y < 0) | (y >= top)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(f"{what}: label {int(y[i])} of sample {i} is out of range 0..{top - 1}")
    return y


def _split(y: np.ndarray, stratify: bool, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices; per class when stratifying so both splits keep the class balance."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    train, val = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        k = int(round(len(idx) * val_fraction))
        k = min(max(k, 1), len(idx) - 1) if len(idx) > 1 else 0
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _normalization(x: np.ndarray) -> dict:
    """Per-channel statistics for (N, C, ...) samples, per-feature for (N, F)."""
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, dtype=np.float64)
    std = x.std(axis=axes, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, std)  # a constant channel passes through unscaled instead of exploding
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "axis": "channel" if x.ndim > 2 else "feature"}


def normalize(x: np.ndarray, norm: dict) -> np.ndarray:
    """Apply a Dataset's normalization to raw samples (N, C, ...) or (N, F)."""
    if not norm:
        return np.asarray(x, np.float32)
    shape = (1, -1) + (1,) * (np.ndim(x) - 2)
    mean = np.asarray(norm["mean"], np.float32).reshape(shape)
    std = np.asarray(norm["std"], np.float32).reshape(shape)
    return ((np.asarray(x, np.float32) - mean) / std).astype(np.float32)


def make_dataset(name: str, x, y, *, task: str = "classification", class_names: tuple[str, ...] | None = None,
                 seed: int = 0, val_fraction: float = 0.2, source: str = "", normalize_inputs: bool = True,
                 val: tuple | None = None, what: str | None = None) -> Dataset:
    """Validated, split and normalized Dataset from raw arrays. `val` = (x_val, y_val) keeps a given split."""
    what = what or name
    if task not in TASKS:
        raise DataError(f"{what}: task must be one of {', '.join(TASKS)}, got '{task}'")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"{what}: val_fraction must be between 0 and 1, got {val_fraction}")
    x = _check_x(x, what)
    n = len(x)
    classes = 0
    if task == "classification":
        given = len(class_names) if class_names else None
        y = _labels(y, n, given, what)
        classes = given or int(y.max()) + 1
        if val is not None:
            yv = _labels(val[1], len(val[0]), classes, what + " (validation)")
            present = np.unique(np.concatenate([y, yv]))
        else:
            present = np.unique(y)
        # The first class without samples, found among the labels present (sorted, all in 0..classes-1)
        # rather than by counting all `classes`: a label of 2^40 costs nothing more than a label of 3.
        if len(present) < classes:
            gaps = np.flatnonzero(present != np.arange(len(present)))
            c = int(gaps[0]) if len(gaps) else len(present)
            label = f" ('{class_names[c]}')" if class_names else ""
            raise DataError(f"{what}: class {c}{label} has no samples (labels must cover 0..{classes - 1})")
        if classes < 2:
            raise DataError(f"{what}: classification needs at least 2 classes, the labels hold {classes}")
        class_names = tuple(class_names) if class_names else tuple(str(i) for i in range(classes))
    elif task == "regression":
        y = np.asarray(y)
        if y.dtype.kind not in "biuf" or y.shape[:1] != (n,) or y.ndim > 2:
            raise DataError(f"{what}: regression targets must be numbers of shape ({n},) or ({n}, k), "
                            f"got {list(y.shape)} {y.dtype}")
        y = y.astype(np.float32)
        if not np.isfinite(y).all():
            raise DataError(f"{what}: target of sample {_first_bad(~np.isfinite(y))} is NaN or infinite")
        class_names = ()
    else:
        y, class_names = x, ()
    if val is None:
        if n < 2:
            raise DataError(f"{what}: needs at least 2 samples to split into train and validation, got {n}")
        tr, va = _split(y, task == "classification", val_fraction, seed)
        x_train, y_train, x_val, y_val = x[tr], y[tr], x[va], y[va]
    else:
        x_val = _check_x(val[0], what + " (validation)")
        if x_val.shape[1:] != x.shape[1:]:
            raise DataError(f"{what}: validation samples have shape {list(x_val.shape[1:])}, training samples "
                            f"{list(x.shape[1:])}")
        x_train, y_train = x, y
        y_val = yv if task == "classification" else (x_val if task == "reconstruction" else
                                                      np.asarray(val[1], np.float32))
        if task == "regression" and y_val.shape[1:] != y.shape[1:]:
            raise DataError(f"{what}: validation targets have shape {list(y_val.shape)}, expected "
                            f"({len(x_val)}, {', '.join(map(str, y.shape[1:]))})")
    norm: dict = {}
    if normalize_inputs:
        norm = _normalization(x_train)
        x_train, x_val = normalize(x_train, norm), normalize(x_val, norm)
        if task == "reconstruction":
            y_train, y_val = x_train, x_val
    return Dataset(name, task, np.ascontiguousarray(x_train), np.ascontiguousarray(y_train),
                   np.ascontiguousarray(x_val), np.ascontiguousarray(y_val), classes, tuple(class_names),
                   tuple(int(d) for d in x.shape[1:]), norm, source)
