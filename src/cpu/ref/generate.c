/* src/cpu/ref/generate.c: ops that produce values from attributes, shapes or
 * scalars: Constant, ConstantOfShape, Range, EyeLike, OneHot, Trilu.
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

/* ---- Constant ------------------------------------------------------------- */

/* The value attributes of Constant: name, attribute type, output dtype and
 * rank (list forms are 1-D). */
static const struct constant_form {
    const char *name;
    kiln__attr_type type;
    kiln_dtype dtype;
    int ndim;
} constant_forms[] = {
    {"value", KILN__ATTR_TENSOR, KILN_DTYPE_UNDEFINED, 0},
    {"value_float", KILN__ATTR_FLOAT, KILN_DTYPE_F32, 0},
    {"value_floats", KILN__ATTR_FLOATS, KILN_DTYPE_F32, 1},
    {"value_int", KILN__ATTR_INT, KILN_DTYPE_I64, 0},
    {"value_ints", KILN__ATTR_INTS, KILN_DTYPE_I64, 1},
    {"value_string", KILN__ATTR_STRING, KILN_DTYPE_STRING, 0},
    {"value_strings", KILN__ATTR_STRINGS, KILN_DTYPE_STRING, 1},
    {"sparse_value", KILN__ATTR_SPARSE_TENSOR, KILN_DTYPE_UNDEFINED, 0},
};

/* The one value attribute of a Constant node (checked to have the type its
 * name implies), with the output dtype and shape (*len: list length). */
static kiln_status constant_attr(const kiln__kctx *c, const kiln__attr **out, kiln_dtype *dt,
                                 int *ndim, int64_t *len) {
    const kiln__attr *a = NULL;
    const struct constant_form *form = NULL;
    for (size_t i = 0; i < sizeof constant_forms / sizeof *constant_forms; i++) {
        const kiln__attr *f = kiln__attr_find(c->node, constant_forms[i].name);
        if (!f) continue;
        if (a)
            return kiln__err(KILN_E_INVAL, "attributes '%s' and '%s' both given; exactly one "
                             "value attribute is allowed", a->name, f->name);
        a = f;
        form = &constant_forms[i];
    }
    if (!a) return kiln__err(KILN_E_INVAL, "no value attribute (value, value_float(s), "
                             "value_int(s), value_string(s))");
    if (form->type == KILN__ATTR_SPARSE_TENSOR)
        return kiln__err(KILN_E_UNSUPPORTED, "attribute 'sparse_value' (sparse constants) is not "
                         "supported");
    if (a->type != form->type || (form->type == KILN__ATTR_TENSOR && !a->t))
        return kiln__err(KILN_E_FORMAT, "attribute '%s' has attribute type %d, expected %d",
                         a->name, (int)a->type, (int)form->type);
    *out = a;
    *dt = form->type == KILN__ATTR_TENSOR ? a->t->dtype : form->dtype;
    *ndim = form->type == KILN__ATTR_TENSOR ? a->t->ndim : form->ndim;
    *len = form->ndim ? a->n : 1;
    return KILN_OK;
}

// (no inputs), output: the attribute's tensor; value_float(s): f32 () or (n),
// value_int(s): int64 () or (n), value_string(s): string () or (n)
kiln_status kiln__infer_Constant(kiln__kctx *c) {
    const kiln__attr *a;
    kiln_dtype dt;
    int ndim;
    int64_t len;
    KILN__TRY(constant_attr(c, &a, &dt, &ndim, &len));
    if (a->type == KILN__ATTR_TENSOR) return kiln__out_shape(c, 0, dt, ndim, a->t->dims);
    return kiln__out_shape(c, 0, dt, ndim, &len);
}

kiln_status kiln__ref_Constant(kiln__kctx *c) {
    const kiln__attr *a;
    kiln_dtype dt;
    int ndim;
    int64_t len;
    KILN__TRY(constant_attr(c, &a, &dt, &ndim, &len));
    kiln_tensor *y = c->out[0];
    if (a->type == KILN__ATTR_TENSOR) return kiln__tensor_copy_data(y, a->t);
    if (len == 0) return KILN_OK; /* an empty list */
    switch (a->type) {
    case KILN__ATTR_FLOAT: *(float *)y->data = a->f; return KILN_OK;
    case KILN__ATTR_FLOATS: memcpy(y->data, a->floats, sizeof(float) * (size_t)len); return KILN_OK;
    case KILN__ATTR_INT: *(int64_t *)y->data = a->i; return KILN_OK;
    case KILN__ATTR_INTS: memcpy(y->data, a->ints, sizeof(int64_t) * (size_t)len); return KILN_OK;
    case KILN__ATTR_STRING: return kiln__elem_copy(dt, y->data, 0, &a->s, 0, 1);
    case KILN__ATTR_STRINGS: return kiln__elem_copy(dt, y->data, 0, a->strings, 0, len);
    default:
        return kiln__err(KILN_E_INVAL, "attribute '%s' has the wrong attribute type %d", a->name,
                         (int)a->type);
    }
}

