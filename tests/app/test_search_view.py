"""The Search page's logic without a browser: the form's values as a StudySpec (bad ones one line each), the
Pareto front and plot of stored trials, the marks table, and accepting a trial as a version whose lineage
names the study and trial (provenance, History's words)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import store as db
from app.history_view import accuracy_text, action_words
from app.search_charts import best, counts_text, pareto_figure, pareto_front, study_rows, trial_rows
from app.search_marks import markable_rows, marks_from_rows
from app.search_run import accept_trial, search_spec, spec_from_json, spec_to_json, study_dir
from engine.errors import TinyStudioError
from engine.zoo import build_zoo_model

FORM = dict(name="kws", space="dscnn", dataset="digits", mcu="nrf52840", runtime=None, max_sram_kb=64,
            max_flash_kb=256, max_latency_ms=0, objectives=["accuracy", "latency_ms"], strategy="tpe",
            budget="trials", trials=6, epochs=2, seed=1)


def test_form_values_become_a_study_spec():
    spec = search_spec(**FORM)
    assert (spec.max_sram, spec.max_flash, spec.max_latency_ms) == (65536, 262144, None)
    assert (spec.trials, spec.time_budget_s, spec.objectives, spec.epochs, spec.seed) == \
        (6, None, ("accuracy", "latency_ms"), 2, 1)
    timed = search_spec(**{**FORM, "budget": "minutes", "minutes": 1.5})
    assert timed.time_budget_s == 90.0 and timed.trials >= 1000
    assert spec_from_json(spec_to_json(spec)) == spec
    marked = search_spec(**{**FORM, "space": "version", "marks": {"conv1.channels": [8, 16],
                                                                   "conv1.kernel": [[3, 3], [5, 5]]}})
    assert marked.marks == (("conv1.channels", (8, 16)), ("conv1.kernel", ([3, 3], [5, 5])))
    assert spec_from_json(spec_to_json(marked)).marks == (("conv1.channels", (8, 16)),
                                                          ("conv1.kernel", ([3, 3], [5, 5])))


@pytest.mark.parametrize("change, message", [
    ({"name": "  "}, "Study name is empty"),
    ({"space": "transformer"}, "Space 'transformer' is not one of mobilenetv2, dscnn, resnet, cnn1d, version"),
    ({"mcu": "z80"}, "MCU 'z80' is not a known MCU"),
    ({"objectives": []}, "Objectives: choose at least one"),
    ({"objectives": ["accuracy", "beauty"]}, "Objectives: beauty not one of"),
    ({"trials": 0}, "Trials must be a whole number from 1 to 10000"),
    ({"budget": "minutes", "minutes": 0}, "Minutes must be more than 0"),
    ({"max_sram_kb": -4}, "Max SRAM must be a positive number (0 for no limit)"),
    ({"epochs": 2.5}, "Epochs must be a whole number"),
    ({"space": "version", "marks": {}}, "mark at least one layer attribute"),
])
def test_bad_form_values_are_one_line(change, message):
    with pytest.raises(TinyStudioError) as e:
        search_spec(**{**FORM, **change})
    assert message in str(e.value) and "\n" not in str(e.value) and "--" not in str(e.value)


@dataclass
class T:  # the fields of store.TrialInfo the figures read
    strategy: str
    number: int
    state: str
    accuracy: float | None = None
    latency_ms: float | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    params: dict | None = None
    broke: str | None = None
    error: str | None = None
    seconds: float = 1.0


TRIALS = [T("tpe", 0, "trained", 0.90, 10.0, 30_000), T("tpe", 1, "trained", 0.80, 5.0, 20_000),
          T("tpe", 2, "trained", 0.70, 8.0, 25_000),  # dominated by trial 1 (slower and less accurate)
          T("tpe", 3, "rejected", None, 40.0, 90_000, broke="ram_bytes 90000 > max_sram 65536"),
          T("tpe", 4, "pruned", 0.3), T("random", 0, "trained", 0.85, 20.0, 40_000),
          T("random", 1, "trained", 0.60, 2.0, 10_000), T("random", 2, "failed", error="worker lost")]


def test_pareto_front_per_strategy():
    assert pareto_front(TRIALS, ("accuracy", "latency_ms")) == {("tpe", 0), ("tpe", 1), ("random", 0),
                                                                ("random", 1)}
    # On accuracy alone only the most accurate of each strategy is left.
    assert pareto_front(TRIALS, ("accuracy",)) == {("tpe", 0), ("random", 0)}
    # With RAM as a third objective trial 2 is still dominated by trial 1 (30 % less RAM too).
    assert ("tpe", 2) not in pareto_front(TRIALS, ("accuracy", "latency_ms", "ram_bytes"))
    assert best(TRIALS).number == 0 and best(TRIALS, "random").number == 0


def test_pareto_figure_points_front_baseline_and_greyed_rejects():
    fig = pareto_figure(TRIALS, ("accuracy", "latency_ms"), main="tpe")
    names = [t.name for t in fig.data]
    assert names == ["tpe", "tpe front", "random (random baseline)", "random front",
                     "rejected before training (broke a limit)"]
    tpe, _, rnd, _, rej = fig.data
    assert [list(c) for c in tpe.customdata] == [["tpe", 0], ["tpe", 1], ["tpe", 2]]
    assert list(tpe.y) == [0.90, 0.80, 0.70] and list(tpe.marker.color) == [30_000, 20_000, 25_000]
    assert list(tpe.marker.size) == [15, 15, 10]  # front points larger
    assert rnd.marker.symbol == "diamond-open" and list(rej.x) == [40.0] and rej.marker.color == "#b9bec7"
    assert list(fig.data[1].x) == [5.0, 10.0]  # the front joined in latency order
    assert fig.layout.yaxis.tickformat == ".0%"


def test_counts_and_rows():
    assert counts_text({"total": 5, "trained": 2, "rejected": 1, "pruned": 1, "failed": 1}, 4) == \
        "5 of 4 trials: 2 trained, 1 rejected, 1 pruned, 1 failed"
    rows = trial_rows(TRIALS)
    assert rows[3]["why"].startswith("ram_bytes") and rows[0]["accuracy"] == "90.00 %"


def test_marks_table_of_a_version():
    g = build_zoo_model("zoo:kws_dscnn")
    rows = markable_rows(g)
    keys = {(r["layer"], r["attribute"]): r["now"] for r in rows}
    assert keys[("conv1", "channels")] == "64" and keys[("conv1", "kernel")] == "10x4"
    assert ("block1_dw", "channels") not in keys  # a depthwise conv's channels follow its input
    assert not any(r["layer"] == "fc" for r in rows)  # its outputs are the classes
    assert keys[("conv1", "stride")] == "2x2"
    rows[0]["choices"] = "32, 64 ,96"
    rows[1]["choices"] = "3x3; 5x5"
    marks = marks_from_rows(rows)
    assert marks == {"conv1.channels": [32, 64, 96], "conv1.kernel": [[3, 3], [5, 5]]}
    from engine.search import version_space

    assert version_space(g, marks).size() == 6  # the engine takes the table's marks as they are
    rows[0]["choices"] = "wide"
    with pytest.raises(TinyStudioError, match="layer conv1, channels: 'wide' is not a whole number"):
        marks_from_rows(rows)


@pytest.fixture
def store(tmp_path):
    s = db.open_store(str(tmp_path / "studio.duckdb"))
    yield s
    s.close()


def test_accept_a_trial_as_a_version_naming_study_and_trial(store, tmp_path):
    from engine.exporters.onnx_export import save_onnx

    g = build_zoo_model("zoo:lenet5?resolution=16&classes=4")
    s = db.create_session(store, "srch", g)
    v1 = db.current_version(store, s.id)
    folder = study_dir(store, s.id, "kws/tiny")
    assert folder.name == "kws_tiny" and folder.parent.name == f"session-{s.id}"
    folder.mkdir(parents=True)
    assert study_dir(store, s.id, "kws/tiny").name == "kws_tiny-2"  # a name used before gets its own folder
    model = folder / "trial_0003.onnx"
    save_onnx(g, str(model))
    spec = spec_to_json(search_spec(**{**FORM, "name": "kws/tiny"}))
    st = db.create_study(store, s.id, "kws/tiny", spec, str(folder / "study.journal"), str(folder))
    db.record_trial(store, st.id, {"number": 3, "state": "trained", "params": {"filters": 16, "blocks": 2},
                                   "accuracy": 0.8125, "latency_ms": 3.5, "ram_bytes": 9000, "flash_bytes": 30000,
                                   "model_path": str(model), "seconds": 2.0, "strategy": "tpe"})
    db.record_trial(store, st.id, {"number": 4, "state": "rejected", "params": {}, "seconds": 0.1,
                                   "strategy": "tpe", "broke": "flash"})
    model.unlink()  # the study folder may be cleaned: the stored copy is used
    new = accept_trial(store, s.id, st.id, "tpe", 3, parent_id=v1.id)
    assert (new.action, new.parent_id, new.params["study"], new.params["trial"]) == ("search", v1.id, "kws/tiny", 3)
    assert new.params["dataset"]["source"] == "builtin:digits" and new.params["dataset"]["normalization"]
    prov = db.version_accuracy(store, new.id)
    assert prov["trained"] and prov["accuracy"] == 0.8125 and "search study 'kws/tiny', trial 3" in prov["reason"]
    assert accuracy_text(prov) == "81.25 % (builtin:digits)"
    words = action_words(new.action, new.params, {})
    assert words.startswith("from search study 'kws/tiny', tpe trial 3, space dscnn, on builtin:digits")
    assert "blocks=2, filters=16" in words
    with pytest.raises(TinyStudioError, match="was rejected: it has no trained model"):
        accept_trial(store, s.id, st.id, "tpe", 4)
    with pytest.raises(TinyStudioError, match="has no random trial 3"):
        accept_trial(store, s.id, st.id, "random", 3)
    other = db.create_session(store, "other", g)
    with pytest.raises(TinyStudioError, match=f"belongs to session {s.id}"):
        accept_trial(store, other.id, st.id, "tpe", 3)
    rows = study_rows(db.list_studies(store, s.id))
    assert rows[0]["study"] == "kws/tiny" and rows[0]["trials"].startswith("2 trials: 1 trained, 1 rejected")


def test_the_version_alone_with_training_searched_needs_no_mark():
    spec = search_spec(**{**FORM, "space": "version", "marks": {}, "search_training": True})
    assert spec.marks == () and spec.search_training
