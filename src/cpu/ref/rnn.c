/* src/cpu/ref/rnn.c: reference kernels of the recurrent ops RNN, GRU and LSTM.
 *
 * The three ops share one driver (rnn_parse for attributes and shapes,
 * rnn_run_row for the time loop of one batch row); only the cell step (the
 * gate math) differs per op. Shapes, with G gates (RNN 1, GRU 3, LSTM 4),
 * D directions (1, or 2 when bidirectional), H = hidden_size:
 *
 *   X:             layout 0: (S, N, I)     layout 1: (N, S, I)
 *   W:             (D, G*H, I)   gate blocks: RNN (i), GRU (z,r,h), LSTM (i,o,f,c)
 *   R:             (D, G*H, H)
 *   B:             (D, 2*G*H)    [Wb ; Rb]
 *   sequence_lens: (N) int32
 *   initial_h/c:   layout 0: (D, N, H)     layout 1: (N, D, H)
 *   P (LSTM):      (D, 3*H)      peepholes (i,o,f)
 *   Y:             layout 0: (S, D, N, H)  layout 1: (N, S, D, H)
 *   Y_h, Y_c:      layout 0: (D, N, H)     layout 1: (N, D, H)
 *
 * kiln.LSTMTrain and kiln.GRUTrain (src/ops/defs/grad.def) are LSTM and GRU
 * for training: the same inputs, attributes and outputs, and one output more,
 * Reserve (D, S, N, W) of X's dtype, that keeps what the gradient
 * (kiln.LSTMGrad, kiln.GRUGrad) reads instead of running the recurrence
 * again: for direction d, step s (the s-th step that direction takes, so
 * time S-1-s for the reverse one) and batch row n, the row
 *   LSTM (W = 6H): [i | o | f | c~ | c_prev | h_prev]
 *   GRU  (W = 5H): [z | r | h~ | h_prev | v]
 * of the gates after their activations (clip and peepholes applied), the
 * states the step started from, and GRU's input to its h~ block's recurrent
 * product: v = r * h_prev (linear_before_reset 0), Rh h_prev + Rbh (1).
 * Steps past a row's sequence length hold zeros.
 *
 * Batch rows are independent, so the kernels split the batch across threads.
 * Gate products accumulate in float for f32/f16/bf16 inputs and in double for
 * f64; the hidden/cell state is kept in that working type; the elementwise
 * gate math runs in double. Rows past a row's sequence length get zeros in Y.
 * Scratch (per batch row): gate pre-activations (G*H doubles, and H for GRU's v), h, c, the GRU
 * reset-gated state r*h and the current input row, in the working type.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref/rnn_act.h"
#include "ops/op.h"

typedef enum { RNN_CELL_RNN, RNN_CELL_GRU, RNN_CELL_LSTM } rnn_cell;

/* ---- parameters shared by infer and the kernels ------------------------- */

typedef struct rnn_params {
    rnn_cell cell;
    int n_gates;     /* G: 1 (RNN), 3 (GRU), 4 (LSTM) */
    int n_acts;      /* activations per direction: 1, 2, 3 */
    int dirs;        /* D */
    int reverse[2];  /* direction d walks time backwards */
    int layout;      /* 0: time-major, 1: batch-major */
    int64_t seq, batch, input, hidden;
    int has_clip;
    double clip;
    int input_forget;        /* LSTM */
    int linear_before_reset; /* GRU */
    int train;               /* LSTMTrain / GRUTrain: the last output is the Reserve */
    kiln__rnn_act act[2][3]; /* [direction][f, g, h] */
    kiln_dtype dt;           /* dtype of X, W, R, B, initial_h/c, P, Y */
    kiln_dtype wt;           /* working dtype: F64 for f64 inputs, else F32 */
    size_t row_bytes;        /* scratch per batch row */
} rnn_params;

/* Input indices. */
enum { IN_X, IN_W, IN_R, IN_B, IN_SEQ_LENS, IN_INITIAL_H, IN_INITIAL_C, IN_P };

static const char *rnn_cell_name(rnn_cell cell) {
    return cell == RNN_CELL_RNN ? "RNN" : cell == RNN_CELL_GRU ? "GRU" : "LSTM";
}

