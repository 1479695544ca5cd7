/* src/cpu/kernels/x86/gemm_f32_avx512.c: the AVX-512F f32 GEMM tile, 14x32
 * (28 zmm accumulators, 2 B vectors, 1 broadcast), from gemm_f32_simd.h.
 * Compiled for AVX-512 through target attributes only: the build needs no
 * flags and the driver calls it only when the CPU has AVX-512F. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/gemm_f32_impl.h"

#define GS_ATTR __attribute__((target("avx512f,avx2,fma")))
#define GS_FN(x) x##_avx512
#define GS_MR 14
#define GS_NV 2
#define GS_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)

#include "cpu/kernels/x86/gemm_avx512_ops.h"
#include "cpu/kernels/x86/gemm_f32_simd.h"
#include "cpu/kernels/x86/transpose16_avx512.h"

/* ---- packing ------------------------------------------------------------------
 * The f32 panel layouts of kiln__sgemm_tile_fn with whole vectors: where the
 * source runs along K (A (M,K), B (N,K)) through 16x16 register transposes
 * (16 rows of 16 K values -> 16 K rows), elsewhere as masked row copies. */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* kiln__gemm_pack_a_fn: MR-row panels, panel ip at dst + ip*kc. */
static GS_ATTR void pack_a_avx512(const kiln__sgemm_kernel *kr, const kiln__gemm_args *g,
                                  int64_t i0, int64_t mc, int64_t p0, int64_t kc, void *dstv) {
    const __mmask16 mrow = (__mmask16)((1u << GS_MR) - 1u);
    float *restrict dst = dstv;
    (void)kr;
    for (int64_t ip = 0; ip < mc; ip += GS_MR) {
        const int mr = (int)min64(GS_MR, mc - ip);
        float *panel = dst + ip * kc;
        if (!g->trans_a) { /* A (M,K): 16 K values of each row, transposed */
            const float *src = g->a + (i0 + ip) * g->lda + p0;
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                const int kn = (int)min64(16, kc - k0);
                const __mmask16 mk = gs_mask_first(kn);
                __m512 r[16];
#pragma GCC unroll 16
                for (int i = 0; i < 16; i++)
                    r[i] = i < mr ? _mm512_maskz_loadu_ps(mk, src + i * g->lda + k0)
                                  : _mm512_setzero_ps();
                kiln__transpose16_avx512(r);
#pragma GCC unroll 16
                for (int kk = 0; kk < kn; kk++)
                    _mm512_mask_storeu_ps(panel + (k0 + kk) * GS_MR, mrow, r[kk]);
            }
        } else { /* A (K,M): op(A)[i][k] = a[k*lda + i], MR contiguous values per K */
            const __mmask16 mload = gs_mask_first(mr);
            const float *src = g->a + p0 * g->lda + i0 + ip;
            for (int64_t k = 0; k < kc; k++)
                _mm512_mask_storeu_ps(panel + k * GS_MR, mrow,
                                      _mm512_maskz_loadu_ps(mload, src + k * g->lda));
        }
    }
}

/* kiln__gemm_pack_b_fn: NR-wide panels (element (k,j) at k*NR + j, columns
 * past nr zero), panel jp at dst + jp*kc. B (K,N): NR values per K row, a
 * few rows at a time across the panels; B (N,K): 16x16 transposes. */
#define PB_NR (GS_W * GS_NV)
static GS_ATTR void pack_b_avx512(const kiln__sgemm_kernel *kr, int trans_b, const float *b,
                                  int64_t ldb, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                                  void *dstv) {
    float *restrict dst = dstv;
    (void)kr;
    if (!trans_b) {
        for (int64_t k0 = 0; k0 < kc; k0 += 8) { /* 8 rows at a time: few streams each way */
            const int64_t k1 = min64(kc, k0 + 8);
            for (int64_t jp = 0; jp < nc; jp += PB_NR) {
                const int nr = (int)min64(PB_NR, nc - jp);
                const __mmask16 m0 = gs_mask_first(nr), m1 = nr > 16 ? gs_mask_first(nr - 16) : 0;
                float *panel = dst + jp * kc;
                for (int64_t k = k0; k < k1; k++) {
                    const float *src = b + (p0 + k) * ldb + j0 + jp;
                    _mm512_storeu_ps(panel + k * PB_NR, _mm512_maskz_loadu_ps(m0, src));
                    _mm512_storeu_ps(panel + k * PB_NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
                }
            }
        }
        return;
    }
    for (int64_t jp = 0; jp < nc; jp += PB_NR) { /* B (N,K): op(B)[k][j] = b[j*ldb + k] */
        float *panel = dst + jp * kc;
        for (int h = 0; h < PB_NR; h += 16) {
            const int rows = (int)(nc - jp - h < 0 ? 0 : min64(16, nc - jp - h));
            const float *src = b + (j0 + jp + h) * ldb + p0;
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                const int kn = (int)min64(16, kc - k0);
                const __mmask16 mk = gs_mask_first(kn);
                __m512 r[16];
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++)
                    r[j] = j < rows ? _mm512_maskz_loadu_ps(mk, src + j * ldb + k0)
                                    : _mm512_setzero_ps();
                kiln__transpose16_avx512(r);
#pragma GCC unroll 16
                for (int kk = 0; kk < kn; kk++)
                    _mm512_storeu_ps(panel + (k0 + kk) * PB_NR + h, r[kk]);
            }
        }
    }
}

#undef PB_NR

const kiln__sgemm_kernel kiln__sgemm_kernel_avx512 = {
    .isa = KILN__GEMM_ISA_AVX512,
    .compute = KILN__GEMM_F32,
    .mr = GS_MR,
    .nr = GS_W * GS_NV,
    /* measured on Zen 4 (32 KB L1d, 1 MB L2): the 21 KB A panel stays in L1;
     * the 1.2 MB B block outgrows L2, but 14 rows per B vector need only
     * ~5 bytes a cycle of it, which L3 delivers, and fewer K blocks mean fewer
     * passes over C (+5-10% over KC 256, NC 512 at 1024-3072, 2 threads) */
    .kc = 384,
    .nc = 768,
    .mc = 14 * 72,
    .kgroup = 1,
    .esize = 4,
    .tile = tile_avx512,
    .strip = strip_avx512,
    .pack_a = pack_a_avx512,
    .pack_b = pack_b_avx512,
};

#endif
