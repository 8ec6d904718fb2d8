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
c[0].metric("MACs", f"{tot['macs']:,}")
c[1].metric("Parameters", f"{tot['params']:,}")
c[2].metric("Weights (flash)", f"{(tot['weight_bytes'] + tot['quant_bytes']) / 1024:,.1f} KB")
c[3].metric("Activation arena", f"{tot['activation_peak_bytes'] / 1024:,.1f} KB",
            help=f"placed by the {tot['planner']} planner; layer-by-layer lower bound "
                 f"{tot['activation_lower_bound_bytes']:,} B")
c[4].metric("Layers", tot["layers"])

if prof.targets:
    st.subheader("Fit on the chosen MCUs (estimates)")
    st.dataframe(charts.fit_rows(prof), hide_index=True, use_container_width=True)
else:
    st.info("Pick MCUs above for latency, energy and fit estimates.")

metric = st.radio("Per-layer chart", [*charts.METRICS, "latency (ms, estimate)"] if prof.targets else list(charts.METRICS),
                  horizontal=True, key="metric")
event = st.plotly_chart(charts.per_layer_figure(prof, metric), use_container_width=True, on_select="rerun",
                        key="layer_chart")
mcus = load_mcus()
st.plotly_chart(charts.memory_timeline(prof, {t.mcu: mcus[t.mcu].sram_bytes for t in prof.targets}),
                use_container_width=True, key="memory_chart")

points = (event.selection.points if event and event.selection else []) or []
labels = charts.layer_labels(prof)
default = labels.index(points[0]["x"]) if points and points[0].get("x") in labels else 0
step = st.selectbox("Layer details (or click a bar)", range(len(labels)), index=default,
                    format_func=lambda i: labels[i], key=f"layer_pick_{default}")
st.json(charts.layer_detail(prof, step), expanded=True)
