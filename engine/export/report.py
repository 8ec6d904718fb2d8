"""The export report as Markdown (report.md), rendered from the report dict that `tinystudio export --json`
prints (engine.export.pipeline builds it), and the memory/speed/verification lines the README shares."""
from __future__ import annotations

from engine import __version__
from engine.export.targets import core_target


def model_info(graph) -> dict:
    from engine.serialize import content_hash

    src = graph.meta.get("source", {}) if isinstance(graph.meta, dict) else {}
    return {"name": graph.name, "source": src.get("spec") or src.get("path") or "", "format": src.get("format", ""),
            "hash": content_hash(graph)}


def _io_json(s) -> dict:
    return {"name": s.name, "c_name": s.c_name, "shape": list(s.shape), "dtype": s.dtype, "scale": s.scale,
            "zero_point": s.zero_point, "size": s.size, "float_name": s.float_name}


def base_report(graph, lib, mcu) -> dict:
    """What the bundle's README needs in any case: model, target, library."""
    target = core_target(mcu)
    return {
        "tool": f"TinyStudio {__version__}",
        "model": model_info(graph),
        "mcu": mcu.id,
        "target": {"id": mcu.id, "name": mcu.name, "core": mcu.core, "clock_mhz": mcu.clock_mhz,
                   "sram_bytes": mcu.sram_bytes, "flash_bytes": mcu.flash_bytes, "fpu": mcu.fpu, "dsp": mcu.dsp,
                   "cc": target.cc, "cflags": list(target.cflags)},
        "arena_bytes": lib.arena_bytes,
        "macs": lib.macs,
        "library": {"name": lib.name, "header": lib.header, "sources": list(lib.sources),
                    "inputs": [_io_json(s) for s in lib.inputs], "outputs": [_io_json(s) for s in lib.outputs],
                    "weights_bytes": getattr(lib, "weights_bytes", 0), "stamp": dict(lib.stamp)},
        "layers": [dict(layer) for layer in getattr(lib, "layers", ())],
        "warnings": [],
    }


def byte_text(n) -> str:
    """"1,234 B", or "n/a" when the report has no number there."""
    return f"{int(n):,} B" if is_number(n) else "n/a"


def _kb(n) -> str:
    return f"{n / 1024:,.1f} KB" if is_number(n) else "n/a"


