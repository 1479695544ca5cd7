/* src/core/alloc.c: aligned allocation, the arena block, string copies, time. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

void *kiln__aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) {
        kiln__err(KILN_E_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void kiln__aligned_free(void *p) { free(p); }

char *kiln__strdup(const char *s) {
    size_t n = strlen(s ? s : "");
    char *d = malloc(n + 1);
    if (!d) {
        kiln__err(KILN_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(d, s ? s : "", n + 1);
    return d;
}

kiln_status kiln__arena_reserve(kiln__arena *a, size_t size) {
    if (size <= a->size && a->base) return KILN_OK;
    void *p = kiln__aligned_alloc(size);
    if (!p) return KILN_E_NOMEM;
    kiln__aligned_free(a->base);
    a->base = p;
    a->size = size;
    return KILN_OK;
}

void kiln__arena_free(kiln__arena *a) {
    kiln__aligned_free(a->base);
    a->base = NULL;
    a->size = 0;
}

double kiln__now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *kiln_version(void) { return "0.1.0"; }
