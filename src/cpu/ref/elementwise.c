/* src/cpu/ref/elementwise.c: the shared drivers of the elementwise reference
 * kernels: value-class conversion and stores, one unary driver, one
 * broadcasting binary driver (also behind the variadic ops), the select
 * (Where) and copy drivers, and the infer helpers. See elementwise.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cpu/ref/elementwise.h"

/* ---- conversion and stores ------------------------------------------------ */

/* Truncation toward zero; NaN and out-of-range give INT64_MIN (x86 cvttsd2si). */
static int64_t ew_f_to_i64(double x) {
    if (x >= -9223372036854775808.0 && x < 9223372036854775808.0) return (int64_t)x;
    return INT64_MIN;
}

/* The same in 32 bits (INT32_MIN), which is what numpy gives for targets of
 * 32 bits and less (it converts through a 32-bit int, then keeps low bits). */
static int32_t ew_f_to_i32(double x) {
    if (x > -2147483649.0 && x < 2147483648.0) return (int32_t)x;
    return INT32_MIN;
}

static uint64_t ew_f_to_u64(double x) {
    if (x >= 9223372036854775808.0 && x < 18446744073709551616.0) return (uint64_t)x;
    return (uint64_t)ew_f_to_i64(x);
}

kiln__ew_val kiln__ew_convert(kiln__ew_class from, kiln__ew_class to, kiln__ew_val v) {
    kiln__ew_val r = v;
    if (from == to) return r;
    switch (to) {
    case KILN__EW_F: r.f = from == KILN__EW_I ? (double)v.i : (double)v.u; break;
    case KILN__EW_I: r.i = from == KILN__EW_F ? ew_f_to_i64(v.f) : (int64_t)v.u; break;
    case KILN__EW_U: r.u = from == KILN__EW_F ? ew_f_to_u64(v.f) : (uint64_t)v.i; break;
    default: break;
    }
    return r;
}

/* x (finite, nonzero) rounded to nearest even in a binary format with p
 * significant bits and normal exponents [emin, emax]; +-inf past its max. */
static double ew_round_format(double x, int p, int emin, int emax) {
    int e = ilogb(x);
    if (e < emin) e = emin; /* subnormal: fixed quantum */
    double q = ldexp(1.0, e - p + 1);
    double r = nearbyint(x / q) * q;
    double max = ldexp(2.0 - ldexp(1.0, 1 - p), emax);
    return fabs(r) > max ? copysign(INFINITY, x) : r;
}

/* double to f16 / bf16 rounding once (not through f32, which could round twice). */
static uint16_t ew_to_f16(double x) {
    float f = (float)x;
    if ((double)f == x || x != x) return kiln_f32_to_f16(f);
    return kiln_f32_to_f16((float)ew_round_format(x, 11, -14, 15));
}

static uint16_t ew_to_bf16(double x) {
    float f = (float)x;
    if ((double)f == x || x != x) return kiln_f32_to_bf16(f);
    return kiln_f32_to_bf16((float)ew_round_format(x, 8, -126, 127));
}

void kiln__ew_store(kiln_dtype dt, void *base, int64_t k, kiln__ew_class cls, kiln__ew_val v) {
    if (dt == KILN_DTYPE_BOOL) {
        ((uint8_t *)base)[k] = cls == KILN__EW_F ? v.f != 0 : v.u != 0;
        return;
    }
    if (dt == KILN_DTYPE_F32 && cls != KILN__EW_F) { /* one rounding from 64-bit ints */
        ((float *)base)[k] = cls == KILN__EW_I ? (float)v.i : (float)v.u;
        return;
    }
    if (cls == KILN__EW_F && kiln_dtype_size(dt) <= 4 && dt != KILN_DTYPE_U32 &&
        !kiln__dtype_is_float(dt)) {
        v.i = ew_f_to_i32(v.f);
        cls = KILN__EW_I;
    }
    v = kiln__ew_convert(cls, kiln__ew_class_of(dt), v);
    switch (dt) {
    case KILN_DTYPE_F32: ((float *)base)[k] = (float)v.f; break;
    case KILN_DTYPE_F64: ((double *)base)[k] = v.f; break;
    case KILN_DTYPE_F16: ((uint16_t *)base)[k] = ew_to_f16(v.f); break;
    case KILN_DTYPE_BF16: ((uint16_t *)base)[k] = ew_to_bf16(v.f); break;
    case KILN_DTYPE_I8: ((int8_t *)base)[k] = (int8_t)v.i; break;
    case KILN_DTYPE_I16: ((int16_t *)base)[k] = (int16_t)v.i; break;
    case KILN_DTYPE_I32: ((int32_t *)base)[k] = (int32_t)v.i; break;
    case KILN_DTYPE_I64: ((int64_t *)base)[k] = v.i; break;
    case KILN_DTYPE_U8: ((uint8_t *)base)[k] = (uint8_t)v.u; break;
    case KILN_DTYPE_U16: ((uint16_t *)base)[k] = (uint16_t)v.u; break;
    case KILN_DTYPE_U32: ((uint32_t *)base)[k] = (uint32_t)v.u; break;
    case KILN_DTYPE_U64: ((uint64_t *)base)[k] = v.u; break;
    default: break;
    }
}

