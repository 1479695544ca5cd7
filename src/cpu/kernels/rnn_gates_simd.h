/* src/cpu/kernels/rnn_gates_simd.h: the LSTM / GRU gate kernels (semantics
 * in rnn.h) written once over a vector width, included by
 * rnn_gates_avx512.c (16 lanes) and rnn_gates_avx2.c (8 lanes), which define
 * before including it:
 *
 *   GATES_ATTR           the target attribute of the functions
 *   GATES_W              lanes per vector
 *   vec, mask            the vector type and the type of a tail mask
 *   MASK(left)           the mask of min(left, GATES_W) leading lanes
 *   LDM(p, m), STM(p, m, v) masked load (other lanes 0) and store
 *   LDU(p), STU(p, v)    unmasked load and store
 *   V1(x), ADD, SUB, MUL, FMA(a, b, c) = a * b + c, MIN, MAX
 *                        (MIN(k, v) / MAX(k, v) let a NaN in v through)
 *   V_SIGMOID, V_TANH    vmath.h's forms for the width
 *   GATES_TABLE, GATES_NAME  the kiln__rnn_gates table to define and its name
 *
 * Each kernel is a body for the GATES_W units from j (an always-inlined
 * function of the mask m and a constant `full`) and a loop over the row:
 * full vectors unmasked, the last partial one masked (masked loads and
 * stores are much slower than plain ones on some CPUs, AVX2 on AMD's).
 */

#define INLINE static inline __attribute__((always_inline)) GATES_ATTR
/* in a body: load / store the vector at p, masked only in the last one */
#define LD(p, m) (full ? LDU(p) : LDM(p, m))
#define ST(p, m, v)                                                                           \
    do {                                                                                      \
        if (full)                                                                             \
            STU(p, v);                                                                        \
        else                                                                                  \
            STM(p, m, v);                                                                     \
    } while (0)
/* BODY(args..., j, m, full) over the n units of a row */
#define FOR_VECTORS(n, BODY, ...)                                                              \
    do {                                                                                      \
        int64_t j_ = 0;                                                                       \
        for (; j_ + GATES_W <= (n); j_ += GATES_W) BODY(__VA_ARGS__, j_, MASK(GATES_W), 1);    \
        if (j_ < (n)) BODY(__VA_ARGS__, j_, MASK((n) - j_), 0);                               \
    } while (0)

/* min(max(v, -clip), clip), NaN passing through. */
INLINE vec v_clip(int has_clip, float clip, vec v) {
    if (!has_clip) return v;
    return MIN(V1(clip), MAX(V1(-clip), v));
}

INLINE void lstm_at(const kiln__rnn_lstm_row *a, int64_t j, mask m, int full) {
    const int64_t n = a->n;
    const float *pi = a->proj, *po = pi + n, *pf = po + n, *pc = pf + n;
    const float *ri = a->rec, *ro = ri + n, *rf = ro + n, *rc = rf + n;
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
static GATES_ATTR void gates_lstm(const kiln__rnn_lstm_row *a) { FOR_VECTORS(a->n, lstm_at, a); }

/* z and r (the first 2n of rec) */
INLINE void gru_zr_at(const kiln__rnn_gru_row *a, int64_t j, mask m, int full) {
    vec v = ADD(LD(a->proj + j, m), LD(a->rec + j, m));
    ST(a->rec + j, m, V_SIGMOID(v_clip(a->has_clip, a->clip, v)));
}
INLINE void gru_rh_at(const kiln__rnn_gru_row *a, int64_t j, mask m, int full) {
    ST(a->rh + j, m, MUL(LD(a->rec + a->n + j, m), LD(a->h_prev + j, m)));
}
static GATES_ATTR void gates_gru_zr(const kiln__rnn_gru_row *a) {
    FOR_VECTORS(2 * a->n, gru_zr_at, a);
    if (a->rh) FOR_VECTORS(a->n, gru_rh_at, a);
}

INLINE void gru_h_at(const kiln__rnn_gru_row *a, int64_t j, mask m, int full) {
    const int64_t n = a->n;
    const float *z = a->rec, *r = z + n, *rec_h = r + n, *ph = a->proj + 2 * n;
    const vec p = LD(ph + j, m), rv = LD(rec_h + j, m);
    const vec pre = a->lbr ? FMA(LD(r + j, m), rv, p) : ADD(p, rv);
    const vec nv = V_TANH(v_clip(a->has_clip, a->clip, pre));
    ST(a->h + j, m, FMA(LD(z + j, m), SUB(LD(a->h_prev + j, m), nv), nv));
}
static GATES_ATTR void gates_gru_h(const kiln__rnn_gru_row *a) { FOR_VECTORS(a->n, gru_h_at, a); }

INLINE void sigmoid_at(float *x, int64_t j, mask m, int full) { ST(x + j, m, V_SIGMOID(LD(x + j, m))); }
INLINE void tanh_at(float *x, int64_t j, mask m, int full) { ST(x + j, m, V_TANH(LD(x + j, m))); }
static GATES_ATTR void gates_sigmoid(float *x, int64_t n) { FOR_VECTORS(n, sigmoid_at, x); }
static GATES_ATTR void gates_tanh(float *x, int64_t n) { FOR_VECTORS(n, tanh_at, x); }

const kiln__rnn_gates GATES_TABLE = {
    .name = GATES_NAME,
    .lstm = gates_lstm,
    .gru_zr = gates_gru_zr,
    .gru_h = gates_gru_h,
    .sigmoid = gates_sigmoid,
    .tanh = gates_tanh,
};
