"""The graph canvas document (app/canvas/graph_json.py): round trips keep the content hash on the zoo and the
MLPerf Tiny files, edits re-initialize exactly the weights whose shapes change, invalid edits are reported on
the offending node, palette layers can be added and wired, the layer table round-trips, and the committed
component build is complete and offline. Every document goes through `browser_echo`, which sends back what
the browser's flowToDoc sends, with JavaScript's number formatting."""
from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from app.canvas import DIST
from app.canvas.graph_json import (GRAPH_KEY, apply_table, check_canvas, from_canvas, palette, sequential_table,
                                   to_canvas, validate_canvas)
from engine.errors import GraphError
from engine.execute import run_graph
from engine.importers.tflite_import import load_tflite
from engine.serialize import content_hash
from engine.zoo import build_zoo_model, list_zoo

ROOT = Path(__file__).resolve().parents[2]
MLPERF = ROOT.parent / "shared" / "data" / "mlperf-tiny"
TFLITE = ["kws_ref_model.tflite", "vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite"]


def js_numbers(v):
    """JSON.stringify writes 1.0 as 1 (and switches to exponent form only from 1e21)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, list):
        return [js_numbers(x) for x in v]
    if isinstance(v, dict):
        return {k: js_numbers(x) for k, x in v.items()}
    return v


def browser_echo(doc: dict) -> dict:
    """The document as the component sends it back (src/model.js flowToDoc), through JSON."""
    nodes = []
    for n in doc["nodes"]:
        out = {"id": n["id"], "kind": n["kind"],
               "position": {"x": round(n["position"]["x"]), "y": round(n["position"]["y"])}}
        if n["kind"] == "input":
            out.update(tensor=n["tensor"], shape=n["shape"], dtype=n.get("dtype") or "float32")
        elif n["kind"] == "output":
            out.update(tensor=n.get("tensor"))
        else:
            out.update(op=n["op"], attrs=n.get("attrs") or {}, layer=n.get("layer"),
                       slots=[{"role": s["role"], "kind": s["kind"],
                               "tensor": s.get("tensor") if s["kind"] == "param" else None} for s in n["slots"]],
                       n_outputs=n.get("n_outputs") or len(n.get("outputs") or []) or 1, new=bool(n.get("new")))
        nodes.append(out)
    edges = [{k: e[k] for k in ("id", "source", "sourceHandle", "target", "targetHandle")} for e in doc["edges"]]
    sent = {k: doc[k] for k in ("format", "version", "name", "layout", "revision")}
    return json.loads(json.dumps(js_numbers({**sent, "nodes": nodes, "edges": edges})))


def node(doc: dict, nid: str) -> dict:
    return next(n for n in doc["nodes"] if n["id"] == nid)


def drop_node(doc: dict, nid: str) -> None:
    doc["nodes"] = [n for n in doc["nodes"] if n["id"] != nid]
    doc["edges"] = [e for e in doc["edges"] if nid not in (e["source"], e["target"])]


def connect(doc: dict, src: str, dst: str, slot: int = 0, port: int = 0) -> None:
    doc["edges"] = [e for e in doc["edges"] if not (e["target"] == dst and e["targetHandle"] == f"in{slot}")]
    doc["edges"].append({"id": f"{src}:{port}->{dst}:{slot}", "source": src, "sourceHandle": f"out{port}",
                         "target": dst, "targetHandle": f"in{slot}"})


def add_from_palette(doc: dict, type_: str, nid: str) -> dict:
    """What the browser adds when a palette entry is dropped (src/App.jsx addNode)."""
    e = next(p for p in palette() if p["type"] == type_)
    n = {"id": nid, "kind": "op", "op": e["op"], "attrs": dict(e["attrs"]), "layer": dict(e["layer"] or {}) or None,
         "slots": [dict(s) for s in e["slots"]], "n_outputs": e["outputs"], "new": True, "position": {"x": 0, "y": 0}}
    doc["nodes"].append(n)
    return n


def same_const(a, b, name: str) -> bool:
    ta, tb = a.tensors[name], b.tensors.get(name)
    return tb is not None and ta.shape == tb.shape and ta.dtype == tb.dtype and np.array_equal(ta.data, tb.data)


# ---- 1. nothing edited -> same content ----------------------------------------------------------------------

@pytest.mark.parametrize("name", [e["name"] for e in list_zoo()])
def test_round_trip_keeps_content_hash_on_the_zoo(name):
    g = build_zoo_model(f"zoo:{name}")
    doc = browser_echo(to_canvas(g))
    assert validate_canvas(doc, g) == {}
    g2 = from_canvas(doc, g)
    assert content_hash(g2) == content_hash(g), [n.name for n in g2.nodes][:5]
    # Positions were stored, so the next document needs no layout and keeps them.
    again = to_canvas(g2)
    assert not again["needs_layout"]
    assert node(again, g.nodes[0].name)["position"] == node(doc, g.nodes[0].name)["position"]


@pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")
@pytest.mark.parametrize("fname", TFLITE)
def test_round_trip_keeps_content_hash_on_mlperf_tflite(fname):
    g = load_tflite(str(MLPERF / fname))
    doc = to_canvas(g)
    assert doc["layout"] == "NHWC" or fname.startswith("ad01")
    g2 = from_canvas(browser_echo(doc), g)
    assert content_hash(g2) == content_hash(g)
    # Every quantized constant is still the file's bytes.
    for t in g.initializers():
        assert same_const(g, g2, t.name), t.name


def test_document_shape():
    g = build_zoo_model("zoo:ic_resnet8")
    doc = to_canvas(g)
    kinds = [n["kind"] for n in doc["nodes"]]
    assert kinds.count("input") == 1 and kinds.count("output") == 1 and kinds.count("op") == len(g.nodes)
    ids = {n["id"] for n in doc["nodes"]}
    for e in doc["edges"]:  # every edge lands on a data slot of an existing node
        assert e["source"] in ids and e["target"] in ids
        tgt = node(doc, e["target"])
        if tgt["kind"] == "op":
            assert tgt["slots"][int(e["targetHandle"][2:])]["kind"] == "data"
    conv = node(doc, "conv1")
    assert conv["layer"] == {"out_channels": 16, "kernel": [3, 3], "bias": False, "depthwise": False, "multiplier": 1}
    assert [s["kind"] for s in conv["slots"]] == ["data", "param"]  # weights are parameters, not nodes
    assert conv["slots"][1]["shape"] == [16, 3, 3, 3]
    assert sum(n.get("macs", 0) for n in doc["nodes"]) == doc["totals"]["macs"] == 12_501_632
    assert "Conv" in doc["schemas"] and any(a["name"] == "strides" for a in doc["schemas"]["Conv"]["attrs"])
    assert doc["needs_layout"]  # zoo graphs have no stored positions: the browser lays them out
    assert doc["revision"] == to_canvas(g)["revision"]


# ---- 2. edits -----------------------------------------------------------------------------------------------

def test_changing_out_channels_reinitializes_this_and_the_next_layer():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    node(doc, "c1")["layer"]["out_channels"] = 8
    g2 = from_canvas(doc, g)
    assert g2.tensors["c1_W"].shape == (8, 1, 5, 5) and g2.tensors["c1_B"].shape == (8,)
    assert g2.tensors["c3_W"].shape == (16, 8, 5, 5)  # the next conv's input channels follow
    assert g2.tensors["c1_out"].shape == (1, 8, 28, 28) and g2.tensors["s2_out"].shape == (1, 8, 14, 14)
    for kept in ("c3_B", "c5_W", "c5_B", "f6_W", "output_W", "output_B"):
        assert same_const(g, g2, kept), kept
    # Seeded He initialization: std sqrt(2 / fan_in), the same on every call.
    for name, fan_in in (("c1_W", 25), ("c3_W", 8 * 25)):
        std = float(g2.tensors[name].data.std())
        assert abs(std - math.sqrt(2 / fan_in)) < 0.25 * math.sqrt(2 / fan_in), (name, std)
    assert not g2.tensors["c1_B"].data.any()
    assert content_hash(from_canvas(doc, g)) == content_hash(g2)
    y = run_graph(g2, {"input": np.ones((1, 1, 32, 32), np.float32)})
    assert next(iter(y.values())).shape == (1, 10)


def test_depthwise_layers_follow_their_input_channels():
    g = build_zoo_model("zoo:kws_dscnn")
    doc = browser_echo(to_canvas(g))
    assert node(doc, "block1_dw")["layer"]["depthwise"]
    node(doc, "conv1")["layer"]["out_channels"] = 32
    g2 = from_canvas(doc, g)
    dw = g2.node("block1_dw")
    assert dw.attrs["group"] == 32 and g2.tensors[dw.inputs[1]].shape == (32, 1, 3, 3)
    assert g2.tensors["conv1_bn_scale"].shape == (32,) and g2.tensors["block1_dw_bn_var"].shape == (32,)
    assert g2.tensors["block1_pw_W"].shape == (64, 32, 1, 1)
    assert same_const(g, g2, "block2_dw_W") and same_const(g, g2, "fc_W")


def test_editing_an_int8_tflite_layer_keeps_the_other_layers_bytes():
    g = load_tflite(str(MLPERF / "kws_ref_model.tflite")) if MLPERF.is_dir() else pytest.skip("no MLPerf data")
    doc = browser_echo(to_canvas(g))
    first = g.nodes[0]
    node(doc, first.name)["layer"]["out_channels"] = 32
    g2 = from_canvas(doc, g)
    w = g2.tensors[g2.nodes[0].inputs[1]]
    assert w.shape == (32, 10, 4, 1) and w.dtype == "float32" and w.quant is None  # NHWC (M, kH, kW, C)
    assert g2.tensors[g2.nodes[1].inputs[1]].shape == (32, 3, 3, 1)  # TFLite depthwise (C*mult, kH, kW, 1)
    assert g2.tensors[g2.nodes[2].inputs[1]].shape == (64, 1, 1, 32)
    last = g.nodes[-2]  # the fully connected layer is untouched: same int8 bytes and scales
    assert same_const(g, g2, last.inputs[1]) and g2.tensors[last.inputs[1]].quant == g.tensors[last.inputs[1]].quant


def test_changing_the_input_shape_reshapes_downstream_weights():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    node(doc, "input:input")["shape"] = [1, 1, 28, 28]
    g2 = from_canvas(doc, g)
    assert g2.tensors["flatten_out"].shape == (1, 256) and g2.tensors["c5_W"].shape == (120, 256)
    assert same_const(g, g2, "c1_W") and same_const(g, g2, "f6_W")


def test_same_padding_is_rederived_when_the_kernel_changes():
    g = build_zoo_model("zoo:kws_dscnn")
    doc = browser_echo(to_canvas(g))
    assert g.node("conv1").attrs["pads"] == [4, 1, 5, 1]  # TF 'SAME' for 10x4 stride 2 on 49x10
    node(doc, "conv1")["layer"]["kernel"] = [3, 3]
    g2 = from_canvas(doc, g)
    assert g2.node("conv1").attrs["pads"] == [1, 0, 1, 1] and g2.node("conv1").attrs["kernel_shape"] == [3, 3]
    assert g2.tensors["conv1_out"].shape == (1, 64, 25, 5)


# ---- 3. invalid edits are reported on the node ----------------------------------------------------------

@pytest.mark.parametrize("where, value, words", [
    ("layer", {"kernel": [0, 0]}, "kernel"),
    ("layer", {"out_channels": 0}, "out_channels"),
    ("attrs", {"strides": [0, 1]}, "strides"),
    ("attrs", {"group": 4}, "group"),
    ("attrs", {"auto_pad": "SIDEWAYS"}, "auto_pad"),
])
def test_invalid_attribute_is_reported_on_its_node(where, value, words):
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    node(doc, "c3")[where].update(value)
    errors = validate_canvas(doc, g)
    assert list(errors) == ["c3"] and words in errors["c3"], errors  # downstream nodes are not blamed too
    with pytest.raises(GraphError) as e:
        from_canvas(doc, g)
    assert e.value.node == "c3" and "node 'c3' (Conv)" in str(e.value)


def test_pool_kernel_zero_is_an_error():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    node(doc, "s2")["attrs"]["kernel_shape"] = [0, 0]
    assert "kernel_shape [0, 0] must be positive" in validate_canvas(doc, g)["s2"]


def test_connecting_mismatched_shapes_is_an_error_on_the_consumer():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    connect(doc, "s4", "c5")  # skip the Flatten: a 4-D tensor into a fully connected layer
    drop_node(doc, "flatten")
    errors = validate_canvas(doc, g)
    assert list(errors) == ["c5"] and "2-D" in errors["c5"], errors
    with pytest.raises(GraphError, match="node 'c5'"):
        from_canvas(doc, g)

    doc = browser_echo(to_canvas(g))
    add_from_palette(doc, "Add", "add_1")
    connect(doc, "c1_tanh", "add_1", 0)
    connect(doc, "s2", "add_1", 1)  # (1, 6, 28, 28) + (1, 6, 14, 14)
    errors = check_canvas(doc, g)["errors"]
    assert "do not broadcast" in errors["add_1"]


def test_deleting_a_node_with_consumers_reports_the_dangling_input():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    drop_node(doc, "s2")
    errors = validate_canvas(doc, g)
    assert errors == {"c3": "input 0 (X) is not connected"}
    with pytest.raises(GraphError, match="node 'c3' .*not connected"):
        from_canvas(doc, g)
    # Rewiring the gap makes it valid again; the deleted layer's tensors are gone.
    connect(doc, "c1_tanh", "c3")
    g2 = from_canvas(doc, g)
    assert "s2_out" not in g2.tensors and g2.tensors["c3_out"].shape == (1, 16, 24, 24)
    assert g2.tensors["c5_W"].shape == (120, 16 * 12 * 12)  # s4 now gives 12x12


def test_cycles_and_unconnected_outputs_are_reported():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    connect(doc, "c3_tanh", "c1")
    assert "cycle" in validate_canvas(doc, g)[GRAPH_KEY]
    doc = browser_echo(to_canvas(g))
    doc["edges"] = [e for e in doc["edges"] if not e["target"].startswith("output:")]
    assert validate_canvas(doc, g) == {"output:output_out": "graph output is not connected"}


# ---- 3b. dead ends, the blank canvas, a layer dropped on an edge -----------------------------------------------

def insert_on_edge(doc: dict, edge_id: str, n: dict) -> None:
    """What the browser does when a palette layer is dropped on an edge (src/model.js insertOnEdge): the edge
    src -> dst becomes src -> new -> dst, into the new layer's first data input and out of its first output."""
    e = next(x for x in doc["edges"] if x["id"] == edge_id)
    slot = next(i for i, s in enumerate(n["slots"]) if s["kind"] == "data")
    doc["edges"].remove(e)
    connect(doc, e["source"], n["id"], slot, int(e["sourceHandle"][3:]))
    doc["edges"].append({"id": f"{n['id']}:0->{e['target']}:{e['targetHandle'][2:]}", "source": n["id"],
                         "sourceHandle": "out0", "target": e["target"], "targetHandle": e["targetHandle"]})


