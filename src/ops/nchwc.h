/* src/ops/nchwc.h: kiln's blocked-channel layout (NCHWc, c = 16) and the ops
 * that work in it (domain "kiln"; the graph pass src/graph/passes/nchwc.c
 * creates them, the reference kernels are in src/cpu/ref/nchwc.c, the fast
 * ones in src/cpu/kernels/conv_nchwc.c and reorder_nchwc.c).
 *
 * Layout: a (N,C,H,W) f32 tensor is stored as (N, CB, H, W, 16) with
 * CB = ceil(C/16): element (n, c, h, w) at [n][c/16][h][w][c%16]. The 16
 * channels of a pixel are one 64-byte vector, so a convolution broadcasts an
 * input value against 16 output channels at a time and a depthwise one
 * works on 16 channels per vector, with no packing of the activations. The
 * lanes of channels c >= C (the last block when C is not a multiple of 16)
 * are zero.
 *
 *   kiln.ReorderNCHWc(X) -> Y
 *       X: (N,C,H,W), Y: (N,CB,H,W,16); padding lanes 0. Any dtype.
 *   kiln.ReorderNCHW(X) -> Y, attribute `channels` (C, required)
 *       X: (N,CB,H,W,16) with CB = ceil(C/16), Y: (N,C,H,W). Any dtype.
 *   kiln.ConvNCHWc(X, W, B?, Z?) -> Y
 *       Y = act(Conv(X, W, B) + Z) in the blocked layout: X (N,CB,H,W,16),
 *       or (N,C,H,W) when attribute `input_blocked` is 0 (first layers with
 *       few channels read the image as it is); W (K,C/group,R,S) as Conv's;
 *       B (K); Z and Y (N,KB,P,Q,16), KB = ceil(K/16); f32 only. Every Conv
 *       attribute (2-D: auto_pad, dilations, group, kernel_shape, pads,
 *       strides) plus kiln.FusedConv's `activation` / `activation_params`.
 *       group is 1, C with K == C (depthwise), or any count that divides C
 *       and K with a blocked X (grouped). Padding lanes of Y are 0 whatever
 *       the activation; those of X and Z are never read.
 *   kiln.ConvDwNCHWc(X, W1, B1, W2, B2, W3?, B3?, Z?) -> Y
 *       A pointwise convolution, the depthwise one that reads it and
 *       optionally the pointwise projection of that, as one node
 *       (MobileNetV2's inverted residual block): T = act1(Conv(X, W1, B1))
 *       with W1 (K,C,1,1) (stride 1, unpadded), D = act2(Conv(T, W2, B2))
 *       with W2 (K,1,R,S) and group K; then Y = D, or with W3 (K3,K,1,1)
 *       Y = act3(Conv(D, W3, B3) + Z) (stride 1, unpadded; Z, optional, of
 *       Y's shape). X (N,CB,H,W,16), Y (N,KB,P,Q,16) or (N,KB3,P,Q,16). T
 *       and D are never stored whole: the fast kernel makes them a band of
 *       rows at a time, in cache. Attributes: the depthwise convolution's
 *       (auto_pad, dilations, group, kernel_shape, pads, strides); act1 in
 *       `pw_activation` / `pw_activation_params`; the activation of Y in
 *       `activation` / `activation_params` (act2 without W3, act3 with
 *       it); act2 with W3 in `dw_activation` / `dw_activation_params`. B1,
 *       B2 required, B3 with W3 (the pass gives zeros).
 *   kiln.PoolNCHWc(X) -> Y, attributes `kind` (MaxPool, AveragePool,
 *   GlobalMaxPool or GlobalAveragePool, required), `channels` (C, required)
 *   and the pool's own (2-D: auto_pad, ceil_mode, count_include_pad,
 *   dilations, kernel_shape, pads, strides)
 *       The ONNX pool of that kind in the blocked layout: X (N,CB,H,W,16),
 *       Y (N,CB,P,Q,16), f32; no Indices. Padding lanes of Y are 0, those of
 *       X never read.
 */
#ifndef KILN_OPS_NCHWC_H
#define KILN_OPS_NCHWC_H

#include "ops/fused.h"
#include "ops/op.h"

