/* src/cpu/kernels/conv_dw_nchwc.c: kiln.ConvDwNCHWc (src/ops/nchwc.h), a
 * pointwise convolution, the depthwise one reading it and optionally the
 * pointwise projection after that, on AVX-512: conv_dw_nchwc (f32) and
 * conv_dw_nchwc_bf16 (the pointwise products in bf16, as conv_nchwc_bf16;
 * the depthwise taps stay f32).
 *
 * Unfused, MobileNetV2's expansion writes a tensor six times its input
 * (features.2 at batch 8: 38 MB) that the depthwise layer reads straight
 * back, both from DRAM. Here the pointwise output T lives only as a band of
 * rows in a per-thread buffer in L2: for a band of output rows [p0, p1) the
 * depthwise layer reads input rows [p0*sh - ph, (p1-1)*sh - ph + (R-1)*dh]
 * (clipped to the image); those rows of T are made by the pointwise row
 * kernel (the rows flattened into one row of pixels) and the band's output
 * by the depthwise row kernel, both the tiles of conv_nchwc
 * (x86/conv_nchwc_avx512.c), pointed at the buffer through their strides
 * (kiln__nchwc_kern xcb, yblock). The next band of the same image keeps the
 * rows both bands read (moved to the buffer's front) and makes only the
 * new ones, so each row of T is made once per thread.
 *
 * With a projection (W3), the band's depthwise output D goes to a second
 * buffer, and the projection's row kernel (the band's rows flattened) reads
 * it there and writes the band's rows of Y.
 *
 * Depthwise output block kb needs only block kb of T, so without a
 * projection the pointwise block pairs are cut into groups, each with its
 * depthwise blocks: items are (image, pair group, band), the band varying
 * fastest, and thread ith runs the contiguous items kiln__split gives it
 * (KILN_OPF_PARALLEL). There are as few groups as give every thread
 * ITEMS_PER_THREAD items; the band is as tall as lets the buffer (the
 * group's blocks of T) fit kiln__conv_dw_buf_bytes. A projection needs
 * every block of D: one group, and bands short enough (down to one row)
 * to give every thread ITEMS_PER_THREAD items where the buffers allow.
 *
 * Scratch: per thread, T's buffer [block of the group][row][W][16], then
 * with a projection D's [block][band row][Q][16].
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_nchwc.h"

/* a thread's band buffers (T's, and D's with a projection): in L2 with the
 * band's input rows (tests set less) */
size_t kiln__conv_dw_buf_bytes = 256 * 1024;
#define ITEMS_PER_THREAD 4

typedef struct dw_state {
    kiln__nchwc_kern pw, dw, pj; /* full-image geometry; bands run on copies */
    int bf16, project;           /* project: pj (W3) is there */
    void *w1, *w3;           /* pointwise and projection packed (conv_nchwc.h), float or bf16 pairs */
    float *b1, *w2, *b2, *b3; /* biases; depthwise packed [kb][r][s][16] */
    int64_t units, unit_w1;  /* pointwise block pairs, words per pair */
    int64_t units3, unit_w3; /* the same for the projection */
    size_t off_d;            /* D's buffer in a thread's slice (bytes) */
    int64_t groups, gunits;  /* pair groups, pairs per group (the last may have fewer) */
    int64_t band, nbands;    /* output rows per band, bands per image */
    int64_t rows;            /* buffer rows: the input rows of the tallest band */
    int64_t x_image, y_image;
    size_t slice;            /* scratch bytes per thread */
    int workers;             /* threads the scratch has slices for */
} dw_state;

static void dw_release(void *kstate) {
    dw_state *s = kstate;
    if (!s) return;
    kiln__aligned_free(s->w1);
    kiln__aligned_free(s->w3);
    kiln__aligned_free(s->b3);
    kiln__aligned_free(s->b1);
    kiln__aligned_free(s->w2);
    kiln__aligned_free(s->b2);
    free(s);
}

/* Input rows [*i0, *i1) that output rows [p0, p1) of the depthwise layer read. */
static void band_rows(const kiln__nchwc_conv *d, int64_t p0, int64_t p1, int64_t *i0, int64_t *i1) {
    int64_t lo = p0 * d->sh - d->ph, hi = (p1 - 1) * d->sh - d->ph + (d->R - 1) * d->dh + 1;
    if (lo < 0) lo = 0;
    if (hi > d->H) hi = d->H;
    if (hi < lo) hi = lo;
    *i0 = lo;
    *i1 = hi;
}

