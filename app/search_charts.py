"""The Search page's figures and figures-in-words: pure functions of stored trials (store.TrialInfo or any object
with the same fields), no streamlit, so they are testable.

    front = pareto_front(trials, ("accuracy", "latency_ms"))    # {(strategy, number)} non-dominated, per strategy
    fig = pareto_figure(trials, ("accuracy", "latency_ms"), main="tpe")   # accuracy vs latency, colour = RAM
    counts_text(study.counts), best_text(trials, main="tpe")

Plot points carry customdata [strategy, number], which is what the page reads back from a click (on_select).
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from app.units import fmt_bytes, fmt_ms, fmt_pct

MAXIMIZE = ("accuracy",)  # every other objective (latency, RAM, flash, energy, MACs) is minimized
GREY, FRONT = "#b9bec7", "#e45756"
# The baseline as open diamonds over the chosen strategy's filled circles: with the same seed both start from the
# same random candidates, and an identical point must stay visible under the other.
SYMBOLS = {"random": "diamond-open"}


def _value(t, key: str) -> float | None:
    v = getattr(t, key, None)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _dominates(a: tuple, b: tuple) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(trials, objectives) -> set[tuple[str, int]]:
    """Trained trials not dominated by another trained trial of the same strategy on `objectives` (accuracy
    maximized, the rest minimized). Trials missing an objective's value take no part."""
    front: set[tuple[str, int]] = set()
    by_strategy: dict[str, list] = {}
    for t in trials:
        if t.state != "trained":
            continue
        vals = [_value(t, k) for k in objectives]
        if any(v is None for v in vals):
            continue
        key = tuple(-v if k in MAXIMIZE else v for k, v in zip(objectives, vals))
        by_strategy.setdefault(t.strategy, []).append((key, t))
    for pts in by_strategy.values():
        for key, t in pts:
            if not any(_dominates(other, key) for other, _ in pts):
                front.add((t.strategy, t.number))
    return front


def _hover(t) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted((t.params or {}).items()))
    parts = [f"<b>{t.strategy} trial {t.number}</b> ({t.state})"]
    if t.accuracy is not None:
        parts.append(f"accuracy {fmt_pct(t.accuracy)}")
    if t.latency_ms is not None:
        parts.append(f"latency {fmt_ms(t.latency_ms)}")
    if t.ram_bytes is not None:
        parts.append(f"RAM {fmt_bytes(t.ram_bytes)}")
    if t.flash_bytes is not None:
        parts.append(f"flash {fmt_bytes(t.flash_bytes)}")
    if t.broke:
        parts.append(f"broke: {t.broke}")
    return "<br>".join(parts + [params[:200]])


def pareto_figure(trials, objectives=("accuracy", "latency_ms"), main: str = "tpe", title: str = "") -> go.Figure:
    """Accuracy (y) against latency (x) of every trained trial, coloured by RAM; each strategy's front joined by
    a line; the chosen strategy as circles, the random baseline as diamonds; rejected candidates (broke a
    limit, never trained: no accuracy) greyed along the bottom at their estimated latency."""
    front = pareto_front(trials, objectives)
    trained = [t for t in trials if t.state == "trained" and _value(t, "accuracy") is not None
               and _value(t, "latency_ms") is not None]
    rams = [t.ram_bytes for t in trained if _value(t, "ram_bytes") is not None]
    lo, hi = (min(rams), max(rams)) if rams else (0, 1)
    fig = go.Figure()
    strategies = sorted({t.strategy for t in trained}, key=lambda s: (s != main, s))
    for i, strat in enumerate(strategies):
        pts = [t for t in trained if t.strategy == strat]
        baseline = strat == "random" and strat != main
        name = f"{strat} (random baseline)" if baseline else strat
        fig.add_trace(go.Scatter(
            x=[t.latency_ms for t in pts], y=[t.accuracy for t in pts], mode="markers", name=name,
            customdata=[[t.strategy, t.number] for t in pts], hovertext=[_hover(t) for t in pts],
            hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(size=[(15 if (t.strategy, t.number) in front else 10) + (6 if baseline else 0) for t in pts],
                        symbol=SYMBOLS.get(strat, "circle") if strat != main else "circle",
                        color=[t.ram_bytes if t.ram_bytes is not None else lo for t in pts], colorscale="Viridis",
                        cmin=lo, cmax=max(hi, lo + 1), showscale=i == 0,
                        colorbar=dict(title="RAM (B)", x=1.02) if i == 0 else None,
                        line=dict(width=[2 if (t.strategy, t.number) in front else 0.5 for t in pts],
                                  color=FRONT if not baseline else "#555"))))
        line = sorted((t for t in pts if (t.strategy, t.number) in front), key=lambda t: t.latency_ms)
        if line:
            fig.add_trace(go.Scatter(x=[t.latency_ms for t in line], y=[t.accuracy for t in line], mode="lines",
                                     name=f"{strat} front", hoverinfo="skip",
                                     line=dict(color=FRONT if not baseline else "#777", width=1.5,
                                               dash="dot" if baseline else "solid")))
    rejected = [t for t in trials if t.state == "rejected" and _value(t, "latency_ms") is not None]
    if rejected:
        fig.add_trace(go.Scatter(
            x=[t.latency_ms for t in rejected], y=[0.0] * len(rejected), mode="markers",
            name="rejected before training (broke a limit)", customdata=[[t.strategy, t.number] for t in rejected],
            hovertext=[_hover(t) for t in rejected], hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(symbol="x", size=9, color=GREY)))
    fig.update_layout(title=title or "Accuracy against latency (colour: RAM; larger, outlined: Pareto front)",
                      height=460, template="plotly_white", margin=dict(l=60, r=20, t=60, b=40),
                      legend=dict(orientation="h", y=-0.18, x=0.5, xanchor="center", yanchor="top"),
                      clickmode="event+select")
    fig.update_xaxes(title_text="latency (ms, estimated on the MCU)", type="log" if _spread(trials) else "linear")
    fig.update_yaxes(title_text="validation accuracy", tickformat=".0%", range=[-0.03, 1.03])
    return fig