#define KILN__NCHWC_BLOCK 16

/* Geometry of a ConvNCHWc node. Output (p, q) and tap (r, s) read input row
 * p*sh - ph + r*dh, column q*sw - pw + s*dw (zero outside). */
typedef struct kiln__nchwc_conv {
    int64_t N, C, K;    /* batch, input and output channels */
    int64_t CB, KB;     /* channel blocks of X (1 when not blocked) and Y */
    int64_t H, W, P, Q; /* input and output spatial sizes */
    int64_t R, S;       /* kernel */
    int64_t sh, sw, dh, dw, ph, pw;
    int64_t group;      /* output channel k reads input channels [k / (K/group) * (C/group), + C/group) */
    int depthwise;      /* group == C == K */
    int input_blocked;  /* X is (N,CB,H,W,16), else (N,C,H,W) */
    int has_bias, has_z;
    kiln__act act;
} kiln__nchwc_conv;

/* Reads and checks c's ConvNCHWc node against its inputs' shapes (infer,
 * the reference and the fast kernels): fails naming the input or attribute
 * at fault. */
kiln_status kiln__nchwc_conv_read(const kiln__kctx *c, kiln__nchwc_conv *g);
/* The same for a ConvDwNCHWc node: its pointwise, depthwise and projection
 * convolutions (pw reads X; dw reads pw's output, (N, pw.KB, H, W, 16); pj
 * reads dw's; pj->K is 0 without W3). */
kiln_status kiln__nchwc_convdw_read(const kiln__kctx *c, kiln__nchwc_conv *pw,
                                    kiln__nchwc_conv *dw, kiln__nchwc_conv *pj);

/* Geometry of a PoolNCHWc node: output (p, q) and tap (r, s) read input row
 * p*sh - ph + r*dh, column q*sw - pw + s*dw (taps outside are skipped). */
typedef struct kiln__nchwc_pool {
    int max;                /* MaxPool kinds, else average */
    int count_include_pad;  /* average: divide by the taps in the padded input */
    int64_t N, C, CB;       /* batch, channels, blocks */
    int64_t H, W, P, Q;     /* input and output spatial sizes */
    int64_t R, S, sh, sw, dh, dw, ph, pw;
    int64_t hp, wp;         /* padded input extent: H + both pads, W + both pads */
} kiln__nchwc_pool;

/* Reads and checks c's PoolNCHWc node (infer, the reference and the fast
 * kernel), failing naming the input or attribute at fault. */
kiln_status kiln__nchwc_pool_read(const kiln__kctx *c, kiln__nchwc_pool *g);

static inline int64_t kiln__nchwc_blocks(int64_t channels) {
    return (channels + KILN__NCHWC_BLOCK - 1) / KILN__NCHWC_BLOCK;
}

/* Input blocks [*cb0, *cb1) that output block kb of a convolution with
 * group `group` (not depthwise) reads: those of the groups its channels
 * belong to. */
static inline void kiln__nchwc_group_blocks(int64_t K, int64_t C, int64_t group, int64_t kb,
                                            int64_t *cb0, int64_t *cb1) {
    const int64_t Kg = K / group, Cg = C / group, k0 = kb * KILN__NCHWC_BLOCK;
    const int64_t k1 = k0 + KILN__NCHWC_BLOCK < K ? k0 + KILN__NCHWC_BLOCK : K;
    *cb0 = k0 / Kg * Cg / KILN__NCHWC_BLOCK;
    *cb1 = kiln__nchwc_blocks((k1 - 1) / Kg * Cg + Cg);
}

/* Products a grouped convolution computes in the blocked layout (every
 * output block against whole input blocks of its groups) over those it
 * needs: 1 for group 1. */
static inline double kiln__nchwc_group_overhead(int64_t K, int64_t C, int64_t group) {
    double done = 0;
    for (int64_t kb = 0; kb < kiln__nchwc_blocks(K); kb++) {
        int64_t cb0, cb1;
        kiln__nchwc_group_blocks(K, C, group, kb, &cb0, &cb1);
        done += (double)(cb1 - cb0) * KILN__NCHWC_BLOCK * KILN__NCHWC_BLOCK;
    }
    return done / ((double)K * (double)(C / group));
}

#endif
