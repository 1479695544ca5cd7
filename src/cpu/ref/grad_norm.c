/* src/cpu/ref/grad_norm.c: reference kernels of the normalization gradients
 * (src/ops/defs/grad.def). Statistics are recomputed from X (as the forward
 * op computed them), everything in double.
 *
 *   kiln.BatchNormalizationGrad(dY, X, scale, mean, var) -> (dX, dScale, dB)
 *
 * X: (N,C,D1..Dk), scale/mean/var: (C); per channel over its m = N*D1*..*Dk
 * elements, with xhat = (x - mu) * istd:
 *   training_mode = 1 (mu, istd from the batch, as BatchNormalization trains):
 *     dB = sum dY, dScale = sum dY*xhat,
 *     dX = scale * istd / m * (m*dY - dB - xhat*dScale)
 *   training_mode = 0 (mu = mean, istd = 1/sqrt(var + epsilon), constants):
 *     dB, dScale as above, dX = dY * scale * istd
 *
 *   kiln.LayerNormalizationGrad(dY, X, scale) -> (dX, dScale, dB)
 *
 * rows of X before `axis`, normalized over the cols from axis (scale: cols
 * elements, any shape that broadcasts there); per row with g = dY * scale:
 *   dX = istd * (g - mean(g) - xhat * mean(g * xhat)),
 *   dScale = sum over rows of dY*xhat, dB = sum over rows of dY.
 * Outputs are optional; attribute epsilon as the forward op's.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref/norm.h"

/* Fails unless dY, X and every present parameter share X's float dtype, dY
 * has X's shape and each parameter `len` elements. */
static kiln_status check_norm_grad(const kiln__kctx *c, int n_params, int64_t len) {
    static const char *const names[] = {"dY", "X", "scale", "mean", "var"};
    const kiln_tensor *x = c->in[1];
    char b1[96];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_shape(c->in[0], "dY", x->ndim, x->dims));
    for (int i = 0; i < 2 + n_params; i++) {
        const kiln_tensor *t = kiln__in(c, i);
        if (!t) return kiln__err(KILN_E_INVAL, "input '%s' is required", names[i]);
        if (t->dtype != x->dtype)
            return kiln__err(KILN_E_TYPE, "input '%s' is %s, expected %s like X", names[i],
                             kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
        if (i >= 2 && kiln__n(t) != len)
            return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected %lld elements",
                             names[i], kiln__shape_str(t->ndim, t->dims, b1, sizeof b1),
                             (long long)len);
    }
    return KILN_OK;
}

/* ---- BatchNormalizationGrad ---------------------------------------------------- */

kiln_status kiln__infer_BatchNormalizationGrad(kiln__kctx *c) {
    const kiln_tensor *x = c->in[1];
    if (x->ndim < 2)
        return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected at least 2", x->ndim);
    KILN__TRY(check_norm_grad(c, 3, x->dims[1]));
    KILN__TRY(kiln__out_like(c, 0, x));
    KILN__TRY(kiln__out_like(c, 1, c->in[2]));
    return kiln__out_like(c, 2, c->in[2]);
}

