"""The exported C training step of a VWW-class model (MobileNetV1-0.25 @96x96, the MLPerf Tiny VWW model, 1
channel, 4 classes; pre-trained briefly on synthetic-shapes, then quantized) under its sparse-update plan, run in QEMU on a Cortex-M7 (mps2-an500, the core of the
STM32F746NG) linked against a board cut to 256 KB SRAM and 1 MB flash (the link fails if it does not fit):
arm-none-eabi-size, the painted stack of the deepest step, one step's gradients against the host build and
PyTorch, and the mean loss over repeated passes on a few synthetic-shapes validation images.

    PYTHONPATH=. .venv/bin/python benchmarks/ondevice_qemu.py [--quick] [--plan LAYER[=FRACTION],...]

--plan skips the probes (e.g. `block13_pw=0.125,fc`); by default the sparse-update planner picks the plan
under 256 KB (probes on synthetic-shapes @96, 5 SGD steps with --quick, else 20). A second plan updates the
depthwise 3x3 and pointwise convs of the last two blocks (a slice of their channels) to run that backward too.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.codegen.train_step import generate_training
from engine.data import load_dataset
from engine.export.verify_train import compare_step, reference_step, run_train_host, run_train_qemu
from engine.ondevice.memory import training_profile
from engine.passes.ptq import quantize_model
from engine.ondevice.spec import UpdatePlan
from engine.zoo import build_zoo_model
from hwmodels.mcu import get_mcu

VWW = "zoo:vww_mobilenetv1?channels=1&classes=4"
MCU = "stm32f746ng"
SRAM, FLASH = 256 * 1024, 1024 * 1024
DEEP = UpdatePlan(("block12_dw", "block12_pw", "block13_dw", "block13_pw", "fc"),
                  {"block12_dw": 0.25, "block12_pw": 0.125, "block13_dw": 0.25, "block13_pw": 0.125, "fc": 1.0})


def parse_plan(text: str) -> UpdatePlan:
    layers, frac = [], {}
    for part in text.split(","):
        name, _, f = part.partition("=")
        layers.append(name.strip())
        frac[name.strip()] = float(f) if f else 1.0
    return UpdatePlan(tuple(layers), frac)


def quantized(q, xs) -> np.ndarray:
    t = q.tensors[q.inputs[0]]
    s, z = float(t.quant.scale[0]), int(t.quant.zero_point[0])
    return np.clip(np.round(xs.reshape(len(xs), -1) / s) + z, -128, 127).astype(np.int8)


def pretrained(vww, data, steps: int):
    """The float model after `steps` SGD steps of every layer on `data` (a random-init model's logits span a
    tiny int8 range that no fine-tuning can widen, the scales being fixed), and its validation accuracy."""
    from engine.ondevice.sparse import Finetuner
    from engine.ondevice.spec import parse_spec, resolve

    ft = Finetuner(vww, data, steps=steps)
    acc = ft.run({k: 1.0 for k in resolve(vww, parse_spec("all")).layers})
    return ft.trained_graph(vww), acc  # BN folded, as the fine-tuning reference trains it


def run_plan(vww, q, plan: UpdatePlan, data, passes: int, images: int, lr: float) -> None:
    tl = generate_training(q, plan, "vww")
    p32 = training_profile(vww, plan, MCU)
    print(f"\n== plan {plan.to_json()}")
    print(f"  planner peak SRAM (profile --training): {p32.peak_sram_bytes:,} B; flash {p32.targets[0]['flash_bytes']:,} B")
    print(f"  C library: {tl.ram_bytes:,} B of static buffers ({tl.ram_parts}); equal to the planner's: "
          f"{tl.ram_bytes == p32.peak_sram_bytes}")
    xs = quantized(q, data.x_val[:images])   # images the pre-training did not see
    ys = [int(v) for v in data.y_val[:images]]
    one = [(xs[0], ys[0], lr)]
    with tempfile.TemporaryDirectory(prefix="tinystudio-odt-") as td:
        t0 = time.time()
        ref = reference_step(q, tl, *one[0])
        host = run_train_host(tl, Path(td) / "host", one, sanitize=True)
        e_host = max(compare_step(tl, ref, host).values())
        test_info: dict = {}
        got, machine = run_train_qemu(tl, get_mcu(MCU), one, Path(td) / "qemu1", timeout=600, limits=(FLASH, SRAM),
                                      info=test_info)
        e_qemu = max(compare_step(tl, ref, got).values())
        same = all(np.array_equal(a, b) for a, b in zip(host.grads + host.params, got.grads + got.params))
        print(f"  one step vs PyTorch, max relative error: host (ASan/UBSan) {e_host:.2g}, QEMU {e_qemu:.2g}; "
              f"QEMU gradients and updated tensors bit-identical to the host build: {same} ({time.time() - t0:.0f} s)")
        t0 = time.time()
        recs = [(x, y, lr) for _ in range(passes) for x, y in zip(xs, ys)]
        info: dict = {}
        got, _ = run_train_qemu(tl, get_mcu(MCU), recs, Path(td) / "qemuN", timeout=600, limits=(FLASH, SRAM),
                                info=info, grads=False)
        ram = info["data"] + info["bss"] + info["stack_bytes"]
        flash = info["text"] + info["rodata"] + info["data"]
        print(f"  QEMU {machine} (Cortex-M7), the library as shipped (no gradient copies) + the runner, linked for "
              f"{FLASH >> 10} KB flash / {SRAM >> 10} KB SRAM: text {info['text']:,} + rodata {info['rodata']:,} + "
              f"data {info['data']:,} = {flash:,} B flash; data {info['data']:,} + bss {info['bss']:,} + painted "
              f"stack {info['stack_bytes']:,} = {ram:,} B SRAM (runner's input buffer {tl.input_size:,} B included); "
              f"fits: {flash <= FLASH and ram <= SRAM}")
        print(f"  (test build with the gradient copies: data {test_info['data']:,} + bss {test_info['bss']:,} + stack "
              f"{test_info['stack_bytes']:,} B)")
        per = np.asarray(got.losses).reshape(passes, images).mean(axis=1)
        print(f"  {len(recs)} steps in QEMU ({passes} passes over {images} synthetic-shapes images, lr {lr}): mean "
              f"loss per pass {', '.join(f'{v:.3f}' for v in per)} ({time.time() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="5-step probes, fewer QEMU steps")
    ap.add_argument("--plan", help="LAYER[=FRACTION],... instead of the planner's sparse:256K")
    ap.add_argument("--lr", type=float, default=0.05, help="on-device SGD learning rate (default 0.05)")
    a = ap.parse_args()
    t0 = time.time()
    data = load_dataset("synthetic-shapes", resize=96)
    vww, acc = pretrained(build_zoo_model(VWW), data, 40 if a.quick else 150)
    q = quantize_model(vww, data.x_train[:64].astype(np.float32), per_layer=False)[0]
    print(f"{VWW} pre-trained on synthetic-shapes @96 (every layer, float): validation accuracy {acc:.3f}; int8 "
          f"calibrated on 64 training images")
    if a.plan:
        plan = parse_plan(a.plan)
    else:
        from engine.ondevice.sparse import plan_sparse

        plan = plan_sparse(vww, SRAM, data, steps=5 if a.quick else 20, candidates=3, fractions=(0.125, 0.5),
                           weights="int8").plan
    print(f"{VWW} on {MCU} ({get_mcu(MCU).core}); sparse:256K plan from the planner: {plan.to_json()}")
    passes, images = (3, 4) if a.quick else (5, 8)
    run_plan(vww, q, plan, data, passes, images, a.lr)
    run_plan(vww, q, DEEP, data, passes, images, a.lr)
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
