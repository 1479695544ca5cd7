/* src/cpu/kernels/rnn_gates_avx512.c: the LSTM / GRU gate kernels with
 * AVX-512F (16 hidden units per vector, masked tails; semantics in rnn.h).
 * Compiled through target attributes only; rnn_gates.c calls them only when
 * the CPU has AVX-512F.
 * sigmoid and tanh come from vmath.h. */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/rnn.h"
#include "cpu/kernels/vmath.h"

#define ATTR __attribute__((target("avx512f,avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) ATTR

INLINE __m512 v1(float x) { return _mm512_set1_ps(x); }

/* sigmoid and tanh: the vectorized functions the elementwise kernels use
 * (vmath.h: a few ulp against libm; NaN propagates, +-inf give the limits). */
#define v_sigmoid kiln__vm_sigmoid16
#define v_tanh kiln__vm_tanh16

/* min(max(v, -clip), clip), NaN passing through. */
INLINE __m512 v_clip(int has_clip, float clip, __m512 v) {
    if (!has_clip) return v;
    return _mm512_min_ps(v1(clip), _mm512_max_ps(v1(-clip), v));
}

INLINE __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

#define LD(p, m) _mm512_maskz_loadu_ps(m, p)

static ATTR void lstm_avx512(const kiln__rnn_lstm_row *a) {
    const int64_t n = a->n;
    const float *pi = a->proj, *po = pi + n, *pf = po + n, *pc = pf + n;
    const float *ri = a->rec, *ro = ri + n, *rf = ro + n, *rc = rf + n;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 c_prev = LD(a->c + j, m);
        __m512 gi = _mm512_add_ps(LD(pi + j, m), LD(ri + j, m));
        __m512 gf = _mm512_add_ps(LD(pf + j, m), LD(rf + j, m));
        if (a->pi) {
            gi = _mm512_fmadd_ps(LD(a->pi + j, m), c_prev, gi);
            gf = _mm512_fmadd_ps(LD(a->pf + j, m), c_prev, gf);
        }
        const __m512 i = v_sigmoid(v_clip(a->has_clip, a->clip, gi));
        const __m512 f = a->input_forget ? _mm512_sub_ps(v1(1.0f), i)
                                         : v_sigmoid(v_clip(a->has_clip, a->clip, gf));
        const __m512 g =
            v_tanh(v_clip(a->has_clip, a->clip, _mm512_add_ps(LD(pc + j, m), LD(rc + j, m))));
        const __m512 c_new = _mm512_fmadd_ps(f, c_prev, _mm512_mul_ps(i, g));
        __m512 go = _mm512_add_ps(LD(po + j, m), LD(ro + j, m));
        if (a->po) go = _mm512_fmadd_ps(LD(a->po + j, m), c_new, go);
        const __m512 o = v_sigmoid(v_clip(a->has_clip, a->clip, go));
        _mm512_mask_storeu_ps(a->c + j, m, c_new);
        _mm512_mask_storeu_ps(a->h + j, m, _mm512_mul_ps(o, v_tanh(c_new)));
    }
}

static ATTR void gru_zr_avx512(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    for (int64_t j = 0; j < 2 * n; j += 16) {
        const __mmask16 m = tail_mask(2 * n - j);
        __m512 v = _mm512_add_ps(LD(a->proj + j, m), LD(a->rec + j, m));
        _mm512_mask_storeu_ps(a->rec + j, m, v_sigmoid(v_clip(a->has_clip, a->clip, v)));
    }
    if (!a->rh) return;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        _mm512_mask_storeu_ps(a->rh + j, m, _mm512_mul_ps(LD(a->rec + n + j, m), LD(a->h_prev + j, m)));
    }
}

static ATTR void gru_h_avx512(const kiln__rnn_gru_row *a) {
    const int64_t n = a->n;
    const float *z = a->rec, *r = z + n, *rec_h = r + n, *ph = a->proj + 2 * n;
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 p = LD(ph + j, m), rv = LD(rec_h + j, m);
        const __m512 pre = a->lbr ? _mm512_fmadd_ps(LD(r + j, m), rv, p) : _mm512_add_ps(p, rv);
        const __m512 nv = v_tanh(v_clip(a->has_clip, a->clip, pre));
        const __m512 h = _mm512_fmadd_ps(LD(z + j, m), _mm512_sub_ps(LD(a->h_prev + j, m), nv), nv);
        _mm512_mask_storeu_ps(a->h + j, m, h);
    }
}

const kiln__rnn_gates kiln__rnn_gates_avx512 = {
    .name = "avx512",
    .lstm = lstm_avx512,
    .gru_zr = gru_zr_avx512,
    .gru_h = gru_h_avx512,
};

#endif
