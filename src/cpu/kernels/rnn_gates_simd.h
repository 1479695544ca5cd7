/* src/cpu/kernels/rnn_gates_simd.h: the LSTM / GRU gate kernels (semantics
 * in rnn.h) written once over a vector width, included by
 * rnn_gates_avx512.c (16 lanes) and rnn_gates_avx2.c (8 lanes), which define
 * before including it:
 *
 *   GATES_ATTR           the target attribute of the functions
 *   GATES_W              lanes per vector
 *   vec, mask            the vector type and the type of a tail mask
 *   MASK(left)           the mask of min(left, GATES_W) leading lanes
 *   LD(p, m), ST(p, m, v) masked load (other lanes 0) and store
 *   V1(x), ADD, SUB, MUL, FMA(a, b, c) = a * b + c, MIN, MAX
 *                        (MIN(k, v) / MAX(k, v) let a NaN in v through)
 *   V_SIGMOID, V_TANH    vmath.h's forms for the width
 *   GATES_TABLE, GATES_NAME  the kiln__rnn_gates table to define and its name
 */

/* min(max(v, -clip), clip), NaN passing through. */
static inline __attribute__((always_inline)) GATES_ATTR vec v_clip(int has_clip, float clip, vec v) {
    if (!has_clip) return v;
    return MIN(V1(clip), MAX(V1(-clip), v));
}

static GATES_ATTR void gates_lstm(const kiln__rnn_lstm_row *a) {
    const int64_t n = a->n;
    const float *pi = a->proj, *po = pi + n, *pf = po + n, *pc = pf + n;
    const float *ri = a->rec, *ro = ri + n, *rf = ro + n, *rc = rf + n;
    for (int64_t j = 0; j < n; j += GATES_W) {
        const mask m = MASK(n - j);
        const vec c_prev = LD(a->c + j, m);
        vec gi = ADD(LD(pi + j, m), LD(ri + j, m));
        vec gf = ADD(LD(pf + j, m), LD(rf + j, m));
        if (a->pi) {
            gi = FMA(LD(a->pi + j, m), c_prev, gi);
            gf = FMA(LD(a->pf + j, m), c_prev, gf);
        }
        const vec i = V_SIGMOID(v_clip(a->has_clip, a->clip, gi));
        const vec f = a->input_forget ? SUB(V1(1.0f), i) : V_SIGMOID(v_clip(a->has_clip, a->clip, gf));
        const vec g = V_TANH(v_clip(a->has_clip, a->clip, ADD(LD(pc + j, m), LD(rc + j, m))));
        const vec c_new = FMA(f, c_prev, MUL(i, g));
        vec go = ADD(LD(po + j, m), LD(ro + j, m));
        if (a->po) go = FMA(LD(a->po + j, m), c_new, go);
        const vec o = V_SIGMOID(v_clip(a->has_clip, a->clip, go));
        ST(a->c + j, m, c_new);
        ST(a->h + j, m, MUL(o, V_TANH(c_new)));
    }
}

static GATES_ATTR void gates_gru_zr(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    for (int64_t j = 0; j < 2 * n; j += GATES_W) {
        const mask m = MASK(2 * n - j);
        vec v = ADD(LD(a->proj + j, m), LD(a->rec + j, m));
        ST(a->rec + j, m, V_SIGMOID(v_clip(a->has_clip, a->clip, v)));
    }
    if (!a->rh) return;
    for (int64_t j = 0; j < n; j += GATES_W) {
        const mask m = MASK(n - j);
        ST(a->rh + j, m, MUL(LD(a->rec + n + j, m), LD(a->h_prev + j, m)));
    }
}

static GATES_ATTR void gates_gru_h(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    const float *z = a->rec, *r = z + n, *rec_h = r + n, *ph = a->proj + 2 * n;
    for (int64_t j = 0; j < n; j += GATES_W) {
        const mask m = MASK(n - j);
        const vec p = LD(ph + j, m), rv = LD(rec_h + j, m);
        const vec pre = a->lbr ? FMA(LD(r + j, m), rv, p) : ADD(p, rv);
        const vec nv = V_TANH(v_clip(a->has_clip, a->clip, pre));
        ST(a->h + j, m, FMA(LD(z + j, m), SUB(LD(a->h_prev + j, m), nv), nv));
    }
}

static GATES_ATTR void gates_sigmoid(float *x, int64_t n) {
    for (int64_t j = 0; j < n; j += GATES_W) {
        const mask m = MASK(n - j);
        ST(x + j, m, V_SIGMOID(LD(x + j, m)));
    }
}

static GATES_ATTR void gates_tanh(float *x, int64_t n) {
    for (int64_t j = 0; j < n; j += GATES_W) {
        const mask m = MASK(n - j);
        ST(x + j, m, V_TANH(LD(x + j, m)));
    }
}

const kiln__rnn_gates GATES_TABLE = {
    .name = GATES_NAME,
    .lstm = gates_lstm,
    .gru_zr = gates_gru_zr,
    .gru_h = gates_gru_h,
    .sigmoid = gates_sigmoid,
    .tanh = gates_tanh,
};
