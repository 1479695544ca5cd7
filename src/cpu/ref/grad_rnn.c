/* src/cpu/ref/grad_rnn.c: the reference kernels of the recurrent ops'
 * gradients through time (src/ops/defs/grad.def):
 *
 *   kiln.LSTMGrad(X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c, sequence_lens, P,
 *                 Reserve) -> (dX, dW, dR, dB, dinitial_h, dinitial_c, dP)
 *   kiln.GRUGrad(X, W, R, dY, dY_h, B, initial_h, sequence_lens, Reserve)
 *       -> (dX, dW, dR, dB, dinitial_h)
 *
 * for the LSTM and GRU of src/cpu/ref/rnn.c (which has the shapes), with
 * their activations (rnn_act.h: f for the gates, g for the candidate, h for
 * LSTM's output; sigmoid, tanh, tanh by default). Attributes direction,
 * hidden_size, layout, activations (with alpha and beta), clip, LSTM's
 * input_forget and GRU's linear_before_reset are the forward node's. With
 * clip, every activation's input is clipped to [-clip, clip] as the forward
 * op does, so a gate whose input was clipped passes no gradient. The step
 * keeps each gate's slope: its activation's derivative at its input, 0 where
 * clipped (below, f' and g' stand for it). With input_forget, f = 1 - i: the
 * f rows get no gradient and i takes f's with the sign turned.
 * Reserve is the forward's kiln.LSTMTrain / GRUTrain output of that name
 * (src/cpu/ref/rnn.c has its layout): the fast kernels read the gates and
 * states from it instead of running the recurrence again; this reference
 * checks its shape and computes them again, in double.
 * dY, dY_h, dY_c, B, the initial states, sequence_lens and P may be absent
 * (zero; every sequence of full length; no peepholes). With sequence_lens, row n runs its first
 * L = sequence_lens[n] steps as the forward op does (the reverse direction
 * from time L - 1 down), Y_h and Y_c are its states after them, and dY at
 * times from L on (where Y holds zeros) reaches nothing.
 *
 * One driver serves both: per direction d and batch row n it computes the
 * forward pass again, keeping each step's states and gates, then walks back
 * through time with dh = dY_t + dh_{t+1} (dY_h at the last step, dY_c
 * likewise for LSTM's c). A row k of W and R (G rows per direction: 4H for
 * LSTM, 3H for GRU) whose pre-activation W[k] x_t + Wb[k] + R[k] v + Rb[k]
 * gets the gradient g adds
 *
 *   input part      dW[k] += g x_t,  dx_t += g W[k],  dWb[k] += g
 *   recurrent part  dR[k] += g v,    dv += g R[k],    dRb[k] += g
 *
 * with v = h_{t-1} (dv: dh_{t-1}) except for GRU's h~ rows. Per cell:
 *
 * LSTM (gates i, o, f, c~ in W's block order; peepholes P = (Pi, Po, Pf)
 * add Pi * c_{t-1}, Pf * c_{t-1} and Po * c_t to the i, f and o inputs):
 *   forward   c_t = f * c_{t-1} + i * c~,  h_t = o * h(c_t)
 *   backward  do = dh * h(c_t),  go = do f'_o
 *             dc = dc_{t+1} + dh * o * h'(c_t) + go * Po
 *             di = dc * c~,  df = dc * c_{t-1},  dc~ = dc * i
 *             g = (di f'_i, go, df f'_f, dc~ g'_c~) for both parts
 *             (input_forget: di -= df, and f's rows get 0)
 *             dc_{t-1} = dc * f + gi * Pi + gf * Pf
 *             dPi += gi * c_{t-1},  dPf += gf * c_{t-1},  dPo += go * c_t
 *
 * GRU (gates z, r, h~ in W's block order):
 *   forward   z = f(Wz x_t + Wbz + Rz h_{t-1} + Rbz),  r likewise
 *             h~ = g(Wh x_t + Wbh + Rh (r * h_{t-1}) + Rbh)    linear_before_reset 0
 *             h~ = g(Wh x_t + Wbh + r * (Rh h_{t-1} + Rbh))    linear_before_reset 1
 *             h_t = (1 - z) * h~ + z * h_{t-1}
 *   backward  dh~ = dh * (1 - z),  dz = dh * (h_{t-1} - h~),  dh_{t-1} = dh * z + ...
 *             gh = dh~ g'_h~ for the input part of the h~ rows;
 *             linear_before_reset 0: gh for their recurrent part, v = r * h_{t-1};
 *               dr = dv * h_{t-1},  dh_{t-1} += dv * r
 *             linear_before_reset 1: gh * r for their recurrent part, v = h_{t-1};
 *               dr = gh * (Rh h_{t-1} + Rbh)
 *             gz = dz f'_z, gr = dr f'_r for both parts of the z and r rows
 *
 * The reverse direction walks time backwards in the forward pass (and so
 * forwards here). Everything in double; the gradients of W, R, B and X are
 * summed in scratch and stored at the end. One thread.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref/rnn_act.h"
#include "ops/op.h"

typedef struct rnn_grad rnn_grad;

/* What differs between the cells. A kept step is `step` H-vectors of doubles:
 * the states (h, then c for LSTM), then what the cell's backward reads. */
