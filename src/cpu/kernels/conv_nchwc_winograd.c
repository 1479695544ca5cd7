/* src/cpu/kernels/conv_nchwc_winograd.c: Winograd F(2x2,3x3) and F(4x4,3x3)
 * in the blocked layout, the algorithms conv_nchwc_winograd_f2 / _f4 of
 * kiln.ConvNCHWc (src/ops/nchwc.h) for 3x3, stride-1, undilated, group-1
 * layers with constant weights and a blocked input; f32 on AVX-512.
 *
 * As in winograd.c (the NCHW algorithms, which explain the method), every
 * m x m output tile is A^T [ U .* (B^T d B) ] A summed over the input
 * channels, regrouped as one product per transform point t (T = (m+2)^2):
 *     M_t (tiles, K) = V_t (tiles, C) x U_t (C, K).
 * In the blocked layout a pixel's 16 channels are one vector, so the
 * transforms run on whole vectors (x86/winograd_nchwc_avx512.c) and V_t and
 * M_t are themselves blocked images of one row of tiles: V (T, CB, nt, 16),
 * M (T, KB, nt, 16). Each product M_t = V_t U_t is then exactly a 1x1
 * convolution over a row of nt pixels, which the direct kernel of
 * conv_nchwc runs (kiln__nchwc_conv_row_avx512, 14-pixel x 32-channel
 * register tiles) with U_t packed once in prepare as its 1x1 weights, per
 * pair of output blocks: U (T, pairs, C, 32). conv_nchwc_winograd_f2_bf16
 * (bf16 sessions) runs them on the bf16 kernel instead
 * (kiln__nchwc_conv_row_bf16_avx512), U in bf16 channel pairs
 * (T, pairs, C/2, 32); only F2: F4's transform coefficients amplify bf16
 * rounding past the 1e-2 bound, as in winograd.c.
 *
 * Work: tiles are numbered over the whole batch (small late-layer maps of
 * several images share a block) and cut into blocks of nt tiles, V and M of
 * a block sized for the cache (BLOCK_BYTES); items are (block, chunk of
 * output block pairs), the chunk varying fastest, with as few chunks as
 * spread the items over the threads (kiln__conv_mchunks). A thread runs
 * its contiguous items: the input transform of a block once, then for its
 * chunk the T products and the output transform with bias, residual and
 * activation. No barrier (KILN_OPF_PARALLEL).
 *
 * Accuracy as winograd.c's (the unit test bounds it against the reference:
 * F4 a few 1e-6 normalized, F2 under 1e-6).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_nchwc.h"
#include "cpu/kernels/winograd.h"

#define PAIR 32                       /* output channels per packed unit */
#define ROW_TILE 14                   /* pixels per register tile of the direct kernel */
#define NT_MAX 56                     /* tiles per block at most */
#define BLOCK_BYTES (2 * 1024 * 1024) /* V and M of one block */

typedef struct wnc {
    kiln__nchwc_conv g;
    kiln__wino_nchwc w;  /* the transforms' view */
    kiln__nchwc_kern pk; /* the products: a 1x1 conv of C -> KB*16 channels over nt pixels */
    int T;
    int workers;          /* threads the scratch has slices for */
    int64_t tiles, nblk;  /* tiles of the batch, blocks of w.nt tiles */
    int64_t units, nuch;  /* output block pairs, chunks of them */
    int64_t unit_w;       /* floats (pairs) of packed U_t per pair: CB*16*32 (CB*8*32) */
    int bf16;             /* products in bf16 (U in channel pairs) */
    void *u;              /* (T, units, unit_w) floats, or bf16 pairs */
    float *bias;          /* KB*16, zeros past K or without B */
    float zeros[PAIR];    /* the products' bias */
    size_t off_m, slice;  /* scratch: per thread V then M */
} wnc;

static void wnc_release(void *kstate) {
    wnc *s = kstate;
    if (!s) return;
    kiln__aligned_free(s->u);
    kiln__aligned_free(s->bias);
    free(s);
}

