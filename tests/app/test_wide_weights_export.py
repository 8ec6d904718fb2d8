"""The int16 pre-widened weights choice (CodegenOptions.wide_weights) end to end: `tinystudio export
--wide-weights` and the Export page's job give a bit-exact library whose conv layers call ts_conv_s8_w16, and
the report states the extra flash (checked against the generated weight arrays) in its figures; the page offers
the choice."""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import store as db
from app.cli import main
from app.workflows import export as flow
from engine.codegen import CodegenOptions, generate_library
from engine.export.summary import figure_rows
from engine.importers.tflite_import import load_tflite

MLPERF = Path(__file__).resolve().parents[3] / "shared" / "data" / "mlperf-tiny"
needs_data = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")
PAGES = Path(__file__).resolve().parents[2] / "pages"


def _extra_bytes(weights_c: str, int8_lib) -> int:
    """int32 weight words of the wide library minus the int8 weight bytes of the plain one, from the C text."""
    wide = sum(int(n) for n in re.findall(r"^const int32_t \w+_l\d+_w\[(\d+)\] = ", weights_c, re.M)) * 4
    layers = [L for L in int8_lib.layers if L["kernel"] == "ts_conv_s8"]
    narrow = re.findall(r"^const int8_t (\w+)_l(\d+)_w\[(\d+)\] = ", int8_lib.files[f"{int8_lib.name}_weights.c"],
                        re.M)
    conv_idx = {L["index"] for L in layers}
    return wide - sum(int(n) for _, i, n in narrow if int(i) in conv_idx)


@needs_data
def test_cli_wide_weights_bit_exact_and_reports_flash(tmp_path, capsys):
    out = tmp_path / "kws.zip"
    rc = main(["export", str(MLPERF / "kws_ref_model.tflite"), "--mcu", "stm32l4r5zi", "--out", str(out),
               "--verify", "host", "--inputs", "3", "--wide-weights", "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    rep = json.loads(cap.out)
    assert rep["verify"]["bit_exact"] is True and rep["verify"]["inputs"] == 4
    assert {L["kernel"] for L in rep["layers"] if L["op"] == "Conv"} >= {"ts_conv_s8_w16"}
    g = load_tflite(str(MLPERF / "kws_ref_model.tflite"))
    plain = generate_library(g, "kws_ref_model")
    with zipfile.ZipFile(out) as z:
        name = next(n for n in z.namelist() if n.endswith("kws_ref_model_weights.c"))
        weights_c = z.read(name).decode()
    extra = _extra_bytes(weights_c, plain)
    assert extra > 0 and rep["wide_weights"] == {"enabled": True, "extra_flash_bytes": extra}
    assert rep["library"]["weights_bytes"] == plain.weights_bytes + extra
    rows = {r["figure"]: r["value"] for r in figure_rows(rep)}
    assert rows["Pre-widened weights"] == f"+{extra:,} B flash"
    # without the flag: int8 weights, and the report says the choice was off
    rc = main(["export", str(MLPERF / "kws_ref_model.tflite"), "--mcu", "stm32l4r5zi", "--out",
               str(tmp_path / "k8.zip"), "--verify", "none", "--json"])
    rep8 = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep8["wide_weights"] == {"enabled": False, "extra_flash_bytes": 0}
    assert "ts_conv_s8_w16" not in {L["kernel"] for L in rep8["layers"]}
    assert "Pre-widened weights" not in {r["figure"] for r in figure_rows(rep8)}


def test_wide_weights_flash_of_the_generator_is_the_arrays():
    g = load_tflite(str(Path(__file__).resolve().parents[1] / "data" / "models" / "mlcommons-tiny"
                        / "model_ToyCar_quant_fullint_micro.tflite"))
    lib = generate_library(g, "toy", options=CodegenOptions(wide_weights=True))
    assert "wide_weights_extra_bytes" in lib.stamp  # an FC-only model: no conv weights to widen
    assert lib.stamp["wide_weights_extra_bytes"] == 0
    assert "wide_weights_extra_bytes" not in generate_library(g, "toy").stamp


@needs_data
def test_export_page_offers_wide_weights_and_its_job_uses_them(tmp_path):
    from app.state import DB_ENV, get_store

    old = os.environ.get(DB_ENV)
    os.environ[DB_ENV] = str(tmp_path / "studio.duckdb")
    st.cache_resource.clear()
    try:
        store = get_store()
        g = load_tflite(str(MLPERF / "kws_ref_model.tflite"))
        s = db.create_session(store, "kws", g, model="kws_ref_model.tflite", action="import")
        v = db.current_version(store, s.id)
        work = flow.export_job(lambda vid: db.get_graph(store, vid), lambda: store, v.id, "stm32l4r5zi", "host", 2,
                               None, "kws", None, wide_weights=True)
        done = work(lambda f, m="": None)
        rec = db.get_export(store, done["export_id"])
        assert rec.report["wide_weights"]["enabled"] and rec.report["wide_weights"]["extra_flash_bytes"] > 0
        assert rec.report["verify"]["bit_exact"]
        at = AppTest.from_file(str(PAGES / "export.py"), default_timeout=180)
        at.session_state["session_id"] = s.id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Pre-widened int16 conv weights" in c.label for c in at.checkbox)
        cells = [str(x) for t in at.table for x in t.value.to_numpy().ravel()]
        assert "Pre-widened weights" in cells, cells
    finally:
        st.cache_resource.clear()
        if old is None:
            os.environ.pop(DB_ENV, None)
        else:
            os.environ[DB_ENV] = old
