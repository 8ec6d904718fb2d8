"""Measurements behind hwmodels/runtimes/tinystudio-c.toml: TinyStudio's generated C on the MLPerf Tiny models.

For each model: the library's sections for the NUCLEO-L4R5ZI's Cortex-M4 (arm-none-eabi-size: text = code,
rodata = weights, biases and requantization data, bss = arena + DSP scratch) and, in QEMU mps2-an386 on the
golden input, the painted stack and the executed instructions inside <name>_run per function, for the DSP
(SMLAD) kernels and the portable ones. Prints JSON (the figures the runtime profile cites).
Run: .venv/bin/python benchmarks/runtime_tsc_measure.py [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import generate_library  # noqa: E402
from engine.export.crossbuild import measure_footprint  # noqa: E402
from engine.export.golden import make_cases, pack_inputs  # noqa: E402
from engine.export.qemu import run_elf  # noqa: E402
from engine.export.verify_qemu import MARKERS, build_test_elf  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
MODELS = [("kws", "kws_ref_model.tflite"), ("vww", "vww_96_int8.tflite"), ("ic", "pretrainedResnet_quant.tflite"),
          ("ad", "ad01_int8.tflite")]


def counts(graph, lib, mcu, work: Path, dsp: bool) -> dict:
    elf, machine = build_test_elf(lib, mcu, work, dsp=dsp)
    cases = make_cases(graph, lib, 0, seed=1)
    (work / "inputs.bin").write_bytes(pack_inputs(lib, cases))
    run = run_elf(machine, elf, cwd=work, timeout=900, region=MARKERS, per_function=True)
    stack = next((int(line.split("=", 1)[1]) for line in run.stdout.splitlines() if line.startswith("stack_bytes=")),
                 None)
    return {"instructions": sum(run.per_function.values()), "stack": stack,
            "per_function": dict(sorted(run.per_function.items(), key=lambda kv: -kv[1]))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    mcu = get_mcu("stm32l4r5zi")
    out = {}
    for key, fname in MODELS:
        graph = load_tflite(str(MLPERF / fname))
        lib = generate_library(graph, key)
        with tempfile.TemporaryDirectory() as td:
            fp = measure_footprint(lib, mcu, Path(td) / "fp")
            d = {"macs": lib.macs, "arena": lib.arena_bytes, "text": fp.text, "rodata": fp.rodata, "data": fp.data,
                 "bss": fp.bss, "static_stack": fp.stack}
            d["dsp"] = counts(graph, lib, mcu, Path(td) / "dsp", True)
            d["portable"] = counts(graph, lib, mcu, Path(td) / "port", False)
        out[key] = d
        print(key, json.dumps({k: v for k, v in d.items() if k not in ("dsp", "portable")}),
              d["dsp"]["instructions"], d["dsp"]["stack"], d["portable"]["instructions"], d["portable"]["stack"],
              file=sys.stderr, flush=True)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
