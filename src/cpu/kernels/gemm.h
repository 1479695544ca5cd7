/* src/cpu/kernels/gemm.h: the f32 matrix product the fast CPU kernels build on.
 *
 *   C (M,N) = act( alpha * op(A) (M,K) x op(B) (K,N) + beta * C + bias + R )
 *
 * with op = optional transpose, every matrix row-major with its own leading
 * dimension (elements between rows), bias per column (N values) or per row
 * (M values), R an optional residual matrix (M,N) and act one of none, relu,
 * gelu (erf or tanh form), silu or clip(min, max). The epilogue (alpha, beta,
 * bias, residual, activation) is applied while a finished tile of C is in
 * registers, so C is written once per K block.
 *
 * Algorithm (BLIS-style, packed panels): K is cut into KC-deep blocks; for
 * each, blocks of op(A) rows are packed into MR-row panels and NC-column
 * blocks of op(B) into NR-wide panels (either skipped when that operand comes
 * prepacked), the outer of the two packed once and the inner once per outer
 * block, in the order that packs less; for each MR-row A panel (MR x KC,
 * stays in L1) a register-tile microkernel sweeps the B panels of the block.
 * Edge tiles use masked loads/stores: nothing outside the given matrices is
 * read or written. ISAs: AVX-512F (14x32 tile), AVX2+FMA (6x16), generic C
 * (4x16), picked at run time (or forced through args.isa, for tests and the
 * tuner). With compute = KILN__GEMM_BF16 (AVX512_BF16 only) the panels hold
 * bf16 pairs along K (op(A), op(B) rounded to nearest even while packing;
 * NaN stays NaN, denormal inputs count as zero) and the 14x32 tile
 * accumulates vdpbf16ps products in f32, with the same epilogue.
 *
 * Threads: kiln__sgemm(args, ith, nth) computes thread ith's share of C (a
 * grid of C blocks over nth threads, in whole tiles); every thread packs its
 * own panels into its slice of args.scratch, sized by kiln__sgemm_scratch_bytes.
 * Nothing here allocates. kiln__sgemm_run drives it on a kiln__pool.
 *
 * Semantics worth knowing:
 *   - beta == 0: C is only written (NaN or garbage in C does not propagate);
 *   - alpha == 0 still computes the product (NaN/Inf in A or B propagate);
 *   - the residual must not overlap C (for C += ..., use beta = 1 instead);
 *   - K == 0: C = act(beta * C + bias + R).
 */
#ifndef KILN_CPU_KERNELS_GEMM_H
#define KILN_CPU_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef enum kiln__gemm_isa {
    KILN__GEMM_ISA_AUTO = 0, /* best this CPU supports */
    KILN__GEMM_ISA_GENERIC,  /* portable C */
    KILN__GEMM_ISA_AVX2,     /* AVX2 + FMA */
    KILN__GEMM_ISA_AVX512,   /* AVX-512F */
    KILN__GEMM_ISA_COUNT
} kiln__gemm_isa;

typedef enum kiln__gemm_act {
    KILN__GEMM_ACT_NONE = 0,
    KILN__GEMM_ACT_RELU,      /* max(x, 0) */
    KILN__GEMM_ACT_GELU_ERF,  /* 0.5 x (1 + erf(x / sqrt 2)) */
    KILN__GEMM_ACT_GELU_TANH, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    KILN__GEMM_ACT_SILU,      /* x / (1 + exp(-x)) */
    KILN__GEMM_ACT_CLIP,      /* min(max(x, act_min), act_max) */
    KILN__GEMM_ACT_COUNT
} kiln__gemm_act;

typedef enum kiln__gemm_bias {
    KILN__GEMM_BIAS_NONE = 0,
    KILN__GEMM_BIAS_COL, /* bias[n] added to column n (the Gemm / Linear bias) */
    KILN__GEMM_BIAS_ROW, /* bias[m] added to row m */
} kiln__gemm_bias;

/* Arithmetic of the product. Every array stays f32 in memory whatever the
 * compute type: BF16 rounds op(A) and op(B) to bf16 while packing them (or
 * takes B prepacked as bf16) and accumulates in f32 with vdpbf16ps. */
typedef enum kiln__gemm_compute {
    KILN__GEMM_F32 = 0,
    KILN__GEMM_BF16, /* needs AVX512_BF16 (kiln__gemm_compute_supported) */
} kiln__gemm_compute;

