"""The Data panel: pick a built-in dataset or upload one; the choice is kept per studio session and tab.

Uploads are written under a private temporary folder with a name we choose (upload.npz / .csv / .zip), so a
browser-given file name never becomes a path; engine.data validates the contents (shapes, NaNs, labels,
empty classes, zip paths).
"""
from __future__ import annotations

import os
import tempfile

import streamlit as st

from engine.data import UPLOAD_EXTENSIONS, Dataset, list_datasets, load_dataset

MAX_DATA_BYTES = 64 * 1000 * 1000


@st.cache_resource(max_entries=8)
def _builtin(name: str, seed: int) -> Dataset:
    return load_dataset(name, seed=seed)


def _upload(data: bytes, filename: str, seed: int) -> Dataset:
    ext = os.path.splitext(filename)[1].lower()
    if ext not in UPLOAD_EXTENSIONS:
        from engine.data import DataError

        raise DataError(f"{filename}: upload a .npz, .csv or .zip file")
    with tempfile.TemporaryDirectory(prefix="tinystudio-data-") as d:
        path = os.path.join(d, "upload" + ext)
        with open(path, "wb") as f:
            f.write(data)
        ds = load_dataset(path, seed=seed, max_bytes=MAX_DATA_BYTES)
    return ds


def data_panel(key: str) -> Dataset | None:
    """Render the panel; returns the chosen dataset (None until one is chosen)."""
    builtins = {d["name"]: d for d in list_datasets()}
    choice = st.radio("Data", ["built-in", "upload"], horizontal=True, key=f"{key}_kind")
    if choice == "built-in":
        name = st.selectbox("Dataset", list(builtins), key=f"{key}_name",
                            format_func=lambda n: f"{n} — {builtins[n]['description'][:70]}")
        ds = _builtin(name, 0)
    else:
        up = st.file_uploader(".npz (x, y), .csv (features..., label) or .zip of class folders of images",
                              type=["npz", "csv", "zip"], key=f"{key}_upload")
        if up is None:
            return None
        cache = st.session_state.setdefault(f"{key}_cache", {})
        if up.file_id not in cache:
            cache.clear()
            cache[up.file_id] = _upload(up.getvalue(), up.name, 0)
        ds = cache[up.file_id]
    st.caption(f"{ds.source}: {len(ds.x_train):,} training and {len(ds.x_val):,} validation samples, "
               f"input {'x'.join(map(str, ds.input_shape))}, "
               + (f"{ds.classes} classes" if ds.classes else ds.task) + "; normalized per channel")
    return ds
