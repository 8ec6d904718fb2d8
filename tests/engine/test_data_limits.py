"""Dataset uploads that used to cost gigabytes or end in MemoryError (issue 10): each is a one-line DataError,
quickly, with the loading process's peak memory far below what the file asks for."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine.data.uploads as uploads
from engine.data import DataError, load_dataset

from tests.fixtures.peak_memory import MAX_PEAK_MB, PEAK_RSS

ROOT = Path(__file__).resolve().parents[2]


def one_line(excinfo, *words) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, f"{w!r} not in: {msg}"
    return msg


def _load_measured(path: str, **kw) -> dict:
    """load_dataset in a fresh process: its result (or DataError text), peak RSS growth and time."""
    script = PEAK_RSS + (
        "import json, sys, time\n"
        "from engine.data import DataError, load_dataset\n"
        "import PIL.Image, PIL.PngImagePlugin\n"
        "base = peak_rss(reset=True)\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    ds = load_dataset(sys.argv[1], **{kw!r}); out = ['ok', list(ds.input_shape), ds.samples]\n"
        "except DataError as e:\n"
        "    out = ['error', str(e)]\n"
        "peak = peak_rss()\n"
        "print(json.dumps({'out': out, 'peak_mb': (peak - base) / 1024, 's': time.perf_counter() - t}))\n")
    r = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _big_png_zip(path, count: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4096, 4096)).save(buf, "PNG")
    png = buf.getvalue()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(count):
            z.writestr(f"{'ab'[i % 2]}/{i}.png", png)
    return str(path)


def test_zip_of_pngs_at_the_side_limit(tmp_path):
    path = _big_png_zip(tmp_path / "big.zip", 24)  # 24 x 16.7 Mpixel, as in the issue
    assert os.path.getsize(path) < 1 << 20
    for kw in ({}, {"resize": 32}):
        res = _load_measured(path, **kw)
        assert res["out"][0] == "error" and "more than 300,000,000 pixels" in res["out"][1], res
        assert "\n" not in res["out"][1] and res["out"][1].startswith(path)
        assert res["peak_mb"] < MAX_PEAK_MB and res["s"] < 5, res


def test_big_images_are_resized_one_at_a_time(tmp_path):
    path = _big_png_zip(tmp_path / "twelve.zip", 12)  # 201 Mpixel: within the pixel limit
    res = _load_measured(path, resize=32)
    assert res["out"] == ["ok", [1, 32, 32], 12], res
    assert res["peak_mb"] < MAX_PEAK_MB, res  # (each decoded image is 64 MB as RGBA; all 12 would be 800 MB)


def test_decoded_size_is_bounded_before_decoding(tmp_path, monkeypatch):
    members = {f"{c}/{i}.png": _png((16, 16)) for c in "ab" for i in range(4)}
    path = tmp_path / "imgs.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    monkeypatch.setattr(uploads, "MAX_DECODED_BYTES", 8 * 16 * 16 * 4 - 1)  # one byte short of 8 gray images
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    one_line(e, "imgs.zip", "8 images of 16x16 decode to 8,192 bytes", "limit", "resize")
    assert load_dataset(str(path), resize=8).input_shape == (1, 8, 8)
    monkeypatch.setattr(uploads, "MAX_TOTAL_PIXELS", 7 * 256)
    with pytest.raises(DataError) as e:
        load_dataset(str(path), resize=8)
    one_line(e, "imgs.zip", "more than 1,792 pixels")


def _png(size) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(size[0] * size[1], dtype=np.uint8).reshape(size)).save(buf, "PNG")
    return buf.getvalue()


X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
Y = np.arange(20) % 4


@pytest.mark.parametrize("label,words", [
    (3e8, ["class 4 has no samples", "0..300000000"]),
    (2 ** 40, ["class 4 has no samples", f"0..{2 ** 40}"]),
    (1e300, ["label 1e+300 of sample 5 is out of range"]),
    (2.0 ** 64, ["label 1.84467e+19 of sample 5 is out of range"]),
])
def test_huge_labels_are_instant_data_errors(tmp_path, label, words):
    y = Y.astype(np.float64 if isinstance(label, float) else np.int64)
    y[5] = label
    path = tmp_path / "labels.npz"
    np.savez(path, x=X, y=y)
    t = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    assert time.perf_counter() - t < 1.0
    one_line(e, "labels.npz", *words)


def test_label_3e8_memory(tmp_path):
    y = Y.astype(np.float64)
    y[5] = 3e8
    path = tmp_path / "labels.npz"
    np.savez(path, x=X, y=y)
    res = _load_measured(str(path))
    assert res["out"][0] == "error" and "class 4 has no samples" in res["out"][1]
    assert res["peak_mb"] < 50 and res["s"] < 1, res  # was 2.6 GB and 11 s


def test_csv_class_index_1e12(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1e12\n")
    t = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    assert time.perf_counter() - t < 1.0
    one_line(e, "big.csv", "class 2 has no samples", "0..1000000000000")


def test_csv_row_and_value_limits(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    path.write_text("".join(f"{i},{i % 2}\n" for i in range(10)))
    monkeypatch.setattr(uploads, "MAX_CSV_ROWS", 5)
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    one_line(e, "rows.csv", "11 lines, more than the 5 rows allowed")
    monkeypatch.setattr(uploads, "MAX_CSV_ROWS", 100)
    monkeypatch.setattr(uploads, "MAX_CSV_CELLS", 10)
    with pytest.raises(DataError) as e:
        load_dataset(str(path))
    one_line(e, "rows.csv", "more than the 10 values allowed")
    monkeypatch.setattr(uploads, "MAX_CSV_CELLS", 11)
    assert load_dataset(str(path)).samples == 10


def _npz_with_header(path, shape, data: bytes = b"\0" * 64) -> str:
    with zipfile.ZipFile(path, "w") as z:
        arr = io.BytesIO()
        np.lib.format.write_array_header_1_0(arr, {"descr": "<f4", "fortran_order": False, "shape": shape})
        z.writestr("x.npy", arr.getvalue() + data)
        y = io.BytesIO()
        np.save(y, Y)
        z.writestr("y.npy", y.getvalue())
    return str(path)


def test_npz_header_declaring_4_tib(tmp_path):
    path = _npz_with_header(tmp_path / "huge.npz", (1 << 20, 1 << 20))  # 2^40 float32 = 4 TiB
    res = _load_measured(path)
    assert res["out"][0] == "error", res
    msg = res["out"][1]
    assert msg.startswith(path) and "\n" not in msg and "declares more data than it holds" in msg, msg
    assert res["peak_mb"] < 50 and res["s"] < 1, res


def test_npz_arrays_over_the_byte_limit_are_refused_from_their_headers(tmp_path):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((1000, 250), np.float32), y=np.arange(1000) % 2)
    with pytest.raises(DataError) as e:
        load_dataset(str(path), max_bytes=500_000)
    one_line(e, "big.npz", "limit")
