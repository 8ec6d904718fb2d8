"""The one pass contract (engine.passes.base.Contract) shared by graph passes and compression actions:
declared pre- and postconditions are checked and a broken one is a GraphError naming the step and the node;
to_nhwc's postcondition (no channels-first spatial op with a channels-last form remains) holds on real models
and catches a converter that leaves one behind."""
from __future__ import annotations

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.compress import compress
from engine.errors import GraphError
from engine.passes import layout, to_nhwc
from engine.passes.base import Condition, Contract, PassReport, first_node, graph_pass
from engine.serialize import content_hash
from engine.zoo import build_zoo_model

NO_SIGMOID = Condition("no Sigmoid remains", lambda g: first_node(g, "Sigmoid"))


def relu_sigmoid():
    b = GraphBuilder("rs")
    x = b.input("x", (1, 4))
    y = b.node("Relu", [x], name="r1")
    b.output(b.node("Sigmoid", [y], name="s1"))
    return b.build()


@graph_pass(requires=(NO_SIGMOID,))
def needs_no_sigmoid(graph):
    return graph, PassReport("needs_no_sigmoid")


@graph_pass(ensures=(NO_SIGMOID,))
def claims_no_sigmoid(graph):  # a pass that breaks its own promise: it leaves the Sigmoid in place
    return graph, PassReport("claims_no_sigmoid")


@graph_pass(ensures=(NO_SIGMOID,))
def sigmoid_to_relu(graph):
    for n in graph.nodes:
        if n.op == "Sigmoid":
            n.op = "Relu"
    return graph, PassReport("sigmoid_to_relu")


def test_violated_precondition_names_the_pass_and_the_node():
    g = relu_sigmoid()
    before = content_hash(g)
    with pytest.raises(GraphError, match=r"^node 's1' \(Sigmoid\): precondition of pass needs_no_sigmoid does "
                                         r"not hold: no Sigmoid remains$"):
        needs_no_sigmoid(g)
    assert content_hash(g) == before


def test_violated_postcondition_names_the_pass_and_the_node():
    with pytest.raises(GraphError, match=r"^node 's1' \(Sigmoid\): postcondition of pass claims_no_sigmoid does "
                                         r"not hold: no Sigmoid remains$"):
        claims_no_sigmoid(relu_sigmoid())


def test_conditions_that_hold_pass_through():
    out, _ = sigmoid_to_relu(relu_sigmoid())
    assert [n.op for n in out.nodes] == ["Relu", "Relu"]
    out, _ = needs_no_sigmoid(out)
    assert sigmoid_to_relu.contract.ensures == (NO_SIGMOID,) and needs_no_sigmoid.contract.requires == (NO_SIGMOID,)


def test_to_nhwc_declares_and_meets_its_postcondition():
    assert [c.text for c in to_nhwc.contract.ensures] == [
        "no NCHW-only op remains (every spatial op with a channels-last form runs NHWC)"]
    out, _ = to_nhwc(build_zoo_model("kws_dscnn?blocks=1"))
    assert all(n.attrs.get("layout") == "NHWC" for n in out.nodes if n.op in ("Conv", "AveragePool"))


def test_to_nhwc_postcondition_catches_a_spatial_op_left_channels_first(monkeypatch):
    # The converter's op list drifts from the ops that have a channels-last form (GlobalAveragePool forgotten):
    # the pass would silently keep it channels first behind a Transpose; the postcondition refuses the result.
    monkeypatch.setattr(layout, "SPATIAL", tuple(op for op in layout.SPATIAL if op != "GlobalAveragePool"))
    g = build_zoo_model("kws_dscnn?blocks=1")
    pool = next(n.name for n in g.nodes if n.op == "GlobalAveragePool")
    with pytest.raises(GraphError, match=rf"^node '{pool}' \(GlobalAveragePool\): postcondition of pass to_nhwc "
                                         r"does not hold: no NCHW-only op remains"):
        to_nhwc(g)


def test_grouped_conv_transpose_stays_channels_first_without_breaking_the_postcondition():
    b = GraphBuilder("ct")
    x = b.input("x", (1, 4, 5, 5))
    w = b.const("w", np.ones((4, 1, 3, 3), np.float32))
    b.output(b.node("ConvTranspose", [x, w], name="up", group=4, kernel_shape=[3, 3]))
    out, _ = to_nhwc(b.build())
    assert next(n for n in out.nodes if n.op == "ConvTranspose").attrs.get("layout", "NCHW") == "NCHW"


def test_compression_actions_run_under_the_same_contract(monkeypatch):
    seen = []
    enter, leave = Contract.enter, Contract.leave
    monkeypatch.setattr(Contract, "enter", lambda self, g: (seen.append((self.kind, self.name)), enter(self, g))[1])
    monkeypatch.setattr(Contract, "leave", lambda self, g, out: (seen.append("leave"), leave(self, g, out))[1])
    g = build_zoo_model("lenet5")
    res = compress(g, "fold-bn")
    assert seen[0] == ("action", "fold-bn") and "leave" in seen
    assert res.graph.inputs == g.inputs and res.graph.outputs == g.outputs