typedef struct rnn_grad_cell {
    int gates;  /* gate blocks: 4 (LSTM), 3 (GRU) */
    int peeps;  /* peephole blocks: 3 (LSTM: P input and dP output), 0 (GRU) */
    int states; /* 2 (h, c), 1 (h) */
    int step;
    /* One step forward at g->t into st, from the states prev. */
    void (*forward)(const rnn_grad *g, double *st, const double *prev);
    /* One step back: ds, the gradients of st's states, to dprev, those of
     * prev's (zeroed before), summing into g's sums; work: G + H doubles. */
    void (*backward)(rnn_grad *g, const double *st, const double *prev, const double *ds,
                     double *dprev, double *work);
} rnn_grad_cell;

struct rnn_grad {
    const rnn_grad_cell *cell;
    int64_t S, N, I, H, D, G; /* G = gates * H: rows of W and R per direction */
    int layout, reverse;      /* reverse: direction "reverse" (D = 1) */
    int lbr;                  /* GRU's linear_before_reset */
    int input_forget;         /* LSTM: f = 1 - i */
    double clip;              /* activation inputs clipped to [-clip, clip]; < 0: none */
    kiln__rnn_act act[2][3];  /* per direction: f, g (and LSTM's h) */
    const kiln_tensor *x, *w, *r, *b, *dy, *lens, *p; /* p: LSTM's peepholes */
    const kiln_tensor *dys[2], *init[2]; /* dY_h, dY_c; initial_h, initial_c */
    int64_t dir, n, t;                   /* where the driver is */
    double *dX, *dW, *dR, *dB, *dP;      /* the sums, in scratch */
};

/* Input indices: X, W, R, dY, then the states' gradients, B and the initial
 * states. Outputs: dX, dW, dR, dB, then the initial states' gradients. */
enum { IN_X, IN_W, IN_R, IN_DY, IN_DY_STATES };
#define IN_B(cell) (IN_DY_STATES + (cell)->states)
#define IN_INIT(cell) (IN_B(cell) + 1)
#define IN_LENS(cell) (IN_INIT(cell) + (cell)->states)
#define IN_P(cell) (IN_LENS(cell) + 1)
#define IN_RESERVE(cell) (IN_P(cell) + ((cell)->peeps ? 1 : 0))
#define OUT_DINIT 4
#define OUT_DP(cell) (OUT_DINIT + (cell)->states)

/* ---- dimensions and offsets ------------------------------------------------- */

/* Flat offsets of X (t, n, k), Y (t, d, n, j) and the states (d, n, j). */
static int64_t x_at(const rnn_grad *g, int64_t t, int64_t n, int64_t k) {
    return (g->layout ? n * g->S + t : t * g->N + n) * g->I + k;
}
static int64_t y_at(const rnn_grad *g, int64_t t, int64_t dir, int64_t n, int64_t j) {
    return (g->layout ? (n * g->S + t) * g->D + dir : (t * g->D + dir) * g->N + n) * g->H + j;
}
static int64_t h_at(const rnn_grad *g, int64_t dir, int64_t n, int64_t j) {
    return (g->layout ? n * g->D + dir : dir * g->N + n) * g->H + j;
}

