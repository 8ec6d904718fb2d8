"""Export: C library + firmware bundle for a target MCU, built and verified in the background."""
from __future__ import annotations

import streamlit as st

import store as db
from app.workflows import export as flow
from app import widgets
from app.jobs import job_panel, submit
from app.labels import web_message
from app.state import get_store, graph_of, require_current, session_caption
from engine.export.pipeline import c_name
from engine.export.summary import figure_rows
from hwmodels.mcu import load_mcus

st.title("Export")
s, v, graph = require_current()
session_caption(s, v)
store = get_store()
mcus = load_mcus()
ids = list(mcus)
# The MCU is chosen outside the form: the verifications offered depend on it.
if st.session_state.get("export_mcu") not in mcus:
    chosen = [m for m in st.session_state.get("chosen_mcus") or [] if m in mcus]
    st.session_state["export_mcu"] = chosen[0] if chosen else "stm32l4r5zi"
mcu = st.selectbox("Target MCU", ids, key="export_mcu",
                   format_func=lambda m: f"{m} ({mcus[m].core}, {mcus[m].clock_mhz:g} MHz)")
modes, unavailable = flow.verify_choices(mcus[mcu])
for mode, why in unavailable.items():
    st.caption(f"{flow.VERIFY_LABELS[mode].split(' (')[0]} verification is not offered for {mcu}: {why}")
schedule = db.version_schedule(store, v.id)
if schedule:
    st.caption(f"Schedule saved with this version: **{schedule['schedule'].get('kind', '?')}** "
               f"({web_message(str(schedule['schedule'].get('why', '')))}); the C runs it at the planner's offsets "
               "and is verified against the layer-by-layer int8 reference. Change it on the Profile page.")
else:
    st.caption("Schedule: layer by layer (pick another on the Profile page and save it with the version).")
if flow.measure_note(mcus[mcu]):
    st.caption(f"Flash and RAM will be estimated, not measured: {flow.measure_note(mcus[mcu])}")
with st.form("export_form"):
    c1, c2, c3 = st.columns(3)
    verify = c1.selectbox("Verify", modes, format_func=lambda m: flow.VERIFY_LABELS[m],
                          help="host: gcc build, outputs compared byte for byte with the int8 reference; "
                               "QEMU: cross-compiled and run on an emulated Cortex-M core")
    n_inputs = c2.number_input("Random test inputs", min_value=0, max_value=200, value=10)
    name = c3.text_input("Library name", value=s.name, max_chars=64,
                         help="names the bundle, the C library and its functions (made a C identifier)")
    calib = st.file_uploader("Calibration data for float models (.npz with one array per input; optional: by "
                             "default the built-in data set the version was trained on)",
                             type=["npz"])
    wide = st.checkbox("Pre-widened int16 conv weights (speed for flash)", value=False,
                       help="conv weights stored as int16: fewer instructions per MAC on Cortex-M4/M7/M33 DSP kernels "
                            "for about twice their flash; the report shows the extra bytes")
    training = st.text_input("On-device training (optional)", value="", max_chars=40,
                             help="also export <name>_train_step, an SGD step on the device, for: all, last:K (the "
                                  "last K weighted layers), bias, or sparse:BYTES (probes on keywords); fully connected "
                                  "layers, convs and depthwise convs, checked against PyTorch")
    go = st.form_submit_button("Build and verify", type="primary")

if go:
    with widgets.user_errors():
        calibration = flow.calibration_npz(calib.getvalue(), calib.name) if calib is not None else None
        flow.check_training(training)
    st.caption(f"library name: `{c_name(name or s.name)}`")
    work = flow.export_job(graph_of, get_store, v.id, mcu, verify, int(n_inputs), calibration, name or s.name,
                           flow.version_dataset(store, v.id), schedule, wide_weights=wide,
                           training=training.strip() or None)
    submit(s.id, "export", {"mcu": mcu, "verify": verify, "version": v.id}, work)

job_panel(s.id, kind="export")

exports = db.list_exports(store, session_id=s.id)
if exports:
    latest = exports[0]
    data = db.export_bundle(store, latest.id)
    if data:  # the newest bundle, reachable at the top whatever its report holds
        st.download_button(f"Download bundle ({latest.mcu})", data=data,
                           file_name=flow.bundle_filename(latest.report, latest.mcu), key="dl_latest",
                           type="primary")
    st.subheader("Bundles of this session")
    vn = {x.id: x.label for x in db.list_versions(store, s.id)}  # v1, v2, ...: exports of this session's versions
    for e in exports[:10]:
        with st.expander(f"#{e.id} · {vn.get(e.version_id, e.version_id)} · {e.mcu} · {str(e.created)[:19].replace('T', ' ')}",
                         expanded=e is latest):
            try:
                rep = e.report if isinstance(e.report, dict) else {}
                rows = figure_rows(rep)
                tiles = {r["figure"]: r for r in rows}
                c = st.columns(4)
                for col, key in zip(c, ("Verification", "Tensor arena", "Flash (measured)", "RAM (measured)")):
                    value = tiles[key]["value"]
                    short = value.split(" on ")[0] if key == "Verification" else value  # details in the table
                    col.metric(key, short, help=f"{value}: {tiles[key]['how']}")
                if flow.training_line(rep):
                    st.caption(flow.training_line(rep))
                if tiles["Flash (measured)"]["value"] == "not measured":
                    st.info(f"Flash and RAM {tiles['Flash (measured)']['how']}", icon=":material/info:")
                st.table([{"figure": r["figure"], "value": r["value"], "how it was obtained": r["how"]}
                          for r in rows])
                for warning in rep.get("warnings") or ():
                    st.warning(web_message(str(warning)), icon=":material/warning:")
                if e is not latest:
                    blob = db.export_bundle(store, e.id)
                    if blob:
                        st.download_button("Download bundle", data=blob,
                                           file_name=flow.bundle_filename(rep, e.mcu), key=f"dl_{e.id}")
                st.caption("The whole report (also in the bundle as JSON):")
                st.json(rep, expanded=False)
            except Exception as err:  # an old or damaged stored report must not break the page
                st.warning(f"The report of export #{e.id} cannot be shown ({type(err).__name__}: {err}); "
                           "its bundle can still be downloaded.")
