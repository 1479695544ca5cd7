/* src/core/elem.h: element-level helpers for the reference kernels: typed
 * loads and stores with inline fast paths, element moves that own strings,
 * integer dtype ranges and multi-index stepping over shapes.
 *
 * Everything here works on contiguous buffers addressed by element index,
 * like kiln__ld_f / kiln__st_f in core.h, and gives exactly the results of
 * those generic accessors; the fast paths only skip the dtype switch for the
 * common dtypes. src/ops/op.h includes this header, so kernels get it with
 * the op interface. */
#ifndef KILN_ELEM_H
#define KILN_ELEM_H

#include "core/core.h"

/* ---- typed loads and stores -------------------------------------------- */

/* Element i of base (dtype dt) as double: same value as kiln__ld_f, with
 * f32 and f64 read inline. */
static inline double kiln__elem_ld_f(kiln_dtype dt, const void *base, int64_t i) {
    if (dt == KILN_DTYPE_F32) return ((const float *)base)[i];
    if (dt == KILN_DTYPE_F64) return ((const double *)base)[i];
    return kiln__ld_f(dt, base, i);
}
/* Stores v into element i of base (dtype dt): same as kiln__st_f (rounds
 * once, saturates for integers), with f32 and f64 written inline. */
static inline void kiln__elem_st_f(kiln_dtype dt, void *base, int64_t i, double v) {
    if (dt == KILN_DTYPE_F32)
        ((float *)base)[i] = (float)v;
    else if (dt == KILN_DTYPE_F64)
        ((double *)base)[i] = v;
    else
        kiln__st_f(dt, base, i, v);
}
/* Element i as int64: same as kiln__ld_i (uint64 keeps its bit pattern),
 * with i64 and i32 read inline. */
static inline int64_t kiln__elem_ld_i(kiln_dtype dt, const void *base, int64_t i) {
    if (dt == KILN_DTYPE_I64) return ((const int64_t *)base)[i];
    if (dt == KILN_DTYPE_I32) return ((const int32_t *)base)[i];
    return kiln__ld_i(dt, base, i);
}
/* Stores v into element i: same as kiln__st_i (integers wrap to the dtype's
 * width, uint64 takes v's bit pattern), with i64 and i32 written inline. */
static inline void kiln__elem_st_i(kiln_dtype dt, void *base, int64_t i, int64_t v) {
    if (dt == KILN_DTYPE_I64)
        ((int64_t *)base)[i] = v;
    else if (dt == KILN_DTYPE_I32)
        ((int32_t *)base)[i] = (int32_t)v;
    else
        kiln__st_i(dt, base, i, v);
}

/* Smallest and largest value of an integer (or bool: 0, 1) dtype, as int64
 * bits: uint64's largest is -1 (UINT64_MAX's bits). Other dtypes get the
 * int64 range. */
void kiln__int_range(kiln_dtype dt, int64_t *lo, int64_t *hi);

/* ---- element moves (strings owned by their buffer) ---------------------- */

/* Copies elements src[si .. si+n) to dst[di .. di+n) of dtype dt: memmove
 * of the element bytes (overlap allowed); STRING elements are duplicated
 * (a NULL source string copies as "") and the previous string in each
 * destination slot is freed. Fails only on out of memory. */
kiln_status kiln__elem_copy(kiln_dtype dt, void *dst, int64_t di, const void *src, int64_t si,
                            int64_t n);
/* Sets dst[di .. di+n) to the single element *value of dtype dt (for STRING,
 * value points to a char *, duplicated into each slot). */
kiln_status kiln__elem_fill(kiln_dtype dt, void *dst, int64_t di, int64_t n, const void *value);
/* A zero element of any dtype (a pointer to "" for STRING), for fills.
 * Static storage; never freed. */
const void *kiln__elem_zero(kiln_dtype dt);

/* Stores the malloc'd string s as element i of STRING tensor t, freeing the
 * previous one. Takes ownership of s; s NULL (a failed allocation) fails
 * with KILN_E_NOMEM. */
kiln_status kiln__str_take(kiln_tensor *t, int64_t i, char *s);
/* Replaces element i of STRING tensor t with a copy of s[0 .. len). */
kiln_status kiln__str_set(kiln_tensor *t, int64_t i, const char *s, size_t len);

/* ---- shapes and multi-indices ------------------------------------------- */

/* Product of dims[lo .. hi) (1 when empty). Dims must already be validated:
 * no overflow check. */
static inline int64_t kiln__dims_prod(const int64_t *dims, int lo, int hi) {
    int64_t p = 1;
    for (int i = lo; i < hi; i++) p *= dims[i];
    return p;
}

/* *out = a * b for dims or element counts a, b >= 0; returns 0 (leaving
 * *out unchanged) when the product exceeds KILN__MAX_NUMEL. */
static inline int kiln__dims_mul(int64_t a, int64_t b, int64_t *out) {
    if (b > 0 && a > KILN__MAX_NUMEL / b) return 0;
    *out = a * b;
    return 1;
}

/* Advances the multi-index idx over dims[0 .. n) (last dim fastest); returns
 * 0 after the last index (idx is then all zeros again). */
static inline int kiln__next_index(int n, const int64_t *dims, int64_t *idx) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < dims[i]) return 1;
        idx[i] = 0;
    }
    return 0;
}

/* Advances idx over the box [lo, hi) of the first n dims (last fastest);
 * returns 0 after the last index (idx is then lo again; n == 0: a single
 * index). */
static inline int kiln__next_in_box(int n, const int64_t *lo, const int64_t *hi, int64_t *idx) {
    for (int i = n - 1; i >= 0; i--) {
        if (++idx[i] < hi[i]) return 1;
        idx[i] = lo[i];
    }
    return 0;
}

#endif
