"""PTQ of MLPerf Tiny's published float models: each quantizes, exports a C library and verifies bit for bit.

For every float file of the mlcommons/tiny mirror (kws_ref_model_float32, ad01_fp32, pretrainedResnet,
pretrainedResnet_large_float, vww_96_float): int8 PTQ calibrated on calibration-like inputs (the files ship
without their data sets: smooth random inputs in the input range of the int8 twin published beside each
float file, i.e. the range its authors calibrated on), then
- the accuracy proxy on HELD-OUT synthetic inputs (another seed than calibration): top-1 (argmax) agreement
  of int8 with float for the classifiers, and the output SNR (the only figure for ad01, an autoencoder);
- the generated C against our int8 reference (gcc on the host, every output byte, `--inputs` random inputs);
- our int8 reference against the tflite-micro interpreter running the int8 .tflite written from our graph
  (tests/engine/test_ptq.py's test-only writer), on the held-out inputs quantized;
- MACs, the planned activation arena, weight bytes, and the channels whose weight scale PTQ widened so the
  int32 bias and accumulator fit (engine/passes/quantize.py widen_for_bias), i.e. what was clamped.
Files absent from the mirror are skipped with a message.
Run: .venv/bin/python benchmarks/ptq_real_models.py [--calib 32] [--held-out 64] [--inputs 20] [--json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.codegen import generate_library  # noqa: E402
from engine.compress.base import dequantize_weights  # noqa: E402
from engine.execute import run_graph  # noqa: E402
from engine.export.verify_host import verify_host  # noqa: E402
from engine.importers.tflite_import import load_tflite  # noqa: E402
from engine.int8 import prepare_int8  # noqa: E402
from engine.passes.calibrate import as_feeds, synthetic_calibration  # noqa: E402
from engine.passes.ptq import compare_int8, prepare_float, quantize_inputs, quantize_model, to_graph_layout  # noqa: E402

MIRROR = Path("/work/.mirror/mlcommons+tiny/repo")
_T = "benchmark/training/"
FILES = {  # name -> (float file, its int8 twin published beside it) in mlcommons/tiny
    "kws_ref_model_float32": (_T + "keyword_spotting/trained_models/kws_ref_model_float32.tflite",
                              _T + "keyword_spotting/trained_models/kws_ref_model.tflite"),
    "ad01_fp32": (_T + "anomaly_detection/trained_models/ad01_fp32.tflite",
                  _T + "anomaly_detection/trained_models/ad01_int8.tflite"),
    "pretrainedResnet": (_T + "image_classification/trained_models/pretrainedResnet.tflite",
                         _T + "image_classification/trained_models/pretrainedResnet_quant.tflite"),
    "pretrainedResnet_large_float": (_T + "image_classification/trained_models/pretrainedResnet_large_float.tflite",
                                     _T + "image_classification/trained_models/pretrainedResnet_large_int8.tflite"),
    "vww_96_float": (_T + "visual_wake_words/trained_models/vww_96_float.tflite",
                     _T + "visual_wake_words/trained_models/vww_96_int8.tflite"),
}


def input_range(twin: bytes | None) -> tuple[float, float] | None:
    """The real input range the authors calibrated on, read from the int8 twin's input grid."""
    if twin is None:
        return None
    g = load_tflite("twin.tflite", data=twin)
    q = g.tensors[g.inputs[0]].quant
    s, z = float(q.scale[0]), int(q.zero_point[0])
    return s * (-128 - z), s * (127 - z)


