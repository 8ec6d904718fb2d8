"""Plotly figures for the Profile page: pure functions of a Profile (no streamlit), so they are testable.

    per_layer_figure(prof, metric)   bars per layer in execution order (one trace per MCU for latency)
    memory_timeline(prof, mcus)      live activation bytes per step, the peak marked, each MCU's SRAM as a line
    fit_rows(prof)                   the comparison table, one row per target
"""
from __future__ import annotations

import plotly.graph_objects as go

from engine.profile import Profile

METRICS = {
    "MACs": lambda lp: lp.record.macs,
    "weight bytes": lambda lp: lp.record.weight_bytes,
    "activation bytes (output)": lambda lp: lp.record.output_bytes,
    "live activation bytes": lambda lp: lp.live_bytes,
}


def _layout(fig: go.Figure, title: str, ytitle: str) -> go.Figure:
    fig.update_layout(title=title, height=340, margin=dict(l=50, r=20, t=50, b=40), xaxis_title="layer (execution order)",
                      yaxis_title=ytitle, legend=dict(orientation="h", y=1.12, x=1, xanchor="right"),
                      clickmode="event+select", template="plotly_white")
    return fig


def layer_labels(prof: Profile) -> list[str]:
    return [f"{lp.step}: {lp.record.name}" for lp in prof.layers]


def per_layer_figure(prof: Profile, metric: str) -> go.Figure:
    x = layer_labels(prof)
    ops = [lp.record.op for lp in prof.layers]
    if metric == "latency (ms, estimate)":
        fig = go.Figure([go.Bar(x=x, y=[_by_name(t)[lp.record.name].latency_ms for lp in prof.layers],
                                name=f"{t.mcu} ({t.runtime})",
                                customdata=ops, hovertemplate="%{x}<br>%{customdata}<br>%{y:.3f} ms<extra></extra>")
                         for t in prof.targets])
        fig.update_layout(barmode="group")
        return _layout(fig, "Estimated latency per layer", "ms (estimate)")
    values = [METRICS[metric](lp) for lp in prof.layers]
    fig = go.Figure(go.Bar(x=x, y=values, customdata=ops, marker_color="#4c78a8", name=metric,
                           hovertemplate="%{x}<br>%{customdata}<br>%{y:,}<extra></extra>"))
    return _layout(fig, f"{metric[:1].upper()}{metric[1:]} per layer", metric)  # keeps "MACs" as written


def memory_timeline(prof: Profile, sram: dict[str, int]) -> go.Figure:
    """Live activation bytes at each step of the execution order; the planner's arena and each MCU's SRAM."""
    x = layer_labels(prof)
    live = [lp.live_bytes for lp in prof.layers]
    fig = go.Figure(go.Scatter(x=x, y=live, mode="lines+markers", fill="tozeroy", name="live activations",
                               line=dict(color="#4c78a8"), hovertemplate="%{x}<br>%{y:,} B live<extra></extra>"))
    if live:
        peak = max(range(len(live)), key=live.__getitem__)
        fig.add_trace(go.Scatter(x=[x[peak]], y=[live[peak]], mode="markers+text", name="peak",
                                 marker=dict(color="#e45756", size=12), text=[f"peak {live[peak]:,} B"],
                                 textposition="top center", hoverinfo="skip"))
    arena = prof.plan.arena_bytes
    # Labelled below the line at the right: the peak's label sits above its marker, often on this line.
    fig.add_hline(y=arena, line_dash="dot", line_color="#54a24b",
                  annotation_text=f"planned arena {arena:,} B", annotation_position="bottom right")
    for mcu, size in sram.items():
        fig.add_hline(y=size, line_dash="dash", line_color="#b279a2",
                      annotation_text=f"{mcu} SRAM {size / 1024:g} KB", annotation_position="top right")
    return _layout(fig, "Memory timeline", "bytes")


def fit_rows(prof: Profile) -> list[dict]:
    rows = []
    for t in prof.targets:
        parts = dict(t.ram_parts)
        rows.append({
            "MCU": t.mcu, "runtime": t.runtime, "latency ms (est.)": round(t.latency_ms, 2),
            "energy µJ (est.)": round(t.energy_uj, 1), "RAM B (est.)": t.ram_bytes,
            "arena B": parts.get("arena", 0), "SRAM B": t.sram_bytes, "RAM use": f"{t.ram_use:.0%}",
            "flash B (est.)": t.flash_bytes, "flash B": t.flash_capacity_bytes, "flash use": f"{t.flash_use:.0%}",
            "fits": "yes" if t.fits else "no", "verdict": t.fit_message(),
        })
    return rows


def layer_detail(prof: Profile, step: int) -> dict:
    lp = prof.layers[step]
    d = lp.to_json()
    d.pop("estimates", None)
    ests = {}
    for t in prof.targets:
        le = _by_name(t)[lp.record.name]
        ests[f"{t.mcu} ({t.runtime})"] = {"latency_ms": round(le.latency_ms, 4), "cycles": le.cycles,
                                         "share": f"{le.share:.1%}", "scratch_bytes": le.scratch_bytes}
    d["estimates (per target)"] = ests
    return d


def layer_detail_tables(prof: Profile, step: int) -> tuple[list[dict], list[dict]]:
    """One layer as two small tables: its figures (property, value) and its estimate on each target."""
    d = layer_detail(prof, step)
    ests = d.pop("estimates (per target)")

    def shape(s) -> str:
        return "×".join(map(str, s))

    labels = {"input_shapes": "inputs", "output_shape": "output", "output_dtype": "output dtype", "macs": "MACs",
              "flops": "FLOPs", "live_bytes": "live activation bytes at this step", "step": "execution step"}
    props = []
    for k, v in d.items():
        if k == "input_shapes":
            v = ", ".join(shape(x) for x in v)
        elif k == "output_shape":
            v = shape(v)
        elif isinstance(v, dict):
            v = ", ".join(f"{kk}: {vv:,}" if isinstance(vv, int) else f"{kk}: {vv}" for kk, vv in v.items())
        elif isinstance(v, int):
            v = f"{v:,}"
        props.append({"property": labels.get(k, k.replace("_", " ")), "value": str(v)})
    rows = [{"target": t, "latency ms (est.)": e["latency_ms"], "cycles": e["cycles"], "share of latency": e["share"],
             "scratch B": e["scratch_bytes"]} for t, e in ests.items()]
    return props, rows


def _by_name(target) -> dict:
    """Estimates follow the estimator's order; the profile follows the planned order: join by layer name."""
    return {le.name: le for le in target.layers}
