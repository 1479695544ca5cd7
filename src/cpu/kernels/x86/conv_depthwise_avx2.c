/* src/cpu/kernels/x86/conv_depthwise_avx2.c: the AVX2 + FMA kernel of the
 * depthwise convolution (conv_depthwise.h), for x86 CPUs without AVX-512.
 * Compiled for AVX2 through target attributes only; conv_depthwise.c calls
 * it only when the CPU has AVX2 and FMA.
 *
 * Per plane and block of output rows, three steps over the thread's
 * scratch pl->buf (conv_depthwise.h's window of the padded planes, then the
 * block's outputs), all in L1:
 *   fill     the input rows the block reads go into the window of the padded
 *            phase planes (the zero-padded input split by stride): plain
 *            loads with the
 *            lanes outside the row zeroed by and-masks, even/odd shuffles
 *            for stride 2;
 *   taps     the block is computed in padded coordinates, output (p, q) at
 *            p*Wp + q, so that tap t of every output reads the planes at a
 *            fixed offset tapoff[t]: eight vectors of 8 consecutive outputs
 *            in flight, one unmasked load and one FMA per tap and vector,
 *            the bias starting the sums. The Wp - Q columns past each row
 *            are computed too (from whatever follows) and thrown away: a
 *            7-wide row costs 9 lanes, not a vector of its own;
 *   out      each row's Q outputs get the residual and the activation
 *            (ReLU, Clip, SiLU in registers; GELU through the scalar
 *            reference) on their way to y.
 * AVX2's masked loads and stores are slow on AMD (a first version's masked
 * store per row tail took 17% of this kernel's samples), so the taps use
 * none, and the fill and the output only at the two ends of a plane.
 *
 * Zero padding multiplies padding taps by 0, which the reference skips:
 * the same sums for finite weights; conv_depthwise.c sends planes with a
 * non-finite weight to the portable rows. 3x3 and 5x5 are instantiated with
 * constant sizes (unrolled taps); other sizes loop.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/conv_depthwise.h"
#include "cpu/kernels/vmath.h"

#define DW_ATTR KILN__VM_AVX2
#define DW_INLINE static inline __attribute__((always_inline)) DW_ATTR
#define DW_VECS 8 /* output vectors in flight */

/* Lanes l of 8 with lo <= l < hi, as a load/store mask. */
DW_INLINE __m256i lane_range(int64_t lo, int64_t hi) {
    lo = lo < 0 ? 0 : lo > 8 ? 8 : lo;
    hi = hi < 0 ? 0 : hi > 8 ? 8 : hi;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lo), iota),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32((int)hi), iota));
}

/* act(v) with the reference's NaN behaviour (x86 max/min return the second
 * operand when either is NaN). */
DW_INLINE __m256 act8(__m256 v, const kiln__act *a) {
    switch (a->kind) {
    case KILN__ACT_NONE: return v;
    case KILN__ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), v);
    case KILN__ACT_CLIP: { /* x < lo ? lo : min(hi, x); NaN stays */
        const __m256 lo = _mm256_set1_ps(a->lo);
        __m256 t = _mm256_min_ps(_mm256_set1_ps(a->hi), v);
        return _mm256_blendv_ps(t, lo, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));
    }
    case KILN__ACT_SILU: {
        const __m256 e = kiln__vm_exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
        return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    default: { /* GELU forms: the scalar reference */
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int l = 0; l < 8; l++) t[l] = kiln__act_apply(a, t[l]);
        return _mm256_loadu_ps(t);
    }
    }
}

/* The first n (< 8) floats of p, the rest 0; y[0..n) = the first n of v. */
DW_INLINE __m256 load_part(const float *p, int64_t n) {
    float t[8] = {0};
    for (int64_t l = 0; l < n; l++) t[l] = p[l];
    return _mm256_loadu_ps(t);
}
DW_INLINE void store_part(float *y, __m256 v, int64_t n) {
    __m128 h = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(y, h);
        h = _mm256_extractf128_ps(v, 1);
        y += 4;
    }
    if (n & 2) {
        _mm_storel_pi((__m64 *)(void *)y, h);
        h = _mm_movehl_ps(h, h);
        y += 2;
    }
    if (n & 1) _mm_store_ss(y, h);
}

/* ---- fill ------------------------------------------------------------------------------ */

