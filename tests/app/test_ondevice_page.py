"""Train on device, the sparse update, headless (Streamlit's AppTest): the planner's probe table (gain, z, extra SRAM,
gain per KB) and the predicted accuracy gain are the engine's figures, and a budget below the classifier is an
error line, not an exception. Short probes (3 SGD steps, whole layers) keep it cheap."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from engine.zoo import build_zoo_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    from app.state import DB_ENV, get_store
    import engine.ondevice.sparse as sparse

    monkeypatch.setattr(sparse, "cache_dir", lambda: tmp_path / "probes")
    monkeypatch.setattr(sparse, "plan_sparse", functools.partial(sparse.plan_sparse, steps=3, fractions=(1.0,),
                                                                 candidates=2))
    monkeypatch.setenv(DB_ENV, str(tmp_path / "studio.duckdb"))
    st.cache_resource.clear()
    yield get_store
    st.cache_resource.clear()


def test_sparse_plan_shows_probes_and_predicted_gain(store_env):
    from app.workflows.ondevice import probe_rows, sparse_report

    g = build_zoo_model("zoo:kws_dscnn")
    s = db.create_session(store_env(), "kws", g, model="zoo:kws_dscnn", action="create")
    at = AppTest.from_file(str(ROOT / "pages" / "ondevice.py"), default_timeout=300)
    at.session_state["session_id"] = s.id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="odt_kind").set_value("sparse").run()
    at.number_input(key="odt_budget").set_value(80.0).run()
    assert any("press the button" in i.value for i in at.info)
    at.button(key="odt_plan").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert all(e.value.startswith("No plan fits") for e in at.error), [e.value for e in at.error]  # POET's, below
    want, prof = sparse_report(g, 80 * 1024, "stm32f746ng", "keywords")   # the same probes, from the cache
    assert want.cached
    m = {x.label: x.value for x in at.metric}
    assert m["Predicted accuracy gain"] == f"{want.predicted_gain:+.1%}"
    assert m["Peak training SRAM"].replace(" ", "") and prof.peak_sram_bytes <= 80 * 1024
    table = next(d.value for d in at.dataframe if "gain per KB" in d.value.columns)
    assert list(table["layer"]) == [r["layer"] for r in probe_rows(want)] and len(table) == 2
    assert list(table["gain per KB"]) == [r["gain per KB"] for r in probe_rows(want)]
    assert any("predicted accuracy" in md.value for md in at.markdown)
    at.number_input(key="odt_budget").set_value(1.0).run()
    at.button(key="odt_plan").click().run()
    assert not at.exception and any("below the" in e.value for e in at.error), [e.value for e in at.error]
