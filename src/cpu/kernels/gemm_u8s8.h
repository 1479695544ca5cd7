/* src/cpu/kernels/gemm_u8s8.h: the 8-bit integer matrix product.
 *
 *   acc (M,N) s32 = sum_k (A[m][k] - a_zero) * (B[k][n] - b_zero[n])
 *
 * with A u8 (M,K) row-major (leading dimension lda, any activation) and B s8
 * (K,N) packed once (weights; kiln__gemm_u8s8_pack_b) with its per-column
 * zero points b_zero (usually 0). The sum is exact in 32-bit two's-complement
 * arithmetic (it wraps like the int32 accumulators of ONNX MatMulInteger;
 * it cannot overflow while K * 255 * 255 < 2^31, i.e. K <= 33025). The epilogue
 * writes one of
 *
 *   S32: acc                                    (int32_t, leading dimension ldc)
 *   F32: f = (a_scale * b_scale[n]) * (float)acc [+ bias[n]]   (float)
 *   U8 / S8: q = saturate(rne(f / y_scale) + y_zero)   (uint8_t / int8_t;
 *        rne = round half to even, as ONNX QuantizeLinear; NaN -> the lowest
 *        value)
 *
 * each step one IEEE f32 operation in that order (no fused multiply-add), so
 * a scalar loop written the same way gives bit-identical results. relu
 * applies max(x, 0) to acc (S32) or to f (before quantizing); NaN stays NaN.
 * b_scale is one value, or N values when b_scale_per_col.
 *
 * Algorithm: vpdpbusd (AVX512_VNNI) multiplies u8 by s8 four K values at a
 * time into s32 without intermediate saturation, so A stays unsigned and the
 * zero points come out exactly through sums: with colsum[n] = sum_k B[k][n]
 * (stored when B is packed) and rowsum[m] = sum_k A[m][k] (computed while A
 * is packed, only when some b_zero is nonzero),
 *   acc = sum_k A B - b_zero[n] rowsum[m] - a_zero colsum[n]
 *         + K a_zero b_zero[n].
 * B is packed in 32-column panels of K rounded up to 4 (4 consecutive K
 * bytes of a column together, as vpdpbusd reads them); A in 14-row panels of
 * the same K groups, MC rows at a time (sized to L2 from K); a 14x32 tile of
 * 28 zmm s32 accumulators covers the whole of K, then the epilogue runs on
 * the registers. A generic C path (same packing, same results) serves CPUs
 * without VNNI and checks the fast one (args.isa forces either).
 *
 * Threads: kiln__gemm_u8s8(args, ith, nth) computes thread ith's share of C
 * (the f32 GEMM's grid of tile blocks); every thread packs its A rows into
 * its slice of args.scratch (kiln__gemm_u8s8_scratch_bytes). Nothing here
 * allocates.
 */
#ifndef KILN_CPU_KERNELS_GEMM_U8S8_H
#define KILN_CPU_KERNELS_GEMM_U8S8_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "cpu/kernels/gemm.h"

typedef enum kiln__gemm_u8s8_out {
    KILN__GEMM_U8S8_S32 = 0, /* int32_t acc */
    KILN__GEMM_U8S8_F32,     /* float, dequantized */
    KILN__GEMM_U8S8_U8,      /* uint8_t, requantized */
    KILN__GEMM_U8S8_S8,      /* int8_t, requantized */
    KILN__GEMM_U8S8_OUT_COUNT
} kiln__gemm_u8s8_out;

typedef struct kiln__gemm_u8s8_args {
    int64_t m, n, k;
    const uint8_t *a; /* (M,K), leading dimension lda */
    int64_t lda;
    uint8_t a_zero;
    const void *b;    /* a kiln__gemm_u8s8_pack_b buffer for (K,N) */
    void *c;          /* (M,N) of the output type, leading dimension ldc (elements) */
    int64_t ldc;
    kiln__gemm_u8s8_out out;
    /* F32, U8, S8 outputs */
    float a_scale;
    const float *b_scale; /* 1 value, or N when b_scale_per_col */
    int b_scale_per_col;
    const float *bias;    /* N values or NULL */
    /* U8, S8 outputs */
    float y_scale;
    int32_t y_zero;       /* within the output type's range */
    int relu;
    kiln__gemm_isa isa;   /* AUTO, GENERIC or AVX512 (= AVX512_VNNI) */
    void *scratch;        /* kiln__gemm_u8s8_scratch_bytes(args, nth) bytes */
} kiln__gemm_u8s8_args;

/* 1 if this CPU (and build) runs isa: AUTO and GENERIC always, AVX512 with
 * AVX512F/BW/VL/VNNI; other values 0. */
int kiln__gemm_u8s8_isa_supported(kiln__gemm_isa isa);

/* ---- B packed once ---------------------------------------------------------
 * Packs s8 B ((K,N), or (N,K) when trans_b, leading dimension ldb) with its
 * per-column zero points (N values, or NULL for all zero) into `packed`, of
 * at least kiln__gemm_u8s8_packed_b_bytes(k, n) bytes (0 for a bad size). The
 * layout is the same for every isa. Does not allocate. */
size_t kiln__gemm_u8s8_packed_b_bytes(int64_t k, int64_t n);
kiln_status kiln__gemm_u8s8_pack_b(int trans_b, int64_t k, int64_t n, const int8_t *b,
                                   int64_t ldb, const int8_t *b_zero, void *packed,
                                   size_t packed_bytes);

/* Bytes of scratch for nth threads (any alignment; 0 when M or N is 0 or the
 * args are bad). Depends on m, n, k and the resolved isa only. */
size_t kiln__gemm_u8s8_scratch_bytes(const kiln__gemm_u8s8_args *args, int nth);

/* Computes thread ith's share of C (0 <= ith < nth); every thread of one
 * product gets the same args and nth. Validates args (sizes, pointers,
 * packed-B header, scales) and fails without touching C on bad ones. */
kiln_status kiln__gemm_u8s8(const kiln__gemm_u8s8_args *args, int ith, int nth);

/* Validates args and runs kiln__gemm_u8s8 on every thread of pool (NULL: the
 * caller alone) with scratch of kiln__gemm_u8s8_scratch_bytes(args,
 * kiln__pool_size(pool)) bytes (args->scratch is ignored). */
kiln_status kiln__gemm_u8s8_run(kiln__pool *pool, const kiln__gemm_u8s8_args *args,
                                void *scratch);

#endif