/* Bytes of a thread's buffers for bands of `band` rows and `gunits` pairs. */
static size_t band_bytes(const dw_state *s, int64_t band, int64_t gunits) {
    const kiln__nchwc_conv *d = &s->dw.g;
    const int64_t rows = (band - 1) * d->sh + (d->R - 1) * d->dh + 1;
    return (size_t)(2 * gunits * 16) * 4 * (size_t)(rows * d->W + (s->project ? band * d->Q : 0));
}

/* Groups and band for nth threads: as few groups as give every thread
 * ITEMS_PER_THREAD items (one with a projection), the tallest band whose
 * buffers fit kiln__conv_dw_buf_bytes (with a projection, shorter still
 * while there are too few items). */
static void plan_bands(dw_state *s, int nth) {
    const kiln__nchwc_conv *d = &s->dw.g;
    const int64_t want = (int64_t)nth * ITEMS_PER_THREAD;
    for (s->groups = 1;; s->groups++) {
        s->gunits = (s->units + s->groups - 1) / s->groups;
        int64_t band = d->P;
        while (band > 1 && band_bytes(s, band, s->gunits) > kiln__conv_dw_buf_bytes) band--;
        if (s->project)
            while (band > 1 && d->N * ((d->P + band - 1) / band) < want) band--;
        s->band = band;
        s->nbands = (d->P + band - 1) / band;
        if (s->project || d->N * s->nbands * s->groups >= want || s->gunits == 1) break;
    }
    s->groups = (s->units + s->gunits - 1) / s->gunits;
    int64_t i0, i1;
    s->rows = 0;
    for (int64_t b = 0; b < s->nbands; b++) {
        const int64_t p0 = b * s->band, p1 = p0 + s->band < d->P ? p0 + s->band : d->P;
        band_rows(d, p0, p1, &i0, &i1);
        if (i1 - i0 > s->rows) s->rows = i1 - i0;
    }
    if (s->rows < 1) s->rows = 1;
    s->off_d = kiln__conv_align64((size_t)(2 * s->gunits * s->rows * d->W * 16) * sizeof(float));
    s->slice = s->off_d;
    if (s->project)
        s->slice += kiln__conv_align64((size_t)(d->KB * s->band * d->Q * 16) * sizeof(float));
}

static kiln_status dw_prepare(kiln__kctx *c, int bf16) {
    if (!kiln__cpu_has_avx512f()) return KILN_E_UNSUPPORTED;
    for (int i = 1; i < 7; i++)
        if (kiln__in(c, i) && !c->in[i]->data) return KILN_E_UNSUPPORTED;
#ifndef KILN__NCHWC_X86_BF16
    if (bf16) return KILN_E_UNSUPPORTED;
#endif
    if (bf16 && kiln__conv_accept_compute(c, KILN__GEMM_BF16) != KILN_OK) return KILN_E_UNSUPPORTED;
    dw_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status st = kiln__nchwc_convdw_read(c, &s->pw.g, &s->dw.g, &s->pj.g);
    if (st != KILN_OK) {
        free(s);
        return st;
    }
    s->bf16 = bf16;
    s->project = s->pj.g.K > 0;
    const kiln__nchwc_conv *p = &s->pw.g, *d = &s->dw.g, *j = &s->pj.g;
    kiln__nchwc_kern_init(&s->pw, 0);
    kiln__nchwc_kern_init(&s->dw, 0);
    s->x_image = p->CB * 16 * p->H * p->W;
    s->y_image = (s->project ? j->KB : d->KB) * 16 * d->P * d->Q;
    c->flops = 2.0 * p->N * p->K * p->H * p->W * p->C + 2.0 * d->N * d->K * d->P * d->Q * d->R * d->S;
    if (s->project) {
        kiln__nchwc_kern_init(&s->pj, 0);
        kiln__nchwc_packing(j, bf16, &s->units3, &s->unit_w3);
        c->flops += 2.0 * j->N * j->K * j->P * j->Q * j->C;
    }
    int64_t units2, unit_w2;
    kiln__nchwc_packing(p, bf16, &s->units, &s->unit_w1);
    kiln__nchwc_packing(d, 0, &units2, &unit_w2);
    s->workers = kiln__conv_nth(c);
    plan_bands(s, s->workers);
    c->scratch_bytes = s->slice * (size_t)s->workers;
    if (!c->probe) {
        const size_t w1 = (size_t)(s->units * s->unit_w1) * 4, w2 = (size_t)(units2 * unit_w2) * 4;
        const size_t bias = (size_t)p->KB * 16 * sizeof(float);
        s->w1 = kiln__aligned_alloc(w1);
        s->w2 = kiln__aligned_alloc(w2);
        s->b1 = kiln__aligned_alloc(bias);
        s->b2 = kiln__aligned_alloc(bias);
        if (!s->w1 || !s->w2 || !s->b1 || !s->b2) {
            dw_release(s);
            return KILN_E_NOMEM;
        }
        memset(s->w1, 0, w1);
        memset(s->w2, 0, w2);
        kiln__nchwc_pack(p, bf16, c->in[1]->data, c->in[2]->data, s->w1, s->b1);
        kiln__nchwc_pack(d, 0, c->in[3]->data, c->in[4]->data, s->w2, s->b2);
        if (s->project) {
            const size_t w3 = (size_t)(s->units3 * s->unit_w3) * 4;
            s->w3 = kiln__aligned_alloc(w3);
            s->b3 = kiln__aligned_alloc((size_t)j->KB * 16 * sizeof(float));
            if (!s->w3 || !s->b3) {
                dw_release(s);
                return KILN_E_NOMEM;
            }
            memset(s->w3, 0, w3);
            kiln__nchwc_pack(j, bf16, c->in[5]->data, c->in[6]->data, s->w3, s->b3);
        }
    }
    c->kstate = s;
    return KILN_OK;
}

