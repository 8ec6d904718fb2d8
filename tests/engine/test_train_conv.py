"""The C training step through convolutions (engine.codegen.train_step, ts_train_ref.c): a 3x3 stride-2 conv with
TF SAME (asymmetric) padding, a depthwise 3x3 and a frozen pointwise conv between trained layers, on a small
CNN with a frozen conv prefix. One step against PyTorch on the host (ASan/UBSan), the int8 forward after a few
steps against engine.int8 on the requantized graph, the C's buffers at the training planner's offsets (its RAM
= the planner's peak, small buffers included), and in QEMU on a Cortex-M7 linked for a small board: sizes, painted
stack, the same step, the loss going down."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine.codegen.train_step import generate_training
from engine.export.verify_train import TOLERANCE, compare_step, reference_step, run_train_host
from engine.ondevice.spec import UpdatePlan

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")

PLAN = UpdatePlan(("c1", "b1_dw", "fc"), {"c1": 0.5, "b1_dw": 0.5, "fc": 1.0})


@pytest.fixture(scope="module")
def cnn():
    """(float graph, deployed int8 graph, training library): c0 3x3 (frozen) -> c1 3x3 stride 2 SAME -> dw 3x3
    -> pw 1x1 (frozen) -> global average pool -> fc."""
    from engine.ondevice.memory import deployed
    from engine.zoo.layers import Net, conv_bn_act, depthwise_separable, global_pool_flatten, linear

    net = Net("tcnn", seed=3)
    x = net.input((1, 1, 12, 12))
    h = conv_bn_act(net, x, 4, 3, 1, pad="torch", bn=False, name="c0")
    h = conv_bn_act(net, h, 6, 3, 2, pad="same", bn=False, name="c1")
    h = depthwise_separable(net, h, 8, 1, "torch", False, "relu", "b1")
    g = net.build(linear(net, global_pool_flatten(net, h), 4, name="fc", gain=2.0))
    q = deployed(g)[0]
    return g, q, generate_training(q, PLAN, "tcnn")


@needs_gcc
def test_conv_and_depthwise_step_equals_pytorch_and_runs_in_the_planned_arena(cnn, tmp_path):
    from engine.export.verify_train import requantized_graph, run_forward_host
    from engine.int8 import prepare_int8
    from engine.ondevice.memory import training_profile

    g, q, tl = cnn
    kinds = {h.node: (h.fc, h.depthwise, h.n_upd, h.n) for h in tl.head if hasattr(h, "fc")}
    assert kinds == {"c1": (False, False, 3, 6), "b1_dw": (False, True, 3, 6), "b1_pw": (True, False, 8, 8),
                     "fc": (True, False, 4, 4)}
    assert tl.frozen is not None and [n for n, _, _ in tl.params] == ["c1", "c1", "b1_dw", "b1_dw", "fc", "fc"]
    # one plan and one figure: the arena, the RAM weights and the small buffers are the planner's
    prof = training_profile(g, PLAN)
    assert tl.planner_peak_bytes == prof.peak_sram_bytes == tl.ram_bytes
    assert (prof.arena_bytes, prof.ram_weight_bytes) == (tl.ram_parts["arena"], tl.ram_parts["weights_float"])
    assert {k: b for k, b, _ in prof.fixed} == {k: v for k, v in tl.ram_parts.items()
                                               if k not in ("arena", "weights_float") and v}
    assert 0 < prof.fixed_bytes <= 512 and prof.fixed[-1][0] == "kernel_scratch"  # the frozen conv c0's scratch
    assert f"int8_t tcnn_train_arena[TCNN_TRAIN_ARENA_BYTES]" in tl.files["tcnn_train.c"]
    assert "extern int8_t tcnn_train_arena[TCNN_FZ_ARENA_SIZE]" in tl.files["tcnn_fz.c"]
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, (7, tl.input_size)).astype(np.int8)
    ref = reference_step(q, tl, xs[0], 2, 0.1)
    got = run_train_host(tl, tmp_path / "step", [(xs[0], 2, 0.1)], sanitize=True)
    assert max(compare_step(tl, ref, got).values()) <= TOLERANCE
    assert all(np.abs(gr).max() > 0 for gr in got.grads)
    # the forward of the trained convs (weights requantized on the fly) after 4 steps = engine.int8 on the graph
    # with the requantization rule applied in numpy to the C's float32 tensors
    records = [(x, int(rng.integers(0, 4)), 0.5) for x in xs[:4]]
    logits = run_forward_host(tl, tmp_path / "fwd", records, xs[4:])
    gq = requantized_graph(q, tl, run_train_host(tl, tmp_path / "train", records).params)
    assert not np.array_equal(gq.tensors[q.nodes[1].inputs[1]].data, q.tensors[q.nodes[1].inputs[1]].data)
    run = prepare_int8(gq)
    for x, row in zip(xs[4:], logits):
        want = run.run({q.inputs[0]: x.reshape(q.tensors[q.inputs[0]].shape)}, outputs=[tl.head[-1].y])
        assert np.array_equal(row, want[tl.head[-1].y].reshape(-1))


@needs_qemu
def test_conv_training_step_in_qemu_cortex_m7_fits_a_small_board(cnn, tmp_path):
    from engine.export.verify_train import run_train_qemu
    from hwmodels.mcu import get_mcu

    g, q, tl = cnn
    rng = np.random.default_rng(1)
    xs = rng.integers(-128, 128, (4, tl.input_size)).astype(np.int8)
    ys = [0, 1, 2, 3]
    records = [(x, y, 0.05) for _ in range(6) for x, y in zip(xs, ys)]
    info: dict = {}
    got, machine = run_train_qemu(tl, get_mcu("stm32f746ng"), records, tmp_path, limits=(128 << 10, 48 << 10),
                                  info=info, grads=False)   # the library as shipped
    assert machine == "mps2-an500" and got.grads == [] and len(got.params) == len(tl.params)
    assert 0 < info["stack_bytes"] < 16 << 10 and info["text"] + info["rodata"] + info["data"] <= 128 << 10
    # .data holds the float32 trained weights, .bss the planned arena (and the runner's input buffer)
    assert info["data"] >= tl.ram_parts["weights_float"] and info["bss"] >= tl.ram_parts["arena"] + tl.input_size
    per_pass = np.asarray(got.losses).reshape(6, 4).mean(axis=1)
    assert per_pass[-1] < 0.8 * per_pass[0], per_pass.tolist()
    one, _ = run_train_qemu(tl, get_mcu("stm32f746ng"), records[:1], tmp_path / "one")
    assert max(compare_step(tl, reference_step(q, tl, *records[0]), one).values()) <= TOLERANCE
