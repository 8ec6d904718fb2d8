"""Every op-category set outside engine/ops is derived from the op traits (engine/ops/base.py OpDef).

The literal lists below are the hand-written lists these modules held before the traits existed (issue 17); the
derived sets must stay equal to them. A set may change only when an op's trait changes: then change the literal
here in the same commit, saying which trait moved.
"""
from __future__ import annotations

import importlib

import pytest

from engine.ops import OPS, ops_where

PINNED = {
    ("engine.memory.lifetimes", "INPLACE_OPS"): {
        "Relu", "Relu6", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Erf", "Exp",
        "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Cast",
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu",
        "BatchNormalization", "QuantizeLinear", "DequantizeLinear"},
    ("engine.passes.layout", "SPATIAL"): {
        "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "BatchNormalization", "Resize"},
    ("engine.passes.layout", "UNARY"): {
        "Relu", "Relu6", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu", "Erf",
        "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Identity", "Dropout", "Cast"},
    ("engine.passes.layout", "BINARY"): {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"},
    ("engine.passes.noops", "_VIEWS"): {"Reshape", "Flatten", "Squeeze", "Unsqueeze"},
    ("engine.passes.noops", "_NOOPS"): {"Identity", "Dropout"},
    # SVDF: cost_kind "fc" (its feature projection is a fully connected layer; lowrank never factors it)
    ("engine.compress.lowrank", "MAC_LAYERS"): {"Conv", "Gemm", "ConvTranspose", "MatMul", "SVDF",
                                                "LSTM", "GRU", "RNN"},  # recurrent ops (cost_kind "fc")
    ("engine.passes.quantize", "SAME_GRID"): {
        "MaxPool", "AveragePool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split",
        "Gather", "Identity", "Dropout", "ReduceMax", "ReduceMin", "GlobalMaxPool", "Max", "Min", "Resize",
        "Pad", "Concat"},
    ("engine.passes.quantize", "WEIGHTED"): {"Conv", "Gemm"},
    ("engine.passes.quantize", "QUANT_BOUNDARY"): {"QuantizeLinear", "DequantizeLinear"},
    ("engine.passes.layout", "QUANT_BOUNDARY"): {"QuantizeLinear", "DequantizeLinear"},
    ("engine.compress.base", "QUANT_BOUNDARY"): {"QuantizeLinear", "DequantizeLinear"},
    ("engine.passes.fuse", "FUSABLE"): {"Conv", "ConvTranspose", "Gemm", "Add", "Sub", "Mul"},
    ("engine.compress.channels", "PASS_THROUGH"): {
        "Relu", "Relu6", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu",
        "Abs", "Neg", "Exp", "Erf", "Sqrt", "Floor", "Ceil", "Reciprocal", "Log", "Identity", "Dropout",
        "Cast", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "QuantizeLinear",
        "DequantizeLinear"},
    ("engine.compress.channels", "BINARY"): {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"},
    ("engine.compress.channels", "VIEWS"): {"Reshape", "Flatten", "Squeeze", "Unsqueeze"},
    ("engine.compress.channels", "PROBABILITIES"): {"Softmax", "LogSoftmax"},
    ("engine.compress.base", "WEIGHTED"): {"Conv", "Gemm"},
    ("engine.int8.prepare", "_MOVES"): {
        "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split", "Gather", "Identity",
        "Dropout", "ReduceMax", "ReduceMin", "GlobalMaxPool", "Max", "Min", "Resize"},
    ("hwmodels.estimate", "_POOLS"): {
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceMin",
        "ReduceSum",
        "LRN"},  # added with the op LRN (cost_kind "pool")
    ("hwmodels.estimate", "_SOFTMAX"): {"Softmax", "LogSoftmax"},
    # SVDF: estimated as a fully connected layer of its MACs (projection + time filter)
    ("hwmodels.estimate", "_FC"): {"Gemm", "MatMul", "SVDF",
                                   "LSTM", "GRU", "RNN"},  # recurrent ops (cost_kind "fc")
    ("engine.exporters.onnx_export", "_LAYOUT_OPS"): {
        "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "BatchNormalization", "Resize"},
    ("engine.exporters.onnx_export", "_SAME_NAME"): {
        "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Erf",
        "Identity", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu", "Flatten",
        "Transpose", "Concat", "Gather", "LeakyRelu", "HardSigmoid", "Gemm", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Conv", "ConvTranspose",
        "LRN",  # added with the op LRN (onnx_same)
        "LSTM", "GRU", "RNN"},  # recurrent ops (onnx_same)
    ("app.canvas.table", "_WEIGHTED"): {"Conv", "ConvTranspose", "Gemm", "MatMul"},
    ("app.canvas.table", "_WINDOWED"): {"Conv", "ConvTranspose", "MaxPool", "AveragePool"},
    ("engine.diff", "_CHANNEL_OPS"): {"Conv", "ConvTranspose", "Gemm", "MatMul"},
    ("engine.train.graphs", "PROBABILITY_OPS"): {"Softmax", "LogSoftmax"},
}


@pytest.mark.parametrize("where", sorted(PINNED), ids=lambda w: f"{w[0]}.{w[1]}")
def test_derived_set_equals_the_pinned_list(where):
    module, name = where
    got = set(getattr(importlib.import_module(module), name))
    want = PINNED[where]
    assert got == want, f"{module}.{name}: extra {sorted(got - want)}, missing {sorted(want - got)}"


def test_fixed_output_grids_pinned():
    from engine.passes.quantize import FIXED_OUTPUT
    assert dict(FIXED_OUTPUT) == {"Softmax": (1.0 / 256, -128), "Sigmoid": (1.0 / 256, -128), "Tanh": (1.0 / 128, 0)}


def test_int8_table_ops_are_the_lookup_table_kernels():
    """The table emitter registers itself for the int8_table ops: the set is pinned, and each has a C emitter
    that writes ts_lut_s8 (an op marked int8_table without a table prepare step would fail at export)."""
    from engine.codegen.layers import EMIT
    from engine.int8.lower import LOWER
    table_ops = ops_where(lambda op: op.int8_table)
    assert table_ops == {"Relu", "Relu6", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish"}
    assert all(op in EMIT and op in LOWER for op in table_ops)
    assert len({EMIT[op] for op in table_ops | {"QuantizeLinear"}}) == 1


def test_ops_where_reads_the_registry():
    assert ops_where(lambda op: op.is_view) == frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
    assert ops_where(lambda op: True) == frozenset(OPS)
    assert isinstance(ops_where(lambda op: False), frozenset)


# ---- the traits say something true about each op (checked on the ONNX export test's case for every op) ------

def _run_case(case, x=None):
    import numpy as np

    from engine.builder import GraphBuilder
    from engine.execute import run_graph

    op, shape, consts, attrs = case
    b = GraphBuilder(op)
    ins = [b.input("X", shape)] + [b.const(f"C{i}", c) for i, c in enumerate(consts)]
    outs = b.node(op, ins, outputs=3 if op == "Split" else 1, **attrs)
    b.output(*(outs if isinstance(outs, list) else [outs]))
    g = b.build()
    if x is None:  # magnitudes away from 0, negative only where the op takes them (as the export test does)
        rng = np.random.default_rng(1)
        x = rng.uniform(0.3, 2.0, shape).astype(np.float32)
        if op not in ("Log", "Sqrt", "Pow"):
            x = np.where(rng.random(shape) < 0.3, -x, x).astype(np.float32)
    return g, x, [run_graph(g, {"X": x})[o] for o in g.outputs]


def _cases(pred):
    from tests.engine.test_onnx_export import OP_CASES
    return [c for c in OP_CASES if pred(OPS[c[0]]) and c[3].get("mode") != "linear"]  # Resize moves only if nearest


def _id(case):
    return f"{case[0]}-{'-'.join(str(v) for v in case[3].values())}"


@pytest.mark.parametrize("case", _cases(lambda op: op.moves_values), ids=_id)
def test_moves_values_ops_output_only_input_values(case):
    import numpy as np

    g, x, ys = _run_case(case)
    known = np.concatenate([x.ravel()] + [np.asarray(c, np.float32).ravel() for c in case[2]])
    for y in ys:
        assert np.isin(np.asarray(y, np.float32).ravel(), known).all(), f"{case[0]} computed new values"


@pytest.mark.parametrize("case", _cases(lambda op: op.inplace), ids=_id)
def test_inplace_ops_write_an_output_of_their_input_shape(case):
    g, x, ys = _run_case(case)
    assert len(ys) == 1 and ys[0].shape == x.shape, f"{case[0]}: output {ys[0].shape} cannot take input {x.shape}"


@pytest.mark.parametrize("case", _cases(lambda op: op.elementwise == "unary"), ids=_id)
def test_unary_ops_commute_with_a_permutation_of_elements(case):
    import numpy as np

    g, x, ys = _run_case(case)
    perm = np.random.default_rng(2).permutation(x.size)
    _, _, ys_p = _run_case(case, x.ravel()[perm].reshape(x.shape))
    np.testing.assert_array_equal(np.asarray(ys_p[0]).ravel(), np.asarray(ys[0]).ravel()[perm])