static double dw_cost(const kiln__kctx *c) {
    const dw_state *s = c->kstate;
    const kiln__nchwc_conv *p = &s->pw.g;
    const kiln__nchwc_conv *d = &s->dw.g;
    const double dw = 2.0 * d->N * d->K * d->P * d->Q * d->R * d->S, pw = c->flops - dw;
    const double bytes = 4.0 * (p->N * (s->x_image + s->y_image * (s->pj.g.has_z ? 2 : 1)) +
                                s->units * s->unit_w1 + s->units3 * s->unit_w3);
    return kiln__cost_seconds(c, pw, s->bf16 ? 0.75 * 1.8 : 0.75, bytes) +
           kiln__cost_seconds(c, dw, 0.3, 0);
}

#ifdef KILN__NCHWC_X86
/* Pointwise convolution `base` (full-image geometry) over npix pixels as
 * one row: input x (blocks xcb floats apart), pairs [u0, u1) of packed
 * weights w (unit_w words each) and bias into y (blocks yblock apart; the
 * pair at block 2*(u - u0)), residual z (as y) or NULL. */
static void pointwise_rows(const dw_state *s, const kiln__nchwc_kern *base, const float *x,
                           int64_t xcb, const void *w, int64_t unit_w, const float *bias,
                           const float *z, float *y, int64_t yblock, int64_t u0, int64_t u1,
                           int64_t npix) {
    if (npix <= 0) return;
    kiln__nchwc_kern k = *base;
    k.g.H = k.g.P = 1;
    k.g.W = k.g.Q = npix;
    k.xcb = xcb;
    k.xrow = npix * 16;
    k.qlo = 0;
    k.qhi = npix;
    k.yblock = yblock;
    for (int64_t u = u0; u < u1; u++) {
        const int64_t kb0 = 2 * u, off = (kb0 - 2 * u0) * yblock;
        const int nb = k.g.KB - kb0 < 2 ? 1 : 2;
        const float *zu = z ? z + off : NULL;
#ifdef KILN__NCHWC_X86_BF16
        if (s->bf16) {
            kiln__nchwc_conv_row_bf16_avx512(&k, x, (const uint32_t *)w + u * unit_w, bias + kb0 * 16,
                                             zu, y + off, kb0, nb, 0, 0, npix);
            continue;
        }
#endif
        kiln__nchwc_conv_row_avx512(&k, x, (const float *)w + u * unit_w, bias + kb0 * 16, zu,
                                    y + off, kb0, nb, 0, k.g.CB, 0, 0, npix);
    }
}

/* Rows [i0, i1) of T, pairs [u0, u1), into T's buffer rows from `at`. */
static void make_rows(const dw_state *s, const float *x, float *buf, int64_t u0, int64_t u1,
                      int64_t i0, int64_t i1, int64_t at) {
    const int64_t W = s->pw.g.W;
    pointwise_rows(s, &s->pw, x + i0 * W * 16, s->pw.xcb, s->w1, s->unit_w1, s->b1, NULL,
                   buf + at * W * 16, s->rows * W * 16, u0, u1, (i1 - i0) * W);
}
#endif

