/* src/cpu/ref/reduce.c: reductions over axes (the Reduce* family), running
 * reductions along one axis (CumSum, CumProd) and the determinant (Det).
 *
 * Float inputs accumulate in double and round once on store; integer inputs
 * accumulate in 64 bits (two's complement wrap-around, like numpy's sums in
 * the input dtype once narrowed on store).
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"
#include "ops/reduce.h"

/* ---- shared helpers ------------------------------------------------------ */


/* ---- Reduce* -------------------------------------------------------------- */

typedef enum {
    RED_SUM,
    RED_MEAN,
    RED_MAX,
    RED_MIN,
    RED_PROD,
    RED_L1,
    RED_L2,
    RED_LOGSUM,
    RED_LOGSUMEXP,
    RED_SUMSQUARE,
} reduce_kind;

kiln_status kiln__reduce_axes(kiln__kctx *c, int rank, uint8_t *red) {
    const int axes_input_opset = strcmp(c->node->op_type, "ReduceSum") == 0 ? 13 : 18;
    int64_t axes[KILN_MAX_DIMS];
    int n, from_input = c->opset >= axes_input_opset;
    if (!from_input && kiln__in(c, 1))
        return kiln__err(KILN_E_INVAL, "opset %d takes 'axes' as an attribute, not an input",
                         c->opset);
    KILN__TRY(kiln__ints_arg(c, from_input, "axes", 1, axes, KILN_MAX_DIMS, &n));
    if (n < 0) n = 0; /* absent: all axes (or none with noop_with_empty_axes) */
    int noop = from_input && kiln__attr_i(c->node, "noop_with_empty_axes", 0) != 0;
    memset(red, 0, (size_t)(rank > 0 ? rank : 1));
    if (n == 0) {
        if (!noop) memset(red, 1, (size_t)(rank > 0 ? rank : 1));
        return KILN_OK;
    }
    for (int i = 0; i < n; i++) {
        int ax;
        KILN__TRY(kiln__axis(axes[i], rank, "axes", &ax));
        if (red[ax])
            return kiln__err(KILN_E_INVAL, "'axes' names axis %d twice", ax);
        red[ax] = 1;
    }
    return KILN_OK;
}

// x: (d0,...,dr-1) -> y: reduced axes dropped (keepdims=0) or set to 1
static kiln_status reduce_infer(kiln__kctx *c, int allow_bool) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_numeric(x, "input 'data'", allow_bool));
    uint8_t red[KILN_MAX_DIMS];
    KILN__TRY(kiln__reduce_axes(c, x->ndim, red));
    int keep = kiln__attr_i(c->node, "keepdims", 1) != 0;
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!red[i]) dims[nd++] = x->dims[i];
        else if (keep) dims[nd++] = 1;
    }
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

/* How to walk the reduced elements of one output: the innermost reduced
 * axis as a strided loop (len, stride), the other reduced axes with an
 * iterator. */
typedef struct reduce_plan {
    reduce_kind kind;
    kiln_dtype dt;
    const void *x;
    int n_outer;                     /* reduced axes other than the innermost */
    int64_t outer_dims[KILN_MAX_DIMS];
    int64_t outer_strides[1][KILN_MAX_DIMS];
    int64_t len, stride;             /* innermost reduced axis */
    int64_t count;                   /* number of reduced elements */
} reduce_plan;

