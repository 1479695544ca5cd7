/* src/cuda/kernels/softmax.cu: Softmax / LogSoftmax over the last axis of
 * (rows, cols), f32, one block per row: max, then sum of exp(x - max), both
 * block reductions in f32 (launcher in cuda/cuda_internal.h). */
#include <float.h>

#include "cuda/cuda_internal.h"
#include "cuda/kernels/reduce.cuh"

#define THREADS 256

__global__ void softmax_kernel(const float *x, float *y, int64_t cols, int log) {
    __shared__ float red[32];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    float m = -FLT_MAX;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
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

extern "C" cudaError_t kiln__cu_softmax(cudaStream_t s, const float *x, float *y, int64_t rows,
                                        int64_t cols, int log) {
    if (rows == 0 || cols == 0) return cudaSuccess;
    if (rows > 0x7fffffff) return cudaErrorInvalidValue;
    softmax_kernel<<<(unsigned)rows, THREADS, 0, s>>>(x, y, cols, log);
    return cudaGetLastError();
}

/* Attention scores: row r = ((b*heads + h)*S + i) of (rows, cols); adds the
 * mask (f32, or bool with false as -inf) at b*msb + h*msh + i*msq + j for
 * j < mlen (-inf beyond), -inf for j > i when causal, then the softmax, in
 * place. */
__global__ void attn_softmax_kernel(float *x, int64_t cols, int64_t heads, int64_t S,
                                    const void *mask, int mask_bool, int64_t msb, int64_t msh,
                                    int64_t msq, int64_t mlen, int causal) {
    __shared__ float red[32];
    int64_t r = blockIdx.x, i = r % S, h = (r / S) % heads, b = r / (S * heads);
    float *xr = x + r * cols;
    int64_t off = b * msb + h * msh + i * msq;
    float m = -FLT_MAX;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = xr[j];
        if (mask) {
            if (j >= mlen) v = -INFINITY;
            else if (mask_bool) v = ((const unsigned char *)mask)[off + j] ? v : -INFINITY;
            else v += ((const float *)mask)[off + j];
        }
        if (causal && j > i) v = -INFINITY;
        xr[j] = v;
        m = fmaxf(m, v);
    }
    m = kiln__block_max(m, red);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - m);
    sum = kiln__block_sum(sum, red);
    float inv = 1.f / sum;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) xr[j] = expf(xr[j] - m) * inv;
}

extern "C" cudaError_t kiln__cu_attn_softmax(cudaStream_t s, float *x, int64_t rows, int64_t cols,
                                             int64_t heads, int64_t S, const void *mask,
                                             int mask_bool, int64_t msb, int64_t msh, int64_t msq,
                                             int64_t mlen, int causal) {
    if (rows == 0 || cols == 0) return cudaSuccess;
    if (rows > 0x7fffffff) return cudaErrorInvalidValue;
    attn_softmax_kernel<<<(unsigned)rows, THREADS, 0, s>>>(x, cols, heads, S, mask, mask_bool, msb,
                                                           msh, msq, mlen, causal);
    return cudaGetLastError();
}
