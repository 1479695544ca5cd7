/* src/cpu/ref/norm.c: normalization ops (BatchNormalization,
 * InstanceNormalization, GroupNormalization, LayerNormalization,
 * RMSNormalization, LpNormalization, LRN, MeanVarianceNormalization) and
 * Dropout.
 *
 * Every kernel reads elements as double and accumulates means and variances
 * in double (two passes: mean, then mean of squared deviations), rounding
 * once on store. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/ref/norm.h"


/* Fails unless t is a float tensor of exactly n elements. */
static kiln_status check_param(const kiln_tensor *t, const char *what, int64_t n) {
    char buf[128];
    KILN__TRY(kiln__check_dtype(t, what, KILN__FLOAT_DTYPES));
    if (kiln__n(t) != n)
        return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s (%lld elements), expected %lld elements",
                         what, kiln__shape_str(t->ndim, t->dims, buf, sizeof buf), (long long)kiln__n(t),
                         (long long)n);
    return KILN_OK;
}

/* Fails unless p broadcasts unidirectionally to x's shape. */
static kiln_status check_unidir(const kiln_tensor *x, const kiln_tensor *p, const char *what) {
    char bx[128], bp[128];
    int ok = p->ndim <= x->ndim;
    for (int i = 0; ok && i < p->ndim; i++) {
        int64_t pd = p->dims[p->ndim - 1 - i], xd = x->dims[x->ndim - 1 - i];
        ok = pd == 1 || pd == xd;
    }
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, which does not broadcast to X's shape %s",
                         what, kiln__shape_str(p->ndim, p->dims, bp, sizeof bp),
                         kiln__shape_str(x->ndim, x->dims, bx, sizeof bx));
    return KILN_OK;
}

double kiln__mean_var(kiln_dtype dt, const void *x, int64_t base, int64_t n, int64_t stride,
                      double *var) {
    double sum = 0, sq = 0;
    for (int64_t k = 0; k < n; k++) sum += kiln__elem_ld_f(dt, x, base + k * stride);
    double mean = sum / (double)n;
    for (int64_t k = 0; k < n; k++) {
        double d = kiln__elem_ld_f(dt, x, base + k * stride) - mean;
        sq += d * d;
    }
    *var = sq / (double)n;
    return mean;
}

double kiln__channel_mean_var(kiln_dtype dt, const void *x, int64_t N, int64_t C, int64_t inner,
                              int64_t c, double *var) {
    double sum = 0, sq = 0, cnt = (double)(N * inner);
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < inner; i++) sum += kiln__elem_ld_f(dt, x, (n * C + c) * inner + i);
    double mean = sum / cnt;
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < inner; i++) {
            double d = kiln__elem_ld_f(dt, x, (n * C + c) * inner + i) - mean;
            sq += d * d;
        }
    *var = sq / cnt;
    return mean;
}

/* ---- BatchNormalization --------------------------------------------------
 * x: (N,C,D1..Dk); scale, bias, mean, var: (C) (or (C,D1..Dk) when
 * spatial=0 in opset < 9); y: like x.
 * Inference: y = scale * (x - mean) / sqrt(var + eps) + bias.
 * Training (opset >= 14: training_mode=1; older: extra outputs requested):
 * batch statistics over N and D1..Dk normalize x; outputs running_mean =
 * mean * momentum + batch_mean * (1 - momentum) (same for var, population
 * variance). Opset < 14 also outputs saved_mean, saved_var (batch stats). */

/* Features F and elements per feature per sample (inner) of x. */
static void bn_layout(const kiln__kctx *c, int64_t *F, int64_t *inner) {
    const kiln_tensor *x = c->in[0];
    int64_t C = x->dims[1], S = kiln__dims_prod(x->dims, 2, x->ndim);
    int per_activation = c->opset < 9 && kiln__attr_i(c->node, "spatial", 1) == 0 &&
                         kiln__n(c->in[1]) == C * S && S != 1;
    *F = per_activation ? C * S : C;
    *inner = per_activation ? 1 : S;
}

static int bn_training(const kiln__kctx *c) {
    if (c->opset >= 14) return kiln__attr_i(c->node, "training_mode", 0) != 0;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) return 1;
    return 0;
}

