"""The Export page's on-device training option: the page's job puts the training library in the bundle and the
page shows its line; a bad SPEC in the form is one error line and submits nothing."""
from __future__ import annotations

import os
import zipfile
import io
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from app.workflows import export as flow
from engine.zoo import build_zoo_model

PAGES = Path(__file__).resolve().parents[2] / "pages"


def test_export_page_job_exports_the_training_step_and_the_page_shows_it(tmp_path):
    from app.state import DB_ENV, get_store

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "studio.duckdb")
    st.cache_resource.clear()
    try:
        store = get_store()
        s = db.create_session(store, "kws", build_zoo_model("zoo:kws_dscnn"), model="zoo:kws_dscnn", action="zoo")
        v = db.current_version(store, s.id)
        work = flow.export_job(lambda vid: db.get_graph(store, vid), lambda: store, v.id, "stm32l4r5zi", "host", 1,
                               None, "kws", None, training="last:1")
        done = work(lambda f, m="": None)
        rec = db.get_export(store, done["export_id"])
        tr = rec.report["training"]
        assert tr["spec"] == "last:1" and tr["verify"]["host"] <= 1e-5
        names = zipfile.ZipFile(io.BytesIO(db.export_bundle(store, rec.id))).namelist()
        assert any(n.endswith("training/kws_train.c") for n in names)
        at = AppTest.from_file(str(PAGES / "export.py"), default_timeout=180)
        at.session_state["session_id"] = s.id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(c.value.startswith("training: kws_train (last:1: fc)") for c in at.caption), \
            [c.value for c in at.caption]
        at.text_input[1].set_value("last:zero")
        at.button[0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("training spec" in e.value for e in at.error), [e.value for e in at.error]
    finally:
        st.cache_resource.clear()
        if old is None:
            os.environ.pop(DB_ENV, None)
        else:
            os.environ[DB_ENV] = old
