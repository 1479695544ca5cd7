/* src/cuda/kernels/gather.cu: Gather along one axis (embedding lookups and
 * the like), any dtype of 1, 2, 4 or 8 bytes copied as raw elements; one
 * thread per output element (launcher in cuda/cuda_internal.h). */
#include "cuda/cuda_internal.h"

#define THREADS 256

template <typename T, typename I>
__global__ void gather_kernel(const T *data, const I *idx, T *y, int64_t axis_n, int64_t n_idx,
                              int64_t inner, int64_t n, int *fault) {
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = e % inner, t = e / inner;
        int64_t i = t % n_idx, o = t / n_idx;
        int64_t k = (int64_t)idx[i];
        if (k < 0) k += axis_n;
        if (k < 0 || k >= axis_n) {
            *fault = KILN__CU_FAULT_GATHER_INDEX;
            y[e] = T(0);
            continue;
        }
        y[e] = data[(o * axis_n + k) * inner + r];
    }
}

template <typename T>
static cudaError_t launch(cudaStream_t s, const void *data, const void *idx, int idx64, void *y,
                          int64_t axis_n, int64_t n_idx, int64_t inner, int64_t n, int *fault) {
    int64_t blocks = (n + THREADS - 1) / THREADS;
    if (blocks > 65535 * 16) blocks = 65535 * 16; /* grid-stride beyond */
    if (idx64)
        gather_kernel<T, int64_t><<<(unsigned)blocks, THREADS, 0, s>>>(
            (const T *)data, (const int64_t *)idx, (T *)y, axis_n, n_idx, inner, n, fault);
    else
        gather_kernel<T, int32_t><<<(unsigned)blocks, THREADS, 0, s>>>(
            (const T *)data, (const int32_t *)idx, (T *)y, axis_n, n_idx, inner, n, fault);
    return cudaGetLastError();
}

extern "C" cudaError_t kiln__cu_gather(cudaStream_t s, const void *data, int elem_size,
                                       const void *idx, int idx64, void *y, int64_t outer,
                                       int64_t axis_n, int64_t n_idx, int64_t inner, int *fault) {
    int64_t n = outer * n_idx * inner;
    if (n == 0) return cudaSuccess;
    switch (elem_size) {
    case 1: return launch<uint8_t>(s, data, idx, idx64, y, axis_n, n_idx, inner, n, fault);
    case 2: return launch<uint16_t>(s, data, idx, idx64, y, axis_n, n_idx, inner, n, fault);
    case 4: return launch<uint32_t>(s, data, idx, idx64, y, axis_n, n_idx, inner, n, fault);
    case 8: return launch<uint64_t>(s, data, idx, idx64, y, axis_n, n_idx, inner, n, fault);
    default: return cudaErrorInvalidValue;
    }
}