static size_t rnn_align(size_t n) { return (n + 63) & ~(size_t)63; }

/* Reads the activations, activation_alpha and activation_beta attributes into
 * p->act (rnn_act.c). */
static kiln_status rnn_parse_acts(const kiln__node *node, rnn_params *p) {
    static const kiln__rnn_act_fn defaults[3][3] = {
        [RNN_CELL_RNN] = {KILN__RNN_ACT_TANH},
        [RNN_CELL_GRU] = {KILN__RNN_ACT_SIGMOID, KILN__RNN_ACT_TANH},
        [RNN_CELL_LSTM] = {KILN__RNN_ACT_SIGMOID, KILN__RNN_ACT_TANH, KILN__RNN_ACT_TANH},
    };
    return kiln__rnn_act_read(node, p->n_acts, defaults[p->cell], p->dirs, p->act);
}

/* Validates inputs and attributes of an RNN/GRU/LSTM node into p. */
static kiln_status rnn_parse(const kiln__kctx *c, rnn_cell cell, int train, rnn_params *p) {
    memset(p, 0, sizeof *p);
    p->cell = cell;
    p->train = train;
    p->n_gates = cell == RNN_CELL_RNN ? 1 : cell == RNN_CELL_GRU ? 3 : 4;
    p->n_acts = cell == RNN_CELL_RNN ? 1 : cell == RNN_CELL_GRU ? 2 : 3;
    const kiln__node *node = c->node;

    const char *dir = kiln__attr_s(node, "direction", "forward");
    if (strcmp(dir, "forward") == 0) {
        p->dirs = 1;
    } else if (strcmp(dir, "reverse") == 0) {
        p->dirs = 1;
        p->reverse[0] = 1;
    } else if (strcmp(dir, "bidirectional") == 0) {
        p->dirs = 2;
        p->reverse[1] = 1;
    } else {
        return kiln__err(KILN_E_INVAL,
                         "attribute 'direction' is '%s', expected forward, reverse or "
                         "bidirectional", dir);
    }
    int64_t layout = kiln__attr_i(node, "layout", 0);
    if (layout != 0 && layout != 1)
        return kiln__err(KILN_E_INVAL, "attribute 'layout' is %lld, expected 0 or 1",
                         (long long)layout);
    p->layout = (int)layout;
    const kiln__attr *clip = kiln__attr_find(node, "clip");
    if (clip) {
        p->has_clip = 1;
        p->clip = clip->f;
        if (!(p->clip >= 0))
            return kiln__err(KILN_E_INVAL, "attribute 'clip' is %g, expected >= 0", p->clip);
    }
    p->input_forget = cell == RNN_CELL_LSTM && kiln__attr_i(node, "input_forget", 0) != 0;
    p->linear_before_reset =
        cell == RNN_CELL_GRU && kiln__attr_i(node, "linear_before_reset", 0) != 0;

    const kiln_tensor *x = kiln__in(c, IN_X), *w = kiln__in(c, IN_W), *r = kiln__in(c, IN_R);
    if (!x || !w || !r)
        return kiln__err(KILN_E_INVAL, "inputs 'X', 'W' and 'R' are required");
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    p->dt = x->dtype;
    p->wt = p->dt == KILN_DTYPE_F64 ? KILN_DTYPE_F64 : KILN_DTYPE_F32;
    if (x->ndim != 3) {
        char got[128];
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected rank 3",
                         kiln__shape_str(x->ndim, x->dims, got, sizeof got));
    }
    p->seq = x->dims[p->layout ? 1 : 0];
    p->batch = x->dims[p->layout ? 0 : 1];
    p->input = x->dims[2];
    if (r->ndim != 3) {
        char got[128];
        return kiln__err(KILN_E_SHAPE, "input 'R' has shape %s, expected rank 3",
                         kiln__shape_str(r->ndim, r->dims, got, sizeof got));
    }
    p->hidden = r->dims[2];
    int64_t hs = kiln__attr_i(node, "hidden_size", p->hidden);
    if (hs != p->hidden)
        return kiln__err(KILN_E_SHAPE, "attribute 'hidden_size' is %lld but input 'R' has %lld "
                         "columns", (long long)hs, (long long)p->hidden);

    const int64_t D = p->dirs, N = p->batch, H = p->hidden, GH = p->n_gates * p->hidden;
    const int64_t w_dims[3] = {D, GH, p->input}, r_dims[3] = {D, GH, H};
    const int64_t b_dims[2] = {D, 2 * GH}, n_dims[1] = {N}, p_dims[2] = {D, 3 * H};
    const int64_t state_dims[3] = {p->layout ? N : D, p->layout ? D : N, H};
    KILN__TRY(kiln__check_shape(w, "W", 3, w_dims));
    KILN__TRY(kiln__check_shape(r, "R", 3, r_dims));
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_B), "B", 2, b_dims));
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_SEQ_LENS), "sequence_lens", 1, n_dims));
    KILN__TRY(kiln__check_shape(kiln__in(c, IN_INITIAL_H), "initial_h", 3, state_dims));
    static const char *const names[] = {"X", "W", "R", "B", "sequence_lens", "initial_h",
                                        "initial_c", "P"};
    int n_float_inputs = IN_INITIAL_H + 1;
    if (cell == RNN_CELL_LSTM) {
        KILN__TRY(kiln__check_shape(kiln__in(c, IN_INITIAL_C), "initial_c", 3, state_dims));
        KILN__TRY(kiln__check_shape(kiln__in(c, IN_P), "P", 2, p_dims));
        n_float_inputs = IN_P + 1;
    } else if (c->n_in > IN_INITIAL_H + 1) {
        return kiln__err(KILN_E_INVAL, "%s takes at most 6 inputs, got %d",
                         rnn_cell_name(cell), c->n_in);
    }
    for (int i = IN_W; i < n_float_inputs; i++) {
        const kiln_tensor *t = kiln__in(c, i);
        if (i == IN_SEQ_LENS || !t) continue;
        if (t->dtype != p->dt)
            return kiln__err(KILN_E_TYPE, "input '%s' is %s, expected %s like 'X'", names[i],
                             kiln_dtype_name(t->dtype), kiln_dtype_name(p->dt));
    }
    if (kiln__in(c, IN_SEQ_LENS))
        KILN__TRY(kiln__check_dtype(kiln__in(c, IN_SEQ_LENS), "sequence_lens", KILN_DTYPE_I32,
                                    KILN_DTYPE_I64, 0));
    KILN__TRY(rnn_parse_acts(node, p));

    size_t ws = kiln_dtype_size(p->wt);
    p->row_bytes = rnn_align((size_t)(GH + H) * sizeof(double)) + 3 * rnn_align((size_t)H * ws) +
                   rnn_align((size_t)p->input * ws);
    return KILN_OK;
}

