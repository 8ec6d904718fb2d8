"""Side by side: TinyStudio's generated C against Arm's CMSIS-NN on the MLPerf Tiny int8 models, in QEMU.

For each model (KWS, VWW, IC, AD) and core (Cortex-M4 on mps2-an386, Cortex-M7 on mps2-an500, Cortex-M55 on
mps3-an547) both libraries are built with the same arm-none-eabi-gcc flags (the export's: -O2 and the core's
-mcpu/-mfpu), run on the same inputs (the golden one and random ones), their outputs checked byte for byte
against each other and against the int8 reference (engine.int8.run_int8, the tflite-micro interpreter's
arithmetic), and the instructions each inference executes counted (QEMU TCG plugin): per network, per layer
(instruction windows around each layer call) and per function. Code size: text / rodata / bss of each library
(the difference of two linked programs, as the export's footprint). The CMSIS-NN build is the harness of
benchmarks/cmsis_harness.py; CMSIS-NN comes from $CMSIS_NN_PATH (a checkout of ARM-software/CMSIS-NN); without
it only our figures are printed.

Run: CMSIS_NN_PATH=/tmp/cmsis-nn .venv/bin/python benchmarks/kernel_table.py [--models kws,vww] [--cores m4,m55]
     [--random 2] [--json FILE] [--layers]
Instructions are QEMU's executed-instruction counts, not cycles.
"""
from __future__ import annotations

import argparse
import bisect
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cmsis_harness import LAYER_MARKERS, cmsis_archive, harness_cflags, harness_library  # noqa: E402
from engine.codegen import CodegenOptions, generate_library  # noqa: E402
from engine.export.crossbuild import (compile_board, compile_library, footprint_mains, link_program,  # noqa: E402
                                      measure_footprint, section_sizes, MEASURE_BOARD)
from engine.export.golden import compare, make_cases, pack_inputs, unpack_outputs  # noqa: E402
from engine.export.qemu import cache_dir, run_elf  # noqa: E402
from engine.export.targets import core_target, local_cflags  # noqa: E402
from engine.export.verify_qemu import MARKERS, build_test_elf, verify_program_source  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}
# core key -> (core family, an MCU of that core whose flags the export uses)
CORES = {"m4": ("cortex-m4", "stm32l4r5zi"), "m7": ("cortex-m7", "stm32f746ng"), "m55": ("cortex-m55", "alif-e7-hp")}
LAYER_MARK_DEFS = """
/* Per-layer instruction windows (benchmarks/kernel_table.py) */
__attribute__((noinline, noipa)) void ts_layer_begin(void) { ts_marker = 3u; }
__attribute__((noinline, noipa)) void ts_layer_end(void) { ts_marker = 4u; }
"""
_LAYER_CALL = re.compile(r"^(    )(layer_\d+\(\);)$", re.M)


def cmsis_path() -> Path | None:
    p = os.environ.get("CMSIS_NN_PATH", "")
    return Path(p) if p else None


def marked_library(lib):
    """`lib` with ts_layer_begin()/ts_layer_end() around each layer call in <name>_run_multi."""
    src = lib.files[f"{lib.name}.c"]
    marked, n = _LAYER_CALL.subn(r"\1ts_layer_begin(); \2 ts_layer_end();", src)
    if n != len(lib.layers):
        raise RuntimeError(f"{lib.name}.c: found {n} layer calls for {len(lib.layers)} layers")
    marked = marked.replace('#include "tinystudio_kernels.h"',
                            '#include "tinystudio_kernels.h"\nvoid ts_layer_begin(void);\nvoid ts_layer_end(void);', 1)
    return dataclasses.replace(lib, files={**lib.files, f"{lib.name}.c": marked})


def _program(lib, marks: bool) -> str:
    return verify_program_source(lib) + (LAYER_MARK_DEFS if marks else "")


def build_ours(lib, mcu, work: Path, marks: bool) -> tuple[Path, str]:
    if not marks:
        return build_test_elf(lib, mcu, work)
    mlib = marked_library(lib)
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    objs = compile_library(mlib, cflags, work)
    board_objs, ld = compile_board(target.board, cflags, work)
    return link_program(_program(mlib, True), "verify", objs, board_objs, ld, cflags, work), target.board.machine


