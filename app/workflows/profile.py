"""What a profile is asked for, shared by the CLI (`tinystudio profile`) and the pages (Profile, Compress).

    profile_targets(["esp32s3", "nrf52840"], None)   # [("esp32s3", "esp-nn"), ("nrf52840", "tflm-cmsis-nn")]
    page_precisions(graph)                           # ("int8", "float32") for a float version, ("as-is",) else
    schedule_args("auto", "0.1")                     # ("auto", 0.1), or TinyStudioError in one line
    schedule_lines(prof)                             # what ran and why, before/after, for the CLI and the page
"""
from __future__ import annotations

from engine.deployed import precision_of

# The Profile page's schedule control (engine.memory.schedule.CHOICES).
SCHEDULE_LABELS = {"layer": "Layer by layer", "inplace": "In-place DW", "patch": "Patch", "fused": "Fused",
                   "auto": "Auto"}
# What the page's switch says for each precision it offers.
PRECISION_LABELS = {"int8": "As deployed (int8)", "float32": "Float32 (as the version is)", "as-is": "As is"}


def profile_targets(mcu_ids: list[str], runtime: str | None) -> list[tuple[str, str]]:
    """(mcu, runtime) pairs; without a runtime each MCU gets the default runtime for its core
    (hwmodels.runtime.default_runtime: the one Export's estimates assume too)."""
    from hwmodels.runtime import default_runtime

    return [(m, runtime or default_runtime(m)) for m in mcu_ids]


def page_precisions(graph) -> tuple[str, ...]:
    """The precisions the Profile page offers, the default first: a float version is shown as deployed
    (int8) with float32 one switch away; an int8 version is shown as it is."""
    return ("int8", "float32") if precision_of(graph) == "float32" else ("as-is",)


def profile_as_deployed(graph, targets) -> tuple[object, str | None]:
    """(profile, why not int8 or None): the graph as the export would deploy it (int8), or, when an op has no
    int8 kernel, the graph as it is with the reason."""
    from engine.errors import TinyStudioError
    from engine.profile import profile_graph

    try:
        return profile_graph(graph, targets, precision="int8"), None
    except TinyStudioError as e:
        if "int8 (as deployed) is not available" not in str(e):
            raise
        return profile_graph(graph, targets), str(e)


def schedule_args(kind, max_mac_overhead) -> tuple[str, float]:
    """--schedule / --max-mac-overhead (or the page's control) checked: one-line errors naming the option."""
    from engine.memory.auto import check_overhead
    from engine.memory.schedule import CHOICES, ScheduleError

    if kind not in CHOICES:
        raise ScheduleError(f"--schedule {kind}: choose one of {', '.join(CHOICES)}")
    try:
        return kind, check_overhead(max_mac_overhead)
    except ScheduleError as e:
        raise ScheduleError(f"--max-mac-overhead {max_mac_overhead}: {str(e).split(': ', 1)[-1]}") from None


def schedule_lines(prof) -> list[str]:
    """The schedule of a profile in words: kind and parts, the arena before/after and the MAC overhead."""
    from app.units import fmt_bytes

    p, s = prof.plan, prof.plan.schedule
    if s.is_layer:
        return [f"schedule layer by layer{': ' + s.why if s.why and s.why.startswith('auto') else ''}"]
    parts = []
    if s.patch is not None:
        parts.append(f"patch stage {' -> '.join(s.patch.nodes)} (split {s.patch.split}), "
                     f"{s.patch.grid[0]}x{s.patch.grid[1]} patches")
        if s.patch.overlap:
            from engine.memory.patch_overlap import overlap_summary

            o = overlap_summary(p.buffers)
            if o:
                parts.append(f"output of {s.patch.split} written over the input rows the patches have consumed: "
                             f"one buffer, input '{o['input']}' {o['input_at']:,} B into it, {o['saved_bytes']:,} B "
                             "saved")
    if s.inplace:
        parts.append(f"in-place depthwise: {', '.join(s.inplace)}")
    for b in s.fused:
        parts.append(f"fused {' -> '.join(b.nodes)}, bands of {b.band_rows} rows")
    before = p.layer_lower_bound_bytes
    lines = [f"schedule {s.kind}: {s.why}" if s.why else f"schedule {s.kind}"]
    lines += [f"  {x}" for x in parts]
    ratio = f" ({before / p.arena_bytes:.2f}x below)" if p.arena_bytes else ""
    lines.append(f"  arena {fmt_bytes(p.arena_bytes)} ({p.arena_bytes:,} B) against the layer-by-layer bound "
                 f"{fmt_bytes(before)} ({before:,} B){ratio}; MACs {prof.mac_overhead * 100:+.2f} % "
                 f"({p.macs_extra:,} recomputed)")
    return lines


def schedule_record(prof, requested: str, max_mac_overhead: float) -> dict:
    """What is stored with a version (store.set_schedule): the kind asked for, the limit and the schedule."""
    return {"requested": requested, "max_mac_overhead": float(max_mac_overhead),
            "schedule": prof.plan.schedule.to_dict()}


def stored_schedule(graph, record: dict | None, max_mac_overhead: float | None = None, mcu=None):
    """The Schedule a stored record gives for `graph` (the int8 graph planned): its schedule when it still fits
    the graph, else the kind it asked for chosen again (engine.memory.auto); the layer schedule without one."""
    from engine.memory.auto import choose_schedule
    from engine.memory.schedule import LAYER, Schedule, ScheduleError

    if not record:
        return LAYER
    limit = record["max_mac_overhead"] if max_mac_overhead is None else max_mac_overhead
    try:
        return Schedule.from_dict(record["schedule"], graph)
    except ScheduleError:  # the graph changed since (another version): choose the same kind for it
        return choose_schedule(graph, record["requested"], limit, sram_bytes=getattr(mcu, "sram_bytes", None),
                               mcu=getattr(mcu, "id", ""))


def schedule_query(record: dict | None, kind: str, max_mac_overhead: float) -> str:
    """What the page asks profile_of for: the stored schedule itself (as JSON) when the control still shows the
    stored choice, so the figures are those the export will use; else the kind (chosen afresh)."""
    import json

    schedule_args(kind, max_mac_overhead)
    if record and record["requested"] == kind and abs(record["max_mac_overhead"] - max_mac_overhead) < 1e-9:
        return json.dumps({"requested": kind, "schedule": record["schedule"]}, sort_keys=True)
    return kind


def query_schedule(query: str):
    """schedule_query's text -> what engine.profile.profile_graph takes: a kind, or (stored Schedule, kind to
    choose again when it no longer fits the graph)."""
    import json

    from engine.memory.schedule import Schedule

    if not query.startswith("{"):
        return query, None
    d = json.loads(query)
    return Schedule.from_dict(d["schedule"]), d["requested"]