kiln_status kiln__infer_BatchNormalization(kiln__kctx *c) {
    static const char *names[] = {"X", "scale", "B", "input_mean", "input_var"};
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    if (x->ndim < 2) return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected at least 2", x->ndim);
    for (int i = 1; i < 5; i++)
        if (!c->in[i]) return kiln__err(KILN_E_INVAL, "input '%s' is required", names[i]);
    int64_t F, inner;
    bn_layout(c, &F, &inner);
    for (int i = 1; i < 5; i++) KILN__TRY(check_param(c->in[i], names[i], F));
    KILN__TRY(kiln__out_like(c, 0, x));
    /* outputs 1..4: running mean, running var, saved mean, saved var */
    for (int i = 1; i < c->n_out && i < 5; i++) {
        if (c->opset >= 14 && i > 2) break;
        KILN__TRY(kiln__out_like(c, i, c->in[(i % 2) ? 3 : 4]));
    }
    return KILN_OK;
}

// x: (N,C,D...) viewed as (N,F,inner); params: (F); outputs 1..4: (F)
kiln_status kiln__ref_BatchNormalization(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    double eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    double momentum = kiln__attr_f(c->node, "momentum", 0.9f);
    int training = bn_training(c);
    int64_t N = x->dims[0], F, inner, lo, hi;
    bn_layout(c, &F, &inner);
    kiln__split(F, c->ith, c->nth, &lo, &hi);
    const kiln_tensor *sc = c->in[1], *bi = c->in[2], *rm = c->in[3], *rv = c->in[4];
    kiln_tensor *o_mean = kiln__out(c, 1), *o_var = kiln__out(c, 2);
    kiln_tensor *o_smean = c->opset < 14 ? kiln__out(c, 3) : NULL;
    kiln_tensor *o_svar = c->opset < 14 ? kiln__out(c, 4) : NULL;
    for (int64_t f = lo; f < hi; f++) {
        double mean = kiln__elem_ld_f(rm->dtype, rm->data, f),
               var = kiln__elem_ld_f(rv->dtype, rv->data, f);
        double run_mean = mean, run_var = var;
        if (training) {
            mean = kiln__channel_mean_var(x->dtype, x->data, N, F, inner, f, &var);
            run_mean = run_mean * momentum + mean * (1 - momentum);
            run_var = run_var * momentum + var * (1 - momentum);
        }
        if (o_mean) kiln__elem_st_f(o_mean->dtype, o_mean->data, f, run_mean);
        if (o_var) kiln__elem_st_f(o_var->dtype, o_var->data, f, run_var);
        if (o_smean) kiln__elem_st_f(o_smean->dtype, o_smean->data, f, mean);
        if (o_svar) kiln__elem_st_f(o_svar->dtype, o_svar->data, f, var);
        double a = kiln__elem_ld_f(sc->dtype, sc->data, f) / sqrt(var + eps);
        double b = kiln__elem_ld_f(bi->dtype, bi->data, f) - mean * a;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t off = (n * F + f) * inner + i;
                kiln__elem_st_f(y->dtype, y->data, off,
                                kiln__elem_ld_f(x->dtype, x->data, off) * a + b);
            }
    }
    return KILN_OK;
}

/* ---- GroupNormalization / InstanceNormalization ---------------------------
 * x: (N,C,D1..Dk), scale, bias: (C) or (G) (GroupNormalization-18 form),
 * y: like x. Statistics per sample per group of C/G channels over the
 * group's channels and D1..Dk; InstanceNormalization is G = C. */

static kiln_status group_norm_infer(kiln__kctx *c, int64_t groups) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    if (x->ndim < 2) return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected at least 2", x->ndim);
    int64_t C = x->dims[1];
    if (groups <= 0 || C % groups != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'num_groups' is %lld, expected a positive divisor of C = %lld",
                         (long long)groups, (long long)C);
    static const char *names[] = {"X", "scale", "B"};
    for (int i = 1; i < 3; i++) {
        const kiln_tensor *p = c->in[i];
        if (!p) return kiln__err(KILN_E_INVAL, "input '%s' is required", names[i]);
        KILN__TRY(check_param(p, names[i], kiln__n(p) == groups ? groups : C));
    }
    return kiln__out_like(c, 0, x);
}

