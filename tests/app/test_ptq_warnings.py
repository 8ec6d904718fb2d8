"""What PTQ clamped to make a model export (a collapsed calibration range widened, a dead ReLU) reaches the
user: `tinystudio compress --action quantize-int8` prints it, the action's report lists it under ptq.clamped,
and the Compress page shows it as a warning."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from app.cli import main
from engine.importers.tflite_import import load_tflite
from tests.engine.test_ptq_ranges import _collapsing_mlp

PAGES = Path(__file__).resolve().parents[2] / "pages"


@pytest.fixture()
def files(tmp_path):
    model = tmp_path / "collapse.tflite"
    model.write_bytes(_collapsing_mlp())
    rng = np.random.default_rng(0)
    data = tmp_path / "mlp.npz"
    np.savez(data, x=rng.normal(0, 1, (60, 8)).astype(np.float32), y=rng.integers(0, 6, 60))
    return model, data


def test_cli_prints_what_ptq_clamped(files, tmp_path, capsys):
    model, data = files
    rc = main(["compress", str(model), "--action", "quantize-int8", "--dataset", str(data),
               "--out", str(tmp_path / "q.tsgraph")])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("warning  ")]
    assert any("'t'" in ln and "widened" in ln for ln in lines), out
    assert any("'d'" in ln and "0 on every calibration sample" in ln for ln in lines), out


def test_compress_page_shows_what_ptq_clamped(files, tmp_path):
    from app.state import DB_ENV, get_store
    from app.workflows.compress import compress_version
    from app.workflows.files import write_model
    from engine.data import load_dataset

    model, data_path = files
    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "studio.duckdb")
    st.cache_resource.clear()
    try:
        store = get_store()
        g = load_tflite(str(model))
        s = db.create_session(store, "collapse", g, model="collapse.tflite", action="import")
        v = db.list_versions(store, s.id)[-1]
        # the result the Compress page's job stores (app.workflows.compress.compress_job, run in-process)
        out = compress_version(g, "quantize-int8", {}, load_dataset(str(data_path)))
        path = str(tmp_path / "candidate.tsgraph")
        write_model(out.result.graph, path)
        clamped = out.result.report["ptq"]["clamped"]
        assert any("'t'" in w for w in clamped) and any("'d'" in w for w in clamped), clamped
        job = db.create_job(store, s.id, "compress", {"action": "quantize-int8", "params": {}, "version": v.id})
        db.finish_job(store, job.id, {"candidate": path, "version": v.id, "dataset": out.provenance["dataset"],
                                      **out.to_json()})
        at = AppTest.from_file(str(PAGES / "compress.py"), default_timeout=180)
        at.session_state["session_id"] = s.id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        shown = [w.value for w in at.warning]
        assert any("'t'" in w and "widened" in w for w in shown), shown
        assert any("'d'" in w and "0 on every calibration sample" in w for w in shown), shown
    finally:
        st.cache_resource.clear()
        if old is None:
            os.environ.pop(DB_ENV, None)
        else:
            os.environ[DB_ENV] = old
