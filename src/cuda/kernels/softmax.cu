/* src/cuda/kernels/softmax.cu: Softmax / LogSoftmax over the last axis of
 * (rows, cols), f32, one block per row: max, then sum of exp(x - max), both
 * block reductions in f32; for attention scores, a mask and the causal cut
 * are added first (launchers in cuda/cuda_internal.h). */
#include <float.h>

#include "cuda/cuda_internal.h"
#include "cuda/kernels/reduce.cuh"

#define THREADS 256

/* What is added to row r = ((b*heads + h)*S + i), column j, before the
 * softmax: the mask (f32, or bool with false as -inf) at b*msb + h*msh +
 * i*msq + j for j < mlen (-inf beyond), -inf for j > i when causal. */
typedef struct row_bias {
    const void *mask;
    int mask_bool, causal;
    int64_t heads, S, msb, msh, msq, mlen;
} row_bias;

__device__ __forceinline__ float biased(float v, const row_bias &rb, int64_t off, int64_t i, int64_t j) {
    if (rb.mask) {
        if (j >= rb.mlen) v = -INFINITY;
        else if (rb.mask_bool) v = ((const unsigned char *)rb.mask)[off + j] ? v : -INFINITY;
        else v += ((const float *)rb.mask)[off + j];
    }
    if (rb.causal && j > i) v = -INFINITY;
    return v;
}

/* y may be x. With a bias, the biased row is written to y first and read
 * back from there. */
__global__ void softmax_kernel(const float *x, float *y, int64_t cols, int log, row_bias rb) {
    __shared__ float red[32];
    int64_t r = blockIdx.x;
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    int has_bias = rb.mask || rb.causal;
    float m = -FLT_MAX;
    if (has_bias) {
        int64_t i = r % rb.S, h = (r / rb.S) % rb.heads, b = r / (rb.S * rb.heads);
        int64_t off = b * rb.msb + h * rb.msh + i * rb.msq;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
            float v = biased(xr[j], rb, off, i, j);
            yr[j] = v;
            m = fmaxf(m, v);
        }
        xr = yr;
    } else {
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    }
    m = kiln__block_max(m, red);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - m);
    sum = kiln__block_sum(sum, red);
    if (log) {
        float ls = logf(sum);
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - m - ls;
    } else {
        float inv = 1.f / sum;
        for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
}

static cudaError_t launch(cudaStream_t s, const float *x, float *y, int64_t rows, int64_t cols,
                          int log, const row_bias &rb) {
    if (rows == 0 || cols == 0) return cudaSuccess;
    if (rows > 0x7fffffff) return cudaErrorInvalidValue;
    softmax_kernel<<<(unsigned)rows, THREADS, 0, s>>>(x, y, cols, log, rb);
    return cudaGetLastError();
}

extern "C" cudaError_t kiln__cu_softmax(cudaStream_t s, const float *x, float *y, int64_t rows,
                                        int64_t cols, int log) {
    row_bias none = {};
    return launch(s, x, y, rows, cols, log, none);
}

extern "C" cudaError_t kiln__cu_attn_softmax(cudaStream_t s, float *x, int64_t rows, int64_t cols,
                                             int64_t heads, int64_t S, const void *mask,
                                             int mask_bool, int64_t msb, int64_t msh, int64_t msq,
                                             int64_t mlen, int causal) {
    row_bias rb = {mask, mask_bool, causal, heads, S, msb, msh, msq, mlen};
    return launch(s, x, x, rows, cols, 0, rb);
}