// x: (N,C,S) with S = D1*..*Dk; parallel over the N*G groups
static kiln_status group_norm_run(kiln__kctx *c, int64_t groups, double eps) {
    const kiln_tensor *x = c->in[0], *sc = c->in[1], *bi = c->in[2];
    kiln_tensor *y = c->out[0];
    int64_t N = x->dims[0], C = x->dims[1], S = kiln__dims_prod(x->dims, 2, x->ndim);
    int64_t cpg = C / groups, lo, hi;
    int per_channel = kiln__n(sc) == C;
    kiln__split(N * groups, c->ith, c->nth, &lo, &hi);
    for (int64_t ng = lo; ng < hi; ng++) {
        int64_t g = ng % groups, base = ng * cpg * S;
        double var, mean = kiln__mean_var(x->dtype, x->data, base, cpg * S, 1, &var);
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t k = 0; k < cpg; k++) {
            int64_t p = per_channel ? g * cpg + k : g;
            double a = kiln__elem_ld_f(sc->dtype, sc->data, p) * inv,
                   b = kiln__elem_ld_f(bi->dtype, bi->data, p);
            for (int64_t s = 0; s < S; s++) {
                int64_t off = base + k * S + s;
                kiln__elem_st_f(y->dtype, y->data, off,
                                (kiln__elem_ld_f(x->dtype, x->data, off) - mean) * a + b);
            }
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_GroupNormalization(kiln__kctx *c) {
    if (!kiln__attr_find(c->node, "num_groups"))
        return kiln__err(KILN_E_INVAL, "attribute 'num_groups' is required");
    return group_norm_infer(c, kiln__attr_i(c->node, "num_groups", 0));
}

kiln_status kiln__ref_GroupNormalization(kiln__kctx *c) {
    return group_norm_run(c, kiln__attr_i(c->node, "num_groups", 1), kiln__attr_f(c->node, "epsilon", 1e-5f));
}

kiln_status kiln__infer_InstanceNormalization(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "input", KILN__FLOAT_DTYPES));
    if (c->in[0]->ndim < 2)
        return kiln__err(KILN_E_SHAPE, "input 'input' has rank %d, expected at least 2", c->in[0]->ndim);
    return group_norm_infer(c, c->in[0]->dims[1] > 0 ? c->in[0]->dims[1] : 1);
}

kiln_status kiln__ref_InstanceNormalization(kiln__kctx *c) {
    if (c->in[0]->dims[1] == 0) return KILN_OK;
    return group_norm_run(c, c->in[0]->dims[1], kiln__attr_f(c->node, "epsilon", 1e-5f));
}

/* ---- LayerNormalization / RMSNormalization --------------------------------
 * x: (D0..Dk), axis a: rows = D0*..*D(a-1), cols = Da*..*Dk; scale, bias
 * broadcast to x. LayerNormalization: y = (x - mean) * inv_std * scale + bias,
 * Mean and InvStdDev: (D0..D(a-1),1..1) of dtype stash_type.
 * RMSNormalization: y = x / sqrt(mean(x^2) + eps) * scale. */

static kiln_status row_norm_infer(kiln__kctx *c, int with_stats) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis));
    KILN__TRY(kiln__check_dtype(c->in[1], "Scale", KILN__FLOAT_DTYPES));
    KILN__TRY(check_unidir(x, c->in[1], "Scale"));
    kiln_tensor *b = kiln__in(c, 2);
    if (b) {
        KILN__TRY(kiln__check_dtype(b, "B", KILN__FLOAT_DTYPES));
        KILN__TRY(check_unidir(x, b, "B"));
    }
    int64_t stash = kiln__attr_i(c->node, "stash_type", KILN_DTYPE_F32);
    if (stash != KILN_DTYPE_F32 && stash != KILN_DTYPE_F64 && stash != KILN_DTYPE_F16 && stash != KILN_DTYPE_BF16)
        return kiln__err(KILN_E_INVAL, "attribute 'stash_type' is %lld, expected a float type (1, 10, 11 or 16)",
                         (long long)stash);
    KILN__TRY(kiln__out_like(c, 0, x));
    if (with_stats) {
        int64_t sdims[KILN_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++) sdims[i] = i < axis ? x->dims[i] : 1;
        for (int i = 1; i < 3; i++) KILN__TRY(kiln__out_shape(c, i, (kiln_dtype)stash, x->ndim, sdims));
    }
    return KILN_OK;
}

