/* src/cpu/kernels/train_ops.c: fast f32 kernels for what a training step
 * spends its time on besides the products: batch normalization in training
 * mode, its gradient, layer normalization's and softmax's gradients, and max
 * pooling's gradient.
 *
 * BatchNormalization, training (opset >= 14, training_mode = 1):
 *   X: (N,C,D1..Dk) f32; scale, B, input_mean, input_var: (C) f32; Y like X,
 *   running_mean and running_var (C) when asked for. Per channel, the batch
 *   mean and population variance in one pass (the squares taken about the
 *   mean of the first sample's values; float partial sums in 16 lanes over
 *   blocks of 4096, added up in double),
 *   running = running * momentum + batch * (1 - momentum), then
 *   y = x * a + b with a = scale / sqrt(var + eps), b = B - mean * a.
 * kiln.BatchNormalizationGrad(dY, X, scale, mean, var) -> (dX, dScale, dB):
 *   the reference's formulas (src/cpu/ref/grad_norm.c): the sums of dY and
 *   dY * xhat per channel (summed as the statistics), then dX in one pass.
 * kiln.LayerNormalizationGrad(dY, X, scale) -> (dX, dScale, dB): X as
 *   (rows, cols) split at `axis`, scale (cols); per row the mean and variance
 *   in two passes, g = dY * scale, its sum and its dot with x - mean (as the
 *   statistics are summed), then dX = istd (g - mean(g) - xhat mean(g xhat));
 *   the row passes on the row kernels of eltwise.h; dScale and dB summed over
 *   blocks of LN_ROWS rows in float, the blocks in double, one partial sum
 *   per thread (the rows are split over the threads), added up at the end.
 * kiln.SoftmaxGrad / LogSoftmaxGrad(dY, Y) -> dX over rows contiguous in
 *   memory (the last axis, or every axis from `axis` with flatten): per row
 *   the sums of dY and dY * Y (as the statistics are summed), then
 *   dX = Y (dY - sum dY Y), or dY - exp(Y) sum dY, on the row kernels;
 *   over an axis with elements after it, the sums of every position after
 *   it at once (per thread, in double), then dX a row of positions at a time.
 * kiln.MaxPoolGrad(dY, X) -> dX, 2-D, dilation 1: per (n, c) plane dX = 0,
 *   then each dY element added at its window's first maximum (the first tap
 *   inside X, then a later tap only when strictly greater: the reference's
 *   rule, NaN included); where the windows tile the plane (stride = kernel,
 *   no pads) each pixel is written once instead.
 * kiln.ReluGrad / SigmoidGrad / TanhGrad(dY, Y) -> dX: dY * f'(x) from the
 *   forward output Y (Y > 0; Y (1 - Y); 1 - Y^2), as the reference
 *   (src/cpu/ref/grad_eltwise.c), in blocks the compiler vectorizes.
 * kiln.TrainDropout(X, seed) -> (Y, mask), f32: the reference's mask
 *   (src/cpu/ref/norm.c: element i kept when the top 53 bits of
 *   kiln__hash64(seed, i), as a fraction of 2^53, are >= ratio) decided in
 *   integers, kept bits >= ceil(ratio 2^53), which is the same test exactly;
 *   Y = X * (1 / (1 - ratio)) in float (the reference's double product of two
 *   floats rounds to the same float).
 * Channels (batch normalization), planes (pooling), rows (softmax) and
 * elements (activation gradients, dropout) are split over the threads
 * (KILN_OPF_PARALLEL); layer
 * normalization's rows over c->pool (its sums over rows need a last step).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/ref/conv.h"

/* ---- batch normalization ---------------------------------------------------------- */

typedef struct bn_state {
    int64_t N, C, S; /* X as (N, C, S) */
    double eps, momentum;
    const kiln__eltw_kernels *k; /* the forward's a x + b rows */
} bn_state;

/* X (in[x_in]) and every input f32 with (C) parameters from `first_param`. */
static kiln_status bn_prepare(kiln__kctx *c, int x_in, int first_param) {
    const kiln_tensor *x = c->in[x_in];
    if (!kiln__eltw_f32(x) || x->ndim < 2) return KILN_E_UNSUPPORTED;
    for (int i = 0; i < c->n_in; i++) {
        const kiln_tensor *t = c->in[i];
        if (!kiln__eltw_f32(t)) return KILN_E_UNSUPPORTED;
        if (i >= first_param && kiln__n(t) != x->dims[1]) return KILN_E_UNSUPPORTED;
    }
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i] && !kiln__eltw_f32(c->out[i])) return KILN_E_UNSUPPORTED;
    bn_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->N = x->dims[0];
    s->C = x->dims[1];
    s->S = kiln__dims_prod(x->dims, 2, x->ndim);
    s->eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    s->momentum = kiln__attr_f(c->node, "momentum", 0.9f);
    s->k = kiln__eltw_best();
    c->kstate = s;
    c->flops = 6.0 * (double)kiln__n(x);
    return KILN_OK;
}

