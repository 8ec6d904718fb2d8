"""Measurements behind hwmodels/runtimes/tinystudio-c.toml: TinyStudio's generated C on the MLPerf Tiny models.

For each model: the library's sections for the NUCLEO-L4R5ZI's Cortex-M4 (arm-none-eabi-size: text = code,
rodata = weights, biases and requantization data, bss = arena + DSP scratch) and, in QEMU mps2-an386 on the
golden input, the painted stack and the executed instructions inside <name>_run per function, for the DSP
(SMLAD) kernels and the portable ones. Prints JSON (the figures calibration.toml [tinystudio_c] holds), then
refits the per-kind rates of hwmodels/runtimes/tinystudio-c.toml (cortex-m4: DSP, cortex-m3: portable) on the
per-kernel instruction counts by least squares and prints them in instructions (x the assumed cycles per
instruction gives the TOML's cycles) with each model's error.
Run: .venv/bin/python benchmarks/runtime_tsc_measure.py [--out FILE.json] [--from FILE.json]
With --from-table FILE.json (written by benchmarks/kernel_table.py --json), refits instead the per-core rates
of every core that table measured (Cortex-M4 on mps2-an386, M7 on mps2-an500, M55 on mps3-an547, our kernels
as the export builds them for that core) and prints each core's measured instructions per model: the figures
of tinystudio-c.toml [cores.cortex-m7] / [cores.cortex-m55] and calibration.toml [tinystudio_c_cores].
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import generate_library  # noqa: E402
from engine.export.crossbuild import measure_footprint  # noqa: E402
from engine.export.golden import make_cases, pack_inputs  # noqa: E402
from engine.export.qemu import run_elf  # noqa: E402
from engine.export.verify_qemu import MARKERS, build_test_elf  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.estimate import MAC_KINDS, layer_cycles, layer_work  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402
from hwmodels.runtime import get_runtime  # noqa: E402

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


# Which layer kinds a kernel function serves ("main" is the test harness's own code: left out).
_GROUPS = (("conv", ("ts_conv", "ts_im2col")), ("depthwise", ("ts_dw", "ts_depthwise")),
           ("fc", ("ts_fc", "ts_fully")), ("elementwise", ("ts_add", "ts_mul", "ts_lut", "ts_minmax")),
           ("pool", ("ts_avg", "ts_max_pool", "ts_mean")), ("softmax", ("ts_softmax", "ts_exp")))
_KIND_GROUP = {"conv": "conv", "pointwise": "conv", "depthwise": "depthwise", "fc": "fc",
               "elementwise": "elementwise", "pool": "pool", "softmax": "softmax"}
FIELDS = ("conv_macs_per_cycle", "pointwise_macs_per_cycle", "depthwise_macs_per_cycle", "fc_macs_per_cycle",
          "column_overhead", "depthwise_channel_overhead", "elementwise_cycles", "pool_cycles", "softmax_cycles",
          "layer_overhead_cycles")


def observed(per_function: dict, work) -> dict[str, float]:
    """Instructions per layer-kind group; the portable requantization helper (ts_mbqm) is shared among the MAC
    kinds by output elements; other helpers (memset, ...) count as 'other'."""
    obs: dict[str, float] = {}
    for fn, n in per_function.items():
        if fn == "main":
            continue
        g = "mbqm" if fn == "ts_mbqm" else next((g for g, pre in _GROUPS if fn.startswith(pre)), "other")
        obs[g] = obs.get(g, 0) + n
    mbqm = obs.pop("mbqm", 0)
    outs: dict[str, int] = {}
    for w in work:
        if w.kind in MAC_KINDS:
            outs[_KIND_GROUP[w.kind]] = outs.get(_KIND_GROUP[w.kind], 0) + w.elements
    for g, e in outs.items():
        obs[g] = obs.get(g, 0) + mbqm * e / sum(outs.values())
    return obs


def predicted(prof, work, rt, mcu) -> dict[str, float]:
    out = {"other": 0.0}
    for w in work:
        if w.kind == "noop":
            continue
        out["other"] += prof.layer_overhead_cycles
        g = _KIND_GROUP.get(w.kind)
        if g:
            out[g] = out.get(g, 0) + layer_cycles(w, prof, rt, mcu) - prof.layer_overhead_cycles
    return out


def fit(meas: dict, works: dict, path: str, core: str, mcu):
    """Least squares on log(predicted / measured) per kernel group (weighted by its share) and per model total."""
    import numpy as np
    from scipy.optimize import least_squares

    rt = get_runtime("tinystudio-c")
    base = rt.core_profile(core)
    obs = {k: observed(meas[k][path]["per_function"], works[k]) for k in meas}
    x0 = np.log([0.5, 0.5, 0.3, 0.5, 10, 4, 5, 3, 100, 1000])

    def prof(x):
        return replace(base, **{f: float(v) for f, v in zip(FIELDS, np.exp(x))})

    def residuals(x):
        p, r = prof(x), []
        for k, o in obs.items():
            pr, total = predicted(p, works[k], rt, mcu), sum(o.values())
            r += [np.sqrt(v / total) * np.log(pr.get(g, 1e-9) / v) for g, v in o.items() if v > 0 and g != "other"]
            r.append(2 * np.log(sum(pr.values()) / total))
        return np.concatenate([r, 0.05 * (x - x0)])

    p = prof(least_squares(residuals, x0).x)
    print(f"{path} kernels ({core}), per instruction (cycles = x cycles/instruction; MACs/cycle = / it):")
    print("  " + ", ".join(f"{f} {getattr(p, f):.4g}" for f in FIELDS))
    for k, o in obs.items():
        pr, macs = predicted(p, works[k], rt, mcu), sum(w.macs for w in works[k])
        print(f"  {k:4s} measured {sum(o.values()):13,.0f} ({sum(o.values()) / macs:5.2f}/MAC)  "
              f"fitted {sum(pr.values()):13,.0f}  {sum(pr.values()) / sum(o.values()) - 1:+6.1%}")
    return p


def fit_layers(models: dict, works: dict, core: str, mcu):
    """Least squares on log(predicted / measured) per layer (weighted by its share of the model) and per model
    total, on the per-layer instruction windows of kernel_table.py: `models` maps a model to its JSON entry
    (layers, cores.<core>.ours)."""
    import numpy as np
    from scipy.optimize import least_squares

    rt = get_runtime("tinystudio-c")
    base = rt.core_profile(core)
    x0 = np.log([0.5, 0.5, 0.3, 0.5, 10, 4, 5, 3, 100, 1000])
    data = []
    for k, (ours, total) in models.items():
        layers = [(w, ours["layers"][w.name]) for w in works[k] if w.name in ours["layers"]]
        data.append((k, layers, total))

    def prof(x):
        return replace(base, **{f: float(v) for f, v in zip(FIELDS, np.exp(x))})

    def residuals(x):
        p, r = prof(x), []
        for k, layers, total in data:
            r += [np.sqrt(n / total) * np.log(layer_cycles(w, p, rt, mcu) / n) for w, n in layers if n > 0]
            pred = sum(layer_cycles(w, p, rt, mcu) for w in works[k] if w.kind != "noop")
            r.append(2 * np.log(pred / total))
        return np.concatenate([r, 0.05 * (x - x0)])

    p = prof(least_squares(residuals, x0).x)
    print(f"our kernels on {core}, fitted per layer, per instruction (cycles = x cycles/instruction):")
    print("  " + ", ".join(f"{f} {getattr(p, f):.4g}" for f in FIELDS))
    for k, layers, total in data:
        pred = sum(layer_cycles(w, p, rt, mcu) for w in works[k] if w.kind != "noop")
        macs = sum(w.macs for w in works[k])
        worst = max(layers, key=lambda wn: abs(np.log(layer_cycles(wn[0], p, rt, mcu) / wn[1])) * wn[1] / total)
        print(f"  {k:4s} measured {total:13,.0f} ({total / macs:5.2f}/MAC)  fitted {pred:13,.0f}  "
              f"{pred / total - 1:+6.1%}  (largest layer error: {worst[0].name} "
              f"{layer_cycles(worst[0], p, rt, mcu) / worst[1] - 1:+.0%})")
    return p


def toml_figures(p, cpi: float) -> str:
    """The fitted per-instruction figures as a [cores.X] body in cycles (x `cpi` cycles per instruction)."""
    lines = []
    for f in FIELDS:
        v = getattr(p, f)
        v = v / cpi if f.endswith("macs_per_cycle") else (v if f in ("column_overhead", "depthwise_channel_overhead")
                                                           else v * cpi)
        lines.append(f"{f} = {v:.4g}")
    return "\n".join(lines)


# Cycles per instruction by core: the Cortex-M4's (calibration.toml [tinystudio_c]); the M7's is the M4's over
# the 0.8 speed tflm-cmsis-nn.toml gives an STM32H743 (flash and AXI-SRAM latency); the M55's comes from
# helium_cpi() (published Cortex-M85 cycles of CMSIS-NN's Helium kernels over their QEMU instruction count,
# / 0.85, tflm-cmsis-nn.toml's M55-to-M85 speed).
M4_CPI = 1.27
M7_SPEED = 0.8
M55_SPEED = 0.85


def from_table(path: str, works: dict) -> dict:
    """Refit each core of a kernel_table.py JSON on our kernels' per-layer counts there; prints the
    [cores.X] figures in cycles and returns {core: (profile, cycles per instruction, {model: instructions})}."""
    from benchmarks.kernel_table import CORES

    table = json.loads(Path(path).read_text())
    cores = sorted({ck for m in table["models"].values() for ck in m["cores"]})
    cpi = {"m4": M4_CPI, "m7": M4_CPI / M7_SPEED}
    if "m55" in cores:
        cpi["m55"] = helium_cpi(table) / M55_SPEED
    out = {}
    for ck in cores:
        core, mcu_id = CORES[ck]
        meas = {k: (m["cores"][ck]["ours"], m["cores"][ck]["ours"]["instructions"]) for k, m in table["models"].items()
                if ck in m["cores"]}
        p = fit_layers(meas, works, core, get_mcu(mcu_id))
        counts = {k: round(total) for k, (_, total) in meas.items()}
        print(f"  instructions per inference ({core}): " + ", ".join(f"{k} = {v}" for k, v in counts.items()))
        print(f"  [cores.{core}] at {cpi[ck]:.4g} cycles/instruction:\n    "
              + toml_figures(p, cpi[ck]).replace("\n", "\n    "))
        out[core] = (p, cpi[ck], counts)
    return out


def helium_cpi(table: dict) -> float:
    """Cycles per instruction of Helium CMSIS-NN code: MLPerf Tiny's published EK-RA8D1 (Cortex-M85, 480 MHz,
    TFLM + CMSIS-NN) cycles over the instructions the same CMSIS-NN kernels execute on QEMU's Cortex-M55;
    the geometric mean over KWS, VWW and IC (AD's 0.5 ms is mostly the interpreter's own overhead)."""
    from hwmodels.calibration import PUBLISHED
    from hwmodels.data import read_toml

    row = next(r for r in read_toml(PUBLISHED)["rows"] if r["mcu"] == "ra8d1" and r["runtime"] == "tflm-cmsis-nn")
    mhz = get_mcu("ra8d1").clock_mhz
    ratios = {}
    for k, m in table["models"].items():
        c = m["cores"].get("m55", {}).get("cmsis")
        if c and k in row["latency_ms"]:
            ratios[k] = row["latency_ms"][k] * 1e3 * mhz / c["instructions"]
    if not ratios:
        raise SystemExit("error: the table has no CMSIS-NN Cortex-M55 counts (run kernel_table.py with "
                         "CMSIS_NN_PATH): the M55 cycles per instruction come from them")
    print("Cortex-M85 cycles per CMSIS-NN Helium instruction (published EK-RA8D1 / QEMU M55 counts): "
          + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    import math
    keys = [k for k in ("kws", "vww", "ic") if k in ratios] or list(ratios)
    return math.exp(sum(math.log(ratios[k]) for k in keys) / len(keys))


_CORE_NOTES = {
    "cortex-m4": ("mps2-an386", "an assumed 1.27, the ratio of the nRF5340's measured CMSIS-NN cycles to the QEMU "
                  "count of the same network (calibration.toml [tinystudio_c], tflm-cmsis-nn.toml)", "estimate"),
    "cortex-m7": ("mps2-an500", "the Cortex-M4's 1.27 / 0.8 (flash wait states and AXI-SRAM latency of an STM32H743 "
                  "at 480 MHz, as in tflm-cmsis-nn.toml)", "M4's 1.27 / 0.8"),
    "cortex-m55": ("mps3-an547", "the published EK-RA8D1 (Cortex-M85, TFLM + CMSIS-NN) cycles over the QEMU count of "
                   "the same CMSIS-NN Helium kernels, / 0.85 for the M55 (tflm-cmsis-nn.toml's ratio)",
                   "from the EK-RA8D1 CMSIS-NN anchor"),
}


def core_section(core: str, p, cpi: float, counts: dict, macs: dict) -> str:
    """The [cores.<core>] table of tinystudio-c.toml for fitted per-instruction figures `p`."""
    machine, why, short = _CORE_NOTES[core]
    import textwrap

    per_mac = ", ".join(f"{k.upper()} {counts[k] / macs[k]:.2f}" for k in counts)
    note = (f"Measured (benchmarks/kernel_table.py, refit by runtime_tsc_measure.py --from-table): our kernels as "
            f"the export builds them for this core, executed instructions in QEMU {machine} (instructions per MAC: "
            f"{per_mac}; calibration.toml "
            f"{'[tinystudio_c] instructions_dsp' if core == 'cortex-m4' else '[tinystudio_c_cores]'}"
            f"), fitted per kind, x {cpi:.4g} cycles per "
            f"instruction: {why}. Instruction-based: an estimate of cycles, not a measurement.")
    return (f"[cores.{core}]\n" + "".join(f"# {line}\n" for line in textwrap.wrap(note, 112, break_on_hyphens=False))
            + f"calibrated = false\n{toml_figures(p, cpi)}\n"
            f'source = "measured instructions (QEMU {machine}, our kernels, MLPerf Tiny models) x {cpi:.3g} '
            f'cycles/instruction ({short})"\n\n')


def write_calibration(fits: dict, macs: dict, runtime_toml: Path, calibration_toml: Path) -> None:
    """Replace [cores.cortex-m4] / [cores.cortex-m7] / [cores.cortex-m55] of tinystudio-c.toml, [tinystudio_c]
    instructions_dsp (the M4's counts) and [tinystudio_c_cores] of calibration.toml with the fitted figures
    (the M33 follows the M4, the M85 the M55)."""
    import re

    text = runtime_toml.read_text()
    for core in ("cortex-m4", "cortex-m7", "cortex-m55"):
        if core in fits:
            p, cpi, counts = fits[core]
            sec = core_section(core, p, cpi, counts, macs)
            text, n = re.subn(rf"^\[cores\.{core}\]\n.*?(?=^\[)", sec.replace("\\", "\\\\"), text,
                              flags=re.S | re.M)
            if n != 1:
                raise SystemExit(f"error: {runtime_toml}: no [cores.{core}] table followed by another table")
    runtime_toml.write_text(text)
    cal = calibration_toml.read_text()
    if "cortex-m4" in fits:  # the DSP kernels' counts of [tinystudio_c] (runtime_tsc_measure's own table)
        counts = fits["cortex-m4"][2]
        line = "instructions_dsp = { " + ", ".join(f"{k} = {v}" for k, v in counts.items()) + " }"
        cal, n = re.subn(r"^instructions_dsp = \{.*\}$", line, cal, flags=re.M)
        if n != 1:
            raise SystemExit(f"error: {calibration_toml}: no instructions_dsp line in [tinystudio_c]")
    cal = cal.split("\n[tinystudio_c_cores]", 1)[0].rstrip("\n") + "\n"
    cores = [c for c in ("cortex-m7", "cortex-m55") if c in fits]
    from benchmarks.kernel_table import CORES
    mcus = {c: m for c, m in CORES.values()}
    cal += ("\n[tinystudio_c_cores]\n"
            "# Our generated C on other cores: executed instructions per inference in QEMU\n"
            "# (benchmarks/kernel_table.py, the export's flags for that core), and the cycles per instruction\n"
            "# tinystudio-c.toml assumes there.\n"
            'runtime = "tinystudio-c"\n'
            'source = "benchmarks/kernel_table.py --json, refit by benchmarks/runtime_tsc_measure.py --from-table"\n'
            "mcu = { " + ", ".join(f'{c} = "{mcus[c]}"' for c in cores) + " }\n"
            "cycles_per_instruction = { " + ", ".join(f"{c} = {fits[c][1]:.4g}" for c in cores) + " }\n\n"
            "[tinystudio_c_cores.instructions]\n"
            + "".join(f"{c} = {{ " + ", ".join(f"{k} = {v}" for k, v in fits[c][2].items()) + " }\n" for c in cores))
    calibration_toml.write_text(cal)


def write_measured(out: dict, runtime_toml: Path, calibration_toml: Path) -> None:
    """The measured RAM, flash, code and portable instruction counts into calibration.toml [tinystudio_c], and the
    painted stacks into tinystudio-c.toml [ram] (the DSP counts come from --from-table: kernel_table's)."""
    import re

    figures = {"ram_bytes": {k: d["bss"] + d["data"] + d["dsp"]["stack"] for k, d in out.items()},
               "flash_bytes": {k: d["text"] + d["rodata"] + d["data"] for k, d in out.items()},
               "code_bytes": {k: d["text"] for k, d in out.items()},
               "instructions_portable": {k: d["portable"]["instructions"] for k, d in out.items()}}
    cal = calibration_toml.read_text()
    for what, vals in figures.items():
        line = f"{what} = {{ " + ", ".join(f"{k} = {v}" for k, v in vals.items()) + " }"
        cal, n = re.subn(rf"^{what} = \{{.*\}}$", line, cal, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"error: {calibration_toml}: no {what} line in [tinystudio_c]")
    calibration_toml.write_text(cal)
    # Which kernel sets the deepest stack: the depthwise DSP kernel in KWS and VWW, the ADD row kernel in IC (its
    # 192 B frame is the deepest there, gcc -fstack-usage), the FC kernel alone in AD.
    stack = {k: d["dsp"]["stack"] for k, d in out.items()}
    plain, deep, add = stack["ad"], max(stack["kws"], stack["vww"]), stack["ic"]
    port = [d["portable"]["stack"] for d in out.values()]
    text = runtime_toml.read_text()
    note = (f"# The stack below <name>_run, painted in QEMU: {deep} B with the depthwise DSP kernel (KWS, VWW), "
            f"{add} B with\n# the ADD kernel (IC), {plain} B otherwise (AD); the portable kernels use less "
            f"({min(port)}-{max(port)} B), so on cores\n# without DSP the estimate is high by up to "
            f"~{deep - min(port)} B plus the scratch below.\n")
    text, n1 = re.subn(r"^# The stack below <name>_run.*?(?=^fixed_bytes)", note, text, count=1, flags=re.S | re.M)
    text, n2 = re.subn(r"^stack_bytes = \d+$", f"stack_bytes = {plain}", text, count=1, flags=re.M)
    text, n3 = re.subn(r"^stack_bytes_by_kind = \{.*\}$",
                       f"stack_bytes_by_kind = {{ depthwise = {deep}, elementwise = {add} }}", text, count=1,
                       flags=re.M)
    if (n1, n2, n3) != (1, 1, 1):
        raise SystemExit(f"error: {runtime_toml}: [ram] is not in the form this tool writes")
    runtime_toml.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="")
    ap.add_argument("--from", dest="src", default="", help="refit on a JSON written by --out instead of measuring")
    ap.add_argument("--from-table", dest="table", default="",
                    help="refit every core of a JSON written by benchmarks/kernel_table.py --json")
    ap.add_argument("--write", action="store_true", help="with --from-table: write the M4, M7 and M55 rates into "
                    "tinystudio-c.toml and calibration.toml; with --from: the measured RAM, flash, code, portable "
                    "counts and stacks")
    args = ap.parse_args()
    mcu = get_mcu("stm32l4r5zi")
    works = {key: layer_work(load_tflite(str(MLPERF / fname))) for key, fname in MODELS}
    root = Path(__file__).resolve().parents[1] / "hwmodels"
    if args.table:
        fits = from_table(args.table, works)
        if args.write:
            macs = {k: sum(w.macs for w in works[k]) for k in works}
            write_calibration(fits, macs, root / "runtimes" / "tinystudio-c.toml", root / "calibration.toml")
            print("wrote hwmodels/runtimes/tinystudio-c.toml [cores.*] of " + ", ".join(fits)
                  + " and hwmodels/calibration.toml (instructions_dsp, [tinystudio_c_cores])")
        return 0
    if args.src:
        out = json.loads(Path(args.src).read_text())
        fit(out, works, "dsp", "cortex-m4", mcu)
        fit(out, works, "portable", "cortex-m3", mcu)
        if args.write:
            write_measured(out, root / "runtimes" / "tinystudio-c.toml", root / "calibration.toml")
            print("wrote calibration.toml [tinystudio_c] ram/flash/code/portable figures and tinystudio-c.toml [ram]")
        return 0
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
    fit(out, works, "dsp", "cortex-m4", mcu)
    fit(out, works, "portable", "cortex-m3", mcu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
