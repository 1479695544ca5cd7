/* src/cpu/kernels/conv_nchwc.c: the direct algorithms of kiln.ConvNCHWc
 * (src/ops/nchwc.h) on AVX-512 (kernels in x86/conv_nchwc_avx512.c and
 * conv_nchwc_bf16_avx512.c, see conv_nchwc.h): conv_nchwc, f32; and
 * conv_nchwc_bf16, bf16 products with f32 sums (bf16 sessions on CPUs with
 * AVX512_BF16; group 1, blocked input; activations stay f32 in memory and
 * are rounded as the tiles read them).
 *
 * prepare packs the constant weights once (group 1: per pair of output
 * blocks, [cb][r][s][ci][32], in bf16 [cb][r][s][ci/2][32] channel pairs;
 * depthwise: [kb][r][s][16]) and the bias padded to whole blocks, and
 * flattens 1x1 stride-1 unpadded layers into one row of H*W pixels (long
 * tiles for small images too).
 *
 * Threads (KILN_OPF_PARALLEL, no barrier): items are (image, output row,
 * column chunk, unit) with unit a block pair (depthwise: a block); thread
 * ith runs the contiguous items kiln__split gives it. When the packed
 * weights are small (<= 256 KB) the unit varies fastest, so consecutive
 * items reuse the input rows in cache; else the row does, so they reuse the
 * unit's weights. Depthwise units read only their own block of the input,
 * so there the row varies fastest too: each block's plane is read as one
 * sequential stream (10-20% faster on MobileNetV2's memory-bound depthwise
 * layers at batch 8 than hopping between the planes row by row). Rows are cut into column chunks only when there are too
 * few rows for the threads.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_nchwc.h"

#define PAIR 32                        /* output channels per unit (group 1) */
#define SMALL_WEIGHTS (256 * 1024)     /* bytes: below, the unit varies fastest */
#define ITEMS_PER_THREAD 4             /* fewer items than this per thread: chunk the rows */

typedef struct nchwc_state {
    kiln__nchwc_kern k;
    int bf16;          /* conv_nchwc_bf16 */
    void *wpack;       /* packed weights (see above): float, or bf16 pairs */
    float *bias;       /* KB*16, zeros past K or without B */
    int64_t units;     /* block pairs, or blocks (depthwise) */
    int64_t *cbr;      /* grouped: input blocks [cbr[2kb], cbr[2kb+1]) of output block kb; else NULL */
    double overhead;   /* grouped: products computed over those needed (kiln__nchwc_group_overhead) */
    int64_t unit_w;    /* floats (bf16: pairs) of packed weights per unit */
    int64_t qchunk, nchunk;
    int unit_fastest;
    int64_t x_image, y_image; /* floats per image of X and of Y (and Z) */
} nchwc_state;

static void nchwc_release(void *kstate) {
    nchwc_state *s = kstate;
    if (!s) return;
    kiln__aligned_free(s->wpack);
    kiln__aligned_free(s->bias);
    free(s->cbr);
    free(s);
}

void kiln__nchwc_packing(const kiln__nchwc_conv *g, int bf16, int64_t *units, int64_t *unit_w) {
    const int64_t RS = g->R * g->S;
    *units = g->depthwise ? g->KB : (g->KB + 1) / 2;
    *unit_w = g->depthwise ? RS * 16 : g->CB * RS * (bf16 ? 8 : 16) * PAIR;
}

void kiln__nchwc_pack(const kiln__nchwc_conv *g, int bf16, const float *w, const float *b,
                      void *wpack, float *bias) {
    const int64_t RS = g->R * g->S;
    int64_t units, unit_w;
    kiln__nchwc_packing(g, bf16, &units, &unit_w);
    for (int64_t k = 0; k < g->KB * 16; k++) bias[k] = b && k < g->K ? b[k] : 0.0f;
    if (g->depthwise) { /* [kb][r][s][16] */
        float *wp = wpack;
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t t = 0; t < RS; t++) wp[(k / 16 * RS + t) * 16 + k % 16] = w[k * RS + t];
        return;
    }
    const int64_t Cg = g->C / g->group, Kg = g->K / g->group;
    /* [pair][cb][r][s][ci][32] (bf16: ci/2, half words); grouped: channels
     * outside k's group stay 0 */
    for (int64_t k = 0; k < g->K; k++)
        for (int64_t c = k / Kg * Cg; c < k / Kg * Cg + Cg; c++)
            for (int64_t t = 0; t < RS; t++) {
                const float v = w[(k * Cg + c - k / Kg * Cg) * RS + t];
                const int64_t unit = k / PAIR * unit_w, lane = k % PAIR, ci = c % 16;
                if (bf16) {
                    uint16_t *wp = wpack; /* pair word: low half the even channel */
                    wp[2 * (unit + ((c / 16 * RS + t) * 8 + ci / 2) * PAIR + lane) + ci % 2] =
                        kiln_f32_to_bf16(v);
                } else {
                    float *wp = wpack;
                    wp[unit + ((c / 16 * RS + t) * 16 + ci) * PAIR + lane] = v;
                }
            }
}

