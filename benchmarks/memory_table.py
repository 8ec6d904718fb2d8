"""Memory schedules table (issue 13): peak SRAM of each schedule against TFLM's arena and the layer bound.

Rows: the four MLPerf Tiny int8 files, MobileNetV2 1.0 @224 and 0.35 @96 (zoo, PTQ'd to int8 on synthetic data:
the calibration does not change shapes, so arenas and MACs are those of any calibration), each with the schedules
layer, inplace, patch, fused and auto (MAC-overhead limit 10 %; 15 % for MobileNetV2, the issue's figure). Fused
blocks include the residual Add that closes a block where there is one (its sum written over the block input).
Columns: the arena the planner places (the C's static arena), the layer-by-layer lower bound and TFLM's
measured greedy arena (MLPerf README), how far below the bound, executed MACs and the overhead.
With --verify: every scheduled library is generated, built on the host with ASan/UBSan and compared byte for
byte with the layer-by-layer int8 reference (run_int8) on 2 inputs; with --qemu: run in QEMU on Cortex-M4
(mps2-an386) and Cortex-M55 (mps3-an547, where the model fits its 512 KB ITCM/DTCM), bit-exact checked, and
the executed instruction count's overhead over the layer schedule next to the predicted MAC overhead.
Then a VWW-class model for <= 32 KB of SRAM: exported with its schedule, measured (arm-none-eabi-size +
painted stack in QEMU) and verified.
Run: .venv/bin/python benchmarks/memory_table.py [--verify] [--qemu] [--only VWW] [--kinds layer,fused] [--markdown]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import TinyStudioError  # noqa: E402
from engine.memory import plan_memory  # noqa: E402
from engine.memory.auto import base_macs, choose_schedule  # noqa: E402
from engine.validate import infer_shapes  # noqa: E402

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf-tiny"
# (label, file, TFLM's greedy arena from the MLPerf README)
MLPERF_ROWS = [("KWS", "kws_ref_model.tflite", 16_000), ("VWW", "vww_96_int8.tflite", 73_728),
               ("IC", "pretrainedResnet_quant.tflite", 49_152), ("AD", "ad01_int8.tflite", 768)]
KINDS = ("layer", "inplace", "patch", "fused", "auto")
QEMU_MCUS = (("M4", "stm32l4r5zi"), ("M55", "alif-e7-hp"))
# The VWW-class model of the <= 32 KB row: MLPerf Tiny's VWW network (MobileNetV1 x0.25) at 80x80 input.
SMALL_VWW = "zoo:vww_mobilenetv1?resolution=80"
SMALL_BUDGET = 32 * 1024


def models(only: str | None):
    from engine.importers.tflite_import import load_tflite

    for label, file, tflm in MLPERF_ROWS:
        if only in (None, label):
            yield label, infer_shapes(load_tflite(MLPERF / file)), tflm, 0.10
    if only in (None, "MobileNetV2"):
        yield "MobileNetV2 1.0@224", mobilenetv2(), None, 0.15
    if only in (None, "MobileNetV2-0.35"):
        yield "MobileNetV2 0.35@96", mobilenetv2("zoo:mobilenetv2?resolution=96&width=0.35"), None, 0.15


def mobilenetv2(spec: str = "zoo:mobilenetv2"):
    from engine.passes.ptq import quantize_model
    from engine.zoo import build_zoo_model

    qg, _ = quantize_model(build_zoo_model(spec), synthetic_samples=2)
    return infer_shapes(qg)


def qemu_run(g, lib, mcu_id):
    from engine.export.verify_qemu import qemu_unavailable, verify_qemu
    from hwmodels.mcu import get_mcu

    mcu = get_mcu(mcu_id)
    if qemu_unavailable(mcu):
        return None, qemu_unavailable(mcu)
    try:
        r = verify_qemu(g, lib, mcu, n_random=0, seed=1)
    except TinyStudioError as e:
        return None, str(e)[:80]
    return r, ""


def row(label, g, tflm, kind, limit, args, layer_insns) -> dict:
    from engine.codegen import generate_library

    t = time.perf_counter()
    try:
        s = choose_schedule(g, kind, limit)
    except TinyStudioError as e:
        return {"model": label, "asked": kind, "kind": "-", "note": str(e)[:90]}
    plan = plan_memory(g, schedule=s)
    macs = base_macs(g)
    r = {"model": label, "asked": kind, "kind": s.kind, "arena": plan.arena_bytes,
         "bound": plan.layer_lower_bound_bytes, "tflm": tflm, "macs": macs + plan.macs_extra,
         "overhead": plan.macs_extra / macs if macs else 0.0, "plan_s": time.perf_counter() - t, "note": ""}
    if s.patch is not None:
        r["note"] = (f"patch up to {s.patch.split} {s.patch.grid[0]}x{s.patch.grid[1]}"
                     + (" (output over input)" if s.patch.overlap else ""))
    if s.fused:
        adds = sum(b.add is not None for b in s.fused)
        r["note"] += f"{'; ' if r['note'] else ''}{len(s.fused)} fused" + (f" ({adds} with the Add)" if adds else "")
    if s.inplace:
        r["note"] += f"{'; ' if r['note'] else ''}{len(s.inplace)} in-place dw"
    if not (args.verify or args.qemu):
        return r
    try:
        lib = generate_library(g, "m", schedule=s)
    except TinyStudioError as e:
        r["host"] = r["M4"] = r["M55"] = f"n/a ({str(e)[:70]})"
        return r
    assert lib.arena_bytes == plan.arena_bytes
    if args.verify:
        from engine.export.verify_host import verify_host

        h = verify_host(g, lib, n_random=1, seed=2, sanitize=True)
        r["host"] = "bit-exact" if h.bit_exact else f"DIFFERS ({h.first_mismatch.describe()})"
    if args.qemu:
        for core, mcu_id in QEMU_MCUS:
            q, why = qemu_run(g, lib, mcu_id)
            if q is None:
                r[core] = f"n/a ({why})"
                continue
            base = layer_insns.setdefault(core, q.instructions_per_inference if s.is_layer else None)
            over = f" {q.instructions_per_inference / base - 1:+.1%}" if base else ""
            r[core] = f"{'bit-exact' if q.bit_exact else 'DIFFERS'} {q.instructions_per_inference:,.0f}{over}"
    return r


def small_vww(args) -> list[str]:
    """The VWW-class model for <= 32 KB: the smallest-arena schedule, exported, measured and verified."""
    import tempfile

    from engine.export.pipeline import export_model
    from engine.zoo import build_zoo_model

    g = build_zoo_model(SMALL_VWW)
    mode = "qemu" if args.qemu else "host"
    with tempfile.TemporaryDirectory() as td:
        res = export_model(g, "stm32l4r5zi", Path(td) / "vww_small.zip", verify=mode, n_inputs=2,
                           schedule="patch", max_mac_overhead=0.10)
    rep = res.report
    m, sch = rep["measured"], rep["schedule"]
    ram = m.get("ram_bytes")
    return [f"{SMALL_VWW} int8 ({rep['macs']:,} MACs), schedule {sch['kind']} ({sch['why']})",
            f"arena {rep['arena_bytes']:,} B (layer-by-layer bound {sch['layer_lower_bound_bytes']:,} B); measured RAM "
            f"(data + bss + stack{', stack painted in QEMU' if mode == 'qemu' else ''}) "
            f"{ram:,} B {'<=' if ram <= SMALL_BUDGET else '>'} {SMALL_BUDGET:,} B (the caller's input/output buffers, "
            f"{m.get('io_bytes', 0):,} B, are the application's); flash {m.get('flash_bytes'):,} B; "
            f"verified ({mode}): {'bit-exact' if rep['verify']['bit_exact'] else 'DIFFERS'} on "
            f"{rep['verify']['inputs']} inputs" if ram is not None else f"not measured: {m.get('note')}"]


def table(rows: list[dict], cols: list[tuple[str, str]], markdown: bool) -> str:
    def cell(r, k):
        v = r.get(k)
        if v is None:
            return "-"
        if k == "overhead":
            return f"{v:+.1%}"
        if k == "below":
            return f"{v:.2f}x"
        if isinstance(v, int):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:.1f}"
        return str(v)

    head = [h for h, _ in cols]
    body = [[cell(r, k) for _, k in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths)) for x in [head] + body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verify", action="store_true", help="host build with ASan/UBSan, bit-exact check")
    ap.add_argument("--qemu", action="store_true", help="QEMU Cortex-M4 and M55: bit-exact and instruction counts")
    ap.add_argument("--only", help="one model: KWS, VWW, IC, AD, MobileNetV2 (1.0@224) or MobileNetV2-0.35 (@96)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--no-small", action="store_true", help="skip the <= 32 KB VWW-class export")
    args = ap.parse_args()
    rows = []
    for label, g, tflm, limit in models(args.only):
        layer_insns: dict = {}
        for kind in args.kinds.split(","):
            r = row(label, g, tflm, kind, limit, args, layer_insns)
            if "arena" in r:
                r["below"] = r["bound"] / r["arena"]
            rows.append(r)
            print(f"... {label} {kind}: {r.get('arena', '-')} B {r.get('note', '')}", file=sys.stderr, flush=True)
    cols = [("model", "model"), ("asked", "asked"), ("schedule", "kind"), ("arena B", "arena"),
            ("layer bound B", "bound"), ("TFLM arena B", "tflm"), ("below bound", "below"), ("MACs", "macs"),
            ("MAC overhead", "overhead"), ("what", "note")]
    if args.verify:
        cols.append(("host ASan/UBSan", "host"))
    if args.qemu:
        cols += [("QEMU M4 insns (overhead)", "M4"), ("QEMU M55 insns (overhead)", "M55")]
    print(table(rows, cols, args.markdown))
    print("\nMAC-overhead limit 10 % (MobileNetV2: 15 %). Arena: the planner's placement = the C's static arena "
          "(16-byte aligned buffers). TFLM: MLPerf README's measured greedy arena.")
    if not args.no_small and args.only in (None, "VWW"):
        print()
        print("\n".join(small_vww(args)))


if __name__ == "__main__":
    main()
