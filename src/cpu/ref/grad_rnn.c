/* src/cpu/ref/grad_rnn.c: the reference kernel of LSTM's gradient through
 * time (src/ops/defs/grad.def).
 *
 *   kiln.LSTMGrad(X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c)
 *       -> (dX, dW, dR, dB, dinitial_h, dinitial_c)
 *
 * for the LSTM (src/cpu/ref/rnn.c has the shapes) with the default
 * activations (sigmoid gates, tanh cell and output), no peepholes, no clip,
 * input_forget 0 and every sequence of full length; attributes direction,
 * hidden_size and layout as the forward node's. dY, dY_h, dY_c, B and the
 * initial states may be absent (zero). Per direction d and batch row n the
 * forward pass is computed again, keeping each step's gates and states, then
 * walked backwards (gates i, o, f, c~ in W's block order):
 *
 *   forward   c_t = f * c_{t-1} + i * c~,  h_t = o * tanh(c_t)
 *   backward  dh = dY_t + dh_{t+1}   (dY_h at the last step, dY_c likewise)
 *             do = dh * tanh(c_t),  dc = dc_{t+1} + dh * o * (1 - tanh(c_t)^2)
 *             di = dc * c~,  df = dc * c_{t-1},  dc~ = dc * i,  dc_{t-1} = dc * f
 *             dg = (di i(1-i), do o(1-o), df f(1-f), dc~ (1-c~^2))
 *             dW += dg x_t^T, dR += dg h_{t-1}^T, dWb = dRb += dg,
 *             dx_t += W^T dg, dh_{t-1} = R^T dg
 *
 * The reverse direction walks time backwards in the forward pass (and so
 * forwards here). Everything in double; the gradients of W, R, B and X are
 * summed in scratch and stored at the end. One thread.
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

typedef struct lstm_dims {
    int64_t S, N, I, H, D;
    int layout, reverse; /* reverse: direction "reverse" (D = 1) */
} lstm_dims;

static kiln_status lstm_dims_read(const kiln__kctx *c, lstm_dims *d) {
    const kiln_tensor *x = c->in[0], *w = c->in[1], *r = c->in[2];
    const char *dir = kiln__attr_s(c->node, "direction", "forward");
    char b1[96], b2[96];
    d->layout = (int)kiln__attr_i(c->node, "layout", 0);
    d->reverse = !strcmp(dir, "reverse");
    d->D = !strcmp(dir, "bidirectional") ? 2 : 1;
    if (strcmp(dir, "forward") && !d->reverse && d->D != 2)
        return kiln__err(KILN_E_INVAL, "attribute 'direction' is \"%s\"", dir);
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, 0));
    if (x->ndim != 3 || w->ndim != 3 || r->ndim != 3)
        return kiln__err(KILN_E_SHAPE, "X, W and R must have rank 3");
    d->S = x->dims[d->layout ? 1 : 0];
    d->N = x->dims[d->layout ? 0 : 1];
    d->I = x->dims[2];
    d->H = r->dims[2];
    int64_t want_w[3] = {d->D, 4 * d->H, d->I}, want_r[3] = {d->D, 4 * d->H, d->H};
    if (memcmp(w->dims, want_w, sizeof want_w) || memcmp(r->dims, want_r, sizeof want_r))
        return kiln__err(KILN_E_SHAPE, "W %s and R %s do not fit X (expected %s and %s)",
                         kiln__shape_str(3, w->dims, b1, sizeof b1), kiln__shape_str(3, r->dims, b2, sizeof b2),
                         "(D,4H,I)", "(D,4H,H)");
    for (int k = 0; k < 9; k++) {
        const kiln_tensor *t = kiln__in(c, k);
        if (t && k && t->dtype != x->dtype)
            return kiln__err(KILN_E_TYPE, "input %d is %s, expected %s like X", k,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
    }
    return KILN_OK;
}

