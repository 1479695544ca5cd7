/* src/cpu/kernels/x86/eltwise_avx512.c: the AVX-512F table of the f32 row
 * kernels (eltwise.h): 16 lanes, tails by lane masks (nothing past n is read
 * or written), math from vmath.h. Compiled for AVX-512 through target
 * attributes only; kiln__eltw_best picks it when the CPU has AVX-512F. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/kernels/vmath.h"

#define A512 KILN__VM_AVX512
#define S(x) _mm512_set1_ps(x)

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* ---- unary ------------------------------------------------------------------- */

/* clamp to [0, 1], NaN passing (max/min return their second operand on NaN) */
static inline A512 __m512 clamp01(__m512 v) {
    return _mm512_min_ps(S(1.0f), _mm512_max_ps(_mm512_setzero_ps(), v));
}

/* Runs EXPR (of v, the 16 inputs) over x into y. */
#define UNARY_LOOP(EXPR)                                              \
    do {                                                              \
        int64_t i = 0;                                                \
        for (; i + 16 <= n; i += 16) {                                \
            __m512 v = _mm512_loadu_ps(x + i);                        \
            _mm512_storeu_ps(y + i, (EXPR));                          \
        }                                                             \
        if (i < n) {                                                  \
            __mmask16 m = tail_mask(n - i);                           \
            __m512 v = _mm512_maskz_loadu_ps(m, x + i);               \
            _mm512_mask_storeu_ps(y + i, m, (EXPR));                  \
        }                                                             \
    } while (0)

static A512 void unary_avx512(const kiln__eltw_unary *u, const float *x, float *y, int64_t n) {
    const __m512 alpha = S(u->alpha), beta = S(u->beta), zero = _mm512_setzero_ps();
    switch (u->op) {
    case KILN__ELTW_RELU: UNARY_LOOP(_mm512_max_ps(zero, v)); break;
    case KILN__ELTW_LEAKY_RELU:
        UNARY_LOOP(_mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, alpha));
        break;
    case KILN__ELTW_SIGMOID: UNARY_LOOP(kiln__vm_sigmoid16(v)); break;
    case KILN__ELTW_TANH: UNARY_LOOP(kiln__vm_tanh16(v)); break;
    case KILN__ELTW_GELU_ERF: UNARY_LOOP(kiln__vm_gelu_erf16(v)); break;
    case KILN__ELTW_GELU_TANH: UNARY_LOOP(kiln__vm_gelu_tanh16(v)); break;
    case KILN__ELTW_HARD_SIGMOID:
        UNARY_LOOP(clamp01(_mm512_add_ps(_mm512_mul_ps(alpha, v), beta)));
        break;
    case KILN__ELTW_HARD_SWISH:
        UNARY_LOOP(_mm512_mul_ps(v, clamp01(_mm512_fmadd_ps(v, S(1.0f / 6.0f), S(0.5f)))));
        break;
    case KILN__ELTW_CLIP: UNARY_LOOP(_mm512_min_ps(beta, _mm512_max_ps(alpha, v))); break;
    case KILN__ELTW_EXP: UNARY_LOOP(kiln__vm_exp16(v)); break;
    case KILN__ELTW_ERF: UNARY_LOOP(kiln__vm_erf16(v)); break;
    case KILN__ELTW_SQRT: UNARY_LOOP(_mm512_sqrt_ps(v)); break;
    case KILN__ELTW_NEG: UNARY_LOOP(_mm512_sub_ps(zero, v)); break;
    case KILN__ELTW_ABS: UNARY_LOOP(kiln__vm_abs16(v)); break;
    case KILN__ELTW_AFFINE: UNARY_LOOP(_mm512_add_ps(_mm512_mul_ps(alpha, v), beta)); break;
    case KILN__ELTW_SQUARE: UNARY_LOOP(_mm512_mul_ps(v, v)); break;
    case KILN__ELTW_CUBE: UNARY_LOOP(_mm512_mul_ps(_mm512_mul_ps(v, v), v)); break;
    default: UNARY_LOOP(v); break;
    }
}

/* ---- binary ------------------------------------------------------------------- */

/* NaN-propagating max/min: x86 max returns the second operand on NaN, so a
 * NaN in a is put back. */
