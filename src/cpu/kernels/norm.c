/* src/cpu/kernels/norm.c: fast f32 normalizations.
 *
 * LayerNormalization (opset 17), RMSNormalization (opset 23):
 *   X: f32 viewed as (rows, cols) at `axis` (cols = Daxis*..*Dk); Scale and
 *   B (optional, LayerNorm only): f32 covering exactly X's dims from axis on
 *   (other broadcasts are left to the reference); Y: X's shape; Mean and
 *   InvStdDev (LayerNorm, when requested): (rows) f32 (stash_type 1 only).
 *   Per row: mean (0 for RMS), variance, inv = 1/sqrt(var + eps), then
 *   y = (x - mean) * inv * scale + bias, by the ISA table's norm row.
 * BatchNormalization, inference form (training_mode 0, only Y requested):
 *   X: (N,C,D1..Dk) f32, scale, B, input_mean, input_var: (C) f32; per
 *   channel a = scale / sqrt(var + eps), b = B - mean * a (in double, as the
 *   reference), then y = a x + b over each (n, c) plane.
 * LRN: X (N,C,D1..Dk) f32, Y like X; per (n, c) plane the row kernel sums
 * the squares of the window's planes [c - floor((size-1)/2),
 * c + ceil((size-1)/2)] within [0, C) and scales x by (bias + alpha/size *
 * sum)^-beta, in f32 (the reference: double).
 * Rows (planes) are split over the threads (KILN_OPF_PARALLEL) in units of
 * about KILN__ELTW_GRAIN elements.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"

/* ---- LayerNormalization / RMSNormalization --------------------------------------- */

typedef struct row_norm_state {
    kiln__eltw_state base;
    int64_t rows, cols;
    float eps;
    int center; /* LayerNorm: subtract the mean */
} row_norm_state;

/* 1 if t is f32 with exactly x's dims from axis on (leading 1s allowed). */
static int covers_cols(const kiln_tensor *t, const kiln_tensor *x, int axis) {
    if (!kiln__eltw_f32(t) || t->ndim > x->ndim) return 0;
    for (int i = 0; i < t->ndim; i++) {
        int xi = x->ndim - t->ndim + i;
        if (t->dims[i] != (xi < axis ? 1 : x->dims[xi])) return 0;
    }
    return kiln__n(t) == kiln__dims_prod(x->dims, axis, x->ndim);
}

static kiln_status row_norm_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    int center = strcmp(c->node->op_type, "LayerNormalization") == 0;
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || x->ndim < 1) return KILN_E_UNSUPPORTED;
    int64_t axis = kiln__attr_i(c->node, "axis", -1);
    if (axis < -x->ndim || axis >= x->ndim) return KILN_E_UNSUPPORTED;
    if (axis < 0) axis += x->ndim;
    if (!covers_cols(c->in[1], x, (int)axis)) return KILN_E_UNSUPPORTED;
    if (kiln__in(c, 2) && (!center || !covers_cols(c->in[2], x, (int)axis))) return KILN_E_UNSUPPORTED;
    for (int i = 1; i < c->n_out; i++) /* Mean, InvStdDev */
        if (c->out[i] && (!center || c->out[i]->dtype != KILN_DTYPE_F32)) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(row_norm_state)));
    row_norm_state *s = c->kstate;
    s->rows = kiln__dims_prod(x->dims, 0, (int)axis);
    s->cols = kiln__dims_prod(x->dims, (int)axis, x->ndim);
    s->eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    s->center = center;
    c->flops = 8.0 * (double)kiln__n(x);
    return KILN_OK;
}

static double row_norm_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->in[0]);
    return kiln__eltw_cost(c, 8.0 * n, 12.0 * n);
}

// x, y: (rows, cols); scale, bias: (cols); mean, inv_std: (rows); thread ith does its rows
static kiln_status row_norm_run(kiln__kctx *c) {
    const row_norm_state *s = c->kstate;
    if (s->cols == 0) return KILN_OK;
    const float *x = c->in[0]->data, *scale = c->in[1]->data;
    const float *bias = kiln__in(c, 2) ? kiln__in(c, 2)->data : NULL;
    float *y = c->out[0]->data;
    float *o_mean = kiln__out(c, 1) ? kiln__out(c, 1)->data : NULL;
    float *o_inv = kiln__out(c, 2) ? kiln__out(c, 2)->data : NULL;
    int64_t lo, hi;
    kiln__eltw_share(s->rows, KILN__ELTW_GRAIN / s->cols, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float mean, inv;
        s->base.k->norm(x + r * s->cols, y + r * s->cols, s->cols, scale, bias, s->eps, s->center,
                        &mean, &inv);
        if (o_mean) o_mean[r] = mean;
        if (o_inv) o_inv[r] = inv;
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_layer_norm_f32 = {"layer_norm_f32", "", "LayerNormalization",
                                              KILN_OPF_PARALLEL, row_norm_prepare, row_norm_cost,
                                              row_norm_run, free};
const kiln__algo kiln__algo_rms_norm_f32 = {"rms_norm_f32", "", "RMSNormalization",
                                            KILN_OPF_PARALLEL, row_norm_prepare, row_norm_cost,
                                            row_norm_run, free};

/* ---- BatchNormalization (inference) ------------------------------------------------ */

typedef struct batch_norm_state {
    kiln__eltw_state base;
    int64_t C, S; /* channels, elements per (n, c) plane */
    double eps;
} batch_norm_state;

static kiln_status batch_norm_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || x->ndim < 2 || c->n_in < 5) return KILN_E_UNSUPPORTED;
    if (c->opset >= 14 ? kiln__attr_i(c->node, "training_mode", 0) != 0
                       : c->opset < 9 && kiln__attr_i(c->node, "spatial", 1) == 0)
        return KILN_E_UNSUPPORTED;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) return KILN_E_UNSUPPORTED; /* running / saved statistics: training */
    for (int i = 1; i < 5; i++)
        if (!kiln__eltw_f32(c->in[i]) || kiln__n(c->in[i]) != x->dims[1]) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(batch_norm_state)));
    batch_norm_state *s = c->kstate;
    s->C = x->dims[1];
    s->S = kiln__dims_prod(x->dims, 2, x->ndim);
    s->eps = kiln__attr_f(c->node, "epsilon", 1e-5f);
    c->flops = 2.0 * (double)kiln__n(x);
    return KILN_OK;
}