/* Flat offsets of X (t, n, k), Y (t, d, n, j) and the states (d, n, j). */
static int64_t x_at(const lstm_dims *d, int64_t t, int64_t n, int64_t k) {
    return ((d->layout ? n * d->S + t : t * d->N + n)) * d->I + k;
}
static int64_t y_at(const lstm_dims *d, int64_t t, int64_t dir, int64_t n, int64_t j) {
    return (d->layout ? (n * d->S + t) * d->D + dir : (t * d->D + dir) * d->N + n) * d->H + j;
}
static int64_t h_at(const lstm_dims *d, int64_t dir, int64_t n, int64_t j) {
    return (d->layout ? n * d->D + dir : dir * d->N + n) * d->H + j;
}

/* Scratch, in doubles: the steps (S x 6H: i, o, f, c~, c, h), dg (4H),
 * dh, dc, dh_prev (3H), and the sums dX (S*N*I), dW (D*4H*I), dR (D*4H*H),
 * dB (D*8H). */
static size_t lstm_scratch(const lstm_dims *d) {
    int64_t n = d->S * 6 * d->H + 4 * d->H + 3 * d->H + d->S * d->N * d->I +
                d->D * 4 * d->H * (d->I + d->H) + d->D * 8 * d->H;
    return (size_t)n * sizeof(double);
}

