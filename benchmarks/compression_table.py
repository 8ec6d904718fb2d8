"""Compression on real data: LeNet-5 (ReLU) trained on scikit-learn's digits, then every main action.

Rows: the float model; int8 PTQ (target: <= 1 point accuracy drop); QAT int8; structured channel pruning to
50 % of the MACs with fine-tuning (target: <= 2 points drop); low-rank factorization to 50 % of the weights;
mixed int8/int4 weights; ternary QAT. Each row gives MACs, weight bytes, peak SRAM (the planned activation
arena as stored: float32 for float graphs, and what the same plan needs at one byte per element, i.e. once
quantized) and validation accuracy, all measured by engine.compress. The digits are 8x8; the zoo's LeNet-5
takes 16x16 and adapt_zoo puts a nearest-neighbour Resize in front (see engine/train/adapt.py).
Run: .venv/bin/python benchmarks/compression_table.py [--seed N] [--seeds K] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.compress import compress  # noqa: E402
from engine.compress.measure import measure  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.train import adapt_zoo, train  # noqa: E402

MODEL = "zoo:lenet5?act=relu"
ROWS = [  # (label, action, params, target accuracy drop in points or None)
    ("int8 PTQ", "quantize-int8", {}, 1.0),
    ("int8 QAT", "qat-int8", {"epochs": 5}, None),
    ("channels pruned to 50% MACs", "prune-channels",
     {"target": "macs", "keep": 0.5, "criterion": "taylor", "epochs": 20}, 2.0),
    ("low-rank to 50% weights", "low-rank", {"target": "weights", "keep": 0.5, "epochs": 20, "lr": 3e-3}, None),
    ("mixed int8/int4", "mixed-precision", {"max_drop": 1.0}, None),
    ("ternary QAT (1.58-bit)", "ternary", {"epochs": 20}, None),
]


def run(seed: int) -> dict:
    data = load_dataset("digits", seed=seed)
    t0 = time.perf_counter()
    model, rep = train(adapt_zoo(MODEL, data, seed=seed), data, epochs=60, lr=2e-3, batch_size=32, seed=seed,
                       patience=8)
    base = {"label": "float", "action": None, **measure(model, data), "seconds": time.perf_counter() - t0,
            "target": None}
    rows = [base]
    for label, action, params, target in ROWS:
        t0 = time.perf_counter()
        res = compress(model, action, params, data, seed=seed, measure_before={k: v for k, v in base.items()})
        row = {"label": label, "action": action, "params": params, **res.after,
               "seconds": time.perf_counter() - t0, "target": target}
        rep_ = res.report
        if action == "ternary":
            row["note"] = f"packed 1.58-bit weights would need {rep_['storage']['entropy_1_58_bit_bytes']:,} B"
        elif action == "mixed-precision":
            row["note"] = f"{len(rep_['int4_layers'])}/{len(rep_['sensitivity'])} layers int4"
            if not rep_["c_export"].get("int4_packed_in_c", False):
                row["note"] += "; the C export stores int4 one per byte"
        elif action == "prune-channels":
            row["note"] = ", ".join(f"{k} {v['before']}->{v['after']}" for k, v in rep_["channels"].items()
                                    if v["before"] != v["after"])
        elif action == "low-rank":
            row["note"] = ", ".join(f"{ly['layer']} {ly['kind']} r={'x'.join(map(str, ly['ranks']))}"
                                    for ly in rep_["layers"])
        rows.append(row)
    for r in rows:
        r["drop_points"] = (base["accuracy"] - r["accuracy"]) * 100.0
        r["meets_target"] = None if r["target"] is None else r["drop_points"] <= r["target"]
    return {"seed": seed, "model": model.name, "dataset": data.name, "train_samples": len(data.x_train),
            "val_samples": len(data.x_val), "float_epochs": rep.epochs_run, "rows": rows}


def print_table(res: dict) -> None:
    print(f"{res['model']} on {res['dataset']} ({res['train_samples']} train / {res['val_samples']} validation "
          f"samples), seed {res['seed']}; float model trained {res['float_epochs']} epochs")
    head = ("", "MACs", "weight B", "SRAM B", "SRAM int8 B", "accuracy", "drop pts", "target", "s")
    lines = [head]
    for r in res["rows"]:
        tgt = "" if r["target"] is None else f"<={r['target']:g} {'ok' if r['meets_target'] else 'MISSED'}"
        lines.append((r["label"], f"{r['macs']:,}", f"{r['weight_bytes']:,}", f"{r['activation_peak_bytes']:,}",
                      f"{r['activation_peak_bytes_int8']:,}", f"{r['accuracy']:.2%}", f"{r['drop_points']:+.2f}"
                      if r["action"] else "", tgt, f"{r['seconds']:.1f}"))
    w = [max(len(x[i]) for x in lines) for i in range(len(head))]
    for x in lines:
        print("  ".join(x[0].ljust(w[0]) if i == 0 else x[i].rjust(w[i]) for i in range(len(x)) if i < len(x)))
    for r in res["rows"]:
        if r.get("note"):
            print(f"  {r['label']}: {r['note']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=1, help="repeat with seeds seed..seed+K-1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run(s) for s in range(args.seed, args.seed + args.seeds)]
    if args.json:
        print(json.dumps(results, indent=1, default=float))
        return 0
    for res in results:
        print_table(res)
        print()
    if len(results) > 1:
        print("accuracy drop in points per seed:")
        for i, row in enumerate(results[0]["rows"][1:], start=1):
            drops = [r["rows"][i]["drop_points"] for r in results]
            print(f"  {row['label']:<30} " + "  ".join(f"{d:+.2f}" for d in drops)
                  + f"   mean {sum(drops) / len(drops):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
