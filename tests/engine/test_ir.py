"""Graph IR: validation errors, topological order, content hash, lossless serialization."""
from __future__ import annotations

import numpy as np
import pytest

from engine.builder import GraphBuilder
from engine.errors import GraphError, ModelFormatError
from engine.execute import run_graph
from engine.ir import DTYPES, Graph, Node, Quant, Tensor
from engine.serialize import content_hash, dumps, load, loads, save
from engine.validate import infer_shapes, topological_order


def residual_graph(seed=0, channels=8) -> Graph:
    """A DAG with a branch: conv -> relu -> (conv, identity) -> add -> concat -> pool."""
    r = np.random.default_rng(seed)
    b = GraphBuilder("residual")
    x = b.input("X", (1, 3, 16, 16))
    w1 = b.const("W1", r.normal(size=(channels, 3, 3, 3)).astype(np.float32))
    h = b.node("Relu", [b.node("Conv", [x, w1], pads=[1, 1, 1, 1])])
    w2 = b.const("W2", r.normal(size=(channels, channels, 3, 3)).astype(np.float32))
    br = b.node("Conv", [h, w2], pads=[1, 1, 1, 1])
    s = b.node("Add", [h, br])
    c = b.node("Concat", [s, h], axis=1)
    b.output(b.node("GlobalAveragePool", [c]))
    return b.build()


def test_shapes_inferred_through_branches():
    g = residual_graph()
    assert g.tensors[g.outputs[0]].shape == (1, 16, 1, 1)
    out = run_graph(g, {"X": np.ones((1, 3, 16, 16), np.float32)})
    assert np.isfinite(out[g.outputs[0]]).all()


def test_dangling_input_is_named():
    g = residual_graph()
    g.nodes[1].inputs = ["nowhere"]
    with pytest.raises(GraphError, match=r"node 'Relu' \(Relu\): input 'nowhere' is dangling"):
        infer_shapes(g)


def test_cycle_is_reported():
    g = residual_graph()
    relu = g.node("Relu")
    conv = g.node("Conv")
    conv.inputs[0] = relu.outputs[0]  # Conv <- Relu <- Conv
    g.inputs = ["X"]
    with pytest.raises(GraphError, match="cycle through nodes Conv, Relu"):
        topological_order(g)


def test_shape_mismatch_names_node_and_shapes():
    g = residual_graph()
    g.tensors["W2"] = Tensor("W2", (8, 5, 3, 3), data=np.zeros((8, 5, 3, 3), np.float32))
    with pytest.raises(GraphError, match=r"node 'Conv_1' \(Conv\): W \[8, 5, 3, 3\] expects 5 input channels"):
        infer_shapes(g)
    g = residual_graph()
    g.node("Concat").attrs["axis"] = 2
    g.node("Add").inputs[1] = "X"
    with pytest.raises(GraphError, match=r"node 'Add' \(Add\): input shapes \[1, 8, 16, 16\] and \[1, 3, 16, 16\]"):
        infer_shapes(g)


def test_declared_shape_contradiction_is_caught_when_asked():
    g = residual_graph()
    g.tensors["Relu_out"] = Tensor("Relu_out", (1, 8, 15, 16))
    infer_shapes(g)  # editing: shapes are recomputed
    with pytest.raises(GraphError, match=r"declared \[1, 8, 15, 16\] but the op computes \[1, 8, 16, 16\]"):
        infer_shapes(g, check_declared=True)


@pytest.mark.parametrize("attrs,msg", [
    ({"stride": [2, 2]}, "unknown attribute 'stride'"),
    ({"group": "2"}, "attribute 'group' must be int"),
    ({"auto_pad": "SAME"}, "attribute 'auto_pad' must be one of"),
    ({"pads": [1, 1]}, r"pads \[1, 1\] must be 4 non-negative values"),
])
def test_bad_attributes(attrs, msg):
    g = residual_graph()
    g.node("Conv").attrs.update(attrs)
    with pytest.raises(GraphError, match=msg):
        infer_shapes(g)


def test_unknown_op_and_duplicate_names():
    g = residual_graph()
    g.node("Relu").op = "Frobnicate"
    with pytest.raises(GraphError, match="unknown op 'Frobnicate'"):
        infer_shapes(g)
    g = residual_graph()
    g.nodes[1].name = g.nodes[0].name
    with pytest.raises(GraphError, match="node name is used twice"):
        infer_shapes(g)