kiln_status kiln__infer_LSTMGrad(kiln__kctx *c) {
    lstm_dims d;
    KILN__TRY(lstm_dims_read(c, &d));
    const kiln_tensor *x = c->in[0];
    int64_t bdims[2] = {d.D, 8 * d.H}, sdims[3] = {d.D, d.N, d.H};
    if (d.layout) sdims[0] = d.N, sdims[1] = d.D;
    c->scratch_bytes = lstm_scratch(&d);
    KILN__TRY(kiln__out_like(c, 0, x));
    KILN__TRY(kiln__out_like(c, 1, c->in[1]));
    KILN__TRY(kiln__out_like(c, 2, c->in[2]));
    KILN__TRY(kiln__out_shape(c, 3, x->dtype, 2, bdims));
    KILN__TRY(kiln__out_shape(c, 4, x->dtype, 3, sdims));
    return kiln__out_shape(c, 5, x->dtype, 3, sdims);
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Value k of optional input t, 0 when absent. */
static double opt_ld(const kiln_tensor *t, int64_t k) {
    return t ? kiln__elem_ld_f(t->dtype, t->data, k) : 0.0;
}

/* Stores n doubles into output i, if it is present. */
static void store_out(kiln__kctx *c, int i, const double *v, int64_t n) {
    kiln_tensor *o = kiln__out(c, i);
    if (!o) return;
    for (int64_t k = 0; k < n; k++) kiln__elem_st_f(o->dtype, o->data, k, v[k]);
}

kiln_status kiln__ref_LSTMGrad(kiln__kctx *c) {
    lstm_dims d;
    KILN__TRY(lstm_dims_read(c, &d));
    const kiln_tensor *x = c->in[0], *w = c->in[1], *r = c->in[2], *b = kiln__in(c, 6);
    const kiln_tensor *dy = kiln__in(c, 3), *dyh = kiln__in(c, 4), *dyc = kiln__in(c, 5);
    const kiln_tensor *h0 = kiln__in(c, 7), *c0 = kiln__in(c, 8);
    const int64_t S = d.S, N = d.N, I = d.I, H = d.H, G = 4 * H;
    double *steps = (double *)c->scratch, *dg = steps + S * 6 * H, *dh = dg + G, *dc = dh + H,
           *dh_prev = dc + H, *dX = dh_prev + H, *dW = dX + S * N * I, *dR = dW + d.D * G * I,
           *dB = dR + d.D * G * H;
    memset(dX, 0, (size_t)(S * N * I + d.D * G * (I + H) + d.D * 8 * H) * sizeof(double));
    for (int64_t dir = 0; dir < d.D; dir++) {
        const int rev = d.reverse || dir == 1;
        for (int64_t n = 0; n < N; n++) {
            /* forward again; step s at time t, state h_{s-1} read from the step before */
            for (int64_t s = 0; s < S; s++) {
                int64_t t = rev ? S - 1 - s : s;
                double *st = steps + s * 6 * H, *prev = s ? st - 6 * H : NULL;
                for (int64_t row = 0; row < G; row++) {
                    double g = opt_ld(b, dir * 2 * G + row) + opt_ld(b, dir * 2 * G + G + row);
                    for (int64_t k = 0; k < I; k++)
                        g += kiln__elem_ld_f(w->dtype, w->data, (dir * G + row) * I + k) *
                             kiln__elem_ld_f(x->dtype, x->data, x_at(&d, t, n, k));
                    for (int64_t k = 0; k < H; k++)
                        g += kiln__elem_ld_f(r->dtype, r->data, (dir * G + row) * H + k) *
                             (prev ? prev[5 * H + k] : opt_ld(h0, h_at(&d, dir, n, k)));
                    st[row] = row < 3 * H ? sigmoid(g) : tanh(g); /* i, o, f; c~ */
                }
                for (int64_t j = 0; j < H; j++) {
                    double cp = prev ? prev[4 * H + j] : opt_ld(c0, h_at(&d, dir, n, j));
                    st[4 * H + j] = st[2 * H + j] * cp + st[j] * st[3 * H + j];
                    st[5 * H + j] = st[H + j] * tanh(st[4 * H + j]);
                }
            }
            /* backward through time */
            for (int64_t j = 0; j < H; j++) {
                dh[j] = opt_ld(dyh, h_at(&d, dir, n, j));
                dc[j] = opt_ld(dyc, h_at(&d, dir, n, j));
            }
            for (int64_t s = S - 1; s >= 0; s--) {
                int64_t t = rev ? S - 1 - s : s;
                const double *st = steps + s * 6 * H, *prev = s ? st - 6 * H : NULL;
                for (int64_t j = 0; j < H; j++) {
                    double i = st[j], o = st[H + j], f = st[2 * H + j], cc = st[3 * H + j];
                    double tc = tanh(st[4 * H + j]);
                    double cp = prev ? prev[4 * H + j] : opt_ld(c0, h_at(&d, dir, n, j));
                    double h_grad = dh[j] + opt_ld(dy, y_at(&d, t, dir, n, j));
                    double c_grad = dc[j] + h_grad * o * (1 - tc * tc);
                    dg[j] = c_grad * cc * i * (1 - i);
                    dg[H + j] = h_grad * tc * o * (1 - o);
                    dg[2 * H + j] = c_grad * cp * f * (1 - f);
                    dg[3 * H + j] = c_grad * i * (1 - cc * cc);
                    dc[j] = c_grad * f;
                }
                memset(dh_prev, 0, (size_t)H * sizeof(double));
                for (int64_t row = 0; row < G; row++) {
                    double g = dg[row];
                    dB[dir * 8 * H + row] += g;
                    dB[dir * 8 * H + G + row] += g;
                    for (int64_t k = 0; k < I; k++) {
                        int64_t wk = (dir * G + row) * I + k, xk = x_at(&d, t, n, k);
                        dW[wk] += g * kiln__elem_ld_f(x->dtype, x->data, xk);
                        dX[xk] += g * kiln__elem_ld_f(w->dtype, w->data, wk);
                    }
                    for (int64_t k = 0; k < H; k++) {
                        int64_t rk = (dir * G + row) * H + k;
                        dR[rk] += g * (prev ? prev[5 * H + k] : opt_ld(h0, h_at(&d, dir, n, k)));
                        dh_prev[k] += g * kiln__elem_ld_f(r->dtype, r->data, rk);
                    }
                }
                memcpy(dh, dh_prev, (size_t)H * sizeof(double));
            }
            for (int k = 4; k < 6; k++) {
                kiln_tensor *o = kiln__out(c, k);
                if (o)
                    for (int64_t j = 0; j < H; j++)
                        kiln__elem_st_f(o->dtype, o->data, h_at(&d, dir, n, j), k == 4 ? dh[j] : dc[j]);
            }
        }
    }
    store_out(c, 0, dX, S * N * I);
    store_out(c, 1, dW, d.D * G * I);
    store_out(c, 2, dR, d.D * G * H);
    store_out(c, 3, dB, d.D * 8 * H);
    return KILN_OK;
}
