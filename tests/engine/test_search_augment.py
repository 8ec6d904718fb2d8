"""The search's training knobs: weight decay (AdamW) and per-batch augmentation (noise, time shift)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.errors import TinyStudioError
from engine.search.augment import augmenter
from engine.search.spaces import SPACES, TRAINING_KNOBS


@pytest.fixture(scope="module")
def digits():
    from engine.data import load_dataset

    return load_dataset("digits", seed=0)


class _Data:
    def __init__(self, shape):
        self.input_shape = shape
        self.x_train = np.random.default_rng(0).normal(0, 2.0, size=(64, *shape)).astype(np.float32)


def test_shift_moves_each_sample_along_its_time_axis_and_zero_fills():
    data = _Data((1, 49, 10))
    fn = augmenter("shift", data)
    xb = data.x_train[:8]
    out = fn(xb, np.random.default_rng(3))
    ks = np.random.default_rng(3).integers(-5, 6, size=8)  # 10 % of 49 frames each way
    assert out.shape == xb.shape and out.dtype == xb.dtype
    for x, y, k in zip(xb, out, ks):
        expect = np.zeros_like(x)
        if k >= 0:
            expect[:, k:, :] = x[:, :49 - k, :]
        else:
            expect[:, :49 + k, :] = x[:, -k:, :]
        np.testing.assert_array_equal(y, expect)
    assert any(k != 0 for k in ks)


def test_noise_is_a_tenth_of_the_data_spread_and_none_is_no_transform():
    data = _Data((3, 100))
    out = augmenter("noise", data)(data.x_train, np.random.default_rng(0))
    assert np.std(out - data.x_train) == pytest.approx(0.1 * np.std(data.x_train), rel=0.05)
    both = augmenter("noise+shift", data)(data.x_train, np.random.default_rng(0))
    assert both.shape == data.x_train.shape and not np.array_equal(both, data.x_train)
    assert augmenter("none", data) is None
    with pytest.raises(TinyStudioError, match="augmentation 'mixup': choose one of none, noise, shift"):
        augmenter("mixup", data)


def test_weight_decay_shrinks_weights_and_augment_reaches_every_batch(digits):
    from engine.train import train

    names = {k.name for k in TRAINING_KNOBS}
    assert {"train.weight_decay", "train.augment"} <= names
    g = SPACES["dscnn"].build({"filters": 8, "blocks": 1, "first_kernel": (3, 3), "first_stride": 2},
                              digits.input_shape, digits.classes)
    plain, rep0 = train(g, digits, epochs=2, lr=0.01, batch_size=32, seed=0, patience=None)
    same, rep1 = train(g, digits, epochs=2, lr=0.01, batch_size=32, seed=0, patience=None, weight_decay=0.0)
    assert rep0.accuracy == rep1.accuracy  # 0: plain Adam, as before the knob existed
    decayed, _ = train(g, digits, epochs=2, lr=0.01, batch_size=32, seed=0, patience=None, weight_decay=0.5)

    def norm(graph):
        return sum(float(np.sum(t.data.astype(np.float64) ** 2)) for t in graph.tensors.values()
                   if t.data is not None and t.data.ndim >= 2)

    assert norm(decayed) < norm(plain)
    assert decayed.meta["training"]["weight_decay"] == 0.5
    seen = []

    def blank(xb, rng):  # every training batch all zeros: nothing to learn from
        seen.append(len(xb))
        return np.zeros_like(xb)

    _, rep = train(g, digits, epochs=1, lr=0.01, batch_size=32, seed=0, patience=None, augment=blank)
    assert len(seen) == len(digits.x_train) // 32
    assert rep.accuracy < 0.35 < rep0.accuracy
    with pytest.raises(TinyStudioError, match="weight decay must be in 0..1"):
        train(g, digits, epochs=1, weight_decay=-1.0)
