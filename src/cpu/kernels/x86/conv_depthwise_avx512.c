/* src/cpu/kernels/x86/conv_depthwise_avx512.c: the AVX-512F kernels of the
 * depthwise convolution (conv_depthwise.h). Compiled for AVX-512 through
 * target attributes only; conv_depthwise.c calls them only when the CPU has
 * AVX-512F.
 *
 * Every output goes through the vector path: a tap that falls in the
 * padding (or past the end of a row or plane) is a lane left out of the
 * masked load and of the masked FMA (vfmadd with a write mask keeps the
 * accumulator), so padding taps are skipped exactly as in the reference
 * (NaN/Inf weights never meet a padding zero) and nothing outside the input
 * is read. The masks come from tables made at plan time (conv_depthwise.c).
 * Four vectors (64 outputs) are in flight at once, taps in (r, s) order with
 * one FMA each; the bias starts the sums, and the residual and the
 * activation are applied in registers before the one masked store.
 *
 *   flat kernel   vectors of the flattened output plane; each tap is one
 *                 masked load at a fixed offset from the input plane or
 *                 from its phase planes (kiln__dw_phase_fill_avx512 splits a
 *                 strided input into them: even/odd columns by permutes).
 *   row kernels   groups of four (row, vector) slots, so short rows share a
 *                 group; column stride 1: plain loads; 2: two loads and an
 *                 even-lane permute; any other: gathers.
 * Kernels 3x3 and 5x5 are instantiated with constant sizes (unrolled taps);
 * other sizes loop.
 */
#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "cpu/kernels/conv_depthwise.h"
#include "cpu/kernels/vmath.h"
#include "cpu/kernels/x86/act_avx512.h"

#define DW_ATTR KILN__VM_AVX512
#define DW_INLINE static inline __attribute__((always_inline)) DW_ATTR
#define DW_NB KILN__DW_NB

static inline __mmask16 lanes(int64_t n) {
    return (__mmask16)(n >= 16 ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1u);
}
/* Lanes [lo, hi) of 16. */
static inline __mmask16 lane_range(int64_t lo, int64_t hi) {
    return (__mmask16)(lanes(hi) & ~lanes(lo));
}

/* ---- epilogue ------------------------------------------------------------------- */

/* y[lanes m] = act(acc + z) (z NULL: no residual). */
DW_INLINE void dw_store(const kiln__act *a, __m512 acc, const float *z, float *y, __mmask16 m) {
    if (z) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, z));
    _mm512_mask_storeu_ps(y, m, kiln__act16(acc, a));
}

/* ---- row kernels --------------------------------------------------------------------- */

/* x[l*sw] for the lanes of m (others 0, not read); for sw 2, e1 and e2 are
 * the elements of x[0..16) and x[16..31) the two loads may read. */
DW_INLINE __m512 dw_load(const float *x, int64_t sw, __mmask16 m, __mmask16 e1, __mmask16 e2) {
    if (sw == 1) return _mm512_maskz_loadu_ps(m, x);
    if (sw == 2) {
        const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                              4, 2, 0);
        __m512 a = _mm512_maskz_loadu_ps(e1, x);
        __m512 b = _mm512_maskz_loadu_ps(e2, x + 16);
        return _mm512_permutex2var_ps(a, even, b);
    }
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set1_epi32((int)sw));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, x, 4);
}

/* A group of DW_NB output vectors, each 16 outputs of some row: slot b is
 * vector vq[b] of the row whose R input rows start at rp[b*R + r] (never
 * NULL; only rows with bit r of rv[b] set are read, the others lie in the
 * padding), written to yr[b] (Q) with residual zr[b] (NULL: none). A slot
 * with vq[b] past the row (zero masks) computes and stores nothing. vmask:
 * d->vmask or an equal table. R, S, sw constant when inlined. */
