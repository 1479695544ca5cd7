/* src/cuda/kernels/norm.cu: LayerNormalization over the last `cols` of
 * (rows, cols), f32, one block per row; mean first, then the variance of the
 * centered values (two passes over the row, as the reference kernel), both
 * in f32 (launcher in cuda/cuda_internal.h). */
#include "cuda/cuda_internal.h"
#include "cuda/kernels/reduce.cuh"

#define THREADS 256

__global__ void layernorm_kernel(const float *x, const float *scale, const float *bias, float *y,
                                 float *mean_out, float *inv_out, int64_t cols, float eps) {
    __shared__ float red[32];
    const float *xr = x + blockIdx.x * cols;
    float *yr = y + blockIdx.x * cols;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    float mean = kiln__block_sum(s, red) / (float)cols;
    float v = 0.f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = xr[j] - mean;
        v += d * d;
    }
    float inv = rsqrtf(kiln__block_sum(v, red) / (float)cols + eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        float o = (xr[j] - mean) * inv * scale[j];
        yr[j] = bias ? o + bias[j] : o;
    }
    if (threadIdx.x == 0) {
        if (mean_out) mean_out[blockIdx.x] = mean;
        if (inv_out) inv_out[blockIdx.x] = inv;
    }
}

extern "C" cudaError_t kiln__cu_layernorm(cudaStream_t s, const float *x, const float *scale,
                                          const float *bias, float *y, float *mean, float *inv_std,
                                          int64_t rows, int64_t cols, float eps) {
    if (rows == 0 || cols == 0) return cudaSuccess;
    if (rows > 0x7fffffff) return cudaErrorInvalidValue;
    layernorm_kernel<<<(unsigned)rows, THREADS, 0, s>>>(x, scale, bias, y, mean, inv_std, cols, eps);
    return cudaGetLastError();
}
