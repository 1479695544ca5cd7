/* src/cpu/kernels/rnn_grad.c: the LSTM's gradient through time on matrix
 * products, the algorithm lstm_grad_gemm for kiln.LSTMGrad (the reference,
 * in double and one batch row at a time, is src/cpu/ref/grad_rnn.c, which
 * also has the formulas).
 *
 *   kiln.LSTMGrad(X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c, sequence_lens, P)
 *       -> (dX, dW, dR, dB, dinitial_h, dinitial_c, dP)
 *
 * Per direction d, with the steps in the order the forward op takes them
 * (time S-1 down to 0 for the reverse direction) and X's rows gathered in
 * that order into Xs (S*N, I):
 *   forward   Z = Xs W_d^T + (Wb + Rb)             one product, M = S*N
 *             per step s: Z_s += h_s R_d^T          (N, 4H), K = H
 *             gates i, o, f = sigmoid, c~ = tanh; c_{s+1}, h_{s+1}
 *             (Z becomes the gates; every h_s and c_s is kept)
 *   backward  per step s from the last: dh += dY at the step's time;
 *             dZ_s from dh, dc and the gates (the reference's formulas);
 *             dh = dZ_s R_d (N, H), K = 4H;  dc = dc * f
 *   sums      dR_d = dZ^T H (4H, H), K = S*N;  dW_d = dZ^T Xs (4H, I);
 *             dX (in X's order) += dZ W_d;  dB_d = column sums of dZ, twice
 * The products run on the session's pool; the gate arithmetic (per step,
 * N*H values) on the calling thread, in f32 like every product.
 *
 * Taken: f32, the default activations, no clip, input_forget 0, no
 * peepholes, no sequence_lens (every sequence full length); the reference
 * runs the rest. W and R may change between runs (they are being trained):
 * nothing is packed at plan time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/gemm.h"
#include "ops/algo.h"

enum { IN_X, IN_W, IN_R, IN_DY, IN_DY_H, IN_DY_C, IN_B, IN_H0, IN_C0, IN_LENS, IN_P };
enum { OUT_DX, OUT_DW, OUT_DR, OUT_DB, OUT_DH0, OUT_DC0, OUT_DP };

typedef struct lstm_grad {
    int64_t S, N, I, H, D, G; /* G = 4H */
    int layout, reverse;      /* reverse: direction "reverse" (D = 1) */
    int nth;
    /* scratch offsets (floats) */
    size_t xs, z, hs, cs, dz, dh, dc, bias, dxs, gemm; /* gemm: bytes from there */
    size_t scratch_bytes;
} lstm_grad;

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* The largest GEMM scratch any product below needs on nth threads. */
static size_t gemm_scratch(const lstm_grad *s, int nth) {
    static const float dummy[1];
    const int64_t SN = s->S * s->N;
    const int64_t shapes[][5] = {/* m, n, k, trans_a, trans_b */
                                 {SN, s->G, s->I, 0, 1}, {s->N, s->G, s->H, 0, 1},
                                 {s->N, s->H, s->G, 0, 0}, {s->G, s->H, SN, 1, 0},
                                 {s->G, s->I, SN, 1, 0}, {SN, s->I, s->G, 0, 0}};
    size_t most = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        kiln__gemm_args a = {.m = shapes[k][0], .n = shapes[k][1], .k = shapes[k][2],
                             .trans_a = (int)shapes[k][3], .trans_b = (int)shapes[k][4],
                             .alpha = 1, .a = dummy, .lda = 1, .b = dummy, .ldb = 1,
                             .c = (float *)dummy, .ldc = 1};
        a.lda = a.trans_a ? a.m : a.k;
        a.ldb = a.trans_b ? a.k : a.n;
        a.ldc = a.n;
        size_t b = kiln__sgemm_scratch_bytes(&a, nth);
        if (b > most) most = b;
    }
    return most;
}

static int f32_or_absent(const kiln_tensor *t) { return !t || t->dtype == KILN_DTYPE_F32; }

