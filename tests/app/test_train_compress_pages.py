"""The Train and Compress pages run headless (Streamlit's AppTest) on versions of several kinds — blank canvas,
untrained zoo model, a trained int8 version — without a Python exception reaching the page: what cannot be
done is one line, an int8 version is tried with float and int8 side by side and its accuracy is measurable."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from engine.compress import compress
from engine.data import load_dataset
from engine.train import adapt_zoo, train
from engine.zoo import build_zoo_model
from engine.zoo.blank import blank_graph

PAGES = Path(__file__).resolve().parents[2] / "pages"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    import os

    from app.state import DB_ENV, get_store

    path = str(tmp_path_factory.mktemp("pages") / "studio.duckdb")
    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = path
    st.cache_resource.clear()  # store, graphs, profiles: cached per process by id, so this module's database only
    store = get_store()
    d = load_dataset("digits")
    small = dataclasses.replace(d, x_train=d.x_train[:400], y_train=d.y_train[:400])
    g, _ = train(adapt_zoo("zoo:lenet5", small), small, epochs=4, batch_size=32)
    q = compress(g, "quantize-int8", {"calibration_samples": 64}, small).graph
    ids = {"blank": db.create_session(store, "blank", blank_graph((1, 1, 8, 8)), model="blank", action="blank").id,
           "zoo": db.create_session(store, "zoo", build_zoo_model("zoo:lenet5"), model="zoo:lenet5", action="zoo").id}
    t = db.create_session(store, "lenet", build_zoo_model("zoo:lenet5"), model="zoo:lenet5", action="zoo")
    v = db.add_version(store, t.id, g, "train", {"trained": True, "accuracy": 0.95})
    db.add_version(store, t.id, q, "quantize-int8", {"accuracy": 0.95}, parent_id=v.id)
    ids["int8"] = t.id
    sensor = db.create_session(store, "sensor", build_zoo_model("zoo:sensor_cnn1d"), model="zoo:sensor_cnn1d",
                               action="zoo")
    db.add_version(store, sensor.id, build_zoo_model("zoo:sensor_cnn1d?seed=3"), "train",
                   {"trained": True, "accuracy": 0.5, "dataset": {"source": "synthetic:synthetic-sensor"}})
    ids["sensor"] = sensor.id
    yield ids
    st.cache_resource.clear()  # store, graphs and profiles: cached per process, keyed by ids only
    if old is None:
        os.environ.pop(DB_ENV, None)
    else:
        os.environ[DB_ENV] = old


def _run(page: str, session_id: int) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=180)
    at.session_state["session_id"] = session_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_train_page_on_each_kind_of_version(sessions):
    at = _run("train.py", sessions["blank"])
    assert [e.value for e in at.error] == ["graph 'blank' output 'input' has shape [1, 1, 8, 8], but data set "
                                           "'digits' needs 10 classes per sample"]
    assert any("untrained" in w.value for w in at.warning)

    at = _run("train.py", sessions["zoo"])
    assert any("rebuilt for this data set" in i.value for i in at.info)
    # Try it on the 32x32 model: not an error (nothing is wrong yet), a pointer to training first
    assert not at.error and any(i.value.startswith("Train first: v1 takes a different input") for i in at.info)

    at = _run("train.py", sessions["int8"])
    assert any("quantize-int8 of a trained version" in s.value for s in at.success)
    m = {x.label: x.value for x in at.metric}
    assert m["true class"] == "5" and m["float prediction"].isdigit() and m["int8 prediction"].isdigit()
    at.number_input(key=f"try_index_{sessions['int8']}").set_value(3).run()
    assert {x.label: x.value for x in at.metric}["true class"] == "4"
    assert not at.exception


def test_compress_page_measures_an_int8_version_and_warns_on_untrained(sessions):
    at = _run("compress.py", sessions["int8"])
    assert not any("cannot be measured" in w.value for w in at.warning)
    assert not any("untrained" in w.value for w in at.warning)
    at = _run("compress.py", sessions["zoo"])
    assert any("**untrained**" in w.value for w in at.warning)
    assert not any(c.label == "Run on the untrained model anyway" for c in at.checkbox)  # fold-bn needs no training
    at.selectbox(key="action").set_value("prune-channels").run()
    assert any(c.label == "Run on the untrained model anyway" for c in at.checkbox)
    run = next(b for b in at.button if b.label == "Run in the background")
    run.click().run()  # without ticking the box: refused in one line, nothing runs
    assert any("tick 'Run on the untrained model anyway'" in e.value for e in at.error)
    from app.state import get_store
    assert db.list_jobs(get_store(), sessions["zoo"]) == []


def test_data_panel_starts_with_the_data_the_version_was_trained_on(sessions):
    sid = sessions["sensor"]
    for page, key in (("train.py", f"train_data_{sid}"), ("compress.py", f"data_{sid}")):
        at = _run(page, sid)
        assert at.selectbox(key=f"{key}_name").value == "synthetic-sensor"
        assert not any("cannot be measured" in w.value for w in at.warning)


def test_versions_are_named_by_their_number_in_the_session_and_a_blank_profile_says_why_no_charts(sessions):
    at = _run("train.py", sessions["int8"])  # database ids 4 and 5, per-session v1 (zoo), v2, v3 (int8)
    assert any(s.value.startswith("Version v3 is trained") for s in at.success), [s.value for s in at.success]
    at = _run("profile.py", sessions["blank"])
    assert any(i.value.startswith("No layers yet") for i in at.info), [i.value for i in at.info]


def test_builtin_data_sets_are_offered_by_their_whole_headline(sessions):
    at = _run("train.py", sessions["zoo"])
    options = next(sb for sb in at.selectbox if sb.label == "Dataset").options
    assert "digits — Handwritten digits 0-9, 8x8 gray levels (UCI optical digits as bundled with scikit-learn)" \
        in options, options
    assert all(o.count("(") == o.count(")") for o in options), options


def test_action_and_zoo_parameters_are_labelled_in_words_not_raw_keys(sessions):
    at = _run("compress.py", sessions["zoo"])
    labels = [w.label for w in [*at.number_input, *at.selectbox, *at.checkbox, *at.text_input]]
    assert labels and not [x for x in labels if "_" in x], labels


def test_train_page_does_not_wait_for_a_data_set_being_generated(sessions, tmp_path, monkeypatch):
    """keywords not cached yet: the page run returns at once, saying the set is made in the background (the
    generation is a "dataset" job on the workers), and it loads nothing itself."""
    import time

    from app import dataset_jobs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    assert not dataset_jobs.ready("keywords") and dataset_jobs.ready("digits")
    started = []

    class _Job:
        status, message, finished = "running", "", False

    monkeypatch.setattr(dataset_jobs, "start", lambda sid, name: started.append((sid, name)) or _Job())
    at = AppTest.from_file(str(PAGES / "train.py"), default_timeout=60)
    at.session_state["session_id"] = sessions["zoo"]
    at.run()
    at.radio(key=f"train_data_{sessions['zoo']}_kind").set_value("built-in")
    t = time.perf_counter()
    at.selectbox(key=f"train_data_{sessions['zoo']}_name").set_value("keywords").run()
    assert time.perf_counter() - t < 30  # generating keywords takes about half a minute on an idle machine
    assert not at.exception
    assert started == [(sessions["zoo"], "keywords")]
    assert any("Generating the built-in data set **keywords**" in i.value for i in at.info)
    assert not (tmp_path / "empty-cache" / "tinystudio" / "datasets").exists()  # nothing generated in the page