kiln_status kiln__ew_set_string(char **slot, const char *s) {
    char *d = kiln__strdup(s ? s : "");
    if (!d) return kiln__err(KILN_E_NOMEM, "out of memory copying a string element");
    free(*slot);
    *slot = d;
    return KILN_OK;
}

/* ---- loops over a broadcast shape ------------------------------------------ */

/* Operand 0 is the (contiguous) output; operands 1.. are inputs read as
 * broadcast to its shape. Dims are coalesced where every operand allows, so
 * the innermost dim (walked by the row function) is as long as possible. */
typedef struct ew_loop {
    int ndim, nops;
    int64_t dims[KILN_MAX_DIMS];
    int64_t strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
} ew_loop;

/* fn handles n elements of a row: operand j at off[j] + t * step[j], t < n. */
typedef void (*ew_row_fn)(void *ctx, const int64_t *off, const int64_t *step, int64_t n);

static void ew_loop_init(ew_loop *l, const kiln_tensor *y, int nin, const kiln_tensor *const *in) {
    int64_t st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    int nops = nin + 1;
    kiln__contiguous_strides(y->ndim, y->dims, st[0]);
    for (int j = 0; j < nin; j++)
        kiln__bcast_strides(in[j]->ndim, in[j]->dims, y->ndim, y->dims, st[j + 1]);
    l->nops = nops;
    l->ndim = 0;
    for (int i = 0; i < y->ndim; i++) {
        if (y->dims[i] == 1) continue;
        int n = l->ndim, merge = n > 0;
        for (int j = 0; j < nops && merge; j++)
            merge = l->strides[j][n - 1] == st[j][i] * y->dims[i];
        if (merge) {
            l->dims[n - 1] *= y->dims[i];
            for (int j = 0; j < nops; j++) l->strides[j][n - 1] = st[j][i];
        } else {
            l->dims[n] = y->dims[i];
            for (int j = 0; j < nops; j++) l->strides[j][n] = st[j][i];
            l->ndim++;
        }
    }
    if (l->ndim == 0) { /* scalar-like: one element */
        l->ndim = 1;
        l->dims[0] = 1;
        for (int j = 0; j < nops; j++) l->strides[j][0] = 0;
    }
}

/* Runs fn over the output's linear elements [lo, hi), row by row. */
static void ew_loop_run(const ew_loop *l, int64_t lo, int64_t hi, ew_row_fn fn, void *ctx) {
    if (lo >= hi) return;
    int inner = l->ndim - 1;
    int64_t len = l->dims[inner];
    int64_t step[KILN__ITER_MAX_OPS], off[KILN__ITER_MAX_OPS];
    int64_t outer_st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    for (int j = 0; j < l->nops; j++) {
        step[j] = l->strides[j][inner];
        for (int i = 0; i < inner; i++) outer_st[j][i] = l->strides[j][i];
    }
    kiln__iter it;
    kiln__iter_init(&it, inner, l->dims, l->nops, outer_st);
    kiln__iter_seek(&it, lo / len);
    int64_t t0 = lo % len;
    for (int64_t k = lo; k < hi; t0 = 0, kiln__iter_next(&it)) {
        int64_t n = len - t0 < hi - k ? len - t0 : hi - k;
        for (int j = 0; j < l->nops; j++) off[j] = it.off[j] + t0 * step[j];
        fn(ctx, off, step, n);
        k += n;
    }
}

/* ---- unary driver ---------------------------------------------------------- */