/* Reads attributes, shapes and inputs into g, checking them. */
static kiln_status rnn_grad_read(const kiln__kctx *c, const rnn_grad_cell *cell, rnn_grad *g) {
    memset(g, 0, sizeof *g);
    g->cell = cell;
    const kiln_tensor *x = c->in[IN_X], *w = c->in[IN_W], *r = c->in[IN_R];
    const char *dir = kiln__attr_s(c->node, "direction", "forward");
    g->layout = (int)kiln__attr_i(c->node, "layout", 0);
    g->lbr = kiln__attr_i(c->node, "linear_before_reset", 0) != 0;
    g->input_forget = cell->states == 2 && kiln__attr_i(c->node, "input_forget", 0) != 0;
    const kiln__attr *clip = kiln__attr_find(c->node, "clip");
    g->clip = clip ? clip->f : -1.0;
    if (clip && !(g->clip >= 0))
        return kiln__err(KILN_E_INVAL, "attribute 'clip' is %g, expected >= 0", g->clip);
    g->reverse = !strcmp(dir, "reverse");
    g->D = !strcmp(dir, "bidirectional") ? 2 : 1;
    if (strcmp(dir, "forward") && !g->reverse && g->D != 2)
        return kiln__err(KILN_E_INVAL, "attribute 'direction' is \"%s\"", dir);
    static const kiln__rnn_act_fn acts[3] = {KILN__RNN_ACT_SIGMOID, KILN__RNN_ACT_TANH,
                                            KILN__RNN_ACT_TANH};
    KILN__TRY(kiln__rnn_act_read(c->node, cell->states == 2 ? 3 : 2, acts, g->D, g->act));
    if (g->layout != 0 && g->layout != 1)
        return kiln__err(KILN_E_INVAL, "attribute 'layout' is %d, expected 0 or 1", g->layout);
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, 0));
    if (x->ndim != 3 || w->ndim != 3 || r->ndim != 3)
        return kiln__err(KILN_E_SHAPE, "X, W and R must have rank 3");
    g->S = x->dims[g->layout ? 1 : 0];
    g->N = x->dims[g->layout ? 0 : 1];
    g->I = x->dims[2];
    g->H = r->dims[2];
    g->G = cell->gates * g->H;
    const int64_t w_dims[3] = {g->D, g->G, g->I}, r_dims[3] = {g->D, g->G, g->H};
    const int64_t b_dims[2] = {g->D, 2 * g->G};
    const int64_t y_dims[4] = {g->layout ? g->N : g->S, g->layout ? g->S : g->D,
                               g->layout ? g->D : g->N, g->H};
    const int64_t s_dims[3] = {g->layout ? g->N : g->D, g->layout ? g->D : g->N, g->H};
    static const char *const d_names[2] = {"dY_h", "dY_c"}, *const i_names[2] = {"initial_h",
                                                                                 "initial_c"};
    KILN__TRY(kiln__check_shape(w, "W", 3, w_dims));
    KILN__TRY(kiln__check_shape(r, "R", 3, r_dims));
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_DY), "dY", 4, y_dims));
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_B(cell)), "B", 2, b_dims));
    for (int k = 0; k < cell->states; k++) {
        KILN__TRY(kiln__check_shape(kiln__in(c, IN_DY_STATES + k), d_names[k], 3, s_dims));
        KILN__TRY(kiln__check_shape(kiln__in(c, IN_INIT(cell) + k), i_names[k], 3, s_dims));
    }
    if (cell->peeps) {
        const int64_t p_dims[2] = {g->D, cell->peeps * g->H};
        KILN__TRY(kiln__check_shape(kiln__in(c, IN_P(cell)), "P", 2, p_dims));
    }
    const int64_t res_dims[4] = {g->D, g->S, g->N, (cell->states == 2 ? 6 : 5) * g->H};
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_RESERVE(cell)), "Reserve", 4, res_dims));
    const kiln_tensor *lens = kiln__in(c, IN_LENS(cell));
    if (lens) {
        KILN__TRY(kiln__check_dtype(lens, "sequence_lens", KILN_DTYPE_I32, 0));
        KILN__TRY(kiln__check_shape(lens, "sequence_lens", 1, &g->N));
    }
    for (int k = 1; k < c->n_in; k++) {
        const kiln_tensor *t = k == IN_LENS(cell) ? NULL : kiln__in(c, k);
        if (t && t->dtype != x->dtype)
            return kiln__err(KILN_E_TYPE, "input %d is %s, expected %s like X", k,
                             kiln_dtype_name(t->dtype), kiln_dtype_name(x->dtype));
    }
    g->x = x;
    g->w = w;
    g->r = r;
    g->b = kiln__in(c, IN_B(cell));
    g->dy = kiln__in(c, IN_DY);
    g->lens = lens;
    g->p = cell->peeps ? kiln__in(c, IN_P(cell)) : NULL;
    for (int k = 0; k < cell->states; k++) {
        g->dys[k] = kiln__in(c, IN_DY_STATES + k);
        g->init[k] = kiln__in(c, IN_INIT(cell) + k);
    }
    return KILN_OK;
}

