/* src/cpu/kernels/eltwise.h: the f32 row kernels under the fast elementwise,
 * softmax, normalization (LRN too) and pooling algorithms (eltwise.c,
 * softmax.c, norm.c, pool.c, attention.c), one table per ISA:
 *
 *   kiln__eltw_generic   portable C (eltwise_generic.c), libm math;
 *   kiln__eltw_avx2      the same C compiled for AVX2 + FMA, vectorized by
 *                        the compiler (x86/eltwise_avx2.c);
 *   kiln__eltw_avx512    AVX-512F (x86/eltwise_avx512.c), vmath.h math,
 *                        compiled through target attributes only.
 *
 * The algorithms resolve the table once in prepare (kiln__eltw_best) and
 * keep it in their kstate, whose first member is always a
 * kiln__eltw_state. Nothing here allocates.
 *
 * Internal to src/cpu/kernels (and white-box tests).
 */
#ifndef KILN_CPU_KERNELS_ELTWISE_H
#define KILN_CPU_KERNELS_ELTWISE_H

#include <math.h>
#include <stdint.h>

#include "cpu/kernels/gemm.h"
#include "ops/algo.h"

/* Elementwise operations of the row kernels. */
typedef enum kiln__eltw_op {
    /* unary: y = f(x); parameters in kiln__eltw_unary */
    KILN__ELTW_RELU = 0,
    KILN__ELTW_LEAKY_RELU,   /* x < 0 ? alpha x : x */
    KILN__ELTW_SIGMOID,
    KILN__ELTW_TANH,
    KILN__ELTW_GELU_ERF,
    KILN__ELTW_GELU_TANH,
    KILN__ELTW_HARD_SIGMOID, /* clamp(alpha x + beta, 0, 1), NaN passing */
    KILN__ELTW_HARD_SWISH,   /* x clamp(x / 6 + 1/2, 0, 1) */
    KILN__ELTW_CLIP,         /* min(max(x, alpha), beta), NaN passing */
    KILN__ELTW_EXP,
    KILN__ELTW_ERF,
    KILN__ELTW_SQRT,
    KILN__ELTW_NEG,
    KILN__ELTW_ABS,
    KILN__ELTW_AFFINE,       /* alpha x + beta (one rounding: fma) */
    KILN__ELTW_SQUARE,       /* x * x */
    KILN__ELTW_CUBE,         /* x * x * x */
    KILN__ELTW_COPY,
    /* binary: y = a op b */
    KILN__ELTW_ADD,
    KILN__ELTW_SUB,
    KILN__ELTW_MUL,
    KILN__ELTW_DIV,
    KILN__ELTW_MAX, /* NaN in either operand wins, as numpy */
    KILN__ELTW_MIN,
    KILN__ELTW_OP_COUNT
} kiln__eltw_op;

typedef struct kiln__eltw_unary {
    kiln__eltw_op op;
    float alpha, beta; /* LEAKY_RELU alpha; HARD_SIGMOID, AFFINE alpha, beta;
                          CLIP bounds alpha (min), beta (max) */
} kiln__eltw_unary;

/* One output row of a 2-D pool over a plane, stride/pad/kernel along W;
 * dilation 1. */
typedef struct kiln__pool_row {
    const float *x;        /* the (H, W) input plane */
    int64_t W;
    int64_t h0, h1;        /* input rows of the windows, inside the plane, h0 < h1 */
    int64_t k, s, pad;     /* kernel width, stride, begin pad along W */
    int64_t OW;            /* outputs in the row */
    int64_t ow0, ow1;      /* [ow0, ow1): outputs whose windows lie inside [0, W) */
    int max;               /* 1: max; 0: sum (the caller divides) */
    float *y;              /* OW outputs */
} kiln__pool_row;

