/* src/cpu/kernels/rnn_gates_avx2.c: the LSTM / GRU gate kernels with AVX2
 * and FMA, 8 hidden units per vector with masked tails (full vectors unmasked): rnn_gates_simd.h at
 * this width, sigmoid and tanh from vmath.h. Compiled through target
 * attributes only; rnn_gates.c calls them only when the CPU has AVX2. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/rnn.h"
#include "cpu/kernels/vmath.h"

#define GATES_ATTR KILN__VM_AVX2
#define GATES_W 8
typedef __m256 vec;
typedef __m256i mask;
/* lanes k < left: left > k */
#define MASK(left)                                                                             \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)((left) < 8 ? (left) : 8)),                      \
                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LDM(p, m) _mm256_maskload_ps(p, m)
#define STM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define LDU(p) _mm256_loadu_ps(p)
#define STU(p, v) _mm256_storeu_ps(p, v)
#define V1(x) _mm256_set1_ps(x)
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define MUL _mm256_mul_ps
#define FMA _mm256_fmadd_ps
#define MIN _mm256_min_ps
#define MAX _mm256_max_ps
#define V_SIGMOID kiln__vm_sigmoid8
#define V_TANH kiln__vm_tanh8
#define GATES_TABLE kiln__rnn_gates_avx2
#define GATES_NAME "avx2"
#include "cpu/kernels/rnn_gates_simd.h"

#endif