/* ---- typed inner loops ---------------------------------------------------- */

/* sum_k w[k] * v[k]. w has dtype wdt; v is in the working type (f64 when wdt
 * is f64, else f32). Accumulates in the working type. */
static double rnn_dot(kiln_dtype wdt, const void *w, const void *v, int64_t n) {
    switch (wdt) {
    case KILN_DTYPE_F64: {
        const double *a = w, *b = v;
        double acc = 0;
        for (int64_t k = 0; k < n; k++) acc += a[k] * b[k];
        return acc;
    }
    case KILN_DTYPE_F32: { /* 8 partial sums: vectorizable, smaller rounding error */
        const float *a = w, *b = v;
        float part[8] = {0}, acc = 0;
        int64_t k = 0;
        for (; k + 8 <= n; k += 8)
            for (int l = 0; l < 8; l++) part[l] += a[k + l] * b[k + l];
        for (; k < n; k++) acc += a[k] * b[k];
        for (int l = 0; l < 8; l++) acc += part[l];
        return acc;
    }
    default: { /* f16, bf16 */
        const uint16_t *a = w;
        const float *b = v;
        float acc = 0;
        if (wdt == KILN_DTYPE_F16)
            for (int64_t k = 0; k < n; k++) acc += kiln_f16_to_f32(a[k]) * b[k];
        else
            for (int64_t k = 0; k < n; k++) acc += kiln_bf16_to_f32(a[k]) * b[k];
        return acc;
    }
    }
}