static double bn_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->in[0]);
    return kiln__cost_seconds(c, c->flops, 0.05, 16.0 * n);
}

/* Row sums in LANES independent float chains (which the compiler turns into
 * vector adds) over blocks of at most BLOCK elements, each block's lanes
 * added up in double: float rounding over BLOCK / LANES terms at most. */
enum { LANES = 16, BLOCK = 4096 };

/* The gradient rows: dx[i] = EXPR(g, v) with g = dy[i], v = y[i] (a forward
 * value), i < n, in a function with those parameters: blocks of LANES
 * through local copies (dx may be dy or y: the copies keep the vectorizer
 * free of aliasing; a KILN__F32_CLONES function's x86-64-v3 clone vectorizes
 * them), then the rest. */
#define GRAD_ROWS(EXPR)                                                         \
    do {                                                                        \
        int64_t i = 0;                                                          \
        for (; i + LANES <= n; i += LANES) {                                    \
            float gb[LANES], vb[LANES];                                         \
            memcpy(gb, dy + i, sizeof gb);                                      \
            memcpy(vb, y + i, sizeof vb);                                       \
            for (int j = 0; j < LANES; j++) {                                   \
                const float g = gb[j], v = vb[j];                               \
                dx[i + j] = (EXPR);                                             \
            }                                                                   \
        }                                                                       \
        for (; i < n; i++) {                                                    \
            const float g = dy[i], v = y[i];                                    \
            dx[i] = (EXPR);                                                     \
        }                                                                       \
    } while (0)

/* Sum of a[0..n), and of (a[i] - ca) (b[i] - cb) into *dot: the batch
 * statistics (a = b = x, ca = cb = the shift: the squared deviations) and the
 * gradient's sums (a = dY, ca = 0, b = X, cb = the mean). */
static double row_sum_dot(const float *a, float ca, const float *b, float cb, int64_t n, double *dot) {
    double sum = 0, sum_dot = 0;
    for (int64_t blk = 0; blk < n; blk += BLOCK) {
        const int64_t e = blk + BLOCK < n ? blk + BLOCK : n;
        float acc[LANES] = {0}, acc_dot[LANES] = {0};
        int64_t i = blk;
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                acc[j] += a[i + j];
                acc_dot[j] += (a[i + j] - ca) * (b[i + j] - cb);
            }
        for (; i < e; i++) {
            sum += a[i];
            sum_dot += ((double)a[i] - ca) * ((double)b[i] - cb);
        }
        for (int j = 0; j < LANES; j++) {
            sum += acc[j];
            sum_dot += acc_dot[j];
        }
    }
    *dot = sum_dot;
    return sum;
}

/* Mean and population variance of channel ch of x (N, C, S) in one pass over
 * the batch: the sum, and the squared deviations from a shift K, the mean of
 * the first sample's values (near the batch mean, so var = E[(x - K)^2] -
 * (mean - K)^2 loses little to cancellation; an outlier cannot pull K far). */
static double channel_stats(const bn_state *s, const float *x, int64_t ch, double *var) {
    const float *first = x + ch * s->S;
    double unused;
    const float shift =
        s->N * s->S > 0 ? (float)(row_sum_dot(first, 0, first, 0, s->S, &unused) / (double)s->S) : 0.0f;
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < s->N; n++) {
        const float *row = x + (n * s->C + ch) * s->S;
        double row_sq;
        sum += row_sum_dot(row, shift, row, shift, s->S, &row_sq);
        sq += row_sq;
    }
    const double cnt = (double)(s->N * s->S), mean = sum / cnt, d = mean - shift;
    *var = fmax(sq / cnt - d * d, 0.0);
    return mean;
}

static kiln_status bn_train_prepare(kiln__kctx *c) {
    if (c->opset < 14 || !kiln__attr_i(c->node, "training_mode", 0) || c->n_in < 5)
        return KILN_E_UNSUPPORTED;
    return bn_prepare(c, 0, 1);
}