static double batch_norm_cost(const kiln__kctx *c) {
    double n = (double)kiln__n(c->in[0]);
    return kiln__eltw_cost(c, 2.0 * n, 8.0 * n);
}

// x, y: (N, C, S); params: (C); thread ith does its (n, c) planes
static kiln_status batch_norm_run(kiln__kctx *c) {
    const batch_norm_state *s = c->kstate;
    if (s->S == 0 || s->C == 0) return KILN_OK;
    const float *x = c->in[0]->data, *sc = c->in[1]->data, *bi = c->in[2]->data;
    const float *mean = c->in[3]->data, *var = c->in[4]->data;
    float *y = c->out[0]->data;
    int64_t planes = c->in[0]->dims[0] * s->C, lo, hi;
    kiln__eltw_share(planes, KILN__ELTW_GRAIN / s->S, c->ith, c->nth, &lo, &hi);
    for (int64_t p = lo; p < hi; p++) {
        int64_t ch = p % s->C;
        double a = sc[ch] / sqrt((double)var[ch] + s->eps);
        kiln__eltw_unary u = {KILN__ELTW_AFFINE, (float)a, (float)(bi[ch] - mean[ch] * a)};
        s->base.k->unary(&u, x + p * s->S, y + p * s->S, s->S);
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_batch_norm_f32 = {"batch_norm_f32", "", "BatchNormalization",
                                              KILN_OPF_PARALLEL, batch_norm_prepare,
                                              batch_norm_cost, batch_norm_run, free};

/* ---- LRN ----------------------------------------------------------------------------- */

typedef struct lrn_state {
    kiln__eltw_state base;
    int64_t C, S;          /* channels, elements per (n, c) plane */
    int64_t before, after; /* window: [c - before, c + after] */
    float bias, scale, beta;
} lrn_state;

static kiln_status lrn_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || x->ndim < 2) return KILN_E_UNSUPPORTED;
    const int64_t size = kiln__attr_i(c->node, "size", 0);
    if (size <= 0 || size > 1024) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(lrn_state)));
    lrn_state *s = c->kstate;
    s->C = x->dims[1];
    s->S = kiln__dims_prod(x->dims, 2, x->ndim);
    s->before = (size - 1) / 2;
    s->after = size / 2;
    s->bias = kiln__attr_f(c->node, "bias", 1.0f);
    s->scale = (float)(kiln__attr_f(c->node, "alpha", 1e-4f) / (double)size);
    s->beta = kiln__attr_f(c->node, "beta", 0.75f);
    c->flops = (2.0 * (double)size + 4.0) * (double)kiln__n(x);
    return KILN_OK;
}

static double lrn_cost(const kiln__kctx *c) {
    const lrn_state *s = c->kstate;
    const double n = (double)kiln__n(c->in[0]);
    /* the window's squares, and exp and log (~30 operations a vector) */
    return kiln__eltw_cost(c, n * (2.0 * (double)(s->before + s->after + 1) + 40.0), 8.0 * n);
}

// x, y: (N, C, S); thread ith does its (n, c) planes
static kiln_status lrn_run(kiln__kctx *c) {
    const lrn_state *s = c->kstate;
    if (s->S == 0 || s->C == 0) return KILN_OK;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__eltw_share(c->in[0]->dims[0] * s->C, KILN__ELTW_GRAIN / s->S, c->ith, c->nth, &lo, &hi);
    for (int64_t p = lo; p < hi; p++) {
        const int64_t ch = p % s->C, first = p - ch; /* plane of channel 0 */
        const int64_t c0 = ch - s->before < 0 ? 0 : ch - s->before;
        const int64_t c1 = ch + s->after >= s->C ? s->C - 1 : ch + s->after;
        s->base.k->lrn(x + p * s->S, x + (first + c0) * s->S, s->S, (int)(c1 - c0 + 1),
                       y + p * s->S, s->S, s->bias, s->scale, s->beta);
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_lrn_f32 = {"lrn_f32", "", "LRN", KILN_OPF_PARALLEL, lrn_prepare,
                                       lrn_cost, lrn_run, free};