// x: (rows, cols) view, scale/bias broadcast over x; parallel over rows
static kiln_status row_norm_run(kiln__kctx *c, int center) {
    const kiln_tensor *x = c->in[0], *sc = c->in[1], *bi = kiln__in(c, 2);
    kiln_tensor *y = c->out[0], *o_mean = kiln__out(c, 1), *o_inv = kiln__out(c, 2);
    if (!center) o_mean = o_inv = NULL;
    double eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis));
    int64_t rows = kiln__dims_prod(x->dims, 0, axis),
            cols = kiln__dims_prod(x->dims, axis, x->ndim), lo, hi;
    if (cols == 0) return KILN_OK;
    int64_t strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    kiln__bcast_strides(sc->ndim, sc->dims, x->ndim, x->dims, strides[0]);
    kiln__bcast_strides(bi ? bi->ndim : sc->ndim, bi ? bi->dims : sc->dims, x->ndim, x->dims, strides[1]);
    kiln__iter it;
    kiln__iter_init(&it, x->ndim, x->dims, 2, strides);
    kiln__split(rows, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t base = r * cols;
        double mean = 0, var;
        if (center) {
            mean = kiln__mean_var(x->dtype, x->data, base, cols, 1, &var);
        } else {
            double sq = 0;
            for (int64_t k = 0; k < cols; k++) {
                double v = kiln__elem_ld_f(x->dtype, x->data, base + k);
                sq += v * v;
            }
            var = sq / (double)cols;
        }
        double inv = 1.0 / sqrt(var + eps);
        if (o_mean) kiln__elem_st_f(o_mean->dtype, o_mean->data, r, mean);
        if (o_inv) kiln__elem_st_f(o_inv->dtype, o_inv->data, r, inv);
        kiln__iter_seek(&it, base);
        for (int64_t k = 0; k < cols; k++, kiln__iter_next(&it)) {
            double v = (kiln__elem_ld_f(x->dtype, x->data, base + k) - mean) * inv *
                       kiln__elem_ld_f(sc->dtype, sc->data, it.off[0]);
            if (bi) v += kiln__elem_ld_f(bi->dtype, bi->data, it.off[1]);
            kiln__elem_st_f(y->dtype, y->data, base + k, v);
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_LayerNormalization(kiln__kctx *c) { return row_norm_infer(c, 1); }
kiln_status kiln__ref_LayerNormalization(kiln__kctx *c) { return row_norm_run(c, 1); }
kiln_status kiln__infer_RMSNormalization(kiln__kctx *c) { return row_norm_infer(c, 0); }
kiln_status kiln__ref_RMSNormalization(kiln__kctx *c) { return row_norm_run(c, 0); }

/* ---- LpNormalization -----------------------------------------------------
 * x: (..., n at axis, ...), y: like x; y = x / ||x||_p along axis (p = 1 or
 * 2); a zero norm gives 0. */

kiln_status kiln__infer_LpNormalization(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "input", KILN__FLOAT_DTYPES));
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis));
    int64_t p = kiln__attr_i(c->node, "p", 2);
    if (p != 1 && p != 2)
        return kiln__err(KILN_E_INVAL, "attribute 'p' is %lld, expected 1 or 2", (long long)p);
    return kiln__out_like(c, 0, x);
}

// x viewed as (outer, n, inner); parallel over the outer*inner lines
kiln_status kiln__ref_LpNormalization(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis));
    int p = (int)kiln__attr_i(c->node, "p", 2);
    int64_t n = x->dims[axis], inner = kiln__dims_prod(x->dims, axis + 1, x->ndim);
    int64_t lines = kiln__dims_prod(x->dims, 0, axis) * inner, lo, hi;
    kiln__split(lines, c->ith, c->nth, &lo, &hi);
    for (int64_t l = lo; l < hi; l++) {
        int64_t base = (l / inner) * n * inner + l % inner;
        double norm = 0;
        for (int64_t k = 0; k < n; k++) {
            double v = kiln__elem_ld_f(x->dtype, x->data, base + k * inner);
            norm += p == 1 ? fabs(v) : v * v;
        }
        if (p == 2) norm = sqrt(norm);
        for (int64_t k = 0; k < n; k++) {
            int64_t off = base + k * inner;
            kiln__elem_st_f(y->dtype, y->data, off,
                            norm == 0 ? 0.0 : kiln__elem_ld_f(x->dtype, x->data, off) / norm);
        }
    }
    return KILN_OK;
}

