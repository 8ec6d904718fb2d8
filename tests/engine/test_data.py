"""Data sets: the real digits, synthetic generators, uploads (.npz, .csv, .zip of class folders), bad data."""
from __future__ import annotations

import io
import socket
import zipfile

import numpy as np
import pytest
from PIL import Image

from engine.data import DataError, dataset_feeds, list_datasets, load_dataset, make_dataset, normalize
from engine.zoo import build_zoo_model


def one_line_error(excinfo, *words):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in: {msg}"
    return msg


# ---- built-ins -------------------------------------------------------------------------------------

def test_list_datasets_names_the_real_digits():
    entries = {e["name"]: e for e in list_datasets()}
    assert {"digits", "synthetic-sensor", "synthetic-shapes"} <= set(entries)
    d = entries["digits"]
    assert (d["input_shape"], d["classes"], d["samples"], d["task"]) == ([1, 8, 8], 10, 1797, "classification")
    for e in entries.values():
        assert e["description"] and e["samples"] > 0


def test_digits_is_real_local_data_split_and_normalized(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("load_dataset('digits') touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    ds = load_dataset("digits", seed=0)
    assert ds.samples == 1797 and ds.classes == 10 and ds.input_shape == (1, 8, 8)
    assert ds.class_names == tuple("0123456789") and ds.source == "builtin:digits"
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.x_val) == 359, len(ds.x_val)  # 20 % of each class
    val_counts = np.bincount(ds.y_val, minlength=10)
    all_counts = val_counts + np.bincount(ds.y_train, minlength=10)
    np.testing.assert_array_equal(val_counts, np.round(all_counts * 0.2).astype(int))
    # Normalized with the training split's statistics; the raw gray levels come back through them.
    assert abs(float(ds.x_train.mean())) < 1e-4 and abs(float(ds.x_train.std()) - 1) < 1e-3
    from sklearn.datasets import load_digits

    raw = load_digits().images.astype(np.float32)[:, None]
    back = ds.x_val * np.float32(ds.normalization["std"][0]) + np.float32(ds.normalization["mean"][0])
    back = np.round(back).reshape(len(back), -1)
    np.testing.assert_allclose(ds.x_val * ds.normalization["std"][0] + ds.normalization["mean"][0],
                               back.reshape(ds.x_val.shape), atol=1e-4)
    raw_rows = {bytes(r) for r in raw.reshape(len(raw), -1).astype(np.uint8)}
    assert all(bytes(r) in raw_rows for r in back.astype(np.uint8))


def test_split_follows_the_seed():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)


@pytest.mark.parametrize("name,shape,classes", [("synthetic-sensor", (3, 128), 6),
                                                ("synthetic-shapes", (1, 16, 16), 4)])
def test_synthetic_is_deterministic_with_the_seed(name, shape, classes):
    a, b, c = load_dataset(name, seed=3), load_dataset(name, seed=3), load_dataset(name, seed=4)
    assert a.input_shape == shape and a.classes == classes and a.source == f"synthetic:{name}"
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.x_train, c.x_train)
    assert np.bincount(np.concatenate([a.y_train, a.y_val])).tolist() == [a.samples // classes] * classes


def test_resize_option_for_images():
    ds = load_dataset("digits", resize=16)
    assert ds.input_shape == (1, 16, 16) and ds.x_train.shape[1:] == (1, 16, 16)
    with pytest.raises(DataError) as e:
        load_dataset("synthetic-sensor", resize=16)
    one_line_error(e, "resize", "image")


# ---- uploads ---------------------------------------------------------------------------------------

def test_npz_upload(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3, 10)).astype(np.float32)
    y = np.arange(60) % 3
    p = tmp_path / "sensors.npz"
    np.savez(p, x=x, y=y, class_names=np.array(["a", "b", "c"]))
    ds = load_dataset(str(p), val_fraction=0.25)
    assert (ds.name, ds.source, ds.input_shape, ds.classes, ds.class_names) == \
        ("sensors", "upload:sensors.npz", (3, 10), 3, ("a", "b", "c"))
    assert (len(ds.x_train), len(ds.x_val)) == (45, 15)
    # A given validation split is kept as is.
    np.savez(p, x=x, y=y, x_val=x[:7], y_val=y[:7])
    ds = load_dataset(str(p))
    assert (len(ds.x_train), len(ds.x_val)) == (60, 7)
    np.testing.assert_allclose(ds.x_val, normalize(x[:7], ds.normalization), rtol=1e-6)


