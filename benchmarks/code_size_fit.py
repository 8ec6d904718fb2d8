"""Refit the code-size figures of hwmodels/runtimes/tinystudio-c.toml [code] on the kernels as they are now.

Builds nine libraries for the NUCLEO-L4R5ZI's Cortex-M4 (arm-none-eabi-gcc -O2, the export's footprint method:
.text with - without the library): the four MLPerf Tiny models and five zoo models as deployed (int8), and fits
    .text = fixed + sum over the kernel types used (Conv and depthwise sized apart, views free) + per layer
by non-negative least squares, relative to each build's size. Prints each build's measured and fitted size;
with --write puts the figures into [code] and the MLPerf models' code_bytes into calibration.toml [tinystudio_c].
Run: .venv/bin/python benchmarks/code_size_fit.py [--write]   (a few minutes on the shared machine)
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codegen import generate_library  # noqa: E402
from engine.export.crossbuild import measure_footprint  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from hwmodels.estimate import CODE_PATHS, code_kernel_types, layer_work  # noqa: E402
from hwmodels.mcu import get_mcu  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MLPERF = ROOT.parent / "shared" / "data" / "mlperf-tiny"
MLPERF_MODELS = {"kws": "kws_ref_model.tflite", "vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite",
                 "ad": "ad01_int8.tflite"}
ZOO = ("zoo:lenet5", "zoo:micro_speech", "zoo:mobilenetv2?width=0.35&resolution=32", "zoo:sensor_cnn1d",
       "zoo:ic_resnet8")
FREE = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")  # views: no code
# kernel types sized on their own (the DSP variants make them large), and the DSP paths linked only where a layer
# takes them (hwmodels.estimate.CODE_PATHS)
APART = ("Conv", "depthwise", "Add", *CODE_PATHS)


def graphs() -> dict:
    from engine.deployed import graph_at_precision
    from engine.zoo import build_zoo_model

    out = {k: load_tflite(str(MLPERF / f)) for k, f in MLPERF_MODELS.items()}
    for spec in ZOO:
        out[spec] = graph_at_precision(build_zoo_model(spec), "int8")[0]
    return out


def kernel_types(work) -> set[str]:
    return code_kernel_types([w for w in work if w.op not in FREE])


def fit(texts: dict, works: dict) -> dict:
    """Non-negative least squares, each build weighted by 1 / its size (relative errors)."""
    import numpy as np
    from scipy.optimize import nnls

    rows, y = [], []
    for k, text in texts.items():
        types = kernel_types(works[k])
        nodes = sum(1 for w in works[k] if w.kind != "noop")
        rows.append([1.0, *(float(t in types) for t in APART), float(len(types - set(APART))), float(nodes)])
        y.append(float(text))
    a, b = np.array(rows), np.array(y)
    x, _ = nnls(a / b[:, None], np.ones_like(b))
    return {"fixed_bytes": x[0], **dict(zip(APART, x[1:-2])), "per_op_type_bytes": x[-2], "per_node_bytes": x[-1]}


def predict(f: dict, work) -> float:
    types = kernel_types(work)
    return (f["fixed_bytes"] + sum(f.get(t, f["per_op_type_bytes"]) for t in types)
            + f["per_node_bytes"] * sum(1 for w in work if w.kind != "noop"))


def write(f: dict, texts: dict, measured_note: str, errors: str) -> None:
    rt = ROOT / "hwmodels" / "runtimes" / "tinystudio-c.toml"
    text = rt.read_text()
    r = {k: int(round(v)) for k, v in f.items()}
    import textwrap

    note = (f"Measured .text of the library (with - without it, Cortex-M4, -O2, DSP kernels; "
            f"benchmarks/code_size_fit.py): {measured_note}. Non-negative least-squares fit on these nine builds, "
            f"relative to each ({errors}): {r['fixed_bytes']} B shared (requantization helpers, init), "
            f"{r['Conv']} B for the conv kernel, {r['depthwise']} B for the depthwise kernel, {r['Add']} B for ADD "
            f"(their DSP variants); on top of those, for the DSP paths linked only where a layer takes them: "
            + ", ".join(f"{p} {r[p]} B" for p in CODE_PATHS) + "; "
            f"{r['per_op_type_bytes']} B per other kernel type, none for views, "
            f"{r['per_node_bytes']} B per layer (parameter set-up and the call). Portable-only builds are smaller.")
    body = "[code]\n" + "".join(f"# {ln}\n" for ln in textwrap.wrap(note, 112, break_on_hyphens=False))
    keep = re.search(r"^# Flash data.*?(?=^fixed_bytes)", text, re.S | re.M)  # the weights note stays
    body += keep.group(0) if keep else ""
    body += (f"fixed_bytes = {r['fixed_bytes']}\nper_op_type_bytes = {r['per_op_type_bytes']}\n"
             f"per_node_bytes = {r['per_node_bytes']}\nop_type_bytes = {{ "
             + ", ".join(f"{t} = {r[t]}" for t in APART) + ", " + ", ".join(f"{v} = 0" for v in FREE) + " }\n")
    text, n = re.subn(r"^\[code\]\n.*?(?=^source = )", body, text, count=1, flags=re.S | re.M)
    if n != 1:
        raise SystemExit(f"error: {rt}: no [code] table with a source line")
    rt.write_text(text)
    cal = ROOT / "hwmodels" / "calibration.toml"
    line = "code_bytes = { " + ", ".join(f"{k} = {texts[k]}" for k in MLPERF_MODELS) + " }"
    ctext, n = re.subn(r"^code_bytes = \{.*\}$", line, cal.read_text(), flags=re.M)
    if n != 1:
        raise SystemExit(f"error: {cal}: no code_bytes line in [tinystudio_c]")
    cal.write_text(ctext)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true",
                    help="write the figures into tinystudio-c.toml and calibration.toml")
    args = ap.parse_args()
    mcu = get_mcu("stm32l4r5zi")
    gs = graphs()
    texts, works = {}, {}
    with tempfile.TemporaryDirectory() as td:
        for k, g in gs.items():
            fp = measure_footprint(generate_library(g, "m"), mcu, Path(td) / re.sub(r"\W", "_", k))
            texts[k], works[k] = fp.text, layer_work(g)
            print(f"{k}: .text {fp.text:,} B", file=sys.stderr, flush=True)
    f = fit(texts, works)
    print("fit: " + ", ".join(f"{k} {v:,.0f}" for k, v in f.items()))
    errs = {k: predict(f, works[k]) / texts[k] - 1 for k in texts}
    for k in texts:
        print(f"  {k:45s} measured {texts[k]:7,}  fitted {predict(f, works[k]):9,.0f}  {errs[k]:+6.1%}")
    if args.write:
        names = {"zoo:lenet5": "LeNet-5", "zoo:micro_speech": "micro_speech",
                 "zoo:mobilenetv2?width=0.35&resolution=32": "MobileNetV2 0.35 @32", "zoo:sensor_cnn1d":
                 "sensor_cnn1d", "zoo:ic_resnet8": "ResNet-8"}
        note = (", ".join(f"{k.upper()} {texts[k]:,}" for k in MLPERF_MODELS) + " B, and for zoo models as deployed: "
                + ", ".join(f"{names[s]} {texts[s]:,}" for s in ZOO) + " B")
        write(f, texts, note, f"each within {max(abs(e) for e in errs.values()):.0%}")
        print("wrote hwmodels/runtimes/tinystudio-c.toml [code] and calibration.toml code_bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
