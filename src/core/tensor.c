/* src/core/tensor.c: tensors (create, wrap, views, copies with conversion). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int64_t kiln__numel(int ndim, const int64_t *dims) {
    /* the product of the non-zero dims must fit too: strides are computed from it */
    int64_t n = 1, zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) {
            zero = 1;
            continue;
        }
        if (n > KILN__MAX_NUMEL / dims[i]) return -1;
        n *= dims[i];
    }
    return zero ? 0 : n;
}

void kiln__contiguous_strides(int ndim, const int64_t *dims, int64_t *strides) {
    uint64_t s = 1; /* unsigned: callers may pass unvalidated dims; no UB on overflow */
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = (int64_t)s;
        s *= dims[i] > 0 ? (uint64_t)dims[i] : 1;
    }
}

const char *kiln__shape_str(int ndim, const int64_t *dims, char *buf, size_t n) {
    size_t k = 0;
    k += snprintf(buf + k, n - k, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, i ? ",%" PRId64 : "%" PRId64, dims[i]);
    if (k < n) snprintf(buf + k, n - k, ndim == 1 ? ",)" : ")");
    return buf;
}

kiln_status kiln__tensor_init(kiln_tensor *t, kiln_dtype dt, int ndim, const int64_t *dims) {
    char sb[256];
    memset(t, 0, sizeof *t);
    if (!kiln_dtype_valid(dt)) return kiln__err(KILN_E_TYPE, "invalid dtype %d", (int)dt);
    if (ndim < 0 || ndim > KILN_MAX_DIMS)
        return kiln__err(KILN_E_LIMIT, "rank %d exceeds the maximum of %d", ndim, KILN_MAX_DIMS);
    int64_t n = kiln__numel(ndim, dims);
    if (n < 0)
        return kiln__err(KILN_E_LIMIT, "invalid or too large shape %s",
                         kiln__shape_str(ndim, dims, sb, sizeof sb));
    if ((uint64_t)n * kiln_dtype_size(dt) > (uint64_t)KILN__MAX_TENSOR_BYTES)
        return kiln__err(KILN_E_LIMIT, "tensor of shape %s (%s) exceeds the size limit",
                         kiln__shape_str(ndim, dims, sb, sizeof sb), kiln_dtype_name(dt));
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    kiln__contiguous_strides(ndim, t->dims, t->strides);
    return KILN_OK;
}

/* Bytes of one element: tensor pointers for containers. */
static size_t elem_size(kiln_dtype dt) {
    return kiln__is_container(dt) ? sizeof(kiln_tensor *) : kiln_dtype_size(dt);
}

size_t kiln__tensor_bytes(const kiln_tensor *t) {
    int64_t n = kiln__numel(t->ndim, t->dims);
    return n < 0 ? 0 : (size_t)n * elem_size(t->dtype);
}

kiln_status kiln__container_init(kiln_tensor *t, kiln_dtype kind, kiln_dtype elem, int64_t n) {
    if (!kiln__is_container(kind)) return kiln__err(KILN_E_INTERNAL, "not a container dtype");
    if (n < 0 || n > (kind == KILN__DTYPE_OPTIONAL ? 1 : KILN__MAX_NUMEL / 8))
        return kiln__err(KILN_E_LIMIT, "container of %lld elements", (long long)n);
    t->dtype = kind;
    t->elem = elem;
    t->ndim = 1;
    t->dims[0] = n;
    t->strides[0] = 1;
    return KILN_OK;
}

void kiln__container_set(kiln_tensor *t, int64_t i, kiln_tensor *item) {
    kiln_tensor **slots = t->data;
    kiln_tensor_free(slots[i]);
    slots[i] = item;
}

const char *kiln__type_str(const kiln_tensor *t, char *buf, size_t n) {
    if (!kiln__is_container(t->dtype)) {
        snprintf(buf, n, "%s", kiln_dtype_name(t->dtype));
        return buf;
    }
    const kiln_tensor *inner = t->dims[0] > 0 && t->data ? kiln__container_item(t, 0) : NULL;
    char sub[128];
    if (inner)
        kiln__type_str(inner, sub, sizeof sub);
    else
        snprintf(sub, sizeof sub, "%s", kiln_dtype_name(t->elem));
    snprintf(buf, n, "%s(%s)", t->dtype == KILN__DTYPE_SEQUENCE ? "sequence" : "optional", sub);
    return buf;
}

