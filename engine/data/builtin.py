"""Built-in data sets: real handwritten digits (bundled with scikit-learn, no download), two synthetic
generators shaped like typical TinyML inputs (a 3-axis accelerometer window, a small grayscale image) and
spoken keywords synthesized with espeak-ng (engine.data.keywords: generated once, cached, split by voice).

Synthetic data is a function of the seed: the same seed gives the same samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# seed -> raw x, y, class names [, (x_val, y_val) for a data set that comes with its own validation split]
Loader = Callable[[int], tuple]


@dataclass(frozen=True)
class Builtin:
    name: str
    description: str
    task: str
    input_shape: tuple[int, ...]
    classes: int
    samples: int
    source: str
    load: Loader

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "task": self.task,
                "input_shape": list(self.input_shape), "classes": self.classes, "samples": self.samples,
                "source": self.source}


def _digits(seed: int):
    # scikit-learn reads sklearn/datasets/data/digits.csv.gz from its own wheel: real data, no network.
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), gray levels 0..16
    return x, d.target.astype(np.int64), tuple(str(i) for i in range(10))


SENSOR_CLASSES = ("walking", "running", "stairs", "sitting", "standing", "lying")


def _sensor(seed: int, per_class: int = 200, length: int = 128, rate_hz: float = 50.0):
    """3-axis accelerometer windows in g (UCI-HAR-like: 50 Hz, 2.56 s): three gaits that differ in step
    frequency, amplitude and harmonics, three postures that differ in the direction of gravity. Per-sample
    jitter (frequency, phase, gain, tilt) and sensor noise make the classes overlap a little."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / rate_hz
    xs, ys = [], []
    gait = {0: (1.6, 2.2, 0.35, 0.1), 1: (2.5, 3.2, 0.9, 0.2), 2: (1.2, 1.7, 0.3, 0.45)}  # f range, amp, 2nd harmonic
    posture = {3: (0.5, 0.0, 0.87), 4: (0.0, 0.0, 1.0), 5: (0.0, 1.0, 0.0)}
    for c in range(len(SENSOR_CLASSES)):
        for _ in range(per_class):
            if c in gait:
                lo, hi, amp, h2 = gait[c]
                f = rng.uniform(lo, hi)
                a = amp * rng.uniform(0.8, 1.2)
                ph = rng.uniform(0, 2 * np.pi, 3)
                w = 2 * np.pi * f * t
                sig = np.stack([0.6 * a * np.sin(w + ph[0]),
                                0.4 * a * np.sin(2 * w + ph[1]),
                                1.0 + a * np.sin(w + ph[2]) + h2 * np.sin(2 * w + 2 * ph[2])])
            else:
                g = np.asarray(posture[c]) + rng.normal(0, 0.12, 3)
                g = g / np.linalg.norm(g)
                drift = rng.normal(0, 0.02, (3, 1)) * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
                sig = g[:, None] + drift
            xs.append(sig + rng.normal(0, 0.05, sig.shape))
            ys.append(c)
    order = rng.permutation(len(ys))
    return np.asarray(xs, np.float32)[order], np.asarray(ys, np.int64)[order], SENSOR_CLASSES


SHAPE_CLASSES = ("circle", "square", "triangle", "cross")


def _shapes(seed: int, per_class: int = 300, size: int = 16):
    """Outlined shapes on a noisy background: random centre, size, rotation, stroke and brightness."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    xs, ys = [], []
    for c in range(len(SHAPE_CLASSES)):
        for _ in range(per_class):
            r = rng.uniform(0.22, 0.34) * size
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
            rot = rng.uniform(0, np.pi / 2)
            half = rng.uniform(0.5, 0.9) * size / 16  # half the stroke width, scaled so 64x64 shapes stay as bold
            dx, dy = xx - cx, yy - cy
            u = dx * np.cos(rot) + dy * np.sin(rot)
            v = -dx * np.sin(rot) + dy * np.cos(rot)
            if c == 0:
                d = np.abs(np.hypot(u, v) - r)
            elif c in (1, 2):
                # A regular polygon's boundary is where the largest projection on its side normals hits the apothem.
                n = 4 if c == 1 else 3
                ang = rot + np.arange(n) * 2 * np.pi / n
                proj = np.max([dx * np.cos(a) + dy * np.sin(a) for a in ang], axis=0)
                d = np.abs(proj - r * np.cos(np.pi / n))
            else:
                d = np.minimum(np.where(np.abs(u) <= r, np.abs(v), np.inf), np.where(np.abs(v) <= r, np.abs(u), np.inf))
            img = np.clip(half + 0.5 - d, 0.0, 1.0) * rng.uniform(0.6, 1.0)
            xs.append(img + rng.normal(0, 0.08, img.shape))
            ys.append(c)
    order = rng.permutation(len(ys))
    return np.asarray(xs, np.float32)[order][:, None], np.asarray(ys, np.int64)[order], SHAPE_CLASSES


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("digits", "Handwritten digits 0-9, 8x8 gray levels (UCI optical digits as bundled with scikit-learn): "
            "real data, 1,797 samples", "classification", (1, 8, 8), 10, 1797, "scikit-learn (bundled)", _digits),
    Builtin("synthetic-sensor", "Synthetic 3-axis accelerometer windows, 128 samples at 50 Hz: walking, running, "
            "stairs, sitting, standing, lying", "classification", (3, 128), 6, 1200, "synthetic", _sensor),
    Builtin("synthetic-shapes", "Synthetic 16x16 grayscale images of outlined shapes: circle, square, triangle, "
            "cross (random position, size, rotation, noise)", "classification", (1, 16, 16), 4, 1200, "synthetic",
            _shapes),
    # Camera-like resolution: a first layer's activations at 64x64 are what patch-based inference shrinks
    # (the fourth built-in lab, engine/labs/builtin/patch16k.toml); 16x16 is too small for patching to matter.
    Builtin("synthetic-shapes-64", "Synthetic 64x64 grayscale images of outlined shapes: circle, square, triangle, "
            "cross (as synthetic-shapes, at camera-like resolution)", "classification", (1, 64, 64), 4, 800,
            "synthetic", lambda seed: _shapes(seed, per_class=200, size=64)),
    Builtin("keywords", "Spoken keywords as 49x10 MFCC like MLPerf Tiny KWS: 10 words + silence + unknown said by "
            "49 espeak-ng voices, augmented, split by voice (35 train / 7 validation / 7 held-out test); "
            "generated offline on first use, then cached", "classification", (1, 49, 10), 12, 2016,
            "espeak-ng (generated)", lambda seed: _keywords(seed)),
)}


def _keywords(seed: int):
    from engine.data import keywords  # librosa and scipy load only when this data set is asked for

    return keywords.load(seed)