/* Reduction of the float elements at base + (reduced offsets), in double. */
static double reduce_one_f(const reduce_plan *p, int64_t base) {
    double acc, mx = -INFINITY;
    switch (p->kind) {
    case RED_PROD: acc = 1; break;
    case RED_MAX: acc = -INFINITY; break;
    case RED_MIN: acc = INFINITY; break;
    default: acc = 0; break;
    }
    /* LogSumExp: first pass finds the largest finite element. */
    for (int pass = p->kind == RED_LOGSUMEXP ? 0 : 1; pass < 2; pass++) {
        kiln__iter it;
        kiln__iter_init(&it, p->n_outer, p->outer_dims, 1, (int64_t(*)[KILN_MAX_DIMS])p->outer_strides);
        int64_t n_rows = p->len ? p->count / p->len : 0;
        for (int64_t r = 0; r < n_rows; r++, kiln__iter_next(&it)) {
            int64_t off = base + it.off[0];
            for (int64_t j = 0; j < p->len; j++, off += p->stride) {
                double v = kiln__elem_ld_f(p->dt, p->x, off);
                if (pass == 0) {
                    if (isfinite(v) && v > mx) mx = v;
                    continue;
                }
                switch (p->kind) {
                case RED_SUM: case RED_MEAN: case RED_LOGSUM: acc += v; break;
                case RED_PROD: acc *= v; break;
                case RED_MAX: if (v > acc || isnan(v)) acc = isnan(acc) ? acc : v; break;
                case RED_MIN: if (v < acc || isnan(v)) acc = isnan(acc) ? acc : v; break;
                case RED_L1: acc += fabs(v); break;
                case RED_L2: case RED_SUMSQUARE: acc += v * v; break;
                case RED_LOGSUMEXP: acc += exp(v - mx); break;
                }
            }
        }
        if (pass == 0 && mx == -INFINITY) mx = 0; /* no finite element */
    }
    switch (p->kind) {
    case RED_MEAN: return acc / (double)p->count;
    case RED_L2: return sqrt(acc);
    case RED_LOGSUM: return log(acc);
    case RED_LOGSUMEXP: return p->count ? log(acc) + mx : -INFINITY;
    default: return acc;
    }
}

/* Reduction of integer elements in 64 bits (uint64 compared unsigned).
 * Returns the result as int64 bits, or sets *fres for the kinds whose result
 * is computed in floating point (L2, LogSum). */
static int64_t reduce_one_i(const reduce_plan *p, int64_t base, double *fres) {
    int is_u64 = p->dt == KILN_DTYPE_U64;
    int64_t lo, hi, acc;
    kiln__int_range(p->dt, &lo, &hi);
    switch (p->kind) {
    case RED_PROD: acc = 1; break;
    case RED_MAX: acc = lo; break;
    case RED_MIN: acc = hi; break;
    default: acc = 0; break;
    }
    kiln__iter it;
    kiln__iter_init(&it, p->n_outer, p->outer_dims, 1, (int64_t(*)[KILN_MAX_DIMS])p->outer_strides);
    int64_t n_rows = p->len ? p->count / p->len : 0;
    for (int64_t r = 0; r < n_rows; r++, kiln__iter_next(&it)) {
        int64_t off = base + it.off[0];
        for (int64_t j = 0; j < p->len; j++, off += p->stride) {
            int64_t v = kiln__elem_ld_i(p->dt, p->x, off);
            uint64_t uv = (uint64_t)v, ua = (uint64_t)acc;
            switch (p->kind) {
            case RED_SUM: case RED_MEAN: case RED_LOGSUM: acc = (int64_t)(ua + uv); break;
            case RED_PROD: acc = (int64_t)(ua * uv); break;
            case RED_MAX: if (is_u64 ? uv > ua : v > acc) acc = v; break;
            case RED_MIN: if (is_u64 ? uv < ua : v < acc) acc = v; break;
            case RED_L1: acc = (int64_t)(ua + (v < 0 && !is_u64 ? 0 - uv : uv)); break;
            case RED_L2: case RED_SUMSQUARE: acc = (int64_t)(ua + uv * uv); break;
            case RED_LOGSUMEXP: break; /* computed in floating point */
            }
        }
    }
    double facc = is_u64 ? (double)(uint64_t)acc : (double)acc;
    switch (p->kind) {
    case RED_MEAN:
        if (!p->count) return 0;
        return is_u64 ? (int64_t)((uint64_t)acc / (uint64_t)p->count) : acc / p->count;
    case RED_L2: *fres = sqrt(facc); return 0;
    case RED_LOGSUM: *fres = log(facc); return 0;
    default: return acc;
    }
}

