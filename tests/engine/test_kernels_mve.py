"""The Helium (MVE) kernels (ts_*_mve.c) on Cortex-M55 in QEMU mps3-an547: the same bytes as the int8 reference.

1. one-layer models for every kernel family with an MVE path (conv, pointwise, depthwise, fully connected,
   ADD/SUB, pooling): odd channel counts (vector tails), K below, at and above 16 and 32, strides, pads, dilation,
   per-tensor and per-channel, general requantization, batches, fewer than four output pixels; all of them and
   test_codegen's one-op models in one QEMU program (qemu_batch.py);
2. KWS and AD of MLPerf Tiny built for M55 with the MVE kernels and with the DSP ones (-DTINYSTUDIO_USE_MVE=0):
   both bit-exact, the MVE kernels the ones that ran, fewer instructions per MAC (VWW and IC: in
   benchmarks/mve_measure.py, the same check on the four models);
3. the switch: MVE only for integer-MVE targets, nothing of it in host or Cortex-M4 builds.
Needs arm-none-eabi-gcc and qemu-system-arm (skipped, saying so, without).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.mve_measure import BUILDS, M55, MLPERF, MODELS, run_build
from engine.codegen import generate_library
from engine.codegen.kernelfiles import kernel_files
from engine.importers.tflite_import import load_tflite
from hwmodels.mcu import get_mcu
from tests.engine.qemu_batch import verify_many
from tests.engine.test_codegen import ONE_OP, conv_dead_channel, conv_general, fc_tails
from tests.engine.test_int8 import Model, R, binary_model, conv_model, pool_model

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="qemu-system-arm or arm-none-eabi-gcc not installed")
needs_data = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"MLPerf Tiny models not found in {MLPERF}")
TEMPLATES = Path(__file__).resolve().parents[2] / "engine" / "codegen" / "templates"
MVE_KERNELS = {"ts_conv_s8", "ts_depthwise_conv_s8", "ts_fully_connected_s8", "ts_add_s8", "ts_avg_pool_s8",
               "ts_max_pool_s8"}


def fc_model(batches, k, n, per_channel=True, act=0):
    m = Model()
    x = m.act("x", (batches, k), 0.07, -9)
    w = m.weights("k", (n, k), R.uniform(0.002, 0.02, n) if per_channel else 0.011)
    y = m.act("y", (batches, n), 0.05, 3, feed=False)
    m.w.op("FULLY_CONNECTED", [x, w, m.bias("b", n)], [y], "FullyConnectedOptions", FusedActivationFunction=act)
    return m, y


# Cases aimed at the MVE kernels' edges (K = reduction length of one output; tails are K % 16 and C % 4).
MVE_CASES = {
    "conv_1x1_k16_s2_64": lambda: conv_model((1, 8, 8, 16), (64, 1, 1, 16), (1, 4, 4, 64), padding=1, stride=2),
    "conv_1x1_k16_per_tensor_48": lambda: conv_model((1, 6, 6, 16), (48, 1, 1, 16), (1, 6, 6, 48), padding=1,
                                                     stride=1, per_channel=False),
    "conv_1x1_k32_70_channels": lambda: conv_model((1, 5, 5, 32), (70, 1, 1, 32), (1, 5, 5, 70), padding=1,
                                                   stride=1),
    "conv_1x1_k15_tail": lambda: conv_model((1, 5, 5, 15), (9, 1, 1, 15), (1, 5, 5, 9), padding=1, stride=1),
    "conv_1x1_c3_small_scratch": lambda: conv_model((1, 4, 6, 3), (5, 1, 1, 3), (1, 4, 6, 5), padding=1, stride=1),
    "conv_1x1_k64_per_tensor": lambda: conv_model((1, 5, 3, 64), (10, 1, 1, 64), (1, 5, 3, 10), padding=1,
                                                  stride=1, per_channel=False),
    "conv_3x3_k99_s2_same_m7": lambda: conv_model((1, 9, 7, 11), (7, 3, 3, 11), (1, 5, 4, 7), padding=0, stride=2,
                                                  act=3),
    "conv_1x5_c4_two_pixels": lambda: conv_model((1, 1, 6, 4), (6, 1, 5, 4), (1, 1, 2, 6), padding=1, stride=1),
    "conv_10x4_c1_s2_kws_like": lambda: conv_model((1, 13, 10, 1), (8, 10, 4, 1), (1, 7, 5, 8), padding=0,
                                                   stride=2, act=1),
    "depthwise_c19_w9_same": lambda: conv_model((1, 6, 9, 19), (1, 3, 3, 19), (1, 6, 9, 19), padding=0, stride=1,
                                                depthwise=True),
    "depthwise_c64_w5_kws_like": lambda: conv_model((1, 7, 5, 64), (1, 3, 3, 64), (1, 7, 5, 64), padding=0,
                                                    stride=1, depthwise=True, act=1),
    "depthwise_c10_s2_per_tensor": lambda: conv_model((1, 11, 12, 10), (1, 3, 3, 10), (1, 6, 6, 10), padding=0,
                                                      stride=2, depthwise=True, per_channel=False, act=3),
    "depthwise_c4_5x5_dilated_valid": lambda: conv_model((1, 12, 13, 4), (1, 5, 5, 4), (1, 4, 5, 4), padding=1,
                                                         stride=1, dilation=2, depthwise=True),
    # the column pass: odd interior row counts (a pair-less leftover), batches, pads on every side, 1-row output
    "depthwise_c24_tall_s2_odd_pairs": lambda: conv_model((1, 21, 6, 24), (1, 3, 3, 24), (1, 11, 3, 24), padding=0,
                                                          stride=2, depthwise=True),
    "depthwise_c13_batch2_same": lambda: conv_model((2, 8, 3, 13), (1, 3, 3, 13), (2, 8, 3, 13), padding=0,
                                                    stride=1, depthwise=True, act=1),
    "depthwise_c40_5x5_same_per_tensor": lambda: conv_model((1, 9, 4, 40), (1, 5, 5, 40), (1, 9, 4, 40), padding=0,
                                                            stride=1, depthwise=True, per_channel=False),
    "depthwise_c16_one_row_valid": lambda: conv_model((1, 3, 7, 16), (1, 3, 3, 16), (1, 1, 5, 16), padding=1,
                                                      stride=1, depthwise=True),
    # the row pass: border rows in pixel pairs along the row (odd interior column counts, 5 and 4 output rows)
    "depthwise_c24_row_pass_5x7_same": lambda: conv_model((1, 5, 7, 24), (1, 3, 3, 24), (1, 5, 7, 24), padding=0,
                                                           stride=1, depthwise=True, act=1),
    "depthwise_c8_dil2_same_batch2": lambda: conv_model((2, 9, 9, 8), (1, 3, 3, 8), (2, 9, 9, 8), padding=0,
                                                        stride=1, dilation=2, depthwise=True),
    "depthwise_c32_3x3_out_same": lambda: conv_model((1, 3, 3, 32), (1, 3, 3, 32), (1, 3, 3, 32), padding=0,
                                                     stride=1, depthwise=True),
    "depthwise_272_taps_portable_fallback": lambda: conv_model((1, 17, 16, 4), (1, 17, 16, 4), (1, 1, 1, 4), padding=1,
                                                          stride=1, depthwise=True),
    "fc_k37_n6_batch2": lambda: fc_model(2, 37, 6),
    "fc_k64_n12_per_tensor_relu": lambda: fc_model(1, 64, 12, per_channel=False, act=1),
    "fc_k5_n3": lambda: fc_model(1, 5, 3),
    # ADD/SUB on the general requantization (the output shift -27; a left shift of 6 on a broadcast SUB)
    "add_general_out_shift": lambda: binary_model("ADD", "AddOptions", (1, 2, 3, 9), (1, 2, 3, 9), (1, 2, 3, 9),
                                                  (0.01, 0.013, 5.0), (3, -5, 0)),
    "sub_general_left_shift": lambda: binary_model("SUB", "SubOptions", (1, 3, 7), (1, 1, 7), (1, 3, 7),
                                                   (0.05, 0.03, 2e-9), (7, -2, 1)),
    "add_n23_relu": lambda: binary_model("ADD", "AddOptions", (1, 23), (1, 23), (1, 23), (0.07, 0.03, 0.09),
                                         (-3, 100, -20), act=1),
    "sub_broadcast_both": lambda: binary_model("SUB", "SubOptions", (2, 1, 7), (1, 3, 7), (2, 3, 7),
                                               (0.05, 0.11, 0.06), (12, -7, 1)),
    "maxpool_c19_same_s2": lambda: pool_model("MAX_POOL_2D", (1, 7, 9, 19), (1, 4, 5, 19), (3, 3), 2, 0, act=1),
    "avgpool_c21_same": lambda: pool_model("AVERAGE_POOL_2D", (1, 5, 6, 21), (1, 5, 6, 21), (3, 3), 1, 0),
    "avgpool_c17_valid_whole": lambda: pool_model("AVERAGE_POOL_2D", (1, 5, 5, 17), (1, 1, 1, 17), (5, 5), 5, 1),
    "maxpool_c35_2x2_s2_valid": lambda: pool_model("MAX_POOL_2D", (1, 6, 6, 35), (1, 3, 3, 35), (2, 2), 2, 1),
    "avgpool_c64_global_kws_like": lambda: pool_model("AVERAGE_POOL_2D", (1, 25, 5, 64), (1, 1, 1, 64), (25, 5), 1,
                                                      1),
    "avgpool_c6_2x3_s1_same_relu6": lambda: pool_model("AVERAGE_POOL_2D", (1, 4, 7, 6), (1, 4, 7, 6), (2, 3), 1, 0,
                                                       act=3),
    # leftover pixels of a K > 32 conv as fully connected rows: 9 pixels (one over), 6 (two over, per tensor),
    # 2 in all with padded fields, 1 with a general requantization (conv_general_requant); 7 (three over: a block
    # moved back)
    "conv_1x1_k40_9_pixels": lambda: conv_model((1, 3, 3, 40), (20, 1, 1, 40), (1, 3, 3, 20), padding=1, stride=1),
    "conv_1x1_k48_6_pixels_per_tensor": lambda: conv_model((1, 2, 3, 48), (9, 1, 1, 48), (1, 2, 3, 9), padding=1,
                                                           stride=1, per_channel=False, act=1),
    "conv_3x3_k72_s2_same_2_pixels": lambda: conv_model((1, 2, 3, 8), (13, 3, 3, 8), (1, 1, 2, 13), padding=0,
                                                        stride=2),
    "conv_1x1_k40_5_pixels_batch2": lambda: conv_model((2, 1, 5, 40), (6, 1, 1, 40), (2, 1, 5, 6), padding=1,
                                                       stride=1),
    "conv_1x1_k40_7_pixels": lambda: conv_model((1, 1, 7, 40), (6, 1, 1, 40), (1, 1, 7, 6), padding=1, stride=1),
    # the 16-channel average: int16 sums widened every 256 cells (in one run: a global pool; across rows), count 1
    "avgpool_c18_global_300_cells": lambda: pool_model("AVERAGE_POOL_2D", (1, 20, 15, 18), (1, 1, 1, 18), (20, 15),
                                                       1, 1),
    "avgpool_c5_17x17_valid_289_cells": lambda: pool_model("AVERAGE_POOL_2D", (1, 18, 18, 5), (1, 2, 2, 5),
                                                           (17, 17), 1, 1),
    "avgpool_c20_1x1_s2_count_1": lambda: pool_model("AVERAGE_POOL_2D", (1, 6, 6, 20), (1, 3, 3, 20), (1, 1), 2, 1),
    "conv_general_requant": lambda: conv_general(2e-4),
    "conv_dead_channel": conv_dead_channel,
    "fc_tails_batch3_relu6": fc_tails,
}


def conv_general_pointwise():
    """conv_general's multipliers above 1 (general requantization) on a pointwise layer (K 8: the narrow path)."""
    m = Model()
    x = m.act("x", (1, 3, 5, 8), 0.05, 3)
    k = m.weights("k", (6, 1, 1, 8), R.uniform(0.002, 0.02, 6), axis=0)
    y = m.act("y", (1, 3, 5, 6), 2e-4, 0, feed=False)
    m.w.op("CONV_2D", [x, k, m.bias("b", 6)], [y], "Conv2DOptions", Padding=1, StrideW=1, StrideH=1)
    return m, y