/* Element j of a working-type vector. */
static inline double rnn_ld(kiln_dtype wt, const void *v, int64_t j) {
    return wt == KILN_DTYPE_F64 ? ((const double *)v)[j] : ((const float *)v)[j];
}
static inline void rnn_st(kiln_dtype wt, void *v, int64_t j, double x) {
    if (wt == KILN_DTYPE_F64)
        ((double *)v)[j] = x;
    else
        ((float *)v)[j] = (float)x;
}

/* Converts n elements of src (dtype dt) starting at element off into the
 * working-type vector dst; a NULL src gives zeros. */
static void rnn_load(kiln_dtype dt, const void *src, int64_t off, kiln_dtype wt, void *dst,
                     int64_t n) {
    for (int64_t j = 0; j < n; j++) rnn_st(wt, dst, j, src ? kiln__ld_f(dt, src, off + j) : 0.0);
}

/* Stores n working-type elements of src into dst (dtype dt) at element off;
 * a NULL src stores zeros. */
static void rnn_store(kiln_dtype wt, const void *src, kiln_dtype dt, void *dst, int64_t off,
                      int64_t n) {
    for (int64_t j = 0; j < n; j++) kiln__st_f(dt, dst, off + j, src ? rnn_ld(wt, src, j) : 0.0);
}

/* ---- one time step of one batch row ------------------------------------- */

/* The weights of one direction and the per-row buffers. */
typedef struct rnn_step {
    const rnn_params *p;
    const kiln__rnn_act *act; /* p->act[d] */
    const uint8_t *W, *R;   /* (G*H, I), (G*H, H) of direction d, dtype p->dt */
    const void *B, *P;      /* whole tensors (may be NULL) */
    int64_t b_off, p_off;   /* element offset of direction d in B and P */
    double *gates;          /* (G*H) */
    void *h, *c, *rh;       /* (H): working type */
    const void *x;          /* (I): working type, the current input row */
} rnn_step;

static double rnn_clip(const rnn_params *p, double v) {
    if (!p->has_clip) return v;
    return v < -p->clip ? -p->clip : v > p->clip ? p->clip : v;
}

/* W[k] . x */
static double rnn_wx(const rnn_step *s, int64_t k) {
    size_t es = kiln_dtype_size(s->p->dt);
    return rnn_dot(s->p->dt, s->W + (size_t)(k * s->p->input) * es, s->x, s->p->input);
}
/* R[k] . v, v a working-type vector of H elements */
static double rnn_rv(const rnn_step *s, int64_t k, const void *v) {
    size_t es = kiln_dtype_size(s->p->dt);
    return rnn_dot(s->p->dt, s->R + (size_t)(k * s->p->hidden) * es, v, s->p->hidden);
}
/* Wb[k] (which = 0) or Rb[k] (which = 1); 0 without B. */
static double rnn_bias(const rnn_step *s, int which, int64_t k) {
    if (!s->B) return 0;
    return kiln__ld_f(s->p->dt, s->B, s->b_off + which * s->p->n_gates * s->p->hidden + k);
}
/* Peephole of gate block (0 i, 1 o, 2 f) at j; 0 without P. */
static double rnn_peep(const rnn_step *s, int block, int64_t j) {
    return s->P ? kiln__ld_f(s->p->dt, s->P, s->p_off + block * s->p->hidden + j) : 0;
}

/* gates[k] = W[k].x + R[k].h + Wb[k] + Rb[k] for k in [0, n). */
static void rnn_gates(const rnn_step *s, int64_t n) {
    for (int64_t k = 0; k < n; k++)
        s->gates[k] = rnn_wx(s, k) + rnn_rv(s, k, s->h) + rnn_bias(s, 0, k) + rnn_bias(s, 1, k);
}

/* RNN: h = f(W x + R h + Wb + Rb) */
static void rnn_step_rnn(const rnn_step *s) {
    const rnn_params *p = s->p;
    const int64_t H = p->hidden;
    rnn_gates(s, H);
    for (int64_t j = 0; j < H; j++)
        rnn_st(p->wt, s->h, j, kiln__rnn_act_apply(&s->act[0], rnn_clip(p, s->gates[j])));
}

