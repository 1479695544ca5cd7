/* src/cuda/cuda_algo.h: helpers the CUDA algorithms (KILN_ALGOF_CUDA, see
 * ops/algo.h) share: dtype checks, the GPU cost model, the stream. */
#ifndef KILN_CUDA_ALGO_H
#define KILN_CUDA_ALGO_H

#include "core/core.h"
#include "cpu/ref/conv.h"
#include "cuda/cuda_internal.h"
#include "ops/algo.h"

/* KILN_OK if inputs [0, n) that are present and every output are f32
 * tensors, else KILN_E_UNSUPPORTED (the node stays on the CPU). */
kiln_status kiln__cuda_all_f32(const kiln__kctx *c, int n);

/* Estimated seconds on the GPU: flops at `efficiency` of a nominal f32
 * (or, tensor_cores, bf16) peak, bytes at a nominal memory bandwidth, plus a
 * launch. Ranks the CUDA candidates of one node; every CUDA candidate wins
 * over the CPU ones. */
double kiln__cuda_cost(double flops, double efficiency, int tensor_cores, double bytes);

/* The activation of a kiln fused node (ops/fused.h) as a kernel op (KILN__CU_IDENTITY
 * for none) and its parameters (Clip's bounds); fails on a bad attribute. */
kiln_status kiln__cuda_fused_act(const kiln__node *n, kiln__cu_op *op, float *p0, float *p1);

/* 1 if every dim of t fits cuDNN's int. */
static inline int kiln__cuda_fits_int(const kiln_tensor *t) {
    for (int d = 0; d < t->ndim; d++)
        if (t->dims[d] > 0x7fffffff) return 0;
    return 1;
}

/* A 2-D Conv or kiln.FusedConv(X, W, B?, Z?) node as the CUDA convolution
 * algorithms take it (cuda_conv.c, and the 1x1 products of cuda_matmul.c):
 * f32, 4-D, dims that fit an int, symmetric pads; B of the output's channel
 * count, Z of its element count; FusedConv's activation. */
typedef struct kiln__cuda_conv_node {
    kiln__win w;
    int64_t group;
    int bias_in, z_in; /* 2 / 3, or -1 when absent */
    kiln__cu_op act;   /* KILN__CU_IDENTITY: none (always for Conv) */
    float p0, p1;
} kiln__cuda_conv_node;
/* KILN_E_UNSUPPORTED for other nodes (they stay on the CPU). */
kiln_status kiln__cuda_conv_read(const kiln__kctx *c, int fused, kiln__cuda_conv_node *out);

/* The stream of the step's device. */
static inline cudaStream_t kiln__cuda_stream(const kiln__kctx *c) { return c->dev->stream; }

/* Converts a launcher's status (cuda_internal.h) for an algorithm's run. */
static inline kiln_status kiln__cuda_launched(cudaError_t e, const char *what) {
    return e == cudaSuccess ? KILN_OK : kiln__cuda_fail(e, what);
}

/* A batched f32 product on cuBLASLt for kernels built of several steps
 * (attention): batch x Y(m,n) = alpha * A(m,k) B(k,n), B transposed (stored
 * (n,k)) when trans_b; row-major, batches stride_a / stride_b / m*n apart
 * (cuda_matmul.c). */
typedef struct kiln__cuda_gemm kiln__cuda_gemm;
kiln_status kiln__cuda_gemm_new(kiln__device *d, int64_t m, int64_t n, int64_t k, int64_t batch,
                                int64_t stride_a, int64_t stride_b, int trans_b, float alpha,
                                kiln__cuda_gemm **out);
kiln_status kiln__cuda_gemm_run(kiln__cuda_gemm *g, const float *a, const float *b, float *y);
void kiln__cuda_gemm_free(kiln__cuda_gemm *g);

#endif