/* ---- LRN -------------------------------------------------------------------
 * x: (N,C,D1..Dk), y: like x.
 * y[n,c,..] = x / (bias + alpha/size * sum_{c' in window(c)} x[n,c',..]^2)^beta
 * with window(c) = [c - floor((size-1)/2), c + ceil((size-1)/2)] within [0,C). */

kiln_status kiln__infer_LRN(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    if (x->ndim < 2) return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected at least 2", x->ndim);
    if (kiln__attr_i(c->node, "size", 0) <= 0)
        return kiln__err(KILN_E_INVAL, "attribute 'size' is %lld, expected a positive integer (required)",
                         (long long)kiln__attr_i(c->node, "size", 0));
    return kiln__out_like(c, 0, x);
}

// x: (N,C,S); parallel over the N*C channel planes
kiln_status kiln__ref_LRN(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    double alpha = kiln__attr_f(c->node, "alpha", 1e-4f), beta = kiln__attr_f(c->node, "beta", 0.75f);
    double bias = kiln__attr_f(c->node, "bias", 1.0f);
    int64_t size = kiln__attr_i(c->node, "size", 1);
    int64_t C = x->dims[1], S = kiln__dims_prod(x->dims, 2, x->ndim), lo, hi;
    int64_t before = (size - 1) / 2, after = size / 2; /* floor and ceil of (size-1)/2 */
    kiln__split(x->dims[0] * C, c->ith, c->nth, &lo, &hi);
    for (int64_t nc = lo; nc < hi; nc++) {
        int64_t n = nc / C, ch = nc % C;
        int64_t c0 = ch - before < 0 ? 0 : ch - before, c1 = ch + after >= C ? C - 1 : ch + after;
        for (int64_t s = 0; s < S; s++) {
            double sq = 0;
            for (int64_t k = c0; k <= c1; k++) {
                double v = kiln__elem_ld_f(x->dtype, x->data, (n * C + k) * S + s);
                sq += v * v;
            }
            int64_t off = nc * S + s;
            kiln__elem_st_f(y->dtype, y->data, off,
                            kiln__elem_ld_f(x->dtype, x->data, off) /
                                pow(bias + alpha / (double)size * sq, beta));
        }
    }
    return KILN_OK;
}

/* ---- MeanVarianceNormalization ---------------------------------------------
 * x: any shape, axes (default [0,2,3]), y: like x.
 * y = (x - mean) / (sqrt(var) + 1e-9), statistics over the axes. */

/* Reads the axes attribute into a per-dimension mask. */
static kiln_status mvn_axes(const kiln__kctx *c, int rank, int *reduced) {
    static const int64_t def_axes[] = {0, 2, 3};
    const int64_t *axes = def_axes;
    int n = kiln__attr_ints(c->node, "axes", &axes);
    if (n < 0) {
        if (rank != 4)
            return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d; the default 'axes' [0,2,3] need rank 4", rank);
        axes = def_axes;
        n = 3;
    }
    memset(reduced, 0, sizeof(int) * KILN_MAX_DIMS);
    for (int i = 0; i < n; i++) {
        int a;
        KILN__TRY(kiln__axis(axes[i], rank, "axes", &a));
        if (reduced[a]) return kiln__err(KILN_E_INVAL, "attribute 'axes' lists axis %d twice", a);
        reduced[a] = 1;
    }
    return KILN_OK;
}

kiln_status kiln__infer_MeanVarianceNormalization(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    int reduced[KILN_MAX_DIMS];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    KILN__TRY(mvn_axes(c, x->ndim, reduced));
    return kiln__out_like(c, 0, x);
}