static void free_strings(kiln_tensor *t, int64_t from, int64_t to) {
    char **s = t->data;
    for (int64_t i = from; i < to; i++) {
        free(s[i]);
        s[i] = NULL;
    }
}

static void free_items(kiln_tensor *t, int64_t from, int64_t to) {
    kiln_tensor **s = t->data;
    for (int64_t i = from; i < to; i++) {
        kiln_tensor_free(s[i]);
        s[i] = NULL;
    }
}

kiln_status kiln__tensor_reserve(kiln_tensor *t) {
    size_t bytes = kiln__tensor_bytes(t);
    if (t->data && t->owns && t->cap >= bytes) {
        if (kiln__is_container(t->dtype)) /* slots past the new length hold nothing */
            free_items(t, (int64_t)(bytes / sizeof(kiln_tensor *)),
                       (int64_t)(t->cap / sizeof(kiln_tensor *)));
        if (t->dtype == KILN_DTYPE_STRING) { /* make sure every slot holds a string */
            char **s = t->data;
            for (int64_t i = 0; i < (int64_t)(bytes / sizeof(char *)); i++)
                if (!s[i] && !(s[i] = kiln__strdup(""))) return KILN_E_NOMEM;
        }
        return KILN_OK;
    }
    void *p = kiln__aligned_alloc(bytes);
    if (!p) return KILN_E_NOMEM;
    memset(p, 0, bytes ? bytes : 64);
    kiln__tensor_release(t);
    t->data = p;
    t->cap = bytes;
    t->owns = 1;
    if (t->dtype == KILN_DTYPE_STRING) {
        char **s = p;
        for (size_t i = 0; i < bytes / sizeof(char *); i++)
            if (!(s[i] = kiln__strdup(""))) return KILN_E_NOMEM;
    }
    return KILN_OK;
}

void kiln__tensor_release(kiln_tensor *t) {
    if (t->owns && t->data) {
        if (t->dtype == KILN_DTYPE_STRING) free_strings(t, 0, (int64_t)(t->cap / sizeof(char *)));
        if (kiln__is_container(t->dtype)) free_items(t, 0, (int64_t)(t->cap / sizeof(kiln_tensor *)));
        kiln__aligned_free(t->data);
    }
    t->data = NULL;
    t->cap = 0;
    t->owns = 0;
}

kiln_status kiln_tensor_create(kiln_dtype dt, int ndim, const int64_t *dims, kiln_tensor **out) {
    *out = NULL;
    kiln_tensor *t = malloc(sizeof *t);
    if (!t) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status s = kiln__tensor_init(t, dt, ndim, dims);
    if (s == KILN_OK) s = kiln__tensor_reserve(t);
    if (s != KILN_OK) {
        kiln_tensor_free(t);
        return s;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln_tensor_wrap(kiln_dtype dt, int ndim, const int64_t *dims, void *data,
                             kiln_tensor **out) {
    *out = NULL;
    kiln_tensor *t = malloc(sizeof *t);
    if (!t) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status s = kiln__tensor_init(t, dt, ndim, dims);
    if (s != KILN_OK) {
        free(t);
        return s;
    }
    t->data = data;
    *out = t;
    return KILN_OK;
}

void kiln_tensor_free(kiln_tensor *t) {
    if (!t) return;
    kiln__tensor_release(t);
    free(t);
}

kiln_dtype kiln_tensor_dtype(const kiln_tensor *t) { return t->dtype; }
int kiln_tensor_ndim(const kiln_tensor *t) { return t->ndim; }
const int64_t *kiln_tensor_dims(const kiln_tensor *t) { return t->dims; }
const int64_t *kiln_tensor_strides(const kiln_tensor *t) { return t->strides; }
void *kiln_tensor_data(const kiln_tensor *t) { return t->data; }
int64_t kiln_tensor_numel(const kiln_tensor *t) { return kiln__numel(t->ndim, t->dims); }

int kiln_tensor_is_contiguous(const kiln_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->dims[i] != 1 && t->strides[i] != s) return 0;
        s *= t->dims[i];
    }
    return 1;
}