def is_number(v) -> bool:
    """A figure in a report: an int or float, not a bool (reports from the store may hold anything)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def measured_ok(meas) -> bool:
    """True when the report has measured flash/RAM figures (old or partial reports may not)."""
    return isinstance(meas, dict) and all(is_number(meas.get(k)) for k in
                                          ("flash_bytes", "ram_bytes", "text", "rodata", "data", "bss", "stack"))


def not_measured_why(rep: dict) -> str:
    meas = rep.get("measured") if isinstance(rep.get("measured"), dict) else {}
    return str(meas.get("note") or "no measurement in this report")


def memory_table(rep: dict) -> list[str]:
    est, meas = rep.get("estimate") or {}, rep.get("measured") or {}
    rows = ["| figure | bytes | how it was obtained |", "|---|---:|---|",
            f"| tensor arena (static, in .bss) | {byte_text(rep.get('arena_bytes'))} | memory planner "
            f"({rep.get('planner', 'engine.memory')}); the generated code uses these offsets |"]
    if measured_ok(meas):
        rows += [
            f"| flash: code (.text) | {byte_text(meas['text'])} | measured (arm-none-eabi-size, {meas.get('cflags', '')}) |",
            f"| flash: constants (.rodata: weights, biases, requantization) | {byte_text(meas['rodata'])} | measured |",
            f"| flash: initialised data (.data) | {byte_text(meas['data'])} | measured |",
            f"| **flash total** (text + rodata + data) | **{byte_text(meas['flash_bytes'])}** | measured |",
            f"| RAM: .data + .bss (arena included) | {byte_text(meas['data'] + meas['bss'])} | measured |",
            f"| RAM: stack below `{rep['library']['name']}_run` | {byte_text(meas['stack'])} | measured: "
            f"{meas.get('stack_method', '')} |",
            f"| **RAM total** (data + bss + stack) | **{byte_text(meas['ram_bytes'])}** | measured |",
            f"| input/output buffers (yours, not included above) | {byte_text(meas.get('io_bytes'))} | "
            "from the tensor shapes |",
        ]
    else:
        rows.append(f"| flash and RAM of the built library | not measured | {not_measured_why(rep)} |")
    if est:
        rows += [f"| flash | {byte_text(est.get('flash_bytes'))} | estimate ({est.get('runtime')} runtime model) |",
                 f"| RAM | {byte_text(est.get('ram_bytes'))} | estimate ({est.get('runtime')} runtime model) |"]
    return rows


def timing_lines(rep: dict) -> list[str]:
    est, ver = rep.get("estimate") or {}, rep.get("verify") or {}
    out = []
    t = rep.get("target") or {}
    if is_number(est.get("latency_ms")) and is_number(t.get("clock_mhz")):
        out.append(f"- Latency on {t.get('name')} at {t['clock_mhz']:g} MHz: "
                   f"{est['latency_ms']:.2f} ms, energy {est.get('energy_uj') or 0:.0f} uJ per inference "
                   f"(estimate, {est.get('runtime')} runtime model).")
    else:
        out.append("- Latency: not estimated in this report.")
    if is_number(ver.get("instructions_per_inference")) and is_number(ver.get("instructions_per_mac")):
        out.append(f"- Executed instructions per inference: {ver['instructions_per_inference']:,.0f} "
                   f"({ver['instructions_per_mac']:.2f} per MAC) (measured in QEMU {ver.get('machine')}; "
                   "instructions, not cycles).")
    return out


def verify_line(rep: dict) -> str:
    v = rep.get("verify") if isinstance(rep.get("verify"), dict) else {}
    mode = v.get("mode") or "none"
    if mode == "none":
        return "Not verified in this export (host or QEMU verification checks the C against the int8 reference)."
    where = "on the host (gcc)" if mode == "host" else f"in QEMU {v.get('machine')} (arm-none-eabi-gcc)"
    n = v.get("inputs") if is_number(v.get("inputs")) else 0
    if v.get("bit_exact"):
        return (f"Verified {where}: the C output equals the TinyStudio int8 reference byte for byte on "
                f"{n} inputs (the golden input and {max(n - 1, 0)} random ones).")
    mm = v.get("first_mismatch") or {}
    bad = n - v["matched"] if is_number(v.get("matched")) else "some"
    return (f"**Verification FAILED {where}**: {bad} of {n} inputs differ "
            f"(first: input #{mm.get('case')}, output '{mm.get('output')}' at {mm.get('index')}: C {mm.get('got')}, "
            f"reference {mm.get('expected')}).")


def report_markdown(rep: dict) -> str:
    lib, t = rep["library"], rep["target"]
    est = rep.get("estimate") or {}
    lines = [f"# Export report: {rep['model'].get('name') or lib['name']} for {t['name']}", "",
             f"TinyStudio {__version__}. Model hash `{rep['model'].get('hash', '')}`; target {t['id']} "
             f"({t['core']}, {t['clock_mhz']:g} MHz, {_kb(t['sram_bytes'])} SRAM, {_kb(t['flash_bytes'])} flash).",
             "", "## Verification", "", verify_line(rep), ""]
    if rep.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {w}" for w in rep["warnings"]] + [""]
    lines += ["## Memory", ""] + memory_table(rep) + ["", "## Speed", ""] + (timing_lines(rep) or ["- n/a"])
    if est.get("runtime"):
        lines += ["", f"Estimates assume {est.get('runtime_note') or est['runtime']}."]
    lines += ["", f"## Layers ({len(rep.get('layers', []))}, {rep['macs']:,} MACs)", "",
              "| # | layer | op | kernel | MACs | weights B |", "|---:|---|---|---|---:|---:|"]
    for i, layer in enumerate(rep.get("layers", [])):
        lines.append(f"| {i} | {layer.get('node') or layer.get('name', '')} | {layer.get('op', '')} | "
                     f"{layer.get('kernel', '')} | {layer.get('macs', 0):,} | {layer.get('weights_bytes', 0):,} |")
    from engine.export.readme import preprocessing_lines  # here: readme imports this module

    lines += ["", "## Input preprocessing and outputs", ""] + preprocessing_lines(rep)
    q = rep.get("quantization")
    if q:
        lines += ["", "## Quantization", "", f"- method: {q.get('method')}, calibration: {q.get('calibration')}"]
        for o in q.get("outputs") or []:
            agree = o.get("argmax_agreement")
            snr = o.get("snr_db")
            lines.append(f"- output {o.get('name')}: int8 vs float SNR "
                         f"{snr if isinstance(snr, str) else f'{snr:.1f}'} dB, max |error| {o.get('max_abs_error'):.3g}"
                         + (f", top-1 agreement {agree:.1%}" if agree is not None else "")
                         + f" on {o.get('samples')} calibration samples")
    return "\n".join(lines) + "\n"