static inline A512 __m512 max_nan(__m512 a, __m512 b) {
    return _mm512_mask_mov_ps(_mm512_max_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}
static inline A512 __m512 min_nan(__m512 a, __m512 b) {
    return _mm512_mask_mov_ps(_mm512_min_ps(a, b), _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a);
}

#define BINARY_LOOP(EXPR)                                                                 \
    do {                                                                                  \
        int64_t i = 0;                                                                    \
        for (; i + 16 <= n; i += 16) {                                                    \
            __m512 va = as ? _mm512_loadu_ps(a + i) : a0, vb = bs ? _mm512_loadu_ps(b + i) : b0; \
            _mm512_storeu_ps(y + i, (EXPR));                                              \
        }                                                                                 \
        if (i < n) {                                                                      \
            __mmask16 m = tail_mask(n - i);                                               \
            __m512 va = as ? _mm512_maskz_loadu_ps(m, a + i) : a0;                        \
            __m512 vb = bs ? _mm512_maskz_loadu_ps(m, b + i) : b0;                        \
            _mm512_mask_storeu_ps(y + i, m, (EXPR));                                      \
        }                                                                                 \
    } while (0)

static A512 void binary_avx512(kiln__eltw_op op, const float *a, int as, const float *b, int bs,
                               float *y, int64_t n) {
    const __m512 a0 = S(a[0]), b0 = S(b[0]);
    switch (op) {
    case KILN__ELTW_ADD: BINARY_LOOP(_mm512_add_ps(va, vb)); break;
    case KILN__ELTW_SUB: BINARY_LOOP(_mm512_sub_ps(va, vb)); break;
    case KILN__ELTW_MUL: BINARY_LOOP(_mm512_mul_ps(va, vb)); break;
    case KILN__ELTW_DIV: BINARY_LOOP(_mm512_div_ps(va, vb)); break;
    case KILN__ELTW_MAX: BINARY_LOOP(max_nan(va, vb)); break;
    case KILN__ELTW_MIN: BINARY_LOOP(min_nan(va, vb)); break;
    default: break;
    }
}

/* ---- reductions ------------------------------------------------------------------ */

static A512 float sum_avx512(const float *x, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_loadu_ps(x + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i < n; i += 16) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* Max by the reference's rule: lanes start from x[0]; v replaces the lane
 * only when v > lane (vmaxps(v, m) returns m when either is NaN). A NaN at
 * x[0] therefore stays; any other NaN is skipped. */
static A512 float max_avx512(const float *x, int64_t n) {
    __m512 m = S(x[0]);
    if (x[0] != x[0]) return x[0];
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m);
    if (i < n) m = _mm512_mask_max_ps(m, tail_mask(n - i), _mm512_maskz_loadu_ps(tail_mask(n - i), x + i), m);
    return _mm512_reduce_max_ps(m);
}

/* ---- softmax ------------------------------------------------------------------- */

/* A NaN anywhere in x makes the sum of exponentials NaN and so the whole
 * row, as in the reference, whatever the maximum's NaN rule. */
static A512 void softmax_avx512(const float *x, float *y, int64_t n, int log_softmax) {
    __m512 vm = S(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
    if (i < n) vm = _mm512_mask_max_ps(vm, tail_mask(n - i), vm, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    const __m512 max = S(_mm512_reduce_max_ps(vm));
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    for (i = 0; i + 32 <= n; i += 32) {
        __m512 e0 = kiln__vm_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), max));
        __m512 e1 = kiln__vm_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), max));
        if (!log_softmax) {
            _mm512_storeu_ps(y + i, e0);
            _mm512_storeu_ps(y + i + 16, e1);
        }
        s0 = _mm512_add_ps(s0, e0);
        s1 = _mm512_add_ps(s1, e1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = kiln__vm_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max));
        if (!log_softmax) _mm512_mask_storeu_ps(y + i, m, e);
        s0 = _mm512_mask_add_ps(s0, m, s0, e);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    if (log_softmax) {
        const __m512 lsum = S(logf(sum));
        for (i = 0; i < n; i += 16) {
            __mmask16 m = tail_mask(n - i);
            __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max);
            _mm512_mask_storeu_ps(y + i, m, _mm512_sub_ps(d, lsum));
        }
        return;
    }
    const __m512 inv = S(1.0f / sum);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), inv));
    }
}

/* ---- layer / RMS norm row ------------------------------------------------------------ */

