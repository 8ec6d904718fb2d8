"""The Profile page renders a stateful model (the int8 SVDF keyword spotter) headless (Streamlit's AppTest):
no exception, its MACs, and the state shown as RAM outside the arena, not as weights."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from engine.importers.tflite_import import load_tflite

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests" / "data" / "models" / "tinystudio" / "svdf_kws_int8.tflite"


@pytest.fixture(scope="module")
def session_id(tmp_path_factory):
    from app.state import DB_ENV, get_store

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path_factory.mktemp("svdf") / "studio.duckdb")
    st.cache_resource.clear()
    s = db.create_session(get_store(), "svdf kws", load_tflite(str(MODEL)), model=str(MODEL), action="import")
    yield s.id
    st.cache_resource.clear()
    if old is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = old


def test_profile_page_shows_an_svdf_model(session_id):
    at = AppTest.from_file(str(ROOT / "pages" / "profile.py"), default_timeout=180)
    at.session_state["session_id"] = session_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Layers"] == "4"
    # 5,376 B = (64 x 32 + 64 x 10) int16 values of the two SVDF states
    assert any("State kept between invocations (SVDF): 5.25 KB of RAM outside the arena" in c.value
               for c in at.caption), [c.value for c in at.caption]
