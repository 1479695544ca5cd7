/* src/cpu/kernels/x86/gemm_f32_avx2.c: the AVX2+FMA f32 GEMM tile, 6x16
 * (12 ymm accumulators, 2 B vectors, 1 broadcast), from gemm_f32_simd.h, and
 * its packing. Compiled for AVX2 through target attributes only. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/gemm_f32_impl.h"

#define GS_ATTR __attribute__((target("avx2,fma")))
#define GS_FN(x) x##_avx2
#define GS_W 8
#define GS_MR 6
#define GS_NV 2
#define GS_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6)

typedef __m256 gs_v;
typedef __m256i gs_mask;
#define gs_zero() _mm256_setzero_ps()
#define gs_set1(x) _mm256_set1_ps(x)
#define gs_loadu(p) _mm256_loadu_ps(p)
#define gs_storeu(p, v) _mm256_storeu_ps(p, v)
#define gs_add(a, b) _mm256_add_ps(a, b)
#define gs_sub(a, b) _mm256_sub_ps(a, b)
#define gs_mul(a, b) _mm256_mul_ps(a, b)
#define gs_div(a, b) _mm256_div_ps(a, b)
#define gs_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define gs_abs(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define gs_max(a, b) _mm256_max_ps(a, b)
#define gs_min(a, b) _mm256_min_ps(a, b)
#define gs_round(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* p * 2^n: n + 127 into the exponent field (n in [-126, 127]). */
#define gs_scale2(p, n)                                                               \
    _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(                           \
                         _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23)))
#define gs_select_neg(x, if_neg, if_pos) \
    _mm256_blendv_ps(if_pos, if_neg, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ))
#define gs_mask_first(n) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define gs_maskload(p, m) _mm256_maskload_ps(p, m)
#define gs_maskstore(p, m, v) _mm256_maskstore_ps(p, m, v)

#include "cpu/kernels/x86/gemm_f32_simd.h"

#include "cpu/kernels/x86/transpose8_avx2.h"

/* ---- packing ------------------------------------------------------------------
 * The f32 panel layouts of kiln__sgemm_tile_fn. Where the source runs along K
 * (A (M,K), B (N,K)), 8 rows of 8 K values go through an 8x8 register
 * transpose instead of being gathered one value at a time; K values past the
 * last whole 8 go one by one. */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* kiln__gemm_pack_a_fn: MR-row panels, panel ip at dst + ip*kc, element (i,k)
 * at k*MR + i, rows past mr zero. */
static GS_ATTR void pack_a_avx2(const kiln__sgemm_kernel *kr, const kiln__gemm_args *g, int64_t i0,
                                int64_t mc, int64_t p0, int64_t kc, void *dstv) {
    float *restrict dst = dstv;
    (void)kr;
    for (int64_t ip = 0; ip < mc; ip += GS_MR) {
        const int mr = (int)min64(GS_MR, mc - ip);
        float *panel = dst + ip * kc;
        int64_t k = 0;
        if (!g->trans_a) { /* A (M,K): 8 K values of each row, transposed */
            const float *src = g->a + (i0 + ip) * g->lda + p0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++)
                    r[i] = i < mr ? _mm256_loadu_ps(src + i * g->lda + k) : _mm256_setzero_ps();
                kiln__transpose8_avx2(r);
#pragma GCC unroll 8
                for (int kk = 0; kk < 8; kk++) { /* the first MR = 6 of the 8 */
                    float *to = panel + (k + kk) * GS_MR;
                    _mm_storeu_ps(to, _mm256_castps256_ps128(r[kk]));
                    _mm_storel_pi((__m64 *)(to + 4), _mm256_extractf128_ps(r[kk], 1));
                }
            }
            for (; k < kc; k++)
                for (int i = 0; i < GS_MR; i++) panel[k * GS_MR + i] = i < mr ? src[i * g->lda + k] : 0.0f;
        } else { /* A (K,M): op(A)[i][k] = a[k*lda + i], MR contiguous values per K */
            const float *src = g->a + p0 * g->lda + i0 + ip;
            for (; k < kc; k++)
                for (int i = 0; i < GS_MR; i++) panel[k * GS_MR + i] = i < mr ? src[k * g->lda + i] : 0.0f;
        }
    }
}

/* kiln__gemm_pack_b_fn: NR-wide panels, panel jp at dst + jp*kc, element
 * (k,j) at k*NR + j, columns past nr zero. B (K,N): NR values per K row, 8
 * rows at a time across the panels; B (N,K): each half panel of 8 columns
 * through 8x8 transposes. */
#define PB_NR (GS_W * GS_NV)
static GS_ATTR void pack_b_avx2(const kiln__sgemm_kernel *kr, int trans_b, const float *b, int64_t ldb,
                                int64_t p0, int64_t kc, int64_t j0, int64_t nc, void *dstv) {
    float *restrict dst = dstv;
    (void)kr;
    if (!trans_b) {
        for (int64_t k0 = 0; k0 < kc; k0 += 8) { /* 8 rows at a time: few streams each way */
            const int64_t k1 = min64(kc, k0 + 8);
            for (int64_t jp = 0; jp < nc; jp += PB_NR) {
                const int nr = (int)min64(PB_NR, nc - jp);
                float *panel = dst + jp * kc;
                for (int64_t k = k0; k < k1; k++) {
                    const float *src = b + (p0 + k) * ldb + j0 + jp;
                    float *to = panel + k * PB_NR;
                    if (nr == PB_NR) {
                        _mm256_storeu_ps(to, _mm256_loadu_ps(src));
                        _mm256_storeu_ps(to + 8, _mm256_loadu_ps(src + 8));
                    } else {
                        for (int j = 0; j < PB_NR; j++) to[j] = j < nr ? src[j] : 0.0f;
                    }
                }
            }
        }
        return;
    }
    for (int64_t jp = 0; jp < nc; jp += PB_NR) { /* B (N,K): op(B)[k][j] = b[j*ldb + k] */
        float *panel = dst + jp * kc;
        for (int h = 0; h < PB_NR; h += 8) {
            const int rows = (int)(nc - jp - h <= 0 ? 0 : min64(8, nc - jp - h));
            const float *src = b + (j0 + jp + h) * ldb + p0;
            int64_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 r[8];
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++)
                    r[j] = j < rows ? _mm256_loadu_ps(src + j * ldb + k) : _mm256_setzero_ps();
                kiln__transpose8_avx2(r);
#pragma GCC unroll 8
                for (int kk = 0; kk < 8; kk++) _mm256_storeu_ps(panel + (k + kk) * PB_NR + h, r[kk]);
            }
            for (; k < kc; k++)
                for (int j = 0; j < 8; j++) panel[k * PB_NR + h + j] = j < rows ? src[j * ldb + k] : 0.0f;
        }
    }
}
#undef PB_NR

const kiln__sgemm_kernel kiln__sgemm_kernel_avx2 = {
    .isa = KILN__GEMM_ISA_AVX2,
    .compute = KILN__GEMM_F32,
    .mr = GS_MR,
    .nr = GS_W * GS_NV,
    .kc = 256,
    .nc = 512,
    .mc = 6 * 168,
    .kgroup = 1,
    .esize = 4,
    .tile = tile_avx2,
    .strip = strip_avx2,
    .pack_a = pack_a_avx2,
    .pack_b = pack_b_avx2,
};

#endif
