"""engine.diff: the changes between a parent and a child graph, in words (History's account of an action)."""
from __future__ import annotations

import numpy as np

from engine.builder import GraphBuilder
from engine.compress import compress
from engine.diff import describe_changes, graph_changes
from engine.zoo import build_zoo_model


def cnn(c1=8, k1=3, act="Relu", extra=False, seed=0, hw=16):
    """X (1,1,hw,hw) -> conv1 (c1, k1xk1) -> act r1 -> [conv3 (4, 1x1) ->] GlobalAveragePool -> flatten -> fc."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("cnn")
    x = b.input("X", (1, 1, hw, hw))  # (N, C, H, W)
    w = b.const("W1", rng.standard_normal((c1, 1, k1, k1)).astype(np.float32))
    x = b.node("Conv", [x, w], name="conv1", kernel_shape=[k1, k1], pads=[k1 // 2] * 4)
    x = b.node(act, [x], name="r1")
    c = c1
    if extra:
        x = b.node("Conv", [x, b.const("W3", rng.standard_normal((4, c1, 1, 1)).astype(np.float32))],
                   name="conv3", kernel_shape=[1, 1])
        c = 4
    x = b.node("GlobalAveragePool", [x], name="gap")
    x = b.node("Flatten", [x], name="flat")
    x = b.node("Gemm", [x, b.const("Wf", rng.standard_normal((10, c)).astype(np.float32))], name="fc", transB=1)
    b.output(x)
    return b.build()


def test_identical_graphs_have_no_change():
    assert graph_changes(cnn(), cnn()) == []
    assert describe_changes(cnn(), cnn()) == "no change to the graph"


def test_canvas_edit_reads_as_a_diff_summary():
    text = describe_changes(cnn(c1=8, k1=3), cnn(c1=8, k1=5, act="Sigmoid", extra=True))
    # r1 changed op (same name): said as such, not as a remove + add
    assert text.split("; ")[:1] == ["added Conv conv3"], text
    assert "r1: Relu → Sigmoid" in text and "conv1.kernel_shape 3x3 → 5x5" in text
    assert "conv1.pads [1, 1, 1, 1] → [2, 2, 2, 2]" in text
    assert "rewired gap" in text  # gap now reads conv3, not r1
    back = graph_changes(cnn(extra=True), cnn())
    assert back[0] == "removed Conv conv3" and "rewired gap" in back


def test_channel_change_is_said_in_channels():
    changes = graph_changes(cnn(c1=64), cnn(c1=32))
    assert "conv1: 64 → 32 output channels" in changes
    assert "new weight values in conv1, fc" not in changes  # shapes differ: not counted as retrained


def test_new_weights_and_input_shape():
    assert graph_changes(cnn(seed=0), cnn(seed=1)) == ["new weight values in conv1, fc"]
    assert graph_changes(cnn(hw=16), cnn(hw=8)) == ["input X 1x1x16x16 → 1x1x8x8"]


def test_many_changes_are_counted_and_cut():
    a = build_zoo_model("zoo:kws_dscnn")
    b = compress(a, "fold-bn").graph  # 9 conv+BN+Relu blocks become 9 convs with a fused relu
    assert sum(n.op == "BatchNormalization" for n in a.nodes) == 9
    assert graph_changes(a, b) == ["removed 18 layers (9 BatchNormalization, 9 Relu)",
                                   "activation set to relu in 9 layers", "rewired 9 layers",
                                   "new weight values in 9 layers"]
    text = describe_changes(cnn(), cnn(c1=4, k1=5, act="Sigmoid", extra=True, seed=3), limit=2)
    assert text.count("; ") == 2 and text.endswith("more")
