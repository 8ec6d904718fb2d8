/* ts_lstm_ref.c - LSTM (TFLite UNIDIRECTIONAL_SEQUENCE_LSTM), int8 input, output and hidden state, int16 gates
 * and cell state, as tflite-micro's lstm_eval computes it: per step and gate, two fully connected layers (input
 * with the gate's bias, hidden state without) each requantized to int16 Q3.12 and added with saturation, then
 * the integer sigmoid (gates i, f, o) or tanh (cell gate) from TFLite's 256-entry table; the cell state becomes
 * sat16(f * c) + sat16(i * g), clipped to the quantized cell clip, and the hidden state int8(o * tanh(c)).
 * The hidden and cell states live outside the arena (the model's static state buffer) and are kept between
 * invocations; `buf` holds the four gate vectors (4 * batches * hidden int16). Sums that tflite-micro keeps in
 * int32 wrap here in uint32 (no undefined overflow). */
#include "ts_fixedpoint.h"

#include <string.h>

/* TFLite's sigmoid_table_uint16 (tensorflow/lite/kernels/internal/common.h). */
static const uint16_t ts_sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535};

/* v >> s rounding toward minus infinity, as an arithmetic shift does (without relying on it for negatives). */
static int32_t ts_lstm_asr(int32_t v, int32_t s)
{
    return v >= 0 ? (v >> s) : (int32_t)~((~v) >> s);
}

/* reference_integer_ops::Logistic(int16), input_multiplier 0: Q3.12 in, Q0.15 out. */
static int16_t ts_lstm_sigmoid(int32_t x)
{
    const int32_t v = x * 3;
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255u) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t ua = ts_sigmoid_table[uh];
        const uint32_t ub = ts_sigmoid_table[uh + 1u];
        r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

/* reference_integer_ops::Tanh(int16) with lstm_eval's (input_multiplier, input_left_shift). */
static int16_t ts_lstm_tanh(int32_t x, int32_t mult, int32_t shift)
{
    const int32_t rnd = shift > 0 ? (1 << (shift - 1)) : 0;
    const int32_t v = ts_lstm_asr(x * mult + rnd, shift);
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255u) {
        r = (int32_t)(0xFFFFu << 8);
    } else {
        const uint32_t ua = ts_sigmoid_table[uh];
        const uint32_t ub = ts_sigmoid_table[uh + 1u];
        r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)ts_lstm_asr(r, 8);
}

static int32_t ts_lstm_fc(const int8_t *v, const int8_t *w, int32_t n, int32_t offset, int32_t acc)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        acc = ts_wrap_add(acc, (int32_t)w[k] * ((int32_t)v[k] + offset));
    }
    return acc;
}

void ts_lstm_s8(const ts_lstm_params *p, const int8_t *x, const int8_t *w_x, const int8_t *w_h,
                const int32_t *bias, int8_t *h, int16_t *c, int8_t *y, int16_t *buf)
{
    const int32_t n = p->hidden;
    const size_t bh = (size_t)p->batches * (size_t)n;
    int32_t t, b, g, u;
    for (t = 0; t < p->steps; ++t) {
        const int8_t *xt = x + (size_t)t * (size_t)p->batches * (size_t)p->n_input;
        /* The four gates from the previous hidden state: buf[g * bh + b * n + u], g = i, f, c, o. */
        for (g = 0; g < 4; ++g) {
            for (b = 0; b < p->batches; ++b) {
                const int8_t *xb = xt + (size_t)b * (size_t)p->n_input;
                const int8_t *hb = h + (size_t)b * (size_t)n;
                for (u = 0; u < n; ++u) {
                    const size_t row = (size_t)g * (size_t)n + (size_t)u;
                    const int32_t ax = ts_lstm_fc(xb, w_x + row * (size_t)p->n_input, p->n_input, p->input_offset,
                                                  bias[row]);
                    const int32_t ah = ts_lstm_fc(hb, w_h + row * (size_t)n, n, p->hidden_offset, 0);
                    const int32_t vx = ts_clamp(ts_mbqm(ax, p->fc_x_mult[g], p->fc_x_shift[g]), -32768, 32767);
                    const int32_t vh = ts_clamp(ts_mbqm(ah, p->fc_h_mult[g], p->fc_h_shift[g]), -32768, 32767);
                    const int32_t v = ts_clamp(vx + vh, -32768, 32767);
                    buf[(size_t)g * bh + (size_t)b * (size_t)n + (size_t)u] =
                        g == 2 ? ts_lstm_tanh(v, 3, 0) : ts_lstm_sigmoid(v);
                }
            }
        }
        for (u = 0; u < (int32_t)bh; ++u) {
            const int32_t gi = buf[(size_t)u], gf = buf[bh + (size_t)u];
            const int32_t gc = buf[2 * bh + (size_t)u], go = buf[3 * bh + (size_t)u];
            const int32_t fc = ts_clamp(ts_mbqm(gf * (int32_t)c[u], p->forget_mult, p->forget_shift), -32768, 32767);
            const int32_t ic = ts_clamp(ts_mbqm(gi * gc, p->input_mult, p->input_shift), -32768, 32767);
            int32_t cell = ts_clamp(fc + ic, -32768, 32767);
            if (p->cell_clip > 0) {
                cell = ts_clamp(cell, -p->cell_clip, p->cell_clip);
            }
            c[u] = (int16_t)cell;
            const int32_t tc = ts_lstm_tanh(cell, p->tanh_mult, p->tanh_shift);
            h[u] = (int8_t)ts_clamp(p->hidden_zp + ts_mbqm(tc * go, p->output_mult, p->output_shift), -128, 127);
        }
        memcpy(y + (size_t)t * bh, h, bh);
    }
}