def test_npz_regression_targets(tmp_path):
    x = np.random.default_rng(1).normal(size=(40, 4)).astype(np.float32)
    p = tmp_path / "reg.npz"
    np.savez(p, x=x, y=x.sum(1) + 0.5, task=np.array("regression"))
    ds = load_dataset(str(p))
    assert ds.task == "regression" and ds.classes == 0 and ds.y_train.dtype == np.float32


def test_csv_upload_with_header_and_names(tmp_path):
    p = tmp_path / "iris.csv"
    rows = ["sepal,petal,kind"] + [f"{i * 0.1:.1f},{i % 5},{'cat' if i % 2 else 'dog'}" for i in range(30)]
    p.write_text("\n".join(rows) + "\n\n")
    ds = load_dataset(str(p))
    assert ds.input_shape == (2,) and ds.class_names == ("cat", "dog") and ds.samples == 30
    assert ds.normalization["axis"] == "feature" and len(ds.normalization["mean"]) == 2


def test_csv_upload_numeric_labels_semicolons(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("\n".join(f"{i};{-i};{i % 4}" for i in range(40)))
    ds = load_dataset(str(p))
    assert ds.input_shape == (2,) and ds.classes == 4 and ds.class_names == ("0", "1", "2", "3")


def png(value, size=(6, 5), mode="L") -> bytes:
    buf = io.BytesIO()
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def write_zip(path, members: dict[str, bytes], dirs=()):
    with zipfile.ZipFile(path, "w") as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def test_zip_of_class_folders(tmp_path):
    members = {f"photos/{c}/{i}.png": png(40 * k + i) for k, c in enumerate(("cat", "dog")) for i in range(6)}
    members["photos/.DS_Store"] = b"junk"
    members["__MACOSX/photos/._x.png"] = b"junk"
    ds = load_dataset(write_zip(tmp_path / "pets.zip", members), val_fraction=0.5)
    assert ds.class_names == ("cat", "dog") and ds.input_shape == (1, 5, 6) and ds.samples == 12
    raw = ds.x_train * np.float32(ds.normalization["std"][0]) + np.float32(ds.normalization["mean"][0])
    assert np.allclose(raw * 255, np.round(raw * 255), atol=1e-3)  # gray levels / 255
    rgb = {f"{c}/{i}.png": png(30 * i, (9, 9), "RGB") for c in ("a", "b", "c") for i in range(3)}
    ds = load_dataset(write_zip(tmp_path / "rgb.zip", rgb), resize=(4, 8))
    assert ds.input_shape == (3, 4, 8) and ds.classes == 3


def test_zip_images_of_different_sizes_need_resize(tmp_path):
    members = {"a/1.png": png(1, (5, 5)), "a/2.png": png(2, (5, 5)), "b/1.png": png(3, (7, 5)), "b/2.png": png(4)}
    path = write_zip(tmp_path / "mixed.zip", members)
    with pytest.raises(DataError) as e:
        load_dataset(path)
    one_line_error(e, "differ in size", "resize")
    assert load_dataset(path, resize=8).input_shape == (1, 8, 8)


# ---- bad data: one line each -----------------------------------------------------------------------

def save_npz(tmp_path, **arrays):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return str(p)


X = np.random.default_rng(2).normal(size=(20, 4)).astype(np.float32)
Y = np.arange(20) % 4


@pytest.mark.parametrize("arrays,words", [
    (dict(x=X[:, 0], y=Y), ["one sample per row", "[20]"]),
    (dict(x=X, y=Y[:19]), ["20 samples but 19 labels"]),
    (dict(x=X, y=Y.reshape(4, 5)), ["one class index per sample"]),
    (dict(x=np.where(np.arange(80).reshape(20, 4) == 13, np.nan, X), y=Y), ["sample 3", "NaN"]),
    (dict(x=np.where(np.arange(80).reshape(20, 4) == 41, np.inf, X), y=Y), ["sample 10", "infinite"]),
    (dict(x=X, y=np.where(np.arange(20) == 5, -1, Y)), ["label -1 of sample 5", "out of range 0..3"]),
    (dict(x=X, y=Y, class_names=np.array(["a", "b", "c"])), ["label 3 of sample 3", "out of range 0..2"]),
    (dict(x=X, y=np.where(Y == 2, 3, Y)), ["class 2 has no samples"]),
    (dict(x=X, y=Y + 0.5), ["label 0.5 of sample 0", "not a class index"]),
    (dict(x=X, y=np.zeros(20, int)), ["at least 2 classes"]),
    (dict(x=X), ["needs arrays 'x'", "'y'"]),
    (dict(x=X, y=Y, x_val=X[:3]), ["x_val", "y_val"]),
    (dict(x=X, y=Y, x_val=X[:3, :2], y_val=Y[:3]), ["validation samples have shape [2]"]),
    (dict(x=np.array(["a"] * 20), y=Y), ["must be numbers"]),
])
def test_bad_npz(tmp_path, arrays, words):
    with pytest.raises(DataError) as e:
        load_dataset(save_npz(tmp_path, **arrays))
    one_line_error(e, "bad.npz", *words)


def test_npz_with_pickled_objects_is_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([{"a": 1}] * 4, dtype=object), y=np.arange(4))
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_line_error(e, "pickle")


