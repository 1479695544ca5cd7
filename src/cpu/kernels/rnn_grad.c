/* src/cpu/kernels/rnn_grad.c: recurrent training on matrix products: the
 * LSTM's and the GRU's training forwards, the algorithms lstm_train_gemm
 * (kiln.LSTMTrain) and gru_train_gemm (kiln.GRUTrain), and their gradients
 * through time, lstm_grad_gemm (kiln.LSTMGrad) and gru_grad_gemm
 * (kiln.GRUGrad). The references are src/cpu/ref/rnn.c (the training forms,
 * with the Reserve's layout) and, in double and one batch row at a time,
 * src/cpu/ref/grad_rnn.c, which also has the formulas.
 *
 *   kiln.LSTMTrain(X, W, R, B, sequence_lens, initial_h, initial_c, P)
 *       -> (Y, Y_h, Y_c, Reserve)
 *   kiln.LSTMGrad(X, W, R, dY, dY_h, dY_c, B, initial_h, initial_c, sequence_lens, P,
 *                 Reserve) -> (dX, dW, dR, dB, dinitial_h, dinitial_c, dP)
 *   kiln.GRUTrain(X, W, R, B, sequence_lens, initial_h) -> (Y, Y_h, Reserve)
 *   kiln.GRUGrad(X, W, R, dY, dY_h, B, initial_h, sequence_lens, Reserve)
 *       -> (dX, dW, dR, dB, dinitial_h)
 *
 * LSTM:
 * Per direction d, with the steps in the order the forward op takes them
 * (time S-1 down to 0 for the reverse direction) and X's rows gathered in
 * that order into Xs (S*N, I); the Reserve's rows (S*N, 6H) of direction d
 * are [Z_s | c_s | h_s] per step s and batch row, Z_s the gates:
 *   forward   Z = Xs W_d^T + (Wb + Rb)             one product, M = S*N
 *             per step s: Z_s += h_s R_d^T          (N, 4H), K = H
 *             gates i, o, f = sigmoid, c~ = tanh; c_{s+1}, h_{s+1}
 *             (Z becomes the gates, h_s and c_s are kept beside them)
 *   backward  per step s from the last: dh += dY at the step's time;
 *             tanh(c_{s+1}) from the kept c_s and gates;
 *             dZ_s from dh, dc and the gates (the reference's formulas);
 *             dh = dZ_s R_d (N, H), K = 4H;  dc = dc * f
 *   sums      dR_d = dZ^T H (4H, H), K = S*N;  dW_d = dZ^T Xs (4H, I);
 *             dX (in X's order) += dZ W_d;  dB_d = column sums of dZ, twice
 * LSTMTrain / GRUTrain run the forward into their Reserve output; a
 * gradient given that Reserve runs only the backward and the sums; without
 * it, it runs the forward first, into scratch.
 *
 * GRU (gates z, r, h~; Rz, Rr, Rh the blocks of R_d; Reserve rows
 * [z r h~ | h_s | v_s], 5H), the same shape: the
 * input product for every step at once; per step the recurrent products
 * (linear_before_reset 0: h_s [Rz Rr]^T, then (r * h_s) Rh^T; 1: h_s R_d^T,
 * whose h~ block keeps Rh h_s + Rbh); backward per step the gradients of the
 * three blocks' input part (dZ) and recurrent part (dQ: equal for z and r;
 * for h~ the same (0) or times r (1)), dh = dQ [Rz Rr] + ... as the
 * reference says, with one product for (0) the h~ block's dv = gh Rh first;
 * then dW = dZ^T Xs, dX += dZ W_d, dR = dQ^T [h_s | h_s | r * h_s (0) or
 * h_s (1)], dB = column sums of dZ and dQ. v_s, kept in the Reserve, is the
 * h~ block's recurrent input: r * h_s (0), Rh h_s + Rbh (1).
 *
 * The products run on the session's pool; the gate arithmetic (per step,
 * N*H values) in f32 like every product, its sigmoid and tanh vectorized
 * (rnn.h's kernels): the LSTM's split over the batch rows on the pool, the
 * GRU's on the calling thread.
 *
 * sequence_lens (int32 or int64): a row runs its first len steps (the
 * reverse direction from time len - 1 down), as the reference: past them
 * its Reserve rows and Y are zeros, its state is kept (Y_h, Y_c are the
 * states after len steps), and backwards its dZ is 0 and dh, dc pass through.
 *
 * Taken: f32, the default activations, no clip, LSTM input_forget 0 and no
 * peepholes; the reference runs the rest. W and R may change between runs (they are being trained):
 * nothing is packed at plan time; R is packed once per run and direction
 * for the per-step products.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/gemm.h"
#include "cpu/kernels/rnn.h"
#include "ops/algo.h"

/* Inputs and outputs (grad.def): X, W, R are inputs 0-2 of the three ops,
 * the gradient ops' dY, dY_h follow; the rest per op in rnn_inputs. */
enum { IN_X, IN_W, IN_R, IN_DY, IN_DY_H, LSTM_DY_C };
enum { OUT_DX, OUT_DW, OUT_DR, OUT_DB, OUT_DH0, OUT_DC0, OUT_DP };
enum { OUT_Y, OUT_Y_H, OUT_Y_C, OUT_RESERVE }; /* LSTMTrain */
enum { GRU_OUT_RESERVE = 2 };                   /* GRUTrain: Y, Y_h, Reserve */

/* Where an op has B, the initial states, sequence_lens, P and Reserve among
 * its inputs (-1: it has none). */
typedef struct rnn_inputs {
    int b, h0, c0, lens, p, reserve;
} rnn_inputs;
static const rnn_inputs lstm_grad_inputs = {6, 7, 8, 9, 10, 11};
static const rnn_inputs gru_grad_inputs = {5, 6, -1, 7, -1, 8};
static const rnn_inputs lstm_train_inputs = {3, 5, 6, 4, 7, -1};
static const rnn_inputs gru_train_inputs = {3, 5, -1, 4, -1, -1};