def test_topological_order_is_stable_and_valid():
    g = residual_graph()
    shuffled = g.copy()
    shuffled.nodes = list(reversed(shuffled.nodes))
    order = [n.name for n in topological_order(shuffled)]
    pos = {n: i for i, n in enumerate(order)}
    for n in g.nodes:
        for t in n.inputs:
            prod = [m for m in g.nodes if t in m.outputs]
            if prod:
                assert pos[prod[0].name] < pos[n.name]
    assert order == [n.name for n in topological_order(shuffled)]


def test_hash_is_stable_and_content_based():
    a, b = residual_graph(), residual_graph()
    assert content_hash(a) == content_hash(b)
    b.meta["ui"] = {"x": 1}
    b.nodes[0].meta["pos"] = [10, 20]
    b.nodes[0].attrs = dict(reversed(list(b.nodes[0].attrs.items())))
    assert content_hash(a) == content_hash(b), "meta and attribute order must not change the hash"
    c = residual_graph()
    c.tensors["W1"].data[0, 0, 0, 0] += 1e-3
    assert content_hash(a) != content_hash(c)
    assert content_hash(a) != content_hash(residual_graph(channels=4))


def _all_dtype_graph() -> Graph:
    g = residual_graph()
    for i, (name, dt) in enumerate(DTYPES.items()):
        data = (np.arange(6) % 3).reshape(2, 3).astype(dt)
        g.tensors[f"k_{name}"] = Tensor(f"k_{name}", (2, 3), name, data=data, meta={"i": i})
    q = Quant(np.array([0.5, 0.25, 0.125], np.float32), np.array([0, 1, -2]), axis=1)
    g.tensors["q"] = Tensor("q", (2, 3), "int8", q, np.array([[1, -2, 3], [127, -128, 0]], np.int8))
    return g


def test_serialization_is_lossless():
    g = _all_dtype_graph()
    doc, blob = dumps(g)
    import json
    g2 = loads(json.loads(json.dumps(doc)), blob)
    assert content_hash(g2) == content_hash(g)
    for name, t in g.tensors.items():
        t2 = g2.tensors[name]
        assert (t2.shape, t2.dtype, t2.quant, t2.meta) == (t.shape, t.dtype, t.quant, t.meta)
        if t.data is not None:
            assert t2.data.dtype == t.data.dtype and np.array_equal(t2.data, t.data)
    assert [n.__dict__ for n in g2.nodes] == [n.__dict__ for n in g.nodes]


def test_save_load_file_and_corruption(tmp_path):
    g = _all_dtype_graph()
    p = tmp_path / "m.tsgraph"
    save(g, str(p))
    assert content_hash(load(str(p))) == content_hash(g)
    data = p.read_bytes()
    (tmp_path / "cut.tsgraph").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="cut.tsgraph: corrupted TinyStudio graph file"):
        load(str(tmp_path / "cut.tsgraph"))


def test_quant_roundtrip_and_per_channel_broadcast():
    q = Quant([0.1, 0.2], [0, 10], axis=0)
    x = np.array([[0.5, -0.3], [1.0, 2.6]], np.float32)
    qi = q.quantize(x, "int8")
    assert qi.tolist() == [[5, -3], [15, 23]]
    np.testing.assert_allclose(q.dequantize(qi), [[0.5, -0.3], [1.0, 2.6]], atol=1e-6)
    with pytest.raises(ValueError):
        Quant([0.1, 0.2], [0, 0], axis=None)


def test_node_with_wrong_arity():
    g = residual_graph()
    g.node("Relu").inputs.append("X")
    with pytest.raises(GraphError, match=r"node 'Relu' \(Relu\): expects 1 inputs, got 2"):
        infer_shapes(g)


def test_missing_feed_and_wrong_shape_are_user_errors():
    from engine.errors import TinyStudioError
    g = residual_graph()
    with pytest.raises(TinyStudioError, match="missing input 'X'"):
        run_graph(g, {})
    with pytest.raises(TinyStudioError, match=r"input 'X' has shape \[1, 3, 8, 8\], the model expects \[1, 3, 16, 16\]"):
        run_graph(g, {"X": np.zeros((1, 3, 8, 8), np.float32)})


def test_graph_copy_does_not_alias_constants():
    g = residual_graph()
    h = g.copy()
    h.tensors["W1"].data[...] = 0
    assert np.abs(g.tensors["W1"].data).sum() > 0
    assert isinstance(h.nodes[0], Node)
