"""Profile: the fit answer per MCU at a glance, per-layer charts, the memory timeline, as deployed or float32."""
from __future__ import annotations

import contextlib

import streamlit as st

import store as db
from app import charts, widgets
from app.workflows.profile import PRECISION_LABELS, page_precisions, profile_targets
from app.state import get_store, profile_of, require_current, session_caption
from app.units import fmt_bytes, fmt_count
from engine.errors import TinyStudioError
from hwmodels.mcu import load_mcus

st.title("Profile")
s, v, graph = require_current()
session_caption(s, v)
mcu_ids, runtime = widgets.mcu_picker()
choices = page_precisions(graph)
if len(choices) > 1:
    precision = st.segmented_control(
        "Precision", choices, default=choices[0], format_func=PRECISION_LABELS.get, key="precision",
        help="As deployed: the graph the export generates C from — BatchNormalization folded into the convolutions, "
             "activations fused, int8 weights and activations. Float32: this version as it is.") or choices[0]
else:
    precision = choices[0]
with widgets.user_errors():
    targets = tuple(profile_targets(mcu_ids, runtime))
    try:
        with (st.spinner("Quantizing the version as the export would (once per version)...", show_time=True)
              if precision == "int8" else contextlib.nullcontext()):
            prof = profile_of(v.id, targets, precision)
    except TinyStudioError as e:  # an op without an int8 kernel: say why, show the float figures
        if precision != "int8":
            raise
        why = str(e).split(" (int8 ops:")[0]  # the list of int8 ops is long; the CLI prints it
        st.warning(f"{why}. Showing the float32 figures.", icon=":material/warning:")
        prof = profile_of(v.id, targets, "as-is")
st.caption(f"Figures of **{prof.precision}**: {prof.precision_note}.")
# Keep each target's per-layer profile of the version as it is (History compares and exports read them).
missing = [t for t in targets if db.get_profile(get_store(), v.id, *t) is None]
if missing:
    stored = prof if prof.precision_requested == "as-is" else profile_of(v.id, targets, "as-is")
    for t, doc in db.split_targets(stored.to_json()).items():
        if t in missing:
            db.save_profile(get_store(), v.id, t[0], t[1], doc)

if prof.targets:
    st.subheader(f"Does it fit? ({prof.precision}, estimates)")
    st.markdown(f"**{charts.fit_headline(prof)}**")
    widgets.fit_cards(prof)
else:
    st.info("Pick MCUs above for latency, energy and fit estimates.")

tot = prof.totals()
c = st.columns(5)
weights = tot["weight_bytes"] + tot["quant_bytes"]
c[0].metric("MACs", fmt_count(tot["macs"]), help=f"{tot['macs']:,} multiply-accumulates per inference")
c[1].metric("Parameters", fmt_count(tot["params"]), help=f"{tot['params']:,}")
c[2].metric("Weights (flash)", fmt_bytes(weights), help=f"{weights:,} B: weights and biases "
            f"{tot['weight_bytes']:,} B + quantization data {tot['quant_bytes']:,} B")
c[3].metric("Activation arena", fmt_bytes(tot["activation_peak_bytes"]),
            help=f"{tot['activation_peak_bytes']:,} B placed by the {tot['planner']} planner; layer-by-layer "
                 f"lower bound {tot['activation_lower_bound_bytes']:,} B")
c[4].metric("Layers", tot["layers"])
if tot.get("state_bytes"):
    st.caption(f"State kept between invocations ({', '.join(prof.state_ops)}): {fmt_bytes(tot['state_bytes'])} of "
               "RAM outside the arena, "
               "counted in the RAM estimates.")

if prof.targets:
    st.dataframe(charts.fit_rows(prof), hide_index=True, width="stretch",
                 column_config={"verdict": st.column_config.TextColumn(width="medium")})  # MCU ids are short:
    # sized to their content, so the runtime column is not cut off at the right edge

if not prof.layers:  # a blank canvas (input -> output): empty charts with made-up axes would say nothing
    st.info("No layers yet: add some on the Design page to see per-layer charts and the memory timeline.",
            icon=":material/info:")
    st.stop()
metric = st.radio("Per-layer chart", [*charts.METRICS, "latency (ms, estimate)"] if prof.targets else list(charts.METRICS),
                  horizontal=True, key="metric")
event = st.plotly_chart(charts.per_layer_figure(prof, metric), width="stretch", on_select="rerun",
                        key="layer_chart")
mcus = load_mcus()
st.plotly_chart(charts.memory_timeline(prof, {t.mcu: mcus[t.mcu].sram_bytes for t in prof.targets}),
                width="stretch", key="memory_chart")

points = (event.selection.points if event and event.selection else []) or []
labels = charts.layer_labels(prof)
default = labels.index(points[0]["x"]) if points and points[0].get("x") in labels else 0
step = st.selectbox("Layer details (or click a bar)", range(len(labels)), index=default,
                    format_func=lambda i: labels[i], key=f"layer_pick_{default}")
props, estimates = charts.layer_detail_tables(prof, step)
left, right = st.columns([2, 3])
left.dataframe(props, hide_index=True, width="stretch", height="content")
if estimates:
    right.dataframe(estimates, hide_index=True, width="stretch",
                    column_config={"cycles": st.column_config.NumberColumn(format="localized")})