void kiln__nchwc_kern_init(kiln__nchwc_kern *k, int flatten) {
    kiln__nchwc_conv *g = &k->g;
    if (flatten && g->R == 1 && g->S == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
        g->pw == 0 && g->P == g->H && g->Q == g->W) { /* one row of H*W pixels */
        g->W = g->Q = g->H * g->W;
        g->H = g->P = 1;
    }
    k->xpix = g->input_blocked ? 16 : 1;
    k->xlane = g->input_blocked ? 1 : g->H * g->W;
    k->xrow = g->W * k->xpix;
    k->xcb = 16 * g->H * g->W;
    k->yblock = g->P * g->Q * 16;
    /* interior: q*sw - pw >= 0 and q*sw - pw + (S-1)*dw <= W-1 */
    const int64_t last = g->W - 1 + g->pw - (g->S - 1) * g->dw;
    k->qlo = (g->pw + g->sw - 1) / g->sw;
    k->qhi = last < 0 ? 0 : last / g->sw + 1;
    if (k->qlo > g->Q) k->qlo = g->Q;
    if (k->qhi > g->Q) k->qhi = g->Q;
    if (k->qhi < k->qlo) k->qhi = k->qlo;
    const int64_t tail = g->K % 16;
    k->last_lanes = (uint16_t)(tail ? (1u << tail) - 1u : 0xffffu);
}

static kiln_status nchwc_prepare(kiln__kctx *c, int bf16) {
    if (!kiln__cpu_has_avx512f() || !c->in[1]->data || (kiln__in(c, 2) && !c->in[2]->data))
        return KILN_E_UNSUPPORTED;
#ifndef KILN__NCHWC_X86_BF16
    if (bf16) return KILN_E_UNSUPPORTED;
#endif
    if (bf16 && kiln__conv_accept_compute(c, KILN__GEMM_BF16) != KILN_OK) return KILN_E_UNSUPPORTED;
    nchwc_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln__nchwc_kern *k = &s->k;
    kiln__nchwc_conv *g = &k->g;
    kiln_status st = kiln__nchwc_conv_read(c, g);
    if (st == KILN_OK && bf16 && (g->group != 1 || !g->input_blocked))
        st = kiln__err(KILN_E_UNSUPPORTED, "conv_nchwc_bf16: group 1, blocked input only");
    if (st != KILN_OK) {
        free(s);
        return st;
    }
    s->bf16 = bf16;
    c->flops = 2.0 * g->N * g->K * g->P * g->Q * (g->C / g->group) * g->R * g->S;
    s->overhead = 1;
    if (g->group != 1 && !g->depthwise) {
        if (!(s->cbr = malloc((size_t)g->KB * 2 * sizeof *s->cbr))) {
            free(s);
            return kiln__err(KILN_E_NOMEM, "out of memory");
        }
        for (int64_t kb = 0; kb < g->KB; kb++)
            kiln__nchwc_group_blocks(g->K, g->C, g->group, kb, &s->cbr[2 * kb], &s->cbr[2 * kb + 1]);
        s->overhead = kiln__nchwc_group_overhead(g->K, g->C, g->group);
    }
    s->x_image = (g->input_blocked ? g->CB * 16 : g->C) * g->H * g->W;
    s->y_image = g->KB * 16 * g->P * g->Q;
    kiln__nchwc_kern_init(k, 1);
    kiln__nchwc_packing(g, bf16, &s->units, &s->unit_w);
    const size_t wbytes = (size_t)(s->units * s->unit_w) * 4; /* floats or pairs */
    s->unit_fastest = wbytes <= SMALL_WEIGHTS && !g->depthwise;
    /* column chunks of whole tiles when there are few rows */
    const int nth = kiln__conv_nth(c), tile = g->depthwise ? 8 : 14;
    const int64_t rows = g->N * g->P * s->units, want = (int64_t)nth * ITEMS_PER_THREAD;
    s->nchunk = 1;
    s->qchunk = g->Q;
    if (rows < want && g->Q > tile) {
        int64_t nch = (want + rows - 1) / rows;
        s->qchunk = ((g->Q + nch - 1) / nch + tile - 1) / tile * tile;
        s->nchunk = (g->Q + s->qchunk - 1) / s->qchunk;
    }
    if (!c->probe) {
        s->wpack = kiln__aligned_alloc(wbytes);
        s->bias = kiln__aligned_alloc((size_t)g->KB * 16 * sizeof(float));
        if (!s->wpack || !s->bias) {
            nchwc_release(s);
            return KILN_E_NOMEM;
        }
        memset(s->wpack, 0, wbytes);
        kiln__nchwc_pack(g, bf16, c->in[1]->data, kiln__in(c, 2) ? c->in[2]->data : NULL,
                         s->wpack, s->bias);
    }
    c->kstate = s;
    return KILN_OK;
}