/* Scratch, in doubles: the kept steps (S x step H), the initial states, their
 * gradients at the current and the previous step (3 x states H), the cell's
 * work (G + H), and the sums dX (S*N*I), dW (D*G*I), dR (D*G*H), dB (D*2G),
 * dP (D*peeps*H). */
static int64_t rnn_grad_sums_at(const rnn_grad *g) {
    return g->S * g->cell->step * g->H + 3 * g->cell->states * g->H + g->G + g->H;
}
static int64_t rnn_grad_sums_len(const rnn_grad *g) {
    return g->S * g->N * g->I + g->D * g->G * (g->I + g->H) + g->D * 2 * g->G +
           g->D * g->cell->peeps * g->H;
}

static kiln_status rnn_grad_infer(kiln__kctx *c, const rnn_grad_cell *cell) {
    rnn_grad g;
    KILN__TRY(rnn_grad_read(c, cell, &g));
    const kiln_tensor *x = c->in[IN_X];
    int64_t bdims[2] = {g.D, 2 * g.G}, sdims[3] = {g.D, g.N, g.H};
    if (g.layout) sdims[0] = g.N, sdims[1] = g.D;
    c->scratch_bytes = (size_t)(rnn_grad_sums_at(&g) + rnn_grad_sums_len(&g)) * sizeof(double);
    KILN__TRY(kiln__out_like(c, 0, x));
    KILN__TRY(kiln__out_like(c, 1, c->in[IN_W]));
    KILN__TRY(kiln__out_like(c, 2, c->in[IN_R]));
    KILN__TRY(kiln__out_shape(c, 3, x->dtype, 2, bdims));
    for (int k = 0; k < cell->states; k++)
        KILN__TRY(kiln__out_shape(c, OUT_DINIT + k, x->dtype, 3, sdims));
    if (cell->peeps) {
        int64_t pdims[2] = {g.D, cell->peeps * g.H};
        KILN__TRY(kiln__out_shape(c, OUT_DP(cell), x->dtype, 2, pdims));
    }
    return KILN_OK;
}

/* ---- what the cells share ----------------------------------------------------- */

/* Activation k (0 f, 1 g, 2 h) of the current direction at input a, clipped
 * as the forward op clips it; *slope: its derivative there, 0 where clipped. */
static double activate(const rnn_grad *g, int k, double a, double *slope) {
    const kiln__rnn_act *act = &g->act[g->dir][k];
    if (g->clip >= 0 && (a < -g->clip || a > g->clip)) {
        *slope = 0;
        return kiln__rnn_act_apply(act, a < 0 ? -g->clip : g->clip);
    }
    *slope = kiln__rnn_act_grad(act, a);
    return kiln__rnn_act_apply(act, a);
}

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