def test_dead_ends_finds_dangling_branches_unused_inputs_and_unreachable_outputs():
    from engine.builder import GraphBuilder
    from engine.validate import dead_ends

    b = GraphBuilder("g")
    x = b.input("x", (1, 4))
    b.input("unused", (1, 4))
    y = b.node("Relu", [x], name="main")
    b.node("Sigmoid", [x], name="side")  # computed, never used
    c = b.const("c", np.ones((1, 4), np.float32))
    z = b.node("Neg", [c], name="from_const")
    b.output(y)
    b.output(z)
    g = b.build()
    assert dead_ends(g) == [
        ("input", "unused", "graph input 'unused' feeds nothing: connect it to a layer"),
        ("node", "side", "its output feeds nothing (a dangling branch): connect it to a layer or to a graph "
                         "output, or delete it"),
        ("output", z, f"graph output '{z}' is not reached from any graph input")]
    for e in list_zoo():
        assert dead_ends(build_zoo_model(f"zoo:{e['name']}")) == [], e["name"]


def test_blank_graph_is_input_to_output_and_appending_extends_the_chain():
    from engine.validate import dead_ends
    from engine.zoo.blank import blank_graph

    g = blank_graph((1, 1, 28, 28))
    assert g.nodes == [] and g.inputs == g.outputs == ["input"] and dead_ends(g) == []
    doc = browser_echo(to_canvas(g))
    assert [n["kind"] for n in doc["nodes"]] == ["input", "output"] and len(doc["edges"]) == 1
    assert validate_canvas(doc, g) == {}
    # conv -> relu -> flatten -> dense, each dropped on the edge into the output, as the canvas does
    for type_, nid in [("Conv2D", "conv2d_1"), ("ReLU", "relu_1"), ("Flatten", "flatten_1"), ("Dense", "dense_1")]:
        into_output = next(e["id"] for e in doc["edges"] if e["target"].startswith("output:"))
        n = add_from_palette(doc, type_, nid)
        if type_ == "Conv2D":
            n["layer"].update(out_channels=8, kernel=[3, 3])
        if type_ == "Dense":
            n["layer"]["out_features"] = 10
        insert_on_edge(doc, into_output, n)
        assert validate_canvas(doc, g) == {}, type_
    g2 = from_canvas(doc, g)
    assert [n.op for n in g2.nodes] == ["Conv", "Relu", "Flatten", "Gemm"]
    assert g2.outputs == [g2.node("dense_1").outputs[0]] and g2.tensors[g2.outputs[0]].shape == (1, 10)
    assert g2.tensors[g2.node("dense_1").inputs[1]].shape == (10, 8 * 28 * 28)  # the palette conv pads "same"
    out = run_graph(g2, {"input": np.ones((1, 1, 28, 28), np.float32)})
    assert next(iter(out.values())).shape == (1, 10)


