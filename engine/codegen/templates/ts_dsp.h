/* ts_dsp.h - the Armv7E-M / Armv8-M mainline DSP instruction layer of the *_dsp.c kernel files (internal).
 *
 * SXTB16/SXTAB16 (with ROR #8), SMLAD, SMLABB/SMLATT, SMMLAR and SSAT through <arm_acle.h> and inline assembly,
 * or, with TINYSTUDIO_EMULATE_DSP, portable C versions of the instructions, which is how the host tests check
 * that the DSP path gives the portable kernels' bytes. Also the DSP path's short requantization (ts_rq) and the
 * entry points of the DSP files, which the portable entry points call. Assumes a little-endian target (all
 * Cortex-M cores in practice). Everything here exists only when TINYSTUDIO_DSP is 1.
 */
#ifndef TS_DSP_H
#define TS_DSP_H

#include "ts_fixedpoint.h"

#if TINYSTUDIO_DSP

#include <string.h>

#if !defined(TINYSTUDIO_EMULATE_DSP)
#include <arm_acle.h>
#endif

static inline uint32_t ts_read32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void ts_write32(void *p, uint32_t v) { memcpy(p, &v, 4); }

static inline uint32_t ts_dup16(int32_t v) { return ((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16); }
/* ROR #8 in C, for the emulation and for compilers without GNU inline assembly. */
static inline uint32_t ts_ror8(uint32_t v) { return (v >> 8) | (v << 24); }

#if defined(TINYSTUDIO_EMULATE_DSP)
static inline uint32_t ts_half(int32_t lo, int32_t hi) { return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16); }
static inline int32_t ts_lo16(uint32_t v) { return (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu); }
static inline int32_t ts_hi16(uint32_t v) { return (int32_t)(int16_t)(uint16_t)(v >> 16); }
static inline int32_t ts_byte(uint32_t v, int n) { return (int32_t)(int8_t)(uint8_t)((v >> (8 * n)) & 0xFFu); }
static inline uint32_t ts_sxtb16(uint32_t v) { return ts_half(ts_byte(v, 0), ts_byte(v, 2)); }
static inline uint32_t ts_sxtb16_ror8(uint32_t v) { return ts_sxtb16(ts_ror8(v)); }
static inline uint32_t ts_sxtab16(uint32_t a, uint32_t v)
{
    return ts_half(ts_lo16(a) + ts_byte(v, 0), ts_hi16(a) + ts_byte(v, 2));
}
static inline uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v) { return ts_sxtab16(a, ts_ror8(v)); }
/* The multiply-accumulates wrap modulo 2**32 like the instructions (the Q flag is not modelled). */
static inline int32_t ts_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_lo16(b)) + (uint32_t)(ts_hi16(a) * ts_hi16(b)));
}
static inline int32_t ts_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lo16(a) * ts_lo16(b)));
}
static inline int32_t ts_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_hi16(a) * ts_hi16(b)));
}
static inline int32_t ts_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
#else
static inline uint32_t ts_sxtb16(uint32_t v) { return (uint32_t)__sxtb16((int32_t)v); }
static inline uint32_t ts_sxtab16(uint32_t a, uint32_t v) { return (uint32_t)__sxtab16((int32_t)a, (int32_t)v); }
static inline int32_t ts_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int32_t)a, (int32_t)b, acc); }
static inline int32_t ts_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static inline int32_t ts_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static inline int32_t ts_ssat8(int32_t v) { return __ssat(v, 8); }
#if defined(__GNUC__)
/* Single instructions the ACLE does not offer (SXTB16/SXTAB16 with ROR #8, SMMLAR). */
static inline uint32_t ts_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static inline uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
static inline int32_t ts_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
static inline uint32_t ts_sxtb16_ror8(uint32_t v) { return (uint32_t)__sxtb16((int32_t)ts_ror8(v)); }
static inline uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t v)
{
    return (uint32_t)__sxtab16((int32_t)a, (int32_t)ts_ror8(v));
}
#endif
#endif
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
/* SMMLAR: acc + the high word of a * b rounded (bits 63..32 of acc * 2**32 + a * b + 2**31). */
static inline int32_t ts_smmlar(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(int32_t)(((int64_t)a * b + 0x80000000LL) >> 32));
}
#endif

/* Hides a value from the optimizer so that it does not turn y[s * stride] into four spilled pointers. */
#if defined(__GNUC__)
#define TS_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define TS_OPAQUE(v) ((void)0)
#endif

