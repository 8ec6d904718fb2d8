"""Plotly figures for the Profile page: pure functions of a Profile (no streamlit), so they are testable.

    per_layer_figure(prof, metric)   bars per layer in execution order (one trace per MCU for latency)
    memory_timeline(prof, mcus)      live activation bytes per step, the peak marked, each MCU's SRAM as a line
    fit_rows(prof)                   the comparison table, one row per target
    fit_summary(target)              what one fit card says: fits or not, by how much, what dominates
Every figure is written in human units (app.units); exact byte counts go into hovers and tooltips.
"""
from __future__ import annotations

import plotly.graph_objects as go

from app.units import fmt_bytes, fmt_ms, fmt_pct, fmt_uj
from engine.profile import Profile

# One colour per MCU, the same in the memory timeline and the latency chart (Plotly's default sequence
# without the blue of the live-activation area, the red of the peak and the green of the arena line).
MCU_COLOURS = ("#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#1f3b73")
SRAM_ZOOM = 3  # SRAM lines up to this many times the arena stay on the memory timeline's scale
RAM_PARTS = {"arena": "arena", "persistent": "runtime state", "scratch": "scratch",
             "io": "I/O buffers"}
FLASH_PARTS = {"weights": "weights", "code": "runtime code"}


def mcu_colour(i: int) -> str:
    return MCU_COLOURS[i % len(MCU_COLOURS)]

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
                                name=f"{t.mcu} ({t.runtime})", marker_color=mcu_colour(i),
                                customdata=[[op, fmt_ms(_by_name(t)[lp.record.name].latency_ms)]
                                            for op, lp in zip(ops, prof.layers)],
                                hovertemplate="%{x}<br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>")
                         for i, t in enumerate(prof.targets)])
        fig.update_layout(barmode="group")
        return _layout(fig, "Estimated latency per layer", "ms (estimate)")
    values = [METRICS[metric](lp) for lp in prof.layers]
    shown = [f"{v:,}" if metric == "MACs" else f"{fmt_bytes(v)} ({v:,} B)" for v in values]
    fig = go.Figure(go.Bar(x=x, y=values, customdata=list(zip(ops, shown)), marker_color="#4c78a8", name=metric,
                           hovertemplate="%{x}<br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>"))
    return _layout(fig, f"{metric[:1].upper()}{metric[1:]} per layer", metric)  # keeps "MACs" as written


