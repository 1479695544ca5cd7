/* src/cuda/kernels/eltwise.cu: elementwise kernels (unary, broadcast
 * binary, bias + residual + activation epilogue, f32 -> bf16), f32.
 * Launchers are declared in cuda/cuda_internal.h. Grid-stride loops; the
 * math follows the reference kernels (src/cpu/ref/) in f32. */
#include <cuda_bf16.h>

#include "cuda/cuda_internal.h"

#define THREADS 256

static unsigned blocks_for(int64_t n) {
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b > 65535 * 8) b = 65535 * 8; /* grid-stride covers the rest */
    return b < 1 ? 1u : (unsigned)b;
}

__device__ __forceinline__ float apply(kiln__cu_op op, float x, float y, float p0, float p1) {
    switch (op) {
    case KILN__CU_ADD: return x + y;
    case KILN__CU_SUB: return x - y;
    case KILN__CU_MUL: return x * y;
    case KILN__CU_DIV: return x / y;
    case KILN__CU_POW: return powf(x, y);
    case KILN__CU_MAX: return (x != x || y != y) ? x + y : fmaxf(x, y);
    case KILN__CU_MIN: return (x != x || y != y) ? x + y : fminf(x, y);
    case KILN__CU_RELU: return x > 0.f ? x : (x != x ? x : 0.f);
    case KILN__CU_SIGMOID: return 1.f / (1.f + expf(-x));
    case KILN__CU_TANH: return tanhf(x);
    case KILN__CU_EXP: return expf(x);
    case KILN__CU_LOG: return logf(x);
    case KILN__CU_SQRT: return sqrtf(x);
    case KILN__CU_NEG: return -x;
    case KILN__CU_ABS: return fabsf(x);
    case KILN__CU_ERF: return erff(x);
    case KILN__CU_RECIPROCAL: return 1.f / x;
    case KILN__CU_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case KILN__CU_GELU_TANH:
        return 0.5f * x * (1.f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case KILN__CU_SILU: return x / (1.f + expf(-x));
    case KILN__CU_CLIP: return x != x ? x : fminf(fmaxf(x, p0), p1);
    case KILN__CU_LEAKY_RELU: return x >= 0.f ? x : x * p0;
    case KILN__CU_HARD_SIGMOID: return x != x ? x : fmaxf(0.f, fminf(1.f, p0 * x + p1));
    case KILN__CU_IDENTITY: return x;
    }
    return x;
}

__global__ void unary_kernel(kiln__cu_op op, const float *a, float *y, int64_t n, float p0, float p1) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = apply(op, a[i], 0.f, p0, p1);
}

__global__ void binary_same_kernel(kiln__cu_op op, const float *a, const float *b, float *y,
                                   int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = apply(op, a[i], b[i], 0.f, 0.f);
}

__global__ void binary_bcast_kernel(kiln__cu_op op, const float *a, const float *b, float *y,
                                    int64_t n, kiln__cu_bcast bc) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, ia = 0, ib = 0;
        for (int k = bc.ndim - 1; k >= 0; k--) {
            int64_t q = r / bc.dims[k], ik = r - q * bc.dims[k];
            ia += ik * bc.as[k];
            ib += ik * bc.bs[k];
            r = q;
        }
        y[i] = apply(op, a[ia], b[ib], 0.f, 0.f);
    }
}

__global__ void bias_act_kernel(const float *x, const float *bias, int64_t nbias, int64_t inner,
                                const float *z, float *y, int64_t n, kiln__cu_op act, float p0,
                                float p1) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i];
        if (bias) v += bias[(i / inner) % nbias];
        if (z) v += z[i];
        y[i] = apply(act, v, 0.f, p0, p1);
    }
}

__global__ void to_bf16_kernel(const float *x, __nv_bfloat16 *y, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void permute_kernel(const float *x, float *y, int ndim, kiln__cu_bcast p, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, ix = 0;
        for (int k = ndim - 1; k >= 0; k--) {
            int64_t q = r / p.dims[k];
            ix += (r - q * p.dims[k]) * p.as[k];
            r = q;
        }
        y[i] = x[ix];
    }
}

extern "C" {

cudaError_t kiln__cu_unary(cudaStream_t s, kiln__cu_op op, const float *a, float *y, int64_t n,
                           float p0, float p1) {
    if (n == 0) return cudaSuccess;
    unary_kernel<<<blocks_for(n), THREADS, 0, s>>>(op, a, y, n, p0, p1);
    return cudaGetLastError();
}

cudaError_t kiln__cu_binary(cudaStream_t s, kiln__cu_op op, const float *a, const float *b,
                            float *y, int64_t n, const kiln__cu_bcast *bc) {
    if (n == 0) return cudaSuccess;
    if (bc)
        binary_bcast_kernel<<<blocks_for(n), THREADS, 0, s>>>(op, a, b, y, n, *bc);
    else
        binary_same_kernel<<<blocks_for(n), THREADS, 0, s>>>(op, a, b, y, n);
    return cudaGetLastError();
}

cudaError_t kiln__cu_bias_act(cudaStream_t s, const float *x, const float *bias, int64_t nbias,
                              int64_t inner, const float *z, float *y, int64_t n, kiln__cu_op act,
                              float p0, float p1) {
    if (n == 0) return cudaSuccess;
    bias_act_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, bias, nbias > 0 ? nbias : 1,
                                                      inner > 0 ? inner : 1, z, y, n, act, p0, p1);
    return cudaGetLastError();
}

cudaError_t kiln__cu_f32_to_bf16(cudaStream_t s, const float *x, uint16_t *y, int64_t n) {
    if (n == 0) return cudaSuccess;
    to_bf16_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, (__nv_bfloat16 *)y, n);
    return cudaGetLastError();
}

cudaError_t kiln__cu_permute(cudaStream_t s, const float *x, float *y, int ndim,
                             const int64_t *ydims, const int64_t *xs, int64_t n) {
    if (n == 0) return cudaSuccess;
    if (ndim > KILN__CU_MAXDIM) return cudaErrorInvalidValue;
    kiln__cu_bcast p = {};
    p.ndim = ndim;
    for (int k = 0; k < ndim; k++) {
        p.dims[k] = ydims[k];
        p.as[k] = xs[k];
    }
    permute_kernel<<<blocks_for(n), THREADS, 0, s>>>(x, y, ndim, p, n);
    return cudaGetLastError();
}

} /* extern "C" */