def test_a_branch_that_leads_nowhere_is_not_valid():
    from engine.zoo.blank import blank_graph

    g = blank_graph((1, 1, 28, 28))
    doc = browser_echo(to_canvas(g))
    add_from_palette(doc, "Conv2D", "conv2d_1")["layer"].update(out_channels=4, kernel=[3, 3])
    connect(doc, "input:input", "conv2d_1")  # the old trap: input -> conv, the output still fed by the input
    errors = validate_canvas(doc, g)
    assert list(errors) == ["conv2d_1"] and "feeds nothing" in errors["conv2d_1"]
    with pytest.raises(GraphError, match="conv2d_1.*dangling branch"):
        from_canvas(doc, g)
    # an input nothing reads, and an output computed from constants only
    doc = browser_echo(to_canvas(build_zoo_model("zoo:lenet5")))
    doc["nodes"].append({"id": "input:extra", "kind": "input", "tensor": "extra", "shape": [1, 4],
                         "dtype": "float32", "position": {"x": 0, "y": 0}})
    assert "feeds nothing" in validate_canvas(doc, build_zoo_model("zoo:lenet5"))["input:extra"]


def test_a_layer_dropped_on_an_edge_of_a_branching_graph():
    g = build_zoo_model("zoo:mobilenetv2?width=0.35&resolution=96")
    doc = browser_echo(to_canvas(g))
    edge = next(e["id"] for e in doc["edges"] if e["source"] == "block3_project_bn" and e["target"] == "block3_add")
    insert_on_edge(doc, edge, add_from_palette(doc, "ReLU", "relu_1"))
    assert validate_canvas(doc, g) == {}
    g2 = from_canvas(doc, g)
    relu, add = g2.node("relu_1"), g2.node("block3_add")
    assert relu.inputs == g2.node("block3_project_bn").outputs and relu.outputs[0] in add.inputs
    assert len(g2.nodes) == len(g.nodes) + 1 and g2.tensors[relu.outputs[0]].shape == g.tensors[add.outputs[0]].shape


