"""Choosing a schedule: one kind with its best parameters, or `auto`, the lowest arena under a MAC limit.

    s = choose_schedule(graph, "auto", max_mac_overhead=0.10)                 # Schedule, s.why says which won
    s = choose_schedule(graph, "auto", 0.10, sram_bytes=mcu.sram_bytes)      # per MCU (see below)
    s = choose_schedule(graph, "patch", 0.10)                                 # the best patch stage

Kinds: `layer`; `inplace` (every depthwise node that can run in place); `patch` (the patch stage of the
search with the smallest arena, engine.memory.patch.patch_candidates); `fused` (every fused block the search
proposes); `auto`: every kind and their combinations (patch + in-place depthwise outside the stage, patch +
fused blocks after it, fused + in-place ...) planned with plan_memory, the smallest arena whose recomputed
MACs stay within `max_mac_overhead` wins. Per MCU: when the layer schedule's arena already fits the MCU's
SRAM, recomputing MACs buys nothing there, so `auto` then keeps the fitting schedule with the smallest MAC
overhead (the layer schedule itself) and says so.
"""
from __future__ import annotations

import dataclasses

from engine.memory.rewrite import kind_module
from engine.memory.schedule import (CHOICES, DEFAULT_MAX_MAC_OVERHEAD, LAYER, FusedBlock, PatchStage, Schedule,
                                   ScheduleError)

# Patch stages of the search tried in combination with the other kinds (the best by the search's own peak).
PATCH_TRIED = 3


@dataclasses.dataclass(frozen=True)
class Evaluated:
    schedule: Schedule
    arena_bytes: int
    macs_extra: int
    mac_overhead: float


def base_macs(graph) -> int:
    from engine.summary import layer_records

    return sum(r.macs for r in layer_records(graph))


def check_overhead(max_mac_overhead) -> float:
    try:
        v = float(max_mac_overhead)
    except (TypeError, ValueError):
        raise ScheduleError(f"max MAC overhead {max_mac_overhead!r}: expected a number such as 0.10") from None
    if not (0.0 <= v <= 10.0):
        raise ScheduleError(f"max MAC overhead {v:g}: expected a fraction between 0 and 10 (0.10 = 10 % more MACs)")
    return v


def evaluate(graph, schedule: Schedule, macs: int | None = None) -> Evaluated:
    from engine.memory import plan_memory

    plan = plan_memory(graph, schedule=schedule)
    macs = base_macs(graph) if macs is None else macs
    return Evaluated(schedule, plan.arena_bytes, plan.macs_extra, plan.macs_extra / macs if macs else 0.0)


def _kind(patch, inplace, fused) -> str:
    parts = [k for k, on in (("patch", patch), ("inplace", inplace), ("fused", fused)) if on]
    return "+".join(parts) or "layer"


def _make(patch, inplace: tuple[str, ...], fused: tuple[FusedBlock, ...]) -> Schedule:
    """A combined schedule whose parts never name the same node (the stage first, then the fused blocks)."""
    taken = set(patch.nodes) if patch is not None else set()
    fused = tuple(b for b in fused if not (set(b.nodes) & taken))
    for b in fused:
        taken |= set(b.nodes)
    inplace = tuple(n for n in inplace if n not in taken)
    return Schedule(_kind(patch, inplace, fused), patch, inplace, fused)


def _inplace(graph) -> tuple[str, ...]:
    from engine.memory.rewrite import kind_module

    return tuple(kind_module("inplace", "in-place depthwise").inplace_candidates(graph))


def _fused(graph, limit: float) -> tuple[FusedBlock, ...]:
    from engine.memory.rewrite import kind_module

    return tuple(kind_module("fused", "fused").fused_candidates(graph, limit))


def _needed_inplace(graph, s: Schedule) -> Schedule | None:
    """`s` with only the in-place depthwise nodes its peak needs (each costs a scatter of its output, so one that
    lowers no peak runs better as a layer: engine.memory.inplace.inplace_needed); None when none is needed."""
    if not s.inplace:
        return s
    from engine.memory import plan_memory

    rest = _make(s.patch, (), s.fused)
    plan = plan_memory(graph, schedule=rest)
    needed = kind_module("inplace", "in-place depthwise").inplace_needed(graph, s.inplace, plan.buffers,
                                                                        list(plan.order))
    return _make(s.patch, tuple(needed), s.fused) if needed else None


