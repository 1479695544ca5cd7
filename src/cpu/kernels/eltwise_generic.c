/* src/cpu/kernels/eltwise_generic.c: the portable C table of the f32 row
 * kernels (eltwise.h): plain loops the compiler may vectorize, libm math
 * (vmath.h scalar forms), sums accumulated in double. x86/eltwise_avx2.c
 * compiles this file again for AVX2 as another table (KILN_ELTW_TABLE). */
#include <math.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/kernels/vmath.h"

/* min(max(v, 0), 1) with NaN passing through. */
static inline float clamp01(float v) { return v > 1.0f ? 1.0f : v < 0.0f ? 0.0f : v; }

/* always_inline: each loop below gets its op's body, not a call */
static inline __attribute__((always_inline)) float unary1(const kiln__eltw_unary *u, float x) {
    switch (u->op) {
    case KILN__ELTW_RELU: return x < 0.0f ? 0.0f : x;
    case KILN__ELTW_LEAKY_RELU: return x < 0.0f ? u->alpha * x : x;
    case KILN__ELTW_SIGMOID: return kiln__vm_sigmoid(x);
    case KILN__ELTW_TANH: return kiln__vm_tanh(x);
    case KILN__ELTW_GELU_ERF: return kiln__vm_gelu_erf(x);
    case KILN__ELTW_GELU_TANH: return kiln__vm_gelu_tanh(x);
    case KILN__ELTW_HARD_SIGMOID: return clamp01(u->alpha * x + u->beta);
    case KILN__ELTW_HARD_SWISH: return x * clamp01(x * (1.0f / 6.0f) + 0.5f);
    case KILN__ELTW_CLIP: {
        float v = x < u->alpha ? u->alpha : x;
        return v > u->beta ? u->beta : v;
    }
    case KILN__ELTW_EXP: return kiln__vm_exp(x);
    case KILN__ELTW_ERF: return kiln__vm_erf(x);
    case KILN__ELTW_SQRT: return sqrtf(x);
    case KILN__ELTW_NEG: return -x;
    case KILN__ELTW_ABS: return fabsf(x);
    case KILN__ELTW_AFFINE: return u->alpha * x + u->beta;
    case KILN__ELTW_SQUARE: return x * x;
    case KILN__ELTW_CUBE: return x * x * x;
    default: return x; /* COPY */
    }
}

/* The switch sits outside each loop: one loop per op. A table compiled
 * from this file may take some ops to vector math of its own first:
 * KILN_ELTW_UNARY_VEC(u, x, y, n) returns 1 when it did the op. */
static void unary_generic(const kiln__eltw_unary *u, const float *x, float *y, int64_t n) {
#ifdef KILN_ELTW_UNARY_VEC
    if (KILN_ELTW_UNARY_VEC(u, x, y, n)) return;
#endif
    switch (u->op) {
#define CASE(OP)                                                \
    case OP: {                                                  \
        const kiln__eltw_unary uu = {OP, u->alpha, u->beta};    \
        for (int64_t i = 0; i < n; i++) y[i] = unary1(&uu, x[i]); \
        break;                                                  \
    }
        CASE(KILN__ELTW_RELU)
        CASE(KILN__ELTW_LEAKY_RELU)
        CASE(KILN__ELTW_SIGMOID)
        CASE(KILN__ELTW_TANH)
        CASE(KILN__ELTW_GELU_ERF)
        CASE(KILN__ELTW_GELU_TANH)
        CASE(KILN__ELTW_HARD_SIGMOID)
        CASE(KILN__ELTW_HARD_SWISH)
        CASE(KILN__ELTW_CLIP)
        CASE(KILN__ELTW_EXP)
        CASE(KILN__ELTW_ERF)
        CASE(KILN__ELTW_SQRT)
        CASE(KILN__ELTW_NEG)
        CASE(KILN__ELTW_ABS)
        CASE(KILN__ELTW_AFFINE)
        CASE(KILN__ELTW_SQUARE)
        CASE(KILN__ELTW_CUBE)
#undef CASE
    default:
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
    }
}

