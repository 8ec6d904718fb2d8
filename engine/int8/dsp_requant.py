"""The requantization form of the generated C's DSP kernels, decided once per layer in the prepare step.

    mode = Requant.SHORT                  # written into the kernel's `general_requant` field (REQUANT_FIELD)
    dsp = dsp_requant(wq, bias, x_zp, multiplier, shift, y_zp, act_min, act_max)   # DspRequant

The DSP kernels (ts_dsp.h, ts_*_dsp.c) requantize with one SMMLAR and a shift when a layer's constants
allow it; otherwise they run TFLite's portable arithmetic. Both give the same bytes; the conditions
below are what the C relies on, so they live here, next to the multipliers they test, and the enum is
the one place that names the values the C branches on (tests/engine/test_int8_params.py reads the C).
An int8 ADD/SUB may also get a linear form (add_linear_form), proved equal to TFLite's over all input pairs.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from functools import lru_cache

import numpy as np

from engine.int8 import elementwise as ew
from engine.int8.quant_math import multiply_by_quantized_multiplier

REQUANT_FIELD = "general_requant"   # the parameter-struct field the C kernels branch on


class Requant(IntEnum):
    """How the DSP build requantizes a layer (the value of its `general_requant` field)."""

    SHORT = 0     # one SMMLAR and a shift: every channel meets the short form's conditions
    GENERAL = 1   # TFLite's portable MultiplyByQuantizedMultiplier (the C tests the field for non-zero)


@dataclass(frozen=True, eq=False)
class DspRequant:
    """Per-channel constants of a conv / fully connected layer as the generated C takes them.

    bias, multiplier and shift are TFLite's, except for dead channels (see dsp_requant); acc_min and
    acc_max bound the int32 accumulator (bias included) over every int8 input."""

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    mode: Requant
    acc_min: int
    acc_max: int


def acc_range(wq: np.ndarray, bias: np.ndarray, x_zp: int) -> tuple[int, int]:
    """Smallest and largest int32 accumulator over all int8 inputs: bias + sum (x - x_zp) * w per channel.
    Each term ranges over an interval holding 0, so every partial sum (in any order) lies within too."""
    w = wq.reshape(wq.shape[0], -1).astype(np.int64)
    lo_x, hi_x = -128 - x_zp, 127 - x_zp
    pos, neg = np.where(w > 0, w, 0).sum(axis=1), np.where(w < 0, w, 0).sum(axis=1)
    b = bias.astype(np.int64)
    return int((b + pos * lo_x + neg * hi_x).min(initial=0)), int((b + pos * hi_x + neg * lo_x).max(initial=0))


def dsp_requant(wq: np.ndarray, bias: np.ndarray, x_zp: int, mult, shift, zo: int, lo: int,
                hi: int) -> DspRequant:
    """The DSP kernels' constants for weights minus zero point `wq` (M, ...), int64 `bias` (M,).

    A dead channel (all weights 0) outputs the constant K = clamp(requant(bias) + zo); TFLite converters
    leave such channels with saturated biases and extreme shifts. It gets bias 4 * (K - zo), multiplier
    2**30 and shift -1 instead, which give K again (exactly (K - zo) * 2, then halved): no byte changes.
    The mode is GENERAL when some channel breaks a condition of the short form (ts_dsp.h):
    multiplier 0 or in [2**30, 2**31), shift in [-30, -1], accumulators in [-2**30, 2**30), and the
    rounded high word plus the folded rounding and offset terms below 2**31."""
    acc_min, acc_max = acc_range(wq, bias, x_zp)
    m = wq.shape[0]
    mult = np.array(np.broadcast_to(np.asarray(mult, np.int64), (m,)))
    shift = np.array(np.broadcast_to(np.asarray(shift, np.int64), (m,)))
    bias = bias.astype(np.int64).copy()
    w = wq.reshape(m, -1).astype(np.int64)
    dead = ~np.any(w != 0, axis=1)
    if dead.any():
        k = np.clip(multiply_by_quantized_multiplier(bias[dead], mult[dead], shift[dead]) + zo, lo, hi)
        bias[dead], mult[dead], shift[dead] = 4 * (k - zo), 1 << 30, -1
    lo_x, hi_x = -128 - x_zp, 127 - x_zp
    pos, neg = np.where(w > 0, w, 0).sum(axis=1), np.where(w < 0, w, 0).sum(axis=1)
    amax = np.maximum(np.abs(bias + pos * lo_x + neg * hi_x), np.abs(bias + pos * hi_x + neg * lo_x))
    right = -shift
    ok = ((mult == 0) | ((mult >= 1 << 30) & (mult < 1 << 31))) & (shift <= -1) & (right <= 30) & (amax < 1 << 30)
    r = np.clip(right, 0, 30)
    folded = (np.int64(1) << r) // 2 + zo * (np.int64(1) << r)
    high_max = (amax * mult + (1 << 30)) // (1 << 31) + 1
    ok &= (abs(zo) * (np.int64(1) << r) < 1 << 31) & (high_max + np.abs(folded) < 1 << 31)
    for a in (bias, mult, shift):
        a.setflags(write=False)
    return DspRequant(bias, mult, shift, Requant.SHORT if ok.all() else Requant.GENERAL, acc_min, acc_max)


def add_requant_mode(m1: int, e1: int, m2: int, e2: int, mo: int, eo: int) -> Requant:
    """SHORT when the DSP build's ADD requantization applies (ts_elementwise_dsp.c, ts_add_row_dsp): inputs
    lifted by 2**21 stay below 2**29 in magnitude (int8 minus zero point < 2**8), the rescaled sum below 2**29,
    multipliers normalized, input shifts in [-30, 0], the output shift in [-23, -1] (the folded offset and
    rounding term then stay below 2**31 - 2**29)."""
    normalized = all((1 << 30) <= m < (1 << 31) for m in (m1, m2, mo))
    short = normalized and -30 <= e1 <= 0 and -30 <= e2 <= 0 and -23 <= eo <= -1
    return Requant.SHORT if short else Requant.GENERAL


# Field names of the linear form in ts_add_params (0 in every field: no form, the kernel's other paths run).
ADD_LINEAR_FIELDS = ("lin_a", "lin_b", "lin_c", "lin_shift")


@lru_cache(maxsize=256)
def add_linear_form(a_zp: int, b_zp: int, y_zp: int, left_shift: int, m1: int, e1: int, m2: int, e2: int, mo: int,
                    eo: int, lo: int, hi: int, subtract: bool) -> tuple[int, int, int, int] | None:
    """(ka, kb, c, s) such that int8 ADD/SUB (TFLite's three roundings) equals clamp((c + a ka + b kb) >> s,
    lo, hi) for every one of the 65,536 input pairs, with every part of that int32 expression (a ka, c + a ka,
    b kb, and the total) inside int32; None when no such form is found (then the DSP build runs the rescalings).

    The slopes are the exact real ones, a ka / 2**s ~ a m1 2**e1 2**left_shift mo 2**eo / 2**62, possibly
    stretched by 1 + eps (which rounds the ties of a zero-centred sum away from zero, as RoundingDivideByPOT
    does); for given slopes, every pair bounds c from both sides (one side for a clamped output), so the
    feasible c are one interval, computed over all pairs at once. The result is proved, not estimated: the C
    (ts_elementwise_dsp.c) computes exactly this expression."""
    a = np.repeat(np.arange(-128, 128, dtype=np.int64), 256)
    b = np.tile(np.arange(-128, 128, dtype=np.int64), 256)
    q = {"m1": m1, "e1": e1, "m2": m2, "e2": e2, "mo": mo, "eo": eo}
    t = ew.add(a, b, zp1=a_zp, zp2=b_zp, zpo=y_zp, params=q, act_min=lo, act_max=hi, subtract=subtract,
               left_shift=left_shift).astype(np.int64)
    alpha = Fraction(m1 * mo, 1 << 62) * Fraction(2) ** (left_shift + e1 + eo)
    beta = Fraction(m2 * mo, 1 << 62) * Fraction(2) ** (left_shift + e2 + eo) * (-1 if subtract else 1)
    # |c + a ka + b kb| ~ 2**s |y| with y the unclamped output: the largest s that keeps it in int32 (checked
    # exactly below), and the 3 below it.
    bound = (abs(alpha) + abs(beta)) * 256 + abs(y_zp) + 2
    s_max = min(30, (int((1 << 31) / bound)).bit_length())
    for s in range(s_max, max(s_max - 4, 0), -1):
        low = np.where(t > lo, t << s, np.iinfo(np.int64).min // 2)
        high = np.where(t < hi, ((t + 1) << s) - 1, np.iinfo(np.int64).max // 2)
        for eps in (Fraction(0), *(Fraction(1, 1 << k) for k in range(28, 6, -2))):
            ka, kb = round(alpha * (1 + eps) * (1 << s)), round(beta * (1 + eps) * (1 << s))
            v = ka * a + kb * b
            c_lo, c_hi = int((low - v).max()), int((high - v).min())
            if c_lo > c_hi:
                continue
            c = (c_lo + c_hi) // 2
            parts = np.concatenate([ka * a[::256], c + ka * a[::256], kb * b[:256], v + c])
            if abs(ka) < 1 << 31 and abs(kb) < 1 << 31 and np.abs(parts).max() < 1 << 31:
                return ka, kb, c, s
    return None


def add_linear_fields(p) -> dict:
    """The ts_add_params fields of an int8 AddParams' linear form (all 0 when it has none)."""
    form = add_linear_form(p.a_zp, p.b_zp, p.y_zp, p.left_shift, p.m1, p.e1, p.m2, p.e2, p.mo, p.eo, p.act_min,
                           p.act_max, bool(p.subtract))
    return dict(zip(ADD_LINEAR_FIELDS, form or (0, 0, 0, 0)))
