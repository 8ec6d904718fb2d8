"""The Data panel: a built-in dataset, or a data file uploaded to the open session.

Uploads are kept with the session in the database (store.datasets), so they are there again after a reload
or a restart, on every page with a Data panel (Train, Compress). To read one, its bytes are written under a
private temporary folder with a name we choose (upload.npz / .csv / .zip), so a browser-given file name never
becomes a path; engine.data validates the contents (shapes, NaNs, labels, empty classes, zip paths).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import replace

import streamlit as st

import store as db
from app import dataset_jobs
from app.state import get_store
from engine.data import UPLOAD_EXTENSIONS, DataError, Dataset, list_datasets, load_dataset
from store.datasets import MAX_DATASET_BYTES as MAX_DATA_BYTES

_KINDS = {"built-in": "built-in", "stored": "uploaded to this session", "upload": "upload a file"}


@st.cache_resource(max_entries=8)
def _builtin(name: str, seed: int) -> Dataset:
    return load_dataset(name, seed=seed)


def _upload(data: bytes, filename: str, seed: int) -> Dataset:
    ext = os.path.splitext(filename)[1].lower()
    if ext not in UPLOAD_EXTENSIONS:
        raise DataError(f"{filename}: upload a .npz, .csv or .zip file")
    with tempfile.TemporaryDirectory(prefix="tinystudio-data-") as d:
        path = os.path.join(d, "upload" + ext)
        with open(path, "wb") as f:
            f.write(data)
        try:
            ds = load_dataset(path, seed=seed, max_bytes=MAX_DATA_BYTES)
        except DataError as e:  # the message names the file the user gave, not our temporary one
            raise DataError(str(e).replace(path, os.path.basename(filename))) from None
    # The temporary name must not show: the data set is named and sourced after the user's file.
    stem = os.path.splitext(os.path.basename(filename))[0]
    return replace(ds, name=stem, source=f"upload:{os.path.basename(filename)}")


@st.cache_resource(max_entries=8)
def _stored(dataset_id: int, digest: str, name: str, seed: int) -> Dataset:
    """A stored upload, decoded once per server (keyed by its hash, so a replaced file is read again)."""
    return _upload(db.session_dataset_bytes(get_store(), dataset_id), name, seed)


def _stored_panel(key: str, session_id: int) -> Dataset | None:
    stored = db.list_session_datasets(get_store(), session_id)
    if not stored:
        st.info("No data uploaded to this session yet: choose **upload a file**.")
        return None
    by_id = {d.id: d for d in stored}
    if st.session_state.get(f"{key}_stored") not in by_id:
        st.session_state[f"{key}_stored"] = stored[0].id
    c1, c2 = st.columns([5, 1])
    pick = c1.selectbox("Uploaded data set", list(by_id), key=f"{key}_stored",
                        format_func=lambda i: f"{by_id[i].name} ({by_id[i].nbytes / 1e6:,.2f} MB, "
                                              f"{by_id[i].created[:16].replace('T', ' ')})")
    with c2.popover("Delete"):
        st.write(f"Delete **{by_id[pick].name}** from this session?")
        if st.button("Yes, delete", key=f"{key}_del_{pick}"):
            db.delete_session_dataset(get_store(), pick, session_id)
            st.session_state.pop(f"{key}_stored", None)
            st.rerun()
    d = by_id[pick]
    return _stored(d.id, d.hash, d.name, 0)


def _generating(session_id: int, name: str) -> None:
    job = dataset_jobs.start(session_id, name)
    if job.status == "failed":
        st.error(f"Data set '{name}' could not be generated: {job.message}")
        return
    st.info(f"Generating the built-in data set **{name}** in the background (once, about half a minute; then "
            f"cached). It appears here when it is ready.", icon=":material/hourglass_top:")
    _poll_ready(name)


@st.fragment(run_every=2.0)
def _poll_ready(name: str) -> None:
    if dataset_jobs.ready(name):
        st.rerun()  # the whole page: the panel now loads the cached set


def _preferred(source: str | None, builtins: dict, session_id: int | None) -> dict:
    """The panel's first choice for a data set source a version recorded ("builtin:digits", "upload:x.npz")."""
    kind, _, name = (source or "").partition(":")
    if kind in ("builtin", "synthetic") and name in builtins:
        return {"kind": "built-in", "name": name}
    if kind == "upload" and session_id is not None:
        match = [d for d in db.list_session_datasets(get_store(), session_id) if d.name == name]
        if match:
            return {"kind": "stored", "stored": match[0].id}
    return {}


