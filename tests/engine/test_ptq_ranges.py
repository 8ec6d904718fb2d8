"""Calibration ranges that collapse (a tensor ~1e-20 on every sample, a dead ReLU): PTQ handles them as the
TFLite converter does (ranges narrower than 1e-6 widened to 1e-6; an exactly empty range keeps scale 1), says
so in a warning naming the tensor, and the model still exports bit-exact."""
from __future__ import annotations

import numpy as np
import pytest

from engine.codegen import generate_library
from engine.export.verify_host import verify_host
from engine.importers.tflite_import import load_tflite
from engine.passes.base import PassReport
from engine.passes.ptq import quantize_model
from engine.passes.quantize import NEAR_ZERO, activation_grid, collapsed_range
from tests.engine.tflite_writer import TFLiteWriter


@pytest.mark.parametrize("lo, hi, want", [
    (0.0, 1e-20, (0.0, NEAR_ZERO)),           # a ReLU output ~1e-20: widened upwards from 0
    (-1e-20, 0.0, (-NEAR_ZERO, 0.0)),
    (-1e-12, 3e-12, (-1e-12 - (NEAR_ZERO - 4e-12) / 2, 3e-12 + (NEAR_ZERO - 4e-12) / 2)),  # around its values
])
def test_narrow_ranges_are_widened_to_the_converters_tolerance(lo, hi, want):
    rep = PassReport("t")
    got = collapsed_range(lo, hi, ["y"], rep)
    assert got == pytest.approx(want, abs=1e-18) and got[1] - got[0] == pytest.approx(NEAR_ZERO)
    assert rep.changes == {"ranges_widened": 1} and "'y'" in rep.warnings[0] and "narrower than 1e-06" in rep.warnings[0]
    scale, _ = activation_grid(*got)
    assert scale == pytest.approx(NEAR_ZERO / 255, rel=1e-6)


def test_empty_and_ordinary_ranges():
    rep = PassReport("t")
    assert collapsed_range(0.0, 0.0, ["dead"], rep) == (0.0, 0.0)
    assert rep.changes == {"ranges_all_zero": 1} and "0 on every calibration sample" in rep.warnings[0]
    rep = PassReport("t")
    assert collapsed_range(-0.5, 2.0, ["ok"], rep) == (-0.5, 2.0) and not rep.warnings and not rep.changes


def _collapsing_mlp() -> bytes:
    """x (1, 8) -> FC relu -> h; h -> FC with weights 1e-14 (t ~ 1e-13, a collapsed range) -> FC -> y;
    h -> FC relu with bias -100 (a dead ReLU, 0 on every input) -> d; y + d = out."""
    rng = np.random.default_rng(4)
    w = TFLiteWriter()
    x, h, t, y, d, out = (w.tensor(n, s) for n, s in (("x", (1, 8)), ("h", (1, 6)), ("t", (1, 6)), ("y", (1, 6)),
                                                       ("d", (1, 6)), ("out", (1, 6))))

    def fc(name, a, wt, b, o, act):
        w.op("FULLY_CONNECTED", [a, w.const(name + "_w", wt.astype(np.float32)),
                                 w.const(name + "_b", b.astype(np.float32))], [o], "FullyConnectedOptions",
             FusedActivationFunction=act)
    fc("fc1", x, rng.normal(0, 0.5, (6, 8)), rng.normal(0, 0.1, 6), h, 1)
    fc("tiny", h, rng.normal(0, 1e-14, (6, 6)), np.zeros(6), t, 0)
    fc("fc2", t, rng.normal(0, 0.5, (6, 6)), rng.normal(0, 0.1, 6), y, 0)
    fc("dead", h, rng.normal(0, 0.1, (6, 6)), np.full(6, -100.0), d, 1)
    w.op("ADD", [y, d], [out], "AddOptions", FusedActivationFunction=0)
    return w.finish([x], [out])


def test_collapsed_and_dead_ranges_quantize_warn_and_export_bit_exact(tmp_path):
    g = load_tflite("collapse.tflite", data=_collapsing_mlp())
    qg, rep = quantize_model(g, synthetic_samples=16, per_layer=False)
    t = qg.tensors["t"]
    assert float(t.quant.scale[0]) == pytest.approx(NEAR_ZERO / 255, rel=1e-6)   # not ~1e-16
    assert float(qg.tensors["d"].quant.scale[0]) == 1.0                           # the empty-range grid
    assert any("'t'" in w and "widened" in w for w in rep.warnings), rep.warnings
    assert any("'d'" in w and "0 on every calibration sample" in w for w in rep.warnings), rep.warnings
    lib = generate_library(qg, "collapse")
    res = verify_host(qg, lib, n_random=20, workdir=tmp_path)
    assert res.bit_exact, res.first_mismatch


def _subnormal_channel_conv() -> bytes:
    """A 27-tap conv whose channel 0 holds weights of 1e-44 (float32 subnormals) and channel 1 exact zeros."""
    rng = np.random.default_rng(3)
    k = rng.normal(0, 0.2, (8, 3, 3, 3)).astype(np.float32)
    k[0], k[1] = np.float32(1e-44), 0.0
    w = TFLiteWriter()
    x, y = w.tensor("x", (1, 8, 8, 3)), w.tensor("y", (1, 8, 8, 8))
    w.op("CONV_2D", [x, w.const("k", k), w.const("b", np.zeros(8, np.float32))], [y], "Conv2DOptions", Padding=0,
         StrideW=1, StrideH=1, FusedActivationFunction=1)
    return w.finish([x], [y])


def test_subnormal_weight_channels_are_widened_not_given_a_zero_scale(tmp_path):
    """max|w| / 127 of 1e-44 is 0 in float32: the weights became 127 on a zero scale and the accumulator range
    left int32. They get the smallest normal float32 scale instead, and weights 0."""
    g = load_tflite("subnormal.tflite", data=_subnormal_channel_conv())
    qg, rep = quantize_model(g, synthetic_samples=8, per_layer=False)
    k = qg.tensors["k"]
    assert float(k.quant.scale[0]) == np.finfo(np.float32).tiny and not k.data[0].any()
    assert float(k.quant.scale[1]) == 1.0 and not k.data[1].any()   # an all-zero channel: TFLite's scale 1
    assert any("1 of 8 output channels have weights below" in w and "subnormal" in w for w in rep.warnings), rep.warnings
    res = verify_host(qg, generate_library(qg, "subnormal"), n_random=10, workdir=tmp_path)
    assert res.bit_exact, res.first_mismatch