// x, y: (N, C, S); scale, bias, running mean/var: (C); outputs 1, 2: (C)
static kiln_status bn_train_run(kiln__kctx *c) {
    const bn_state *s = c->kstate;
    const float *x = c->in[0]->data, *sc = c->in[1]->data, *bi = c->in[2]->data;
    const float *rm = c->in[3]->data, *rv = c->in[4]->data;
    float *y = c->out[0]->data;
    kiln_tensor *o_mean = kiln__out(c, 1), *o_var = kiln__out(c, 2);
    int64_t lo, hi;
    kiln__split(s->C, c->ith, c->nth, &lo, &hi);
    for (int64_t ch = lo; ch < hi; ch++) {
        double var, mean = channel_stats(s, x, ch, &var);
        if (o_mean) ((float *)o_mean->data)[ch] = (float)(rm[ch] * s->momentum + mean * (1 - s->momentum));
        if (o_var) ((float *)o_var->data)[ch] = (float)(rv[ch] * s->momentum + var * (1 - s->momentum));
        double a = sc[ch] / sqrt(var + s->eps), b = bi[ch] - mean * a;
        const kiln__eltw_unary affine = {KILN__ELTW_AFFINE, (float)a, (float)b};
        for (int64_t n = 0; n < s->N; n++) {
            const int64_t off = (n * s->C + ch) * s->S;
            s->k->unary(&affine, x + off, y + off, s->S);
        }
    }
    return KILN_OK;
}

/* dx[i] = k1 dy[i] + k2 (y[i] - mu) + k3 for i < n, y being X (GRAD_ROWS). */
KILN__F32_CLONES static void bn_grad_row(const float *dy, const float *y, float *dx, int64_t n, float k1,
                                         float k2, float k3, float mu) {
    GRAD_ROWS(k1 * g + k2 * (v - mu) + k3);
}

static kiln_status bn_grad_prepare(kiln__kctx *c) {
    if (c->n_in < 5 || !kiln__same_shape(c->in[0], c->in[1])) return KILN_E_UNSUPPORTED;
    return bn_prepare(c, 1, 2);
}

// dY, X: (N, C, S); scale, mean, var: (C); dX like X; dScale, dB: (C)
static kiln_status bn_grad_run(kiln__kctx *c) {
    const bn_state *s = c->kstate;
    const float *dy = c->in[0]->data, *x = c->in[1]->data, *sc = c->in[2]->data;
    const float *mean_in = c->in[3]->data, *var_in = c->in[4]->data;
    kiln_tensor *dx = kiln__out(c, 0), *dsc = kiln__out(c, 1), *db = kiln__out(c, 2);
    const int training = kiln__attr_i(c->node, "training_mode", 0) != 0;
    const double m = (double)(s->N * s->S);
    int64_t lo, hi;
    kiln__split(s->C, c->ith, c->nth, &lo, &hi);
    for (int64_t ch = lo; ch < hi; ch++) {
        double mu = mean_in[ch], var = var_in[ch];
        if (training) mu = channel_stats(s, x, ch, &var);
        double istd = 1.0 / sqrt(var + s->eps), gsum = 0, gxsum = 0;
        for (int64_t n = 0; n < s->N; n++) {
            double dot;
            const int64_t off = (n * s->C + ch) * s->S;
            gsum += row_sum_dot(dy + off, 0, x + off, (float)mu, s->S, &dot);
            gxsum += dot;
        }
        gxsum *= istd;
        if (db) ((float *)db->data)[ch] = (float)gsum;
        if (dsc) ((float *)dsc->data)[ch] = (float)gxsum;
        if (!dx) continue;
        /* training: dX = a/m (m dY - gsum - xhat gxsum) = k1 dY + k2 (x - mu) + k3 */
        double a = sc[ch] * istd;
        const float k1 = (float)a, k2 = training ? (float)(-a / m * gxsum * istd) : 0,
                    k3 = training ? (float)(-a / m * gsum) : 0, fmu = (float)mu;
        for (int64_t n = 0; n < s->N; n++) {
            const int64_t off = (n * s->C + ch) * s->S;
            bn_grad_row(dy + off, x + off, (float *)dx->data + off, s->S, k1, k2, k3, fmu);
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_batch_norm_train_f32 = {
    "batch_norm_train_f32", "", "BatchNormalization", KILN_OPF_PARALLEL, bn_train_prepare,
    bn_cost, bn_train_run, free};
const kiln__algo kiln__algo_batch_norm_grad_f32 = {
    "batch_norm_grad_f32", "kiln", "BatchNormalizationGrad", KILN_OPF_PARALLEL, bn_grad_prepare,
    bn_cost, bn_grad_run, free};

/* ---- layer normalization's gradient ------------------------------------------------- */

enum { LN_ROWS = 32, LN_TMP = 5 }; /* rows whose dScale, dB terms are summed in float; float rows per thread */

typedef struct ln_grad_state {
    kiln__eltw_state base;
    int64_t rows, cols;
    double eps;
    int nth; /* threads the scratch has partial sums for */
} ln_grad_state;

static kiln_status ln_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[1];
    for (int i = 0; i < 3; i++)
        if (!kiln__eltw_f32(c->in[i])) return KILN_E_UNSUPPORTED;
    for (int i = 0; i < c->n_out; i++)
        if (c->out[i] && !kiln__eltw_f32(c->out[i])) return KILN_E_UNSUPPORTED;
    int axis;
    if (kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "axis", &axis) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(ln_grad_state)));
    ln_grad_state *s = c->kstate;
    s->rows = kiln__dims_prod(x->dims, 0, axis);
    s->cols = kiln__dims_prod(x->dims, axis, x->ndim);
    s->eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    s->nth = c->nth_plan > 0 ? c->nth_plan : 1;
    if (s->cols < 1 || kiln__n(c->in[2]) != s->cols) {
        free(s);
        c->kstate = NULL;
        return KILN_E_UNSUPPORTED;
    }
    /* per thread: dScale and dB partial sums (double), rows g, xhat, t and
     * the float sums of a block (float) */
    c->scratch_bytes = (size_t)s->nth * (size_t)s->cols * (2 * sizeof(double) + LN_TMP * sizeof(float));
    c->flops = 10.0 * (double)kiln__n(x);
    return KILN_OK;
}

