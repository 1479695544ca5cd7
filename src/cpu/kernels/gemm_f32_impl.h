/* src/cpu/kernels/gemm_f32_impl.h: what the f32 GEMM driver (gemm_f32.c)
 * shares with its per-ISA tile kernels (gemm_f32_generic.c, x86/). Internal
 * to src/cpu/kernels. */
#ifndef KILN_CPU_KERNELS_GEMM_F32_IMPL_H
#define KILN_CPU_KERNELS_GEMM_F32_IMPL_H

#include <math.h>

#include "cpu/kernels/gemm.h"

/* The epilogue of one tile, already offset to the tile. */
typedef struct kiln__gemm_tile_ep {
    float alpha, beta;       /* C = alpha * acc + beta * C; beta == 0: C not read */
    int last;                /* last K block: also bias, residual, activation */
    const float *bias_col;   /* [nr] or NULL */
    const float *bias_row;   /* [mr] or NULL */
    const float *res;        /* (mr, nr) with leading dimension ldr, or NULL */
    int64_t ldr;
    kiln__gemm_act act;
    float lo, hi;            /* CLIP bounds */
} kiln__gemm_tile_ep;

/* One register tile: C (mr,nr) (leading dimension ldc) gets the product of
 * packed A panel pa (kc, MR: pa[k*MR + i], rows >= mr unused) and packed B
 * panel pb (kc, NR: pb[k*NR + j], columns >= nr zero), then the epilogue.
 * 1 <= mr <= MR, 1 <= nr <= NR, kc >= 0. */
typedef void (*kiln__sgemm_tile_fn)(int mr, int nr, int64_t kc, const float *pa, const float *pb,
                                    float *c, int64_t ldc, const kiln__gemm_tile_ep *ep);

/* A tile kernel and the blocking that fits it. */
typedef struct kiln__sgemm_kernel {
    kiln__gemm_isa isa;
    int mr, nr;     /* register tile */
    int kc;         /* K block: MR x KC A panel in L1 */
    int nc;         /* N block (multiple of NR): KC x NC B block in L2 */
    int mc;         /* M rows packed at once (multiple of MR) */
    kiln__sgemm_tile_fn tile;
} kiln__sgemm_kernel;

extern const kiln__sgemm_kernel kiln__sgemm_kernel_generic;
#if defined(__x86_64__) || defined(__i386__)
#define KILN__GEMM_X86 1
extern const kiln__sgemm_kernel kiln__sgemm_kernel_avx2;
extern const kiln__sgemm_kernel kiln__sgemm_kernel_avx512;
#endif

/* Scalar activation (libm), for the generic path. NaN propagates. */
static inline float kiln__gemm_act_f32(float x, const kiln__gemm_tile_ep *ep) {
    switch (ep->act) {
    case KILN__GEMM_ACT_RELU: return x < 0.0f ? 0.0f : x;
    case KILN__GEMM_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case KILN__GEMM_ACT_GELU_TANH:
        return 0.5f * x *
               (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case KILN__GEMM_ACT_SILU: return x / (1.0f + expf(-x));
    case KILN__GEMM_ACT_CLIP: return x < ep->lo ? ep->lo : (x > ep->hi ? ep->hi : x);
    default: return x;
    }
}

#endif