int kiln__same_shape(const kiln_tensor *a, const kiln_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

/* ---- views --------------------------------------------------------------- */

static kiln_status view_of(const kiln_tensor *t, kiln_tensor **out) {
    kiln_tensor *v = malloc(sizeof *v);
    if (!v) return kiln__err(KILN_E_NOMEM, "out of memory");
    *v = *t;
    v->owns = 0;
    v->cap = 0;
    *out = v;
    return KILN_OK;
}

kiln_status kiln_tensor_transpose_view(const kiln_tensor *t, const int *perm, kiln_tensor **out) {
    int seen[KILN_MAX_DIMS] = {0};
    *out = NULL;
    for (int i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]]++)
            return kiln__err(KILN_E_INVAL, "perm is not a permutation of %d axes", t->ndim);
    }
    KILN__TRY(view_of(t, out));
    for (int i = 0; i < t->ndim; i++) {
        (*out)->dims[i] = t->dims[perm[i]];
        (*out)->strides[i] = t->strides[perm[i]];
    }
    return KILN_OK;
}

kiln_status kiln_tensor_slice_view(const kiln_tensor *t, int axis, int64_t start, int64_t end,
                                   int64_t step, kiln_tensor **out) {
    *out = NULL;
    if (axis < 0 || axis >= t->ndim)
        return kiln__err(KILN_E_INVAL, "slice axis %d out of range for rank %d", axis, t->ndim);
    if (step == 0) return kiln__err(KILN_E_INVAL, "slice step is 0");
    int64_t d = t->dims[axis], n;
    if (step > 0) {
        if (start < 0 || start > d || end < start || end > d)
            return kiln__err(KILN_E_RANGE, "slice [%" PRId64 ":%" PRId64 "] out of range 0..%" PRId64,
                             start, end, d);
        n = (end - start + step - 1) / step;
    } else {
        if (start < 0 || start >= d || end > start || end < -1)
            return kiln__err(KILN_E_RANGE, "slice [%" PRId64 ":%" PRId64 ":%" PRId64 "] out of range",
                             start, end, step);
        n = (start - end - step - 1) / -step;
    }
    KILN__TRY(view_of(t, out));
    kiln_tensor *v = *out;
    if (t->data && n > 0)
        v->data = (char *)t->data + start * t->strides[axis] * (int64_t)kiln_dtype_size(t->dtype);
    v->dims[axis] = n;
    v->strides[axis] = t->strides[axis] * step;
    return KILN_OK;
}

kiln_status kiln_tensor_reshape_view(const kiln_tensor *t, int ndim, const int64_t *dims,
                                     kiln_tensor **out) {
    char a[128], b[128];
    *out = NULL;
    if (!kiln_tensor_is_contiguous(t))
        return kiln__err(KILN_E_INVAL, "reshape view of a non-contiguous tensor");
    if (ndim < 0 || ndim > KILN_MAX_DIMS || kiln__numel(ndim, dims) != kiln__numel(t->ndim, t->dims))
        return kiln__err(KILN_E_SHAPE, "cannot reshape %s to %s",
                         kiln__shape_str(t->ndim, t->dims, a, sizeof a),
                         kiln__shape_str(ndim < 0 || ndim > KILN_MAX_DIMS ? 0 : ndim, dims, b, sizeof b));
    KILN__TRY(view_of(t, out));
    (*out)->ndim = ndim;
    for (int i = 0; i < ndim; i++) (*out)->dims[i] = dims[i];
    kiln__contiguous_strides(ndim, (*out)->dims, (*out)->strides);
    return KILN_OK;
}

/* ---- copies and conversion ----------------------------------------------- */

kiln_status kiln__tensor_copy_data(kiln_tensor *dst, const kiln_tensor *src) {
    int64_t n = kiln__numel(src->ndim, src->dims);
    if (dst->dtype != src->dtype || n != kiln__numel(dst->ndim, dst->dims))
        return kiln__err(KILN_E_INTERNAL, "copy between mismatched tensors");
    if (n <= 0) return KILN_OK;
    if (kiln__is_container(src->dtype)) {
        dst->elem = src->elem;
        for (int64_t i = 0; i < n; i++) {
            const kiln_tensor *item = kiln__container_item(src, i);
            kiln_tensor *c = NULL;
            if (item) KILN__TRY(kiln_tensor_copy(item, KILN_DTYPE_UNDEFINED, &c));
            kiln__container_set(dst, i, c);
        }
        return KILN_OK;
    }
    if (src->dtype == KILN_DTYPE_STRING) {
        char **d = dst->data, *const *s = src->data;
        for (int64_t i = 0; i < n; i++) {
            char *c = kiln__strdup(s[i]);
            if (!c) return KILN_E_NOMEM;
            free(d[i]);
            d[i] = c;
        }
        return KILN_OK;
    }
    memmove(dst->data, src->data, (size_t)n * kiln_dtype_size(src->dtype));
    return KILN_OK;
}