# ---- 4. the palette --------------------------------------------------------------------------------------

def test_palette_entries_have_schemas_and_slots():
    entries = palette()
    types = [e["type"] for e in entries]
    assert len(types) == len(set(types))
    for want in ("Conv2D", "DepthwiseConv2D", "Dense", "ReLU", "MaxPool2D", "BatchNorm", "Add", "Concat", "Flatten",
                 "Reshape", "Softmax", "Dropout", "Input", "Output"):
        assert want in types
    conv = entries[types.index("Conv2D")]
    assert {"out_channels", "kernel", "strides"} <= set(conv["required"])
    assert {f["name"] for f in conv["schema"]["layer"]} >= {"out_channels", "kernel", "bias"}
    assert next(a for a in conv["schema"]["attrs"] if a["name"] == "auto_pad")["choices"]
    json.dumps(entries)


@pytest.mark.parametrize("type_", [e["type"] for e in palette() if e["category"] not in ("More ops", "Graph")])
def test_every_palette_layer_can_be_added_and_wired(type_):
    spec, src = ("zoo:sensor_cnn1d", "pool1") if type_ == "Conv1D" else ("zoo:lenet5", "s2")
    g = build_zoo_model(spec)
    doc = browser_echo(to_canvas(g))
    n = add_from_palette(doc, type_, "new_1")
    if n["op"] in ("Gemm", "LayerNormalization", "Softmax"):
        src = "flatten"  # 2-D layers go after the Flatten
    for i, s in enumerate(n["slots"]):
        if s["kind"] == "data":
            connect(doc, src, "new_1", i)
    out = {"id": "output:extra", "kind": "output", "tensor": None, "position": {"x": 0, "y": 0}}
    doc["nodes"].append(out)
    connect(doc, "new_1", "output:extra")
    assert validate_canvas(doc, g) == {}, type_
    g2 = from_canvas(doc, g)
    new = g2.node("new_1")
    assert g2.outputs[-1] == new.outputs[0] and g2.tensors[new.outputs[0]].shape
    for s, t in zip(n["slots"], new.inputs):  # parameters were created for the layer
        assert (g2.tensors[t].data is not None) == (s["kind"] == "param"), (s, t)


