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

const kiln__sgemm_kernel kiln__sgemm_kernel_avx512 = {
    .isa = KILN__GEMM_ISA_AVX512,
    .compute = KILN__GEMM_F32,
    .mr = GS_MR,
    .nr = GS_W * GS_NV,
    .kc = 256,
    .nc = 512,
    .mc = 14 * 72,
    .kgroup = 1,
    .esize = 4,
    .tile = tile_avx512,
};

#endif