static kiln_status lstm_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *x = kiln__in(c, IN_X), *w = kiln__in(c, IN_W), *r = kiln__in(c, IN_R);
    if (!x || !w || !r || x->dtype != KILN_DTYPE_F32 || w->dtype != KILN_DTYPE_F32 ||
        r->dtype != KILN_DTYPE_F32 || x->ndim != 3 || w->ndim != 3 || r->ndim != 3)
        return KILN_E_UNSUPPORTED;
    for (int i = IN_DY; i <= IN_C0; i++)
        if (!f32_or_absent(kiln__in(c, i))) return KILN_E_UNSUPPORTED;
    for (int i = 0; i < c->n_out; i++)
        if (kiln__out(c, i) && kiln__out(c, i)->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    const kiln__node *n = c->node;
    if (kiln__in(c, IN_LENS) || kiln__in(c, IN_P) || kiln__attr_find(n, "clip") ||
        kiln__attr_i(n, "input_forget", 0) || kiln__attr_find(n, "activations"))
        return KILN_E_UNSUPPORTED;
    lstm_grad *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "lstm_grad: out of memory");
    const char *dir = kiln__attr_s(n, "direction", "forward");
    s->layout = (int)kiln__attr_i(n, "layout", 0);
    s->reverse = !strcmp(dir, "reverse");
    s->D = !strcmp(dir, "bidirectional") ? 2 : 1;
    s->S = x->dims[s->layout ? 1 : 0];
    s->N = x->dims[s->layout ? 0 : 1];
    s->I = x->dims[2];
    s->H = r->dims[2];
    s->G = 4 * s->H;
    if ((s->layout != 0 && s->layout != 1) || s->S < 1 || s->N < 1 || s->I < 1 || s->H < 1 ||
        w->dims[0] != s->D || w->dims[1] != s->G || w->dims[2] != s->I || r->dims[0] != s->D ||
        r->dims[1] != s->G ||
        (double)s->S * s->N * (2.0 * s->G + 2 * s->I + 2 * s->H) * 4 > (double)(1u << 30)) {
        free(s);
        return KILN_E_UNSUPPORTED;
    }
    s->nth = c->nth_plan > 0 ? c->nth_plan : 1;
    const size_t SN = (size_t)(s->S * s->N), NH = (size_t)(s->N * s->H);
    size_t at = 0;
    s->xs = at, at += align16(SN * (size_t)s->I);
    s->z = at, at += align16(SN * (size_t)s->G);
    s->hs = at, at += align16(SN * (size_t)s->H + NH); /* h_0 .. h_S */
    s->cs = at, at += align16(SN * (size_t)s->H + NH);
    s->dz = at, at += align16(SN * (size_t)s->G);
    s->dh = at, at += align16(2 * NH); /* dh, and the product's result */
    s->dc = at, at += align16(NH);
    s->bias = at, at += align16((size_t)s->G);
    s->dxs = at, at += align16(SN * (size_t)s->I);
    s->gemm = at * sizeof(float);
    s->scratch_bytes = s->gemm + gemm_scratch(s, s->nth);
    c->scratch_bytes = s->scratch_bytes;
    const double sn = (double)SN, D = (double)s->D;
    /* forward again (2 products), backward (4 products) */
    c->flops = D * 2 * sn * s->G * (2.0 * s->I + 2.0 * s->H) + D * 2 * sn * s->G * s->H;
    c->kstate = s;
    return KILN_OK;
}

static double lstm_grad_cost(const kiln__kctx *c) {
    const lstm_grad *s = c->kstate;
    /* small products (M = N per step) keep the efficiency modest */
    double eff = s->N >= 32 ? 0.5 : 0.2;
    double bytes = 4.0 * s->D * s->S * s->N * (3.0 * s->G + 4 * s->I + 4 * s->H);
    return kiln__cost_seconds(c, c->flops, eff, bytes);
}

/* C = op(A) op(B) (+ C when accumulate), on the pool. */
static kiln_status product(const kiln__kctx *c, const lstm_grad *s, int64_t m, int64_t n,
                           int64_t k, const float *a, int64_t lda, int trans_a, const float *b,
                           int64_t ldb, int trans_b, float *out, int64_t ldc, int accumulate,
                           const float *col_bias) {
    kiln__gemm_args g = {.m = m, .n = n, .k = k, .trans_a = trans_a, .trans_b = trans_b,
                         .alpha = 1, .beta = accumulate ? 1.0f : 0.0f, .a = a, .lda = lda,
                         .b = b, .ldb = ldb, .c = out, .ldc = ldc};
    if (col_bias) {
        g.bias_kind = KILN__GEMM_BIAS_COL;
        g.bias = col_bias;
    }
    kiln__pool *pool = kiln__pool_size(c->pool) <= s->nth ? c->pool : NULL;
    return kiln__sgemm_run(pool, &g, (char *)c->scratch + s->gemm);
}