/* Weights w (K, C, 3, 3) into s->u (zeroed), one output pair at a time. */
static kiln_status pack_u(wnc *s, const float *w) {
    const kiln__nchwc_conv *g = &s->g;
    const int64_t ts = s->units * s->unit_w;
    float *tmp = NULL; /* bf16: pair u's U (T, C, 32) in f32 first */
    if (s->bf16 && !(tmp = malloc((size_t)s->T * (size_t)g->C * PAIR * sizeof(float))))
        return kiln__err(KILN_E_NOMEM, "conv_nchwc_winograd: out of memory for the weights");
    for (int64_t u = 0; u < s->units; u++) { /* pair u's U_t as 1x1 weights [c][32] */
        const int64_t k0 = u * PAIR, nk = g->K - k0 < PAIR ? g->K - k0 : PAIR;
        if (!s->bf16) {
            kiln__wino_weights(s->w.m, w + k0 * g->C * 9, nk, g->C,
                               (float *)s->u + u * s->unit_w, ts, PAIR);
            continue;
        }
        kiln__wino_weights(s->w.m, w + k0 * g->C * 9, nk, g->C, tmp, g->C * PAIR, PAIR);
        uint16_t *dst = s->u; /* pair word of (c/2, lane): low half the even channel */
        for (int t = 0; t < s->T; t++)
            for (int64_t c = 0; c < g->C; c++)
                for (int64_t l = 0; l < nk; l++)
                    dst[2 * (t * ts + u * s->unit_w + (c / 2) * PAIR + l) + c % 2] =
                        kiln_f32_to_bf16(tmp[(t * g->C + c) * PAIR + l]);
    }
    free(tmp);
    return KILN_OK;
}

static kiln_status wnc_prepare(kiln__kctx *c, int m, int bf16) {
    if (!kiln__cpu_has_avx512f() || !c->in[1]->data || (kiln__in(c, 2) && !c->in[2]->data))
        return KILN_E_UNSUPPORTED;
#ifndef KILN__NCHWC_X86_BF16
    if (bf16) return KILN_E_UNSUPPORTED;
#endif
    if (bf16 && kiln__conv_accept_compute(c, KILN__GEMM_BF16) != KILN_OK) return KILN_E_UNSUPPORTED;
    kiln__nchwc_conv g;
    KILN__TRY(kiln__nchwc_conv_read(c, &g));
    if (g.group != 1 || !g.input_blocked || g.R != 3 || g.S != 3 || g.sh != 1 || g.sw != 1 ||
        g.dh != 1 || g.dw != 1 || g.N * g.P * g.Q * g.C == 0)
        return kiln__err(KILN_E_UNSUPPORTED,
                         "conv_nchwc_winograd: 3x3 stride-1 group-1 blocked layers only");
    wnc *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "conv_nchwc_winograd: out of memory");
    s->g = g;
    s->bf16 = bf16;
    s->T = (m + 2) * (m + 2);
    kiln__wino_nchwc *w = &s->w;
    *w = (kiln__wino_nchwc){.m = m, .CB = g.CB, .KB = g.KB, .H = g.H, .W = g.W, .P = g.P,
                            .Q = g.Q, .ph = g.ph, .pw = g.pw, .th = (g.P + m - 1) / m,
                            .tw = (g.Q + m - 1) / m, .act = g.act};
    const int64_t tail = g.K % 16;
    w->last_lanes = (uint16_t)(tail ? (1u << tail) - 1u : 0xffffu);
    s->tiles = g.N * w->th * w->tw;
    s->units = (g.KB + 1) / 2;
    s->unit_w = g.CB * (bf16 ? 8 : 16) * PAIR;

    /* blocks: as many tiles as fit BLOCK_BYTES (whole register tiles), then
     * evened out */
    const double tile_bytes = 4.0 * s->T * 16.0 * (double)(g.CB + g.KB);
    int64_t nt = (int64_t)(BLOCK_BYTES / tile_bytes) / ROW_TILE * ROW_TILE;
    if (nt < ROW_TILE) nt = ROW_TILE;
    if (nt > NT_MAX) nt = NT_MAX;
    s->nblk = (s->tiles + nt - 1) / nt;
    w->nt = (s->tiles + s->nblk - 1) / s->nblk;
    s->workers = kiln__conv_nth(c);
    s->nuch = kiln__conv_mchunks(s->nblk, s->units, s->workers, 1);

    /* the products: 1x1, C -> KB*16 channels, one row of nt pixels */
    kiln__nchwc_conv *pg = &s->pk.g;
    *pg = (kiln__nchwc_conv){.N = 1, .C = g.C, .K = g.KB * 16, .CB = g.CB, .KB = g.KB, .H = 1,
                             .W = w->nt, .P = 1, .Q = w->nt, .R = 1, .S = 1, .sh = 1, .sw = 1,
                             .dh = 1, .dw = 1, .input_blocked = 1};
    kiln__nchwc_kern_init(&s->pk, 0);

    const size_t vbytes = (size_t)s->T * (size_t)(g.CB * w->nt * 16) * sizeof(float);
    const size_t mbytes = (size_t)s->T * (size_t)(g.KB * w->nt * 16) * sizeof(float);
    s->off_m = kiln__conv_align64(vbytes);
    s->slice = s->off_m + kiln__conv_align64(mbytes);
    c->scratch_bytes = s->slice * (size_t)s->workers;
    c->flops = 2.0 * g.N * g.K * g.P * g.Q * g.C * 9;
    if (!c->probe) {
        const size_t ubytes = (size_t)s->T * (size_t)(s->units * s->unit_w) * 4;
        s->u = kiln__aligned_alloc(ubytes);
        s->bias = kiln__aligned_alloc((size_t)g.KB * 16 * sizeof(float));
        if (!s->u || !s->bias) {
            wnc_release(s);
            return kiln__err(KILN_E_NOMEM, "conv_nchwc_winograd: out of memory for the weights");
        }
        memset(s->u, 0, ubytes);
        kiln_status st = pack_u(s, c->in[1]->data);
        if (st != KILN_OK) {
            wnc_release(s);
            return st;
        }
        const float *b = kiln__in(c, 2) ? c->in[2]->data : NULL;
        for (int64_t k = 0; k < g.KB * 16; k++) s->bias[k] = b && k < g.K ? b[k] : 0.0f;
    }
    c->kstate = s;
    return KILN_OK;
}