/* ---- ConstantOfShape ---------------------------------------------------------- */

/* The fill value: attribute 'value' (a 1-element tensor), default f32 0. */
static kiln_status constant_of_shape_value(const kiln__kctx *c, kiln_dtype *dt,
                                           const void **value) {
    const kiln_tensor *v = kiln__attr_tensor(c->node, "value");
    if (!v) {
        *dt = KILN_DTYPE_F32;
        *value = kiln__elem_zero(KILN_DTYPE_F32);
        return KILN_OK;
    }
    if (kiln__n(v) != 1)
        return kiln__err(KILN_E_INVAL, "attribute 'value' must have one element, it has %lld",
                         (long long)kiln__n(v));
    *dt = v->dtype;
    *value = v->data;
    return KILN_OK;
}

// input: (k) int64 shape, output: that shape filled with 'value'
kiln_status kiln__infer_ConstantOfShape(kiln__kctx *c) {
    int64_t shape[KILN_MAX_DIMS];
    int n;
    kiln_dtype dt;
    const void *value;
    KILN__TRY(constant_of_shape_value(c, &dt, &value));
    KILN__TRY(kiln__ints_arg(c, 1, "input", 0, shape, KILN_MAX_DIMS, &n));
    for (int i = 0; i < n; i++)
        if (shape[i] < 0)
            return kiln__err(KILN_E_INVAL, "input 'input' has negative dim %lld at position %d",
                             (long long)shape[i], i);
    return kiln__out_shape(c, 0, dt, n, shape);
}

kiln_status kiln__ref_ConstantOfShape(kiln__kctx *c) {
    kiln_dtype dt;
    const void *value;
    KILN__TRY(constant_of_shape_value(c, &dt, &value));
    return kiln__elem_fill(dt, c->out[0]->data, 0, kiln__n(c->out[0]), value);
}

/* ---- Range ------------------------------------------------------------------ */

/* Checks start/limit/delta (same numeric dtype, one element each) and
 * computes the element count max(ceil((limit - start) / delta), 0). */
static kiln_status range_count(const kiln__kctx *c, int64_t *count) {
    const char *names[3] = {"start", "limit", "delta"};
    kiln_dtype dt = c->in[0]->dtype;
    KILN__TRY(kiln__check_dtype(c->in[0], "input 'start'", KILN_DTYPE_F32, KILN_DTYPE_F64,
                                KILN_DTYPE_F16, KILN_DTYPE_BF16, KILN_DTYPE_I16, KILN_DTYPE_I32,
                                KILN_DTYPE_I64, 0));
    for (int i = 0; i < 3; i++) {
        KILN__NEED(c, i);
        if (c->in[i]->dtype != dt)
            return kiln__err(KILN_E_TYPE, "input '%s' is %s, 'start' is %s", names[i],
                             kiln_dtype_name(c->in[i]->dtype), kiln_dtype_name(dt));
        if (kiln__n(c->in[i]) != 1)
            return kiln__err(KILN_E_SHAPE, "input '%s' must be a scalar", names[i]);
    }
    if (kiln__dtype_is_int(dt)) {
        int64_t s = kiln__ld_i(dt, c->in[0]->data, 0), l = kiln__ld_i(dt, c->in[1]->data, 0);
        int64_t d = kiln__ld_i(dt, c->in[2]->data, 0);
        if (d == 0) return kiln__err(KILN_E_INVAL, "input 'delta' is 0");
        int64_t span; /* int64 spans may overflow */
        if (__builtin_sub_overflow(l, s, &span))
            return kiln__err(KILN_E_LIMIT, "Range from %lld to %lld is too long", (long long)s,
                             (long long)l);
        /* ceil(span / d) when span and d have the same sign, else 0 */
        int64_t n = span != 0 && (span > 0) == (d > 0) ? span / d + (span % d != 0) : 0;
        *count = n;
    } else {
        double s = kiln__ld_f(dt, c->in[0]->data, 0), l = kiln__ld_f(dt, c->in[1]->data, 0);
        double d = kiln__ld_f(dt, c->in[2]->data, 0);
        if (d == 0) return kiln__err(KILN_E_INVAL, "input 'delta' is 0");
        double n = ceil((l - s) / d);
        if (!(n <= (double)KILN__MAX_NUMEL))
            return kiln__err(KILN_E_LIMIT, "Range(%g, %g, %g) has too many elements", s, l, d);
        *count = n > 0 ? (int64_t)n : 0;
    }
    return KILN_OK;
}

