"""An int8 model with float32 edges (QUANTIZE first, DEQUANTIZE last: MLPerf Tiny's ToyCar file) exports from
`tinystudio export` and from the Export page's job, and the page shows the float API's verification."""
from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from app.cli import main
from app.workflows import export as flow
from engine.importers.tflite_import import load_tflite

TOYCAR = (Path(__file__).resolve().parents[1] / "data" / "models" / "mlcommons-tiny"
          / "model_ToyCar_quant_fullint_micro.tflite")
PAGES = Path(__file__).resolve().parents[2] / "pages"


def test_cli_exports_the_float_api(tmp_path, capsys):
    rc = main(["export", str(TOYCAR), "--mcu", "nrf52840", "--out", str(tmp_path / "toy.zip"), "--verify", "host",
               "--inputs", "3", "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    ver = json.loads(out.out)["verify"]
    assert ver["bit_exact"] and ver["float_api"]["bit_exact"] and ver["float_api"]["inputs"] == 3, ver


def test_export_page_builds_and_shows_the_float_api(tmp_path):
    from app.state import DB_ENV, get_store

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "studio.duckdb")
    st.cache_resource.clear()
    try:
        store = get_store()
        g = load_tflite(str(TOYCAR))
        s = db.create_session(store, "toycar", g, model=TOYCAR.name, action="import")
        v = db.current_version(store, s.id)
        # the page's job (pages/export.py submits it; run here in-process)
        work = flow.export_job(lambda vid: db.get_graph(store, vid), lambda: store, v.id, "nrf52840", "host", 3,
                               None, "toycar", None)
        done = work(lambda f, m="": None)
        rep = db.get_export(store, done["export_id"]).report
        assert rep["verify"]["float_api"]["bit_exact"], rep["verify"]
        at = AppTest.from_file(str(PAGES / "export.py"), default_timeout=180)
        at.session_state["session_id"] = s.id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        cells = [str(v) for t in at.table for v in t.value.to_numpy().ravel()]
        assert "Float API" in cells and "bit-exact on 3 float inputs" in cells, cells
    finally:
        st.cache_resource.clear()
        if old is None:
            os.environ.pop(DB_ENV, None)
        else:
            os.environ[DB_ENV] = old
