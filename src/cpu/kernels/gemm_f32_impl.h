/* src/cpu/kernels/gemm_f32_impl.h: what the GEMM driver of the f32 API
 * (gemm_f32.c) shares with its per-ISA tile kernels (gemm_f32_generic.c,
 * x86/gemm_f32_avx2.c, x86/gemm_f32_avx512.c, x86/gemm_bf16_avx512.c) and
 * with the u8s8 GEMM (gemm_u8s8.c). Internal to src/cpu/kernels. */
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
 * packed A panel pa and packed B panel pb over kc values of K, then the
 * epilogue. 1 <= mr <= MR, 1 <= nr <= NR, kc >= 0.
 * Packed panels hold K in groups of G = kernel.kgroup consecutive values
 * (kcp = kc rounded up to G; the padding K values are zero):
 *   pa: element (i,k) at ((k/G)*MR + i)*G + k%G   (rows >= mr: zero)
 *   pb: element (k,j) at ((k/G)*NR + j)*G + k%G   (columns >= nr: zero)
 * G = 1 (f32: pa[k*MR + i]) or 2 (bf16 pairs, as vdpbf16ps reads them). */
typedef void (*kiln__sgemm_tile_fn)(int mr, int nr, int64_t kc, const void *pa, const void *pb,
                                    float *c, int64_t ldc, const kiln__gemm_tile_ep *ep);

/* The tiles of one packed A panel (mr rows) across columns [0, nc) of a
 * packed B block (NR-wide panels of kcp K values each): C at c, ep's
 * bias_col and res given for column 0 (each tile's are offset from them). */
typedef void (*kiln__sgemm_strip_fn)(int mr, int64_t nc, int64_t kc, int64_t kcp, const void *pa,
                                     const void *pb, float *c, int64_t ldc,
                                     const kiln__gemm_tile_ep *ep);

struct kiln__sgemm_kernel;
/* Packs op(A) rows [i0, i0+mc), K [p0, p0+kc) into MR-row panels at dst
 * (panel ip at element ip*kcp), zero-padding K and the last panel's rows. */
typedef void (*kiln__gemm_pack_a_fn)(const struct kiln__sgemm_kernel *kr,
                                     const kiln__gemm_args *g, int64_t i0, int64_t mc, int64_t p0,
                                     int64_t kc, void *dst);
/* Packs op(B) rows [p0, p0+kc), columns [j0, j0+nc) into NR-wide panels at
 * dst (panel jp at element jp*kcp), zero-padding K and the last panel's
 * columns. */
typedef void (*kiln__gemm_pack_b_fn)(const struct kiln__sgemm_kernel *kr, int trans_b,
                                     const float *b, int64_t ldb, int64_t p0, int64_t kc,
                                     int64_t j0, int64_t nc, void *dst);

/* A tile kernel, its packing and the blocking that fits it. */
typedef struct kiln__sgemm_kernel {
    kiln__gemm_isa isa;
    kiln__gemm_compute compute;
    int mr, nr;     /* register tile */
    int kc;         /* K block (multiple of kgroup): MR x KC A panel in L1 */
    int nc;         /* N block (multiple of NR): KC x NC B block in L2 */
    int mc;         /* M rows packed at once (multiple of MR) */
    int kgroup;     /* K values per packed group (see kiln__sgemm_tile_fn) */
    int esize;      /* bytes per packed element */
    kiln__sgemm_tile_fn tile;
    kiln__sgemm_strip_fn strip;  /* NULL: the driver calls tile per tile */
    kiln__gemm_pack_a_fn pack_a; /* NULL: the driver's f32 packing */
    kiln__gemm_pack_b_fn pack_b; /* NULL: the driver's f32 packing */
} kiln__sgemm_kernel;

extern const kiln__sgemm_kernel kiln__sgemm_kernel_generic;
#if defined(__x86_64__) || defined(__i386__)
#define KILN__GEMM_X86 1
extern const kiln__sgemm_kernel kiln__sgemm_kernel_avx2;
extern const kiln__sgemm_kernel kiln__sgemm_kernel_avx512;
/* compilers with the AVX512_BF16 and AVX512_VNNI intrinsics */
#if defined(__clang__) ? (__clang_major__ >= 9) : (defined(__GNUC__) && __GNUC__ >= 10)
#define KILN__GEMM_X86_BF16 1
#define KILN__GEMM_X86_VNNI 1
extern const kiln__sgemm_kernel kiln__sgemm_kernel_avx512_bf16;
#endif
#endif

/* Thread grid tm x tn (tm*tn <= nth) over the mr x nr tiles of an (m,n)
 * output: as many threads as there are tiles, then the squarest blocks
 * (least packing). */
void kiln__gemm_thread_grid(int64_t m, int64_t n, int mr, int nr, int nth, int *tm, int *tn);

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
