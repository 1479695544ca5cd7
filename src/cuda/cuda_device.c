/* src/cuda/cuda_device.c: the device interface (backend/device.h) on the
 * CUDA runtime: one stream per device context, a cuBLASLt handle with its
 * workspace, a cuDNN handle on first use, and a caching allocator over
 * cudaMalloc (no managed memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "cuda/cuda_internal.h"

#define LT_WORKSPACE_BYTES ((size_t)32 << 20)

int kiln__device_built(void) { return 1; }

kiln_status kiln__cuda_fail(cudaError_t e, const char *what) {
    return kiln__err(KILN_E_DEVICE, "CUDA: %s: %s (%s)", what, cudaGetErrorString(e),
                     cudaGetErrorName(e));
}

kiln_status kiln__cublas_fail(cublasStatus_t e, const char *what) {
    return kiln__err(KILN_E_DEVICE, "cuBLASLt: %s: status %d", what, (int)e);
}

kiln_status kiln__cudnn_fail(cudnnStatus_t e, const char *what) {
    return kiln__err(KILN_E_DEVICE, "cuDNN: %s: %s", what, cudnnGetErrorString(e));
}

kiln_status kiln__device_open(kiln__device **out) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return kiln__err(KILN_E_DEVICE, "no CUDA GPU found%s%s", e != cudaSuccess ? ": " : "",
                         e != cudaSuccess ? cudaGetErrorString(e) : "");
    kiln__device *d = calloc(1, sizeof *d);
    if (!d) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status s = KILN_OK;
    struct cudaDeviceProp prop;
    cudaError_t ce;
    if ((ce = cudaSetDevice(0)) != cudaSuccess || (ce = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess ||
        (ce = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        s = kiln__cuda_fail(ce, "opening GPU 0");
        goto fail;
    }
    d->sm = prop.major * 10 + prop.minor;
    d->n_sm = prop.multiProcessorCount;
    snprintf(d->name, sizeof d->name, "%s (sm_%d, %d SMs, %.1f GiB)", prop.name, d->sm, d->n_sm,
             prop.totalGlobalMem / 1073741824.0);
    cublasStatus_t be = cublasLtCreate(&d->lt);
    if (be != CUBLAS_STATUS_SUCCESS) {
        s = kiln__cublas_fail(be, "cublasLtCreate");
        goto fail;
    }
    if ((ce = cudaHostAlloc((void **)&d->fault_host, sizeof(int), cudaHostAllocMapped)) != cudaSuccess ||
        (ce = cudaHostGetDevicePointer((void **)&d->fault_dev, (void *)d->fault_host, 0)) != cudaSuccess) {
        s = kiln__cuda_fail(ce, "fault flag");
        goto fail;
    }
    *d->fault_host = KILN__CU_FAULT_NONE;
    d->lt_ws_bytes = LT_WORKSPACE_BYTES;
    if ((ce = cudaMalloc(&d->lt_ws, d->lt_ws_bytes)) != cudaSuccess) {
        s = kiln__cuda_fail(ce, "cuBLASLt workspace");
        goto fail;
    }
    *out = d;
    return KILN_OK;
fail:
    kiln__device_close(d);
    return s;
}

void kiln__device_close(kiln__device *d) {
    if (!d) return;
    if (d->stream) cudaStreamSynchronize(d->stream);
    for (int i = 0; i < d->n_live; i++) cudaFree(d->live[i].ptr);
    for (int i = 0; i < d->n_cached; i++) cudaFree(d->cached[i].ptr);
    free(d->live);
    free(d->cached);
    if (d->lt_ws) cudaFree(d->lt_ws);
    if (d->lt) cublasLtDestroy(d->lt);
    if (d->dnn) cudnnDestroy(d->dnn);
    if (d->stream) cudaStreamDestroy(d->stream);
    if (d->fault_host) cudaFreeHost((void *)d->fault_host);
    free(d);
}

const char *kiln__device_name(const kiln__device *d) { return d->name; }

kiln_status kiln__cuda_dnn(kiln__device *d, cudnnHandle_t *out) {
    if (!d->dnn) {
        KILN__CUDNN(cudnnCreate(&d->dnn), "cudnnCreate");
        KILN__CUDNN(cudnnSetStream(d->dnn, d->stream), "cudnnSetStream");
    }
    *out = d->dnn;
    return KILN_OK;
}

/* ---- caching allocator ------------------------------------------------------ */

/* Sizes round up to 512 bytes below 1 MiB and to 2 MiB above, so freed
 * blocks fit later requests of about the same size. */
