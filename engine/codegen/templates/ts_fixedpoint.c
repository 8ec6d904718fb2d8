/* ts_fixedpoint.c - the public fixed-point helpers of tinystudio_kernels.h. The kernels call
 * ts_multiply_by_quantized_multiplier (through ts_mbqm) and inline the other two (ts_fixedpoint.h). */
#include "ts_fixedpoint.h"

int32_t ts_saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    return ts_srdhm(a, b);
}

int32_t ts_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    return ts_rdivpot(x, exponent);
}

/* TFLite MultiplyByQuantizedMultiplier: a positive shift multiplies first (wrapping like C's int32
 * x * (1 << shift) on the targets TFLite runs on), a negative one divides with rounding. shift <= 31. */
int32_t ts_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t lifted = (int32_t)((uint32_t)x << left);
    return ts_rdivpot(ts_srdhm(lifted, multiplier), right);
}
