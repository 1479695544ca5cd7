/* src/backend/device_none.c: the device interface of a build without CUDA
 * (device.h): nothing opens, so nothing else is ever called. */
#include "backend/device.h"
#include "core/core.h"

int kiln__device_built(void) { return 0; }

kiln_status kiln__device_open(kiln__device **out) {
    *out = NULL;
    return kiln__err(KILN_E_UNSUPPORTED, "this kiln was built without the CUDA backend (nvcc and "
                     "the CUDA libraries were not found when it was configured)");
}

void kiln__device_close(kiln__device *d) { (void)d; }
const char *kiln__device_name(const kiln__device *d) { return "none"; }

static kiln_status closed(void) {
    return kiln__err(KILN_E_INTERNAL, "device call without a device");
}
kiln_status kiln__device_alloc(kiln__device *d, size_t bytes, void **out) {
    *out = NULL;
    return closed();
}
void kiln__device_free(kiln__device *d, void *ptr) {}
kiln_status kiln__device_upload(kiln__device *d, void *dst, const void *src, size_t n) { return closed(); }
kiln_status kiln__device_download(kiln__device *d, void *dst, const void *src, size_t n) { return closed(); }
kiln_status kiln__device_copy(kiln__device *d, void *dst, const void *src, size_t n) { return closed(); }
int kiln__device_host_register(kiln__device *d, void *ptr, size_t bytes) { return 0; }
void kiln__device_host_unregister(kiln__device *d, void *ptr) {}
kiln_status kiln__device_sync(kiln__device *d) { return closed(); }
