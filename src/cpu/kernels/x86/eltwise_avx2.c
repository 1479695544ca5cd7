/* src/cpu/kernels/x86/eltwise_avx2.c: the AVX2 table of the f32 row kernels
 * (eltwise.h), for x86 CPUs without AVX-512: eltwise_generic.c's loops
 * compiled again for AVX2 and FMA with the loop vectorizer's full cost model
 * (-O2's leaves loops of unknown length scalar), so rows run 8 floats wide
 * from the same source. Results may differ from the generic table's in the
 * last bit where FMA contracts a product and a sum. Only kiln__eltw_best's
 * CPU check leads here. */
#if defined(__GNUC__) && !defined(__clang__) /* clang (the fuzz build): the portable code as it is */
#pragma GCC target("avx2,fma")
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#define KILN_ELTW_TABLE kiln__eltw_avx2
#define KILN_ELTW_TABLE_NAME "avx2"
#include "cpu/kernels/eltwise_generic.c"
