/* src/cuda/cuda_internal.h: what the CUDA backend's files share: the device
 * context, error helpers, and the launchers of the own kernels (.cu files,
 * one per op family, C-callable; every launcher enqueues on the given stream
 * and returns the launch status).
 *
 * Only src/cuda/ includes this (it pulls in the CUDA headers); the rest of
 * kiln sees backend/device.h.
 */
#ifndef KILN_CUDA_INTERNAL_H
#define KILN_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/device.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln__dblock {
    void *ptr;
    size_t size;
} kiln__dblock;

struct kiln__device {
    int ordinal;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;          /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    cudnnHandle_t dnn;    /* created on first use (kiln__cuda_dnn) */
    /* faults kernels report (an index out of range): a kiln__cu_fault code,
     * written by the kernels into mapped host memory, read after each sync */
    volatile int *fault_host;
    int *fault_dev;
    int sm;               /* compute capability, 90 for sm_90 */
    int n_sm;
    char name[192];
    /* caching allocator: blocks handed out, and freed blocks kept for reuse */
    kiln__dblock *live, *cached;
    int n_live, cap_live, n_cached, cap_cached;
    size_t cached_bytes;
};

/* A failed CUDA runtime / cuBLASLt / cuDNN call: KILN_E_DEVICE with the
 * library's error text and what was being done. */
#include "kiln/status.h"
kiln_status kiln__cuda_fail(cudaError_t e, const char *what);
kiln_status kiln__cublas_fail(cublasStatus_t e, const char *what);
kiln_status kiln__cudnn_fail(cudnnStatus_t e, const char *what);
#define KILN__CUDA(call, what)                                              \
    do {                                                                    \
        cudaError_t e_ = (call);                                            \
        if (e_ != cudaSuccess) return kiln__cuda_fail(e_, what);            \
    } while (0)
#define KILN__CUBLAS(call, what)                                            \
    do {                                                                    \
        cublasStatus_t e_ = (call);                                         \
        if (e_ != CUBLAS_STATUS_SUCCESS) return kiln__cublas_fail(e_, what);\
    } while (0)
#define KILN__CUDNN(call, what)                                             \
    do {                                                                    \
        cudnnStatus_t e_ = (call);                                          \
        if (e_ != CUDNN_STATUS_SUCCESS) return kiln__cudnn_fail(e_, what);  \
    } while (0)

/* The cuDNN handle of d (created on the first call, bound to d's stream). */
kiln_status kiln__cuda_dnn(kiln__device *d, cudnnHandle_t *out);

/* ---- own kernels (the .cu files under src/cuda/kernels/) -------------------------------- */

/* Elementwise ops the kernels implement (eltwise.cu). Unary ops read a;
 * binary ones a and b. */
typedef enum kiln__cu_op {
    KILN__CU_ADD, KILN__CU_SUB, KILN__CU_MUL, KILN__CU_DIV, KILN__CU_POW,
    KILN__CU_MAX, KILN__CU_MIN,
    KILN__CU_RELU, KILN__CU_SIGMOID, KILN__CU_TANH, KILN__CU_EXP, KILN__CU_LOG,
    KILN__CU_SQRT, KILN__CU_NEG, KILN__CU_ABS, KILN__CU_ERF, KILN__CU_RECIPROCAL,
    KILN__CU_GELU, KILN__CU_GELU_TANH, KILN__CU_SILU, KILN__CU_CLIP,
    KILN__CU_LEAKY_RELU, KILN__CU_HARD_SIGMOID, KILN__CU_IDENTITY,
} kiln__cu_op;

/* What a kernel found wrong in its data (written to kiln__device.fault_dev;
 * kiln__device_sync reports it). */
typedef enum kiln__cu_fault {
    KILN__CU_FAULT_NONE = 0,
    KILN__CU_FAULT_GATHER_INDEX = 1, /* a Gather index outside [-n, n) */
} kiln__cu_fault;

