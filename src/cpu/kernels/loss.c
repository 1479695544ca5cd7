/* src/cpu/kernels/loss.c: fast f32 SoftmaxCrossEntropyLoss and its gradient
 * kiln.SoftmaxCrossEntropyLossGrad (references: src/cpu/ref/loss.c and
 * src/cpu/ref/grad_softmax.c, which have the semantics), on the row kernels
 * of eltwise.h.
 *
 *   scores (N, C, D) f32 (D: the product of the trailing dims, 1 for plain
 *   classification), labels (N, D) int32/int64, weight (C) f32 or absent;
 *   loss () or (N, D); log_prob (N, C, D) when asked for.
 *   dL () or (N, D), log_prob, labels, weight -> dScores (N, C, D).
 *
 * The classes of one position are D apart, so both work on the C rows of D
 * values of a sample at once, in column blocks of up to BLOCK positions:
 * the forward takes the positions' max over the rows (binary max), the sum
 * of exp(row - max) (binary sub, unary exp, binary add) and
 * lse = max + log(sum), then log_prob = row - lse and the loss -w[t] (x[t] -
 * lse); the gradient is g (exp(log_prob) - [k = t]) with g the position's
 * dL (times w[t]; divided by the weight sum for "mean"). D = 1 runs each
 * sample's row through the table's log-softmax instead.
 *
 * Sums of losses and weights are in double, the rest in f32 (the reference
 * is in double throughout). One thread: the work is C*N*D exp, small beside
 * the products that make the scores. Labels outside [0, C) (other than
 * ignore_index) fail the run with the reference's message.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"

#define BLOCK 256 /* positions of a column block */

typedef enum { RED_NONE = 1, RED_SUM, RED_MEAN } red_kind;

typedef struct loss_state {
    kiln__eltw_state base;
    int64_t N, C, D;
    red_kind red;
    int has_ignore;
    int64_t ignore;
} loss_state;

/* scores, labels, weight inputs at 0, 1, 2 (forward) or 1, 2, 3 (gradient) */
static kiln_status loss_prepare_common(kiln__kctx *c, int first) {
    const kiln_tensor *x = c->in[first], *t = c->in[first + 1], *w = kiln__in(c, first + 2);
    if (!kiln__eltw_f32(x) || (w && !kiln__eltw_f32(w)) || kiln__n(x) == 0) return KILN_E_UNSUPPORTED;
    for (int k = 0; k < c->n_out; k++)
        if (kiln__out(c, k) && !kiln__eltw_f32(kiln__out(c, k))) return KILN_E_UNSUPPORTED;
    const char *r = kiln__attr_s(c->node, "reduction", "mean");
    red_kind red = !strcmp(r, "none") ? RED_NONE : !strcmp(r, "sum") ? RED_SUM : !strcmp(r, "mean") ? RED_MEAN : 0;
    if (!red) return KILN_E_UNSUPPORTED; /* the reference says why */
    KILN__TRY(kiln__eltw_state_new(c, sizeof(loss_state)));
    loss_state *s = c->kstate;
    s->N = x->dims[0];
    s->C = x->dims[1];
    s->D = kiln__n(t) / s->N;
    s->red = red;
    s->has_ignore = kiln__attr_find(c->node, "ignore_index") != NULL;
    s->ignore = kiln__attr_i(c->node, "ignore_index", 0);
    /* forward: max, sum, tmp, lse blocks; D = 1: a row. gradient: g block, tmp row */
    const int64_t blk = s->D < BLOCK ? s->D : BLOCK;
    c->scratch_bytes = (size_t)(4 * blk + s->C) * sizeof(float);
    c->flops = 4.0 * (double)kiln__n(x);
    return KILN_OK;
}

static kiln_status sce_prepare(kiln__kctx *c) { return loss_prepare_common(c, 0); }
static kiln_status sce_grad_prepare(kiln__kctx *c) { return loss_prepare_common(c, 1); }