kiln_status kiln__ew_unary_run(const kiln__kctx *c, const kiln__ew_unary *op,
                               const kiln__ew_prm *p, const kiln_tensor *x, kiln_tensor *y) {
    kiln__ew_class cx = kiln__ew_class_of(x->dtype), cc = cx;
    if ((cx == KILN__EW_I && !op->i) || (cx == KILN__EW_U && !op->u)) cc = KILN__EW_F;
    if (cx == KILN__EW_S || (cc == KILN__EW_F && !op->f))
        return kiln__err(KILN_E_UNSUPPORTED, "no kernel for input dtype %s",
                         kiln_dtype_name(x->dtype));
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    if (x->dtype == KILN_DTYPE_F32 && y->dtype == KILN_DTYPE_F32) { /* common case */
        const float *xs = x->data;
        float *ys = y->data;
        for (int64_t k = lo; k < hi; k++) ys[k] = (float)op->f(xs[k], p);
        return KILN_OK;
    }
    for (int64_t k = lo; k < hi; k++) {
        kiln__ew_val v = kiln__ew_convert(cx, cc, kiln__ew_load(x->dtype, x->data, k));
        switch (cc) {
        case KILN__EW_F: v.f = op->f(v.f, p); break;
        case KILN__EW_I: v.i = op->i(v.i, p); break;
        default: v.u = op->u(v.u, p); break;
        }
        kiln__ew_store(y->dtype, y->data, k, cc, v);
    }
    return KILN_OK;
}

/* ---- binary driver ---------------------------------------------------------- */

typedef struct ew_bin_ctx {
    const kiln__ew_binary *op;
    const kiln__ew_prm *p;
    const kiln_tensor *a, *b;
    kiln_tensor *y;
    kiln__ew_class ca, cb, cc; /* classes of a, b and of the computation */
} ew_bin_ctx;

/* off/step: 0 = y, 1 = a, 2 = b. */
static void ew_bin_row(void *vctx, const int64_t *off, const int64_t *step, int64_t n) {
    const ew_bin_ctx *x = vctx;
    const kiln__ew_binary *op = x->op;
    kiln_dtype da = x->a->dtype, db = x->b->dtype, dy = x->y->dtype;
    int64_t oy = off[0], oa = off[1], ob = off[2];
    if (x->cc == KILN__EW_S) {
        char *const *as = x->a->data, *const *bs = x->b->data;
        for (int64_t t = 0; t < n; t++, oy += step[0], oa += step[1], ob += step[2])
            ((uint8_t *)x->y->data)[oy] = (uint8_t)op->s(as[oa], bs[ob]);
        return;
    }
    if (da == KILN_DTYPE_F32 && db == KILN_DTYPE_F32 && dy == KILN_DTYPE_F32) {
        const float *as = x->a->data, *bs = x->b->data;
        float *ys = x->y->data;
        for (int64_t t = 0; t < n; t++, oy += step[0], oa += step[1], ob += step[2])
            ys[oy] = (float)op->f(as[oa], bs[ob], x->p);
        return;
    }
    for (int64_t t = 0; t < n; t++, oy += step[0], oa += step[1], ob += step[2]) {
        kiln__ew_val a = kiln__ew_convert(x->ca, x->cc, kiln__ew_load(da, x->a->data, oa));
        kiln__ew_val b = kiln__ew_convert(x->cb, x->cc, kiln__ew_load(db, x->b->data, ob));
        switch (x->cc) {
        case KILN__EW_F: a.f = op->f(a.f, b.f, x->p); break;
        case KILN__EW_I: a.i = op->i(a.i, b.i, x->p); break;
        default: a.u = op->u(a.u, b.u, x->p); break;
        }
        kiln__ew_store(dy, x->y->data, oy, x->cc, a);
    }
}

kiln_status kiln__ew_binary_run(const kiln__kctx *c, const kiln__ew_binary *op,
                                const kiln__ew_prm *p, const kiln_tensor *a,
                                const kiln_tensor *b, kiln_tensor *y) {
    ew_bin_ctx x = {op, p, a, b, y, kiln__ew_class_of(a->dtype), kiln__ew_class_of(b->dtype),
                    KILN__EW_F};
    /* Mixed classes (Pow): float wins, else signed integer arithmetic. */
    if (x.ca == x.cb)
        x.cc = x.ca;
    else if (x.ca == KILN__EW_S || x.cb == KILN__EW_S)
        return kiln__err(KILN_E_TYPE, "cannot combine %s with %s", kiln_dtype_name(a->dtype),
                         kiln_dtype_name(b->dtype));
    else
        x.cc = x.ca == KILN__EW_F || x.cb == KILN__EW_F ? KILN__EW_F : KILN__EW_I;
    if ((x.cc == KILN__EW_I && !op->i) || (x.cc == KILN__EW_U && !op->u)) x.cc = KILN__EW_F;
    if ((x.cc == KILN__EW_S && !op->s) || (x.cc == KILN__EW_F && !op->f))
        return kiln__err(KILN_E_UNSUPPORTED, "no kernel for input dtype %s",
                         kiln_dtype_name(a->dtype));
    const kiln_tensor *in[2] = {a, b};
    ew_loop l;
    ew_loop_init(&l, y, 2, in);
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    ew_loop_run(&l, lo, hi, ew_bin_row, &x);
    return KILN_OK;
}

