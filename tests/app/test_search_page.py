"""The Search page headless (Streamlit's AppTest): the form for a family and for the version's marked knobs,
bad input as one line (nothing started), and a stored study's results — counts, the plot, the best point's
details — with its point accepted as a new version. No Python exception reaches the page."""
from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from engine.exporters.onnx_export import save_onnx
from engine.zoo import build_zoo_model

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "search.py")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    import os

    from app.state import DB_ENV, get_store

    folder = tmp_path_factory.mktemp("search_page")
    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(folder / "studio.duckdb")
    st.cache_resource.clear()  # store, graphs and profiles: cached per process, keyed by ids only
    store = get_store()
    g = build_zoo_model("zoo:kws_dscnn")
    s = db.create_session(store, "kws", g, model="zoo:kws_dscnn", action="zoo")
    yield s.id, folder
    st.cache_resource.clear()  # store, graphs and profiles: cached per process, keyed by ids only
    if old is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = old


def _run(session_id: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["session_id"] = session_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _start(at: AppTest) -> AppTest:
    next(b for b in at.button if b.label == "Start the search").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_bad_input_is_one_line_and_starts_nothing(session):
    sid, _ = session
    at = _run(sid)
    assert any(c.value.startswith("No study in this session yet") for c in at.caption)
    at.text_input[0].set_value("  ")
    at = _start(at)
    assert [e.value for e in at.error] == ["Study name is empty: give the study a name"]
    # The version's own knobs: the table of marks is offered; starting without a mark says what to do.
    at.selectbox(key="search_space").set_value("version").run()
    assert not at.exception
    assert any(c.value.startswith("Mark attributes as choices") for c in at.caption)
    table = at.dataframe[0].value  # the marks table (st.data_editor): one row per knob of the version
    assert {"layer", "op", "attribute", "now", "choices"} <= set(table.columns)
    assert ("conv1", "channels", "64") in set(zip(table["layer"], table["attribute"], table["now"]))
    at.text_input[0].set_value("mine")
    at = _start(at)
    assert [e.value for e in at.error] == ["Space 'version': mark at least one layer attribute as a choice in the "
                                           "table, or tick 'Search training and compression too' to search those "
                                           "alone"]
    # A family that cannot take the data set's samples: one line before anything runs.
    at.selectbox(key="search_space").set_value("cnn1d").run()
    at = _start(at)
    assert len(at.error) == 1 and "space 'cnn1d' takes time series" in at.error[0].value
    from app.state import get_store

    assert db.list_studies(get_store(), sid) == [] and db.list_jobs(get_store(), sid) == []


def test_a_stored_study_shows_its_points_and_one_becomes_a_version(session):
    from app.search_run import search_spec, spec_to_json
    from app.state import get_store

    sid, folder = session
    store = get_store()
    g = build_zoo_model("zoo:kws_dscnn?classes=10")
    spec = spec_to_json(search_spec(name="stored", space="dscnn", dataset="digits", mcu="nrf52840", runtime=None,
                                    trials=2, epochs=1))
    st = db.create_study(store, sid, "stored", {**spec, "run": {"baseline": True}}, str(folder / "j"), str(folder))
    for strategy, number, acc, lat in (("tpe", 0, 0.7, 3.0), ("tpe", 1, 0.9, 9.0), ("random", 0, 0.6, 2.0)):
        path = folder / f"{strategy}{number}.onnx"
        save_onnx(g, str(path))
        db.record_trial(store, st.id, {"number": number, "state": "trained", "params": {"filters": 8 * (number + 1)},
                                       "accuracy": acc, "latency_ms": lat, "ram_bytes": 4000, "flash_bytes": 9000,
                                       "energy_uj": 5.0, "macs": 1000, "model_path": str(path), "seconds": 1.0,
                                       "strategy": strategy})
    db.record_trial(store, st.id, {"number": 1, "state": "rejected", "params": {"filters": 96}, "latency_ms": 40.0,
                                   "ram_bytes": 300_000, "broke": "ram_bytes 300,000 > 262,144", "seconds": 0.1,
                                   "strategy": "random"})
    db.finish_study(store, st.id, "done", "4 trials")
    at = _run(sid)
    m = {x.label: x.value for x in at.metric}
    assert (m["trials done"], m["trained"], m["rejected"], m["best accuracy"]) == ("3 / 4", "3", "1", "90.00 %")
    assert any(sub.value == "tpe trial 1 (trained)" for sub in at.subheader)  # the best point, before any click
    assert m["accuracy"] == "90.00 %" and m["latency"] == "9 ms"
    accept = next(b for b in at.button if b.label == "Accept tpe trial 1 as a new version")
    accept.click().run()
    assert not at.exception, [e.value for e in at.exception]
    versions = db.list_versions(store, sid)
    assert versions[-1].action == "search" and versions[-1].params["trial"] == 1
    assert db.version_accuracy(store, versions[-1].id)["accuracy"] == 0.9