def test_lrn_from_more_ops_goes_between_two_layers():
    """A new op reaches the studio through the registry alone: LRN is in "More ops" with its size prefilled."""
    from engine.summary import layer_records

    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    n = add_from_palette(doc, "LRN", "norm_1")
    assert n["attrs"] == {"size": 5}
    connect(doc, "s2", "norm_1")
    connect(doc, "norm_1", "c3")
    assert validate_canvas(doc, g) == {}
    g2 = from_canvas(doc, g)
    assert g2.node("c3").inputs[0] == g2.node("norm_1").outputs[0]
    rec = next(r for r in layer_records(g2) if r.name == "norm_1")
    assert rec.macs == 14 * 14 * (3 + 4 + 5 + 5 + 4 + 3)  # 6 channels of 14x14, windows clipped at the edges


def test_adding_a_conv_between_two_layers():
    g = build_zoo_model("zoo:lenet5")
    doc = browser_echo(to_canvas(g))
    n = add_from_palette(doc, "Conv2D", "conv2d_1")
    n["layer"]["out_channels"] = 12
    connect(doc, "s2", "conv2d_1")
    connect(doc, "conv2d_1", "c3")
    info = check_canvas(doc, g)
    assert info["errors"] == {} and info["nodes"]["conv2d_1"]["outputs"][0]["shape"] == [1, 12, 14, 14]
    g2 = from_canvas(doc, g)
    order = [x.name for x in g2.nodes]
    assert order.index("s2") < order.index("conv2d_1") < order.index("c3")
    assert g2.tensors[g2.node("conv2d_1").inputs[1]].shape == (12, 6, 3, 3)
    assert g2.tensors["c3_W"].shape == (16, 12, 5, 5)