DW_INLINE void dw_group(const kiln__dw_geom *d, const uint16_t *vmask, const float *w,
                        __m512 vb, const float *const *rp, const unsigned *rv, const int64_t *vq,
                        const float *const *zr, float *const *yr, const int64_t R,
                        const int64_t S, const int64_t sw) {
    const int64_t dw = d->dw, pw = d->pw;
    __m512 acc[DW_NB];
    const uint16_t *mk[DW_NB];
#pragma GCC unroll 8
    for (int b = 0; b < DW_NB; b++) {
        acc[b] = vb;
        mk[b] = vmask + vq[b] * S * 3;
    }
#pragma GCC unroll 8
    for (int64_t r = 0; r < R; r++) {
        const float *xb[DW_NB];
        __mmask16 on[DW_NB];
#pragma GCC unroll 8
        for (int b = 0; b < DW_NB; b++) {
            xb[b] = rp[b * R + r] + vq[b] * 16 * sw - pw;
            on[b] = (rv[b] >> r) & 1u ? 0xffff : 0;
        }
#pragma GCC unroll 8
        for (int64_t s = 0; s < S; s++) {
            const __m512 wv = _mm512_set1_ps(w[r * S + s]);
#pragma GCC unroll 8
            for (int b = 0; b < DW_NB; b++) {
                const uint16_t *e = mk[b] + s * 3;
                const __mmask16 m = (__mmask16)(e[0] & on[b]);
                __m512 xv = dw_load(xb[b] + s * dw, sw, m, (__mmask16)(e[1] & on[b]),
                                    (__mmask16)(e[2] & on[b]));
                acc[b] = _mm512_mask3_fmadd_ps(wv, xv, acc[b], m);
            }
        }
    }
#pragma GCC unroll 8
    for (int b = 0; b < DW_NB; b++) {
        const int64_t q0 = vq[b] * 16;
        dw_store(&d->act, acc[b], zr[b] ? zr[b] + q0 : NULL, yr[b] + q0, lanes(d->Q - q0));
    }
}

/* Rows [lo, hi) of a plane: their vectors in row-major order, DW_NB at a
 * time (several short rows share a group). pl->rows: DW_NB * R pointers. */
DW_INLINE void dw_rows(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo, int64_t hi,
                       const int64_t R, const int64_t S, const int64_t sw) {
    const int64_t Q = d->Q, nvq = (Q + 15) / 16;
    const float **rp = pl->rows;
    const __m512 vb = _mm512_set1_ps(pl->bias);
    unsigned rv[DW_NB];
    int64_t vq[DW_NB];
    const float *zr[DW_NB];
    float *yr[DW_NB];
    int nb = 0;
    for (int64_t p = lo; p < hi; p++)
        for (int64_t v = 0; v < nvq; v++) {
            rv[nb] = 0;
            for (int64_t r = 0; r < R; r++) {
                int64_t ih = p * d->sh - d->ph + r * d->dh;
                int in = ih >= 0 && ih < d->H;
                rp[nb * R + r] = in ? pl->x + ih * d->W : pl->x;
                rv[nb] |= (unsigned)in << r;
            }
            vq[nb] = v;
            zr[nb] = pl->z ? pl->z + p * Q : NULL;
            yr[nb] = pl->y + p * Q;
            if (++nb == DW_NB) {
                dw_group(d, d->vmask, pl->w, vb, rp, rv, vq, zr, yr, R, S, sw);
                nb = 0;
            }
        }
    if (!nb) return;
    for (int b = nb; b < DW_NB; b++) { /* idle slots */
        for (int64_t r = 0; r < R; r++) rp[b * R + r] = pl->x;
        rv[b] = 0;
        vq[b] = nvq;
        zr[b] = zr[0];
        yr[b] = yr[0];
    }
    dw_group(d, d->vmask, pl->w, vb, rp, rv, vq, zr, yr, R, S, sw);
}

#define DW_ROWS(name, R, S, SW)                                                               \
    static DW_ATTR void name(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo,     \
                             int64_t hi) {                                                     \
        dw_rows(d, pl, lo, hi, R, S, SW);                                                      \
    }
DW_ROWS(dw_rows3_s1, 3, 3, 1)
DW_ROWS(dw_rows3_s2, 3, 3, 2)
DW_ROWS(dw_rows5_s1, 5, 5, 1)
DW_ROWS(dw_rows5_s2, 5, 5, 2)
DW_ROWS(dw_rowsany_s1, d->R, d->S, 1)
DW_ROWS(dw_rowsany_s2, d->R, d->S, 2)
DW_ROWS(dw_rowsany, d->R, d->S, d->sw)