// start, limit, delta: () of T, output: (max(ceil((limit - start) / delta), 0)) of T
kiln_status kiln__infer_Range(kiln__kctx *c) {
    int64_t n;
    KILN__TRY(range_count(c, &n));
    return kiln__out_shape(c, 0, c->in[0]->dtype, 1, &n);
}

/* Values follow numpy.arange: x0 = start, x1 = start + delta computed in the
 * compute type, then x_i = x0 + i * (x1 - x0). f16/bf16 compute in f32, or in
 * f64 with stash_type 11; f32/f64 compute in f64. */
kiln_status kiln__ref_Range(kiln__kctx *c) {
    kiln_dtype dt = c->in[0]->dtype;
    void *y = c->out[0]->data;
    int64_t n = kiln__n(c->out[0]);
    if (kiln__dtype_is_int(dt)) {
        int64_t s = kiln__ld_i(dt, c->in[0]->data, 0), d = kiln__ld_i(dt, c->in[2]->data, 0);
        for (int64_t i = 0; i < n; i++) /* wraps like the dtype instead of overflowing */
            kiln__st_i(dt, y, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
        return KILN_OK;
    }
    double s = kiln__ld_f(dt, c->in[0]->data, 0), d = kiln__ld_f(dt, c->in[2]->data, 0);
    int low = dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16;
    if (low && kiln__attr_i(c->node, "stash_type", 1) != 11) {
        float x0 = (float)s, step = (float)(s + d) - x0;
        for (int64_t i = 0; i < n; i++) kiln__st_f(dt, y, i, x0 + (float)i * step);
        return KILN_OK;
    }
    double step = (s + d) - s;
    for (int64_t i = 0; i < n; i++) kiln__st_f(dt, y, i, s + (double)i * step);
    return KILN_OK;
}

/* ---- EyeLike ------------------------------------------------------------------ */

/* Output dtype: attribute 'dtype' or the input's. */
static kiln_status eyelike_dtype(const kiln__kctx *c, kiln_dtype *dt) {
    int64_t d = kiln__attr_i(c->node, "dtype", c->in[0]->dtype);
    if (!kiln_dtype_valid((int)d) || d == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_TYPE, "attribute 'dtype' %lld is not a supported numeric type",
                         (long long)d);
    *dt = (kiln_dtype)d;
    return KILN_OK;
}

// input: (N, M) (values unused), output: (N, M) of dtype, 1 where col - row == k
kiln_status kiln__infer_EyeLike(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_dtype dt = KILN_DTYPE_UNDEFINED;
    if (x->ndim != 2) return kiln__err(KILN_E_SHAPE, "input must be 2-D, got rank %d", x->ndim);
    KILN__TRY(eyelike_dtype(c, &dt));
    return kiln__out_shape(c, 0, dt, 2, x->dims);
}

kiln_status kiln__ref_EyeLike(kiln__kctx *c) {
    kiln_tensor *y = c->out[0];
    int64_t rows = y->dims[0], cols = y->dims[1], k = kiln__attr_i(c->node, "k", 0);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) kiln__st_f(y->dtype, y->data, i * cols + j, j - i == k);
    return KILN_OK;
}

/* ---- OneHot ------------------------------------------------------------------- */

/* depth (a positive scalar of any numeric type) and the normalized axis. */
static kiln_status onehot_args(const kiln__kctx *c, int64_t *depth, int *axis) {
    const kiln_tensor *idx = c->in[0], *d = c->in[1], *values = c->in[2];
    if (kiln__n(values) != 2)
        return kiln__err(KILN_E_SHAPE, "input 'values' must have 2 elements (off, on), it has "
                         "%lld", (long long)kiln__n(values));
    if (d->dtype == KILN_DTYPE_STRING || d->dtype == KILN_DTYPE_BOOL || kiln__n(d) != 1)
        return kiln__err(KILN_E_INVAL, "input 'depth' must be a numeric scalar");
    KILN__NEED(c, 1);
    double dv = kiln__ld_f(d->dtype, d->data, 0);
    if (!(dv >= 1 && dv <= (double)KILN__MAX_NUMEL))
        return kiln__err(KILN_E_INVAL, "input 'depth' is %g, expected in [1, %lld]", dv,
                         (long long)KILN__MAX_NUMEL);
    *depth = (int64_t)dv;
    int64_t a = kiln__attr_i(c->node, "axis", -1);
    int rank = idx->ndim + 1;
    if (a < -rank || a >= rank)
        return kiln__err(KILN_E_RANGE, "attribute 'axis' %lld is out of range for output rank %d",
                         (long long)a, rank);
    *axis = (int)(a < 0 ? a + rank : a);
    return KILN_OK;
}

