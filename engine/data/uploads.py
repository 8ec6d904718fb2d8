"""User data files -> raw arrays: .npz (x, y), .csv (features..., label), .zip of class folders of images.

Nothing is unpickled (np.load with allow_pickle=False), nothing is extracted to disk (zip members are
read into memory after every name was checked), and every size is bounded before it is read.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
import os
import stat
import zipfile

import numpy as np

from engine.data.dataset import DataError
from engine.serialize import npz_declared_bytes


def one_line(text: str) -> str:
    return " ".join(text.split())

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_IMAGE_SIDE = 4096
MAX_MEMBERS = 200_000
# Decoding cost of an image archive, checked from the image headers before any pixel is decoded:
MAX_TOTAL_PIXELS = 300_000_000  # summed over the source images (decode work; one image is decoded at a time)
MAX_DECODED_BYTES = 256 << 20  # the float32 samples the archive becomes (after resizing)
MAX_CSV_ROWS = 2_000_000
MAX_CSV_CELLS = 50_000_000  # feature values in one CSV (200 MB as float32)


def check_size(path: str, max_bytes: int) -> None:
    size = os.path.getsize(path)
    if size > max_bytes:
        raise DataError(f"{path}: file is {size:,} bytes, larger than the {max_bytes:,} byte limit")
    if size == 0:
        raise DataError(f"{path}: file is empty")


def _open_zip(path: str, max_bytes: int) -> zipfile.ZipFile:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip archive ({e})") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DataError(f"{path}: {len(infos):,} archive members, more than the {MAX_MEMBERS:,} allowed")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:  # a zip bomb is refused before anything is decompressed
        raise DataError(f"{path}: unpacks to {total:,} bytes, more than the {max_bytes:,} byte limit")
    return zf


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> bytes:
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        raise DataError(f"{path}: cannot read '{info.filename}' ({e})") from None


# ---- .npz --------------------------------------------------------------------------------------------

def _npz_get(arrs, keys: tuple[str, ...]):
    for k in keys:
        if k in arrs.files:
            return arrs[k]
    return None


def read_npz(path: str, max_bytes: int) -> dict:
    """{"x", "y", "val": (x_val, y_val) | None, "class_names": tuple | None, "task": str | None}."""
    check_size(path, max_bytes)
    with _open_zip(path, max_bytes) as zf:  # bounds the members' unpacked sizes before numpy inflates anything
        try:  # and what numpy would allocate, from the .npy headers alone
            declared = npz_declared_bytes(zf, path)
        except ValueError as e:
            raise DataError(one_line(str(e))) from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable .npz file ({one_line(str(e))})") from None
    if declared > max_bytes:
        raise DataError(f"{path}: arrays declare {declared:,} bytes, more than the {max_bytes:,} byte limit")
    try:
        with np.load(path, allow_pickle=False) as arrs:
            x, y = _npz_get(arrs, ("x", "X")), _npz_get(arrs, ("y", "Y"))
            if x is None or y is None:
                raise DataError(f"{path}: needs arrays 'x' (samples) and 'y' (labels); it holds "
                                f"{', '.join(arrs.files) or 'nothing'}")
            xv, yv = _npz_get(arrs, ("x_val", "X_val")), _npz_get(arrs, ("y_val", "Y_val"))
            if (xv is None) != (yv is None):
                raise DataError(f"{path}: give both 'x_val' and 'y_val' for a fixed validation split, or neither")
            names = _npz_get(arrs, ("class_names",))
            task = _npz_get(arrs, ("task",))
    except ValueError as e:  # object arrays need pickle, which is refused
        raise DataError(f"{path}: holds arrays that need pickle ({e}); save plain numeric arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise DataError(f"{path}: 'class_names' must be a 1-D array of strings")
    if task is not None and (task.ndim != 0 or task.dtype.kind not in "US"):
        raise DataError(f"{path}: 'task' must be a single string")
    return {"x": x, "y": y, "val": None if xv is None else (xv, yv),
            "class_names": None if names is None else tuple(str(n) for n in names),
            "task": None if task is None else str(task)}


# ---- .csv --------------------------------------------------------------------------------------------

def _num(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(path: str, max_bytes: int, task: str) -> dict:
    """Rows of numeric features with the label in the last column; an optional header row is detected.
    Features are converted row by row into one float32 array sized from the line count, so memory stays
    a small multiple of the file (at most MAX_CSV_CELLS values)."""
    check_size(path, max_bytes)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    lines = text.count("\n") + 1
    if lines > MAX_CSV_ROWS + 1:
        raise DataError(f"{path}: {lines:,} lines, more than the {MAX_CSV_ROWS:,} rows allowed")
    reader = ((i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text), dialect)) if any(c.strip() for c in r))
    first = next(reader, None)
    if first is None:
        raise DataError(f"{path}: no rows")
    header = None
    if any(_num(c) is None for c in first[1][:-1]):
        header, first = first[1], next(reader, None)
    if first is None:
        raise DataError(f"{path}: a header but no data rows")
    width = len(header) if header else len(first[1])
    if width < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column, found {width} column(s)")
    if lines * (width - 1) > MAX_CSV_CELLS:
        raise DataError(f"{path}: {lines:,} rows of {width - 1} features, more than the {MAX_CSV_CELLS:,} values "
                        "allowed")
    feats = np.empty((lines, width - 1), np.float32)
    labels, first_line = [], []
    for k, (line, r) in enumerate(itertools.chain([first], reader)):
        if len(r) != width:
            raise DataError(f"{path}: line {line} has {len(r)} values, expected {width}")
        for j, cell in enumerate(r[:-1]):
            v = _num(cell.strip())
            if v is None:
                col = f"'{header[j]}'" if header else str(j + 1)
                what = "is empty" if not cell.strip() else f"'{cell.strip()[:40]}' is not a number"
                raise DataError(f"{path}: line {line}, column {col} {what}")
            if not math.isfinite(v):
                raise DataError(f"{path}: line {line} holds NaN or infinite values")
            feats[k, j] = v
        labels.append(r[-1].strip())
        first_line.append(line)
    feats = feats[:len(labels)]
    if task == "regression":
        vals = [_num(s) for s in labels]
        if any(v is None for v in vals):
            k = next(i for i, v in enumerate(vals) if v is None)
            raise DataError(f"{path}: line {first_line[k]}: target '{labels[k][:40]}' is not a number")
        return {"x": feats, "y": np.asarray(vals, np.float32), "class_names": None}
    if all(_num(s) is not None for s in labels):
        # Numeric labels are class indices (checked for range and empty classes later).
        return {"x": feats, "y": np.asarray([float(s) for s in labels]), "class_names": None}
    if any(not s for s in labels):
        k = labels.index("")
        raise DataError(f"{path}: line {first_line[k]} has an empty label")
    names = tuple(sorted(set(labels)))
    index = {n: i for i, n in enumerate(names)}
    return {"x": feats, "y": np.asarray([index[s] for s in labels], np.int64), "class_names": names}


# ---- .zip of class folders ---------------------------------------------------------------------------

def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\x00" in name


def _skipped(parts: list[str]) -> bool:
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def read_image_zip(path: str, max_bytes: int, resize: tuple[int, int] | None) -> dict:
    """class_name/image.png members (optionally under one top folder) -> (N, C, H, W) floats in 0..1.

    Images are all gray (C=1) or converted to RGB (C=3). Without `resize` every image must have the same size.
    """
    check_size(path, max_bytes)
    zf = _open_zip(path, max_bytes)
    with zf:
        infos = zf.infolist()
        for info in infos:  # every name is checked before any member is read
            if _unsafe(info.filename):
                raise DataError(f"{path}: member '{info.filename}' points outside the archive (absolute path or "
                                "'..'); nothing was read")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{path}: member '{info.filename}' is a symbolic link; nothing was read")
        entries = [(info, [p for p in info.filename.split("/") if p]) for info in infos]
        entries = [(i, p) for i, p in entries if p and not _skipped(p)]
        files = [(i, p) for i, p in entries if not i.is_dir()]
        dirs = [p for i, p in entries if i.is_dir()]
        tops = {p[0] for _, p in files}
        strip = len(tops) == 1 and all(len(p) >= 3 for _, p in files)  # the zip of a folder of class folders
        if strip:
            dirs = [p[1:] for p in dirs if len(p) > 1]
            files = [(i, p[1:]) for i, p in files]
        if not files:
            raise DataError(f"{path}: no images; expected class folders like 'cat/001.png'")
        loose = [p for _, p in files if len(p) < 2]
        if loose:
            raise DataError(f"{path}: '{'/'.join(loose[0])}' is not inside a class folder (expected class/image.png)")
        names = sorted({p[0] for _, p in files} | {p[0] for p in dirs})
        files = sorted(files, key=lambda e: e[0].filename)
        sizes = _image_sizes(zf, files, path)
        x8 = _decode_images(zf, files, sizes, resize, path)
    gray = bool(np.array_equal(x8[..., 0], x8[..., 1]) and np.array_equal(x8[..., 0], x8[..., 2]))
    x = np.ascontiguousarray((x8[..., :1] if gray else x8).transpose(0, 3, 1, 2), dtype=np.float32)
    del x8
    x /= np.float32(255.0)
    return {"x": x, "y": np.asarray([names.index(p[0]) for _, p in files], np.int64), "class_names": tuple(names)}


_GRAY_MODES = ("1", "L", "I", "I;16", "F")


def _image_sizes(zf: zipfile.ZipFile, files: list, path: str) -> list[tuple[int, int, str]]:
    """(width, height, mode) of every image from its header alone (Pillow opens lazily), with the limits
    on sides and on total pixels checked before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    out, pixels = [], 0
    for info, parts in files:
        if not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
            raise DataError(f"{path}: '{info.filename}' is not an image ({', '.join(IMAGE_EXTENSIONS)})")
        try:
            with Image.open(io.BytesIO(_read_member(zf, info, path))) as img:
                w, h, mode = img.size[0], img.size[1], img.mode
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
            raise DataError(f"{path}: '{info.filename}' is not a readable image ({one_line(str(e))})") from None
        if max(w, h) > MAX_IMAGE_SIDE:
            raise DataError(f"{path}: '{info.filename}' is {w}x{h} pixels, larger than {MAX_IMAGE_SIDE} on a side")
        pixels += w * h
        if pixels > MAX_TOTAL_PIXELS:
            raise DataError(f"{path}: the images hold more than {MAX_TOTAL_PIXELS:,} pixels in all; use fewer or "
                            "smaller images")
        out.append((w, h, mode))
    return out


