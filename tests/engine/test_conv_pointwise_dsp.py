"""Pointwise convolutions on the DSP path (ts_conv_dsp.c) against ts_conv_s8_ref over every K % 4 == 0 up to 264.

The eight-pixel block (K <= 128: its loop of eight groups a turn entered at each of its nine places, the
expansion's one-word lead-in for K % 16 of 4, 8 and 12), the four-pixel block (K > 128, fewer than 8 pixels,
rests of 3 to 5; its eight-group loop entered at each place), the one or two last pixels as rows
(ts_conv_rows_dsp.h: one and two passes of four channels, 0, 1 and 3 channels after them, odd group counts),
batches of 2, inputs at an odd address, the three requantization forms, and the scratch exactly the generator's
size (emit_conv.im2col_scratch_bytes) with guard bytes after it. On QEMU mps2-an386 (Cortex-M4) with the real
instructions (the assembly that the emulated host build does not compile), and on the host under ASan/UBSan.
"""
from __future__ import annotations

import shutil

import pytest

from engine.codegen import generate_library
from engine.codegen.emit_conv import im2col_scratch_bytes
from engine.importers.tflite_import import load_tflite
from tests.engine.dsp_sweep import run_host_sweep, run_qemu_sweep
from tests.engine.test_kernels_dsp import CASES

SWEEP = r"""
#include <string.h>
#ifdef SWEEP_TARGET
#define REPORT(...) ((void)0)
#else
#include <stdio.h>
#define REPORT printf
#endif
#include "tinystudio_kernels.h"
#define MAXK 264
#define MAXPIX 19
#define MAXN 9
#define GUARD 64
static uint32_t s = 99u;
static uint32_t rnd(void) { s = s * 1664525u + 1013904223u; return s >> 8; }
/* the generator's scratch bytes (emit_conv.im2col_scratch_bytes for a 1x1 conv, C % 4 == 0) */
static int32_t scratch_bytes(int32_t k) { return k <= EIGHT_MAX_K ? 16 * k : 8 * k; }
int main(void)
{
    static int8_t x[2 * MAXPIX * MAXK + 4], w[MAXN * MAXK], y0[2 * MAXPIX * MAXN], y1[2 * MAXPIX * MAXN];
    static uint32_t buf[(16 * MAXK + GUARD) / 4];
    int32_t bias[MAXN], mult[MAXN];
    int8_t shift[MAXN];
    long cases = 0, bad = 0;
    int k, pix, n, form, b, i;
    static const int outs[3] = {1, 7, 9};
    for (k = 4; k <= MAXK; k += 4) for (pix = 1; pix <= MAXPIX; ++pix) for (n = 0; n < 3; ++n)
    for (form = 0; form < 3; ++form) for (b = 1; b <= 2; ++b) {
        ts_conv_params p;
        int16_t *scratch;
        uint8_t *guard;
        const int8_t *xin = x + (pix + k) % 2; /* an odd address every other case */
        if (form != 1 && (k % 24 != 4 || pix % 3 != 1)) continue; /* the C forms: a sample */
        if (b == 2 && (k % 20 != 0 || pix > 11)) continue;
        memset(&p, 0, sizeof p);
        p.batches = b; p.in_h = 1; p.in_w = pix; p.in_c = k; p.out_h = 1; p.out_w = pix; p.out_c = outs[n];
        p.groups = 1; p.k_h = 1; p.k_w = 1; p.stride_h = 1; p.stride_w = 1; p.dil_h = 1; p.dil_w = 1;
        p.input_offset = 128 - (int32_t)(rnd() % 256);
        p.output_offset = (int32_t)(rnd() % 200) - 100;
        p.act_min = form == 2 ? -20 : -128; p.act_max = form == 2 ? 90 : 127;
        p.per_channel = 1; p.general_requant = form == 0;
        for (i = 0; i < b * pix * k + 1; ++i) x[i] = (int8_t)(rnd() % 256 - 128);
        for (i = 0; i < p.out_c * k; ++i) w[i] = (int8_t)(rnd() % 255 - 127);
        for (i = 0; i < p.out_c; ++i) {
            bias[i] = (int32_t)(rnd() % 20000) - 10000;
            mult[i] = (int32_t)((1u << 30) + rnd() % (1u << 24));
            shift[i] = (int8_t)(-1 - (int32_t)(rnd() % 10));
        }
        /* the scratch ends where the guard bytes start: a write beyond its size changes them */
        guard = (uint8_t *)buf + sizeof buf - GUARD;
        scratch = (int16_t *)(void *)(guard - scratch_bytes(k));
        memset(guard, 0xa5, GUARD);
        memset(y0, 0x55, sizeof y0);
        memset(y1, 0x55, sizeof y1);
        ts_conv_s8_ref(&p, xin, w, bias, mult, shift, y0);
        ts_conv_s8(&p, xin, w, bias, mult, shift, y1, scratch);
        ++cases;
        for (i = 0; i < GUARD && guard[i] == 0xa5; ++i) {
        }
        if ((memcmp(y0, y1, sizeof y0) != 0 || i != GUARD) && bad++ < 5)
            REPORT("k %d pixels %d out %d form %d batches %d guard %d\n", k, pix, p.out_c, form, b, i);
    }
    REPORT("cases %ld bad %ld\n", cases, bad);
    return bad != 0 ? 3 : (cases < 3000 ? 4 : 0);
}
"""


def _sweep_source() -> str:
    return SWEEP.replace("EIGHT_MAX_K", str(_max_k()))


def _max_k() -> int:
    """The largest K that the generator gives the eight-pixel scratch (16 bytes per element)."""
    return max(k for k in range(4, 1025, 4) if im2col_scratch_bytes(k, k, 1) == 16 * k)


def _library():
    """A library whose layer takes the eight-pixel block, so that tinystudio_kernels.h links it."""
    m, y = CASES["pointwise8_k20_rest6"]()
    g = load_tflite("pw.tflite", data=m.finish(y))
    lib = generate_library(g, "pw")
    assert "#define TINYSTUDIO_CONV_EIGHT 1" in lib.files["tinystudio_kernels.h"]
    return g, lib


def test_eight_pixel_limit_matches_the_kernel():
    """ts_conv_dsp.c's eight-pixel limit is the generator's: the scratch is sized from it."""
    from pathlib import Path

    src = (Path(__file__).resolve().parents[2] / "engine/codegen/templates/ts_conv_dsp.c").read_text()
    assert f"k_all <= {_max_k()} && pointwise" in src
    assert _max_k() == 128


def test_pointwise_sweep_in_qemu_m4(tmp_path):
    _, lib = _library()
    run_qemu_sweep(lib, tmp_path, _sweep_source(), timeout=600)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_pointwise_sweep_on_host_asan_ubsan(tmp_path):
    _, lib = _library()
    run_host_sweep(lib, tmp_path, _sweep_source(), ("ts_conv_ref.c", "ts_conv_dsp.c", "ts_fc_dsp.c"), timeout=300)
