"""The C training step (engine.codegen.train_step) against PyTorch autograd (engine.export.verify_train):
one SGD step's loss, gradients and updated tensors on the host (under ASan/UBSan) and in QEMU (Cortex-M4
mps2-an386, Cortex-M55 mps3-an547); a few hundred steps on `digits` reduce the loss in QEMU; the bundle of
`tinystudio export --training`; the errors for what the step cannot train."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from engine.codegen.train_step import generate_training
from engine.errors import GraphError, TinyStudioError
from engine.export.verify_train import (TOLERANCE, TrainCheckError, compare_step, reference_step, run_train_host,
                                        run_train_qemu)
from engine.ondevice.spec import UpdatePlan, parse_spec, resolve

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")


@pytest.fixture(scope="module")
def digits():
    from engine.data import load_dataset
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp(digits):
    """64 -> 32 relu -> 16 relu -> 10 on digits, random init, quantized on digits samples."""
    from engine.passes.ptq import quantize_model
    from engine.zoo.layers import Net, activation, linear

    net = Net("mlp", seed=0)
    x = net.input((1, 64))
    h = activation(net, linear(net, x, 32, name="fc1", gain=2.0), "relu")
    h = activation(net, linear(net, h, 16, name="fc2", gain=2.0), "relu")
    g = net.build(linear(net, h, 10, name="fc3"))
    q, _ = quantize_model(g, digits.x_train[:128].reshape(-1, 1, 64).astype(np.float32))
    return q


def quantized_inputs(q, xs):
    t = q.tensors[q.inputs[0]]
    s, z = float(t.quant.scale[0]), int(t.quant.zero_point[0])
    return np.clip(np.round(xs.reshape(len(xs), -1) / s) + z, -128, 127).astype(np.int8)


@needs_gcc
@pytest.mark.parametrize("spec", ["last:1", "last:2", "bias", "all"])
def test_one_step_equals_pytorch_on_the_host(mlp, digits, spec, tmp_path):
    tl = generate_training(mlp, resolve(mlp, parse_spec(spec)), "mlp")
    x = quantized_inputs(mlp, digits.x_train[:1])[0]
    label, lr = int(digits.y_train[0]), 0.1
    ref = reference_step(mlp, tl, x, label, lr)
    got = run_train_host(tl, tmp_path, [(x, label, lr)], sanitize=True)
    errs = compare_step(tl, ref, got)
    assert max(errs.values()) <= TOLERANCE
    assert len(got.grads) == len(tl.params) > 0
    for (layer, kind, n), gr in zip(tl.params, got.grads):  # a gradient reaches every trained tensor
        assert gr.size == n and np.abs(gr).max() > 0, f"{layer}.{kind}: zero gradient"
    assert got.losses[0] > 0


@needs_gcc
def test_the_check_catches_a_wrong_step(mlp, digits, tmp_path):
    tl = generate_training(mlp, resolve(mlp, parse_spec("last:2")), "mlp")
    x = quantized_inputs(mlp, digits.x_train[1:2])[0]
    got = run_train_host(tl, tmp_path, [(x, 3, 0.1)])
    with pytest.raises(TrainCheckError, match="updated"):
        compare_step(tl, reference_step(mlp, tl, x, 3, 0.2), got)      # another learning rate
    with pytest.raises(TrainCheckError, match="grad|loss"):
        compare_step(tl, reference_step(mlp, tl, x, 4, 0.1), got)      # another label


@needs_gcc
def test_channel_fraction_updates_only_the_first_channels(mlp, digits, tmp_path):
    plan = UpdatePlan(("fc2",), {"fc2": 0.5}, ("fc3",))
    tl = generate_training(mlp, plan, "mlp")
    x = quantized_inputs(mlp, digits.x_train[2:3])[0]
    ref = reference_step(mlp, tl, x, 5, 0.1)
    got = run_train_host(tl, tmp_path, [(x, 5, 0.1)])
    compare_step(tl, ref, got)
    # the C keeps float32 copies (and gradients) of the 8 trained channels only; the other 8 stay the
    # deployed int8 constants (flash)
    assert [(layer, kind, n) for layer, kind, n in tl.params] == [("fc2", "w", 8 * 32), ("fc2", "b", 8),
                                                                  ("fc3", "b", 10)]
    gw = got.grads[0].reshape(8, 32)
    assert np.abs(gw).max() > 0 and "static const int8_t l0_wq[512] = " in tl.files["mlp_train.c"]


@needs_gcc
def test_steps_reduce_the_loss_on_the_host(mlp, digits, tmp_path):
    tl = generate_training(mlp, resolve(mlp, parse_spec("last:2")), "mlp")
    xs = quantized_inputs(mlp, digits.x_train[:300])
    got = run_train_host(tl, tmp_path, [(x, int(y), 0.05) for x, y in zip(xs, digits.y_train[:300])])
    first, last = np.mean(got.losses[:50]), np.mean(got.losses[-50:])
    assert last < 0.7 * first, f"mean loss {first:.3f} over the first 50 steps, {last:.3f} over the last 50"


def test_what_the_step_cannot_train_is_named():
    from engine.ondevice.memory import deployed
    from engine.zoo import build_zoo_model

    q = deployed(build_zoo_model("zoo:kws_dscnn"))[0]
    with pytest.raises(GraphError, match=r"node '.*' \(AveragePool\) is in the trained part"):
        ic = deployed(build_zoo_model("zoo:lenet5", act="relu"))[0]
        generate_training(ic, resolve(ic, parse_spec("all")), "lenet")
    with pytest.raises(GraphError, match="does not have"):
        generate_training(q, UpdatePlan(("nope",)), "kws")
    with pytest.raises(TinyStudioError, match="training spec"):
        parse_spec("last:x")


@needs_qemu
@pytest.mark.parametrize("mcu", ["stm32l4r5zi", "alif-e7-hp"])
def test_one_step_equals_pytorch_in_qemu(mlp, digits, mcu, tmp_path):
    from hwmodels.mcu import get_mcu

    tl = generate_training(mlp, resolve(mlp, parse_spec("all")), "mlp")
    x = quantized_inputs(mlp, digits.x_train[3:4])[0]
    label = int(digits.y_train[3])
    got, machine = run_train_qemu(tl, get_mcu(mcu), [(x, label, 0.1)], tmp_path)
    assert machine == {"stm32l4r5zi": "mps2-an386", "alif-e7-hp": "mps3-an547"}[mcu]
    assert max(compare_step(tl, reference_step(mlp, tl, x, label, 0.1), got).values()) <= TOLERANCE


@needs_gcc
def test_kws_pointwise_conv_pool_and_fc_one_step_equals_pytorch(tmp_path):
    """last:2 on DS-CNN: the last 1x1 conv (125 pixels, fused ReLU), global average pooling, the FC; the body
    before it is the frozen generated inference library."""
    from engine.ondevice.memory import deployed
    from engine.zoo import build_zoo_model

    q = deployed(build_zoo_model("zoo:kws_dscnn"))[0]
    tl = generate_training(q, resolve(q, parse_spec("last:2")), "kws")
    assert [h.node for h in tl.head] == ["block4_pw", "pool", "fc"]
    x = np.random.default_rng(1).integers(-128, 128, tl.input_size).astype(np.int8)
    ref = reference_step(q, tl, x, 3, 0.05)
    got = run_train_host(tl, tmp_path, [(x, 3, 0.05)], sanitize=True)
    assert max(compare_step(tl, ref, got).values()) <= TOLERANCE
    assert all(np.abs(gr).max() > 0 for gr in got.grads)


@needs_qemu
def test_three_hundred_steps_in_qemu_reduce_the_loss(mlp, digits, tmp_path):
    from hwmodels.mcu import get_mcu

    tl = generate_training(mlp, resolve(mlp, parse_spec("last:2")), "mlp")
    xs = quantized_inputs(mlp, digits.x_train[:300])
    got, _ = run_train_qemu(tl, get_mcu("stm32l4r5zi"), [(x, int(y), 0.05) for x, y in
                                                          zip(xs, digits.y_train[:300])], tmp_path)
    first, last = np.mean(got.losses[:50]), np.mean(got.losses[-50:])
    assert last < 0.7 * first, f"mean loss {first:.3f} over the first 50 steps, {last:.3f} over the last 50"


@needs_gcc
def test_export_cli_puts_the_training_library_in_the_bundle(tmp_path):
    out = tmp_path / "kws.zip"
    r = subprocess.run([sys.executable, "-m", "app.cli", "export", "zoo:kws_dscnn", "--mcu", "stm32l4r5zi", "--out",
                        str(out), "--inputs", "1", "--training", "last:1", "--json"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    tr = json.loads(r.stdout)["training"]
    assert tr["spec"] == "last:1" and [t["layer"] for t in tr["trained"]] == ["fc"]
    assert tr["verify"]["host"] <= TOLERANCE
    assert tr["ram_bytes"] == sum(tr["ram_parts"].values()) > 0
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        header = next(n for n in names if n.endswith("training/kws_dscnn_train.h"))
        text = z.read(header).decode()
        assert f"#define KWS_DSCNN_TRAIN_RAM_BYTES {tr['ram_bytes']}" in text
        assert json.loads(z.read(next(n for n in names if n.endswith("/report.json"))))["training"] == tr
    bad = subprocess.run([sys.executable, "-m", "app.cli", "export", "zoo:kws_dscnn", "--mcu", "stm32l4r5zi",
                          "--out", str(tmp_path / "b.zip"), "--training", "last:x"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: training spec") and "Traceback" not in bad.stderr


@needs_gcc
def test_export_page_path_builds_the_training_bundle():
    """app.workflows.export.build_bundle is what the Export page's job runs (on a worker)."""
    from app.workflows.export import build_bundle, check_training, training_line
    from engine.zoo import build_zoo_model

    res = build_bundle(build_zoo_model("zoo:kws_dscnn"), "stm32l4r5zi", "host", 1, None, "kws", None,
                       training="last:1")
    tr = res["report"]["training"]
    assert tr["spec"] == "last:1" and [t["layer"] for t in tr["trained"]] == ["fc"]
    assert training_line(res["report"]).startswith("training: kws_train (last:1: fc)")
    check_training("")
    with pytest.raises(TinyStudioError, match="training spec"):
        check_training("sparse:0")