static inline __attribute__((always_inline)) float binary1(kiln__eltw_op op, float a, float b) {
    switch (op) {
    case KILN__ELTW_ADD: return a + b;
    case KILN__ELTW_SUB: return a - b;
    case KILN__ELTW_MUL: return a * b;
    case KILN__ELTW_DIV: return a / b;
    case KILN__ELTW_MAX: return a != a ? a : b != b ? b : a > b ? a : b;
    default: return a != a ? a : b != b ? b : a < b ? a : b; /* MIN */
    }
}

static void binary_generic(kiln__eltw_op op, const float *a, int as, const float *b, int bs,
                           float *y, int64_t n) {
    switch (op) {
#define CASE(OP)                                                                    \
    case OP:                                                                        \
        if (as && bs)                                                               \
            for (int64_t i = 0; i < n; i++) y[i] = binary1(OP, a[i], b[i]);         \
        else if (as)                                                                \
            for (int64_t i = 0; i < n; i++) y[i] = binary1(OP, a[i], b[0]);       \
        else if (bs)                                                                \
            for (int64_t i = 0; i < n; i++) y[i] = binary1(OP, a[0], b[i]);       \
        else                                                                        \
            for (int64_t i = 0; i < n; i++) y[i] = binary1(OP, a[0], b[0]);         \
        break;
        CASE(KILN__ELTW_ADD)
        CASE(KILN__ELTW_SUB)
        CASE(KILN__ELTW_MUL)
        CASE(KILN__ELTW_DIV)
        CASE(KILN__ELTW_MAX)
        CASE(KILN__ELTW_MIN)
#undef CASE
    default: break;
    }
}