kiln_status kiln__container_new(kiln_dtype kind, kiln_dtype elem, int64_t n, kiln_tensor **out) {
    *out = NULL;
    kiln_tensor *c = calloc(1, sizeof *c);
    if (!c) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status s = kiln__container_init(c, kind, elem, n);
    if (s == KILN_OK) s = kiln__tensor_reserve(c);
    if (s != KILN_OK) {
        kiln_tensor_free(c);
        return s;
    }
    *out = c;
    return KILN_OK;
}

/* Deep copy of a container (dt must be UNDEFINED or the container's kind). */
static kiln_status container_clone(const kiln_tensor *t, kiln_dtype dt, kiln_tensor **out) {
    if (dt != KILN_DTYPE_UNDEFINED && dt != t->dtype)
        return kiln__err(KILN_E_TYPE, "cannot convert a sequence or optional to %s", kiln_dtype_name(dt));
    KILN__TRY(kiln__container_new(t->dtype, t->elem, t->dims[0], out));
    kiln_status s = kiln__tensor_copy_data(*out, t);
    if (s != KILN_OK) {
        kiln_tensor_free(*out);
        *out = NULL;
    }
    return s;
}

/* Converts element si of src (dtype sd) into element di of dst (dtype dd). */
static kiln_status convert_one(kiln_dtype dd, void *dst, int64_t di, kiln_dtype sd,
                               const void *src, int64_t si) {
    if (dd == KILN_DTYPE_STRING) {
        char buf[64];
        if (sd == KILN_DTYPE_STRING) {
            char *c = kiln__strdup(((char *const *)src)[si]);
            if (!c) return KILN_E_NOMEM;
            free(((char **)dst)[di]);
            ((char **)dst)[di] = c;
            return KILN_OK;
        }
        if (sd == KILN_DTYPE_F64)
            snprintf(buf, sizeof buf, "%.17g", kiln__ld_f(sd, src, si));
        else if (kiln__dtype_is_float(sd))
            snprintf(buf, sizeof buf, "%.9g", kiln__ld_f(sd, src, si));
        else if (sd == KILN_DTYPE_U64)
            snprintf(buf, sizeof buf, "%" PRIu64, kiln__ld_u(sd, src, si));
        else
            snprintf(buf, sizeof buf, "%" PRId64, kiln__ld_i(sd, src, si));
        char *c = kiln__strdup(buf);
        if (!c) return KILN_E_NOMEM;
        free(((char **)dst)[di]);
        ((char **)dst)[di] = c;
        return KILN_OK;
    }
    if (sd == KILN_DTYPE_STRING) {
        const char *s = ((char *const *)src)[si];
        if (kiln__dtype_is_float(dd))
            kiln__st_f(dd, dst, di, strtod(s, NULL));
        else if (dd == KILN_DTYPE_U64)
            kiln__st_u(dd, dst, di, strtoull(s, NULL, 10));
        else if (dd == KILN_DTYPE_BOOL)
            kiln__st_i(dd, dst, di, strtod(s, NULL) != 0);
        else
            kiln__st_i(dd, dst, di, strtoll(s, NULL, 10));
        return KILN_OK;
    }
    if (kiln__dtype_is_float(sd) || kiln__dtype_is_float(dd))
        kiln__st_f(dd, dst, di, kiln__ld_f(sd, src, si));
    else if (sd == KILN_DTYPE_U64)
        kiln__st_u(dd, dst, di, kiln__ld_u(sd, src, si));
    else
        kiln__st_i(dd, dst, di, kiln__ld_i(sd, src, si));
    return KILN_OK;
}

