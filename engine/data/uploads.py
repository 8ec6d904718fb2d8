"""User data files -> raw arrays: .npz (x, y), .csv (features..., label), .zip of class folders of images.

Nothing is unpickled (np.load with allow_pickle=False), nothing is extracted to disk (zip members are
read into memory after every name was checked), and every size is bounded before it is read.
"""
from __future__ import annotations

import csv
import io
import os
import stat
import zipfile

import numpy as np

from engine.data.dataset import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_IMAGE_SIDE = 4096
MAX_MEMBERS = 200_000


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
    _open_zip(path, max_bytes).close()  # bounds the unpacked size before numpy inflates anything
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
    """Rows of numeric features with the label in the last column; an optional header row is detected."""
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
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text), dialect)) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: no rows")
    header = None
    if any(_num(c) is None for c in rows[0][1][:-1]):
        header, rows = rows[0][1], rows[1:]
    if not rows:
        raise DataError(f"{path}: a header but no data rows")
    width = len(header) if header else len(rows[0][1])
    if width < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column, found {width} column(s)")
    feats = np.empty((len(rows), width - 1), np.float32)
    labels = []
    for k, (line, r) in enumerate(rows):
        if len(r) != width:
            raise DataError(f"{path}: line {line} has {len(r)} values, expected {width}")
        for j, cell in enumerate(r[:-1]):
            v = _num(cell.strip())
            if v is None:
                col = f"'{header[j]}'" if header else str(j + 1)
                what = "is empty" if not cell.strip() else f"'{cell.strip()}' is not a number"
                raise DataError(f"{path}: line {line}, column {col} {what}")
            if not np.isfinite(v):
                raise DataError(f"{path}: line {line} holds NaN or infinite values")
            feats[k, j] = v
        labels.append(r[-1].strip())
    if task == "regression":
        vals = [_num(s) for s in labels]
        if any(v is None for v in vals):
            k = next(i for i, v in enumerate(vals) if v is None)
            raise DataError(f"{path}: line {rows[k][0]}: target '{labels[k]}' is not a number")
        return {"x": feats, "y": np.asarray(vals, np.float32), "class_names": None}
    if all(_num(s) is not None for s in labels):
        # Numeric labels are class indices (checked for range and empty classes later).
        return {"x": feats, "y": np.asarray([float(s) for s in labels]), "class_names": None}
    if any(not s for s in labels):
        k = labels.index("")
        raise DataError(f"{path}: line {rows[k][0]} has an empty label")
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
    from PIL import Image, UnidentifiedImageError

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
        arrays, labels, gray = [], [], True
        first: tuple[str, tuple[int, int]] | None = None
        for info, parts in sorted(files, key=lambda e: e[0].filename):
            if not parts[-1].lower().endswith(IMAGE_EXTENSIONS):
                raise DataError(f"{path}: '{info.filename}' is not an image ({', '.join(IMAGE_EXTENSIONS)})")
            data = _read_member(zf, info, path)
            try:
                with Image.open(io.BytesIO(data)) as img:
                    if max(img.size) > MAX_IMAGE_SIDE:
                        raise DataError(f"{path}: '{info.filename}' is {img.size[0]}x{img.size[1]} pixels, larger "
                                        f"than {MAX_IMAGE_SIDE} on a side")
                    img = img.convert("RGB")
                    if resize is not None:
                        img = img.resize((resize[1], resize[0]), Image.Resampling.BILINEAR)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
                raise DataError(f"{path}: '{info.filename}' is not a readable image ({e})") from None
            a = np.asarray(img, np.float32) / 255.0  # (H, W, 3)
            if first is None:
                first = (info.filename, a.shape[:2])
            elif a.shape[:2] != first[1]:
                raise DataError(f"{path}: images differ in size ('{first[0]}' is {first[1][1]}x{first[1][0]}, "
                                f"'{info.filename}' is {a.shape[1]}x{a.shape[0]}); give a resize size")
            gray = gray and bool(np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]))
            arrays.append(a)
            labels.append(names.index(parts[0]))
    x = np.stack(arrays)
    x = x[..., :1] if gray else x
    return {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "y": np.asarray(labels, np.int64),
            "class_names": tuple(names)}