def data_panel(key: str, session_id: int | None = None, prefer: str | None = None) -> Dataset | None:
    """Render the panel; returns the chosen dataset (None until one is chosen). With `session_id`, uploads are
    stored with that session and offered again on later visits. `prefer`: the source of the data set to show
    first (the one the current version was trained with), until the user chooses another."""
    builtins = {d["name"]: d for d in list_datasets()}
    kinds = ["built-in", "stored", "upload"] if session_id is not None else ["built-in", "upload"]
    # Streamlit drops a widget's state when a page without it runs: the choice is kept under other keys and
    # handed back when the panel shows again, so switching pages keeps the chosen data set.
    if f"{key}__kept" not in st.session_state:
        st.session_state[f"{key}__kept"] = _preferred(prefer, builtins, session_id)
    kept = st.session_state[f"{key}__kept"]
    switch = st.session_state.pop(f"{key}__switch", None)
    if switch is not None:  # a file was just stored: show it as one of the session's data sets
        kept.update(kind="stored", stored=switch)
        st.session_state[f"{key}_kind"], st.session_state[f"{key}_stored"] = "stored", switch
    for k in ("kind", "name", "stored"):
        if f"{key}_{k}" not in st.session_state and k in kept:
            st.session_state[f"{key}_{k}"] = kept[k]
    if st.session_state.get(f"{key}_kind") not in kinds:
        st.session_state.pop(f"{key}_kind", None)
    choice = st.radio("Data", kinds, horizontal=True, key=f"{key}_kind", format_func=_KINDS.get)
    if choice == "built-in":
        name = st.selectbox("Dataset", list(builtins), key=f"{key}_name",
                            # the description's headline, before its colon: a fixed cut left "(UCI ... bundled"
                            format_func=lambda n: f"{n} — {builtins[n]['description'].split(': ')[0]}")
        if session_id is not None and not dataset_jobs.ready(name):
            _generating(session_id, name)  # made by a background job: this run does not wait for it
            return None
        ds = _builtin(name, 0)
    elif choice == "stored":
        ds = _stored_panel(key, session_id)
        if ds is None:
            return None
    else:
        up = st.file_uploader(".npz (x, y), .csv (features..., label) or .zip of class folders of images",
                              type=["npz", "csv", "zip"], key=f"{key}_upload")
        if up is None:
            return None
        cache = st.session_state.setdefault(f"{key}_cache", {})
        if up.file_id not in cache:
            cache.clear()
            ds = _upload(up.getvalue(), up.name, 0)  # checked before it is stored: bad data never lands in the db
            cache[up.file_id] = ds
            if session_id is not None:
                d = db.add_session_dataset(get_store(), session_id, up.name, up.getvalue())
                st.toast(f"Saved {d.name} with the session", icon=":material/save:")
                st.session_state[f"{key}__switch"] = d.id
                st.rerun()
        ds = cache[up.file_id]
    kept.update({k: st.session_state[f"{key}_{k}"] for k in ("kind", "name", "stored")
                 if f"{key}_{k}" in st.session_state})
    st.caption(f"{ds.source}: {len(ds.x_train):,} training and {len(ds.x_val):,} validation samples, "
               f"input {'x'.join(map(str, ds.input_shape))}, "
               + (f"{ds.classes} classes" if ds.classes else ds.task) + "; normalized per channel")
    return ds