@needs_gcc
@pytest.mark.parametrize("steps", [0, 40])
def test_forward_is_the_int8_reference_with_the_requantized_weights(steps, tmp_path):
    """<name>_train_forward after `steps` SGD steps equals engine.int8's executor on the graph whose trained
    weights are the requantization rule applied in numpy to the C's float32 tensors; kws: frozen conv body +
    trained FC (0 steps: the deployed model's bytes)."""
    from engine.export.verify_train import requantized_graph, run_forward_host
    from engine.int8 import prepare_int8
    from engine.ondevice.memory import deployed
    from engine.zoo import build_zoo_model

    q = deployed(build_zoo_model("zoo:kws_dscnn"))[0]
    tl = generate_training(q, resolve(q, parse_spec("last:1")), "kws")
    rng = np.random.default_rng(7)
    xs = rng.integers(-128, 128, (steps + 4, tl.input_size)).astype(np.int8)
    records = [(x, int(rng.integers(0, tl.classes)), 0.5) for x in xs[:steps]]
    got = run_forward_host(tl, tmp_path / "fwd", records, xs[steps:])
    params = run_train_host(tl, tmp_path / "train", records).params if steps else []
    g = requantized_graph(q, tl, params) if steps else q
    if steps:  # the steps moved some int8 weights: the check is not the deployed model's
        assert not np.array_equal(g.tensors["fc_W"].data, q.tensors["fc_W"].data)
    plan = prepare_int8(g)
    shape = q.tensors[q.inputs[0]].shape
    for x, row in zip(xs[steps:], got):
        want = plan.run({q.inputs[0]: x.reshape(shape)}, outputs=[tl.head[-1].y])[tl.head[-1].y].reshape(-1)
        assert np.array_equal(row, want), f"C {row.tolist()} reference {want.tolist()}"