static kiln_status wnc_f2_prepare(kiln__kctx *c) { return wnc_prepare(c, 2, 0); }
static kiln_status wnc_f4_prepare(kiln__kctx *c) { return wnc_prepare(c, 4, 0); }
static kiln_status wnc_f2_bf16_prepare(kiln__kctx *c) { return wnc_prepare(c, 2, 1); }

static double wnc_cost(const kiln__kctx *c) {
    const wnc *s = c->kstate;
    const kiln__nchwc_conv *g = &s->g;
    const double T = s->T, tiles = (double)s->tiles, nt = (double)s->w.nt;
    const double Cp = 16.0 * g->CB, Kp = 16.0 * g->KB;
    /* the products at the direct kernel's efficiency (conv_nchwc's 0.75)
     * times the fill of its register tiles along a block's row: a tile of r
     * pixels takes about (r + 2) / 16 of a whole tile's (14) time (the two
     * weight loads per input channel); U streamed from memory once per
     * block, while the products run (read in whole 32-channel panels,
     * sequentially: 27 GB/s measured on ResNet-50's layer4 at batch 1) */
    const double products = 2.0 * tiles * T * (double)g->C * Kp;
    const int64_t rem = s->w.nt % ROW_TILE;
    const double slots = 16.0 * (double)(s->w.nt / ROW_TILE) + (rem ? rem + 2.0 : 0.0);
    const double fill = 16.0 * nt / (ROW_TILE * slots);
    const double ubytes = (s->bf16 ? 2.0 : 4.0) * s->nblk * T * Cp * Kp;
    const double tp = kiln__cost_seconds(c, products, 0.75 * fill * (s->bf16 ? 1.8 : 1.0), 0.0);
    const double tu = kiln__cost_seconds(c, 0.0, 1.0, ubytes);
    /* transforms: vector operations per point and block, input and output
     * (F2 2 and 1.2, F4 5 and 2.2, counted from the 1-D formulas), each about
     * a cycle, as 32 flops at half the peak (0.12 ms measured besides the
     * products on ResNet-50's layer1 at batch 1, F4); and the traffic of X,
     * Y (Z) and of V and M (mostly cache) */
    const double in_ops = s->w.m == 2 ? 2.0 : 5.0, out_ops = s->w.m == 2 ? 1.2 : 2.2;
    const double xform = 32.0 * tiles * T * (in_ops * g->CB + out_ops * g->KB);
    const double io = 4.0 * (double)g->N * 16.0 *
                      (g->CB * g->H * g->W + g->KB * g->P * g->Q * (g->has_z ? 2.0 : 1.0));
    const double vm = 2.0 * 4.0 * tiles * T * (Cp + Kp);
    return (tp > tu ? tp : tu) + kiln__cost_seconds(c, xform, 0.5, io + 0.25 * vm);
}