kiln__dw_plane_fn kiln__dw_rows_avx512_pick(const kiln__dw_geom *d) {
    const int sq3 = d->R == 3 && d->S == 3, sq5 = d->R == 5 && d->S == 5;
    if (d->sw == 1) return sq3 ? dw_rows3_s1 : sq5 ? dw_rows5_s1 : dw_rowsany_s1;
    if (d->sw == 2) return sq3 ? dw_rows3_s2 : sq5 ? dw_rows5_s2 : dw_rowsany_s2;
    return dw_rowsany;
}

DW_ATTR void kiln__dw_row_avx512(const kiln__dw_geom *d, const float *const *rows, const float *w,
                                 float bias, float *y) {
    const int64_t R = d->R, nvq = (d->Q + 15) / 16;
    if (d->Q > KILN__DW_ROW_QMAX || d->S > KILN__DW_KMAX || R > KILN__DW_KMAX) {
        kiln__dw_row_generic(d, rows, w, bias, y);
        for (int64_t q = 0; q < d->Q; q++) y[q] = kiln__act_apply(&d->act, y[q]);
        return;
    }
    uint16_t table[(KILN__DW_ROW_QMAX / 16 + DW_NB) * KILN__DW_KMAX * 3];
    const uint16_t *vmask = d->vmask;
    if (!vmask) { /* a geometry built by hand: make the table here */
        kiln__dw_row_masks(d, table);
        vmask = table;
    }
    const float *rp[DW_NB * KILN__DW_KMAX];
    unsigned rv[DW_NB];
    int64_t vq[DW_NB];
    const float *zr[DW_NB];
    float *yr[DW_NB];
    for (int b = 0; b < DW_NB; b++) {
        rv[b] = 0;
        for (int64_t r = 0; r < R; r++) {
            rp[b * R + r] = rows[r] ? rows[r] : w; /* w: any readable address */
            rv[b] |= (unsigned)(rows[r] != NULL) << r;
        }
        zr[b] = NULL;
        yr[b] = y;
    }
    for (int64_t v = 0; v < nvq; v += DW_NB) {
        for (int b = 0; b < DW_NB; b++) vq[b] = v + b < nvq ? v + b : nvq;
        dw_group(d, vmask, w, _mm512_set1_ps(bias), rp, rv, vq, zr, yr, R, d->S, d->sw);
    }
}

/* ---- flat kernel ----------------------------------------------------------------------- */

/* The whole plane, stride 2 x 2, rows of W <= 16 and 2Q <= 16: rows u and
 * u + 1 of a phase plane are 2Q consecutive floats, gathered from input rows
 * 2u + rho and 2u + 2 + rho by one two-source permute: half the permutes
 * and stores of a row at a time. */
DW_INLINE void dw_phase_fill_pairs(const kiln__dw_geom *d, const float *x, float *ph) {
    const int64_t W = d->W, Q = d->Q, HpQ = d->Hp * Q;
    const int64_t ne = (W + 1) / 2 < Q ? (W + 1) / 2 : Q, no = W / 2 < Q ? W / 2 : Q;
    int32_t ie[16], io[16];
    for (int l = 0; l < 16; l++) { /* lane l: row (l >= Q), column l mod Q */
        int second = l >= Q, q = second ? l - (int)Q : l;
        ie[l] = (second ? 16 : 0) + (2 * q < 16 ? 2 * q : 0);
        io[l] = (second ? 16 : 0) + (2 * q + 1 < 16 ? 2 * q + 1 : 0);
    }
    const __m512i pe = _mm512_loadu_si512(ie), po = _mm512_loadu_si512(io);
    const __mmask16 lw = lanes(W);
    const __mmask16 me1 = lanes(ne), me2 = (__mmask16)(lanes(Q + ne) & ~lanes(Q));
    const __mmask16 mo1 = lanes(no), mo2 = (__mmask16)(lanes(Q + no) & ~lanes(Q));
    for (int64_t rho = 0; rho < 2; rho++) {
        const int64_t rows = (d->H - rho + 1) / 2; /* input rows of parity rho */
        float *e = ph + rho * 2 * HpQ, *o = e + HpQ;
        for (int64_t u = 0; u < rows; u += 2) {
            const int two = u + 1 < rows;
            const float *xa = x + (2 * u + rho) * W;
            __m512 a = _mm512_maskz_loadu_ps(lw, xa);
            __m512 b = _mm512_maskz_loadu_ps(two ? lw : 0, xa + 2 * W);
            _mm512_mask_storeu_ps(e + u * Q, two ? me1 | me2 : me1, _mm512_permutex2var_ps(a, pe, b));
            _mm512_mask_storeu_ps(o + u * Q, two ? mo1 | mo2 : mo1, _mm512_permutex2var_ps(a, po, b));
        }
    }
}