static double ln_grad_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->in[1]);
    return kiln__cost_seconds(c, c->flops, 0.05, 16.0 * n);
}

typedef struct ln_grad_job {
    const kiln__kctx *c;
    const ln_grad_state *s;
} ln_grad_job;

/* out[k] += in[k] for k < n, in double. */
static void add_to_double(double *out, float *in, int64_t n) {
    for (int64_t k = 0; k < n; k++) out[k] += in[k];
}

/* Thread ith's rows; its partial dScale, dB at the scratch's slot ith. */
static void ln_grad_rows(void *arg, int ith, int nth) {
    const ln_grad_job *j = arg;
    const kiln__kctx *c = j->c;
    const ln_grad_state *s = j->s;
    const kiln__eltw_kernels *k = s->base.k;
    const int64_t cols = s->cols;
    const float *dy = c->in[0]->data, *x = c->in[1]->data, *sc = c->in[2]->data;
    kiln_tensor *dx = kiln__out(c, 0);
    double *psc = (double *)c->scratch + (size_t)ith * 2 * (size_t)cols, *pb = psc + cols;
    float *g = (float *)((double *)c->scratch + (size_t)s->nth * 2 * (size_t)cols) +
               (size_t)ith * LN_TMP * (size_t)cols;
    float *xh = g + cols, *t = xh + cols, *bsc = t + cols, *bb = bsc + cols;
    for (int64_t i = 0; i < cols; i++) psc[i] = pb[i] = 0;
    int64_t lo, hi;
    kiln__split(s->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = x + r * cols, *dyr = dy + r * cols;
        if ((r - lo) % LN_ROWS == 0) { /* a new block of float sums */
            memset(bsc, 0, (size_t)cols * sizeof(float));
            memset(bb, 0, (size_t)cols * sizeof(float));
        }
        double sq;
        const double mu = row_sum_dot(xr, 0, xr, 0, cols, &sq) / (double)cols;
        row_sum_dot(xr, (float)mu, xr, (float)mu, cols, &sq);
        const double istd = 1.0 / sqrt(sq / (double)cols + s->eps);
        const kiln__eltw_unary norm = {KILN__ELTW_AFFINE, (float)istd, (float)(-mu * istd)};
        k->unary(&norm, xr, xh, cols); /* xhat */
        k->binary(KILN__ELTW_MUL, dyr, 1, xh, 1, t, cols);
        k->binary(KILN__ELTW_ADD, bsc, 1, t, 1, bsc, cols);
        k->binary(KILN__ELTW_ADD, bb, 1, dyr, 1, bb, cols);
        if ((r - lo) % LN_ROWS == LN_ROWS - 1 || r == hi - 1) {
            add_to_double(psc, bsc, cols);
            add_to_double(pb, bb, cols);
        }
        if (!dx) continue;
        k->binary(KILN__ELTW_MUL, dyr, 1, sc, 1, g, cols);
        double gx;
        const double mg = row_sum_dot(g, 0, xh, 0, cols, &gx) / (double)cols;
        /* dX = istd g - istd mean(g) - istd mean(g xhat) xhat */
        const kiln__eltw_unary a = {KILN__ELTW_AFFINE, (float)istd, (float)(-istd * mg)};
        const kiln__eltw_unary b = {KILN__ELTW_AFFINE, (float)(-istd * gx / (double)cols), 0};
        float *o = (float *)dx->data + r * cols;
        k->unary(&a, g, g, cols);
        k->unary(&b, xh, t, cols);
        k->binary(KILN__ELTW_ADD, g, 1, t, 1, o, cols);
    }
}