/* GRU (gate blocks z, r, h):
 *   z = f(Wz x + Rz h + Wbz + Rbz), r = f(Wr x + Rr h + Wbr + Rbr)
 *   n = g(Wh x + Rh (r*h) + Rbh + Wbh)            linear_before_reset = 0
 *   n = g(Wh x + r*(Rh h + Rbh) + Wbh)            linear_before_reset = 1
 *   h = (1 - z) * n + z * h
 * leaving z, r, n in s->gates and after them v, the input of the n block's
 * recurrent part (r*h, or Rh h + Rbh), for GRUTrain's Reserve. */
static void rnn_step_gru(const rnn_step *s) {
    const rnn_params *p = s->p;
    const int64_t H = p->hidden;
    double *z = s->gates, *r = s->gates + H, *n = s->gates + 2 * H, *v = s->gates + 3 * H;
    rnn_gates(s, 2 * H);
    for (int64_t j = 0; j < 2 * H; j++)
        s->gates[j] = kiln__rnn_act_apply(&s->act[0], rnn_clip(p, s->gates[j]));
    if (!p->linear_before_reset)
        for (int64_t j = 0; j < H; j++) rnn_st(p->wt, s->rh, j, r[j] * rnn_ld(p->wt, s->h, j));
    for (int64_t j = 0; j < H; j++) {
        int64_t k = 2 * H + j;
        double pre = rnn_wx(s, k) + rnn_bias(s, 0, k);
        if (p->linear_before_reset) {
            v[j] = rnn_rv(s, k, s->h) + rnn_bias(s, 1, k);
            pre += r[j] * v[j];
        } else {
            v[j] = rnn_ld(p->wt, s->rh, j);
            pre += rnn_rv(s, k, s->rh) + rnn_bias(s, 1, k);
        }
        n[j] = kiln__rnn_act_apply(&s->act[1], rnn_clip(p, pre));
    }
    for (int64_t j = 0; j < H; j++)
        rnn_st(p->wt, s->h, j, (1 - z[j]) * n[j] + z[j] * rnn_ld(p->wt, s->h, j));
}

/* LSTM (gate blocks i, o, f, c; peepholes P = (Pi, Po, Pf)); leaves the
 * gates after their activations in s->gates (for LSTMTrain's Reserve):
 *   i = f(Wi x + Ri h + Pi*c + Wbi + Rbi)
 *   f = f(Wf x + Rf h + Pf*c + Wbf + Rbf)    (input_forget: f = 1 - i)
 *   n = g(Wc x + Rc h + Wbc + Rbc)
 *   c = f*c + i*n
 *   o = f(Wo x + Ro h + Po*c + Wbo + Rbo)     (with the new c)
 *   h = o * h(c) */
static void rnn_step_lstm(const rnn_step *s) {
    const rnn_params *p = s->p;
    const int64_t H = p->hidden;
    const kiln__rnn_act *act = s->act;
    rnn_gates(s, 4 * H);
    for (int64_t j = 0; j < H; j++) {
        double c_prev = rnn_ld(p->wt, s->c, j);
        double i = kiln__rnn_act_apply(&act[0], rnn_clip(p, s->gates[j] + rnn_peep(s, 0, j) * c_prev));
        double f = p->input_forget
                       ? 1 - i
                       : kiln__rnn_act_apply(&act[0], rnn_clip(p, s->gates[2 * H + j] +
                                                                rnn_peep(s, 2, j) * c_prev));
        double n = kiln__rnn_act_apply(&act[1], rnn_clip(p, s->gates[3 * H + j]));
        double c_new = f * c_prev + i * n;
        double o = kiln__rnn_act_apply(&act[0], rnn_clip(p, s->gates[H + j] + rnn_peep(s, 1, j) * c_new));
        s->gates[j] = i, s->gates[H + j] = o, s->gates[2 * H + j] = f, s->gates[3 * H + j] = n;
        rnn_st(p->wt, s->c, j, c_new);
        rnn_st(p->wt, s->h, j, o * kiln__rnn_act_apply(&act[2], c_new));
    }
}

/* ---- the shared driver ---------------------------------------------------- */

/* Runs every direction over the sequence of batch row b and writes its parts
 * of Y, Y_h and Y_c. */
