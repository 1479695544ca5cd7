/* src/ops/op_util.c: helpers shared by infer functions and kernels. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

kiln_status kiln__out_shape(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    kiln_tensor tmp;
    kiln_status s = kiln__tensor_init(&tmp, dt, ndim, dims);
    if (s != KILN_OK) return kiln__err_prefix(s, "output %d", i);
    /* keep storage fields (data/cap/owns) of the slot; set the header */
    t->dtype = tmp.dtype;
    t->ndim = tmp.ndim;
    memcpy(t->dims, tmp.dims, sizeof t->dims);
    memcpy(t->strides, tmp.strides, sizeof t->strides);
    return KILN_OK;
}

kiln_status kiln__out_like(kiln__kctx *c, int i, const kiln_tensor *t) {
    return kiln__out_shape(c, i, t->dtype, t->ndim, t->dims);
}

kiln_status kiln__out_alloc(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    if (t->data && !t->owns)
        return kiln__err(KILN_E_INTERNAL, "output %d is planned storage; op must not allocate", i);
    if (t->dtype != dt && t->owns) kiln__tensor_release(t); /* string <-> non-string */
    KILN__TRY(kiln__out_shape(c, i, dt, ndim, dims));
    return kiln__tensor_reserve(t);
}

kiln_status kiln__read_ints(const kiln_tensor *t, const char *what, int64_t *v, int max, int *n) {
    if (t->dtype != KILN_DTYPE_I64 && t->dtype != KILN_DTYPE_I32)
        return kiln__err(KILN_E_TYPE, "%s must be int64 or int32, got %s", what,
                         kiln_dtype_name(t->dtype));
    if (t->ndim > 1) return kiln__err(KILN_E_SHAPE, "%s must be 1-D, got rank %d", what, t->ndim);
    int64_t cnt = kiln__n(t);
    if (cnt > max)
        return kiln__err(KILN_E_LIMIT, "%s has %" PRId64 " elements, at most %d allowed", what,
                         cnt, max);
    if (!t->data) return kiln__err(KILN_E_INTERNAL, "%s has no data", what);
    for (int64_t i = 0; i < cnt; i++) v[i] = kiln__ld_i(t->dtype, t->data, i);
    *n = (int)cnt;
    return KILN_OK;
}

kiln_status kiln__read_floats(const kiln_tensor *t, const char *what, double *v, int max, int *n) {
    if (!kiln__dtype_is_float(t->dtype))
        return kiln__err(KILN_E_TYPE, "%s must be a float tensor, got %s", what,
                         kiln_dtype_name(t->dtype));
    if (t->ndim > 1) return kiln__err(KILN_E_SHAPE, "%s must be 1-D, got rank %d", what, t->ndim);
    int64_t cnt = kiln__n(t);
    if (cnt > max)
        return kiln__err(KILN_E_LIMIT, "%s has %" PRId64 " elements, at most %d allowed", what,
                         cnt, max);
    if (!t->data) return kiln__err(KILN_E_INTERNAL, "%s has no data", what);
    for (int64_t i = 0; i < cnt; i++) v[i] = kiln__ld_f(t->dtype, t->data, i);
    *n = (int)cnt;
    return KILN_OK;
}

kiln_status kiln__axis(int64_t axis, int rank, const char *what, int *out) {
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank > 0 ? rank : 1))
        return kiln__err(KILN_E_RANGE, "%s %" PRId64 " is out of range for rank %d", what, axis,
                         rank);
    *out = (int)a;
    return KILN_OK;
}

kiln_status kiln__check_dtype(const kiln_tensor *t, const char *what, ...) {
    va_list ap;
    char names[256];
    size_t k = 0;
    va_start(ap, what);
    for (;;) {
        int d = va_arg(ap, int);
        if (d == 0) break;
        if ((kiln_dtype)d == t->dtype) {
            va_end(ap);
            return KILN_OK;
        }
        k += snprintf(names + k, sizeof names - (k < sizeof names ? k : sizeof names),
                      "%s%s", k ? ", " : "", kiln_dtype_name((kiln_dtype)d));
        if (k >= sizeof names) k = sizeof names - 1;
    }
    va_end(ap);
    return kiln__err(KILN_E_TYPE, "%s has dtype %s; expected one of: %s", what,
                     kiln_dtype_name(t->dtype), names);
}