DW_ATTR void kiln__dw_phase_fill_avx512(const kiln__dw_geom *d, const float *x, float *ph,
                                        int64_t ih0, int64_t ih1) {
    const int64_t W = d->W, Q = d->Q, sh = d->sh, sw = d->sw, HpQ = d->Hp * Q;
    if (sh == 2 && sw == 2 && W <= 16 && 2 * Q <= 16 && ih0 == 0 && ih1 == d->H) {
        dw_phase_fill_pairs(d, x, ph);
        return;
    }
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4,
                                          2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    /* per row: nfull whole vectors (16 outputs), then one tail with masks */
    const int64_t n1 = W < Q ? W : Q; /* sw 1: columns to copy */
    const int64_t ne = (W + 1) / 2 < Q ? (W + 1) / 2 : Q, no = W / 2 < Q ? W / 2 : Q; /* sw 2 */
    const int64_t nfull = sw == 1 ? n1 / 16 : (W / 32 < no / 16 ? W / 32 : no / 16);
    const int64_t t0 = nfull * 16; /* first output of the tail */
    const __mmask16 m1 = lanes(n1 - t0), la = lanes(W - 2 * t0), lb = lanes(W - 2 * t0 - 16);
    const __mmask16 me = lanes(ne - t0), mo = lanes(no - t0);
    int64_t rho = ih0 ? ih0 % sh : 0, u = ih0 ? ih0 / sh : 0;
    for (int64_t ih = ih0; ih < ih1; ih++) {
        const float *xr = x + ih * W;
        float *row = ph + rho * sw * HpQ + u * Q; /* phase (rho, 0), row u */
        if (++rho == sh) {
            rho = 0;
            u++;
        }
        if (sw == 1) {
            for (int64_t j = 0; j < t0; j += 16) _mm512_storeu_ps(row + j, _mm512_loadu_ps(xr + j));
            _mm512_mask_storeu_ps(row + t0, m1, _mm512_maskz_loadu_ps(m1, xr + t0));
        } else if (sw == 2 && W <= 16) { /* one load (permutexvar reads index mod 16) */
            __m512 a = _mm512_maskz_loadu_ps(la, xr);
            _mm512_mask_storeu_ps(row, me, _mm512_permutexvar_ps(even, a));
            _mm512_mask_storeu_ps(row + HpQ, mo, _mm512_permutexvar_ps(odd, a));
        } else if (sw == 2) {
            for (int64_t j = 0; j < t0; j += 16) {
                __m512 a = _mm512_loadu_ps(xr + 2 * j), b = _mm512_loadu_ps(xr + 2 * j + 16);
                _mm512_storeu_ps(row + j, _mm512_permutex2var_ps(a, even, b));
                _mm512_storeu_ps(row + HpQ + j, _mm512_permutex2var_ps(a, odd, b));
            }
            __m512 a = _mm512_maskz_loadu_ps(la, xr + 2 * t0);
            __m512 b = _mm512_maskz_loadu_ps(lb, xr + 2 * t0 + 16);
            _mm512_mask_storeu_ps(row + t0, me, _mm512_permutex2var_ps(a, even, b));
            _mm512_mask_storeu_ps(row + HpQ + t0, mo, _mm512_permutex2var_ps(a, odd, b));
        } else {
            for (int64_t sg = 0; sg < sw && sg < W; sg++) {
                int64_t n = (W - sg + sw - 1) / sw;
                if (n > Q) n = Q;
                for (int64_t v = 0; v < n; v++) row[sg * HpQ + v] = xr[v * sw + sg];
            }
        }
    }
}