static kiln_status rnn_run_row(const kiln__kctx *c, const rnn_params *p, int64_t b,
                               uint8_t *row_scratch) {
    const int64_t S = p->seq, N = p->batch, D = p->dirs, H = p->hidden, I = p->input;
    const int64_t GH = p->n_gates * H;
    const size_t ws = kiln_dtype_size(p->wt), es = kiln_dtype_size(p->dt);
    const kiln_tensor *x = c->in[IN_X];
    const kiln_tensor *bias = kiln__in(c, IN_B), *lens = kiln__in(c, IN_SEQ_LENS);
    const kiln_tensor *h0 = kiln__in(c, IN_INITIAL_H), *c0 = NULL, *peep = NULL;
    if (p->cell == RNN_CELL_LSTM) {
        c0 = kiln__in(c, IN_INITIAL_C);
        peep = kiln__in(c, IN_P);
    }
    kiln_tensor *y = kiln__out(c, 0), *y_h = kiln__out(c, 1);
    kiln_tensor *y_c = p->cell == RNN_CELL_LSTM ? kiln__out(c, 2) : NULL;
    const int lstm = p->cell == RNN_CELL_LSTM;
    kiln_tensor *reserve = p->train ? kiln__out(c, lstm ? 3 : 2) : NULL;
    const int64_t RW = (lstm ? 6 : 5) * p->hidden; /* a Reserve row */

    int64_t len = S;
    if (lens) {
        len = kiln__ld_i(lens->dtype, lens->data, b);
        if (len < 0 || len > S)
            return kiln__err(KILN_E_RANGE, "input 'sequence_lens' has %lld at batch %lld, "
                             "expected 0..%lld", (long long)len, (long long)b, (long long)S);
    }

    rnn_step s = {.p = p, .B = bias ? bias->data : NULL, .P = peep ? peep->data : NULL};
    uint8_t *q = row_scratch;
    s.gates = (double *)q;
    q += rnn_align((size_t)(GH + H) * sizeof(double)); /* the gates, and GRU's v */
    s.h = q;
    q += rnn_align((size_t)H * ws);
    s.c = q;
    q += rnn_align((size_t)H * ws);
    s.rh = q;
    q += rnn_align((size_t)H * ws);
    void *x_buf = q;

    for (int64_t d = 0; d < D; d++) {
        s.act = p->act[d];
        s.W = (const uint8_t *)c->in[IN_W]->data + (size_t)(d * GH * I) * es;
        s.R = (const uint8_t *)c->in[IN_R]->data + (size_t)(d * GH * H) * es;
        s.b_off = d * 2 * GH;
        s.p_off = d * 3 * H;
        /* state (D,N,H) or (N,D,H) */
        int64_t state_off = (p->layout ? b * D + d : d * N + b) * H;
        rnn_load(p->dt, h0 ? h0->data : NULL, state_off, p->wt, s.h, H);
        rnn_load(p->dt, c0 ? c0->data : NULL, state_off, p->wt, s.c, H);
        for (int64_t step = 0; step < S; step++) {
            /* Past the row's length Y gets zeros (at time index step). */
            int64_t t = step >= len ? step : p->reverse[d] ? len - 1 - step : step;
            int64_t y_off = (p->layout ? (b * S + t) * D + d : (t * D + d) * N + b) * H;
            int64_t res_off = ((d * S + step) * N + b) * RW; /* the step's Reserve row */
            if (step >= len) {
                if (y) rnn_store(p->wt, NULL, p->dt, y->data, y_off, H);
                if (reserve) rnn_store(p->wt, NULL, p->dt, reserve->data, res_off, RW);
                continue;
            }
            if (reserve && lstm) { /* the states the step starts from */
                rnn_store(p->wt, s.c, p->dt, reserve->data, res_off + 4 * H, H);
                rnn_store(p->wt, s.h, p->dt, reserve->data, res_off + 5 * H, H);
            } else if (reserve) {
                rnn_store(p->wt, s.h, p->dt, reserve->data, res_off + 3 * H, H);
            }
            int64_t x_off = (p->layout ? b * S + t : t * N + b) * I;
            if (p->dt == p->wt) {
                s.x = (const uint8_t *)x->data + (size_t)x_off * es;
            } else {
                rnn_load(p->dt, x->data, x_off, p->wt, x_buf, I);
                s.x = x_buf;
            }
            switch (p->cell) {
            case RNN_CELL_RNN: rnn_step_rnn(&s); break;
            case RNN_CELL_GRU: rnn_step_gru(&s); break;
            case RNN_CELL_LSTM: rnn_step_lstm(&s); break;
            }
            for (int64_t k = 0; reserve && k < GH; k++) /* the gates */
                kiln__st_f(p->dt, reserve->data, res_off + k, s.gates[k]);
            for (int64_t j = 0; reserve && !lstm && j < H; j++) /* GRU's v */
                kiln__st_f(p->dt, reserve->data, res_off + 4 * H + j, s.gates[3 * H + j]);
            if (y) rnn_store(p->wt, s.h, p->dt, y->data, y_off, H);
        }
        if (y_h) rnn_store(p->wt, s.h, p->dt, y_h->data, state_off, H);
        if (y_c) rnn_store(p->wt, s.c, p->dt, y_c->data, state_off, H);
    }
    return KILN_OK;
}

