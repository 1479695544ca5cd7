/* src/serve/shm.c: Triton's system shared memory extension: the regions a
 * client registers, and reads and writes of tensors in them.
 *
 * A client creates a POSIX shared memory object (shm_open key, e.g.
 * "/input0"), registers a region of it (name, key, offset, byte_size) with
 * POST /v2/systemsharedmemory/region/<name>/register, and then names the
 * region in an input's or output's parameters instead of sending the bytes.
 * Each region maps [0, offset + byte_size) of its object, shared and
 * writable, at registration.
 *
 * Regions are kept in a list under a read-write lock: a request's reads and
 * writes (memcpy into or out of the mapping) hold it shared, register and
 * unregister hold it exclusive, so a region is never unmapped under a copy.
 * The object's size is checked again before each copy (fstat on the kept
 * descriptor), so a client that shrank its object gets an error rather than
 * a SIGBUS in the server (a shrink racing the copy itself is not caught: the
 * client owns that memory, which is why registration is off unless
 * --allow-client-shm). Input bytes are copied out before they are read, so a
 * client writing the region meanwhile cannot change what was checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "serve/serve_internal.h"

typedef struct shm_region {
    char *name, *key;
    uint64_t offset, byte_size;
    int fd;
    void *map;                   /* [0, map_len) of the object */
    size_t map_len;              /* offset + byte_size */
    struct shm_region *next;
} shm_region;

struct serve_shm {
    pthread_rwlock_t lock;
    shm_region *head;            /* newest first */
};

serve_shm *serve_shm_new(void) {
    serve_shm *s = calloc(1, sizeof *s);
    if (s && pthread_rwlock_init(&s->lock, NULL)) {
        free(s);
        return NULL;
    }
    return s;
}

static void region_free(shm_region *g) {
    if (g->map) munmap(g->map, g->map_len);
    if (g->fd >= 0) close(g->fd);
    free(g->name);
    free(g->key);
    free(g);
}

