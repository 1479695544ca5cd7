/* src/cpu/kernels/rnn_gates.c: the scalar LSTM / GRU gate kernels (libm,
 * f32) and the run-time choice between them and the vector ones
 * (rnn_gates_avx512.c, rnn_gates_avx2.c). Semantics in rnn.h. */
#include <math.h>

#include "cpu/kernels/rnn.h"

/* NaN passes through, as in the reference. */
static inline float clipf(const int has_clip, const float clip, const float v) {
    if (!has_clip) return v;
    return v < -clip ? -clip : (v > clip ? clip : v);
}

static inline float sigmoidf(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static void lstm_generic(const kiln__rnn_lstm_row *a) {
    const int64_t n = a->n;
    const float *pi = a->proj, *po = pi + n, *pf = po + n, *pc = pf + n;
    const float *ri = a->rec, *ro = ri + n, *rf = ro + n, *rc = rf + n;
    for (int64_t j = 0; j < n; j++) {
        const float c_prev = a->c[j];
        float gi = pi[j] + ri[j], gf = pf[j] + rf[j];
        if (a->pi) {
            gi += a->pi[j] * c_prev;
            gf += a->pf[j] * c_prev;
        }
        const float i = sigmoidf(clipf(a->has_clip, a->clip, gi));
        const float f = a->input_forget ? 1.0f - i : sigmoidf(clipf(a->has_clip, a->clip, gf));
        const float g = tanhf(clipf(a->has_clip, a->clip, pc[j] + rc[j]));
        const float c_new = f * c_prev + i * g;
        float go = po[j] + ro[j];
        if (a->po) go += a->po[j] * c_new;
        const float o = sigmoidf(clipf(a->has_clip, a->clip, go));
        a->c[j] = c_new;
        a->h[j] = o * tanhf(c_new);
    }
}

static void gru_zr_generic(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    for (int64_t j = 0; j < 2 * n; j++)
        a->rec[j] = sigmoidf(clipf(a->has_clip, a->clip, a->proj[j] + a->rec[j]));
    if (a->rh)
        for (int64_t j = 0; j < n; j++) a->rh[j] = a->rec[n + j] * a->h_prev[j];
}

static void gru_h_generic(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    const float *z = a->rec, *r = z + n, *rec_h = r + n, *ph = a->proj + 2 * n;
    for (int64_t j = 0; j < n; j++) {
        const float pre = a->lbr ? ph[j] + r[j] * rec_h[j] : ph[j] + rec_h[j];
        const float nv = tanhf(clipf(a->has_clip, a->clip, pre));
        a->h[j] = nv + z[j] * (a->h_prev[j] - nv);
    }
}

static void sigmoid_generic(float *x, int64_t n) {
    for (int64_t j = 0; j < n; j++) x[j] = sigmoidf(x[j]);
}

static void tanh_generic(float *x, int64_t n) {
    for (int64_t j = 0; j < n; j++) x[j] = tanhf(x[j]);
}

const kiln__rnn_gates kiln__rnn_gates_generic = {
    .name = "generic",
    .lstm = lstm_generic,
    .gru_zr = gru_zr_generic,
    .gru_h = gru_h_generic,
    .sigmoid = sigmoid_generic,
    .tanh = tanh_generic,
};

const kiln__rnn_gates *kiln__rnn_gates_for(kiln__gemm_isa isa) {
    if (isa == KILN__GEMM_ISA_GENERIC) return &kiln__rnn_gates_generic;
#ifdef KILN__RNN_X86
    if (isa == KILN__GEMM_ISA_AUTO)
        isa = kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX512) ? KILN__GEMM_ISA_AVX512
              : kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2) ? KILN__GEMM_ISA_AVX2
                                                              : KILN__GEMM_ISA_GENERIC;
    if (!kiln__gemm_isa_supported(isa)) return NULL;
    switch (isa) {
    case KILN__GEMM_ISA_GENERIC: return &kiln__rnn_gates_generic;
    case KILN__GEMM_ISA_AVX2: return &kiln__rnn_gates_avx2;
    case KILN__GEMM_ISA_AVX512: return &kiln__rnn_gates_avx512;
    default: return NULL;
    }
#else
    return isa == KILN__GEMM_ISA_AUTO ? &kiln__rnn_gates_generic : NULL;
#endif
}