def _spread(trials) -> bool:
    """Log latency axis when the latencies span more than a factor of 20."""
    lat = [t.latency_ms for t in trials if _value(t, "latency_ms") and t.latency_ms > 0]
    return bool(lat) and max(lat) / min(lat) > 20


def counts_text(counts: dict, budget: int | None = None) -> str:
    done = counts.get("total", 0)
    of = f" of {budget}" if budget else ""
    return (f"{done}{of} trials: {counts.get('trained', 0)} trained, {counts.get('rejected', 0)} rejected, "
            f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed")


def best(trials, strategy: str | None = None):
    """The most accurate trained trial (of `strategy`, or of any), lower latency breaking ties; None if none."""
    pts = [t for t in trials if t.state == "trained" and _value(t, "accuracy") is not None
           and (strategy is None or t.strategy == strategy)]
    if not pts:
        return None
    return max(pts, key=lambda t: (t.accuracy, -(t.latency_ms or 0.0)))


def best_text(trials, strategy: str | None = None) -> str:
    b = best(trials, strategy)
    if b is None:
        return "no trained candidate yet"
    return (f"best so far: {b.strategy} trial {b.number}, {fmt_pct(b.accuracy)}"
            + (f", {fmt_ms(b.latency_ms)}" if b.latency_ms is not None else "")
            + (f", RAM {fmt_bytes(b.ram_bytes)}" if b.ram_bytes is not None else ""))


def trial_rows(trials) -> list[dict]:
    """Every trial as a table row (the page's table of all trials)."""
    return [{"strategy": t.strategy, "trial": t.number, "state": t.state,
             "accuracy": fmt_pct(t.accuracy) if t.accuracy is not None else "",
             "latency": fmt_ms(t.latency_ms) if t.latency_ms is not None else "",
             "RAM": fmt_bytes(t.ram_bytes) if t.ram_bytes is not None else "",
             "flash": fmt_bytes(t.flash_bytes) if t.flash_bytes is not None else "",
             "why": t.broke or t.error or "", "seconds": round(t.seconds, 1),
             "params": ", ".join(f"{k}={v}" for k, v in sorted((t.params or {}).items()))} for t in trials]


def study_rows(studies) -> list[dict]:
    """The session's studies as History lists them: name, status, counts, best accuracy, when."""
    rows = []
    for s in studies:
        spec, res = s.spec or {}, s.result or {}
        accs = [p.get("accuracy") for r in (res.get("strategies") or {}).values() for p in r.get("pareto") or []
                if isinstance(p.get("accuracy"), (int, float))]
        rows.append({"study": s.name, "status": s.status, "space": spec.get("space"), "data set": spec.get("dataset"),
                     "MCU": spec.get("mcu"), "strategy": spec.get("strategy"), "trials": counts_text(s.counts),
                     "best accuracy": fmt_pct(max(accs)) if accs else "—",
                     "started": s.created[:19].replace("T", " ")})
    return rows