kiln_status kiln__ew_variadic_run(const kiln__kctx *c, const kiln__ew_binary *op,
                                  const kiln__ew_prm *p) {
    kiln_tensor *y = c->out[0];
    for (int i = 0; i < c->n_in; i++)
        if (!c->in[i]) return kiln__err(KILN_E_INVAL, "input %d is omitted", i);
    if (c->n_in == 1) return kiln__ew_copy_run(c, c->in[0], y);
    /* Every pass covers the same share of y, so no thread waits on another. */
    KILN__TRY(kiln__ew_binary_run(c, op, p, c->in[0], c->in[1], y));
    for (int i = 2; i < c->n_in; i++) KILN__TRY(kiln__ew_binary_run(c, op, p, y, c->in[i], y));
    return KILN_OK;
}

/* ---- select and copy ---------------------------------------------------------- */

typedef struct ew_sel_ctx {
    const uint8_t *cond;
    const kiln_tensor *a, *b;
    kiln_tensor *y;
    size_t esz;
    kiln_status st;
} ew_sel_ctx;

/* off/step: 0 = y, 1 = cond, 2 = a, 3 = b. */
static void ew_sel_row(void *vctx, const int64_t *off, const int64_t *step, int64_t n) {
    ew_sel_ctx *x = vctx;
    int64_t oy = off[0], oc = off[1], oa = off[2], ob = off[3];
    for (int64_t t = 0; t < n; t++, oy += step[0], oc += step[1], oa += step[2], ob += step[3]) {
        const kiln_tensor *src = x->cond[oc] ? x->a : x->b;
        int64_t os = x->cond[oc] ? oa : ob;
        if (x->y->dtype == KILN_DTYPE_STRING) {
            kiln_status st = kiln__ew_set_string((char **)x->y->data + oy,
                                                 ((char *const *)src->data)[os]);
            if (st != KILN_OK) x->st = st;
        } else {
            memcpy((char *)x->y->data + oy * x->esz, (const char *)src->data + os * x->esz,
                   x->esz);
        }
    }
}

kiln_status kiln__ew_select_run(const kiln__kctx *c, const kiln_tensor *cond,
                                const kiln_tensor *a, const kiln_tensor *b, kiln_tensor *y) {
    ew_sel_ctx x = {cond->data, a, b, y, kiln_dtype_size(y->dtype), KILN_OK};
    const kiln_tensor *in[3] = {cond, a, b};
    ew_loop l;
    ew_loop_init(&l, y, 3, in);
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    ew_loop_run(&l, lo, hi, ew_sel_row, &x);
    return x.st;
}

kiln_status kiln__ew_copy_run(const kiln__kctx *c, const kiln_tensor *x, kiln_tensor *y) {
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    if (x->dtype == KILN_DTYPE_STRING) {
        char *const *xs = x->data;
        for (int64_t k = lo; k < hi; k++) KILN__TRY(kiln__ew_set_string((char **)y->data + k, xs[k]));
        return KILN_OK;
    }
    size_t esz = kiln_dtype_size(x->dtype);
    if (hi > lo && x->data != y->data)
        memcpy((char *)y->data + lo * esz, (const char *)x->data + lo * esz, (size_t)(hi - lo) * esz);
    return KILN_OK;
}

/* ---- infer helpers ------------------------------------------------------------ */

kiln_status kiln__ew_input(const kiln__kctx *c, int i, const char *what, kiln_tensor **out) {
    *out = kiln__in(c, i);
    if (!*out) return kiln__err(KILN_E_INVAL, "required input %d (%s) is missing", i, what);
    return KILN_OK;
}

