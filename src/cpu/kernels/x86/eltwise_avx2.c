/* src/cpu/kernels/x86/eltwise_avx2.c: the AVX2 table of the f32 row kernels
 * (eltwise.h), for x86 CPUs without AVX-512: eltwise_generic.c's loops
 * compiled again for AVX2 and FMA with the loop vectorizer's full cost model
 * (-O2's leaves loops of unknown length scalar), so rows run 8 floats wide
 * from the same source; exp, sigmoid and tanh rows on vmath.h's AVX2 forms. Results may differ from the generic table's in the
 * last bit where FMA contracts a product and a sum. Only kiln__eltw_best's
 * CPU check leads here. */
#if defined(__GNUC__) && !defined(__clang__) /* clang (the fuzz build): the portable code as it is */
#pragma GCC target("avx2,fma")
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <immintrin.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/kernels/vmath.h"

/* exp, sigmoid and tanh on vmath.h's AVX2 forms (the compiler cannot
 * vectorize libm's), 8 at a time, the tail masked. */
static KILN__VM_AVX2 __m256 unary8(kiln__eltw_op op, __m256 v) {
    return op == KILN__ELTW_EXP       ? kiln__vm_exp8(v)
           : op == KILN__ELTW_SIGMOID ? kiln__vm_sigmoid8(v)
                                      : kiln__vm_tanh8(v);
}

static KILN__VM_AVX2 int unary_vmath8(const kiln__eltw_unary *u, const float *x, float *y, int64_t n) {
    const kiln__eltw_op op = u->op;
    if (op != KILN__ELTW_EXP && op != KILN__ELTW_SIGMOID && op != KILN__ELTW_TANH) return 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, unary8(op, _mm256_loadu_ps(x + i)));
    if (i < n) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)),
                                             _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(y + i, m, unary8(op, _mm256_maskload_ps(x + i, m)));
    }
    return 1;
}

#define KILN_ELTW_UNARY_VEC unary_vmath8
#define KILN_ELTW_TABLE kiln__eltw_avx2
#define KILN_ELTW_TABLE_NAME "avx2"
#include "cpu/kernels/eltwise_generic.c"
