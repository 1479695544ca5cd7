/* src/cpu/kernels/conv_depthwise.h: the row kernels of the depthwise
 * convolution algorithm (conv_depthwise.c), portable C here and AVX-512 in
 * x86/conv_depthwise_avx512.c. Internal to src/cpu/kernels.
 *
 * One call computes one output row of one channel plane:
 *   y[q] = bias + sum over taps (r, s) inside X of
 *          w[r*S + s] * rows[r][q*sw + s*dw - pw],   q in [0, Q)
 * rows[r] is input row p*sh - ph + r*dh of the channel, NULL when that row
 * lies in the padding (its taps are skipped, as the reference skips them:
 * NaN/Inf in weights meet only real inputs). Taps are summed in (r, s)
 * order in f32.
 */
#ifndef KILN_CPU_KERNELS_CONV_DEPTHWISE_H
#define KILN_CPU_KERNELS_CONV_DEPTHWISE_H

#include <stdint.h>

/* Column geometry of a plane, fixed at plan time. */
typedef struct kiln__dw_geom {
    int64_t W, Q;       /* input / output row length */
    int64_t R, S;       /* kernel */
    int64_t sw, dw, pw; /* column stride, dilation, begin pad */
    int64_t qi0, qi1;   /* outputs [qi0, qi1) have every column tap inside the row
                           (qi0 >= qi1: none) */
    const int64_t *qlo, *qhi; /* [S]: tap s is inside for q in [qlo[s], qhi[s]) */
} kiln__dw_geom;

typedef void (*kiln__dw_row_fn)(const kiln__dw_geom *d, const float *const *rows,
                                const float *w, float bias, float *y);

void kiln__dw_row_generic(const kiln__dw_geom *d, const float *const *rows, const float *w,
                          float bias, float *y);
#if defined(__x86_64__) || defined(__i386__)
#define KILN__DW_X86 1
/* Needs AVX-512F (kiln__dw_row_best checks the CPU). */
void kiln__dw_row_avx512(const kiln__dw_geom *d, const float *const *rows, const float *w,
                         float bias, float *y);
#endif

/* The fastest row kernel this CPU runs. */
kiln__dw_row_fn kiln__dw_row_best(void);

/* Scalar value of output q of a row with per-tap bounds checks (the edges
 * of every row kernel). */
static inline float kiln__dw_point(const kiln__dw_geom *d, const float *const *rows,
                                   const float *w, float bias, int64_t q) {
    float acc = bias;
    for (int64_t r = 0; r < d->R; r++) {
        if (!rows[r]) continue;
        for (int64_t s = 0; s < d->S; s++)
            if (q >= d->qlo[s] && q < d->qhi[s])
                acc += w[r * d->S + s] * rows[r][q * d->sw + s * d->dw - d->pw];
    }
    return acc;
}

#endif
