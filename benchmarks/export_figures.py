"""Export figures for the MLPerf Tiny models: the generated C's arena against TFLM's, measured flash and RAM, and
executed instructions per MAC on an emulated Cortex-M4 for the portable and the DSP (SMLAD) kernels.

For each model: generate C (engine.codegen), measure it for the NUCLEO-L4R5ZI's Cortex-M4 (arm-none-eabi-gcc -O2,
arm-none-eabi-size), then build it twice for QEMU mps2-an386 (-DTINYSTUDIO_USE_DSP=0 and =1) and run the golden
input plus --inputs random ones, counting instructions inside <name>_run and checking every output byte against
the int8 reference. TFLM's arena (head = activations, total = with its persistent data) comes from
shared/data/mlperf-tiny/README.md. Target (issue 4): DSP path <= 2.0 instructions per MAC on KWS, VWW and IC.
Run: .venv/bin/python benchmarks/export_figures.py [--inputs N] [--detail]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import generate_library  # noqa: E402
from engine.export.crossbuild import measure_footprint  # noqa: E402
from engine.export.golden import make_cases  # noqa: E402
from engine.export.qemu import run_elf  # noqa: E402
from engine.export.verify_qemu import MARKERS, build_test_elf, verify_qemu  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
# (label, file, TFLM head = activations, TFLM arena total) from the README above.
MODELS = [("KWS", "kws_ref_model.tflite", 16_000, 24_272), ("VWW", "vww_96_int8.tflite", 73_728, 103_680),
          ("IC", "pretrainedResnet_quant.tflite", 49_152, 55_984), ("AD", "ad01_int8.tflite", 768, 3_984)]
MCU = "stm32l4r5zi"  # NUCLEO-L4R5ZI, Cortex-M4F: the MLPerf Tiny reference board
TARGET_DSP = 2.0


def per_function(lib, mcu, work: Path, top: int = 6) -> list[tuple[str, int]]:
    elf, machine = build_test_elf(lib, mcu, work, dsp=True)
    (work / "inputs.bin").write_bytes(bytes(sum(s.size for s in lib.inputs)))
    run = run_elf(machine, elf, cwd=work, timeout=120, region=MARKERS, per_function=True)
    return sorted(run.per_function.items(), key=lambda kv: -kv[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=2, help="random inputs per QEMU run besides the golden one")
    ap.add_argument("--detail", action="store_true", help="also print the functions that execute most instructions")
    args = ap.parse_args()
    if not MLPERF.is_dir():
        print(f"MLPerf Tiny models not found in {MLPERF}")
        return 1
    mcu = get_mcu(MCU)
    head = ["model", "MACs", "arena B", "TFLM head B", "TFLM total B", "flash B", "RAM B", "stack B",
            "insn/MAC portable", "insn/MAC DSP", "bit-exact", "DSP target", "time s"]
    rows, details = [head], []
    for label, fname, tflm_head, tflm_total in MODELS:
        t0 = time.perf_counter()
        graph = load_tflite(str(MLPERF / fname))
        lib = generate_library(graph, label.lower())
        cases = make_cases(graph, lib, args.inputs, seed=1)
        with tempfile.TemporaryDirectory() as td:
            fp = measure_footprint(lib, mcu, Path(td) / "fp")
            port = verify_qemu(graph, lib, mcu, cases=cases, dsp=False, workdir=Path(td) / "portable")
            dsp = verify_qemu(graph, lib, mcu, cases=cases, dsp=True, workdir=Path(td) / "dsp")
            if args.detail:
                details.append((label, per_function(lib, mcu, Path(td) / "detail")))
        exact = port.bit_exact and dsp.bit_exact
        target = "-" if label == "AD" else ("met" if dsp.instructions_per_mac <= TARGET_DSP else "MISSED")
        rows.append([label, f"{lib.macs:,}", f"{lib.arena_bytes:,}", f"{tflm_head:,}", f"{tflm_total:,}",
                     f"{fp.flash_bytes:,}", f"{fp.data + fp.bss + (dsp.stack_bytes or fp.stack):,}",
                     f"{dsp.stack_bytes or fp.stack:,}", f"{port.instructions_per_mac:.2f}",
                     f"{dsp.instructions_per_mac:.2f}", f"{'yes' if exact else 'NO'} ({len(cases)}x2)", target,
                     f"{time.perf_counter() - t0:.1f}"])
        print(f"{label}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    print(f"Generated C on {mcu.name} ({mcu.core}, arm-none-eabi-gcc -O2); instructions counted in QEMU mps2-an386 "
          "inside <name>_run (measured; instructions, not cycles). RAM = data + bss (arena) + painted stack.")
    for r in rows:
        print("  ".join(r[c].rjust(widths[c]) if c else r[c].ljust(widths[c]) for c in range(len(r))))
    for label, funcs in details:
        print(f"{label}: " + ", ".join(f"{name} {n:,}" for name, n in funcs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