# The narrow conv path (K <= 32: four output channels per vector): K one or two vectors, pointwise in one pass or
# gathered 8 pixels a block (partial last block, borders), a last channel group of 1-3 channels (weights copied),
# the VQMOVNB clamp and the VMAX/VMIN one (an activation narrower than int8), per-tensor, batches.
MVE_CASES.update({
    "conv_3x3_c3_s2_k27_relu6_6ch": lambda: conv_model((1, 9, 11, 3), (6, 3, 3, 3), (1, 5, 6, 6), padding=0,
                                                       stride=2, act=3),
    "conv_1x1_k24_7ch_per_tensor": lambda: conv_model((1, 5, 5, 24), (7, 1, 1, 24), (1, 5, 5, 7), padding=1,
                                                      stride=1, per_channel=False),
    "conv_1x1_k8_16ch_batch2": lambda: conv_model((2, 4, 5, 8), (16, 1, 1, 8), (2, 4, 5, 16), padding=1, stride=1),
    "conv_3x3_c2_k18_same_13ch_relu": lambda: conv_model((1, 7, 6, 2), (13, 3, 3, 2), (1, 7, 6, 13), padding=0,
                                                         stride=1, act=1),
    "conv_2x2_c8_k32_s2_5ch": lambda: conv_model((1, 8, 9, 8), (5, 2, 2, 8), (1, 4, 4, 5), padding=1, stride=2),
    "conv_general_pointwise_k8": conv_general_pointwise,
})


