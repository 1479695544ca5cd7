/* src/ops/op_util.c: helpers shared by infer functions and kernels. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

/* Storage kind of a dtype: plain bytes, owned strings, owned tensors. */
static int storage_kind(kiln_dtype dt) {
    return kiln__is_container(dt) ? 2 : dt == KILN_DTYPE_STRING ? 1 : 0;
}

/* Sets t's header to h's, keeping t's storage unless its kind of content
 * changes (then it is freed, by the old kind, before the header changes). */
static void set_header(kiln_tensor *t, const kiln_tensor *h) {
    if (t->owns && storage_kind(t->dtype) != storage_kind(h->dtype)) kiln__tensor_release(t);
    t->dtype = h->dtype;
    t->elem = h->elem;
    t->ndim = h->ndim;
    memcpy(t->dims, h->dims, sizeof t->dims);
    memcpy(t->strides, h->strides, sizeof t->strides);
}

kiln_status kiln__out_shape(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    kiln_tensor tmp;
    kiln_status s = kiln__tensor_init(&tmp, dt, ndim, dims);
    if (s != KILN_OK) return kiln__err_prefix(s, "output %d", i);
    set_header(t, &tmp);
    return KILN_OK;
}

kiln_status kiln__out_container(kiln__kctx *c, int i, kiln_dtype kind, kiln_dtype elem, int64_t n) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    kiln_tensor tmp;
    memset(&tmp, 0, sizeof tmp);
    KILN__TRY(kiln__container_init(&tmp, kind, elem, n));
    set_header(t, &tmp);
    return KILN_OK;
}

kiln_status kiln__out_like(kiln__kctx *c, int i, const kiln_tensor *t) {
    if (kiln__is_container(t->dtype)) return kiln__out_container(c, i, t->dtype, t->elem, t->dims[0]);
    return kiln__out_shape(c, i, t->dtype, t->ndim, t->dims);
}

kiln_status kiln__out_alloc(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    if (t->data && !t->owns)
        return kiln__err(KILN_E_INTERNAL, "output %d is planned storage; op must not allocate", i);
    KILN__TRY(kiln__out_shape(c, i, dt, ndim, dims));
    return kiln__tensor_reserve(t);
}

kiln_status kiln__out_assign(kiln__kctx *c, int i, const kiln_tensor *src) {
    kiln_tensor *t = kiln__out(c, i);
    if (!t) return KILN_OK;
    if (t->data && !t->owns)
        return kiln__err(KILN_E_INTERNAL, "output %d is planned storage; op must not allocate", i);
    KILN__TRY(kiln__out_like(c, i, src));
    KILN__TRY(kiln__tensor_reserve(t));
    if (kiln_tensor_is_contiguous(src) || kiln__is_container(src->dtype))
        return kiln__tensor_copy_data(t, src);
    kiln_tensor *tmp;
    KILN__TRY(kiln_tensor_copy(src, KILN_DTYPE_UNDEFINED, &tmp));
    kiln_status s = kiln__tensor_copy_data(t, tmp);
    kiln_tensor_free(tmp);
    return s;
}

/* Checks shared by kiln__read_ints/_floats: t is 1-D (or a scalar) with
 * data and at most max elements; sets *cnt. The dtype is checked by the
 * caller. */
static kiln_status check_list(const kiln_tensor *t, const char *what, int max, int64_t *cnt) {
    if (t->ndim > 1) return kiln__err(KILN_E_SHAPE, "%s must be 1-D, got rank %d", what, t->ndim);
    *cnt = kiln__n(t);
    if (*cnt > max)
        return kiln__err(KILN_E_LIMIT, "%s has %" PRId64 " elements, at most %d allowed", what,
                         *cnt, max);
    if (!t->data) return kiln__err(KILN_E_INTERNAL, "%s has no data", what);
    return KILN_OK;
}

kiln_status kiln__read_ints(const kiln_tensor *t, const char *what, int64_t *v, int max, int *n) {
    int64_t cnt;
    if (t->dtype != KILN_DTYPE_I64 && t->dtype != KILN_DTYPE_I32)
        return kiln__err(KILN_E_TYPE, "%s must be int64 or int32, got %s", what,
                         kiln_dtype_name(t->dtype));
    KILN__TRY(check_list(t, what, max, &cnt));
    for (int64_t i = 0; i < cnt; i++) v[i] = kiln__ld_i(t->dtype, t->data, i);
    *n = (int)cnt;
    return KILN_OK;
}

kiln_status kiln__read_floats(const kiln_tensor *t, const char *what, double *v, int max, int *n) {
    int64_t cnt;
    if (!kiln__dtype_is_float(t->dtype))
        return kiln__err(KILN_E_TYPE, "%s must be a float tensor, got %s", what,
                         kiln_dtype_name(t->dtype));
    KILN__TRY(check_list(t, what, max, &cnt));
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

/* ---- op-level readers and checks shared by the reference kernels -------- */

kiln_status kiln__ints_arg(const kiln__kctx *c, int from_input, const char *name, int input,
                           int64_t *v, int max, int *n) {
    *n = -1;
    if (from_input) {
        const kiln_tensor *t = kiln__in(c, input);
        if (!t) return KILN_OK;
        if (!t->data) return KILN__NEED_VALUE;
        char what[64];
        snprintf(what, sizeof what, "input '%s'", name);
        return kiln__read_ints(t, what, v, max, n);
    }
    const int64_t *a;
    int k = kiln__attr_ints(c->node, name, &a);
    if (k < 0) return KILN_OK;
    if (k > max)
        return kiln__err(KILN_E_LIMIT, "attribute '%s' has %d values, at most %d are supported",
                         name, k, max);
    if (k > 0) memcpy(v, a, (size_t)k * sizeof(*v));
    *n = k;
    return KILN_OK;
}

kiln_status kiln__check_shape(const kiln_tensor *t, const char *what, int ndim,
                              const int64_t *dims) {
    if (!t) return KILN_OK;
    if (t->ndim == ndim) {
        int same = 1;
        for (int i = 0; i < ndim; i++) same &= t->dims[i] == dims[i];
        if (same) return KILN_OK;
    }
    char got[128], want[128];
    return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected %s", what,
                     kiln__shape_str(t->ndim, t->dims, got, sizeof got),
                     kiln__shape_str(ndim, dims, want, sizeof want));
}

kiln_status kiln__check_numeric(const kiln_tensor *t, const char *what, int allow_bool) {
    if (kiln__dtype_is_float(t->dtype) || kiln__dtype_is_int(t->dtype)) return KILN_OK;
    if (allow_bool && t->dtype == KILN_DTYPE_BOOL) return KILN_OK;
    return kiln__err(KILN_E_TYPE, "%s has dtype %s, expected a numeric%s tensor", what,
                     kiln_dtype_name(t->dtype), allow_bool ? " or bool" : "");
}