def _fused_after(graph, stage, limit: float) -> tuple[FusedBlock, ...]:
    """The fused blocks that lower the peak of the plan with `stage` run by patches (none inside the stage)."""
    from engine.memory import plan_memory
    from engine.memory.rewrite import kind_module

    plan = plan_memory(graph, schedule=Schedule("patch", patch=stage))
    # The stage's nodes listed backwards inside their span: fused_candidates only proposes blocks whose nodes run
    # in order, so none inside the stage (their tensors are tiles, no buffer of this table); the other nodes keep
    # their steps. Each proposal is planned for real afterwards (evaluate), so this only narrows the search.
    order = list(plan.order)
    span = sorted(order.index(n) for n in stage.nodes)
    order[span[0]:span[-1] + 1] = order[span[0]:span[-1] + 1][::-1]
    blocks = kind_module("fused", "fused").fused_candidates(graph, limit, order=order, buffers=plan.buffers)
    return tuple(b for b in blocks if not set(b.nodes) & set(stage.nodes))


def _patches(graph, limit: float) -> list[Schedule]:
    from engine.memory.rewrite import kind_module

    # overlap=None: each stage with its split output over the consumed input where the proof holds and the peak
    # drops (PatchStage.overlap says which; plan_memory places it pinned, engine.memory.patch_overlap).
    cands = list(kind_module("patch", "patch").patch_candidates(graph, limit, overlap=None, by_stage=PATCH_TRIED))
    return sorted(cands, key=lambda s: (s.extra.get("peak_bytes", 0), s.extra.get("mac_overhead", 0.0)))


def _patches_tried(cands: list[Schedule]) -> list[PatchStage]:
    """The stages auto combines with the other kinds: the best PATCH_TRIED by arena, and the best PATCH_TRIED by
    the peak inside the stage (fused blocks and in-place depthwise may lower the peak after it)."""
    by_stage = sorted(cands, key=lambda s: (s.extra.get("stage_peak", 0), s.extra.get("mac_overhead", 0.0)))
    return list(dict.fromkeys(c.patch for c in [*cands[:PATCH_TRIED], *by_stage[:PATCH_TRIED]]))


def _pct(a: int, b: int) -> str:
    return f"{(a - b) / b * 100:+.0f} %" if b else "n/a"


def choose_schedule(graph, kind: str, max_mac_overhead: float = DEFAULT_MAX_MAC_OVERHEAD,
                    sram_bytes: int | None = None, mcu: str = "") -> Schedule:
    """The schedule of `kind` (one of schedule.CHOICES) for `graph` (shape-inferred, int8 as deployed), its
    `why` saying how it was chosen and `extra` holding the figures ({"arena_bytes", "mac_overhead", ...})."""
    if kind not in CHOICES:
        raise ScheduleError(f"schedule {kind!r}: choose one of {', '.join(CHOICES)}")
    limit = check_overhead(max_mac_overhead)
    if kind == "layer":
        return LAYER
    macs = base_macs(graph)
    if kind == "inplace":
        nodes = _inplace(graph)
        if not nodes:
            raise ScheduleError("inplace: no depthwise convolution of this graph can run in place")
        ev = evaluate(graph, Schedule("inplace", inplace=nodes), macs)
        return _with_why(ev, f"in-place depthwise on {len(nodes)} node(s)")
    if kind == "fused":
        blocks = _fused(graph, limit)
        if not blocks:
            raise ScheduleError("fused: no inverted-residual block of this graph lowers the peak by running in "
                                "row bands")
        ev = evaluate(graph, Schedule("fused", fused=blocks), macs)
        return _with_why(ev, f"{len(blocks)} fused block(s) by row bands")
    if kind == "patch":
        cands = _patches(graph, limit)
        if not cands:
            raise ScheduleError(f"patch: no patch stage of this graph lowers the peak within {limit:.0%} more MACs")
        evs = [evaluate(graph, dataclasses.replace(c, kind="patch"), macs) for c in cands[:PATCH_TRIED]]
        best = min(evs, key=lambda e: (e.arena_bytes, e.mac_overhead))
        p = best.schedule.patch
        return _with_why(best, f"patch stage up to {p.split}, {p.grid[0]}x{p.grid[1]} patches "
                               f"(best of {len(cands)} under the {limit:.0%} MAC limit)")
    return _auto(graph, limit, macs, sram_bytes, mcu)