def _library(name, build, lib_name="mve_case"):
    m, y = build()
    g = load_tflite(f"{name}.tflite", data=m.w.finish([x for x, _, _ in m.inputs], getattr(m, "outs", [y])))
    return g, generate_library(g, lib_name)


def _shared_cases():
    """The one-op cases of test_codegen whose kernels have an MVE path."""
    out = []
    for name, build in ONE_OP.items():
        if name in MVE_CASES or name == "quantize_float":
            continue
        try:
            g, lib = _library(name, build)
        except Exception:  # noqa: BLE001 - cases the generator refuses are test_codegen's business
            continue
        if {layer["kernel"] for layer in lib.layers} & MVE_KERNELS:
            out.append(name)
    return out


@pytest.fixture(scope="module")
def one_op_m55():
    """Every MVE edge case and every shared one-op case with an MVE kernel, in one QEMU program on the M55:
    {case: why it is not byte-identical} (empty when all are), and the shared cases' names."""
    shared = _shared_cases()
    models = []
    for i, (name, build) in enumerate([*MVE_CASES.items(), *((n, ONE_OP[n]) for n in shared)]):
        g, lib = _library(name, build, f"t{i}")
        if name in MVE_CASES:
            assert {layer["kernel"] for layer in lib.layers} & MVE_KERNELS, name
        models.append((name, g, lib))
    return verify_many(models, get_mcu(M55), n_random=3, seed=11), shared


