"""History's words and figures: actions from stored params, accuracy as recorded (or why there is none),
latency and fit cells from a real profile, human labels and percentages."""
from __future__ import annotations

from app.history_view import (FIGURES, accuracy_text, action_words, describe_action, fit_cell, label, percent,
                              split_rows, tree_rows)
from engine.profile import profile_graph
from engine.zoo import build_zoo_model
from store.records import VersionInfo


def ver(vid, action, params=None, parent=None, number=None, metrics=None):
    return VersionInfo(vid, 1, parent, action, params or {}, metrics or {"macs": 10, "weight_bytes": 40}, "h",
                       "2026-12-06T08:00:00", number or vid)


def test_labels_and_percent():
    assert [label(k) for k in ("weight_bytes", "arena_bytes", "macs", "odd_key")] == \
        ["Weights (B)", "Activation arena (B)", "MACs", "Odd key"]
    assert (percent(0.96381), percent(1.0), percent(None), percent(float("nan"))) == ("96.38 %", "100.00 %", "", "")


def test_actions_in_words():
    labels = {17: "v1", 18: "v2"}
    ptq = {"calibration_samples": 200, "method": "minmax", "layout": "NHWC", "accuracy": 0.9}
    assert action_words("quantize-int8", ptq, labels) == "int8 PTQ, 200 calibration samples, minmax ranges, NHWC"
    assert action_words("prune-channels", {"keep": 0.5, "target": "macs", "criterion": "taylor", "epochs": 20},
                        labels) == "channels pruned to 50 % of the MACs, taylor importance, 20 fine-tuning epochs"
    assert action_words("restore", {"version_id": 17}, labels) == "restored v1"
    assert action_words("import", {"file": "kws.tflite", "bytes": 2048}, labels) == "uploaded kws.tflite, 2.0 KB"
    assert action_words("edit", {"via": "canvas", "layers": 152}, labels) == "edited on the canvas"
    assert action_words("brand-new", {"alpha": 2, "dataset": {"x": 1}}, labels) == "brand-new, alpha 2"
    edit = ver(18, "edit", {"via": "canvas", "layers": 152}, parent=17)
    assert describe_action(edit, labels, "conv1: 64 → 32 output channels") == \
        "edited on the canvas: conv1: 64 → 32 output channels"
    assert describe_action(edit, labels, "no change to the graph") == "edited on the canvas"


def test_accuracy_follows_the_stores_provenance(tmp_path):
    import store as db
    from tests.store.graphs import mlp

    st = db.open_store(str(tmp_path / "h.duckdb"))
    try:
        g, g2 = mlp(seed=0), mlp(seed=1)
        s = db.create_session(st, "h", g, action="zoo", params={"spec": "zoo:x"})
        zoo = db.current_version(st, s.id)
        trained = db.add_version(st, s.id, g2, "train", {"accuracy": 0.9638, "dataset": {"source": "digits"}})
        same = db.add_version(st, s.id, g2, "edit", {"via": "canvas"})  # weights unchanged: trained, not measured
        changed = db.add_version(st, s.id, g, "edit", {"via": "canvas"})  # new weights: untrained again
        restored = db.restore_version(st, s.id, trained.id)
        imp = db.create_session(st, "i", g, action="import", params={"file": "m.onnx"})
        got = [accuracy_text(db.version_accuracy(st, v.id))
               for v in (zoo, trained, same, changed, restored, db.current_version(st, imp.id))]
    finally:
        st.close()
    assert got[:3] == ["untrained (random weights)", "96.38 % (digits)", "not measured"]
    assert got[3].startswith("untrained (edited after training")
    assert got[4:] == ["96.38 % (digits)", "not measured"]
    assert accuracy_text({"trained": True, "accuracy": 96.38, "dataset": None}) == "96.38 %"  # stored as percent


def test_fit_cells_and_tables():
    prof = profile_graph(build_zoo_model("zoo:kws_dscnn"), [("stm32f746ng", "tflm-cmsis-nn"),
                                                           ("samd21g18", "tflm-cmsis-nn")])
    big, small = prof.targets
    assert fit_cell(big) == f"{big.latency_ms:,.2f} ms · fits" and big.fits
    assert not small.fits_ram and small.fits_flash and small.latency_ms > 1000  # KWS on a 32 KB Cortex-M0+
    ram = 100 * small.ram_bytes / small.sram_bytes
    assert fit_cell(small) == f"{small.latency_ms / 1000:.2f} s · no: RAM {ram:.0f} %"
    versions = [ver(17, "zoo", number=1), ver(18, "edit", {"via": "canvas"}, parent=17, number=2)]
    rows = tree_rows(versions, current=18, shown=17, described={18: "edited"}, accuracy={17: "untrained"},
                     fits={17: {"stm32f746ng": "1 ms · fits"}})
    what, figures = split_rows(rows)
    assert [r["version"] for r in what] == ["v1 ◀", "  └ v2 ●"]
    assert list(what[0]) == ["version", "action", "what changed", "accuracy"]
    assert [r[FIGURES] for r in figures] == ["v1 ◀", "v2 ●"] and figures[0]["stm32f746ng"] == "1 ms · fits"
    assert figures[1]["Weights (B)"] == 40 and "created" in figures[0]