// x: (d0,...,dr-1) any numeric, y: (kept dims) same dtype
static kiln_status reduce_ref(kiln__kctx *c, reduce_kind kind) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    uint8_t red[KILN_MAX_DIMS];
    KILN__TRY(kiln__reduce_axes(c, x->ndim, red));

    reduce_plan p = {.kind = kind, .dt = x->dtype, .x = x->data, .len = 1, .stride = 1};
    int64_t xstr[KILN_MAX_DIMS];
    kiln__contiguous_strides(x->ndim, x->dims, xstr);
    int64_t kept_dims[KILN_MAX_DIMS], kept_str[1][KILN_MAX_DIMS];
    int n_kept = 0, inner = -1;
    for (int i = 0; i < x->ndim; i++)
        if (red[i]) inner = i;
    p.count = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (!red[i]) {
            kept_dims[n_kept] = x->dims[i];
            kept_str[0][n_kept++] = xstr[i];
        } else {
            p.count *= x->dims[i];
            if (i == inner) {
                p.len = x->dims[i];
                p.stride = xstr[i];
            } else {
                p.outer_dims[p.n_outer] = x->dims[i];
                p.outer_strides[0][p.n_outer++] = xstr[i];
            }
        }
    }

    int64_t n_out = kiln__n(y), lo, hi;
    kiln__split(n_out, c->ith, c->nth, &lo, &hi);
    if (lo >= hi) return KILN_OK;
    kiln__iter it;
    kiln__iter_init(&it, n_kept, kept_dims, 1, kept_str);
    kiln__iter_seek(&it, lo);
    /* LogSumExp of integers has no exact integer form: use the float path. */
    int float_path = kiln__dtype_is_float(x->dtype) || kind == RED_LOGSUMEXP;
    for (int64_t o = lo; o < hi; o++, kiln__iter_next(&it)) {
        if (float_path) {
            double v = reduce_one_f(&p, it.off[0]);
            if (kiln__dtype_is_float(y->dtype)) kiln__elem_st_f(y->dtype, y->data, o, v);
            else kiln__st_f(y->dtype, y->data, o, v);
        } else {
            double fv = 0;
            int64_t v = reduce_one_i(&p, it.off[0], &fv);
            if (kind == RED_L2 || kind == RED_LOGSUM) kiln__st_f(y->dtype, y->data, o, fv);
            else kiln__elem_st_i(y->dtype, y->data, o, v);
        }
    }
    return KILN_OK;
}

/* One infer/kernel pair per Reduce op: the kind, and whether bool inputs
 * are allowed. */
#define KILN__REDUCE_OP(Name, kind, allow_bool)                                                 \
    kiln_status kiln__infer_##Name(kiln__kctx *c) { return reduce_infer(c, allow_bool); }      \
    kiln_status kiln__ref_##Name(kiln__kctx *c) { return reduce_ref(c, kind); }

KILN__REDUCE_OP(ReduceSum, RED_SUM, 0)
KILN__REDUCE_OP(ReduceMean, RED_MEAN, 0)
KILN__REDUCE_OP(ReduceMax, RED_MAX, 1)
KILN__REDUCE_OP(ReduceMin, RED_MIN, 1)
KILN__REDUCE_OP(ReduceProd, RED_PROD, 0)
KILN__REDUCE_OP(ReduceL1, RED_L1, 0)
KILN__REDUCE_OP(ReduceL2, RED_L2, 0)
KILN__REDUCE_OP(ReduceLogSum, RED_LOGSUM, 0)
KILN__REDUCE_OP(ReduceLogSumExp, RED_LOGSUMEXP, 0)
KILN__REDUCE_OP(ReduceSumSquare, RED_SUMSQUARE, 0)
#undef KILN__REDUCE_OP

/* ---- CumSum, CumProd -------------------------------------------------------- */

/* Reads the scalar 'axis' input of CumSum/CumProd and normalizes it. */
static kiln_status cum_axis(const kiln__kctx *c, int *axis) {
    const kiln_tensor *a = c->in[1];
    int64_t v;
    int n;
    if (a->ndim > 1)
        return kiln__err(KILN_E_SHAPE, "input 'axis' has rank %d, expected a scalar", a->ndim);
    KILN__TRY(kiln__read_ints(a, "input 'axis'", &v, 1, &n));
    if (n != 1) return kiln__err(KILN_E_SHAPE, "input 'axis' has %d elements, expected 1", n);
    return kiln__axis(v, c->in[0]->ndim, "input 'axis'", axis);
}

// x: (d0,...,dr-1), axis: scalar int32/int64, y: like x
static kiln_status cum_infer(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_numeric(x, "input 'x'", 0));
    KILN__TRY(kiln__check_dtype(c->in[1], "input 'axis'", KILN_DTYPE_I32, KILN_DTYPE_I64, 0));
    if (x->ndim == 0) return kiln__err(KILN_E_SHAPE, "input 'x' is a scalar, expected rank >= 1");
    if (c->in[1]->data) {
        int axis;
        KILN__TRY(cum_axis(c, &axis));
    }
    return kiln__out_like(c, 0, x);
}

