"""Constraints before training, objectives after: figures as deployed, the constraint a candidate breaks,
the Pareto front and its hypervolume.

    m = deployed_figures(graph, "nrf52840", "tflm-cmsis-nn")   # int8 as the export deploys it
    broke = broken_constraint(m, max_sram=64 * 1024, max_flash=256 * 1024, max_latency_ms=None)
    front = pareto_front(points)                                 # indices of non-dominated points (all minimized)
    hv = hypervolume(points, reference)                          # exact, any dimension

The figures are the ones `tinystudio profile --precision int8 --mcu ID` prints: engine.profile.profile_graph
at precision "int8" (BN folded, activations fused, int8, the planner's arena), RAM and flash from hwmodels.
"""
from __future__ import annotations

from typing import Sequence

from engine.errors import TinyStudioError

MINIMIZED = ("latency_ms", "ram_bytes", "flash_bytes", "energy_uj")


def deployed_figures(graph, mcu: str, runtime: str) -> dict:
    """{"ram_bytes", "flash_bytes", "latency_ms", "energy_uj", "macs", "arena_bytes", "fits", "fit"} of `graph`
    deployed as int8 on (mcu, runtime)."""
    from engine.profile import profile_graph

    prof = profile_graph(graph, [(mcu, runtime)], precision="int8")
    t = prof.targets[0]
    return {"ram_bytes": int(t.ram_bytes), "flash_bytes": int(t.flash_bytes), "latency_ms": float(t.latency_ms),
            "energy_uj": float(t.energy_uj), "macs": int(prof.totals()["macs"]),
            "arena_bytes": int(prof.plan.arena_bytes), "fits": bool(t.fits), "fit": t.fit_message()}


def broken_constraint(m: dict, max_sram: int | None, max_flash: int | None,
                      max_latency_ms: float | None) -> str | None:
    """The first constraint figures `m` break, in words (None when it fits): the user's limits, then the MCU's."""
    if max_sram is not None and m["ram_bytes"] > max_sram:
        return f"ram_bytes {m['ram_bytes']:,} > max_sram {max_sram:,}"
    if max_flash is not None and m["flash_bytes"] > max_flash:
        return f"flash_bytes {m['flash_bytes']:,} > max_flash {max_flash:,}"
    if max_latency_ms is not None and m["latency_ms"] > max_latency_ms:
        return f"latency_ms {m['latency_ms']:.3f} > max_latency_ms {max_latency_ms:g}"
    if not m["fits"]:
        return f"MCU capacity: {m['fit']}"
    return None


def violation(m: dict, max_sram: int | None, max_flash: int | None, max_latency_ms: float | None) -> list[float]:
    """Optuna's constraint values (<= 0 feasible): relative excess over each limit."""
    out = []
    for key, limit in (("ram_bytes", max_sram), ("flash_bytes", max_flash), ("latency_ms", max_latency_ms)):
        out.append(0.0 if limit is None else m[key] / limit - 1.0)
    out.append(0.0 if m["fits"] else 1.0)
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when it is no worse on every (minimized) objective and better on one."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every objective minimized); duplicates keep their first index."""
    front = []
    for i, p in enumerate(points):
        if any(dominates(q, p) or (j < i and tuple(q) == tuple(p)) for j, q in enumerate(points) if j != i):
            continue
        front.append(i)
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by `points` (minimized) and bounded by `reference`, by slicing along the
    first objective (HSO, While et al. 2006): fine for the few tens of points a study's front holds."""
    pts = [tuple(float(v) for v in p) for p in points if all(v < r for v, r in zip(p, reference))]
    if not pts:
        return 0.0
    ref = tuple(float(r) for r in reference)
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    pts = [pts[i] for i in pareto_front(pts)]
    pts.sort(key=lambda p: p[0])
    total = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1][0] if i + 1 < len(pts) else ref[0]
        if upper <= p[0]:
            continue
        # The slab [p0, upper) is dominated by every point with first coordinate <= p0, in the other dimensions.
        total += (upper - p[0]) * hypervolume([q[1:] for q in pts[:i + 1]], ref[1:])
    return total


def objective_vector(rec: dict, objectives: Sequence[str]) -> tuple[float, ...]:
    """A trial's objectives as minimized values: accuracy becomes its negative (error)."""
    return tuple(-rec["accuracy"] if o == "accuracy" else float(rec[o]) for o in objectives)


def normalized(vec: Sequence[float], objectives: Sequence[str], scale: dict) -> tuple[float, ...]:
    """Objectives on a 0..1 scale (1 = the reference point): 1 - accuracy, value / reference for the rest, so a
    study's hypervolume lies in 0..1 and compares across strategies sharing the reference."""
    return tuple(1.0 + v if o == "accuracy" else v / scale[o] for v, o in zip(vec, objectives))


def check_objectives(objectives: Sequence[str]) -> tuple[str, ...]:
    from engine.search import OBJECTIVES

    objs = tuple(o.strip() for o in objectives if o.strip())
    bad = [o for o in objs if o not in OBJECTIVES]
    if bad or not objs:
        raise TinyStudioError(f"objective {bad[0] if bad else '(none)'!r}: choose from {', '.join(OBJECTIVES)}")
    if len(set(objs)) != len(objs):
        raise TinyStudioError(f"objectives: each may appear once, got {', '.join(objs)}")
    return objs