// x: walked as (kept dims) x (reduced dims); parallel over the kept positions
kiln_status kiln__ref_MeanVarianceNormalization(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int reduced[KILN_MAX_DIMS];
    KILN__TRY(mvn_axes(c, x->ndim, reduced));
    int64_t kept_dims[KILN_MAX_DIMS], red_dims[KILN_MAX_DIMS], strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    kiln__contiguous_strides(x->ndim, x->dims, strides[0]);
    for (int i = 0; i < x->ndim; i++) {
        kept_dims[i] = reduced[i] ? 1 : x->dims[i];
        red_dims[i] = reduced[i] ? x->dims[i] : 1;
    }
    int64_t groups = kiln__numel(x->ndim, kept_dims), count = kiln__numel(x->ndim, red_dims), lo, hi;
    if (count <= 0) return KILN_OK;
    kiln__iter outer, in;
    kiln__iter_init(&outer, x->ndim, kept_dims, 1, strides);
    kiln__split(groups, c->ith, c->nth, &lo, &hi);
    if (lo < hi) kiln__iter_seek(&outer, lo);
    for (int64_t g = lo; g < hi; g++, kiln__iter_next(&outer)) {
        int64_t base = outer.off[0];
        double sum = 0, sq = 0;
        kiln__iter_init(&in, x->ndim, red_dims, 1, strides);
        for (int64_t k = 0; k < count; k++, kiln__iter_next(&in))
            sum += kiln__elem_ld_f(x->dtype, x->data, base + in.off[0]);
        double mean = sum / (double)count;
        kiln__iter_init(&in, x->ndim, red_dims, 1, strides);
        for (int64_t k = 0; k < count; k++, kiln__iter_next(&in)) {
            double d = kiln__elem_ld_f(x->dtype, x->data, base + in.off[0]) - mean;
            sq += d * d;
        }
        double denom = sqrt(sq / (double)count) + 1e-9;
        kiln__iter_init(&in, x->ndim, red_dims, 1, strides);
        for (int64_t k = 0; k < count; k++, kiln__iter_next(&in)) {
            int64_t off = base + in.off[0];
            kiln__elem_st_f(y->dtype, y->data, off,
                            (kiln__elem_ld_f(x->dtype, x->data, off) - mean) / denom);
        }
    }
    return KILN_OK;
}

/* ---- Dropout ---------------------------------------------------------------
 * data: any shape, ratio: () (opset >= 12 input, else attribute), training_mode:
 * () bool (opset >= 12); output: like data, mask: like data, bool (opset >= 10)
 * else data's dtype.
 * Inference (or ratio 0): output = data, mask all true. Training: keep where
 * u >= ratio for u uniform in [0,1) drawn from MT19937 seeded with `seed`
 * (numpy's RandomState(seed).uniform sequence), output = data * 1/(1-ratio). */

typedef struct mt19937 {
    uint32_t mt[624];
    int idx;
} mt19937;

static void mt_seed(mt19937 *r, uint32_t seed) {
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->idx = 624;
}