/* Running sum (product) along the axis; exclusive shifts by one, reverse
 * runs from the end. Each line is split (outer, inner) around the axis. */
static kiln_status cum_ref(kiln__kctx *c, int product) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int axis;
    KILN__TRY(cum_axis(c, &axis));
    int exclusive = kiln__attr_i(c->node, "exclusive", 0) != 0;
    int reverse = kiln__attr_i(c->node, "reverse", 0) != 0;
    int64_t len = x->dims[axis], inner = 1, outer = 1;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = axis + 1; i < x->ndim; i++) inner *= x->dims[i];
    int is_float = kiln__dtype_is_float(x->dtype);
    int64_t lo, hi;
    kiln__split(outer * inner, c->ith, c->nth, &lo, &hi);
    for (int64_t line = lo; line < hi; line++) {
        int64_t base = (line / inner) * len * inner + line % inner;
        double facc = product ? 1 : 0;
        uint64_t iacc = product ? 1 : 0;
        for (int64_t j = 0; j < len; j++) {
            int64_t off = base + (reverse ? len - 1 - j : j) * inner;
            if (is_float) {
                double v = kiln__elem_ld_f(x->dtype, x->data, off);
                if (!exclusive) facc = product ? facc * v : facc + v;
                kiln__elem_st_f(y->dtype, y->data, off, facc);
                if (exclusive) facc = product ? facc * v : facc + v;
            } else {
                uint64_t v = (uint64_t)kiln__elem_ld_i(x->dtype, x->data, off);
                if (!exclusive) iacc = product ? iacc * v : iacc + v;
                kiln__elem_st_i(y->dtype, y->data, off, (int64_t)iacc);
                if (exclusive) iacc = product ? iacc * v : iacc + v;
            }
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_CumSum(kiln__kctx *c) { return cum_infer(c); }
kiln_status kiln__ref_CumSum(kiln__kctx *c) { return cum_ref(c, 0); }
kiln_status kiln__infer_CumProd(kiln__kctx *c) { return cum_infer(c); }
kiln_status kiln__ref_CumProd(kiln__kctx *c) { return cum_ref(c, 1); }

/* ---- Det -------------------------------------------------------------------- */

// x: (*, M, M) float, y: (*)
kiln_status kiln__infer_Det(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "input 'X'", KILN__FLOAT_DTYPES));
    char buf[128];
    if (x->ndim < 2 || x->dims[x->ndim - 1] != x->dims[x->ndim - 2])
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected (*, M, M)",
                         kiln__shape_str(x->ndim, x->dims, buf, sizeof buf));
    int64_t m = x->dims[x->ndim - 1];
    c->scratch_bytes = (size_t)(m * m) * sizeof(double);
    return kiln__out_shape(c, 0, x->dtype, x->ndim - 2, x->dims);
}

/* Determinant of each trailing MxM matrix by LU decomposition with partial
 * pivoting in double (scratch: M*M doubles). */
kiln_status kiln__ref_Det(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int64_t m = x->dims[x->ndim - 1], n_mat = kiln__n(y);
    double *a = c->scratch;
    for (int64_t b = 0; b < n_mat; b++) {
        for (int64_t i = 0; i < m * m; i++)
            a[i] = kiln__elem_ld_f(x->dtype, x->data, b * m * m + i);
        double det = 1;
        for (int64_t k = 0; k < m && det != 0; k++) {
            int64_t piv = k;
            for (int64_t i = k + 1; i < m; i++)
                if (fabs(a[i * m + k]) > fabs(a[piv * m + k])) piv = i;
            if (a[piv * m + k] == 0) {
                det = 0;
                break;
            }
            if (piv != k) {
                for (int64_t j = 0; j < m; j++) {
                    double t = a[k * m + j];
                    a[k * m + j] = a[piv * m + j];
                    a[piv * m + j] = t;
                }
                det = -det;
            }
            det *= a[k * m + k];
            for (int64_t i = k + 1; i < m; i++) {
                double f = a[i * m + k] / a[k * m + k];
                for (int64_t j = k + 1; j < m; j++) a[i * m + j] -= f * a[k * m + j];
            }
        }
        kiln__elem_st_f(y->dtype, y->data, b, det);
    }
    return KILN_OK;
}