/* Broadcast description of a binary op over an output of up to 6 dims:
 * element (i0..i5) of y reads a at sum(ik*as[k]) and b at sum(ik*bs[k])
 * (stride 0 along broadcast dims). */
#define KILN__CU_MAXDIM 6
typedef struct kiln__cu_bcast {
    int ndim;
    int64_t dims[KILN__CU_MAXDIM];
    int64_t as[KILN__CU_MAXDIM], bs[KILN__CU_MAXDIM];
} kiln__cu_bcast;

/* y[i] = op(a[i]) for n f32 elements; p0/p1: Clip bounds, LeakyRelu alpha,
 * HardSigmoid alpha/beta. */
cudaError_t kiln__cu_unary(cudaStream_t s, kiln__cu_op op, const float *a, float *y, int64_t n,
                           float p0, float p1);
/* y = op(a, b) with broadcasting (bc NULL: same shape, n elements). */
cudaError_t kiln__cu_binary(cudaStream_t s, kiln__cu_op op, const float *a, const float *b,
                            float *y, int64_t n, const kiln__cu_bcast *bc);
/* y[i] = act(x[i] + bias[i % nbias] + (z ? z[i] : 0)); bias and z may be
 * NULL; nbias elements repeat every `inner` elements (channel bias of NCHW:
 * y index / inner % nbias). act as kiln__cu_unary (KILN__CU_IDENTITY: none). */
cudaError_t kiln__cu_bias_act(cudaStream_t s, const float *x, const float *bias, int64_t nbias,
                              int64_t inner, const float *z, float *y, int64_t n, kiln__cu_op act,
                              float p0, float p1);
/* f32 <-> bf16 conversion of n elements. */
cudaError_t kiln__cu_f32_to_bf16(cudaStream_t s, const float *x, uint16_t *y, int64_t n);

/* Gather along one axis of data viewed as (outer, axis_n, inner) elements of
 * elem_size bytes (1, 2, 4 or 8): y (outer, n_idx, inner) element (o, i, r)
 * is data (o, idx[i], r), idx int64 (idx64) or int32, negative counting from
 * the end; an index outside [-axis_n, axis_n) writes zeros there and sets
 * *fault to KILN__CU_FAULT_GATHER_INDEX (gather.cu). */
cudaError_t kiln__cu_gather(cudaStream_t s, const void *data, int elem_size, const void *idx,
                            int idx64, void *y, int64_t outer, int64_t axis_n, int64_t n_idx,
                            int64_t inner, int *fault);

/* Softmax / LogSoftmax over the last of (rows, cols) (softmax.cu). */
cudaError_t kiln__cu_softmax(cudaStream_t s, const float *x, float *y, int64_t rows, int64_t cols,
                             int log);
/* Attention scores (rows = B*heads*S, cols = T), in place: the mask (f32
 * added, or bool with false as -inf; element (b,h,i,j) at b*msb + h*msh +
 * i*msq + j for j < mlen, -inf beyond), -inf for j > i when causal, then the
 * softmax of each row (softmax.cu). */
cudaError_t kiln__cu_attn_softmax(cudaStream_t s, float *x, int64_t rows, int64_t cols,
                                  int64_t heads, int64_t S, const void *mask, int mask_bool,
                                  int64_t msb, int64_t msh, int64_t msq, int64_t mlen, int causal);
/* LayerNormalization over the last `cols` of (rows, cols): y = (x - mean) /
 * sqrt(var + eps) * scale + bias (bias may be NULL); mean/inv_std (may be
 * NULL) get the per-row statistics (norm.cu). */
cudaError_t kiln__cu_layernorm(cudaStream_t s, const float *x, const float *scale,
                               const float *bias, float *y, float *mean, float *inv_std,
                               int64_t rows, int64_t cols, float eps);
/* Transpose of a tensor of up to 6 dims: y (dims of y) element i reads x at
 * sum(ik * xs[k]) where xs are x's strides permuted to y's axes. */
cudaError_t kiln__cu_permute(cudaStream_t s, const float *x, float *y, int ndim,
                             const int64_t *ydims, const int64_t *xs, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
