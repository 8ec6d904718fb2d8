"""Export: C library + firmware bundle for a target MCU, built and verified in the background."""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

import store as db
from app import widgets
from app.jobs import job_panel, submit
from app.labels import web_message
from app.state import get_store, graph_of, require_current, session_caption
from hwmodels.mcu import load_mcus

STEPS = ("quantizing", "generating C", "measuring", "verifying", "writing the bundle")

st.title("Export")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
mcus = load_mcus()
with st.form("export_form"):
    c1, c2, c3 = st.columns(3)
    mcu = c1.selectbox("Target MCU", list(mcus), index=list(mcus).index("stm32l4r5zi"),
                       format_func=lambda m: f"{m} ({mcus[m].core}, {mcus[m].clock_mhz:g} MHz)")
    verify = c2.selectbox("Verify", ["host", "qemu", "none"],
                          help="host: gcc build, outputs compared byte for byte with the int8 reference; "
                               "qemu: cross-compiled and run on an emulated Cortex-M4/M7/M55")
    n_inputs = c3.number_input("Random test inputs", min_value=0, max_value=200, value=10)
    calib = st.file_uploader("Calibration data for float models (.npz with one array per input, optional)",
                             type=["npz"])
    go = st.form_submit_button("Build and verify", type="primary")

if go:
    with widgets.user_errors():
        calibration = widgets.load_calibration(calib.getvalue(), calib.name) if calib is not None else None
    version_id, session_id = v.id, s.id

    def work(progress):
        from engine.export.pipeline import export_model

        seen = []

        def log(message: str) -> None:
            seen.append(message)
            done = sum(any(message.startswith(step) for step in STEPS[: i + 1]) for i in range(len(STEPS)))
            progress(min(0.95, 0.1 + 0.85 * done / len(STEPS)), message)

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "bundle.zip"
            res = export_model(graph_of(version_id), mcu, out, verify=verify, n_inputs=int(n_inputs),
                               calibration=calibration, log=log)
            rec = db.add_export(store, version_id, mcu, res.report, bundle=out.read_bytes(),
                                options={"verify": verify, "inputs": int(n_inputs)})
        return {"export_id": rec.id, "warnings": res.warnings}

    submit(session_id, "export", {"mcu": mcu, "verify": verify, "version": version_id}, work)

job_panel(s.id, kind="export")

exports = db.list_exports(store, session_id=s.id)
if exports:
    st.subheader("Bundles of this session")
    vn = {x.id: x.label for x in db.list_versions(store, s.id)}  # v1, v2, ...: exports of this session's versions
    for e in exports[:10]:
        rep = e.report or {}
        ver = rep.get("verify") or {}
        meas = rep.get("measured") or {}
        est = rep.get("estimate") or {}
        with st.expander(f"#{e.id} · {vn[e.version_id]} · {e.mcu} · {e.created[:19].replace('T', ' ')}",
                         expanded=e is exports[0]):
            c = st.columns(4)
            c[0].metric("Verification", "bit-exact" if ver.get("bit_exact") else (ver.get("mode") or "none"),
                        help=f"{ver.get('inputs', 0)} inputs compared byte for byte")
            c[1].metric("Arena", f"{rep.get('arena_bytes', 0):,} B")
            c[2].metric("Flash (measured)", f"{meas.get('flash_bytes', 0):,} B" if meas else "—",
                        help=f"estimate {est.get('flash_bytes', 0):,} B")
            c[3].metric("RAM (measured)", f"{meas.get('ram_bytes', 0):,} B" if meas else "—",
                        help=f"estimate {est.get('ram_bytes', 0):,} B")
            if ver.get("instructions_per_mac"):
                st.caption(f"QEMU: {ver['instructions_per_inference']:,} instructions per inference, "
                           f"{ver['instructions_per_mac']:.2f} per MAC (measured)")
            for warning in rep.get("warnings") or ():
                st.warning(web_message(warning), icon=":material/warning:")
            data = db.export_bundle(store, e.id)
            if data:
                st.download_button("Download bundle", data=data, file_name=f"{widgets.safe_filename(s.name)}_{e.mcu}.zip",
                                   key=f"dl_{e.id}")
            st.caption("The whole report (also in the bundle as JSON):")
            st.json(rep, expanded=False)
