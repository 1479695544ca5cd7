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