static double nchwc_cost(const kiln__kctx *c) {
    const nchwc_state *s = c->kstate;
    const kiln__nchwc_conv *g = &s->k.g;
    const double bytes = 4.0 * (g->N * (s->x_image + s->y_image * (g->has_z ? 2 : 1)) +
                                s->units * s->unit_w);
    /* bf16: twice the products per instruction, 1.8x measured on the GEMM */
    const double eff = g->depthwise ? 0.3 : s->bf16 ? 0.75 * 1.8 : 0.75;
    return kiln__cost_seconds(c, c->flops * s->overhead, eff, bytes);
}

static kiln_status nchwc_run(kiln__kctx *c) {
#ifdef KILN__NCHWC_X86
    const nchwc_state *s = c->kstate;
    const kiln__nchwc_conv *g = &s->k.g;
    const float *x = c->in[0]->data, *z = kiln__in(c, 3) ? c->in[3]->data : NULL;
    float *y = c->out[0]->data;
    const int64_t U = s->units, NC = s->nchunk, plane = s->k.yblock;
    int64_t lo, hi;
    kiln__split(g->N * g->P * NC * U, c->ith, c->nth, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        int64_t u, p, ch, n;
        if (s->unit_fastest) { /* (n, p, chunk, unit) */
            u = it % U;
            ch = it / U % NC;
            p = it / (U * NC) % g->P;
            n = it / (U * NC * g->P);
        } else { /* (n, unit, p, chunk) */
            ch = it % NC;
            p = it / NC % g->P;
            u = it / (NC * g->P) % U;
            n = it / (NC * g->P * U);
        }
        const int64_t q0 = ch * s->qchunk, q1 = q0 + s->qchunk < g->Q ? q0 + s->qchunk : g->Q;
        const float *xi = x + n * s->x_image, *zi = z ? z + n * s->y_image : NULL;
        float *yi = y + n * s->y_image;
        const float *wf = (const float *)s->wpack + u * s->unit_w;
        if (g->depthwise) {
            kiln__nchwc_dw_row_avx512(&s->k, xi + u * s->k.xcb, wf, s->bias + u * 16,
                                      zi ? zi + u * plane : NULL, yi + u * plane, u, p, q0, q1);
            continue;
        }
        const int64_t kb0 = 2 * u;
        const int nb = g->KB - kb0 < 2 ? 1 : 2;
        const float *zb = zi ? zi + kb0 * plane : NULL;
#ifdef KILN__NCHWC_X86_BF16
        if (s->bf16) {
            kiln__nchwc_conv_row_bf16_avx512(&s->k, xi, (const uint32_t *)s->wpack + u * s->unit_w,
                                             s->bias + kb0 * 16, zb, yi + kb0 * plane, kb0, nb,
                                             p, q0, q1);
            continue;
        }
#endif
        if (!s->cbr) {
            kiln__nchwc_conv_row_avx512(&s->k, xi, wf, s->bias + kb0 * 16, zb, yi + kb0 * plane,
                                        kb0, nb, 0, g->CB, p, q0, q1);
            continue;
        }
        /* grouped: the pair at once when its blocks read the same input
         * blocks, else each block over its own */
        const int64_t *r = s->cbr + 2 * kb0;
        if (nb == 2 && r[0] == r[2] && r[1] == r[3]) {
            kiln__nchwc_conv_row_avx512(&s->k, xi, wf, s->bias + kb0 * 16, zb, yi + kb0 * plane,
                                        kb0, 2, r[0], r[1], p, q0, q1);
            continue;
        }
        for (int j = 0; j < nb; j++)
            kiln__nchwc_conv_row_avx512(&s->k, xi, wf + 16 * j, s->bias + (kb0 + j) * 16,
                                        zb ? zb + j * plane : NULL, yi + (kb0 + j) * plane,
                                        kb0 + j, 1, r[2 * j], r[2 * j + 1], p, q0, q1);
    }
    return KILN_OK;
#else
    (void)c;
    return kiln__err(KILN_E_UNSUPPORTED, "conv_nchwc needs AVX-512");
#endif
}

static kiln_status nchwc_f32_prepare(kiln__kctx *c) { return nchwc_prepare(c, 0); }
static kiln_status nchwc_bf16_prepare(kiln__kctx *c) { return nchwc_prepare(c, 1); }

const kiln__algo kiln__algo_conv_nchwc = {"conv_nchwc",      "kiln",     "ConvNCHWc",
                                          KILN_OPF_PARALLEL, nchwc_f32_prepare, nchwc_cost,
                                          nchwc_run,         nchwc_release};
const kiln__algo kiln__algo_conv_nchwc_bf16 = {"conv_nchwc_bf16",  "kiln",     "ConvNCHWc",
                                               KILN_OPF_PARALLEL, nchwc_bf16_prepare, nchwc_cost,
                                               nchwc_run,         nchwc_release};