def _decode_images(zf: zipfile.ZipFile, files: list, sizes: list, resize, path: str) -> np.ndarray:
    """(N, H, W, 3) uint8, one image decoded at a time (JPEGs at a reduced scale when resizing), into an
    array whose float32 form was checked against MAX_DECODED_BYTES first."""
    from PIL import Image, UnidentifiedImageError

    if resize is None:
        for (info, _), (w, h, _m) in zip(files, sizes):
            if (w, h) != sizes[0][:2]:
                raise DataError(f"{path}: images differ in size ('{files[0][0].filename}' is {sizes[0][0]}x"
                                f"{sizes[0][1]}, '{info.filename}' is {w}x{h}); give a resize size")
        out_h, out_w = sizes[0][1], sizes[0][0]
    else:
        out_h, out_w = resize
    channels = 1 if all(m in _GRAY_MODES for _, _, m in sizes) else 3
    nbytes = len(files) * out_h * out_w * channels * 4
    if nbytes > MAX_DECODED_BYTES:
        raise DataError(f"{path}: {len(files):,} images of {out_w}x{out_h} decode to {nbytes:,} bytes, more than "
                        f"the {MAX_DECODED_BYTES:,} byte limit; give a smaller resize size or use fewer images")
    x8 = np.empty((len(files), out_h, out_w, 3), np.uint8)
    for k, (info, _) in enumerate(files):
        try:
            with Image.open(io.BytesIO(_read_member(zf, info, path))) as img:
                if resize is not None:
                    img.draft("RGB", (out_w, out_h))  # JPEG: decode at the smallest scale still >= the target
                img = img.convert("RGB")
                if resize is not None:
                    img = img.resize((out_w, out_h), Image.Resampling.BILINEAR)
                a = np.asarray(img)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
            raise DataError(f"{path}: '{info.filename}' is not a readable image ({one_line(str(e))})") from None
        if a.shape != (out_h, out_w, 3):  # a header that lied about the size
            raise DataError(f"{path}: '{info.filename}' decodes to {a.shape[1]}x{a.shape[0]} pixels, not the "
                            f"{sizes[k][0]}x{sizes[k][1]} its header declares")
        x8[k] = a
    return x8