kiln_status kiln_tensor_copy(const kiln_tensor *t, kiln_dtype dt, kiln_tensor **out) {
    *out = NULL;
    if (!t->data && kiln__numel(t->ndim, t->dims) > 0)
        return kiln__err(KILN_E_INVAL, "copy of a tensor without data");
    if (kiln__is_container(t->dtype)) return container_clone(t, dt, out);
    if (dt == KILN_DTYPE_UNDEFINED) dt = t->dtype;
    kiln_tensor *c;
    KILN__TRY(kiln_tensor_create(dt, t->ndim, t->dims, &c));
    int64_t n = kiln__numel(t->ndim, t->dims);
    size_t es = kiln_dtype_size(t->dtype);
    if (n > 0 && dt == t->dtype && dt != KILN_DTYPE_STRING && kiln_tensor_is_contiguous(t)) {
        memcpy(c->data, t->data, (size_t)n * es);
        *out = c;
        return KILN_OK;
    }
    int64_t strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    memcpy(strides[0], t->strides, sizeof strides[0]);
    kiln__iter it;
    kiln__iter_init(&it, t->ndim, t->dims, 1, strides);
    for (int64_t i = 0; i < n; i++, kiln__iter_next(&it)) {
        kiln_status s = convert_one(dt, c->data, i, t->dtype, t->data, it.off[0]);
        if (s != KILN_OK) {
            kiln_tensor_free(c);
            return s;
        }
    }
    *out = c;
    return KILN_OK;
}

/* ---- broadcasting and iteration -------------------------------------------- */

kiln_status kiln__broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *ondim,
                            int64_t *odims) {
    int n = na > nb ? na : nb;
    int64_t tmp[KILN_MAX_DIMS];
    if (n > KILN_MAX_DIMS) return kiln__err(KILN_E_LIMIT, "rank %d exceeds %d", n, KILN_MAX_DIMS);
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da == db || db == 1)
            tmp[i] = da;
        else if (da == 1)
            tmp[i] = db;
        else {
            char sa[128], sb[128];
            return kiln__err(KILN_E_SHAPE, "shapes %s and %s cannot be broadcast",
                             kiln__shape_str(na, a, sa, sizeof sa),
                             kiln__shape_str(nb, b, sb, sizeof sb));
        }
    }
    *ondim = n;
    memcpy(odims, tmp, (size_t)n * sizeof *odims);
    return KILN_OK;
}

void kiln__bcast_strides(int ndim, const int64_t *dims, int ondim, const int64_t *odims,
                         int64_t *strides) {
    int64_t cs[KILN_MAX_DIMS];
    kiln__contiguous_strides(ndim, dims, cs);
    for (int i = 0; i < ondim; i++) {
        int j = i - (ondim - ndim);
        strides[i] = (j < 0 || dims[j] == 1) ? 0 : cs[j];
    }
    (void)odims;
}

void kiln__iter_init(kiln__iter *it, int ndim, const int64_t *dims, int nops,
                     int64_t (*strides)[KILN_MAX_DIMS]) {
    memset(it, 0, sizeof *it);
    it->ndim = ndim;
    it->nops = nops;
    for (int i = 0; i < ndim; i++) it->dims[i] = dims[i];
    for (int k = 0; k < nops; k++)
        for (int i = 0; i < ndim; i++) it->strides[k][i] = strides[k][i];
}

void kiln__iter_seek(kiln__iter *it, int64_t k) {
    for (int j = 0; j < it->nops; j++) it->off[j] = 0;
    for (int i = it->ndim - 1; i >= 0; i--) {
        int64_t d = it->dims[i] > 0 ? it->dims[i] : 1;
        it->idx[i] = k % d;
        k /= d;
        for (int j = 0; j < it->nops; j++) it->off[j] += it->idx[i] * it->strides[j][i];
    }
}

void kiln__iter_next(kiln__iter *it) {
    for (int i = it->ndim - 1; i >= 0; i--) {
        if (++it->idx[i] < it->dims[i]) {
            for (int j = 0; j < it->nops; j++) it->off[j] += it->strides[j][i];
            return;
        }
        it->idx[i] = 0;
        for (int j = 0; j < it->nops; j++) it->off[j] -= (it->dims[i] - 1) * it->strides[j][i];
    }
}
