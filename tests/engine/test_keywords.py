"""The `keywords` data set: MFCC against an independent numpy/scipy pipeline, split by voice, class balance,
determinism, the cache, and that the zoo's DS-CNN takes it and learns it.

The full data set is generated at most once (the cache in ~/.cache/tinystudio/datasets, a session fixture);
the tests that generate do it on a few voices.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from engine.data import DataError, keywords as kw, list_datasets, load_dataset

pytestmark = pytest.mark.skipif(kw.shutil.which("espeak-ng") is None and not kw.cache_path().is_file(),
                                reason="espeak-ng not installed and no cached keywords data set")


@pytest.fixture(scope="session")
def arrays():
    return kw.load_arrays()


@pytest.fixture(scope="session")
def dataset(arrays):
    return load_dataset("keywords")


@pytest.fixture(scope="module")
def tiny():
    """3 accents x 2 variants, 3 keywords: seconds to generate, with the audio kept."""
    p = kw.small(keywords=kw.KEYWORDS[:3], accents=kw.ACCENTS[:3], variants=kw.VARIANTS[:2])
    return p, kw.generate(p, with_audio=True)


def reference_mfcc(audio: np.ndarray) -> np.ndarray:
    """The same pipeline written out: frames of 640 every 320, periodic Hann, |rFFT|, HTK mel filters
    without area normalization, ln(x + 1e-6), DCT-II orthonormal, 10 coefficients. float64 throughout."""
    import librosa

    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), 640)[::320]  # (49, 640)
    mag = np.abs(np.fft.rfft(frames * scipy.signal.get_window("hann", 640, fftbins=True), axis=-1))  # (49, 321)
    fb = librosa.filters.mel(sr=16000, n_fft=640, n_mels=40, fmin=20.0, fmax=4000.0, htk=True, norm=None,
                             dtype=np.float64)  # (40, 321)
    return scipy.fft.dct(np.log(mag @ fb.T + 1e-6), type=2, norm="ortho", axis=-1)[:, :10]  # (49, 10)


def test_mfcc_matches_an_independent_computation(tiny):
    p, a = tiny
    assert a["x"].shape == (len(a["audio"]), 1, 49, 10) and a["x"].dtype == np.float32
    assert a["audio"].shape[1] == 16000
    for i in range(0, len(a["audio"]), 7):
        want = reference_mfcc(a["audio"][i])
        got = a["x"][i, 0]
        bad = ~np.isclose(got, want, rtol=1e-4, atol=2e-3)
        if bad.any():
            idx = [tuple(int(v) for v in ix) for ix in np.argwhere(bad)[:5]]
            pytest.fail(f"clip {i}: MFCC differs at (frame, coeff) {idx}: got {[float(got[j]) for j in idx]}, "
                        f"reference {[float(want[j]) for j in idx]}")
    # The features say something: coefficient 0 (log energy) is higher where the word is than in silence.
    silence = a["y"] == len(p.keywords)
    assert a["x"][~silence, 0, :, 0].max(axis=1).mean() > a["x"][silence, 0, :, 0].max(axis=1).mean()


def test_generation_is_deterministic_and_seeded():
    p = kw.small(keywords=kw.KEYWORDS[:2], accents=kw.ACCENTS[:2], variants=kw.VARIANTS[:2])
    a, b = kw.generate(p), kw.generate(p, workers=1)  # thread count must not matter
    for k in ("x", "y", "split", "voice"):
        assert a[k].tobytes() == b[k].tobytes(), k
    c = kw.generate(kw.small(keywords=kw.KEYWORDS[:2], accents=kw.ACCENTS[:2], variants=kw.VARIANTS[:2], seed=1))
    assert a["x"].tobytes() != c["x"].tobytes()
    assert p.key() == kw.small(keywords=kw.KEYWORDS[:2], accents=kw.ACCENTS[:2], variants=kw.VARIANTS[:2]).key()
    assert p.key() != kw.small(keywords=kw.KEYWORDS[:2], accents=kw.ACCENTS[:2], variants=kw.VARIANTS[:2],
                               seed=1).key()


def test_split_by_voice_is_disjoint_and_balanced(arrays):
    p = kw.DEFAULT
    names = p.voices()
    assert len(names) == len(set(names)) == 49
    per_split = {s: {names[v] for v in np.unique(arrays["voice"][arrays["split"] == i])}
                 for i, s in enumerate(kw.SPLITS)}
    assert not per_split["train"] & per_split["validation"]
    assert not per_split["train"] & per_split["test"]
    assert not per_split["validation"] & per_split["test"]
    assert per_split == {s: set(v) for s, v in kw.voices().items()}
    assert [len(per_split[s]) for s in kw.SPLITS] == [35, 7, 7]
    assert {s: int((arrays["split"] == i).sum()) for i, s in enumerate(kw.SPLITS)} == kw.counts()
    for i, s in enumerate(kw.SPLITS):
        counts = np.bincount(arrays["y"][arrays["split"] == i], minlength=12)
        assert (counts == counts[0]).all() and counts[0] == len(per_split[s]) * p.per_class, (s, counts)
    # every voice gives every class the same number of clips
    for v in range(len(names)):
        assert (np.bincount(arrays["y"][arrays["voice"] == v], minlength=12) == p.per_class).all()
    assert np.isfinite(arrays["x"]).all() and arrays["x"].dtype == np.float32


def test_builtin_dataset(dataset, arrays):
    ds = dataset
    entry = {e["name"]: e for e in list_datasets()}["keywords"]
    assert entry["input_shape"] == [1, 49, 10] and entry["classes"] == 12
    assert entry["samples"] == ds.samples == kw.counts()["train"] + kw.counts()["validation"]
    assert ds.input_shape == (1, 49, 10) and ds.classes == 12 and ds.class_names == kw.CLASSES
    assert ds.class_names[:10] == ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
    assert ds.source == "builtin:keywords"
    # The validation split is the validation voices' clips, normalized with the training voices' statistics.
    va = arrays["split"] == 1
    np.testing.assert_array_equal(ds.y_val, arrays["y"][va])
    norm = ds.normalization
    np.testing.assert_allclose(ds.x_val, (arrays["x"][va] - norm["mean"][0]) / norm["std"][0], rtol=1e-5, atol=1e-5)
    tr = arrays["x"][arrays["split"] == 0]
    assert abs(norm["mean"][0] - float(tr.mean(dtype=np.float64))) < 1e-4
    x_test, y_test = kw.held_out_split(ds)
    assert x_test.shape == (kw.counts()["test"], 1, 49, 10)
    np.testing.assert_array_equal(y_test, arrays["y"][arrays["split"] == 2])
    # load_dataset's seed does not move voices between splits
    other = load_dataset("keywords", seed=3)
    assert np.array_equal(other.y_val, ds.y_val) and np.array_equal(other.x_val, ds.x_val)


def test_cache_is_keyed_atomic_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    p = kw.small(keywords=kw.KEYWORDS[:2], accents=kw.ACCENTS[:2], variants=kw.VARIANTS[:2], held_out=1)
    kw._MEMO.pop(p.key(), None)
    a = kw.load_arrays(p)
    path = tmp_path / "tinystudio" / "datasets" / f"keywords-{p.key()}.npz"
    assert kw.cache_path(p) == path and path.is_file()
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]
    kw._MEMO.pop(p.key(), None)

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated although the cache file exists")

    monkeypatch.setattr(kw, "generate", refuse)
    b = kw.load_arrays(p)
    assert a["x"].tobytes() == b["x"].tobytes()
    with np.load(path, allow_pickle=False) as z:
        assert "params" in str(z["meta"])
    kw._MEMO.pop(p.key(), None)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable.*delete it to regenerate"):
        kw.load_arrays(p)
    kw._MEMO.pop(p.key(), None)


def test_missing_espeak_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(kw.shutil, "which", lambda name: None)
    with pytest.raises(DataError) as e:
        kw.speak("yes", "en-us", 50, 160)
    assert "espeak-ng" in str(e.value) and "\n" not in str(e.value)


def test_unknown_voices_are_refused_before_synthesis():
    # espeak-ng says these in another voice without a word: en-gb+f3 is plain `en`, en-xx is `en`
    for bad in (dict(accents=("en", "en-gb")), dict(accents=("en", "en-xx")), dict(variants=("m1", "nosuch"))):
        p = kw.small(keywords=kw.KEYWORDS[:2], **bad)
        with pytest.raises(DataError, match="sounds exactly like") as e:
            kw.generate(p)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="espeak-ng (failed|gave no WAV audio) for 'yes' in voice zz-unknown"):
        kw.speak("yes", "zz-unknown", 50, 160)


def test_zoo_dscnn_takes_keywords_and_learns_it(dataset):
    from engine.train import train
    from engine.train.adapt import adapt_zoo

    g = adapt_zoo("zoo:kws_dscnn?filters=32&blocks=2", dataset, seed=0)
    assert g.tensors[g.inputs[0]].shape == (1, 1, 49, 10)  # the MLPerf KWS input, no resize in front
    assert "input_resize" not in g.meta
    _, rep = train(g, dataset, epochs=4, seed=0, batch_size=32, lr=3e-3)
    assert rep.accuracy > 0.5, rep.accuracy  # chance is 1/12; 77 % here, 96 % for the full model in 10 epochs