// dY, X: (rows, cols); scale: (cols); dX like X; dScale, dB like scale
static kiln_status ln_grad_run(kiln__kctx *c) {
    const ln_grad_state *s = c->kstate;
    int nth = kiln__pool_size(c->pool);
    if (nth > s->nth) nth = s->nth;
    if (nth > s->rows) nth = (int)(s->rows > 0 ? s->rows : 1);
    ln_grad_job job = {c, s};
    kiln__pool_run(c->pool, nth, ln_grad_rows, &job);
    kiln_tensor *dsc = kiln__out(c, 1), *db = kiln__out(c, 2);
    const double *part = c->scratch;
    for (int64_t k = 0; k < s->cols; k++) {
        double a = 0, b = 0;
        for (int t = 0; t < nth; t++) {
            a += part[(size_t)t * 2 * (size_t)s->cols + k];
            b += part[(size_t)t * 2 * (size_t)s->cols + s->cols + k];
        }
        if (dsc) ((float *)dsc->data)[k] = (float)a;
        if (db) ((float *)db->data)[k] = (float)b;
    }
    return KILN_OK;
}

/* ---- softmax's gradients --------------------------------------------------------------- */

typedef struct softmax_grad_state {
    kiln__eltw_state base;
    int64_t rows, len, inner; /* (rows, len, inner): the axis in the middle; inner 1: rows */
    int log;                  /* LogSoftmaxGrad */
    int slots;                /* inner > 1: threads with sums in the scratch */
} softmax_grad_state;

static kiln_status softmax_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    if (!kiln__eltw_f32(dy) || !kiln__eltw_f32(y) || !kiln__eltw_f32(c->out[0]) ||
        !kiln__same_shape(dy, y) || y->ndim < 1 || kiln__n(y) == 0)
        return KILN_E_UNSUPPORTED;
    int axis;
    if (kiln__axis(kiln__attr_i(c->node, "axis", -1), y->ndim, "axis", &axis) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    const int flatten = kiln__attr_i(c->node, "flatten", 0) != 0;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(softmax_grad_state)));
    softmax_grad_state *s = c->kstate;
    s->rows = kiln__dims_prod(y->dims, 0, axis);
    s->len = flatten ? kiln__dims_prod(y->dims, axis, y->ndim) : y->dims[axis];
    s->inner = flatten ? 1 : kiln__dims_prod(y->dims, axis + 1, y->ndim);
    s->log = !strcmp(c->node->op_type, "LogSoftmaxGrad");
    s->slots = c->nth_plan > 0 ? c->nth_plan : 1;
    if (s->inner > 1) /* per thread, the inner positions' sums in double and in float */
        c->scratch_bytes = (size_t)s->slots * (size_t)s->inner * (sizeof(double) + sizeof(float));
    c->flops = 4.0 * (double)kiln__n(y);
    return KILN_OK;
}

static double softmax_grad_cost(const kiln__kctx *c) {
    return kiln__eltw_cost(c, c->flops, 12.0 * (double)kiln__n(c->in[0]));
}

/* softmax_grad_run over an axis with inner > 1 elements after it: per block
 * of (len, inner), the sums over the axis for every inner position at once
 * (in double, a row of the block at a time), then dX row by row. */
static void softmax_grad_strided(const kiln__kctx *c, const softmax_grad_state *s) {
    const kiln__eltw_kernels *k = s->base.k;
    const int64_t len = s->len, inner = s->inner, block = len * inner;
    double *acc = (double *)c->scratch + (size_t)c->ith * (size_t)inner;
    float *fsum = (float *)((double *)c->scratch + (size_t)s->slots * (size_t)inner) +
                  (size_t)c->ith * (size_t)inner;
    int64_t lo, hi;
    kiln__eltw_share(s->rows, KILN__ELTW_GRAIN / block + 1, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *dy = (const float *)c->in[0]->data + r * block;
        const float *y = (const float *)c->in[1]->data + r * block;
        float *dx = (float *)c->out[0]->data + r * block;
        for (int64_t i = 0; i < inner; i++) acc[i] = 0;
        for (int64_t j = 0; j < len; j++) {
            const float *dyr = dy + j * inner, *yr = y + j * inner;
            if (s->log)
                for (int64_t i = 0; i < inner; i++) acc[i] += dyr[i];
            else
                for (int64_t i = 0; i < inner; i++) acc[i] += (double)dyr[i] * yr[i];
        }
        for (int64_t i = 0; i < inner; i++) fsum[i] = (float)acc[i];
        for (int64_t j = 0; j < len; j++) {
            const float *dyr = dy + j * inner, *yr = y + j * inner;
            float *dxr = dx + j * inner;
            if (s->log) { /* dY - exp(Y) sum */
                const kiln__eltw_unary e = {.op = KILN__ELTW_EXP};
                k->unary(&e, yr, dxr, inner);
                k->binary(KILN__ELTW_MUL, dxr, 1, fsum, 1, dxr, inner);
                k->binary(KILN__ELTW_SUB, dyr, 1, dxr, 1, dxr, inner);
            } else { /* Y (dY - dot) */
                k->binary(KILN__ELTW_SUB, dyr, 1, fsum, 1, dxr, inner);
                k->binary(KILN__ELTW_MUL, dxr, 1, yr, 1, dxr, inner);
            }
        }
    }
}

