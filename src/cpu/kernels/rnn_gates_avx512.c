/* src/cpu/kernels/rnn_gates_avx512.c: the LSTM / GRU gate kernels with
 * AVX-512F, 16 hidden units per vector with masked tails (full vectors unmasked): rnn_gates_simd.h
 * at this width, sigmoid and tanh from vmath.h. Compiled through target
 * attributes only; rnn_gates.c calls them only when the CPU has AVX-512F. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/rnn.h"
#include "cpu/kernels/vmath.h"

#define GATES_ATTR KILN__VM_AVX512
#define GATES_W 16
typedef __m512 vec;
typedef __mmask16 mask;
#define MASK(left) ((left) >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (left)) - 1u))
#define LDM(p, m) _mm512_maskz_loadu_ps(m, p)
#define STM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define LDU(p) _mm512_loadu_ps(p)
#define STU(p, v) _mm512_storeu_ps(p, v)
#define V1(x) _mm512_set1_ps(x)
#define ADD _mm512_add_ps
#define SUB _mm512_sub_ps
#define MUL _mm512_mul_ps
#define FMA _mm512_fmadd_ps
#define MIN _mm512_min_ps
#define MAX _mm512_max_ps
#define V_SIGMOID kiln__vm_sigmoid16
#define V_TANH kiln__vm_tanh16
#define GATES_TABLE kiln__rnn_gates_avx512
#define GATES_NAME "avx512"
#include "cpu/kernels/rnn_gates_simd.h"

#endif