static float max_generic(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static float sum_generic(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return (float)s;
}

static void softmax_generic(const float *x, float *y, int64_t n, int log_softmax) {
    float max = max_generic(x, n);
    double sum = 0;
    if (log_softmax) {
        for (int64_t i = 0; i < n; i++) sum += kiln__vm_exp(x[i] - max);
        float lsum = (float)log(sum);
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] - max) - lsum;
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        y[i] = kiln__vm_exp(x[i] - max);
        sum += y[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

static void norm_generic(const float *x, float *y, int64_t n, const float *scale,
                         const float *bias, float eps, int center, float *mean_out,
                         float *inv_out) {
    double mean = 0, var = 0;
    if (center) {
        for (int64_t i = 0; i < n; i++) mean += x[i];
        mean /= (double)n;
    }
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= (double)n;
    float m = (float)mean, inv = (float)(1.0 / sqrt(var + eps));
    *mean_out = m;
    *inv_out = inv;
    for (int64_t i = 0; i < n; i++) {
        float v = (x[i] - m) * inv * scale[i];
        y[i] = bias ? v + bias[i] : v;
    }
}

/* The outputs whose windows lie inside the row, [ow0, ow1), tap by tap across
 * all of them (loops over outputs the compiler can vectorize), each output
 * taking its taps in the span's order (so the same sums and maxima); the
 * edges one at a time. */
static void pool_row_generic(const kiln__pool_row *p) {
    const int64_t n = p->ow1 - p->ow0, s = p->s;
    kiln__pool_row_span(p, 0, n > 0 ? p->ow0 : p->OW);
    if (n <= 0) return;
    float *y = p->y + p->ow0;
    const float *r = p->x + p->h0 * p->W + p->ow0 * s - p->pad; /* output ow0's first tap */
    if (p->max && p->k == 2 && s == 2 && p->h1 - p->h0 == 2) {
        /* 2x2 windows, stride 2: the same taps in the same order, with
         * constant strides (which the vectorizer takes) */
        const float *r1 = r + p->W;
        for (int64_t i = 0; i < n; i++) {
            const float a = r[2 * i], b = r[2 * i + 1], c = r1[2 * i], d = r1[2 * i + 1];
            const float ab = b > a ? b : a, abc = c > ab ? c : ab;
            y[i] = d > abc ? d : abc;
        }
        kiln__pool_row_span(p, p->ow1, p->OW);
        return;
    }
    for (int64_t i = 0; i < n; i++) y[i] = p->max ? r[i * s] : 0.0f;
    for (int64_t h = p->h0; h < p->h1; h++, r += p->W)
        for (int64_t j = 0; j < p->k; j++) {
            const float *t = r + j;
            if (!p->max)
                for (int64_t i = 0; i < n; i++) y[i] += t[i * s];
            else if (h > p->h0 || j > 0)
                for (int64_t i = 0; i < n; i++) y[i] = t[i * s] > y[i] ? t[i * s] : y[i];
        }
    kiln__pool_row_span(p, p->ow1, p->OW);
}

/* One loop per form of the operands, so each is a plain select the
 * vectorizer takes (no branch on the condition). */
static void select_generic(const uint8_t *restrict c, const float *restrict x, int xs,
                           const float *restrict y, int ys, float *restrict z, int64_t n) {
    if (xs && ys) {
        for (int64_t i = 0; i < n; i++) z[i] = c[i] ? x[i] : y[i];
    } else if (xs) {
        const float yv = y[0];
        for (int64_t i = 0; i < n; i++) z[i] = c[i] ? x[i] : yv;
    } else if (ys) {
        const float xv = x[0];
        for (int64_t i = 0; i < n; i++) z[i] = c[i] ? xv : y[i];
    } else {
        const float xv = x[0], yv = y[0];
        for (int64_t i = 0; i < n; i++) z[i] = c[i] ? xv : yv;
    }
}

/* Branch-free: the comparisons become bit masks on g's bits (the maxima
 * fall anywhere, so branches would mispredict; the vectorizer also takes
 * this form). */
static void max_pool_grad_2x2_generic(const float *restrict x0, const float *restrict x1,
                                      const float *restrict g, float *restrict d0,
                                      float *restrict d1, int64_t ow, int relu) {
    for (int64_t o = 0; o < ow; o++) {
        const float a = x0[2 * o], b = x0[2 * o + 1], c = x1[2 * o], d = x1[2 * o + 1];
        const float ab = b > a ? b : a, abc = c > ab ? c : ab, abcd = d > abc ? d : abc;
        const uint32_t mb = -(uint32_t)(b > a), mc = -(uint32_t)(c > ab), md = -(uint32_t)(d > abc);
        const uint32_t keep = relu ? -(uint32_t)(abcd > 0) : ~0u; /* g, or 0 where relu drops it */
        uint32_t gv, out[4];
        memcpy(&gv, g + o, sizeof gv);
        gv &= keep;
        const uint32_t not_d = gv & ~md, not_cd = not_d & ~mc;
        out[0] = not_cd & ~mb;
        out[1] = not_cd & mb;
        out[2] = not_d & mc;
        out[3] = gv & md;
        memcpy(d0 + 2 * o, out, 2 * sizeof *out);
        memcpy(d1 + 2 * o, out + 2, 2 * sizeof *out);
    }
}

static void lrn_generic(const float *x, const float *win, int64_t stride, int nwin, float *y,
                        int64_t n, float bias, float scale, float beta) {
    for (int64_t i = 0; i < n; i++) {
        float q = 0.0f;
        for (int j = 0; j < nwin; j++) {
            const float v = win[j * stride + i];
            q += v * v;
        }
        y[i] = x[i] * powf(bias + scale * q, -beta);
    }
}

#ifndef KILN_ELTW_TABLE /* the table this compilation defines, and its name */
#define KILN_ELTW_TABLE kiln__eltw_generic
#define KILN_ELTW_TABLE_NAME "generic"
#endif

const kiln__eltw_kernels KILN_ELTW_TABLE = {
    .name = KILN_ELTW_TABLE_NAME,
    .unary = unary_generic,
    .binary = binary_generic,
    .softmax = softmax_generic,
    .sum = sum_generic,
    .max = max_generic,
    .norm = norm_generic,
    .pool_row = pool_row_generic,
    .select = select_generic,
    .max_pool_grad_2x2 = max_pool_grad_2x2_generic,
    .lrn = lrn_generic,
};