def test_a_layer_added_to_a_tflite_graph_is_channels_last():
    if not MLPERF.is_dir():
        pytest.skip("no MLPerf data")
    g = load_tflite(str(MLPERF / "kws_ref_model.tflite"))
    doc = browser_echo(to_canvas(g))
    pool = add_from_palette(doc, "MaxPool2D", "pool_1")
    first = g.nodes[0].name
    for e in [e for e in doc["edges"] if e["source"] == first]:
        connect(doc, "pool_1", e["target"], int(e["targetHandle"][2:]))
    connect(doc, first, "pool_1")
    # A 2x2/2 pool halves the map to 12x2: the model's final 25x5 average pool no longer fits.
    info = check_canvas(doc, g)
    assert info["nodes"]["pool_1"]["outputs"][0]["shape"] == [1, 12, 2, 64]
    assert list(info["errors"]) == ["AVERAGE_POOL_2D_9"] and "larger than" in info["errors"]["AVERAGE_POOL_2D_9"]
    pool["attrs"].update(strides=[1, 1], auto_pad="SAME_UPPER")
    g2 = from_canvas(doc, g)
    assert g2.node("pool_1").attrs["layout"] == "NHWC"
    assert g2.tensors[g2.node("pool_1").outputs[0]].shape == (1, 25, 5, 64)