/* [a0 a2 a4 a6 b0 b2 b4 b6] */
DW_INLINE __m256 even_lanes(__m256 a, __m256 b) {
    __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* [a0 a2 b0 b2 | a4 a6 b4 b6] */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* Input elements xr[c + l*sw] (lanes l of 8) of a row of W, 0 where the
 * column is outside [0, W); only sw 1 and 2. The row is row ih of an
 * (H, W) plane: plain loads where the span read lies inside the plane (the
 * lanes outside the row zeroed after), masked loads (slow on some CPUs) at
 * the plane's two ends, so nothing outside the plane is read. */
DW_INLINE __m256 row_cols(const float *xr, int64_t ih, int64_t H, int64_t W, int64_t c,
                          int64_t sw) {
    const int64_t g = ih * W + c; /* plane index of lane 0 */
    const int inside = c >= 0 && c + 8 * sw <= W, in_plane = g >= 0 && g + 8 * sw <= H * W;
    if (sw == 1) {
        if (inside) return _mm256_loadu_ps(xr + c);
        const __m256i m = lane_range(-c, W - c);
        if (in_plane) return _mm256_and_ps(_mm256_loadu_ps(xr + c), _mm256_castsi256_ps(m));
        return _mm256_maskload_ps(xr + c, m);
    }
    __m256 a, b; /* elements c .. c+15; the even ones are wanted */
    if (inside) {
        a = _mm256_loadu_ps(xr + c);
        b = _mm256_loadu_ps(xr + c + 8);
    } else {
        const __m256i ma = lane_range(-c, W - c), mb = lane_range(-c - 8, W - c - 8);
        if (in_plane) {
            a = _mm256_and_ps(_mm256_loadu_ps(xr + c), _mm256_castsi256_ps(ma));
            b = _mm256_and_ps(_mm256_loadu_ps(xr + c + 8), _mm256_castsi256_ps(mb));
        } else {
            a = _mm256_maskload_ps(xr + c, ma);
            b = _mm256_maskload_ps(xr + c + 8, mb);
        }
    }
    return even_lanes(a, b);
}

/* Row masks kept on the stack: rows up to FILL_VECS vectors (Wp <= 512)
 * take the fast path below. */
#define FILL_VECS 64

/* Rows [u0, u1) of every padded phase plane of input plane x into the
 * window buf (row u at row u - u0 of each window plane). Rows in order: a
 * row's last vector spills up to 7 floats into the next row, written after
 * it, or into the 8 floats after the plane. Rows whose whole span lies
 * inside the input plane load plainly and zero the lanes outside the row
 * with masks made once per phase; the others go through row_cols. */
DW_INLINE void pad_fill(const kiln__dw_geom *d, const float *x, float *buf, int64_t u0,
                        int64_t u1) {
    const int64_t H = d->H, W = d->W, sh = d->sh, sw = d->sw, Wp = d->Wp;
    const int64_t stride = kiln__dw_pad_plane_stride(d);
    const int64_t nvec = (Wp + 7) / 8;
    __m256 ma[FILL_VECS], mb[FILL_VECS]; /* lanes inside the row, of the (two) loads */
    for (int64_t rho = 0; rho < sh; rho++)
        for (int64_t sigma = 0; sigma < sw; sigma++) {
            float *plane = buf + (rho * sw + sigma) * stride;
            const int64_t c0 = sigma - d->pw; /* input column of dst[0] */
            const int fast = sw <= 2 && nvec <= FILL_VECS;
            for (int64_t v = 0; fast && v < nvec; v++) {
                const int64_t c = c0 + 8 * v * sw;
                ma[v] = _mm256_castsi256_ps(lane_range(-c, W - c));
                mb[v] = _mm256_castsi256_ps(lane_range(-c - 8, W - c - 8));
            }
            for (int64_t u = u0; u < u1; u++) {
                float *dst = plane + (u - u0) * Wp;
                const int64_t ih = u * sh + rho - d->ph;
                if (ih < 0 || ih >= H) {
                    for (int64_t v = 0; v < Wp; v += 8)
                        _mm256_storeu_ps(dst + v, _mm256_setzero_ps());
                    continue;
                }
                const float *xr = x + ih * W;
                /* plane indices read: [ih*W + c0, ih*W + c0 + 8*nvec*sw) */
                if (fast && ih * W + c0 >= 0 && ih * W + c0 + 8 * nvec * sw <= H * W) {
                    if (sw == 1) {
                        for (int64_t v = 0; v < nvec; v++) {
                            const __m256 a = _mm256_loadu_ps(xr + c0 + 8 * v);
                            _mm256_storeu_ps(dst + 8 * v, _mm256_and_ps(a, ma[v]));
                        }
                    } else {
                        for (int64_t v = 0; v < nvec; v++) {
                            const float *xv = xr + c0 + 16 * v;
                            __m256 a = _mm256_and_ps(_mm256_loadu_ps(xv), ma[v]);
                            __m256 b = _mm256_and_ps(_mm256_loadu_ps(xv + 8), mb[v]);
                            _mm256_storeu_ps(dst + 8 * v, even_lanes(a, b));
                        }
                    }
                } else if (sw <= 2) {
                    for (int64_t v = 0; v < Wp; v += 8)
                        _mm256_storeu_ps(dst + v, row_cols(xr, ih, H, W, c0 + v * sw, sw));
                } else {
                    for (int64_t v = 0; v < Wp; v++) {
                        const int64_t c = c0 + v * sw;
                        dst[v] = c >= 0 && c < W ? xr[c] : 0.0f;
                    }
                }
            }
        }
}

/* ---- taps and out ----------------------------------------------------------------------- */

/* Output rows [lo, hi) of a plane (kiln__dw_plane_fn). R, S constant when
 * inlined. */
DW_INLINE void dw_pad(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo, int64_t hi,
                      const int64_t R, const int64_t S) {
    const int64_t Q = d->Q, Wp = d->Wp, RS = R * S;
    const int64_t *off = d->tapoff;
    const float *w = pl->w;
    float *planes = pl->buf, *out = pl->buf + kiln__dw_pad_planes_len(d);
    const __m256 vb = _mm256_set1_ps(pl->bias);
    const int64_t nb = kiln__dw_pad_block_rows(d), halo = (R - 1) * d->dh / d->sh;
    for (int64_t p0 = lo; p0 < hi; p0 += nb) {
        const int64_t p1 = p0 + nb < hi ? p0 + nb : hi;
        /* fill: phase rows [p0, p1 + halo) hold every tap of rows [p0, p1)
         * (the halo rows are filled again for the next block) */
        pad_fill(d, pl->x, planes, p0, p1 + halo);
        /* taps: outputs [p0*Wp, p1*Wp) of the padded plane, into out */
        const float *xb = planes;
        for (int64_t i = 0; i < (p1 - p0) * Wp; i += 8 * DW_VECS) {
            __m256 acc[DW_VECS];
#pragma GCC unroll 8
            for (int k = 0; k < DW_VECS; k++) acc[k] = vb;
#pragma GCC unroll 25
            for (int64_t t = 0; t < RS; t++) {
                const __m256 wv = _mm256_set1_ps(w[t]);
                const float *xt = xb + i + off[t];
#pragma GCC unroll 8
                for (int k = 0; k < DW_VECS; k++)
                    acc[k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xt + 8 * k), acc[k]);
            }
#pragma GCC unroll 8
            for (int k = 0; k < DW_VECS; k++) _mm256_storeu_ps(out + i + 8 * k, acc[k]);
        }
        /* out: rows p0..p1 to y, with the residual and the activation. A
         * row's tail is stored whole, spilling into the rows after it (which
         * this call writes later), but where the spill would pass row hi
         * (another thread's, or another plane's) and with a residual (which
         * y may share) */
        for (int64_t p = p0; p < p1; p++) {
            const float *o = out + (p - p0) * Wp;
            float *y = pl->y + p * Q;
            const float *z = pl->z ? pl->z + p * Q : NULL;
            int64_t q = 0;
            for (; q + 8 <= Q; q += 8) {
                __m256 v = _mm256_loadu_ps(o + q);
                if (z) v = _mm256_add_ps(v, _mm256_loadu_ps(z + q));
                _mm256_storeu_ps(y + q, act8(v, &d->act));
            }
            if (q == Q) continue;
            __m256 v = _mm256_loadu_ps(o + q);
            if (z) v = _mm256_add_ps(v, load_part(z + q, Q - q));
            v = act8(v, &d->act);
            if (z || (p * Q + q + 8 > hi * Q))
                store_part(y + q, v, Q - q);
            else
                _mm256_storeu_ps(y + q, v);
        }
    }
}

#define DW_PAD(name, R, S)                                                                     \
    static DW_ATTR void name(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo,     \
                             int64_t hi) {                                                     \
        dw_pad(d, pl, lo, hi, R, S);                                                           \
    }
DW_PAD(dw_pad3, 3, 3)
DW_PAD(dw_pad5, 5, 5)
DW_PAD(dw_padany, d->R, d->S)

kiln__dw_plane_fn kiln__dw_pad_avx2_pick(const kiln__dw_geom *d) {
    if (d->R == 3 && d->S == 3) return dw_pad3;
    if (d->R == 5 && d->S == 5) return dw_pad5;
    return dw_padany;
}

#endif
