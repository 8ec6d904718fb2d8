"""Profile: the fit answer per MCU at a glance, per-layer charts, the memory timeline, as deployed or float32."""
from __future__ import annotations

import contextlib

import streamlit as st

import store as db
from app import charts, widgets
from app.workflows.profile import (PRECISION_LABELS, SCHEDULE_LABELS, page_precisions, profile_targets, schedule_lines,
                                   schedule_query, schedule_record)
from app.state import get_store, profile_of, require_current, session_caption
from app.units import fmt_bytes, fmt_count
from app.labels import web_message
from engine.errors import TinyStudioError
from engine.memory.schedule import ScheduleError
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
record = db.version_schedule(get_store(), v.id)
sc = st.columns([4, 2, 2], vertical_alignment="bottom")
kind = sc[0].segmented_control(
    "Schedule", list(SCHEDULE_LABELS), default=(record or {}).get("requested", "layer"), key=f"schedule_{v.id}",
    format_func=SCHEDULE_LABELS.get, disabled=precision == "float32",
    help="How the layers run on the MCU: layer by layer (TFLM), in-place depthwise, a patch-based first stage "
         "(MCUNetV2), fused inverted-residual bands, or auto: the smallest arena within the MAC-overhead limit "
         "(per MCU: when layer by layer already fits the smallest SRAM picked, no MACs are recomputed). "
         "Schedules plan the deployed int8 graph.") or "layer"
pct = sc[1].number_input("Max MAC overhead (%)", min_value=0.0, max_value=100.0, step=1.0, key=f"overhead_{v.id}",
                         value=round(100 * (record or {}).get("max_mac_overhead", 0.10), 2),
                         disabled=precision == "float32" or kind in ("layer", "inplace"))
if precision == "float32":
    kind = "layer"
with widgets.user_errors():
    targets = tuple(profile_targets(mcu_ids, runtime))
    query = schedule_query(record, kind, pct / 100)
    try:
        with (st.spinner("Quantizing the version as the export would (once per version) and planning the "
                         "schedule...", show_time=True)
              if precision == "int8" or kind != "layer" else contextlib.nullcontext()):
            prof = profile_of(v.id, targets, precision, query, pct / 100)
    except ScheduleError as e:  # the kind does not apply to this graph (no depthwise, no patch stage ...)
        st.warning(f"{web_message(str(e))}. Showing layer by layer.", icon=":material/warning:")
        kind = "layer"
        prof = profile_of(v.id, targets, precision)
    except TinyStudioError as e:  # an op without an int8 kernel: say why, show the float figures
        if precision != "int8":
            raise
        why = str(e).split(" (int8 ops:")[0]  # the list of int8 ops is long; the CLI prints it
        st.warning(f"{why}. Showing the float32 figures.", icon=":material/warning:")
        prof = profile_of(v.id, targets, "as-is")
st.caption(f"Figures of **{prof.precision}**: {prof.precision_note}.")
wanted = schedule_record(prof, kind, pct / 100)
saved = record is not None and record == wanted
if sc[2].button("Saved with the version" if saved else "Save with the version", disabled=saved or kind == "layer"
                and record is None, key="save_schedule", help="The schedule becomes part of the version (a new "
                "version, action 'schedule'); the Export page generates C that runs it."):
    with widgets.user_errors():
        db.set_schedule(get_store(), s.id, v.id, wanted)
    st.rerun()
if not prof.plan.schedule.is_layer or prof.plan.schedule.why.startswith("auto"):
    st.info("  \n".join(schedule_lines(prof)), icon=":material/memory:")
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
arena_delta = None
if not prof.plan.schedule.is_layer:  # before/after: the scheduled arena against the layer-by-layer bound
    arena_delta = f"{tot['activation_peak_bytes'] - tot['layer_lower_bound_bytes']:+,} B vs layer by layer"
c[3].metric("Activation arena", fmt_bytes(tot["activation_peak_bytes"]), delta=arena_delta, delta_color="inverse",
            help=f"{tot['activation_peak_bytes']:,} B placed by the {tot['planner']} planner; layer-by-layer "
                 f"lower bound {tot['layer_lower_bound_bytes']:,} B; schedule {tot['schedule']}, MACs "
                 f"{tot['mac_overhead'] * 100:+.2f} %")
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