/* Vectors [lo, hi) of the flattened plane (kiln__dw_flat_ok or d->phased:
 * then pl->x is the phase planes, already filled); lo is a multiple of DW_NB
 * and so is hi, but at the end of the plane, where the vectors past it have
 * empty store masks. full: masks from d->tapmask, tap offsets from
 * d->tapoff; else (direct) column masks from d->colmask and row masks from
 * the flat index. R, S, full constant when inlined. */
DW_INLINE void dw_flat(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo, int64_t hi,
                       const int64_t R, const int64_t S, const int full) {
    const int64_t W = d->W, HW = d->H * W, PQ = d->P * d->Q, V = d->period, RS = R * S;
    const int64_t dh = d->dh, ph = d->ph, dw = d->dw, pw = d->pw;
    const float *x = pl->x, *w = pl->w, *z = pl->z;
    float *y = pl->y;
    const __m512 vb = _mm512_set1_ps(pl->bias);
    int64_t vm = full ? 0 : lo % V; /* period index of vector v */
    for (int64_t v = lo; v < hi; v += DW_NB) {
        __m512 acc[DW_NB];
        const uint16_t *cm[DW_NB];
        const uint16_t *tm = full ? d->tapmask + v * RS : NULL;
#pragma GCC unroll 8
        for (int b = 0; b < DW_NB; b++) {
            acc[b] = vb;
            if (!full) {
                int64_t k = vm + b;
                while (k >= V) k -= V;
                cm[b] = d->colmask + k * S;
            }
        }
        const int64_t i0 = v * 16;
#pragma GCC unroll 8
        for (int64_t r = 0; r < R; r++) {
            const int64_t roff = (r * dh - ph) * W;
            /* lanes whose input row is inside: flat input index in [0, HW) */
            __mmask16 rm[DW_NB];
            if (!full) {
                const int inside = i0 + roff >= 0 && i0 + DW_NB * 16 + roff <= HW;
#pragma GCC unroll 8
                for (int b = 0; b < DW_NB; b++)
                    rm[b] = inside ? 0xffff
                                   : lane_range(-roff - i0 - 16 * b, HW - roff - i0 - 16 * b);
            }
#pragma GCC unroll 8
            for (int64_t s = 0; s < S; s++) {
                const __m512 wv = _mm512_set1_ps(w[r * S + s]);
                const float *xs = x + i0 + (full ? d->tapoff[r * S + s] : roff + s * dw - pw);
#pragma GCC unroll 8
                for (int b = 0; b < DW_NB; b++) {
                    const __mmask16 m = full ? tm[b * RS + r * S + s]
                                             : (__mmask16)(cm[b][s] & rm[b]);
                    acc[b] = _mm512_mask3_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xs + 16 * b),
                                                   acc[b], m);
                }
            }
        }
#pragma GCC unroll 8
        for (int b = 0; b < DW_NB; b++) {
            const int64_t ib = i0 + 16 * b;
            dw_store(&d->act, acc[b], z ? z + ib : NULL, y + ib, lanes(PQ - ib));
        }
        if (!full) {
            vm += DW_NB;
            while (vm >= V) vm -= V;
        }
    }
}

#define DW_FLAT(name, R, S, FULL)                                                             \
    static DW_ATTR void name(const kiln__dw_geom *d, const kiln__dw_plane *pl, int64_t lo,     \
                             int64_t hi) {                                                     \
        dw_flat(d, pl, lo, hi, R, S, FULL);                                                    \
    }
DW_FLAT(dw_flat3, 3, 3, 0)
DW_FLAT(dw_flat5, 5, 5, 0)
DW_FLAT(dw_flatany, d->R, d->S, 0)
DW_FLAT(dw_flat3_full, 3, 3, 1)
DW_FLAT(dw_flat5_full, 5, 5, 1)
DW_FLAT(dw_flatany_full, d->R, d->S, 1)

kiln__dw_plane_fn kiln__dw_flat_avx512_pick(const kiln__dw_geom *d) {
    const int sq3 = d->R == 3 && d->S == 3, sq5 = d->R == 5 && d->S == 5;
    if (d->tapmask) return sq3 ? dw_flat3_full : sq5 ? dw_flat5_full : dw_flatany_full;
    return sq3 ? dw_flat3 : sq5 ? dw_flat5 : dw_flatany;
}

#endif