static size_t round_size(size_t n) {
    if (n == 0) n = 1;
    if (n < ((size_t)1 << 20)) return (n + 511) & ~(size_t)511;
    return (n + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
}

static kiln_status push_block(kiln__dblock **arr, int *n, int *cap, kiln__dblock b) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        kiln__dblock *a = realloc(*arr, (size_t)nc * sizeof *a);
        if (!a) return kiln__err(KILN_E_NOMEM, "out of memory");
        *arr = a;
        *cap = nc;
    }
    (*arr)[(*n)++] = b;
    return KILN_OK;
}

static void release_cache(kiln__device *d) {
    cudaStreamSynchronize(d->stream);
    for (int i = 0; i < d->n_cached; i++) cudaFree(d->cached[i].ptr);
    d->n_cached = 0;
    d->cached_bytes = 0;
}

kiln_status kiln__device_alloc(kiln__device *d, size_t bytes, void **out) {
    *out = NULL;
    size_t size = round_size(bytes);
    int best = -1; /* smallest cached block that fits without wasting more than half */
    for (int i = 0; i < d->n_cached; i++) {
        size_t c = d->cached[i].size;
        if (c >= size && c <= 2 * size && (best < 0 || c < d->cached[best].size)) best = i;
    }
    kiln__dblock b;
    if (best >= 0) {
        b = d->cached[best];
        d->cached[best] = d->cached[--d->n_cached];
        d->cached_bytes -= b.size;
    } else {
        b.size = size;
        cudaError_t e = cudaMalloc(&b.ptr, size);
        if (e == cudaErrorMemoryAllocation && d->n_cached) {
            cudaGetLastError(); /* clear it, then retry with the cache given back */
            release_cache(d);
            e = cudaMalloc(&b.ptr, size);
        }
        if (e != cudaSuccess) {
            char what[96];
            snprintf(what, sizeof what, "cudaMalloc of %.1f MiB", size / 1048576.0);
            return kiln__cuda_fail(e, what);
        }
    }
    kiln_status s = push_block(&d->live, &d->n_live, &d->cap_live, b);
    if (s != KILN_OK) {
        cudaFree(b.ptr);
        return s;
    }
    *out = b.ptr;
    return KILN_OK;
}

void kiln__device_free(kiln__device *d, void *ptr) {
    if (!d || !ptr) return;
    for (int i = 0; i < d->n_live; i++) {
        if (d->live[i].ptr != ptr) continue;
        kiln__dblock b = d->live[i];
        d->live[i] = d->live[--d->n_live];
        if (push_block(&d->cached, &d->n_cached, &d->cap_cached, b) == KILN_OK)
            d->cached_bytes += b.size;
        else
            cudaFree(b.ptr); /* no room to remember it: give it back (cudaFree syncs) */
        return;
    }
}

/* ---- copies ------------------------------------------------------------------ */

static kiln_status copy(kiln__device *d, void *dst, const void *src, size_t n,
                        enum cudaMemcpyKind kind, const char *what) {
    if (n == 0) return KILN_OK;
    KILN__CUDA(cudaMemcpyAsync(dst, src, n, kind, d->stream), what);
    return KILN_OK;
}

kiln_status kiln__device_upload(kiln__device *d, void *dst, const void *src, size_t n) {
    return copy(d, dst, src, n, cudaMemcpyHostToDevice, "copy to the GPU");
}
kiln_status kiln__device_download(kiln__device *d, void *dst, const void *src, size_t n) {
    return copy(d, dst, src, n, cudaMemcpyDeviceToHost, "copy from the GPU");
}
kiln_status kiln__device_copy(kiln__device *d, void *dst, const void *src, size_t n) {
    return copy(d, dst, src, n, cudaMemcpyDeviceToDevice, "copy on the GPU");
}

int kiln__device_host_register(kiln__device *d, void *ptr, size_t bytes) {
    (void)d;
    if (cudaHostRegister(ptr, bytes, cudaHostRegisterDefault) == cudaSuccess) return 1;
    cudaGetLastError(); /* not sticky: clear it */
    return 0;
}

void kiln__device_host_unregister(kiln__device *d, void *ptr) {
    (void)d;
    if (cudaHostUnregister(ptr) != cudaSuccess) cudaGetLastError();
}

kiln_status kiln__device_sync(kiln__device *d) {
    KILN__CUDA(cudaStreamSynchronize(d->stream), "running the GPU kernels");
    int fault = *d->fault_host;
    if (fault == KILN__CU_FAULT_NONE) return KILN_OK;
    *d->fault_host = KILN__CU_FAULT_NONE;
    if (fault == KILN__CU_FAULT_GATHER_INDEX)
        return kiln__err(KILN_E_INVAL, "Gather on the GPU: an index is out of range (valid: -n "
                         "to n-1 for an axis of n)");
    return kiln__err(KILN_E_INTERNAL, "a GPU kernel reported fault %d", fault);
}
