/* src/cpu/kernels/conv_nchwc.h: the AVX-512 kernels of kiln.ConvNCHWc and
 * the reorders (src/ops/nchwc.h), called by conv_nchwc.c and
 * reorder_nchwc.c. Internal to src/cpu/kernels.
 *
 * Convolution (group 1): a tile is up to 14 consecutive output pixels of one
 * row times one or two output blocks (16 or 32 channels): 28 accumulators;
 * per input channel and tap, one broadcast of each pixel's input value
 * against the one or two weight vectors. The weights of a block pair are
 * packed once (conv_nchwc.c) as [cb][r][s][ci][32] (lanes 16..31 the second
 * block; zeros past K and C). Depthwise: tiles of up to 8 output pixels of
 * one block, one vector FMA per tap; weights [kb][r][s][16].
 *
 * Columns q in [qlo, qhi) read inside the input for every tap (interior
 * tiles); the others run one pixel at a time, skipping taps in the padding
 * as the reference does. Padding lanes of the output (channels >= K) are
 * stored as 0.
 */
#ifndef KILN_CPU_KERNELS_CONV_NCHWC_H
#define KILN_CPU_KERNELS_CONV_NCHWC_H

#include <stdint.h>

#include "ops/nchwc.h"

typedef struct kiln__nchwc_kern {
    kiln__nchwc_conv g; /* a 1x1 stride-1 unpadded conv is flattened: H = P = 1, W = Q = HW */
    int64_t qlo, qhi;   /* interior output columns */
    /* element (c = cb*16 + ci, ih, iw) of one image of X is at
     * cb*xcb + ci*xlane + ih*xrow + iw*xpix */
    int64_t xcb, xlane, xrow, xpix;
    int64_t yblock;      /* floats from one output block of an image to the next: P*Q*16
                          * (conv_dw_nchwc's band buffers set their own, as it does xcb) */
    uint16_t last_lanes; /* lanes of block KB-1 that hold channels < K */
} kiln__nchwc_kern;

/* Fills k's strides, interior columns and lanes from k->g (as
 * kiln__nchwc_conv_read left it), first flattening a 1x1 stride-1 unpadded
 * convolution into one row of H*W pixels when `flatten` (long tiles for
 * small images too). */
void kiln__nchwc_kern_init(kiln__nchwc_kern *k, int flatten);

/* The packed weights of a ConvNCHWc: *units units (block pairs; depthwise:
 * blocks) of *unit_w 32-bit words each (floats; bf16: channel pairs). */
void kiln__nchwc_packing(const kiln__nchwc_conv *g, int bf16, int64_t *units, int64_t *unit_w);
/* Packs W (K, C/group, R, S) into wpack (units * unit_w words, zeroed by the
 * caller): group 1 and grouped, per pair of output blocks, [cb][r][s][ci][32]
 * (bf16: [cb][r][s][ci/2][32] channel pairs, the even channel in the low
 * half); depthwise [kb][r][s][16]. B (K, or NULL: zeros) into bias (KB*16,
 * zeros past K). */
void kiln__nchwc_pack(const kiln__nchwc_conv *g, int bf16, const float *w, const float *b,
                      void *wpack, float *bias);

/* These need AVX-512F (kiln__cpu_has_avx512f; the only ISA they exist for,
 * and the graph pass makes no ConvNCHWc nodes elsewhere). */
#if defined(__x86_64__) || defined(__i386__)
#define KILN__NCHWC_X86 1
/* Output blocks kb0 .. kb0+nb-1 (nb 1 or 2), row p, columns [q0, q1) of one
 * image, summing over input blocks [cb0, cb1) (all, but for grouped
 * convolutions): x, z, y point at the image (z NULL: no residual), w at the
 * pair's packed weights (or at lane 16 of them for the second block alone,
 * nb 1), bias at the 16*nb biases of the blocks (zeros if none). */
void kiln__nchwc_conv_row_avx512(const kiln__nchwc_kern *k, const float *x, const float *w,
                                 const float *bias, const float *z, float *y, int64_t kb0, int nb,
                                 int64_t cb0, int64_t cb1, int64_t p, int64_t q0, int64_t q1);
/* Depthwise: block kb, row p, columns [q0, q1); x, z, y at the block's
 * planes (of k->xcb and k->yblock floats), w at its weights. */
void kiln__nchwc_dw_row_avx512(const kiln__nchwc_kern *k, const float *x, const float *w,
                               const float *bias, const float *z, float *y, int64_t kb, int64_t p,
                               int64_t q0, int64_t q1);

#if defined(__clang__) ? (__clang_major__ >= 9) : (defined(__GNUC__) && __GNUC__ >= 10)
#define KILN__NCHWC_X86_BF16 1
/* The same in bf16 products (AVX512_BF16; blocked input only): w at the
 * pair's packed weights, [cb][r][s][pair][32] of 32-bit bf16 pairs (input
 * channels 2*pair, 2*pair + 1 of the block; zeros past K and C). */
void kiln__nchwc_conv_row_bf16_avx512(const kiln__nchwc_kern *k, const float *x,
                                      const uint32_t *w, const float *bias, const float *z,
                                      float *y, int64_t kb0, int nb, int64_t p, int64_t q0,
                                      int64_t q1);
#endif

/* PoolNCHWc: output row p of one block: x at the block's (H, W, 16) plane,
 * y at the row's (Q, 16) outputs; lanes: the block's real channels (the
 * others are stored as 0). */
void kiln__nchwc_pool_row_avx512(const kiln__nchwc_pool *g, const float *x, float *y,
                                 int64_t p, uint16_t lanes);

/* Reorders of f32 planes: (C, HW) channel block cb <-> (HW, 16); to_blocked
 * says which way. x and y point at the image. */
void kiln__nchwc_reorder_avx512(const float *x, float *y, int64_t C, int64_t HW, int64_t cb,
                                int to_blocked);

#endif

#endif
