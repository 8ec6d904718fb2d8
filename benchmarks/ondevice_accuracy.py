"""Sparse vs full on-device fine-tuning accuracy on a transfer task (issue 16), with the training SRAM of each.

    PYTHONPATH=. .venv/bin/python benchmarks/ondevice_accuracy.py [--steps 200] [--probe-steps 60] [--per-class 40]

Transfer task built from `keywords`: zoo:kws_dscnn is pre-trained (Adam, engine.train) on 6 keywords plus
`_silence_` and `_unknown_` of the training voices; the device then learns 4 new keywords (right, stop, up, yes)
with the old ones from a small labelled set: `--per-class` clips per class of the training voices.
Accuracy is measured on the held-out test voices, all 12 classes. The sparse planner's probes fine-tune on the
small set and score on the validation voices (never the test voices). Every fine-tuning run starts from the same
pre-trained weights with the same seeded sample order (engine.ondevice.finetune). SRAM: peak training SRAM of
one step on the deployed int8 graph (engine.ondevice.memory), with the optimizer state and weight precision of
the row.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from engine.data import load_dataset
from engine.data.keywords import held_out_split
from engine.ondevice import parse_spec, resolve
from engine.ondevice.finetune import FinetuneOptions, Finetuner
from engine.ondevice.memory import training_profile
from engine.ondevice.sparse import plan_sparse
from engine.train.loop import train
from engine.zoo import build_zoo_model

OLD = [0, 1, 2, 3, 4, 5, 10, 11]   # down go left no off on _silence_ _unknown_
MCU = "stm32f746ng"


def subset(d, keep, per_class: int | None = None, seed: int = 0):
    """`d` restricted to the classes in `keep`, and its training split to `per_class` clips per class drawn
    with a seeded generator (the small labelled set)."""
    tr = np.isin(d.y_train, keep)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        chosen = [rng.permutation(np.flatnonzero(d.y_train == c))[:per_class] for c in keep]
        tr = np.zeros_like(tr)
        tr[np.concatenate(chosen)] = True
    va = np.isin(d.y_val, keep)
    return dataclasses.replace(d, x_train=d.x_train[tr], y_train=d.y_train[tr], x_val=d.x_val[va],
                               y_val=d.y_val[va])


def sram(g, plan, opt: FinetuneOptions) -> int:
    return training_profile(g, plan, MCU, optimizer="momentum" if opt.momentum else "sgd",
                            weights=opt.weights).peak_sram_bytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200, help="SGD steps of every fine-tuning run (batch 32)")
    ap.add_argument("--probe-steps", type=int, default=60, help="SGD steps of each planner probe")
    ap.add_argument("--per-class", type=int, default=40, help="clips per class in the small labelled set")
    ap.add_argument("--epochs", type=int, default=10, help="pre-training epochs")
    ap.add_argument("--budgets", default="64K,96K,128K", help="sparse:BYTES budgets")
    ap.add_argument("--lr", type=float, default=0.05, help="plain SGD's learning rate (the device's step)")
    ap.add_argument("--momentum-lr", type=float, default=0.01, help="learning rate with momentum 0.9")
    ap.add_argument("--candidates", type=int, default=4, help="layers the planner probes, the last ones (0: all)")
    ap.add_argument("--probe-momentum", action="store_true", help="probe with momentum 0.9 (--momentum-lr)")
    ap.add_argument("--seed", type=int, default=0, help="pre-training, small-set draw and sample-order seed")
    a = ap.parse_args()
    t0 = time.time()
    kd = load_dataset("keywords")
    x_test, y_test = held_out_split(kd)
    g0 = build_zoo_model("zoo:kws_dscnn")
    pre, rep = train(g0, subset(kd, OLD), epochs=a.epochs, lr=2e-3, batch_size=64, patience=None,
                   seed=a.seed)
    old_test = np.isin(y_test, OLD)
    new = subset(kd, list(range(12)), per_class=a.per_class, seed=a.seed)
    print(f"== transfer: zoo:kws_dscnn pre-trained {a.epochs} epochs on 8 classes (6 keywords + silence + "
          f"unknown, {int(np.isin(kd.y_train, OLD).sum())} clips); fine-tuned on all 12 classes from "
          f"{len(new.y_train)} clips ({a.per_class} per class, training voices); test: {len(y_test)} clips of 7 "
          "unseen voices")
    base = FinetuneOptions(steps=a.steps, lr=a.lr, seed=a.seed)
    ft = Finetuner(pre, new, base)
    print(f"pre-trained: test accuracy on its 8 classes {ft.accuracy(x_test[old_test], y_test[old_test]):.3f}, "
          f"on all 12 before fine-tuning {ft.accuracy(x_test, y_test):.3f}  ({time.time() - t0:.0f} s)")
    plans = {s: resolve(pre, parse_spec(s)) for s in ("all", "last:1", "bias")}
    rows = []

    def row(name, plan, opt, ftr=None):
        f = ftr or Finetuner(pre, new, opt)
        f.run({k: plan.fraction(k) for k in plan.layers}, plan.bias_only)
        acc = f.accuracy(x_test, y_test)
        how = (f"{opt.weights}{' QAS' if opt.weights == 'int8' and opt.qas else ''}, "
               f"{'SGD momentum 0.9' if opt.momentum else 'SGD'} lr {opt.lr:g}")
        rows.append((name, acc, sram(pre, plan, opt), how))
        print(f"  {name:<34} test {acc:.3f}  SRAM {rows[-1][2]:>8,} B  ({rows[-1][3]}; {time.time() - t0:.0f} s)",
              flush=True)
        return acc

    mom = dataclasses.replace(base, momentum=0.9, lr=a.momentum_lr)
    full = row("full (all)", plans["all"], base, ft)
    full_mom = row("full (all)", plans["all"], mom)
    row("bias only", plans["bias"], base, ft)
    row("last:1 (classifier)", plans["last:1"], base, ft)
    sparse_rows = []
    for b in a.budgets.split(","):
        budget = parse_spec(f"sparse:{b}").budget_bytes
        r = plan_sparse(pre, budget, new, candidates=a.candidates or None,
                        options=dataclasses.replace(mom if a.probe_momentum else base, steps=a.probe_steps))
        acc = row(f"sparse:{b} " + ",".join(f"{k}({r.plan.fraction(k):g})" for k in r.plan.layers[:-1]) + "+fc",
                  r.plan, base, ft)
        sparse_rows.append((b, r, acc))
    best_b, best_r, best_acc = sparse_rows[-1]
    print("\n== optimizer and weight precision on the largest sparse plan (momentum adds one float32 per updated "
          "weight; int8 keeps the updated weights in RAM as int8)")
    sparse_mom = row(f"sparse:{best_b}", best_r.plan, mom)
    for opt in (dataclasses.replace(base, weights="int8", qas=False),
                dataclasses.replace(base, weights="int8", qas=True),
                dataclasses.replace(mom, weights="int8", qas=False),
                dataclasses.replace(mom, weights="int8", qas=True)):
        row(f"sparse:{best_b}", best_r.plan, opt)
    print(f"\nprobes of sparse:{best_b} ({a.probe_steps} steps each, validation voices; gain over the classifier "
          f"alone {best_r.baseline_accuracy:.3f}, z = paired noise test):")
    for p in sorted(best_r.probes, key=lambda p: -p.gain):
        print(f"  {p.layer:<10} {p.fraction:>5g}  gain {p.gain:+.3f}  z {p.z:+.2f}  extra {p.extra_bytes:>7,} B  "
              f"gain/KB {p.gain / max(p.extra_bytes, 1) * 1024:+.4f}")
    print(f"predicted accuracy (validation) {best_r.predicted_accuracy:.3f}")
    print("  (int8 without QAS: the gradient of W/s is s times that of W, so each step moves W by s^2 lr G: "
          "training stalls; QAS rescales it by s^-2)")
    full_sram = rows[0][2]
    for b, r, acc in sparse_rows:
        print(f"gap full - sparse:{b} (SGD lr {a.lr:g}): {full - acc:+.3f} at "
              f"{sram(pre, r.plan, base) / full_sram:.0%} of full's SRAM")
    print(f"gap full - sparse:{best_b} (momentum 0.9, lr {a.momentum_lr:g}): {full_mom - sparse_mom:+.3f} at "
          f"{sram(pre, best_r.plan, mom) / rows[1][2]:.0%} of full's SRAM")
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