def build_cmsis(hlib, mcu, work: Path, cmsis: Path, archive: Path, buf: int | None, marks: bool,
                main: str | None = None) -> tuple[Path, str]:
    target = core_target(mcu)
    cflags = local_cflags(target.cflags)
    objs = compile_library(hlib, cflags, work, harness_cflags(cmsis, buf, marks))
    board_objs, ld = compile_board(target.board, cflags, work)
    prog = main if main is not None else _program(hlib, marks)
    return link_program(prog, "verify", [*objs, archive], board_objs, ld, cflags, work), target.board.machine


def cmsis_buffer_needed(hlib, mcu, work: Path, cmsis: Path, archive: Path) -> int:
    """The largest kernel buffer the layers ask for, from CMSIS-NN's own get_buffer_size on the target."""
    main = (f'#include <stdint.h>\n#include "semihost.h"\n#include "{hlib.header}"\n'
            f'int main(void) {{ ts_put_u32("buffer_needed", (uint32_t){hlib.name}_buffer_needed()); return 0; }}\n')
    elf, machine = build_cmsis(hlib, mcu, work, cmsis, archive, None, False, main)
    run = run_elf(machine, elf, cwd=work, timeout=120)
    m = re.search(r"buffer_needed=(\d+)", run.stdout)
    if run.rc != 0 or not m:
        raise RuntimeError(f"{hlib.name}: buffer-size program failed (rc {run.rc}): {run.stderr[-300:]}")
    return int(m.group(1))


def run_cases(lib, elf: Path, machine: str, work: Path, cases, region, windows=False, per_function=False):
    (work / "inputs.bin").write_bytes(pack_inputs(lib, cases))
    (work / "outputs.bin").unlink(missing_ok=True)
    run = run_elf(machine, elf, cwd=work, timeout=60 + 60 * len(cases), region=region, windows=windows,
                  per_function=per_function)
    if run.rc != 0:
        raise RuntimeError(f"{lib.name} on {machine}: exit {run.rc}: {(run.stderr or run.stdout)[-300:]}")
    blob = (work / "outputs.bin").read_bytes()
    matched, first = compare(cases, unpack_outputs(lib, blob, len(cases)))
    return run, blob, matched, first


# Scalar floating-point and system forms of the V* mnemonics: not Helium vector instructions.
_NOT_MVE = ("vldr", "vstr", "vmov", "vmsr", "vmrs", "vpush", "vpop")


def helium_share(elf: Path, tbs: list) -> float:
    """Share of the executed instructions (every translation block the run entered) that are Helium (MVE)
    vector instructions, from the ELF's disassembly (armv8.1-m.main) and the blocks' execution counts."""
    out = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", str(elf)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    addrs, mve = [], []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].strip().endswith(":"):
            try:
                addrs.append(int(parts[0].strip()[:-1], 16))
            except ValueError:
                continue
            m = parts[2].split()[0] if parts[2].split() else ""
            mve.append(m.startswith("v") and m not in _NOT_MVE and not m.endswith((".f16", ".f32", ".f64")))
    total = vec = 0
    for vaddr, n, execs in tbs:
        i = bisect.bisect_left(addrs, vaddr)
        if i < len(addrs) and addrs[i] == vaddr:
            total += n * execs
            vec += sum(mve[i:i + n]) * execs
    return vec / total if total else 0.0


