/* src/backend/device.h: the backend interface for accelerators.
 *
 * The CPU is the host: every op has a reference kernel there, and values
 * live in the plan's host arena. A device (today: one CUDA GPU) adds
 *
 *   - memory: device buffers from a caching allocator (alloc/free below);
 *   - copies between host and device, ordered on the device's one stream;
 *   - kernels: algorithms flagged KILN_ALGOF_CUDA (ops/algo.h) in the same
 *     registry as the CPU ones. supports_op is their prepare(): a node runs
 *     on the device when one of them accepts it, else on the CPU.
 *
 * The executor (src/graph/exec.c) mirrors the host arena on the device (same
 * offsets) and, planning in step order, tracks where each value is valid:
 * before a device step it uploads the inputs valid only on the host, before
 * a CPU step it downloads the inputs valid only on the device, and after the
 * last step the graph outputs. So copies happen only at the edges of the
 * device parts of a plan.
 *
 * Built without CUDA (nvcc not found), kiln__device_open fails with
 * KILN_E_UNSUPPORTED and says so; with CUDA but no GPU, with KILN_E_DEVICE.
 */
#ifndef KILN_DEVICE_H
#define KILN_DEVICE_H

#include <stddef.h>

#include "kiln/status.h"

typedef enum kiln__device_kind {
    KILN__DEVICE_CPU = 0,
    KILN__DEVICE_CUDA = 1,
} kiln__device_kind;

/* One device context: stream, library handles, allocator cache. Shared by
 * the plans of a session; not thread-safe (a session runs one plan at a time). */
typedef struct kiln__device kiln__device;

/* 1 if this build has the CUDA backend (nvcc was found at build time). */
int kiln__device_built(void);
/* Opens GPU 0 (or the one CUDA_VISIBLE_DEVICES names first). */
kiln_status kiln__device_open(kiln__device **out);
/* Waits for queued work, frees cached and live buffers' memory. NULL ok. */
void kiln__device_close(kiln__device *d);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.6 GiB)"; static storage of d. */
const char *kiln__device_name(const kiln__device *d);

/* Device memory of at least bytes (256-byte aligned), from the cache when a
 * freed block fits; on out of memory the cache is released and the
 * allocation tried once more. */
kiln_status kiln__device_alloc(kiln__device *d, size_t bytes, void **out);
/* Returns ptr (from kiln__device_alloc; NULL ok) to the cache, after the
 * work queued so far (a later kernel may reuse it). */
void kiln__device_free(kiln__device *d, void *ptr);

/* Copies queued on the device's stream, in order with its kernels. The host
 * side of an upload must stay unchanged, of a download unread, until
 * kiln__device_sync. */
kiln_status kiln__device_upload(kiln__device *d, void *dst, const void *src, size_t bytes);
kiln_status kiln__device_download(kiln__device *d, void *dst, const void *src, size_t bytes);
kiln_status kiln__device_copy(kiln__device *d, void *dst, const void *src, size_t bytes);
/* Page-locks bytes of host memory at ptr (cudaHostRegister) so that copies
 * from and to it run as DMA without staging, until
 * kiln__device_host_unregister(d, ptr); ptr must not be freed before. Returns
 * 0 if the memory could not be locked (the copies still work, slower). */
int kiln__device_host_register(kiln__device *d, void *ptr, size_t bytes);
void kiln__device_host_unregister(kiln__device *d, void *ptr);
/* Waits for everything queued; reports an asynchronous kernel failure. */
kiln_status kiln__device_sync(kiln__device *d);

#endif