/* Row k's input part at (g->dir, g->n, g->t): W[k] x_t + Wb[k]. */
static double in_part(const rnn_grad *g, int64_t k) {
    const int64_t wk = (g->dir * g->G + k) * g->I;
    double a = opt_ld(g->b, g->dir * 2 * g->G + k);
    for (int64_t i = 0; i < g->I; i++)
        a += kiln__elem_ld_f(g->w->dtype, g->w->data, wk + i) *
             kiln__elem_ld_f(g->x->dtype, g->x->data, x_at(g, g->t, g->n, i));
    return a;
}
/* Row k's recurrent part: R[k] v + Rb[k], v an H-vector. */
static double rec_part(const rnn_grad *g, int64_t k, const double *v) {
    const int64_t rk = (g->dir * g->G + k) * g->H;
    double a = opt_ld(g->b, g->dir * 2 * g->G + g->G + k);
    for (int64_t j = 0; j < g->H; j++) a += kiln__elem_ld_f(g->r->dtype, g->r->data, rk + j) * v[j];
    return a;
}
/* Back through in_part(g, k), whose gradient is gk. */
static void in_back(rnn_grad *g, int64_t k, double gk) {
    const int64_t wk = (g->dir * g->G + k) * g->I;
    g->dB[g->dir * 2 * g->G + k] += gk;
    for (int64_t i = 0; i < g->I; i++) {
        int64_t xi = x_at(g, g->t, g->n, i);
        g->dW[wk + i] += gk * kiln__elem_ld_f(g->x->dtype, g->x->data, xi);
        g->dX[xi] += gk * kiln__elem_ld_f(g->w->dtype, g->w->data, wk + i);
    }
}
/* Back through rec_part(g, k, v), whose gradient is gk; adds v's to dv. */
static void rec_back(rnn_grad *g, int64_t k, double gk, const double *v, double *dv) {
    const int64_t rk = (g->dir * g->G + k) * g->H;
    g->dB[g->dir * 2 * g->G + g->G + k] += gk;
    for (int64_t j = 0; j < g->H; j++) {
        g->dR[rk + j] += gk * v[j];
        dv[j] += gk * kiln__elem_ld_f(g->r->dtype, g->r->data, rk + j);
    }
}

/* ---- the driver --------------------------------------------------------------- */

static kiln_status rnn_grad_run(kiln__kctx *c, const rnn_grad_cell *cell) {
    rnn_grad g;
    KILN__TRY(rnn_grad_read(c, cell, &g));
    const int64_t S = g.S, N = g.N, H = g.H, SH = cell->step * H, nS = cell->states * H;
    double *steps = (double *)c->scratch, *init = steps + S * SH, *ds = init + nS,
           *dprev = ds + nS, *work = dprev + nS, *sums = steps + rnn_grad_sums_at(&g);
    g.dX = sums;
    g.dW = g.dX + S * N * g.I;
    g.dR = g.dW + g.D * g.G * g.I;
    g.dB = g.dR + g.D * g.G * H;
    g.dP = g.dB + g.D * 2 * g.G;
    memset(sums, 0, (size_t)rnn_grad_sums_len(&g) * sizeof(double));
    for (g.dir = 0; g.dir < g.D; g.dir++) {
        const int rev = g.reverse || g.dir == 1;
        for (g.n = 0; g.n < N; g.n++) {
            const int64_t L = g.lens ? kiln__ld_i(g.lens->dtype, g.lens->data, g.n) : S;
            if (L < 0 || L > S)
                return kiln__err(KILN_E_RANGE, "input 'sequence_lens' has %lld at batch %lld, "
                                 "expected 0..%lld", (long long)L, (long long)g.n, (long long)S);
            for (int k = 0; k < cell->states; k++)
                for (int64_t j = 0; j < H; j++) {
                    init[k * H + j] = opt_ld(g.init[k], h_at(&g, g.dir, g.n, j));
                    ds[k * H + j] = opt_ld(g.dys[k], h_at(&g, g.dir, g.n, j));
                }
            /* forward again: step s at time t, from the states of the step before */
            for (int64_t s = 0; s < L; s++) {
                g.t = rev ? L - 1 - s : s;
                cell->forward(&g, steps + s * SH, s ? steps + (s - 1) * SH : init);
            }
            /* backward through time */
            for (int64_t s = L - 1; s >= 0; s--) {
                g.t = rev ? L - 1 - s : s;
                for (int64_t j = 0; j < H; j++) ds[j] += opt_ld(g.dy, y_at(&g, g.t, g.dir, g.n, j));
                memset(dprev, 0, (size_t)nS * sizeof(double));
                cell->backward(&g, steps + s * SH, s ? steps + (s - 1) * SH : init, ds, dprev,
                               work);
                memcpy(ds, dprev, (size_t)nS * sizeof(double));
            }
            for (int k = 0; k < cell->states; k++) {
                kiln_tensor *o = kiln__out(c, OUT_DINIT + k);
                if (o)
                    for (int64_t j = 0; j < H; j++)
                        kiln__elem_st_f(o->dtype, o->data, h_at(&g, g.dir, g.n, j), ds[k * H + j]);
            }
        }
    }
    store_out(c, 0, g.dX, S * N * g.I);
    store_out(c, 1, g.dW, g.D * g.G * g.I);
    store_out(c, 2, g.dR, g.D * g.G * H);
    store_out(c, 3, g.dB, g.D * 2 * g.G);
    if (cell->peeps) store_out(c, OUT_DP(cell), g.dP, g.D * cell->peeps * H);
    return KILN_OK;
}

