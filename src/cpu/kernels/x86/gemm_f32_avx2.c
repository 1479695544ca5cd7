/* src/cpu/kernels/x86/gemm_f32_avx2.c: the AVX2+FMA f32 GEMM tile, 6x16
 * (12 ymm accumulators, 2 B vectors, 1 broadcast), from gemm_f32_simd.h.
 * Compiled for AVX2 through target attributes only. */
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
};

#endif
