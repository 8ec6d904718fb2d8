"""Profile: per-layer charts, the memory timeline, and fit on several MCUs side by side."""
from __future__ import annotations

import streamlit as st

import store as db
from app import charts, widgets
from app.cli import profile_targets
from app.state import get_store, profile_of, require_current, session_caption
from hwmodels.mcu import load_mcus

st.title("Profile")
s, v, graph = require_current()
session_caption(s, v)
mcu_ids, runtime = widgets.mcu_picker()
with widgets.user_errors():
    targets = tuple(profile_targets(mcu_ids, runtime))
    prof = profile_of(v.id, targets)
# Keep each target's per-layer profile with the version (History compares and exports read them).
missing = [t for t in targets if db.get_profile(get_store(), v.id, *t) is None]
if missing:
    for t, doc in db.split_targets(prof.to_json()).items():
        if t in missing:
            db.save_profile(get_store(), v.id, t[0], t[1], doc)

tot = prof.totals()
c = st.columns(5)
weights = tot["weight_bytes"] + tot["quant_bytes"]
c[0].metric("MACs", widgets.short_count(tot["macs"]), help=f"{tot['macs']:,} multiply-accumulates per inference")
c[1].metric("Parameters", widgets.short_count(tot["params"]), help=f"{tot['params']:,}")
c[2].metric("Weights (flash)", widgets.short_bytes(weights), help=f"{weights:,} B")
c[3].metric("Activation arena", widgets.short_bytes(tot["activation_peak_bytes"]),
            help=f"{tot['activation_peak_bytes']:,} B placed by the {tot['planner']} planner; layer-by-layer "
                 f"lower bound {tot['activation_lower_bound_bytes']:,} B")
c[4].metric("Layers", tot["layers"])

if prof.targets:
    st.subheader("Fit on the chosen MCUs (estimates)")
    whole = st.column_config.NumberColumn(format="localized")
    st.dataframe(charts.fit_rows(prof), hide_index=True, width="stretch",
                 column_config={k: whole for k in ("RAM B (est.)", "arena B", "SRAM B", "flash B (est.)", "flash B")})
else:
    st.info("Pick MCUs above for latency, energy and fit estimates.")

metric = st.radio("Per-layer chart", [*charts.METRICS, "latency (ms, estimate)"] if prof.targets else list(charts.METRICS),
                  horizontal=True, key="metric")
event = st.plotly_chart(charts.per_layer_figure(prof, metric), width="stretch", on_select="rerun",
                        key="layer_chart")
mcus = load_mcus()
st.plotly_chart(charts.memory_timeline(prof, {t.mcu: mcus[t.mcu].sram_bytes for t in prof.targets}),
                width="stretch", key="memory_chart")

points = (event.selection.points if event and event.selection else []) or []
labels = charts.layer_labels(prof)
if not labels:  # a blank canvas (input -> output): no layer to detail yet
    st.stop()
default = labels.index(points[0]["x"]) if points and points[0].get("x") in labels else 0
step = st.selectbox("Layer details (or click a bar)", range(len(labels)), index=default,
                    format_func=lambda i: labels[i], key=f"layer_pick_{default}")
props, estimates = charts.layer_detail_tables(prof, step)
left, right = st.columns([2, 3])
left.dataframe(props, hide_index=True, width="stretch", height="content")
if estimates:
    right.dataframe(estimates, hide_index=True, width="stretch",
                    column_config={"cycles": st.column_config.NumberColumn(format="localized")})