// dY, Y, dX: (rows, len), or (rows, len, inner); thread ith does its share of the rows
static kiln_status softmax_grad_run(kiln__kctx *c) {
    const softmax_grad_state *s = c->kstate;
    const kiln__eltw_kernels *k = s->base.k;
    const int64_t len = s->len;
    if (s->inner > 1) {
        softmax_grad_strided(c, s);
        return KILN_OK;
    }
    int64_t lo, hi;
    kiln__eltw_share(s->rows, KILN__ELTW_GRAIN / len, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *dy = (const float *)c->in[0]->data + r * len, *y = (const float *)c->in[1]->data + r * len;
        float *dx = (float *)c->out[0]->data + r * len;
        double dot;
        const float sum = (float)row_sum_dot(dy, 0, y, 0, len, &dot);
        if (s->log) { /* dY - exp(Y) sum */
            const kiln__eltw_unary e = {.op = KILN__ELTW_EXP}, a = {KILN__ELTW_AFFINE, -sum, 0};
            k->unary(&e, y, dx, len);
            k->unary(&a, dx, dx, len);
            k->binary(KILN__ELTW_ADD, dx, 1, dy, 1, dx, len);
        } else { /* Y (dY - dot) */
            const float fdot = (float)dot;
            k->binary(KILN__ELTW_SUB, dy, 1, &fdot, 0, dx, len);
            k->binary(KILN__ELTW_MUL, dx, 1, y, 1, dx, len);
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_softmax_grad_f32 = {
    "softmax_grad_f32", "kiln", "SoftmaxGrad", KILN_OPF_PARALLEL, softmax_grad_prepare,
    softmax_grad_cost, softmax_grad_run, free};
const kiln__algo kiln__algo_log_softmax_grad_f32 = {
    "log_softmax_grad_f32", "kiln", "LogSoftmaxGrad", KILN_OPF_PARALLEL, softmax_grad_prepare,
    softmax_grad_cost, softmax_grad_run, free};

const kiln__algo kiln__algo_layer_norm_grad_f32 = {
    "layer_norm_grad_f32", "kiln", "LayerNormalizationGrad", 0, ln_grad_prepare, ln_grad_cost,
    ln_grad_run, free};

/* ---- max pooling's gradient ---------------------------------------------------------- */

typedef struct max_pool_grad_state {
    kiln__win w;                /* first: the windows */
    const kiln__eltw_kernels *k; /* 2x2 tiling windows' rows */
    int relu;                   /* dY only to maxima > 0 (the reference's relu) */
} max_pool_grad_state;

static kiln_status max_pool_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *x = c->in[1];
    if (!kiln__eltw_f32(dy) || !kiln__eltw_f32(x) || !kiln__eltw_f32(c->out[0]) || x->ndim != 4)
        return KILN_E_UNSUPPORTED;
    max_pool_grad_state *ms = calloc(1, sizeof *ms);
    if (!ms) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln__win *w = &ms->w;
    ms->k = kiln__eltw_best();
    ms->relu = kiln__attr_i(c->node, "relu", 0) != 0;
    kiln_status st = kiln__win_read(c->node, 2, x->dims + 2, NULL, w);
    if (st == KILN_OK) st = kiln__win_forward(w, kiln__attr_i(c->node, "ceil_mode", 0) != 0);
    if (st == KILN_OK && (w->dil[0] != 1 || w->dil[1] != 1 || dy->ndim != 4 || dy->dims[0] != x->dims[0] ||
                          dy->dims[1] != x->dims[1] || dy->dims[2] != w->out[0] || dy->dims[3] != w->out[1]))
        st = KILN_E_UNSUPPORTED;
    if (st != KILN_OK) { /* shapes or attributes the reference reports on */
        free(ms);
        return KILN_E_UNSUPPORTED;
    }
    c->kstate = ms;
    c->flops = (double)kiln__n(dy) * (double)(w->k[0] * w->k[1]);
    return KILN_OK;
}

static double max_pool_grad_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, c->flops, 0.05, 8.0 * (double)kiln__n(c->in[1]));
}

/* 1 if the windows tile the plane without overlap or padding (stride = kernel,
 * no pads, every window inside): each pixel then belongs to at most one. */
static int windows_tile(const kiln__win *w) {
    for (int d = 0; d < 2; d++)
        if (w->stride[d] != w->k[d] || w->pad0[d] || w->out[d] * w->k[d] > w->in[d]) return 0;
    return 1;
}