static float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }

/* Row offset (in rows of width `width`) of batch row n at time t, and of a
 * state row of direction d, in the ONNX layouts. */
static int64_t x_row(const lstm_grad *s, int64_t t, int64_t n) {
    return s->layout ? n * s->S + t : t * s->N + n;
}
static int64_t y_row(const lstm_grad *s, int64_t t, int64_t d, int64_t n) {
    return s->layout ? (n * s->S + t) * s->D + d : (t * s->D + d) * s->N + n;
}
static int64_t state_row(const lstm_grad *s, int64_t d, int64_t n) {
    return s->layout ? n * s->D + d : d * s->N + n;
}

static kiln_status lstm_grad_run(kiln__kctx *c) {
    const lstm_grad *s = c->kstate;
    const int64_t S = s->S, N = s->N, I = s->I, H = s->H, G = s->G, SN = S * N;
    float *f = c->scratch;
    float *xs = f + s->xs, *z = f + s->z, *hs = f + s->hs, *cs = f + s->cs, *dz = f + s->dz;
    float *dh = f + s->dh, *dhp = dh + N * H, *dc = f + s->dc, *bias = f + s->bias;
    float *dxs = f + s->dxs;
    const float *x = kiln__in(c, IN_X)->data, *w = kiln__in(c, IN_W)->data;
    const float *r = kiln__in(c, IN_R)->data;
    const kiln_tensor *t_dy = kiln__in(c, IN_DY), *t_dyh = kiln__in(c, IN_DY_H),
                      *t_dyc = kiln__in(c, IN_DY_C), *t_b = kiln__in(c, IN_B),
                      *t_h0 = kiln__in(c, IN_H0), *t_c0 = kiln__in(c, IN_C0);
    kiln_tensor *o_dx = kiln__out(c, OUT_DX), *o_dw = kiln__out(c, OUT_DW),
                *o_dr = kiln__out(c, OUT_DR), *o_db = kiln__out(c, OUT_DB),
                *o_dh0 = kiln__out(c, OUT_DH0), *o_dc0 = kiln__out(c, OUT_DC0);
    if (o_dx) memset(o_dx->data, 0, (size_t)(SN * I) * sizeof(float));
    for (int64_t d = 0; d < s->D; d++) {
        const int rev = s->reverse || d == 1;
        const float *wd = w + d * G * I, *rd = r + d * G * H;
        /* X in step order, the summed biases, the initial states */
        for (int64_t st = 0; st < S; st++) {
            const int64_t t = rev ? S - 1 - st : st;
            for (int64_t n = 0; n < N; n++)
                memcpy(xs + (st * N + n) * I, x + x_row(s, t, n) * I, (size_t)I * sizeof(float));
        }
        for (int64_t k = 0; k < G; k++)
            bias[k] = t_b ? ((const float *)t_b->data)[d * 2 * G + k] +
                                ((const float *)t_b->data)[d * 2 * G + G + k]
                          : 0.0f;
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < H; j++) {
                const int64_t at = state_row(s, d, n) * H + j;
                hs[n * H + j] = t_h0 ? ((const float *)t_h0->data)[at] : 0.0f;
                cs[n * H + j] = t_c0 ? ((const float *)t_c0->data)[at] : 0.0f;
            }
        /* forward again, keeping the gates and every state */
        KILN__TRY(product(c, s, SN, G, I, xs, I, 0, wd, I, 1, z, G, 0, bias));
        for (int64_t st = 0; st < S; st++) {
            float *zs = z + st * N * G;
            const float *h_prev = hs + st * N * H, *c_prev = cs + st * N * H;
            float *h_next = hs + (st + 1) * N * H, *c_next = cs + (st + 1) * N * H;
            KILN__TRY(product(c, s, N, G, H, h_prev, H, 0, rd, H, 1, zs, G, 1, NULL));
            for (int64_t n = 0; n < N; n++) {
                float *g = zs + n * G;
                for (int64_t j = 0; j < H; j++) {
                    float i = sigmoidf_(g[j]), o = sigmoidf_(g[H + j]), fg = sigmoidf_(g[2 * H + j]);
                    float cc = tanhf(g[3 * H + j]);
                    g[j] = i, g[H + j] = o, g[2 * H + j] = fg, g[3 * H + j] = cc;
                    float cn = fg * c_prev[n * H + j] + i * cc;
                    c_next[n * H + j] = cn;
                    h_next[n * H + j] = o * tanhf(cn);
                }
            }
        }
        /* backward through time */
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < H; j++) {
                const int64_t at = state_row(s, d, n) * H + j;
                dh[n * H + j] = t_dyh ? ((const float *)t_dyh->data)[at] : 0.0f;
                dc[n * H + j] = t_dyc ? ((const float *)t_dyc->data)[at] : 0.0f;
            }
        for (int64_t st = S - 1; st >= 0; st--) {
            const int64_t t = rev ? S - 1 - st : st;
            const float *zs = z + st * N * G, *c_prev = cs + st * N * H;
            const float *c_now = cs + (st + 1) * N * H;
            float *dzs = dz + st * N * G;
            for (int64_t n = 0; n < N; n++) {
                const float *g = zs + n * G;
                const float *dy = t_dy ? (const float *)t_dy->data + y_row(s, t, d, n) * H : NULL;
                float *gd = dzs + n * G;
                for (int64_t j = 0; j < H; j++) {
                    float dhv = dh[n * H + j] + (dy ? dy[j] : 0.0f);
                    float i = g[j], o = g[H + j], fg = g[2 * H + j], cc = g[3 * H + j];
                    float tc = tanhf(c_now[n * H + j]);
                    float dcv = dc[n * H + j] + dhv * o * (1 - tc * tc);
                    gd[j] = dcv * cc * i * (1 - i);
                    gd[H + j] = dhv * tc * o * (1 - o);
                    gd[2 * H + j] = dcv * c_prev[n * H + j] * fg * (1 - fg);
                    gd[3 * H + j] = dcv * i * (1 - cc * cc);
                    dc[n * H + j] = dcv * fg;
                }
            }
            KILN__TRY(product(c, s, N, H, G, dzs, G, 0, rd, H, 0, dhp, H, 0, NULL));
            memcpy(dh, dhp, (size_t)(N * H) * sizeof(float));
        }
        if (o_dh0 || o_dc0)
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < H; j++) {
                    const int64_t at = state_row(s, d, n) * H + j;
                    if (o_dh0) ((float *)o_dh0->data)[at] = dh[n * H + j];
                    if (o_dc0) ((float *)o_dc0->data)[at] = dc[n * H + j];
                }
        /* the sums over every step */
        if (o_dr)
            KILN__TRY(product(c, s, G, H, SN, dz, G, 1, hs, H, 0, (float *)o_dr->data + d * G * H, H,
                              0, NULL));
        if (o_dw)
            KILN__TRY(product(c, s, G, I, SN, dz, G, 1, xs, I, 0, (float *)o_dw->data + d * G * I, I,
                              0, NULL));
        if (o_dx) {
            KILN__TRY(product(c, s, SN, I, G, dz, G, 0, wd, I, 0, dxs, I, 0, NULL));
            float *dx = o_dx->data;
            for (int64_t st = 0; st < S; st++) {
                const int64_t t = rev ? S - 1 - st : st;
                for (int64_t n = 0; n < N; n++) {
                    float *to = dx + x_row(s, t, n) * I;
                    const float *from = dxs + (st * N + n) * I;
                    for (int64_t k = 0; k < I; k++) to[k] += from[k];
                }
            }
        }
        if (o_db) {
            float *db = (float *)o_db->data + d * 2 * G;
            for (int64_t k = 0; k < G; k++) db[k] = 0;
            for (int64_t row = 0; row < SN; row++)
                for (int64_t k = 0; k < G; k++) db[k] += dz[row * G + k];
            memcpy(db + G, db, (size_t)G * sizeof(float));
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_lstm_grad_gemm = {
    .name = "lstm_grad_gemm", .domain = "kiln", .op_type = "LSTMGrad", .flags = 0,
    .prepare = lstm_grad_prepare, .cost = lstm_grad_cost, .run = lstm_grad_run, .release = free,
};
