"""A schedule applied to the layer-by-layer buffer table: what plan_memory places for a scheduled graph.

    r = apply_schedule(graph, model, schedule, order, alignment=16)
    r.order, r.buffers, r.extra_macs, r.detail, r.notes

The order comes from the patch stage (engine.memory.patch.patch_order: the stage's nodes contiguous and
first where they must be), the table is built for that order, then each part rewrites it in turn: the patch
stage, then the in-place depthwise nodes, then the fused bands (each part's own module, with the binding
signatures of issue 13). A stage with `overlap` leaves one merged head buffer and its tail
(engine.memory.patch_overlap), which plan_memory places pinned. Each rewrite returns the whole new table, so the parts compose; the recomputed MACs
add up and the per-patch/per-band detail of every part goes to the memory timeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.memory.lifetimes import BufferModel, buffer_table
from engine.memory.schedule import Schedule, ScheduleError, check_names


@dataclass(frozen=True)
class Scheduled:
    order: tuple[str, ...]
    buffers: tuple
    extra_macs: int
    detail: dict
    inplace_nodes: tuple[str, ...]       # element-wise nodes writing over a dying input (as the layer plan has it)
    notes: dict = field(default_factory=dict)


def kind_module(module: str, what: str):
    """The module of one schedule kind (engine.memory.patch, .inplace, .fused)."""
    import importlib

    try:
        return importlib.import_module(f"engine.memory.{module}")
    except ImportError as e:  # a build without that kind: say so in one line instead of a traceback
        raise ScheduleError(f"the {what} schedule is not available in this build ({e})") from None


def apply_schedule(graph, model: BufferModel, schedule: Schedule, order, alignment: int) -> Scheduled:
    check_names(schedule, graph)
    order = list(order)
    if schedule.patch is not None:
        patch = kind_module("patch", "patch")
        patch.check_patch(graph, schedule.patch)
        order = list(patch.patch_order(graph, schedule.patch, order))
    table = buffer_table(model, order)
    buffers = tuple(table.buffers)
    extra, detail, notes = 0, {}, {}
    rewrites = []
    if schedule.patch is not None:
        rewrites.append(("patch", lambda b: kind_module("patch", "patch").patch_rewrite(
            graph, schedule.patch, b, order, alignment, overlap=schedule.patch.overlap)))
    if schedule.inplace:
        rewrites.append(("inplace", lambda b: kind_module("inplace", "in-place depthwise").inplace_rewrite(
            graph, tuple(schedule.inplace), b, order, alignment)))
    if schedule.fused:
        rewrites.append(("fused", lambda b: kind_module("fused", "fused").fused_rewrite(
            graph, tuple(schedule.fused), b, order, alignment)))
    for name, rewrite in rewrites:
        rw = rewrite(buffers)
        buffers = tuple(rw.buffers)
        extra += int(rw.extra_macs)
        for step, items in (rw.detail or {}).items():
            detail.setdefault(int(step), []).extend(items)
        if rw.note:
            notes[f"schedule.{name}"] = rw.note
    return Scheduled(tuple(order), buffers, extra, detail, tuple(table.inplace_nodes), notes)