// dY, X: (N,C,inner); scale, mean, var: (C); dX: like X; dScale, dB: (C). Threads
// split the channels.
kiln_status kiln__ref_BatchNormalizationGrad(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *x = c->in[1], *sc = c->in[2];
    kiln_tensor *dx = kiln__out(c, 0), *dsc = kiln__out(c, 1), *db = kiln__out(c, 2);
    kiln_dtype dt = x->dtype;
    double eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    int training = kiln__attr_i(c->node, "training_mode", 0) != 0;
    int64_t N = x->dims[0], C = x->dims[1], inner = kiln__dims_prod(x->dims, 2, x->ndim), lo, hi;
    double m = (double)(N * inner);
    kiln__split(C, c->ith, c->nth, &lo, &hi);
    for (int64_t f = lo; f < hi; f++) {
        double mu, var;
        if (training) {
            mu = kiln__channel_mean_var(dt, x->data, N, C, inner, f, &var);
        } else {
            mu = kiln__elem_ld_f(dt, c->in[3]->data, f);
            var = kiln__elem_ld_f(dt, c->in[4]->data, f);
        }
        double istd = 1.0 / sqrt(var + eps), gsum = 0, gxsum = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t off = (n * C + f) * inner + i;
                double g = kiln__elem_ld_f(dt, dy->data, off);
                gsum += g;
                gxsum += g * (kiln__elem_ld_f(dt, x->data, off) - mu) * istd;
            }
        if (db) kiln__elem_st_f(dt, db->data, f, gsum);
        if (dsc) kiln__elem_st_f(dt, dsc->data, f, gxsum);
        if (!dx) continue;
        double a = kiln__elem_ld_f(dt, sc->data, f) * istd;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t off = (n * C + f) * inner + i;
                double g = kiln__elem_ld_f(dt, dy->data, off), v = a * g;
                if (training) {
                    double xhat = (kiln__elem_ld_f(dt, x->data, off) - mu) * istd;
                    v = a / m * (m * g - gsum - xhat * gxsum);
                }
                kiln__elem_st_f(dt, dx->data, off, v);
            }
    }
    return KILN_OK;
}

/* ---- LayerNormalizationGrad -------------------------------------------------- */

static kiln_status ln_layout(const kiln__kctx *c, int64_t *rows, int64_t *cols) {
    const kiln_tensor *x = c->in[1];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis));
    *rows = kiln__dims_prod(x->dims, 0, axis);
    *cols = kiln__dims_prod(x->dims, axis, x->ndim);
    return KILN_OK;
}

kiln_status kiln__infer_LayerNormalizationGrad(kiln__kctx *c) {
    int64_t rows, cols;
    KILN__TRY(ln_layout(c, &rows, &cols));
    KILN__TRY(check_norm_grad(c, 1, cols));
    KILN__TRY(kiln__out_like(c, 0, c->in[1]));
    KILN__TRY(kiln__out_like(c, 1, c->in[2]));
    c->scratch_bytes = 2 * (size_t)cols * sizeof(double);
    return kiln__out_like(c, 2, c->in[2]);
}

// dY, X: (rows, cols); scale: (cols); dX: like X; dScale, dB: like scale
kiln_status kiln__ref_LayerNormalizationGrad(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *x = c->in[1], *sc = c->in[2];
    kiln_tensor *dx = kiln__out(c, 0), *dsc = kiln__out(c, 1), *db = kiln__out(c, 2);
    kiln_dtype dt = x->dtype;
    double eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    int64_t rows, cols;
    KILN__TRY(ln_layout(c, &rows, &cols));
    double *sum_gx = (double *)c->scratch, *sum_g = sum_gx + cols; /* dScale, dB */
    for (int64_t k = 0; k < cols; k++) sum_gx[k] = sum_g[k] = 0;
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = r * cols;
        double var, mu = kiln__mean_var(dt, x->data, base, cols, 1, &var);
        double istd = 1.0 / sqrt(var + eps), mg = 0, mgx = 0;
        for (int64_t k = 0; k < cols; k++) {
            double gy = kiln__elem_ld_f(dt, dy->data, base + k);
            double xhat = (kiln__elem_ld_f(dt, x->data, base + k) - mu) * istd;
            double g = gy * kiln__elem_ld_f(dt, sc->data, k);
            sum_gx[k] += gy * xhat;
            sum_g[k] += gy;
            mg += g;
            mgx += g * xhat;
        }
        if (!dx) continue;
        mg /= (double)cols;
        mgx /= (double)cols;
        for (int64_t k = 0; k < cols; k++) {
            double xhat = (kiln__elem_ld_f(dt, x->data, base + k) - mu) * istd;
            double g = kiln__elem_ld_f(dt, dy->data, base + k) * kiln__elem_ld_f(dt, sc->data, k);
            kiln__elem_st_f(dt, dx->data, base + k, istd * (g - mg - xhat * mgx));
        }
    }
    for (int64_t k = 0; k < cols; k++) {
        if (dsc) kiln__elem_st_f(dt, dsc->data, k, sum_gx[k]);
        if (db) kiln__elem_st_f(dt, db->data, k, sum_g[k]);
    }
    return KILN_OK;
}