static double loss_cost(const kiln__kctx *c) {
    const double n = (double)kiln__n(c->out[0]) + (double)kiln__n(c->in[1]);
    return kiln__eltw_cost(c, 20.0 * n, 12.0 * n);
}

/* The label of position i; KILN_E_RANGE (the reference's message, `what`
 * naming it) outside [0, C) unless ignored, when *cls is -1. */
static kiln_status label_at(const loss_state *s, const kiln_tensor *t, int64_t i, const char *what,
                            int64_t *cls) {
    int64_t v = kiln__ld_i(t->dtype, t->data, i);
    if (s->has_ignore && v == s->ignore) {
        *cls = -1;
        return KILN_OK;
    }
    if (v < 0 || v >= s->C)
        return kiln__err(KILN_E_RANGE, "%s %lld at position %lld is outside [0, %lld)", what, (long long)v,
                         (long long)i, (long long)s->C);
    *cls = v;
    return KILN_OK;
}

/* lse[0..n) = log(sum over the C rows (stride D) of exp(row - max)) + max,
 * for the positions [d0, d0 + n) of sample rows x; m, sum, tmp: n floats. */
static void block_lse(const kiln__eltw_kernels *k, const float *x, int64_t C, int64_t D, int64_t n,
                      float *m, float *sum, float *tmp, float *lse) {
    memcpy(m, x, (size_t)n * sizeof(float));
    for (int64_t c = 1; c < C; c++) k->binary(KILN__ELTW_MAX, m, 1, x + c * D, 1, m, n);
    const kiln__eltw_unary e = {.op = KILN__ELTW_EXP};
    memset(sum, 0, (size_t)n * sizeof(float));
    for (int64_t c = 0; c < C; c++) {
        k->binary(KILN__ELTW_SUB, x + c * D, 1, m, 1, tmp, n);
        k->unary(&e, tmp, tmp, n);
        k->binary(KILN__ELTW_ADD, sum, 1, tmp, 1, sum, n);
    }
    for (int64_t j = 0; j < n; j++) lse[j] = m[j] + logf(sum[j]);
}

// scores: (N,C,D), labels: (N,D), weight: (C); loss: (N,D) or (); log_prob: (N,C,D)
static kiln_status sce_run(kiln__kctx *c) {
    const loss_state *s = c->kstate;
    const kiln__eltw_kernels *k = s->base.k;
    const kiln_tensor *t = c->in[1], *wt = kiln__in(c, 2);
    const float *w = wt ? wt->data : NULL;
    float *loss = c->out[0]->data, *lp_out = kiln__out(c, 1) ? kiln__out(c, 1)->data : NULL;
    const int64_t N = s->N, C = s->C, D = s->D, blk = D < BLOCK ? D : BLOCK;
    float *m = c->scratch, *sum = m + blk, *tmp = sum + blk, *lse = tmp + blk, *row = lse + blk;
    double total = 0, weight_sum = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d0 = 0; d0 < D; d0 += blk) {
            const int64_t nb = D - d0 < blk ? D - d0 : blk;
            const float *x = (const float *)c->in[0]->data + n * C * D + d0;
            float *lp = lp_out ? lp_out + n * C * D + d0 : NULL, *r = lp ? lp : row;
            if (D == 1) { /* one row of C classes: its log-softmax into r */
                k->softmax(x, r, C, 1);
            } else {
                block_lse(k, x, C, D, nb, m, sum, tmp, lse);
                for (int64_t cl = 0; lp && cl < C; cl++)
                    k->binary(KILN__ELTW_SUB, x + cl * D, 1, lse, 1, lp + cl * D, nb);
            }
            for (int64_t j = 0; j < nb; j++) {
                const int64_t i = n * D + d0 + j;
                int64_t cls;
                KILN__TRY(label_at(s, t, i, "target value", &cls));
                double l = 0, wv = 0;
                if (cls >= 0) {
                    wv = w ? w[cls] : 1.0;
                    l = -wv * (D == 1 ? (double)r[cls] : (double)x[cls * D + j] - lse[j]);
                }
                if (s->red == RED_NONE) loss[i] = (float)l;
                total += l;
                weight_sum += wv;
            }
        }
    if (s->red != RED_NONE) loss[0] = (float)(s->red == RED_SUM ? total : total / weight_sum);
    return KILN_OK;
}