// indices: (d...) numeric, depth: () numeric, values: (2) [off, on],
// output: d with depth inserted at axis, of values' dtype
kiln_status kiln__infer_OneHot(kiln__kctx *c) {
    const kiln_tensor *idx = c->in[0];
    int64_t depth, dims[KILN_MAX_DIMS];
    int axis;
    if (idx->ndim + 1 > KILN_MAX_DIMS)
        return kiln__err(KILN_E_LIMIT, "output rank %d exceeds %d", idx->ndim + 1, KILN_MAX_DIMS);
    if (idx->dtype == KILN_DTYPE_STRING || idx->dtype == KILN_DTYPE_BOOL)
        return kiln__err(KILN_E_TYPE, "input 'indices' must be numeric, got %s",
                         kiln_dtype_name(idx->dtype));
    KILN__TRY(onehot_args(c, &depth, &axis));
    for (int i = 0, j = 0; i <= idx->ndim; i++) dims[i] = i == axis ? depth : idx->dims[j++];
    return kiln__out_shape(c, 0, c->in[2]->dtype, idx->ndim + 1, dims);
}

/* Indices outside [-depth, depth) give an all-off column (as the spec says). */
kiln_status kiln__ref_OneHot(kiln__kctx *c) {
    const kiln_tensor *idx = c->in[0], *values = c->in[2];
    kiln_tensor *y = c->out[0];
    int64_t depth;
    int axis;
    KILN__TRY(onehot_args(c, &depth, &axis));
    KILN__TRY(kiln__elem_fill(y->dtype, y->data, 0, kiln__n(y), values->data));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < idx->ndim; i++) *(i < axis ? &outer : &inner) *= idx->dims[i];
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            int64_t pos = o * inner + i, v;
            if (kiln__dtype_is_float(idx->dtype)) {
                double f = kiln__ld_f(idx->dtype, idx->data, pos);
                if (!(f > -2.0 * depth && f < 2.0 * depth)) continue;
                v = (int64_t)f;
            } else if (idx->dtype == KILN_DTYPE_U64) {
                uint64_t u = kiln__ld_u(idx->dtype, idx->data, pos);
                if (u >= (uint64_t)depth) continue;
                v = (int64_t)u;
            } else {
                v = kiln__ld_i(idx->dtype, idx->data, pos);
            }
            if (v < 0) v += depth;
            if (v < 0 || v >= depth) continue;
            KILN__TRY(kiln__elem_copy(y->dtype, y->data, (o * depth + v) * inner + i,
                                           values->data, 1, 1));
        }
    }
    return KILN_OK;
}

/* ---- Trilu -------------------------------------------------------------------- */

// input: (..., N, M), k: () int64 optional, output: (..., N, M) with the other triangle zeroed
kiln_status kiln__infer_Trilu(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *k = kiln__in(c, 1);
    if (x->ndim < 2) return kiln__err(KILN_E_SHAPE, "input must have rank >= 2, got %d", x->ndim);
    if (k) {
        KILN__TRY(kiln__check_dtype(k, "input 'k'", KILN_DTYPE_I64, 0));
        if (kiln__n(k) != 1) return kiln__err(KILN_E_SHAPE, "input 'k' must be a scalar");
    }
    return kiln__out_like(c, 0, x);
}

/* upper: keeps col - row >= k; lower: keeps col - row <= k. */
kiln_status kiln__ref_Trilu(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *kt = kiln__in(c, 1);
    kiln_tensor *y = c->out[0];
    int64_t rows = x->dims[x->ndim - 2], cols = x->dims[x->ndim - 1];
    int64_t k = kt ? *(const int64_t *)kt->data : 0;
    int upper = kiln__attr_i(c->node, "upper", 1) != 0;
    if (k < -rows - 1) k = -rows - 1; /* beyond this the result no longer changes */
    if (k > cols + 1) k = cols + 1;
    const void *zero = kiln__elem_zero(x->dtype);
    int64_t mats = rows > 0 && cols > 0 ? kiln__n(x) / (rows * cols) : 0;
    for (int64_t m = 0; m < mats; m++) {
        for (int64_t i = 0; i < rows; i++) {
            int64_t row = (m * rows + i) * cols;
            /* kept columns are [lo, hi) */
            int64_t lo = upper ? i + k : 0, hi = upper ? cols : i + k + 1;
            lo = lo < 0 ? 0 : lo > cols ? cols : lo;
            hi = hi < lo ? lo : hi > cols ? cols : hi;
            KILN__TRY(kiln__elem_fill(x->dtype, y->data, row, lo, zero));
            KILN__TRY(
                kiln__elem_copy(x->dtype, y->data, row + lo, x->data, row + lo, hi - lo));
            KILN__TRY(kiln__elem_fill(x->dtype, y->data, row + hi, cols - hi, zero));
        }
    }
    return KILN_OK;
}