/* max_pool_grad_run on one plane whose windows tile it: every pixel written
 * once (the window's maximum gets its dY, the other taps and the pixels no
 * window covers 0), so neither a zeroing pass nor scattered adds. */
static void max_pool_grad_tiled(const max_pool_grad_state *ms, const float *xp, const float *g,
                                float *d) {
    const kiln__win *w = &ms->w;
    const int64_t H = w->in[0], W = w->in[1], OH = w->out[0], OW = w->out[1];
    const int64_t kh = w->k[0], kw = w->k[1];
    if (kh == 2 && kw == 2)
        for (int64_t oh = 0; oh < OH; oh++)
            ms->k->max_pool_grad_2x2(xp + 2 * oh * W, xp + (2 * oh + 1) * W, g + oh * OW,
                                     d + 2 * oh * W, d + (2 * oh + 1) * W, OW, ms->relu);
    else
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                const int64_t base = oh * kh * W + ow * kw;
                int64_t best = base;
                float m = xp[base];
                for (int64_t i = 0; i < kh; i++)
                    for (int64_t j = 0; j < kw; j++) {
                        const int64_t at = base + i * W + j;
                        const float v = xp[at];
                        const int64_t gt = -(int64_t)(v > m);
                        best ^= (best ^ at) & gt;
                        m = v > m ? v : m;
                        d[at] = 0.0f;
                    }
                d[best] = !ms->relu || m > 0 ? g[oh * OW + ow] : 0.0f;
            }
    for (int64_t i = 0; i < OH * kh; i++) /* columns right of the last window */
        memset(d + i * W + OW * kw, 0, (size_t)(W - OW * kw) * sizeof *d);
    memset(d + OH * kh * W, 0, (size_t)((H - OH * kh) * W) * sizeof *d); /* rows below */
}

// dY: (N*C planes, OH, OW), X, dX: (N*C, H, W)
static kiln_status max_pool_grad_run(kiln__kctx *c) {
    const max_pool_grad_state *ms = c->kstate;
    const kiln__win *w = &ms->w;
    const int64_t H = w->in[0], W = w->in[1], OH = w->out[0], OW = w->out[1];
    const int64_t planes = c->in[1]->dims[0] * c->in[1]->dims[1];
    const float *dy = c->in[0]->data, *x = c->in[1]->data;
    float *dx = c->out[0]->data;
    int64_t lo, hi;
    kiln__split(planes, c->ith, c->nth, &lo, &hi);
    const int tiled = windows_tile(w);
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *xp = x + pl * H * W, *g = dy + pl * OH * OW;
        float *d = dx + pl * H * W;
        if (tiled) {
            max_pool_grad_tiled(ms, xp, g, d);
            continue;
        }
        memset(d, 0, (size_t)(H * W) * sizeof *d);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * w->stride[0] - w->pad0[0], h1 = h0 + w->k[0];
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * w->stride[1] - w->pad0[1], w1 = w0 + w->k[1];
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                if (h0 >= h1 || w0 >= w1) continue; /* a window of padding only */
                /* the first maximum, without branches (the maxima fall anywhere) */
                int64_t best = h0 * W + w0;
                float m = xp[best];
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++) {
                        const float v = xp[i * W + j];
                        const int64_t gt = -(int64_t)(v > m); /* all ones when v wins */
                        best ^= (best ^ (i * W + j)) & gt;
                        m = v > m ? v : m;
                    }
                if (!ms->relu || m > 0) d[best] += g[oh * OW + ow];
            }
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_max_pool2d_grad_f32 = {
    "max_pool2d_grad_f32", "kiln", "MaxPoolGrad", KILN_OPF_PARALLEL, max_pool_grad_prepare,
    max_pool_grad_cost, max_pool_grad_run, free};

/* ---- activation gradients ------------------------------------------------------------ */

typedef enum { GRAD_RELU, GRAD_SIGMOID, GRAD_TANH } act_kind;

static kiln_status act_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *y = c->in[1];
    if (!kiln__eltw_f32(dy) || !kiln__eltw_f32(y) || !kiln__eltw_f32(c->out[0]) || !kiln__same_shape(dy, y))
        return KILN_E_UNSUPPORTED;
    act_kind *k = malloc(sizeof *k);
    if (!k) return kiln__err(KILN_E_NOMEM, "out of memory");
    *k = !strcmp(c->node->op_type, "ReluGrad") ? GRAD_RELU
         : !strcmp(c->node->op_type, "SigmoidGrad") ? GRAD_SIGMOID : GRAD_TANH;
    c->kstate = k;
    c->flops = 3.0 * (double)kiln__n(dy);
    return KILN_OK;
}

static double act_grad_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, c->flops, 0.25, 12.0 * (double)kiln__n(c->in[0]));
}