def memory_timeline(prof: Profile, sram: dict[str, int]) -> go.Figure:
    """Live activation KB at each step of the execution order; the planner's arena and each MCU's SRAM as
    lines of their own colour, named in the legend (labels written on the lines overlap when two MCUs have
    about the same SRAM)."""
    x = layer_labels(prof)
    live = [lp.live_bytes for lp in prof.layers]
    kb = [v / 1024 for v in live]
    fig = go.Figure(go.Scatter(x=x, y=kb, mode="lines+markers", fill="tozeroy", name="live activations",
                               line=dict(color="#4c78a8"), customdata=[f"{fmt_bytes(v)} ({v:,} B)" for v in live],
                               hovertemplate="%{x}<br>%{customdata} live<extra></extra>"))
    if live:
        peak = max(range(len(live)), key=live.__getitem__)
        fig.add_trace(go.Scatter(x=[x[peak]], y=[kb[peak]], mode="markers", name=f"peak {fmt_bytes(live[peak])}",
                                 marker=dict(color="#e45756", size=12), hoverinfo="name"))
        # On a white box to the right of the marker, so the arena and SRAM lines never run through the text.
        fig.add_annotation(x=x[peak], y=kb[peak], text=f"peak {fmt_bytes(live[peak])}", showarrow=True,
                           arrowhead=0, ax=60, ay=-22, bgcolor="rgba(255,255,255,0.9)", bordercolor="#e45756",
                           font=dict(size=11, color="#e45756"))
    arena = prof.plan.arena_bytes
    ends = [x[0], x[-1]] if x else [0, 1]
    fig.add_trace(go.Scatter(x=ends, y=[arena / 1024] * 2, mode="lines", name=f"planned arena {fmt_bytes(arena)}",
                             line=dict(color="#54a24b", dash="dot", width=2), hoverinfo="name"))
    before = schedule_overlay(fig, prof, x)
    # SRAM far above the activations would flatten the curve: the axis stops above the arena and an SRAM line
    # more than SRAM_ZOOM times higher is named in the legend as off the scale.
    top = max([arena, before, *live]) if live else max(arena, before)
    on_scale = [size for size in sram.values() if size <= SRAM_ZOOM * top]
    for i, (mcu, size) in enumerate(sram.items()):
        off = "" if size in on_scale else f" (off the scale: {size / max(top, 1):.0f}× the arena)"
        fig.add_trace(go.Scatter(x=ends, y=[size / 1024] * 2, mode="lines", name=f"{mcu} SRAM {fmt_bytes(size)}{off}",
                                 line=dict(color=mcu_colour(i), dash="dash", width=2), hoverinfo="name"))
    title = "Memory timeline"
    if not prof.plan.schedule.is_layer:
        title += (f" — {prof.plan.schedule.kind} schedule: peak {fmt_bytes(arena)} (layer by layer "
                  f"{fmt_bytes(before)}), MACs {prof.mac_overhead * 100:+.1f} %")
    fig = _layout(fig, title, "KB")
    fig.update_yaxes(range=[0, max([top * 1.2, *(s * 1.05 for s in on_scale)]) / 1024])
    # The legend goes above the plot, under the title: one entry per line, however many MCUs, never over the
    # curve, and never over the layer names below the axis (rotated, their height depends on the graph).
    # The top margin holds the title and the legend's rows (about two entries a row).
    rows = -(-len(fig.data) // 2)
    fig.update_layout(height=380 + 20 * rows, legend=dict(orientation="h", y=1.02, x=0, xanchor="left",
                                                          yanchor="bottom"),
                      title=dict(yref="container", y=0.98, yanchor="top"),
                      margin=dict(l=50, r=20, t=45 + 20 * rows, b=40))
    fig.update_xaxes(showticklabels=len(x) <= 40)
    return fig


def schedule_overlay(fig: go.Figure, prof: Profile, x: list[str]) -> int:
    """What a schedule adds to the memory timeline: the patch stage and fused blocks shaded, the live bytes of
    each patch or band at its step (engine.memory plan.schedule_detail), and the layer-by-layer bound as the
    "before" line. Returns that bound (0 for the layer schedule, which adds nothing)."""
    plan, s = prof.plan, prof.plan.schedule
    if s.is_layer or not x:
        return 0
    step_of = {lp.record.name: i for i, lp in enumerate(prof.layers)}
    stage = "patch stage" + (" (output over its consumed input)" if s.patch is not None and s.patch.overlap else "")
    spans = [(stage, s.patch.nodes, "rgba(255,127,14,0.12)")] if s.patch is not None else []
    spans += [(f"fused block {i + 1}", b.nodes, "rgba(148,103,189,0.12)") for i, b in enumerate(s.fused)]
    for label, nodes, colour in spans:
        steps = [step_of[n] for n in nodes if n in step_of]
        if steps:
            fig.add_vrect(x0=min(steps) - 0.5, x1=max(steps) + 0.5, fillcolor=colour, line_width=0,
                          annotation_text=label, annotation_position="top left", layer="below")
    px, py, text = [], [], []
    for step, items in sorted(plan.schedule_detail.items()):
        if 0 <= step < len(x):
            for it in items:
                px.append(x[step])
                py.append(it.get("live_bytes", 0) / 1024)
                text.append(f"{it.get('label', '')}: {fmt_bytes(it.get('live_bytes', 0))} "
                            f"({it.get('live_bytes', 0):,} B)")
    if px:
        fig.add_trace(go.Scatter(x=px, y=py, mode="markers", name="per patch / band live", text=text,
                                 marker=dict(color="#ff7f0e", size=7, symbol="diamond"),
                                 hovertemplate="%{x}<br>%{text}<extra></extra>"))
    before = plan.layer_lower_bound_bytes
    ends = [x[0], x[-1]]
    fig.add_trace(go.Scatter(x=ends, y=[before / 1024] * 2, mode="lines",
                             name=f"layer by layer (before) {fmt_bytes(before)}",
                             line=dict(color="#888888", dash="dashdot", width=2), hoverinfo="name"))
    return before


def fit_summary(t) -> dict:
    """What one MCU's fit card says, in words and human units: the verdict, RAM and flash with their
    headroom (or overflow) in KB and % of the MCU's capacity and the part that dominates each, latency and
    energy."""
    def resource(need: int, have: int, parts: dict, names: dict) -> dict:
        margin = have - need
        top, top_bytes = max(parts.items(), key=lambda kv: kv[1]) if parts else ("", 0)
        return {"need": need, "have": have, "use": need / have if have else float("inf"), "fits": margin >= 0,
                "text": f"{fmt_bytes(need)} of {fmt_bytes(have)} ({fmt_pct(need / have if have else None)})",
                "margin": (f"{fmt_bytes(margin)} free ({fmt_pct(margin / have)})" if margin >= 0 else
                           f"over by {fmt_bytes(-margin)} ({fmt_pct(-margin / have)})") if have else "—",
                "dominant": f"{names.get(top, top)} {fmt_bytes(top_bytes)} "
                            f"({fmt_pct(top_bytes / need if need else 0, 0)})",
                "parts": ", ".join(f"{names.get(k, k)} {fmt_bytes(v)} ({v:,} B)" for k, v in parts.items() if v),
                # what it is made of, largest first, as shares: what dominates at a glance
                "shares": [(names.get(k, k), v / need) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                           if v and need]}

    ram = resource(t.ram_bytes, t.sram_bytes, dict(t.ram_parts), RAM_PARTS)
    flash = resource(t.flash_bytes, t.flash_capacity_bytes, dict(t.flash_parts), FLASH_PARTS)
    misses = [f"{what} {r['margin']}" for what, r in (("RAM", ram), ("flash", flash)) if not r["fits"]]
    verdict = "fits" if t.fits else "does not fit: " + ", ".join(misses)
    return {"mcu": t.mcu, "runtime": t.runtime, "fits": t.fits, "verdict": verdict, "ram": ram, "flash": flash,
            "latency": fmt_ms(t.latency_ms), "energy": fmt_uj(t.energy_uj), "calibrated": t.calibrated}


def fit_headline(prof: Profile) -> str:
    """One sentence over the cards: on which of the chosen MCUs the model fits."""
    ok = [t.mcu for t in prof.targets if t.fits]
    n = len(prof.targets)
    if not ok:
        return f"Fits on none of the {n} chosen MCUs." if n > 1 else f"Does not fit on {prof.targets[0].mcu}."
    if len(ok) == n:
        return f"Fits on all {n} chosen MCUs." if n > 1 else f"Fits on {ok[0]}."
    return f"Fits on {len(ok)} of {n} chosen MCUs: {', '.join(ok)}."


def fit_rows(prof: Profile) -> list[dict]:
    """The comparison table under the cards, one row per target; the verdict is short and comes second, the
    headroom (negative: overflow) of RAM and flash in their own columns, so nothing is cut off."""
    rows = []
    for t in prof.targets:
        f = fit_summary(t)
        misses = [w for w, r in (("RAM", f["ram"]), ("flash", f["flash"])) if not r["fits"]]
        rows.append({
            "MCU": t.mcu, "verdict": "fits" if t.fits else f"does not fit ({', '.join(misses)})",
            "RAM headroom": _headroom(t.sram_bytes - t.ram_bytes, t.sram_bytes),
            "flash headroom": _headroom(t.flash_capacity_bytes - t.flash_bytes, t.flash_capacity_bytes),
            "latency (est.)": f["latency"], "energy (est.)": f["energy"], "runtime": t.runtime,
            "RAM (est.)": fmt_bytes(t.ram_bytes), "SRAM": fmt_bytes(t.sram_bytes),
            "arena": fmt_bytes(dict(t.ram_parts).get("arena", 0)), "flash (est.)": fmt_bytes(t.flash_bytes),
            "flash": fmt_bytes(t.flash_capacity_bytes),
        })
    return rows


def _headroom(margin: int, capacity: int) -> str:
    sign = "+" if margin >= 0 else "−"
    return f"{sign}{fmt_bytes(abs(margin))} ({sign}{fmt_pct(abs(margin) / capacity) if capacity else '—'})"


def layer_detail(prof: Profile, step: int) -> dict:
    lp = prof.layers[step]
    d = lp.to_json()
    d.pop("estimates", None)
    ests = {}
    for t in prof.targets:
        le = _by_name(t)[lp.record.name]
        ests[f"{t.mcu} ({t.runtime})"] = {"latency_ms": le.latency_ms, "cycles": le.cycles,
                                         "share": fmt_pct(le.share, 1), "scratch_bytes": le.scratch_bytes}
    d["estimates (per target)"] = ests
    return d


def layer_detail_tables(prof: Profile, step: int) -> tuple[list[dict], list[dict]]:
    """One layer as two small tables: its figures (property, value) and its estimate on each target."""
    d = layer_detail(prof, step)
    ests = d.pop("estimates (per target)")

    def shape(s) -> str:
        return "×".join(map(str, s))

    labels = {"input_shapes": "inputs", "output_shape": "output", "output_dtype": "output dtype", "macs": "MACs",
              "flops": "FLOPs", "live_bytes": "live at this step", "step": "execution step"}
    props = []
    for k, v in d.items():
        if k == "input_shapes":
            v = ", ".join(shape(x) for x in v)
        elif k == "output_shape":
            v = shape(v)
        elif isinstance(v, dict):  # e.g. weight bytes by dtype: "int32: 32 B, int8: 216 B"; none for a Resize
            unit = " B" if "bytes" in k else ""
            v = ", ".join(f"{kk}: {vv:,}{unit}" if isinstance(vv, int) else f"{kk}: {vv}"
                          for kk, vv in v.items()) or "none"
        elif isinstance(v, int) and (k.endswith("_bytes") or k.endswith("bytes")) and v >= 1024:
            v = f"{fmt_bytes(v)} ({v:,} B)"
        elif isinstance(v, int):
            v = f"{v:,}" + (" B" if k.endswith("bytes") else "")
        props.append({"property": labels.get(k, k.replace("_", " ")), "value": str(v)})
    rows = [{"target": t, "latency (est.)": fmt_ms(e["latency_ms"]), "cycles": e["cycles"],
             "share of latency": e["share"], "scratch": fmt_bytes(e["scratch_bytes"])} for t, e in ests.items()]
    return props, rows


def _by_name(target) -> dict:
    """Estimates follow the estimator's order; the profile follows the planned order: join by layer name."""
    return {le.name: le for le in target.layers}