def calibration_like(g, n: int, seed: int, rng_range: tuple[float, float] | None) -> list[dict]:
    """Inputs resembling the calibration data without the data set: in the twin's input range, and for
    images/spectrograms smooth (4x4 blocks of uniform values, so the classifiers reach several classes);
    standard normal when no twin is available."""
    if rng_range is None:
        return list(synthetic_calibration(g, n, seed))
    lo, hi = rng_range
    rng = np.random.default_rng(seed)
    name, shape = g.inputs[0], g.tensors[g.inputs[0]].shape
    out = []
    for _ in range(n):
        if len(shape) == 4:
            c = rng.uniform(lo, hi, (1, 4, 4, shape[-1]))
            x = np.kron(c, np.ones((1, -(-shape[1] // 4), -(-shape[2] // 4), 1)))[:, :shape[1], :shape[2]]
        else:
            x = rng.uniform(lo, hi, shape)
        out.append({name: x.astype(np.float32)})
    return out


def read_mirror(path: str) -> bytes | None:
    if not MIRROR.is_dir():
        return None
    r = subprocess.run(["git", "-C", str(MIRROR), "show", f"HEAD:{path}"], capture_output=True)
    return r.stdout if r.returncode == 0 and r.stdout else None


def tflm_agreement(qg, held_out: list[dict]) -> str:
    """Our int8 reference vs tflite-micro on the .tflite written from qg: 'k/n' or why it was not run."""
    try:
        from tflite_micro.python.tflite_micro import runtime

        from tests.engine.test_ptq import to_tflite
        data = to_tflite(qg)
    except (ImportError, AssertionError) as e:
        return f"n/a ({e})"
    interp = runtime.Interpreter.from_bytes(data, arena_size=max(1 << 21, 8 * len(data)))
    plan = prepare_int8(qg)
    same = 0
    for f in held_out:
        q = quantize_inputs(qg, f, original_layout=False)[qg.inputs[0]]
        interp.set_input(q, 0)
        interp.invoke()
        same += int(np.array_equal(plan.run({qg.inputs[0]: q})[qg.outputs[0]], interp.get_output(0)))
    return f"{same}/{len(held_out)}"


def run_model(name: str, data: bytes, twin: bytes | None, n_calib: int, n_held: int, n_inputs: int) -> dict:
    t0 = time.perf_counter()
    # kws_ref_model_float32 stores int8 weights with float activations: PTQ starts from the float values they
    # stand for (exact), as export and the Compress actions do
    g = dequantize_weights(load_tflite(f"{name}.tflite", data=data))
    span = input_range(twin)
    cal = calibration_like(g, n_calib, 0, span)
    qg, rep = quantize_model(g, calibration=cal, per_layer=False)
    widened = sum(p.changes.get("weight_scales_widened_for_bias", 0) for p in rep.passes)
    prepared, _ = prepare_float(g)
    held = [to_graph_layout(prepared, f) for f in as_feeds(g, calibration_like(g, n_held, 1, span))]
    outs, _ = compare_int8(prepared, qg, held)
    # how many different float top-1 classes the held-out inputs reach: 100 % agreement on one class says little
    classes = {int(np.argmax(run_graph(prepared, f)[prepared.outputs[0]])) for f in held}
    o = outs[0]
    lib = generate_library(qg, name.lower()[:24])
    with tempfile.TemporaryDirectory() as td:
        res = verify_host(qg, lib, n_random=n_inputs, seed=3, workdir=td)
    return {"model": name, "file_bytes": len(data), "input_range": span, "macs": lib.macs, "arena_bytes": lib.arena_bytes,
            "weights_bytes": lib.weights_bytes, "channels_widened": widened,
            "clamped": [w for w in rep.warnings if "widened" in w],
            "kind": o.kind, "top1_agreement": o.argmax_agreement,
            "float_classes_seen": len(classes) if o.kind == "classifier" else None, "snr_db": round(o.snr_db, 2),
            "held_out": n_held, "c_bit_exact": f"{res.matched}/{res.inputs}", "c_ok": res.bit_exact,
            "tflm_vs_reference": tflm_agreement(qg, held), "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=32, help="synthetic calibration samples (seed 0)")
    ap.add_argument("--held-out", type=int, default=64, help="held-out synthetic inputs (seed 1) for the proxy")
    ap.add_argument("--inputs", type=int, default=20, help="random int8 inputs for C vs reference")
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows, skipped = [], []
    for name, (path, twin_path) in FILES.items():
        if a.only and name not in a.only.split(","):
            continue
        data = read_mirror(path)
        if data is None:
            skipped.append(f"skipped {name}: {path} not found in the mlcommons/tiny mirror {MIRROR}")
            print(skipped[-1], file=sys.stderr)
            continue
        rows.append(run_model(name, data, read_mirror(twin_path), a.calib, a.held_out, a.inputs))
        print(f"{name}: done in {rows[-1]['seconds']} s", file=sys.stderr)
    if a.json:
        print(json.dumps({"rows": rows, "skipped": skipped}, indent=1))
        return 0
    print(f"PTQ calibrated on {a.calib} calibration-like samples (seed 0: smooth random inputs in the input range "
          f"of the published int8 twin); proxy on {a.held_out} held-out ones (seed 1); C vs int8 reference on the "
          f"golden + {a.inputs} random inputs; reference vs tflite-micro on the held-out ones\n")
    print("| model | MACs | arena | weights | channels widened | top-1 agreement | SNR dB | C = reference "
          "| reference = tflite-micro |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        top1 = (f"{r['top1_agreement']:.1%} ({r['float_classes_seen']} classes)" if r["top1_agreement"] is not None
                else "n/a (autoencoder)")
        print(f"| {r['model']} | {r['macs']:,} | {r['arena_bytes']:,} B | {r['weights_bytes']:,} B "
              f"| {r['channels_widened']} | {top1} | {r['snr_db']:.1f} | {r['c_bit_exact']} "
              f"| {r['tflm_vs_reference']} |")
    for s in skipped:
        print(s)
    return 0 if all(r["c_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