static kiln_status dw_run(kiln__kctx *c) {
#ifdef KILN__NCHWC_X86
    const dw_state *s = c->kstate;
    const kiln__nchwc_conv *d = &s->dw.g;
    const int workers = c->nth < s->workers ? c->nth : s->workers;
    if (c->ith >= workers) return KILN_OK;
    float *buf = (float *)((char *)c->scratch + (size_t)c->ith * s->slice);
    const int64_t W = d->W, RS = d->R * d->S, plane = s->rows * W * 16;
    int64_t lo, hi, held_n = -1, held_g = -1, h0 = 0, h1 = 0; /* rows [h0, h1) of T in buf */
    kiln__split(d->N * s->groups * s->nbands, c->ith, workers, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        const int64_t b = it % s->nbands, grp = it / s->nbands % s->groups;
        const int64_t n = it / (s->nbands * s->groups);
        const int64_t u0 = grp * s->gunits, u1 = u0 + s->gunits < s->units ? u0 + s->gunits : s->units;
        const int64_t kb0 = 2 * u0, kb1 = 2 * u1 < d->KB ? 2 * u1 : d->KB;
        const int64_t p0 = b * s->band, p1 = p0 + s->band < d->P ? p0 + s->band : d->P;
        int64_t i0, i1;
        band_rows(d, p0, p1, &i0, &i1);
        const float *x = (const float *)c->in[0]->data + n * s->x_image;
        if (n == held_n && grp == held_g && h0 <= i0 && i0 < h1 && h1 <= i1) {
            if (i0 > h0) /* keep rows [i0, h1): to the front */
                for (int64_t kb = kb0; kb < kb1; kb++)
                    memmove(buf + (kb - kb0) * plane, buf + (kb - kb0) * plane + (i0 - h0) * W * 16,
                            (size_t)((h1 - i0) * W * 16) * sizeof(float));
            make_rows(s, x, buf, u0, u1, h1, i1, h1 - i0);
        } else {
            make_rows(s, x, buf, u0, u1, i0, i1, 0);
        }
        held_n = n;
        held_g = grp;
        h0 = i0;
        h1 = i1;
        kiln__nchwc_kern k = s->dw; /* the band: input rows [i0, i1) in the buffer */
        k.g.H = i1 - i0;
        k.g.ph = d->ph + i0 - p0 * d->sh;
        k.xcb = plane;
        float *y = (float *)c->out[0]->data + n * s->y_image + p0 * d->Q * 16;
        float *dbuf = (float *)((char *)buf + s->off_d);
        if (s->project) k.yblock = s->band * d->Q * 16; /* into D's buffer */
        for (int64_t kb = kb0; kb < kb1; kb++)
            for (int64_t p = 0; p < p1 - p0; p++)
                kiln__nchwc_dw_row_avx512(&k, buf + (kb - kb0) * plane, s->w2 + kb * RS * 16,
                                          s->b2 + kb * 16, NULL,
                                          (s->project ? dbuf : y) + kb * k.yblock, kb, p, 0, d->Q);
        if (s->project) {
            const float *z = kiln__in(c, 7) ? (const float *)c->in[7]->data + n * s->y_image +
                                                  p0 * d->Q * 16
                                            : NULL;
            pointwise_rows(s, &s->pj, dbuf, k.yblock, s->w3, s->unit_w3, s->b3, z, y,
                           s->pj.yblock, 0, s->units3, (p1 - p0) * d->Q);
        }
    }
    return KILN_OK;
#else
    (void)c;
    return kiln__err(KILN_E_UNSUPPORTED, "conv_dw_nchwc needs AVX-512");
#endif
}

static kiln_status dw_f32_prepare(kiln__kctx *c) { return dw_prepare(c, 0); }
static kiln_status dw_bf16_prepare(kiln__kctx *c) { return dw_prepare(c, 1); }

const kiln__algo kiln__algo_conv_dw_nchwc = {"conv_dw_nchwc",   "kiln",         "ConvDwNCHWc",
                                             KILN_OPF_PARALLEL, dw_f32_prepare, dw_cost,
                                             dw_run,            dw_release};
const kiln__algo kiln__algo_conv_dw_nchwc_bf16 = {"conv_dw_nchwc_bf16", "kiln",          "ConvDwNCHWc",
                                                  KILN_OPF_PARALLEL,    dw_bf16_prepare, dw_cost,
                                                  dw_run,               dw_release};