typedef struct rnn_grad_state {
    int lstm, lbr;            /* lbr: GRU's linear_before_reset */
    int train;                /* LSTMTrain: the forward alone, into Reserve */
    int has_reserve;          /* LSTMGrad given the forward's Reserve */
    rnn_inputs in;
    int64_t S, N, I, H, D, G; /* G = 4H (LSTM), 3H (GRU) */
    int layout, reverse;      /* reverse: direction "reverse" (D = 1) */
    int nth;
    const kiln__rnn_gates *act; /* the vectorized sigmoid and tanh */
    /* scratch offsets (floats): rf, rb R_d packed once per direction as
     * the per-step products' B: R_d^T (H, G) forward, R_d (G, H) backward
     * (GRU: its z, r rows, or all with linear_before_reset; without it also
     * rhf, rhb: Rh^T and Rh); xs (S*N, I) X in step order; res (S*N, 6H
     * LSTM, 5H GRU) the Reserve's rows of a direction when a gradient is given
     * no Reserve; last (N*H each) h (and LSTM's c) after the last step; dz
     * (S*N, G) the input parts' gradients; GRU: dq (S*N, G) the recurrent
     * parts', tmp (N, G) a step's recurrent product; dh (2 N*H); LSTM: dc
     * (N*H), tc (N*H) tanh(c) after a step; bias (G, and GRU's Rbh: H); lens
     * (N int64) the rows' lengths; dxs (S*N, I); gemm: bytes from there */
    size_t rf, rb, rhf, rhb, xs, res, last, dz, dq, tmp, dh, dc, tc, bias, lens, dxs, gemm;
    size_t scratch_bytes;
} rnn_grad_state;

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of a packed op(B) (k, n). */
static size_t packed_floats(int64_t k, int64_t n) {
    return (kiln__sgemm_packed_b_bytes(KILN__GEMM_ISA_AUTO, k, n) + 3) / 4;
}

