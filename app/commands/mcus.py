"""`tinystudio mcus`: the MCUs and runtime profiles."""
from __future__ import annotations

from app.commands.common import print_json


def cmd_mcus(args) -> int:
    from hwmodels.mcu import load_mcus
    from hwmodels.runtime import load_runtimes

    mcus = load_mcus()
    runtimes = load_runtimes()
    if args.json:
        return print_json({"mcus": [m.to_json() for m in mcus.values()],
                           "runtimes": [{"id": r.id, "name": r.name, "description": r.description,
                                         "cores": list(r.core_families)} for r in runtimes.values()]})
    rows = [("id", "name", "core", "MHz", "SRAM KB", "flash KB", "FPU", "SIMD/DSP", "mW")]
    for m in mcus.values():
        rows.append((m.id, m.name, m.core, f"{m.clock_mhz:g}", f"{m.sram_kb:g}",
                     f"{m.flash_kb:g}{' ext' if m.flash_external else ''}", m.fpu,
                     m.simd if m.simd != "none" else ("dsp" if m.dsp else "-"), f"{m.active_power_mw:.0f}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c]) for c in range(len(r))))
    print("runtimes: " + ", ".join(runtimes))
    return 0
