"""Train on device: what to train, the SRAM budget, the memory timeline of forward + backward, the sparse
planner's predicted gain, and POET's recompute/page plan under a tighter budget."""
from __future__ import annotations

import streamlit as st

from app import widgets
from app.state import require_current, session_caption
from app.units import fmt_bytes
from app.workflows import ondevice as od
from engine.data import list_datasets
from hwmodels.mcu import load_mcus

st.title("Train on device")
s, v, graph = require_current()
session_caption(s, v)
mcus = list(load_mcus())
c = st.columns(4)
kind = c[0].selectbox("What to train", list(od.SPEC_KINDS), format_func=od.SPEC_KINDS.get, key="odt_kind")
k = c[1].number_input("K (last layers)", 1, 500, 2, key="odt_k", disabled=kind != "last")
budget_kb = c[2].number_input("SRAM budget (KB)", 1.0, 65536.0, 256.0, key="odt_budget")
mcu = c[3].selectbox("MCU", mcus, index=mcus.index("stm32f746ng") if "stm32f746ng" in mcus else 0, key="odt_mcu")
spec = od.spec_text(kind, k, budget_kb)
sparse = None
with widgets.user_errors():
    if kind == "sparse":
        names = [d["name"] for d in list_datasets()]
        data = st.selectbox("Data set for the fine-tuning probes", names,
                            index=names.index(od.DEFAULT_DATA) if od.DEFAULT_DATA in names else 0, key="odt_data")
        run_key = ("odt_sparse", v.id, int(budget_kb * 1024), mcu, data)  # kept across reruns of this page
        if st.button("Plan the sparse update", key="odt_plan"):
            with st.spinner("Probing each layer's contribution...", show_time=True):
                st.session_state["odt_sparse"] = (run_key, od.sparse_report(graph, int(budget_kb * 1024), mcu, data))
        done = st.session_state.get("odt_sparse")
        if done is None or done[0] != run_key:
            st.info("The planner fine-tunes a dozen short probes (about a minute); press the button to run it.")
            st.stop()
        sparse, prof = done[1]
    else:
        prof = od.training_report(graph, spec, [mcu])
t = prof.targets[0]
st.caption(f"`tinystudio profile MODEL --training {spec} --mcu {mcu}` · {prof.precision_note}")
m = st.columns(5)
m[0].metric("Peak training SRAM", fmt_bytes(prof.peak_sram_bytes),
            help=f"arena {prof.arena_bytes:,} B ({prof.planner}) + weights in RAM {prof.ram_weight_bytes:,} B + "
                 f"optimizer {prof.optimizer_bytes:,} B + fixed {prof.fixed_bytes:,} B: the exported C's RAM")
m[1].metric("Inference arena", fmt_bytes(prof.inference_arena_bytes))
m[2].metric("Flash", fmt_bytes(t["flash_bytes"]))
m[3].metric("Time per step", f"{t['step_ms']:.1f} ms", help=f"forward {t['forward_ms']:.1f} ms, backward "
            f"{t['backward_ms']:.1f} ms; {t['energy_uj']:.0f} uJ")
m[4].metric("Fits " + mcu, "yes" if t["fits"] else "no")
if prof.peak_sram_bytes > budget_kb * 1024:
    st.warning(f"Over the {budget_kb:g} KB budget by {fmt_bytes(prof.peak_sram_bytes - budget_kb * 1024)}.")
if sparse is not None:
    st.metric("Predicted accuracy gain", f"{sparse.predicted_gain:+.1%}", help=od.sparse_summary(sparse))
    st.markdown(f"**Sparse update** {od.sparse_summary(sparse)}; updates "
                f"{', '.join(f'{n} ({sparse.plan.fraction(n):g})' for n in sparse.plan.layers)}")
    st.dataframe(od.probe_rows(sparse), hide_index=True, key="odt_probes")
st.plotly_chart(od.timeline_figure(prof, int(budget_kb * 1024)), key="odt_timeline")
st.dataframe(od.layer_rows(prof), hide_index=True, key="odt_layers")

st.subheader("Recompute or page out (POET)")
pb = st.number_input("Budget for the step (KB)", 1.0, 65536.0, float(round(prof.peak_sram_bytes * 0.85 / 1024)),
                     key=f"odt_poet_budget_{spec}")  # a fresh default per training set
obj = st.segmented_control("Minimize", ["energy", "time"], default="energy", key="odt_poet_obj") or "energy"
with widgets.user_errors():
    plan, verified = od.poet_report(graph, prof, int(pb * 1024), obj)
if plan.feasible:
    st.success(f"Feasible: peak {fmt_bytes(plan.peak_sram_bytes)}, +{plan.extra_ms:.2f} ms, "
               f"+{plan.extra_uj:.0f} uJ per step; verified in the reference: {verified}")
else:
    st.error(f"No plan fits {pb:g} KB ({plan.status.split('(')[0].strip()}).")
st.dataframe([{"activation": a, "choice": c} for a, c in plan.choice.items()], hide_index=True, key="odt_poet")
