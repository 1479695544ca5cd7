/* src/cpu/kernels/x86/gemm_avx512_ops.h: the AVX-512 vector operations that
 * gemm_f32_simd.h is written in (its gs_* list), shared by the f32 and bf16
 * AVX-512 GEMM kernels (gemm_f32_avx512.c, gemm_bf16_avx512.c). Include after
 * <immintrin.h>, from a file that defines GS_ATTR with at least avx512f. */
#ifndef KILN_CPU_KERNELS_X86_GEMM_AVX512_OPS_H
#define KILN_CPU_KERNELS_X86_GEMM_AVX512_OPS_H

#define GS_W 16

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

#endif