OVERLAP_WHY = "the patch stage writes its output over the input rows its patches have consumed"


def _overlap_why(s: Schedule) -> str:
    return f"; {OVERLAP_WHY}" if s.patch is not None and s.patch.overlap else ""


def _with_why(ev: Evaluated, why: str, extra: dict | None = None) -> Schedule:
    extra = {"arena_bytes": ev.arena_bytes, "macs_extra": ev.macs_extra, "mac_overhead": ev.mac_overhead,
             **(extra or {})}
    return dataclasses.replace(ev.schedule, why=f"{why}: arena {ev.arena_bytes:,} B, "
                                                f"{ev.mac_overhead * 100:+.1f} % MACs{_overlap_why(ev.schedule)}",
                               extra=extra)


def _auto(graph, limit: float, macs: int, sram_bytes: int | None, mcu: str) -> Schedule:
    inplace = _safe(lambda: _inplace(graph), ())
    fused = _safe(lambda: _fused(graph, limit), ())
    patches = _patches_tried(_safe(lambda: _patches(graph, limit), []))
    combos: dict[Schedule, None] = {}
    for p in [None, *patches]:
        # Fused blocks after a patch stage: chosen on the table the stage leaves (its peak is elsewhere).
        blocks = fused if p is None else _safe(lambda: _fused_after(graph, p, limit), ())
        for use_inplace in (False, True):
            for use_fused in (False, True):
                s = _make(p, inplace if use_inplace else (), blocks if use_fused else ())
                combos.setdefault(s, None)
    evs, skipped = [], []
    for s in combos:
        try:
            s = _needed_inplace(graph, s)
            if s is None:  # no in-place node lowers this combination's peak: the same as without them
                continue
            ev = evaluate(graph, s, macs)
        except ScheduleError as e:  # a combination the kinds refuse (shapes, ops): not a candidate
            skipped.append(f"{s.kind}: {e}")
            continue
        if ev.mac_overhead <= limit + 1e-12:
            evs.append(ev)
    layer = next(e for e in evs if e.schedule.is_layer)
    best = min(evs, key=lambda e: (e.arena_bytes, e.mac_overhead, len(e.schedule.kind)))
    table = [{"kind": e.schedule.kind, "arena_bytes": e.arena_bytes, "mac_overhead": round(e.mac_overhead, 5)}
             for e in evs]
    extra = {"layer_arena_bytes": layer.arena_bytes, "candidates": table, "skipped": skipped}
    if sram_bytes is not None and layer.arena_bytes <= sram_bytes:
        where = f"{mcu}'s " if mcu else ""
        return dataclasses.replace(_with_why(layer, "auto", extra), kind="layer", why=(
            f"auto: layer by layer already fits {where}{sram_bytes:,} B of SRAM (arena {layer.arena_bytes:,} B), "
            f"so no MACs are recomputed (the smallest arena, {best.schedule.kind}, would be {best.arena_bytes:,} B "
            f"at {best.mac_overhead * 100:+.1f} % MACs)"))
    if best.schedule.is_layer:
        return dataclasses.replace(_with_why(layer, "auto", extra), why=(
            f"auto: layer by layer ({layer.arena_bytes:,} B): no other schedule gives a smaller arena within "
            f"{limit:.0%} more MACs ({len(evs)} tried)"))
    s = _with_why(best, "auto", extra)
    return dataclasses.replace(s, why=(
        f"auto: {best.schedule.kind} wins with {best.arena_bytes:,} B against {layer.arena_bytes:,} B layer by "
        f"layer ({_pct(best.arena_bytes, layer.arena_bytes)}) at {best.mac_overhead * 100:+.1f} % MACs "
        f"(limit {limit:.0%}; {len(evs)} schedules within it){_overlap_why(best.schedule)}"))


def _safe(fn, default):
    try:
        return fn()
    except ScheduleError:
        return default