# ---- 5. the layer table --------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["zoo:lenet5", "zoo:kws_dscnn", "zoo:kws_dscnn?bn=false"])
def test_layer_table_round_trip(spec):
    g = build_zoo_model(spec)
    rows = sequential_table(g)
    assert content_hash(apply_table(g, rows)) == content_hash(g)
    assert content_hash(apply_table(g, json.loads(json.dumps(rows)))) == content_hash(g)
    assert sum(r["macs"] for r in rows) == sum(n["macs"] for n in to_canvas(g)["nodes"] if n["kind"] == "op")


def test_layer_table_edits():
    g = build_zoo_model("zoo:kws_dscnn")
    rows = sequential_table(g)
    assert [r["layer"] for r in rows][:3] == ["conv1", "block1_dw", "block1_pw"]
    assert rows[0] == {**rows[0], "op": "Conv + BN", "out_channels": 64, "kernel": "10x4", "stride": "2x2",
                       "activation": "relu"}
    rows[0].update(out_channels=32, stride="1")
    rows[1].update(activation="relu6")
    rows[2].update(activation="none", kernel="3")
    g2 = apply_table(g, rows)
    new = {r["layer"]: r for r in sequential_table(g2)}
    assert new["conv1"]["out_channels"] == 32 and new["conv1"]["stride"] == "1x1"
    assert new["block1_dw"]["out_channels"] == 32 and new["block1_dw"]["activation"] == "relu6"
    assert g2.node("block1_dw_relu").op == "Clip"
    assert new["block1_pw"]["activation"] == "none" and "block1_pw_relu" not in {n.name for n in g2.nodes}
    assert new["block1_pw"]["kernel"] == "3x3" and g2.tensors["block1_pw_W"].shape == (64, 32, 3, 3)
    assert g2.tensors["conv1_out"].shape == (1, 32, 49, 10)
    # Adding an activation where there was none inserts an ONNX-style node.
    rows = sequential_table(g2)
    rows[-1 - 1]["activation"] = "sigmoid"  # the FC before the softmax
    g3 = apply_table(g2, rows)
    assert any(n.op == "Sigmoid" for n in g3.nodes)


def test_layer_table_on_lenet_and_errors():
    g = build_zoo_model("zoo:lenet5")
    rows = sequential_table(g)
    c5 = next(r for r in rows if r["layer"] == "c5")
    c5["out_channels"] = 100
    g2 = apply_table(g, rows)
    assert g2.tensors["c5_W"].shape == (100, 400) and g2.tensors["f6_W"].shape == (84, 100)
    rows = sequential_table(g)
    next(r for r in rows if r["layer"] == "s2")["out_channels"] = 4
    with pytest.raises(GraphError, match="out_channels cannot be set on a AveragePool"):
        apply_table(g, rows)
    rows = sequential_table(g)
    rows[0]["kernel"] = "0x0"
    with pytest.raises(GraphError, match="node 'c1'.*kernel"):
        apply_table(g, rows)
    with pytest.raises(GraphError, match="not sequential"):
        sequential_table(build_zoo_model("zoo:ic_resnet8"))


# ---- 6. the shipped component ---------------------------------------------------------------------------------

def test_component_units_insert_append_fold_and_search():
    """app/canvas/frontend/e2e/units.mjs: the browser side's pure functions (needs Node and `npm ci`)."""
    import shutil

    frontend = DIST.parent
    if shutil.which("node") is None or not (frontend / "node_modules" / "@dagrejs" / "dagre").is_dir():
        pytest.skip("Node.js or the component's node_modules (npm ci in app/canvas/frontend) is missing")
    run = subprocess.run(["node", "e2e/units.mjs"], cwd=frontend, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "canvas units: ok" in run.stdout


def test_built_component_is_committed_and_offline():
    index = (DIST / "index.html").read_text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', index)
    assert assets and all(a.startswith("./assets/") for a in assets), assets  # relative: no CDN, works offline
    for a in assets:
        assert (DIST / a).is_file()
    css = (DIST / "assets" / "index.css").read_text()
    assert "@import" not in css and "url(http" not in css  # no web fonts
    ignored = subprocess.run(["git", "check-ignore", "-q", str(DIST / "index.html")], cwd=ROOT)
    assert ignored.returncode == 1, "app/canvas/frontend/dist is git-ignored; it must be committed"
    lock = json.loads((DIST.parent / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 3 and "node_modules/@xyflow/react" in lock["packages"]
