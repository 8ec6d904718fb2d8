"""The Profile page's schedule control headless (Streamlit's AppTest): a kind the graph has no place for is a
warning (no exception, layer figures shown); a schedule that applies shows its figures, is saved with the
version (a new version) and is what the page shows from then on."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from engine.importers.tflite_import import load_tflite

ROOT = Path(__file__).resolve().parents[2]
MLPERF = ROOT.parent / "shared" / "data" / "mlperf-tiny"
pytestmark = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")


@pytest.fixture
def store_env(tmp_path):
    from app.state import DB_ENV, get_store

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "studio.duckdb")
    st.cache_resource.clear()
    yield get_store
    st.cache_resource.clear()
    if old is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = old


def _page(session_id: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "profile.py"), default_timeout=300)
    at.session_state["session_id"] = session_id
    at.session_state["mcus"] = []
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _group(at):
    return next(b for b in at.button_group if b.label == "Schedule")


def test_a_kind_without_a_place_is_a_warning(store_env):
    path = MLPERF / "ad01_int8.tflite"   # fully connected only: no depthwise to run in place
    s = db.create_session(store_env(), "ad", load_tflite(str(path)), model=str(path), action="import")
    at = _page(s.id)
    _group(at).set_value("inplace").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert any("no depthwise convolution" in w.value and "Showing layer by layer" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Activation arena"] == "768 B"


def test_patch_is_shown_and_saved_with_the_version(store_env):
    path = MLPERF / "vww_96_int8.tflite"
    s = db.create_session(store_env(), "vww", load_tflite(str(path)), model=str(path), action="import")
    at = _page(s.id)
    assert {m.label: m.value for m in at.metric}["Activation arena"] == "54 KB"
    _group(at).set_value("patch").run()
    assert not at.exception and not at.error
    info = " ".join(i.value for i in at.info)
    assert "schedule patch" in info and "patch stage" in info and "below" in info, info
    arena = {m.label: m.value for m in at.metric}["Activation arena"]
    assert arena != "54 KB"
    save = next(b for b in at.button if b.label == "Save with the version")
    save.click().run()
    assert not at.exception, [e.value for e in at.exception]
    versions = db.list_versions(store_env(), s.id)
    assert [v.action for v in versions] == ["import", "schedule"]
    rec = db.version_schedule(store_env(), versions[-1].id)
    assert rec["requested"] == "patch" and rec["schedule"]["kind"] == "patch"
    # a fresh page on the new version starts from the saved schedule, with the same arena
    at2 = _page(s.id)
    assert _group(at2).value == "patch"
    assert {m.label: m.value for m in at2.metric}["Activation arena"] == arena
    assert any(b.label == "Saved with the version" for b in at2.button)