static kiln_status rnn_infer(kiln__kctx *c, rnn_cell cell, int train) {
    rnn_params p;
    KILN__TRY(rnn_parse(c, cell, train, &p));
    int max_out = cell == RNN_CELL_LSTM ? 3 : 2;
    const int64_t S = p.seq, N = p.batch, D = p.dirs, H = p.hidden;
    const int64_t y0[4] = {S, D, N, H}, y1[4] = {N, S, D, H};
    const int64_t s0[3] = {D, N, H}, s1[3] = {N, D, H};
    const int64_t res[4] = {D, S, N, (cell == RNN_CELL_LSTM ? 6 : 5) * H};
    KILN__TRY(kiln__out_shape(c, 0, p.dt, 4, p.layout ? y1 : y0));
    for (int i = 1; i < max_out; i++) KILN__TRY(kiln__out_shape(c, i, p.dt, 3, p.layout ? s1 : s0));
    if (train) KILN__TRY(kiln__out_shape(c, max_out, p.dt, 4, res)); /* Reserve, last */
    c->scratch_bytes = (size_t)N * p.row_bytes;
    return KILN_OK;
}

static kiln_status rnn_kernel(kiln__kctx *c, rnn_cell cell, int train) {
    rnn_params p;
    KILN__TRY(rnn_parse(c, cell, train, &p));
    int64_t lo, hi;
    kiln__split(p.batch, c->ith, c->nth, &lo, &hi);
    for (int64_t b = lo; b < hi; b++)
        KILN__TRY(rnn_run_row(c, &p, b, (uint8_t *)c->scratch + (size_t)b * p.row_bytes));
    return KILN_OK;
}

kiln_status kiln__infer_RNN(kiln__kctx *c) { return rnn_infer(c, RNN_CELL_RNN, 0); }
kiln_status kiln__ref_RNN(kiln__kctx *c) { return rnn_kernel(c, RNN_CELL_RNN, 0); }
kiln_status kiln__infer_GRU(kiln__kctx *c) { return rnn_infer(c, RNN_CELL_GRU, 0); }
kiln_status kiln__ref_GRU(kiln__kctx *c) { return rnn_kernel(c, RNN_CELL_GRU, 0); }
kiln_status kiln__infer_LSTM(kiln__kctx *c) { return rnn_infer(c, RNN_CELL_LSTM, 0); }
kiln_status kiln__ref_LSTM(kiln__kctx *c) { return rnn_kernel(c, RNN_CELL_LSTM, 0); }
kiln_status kiln__infer_LSTMTrain(kiln__kctx *c) { return rnn_infer(c, RNN_CELL_LSTM, 1); }
kiln_status kiln__ref_LSTMTrain(kiln__kctx *c) { return rnn_kernel(c, RNN_CELL_LSTM, 1); }
kiln_status kiln__infer_GRUTrain(kiln__kctx *c) { return rnn_infer(c, RNN_CELL_GRU, 1); }
kiln_status kiln__ref_GRUTrain(kiln__kctx *c) { return rnn_kernel(c, RNN_CELL_GRU, 1); }