@needs_qemu
def test_kws_pointwise_conv_pool_and_fc_in_qemu_m55(tmp_path):
    from engine.ondevice.memory import deployed
    from engine.zoo import build_zoo_model
    from hwmodels.mcu import get_mcu

    q = deployed(build_zoo_model("zoo:kws_dscnn"))[0]
    tl = generate_training(q, resolve(q, parse_spec("last:2")), "kws")
    x = np.random.default_rng(2).integers(-128, 128, tl.input_size).astype(np.int8)
    got, machine = run_train_qemu(tl, get_mcu("alif-e7-hp"), [(x, 5, 0.05)], tmp_path)
    assert machine == "mps3-an547"
    assert max(compare_step(tl, reference_step(q, tl, x, 5, 0.05), got).values()) <= TOLERANCE


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
@pytest.mark.parametrize("model,spec", [("kws", "last:1"), ("kws", "last:2"), ("mlp", "all")])
def test_declared_ram_is_every_static_buffer_of_the_cortex_m4_build(mlp, model, spec, tmp_path):
    """<NAME>_TRAIN_RAM_BYTES = the .data and .bss sections (one per symbol) of every object of the library
    compiled for Cortex-M4 (DSP: the conv scratch counts), read by arm-none-eabi-size."""
    from engine.export.verify_train import write_training
    from engine.ondevice.memory import deployed
    from engine.zoo import build_zoo_model

    q = deployed(build_zoo_model("zoo:kws_dscnn"))[0] if model == "kws" else mlp
    tl = generate_training(q, resolve(q, parse_spec(spec)), model)
    write_training(tl, tmp_path)
    total = 0
    for src in tl.sources:
        obj = tmp_path / f"{src}.o"
        subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                        "-std=c99", "-O2", "-fdata-sections", "-I", str(tmp_path), "-c", str(tmp_path / src), "-o",
                        str(obj)], check=True, capture_output=True)
        out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True)
        total += sum(int(p[1]) for p in (ln.split() for ln in out.stdout.splitlines())
                     if p and p[0].startswith((".data", ".bss")))
    assert total == tl.ram_bytes, (total, tl.ram_parts)
    # one figure: the training planner's peak (what `profile --training` shows) is exactly the C's .data + .bss
    from engine.ondevice.memory import training_profile

    prof = training_profile(build_zoo_model("zoo:kws_dscnn") if model == "kws" else q, resolve(q, parse_spec(spec)),
                            as_deployed=model == "kws")
    assert prof.peak_sram_bytes == tl.planner_peak_bytes == tl.ram_bytes == total
    assert (prof.arena_bytes, prof.ram_weight_bytes) == (tl.ram_parts["arena"], tl.ram_parts["weights_float"])
    assert {k: b for k, b, _ in prof.fixed} == {k: v for k, v in tl.ram_parts.items()
                                               if k not in ("arena", "weights_float") and v}
    assert not any(b.name.startswith("wgrad:") for b in prof.buffers)  # the C applies dW as it computes it
    if model == "kws":  # logits and loss 52, one weight row 64, the prefix's DSP scratch 1,024 (eight-pixel blocks)
        assert prof.fixed_bytes == 1140
    assert f"{model.upper()}_TRAIN_RAM_BYTES {tl.ram_bytes} " in tl.files[f"{model}_train.h"]