/* Two consecutive words of the int16 block (LDRD with post-increment on the target; word aligned). */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
static inline void ts_load2(const int16_t **p, uint32_t *a, uint32_t *b)
{
    *a = ts_read32(*p);
    *b = ts_read32(*p + 2);
    *p += 4;
}
#else
static inline void ts_load2(const int16_t **p, uint32_t *a, uint32_t *b)
{
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*a), "=&r"(*b), "+r"(*p) : "m"(*(const int16_t(*)[4]) * p));
}
#endif

/* Value t of a run of pre-widened weights packed two per word, low half first (endian-independent). */
static inline int32_t ts_w16_half(const uint32_t *w, int32_t t)
{
    const uint32_t v = w[t >> 1] >> (16 * (t & 1));
    return (int32_t)(int16_t)(uint16_t)(v & 0xFFFFu);
}

/* Two consecutive words of pre-widened weights (ts_conv_s8_w16; word aligned: an int32 array). */
#if defined(TINYSTUDIO_EMULATE_DSP) || !defined(__GNUC__)
static inline void ts_load2w(const uint32_t **p, uint32_t *a, uint32_t *b)
{
    *a = (*p)[0];
    *b = (*p)[1];
    *p += 2;
}
#else
static inline void ts_load2w(const uint32_t **p, uint32_t *a, uint32_t *b)
{
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(*a), "=&r"(*b), "+r"(*p) : "m"(*(const uint32_t(*)[2]) * p));
}
#endif

/* Requantization in the DSP kernels. When the generator cleared `general_requant` (multipliers 0 or in
 * [2**30, 2**31), shifts in [-30, -1], every accumulator in [-2**30, 2**30)), TFLite's double rounding
 *     high = SaturatingRoundingDoublingHighMul(x, m) = (2x * m + 2**31) >> 32     (2x fits, no saturation)
 *     RoundingDivideByPOT(high, r) + offset = (high + 2**(r-1) - (high < 0) + offset * 2**r) >> r
 * is one SMMLAR and one shift: with m >= 2**30, high < 0 exactly when x < 0 (the one exception, x = -1
 * with m = 2**30, has high = 0 and rounds to 0 either way; m = 0 gives 0 both ways), and the generator
 * checks that the sums stay below 2**31. Otherwise the portable arithmetic runs. The host tests check
 * both paths against the numpy reference bit for bit. */
typedef struct {
    int32_t multiplier, shift, right, bias;
} ts_rq;

/* odd = 2 * output offset + 1: the folded term 2**(r-1) + offset * 2**r is odd << (r - 1). (The mask
 * keeps the shift defined for layers on the portable path, whose constants are not used.) */
TS_ALWAYS_INLINE ts_rq ts_rq_channel(const int32_t *multiplier, const int8_t *shift, int32_t ch, int32_t odd)
{
    ts_rq q;
    q.multiplier = multiplier[ch];
    q.shift = shift[ch];
    q.right = -q.shift;
    q.bias = (int32_t)((uint32_t)odd << ((q.right - 1) & 31));
    return q;
}

/* The requantized value plus the output offset, before clamping. */
TS_ALWAYS_INLINE int32_t ts_rq_fast(int32_t x, const ts_rq *q)
{
    return ts_smmlar(x * 2, q->multiplier, q->bias - (int32_t)((uint32_t)x >> 31)) >> q->right;
}

TS_ALWAYS_INLINE int8_t ts_clamp8(int32_t v, int32_t lo, int32_t hi)
{
    v = ts_ssat8(v);
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

/* The DSP files' entry points, called by the portable ones (ts_conv_ref.c, ...) when they apply. */
void ts_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                    const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch);
void ts_conv_s8_w16_dsp(const ts_conv_params *p, const int8_t *x, const int32_t *w, const int32_t *bias,
                        const int32_t *multiplier, const int8_t *shift, int8_t *y, int16_t *scratch);
void ts_depthwise_conv_s8_dsp(const ts_conv_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                              const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_fully_connected_s8_dsp(const ts_fc_params *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                               const int32_t *multiplier, const int8_t *shift, int8_t *y);
void ts_add_s8_dsp(const ts_add_params *p, const int8_t *a, const int8_t *b, int8_t *y);
void ts_avg_pool_s8_dsp(const ts_pool_params *p, const int8_t *x, int8_t *y);

#endif /* TINYSTUDIO_DSP */

#endif /* TS_DSP_H */
