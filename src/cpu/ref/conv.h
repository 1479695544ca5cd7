/* src/cpu/ref/conv.h: sliding-window geometry shared by the convolution
 * family of reference kernels (Conv, ConvInteger, QLinearConv, DeformConv,
 * ConvTranspose, Col2Im, the pools). Private to src/cpu/ref; implemented in
 * conv.c.
 *
 * A window runs over nsp spatial dims. Along dim i, output position o and
 * kernel tap j read input position  o*stride[i] - pad0[i] + j*dil[i].
 */
#ifndef KILN_CPU_REF_CONV_H
#define KILN_CPU_REF_CONV_H

#include "ops/op.h"

/* Hot float32 loops of the family (conv, conv_transpose, matmul) are also
 * compiled for x86-64-v3 (AVX2 + FMA) and picked at load time; elsewhere
 * they are plain functions. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define KILN__F32_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define KILN__F32_CLONES
#endif

typedef enum {
    KILN__AUTOPAD_NOTSET = 0,
    KILN__AUTOPAD_VALID,
    KILN__AUTOPAD_SAME_UPPER,
    KILN__AUTOPAD_SAME_LOWER,
} kiln__autopad;

typedef struct kiln__win {
    int nsp; /* number of spatial dims */
    kiln__autopad auto_pad;
    int64_t in[KILN_MAX_DIMS];  /* input spatial size */
    int64_t out[KILN_MAX_DIMS]; /* output spatial size (set by kiln__win_forward) */
    int64_t k[KILN_MAX_DIMS];   /* kernel size */
    int64_t stride[KILN_MAX_DIMS], dil[KILN_MAX_DIMS];
    int64_t pad0[KILN_MAX_DIMS], pad1[KILN_MAX_DIMS]; /* begin / end pads */
} kiln__win;

/* Reads the window attributes of node n (auto_pad, kernel_shape, strides,
 * dilations, pads; absent ones get their defaults) for nsp spatial dims of
 * input sizes in[]. wk: kernel size taken from the weight tensor, or NULL
 * when kernel_shape is required; when both exist they must agree. Fails
 * naming the attribute on wrong lengths or out-of-range values. */
kiln_status kiln__win_read(const kiln__node *n, int nsp, const int64_t *in, const int64_t *wk,
                           kiln__win *w);

/* Fails unless X has shape (N, C, D1, ...) (rank >= 3) and W has X's rank
 * (the convolution family's inputs 'X' and 'W'). */
kiln_status kiln__conv_check_ranks(const kiln_tensor *x, const kiln_tensor *w);

/* Fails unless X = in[0] is a float tensor and W = in[1] has its dtype. */
kiln_status kiln__conv_check_float_xw(const kiln__kctx *c);

/* The forward window of a convolution with X = in[xi]: (N, C, D1..Dk) and
 * W = in[wi]: (M, C/group, K1..Kk) (attributes of c's node: the Conv ones),
 * output extents included, and its group. Checks what kiln__infer_Conv checks
 * of X, W and the attributes (ranks, group, window), naming what is wrong. */
kiln_status kiln__conv_window(const kiln__kctx *c, int xi, int wi, kiln__win *w,
                             int64_t *group);

/* Output size (and, for auto_pad SAME_*, the pads) of a forward window
 * (Conv, pools); ceil_mode rounds the output size up, never starting a
 * window inside the end padding. Fails if the dilated kernel does not fit
 * the padded input. */
kiln_status kiln__win_forward(kiln__win *w, int ceil_mode);

/* Extent of the dilated kernel along dim i. */
static inline int64_t kiln__win_extent(const kiln__win *w, int i) {
    return (w->k[i] - 1) * w->dil[i] + 1;
}

/* Range [*lo, *hi) of positions o in [0, count) with 0 <= o*s + b < limit
 * (s >= 1); empty when *lo == *hi. For a forward window, tap j of dim i
 * reads inside the input for the outputs o in
 *   kiln__stride_range(j*dil[i] - pad0[i], stride[i], in[i], out[i], ...). */
static inline void kiln__stride_range(int64_t b, int64_t s, int64_t limit, int64_t count,
                                      int64_t *lo, int64_t *hi) {
    *lo = b >= 0 ? 0 : (-b + s - 1) / s;
    *hi = limit - 1 - b < 0 ? 0 : (limit - 1 - b) / s + 1;
    if (*hi > count) *hi = count;
    if (*lo > *hi) *lo = *hi;
}

/* y[o*ys] += w * x[o*xs] for o in [0, n): the innermost float32 loop of the
 * convolution family (unit strides get their own vectorizable loop). */
static inline void kiln__axpy_f32(float *restrict y, int64_t ys, const float *restrict x,
                                  int64_t xs, float w, int64_t n) {
    if (xs == 1 && ys == 1)
        for (int64_t o = 0; o < n; o++) y[o] += w * x[o];
    else
        for (int64_t o = 0; o < n; o++) y[o * ys] += w * x[o * xs];
}

#endif
