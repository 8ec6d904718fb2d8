"""Helium (MVE) kernels on Cortex-M55: executed instructions per MAC of TinyStudio's generated C for the MLPerf
Tiny models in QEMU mps3-an547, the MVE kernels (ts_*_mve.c) against the same build on the DSP (SMLAD) kernels
(-DTINYSTUDIO_USE_MVE=0), with every output byte checked against the int8 reference (the tflite-micro
interpreter's arithmetic) on the golden input and random ones.

Counts are instructions inside <name>_run (QEMU's TCG counting plugin), not cycles. Prints one line per model,
the per-kernel-function split with --functions, and JSON with --json.
Run: PYTHONPATH=. .venv/bin/python benchmarks/mve_measure.py [kws vww ic ad] [--functions] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import generate_library  # noqa: E402
from engine.export.crossbuild import compile_board, compile_library, link_program, measure_footprint  # noqa: E402
from engine.export.golden import compare, make_cases, pack_inputs, unpack_outputs  # noqa: E402
from engine.export.qemu import run_elf  # noqa: E402
from engine.export.targets import core_target, local_cflags  # noqa: E402
from engine.export.verify_qemu import MARKERS, qemu_unavailable, verify_program_source  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}
M55 = "alif-e7-hp"   # an MCU file with a Cortex-M55 (Helium): mps3-an547 in QEMU
BUILDS = {"mve": ("-DTINYSTUDIO_USE_MVE=1",), "dsp": ("-DTINYSTUDIO_USE_MVE=0",)}


def run_build(graph, lib, mcu, work: Path, defines: tuple[str, ...], n_random: int, seed: int) -> dict:
    """Cross-compile with `defines`, run golden + random inputs in QEMU, compare bytes, count instructions."""
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    objs = compile_library(lib, cflags, work, defines)
    board_objs, ld = compile_board(target.board, cflags, work)
    elf = link_program(verify_program_source(lib), "verify", objs, board_objs, ld, cflags, work)
    cases = make_cases(graph, lib, n_random, seed)
    (work / "inputs.bin").write_bytes(pack_inputs(lib, cases))
    run = run_elf(target.board.machine, elf, cwd=work, timeout=900, region=MARKERS, per_function=True)
    if run.rc != 0:
        raise RuntimeError(f"QEMU exited with status {run.rc}: {run.stderr[-300:]}")
    matched, first = compare(cases, unpack_outputs(lib, (work / "outputs.bin").read_bytes(), len(cases)))
    per_inf = run.region_insns / (run.region_windows or 1)
    per_fn = {k: v / len(cases) for k, v in sorted(run.per_function.items(), key=lambda kv: -kv[1]) if k != "main"}
    return {"bit_exact": matched == len(cases), "cases": len(cases), "first_mismatch": str(first) if first else "",
            "instructions": per_inf, "per_mac": per_inf / lib.macs, "per_function": per_fn}


def measure(key: str, n_random: int = 1, seed: int = 3) -> dict:
    mcu = get_mcu(M55)
    graph = load_tflite(str(MLPERF / MODELS[key]))
    lib = generate_library(graph, key)
    out = {"model": key, "macs": lib.macs}
    with tempfile.TemporaryDirectory() as td:
        for build, defines in BUILDS.items():
            out[build] = run_build(graph, lib, mcu, Path(td) / build, defines, n_random, seed)
            fp = measure_footprint(lib, mcu, Path(td) / f"fp_{build}", defines)
            out[build]["text"] = fp.text   # the library's code (arm-none-eabi-size), weights are rodata
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--functions", action="store_true", help="print instructions per kernel function")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--random", type=int, default=1, help="random inputs besides the golden one")
    args = ap.parse_args()
    why = qemu_unavailable(get_mcu(M55))
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        print(f"error: unknown model {bad[0]!r} (choose from {', '.join(MODELS)})", file=sys.stderr)
        return 2
    results = [measure(m, args.random) for m in args.models]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{'model':5s} {'MACs':>11s}  {'DSP instr/MAC':>13s}  {'MVE instr/MAC':>13s}  MVE/DSP  code B (DSP, MVE)"
          "  bit-exact (DSP, MVE)")
    for r in results:
        d, m = r["dsp"], r["mve"]
        print(f"{r['model']:5s} {r['macs']:11,d}  {d['per_mac']:13.3f}  {m['per_mac']:13.3f}  "
              f"{m['per_mac'] / d['per_mac']:7.2f}  {d['text']:7,d}, {m['text']:7,d}"
              f"  {d['bit_exact']}, {m['bit_exact']} ({m['cases']} inputs)")
        if args.functions:
            for fn, n in list(m["per_function"].items())[:12]:
                print(f"      {fn:36s} {n:13,.0f}  {n / r['macs']:.3f}/MAC")
    return 0 if all(r["dsp"]["bit_exact"] and r["mve"]["bit_exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