/* ---- LSTM ------------------------------------------------------------------------ */

/* Peephole block (0 i, 1 o, 2 f) at j of the current direction; 0 without P. */
static double peep(const rnn_grad *g, int block, int64_t j) {
    return opt_ld(g->p, (g->dir * 3 + block) * g->H + j);
}

/* A step: h, c, the gates i, o, f, c~, then their slopes (activate). */
static void lstm_forward(const rnn_grad *g, double *st, const double *prev) {
    const int64_t H = g->H;
    double *gate = st + 2 * H, *slope = st + 6 * H;
    for (int64_t k = 0; k < g->G; k++) gate[k] = in_part(g, k) + rec_part(g, k, prev);
    for (int64_t j = 0; j < H; j++) {
        double c_prev = prev[H + j];
        gate[j] = activate(g, 0, gate[j] + peep(g, 0, j) * c_prev, &slope[j]);
        double f = activate(g, 0, gate[2 * H + j] + peep(g, 2, j) * c_prev, &slope[2 * H + j]);
        gate[2 * H + j] = g->input_forget ? 1 - gate[j] : f;
        gate[3 * H + j] = activate(g, 1, gate[3 * H + j], &slope[3 * H + j]);
        st[H + j] = gate[2 * H + j] * c_prev + gate[j] * gate[3 * H + j];
        gate[H + j] = activate(g, 0, gate[H + j] + peep(g, 1, j) * st[H + j], &slope[H + j]);
        st[j] = gate[H + j] * kiln__rnn_act_apply(&g->act[g->dir][2], st[H + j]);
    }
}

static void lstm_backward(rnn_grad *g, const double *st, const double *prev, const double *ds,
                          double *dprev, double *dg) {
    const int64_t H = g->H;
    const double *gate = st + 2 * H, *slope = st + 6 * H;
    const kiln__rnn_act *h_act = &g->act[g->dir][2];
    double *dP = g->dP + g->dir * 3 * H;
    for (int64_t j = 0; j < H; j++) {
        double i = gate[j], o = gate[H + j], f = gate[2 * H + j], cc = gate[3 * H + j];
        double c = st[H + j], c_prev = prev[H + j];
        double hc = kiln__rnn_act_apply(h_act, c), hc_slope = kiln__rnn_act_grad(h_act, c);
        double go = ds[j] * hc * slope[H + j];
        double c_grad = ds[H + j] + ds[j] * o * hc_slope + go * peep(g, 1, j);
        double di = c_grad * cc, df = c_grad * c_prev;
        if (g->input_forget) { /* f = 1 - i */
            di -= df;
            df = 0;
        }
        dg[j] = di * slope[j];
        dg[H + j] = go;
        dg[2 * H + j] = df * slope[2 * H + j];
        dg[3 * H + j] = c_grad * i * slope[3 * H + j];
        dprev[H + j] = c_grad * f + dg[j] * peep(g, 0, j) + dg[2 * H + j] * peep(g, 2, j);
        if (g->p) {
            dP[j] += dg[j] * c_prev;
            dP[H + j] += go * c;
            dP[2 * H + j] += dg[2 * H + j] * c_prev;
        }
    }
    for (int64_t k = 0; k < g->G; k++) {
        in_back(g, k, dg[k]);
        rec_back(g, k, dg[k], prev, dprev);
    }
}

