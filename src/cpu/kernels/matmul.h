/* src/cpu/kernels/matmul.h: the batched f32 GEMM plan behind the MatMul,
 * Gemm and kiln.FusedMatMul algorithms (matmul_algos.c), on kiln__sgemm
 * (gemm.h). Internal to src/cpu/kernels.
 *
 * A plan describes nbatch products, one per index of the broadcast batch
 * dims (bdims), each
 *
 *   Y[b] (M,N) = act( alpha * op(A[b]) (M,K) x op(B[b]) (K,N)
 *                     + beta * Y[b] + bias + R[b] )
 *
 * with A[b], B[b] at element offsets sum_d idx_d * a_bstr[d] (b_bstr) in
 * their input tensors (0 strides on broadcast dims), Y and R contiguous
 * (nbatch, M, N). The front-ends fill a plan from a node (shapes only), then
 * kiln__mm_finish packs constant B and sizes the scratch:
 *
 *   - B constant (its data known at prepare: weights): every distinct B
 *     matrix is packed once (kiln__sgemm_pack_b) into the plan, which is the
 *     algorithm's c->kstate; run never reads B's input again;
 *   - B not constant (attention's Q K^T, ...): kiln__sgemm packs its panels
 *     per run into each thread's slice of the scratch.
 *
 * Threads: run is not PARALLEL; it drives c->pool itself (one kiln__pool_run
 * per call), or runs on the caller alone when the product is estimated to
 * take under KILN__MM_SERIAL_S on one thread (waking the pool costs ~10 us). The first nth * floor(nbatch / nth) products go whole to the
 * threads (no shared panels, no imbalance); the remaining ones are each
 * split into C tiles over all threads (kiln__sgemm's thread grid), which is
 * also how a single product (batch folded into M, or none) runs: for small M
 * (batch-1 transformer or LSTM steps) the grid splits N, so every thread
 * streams its own columns of the prepacked weights.
 *
 * Input-derived epilogue operands (Gemm's C scaled by beta, or broadcast)
 * are formed per run, before the threads start, into the scratch.
 */
#ifndef KILN_CPU_KERNELS_MATMUL_H
#define KILN_CPU_KERNELS_MATMUL_H

#include "cpu/kernels/gemm.h"
#include "ops/op.h"

/* Products estimated (kiln__mm_cost on one thread) to take less than this
 * many seconds run on the caller alone. */
#define KILN__MM_SERIAL_S 20e-6

/* Where the bias comes from. */
typedef enum kiln__mm_bias_src {
    KILN__MM_BIAS_INPUT = 0, /* input bias_in's data as is (contiguous) */
    KILN__MM_BIAS_SCALED,    /* bias[i] = bias_scale * in[bias_in][i * bias_stride], per run */
} kiln__mm_bias_src;

typedef struct kiln__mm_plan {
    /* one product */
    int64_t m, n, k;
    int trans_a, trans_b;
    int64_t lda, ldb; /* of A and B as stored (ldb unused when B is packed) */
    float alpha, beta;
    kiln__gemm_act act;
    float act_min, act_max;
    kiln__gemm_compute compute;
    /* the batch (nb 0: one product) */
    int nb;
    int64_t bdims[KILN_MAX_DIMS];
    int64_t a_bstr[KILN_MAX_DIMS], b_bstr[KILN_MAX_DIMS]; /* elements, 0 on broadcast */
    int64_t nbatch;
    /* operands: input indices (-1: none) */
    int a_in, b_in;
    int bias_in;                 /* bias vector source */
    kiln__gemm_bias bias_kind;   /* COL (N values) or ROW (M values) when bias_in >= 0 */
    kiln__mm_bias_src bias_src;
    float bias_scale;
    int64_t bias_stride;
    int res_in;                  /* residual R (nbatch, M, N) contiguous */
    int copy_in;                 /* Gemm: input broadcast into Y before the product
                                    (then beta scales it); strides copy_rs, copy_cs */
    int64_t copy_rs, copy_cs;
    /* packed B (constant B): n_packed buffers of packed_stride bytes */
    void *packed;
    int64_t n_packed;
    size_t packed_stride;
    /* threads and scratch layout (kiln__mm_finish) */
    int serial;               /* 1: runs on the caller alone (too little work to
                                 pay for waking the pool) */
    int nth;                  /* threads the scratch is sized for */
    /* scratch: n_slices slices of slice_bytes (whole products, one per
     * thread: kiln__sgemm(.., 0, 1)), then at tile_off the region of one
     * product split over the threads (kiln__sgemm(.., ith, nth) slices it
     * itself; kept apart, as a thread may start a split product while
     * another still works in its own slice), then the per-run bias vector */
    int n_slices;
    size_t slice_bytes;
    size_t tile_off;
    size_t bias_off;
} kiln__mm_plan;

/* A plan with no operands (alpha 1, beta 0, no epilogue, f32). */
void kiln__mm_plan_init(kiln__mm_plan *p);

/* Fills p's sizes and batch for numpy matmul of inputs a_in, b_in of c
 * (shapes as MatMul's infer accepted them; the caller checked dtypes). A
 * batch that only A has, with B one matrix, folds into M. */
kiln_status kiln__mm_plan_matmul(kiln__mm_plan *p, const kiln__kctx *c, int a_in, int b_in);

/* Completes a plan: packs B if its data is known (for p->compute), sizes
 * c->scratch_bytes for c->nth_plan threads, sets c->flops, and moves the
 * plan into a new c->kstate (freed by kiln__mm_release). On failure nothing
 * is left allocated and c->kstate stays NULL. */
kiln_status kiln__mm_finish(kiln__kctx *c, const kiln__mm_plan *p);

/* cost() of an algorithm whose kstate is a plan. */
double kiln__mm_cost(const kiln__kctx *c);
/* run() of an algorithm whose kstate is a plan (not PARALLEL: drives c->pool). */
kiln_status kiln__mm_run(kiln__kctx *c);
/* release() of a plan. */
void kiln__mm_release(void *kstate);

/* 1 if products in compute type ct can run on this CPU and build. */
int kiln__mm_compute_supported(kiln__gemm_compute ct);

#endif