kiln_status kiln__ew_check(const kiln_tensor *t, const char *what, unsigned mask) {
    if (t->dtype > 0 && t->dtype < 32 && (mask >> t->dtype & 1u)) return KILN_OK;
    char list[256] = "";
    size_t len = 0;
    for (int dt = 1; dt < 32; dt++) {
        if (!(mask >> dt & 1u)) continue;
        int w = snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                         kiln_dtype_name((kiln_dtype)dt));
        if (w < 0 || (size_t)w >= sizeof list - len) break;
        len += (size_t)w;
    }
    return kiln__err(KILN_E_TYPE, "%s has dtype %s, expected one of: %s", what,
                     kiln_dtype_name(t->dtype), list);
}

kiln_status kiln__ew_infer_unary(kiln__kctx *c, unsigned mask, kiln_dtype out_dt) {
    kiln_tensor *x;
    KILN__TRY(kiln__ew_input(c, 0, "X", &x));
    KILN__TRY(kiln__ew_check(x, "input 'X'", mask));
    return kiln__out_shape(c, 0, out_dt ? out_dt : x->dtype, x->ndim, x->dims);
}

kiln_status kiln__ew_infer_binary(kiln__kctx *c, unsigned mask, int same_dtype,
                                  kiln_dtype out_dt) {
    kiln_tensor *a, *b;
    KILN__TRY(kiln__ew_input(c, 0, "A", &a));
    KILN__TRY(kiln__ew_input(c, 1, "B", &b));
    KILN__TRY(kiln__ew_check(a, "input 'A'", mask));
    KILN__TRY(kiln__ew_check(b, "input 'B'", mask));
    if (same_dtype && a->dtype != b->dtype)
        return kiln__err(KILN_E_TYPE, "inputs 'A' and 'B' must have the same dtype, got %s and %s",
                         kiln_dtype_name(a->dtype), kiln_dtype_name(b->dtype));
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(kiln__broadcast(a->ndim, a->dims, b->ndim, b->dims, &nd, dims));
    return kiln__out_shape(c, 0, out_dt ? out_dt : a->dtype, nd, dims);
}

kiln_status kiln__ew_infer_variadic(kiln__kctx *c, unsigned mask) {
    if (c->n_in < 1) return kiln__err(KILN_E_INVAL, "needs at least one input");
    kiln_tensor *t0;
    KILN__TRY(kiln__ew_input(c, 0, "data_0", &t0));
    KILN__TRY(kiln__ew_check(t0, "input 0", mask));
    int nd = t0->ndim;
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, t0->dims, (size_t)nd * sizeof *dims);
    for (int i = 1; i < c->n_in; i++) {
        kiln_tensor *t;
        KILN__TRY(kiln__ew_input(c, i, "data_i", &t));
        if (t->dtype != t0->dtype)
            return kiln__err(KILN_E_TYPE, "input %d has dtype %s, expected %s like input 0", i,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(t0->dtype));
        KILN__TRY(kiln__broadcast(nd, dims, t->ndim, t->dims, &nd, dims));
    }
    return kiln__out_shape(c, 0, t0->dtype, nd, dims);
}

/* ---- one-line op definitions ------------------------------------------------------ */

kiln_status kiln__ew_unary_infer(kiln__kctx *c, unsigned mask, kiln_dtype out_dt,
                                 kiln__ew_prm_fn prm) {
    kiln__ew_prm p = {0};
    if (prm) KILN__TRY(prm(c, &p));
    return kiln__ew_infer_unary(c, mask, out_dt);
}

kiln_status kiln__ew_unary_ref(kiln__kctx *c, const kiln__ew_unary *op, kiln__ew_prm_fn prm) {
    kiln__ew_prm p = {0};
    if (prm) KILN__TRY(prm(c, &p));
    return kiln__ew_unary_run(c, op, &p, c->in[0], c->out[0]);
}

kiln_status kiln__ew_binary_infer(kiln__kctx *c, unsigned mask, int same_dtype,
                                  kiln_dtype out_dt, kiln__ew_prm_fn prm) {
    kiln__ew_prm p = {0};
    if (prm) KILN__TRY(prm(c, &p));
    return kiln__ew_infer_binary(c, mask, same_dtype, out_dt);
}

kiln_status kiln__ew_binary_ref(kiln__kctx *c, const kiln__ew_binary *op, kiln__ew_prm_fn prm) {
    kiln__ew_prm p = {0};
    if (prm) KILN__TRY(prm(c, &p));
    return kiln__ew_binary_run(c, op, &p, c->in[0], c->in[1], c->out[0]);
}
