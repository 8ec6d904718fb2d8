"""The export report's headline figures as display rows, for the Export page and `tinystudio export`.

    rows = figure_rows(report)   # [{"figure", "value", "how"}]: verification, arena, flash, RAM, latency
    lines = text_lines(report)   # the CLI's summary

Reports come from the store too, written by older versions or cut short: every field is optional here and a
missing or odd one renders as "not measured: why" or "n/a", never as an exception.
"""
from __future__ import annotations

from engine.export.report import byte_text, is_number, measured_ok, not_measured_why


def _d(x) -> dict:
    return x if isinstance(x, dict) else {}


def verify_text(rep: dict) -> str:
    v = _d(rep.get("verify"))
    mode = v.get("mode") or "none"
    if mode == "none":
        return "not verified"
    where = "host gcc" if mode == "host" else f"QEMU {v.get('machine') or ''}".strip()
    n = v.get("inputs") if is_number(v.get("inputs")) else 0
    if v.get("bit_exact"):
        return f"bit-exact on {n} inputs ({where})"
    bad = n - v["matched"] if is_number(v.get("matched")) else "some"
    return f"MISMATCH on {bad} of {n} inputs ({where})"


def figure_rows(rep) -> list[dict]:
    rep = _d(rep)
    est, meas, ver = _d(rep.get("estimate")), _d(rep.get("measured")), _d(rep.get("verify"))
    runtime = est.get("runtime") or "?"
    rows = [{"figure": "Verification", "value": verify_text(rep), "how": "C output vs the int8 reference"}]
    fa = _d(ver.get("float_api"))
    if fa:
        n = fa.get("inputs") or 0
        value = (f"bit-exact on {n} float inputs" if fa.get("bit_exact") else
                 f"MISMATCH on {n - (fa.get('matched') or 0)} of {n} float inputs")
        rows.append({"figure": "Float API", "value": value,
                     "how": "float32 in and out (the model's QUANTIZE and DEQUANTIZE in C) vs the int8 reference"})
    rows += [{"figure": "Tensor arena", "value": byte_text(rep.get("arena_bytes")), "how": "memory planner"}]
    sch = _d(rep.get("schedule"))
    if sch.get("kind") not in (None, "layer"):
        over = sch.get("mac_overhead")
        rows.append({"figure": "Schedule", "value": str(sch["kind"]),
                     "how": f"{sch.get('why', '')}; layer-by-layer bound "
                            f"{byte_text(sch.get('layer_lower_bound_bytes'))}"
                            + (f", MACs {over * 100:+.2f} %" if is_number(over) else "")})
    if measured_ok(meas):
        rows += [{"figure": "Flash (measured)", "value": byte_text(meas["flash_bytes"]),
                  "how": f"measured (arm-none-eabi-size): text {meas['text']:,} + rodata {meas['rodata']:,} + "
                         f"data {meas['data']:,}"},
                 {"figure": "RAM (measured)", "value": byte_text(meas["ram_bytes"]),
                  "how": f"measured: data + bss + stack ({meas.get('stack_method') or 'stack'})"}]
    else:
        why = not_measured_why(rep)
        rows += [{"figure": "Flash (measured)", "value": "not measured", "how": f"not measured: {why}"},
                 {"figure": "RAM (measured)", "value": "not measured", "how": f"not measured: {why}"}]
    rows += [{"figure": "Flash (estimate)", "value": byte_text(est.get("flash_bytes")),
              "how": f"estimate, {runtime} runtime model"},
             {"figure": "RAM (estimate)", "value": byte_text(est.get("ram_bytes")),
              "how": f"estimate, {runtime} runtime model"}]
    wide = _d(rep.get("wide_weights"))
    if wide.get("enabled"):
        rows.append({"figure": "Pre-widened weights", "value": f"+{byte_text(wide.get('extra_flash_bytes'))} flash",
                     "how": "conv weights stored as int16 (chosen): bytes beyond int8 weights, in the measured flash "
                            "but not in the estimate"})
    lat = est.get("latency_ms")
    rows.append({"figure": "Latency", "value": f"{lat:.2f} ms" if is_number(lat) else "n/a",
                 "how": f"estimate: {est.get('runtime_note') or runtime + ' runtime model'}"})
    ipi, ipm = ver.get("instructions_per_inference"), ver.get("instructions_per_mac")
    if is_number(ipi) and is_number(ipm):
        rows.append({"figure": "Instructions per inference", "value": f"{ipi:,.0f} ({ipm:.2f} per MAC)",
                     "how": f"measured in QEMU {ver.get('machine') or ''} (instructions, not cycles)"})
    return rows


def text_lines(rep) -> list[str]:
    """`tinystudio export`'s summary: one line per figure."""
    rep = _d(rep)
    lib, t = _d(rep.get("library")), _d(rep.get("target"))
    macs = rep.get("macs")
    out = [f"bundle   {rep.get('bundle', '')}",
           f"library  {lib.get('name', '?')}: {f'{macs:,}' if is_number(macs) else 'n/a'} MACs, tensor arena "
           f"{byte_text(rep.get('arena_bytes'))}, for {t.get('name', '?')} ({t.get('core', '?')})"]
    for r in figure_rows(rep):
        if r["figure"] in ("Tensor arena", "Schedule"):
            continue
        if r["value"] == "not measured":
            out.append(f"{r['figure'].lower()}: {r['how']}")
        else:
            out.append(f"{r['figure'].lower()}: {r['value']} ({r['how']})")
    sch = _d(rep.get("schedule"))
    if sch.get("kind") not in (None, "layer") or sch.get("why", "").startswith("auto"):
        over = sch.get("mac_overhead")
        out.append(f"schedule {sch.get('kind', '?')}: {sch.get('why', '')}"
                   + (f" (layer-by-layer bound {byte_text(sch.get('layer_lower_bound_bytes'))}, "
                      f"MACs {over * 100:+.2f} %)" if is_number(over) else ""))
    fit = _d(rep.get("estimate")).get("fit")
    if fit:
        out.append(f"fit: {fit}")
    return out