typedef struct kiln__gemm_args {
    int64_t m, n, k;
    int trans_a;       /* 0: A is (M,K); 1: A is (K,M) and op(A) = A^T; ignored when a_packed */
    int trans_b;       /* 0: B is (K,N); 1: B is (N,K) and op(B) = B^T */
    float alpha, beta;
    const float *a;    /* or, when a_packed, a kiln__gemm_pack_a_ex buffer */
    int64_t lda;       /* ignored when a_packed */
    int a_packed;
    const float *b;    /* or, when b_packed, a kiln__sgemm_pack_b buffer */
    int64_t ldb;       /* ignored when b_packed (so is trans_b) */
    int b_packed;
    float *c;
    int64_t ldc;
    /* epilogue */
    kiln__gemm_bias bias_kind;
    const float *bias;     /* N (COL) or M (ROW) values */
    const float *residual; /* (M,N) with leading dimension ldr, or NULL */
    int64_t ldr;
    kiln__gemm_act act;
    float act_min, act_max; /* CLIP bounds */
    kiln__gemm_isa isa;     /* AUTO, or a forced path (fails if unsupported) */
    kiln__gemm_compute compute; /* F32 (default) or BF16 */
    void *scratch;          /* kiln__sgemm_scratch_bytes(args, nth) bytes */
} kiln__gemm_args;

/* 1 if this CPU (and build) can run isa; AUTO is always supported. */
int kiln__gemm_isa_supported(kiln__gemm_isa isa);
/* The path AUTO resolves to on this CPU. */
kiln__gemm_isa kiln__gemm_isa_best(void);
/* "generic", "avx2", "avx512" ("auto"); never NULL. */
const char *kiln__gemm_isa_name(kiln__gemm_isa isa);
/* 1 if this CPU (and build) can compute in `compute`: F32 always, BF16 with
 * AVX512_BF16 (+F/BW/VL) and a compiler that has its intrinsics. */
int kiln__gemm_compute_supported(kiln__gemm_compute compute);
/* "f32", "bf16"; never NULL. */
const char *kiln__gemm_compute_name(kiln__gemm_compute compute);

/* Bytes of scratch kiln__sgemm needs for nth threads (any alignment is
 * accepted; 0 when nothing needs packing). Depends on m, n, k, a_packed,
 * b_packed, compute and the resolved isa only. */
size_t kiln__sgemm_scratch_bytes(const kiln__gemm_args *args, int nth);

/* Computes thread ith's share of C (0 <= ith < nth). Every thread of the
 * same product must get the same args and nth. Validates args (shapes,
 * leading dimensions, pointers, packed-B header) and fails without touching C
 * on bad ones. Does not allocate. */
kiln_status kiln__sgemm(const kiln__gemm_args *args, int ith, int nth);

/* Validates args and runs kiln__sgemm on every thread of pool (NULL: on the
 * caller alone), with scratch (ignoring args->scratch) of at least
 * kiln__sgemm_scratch_bytes(args, kiln__pool_size(pool)) bytes. */
kiln_status kiln__sgemm_run(kiln__pool *pool, const kiln__gemm_args *args, void *scratch);

/* ---- B packed once (constant weights) -----------------------------------
 * Packs op(B) (K,N) for the isa path (AUTO: the best that computes in
 * `compute`) into `packed`, of at least kiln__gemm_packed_b_bytes_ex(isa,
 * compute, k, n) bytes (a bf16 buffer is about half an f32 one). The buffer
 * records isa, compute, K and N; pass it as args.b with args.b_packed = 1,
 * the same args.compute and args.isa AUTO or the same isa. Returns 0 bytes
 * for a bad isa, compute or size. Does not allocate. */
size_t kiln__gemm_packed_b_bytes_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int64_t k,
                                    int64_t n);
kiln_status kiln__gemm_pack_b_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int trans_b,
                                 int64_t k, int64_t n, const float *b, int64_t ldb, void *packed,
                                 size_t packed_bytes);
/* The same with compute = KILN__GEMM_F32. */
size_t kiln__sgemm_packed_b_bytes(kiln__gemm_isa isa, int64_t k, int64_t n);
kiln_status kiln__sgemm_pack_b(kiln__gemm_isa isa, int trans_b, int64_t k, int64_t n,
                               const float *b, int64_t ldb, void *packed, size_t packed_bytes);


/* ---- A packed once (constant weights as the left operand) ----------------
 * Packs op(A) (M,K) for the isa path (AUTO: the best that computes in
 * `compute`) into `packed`, of at least kiln__gemm_packed_a_bytes_ex(isa,
 * compute, m, k) bytes (bf16: about half). The buffer records isa, compute,
 * M, K and the kernel's row tile and K block; pass it as args.a with
 * args.a_packed = 1, the same args.m, args.k, args.compute and args.isa AUTO
 * or the same isa (with B also prepacked, both must be for the same isa); a
 * mismatch is refused naming it. Returns 0 bytes for a bad isa, compute or
 * size. Does not allocate. */
size_t kiln__gemm_packed_a_bytes_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int64_t m,
                                    int64_t k);
kiln_status kiln__gemm_pack_a_ex(kiln__gemm_isa isa, kiln__gemm_compute compute, int trans_a,
                                 int64_t m, int64_t k, const float *a, int64_t lda, void *packed,
                                 size_t packed_bytes);

#endif