static uint32_t mt_next(mt19937 *r) {
    if (r->idx >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (r->mt[i] & 0x80000000u) | (r->mt[(i + 1) % 624] & 0x7fffffffu);
            r->mt[i] = r->mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        r->idx = 0;
    }
    uint32_t y = r->mt[r->idx++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

/* Uniform double in [0,1) with 53 random bits (numpy's random_sample). */
static double mt_uniform(mt19937 *r) {
    uint32_t a = mt_next(r) >> 5, b = mt_next(r) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

/* A seed from the clock: nanoseconds reduced mod 2^32 (a double beyond
 * UINT32_MAX converted straight to uint32_t is undefined behaviour). */
static uint32_t clock_seed(void) {
    return (uint32_t)(uint64_t)fmod(kiln__now_s() * 1e9, 4294967296.0);
}

kiln_status kiln__infer_Dropout(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "data", KILN__FLOAT_DTYPES));
    kiln_tensor *ratio = kiln__in(c, 1), *train = kiln__in(c, 2);
    if (ratio) {
        KILN__TRY(kiln__check_dtype(ratio, "ratio", KILN__FLOAT_DTYPES));
        if (kiln__n(ratio) != 1) return kiln__err(KILN_E_SHAPE, "input 'ratio' must be a scalar");
    }
    if (train) {
        KILN__TRY(kiln__check_dtype(train, "training_mode", KILN_DTYPE_BOOL, 0));
        if (kiln__n(train) != 1) return kiln__err(KILN_E_SHAPE, "input 'training_mode' must be a scalar");
    }
    KILN__TRY(kiln__out_like(c, 0, x));
    return kiln__out_shape(c, 1, c->opset >= 10 ? KILN_DTYPE_BOOL : x->dtype, x->ndim, x->dims);
}

kiln_status kiln__ref_Dropout(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *ratio_t = kiln__in(c, 1), *train_t = kiln__in(c, 2);
    kiln_tensor *y = c->out[0], *mask = kiln__out(c, 1);
    float ratio = c->opset >= 12 ? 0.5f : kiln__attr_f(c->node, "ratio", 0.5f);
    if (ratio_t) ratio = (float)kiln__elem_ld_f(ratio_t->dtype, ratio_t->data, 0);
    int training = c->opset >= 12 && train_t && ((const uint8_t *)train_t->data)[0];
    int64_t n = kiln__n(x);
    if (!training || ratio == 0) {
        if (y->data != x->data) memcpy(y->data, x->data, kiln__tensor_bytes(x));
        if (mask)
            for (int64_t i = 0; i < n; i++) kiln__elem_st_f(mask->dtype, mask->data, i, 1.0);
        return KILN_OK;
    }
    if (!(ratio > 0 && ratio <= 1))
        return kiln__err(KILN_E_RANGE, "input 'ratio' is %g, expected a value in [0, 1]", (double)ratio);
    uint32_t seed = kiln__attr_find(c->node, "seed") ? (uint32_t)kiln__attr_i(c->node, "seed", 0)
                                                     : clock_seed();
    mt19937 rng;
    mt_seed(&rng, seed);
    float scale = 1.0f / (1.0f - ratio); /* in float, as numpy does for f32 ratio */
    for (int64_t i = 0; i < n; i++) {
        int keep = mt_uniform(&rng) >= (double)ratio;
        kiln__elem_st_f(y->dtype, y->data, i,
                        keep ? kiln__elem_ld_f(x->dtype, x->data, i) * (double)scale : 0.0);
        if (mask) kiln__elem_st_f(mask->dtype, mask->data, i, keep);
    }
    return KILN_OK;
}

/* ---- kiln.TrainDropout -----------------------------------------------------
 * kiln.TrainDropout(data, seed) -> (output, mask): Dropout in training mode as
 * the trainer runs it (src/ops/defs/grad.def). data: any float shape, seed: ()
 * int64, attribute ratio in [0, 1) (default 0.5); output: like data, mask: like
 * data, bool. Element i is kept when u_i >= ratio, with u_i uniform in [0, 1)
 * from a counter-based hash of (seed, i) (kiln__hash64, 53 bits), so
 * each step's seed gives a new mask, the same seed the same one, and any
 * thread can draw any element; output = kept ? data / (1 - ratio) : 0. */

static double hash_uniform(uint64_t seed, int64_t i) {
    return (double)(kiln__hash64(seed, (uint64_t)i) >> 11) / 9007199254740992.0;
}

kiln_status kiln__infer_TrainDropout(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *seed = c->in[1];
    KILN__TRY(kiln__check_dtype(x, "data", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(seed, "seed", KILN_DTYPE_I64, 0));
    if (kiln__n(seed) != 1) return kiln__err(KILN_E_SHAPE, "input 'seed' must be a scalar");
    float ratio = kiln__attr_f(c->node, "ratio", 0.5f);
    if (!(ratio >= 0 && ratio < 1))
        return kiln__err(KILN_E_RANGE, "attribute 'ratio' is %g, expected a value in [0, 1)",
                         (double)ratio);
    KILN__TRY(kiln__out_like(c, 0, x));
    return kiln__out_shape(c, 1, KILN_DTYPE_BOOL, x->ndim, x->dims);
}

// data: (any) float, seed: () i64; output: like data, mask: like data, bool
kiln_status kiln__ref_TrainDropout(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0], *mask = kiln__out(c, 1);
    const uint64_t seed = (uint64_t)((const int64_t *)c->in[1]->data)[0];
    const float ratio = kiln__attr_f(c->node, "ratio", 0.5f);
    const double scale = 1.0f / (1.0f - ratio);
    int64_t lo, hi;
    kiln__split(kiln__n(x), c->ith, c->nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        int keep = hash_uniform(seed, i) >= (double)ratio;
        kiln__elem_st_f(y->dtype, y->data, i,
                        keep ? kiln__elem_ld_f(x->dtype, x->data, i) * scale : 0.0);
        if (mask) ((uint8_t *)mask->data)[i] = (uint8_t)keep;
    }
    return KILN_OK;
}