def measure_lib(lib, mcu, work: Path, cases, build, layer_names) -> dict:
    """Whole-network counts on every case, per-layer and per-function counts on the golden case."""
    elf, machine = build(work / "total", False)
    run, blob, matched, first = run_cases(lib, elf, machine, work / "total", cases, MARKERS)
    per_inf = run.region_insns / run.region_windows
    elf, machine = build(work / "layers", True)
    lrun, _, lmatched, _ = run_cases(lib, elf, machine, work / "layers", cases[:1], LAYER_MARKERS, True, True)
    if len(lrun.window_insns) != len(layer_names):
        raise RuntimeError(f"{lib.name}: {len(lrun.window_insns)} layer windows for {len(layer_names)} layers")
    mve = helium_share(elf, lrun.tbs) if mcu.core in ("cortex-m55", "cortex-m85") else None
    return {"helium_share": mve, "instructions": per_inf, "instructions_per_mac": per_inf / lib.macs,
            "cases": len(cases),
            "bit_exact": matched == len(cases) and lmatched == 1,
            "first_mismatch": None if first is None else str(first),
            "layers": dict(zip(layer_names, lrun.window_insns)),
            "per_function": dict(sorted(lrun.per_function.items(), key=lambda kv: -kv[1])),
            "outputs_sha": hashlib.sha256(blob).hexdigest()}


def cmsis_footprint(hlib, mcu, work: Path, cmsis: Path, archive: Path, buf: int) -> dict:
    """text / rodata / data / bss the harness and the CMSIS-NN code it calls add to a program (the export's
    footprint method: the difference of two linked programs)."""
    cflags = local_cflags(core_target(mcu).cflags)
    objs = compile_library(hlib, cflags, work, harness_cflags(cmsis, buf))
    board_objs, ld = compile_board(MEASURE_BOARD, cflags, work)
    with_lib, without = footprint_mains(hlib)
    a = section_sizes(link_program(with_lib, "footprint", [*objs, archive], board_objs, ld, cflags, work))
    b = section_sizes(link_program(without, "baseline", [*objs, archive], board_objs, ld, cflags, work))
    return {k: max(0, a[k] - b[k]) for k in a}


def measure(key: str, cores: list[str], n_random: int, cmsis: Path | None, tmp: Path, log,
            wide: bool = False) -> dict:
    graph = load_tflite(str(MLPERF / MODELS[key]))
    lib = generate_library(graph, key)
    # the export's speed-for-flash option: int16 pre-widened conv weights (the DSP path reads them directly)
    wlib = generate_library(graph, key, options=CodegenOptions(wide_weights=True)) if wide else None
    cases = make_cases(graph, lib, n_random, seed=1)
    hlib = harness_library(graph, lib) if cmsis else None
    ours_layers = [r["node"] for r in lib.layers]
    out = {"macs": lib.macs, "layers": [{"node": r["node"], "op": r["op"], "kernel": r["kernel"], "macs": r["macs"]}
                                        for r in lib.layers], "cores": {}}
    for ck in cores:
        core, mcu_id = CORES[ck]
        mcu = get_mcu(mcu_id)
        work = tmp / key / ck
        t0 = time.monotonic()
        d: dict = {"core": core, "machine": core_target(mcu).board.machine,
                   "cflags": " ".join(local_cflags(core_target(mcu).cflags) + ("-O2",))}
        d["ours"] = measure_lib(lib, mcu, work / "ours", cases, lambda w, m: build_ours(lib, mcu, w, m), ours_layers)
        fp = measure_footprint(lib, mcu, work / "ours" / "fp")
        d["ours"]["size"] = {"text": fp.text, "rodata": fp.rodata, "data": fp.data, "bss": fp.bss}
        if wlib is not None:
            d["ours_wide"] = measure_lib(wlib, mcu, work / "wide", cases,
                                         lambda w, m: build_ours(wlib, mcu, w, m), [r["node"] for r in wlib.layers])
            fp = measure_footprint(wlib, mcu, work / "wide" / "fp")
            d["ours_wide"]["size"] = {"text": fp.text, "rodata": fp.rodata, "data": fp.data, "bss": fp.bss}
        if hlib is not None:
            archive = cmsis_archive(cmsis, local_cflags(core_target(mcu).cflags), cache_dir() / "cmsis-nn")
            buf = max(4, cmsis_buffer_needed(hlib, mcu, work / "cmsis" / "sizes", cmsis, archive))
            d["cmsis"] = measure_lib(hlib, mcu, work / "cmsis", cases,
                                     lambda w, m: build_cmsis(hlib, mcu, w, cmsis, archive, buf, m),
                                     hlib.stamp["layers"])
            d["cmsis"]["size"] = cmsis_footprint(hlib, mcu, work / "cmsis" / "fp", cmsis, archive, buf)
            d["cmsis"]["buffer_bytes"] = buf
            d["same_outputs"] = d["ours"]["outputs_sha"] == d["cmsis"]["outputs_sha"]
            d["ratio"] = d["ours"]["instructions"] / d["cmsis"]["instructions"]
        out["cores"][ck] = d
        log(f"{key} {ck}: ours {d['ours']['instructions_per_mac']:.3f}/MAC"
            + (f", CMSIS-NN {d['cmsis']['instructions_per_mac']:.3f}/MAC, ratio {d['ratio']:.2f}, same outputs "
               f"{d['same_outputs']}" if "cmsis" in d else "") + f" ({time.monotonic() - t0:.0f} s)")
    return out