void serve_shm_free(serve_shm *s) {
    if (!s) return;
    while (s->head) {
        shm_region *g = s->head;
        s->head = g->next;
        region_free(g);
    }
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

static shm_region *find(serve_shm *s, const char *name) {
    for (shm_region *g = s->head; g; g = g->next)
        if (!strcmp(g->name, name)) return g;
    return NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

int serve_shm_register(serve_shm *s, const char *name, const char *key, uint64_t offset,
                       uint64_t byte_size, char *err, size_t errlen) {
    if (!*name || !*key) {
        snprintf(err, errlen, "system shared memory: the region name and the key must not be empty");
        return 400;
    }
    if (offset > (uint64_t)SIZE_MAX - byte_size || offset + byte_size > (uint64_t)INT64_MAX) {
        snprintf(err, errlen, "system shared memory region '%s': offset %" PRIu64 " + byte_size %"
                 PRIu64 " does not fit a file offset", name, offset, byte_size);
        return 400;
    }
    shm_region *g = calloc(1, sizeof *g);
    if (!g || !(g->name = dup_str(name)) || !(g->key = dup_str(key))) {
        if (g) region_free(g);
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    g->fd = -1;
    g->offset = offset;
    g->byte_size = byte_size;
    g->map_len = (size_t)(offset + byte_size);
    int status = 0;
    struct stat st = {0};
    pthread_rwlock_wrlock(&s->lock);
    if (find(s, name)) {
        snprintf(err, errlen, "shared memory region '%s' is already registered (unregister it first)",
                 name);
        status = 400;
    } else if ((g->fd = shm_open(key, O_RDWR, 0)) < 0) {
        snprintf(err, errlen, "unable to open shared memory region '%s': key '%s': %s", name, key,
                 strerror(errno));
        status = 400;
    } else if (fstat(g->fd, &st) || (uint64_t)st.st_size < offset + byte_size) {
        snprintf(err, errlen, "shared memory region '%s': key '%s' holds %jd bytes, fewer than offset "
                 "%" PRIu64 " + byte_size %" PRIu64, name, key, (intmax_t)st.st_size, offset,
                 byte_size);
        status = 400;
    } else if (g->map_len &&
               (g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0)) ==
                   MAP_FAILED) {
        g->map = NULL;
        snprintf(err, errlen, "shared memory region '%s': cannot map key '%s': %s", name, key,
                 strerror(errno));
        status = 400;
    } else {
        g->next = s->head;
        s->head = g;
    }
    pthread_rwlock_unlock(&s->lock);
    if (status) region_free(g);
    return status;
}

int serve_shm_unregister(serve_shm *s, const char *name) {
    pthread_rwlock_wrlock(&s->lock);
    for (shm_region **p = &s->head; *p;) {
        shm_region *g = *p;
        if (!name || !strcmp(g->name, name)) {
            *p = g->next;
            region_free(g);
        } else {
            p = &g->next;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

cJSON *serve_shm_status(serve_shm *s, const char *name, char *err, size_t errlen) {
    cJSON *a = cJSON_CreateArray();
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_rwlock_rdlock(&s->lock);
    int found = 0;
    for (shm_region *g = s->head; g; g = g->next) {
        if (name && strcmp(g->name, name)) continue;
        found = 1;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddStringToObject(o, "name", g->name);
        cJSON_AddStringToObject(o, "key", g->key);
        cJSON_AddNumberToObject(o, "offset", (double)g->offset);
        cJSON_AddNumberToObject(o, "byte_size", (double)g->byte_size);
    }
    pthread_rwlock_unlock(&s->lock);
    if (name && !found) {
        cJSON_Delete(a);
        snprintf(err, errlen, "unable to find system shared memory region: '%s'", name);
        return NULL;
    }
    return a;
}

/* The bytes [offset, offset + size) of region `name`, with the lock held
 * shared (the caller unlocks); NULL with err (and the lock released) when the
 * region is unknown, the range lies outside it, or its object shrank. */
static char *locate(serve_shm *s, const char *name, uint64_t offset, uint64_t size, char *err,
                    size_t errlen) {
    pthread_rwlock_rdlock(&s->lock);
    shm_region *g = find(s, name);
    struct stat st;
    if (!g)
        snprintf(err, errlen, "unable to find system shared memory region: '%s'", name);
    else if (offset > g->byte_size || size > g->byte_size - offset)
        snprintf(err, errlen, "%" PRIu64 " bytes at offset %" PRIu64 " lie outside shared memory "
                 "region '%s' of %" PRIu64 " bytes", size, offset, name, g->byte_size);
    else if (fstat(g->fd, &st) || (uint64_t)st.st_size < g->offset + g->byte_size)
        snprintf(err, errlen, "shared memory region '%s': its object '%s' shrank below the "
                 "registered size", name, g->key);
    else /* an empty region has no mapping: a pointer that is never read */
        return g->map ? (char *)g->map + g->offset + offset : (char *)"";
    pthread_rwlock_unlock(&s->lock);
    return NULL;
}

int serve_shm_read(void *ctx, const char *name, uint64_t offset, uint64_t size, void *dst,
                   char *err, size_t errlen) {
    serve_shm *s = ctx;
    const char *src = locate(s, name, offset, size, err, errlen);
    if (!src) return 400;
    if (dst && size) memcpy(dst, src, (size_t)size); /* an empty region maps nothing */
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

int serve_shm_write(serve_shm *s, const char *name, uint64_t offset, uint64_t capacity,
                    const void *src, size_t n, char *err, size_t errlen) {
    if (n > capacity) {
        snprintf(err, errlen, "shared_memory_byte_size is %" PRIu64 " but the output takes %zu bytes",
                 capacity, n);
        return 400;
    }
    char *dst = locate(s, name, offset, capacity, err, errlen);
    if (!dst) return 400;
    if (n) memcpy(dst, src, n);
    pthread_rwlock_unlock(&s->lock);
    return 0;
}
