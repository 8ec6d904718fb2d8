/* ts_fixedpoint.h - the fixed-point helpers every kernel file shares (internal; not part of the public API).
 *
 * TFLite's int8 reference arithmetic: int32 accumulators, MultiplyByQuantizedMultiplier in gemmlowp's
 * double-rounding form, saturating and wrapping int32 operations, int4 weight unpacking. Signed overflow never
 * happens: the generator proves every conv and fully connected accumulator range fits int32 (and refuses the
 * layer otherwise); sums that TFLite lets wrap are computed in uint32. The small helpers are static inline, so
 * that each kernel file compiles them into its loops; ts_fixedpoint.c holds the public functions the header
 * declares (every kernel that requantizes calls ts_multiply_by_quantized_multiplier there).
 */
#ifndef TS_FIXEDPOINT_H
#define TS_FIXEDPOINT_H

#include "tinystudio_kernels.h"

#if defined(__GNUC__)
#define TS_NOINLINE __attribute__((noinline))
#define TS_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TS_NOINLINE
#define TS_ALWAYS_INLINE static inline
#endif

static inline int32_t ts_min32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t ts_max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t ts_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
/* int32 addition that wraps like the int32 arithmetic TFLite relies on (no undefined overflow). */
static inline int32_t ts_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t ts_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* round(a * b / 2**31), the one overflow (MIN * MIN) saturating to MAX. (ab + 2**30) >> 31 equals
 * gemmlowp's nudge-and-truncate form for both signs. */
static inline int32_t ts_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* x / 2**exponent rounded to nearest, halves away from zero; exponent in [0, 31]. */
static inline int32_t ts_rdivpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (ts_fixedpoint.c): an ordinary function, called from every kernel's
 * requantization, as compact as when the library was one file. */
static inline int32_t ts_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    return ts_multiply_by_quantized_multiplier(x, multiplier, shift);
}

/* The portable requantization of an accumulator: rescale, add the output zero point, clamp. */
static inline int8_t ts_requant(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset, int32_t lo,
                                int32_t hi)
{
    return (int8_t)ts_clamp(ts_mbqm(acc, multiplier, shift) + out_offset, lo, hi);
}

/* int4 weights are packed two per byte, weight i in the low nibble of byte i / 2 when i is even, the high
 * nibble when odd (TFLite's int4 packing), two's complement in [-8, 7]. */
static inline int32_t ts_w4(const uint8_t *w, size_t i)
{
    const int32_t v = (int32_t)((w[i >> 1] >> ((i & 1u) * 4u)) & 0x0Fu);
    return v - ((v & 8) << 1);
}

/* Weight i of a flattened weight array in the int8 layout: int8 storage, or int4 when `packed4` (a constant
 * in each caller, so the test compiles away). */
static inline int32_t ts_weight(const void *w, size_t i, int packed4)
{
    return packed4 ? ts_w4((const uint8_t *)w, i) : (int32_t)((const int8_t *)w)[i];
}

#endif /* TS_FIXEDPOINT_H */
