/* src/cpu/kernels/x86/act_avx512.h: the fused ops' activations (ops/fused.h)
 * on 16 f32 lanes, for the AVX-512 convolution kernels (depthwise, NCHWc).
 * Include from a file whose functions carry KILN__VM_AVX512. */
#ifndef KILN_CPU_KERNELS_X86_ACT_AVX512_H
#define KILN_CPU_KERNELS_X86_ACT_AVX512_H

#include <immintrin.h>

#include "cpu/kernels/vmath.h"
#include "ops/fused.h"

/* act(v), with the reference's NaN behaviour (x86 max/min return the second
 * operand when either is NaN). */
static inline __attribute__((always_inline)) KILN__VM_AVX512 __m512 kiln__act16(__m512 v,
                                                                               const kiln__act *a) {
    switch (a->kind) {
    case KILN__ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), v);
    case KILN__ACT_CLIP: { /* x < lo ? lo : min(hi, x); NaN stays */
        const __m512 lo = _mm512_set1_ps(a->lo);
        __m512 t = _mm512_min_ps(_mm512_set1_ps(a->hi), v);
        return _mm512_mask_mov_ps(t, _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), lo);
    }
    case KILN__ACT_GELU: return kiln__vm_gelu_erf16(v);
    case KILN__ACT_GELU_TANH: return kiln__vm_gelu_tanh16(v);
    case KILN__ACT_SILU:
        return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f),
                                              kiln__vm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    default: return v;
    }
}

#endif