static kiln_status wnc_run(kiln__kctx *c) {
#ifdef KILN__NCHWC_X86
    const wnc *s = c->kstate;
    const kiln__nchwc_conv *g = &s->g;
    const kiln__wino_nchwc *w = &s->w;
    const int workers = c->nth < s->workers ? c->nth : s->workers;
    if (c->ith >= workers) return KILN_OK;
    const float *x = c->in[0]->data, *z = kiln__in(c, 3) ? c->in[3]->data : NULL;
    float *y = c->out[0]->data;
    char *slice = (char *)c->scratch + (size_t)c->ith * s->slice;
    float *V = (float *)slice, *M = (float *)(slice + s->off_m);
    const int64_t vpoint = g->CB * w->nt * 16, mpoint = g->KB * w->nt * 16;
    int64_t lo, hi, have = -1;
    kiln__split(s->nblk * s->nuch, c->ith, workers, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        const int64_t b = it / s->nuch, ch = it % s->nuch;
        const int64_t i0 = b * w->nt, i1 = i0 + w->nt < s->tiles ? i0 + w->nt : s->tiles;
        if (b != have) { /* this thread's previous item may have had the block */
            kiln__wino_nchwc_in_avx512(w, x, i0, i1, V);
            have = b;
        }
        int64_t u0, u1;
        kiln__conv_chunk(s->units, 1, ch, s->nuch, &u0, &u1);
        for (int t = 0; t < s->T; t++)
            for (int64_t u = u0; u < u1; u++) {
                const int64_t kb0 = 2 * u, wi = (t * s->units + u) * s->unit_w;
                const int nb = g->KB - kb0 < 2 ? 1 : 2;
                float *mt = M + t * mpoint + kb0 * w->nt * 16;
#ifdef KILN__NCHWC_X86_BF16
                if (s->bf16) {
                    kiln__nchwc_conv_row_bf16_avx512(&s->pk, V + t * vpoint,
                                                     (const uint32_t *)s->u + wi, s->zeros, NULL,
                                                     mt, kb0, nb, 0, 0, i1 - i0);
                    continue;
                }
#endif
                kiln__nchwc_conv_row_avx512(&s->pk, V + t * vpoint, (const float *)s->u + wi,
                                            s->zeros, NULL, mt, kb0, nb, 0, s->pk.g.CB, 0, 0,
                                            i1 - i0);
            }
        const int64_t kb1 = 2 * u1 < g->KB ? 2 * u1 : g->KB;
        kiln__wino_nchwc_out_avx512(w, M, s->bias, z, y, i0, i1, 2 * u0, kb1);
    }
    return KILN_OK;
#else
    (void)c;
    return kiln__err(KILN_E_UNSUPPORTED, "conv_nchwc_winograd needs AVX-512");
#endif
}

#define WNC_ALGO(name, prep)                                                               \
    const kiln__algo kiln__algo_##name = {#name,         "kiln",   "ConvNCHWc",             \
                                          KILN_OPF_PARALLEL, prep, wnc_cost, wnc_run, wnc_release};
WNC_ALGO(conv_nchwc_winograd_f2, wnc_f2_prepare)
WNC_ALGO(conv_nchwc_winograd_f4, wnc_f4_prepare)
WNC_ALGO(conv_nchwc_winograd_f2_bf16, wnc_f2_bf16_prepare)