static A512 void norm_avx512(const float *x, float *y, int64_t n, const float *scale,
                             const float *bias, float eps, int center, float *mean_out,
                             float *inv_out) {
    float mean = center ? sum_avx512(x, n) / (float)n : 0.0f;
    const __m512 vmean = S(mean);
    __m512 q0 = _mm512_setzero_ps(), q1 = q0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vmean);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vmean);
        q0 = _mm512_fmadd_ps(d0, d0, q0);
        q1 = _mm512_fmadd_ps(d1, d1, q1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vmean);
        q0 = _mm512_fmadd_ps(d, d, q0);
    }
    float var = _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) / (float)n;
    float inv = 1.0f / sqrtf(var + eps);
    *mean_out = mean;
    *inv_out = inv;
    const __m512 vinv = S(inv);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmean), vinv);
        v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, scale + i));
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

/* ---- pooling row ----------------------------------------------------------------- */

/* Inputs r[first + lane*s] of the 16 lanes in m (outputs o..o+15, kernel
 * column folded into first): one load at stride 1, two loads and a
 * permutation at stride 2, a gather beyond; nothing outside the lanes'
 * elements is read. */
static inline A512 __m512 pool_taps(const float *r, int64_t first, int64_t s, __m512i lanes_s,
                                    __mmask16 m, int lanes) {
    if (s == 1) return _mm512_maskz_loadu_ps(m, r + first);
    if (s == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        int64_t span = 2 * (lanes - 1) + 1; /* elements first .. first + span - 1 */
        __m512 lo = _mm512_maskz_loadu_ps(tail_mask(span), r + first);
        __m512 hi = span > 16 ? _mm512_maskz_loadu_ps(tail_mask(span - 16), r + first + 16) : lo;
        return _mm512_permutex2var_ps(lo, even, hi);
    }
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lanes_s, r + first, 4);
}

static A512 void pool_row_avx512(const kiln__pool_row *p) {
    kiln__pool_row_span(p, 0, p->ow0);
    const __m512i lanes_s = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int)p->s));
    for (int64_t o = p->ow0; o < p->ow1; o += 16) {
        int lanes = p->ow1 - o < 16 ? (int)(p->ow1 - o) : 16;
        __mmask16 m = tail_mask(lanes);
        int64_t first = o * p->s - p->pad;
        const float *r = p->x + p->h0 * p->W;
        __m512 acc = p->max ? pool_taps(r, first, p->s, lanes_s, m, lanes) : _mm512_setzero_ps();
        for (int64_t h = p->h0; h < p->h1; h++, r += p->W)
            for (int64_t j = 0; j < p->k; j++) {
                if (p->max && h == p->h0 && j == 0) continue;
                __m512 v = pool_taps(r, first + j, p->s, lanes_s, m, lanes);
                acc = p->max ? _mm512_max_ps(v, acc) : _mm512_add_ps(acc, v);
            }
        _mm512_mask_storeu_ps(p->y + o, m, acc);
    }
    kiln__pool_row_span(p, p->ow1 > p->ow0 ? p->ow1 : p->ow0, p->OW);
}

/* ---- LRN ------------------------------------------------------------------------- */

/* d^-beta as exp(-beta log d) (vmath.h): d > 0 finite in practice (bias > 0);
 * d = 0 gives +Inf as powf does, NaN stays NaN. */
static A512 void lrn_avx512(const float *x, const float *win, int64_t stride, int nwin, float *y,
                            int64_t n, float bias, float scale, float beta) {
    const __m512 vb = S(bias), vs = S(scale), vnb = S(-beta);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 q = _mm512_setzero_ps();
        for (int j = 0; j < nwin; j++) {
            __m512 v = _mm512_maskz_loadu_ps(m, win + j * stride + i);
            q = _mm512_fmadd_ps(v, v, q);
        }
        __m512 d = _mm512_fmadd_ps(vs, q, vb);
        __m512 f = kiln__vm_exp16(_mm512_mul_ps(vnb, kiln__vm_log16(d)));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), f));
    }
}

const kiln__eltw_kernels kiln__eltw_avx512 = {
    .name = "avx512",
    .unary = unary_avx512,
    .binary = binary_avx512,
    .softmax = softmax_avx512,
    .sum = sum_avx512,
    .max = max_avx512,
    .norm = norm_avx512,
    .pool_row = pool_row_avx512,
    .lrn = lrn_avx512,
};

#endif
