/* src/cuda/kernels/reduce.cuh: block-wide f32 reductions for the row
 * kernels (softmax.cu, norm.cu). blockDim.x a multiple of 32, at most 1024;
 * red: 32 floats of shared memory. Every thread gets the result. */
#ifndef KILN_CUDA_REDUCE_CUH
#define KILN_CUDA_REDUCE_CUH

__device__ __forceinline__ float kiln__warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float kiln__warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float kiln__block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kiln__warp_sum(v);
    __syncthreads(); /* red may still be read from a previous reduction */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.f;
    return kiln__warp_sum(v);
}

__device__ __forceinline__ float kiln__block_max(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kiln__warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -3.402823466e38f;
    return kiln__warp_max(v);
}

#endif
