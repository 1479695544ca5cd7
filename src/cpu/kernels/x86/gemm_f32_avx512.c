/* src/cpu/kernels/x86/gemm_f32_avx512.c: the AVX-512F f32 GEMM tile, 14x32
 * (28 zmm accumulators, 2 B vectors, 1 broadcast), from gemm_f32_simd.h.
 * Compiled for AVX-512 through target attributes only: the build needs no
 * flags and the driver calls it only when the CPU has AVX-512F. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/gemm_f32_impl.h"

#define GS_ATTR __attribute__((target("avx512f,avx2,fma")))
#define GS_FN(x) x##_avx512
#define GS_W 16
#define GS_MR 14
#define GS_NV 2
#define GS_ROWS(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14)

typedef __m512 gs_v;
typedef __mmask16 gs_mask;
#define gs_zero() _mm512_setzero_ps()
#define gs_set1(x) _mm512_set1_ps(x)
#define gs_loadu(p) _mm512_loadu_ps(p)
#define gs_storeu(p, v) _mm512_storeu_ps(p, v)
#define gs_add(a, b) _mm512_add_ps(a, b)
#define gs_sub(a, b) _mm512_sub_ps(a, b)
#define gs_mul(a, b) _mm512_mul_ps(a, b)
#define gs_div(a, b) _mm512_div_ps(a, b)
#define gs_fma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define gs_abs(x) _mm512_abs_ps(x)
#define gs_max(a, b) _mm512_max_ps(a, b)
#define gs_min(a, b) _mm512_min_ps(a, b)
#define gs_round(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define gs_scale2(p, n) _mm512_scalef_ps(p, n)
#define gs_select_neg(x, if_neg, if_pos) \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), if_pos, if_neg)
#define gs_mask_first(n) ((gs_mask)((n) >= 16 ? 0xffffu : (1u << (n)) - 1u))
#define gs_maskload(p, m) _mm512_maskz_loadu_ps(m, p)
#define gs_maskstore(p, m, v) _mm512_mask_storeu_ps(p, m, v)

#include "cpu/kernels/x86/gemm_f32_simd.h"

const kiln__sgemm_kernel kiln__sgemm_kernel_avx512 = {
    .isa = KILN__GEMM_ISA_AVX512,
    .mr = GS_MR,
    .nr = GS_W * GS_NV,
    .kc = 256,
    .nc = 512,
    .mc = 14 * 72,
    .tile = tile_avx512,
};

#endif