KILN__F32_CLONES static void act_grad_rows(act_kind k, const float *dy, const float *y, float *dx,
                                           int64_t n) {
    switch (k) {
    case GRAD_RELU: GRAD_ROWS(v > 0 ? g : 0.f); break;
    case GRAD_SIGMOID: GRAD_ROWS(g * v * (1.f - v)); break;
    default: GRAD_ROWS(g * (1.f - v * v)); break;
    }
}

// dY, Y, dX: same shape, f32; dX may share dY's or Y's buffer
static kiln_status act_grad_run(kiln__kctx *c) {
    int64_t lo, hi;
    kiln__eltw_share(kiln__n(c->out[0]), KILN__ELTW_GRAIN, c->ith, c->nth, &lo, &hi);
    if (hi > lo)
        act_grad_rows(*(const act_kind *)c->kstate, (const float *)c->in[0]->data + lo,
                      (const float *)c->in[1]->data + lo, (float *)c->out[0]->data + lo, hi - lo);
    return KILN_OK;
}

#define ACT_GRAD_ALGO(NAME, OP)                                                                  \
    const kiln__algo kiln__algo_##NAME = {#NAME, "kiln", OP, KILN_OPF_PARALLEL, \
                                          act_grad_prepare, act_grad_cost, act_grad_run, free};
ACT_GRAD_ALGO(relu_grad_f32, "ReluGrad")
ACT_GRAD_ALGO(sigmoid_grad_f32, "SigmoidGrad")
ACT_GRAD_ALGO(tanh_grad_f32, "TanhGrad")

/* ---- dropout in training ----------------------------------------------------------- */

typedef struct dropout_state {
    uint64_t keep_from; /* kept when kiln__hash64(seed, i) >> 11 >= keep_from */
    float scale;        /* 1 / (1 - ratio), in float as the reference */
} dropout_state;

static kiln_status train_dropout_prepare(kiln__kctx *c) {
    if (!kiln__eltw_f32(c->in[0]) || !kiln__eltw_f32(c->out[0])) return KILN_E_UNSUPPORTED;
    dropout_state *s = malloc(sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    const float ratio = kiln__attr_f(c->node, "ratio", 0.5f); /* in [0, 1): checked by infer */
    s->keep_from = (uint64_t)ceil((double)ratio * 9007199254740992.0); /* exact: ratio 2^53 */
    s->scale = 1.0f / (1.0f - ratio);
    c->kstate = s;
    c->flops = 10.0 * (double)kiln__n(c->in[0]);
    return KILN_OK;
}

static double train_dropout_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, c->flops, 0.1, 9.0 * (double)kiln__n(c->in[0]));
}

/* y[i], mask[i] for the elements [lo, hi) (mask may be NULL), in blocks:
 * the block's decisions first (the hashes, without branches), then its
 * outputs as bit masks (which the compiler vectorizes; a float select with
 * the multiply under it would not be). */
KILN__F32_CLONES static void train_dropout_rows(const dropout_state *s, uint64_t seed,
                                                const float *restrict x, float *restrict y,
                                                uint8_t *restrict mask, int64_t lo, int64_t hi) {
    enum { DROP_BLOCK = 256 };
    const uint64_t keep_from = s->keep_from;
    const float scale = s->scale;
    for (int64_t b = lo; b < hi; b += DROP_BLOCK) {
        const int n = (int)(hi - b < DROP_BLOCK ? hi - b : DROP_BLOCK);
        uint8_t keep[DROP_BLOCK];
        for (int j = 0; j < n; j++)
            keep[j] = kiln__hash64(seed, (uint64_t)(b + j)) >> 11 >= keep_from;
        for (int j = 0; j < n; j++) { /* y = keep ? x scale : +0, as bits */
            const float v = x[b + j] * scale;
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            bits &= 0u - (uint32_t)keep[j];
            memcpy(&y[b + j], &bits, sizeof bits);
        }
        if (mask) memcpy(mask + b, keep, (size_t)n);
    }
}

// X: (any) f32, seed: () i64; Y: like X, f32; mask: like X, bool, or absent
static kiln_status train_dropout_run(kiln__kctx *c) {
    kiln_tensor *mask = kiln__out(c, 1);
    int64_t lo, hi;
    kiln__eltw_share(kiln__n(c->in[0]), KILN__ELTW_GRAIN, c->ith, c->nth, &lo, &hi);
    if (hi > lo)
        train_dropout_rows(c->kstate, (uint64_t)((const int64_t *)c->in[1]->data)[0],
                           c->in[0]->data, c->out[0]->data, mask ? mask->data : NULL, lo, hi);
    return KILN_OK;
}

const kiln__algo kiln__algo_train_dropout_f32 = {
    "train_dropout_f32", "kiln", "TrainDropout", KILN_OPF_PARALLEL, train_dropout_prepare,
    train_dropout_cost, train_dropout_run, free};