/* The largest GEMM scratch any product below needs on nth threads. */
static size_t gemm_scratch(const rnn_grad_state *s, int nth) {
    static const float dummy[1];
    const int64_t SN = s->S * s->N;
    const int64_t shapes[][5] = {/* m, n, k, trans_a, trans_b */
                                 {SN, s->G, s->I, 0, 1}, {s->N, s->G, s->H, 0, 1},
                                 {s->N, s->H, s->G, 0, 0}, {s->G, s->H, SN, 1, 0},
                                 {s->G, s->I, SN, 1, 0}, {SN, s->I, s->G, 0, 0},
                                 /* GRU's block products */
                                 {s->N, 2 * s->H, s->H, 0, 1}, {s->N, s->H, s->H, 0, 1},
                                 {s->N, s->H, s->H, 0, 0}, {s->N, s->H, 2 * s->H, 0, 0},
                                 {2 * s->H, s->H, SN, 1, 0}, {s->H, s->H, SN, 1, 0}};
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

/* Prepares op (LSTMTrain when train, else LSTMGrad / GRUGrad) with its
 * inputs at `in`. */
static kiln_status rnn_grad_prepare(kiln__kctx *c, const rnn_inputs *in, int lstm, int train) {
    const kiln_tensor *x = kiln__in(c, IN_X), *w = kiln__in(c, IN_W), *r = kiln__in(c, IN_R);
    if (!x || !w || !r || x->dtype != KILN_DTYPE_F32 || w->dtype != KILN_DTYPE_F32 ||
        r->dtype != KILN_DTYPE_F32 || x->ndim != 3 || w->ndim != 3 || r->ndim != 3)
        return KILN_E_UNSUPPORTED;
    for (int i = IN_R + 1; i < c->n_in; i++)
        if (i != in->lens && !f32_or_absent(kiln__in(c, i))) return KILN_E_UNSUPPORTED;
    for (int i = 0; i < c->n_out; i++)
        if (kiln__out(c, i) && kiln__out(c, i)->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    const kiln__node *n = c->node;
    const kiln_tensor *lens = kiln__in(c, in->lens);
    if ((lens && lens->dtype != KILN_DTYPE_I32 && lens->dtype != KILN_DTYPE_I64) ||
        (in->p >= 0 && kiln__in(c, in->p)) || kiln__attr_find(n, "clip") ||
        kiln__attr_i(n, "input_forget", 0) || kiln__attr_find(n, "activations") ||
        (in->p >= 0 && !train && kiln__out(c, OUT_DP)))
        return KILN_E_UNSUPPORTED;
    rnn_grad_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "rnn_grad: out of memory");
    const char *dir = kiln__attr_s(n, "direction", "forward");
    s->lstm = lstm;
    s->train = train;
    s->in = *in;
    s->has_reserve = in->reserve >= 0 && kiln__in(c, in->reserve);
    s->lbr = !lstm && kiln__attr_i(n, "linear_before_reset", 0) != 0;
    s->layout = (int)kiln__attr_i(n, "layout", 0);
    s->reverse = !strcmp(dir, "reverse");
    s->D = !strcmp(dir, "bidirectional") ? 2 : 1;
    s->S = x->dims[s->layout ? 1 : 0];
    s->N = x->dims[s->layout ? 0 : 1];
    s->I = x->dims[2];
    s->H = r->dims[2];
    s->G = (lstm ? 4 : 3) * s->H;
    if ((s->layout != 0 && s->layout != 1) || s->S < 1 || s->N < 1 || s->I < 1 || s->H < 1 ||
        w->dims[0] != s->D || w->dims[1] != s->G || w->dims[2] != s->I || r->dims[0] != s->D ||
        r->dims[1] != s->G ||
        (double)s->S * s->N * (3.0 * s->G + 2 * s->I + 3 * s->H) * 4 > (double)(1u << 30)) {
        free(s);
        return KILN_E_UNSUPPORTED;
    }
    s->nth = c->nth_plan > 0 ? c->nth_plan : 1;
    if (!(s->act = kiln__rnn_gates_for(KILN__GEMM_ISA_AUTO))) {
        free(s);
        return KILN_E_UNSUPPORTED;
    }
    const size_t SN = (size_t)(s->S * s->N), NH = (size_t)(s->N * s->H), G = (size_t)s->G;
    const int grad = !train, gru = !lstm;
    size_t at = 0;
    /* the recurrent products' columns: LSTM and GRU lbr all G, GRU else z, r */
    const int64_t rcols = lstm || s->lbr ? s->G : 2 * s->H;
    const int rh = gru && !s->lbr; /* GRU's Rh products apart */
    const size_t width = (size_t)(lstm ? 6 : 5) * (size_t)s->H; /* a Reserve row */
    s->rf = at, at += align16(packed_floats(s->H, rcols));
    s->rb = at, at += grad ? align16(packed_floats(rcols, s->H)) : 0;
    s->rhf = at, at += rh ? align16(packed_floats(s->H, s->H)) : 0;
    s->rhb = at, at += rh && grad ? align16(packed_floats(s->H, s->H)) : 0;
    s->xs = at, at += align16(SN * (size_t)s->I);
    s->res = at, at += grad && !s->has_reserve ? align16(SN * width) : 0;
    s->last = at, at += align16((lstm ? 2 : 1) * NH);
    s->dz = at, at += grad ? align16(SN * G) : 0;
    s->dq = at, at += gru && grad ? align16(SN * G) : 0;
    s->tmp = at, at += gru ? align16((size_t)s->N * G) : 0;
    s->dh = at, at += grad ? align16(2 * NH) : 0; /* dh, and a product's result */
    s->dc = at, at += lstm && grad ? align16(NH) : 0;
    s->tc = at, at += lstm && grad ? align16(NH) : 0;
    s->bias = at, at += align16(G + (size_t)s->H);
    s->lens = at, at += align16(2 * (size_t)s->N); /* N int64 */
    s->dxs = at, at += grad ? align16(SN * (size_t)s->I) : 0;
    s->gemm = at * sizeof(float);
    s->scratch_bytes = s->gemm + gemm_scratch(s, s->nth);
    c->scratch_bytes = s->scratch_bytes;
    const double sn = (double)SN, D = (double)s->D;
    /* forward (input and recurrent products; LSTMGrad without the Reserve
     * runs it again), backward (recurrent, dW, dR, dX) */
    const double fwd = D * 2 * sn * s->G * (s->I + s->H);
    const double bwd = D * 2 * sn * s->G * (2.0 * s->I + 2.0 * s->H);
    c->flops = train ? fwd : s->has_reserve ? bwd : fwd + bwd;
    c->kstate = s;
    return KILN_OK;
}

static kiln_status lstm_grad_prepare(kiln__kctx *c) {
    return rnn_grad_prepare(c, &lstm_grad_inputs, 1, 0);
}
static kiln_status gru_grad_prepare(kiln__kctx *c) {
    return rnn_grad_prepare(c, &gru_grad_inputs, 0, 0);
}
static kiln_status lstm_train_prepare(kiln__kctx *c) {
    return rnn_grad_prepare(c, &lstm_train_inputs, 1, 1);
}
static kiln_status gru_train_prepare(kiln__kctx *c) {
    return rnn_grad_prepare(c, &gru_train_inputs, 0, 1);
}

static double rnn_grad_cost(const kiln__kctx *c) {
    const rnn_grad_state *s = c->kstate;
    /* small products (M = N per step) keep the efficiency modest */
    double eff = s->N >= 32 ? 0.5 : 0.2;
    double bytes = 4.0 * s->D * s->S * s->N * (3.0 * s->G + 4 * s->I + 4 * s->H);
    return kiln__cost_seconds(c, c->flops, eff, bytes);
}

/* Runs product g on the pool. */
static kiln_status run_product(const kiln__kctx *c, const rnn_grad_state *s, kiln__gemm_args *g) {
    kiln__pool *pool = kiln__pool_size(c->pool) <= s->nth ? c->pool : NULL;
    return kiln__sgemm_run(pool, g, (char *)c->scratch + s->gemm);
}

/* C = op(A) op(B) (+ C when accumulate), on the pool. */
static kiln_status product(const kiln__kctx *c, const rnn_grad_state *s, int64_t m, int64_t n,
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
    return run_product(c, s, &g);
}

/* Packs op(B) (k, n) of b (ldb; transposed when trans_b) into the scratch
 * floats at off, for the per-step products (packed once per direction). */
static kiln_status pack_b(const kiln__kctx *c, size_t off, int64_t k, int64_t n, const float *b,
                          int64_t ldb, int trans_b) {
    return kiln__sgemm_pack_b(KILN__GEMM_ISA_AUTO, trans_b, k, n, b, ldb, (float *)c->scratch + off,
                              packed_floats(k, n) * 4);
}

/* C (m, n) = A (m, k; lda) x the B packed at off (+ C when accumulate). */
static kiln_status product_packed(const kiln__kctx *c, const rnn_grad_state *s, int64_t m,
                                  int64_t n, int64_t k, const float *a, int64_t lda, size_t off,
                                  float *out, int64_t ldc, int accumulate) {
    kiln__gemm_args g = {.m = m, .n = n, .k = k, .alpha = 1, .beta = accumulate ? 1.0f : 0.0f,
                         .a = a, .lda = lda, .b = (const float *)c->scratch + off, .b_packed = 1,
                         .c = out, .ldc = ldc};
    return run_product(c, s, &g);
}

/* Row offset (in rows of width `width`) of batch row n at time t, and of a
 * state row of direction d, in the ONNX layouts. */
static int64_t x_row(const rnn_grad_state *s, int64_t t, int64_t n) {
    return s->layout ? n * s->S + t : t * s->N + n;
}
static int64_t y_row(const rnn_grad_state *s, int64_t t, int64_t d, int64_t n) {
    return s->layout ? (n * s->S + t) * s->D + d : (t * s->D + d) * s->N + n;
}
static int64_t state_row(const rnn_grad_state *s, int64_t d, int64_t n) {
    return s->layout ? n * s->D + d : d * s->N + n;
}
/* The time of step st (< len) of a row of length len in direction d: the
 * reverse direction starts at the row's last step. */
static int64_t step_time(const rnn_grad_state *s, int64_t d, int64_t st, int64_t len) {
    return s->reverse || d == 1 ? len - 1 - st : st;
}

/* Every batch row's length (sequence_lens, or S without it) into the
 * scratch's lens; fails, naming the row, on a length outside [0, S]. */
static kiln_status load_lens(const kiln__kctx *c, const rnn_grad_state *s, int64_t **out) {
    int64_t *len = (int64_t *)((float *)c->scratch + s->lens);
    const kiln_tensor *t = kiln__in(c, s->in.lens);
    for (int64_t n = 0; n < s->N; n++) {
        len[n] = t ? kiln__ld_i(t->dtype, t->data, n) : s->S;
        if (len[n] < 0 || len[n] > s->S)
            return kiln__err(KILN_E_RANGE, "input 'sequence_lens' has %lld at batch %lld, expected "
                             "0..%lld", (long long)len[n], (long long)n, (long long)s->S);
    }
    *out = len;
    return KILN_OK;
}

/* Direction d's (N, H) rows of a state tensor t (absent: zeros) into buf
 * (rows ld floats apart), or (out) buf into t (absent: nothing). */
static void state_io(const rnn_grad_state *s, const kiln_tensor *t, int64_t d, float *buf,
                     int64_t ld, int out) {
    for (int64_t n = 0; n < s->N; n++) {
        float *row = t ? (float *)t->data + state_row(s, d, n) * s->H : NULL;
        if (out) {
            if (row) memcpy(row, buf + n * ld, (size_t)s->H * sizeof(float));
        } else if (row) {
            memcpy(buf + n * ld, row, (size_t)s->H * sizeof(float));
        } else {
            memset(buf + n * ld, 0, (size_t)s->H * sizeof(float));
        }
    }
}

/* X's rows in direction d's step order into xs (zeros past a row's length). */
static void gather_steps(const rnn_grad_state *s, const float *x, int64_t d, const int64_t *len,
                         float *xs) {
    for (int64_t st = 0; st < s->S; st++)
        for (int64_t n = 0; n < s->N; n++) {
            float *to = xs + (st * s->N + n) * s->I;
            if (st < len[n])
                memcpy(to, x + x_row(s, step_time(s, d, st, len[n]), n) * s->I, (size_t)s->I * sizeof(float));
            else
                memset(to, 0, (size_t)s->I * sizeof(float));
        }
}

/* dx (X's layout) += dxs (step order of direction d). */
static void scatter_add(const rnn_grad_state *s, const float *dxs, int64_t d, const int64_t *len,
                        float *dx) {
    for (int64_t st = 0; st < s->S; st++)
        for (int64_t n = 0; n < s->N; n++) {
            if (st >= len[n]) continue;
            float *to = dx + x_row(s, step_time(s, d, st, len[n]), n) * s->I;
            const float *from = dxs + (st * s->N + n) * s->I;
            for (int64_t k = 0; k < s->I; k++) to[k] += from[k];
        }
}

/* out[k] = sum over rows of m[row * G + k], k < G. */
static void col_sums(const float *m, int64_t rows, int64_t G, float *out) {
    for (int64_t k = 0; k < G; k++) out[k] = 0;
    for (int64_t row = 0; row < rows; row++)
        for (int64_t k = 0; k < G; k++) out[k] += m[row * G + k];
}

/* dY at step st (< len) of direction d, batch row n (NULL without dY). */
static const float *dy_at(const rnn_grad_state *s, const kiln_tensor *dy, int64_t d, int64_t st,
                          int64_t n, int64_t len) {
    return dy ? (const float *)dy->data + y_row(s, step_time(s, d, st, len), d, n) * s->H : NULL;
}

/* The sums both cells end with: dW_d = dZ^T Xs, dX += dZ W_d, dWb_d. */
static kiln_status input_sums(kiln__kctx *c, const rnn_grad_state *s, int64_t d, const int64_t *len,
                              const float *dz, const float *xs, const float *wd, float *dxs) {
    const int64_t SN = s->S * s->N, G = s->G, I = s->I;
    kiln_tensor *o_dx = kiln__out(c, OUT_DX), *o_dw = kiln__out(c, OUT_DW), *o_db = kiln__out(c, OUT_DB);
    if (o_dw)
        KILN__TRY(product(c, s, G, I, SN, dz, G, 1, xs, I, 0, (float *)o_dw->data + d * G * I, I, 0,
                          NULL));
    if (o_dx) {
        KILN__TRY(product(c, s, SN, I, G, dz, G, 0, wd, I, 0, dxs, I, 0, NULL));
        scatter_add(s, dxs, d, len, o_dx->data);
    }
    if (o_db) col_sums(dz, SN, G, (float *)o_db->data + d * 2 * G);
    return KILN_OK;
}

/* One step of the LSTM's gate arithmetic, split over the batch rows. */
typedef struct lstm_step_job {
    const rnn_grad_state *s;
    float *zs;              /* the step's Reserve rows (N, 6H) */
    float *next;            /* forward: the next step's rows, or NULL after the last */
    float *h_last, *c_last; /* forward: (N, H) each, where the last step's states go */
    const int64_t *len;     /* the rows' lengths: a row past its length is left as it is */
    int64_t st;             /* the step */
    const float *dy;        /* backward: dY (NULL: none) */
    int64_t d;              /* backward: the direction */
    float *dzs, *dh, *dc, *tc; /* backward: dZ_s (N, G); dh, dc, tanh(c) (N, H) */
} lstm_step_job;

/* Runs fn over the batch rows of a step, on the pool. */
static void step_rows(const kiln__kctx *c, const rnn_grad_state *s, kiln__task_fn fn, void *job) {
    kiln__pool *pool = kiln__pool_size(c->pool) <= s->nth ? c->pool : NULL;
    if (pool && s->N > 1) kiln__pool_run(pool, (int)(s->N < s->nth ? s->N : s->nth), fn, job);
    else fn(job, 0, 1);
}

/* The forward gates of rows [lo, hi) of a step: Z_s's pre-activations
 * become the gates, the new states go into the next step's rows, or after a
 * row's last step into h_last, c_last (the next row's states then zeros).
 * The rows of steps past a row's length are zeros, as the reference's. */
static void lstm_forward_rows(void *arg, int ith, int nth) {
    const lstm_step_job *j = arg;
    const rnn_grad_state *s = j->s;
    const int64_t H = s->H, L = 6 * H;
    int64_t lo, hi;
    kiln__split(s->N, ith, nth, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        float *g = j->zs + n * L;
        if (j->st >= j->len[n]) {
            memset(g, 0, (size_t)L * sizeof *g);
            continue;
        }
        const float *c_prev = g + 4 * H;
        const int last = j->st + 1 == j->len[n];
        if (last && j->next) memset(j->next + n * L + 4 * H, 0, 2 * (size_t)H * sizeof *g);
        float *c_next = last ? j->c_last + n * H : j->next + n * L + 4 * H;
        float *h_next = last ? j->h_last + n * H : j->next + n * L + 5 * H;
        s->act->sigmoid(g, 3 * H); /* i, o, f */
        s->act->tanh(g + 3 * H, H);
        for (int64_t k = 0; k < H; k++)
            c_next[k] = h_next[k] = g[2 * H + k] * c_prev[k] + g[k] * g[3 * H + k];
        s->act->tanh(h_next, H);
        for (int64_t k = 0; k < H; k++) h_next[k] *= g[H + k];
    }
}

/* The backward of rows [lo, hi) of a step: dZ_s from dh (+ dY), dc and the
 * gates; dc becomes dc_{s-1}. Past a row's length dZ_s is 0 and dh, dc pass
 * through (the state was kept). */
static void lstm_backward_rows(void *arg, int ith, int nth) {
    const lstm_step_job *j = arg;
    const rnn_grad_state *s = j->s;
    const int64_t H = s->H, G = s->G, L = 6 * H;
    int64_t lo, hi;
    kiln__split(s->N, ith, nth, &lo, &hi);
    for (int64_t n = lo; n < hi; n++) {
        float *gd = j->dzs + n * G, *tc = j->tc + n * H, *dh = j->dh + n * H, *dc = j->dc + n * H;
        if (j->st >= j->len[n]) {
            memset(gd, 0, (size_t)G * sizeof *gd);
            continue;
        }
        const float *g = j->zs + n * L, *c_prev = g + 4 * H;
        const float *dy = j->dy ? j->dy + y_row(s, step_time(s, j->d, j->st, j->len[n]), j->d, n) * H : NULL;
        for (int64_t k = 0; k < H; k++) /* c after the step, then its tanh */
            tc[k] = g[2 * H + k] * c_prev[k] + g[k] * g[3 * H + k];
        s->act->tanh(tc, H);
        for (int64_t k = 0; k < H; k++) {
            float dhv = dh[k] + (dy ? dy[k] : 0.0f);
            float i = g[k], o = g[H + k], fg = g[2 * H + k], cc = g[3 * H + k], t = tc[k];
            float dcv = dc[k] + dhv * o * (1 - t * t);
            gd[k] = dcv * cc * i * (1 - i);
            gd[H + k] = dhv * t * o * (1 - o);
            gd[2 * H + k] = dcv * c_prev[k] * fg * (1 - fg);
            gd[3 * H + k] = dcv * i * (1 - cc * cc);
            dc[k] = dcv * fg;
        }
    }
}

/* The LSTM forward of direction d: X's rows in step order into xs, and the
 * Reserve's rows of d into res (S*N, 6H); h and c after the last step into
 * the scratch's `last` (N, H each). */
static kiln_status lstm_forward(const kiln__kctx *c, const rnn_grad_state *s, int64_t d,
                                const int64_t *len, float *res) {
    const int64_t S = s->S, N = s->N, I = s->I, H = s->H, G = s->G, SN = S * N, L = 6 * H;
    float *f = c->scratch;
    float *xs = f + s->xs, *bias = f + s->bias, *h_last = f + s->last, *c_last = h_last + N * H;
    const float *wd = (const float *)kiln__in(c, IN_W)->data + d * G * I;
    const float *rd = (const float *)kiln__in(c, IN_R)->data + d * G * H;
    const kiln_tensor *t_b = kiln__in(c, s->in.b);
    const float *b = t_b ? (const float *)t_b->data + d * 2 * G : NULL;
    gather_steps(s, kiln__in(c, IN_X)->data, d, len, xs);
    for (int64_t k = 0; k < G; k++) bias[k] = b ? b[k] + b[G + k] : 0.0f;
    state_io(s, kiln__in(c, s->in.c0), d, res + 4 * H, L, 0);
    state_io(s, kiln__in(c, s->in.h0), d, res + 5 * H, L, 0);
    for (int64_t n = 0; n < N; n++) /* rows of length 0: their states are the initial ones */
        if (len[n] == 0) {
            memcpy(c_last + n * H, res + n * L + 4 * H, (size_t)H * sizeof(float));
            memcpy(h_last + n * H, res + n * L + 5 * H, (size_t)H * sizeof(float));
        }
    KILN__TRY(pack_b(c, s->rf, H, G, rd, H, 1));
    KILN__TRY(product(c, s, SN, G, I, xs, I, 0, wd, I, 1, res, L, 0, bias));
    for (int64_t st = 0; st < S; st++) {
        float *zs = res + st * N * L;
        KILN__TRY(product_packed(c, s, N, G, H, zs + 5 * H, L, s->rf, zs, L, 1));
        /* the next step's states, or after the last step h_last, c_last */
        lstm_step_job job = {.s = s, .zs = zs, .next = st + 1 < S ? zs + N * L : NULL,
                             .h_last = h_last, .c_last = c_last, .len = len, .st = st};
        step_rows(c, s, lstm_forward_rows, &job);
    }
    return KILN_OK;
}

static kiln_status direction_reserve(const kiln__kctx *c, const rnn_grad_state *s, int64_t d,
                                     const int64_t *len, const float **res);

static kiln_status lstm_grad_run(kiln__kctx *c) {
    const rnn_grad_state *s = c->kstate;
    const int64_t S = s->S, N = s->N, I = s->I, H = s->H, G = s->G, SN = S * N, L = 6 * H;
    float *f = c->scratch;
    float *xs = f + s->xs, *dz = f + s->dz, *tc = f + s->tc;
    float *dh = f + s->dh, *dhp = dh + N * H, *dc = f + s->dc;
    const float *w = kiln__in(c, IN_W)->data;
    const kiln_tensor *t_dy = kiln__in(c, IN_DY);
    kiln_tensor *o_dx = kiln__out(c, OUT_DX), *o_dr = kiln__out(c, OUT_DR),
                *o_db = kiln__out(c, OUT_DB);
    int64_t *len;
    KILN__TRY(load_lens(c, s, &len));
    if (o_dx) memset(o_dx->data, 0, (size_t)(SN * I) * sizeof(float));
    for (int64_t d = 0; d < s->D; d++) {
        const float *wd = w + d * G * I, *rd = (const float *)kiln__in(c, IN_R)->data + d * G * H;
        const float *res;
        KILN__TRY(direction_reserve(c, s, d, len, &res));
        KILN__TRY(pack_b(c, s->rb, G, H, rd, H, 0));
        /* backward through time */
        state_io(s, kiln__in(c, IN_DY_H), d, dh, H, 0);
        state_io(s, kiln__in(c, LSTM_DY_C), d, dc, H, 0);
        for (int64_t st = S - 1; st >= 0; st--) {
            float *dzs = dz + st * N * G;
            lstm_step_job job = {.s = s, .zs = (float *)res + st * N * L, .len = len, .st = st,
                                 .dy = t_dy ? t_dy->data : NULL, .d = d, .dzs = dzs,
                                 .dh = dh, .dc = dc, .tc = tc};
            step_rows(c, s, lstm_backward_rows, &job);
            KILN__TRY(product_packed(c, s, N, H, G, dzs, G, s->rb, dhp, H, 0));
            for (int64_t n = 0; n < N; n++) /* past a row's length dh passes through */
                if (st < len[n]) memcpy(dh + n * H, dhp + n * H, (size_t)H * sizeof(float));
        }
        state_io(s, kiln__out(c, OUT_DH0), d, dh, H, 1);
        state_io(s, kiln__out(c, OUT_DC0), d, dc, H, 1);
        /* the sums over every step: the recurrent part's gradient is the input part's */
        if (o_dr)
            KILN__TRY(product(c, s, G, H, SN, dz, G, 1, res + 5 * H, L, 0,
                              (float *)o_dr->data + d * G * H, H, 0, NULL));
        KILN__TRY(input_sums(c, s, d, len, dz, xs, wd, f + s->dxs));
        if (o_db) {
            float *db = (float *)o_db->data + d * 2 * G;
            memcpy(db + G, db, (size_t)G * sizeof(float));
        }
    }
    return KILN_OK;
}

/* The GRU forward of direction d, as lstm_forward: the Reserve's rows of d
 * into res (S*N, 5H: [z r h~ | h_prev | v]), h after the last step into the
 * scratch's `last`. */
static kiln_status gru_forward(const kiln__kctx *c, const rnn_grad_state *s, int64_t d,
                               const int64_t *len, float *res) {
    const int64_t S = s->S, N = s->N, I = s->I, H = s->H, G = s->G, SN = S * N, L = 5 * H;
    float *f = c->scratch;
    float *xs = f + s->xs, *tmp = f + s->tmp, *bias = f + s->bias, *rbh = bias + G;
    float *h_last = f + s->last;
    const float *wd = (const float *)kiln__in(c, IN_W)->data + d * G * I;
    const float *rd = (const float *)kiln__in(c, IN_R)->data + d * G * H, *rh = rd + 2 * H * H;
    const kiln_tensor *t_b = kiln__in(c, s->in.b);
    const float *b = t_b ? (const float *)t_b->data + d * 2 * G : NULL;
    gather_steps(s, kiln__in(c, IN_X)->data, d, len, xs);
    /* z, r: both biases; h~: Wbh, plus Rbh unless it is multiplied by r (1) */
    for (int64_t k = 0; k < G; k++)
        bias[k] = b ? b[k] + (k < 2 * H || !s->lbr ? b[G + k] : 0.0f) : 0.0f;
    for (int64_t j = 0; j < H; j++) rbh[j] = b ? b[G + 2 * H + j] : 0.0f;
    state_io(s, kiln__in(c, s->in.h0), d, res + 3 * H, L, 0);
    for (int64_t n = 0; n < N; n++) /* rows of length 0: their state is the initial one */
        if (len[n] == 0) memcpy(h_last + n * H, res + n * L + 3 * H, (size_t)H * sizeof(float));
    const int64_t rcols = s->lbr ? G : 2 * H; /* the rows of R_d in the first product */
    KILN__TRY(pack_b(c, s->rf, H, rcols, rd, H, 1));
    if (!s->lbr) KILN__TRY(pack_b(c, s->rhf, H, H, rh, H, 1));
    KILN__TRY(product(c, s, SN, G, I, xs, I, 0, wd, I, 1, res, L, 0, bias));
    for (int64_t st = 0; st < S; st++) {
        float *zs = res + st * N * L, *next = st + 1 < S ? zs + N * L : NULL;
        /* tmp = h_prev [Rz Rr (Rh)]^T */
        KILN__TRY(product_packed(c, s, N, rcols, H, zs + 3 * H, L, s->rf, tmp, G, 0));
        for (int64_t n = 0; n < N; n++) {
            float *g = zs + n * L, *v = g + 4 * H;
            const float *h_prev = g + 3 * H, *t = tmp + n * G;
            if (st >= len[n]) { /* past the row's length: zeros, as the reference's */
                memset(g, 0, (size_t)L * sizeof *g);
                continue;
            }
            for (int64_t j = 0; j < 2 * H; j++) g[j] += t[j];
            s->act->sigmoid(g, 2 * H);
            for (int64_t j = 0; j < H; j++) v[j] = s->lbr ? t[2 * H + j] + rbh[j] : g[H + j] * h_prev[j];
        }
        if (!s->lbr) /* tmp's h~ block = v Rh^T, v = r * h_prev */
            KILN__TRY(product_packed(c, s, N, H, H, zs + 4 * H, L, s->rhf, tmp + 2 * H, G, 0));
        for (int64_t n = 0; n < N; n++) {
            if (st >= len[n]) continue;
            float *g = zs + n * L;
            const float *h_prev = g + 3 * H, *v = g + 4 * H, *t = tmp + n * G;
            /* the next step's h_prev, or after the row's last step h_last (and zeros there) */
            const int last = st + 1 == len[n];
            if (last && next) memset(next + n * L + 3 * H, 0, (size_t)H * sizeof *g);
            float *h_next = last ? h_last + n * H : next + n * L + 3 * H;
            for (int64_t j = 0; j < H; j++) g[2 * H + j] += s->lbr ? g[H + j] * v[j] : t[2 * H + j];
            s->act->tanh(g + 2 * H, H);
            for (int64_t j = 0; j < H; j++) h_next[j] = (1 - g[j]) * g[2 * H + j] + g[j] * h_prev[j];
        }
    }
    return KILN_OK;
}

/* The Reserve rows of direction d (S*N, L) that a gradient reads: the
 * training form's output when the node has it (the steps' inputs gathered
 * into xs), else the forward pass run again into the scratch's res (which
 * fills xs itself). */
static kiln_status direction_reserve(const kiln__kctx *c, const rnn_grad_state *s, int64_t d,
                                     const int64_t *len, const float **res) {
    float *f = c->scratch;
    if (!s->has_reserve) {
        *res = f + s->res;
        return s->lstm ? lstm_forward(c, s, d, len, f + s->res) : gru_forward(c, s, d, len, f + s->res);
    }
    const int64_t L = (s->lstm ? 6 : 5) * s->H;
    *res = (const float *)kiln__in(c, s->in.reserve)->data + d * s->S * s->N * L;
    gather_steps(s, kiln__in(c, IN_X)->data, d, len, f + s->xs);
    return KILN_OK;
}


/* LSTMTrain / GRUTrain: the forward into the Reserve, then Y (each step's h
 * is the next step's h_prev in the Reserve, the last one in `last`), Y_h
 * and LSTM's Y_c. */
static kiln_status rnn_train_run(kiln__kctx *c) {
    const rnn_grad_state *s = c->kstate;
    const int64_t S = s->S, N = s->N, H = s->H, L = (s->lstm ? 6 : 5) * H;
    const int64_t h_at = (s->lstm ? 5 : 3) * H; /* h_prev in a Reserve row */
    float *h_last = (float *)c->scratch + s->last, *c_last = h_last + N * H;
    kiln_tensor *y = kiln__out(c, OUT_Y);
    int64_t *len;
    KILN__TRY(load_lens(c, s, &len));
    for (int64_t d = 0; d < s->D; d++) {
        float *res = (float *)kiln__out(c, s->lstm ? OUT_RESERVE : GRU_OUT_RESERVE)->data + d * S * N * L;
        KILN__TRY(s->lstm ? lstm_forward(c, s, d, len, res) : gru_forward(c, s, d, len, res));
        for (int64_t st = 0; y && st < S; st++)
            for (int64_t n = 0; n < N; n++) { /* past a row's length: zeros at time st */
                float *to = (float *)y->data + y_row(s, st < len[n] ? step_time(s, d, st, len[n]) : st, d, n) * H;
                if (st < len[n])
                    memcpy(to, st + 1 < len[n] ? res + ((st + 1) * N + n) * L + h_at : h_last + n * H,
                           (size_t)H * sizeof(float));
                else
                    memset(to, 0, (size_t)H * sizeof(float));
            }
        state_io(s, kiln__out(c, OUT_Y_H), d, h_last, H, 1);
        if (s->lstm) state_io(s, kiln__out(c, OUT_Y_C), d, c_last, H, 1);
    }
    return KILN_OK;
}

static kiln_status gru_grad_run(kiln__kctx *c) {
    const rnn_grad_state *s = c->kstate;
    const int64_t S = s->S, N = s->N, I = s->I, H = s->H, G = s->G, SN = S * N, L = 5 * H;
    float *f = c->scratch;
    float *xs = f + s->xs, *dz = f + s->dz, *dq = f + s->dq, *dh = f + s->dh, *dhp = dh + N * H;
    const float *w = kiln__in(c, IN_W)->data;
    const kiln_tensor *t_dy = kiln__in(c, IN_DY);
    kiln_tensor *o_dx = kiln__out(c, OUT_DX), *o_dr = kiln__out(c, OUT_DR),
                *o_db = kiln__out(c, OUT_DB);
    int64_t *len;
    KILN__TRY(load_lens(c, s, &len));
    if (o_dx) memset(o_dx->data, 0, (size_t)(SN * I) * sizeof(float));
    for (int64_t d = 0; d < s->D; d++) {
        const float *wd = w + d * G * I;
        const float *rd = (const float *)kiln__in(c, IN_R)->data + d * G * H, *rh = rd + 2 * H * H;
        const float *res;
        KILN__TRY(direction_reserve(c, s, d, len, &res));
        const int64_t rcols = s->lbr ? G : 2 * H;
        KILN__TRY(pack_b(c, s->rb, rcols, H, rd, H, 0));
        if (!s->lbr) KILN__TRY(pack_b(c, s->rhb, H, H, rh, H, 0));
        /* backward through time: dz the input parts' gradients, dq the recurrent parts' */
        state_io(s, kiln__in(c, IN_DY_H), d, dh, H, 0);
        for (int64_t st = S - 1; st >= 0; st--) {
            const float *zs = res + st * N * L;
            float *dzs = dz + st * N * G, *dqs = dq + st * N * G;
            for (int64_t n = 0; n < N; n++) {
                if (st >= len[n]) { /* past the row's length: dh passes through */
                    memset(dzs + n * G, 0, (size_t)G * sizeof(float));
                    memset(dqs + n * G, 0, (size_t)G * sizeof(float));
                    memcpy(dhp + n * H, dh + n * H, (size_t)H * sizeof(float));
                    continue;
                }
                const float *g = zs + n * L, *h_prev = g + 3 * H, *v = g + 4 * H;
                const float *dy = dy_at(s, t_dy, d, st, n, len[n]);
                for (int64_t j = 0; j < H; j++) {
                    float dhv = dh[n * H + j] + (dy ? dy[j] : 0.0f);
                    float zz = g[j], rr = g[H + j], nn = g[2 * H + j], hp = h_prev[j];
                    float gz = dhv * (hp - nn) * zz * (1 - zz), gh = dhv * (1 - zz) * (1 - nn * nn);
                    dzs[n * G + j] = dqs[n * G + j] = gz;
                    dzs[n * G + 2 * H + j] = gh;
                    dqs[n * G + 2 * H + j] = s->lbr ? gh * rr : gh;
                    dhp[n * H + j] = dhv * zz; /* the direct part of dh_prev */
                    if (s->lbr) { /* dr = gh * (Rh h_prev + Rbh) */
                        float gr = gh * v[j] * rr * (1 - rr);
                        dzs[n * G + H + j] = dqs[n * G + H + j] = gr;
                    }
                }
            }
            if (!s->lbr) { /* dv = gh Rh, into dh (free until the sum below) */
                KILN__TRY(product_packed(c, s, N, H, H, dzs + 2 * H, G, s->rhb, dh, H, 0));
                for (int64_t n = 0; n < N; n++) {
                    if (st >= len[n]) continue;
                    const float *g = zs + n * L, *h_prev = g + 3 * H;
                    for (int64_t j = 0; j < H; j++) {
                        float rr = g[H + j], dv = dh[n * H + j];
                        float gr = dv * h_prev[j] * rr * (1 - rr);
                        dzs[n * G + H + j] = dqs[n * G + H + j] = gr;
                        dhp[n * H + j] += dv * rr;
                    }
                }
            }
            /* dh_prev += dq [Rz Rr (Rh)] */
            memcpy(dh, dhp, (size_t)(N * H) * sizeof(float));
            KILN__TRY(product_packed(c, s, N, H, rcols, dqs, G, s->rb, dh, H, 1));
        }
        state_io(s, kiln__out(c, OUT_DH0), d, dh, H, 1);
        /* the sums over every step: dR's h~ block takes v (0) or h_prev (1) */
        if (o_dr) {
            float *dr = (float *)o_dr->data + d * G * H;
            KILN__TRY(product(c, s, 2 * H, H, SN, dq, G, 1, res + 3 * H, L, 0, dr, H, 0, NULL));
            KILN__TRY(product(c, s, H, H, SN, dq + 2 * H, G, 1, res + (s->lbr ? 3 : 4) * H, L, 0,
                              dr + 2 * H * H, H, 0, NULL));
        }
        KILN__TRY(input_sums(c, s, d, len, dz, xs, wd, f + s->dxs));
        if (o_db) col_sums(dq, SN, G, (float *)o_db->data + d * 2 * G + G);
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_lstm_train_gemm = {
    .name = "lstm_train_gemm", .domain = "kiln", .op_type = "LSTMTrain", .flags = 0,
    .prepare = lstm_train_prepare, .cost = rnn_grad_cost, .run = rnn_train_run, .release = free,
};
const kiln__algo kiln__algo_lstm_grad_gemm = {
    .name = "lstm_grad_gemm", .domain = "kiln", .op_type = "LSTMGrad", .flags = 0,
    .prepare = lstm_grad_prepare, .cost = rnn_grad_cost, .run = lstm_grad_run, .release = free,
};
const kiln__algo kiln__algo_gru_train_gemm = {
    .name = "gru_train_gemm", .domain = "kiln", .op_type = "GRUTrain", .flags = 0,
    .prepare = gru_train_prepare, .cost = rnn_grad_cost, .run = rnn_train_run, .release = free,
};
const kiln__algo kiln__algo_gru_grad_gemm = {
    .name = "gru_grad_gemm", .domain = "kiln", .op_type = "GRUGrad", .flags = 0,
    .prepare = gru_grad_prepare, .cost = rnn_grad_cost, .run = gru_grad_run, .release = free,
};