def cmsis_commit(cmsis: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(cmsis), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown (not a git checkout)"
    except OSError:
        return "unknown"


def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def network_table(res: dict) -> str:
    rows = ["| model | core | MACs | CMSIS-NN instr./MAC | ours instr./MAC | ours / CMSIS-NN | Helium share "
            "CMSIS-NN / ours | byte-identical |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for key, m in res["models"].items():
        for ck, d in m["cores"].items():
            c = d.get("cmsis")
            same = d["ours"]["bit_exact"] and (c is None or (c["bit_exact"] and d["same_outputs"]))
            rows.append(f"| {key.upper()} | {ck.upper()} | {m['macs']:,} | {_f(c and c['instructions_per_mac'])} | "
                        f"{d['ours']['instructions_per_mac']:.2f} | {_f(d.get('ratio'))} | "
                        f"{_f(c and c.get('helium_share'), '{:.0%}')} / "
                        f"{_f(d['ours'].get('helium_share'), '{:.0%}')} | "
                        f"{'yes' if same else 'NO'} ({d['ours']['cases']} inputs) |")
    return "\n".join(rows)


def size_table(res: dict) -> str:
    rows = ["| model | core | ours text | ours const | ours bss | CMSIS-NN text | CMSIS-NN const | CMSIS-NN bss |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key, m in res["models"].items():
        for ck, d in m["cores"].items():
            o, c = d["ours"]["size"], (d.get("cmsis") or {}).get("size")
            rows.append(f"| {key.upper()} | {ck.upper()} | {o['text']:,} | {o['rodata']:,} | {o['bss']:,} | "
                        + " | ".join(_f(c and c[k], "{:,}") for k in ("text", "rodata", "bss")) + " |")
    return "\n".join(rows)


def wide_table(res: dict) -> str:
    rows = ["| model | core | instr./MAC int8 weights | instr./MAC pre-widened | const B int8 | const B pre-widened "
            "| flash added | byte-identical |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for key, m in res["models"].items():
        for ck, d in m["cores"].items():
            o, w = d["ours"], d.get("ours_wide")
            if w is None:
                continue
            rows.append(f"| {key.upper()} | {ck.upper()} | {o['instructions_per_mac']:.2f} | "
                        f"{w['instructions_per_mac']:.2f} | {o['size']['rodata']:,} | {w['size']['rodata']:,} | "
                        f"{w['size']['rodata'] + w['size']['text'] - o['size']['rodata'] - o['size']['text']:+,} | "
                        f"{'yes' if w['bit_exact'] and w['outputs_sha'] == o['outputs_sha'] else 'NO'} |")
    return "\n".join(rows)


def layer_table(m: dict, ck: str) -> str:
    d = m["cores"][ck]
    c = d.get("cmsis")
    rows = ["| # | layer | op | kernel | MACs | ours instr. | ours /MAC | CMSIS-NN instr. | CMSIS-NN /MAC "
            "| ours / CMSIS-NN |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for i, l in enumerate(m["layers"]):
        o = d["ours"]["layers"].get(l["node"])
        cc = c["layers"].get(l["node"]) if c else None
        per = (lambda n: n / l["macs"] if n is not None and l["macs"] else None)
        rows.append(f"| {i} | {l['node']} | {l['op']} | {l['kernel']} | {l['macs']:,} | {_f(o, '{:,}')} | "
                    f"{_f(per(o))} | {_f(cc, '{:,}')} | {_f(per(cc))} | {_f(o / cc if o and cc else None)} |")
    return "\n".join(rows)


# The targets (instructions per MAC per network) for KWS, VWW and IC; every model: ours <= CMSIS-NN.
TARGETS = {"m4": 1.3, "m7": 1.3, "m55": 0.6}


def targets(res: dict) -> list[str]:
    """One line per target missed (empty: all met)."""
    missed = []
    for key, m in res["models"].items():
        for ck, d in m["cores"].items():
            per = d["ours"]["instructions_per_mac"]
            if key in ("kws", "vww", "ic") and per > TARGETS[ck]:
                missed.append(f"{key.upper()} {ck.upper()}: {per:.2f} instructions/MAC > target {TARGETS[ck]}")
            if d.get("ratio") is not None and d["ratio"] > 1:
                missed.append(f"{key.upper()} {ck.upper()}: {d['ratio']:.2f} x CMSIS-NN's instructions")
    return missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--cores", default=",".join(CORES), help=f"comma-separated, of {', '.join(CORES)}")
    ap.add_argument("--random", type=int, default=2, help="random inputs besides the golden one (default 2)")
    ap.add_argument("--json", default="", help="write every figure to this JSON file")
    ap.add_argument("--layers", action="store_true", help="print the per-layer tables")
    ap.add_argument("--wide", action="store_true", help="also build ours with int16 pre-widened conv weights "
                    "(the export's --wide-weights) and print its instructions and flash")
    args = ap.parse_args()
    models, cores = args.models.split(","), args.cores.split(",")
    bad = [m for m in models if m not in MODELS] + [c for c in cores if c not in CORES]
    if bad:
        print(f"error: unknown model or core {bad[0]!r} (models: {', '.join(MODELS)}; cores: {', '.join(CORES)})",
              file=sys.stderr)
        return 2
    cmsis = cmsis_path()
    if cmsis is None:
        print("CMSIS_NN_PATH is not set: printing TinyStudio's figures only (to compare, export a CMSIS-NN "
              "checkout, e.g. git -C /work/.mirror/ARM-software+CMSIS-NN/repo archive HEAD | tar -x -C "
              "/tmp/cmsis-nn, and set CMSIS_NN_PATH=/tmp/cmsis-nn)", file=sys.stderr)
    elif not (cmsis / "Include" / "arm_nnfunctions.h").is_file():
        print(f"error: CMSIS_NN_PATH={cmsis} has no Include/arm_nnfunctions.h (expected a CMSIS-NN checkout)",
              file=sys.stderr)
        return 2
    res = {"what": "QEMU executed instructions per inference (not cycles); same GCC flags for both libraries",
           "cmsis_nn": None if cmsis is None else {"path": str(cmsis), "commit": cmsis_commit(cmsis)},
           "models": {}}
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="kernel-table-") as td:
        for key in models:
            res["models"][key] = measure(key, cores, args.random, cmsis, Path(td), log, args.wide)
    print(network_table(res))
    print()
    print(size_table(res))
    if args.wide:
        print("\nPre-widened weights (int16 conv weights, the export's --wide-weights):\n" + wide_table(res))
    if args.layers:
        for key, m in res["models"].items():
            for ck in m["cores"]:
                print(f"\n{key.upper()} on {ck.upper()}:\n{layer_table(m, ck)}")
    res["targets_missed"] = targets(res)
    print("\ntargets (M4/M7 <= 1.3, M55 <= 0.6 instructions/MAC on KWS, VWW, IC; ours <= CMSIS-NN): "
          + ("all met" if not res["targets_missed"] else "missed:\n  " + "\n  ".join(res["targets_missed"])))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    ok = all(d["ours"]["bit_exact"] and ("cmsis" not in d or (d["cmsis"]["bit_exact"] and d["same_outputs"]))
             and ("ours_wide" not in d or d["ours_wide"]["bit_exact"])
             for m in res["models"].values() for d in m["cores"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