typedef struct kiln__eltw_kernels {
    const char *name; /* "generic", "avx512" */
    /* y[i] = f(x[i]) for i < n; y may be x. */
    void (*unary)(const kiln__eltw_unary *u, const float *x, float *y, int64_t n);
    /* y[i] = a[i * as] op b[i * bs] for i < n; as, bs: 1 (a row) or 0 (element
     * 0 broadcast). y may be a or b when that operand has stride 1. */
    void (*binary)(kiln__eltw_op op, const float *a, int as, const float *b, int bs, float *y,
                   int64_t n);
    /* Softmax (log_softmax: its log) of x[0..n), n >= 1, max subtracted;
     * y may be x. */
    void (*softmax)(const float *x, float *y, int64_t n, int log_softmax);
    /* Sum of x[0..n), and max with the reference's rule (start from x[0],
     * take v when v > max, so NaN counts only as the first value); n >= 1. */
    float (*sum)(const float *x, int64_t n);
    float (*max)(const float *x, int64_t n);
    /* y = (x - mean) * inv * scale + bias over n >= 1 values, inv =
     * 1 / sqrt(var + eps); center 0 (RMS): mean = 0, var = mean of x^2.
     * bias may be NULL. *mean and *inv get the statistics. y may be x. */
    void (*norm)(const float *x, float *y, int64_t n, const float *scale, const float *bias,
                 float eps, int center, float *mean, float *inv);
    /* One output row of a 2-D max or sum pool (see kiln__pool_row). */
    void (*pool_row)(const kiln__pool_row *p);
    /* z[i] = c[i] ? x[i * xs] : y[i * ys] for i < n; xs, ys: 1 (a row) or 0
     * (element 0 broadcast). c: bool bytes, nonzero is true. */
    void (*select)(const uint8_t *c, const float *x, int xs, const float *y, int ys, float *z,
                   int64_t n);
    /* The gradient of one row of ow 2x2 max-pool windows that tile their
     * input (stride 2, no padding): input rows x0, x1 and gradient rows d0,
     * d1 (2 ow values each), dY row g (ow). Each window's first maximum in
     * the order x0[2o], x0[2o+1], x1[2o], x1[2o+1] (a later tap wins only if
     * greater, so NaN never does) gets g[o] (with relu, only if that maximum
     * is > 0), its other taps 0. */
    void (*max_pool_grad_2x2)(const float *x0, const float *x1, const float *g, float *d0,
                              float *d1, int64_t ow, int relu);
    /* LRN over n elements: y[i] = x[i] * (bias + scale * q)^-beta with
     * q = sum over j < nwin of win[j*stride + i]^2 (the window's channel
     * planes at the same positions). */
    void (*lrn)(const float *x, const float *win, int64_t stride, int nwin, float *y, int64_t n,
                float bias, float scale, float beta);
} kiln__eltw_kernels;

extern const kiln__eltw_kernels kiln__eltw_generic;
#if defined(__x86_64__) || defined(__i386__)
extern const kiln__eltw_kernels kiln__eltw_avx2;
extern const kiln__eltw_kernels kiln__eltw_avx512;
#endif

/* The table prepare takes: kiln__eltw_forced when set (tests run every
 * algorithm on each table through it), else the best this CPU runs
 * (AVX-512F when present, else AVX2 with FMA, else generic). */
const kiln__eltw_kernels *kiln__eltw_best(void);
extern const kiln__eltw_kernels *kiln__eltw_forced;

/* First member of every kstate of these algorithms. */
typedef struct kiln__eltw_state {
    const kiln__eltw_kernels *k;
} kiln__eltw_state;

/* kstate of `bytes` (>= sizeof(kiln__eltw_state)) zeroed bytes with the best
 * table set, into c->kstate; KILN_E_NOMEM on failure. Freed with free(). */
kiln_status kiln__eltw_state_new(kiln__kctx *c, size_t bytes);

/* Elements per unit of thread work: a thread gets whole units, so small
 * tensors run on one thread instead of paying for the wake-ups. */
#define KILN__ELTW_GRAIN 8192

/* Thread ith's share [*lo, *hi) of n items, split in units of grain items. */
static inline void kiln__eltw_share(int64_t n, int64_t grain, int ith, int nth, int64_t *lo,
                                    int64_t *hi) {
    if (grain < 1) grain = 1;
    int64_t ulo, uhi;
    kiln__split((n + grain - 1) / grain, ith, nth, &ulo, &uhi);
    *lo = ulo * grain < n ? ulo * grain : n;
    *hi = uhi * grain < n ? uhi * grain : n;
}

/* 1 if t is present and float32. */
static inline int kiln__eltw_f32(const kiln_tensor *t) {
    return t && t->dtype == KILN_DTYPE_F32;
}

/* cost() of a pass that does `flops` per element over n elements and moves
 * `bytes`: vector tables count at a quarter of the FMA peak, generic at 1/32. */
double kiln__eltw_cost(const kiln__kctx *c, double flops, double bytes);

/* Outputs [o0, o1) of a pool row, one at a time (the edges of the vector
 * kernels and the whole generic row). */
static inline void kiln__pool_row_span(const kiln__pool_row *p, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
        int64_t ws = o * p->s - p->pad, wlo = ws < 0 ? 0 : ws, whi = ws + p->k;
        if (whi > p->W) whi = p->W;
        if (wlo >= whi) {
            p->y[o] = p->max ? -INFINITY : 0.0f;
            continue;
        }
        const float *r = p->x + p->h0 * p->W;
        float acc = p->max ? r[wlo] : 0.0f;
        for (int64_t h = p->h0; h < p->h1; h++, r += p->W)
            for (int64_t w = wlo; w < whi; w++) {
                float v = r[w];
                if (p->max)
                    acc = v > acc ? v : acc;
                else
                    acc += v;
            }
        p->y[o] = acc;
    }
}

#endif