@pytest.mark.parametrize("text,words", [
    ("a,b,label\n1,2,x\n3,,y\n", ["line 3", "column 'b' is empty"]),
    ("1,2,0\n3,nan,1\n", ["line 2", "NaN"]),
    ("1,2,0\n3,4,1\n5,6\n", ["line 3 has 2 values, expected 3"]),
    ("a,b,label\n1,2,x\n3,oops,y\n", ["line 3", "'oops' is not a number"]),
    ("1,2,0\n3,4,1\n5,6,7\n", ["class 2 has no samples"]),
    ("1,2,0\n3,4,-2\n", ["label -2", "out of range"]),
    ("label\nx\n", ["at least one feature column"]),
])
def test_bad_csv(tmp_path, text, words):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError) as e:
        load_dataset(str(p))
    one_line_error(e, "bad.csv", *words)


def test_zip_with_parent_path_is_refused_before_reading(tmp_path):
    members = {"a/1.png": png(1), "b/1.png": png(2), "../evil/2.png": png(3)}
    with pytest.raises(DataError) as e:
        load_dataset(write_zip(tmp_path / "evil.zip", members))
    one_line_error(e, "evil.zip", "'../evil/2.png'", "outside the archive")
    assert not (tmp_path.parent / "evil").exists()
    with pytest.raises(DataError) as e:
        load_dataset(write_zip(tmp_path / "abs.zip", {"/etc/x/1.png": png(1), "a/1.png": png(2)}))
    one_line_error(e, "outside the archive")


def test_zip_symlink_member_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
        zf.writestr("b/1.png", png(1))
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    one_line_error(e, "symbolic link")


@pytest.mark.parametrize("members,dirs,words", [
    ({"a/1.png": png(1), "a/2.png": png(2)}, ("b/",), ["class 1 ('b') has no samples"]),
    ({"a/1.png": png(1), "b/1.txt": b"hello"}, (), ["'b/1.txt' is not an image"]),
    ({"a/1.png": png(1), "b/1.png": b"not a png"}, (), ["'b/1.png' is not a readable image"]),
    ({"a/1.png": png(1), "loose.png": png(2)}, (), ["'loose.png' is not inside a class folder"]),
    ({}, ("a/",), ["no images"]),
])
def test_bad_zip(tmp_path, members, dirs, words):
    with pytest.raises(DataError) as e:
        load_dataset(write_zip(tmp_path / "bad.zip", members, dirs))
    one_line_error(e, "bad.zip", *words)


def test_size_limits(tmp_path):
    big = {f"a/{i}.png": png(i, (64, 64)) for i in range(3)} | {"b/1.png": png(9, (64, 64))}
    path = write_zip(tmp_path / "big.zip", big)
    with pytest.raises(DataError) as e:
        load_dataset(path, max_bytes=200)
    one_line_error(e, "big.zip", "limit")
    # A small archive that inflates beyond the limit (a zip bomb) is refused before decompressing.
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(DataError) as e:
        load_dataset(str(bomb), max_bytes=1_000_000)
    one_line_error(e, "unpacks to 5,000,", "limit")


def test_unknown_names_and_types(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    one_line_error(e, "unknown data set 'mnist'", "digits")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "missing.npz"))
    one_line_error(e, "no such file")
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(DataError) as e:
        load_dataset(str(tmp_path / "d.json"))
    one_line_error(e, "unsupported data file type '.json'")
    with pytest.raises(DataError) as e:
        make_dataset("t", X, Y, val_fraction=1.0)
    one_line_error(e, "val_fraction")


# ---- calibration feeds -----------------------------------------------------------------------------

def test_dataset_feeds_for_calibration():
    ds = load_dataset("synthetic-sensor")
    g = build_zoo_model("zoo:sensor_cnn1d")
    feeds = dataset_feeds(g, ds.x_val, limit=5)
    assert len(feeds) == 5 and feeds[0]["input"].shape == (1, 3, 128)
    np.testing.assert_array_equal(feeds[2]["input"][0], ds.x_val[2])
    with pytest.raises(DataError) as e:
        dataset_feeds(build_zoo_model("zoo:sensor_cnn1d?length=64"), ds.x_val)
    one_line_error(e, "[3, 128]", "[3, 64]")