@needs_qemu
def test_mve_edge_cases_bit_exact_in_qemu_m55(one_op_m55):
    bad, _ = one_op_m55
    assert not {k: v for k, v in bad.items() if k in MVE_CASES or k.startswith("program")}, bad


@needs_qemu
def test_mve_shared_one_op_cases_bit_exact_in_qemu_m55(one_op_m55):
    """Every conv / depthwise / FC / ADD / pool one-op model of test_codegen, on M55."""
    bad, shared = one_op_m55
    assert len(shared) >= 20
    assert not {k: v for k, v in bad.items() if k in shared}, bad


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = {}
    for key in ("kws", "ad"):
        g = load_tflite(str(MLPERF / MODELS[key]))
        lib = generate_library(g, key)
        work = tmp_path_factory.mktemp(key)
        out[key] = {build: run_build(g, lib, get_mcu(M55), work / build, defines, 2, 7)
                    for build, defines in BUILDS.items()}
    return out


@needs_data
@needs_qemu
@pytest.mark.parametrize("key", ["kws", "ad"])
def test_mlperf_on_m55_mve_and_dsp_builds_bit_exact(key, measured):
    mve, dsp = measured[key]["mve"], measured[key]["dsp"]
    assert mve["bit_exact"] and dsp["bit_exact"], (mve["first_mismatch"], dsp["first_mismatch"])
    ran_mve = {fn for fn in mve["per_function"] if fn.startswith("ts_mve_")}
    assert ran_mve and not any(fn.startswith("ts_mve_") for fn in dsp["per_function"])
    if key == "kws":
        assert {"ts_mve_conv_short", "ts_mve_fc_rows4", "ts_mve_dwcol_short"} <= ran_mve
    # instructions per MAC well below the DSP (SMLAD) kernels' on the same core (measured: KWS 0.40x since the DSP
    # conv loop went to assembly, AD 0.11x), and KWS within the 0.6 per MAC on M55 (measured 0.546)
    assert mve["per_mac"] < 0.45 * dsp["per_mac"], (mve["per_mac"], dsp["per_mac"])
    if key == "kws":
        assert mve["per_mac"] <= 0.6, mve["per_mac"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
@pytest.mark.parametrize("cpu,extra,expect", [("cortex-m55", (), 1), ("cortex-m55", ("-DTINYSTUDIO_USE_MVE=0",), 0),
                                              ("cortex-m55", ("-DTINYSTUDIO_USE_DSP=0",), 0),
                                              ("cortex-m55+nomve", (), 0), ("cortex-m4", (), 0)])
def test_mve_switch_follows_the_target(cpu, extra, expect, tmp_path):
    hdr = (TEMPLATES / "tinystudio_kernels.h").read_text().replace("@USE_DSP_DEFAULT@", "1")
    (tmp_path / "tinystudio_kernels.h").write_text(hdr)
    (tmp_path / "t.c").write_text('#include "tinystudio_kernels.h"\nint mve = TINYSTUDIO_MVE;\n')
    r = subprocess.run(["arm-none-eabi-gcc", f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=hard", *extra, "-E", "-P",
                        "-I", str(tmp_path), str(tmp_path / "t.c")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"int mve = {expect};", r.stdout), r.stdout[-300:]


def test_mve_files_travel_with_their_entry_points():
    """A bundle calling a kernel with an MVE path gets its ts_*_mve.c and ts_mve.h (kernelfiles reads the calls)."""
    files = kernel_files(["ts_conv_s8(x); ts_depthwise_conv_s8(x); ts_fully_connected_s8(x); ts_add_s8(x);"
                          " ts_max_pool_s8(x);"])
    assert {"ts_mve.h", "ts_conv_mve.c", "ts_conv_narrow_mve.c", "ts_depthwise_mve.c", "ts_fc_mve.c",
            "ts_elementwise_mve.c"} <= set(files)
    assert "ts_conv_mve.c" not in kernel_files(["ts_softmax_s8(x);"])


# ---- the vector requantization against ts_requant, in QEMU ------------------------------------------------

REQUANT_PROGRAM = r"""
#include <stdint.h>
#include "semihost.h"
#include "ts_mve.h"

static uint32_t state = 12345u;
static uint32_t next(void) { state ^= state << 13; state ^= state >> 17; state ^= state << 5; return state; }
static int fc_with_input_offset(void);

/* accumulators with many ties (small values, multiples of powers of two) and the extremes */
static int32_t pick_x(uint32_t r)
{
    static const int32_t edge[] = {0, 1, -1, INT32_MIN, INT32_MAX, INT32_MIN + 1, 1 << 30, -(1 << 30), 3, -3};
    switch (r & 7u) {
    case 0: return edge[(r >> 3) % 10u];
    case 1: return (int32_t)((r >> 3) & 0xFFu) - 128;
    case 2: return (int32_t)(((r >> 3) & 0xFFFu) - 2048) << ((r >> 16) & 15u);
    default: return (int32_t)next();
    }
}

int main(void)
{
    uint32_t bad_general = 0, bad_short = 0, bad_scalar = 0, n, lane;
    for (n = 0; n < 40000u; ++n) {
        int32_t xs[4], ms[4], ss[4], got[4];
        int32x4_t v;
        const int32_t off = (int32_t)(next() % 255u) - 127, lo = -128 + (int32_t)(next() % 50u);
        const int32_t hi = 127 - (int32_t)(next() % 50u);
        for (lane = 0; lane < 4; ++lane) {
            const uint32_t r = next();
            xs[lane] = pick_x(next());
            ms[lane] = (r & 1u) ? (int32_t)(next() & 0x7FFFFFFFu) : (int32_t)((1u << 30) | (next() >> 2));
            if ((r & 6u) == 0) ms[lane] = (r & 8u) ? INT32_MIN : 0;
            ss[lane] = (int32_t)(next() % 63u) - 31;
        }
        v = ts_mve_requant(vldrwq_s32(xs), vldrwq_s32(ms), vldrwq_s32(ss), off, lo, hi);
        vst1q_s32(got, v);
        for (lane = 0; lane < 4; ++lane) {
            if (got[lane] != ts_requant(xs[lane], ms[lane], ss[lane], off, lo, hi)) ++bad_general;
        }
        /* the short form: what the generator allows with general_requant 0 */
        for (lane = 0; lane < 4; ++lane) {
            xs[lane] = pick_x(next()) >> 2;
            ms[lane] = (int32_t)((1u << 30) | (next() >> 2));
            ss[lane] = -1 - (int32_t)(next() % 30u);
        }
        {
            const int32x4_t sh = vldrwq_s32(ss), zero = vdupq_n_s32(0);
            v = ts_mve_rq(vldrwq_s32(xs), vldrwq_s32(ms), vmaxq_s32(sh, zero), vminq_s32(sh, zero), 0, off, lo, hi);
        }
        vst1q_s32(got, v);
        for (lane = 0; lane < 4; ++lane) {
            if (got[lane] != ts_requant(xs[lane], ms[lane], ss[lane], off, lo, hi)) ++bad_short;
        }
    }
    for (n = 0; n < 20000u; ++n) { /* one multiplier and shift for the four lanes (the ADD rows) */
        int32_t xs[4], got[4];
        const uint32_t r = next();
        const int32_t s = (int32_t)(next() % 63u) - 31;
        int32_t m = (r & 1u) ? (int32_t)(next() & 0x7FFFFFFFu) : (int32_t)((1u << 30) | (next() >> 2));
        if ((r & 6u) == 0) m = (r & 8u) ? INT32_MIN : 0;
        for (lane = 0; lane < 4; ++lane) xs[lane] = pick_x(next());
        vst1q_s32(got, ts_mve_mbqm_n(vldrwq_s32(xs), s > 0 ? s : 0, m, s < 0 ? s : 0, s < 0 ? -31 : -32));
        for (lane = 0; lane < 4; ++lane) {
            if (got[lane] != ts_mbqm(xs[lane], m, s)) ++bad_scalar;
        }
    }
    ts_put_u32("bad_general", bad_general);
    ts_put_u32("bad_short", bad_short);
    ts_put_u32("bad_scalar", bad_scalar);
    return bad_general || bad_short || bad_scalar || fc_with_input_offset();
}
"""

# The MVE fully connected with an input offset (the generator folds it into the bias, so generated models never
# pass one; a direct caller may): ts_fully_connected_s8 (the MVE kernel on the M55) against the portable loop.
FC_OFFSET_CHECK = r"""
#include "tinystudio_kernels.h"

static int fc_with_input_offset(void)
{
    static int8_t x[3 * 37], w[7 * 37], y_mve[3 * 7], y_ref[3 * 7];
    static int32_t bias[7], mult[7];
    static int8_t shift[7];
    uint32_t i, bad = 0, trial;
    for (trial = 0; trial < 50u; ++trial) {
        ts_fc_params p = {3, 37, 7, 0, 0, -128, 127, 1, 0};
        p.input_offset = (int32_t)(next() % 256u) - 127;
        p.output_offset = (int32_t)(next() % 200u) - 100;
        p.per_channel = (int32_t)(trial & 1u);
        for (i = 0; i < sizeof x; ++i) x[i] = (int8_t)next();
        for (i = 0; i < sizeof w; ++i) w[i] = (int8_t)next();
        for (i = 0; i < 7; ++i) {
            bias[i] = (int32_t)(next() % 20001u) - 10000;
            mult[i] = (int32_t)((1u << 30) | (next() >> 2));
            shift[i] = (int8_t)(-6 - (int32_t)(next() % 6u));
        }
        ts_fully_connected_s8(&p, x, w, bias, mult, shift, y_mve);
        ts_fully_connected_s8_ref(&p, x, w, bias, mult, shift, y_ref);
        for (i = 0; i < sizeof y_ref; ++i) bad += y_mve[i] != y_ref[i];
    }
    ts_put_u32("bad_fc_offset", bad);
    return bad != 0;
}
"""


@needs_qemu
def test_vector_requantization_is_ts_requant_in_qemu(tmp_path):
    """ts_mve_requant / ts_mve_rq on 320,000 lanes (ties, extremes, MIN * MIN, shifts -31 .. 31) against the
    portable ts_requant (TFLite's double rounding), ts_mve_mbqm_n (scalar constants) on 80,000 against ts_mbqm,
    and the MVE fully connected with an input offset against
    the portable one, on the M55."""
    from engine.export.crossbuild import compile_board, link_program, write_files
    from engine.export.qemu import run_elf
    from engine.export.targets import core_target, local_cflags

    target = core_target(get_mcu(M55))
    cflags = local_cflags(target.cflags)
    sources = ("ts_fixedpoint.c", "ts_fc_ref.c", "ts_fc_dsp.c", "ts_fc_mve.c")
    files = {n: (TEMPLATES / n).read_text().replace("@USE_DSP_DEFAULT@", "1")
             for n in ("tinystudio_kernels.h", "ts_fixedpoint.h", "ts_dsp.h", "ts_mve.h", *sources)}
    write_files(files, tmp_path / "src")
    objs = []
    for src in sources:
        objs.append(tmp_path / src.replace(".c", ".o"))
        subprocess.run(["arm-none-eabi-gcc", *cflags, "-O2", "-std=c99", "-c", str(tmp_path / "src" / src), "-o",
                        str(objs[-1])], check=True, timeout=120)
    board_objs, ld = compile_board(target.board, cflags, tmp_path)
    elf = link_program(REQUANT_PROGRAM + FC_OFFSET_CHECK, "requant", objs, board_objs, ld, cflags, tmp_path)
    run = run_elf(target.board.machine, elf, cwd=tmp_path, timeout=120)
    assert run.rc == 0 and all(f"{k}=0" in run.stdout for k in ("bad_general", "bad_short", "bad_scalar",
                                                                  "bad_fc_offset")), \
        run.stdout + run.stderr


# ---- builds --------------------------------------------------------------------------------------------------

@needs_data
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")
def test_kws_cross_compiles_for_m55_warning_free_with_helium(tmp_path):
    from engine.codegen.hostbuild import write_library

    lib = generate_library(load_tflite(str(MLPERF / MODELS["kws"])), "kws")
    d = write_library(lib, tmp_path)
    common = ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
              "-pedantic", "-I", str(d))
    for build, extra in (("mve", ()), ("dsp", ("-DTINYSTUDIO_USE_MVE=0",))):
        objs = []
        for src in (s for s in lib.sources if s.startswith("ts_")):
            objs.append(str(tmp_path / f"{build}_{src}.o"))
            r = subprocess.run(["arm-none-eabi-gcc", *common, *extra, "-c", str(d / src), "-o", objs[-1]],
                               capture_output=True, text=True)
            assert r.returncode == 0 and not r.stderr.strip(), f"{src}:\n{r.stderr[-3000:]}"
        dis = subprocess.run(["arm-none-eabi-objdump", "-d", "-m", "armv8.1-m.main", *objs], capture_output=True,
                             text=True).stdout
        assert ("vmlava.s8" in dis) == (build == "mve"), build
        # What the kernels call of the DSP files: on the Helium build only the pre-widened conv (its weights are
        # int16, which the Helium kernels do not read) and, from ts_conv_dsp.o, the DSP FC rows its int8 pointwise
        # path hands leftover pixels to (that path is not called on the M55: the linker's --gc-sections drops
        # both), so no other DSP kernel is linked into an M55 image.
        undef = subprocess.run(["arm-none-eabi-nm", "-u", *objs], capture_output=True, text=True).stdout.split()
        dsp_calls = {s for s in undef if s.startswith("ts_") and s.endswith("_dsp")}
        if build == "mve":
            assert dsp_calls == {"ts_conv_s8_w16_dsp", "ts_fully_connected_s8_dsp"}, dsp_calls
        else:
            assert "ts_avg_pool_s8_dsp" in dsp_calls and "ts_depthwise_conv_s8_dsp" in dsp_calls, dsp_calls


def test_m55_without_helium_is_built_nomve():
    from dataclasses import replace

    from engine.export.targets import core_target

    alif = get_mcu(M55)
    assert core_target(alif).cflags[0] == "-mcpu=cortex-m55"
    assert core_target(replace(alif, simd="dsp")).cflags[0] == "-mcpu=cortex-m55+nomve"
    assert core_target(get_mcu("ra8d1")).cflags[0] == "-mcpu=cortex-m85"