// dL: () or (N,D), log_prob: (N,C,D), labels: (N,D), weight: (C); dScores: (N,C,D)
static kiln_status sce_grad_run(kiln__kctx *c) {
    const loss_state *s = c->kstate;
    const kiln__eltw_kernels *k = s->base.k;
    const float *dl = c->in[0]->data, *lp = c->in[1]->data;
    const kiln_tensor *t = c->in[2], *wt = kiln__in(c, 3);
    const float *w = wt ? wt->data : NULL;
    float *dx = c->out[0]->data;
    const int64_t N = s->N, C = s->C, D = s->D, blk = D < BLOCK ? D : BLOCK;
    float *g = c->scratch;
    double weight_sum = 0; /* the mean's divisor, and the label checks */
    for (int64_t i = 0; i < N * D; i++) {
        int64_t cls;
        KILN__TRY(label_at(s, t, i, "label", &cls));
        if (cls >= 0) weight_sum += w ? w[cls] : 1.0;
    }
    const double g_all = s->red == RED_NONE ? 0 : s->red == RED_SUM ? dl[0] : dl[0] / weight_sum;
    const kiln__eltw_unary e = {.op = KILN__ELTW_EXP};
    for (int64_t n = 0; n < N; n++)
        for (int64_t d0 = 0; d0 < D; d0 += blk) {
            const int64_t nb = D - d0 < blk ? D - d0 : blk, off = n * C * D + d0;
            for (int64_t j = 0; j < nb; j++) {
                int64_t cls = kiln__ld_i(t->dtype, t->data, n * D + d0 + j);
                double gv = 0;
                if (!(s->has_ignore && cls == s->ignore)) {
                    gv = s->red == RED_NONE ? dl[n * D + d0 + j] : g_all;
                    if (w) gv *= w[cls];
                }
                g[j] = (float)gv;
            }
            /* dx = g exp(log_prob), then -g at the labels; D = 1: one row of C */
            if (D == 1) {
                k->unary(&e, lp + off, dx + off, C);
                k->binary(KILN__ELTW_MUL, dx + off, 1, g, 0, dx + off, C);
            }
            for (int64_t cl = 0; D > 1 && cl < C; cl++) {
                k->unary(&e, lp + off + cl * D, dx + off + cl * D, nb);
                k->binary(KILN__ELTW_MUL, dx + off + cl * D, 1, g, 1, dx + off + cl * D, nb);
            }
            for (int64_t j = 0; j < nb; j++) {
                int64_t cls = kiln__ld_i(t->dtype, t->data, n * D + d0 + j);
                if (g[j] == 0) { /* ignored, or weight 0: the column is 0 (even where exp is NaN) */
                    for (int64_t cl = 0; cl < C; cl++) dx[off + cl * D + j] = 0;
                } else {
                    dx[off + cls * D + j] -= g[j];
                }
            }
        }
    return KILN_OK;
}

const kiln__algo kiln__algo_softmax_ce_f32 = {
    .name = "softmax_ce_f32", .domain = "", .op_type = "SoftmaxCrossEntropyLoss", .flags = 0,
    .prepare = sce_prepare, .cost = loss_cost, .run = sce_run, .release = free,
};
const kiln__algo kiln__algo_softmax_ce_grad_f32 = {
    .name = "softmax_ce_grad_f32", .domain = "kiln", .op_type = "SoftmaxCrossEntropyLossGrad", .flags = 0,
    .prepare = sce_grad_prepare, .cost = loss_cost, .run = sce_grad_run, .release = free,
};