static const rnn_grad_cell lstm_cell = {4, 3, 2, 10, lstm_forward, lstm_backward};

kiln_status kiln__infer_LSTMGrad(kiln__kctx *c) { return rnn_grad_infer(c, &lstm_cell); }
kiln_status kiln__ref_LSTMGrad(kiln__kctx *c) { return rnn_grad_run(c, &lstm_cell); }

/* ---- GRU ------------------------------------------------------------------------- */

/* A step: h, the gates z, r, h~, then v: r * h_{t-1} (linear_before_reset 0)
 * or Rh h_{t-1} + Rbh (1), then the gates' slopes (activate). */
static void gru_forward(const rnn_grad *g, double *st, const double *prev) {
    const int64_t H = g->H;
    double *z = st + H, *r = st + 2 * H, *n = st + 3 * H, *v = st + 4 * H, *slope = st + 5 * H;
    for (int64_t k = 0; k < 2 * H; k++)
        z[k] = activate(g, 0, in_part(g, k) + rec_part(g, k, prev), &slope[k]);
    if (!g->lbr)
        for (int64_t j = 0; j < H; j++) v[j] = r[j] * prev[j];
    for (int64_t j = 0; j < H; j++) {
        int64_t k = 2 * H + j;
        double a = in_part(g, k);
        if (g->lbr) {
            v[j] = rec_part(g, k, prev);
            a += r[j] * v[j];
        } else {
            a += rec_part(g, k, v);
        }
        n[j] = activate(g, 1, a, &slope[k]);
    }
    for (int64_t j = 0; j < H; j++) st[j] = (1 - z[j]) * n[j] + z[j] * prev[j];
}

static void gru_backward(rnn_grad *g, const double *st, const double *prev, const double *ds,
                         double *dprev, double *dg) {
    const int64_t H = g->H;
    const double *z = st + H, *r = st + 2 * H, *n = st + 3 * H, *v = st + 4 * H, *slope = st + 5 * H;
    double *dv = dg + g->G; /* linear_before_reset 0: the gradient of r * h_{t-1} */
    for (int64_t j = 0; j < H; j++) {
        dg[j] = ds[j] * (prev[j] - n[j]) * slope[j];
        dg[2 * H + j] = ds[j] * (1 - z[j]) * slope[2 * H + j];
        dprev[j] = ds[j] * z[j];
        dv[j] = 0;
    }
    for (int64_t j = 0; j < H; j++) {
        int64_t k = 2 * H + j;
        in_back(g, k, dg[k]);
        if (g->lbr) {
            rec_back(g, k, dg[k] * r[j], prev, dprev);
            dg[H + j] = dg[k] * v[j];
        } else {
            rec_back(g, k, dg[k], v, dv);
        }
    }
    for (int64_t j = 0; j < H; j++) {
        if (!g->lbr) {
            dg[H + j] = dv[j] * prev[j];
            dprev[j] += dv[j] * r[j];
        }
        dg[H + j] *= slope[H + j];
    }
    for (int64_t k = 0; k < 2 * H; k++) {
        in_back(g, k, dg[k]);
        rec_back(g, k, dg[k], prev, dprev);
    }
}

static const rnn_grad_cell gru_cell = {3, 0, 1, 8, gru_forward, gru_backward};

kiln_status kiln__infer_GRUGrad(kiln__kctx *c) { return rnn_grad_infer(c, &gru_cell); }
kiln_status kiln__ref_GRUGrad(kiln__kctx *c) { return rnn_grad_run(c, &gru_cell); }
