/* src/core/elem.c: element-level helpers for the reference kernels (see
 * elem.h for the contracts). */
#include <stdlib.h>
#include <string.h>

#include "core/elem.h"

void kiln__int_range(kiln_dtype dt, int64_t *lo, int64_t *hi) {
    switch (dt) {
    case KILN_DTYPE_I8: *lo = INT8_MIN; *hi = INT8_MAX; break;
    case KILN_DTYPE_U8: *lo = 0; *hi = UINT8_MAX; break;
    case KILN_DTYPE_I16: *lo = INT16_MIN; *hi = INT16_MAX; break;
    case KILN_DTYPE_U16: *lo = 0; *hi = UINT16_MAX; break;
    case KILN_DTYPE_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    case KILN_DTYPE_U32: *lo = 0; *hi = UINT32_MAX; break;
    case KILN_DTYPE_U64: *lo = 0; *hi = -1; break; /* UINT64_MAX bits */
    case KILN_DTYPE_BOOL: *lo = 0; *hi = 1; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

/* Puts the malloc'd string s into *slot, freeing what was there. Takes
 * ownership of s; NULL fails with KILN_E_NOMEM. */
static kiln_status str_slot_take(char **slot, char *s) {
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory for a string element");
    free(*slot);
    *slot = s;
    return KILN_OK;
}

kiln_status kiln__elem_copy(kiln_dtype dt, void *dst, int64_t di, const void *src, int64_t si,
                            int64_t n) {
    if (n <= 0) return KILN_OK;
    if (dt == KILN_DTYPE_STRING) {
        char **d = (char **)dst + di;
        char *const *s = (char *const *)src + si;
        for (int64_t i = 0; i < n; i++) KILN__TRY(str_slot_take(&d[i], kiln__strdup(s[i])));
        return KILN_OK;
    }
    size_t es = kiln_dtype_size(dt);
    memmove((char *)dst + (size_t)di * es, (const char *)src + (size_t)si * es, (size_t)n * es);
    return KILN_OK;
}

kiln_status kiln__elem_fill(kiln_dtype dt, void *dst, int64_t di, int64_t n, const void *value) {
    if (dt == KILN_DTYPE_STRING) {
        for (int64_t i = 0; i < n; i++) KILN__TRY(kiln__elem_copy(dt, dst, di + i, value, 0, 1));
        return KILN_OK;
    }
    size_t es = kiln_dtype_size(dt);
    char *d = (char *)dst + (size_t)di * es;
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * es, value, es);
    return KILN_OK;
}

const void *kiln__elem_zero(kiln_dtype dt) {
    static const uint64_t zero[2] = {0, 0};
    static const char empty[] = "";
    static const char *const empty_ptr = empty;
    return dt == KILN_DTYPE_STRING ? (const void *)&empty_ptr : (const void *)zero;
}

kiln_status kiln__str_take(kiln_tensor *t, int64_t i, char *s) {
    return str_slot_take((char **)t->data + i, s);
}

kiln_status kiln__str_set(kiln_tensor *t, int64_t i, const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = 0;
    }
    return kiln__str_take(t, i, copy);
}
