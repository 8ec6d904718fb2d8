"""Per-layer instructions per MAC of TinyStudio's DSP kernels on Cortex-M4 and Cortex-M7 (QEMU counts).

For each MLPerf Tiny model: the generated library is built for the core (layer functions kept out of line so that
each has an address), run once in QEMU on the golden input and 2 random inputs with every output byte compared to
the int8 reference (engine.int8.run_int8), then once per layer with the instruction-count window opened at that
layer's function and closed at the next one's, which gives the layer's executed instructions (kernel, requantization
and call overhead). Counts are instructions, not cycles (QEMU models no pipeline); M4 runs on mps2-an386 and M7 on
mps2-an500, each with its own -mcpu build.
Run: .venv/bin/python benchmarks/dsp_layers.py [--models kws,vww,ic,ad] [--cores m4,m7] [--portable] [--json F]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import CodegenOptions, generate_library  # noqa: E402
from engine.export.golden import compare, make_cases, pack_inputs, unpack_outputs  # noqa: E402
from engine.export.qemu import run_elf  # noqa: E402
from engine.export.verify_qemu import MARKERS, build_test_elf  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
          "ad": "ad01_int8.tflite"}
CORES = {"m4": "stm32l4r5zi", "m7": "stm32f746ng"}


def _out_of_line(lib):
    """The library with its layer_<i> functions kept as functions (the count windows open at their addresses)."""
    c = lib.files[f"{lib.name}.c"]
    c = re.sub(r"^static void (layer_\d+)\(void\)", r"__attribute__((noinline, noipa)) void \1(void)", c, flags=re.M)
    return replace(lib, files={**lib.files, f"{lib.name}.c": c})


def measure(key: str, core: str, dsp: bool = True, options: CodegenOptions = CodegenOptions()) -> dict:
    graph = load_tflite(str(MLPERF / MODELS[key]))
    lib = _out_of_line(generate_library(graph, key, options=options))
    mcu = get_mcu(CORES[core])
    with tempfile.TemporaryDirectory() as td:
        work = Path(td)
        elf, machine = build_test_elf(lib, mcu, work, dsp=dsp)
        cases = make_cases(graph, lib, 2, seed=1)
        (work / "inputs.bin").write_bytes(pack_inputs(lib, cases))
        run = run_elf(machine, elf, cwd=work, timeout=900, region=MARKERS)
        if run.rc != 0:
            raise SystemExit(f"error: {key} on {machine} exited with {run.rc}: {run.stderr[-300:]}")
        matched, first = compare(cases, unpack_outputs(lib, (work / "outputs.bin").read_bytes(), len(cases)))
        total = run.region_insns // run.region_windows
        layers = []
        names = [f"layer_{rec['index']}" for rec in lib.layers]
        for i, rec in enumerate(lib.layers):
            stop = names[i + 1] if i + 1 < len(names) else MARKERS[1]
            (work / "inputs.bin").write_bytes(pack_inputs(lib, cases[:1]))
            r = run_elf(machine, elf, cwd=work, timeout=900, region=(names[i], stop))
            layers.append({"index": rec["index"], "comment": rec["comment"], "kernel": rec["kernel"],
                           "macs": rec["macs"], "instructions": r.region_insns})
    return {"model": key, "core": core, "machine": machine, "dsp": dsp, "macs": lib.macs, "instructions": total,
            "per_mac": total / lib.macs, "bit_exact": f"{matched}/{len(cases)}", "first_mismatch": str(first or ""),
            "layers": layers}


def table(res: dict) -> str:
    lines = [f"{res['model']} on {res['core']} ({res['machine']}, {'DSP' if res['dsp'] else 'portable'}): "
             f"{res['instructions']:,} instructions, {res['macs']:,} MACs, {res['per_mac']:.3f}/MAC, "
             f"outputs bit-exact {res['bit_exact']}",
             f"  {'layer':>5} {'MACs':>10} {'instr':>11} {'/MAC':>7}  kernel: layer"]
    for L in res["layers"]:
        pm = f"{L['instructions'] / L['macs']:7.3f}" if L["macs"] else "      -"
        lines.append(f"  {L['index']:>5} {L['macs']:>10,} {L['instructions']:>11,} {pm}  {L['kernel']}: "
                     f"{L['comment'][:70]}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="kws,vww,ic,ad")
    ap.add_argument("--cores", default="m4,m7")
    ap.add_argument("--portable", action="store_true", help="the portable kernels instead of the DSP ones")
    ap.add_argument("--wide-weights", action="store_true", help="int16 pre-widened weights (CodegenOptions)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    opts = CodegenOptions()
    if args.wide_weights:
        opts = replace(opts, wide_weights=True)
    out = []
    for core in args.cores.split(","):
        for key in args.models.split(","):
            res = measure(key, core, not args.portable, opts)
            print(table(res), flush=True)
            out.append(res)
    print("\nsummary (instructions/MAC):")
    for r in out:
        print(f"  {r['model']:4s} {r['core']}: {r['per_mac']:.3f}  bit-exact {r['bit_exact']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
