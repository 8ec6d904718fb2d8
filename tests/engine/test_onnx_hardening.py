"""Hardening of the ONNX importer (issue 10): uploads never read server files through external data, on-disk
external data is checked before anything is read, nodes are checked against the ONNX schemas, and every
crash row of the fuzz review is one clean error (or a model that loads) with names escaped onto one line."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.errors import GraphError, ModelFormatError, TinyStudioError, one_line
from engine.importers import load_model, load_model_bytes
from engine.importers.onnx_import import load_onnx
from engine.serialize import content_hash, dumps

F = TensorProto.FLOAT
W = np.arange(12, dtype=np.float32).reshape(3, 4)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def _external(location: str, **entries) -> onnx.ModelProto:
    """x (1, 3) @ w (3, 4), with w's bytes in external data at `location` (plus offset/length entries)."""
    w = numpy_helper.from_array(W, "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in [("location", location), *entries.items()]:
        e = w.external_data.add()
        e.key, e.value = k, v
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_vi("x", [1, 3])],
                  [_vi("y", [1, 4])], [w])


def _one_line_error(fn, match: str) -> str:
    with pytest.raises(TinyStudioError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and msg == one_line(msg), msg
    assert match in msg, msg
    return msg


# ---- uploads have no folder --------------------------------------------------------------------------

def test_upload_pointing_at_a_file_beside_the_server_is_refused(tmp_path, monkeypatch):
    """The review's exploit: the browser's file name matches a file in the server's working folder, and the
    initializer's external data names a file beside it. Nothing may be read."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.bin").write_bytes(W.tobytes())  # exactly the bytes the tensor needs
    data = _external("secret.bin").SerializeToString()
    (tmp_path / "model.onnx").write_bytes(data)  # a file sharing the upload's name
    for name in ("model.onnx", str(tmp_path / "model.onnx")):  # a script can send an absolute name
        msg = _one_line_error(lambda: load_model_bytes(data, name), "no folder")
        assert "'w'" in msg and "refused" in msg
        with pytest.raises(ModelFormatError, match="no folder"):
            load_onnx(name, data)


def test_external_data_inside_an_attribute_or_subgraph_is_refused_for_bytes():
    t = numpy_helper.from_array(W, "c")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "secret.bin"
    m = _model([helper.make_node("Constant", [], ["w"], name="k", value=t),
                helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_vi("x", [1, 3])], [_vi("y", [1, 4])])
    _one_line_error(lambda: load_model_bytes(m.SerializeToString(), "m.onnx"), "no folder")


def test_the_same_file_from_its_folder_loads(tmp_path):
    (tmp_path / "weights.bin").write_bytes(W.tobytes())
    path = tmp_path / "model.onnx"
    path.write_bytes(_external("weights.bin").SerializeToString())
    g = load_model(str(path))
    np.testing.assert_array_equal(g.tensors["w"].data, W)


# ---- files on disk: links, NUL, offsets and lengths --------------------------------------------------

def _on_disk(tmp_path, model, weights=W.tobytes()) -> str:
    d = tmp_path / "models"
    d.mkdir(exist_ok=True)
    (d / "weights.bin").write_bytes(weights)
    path = d / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_hard_link_to_a_file_outside_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(W.tobytes())
    path = _on_disk(tmp_path, _external("hard.bin"))
    os.link(outside, tmp_path / "models" / "hard.bin")
    _one_line_error(lambda: load_model(path), "hard links")


def test_nul_byte_in_the_location_is_refused(tmp_path):
    path = _on_disk(tmp_path, _external("weights.bin\x00../../etc/passwd"))
    _one_line_error(lambda: load_model(path), "NUL byte")


@pytest.mark.parametrize("entries,match", [
    ({"offset": "abc"}, "offset 'abc'"),
    ({"offset": "-1"}, "offset '-1'"),
    ({"offset": "-8", "length": "48"}, "offset '-8'"),
    ({"offset": "1e3"}, "offset '1e3'"),
    ({"offset": "49"}, "beyond the end"),
    ({"offset": "99999999999999999999"}, "beyond the end"),
    ({"length": str(2 ** 40)}, "beyond the end"),
    ({"length": "-48"}, "length '-48'"),
    ({"offset": "8", "length": "48"}, "beyond the end"),
    ({"length": "44"}, "does not match"),
], ids=["abc", "negative", "negative-with-length", "float", "past-end", "huge-offset", "length-2^40",
        "negative-length", "length-past-end", "length-short"])
def test_bad_offsets_and_lengths_are_refused_before_reading(tmp_path, entries, match):
    path = _on_disk(tmp_path, _external("weights.bin", **entries))
    _one_line_error(lambda: load_model(path), match)


def test_external_data_that_is_a_folder_is_refused(tmp_path):
    path = _on_disk(tmp_path, _external("."))
    _one_line_error(lambda: load_model(path), "not a regular file")


def test_good_offset_and_length_load(tmp_path):
    path = _on_disk(tmp_path, _external("weights.bin", offset="16", length="48"), bytes(16) + W.tobytes())
    np.testing.assert_array_equal(load_model(path).tensors["w"].data, W)


# ---- the crash table of the review, one row each ------------------------------------------------------

def _load(m: onnx.ModelProto | bytes):
    return load_model_bytes(m if isinstance(m, bytes) else m.SerializeToString(), "m.onnx")


def test_cast_without_to():
    m = _model([helper.make_node("Cast", ["x"], ["y"], name="c")], [_vi("x", [2])], [_vi("y", [2])])
    _one_line_error(lambda: _load(m), "node 'c' (Cast): required attribute 'to' is missing")


def test_cast_to_an_unknown_type():
    m = _model([helper.make_node("Cast", ["x"], ["y"], name="c", to=99)], [_vi("x", [2])], [_vi("y", [2])])
    _one_line_error(lambda: _load(m), "'to' = 99 is not an ONNX element type")


def test_reshape_shape_as_float_tensor_with_nan():
    m = _model([helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], [_vi("x", [2, 3])], [_vi("y", None)],
               [numpy_helper.from_array(np.array([np.nan, 2], np.float32), "s")])
    _one_line_error(lambda: _load(m), "node 'r' (Reshape): input 1 ('s') is tensor(float)")


@pytest.mark.parametrize("where", ["input", "initializer"])
def test_unknown_element_type_99(where):
    if where == "input":
        m = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", [2], 99)], [_vi("y", [2])])
    else:
        t = numpy_helper.from_array(np.ones(2, np.float32), "b")
        t.data_type = 99
        m = _model([helper.make_node("Add", ["x", "b"], ["y"], name="a")], [_vi("x", [2])], [_vi("y", [2])], [t])
    _one_line_error(lambda: _load(m), "element type 99")


def test_string_attribute_that_is_not_utf8():
    m = _model([helper.make_node("Gelu", ["x"], ["y"], name="g", approximate=b"\xff\xfe")], [_vi("x", [2])],
               [_vi("y", [2])], opset=20)
    _one_line_error(lambda: _load(m), "attribute 'approximate' holds text that is not valid UTF-8")


def test_names_that_are_not_utf8_load_hash_and_serialize():
    """onnx cannot write such names; the bytes are patched in. The graph must hash and save like any other."""
    m = _model([helper.make_node("Relu", ["x"], ["ZZtensor"], name="ZZnode"),
                helper.make_node("Sigmoid", ["ZZtensor"], ["y"], name="s")], [_vi("x", [2])], [_vi("y", [2])])
    data = m.SerializeToString().replace(b"ZZ", b"\xff\xfe")
    g = _load(data)
    names = set(g.tensors) | {n.name for n in g.nodes}
    assert "\\xff\\xfetensor" in names and "\\xff\\xfenode" in names
    assert len(content_hash(g)) == 64
    doc, _ = dumps(g)
    json.dumps(doc)


def test_gemm_inputs_under_a_split_with_a_2d_split_operand():
    m = _model([helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=0, name="s"),
                helper.make_node("Gemm", ["a", "b"], ["y"], name="gm", transB=1)],
               [_vi("x", [4, 2])], [_vi("y", None)], [numpy_helper.from_array(np.array([[2], [2]], np.int64), "sp")])
    _one_line_error(lambda: _load(m), "node 's' (Split): input 'split' must be a 1-D tensor")


def test_gemm_inputs_under_a_split_load():
    m = _model([helper.make_node("Split", ["x", "sp"], ["a", "b"], axis=0, name="s"),
                helper.make_node("Gemm", ["a", "b"], ["y"], name="gm", transB=1)],
               [_vi("x", [4, 2])], [_vi("y", None)], [numpy_helper.from_array(np.array([2, 2], np.int64), "sp")])
    assert _load(m).tensors["y"].shape == (2, 2)


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub", "Div", "Pow", "MatMul"])
def test_binary_op_with_one_input(op):
    m = _model([helper.make_node(op, ["x"], ["y"], name="b")], [_vi("x", [2])], [_vi("y", [2])])
    _one_line_error(lambda: _load(m), f"node 'b' ({op}): has 1 inputs; it takes 2")


def test_attribute_of_the_wrong_type():
    m = _model([helper.make_node("Concat", ["x", "x"], ["y"], name="c", axis=1.5)], [_vi("x", [2])],
               [_vi("y", [4])])
    _one_line_error(lambda: _load(m), "attribute 'axis' is FLOAT; the schema wants INT")


def test_inputs_of_different_types():
    m = _model([helper.make_node("Add", ["x", "k"], ["y"], name="a")], [_vi("x", [2])], [_vi("y", [2])],
               [numpy_helper.from_array(np.ones(2, np.int64), "k")])
    _one_line_error(lambda: _load(m), "input 1 ('k') is tensor(int64) but 'x' is tensor(float)")


def test_folding_a_huge_constant_is_refused_before_allocating():
    m = _model([helper.make_node("ConstantOfShape", ["s"], ["big"], name="fill"),
                helper.make_node("Add", ["x", "big"], ["y"], name="a")], [_vi("x", [1])], [_vi("y", None)],
               [numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "s")])
    _one_line_error(lambda: _load(m), "constant folding would create more than")


def test_expand_to_a_huge_shape_is_refused():
    m = _model([helper.make_node("Expand", ["x", "s"], ["y"], name="e")], [_vi("x", [1])], [_vi("y", None)],
               [numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "s")])
    _one_line_error(lambda: _load(m), "larger than")


# ---- names from files stay on one line -----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["a\nb", "x\r\ny", "\x1b[31mred", "nul\x00", "line\u2028sep"])
def test_names_with_control_characters_are_escaped(bad):
    m = _model([helper.make_node("Relu", [bad], ["y"], name=bad)], [_vi(bad, [2, "N", "M"])], [_vi("y", None)])
    msg = _one_line_error(lambda: _load(m), "dynamic dims")
    assert one_line(bad) in msg


def test_one_line_escapes_control_characters_only():
    assert one_line("plain 'name' é ✓") == "plain 'name' é ✓"
    assert one_line("a\nb\tc\x00\x1b\x7f\u2028") == "a\\nb\\tc\\x00\\x1b\\x7f\\u2028"
    assert str(GraphError("bad\nthing", node="n\n1", op="Relu")) == "node 'n\\n1' (Relu): bad\\nthing"


def test_non_finite_requantization_multiplier_is_a_graph_error():
    from engine.int8.quant_math import quantize_multipliers

    with pytest.raises(GraphError, match="not finite"):
        quantize_multipliers([0.5, float("nan")])


def test_quantize_with_a_scale_of_the_wrong_shape():
    """A fuzz find: a 2-D scale went into a per-axis Quant and made hashing the graph take minutes."""
    m = _model([helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q")], [_vi("x", [1, 4])],
               [_vi("y", None, TensorProto.UINT8)], [numpy_helper.from_array(np.ones((3, 2), np.float32), "s")])
    _one_line_error(lambda: _load(m), "must be scalars or 1-D tensors")
    m = _model([helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q", axis=1)], [_vi("x", [1, 4])],
               [_vi("y", None, TensorProto.UINT8)], [numpy_helper.from_array(np.ones(3, np.float32), "s")])
    _one_line_error(lambda: _load(m), "3 scales along axis 1")


def test_tensor_sizes_beyond_int64_byte_counts_are_refused():
    """A fuzz find: an input of 2^62 elements overflowed the memory planner's int64 arrays."""
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", [1 << 40, 1 << 22])], [_vi("y", None)])
    _one_line_error(lambda: _load(m), "over the limit of")
    m = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [_vi("x", [1 << 18, 1 << 18, 16])],
               [_vi("y", None)])
    assert _load(m).tensors["y"].shape == (1 << 18, 1 << 18, 16)  # large but countable: profiled, not refused


def test_c_generation_of_a_graph_without_inputs_is_a_graph_error():
    from engine.codegen import generate_library
    from engine.ir import Graph

    with pytest.raises(GraphError, match="0 inputs and 0 outputs"):
        generate_library(Graph("empty"), "empty")


def test_bytes_attribute_and_odd_names_hash_and_serialize():
    """Whatever text reaches a graph (bytes from a reader, lone surrogates), hashing and saving never raise."""
    from engine.ir import Graph, Node, Tensor

    g = Graph("g")
    g.tensors["x\udcff"] = Tensor("x\udcff", (1, 2), "float32", data=np.ones((1, 2), np.float32))
    g.tensors["y"] = Tensor("y", (1, 2), "float32")
    g.nodes.append(Node("Relu", "n", ["x\udcff"], ["y"], {"note": b"\xff\xfe"}))
    g.outputs.append("y")
    assert len(content_hash(g)) == 64
    doc, _ = dumps(g)
    assert doc["nodes"][0]["attrs"]["note"] == "\\xff\\xfe"
    json.dumps(doc)
