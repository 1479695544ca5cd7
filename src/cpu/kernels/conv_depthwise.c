/* src/cpu/kernels/conv_depthwise.c: depthwise convolution (group == C, any
 * channel multiplier K/C), direct: the algorithms conv_depthwise (Conv) and
 * fused_conv_depthwise (kiln.FusedConv), plus the portable row kernel
 * (conv_depthwise.h). Any kernel size, stride, padding and dilation; the
 * AVX-512 row kernel (x86/conv_depthwise_avx512.c) has 3x3 and 5x5 fast
 * paths.
 *
 * x: (N,C,H,W), w: (K,1,R,S), y: (N,K,P,Q); output channel k reads input
 * channel k / (K/C). Bias is added in the row kernel; the residual Z and the
 * activation in a pass over each finished block of rows while it is in cache
 * (the GEMM epilogue, conv_algo.h).
 *
 * Threads: one PARALLEL pass over (plane, row block) items; planes are cut
 * into row blocks only when there are too few planes for the threads.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_depthwise.h"
#include "cpu/ref/conv.h"

void kiln__dw_row_generic(const kiln__dw_geom *d, const float *const *rows, const float *w,
                          float bias, float *restrict y) {
    for (int64_t q = 0; q < d->Q; q++) y[q] = bias;
    for (int64_t r = 0; r < d->R; r++) {
        if (!rows[r]) continue;
        for (int64_t s = 0; s < d->S; s++) {
            const float ws = w[r * d->S + s];
            const float *restrict x = rows[r] + s * d->dw - d->pw; /* x[q*sw] for q in range */
            const int64_t lo = d->qlo[s], hi = d->qhi[s], sw = d->sw;
            if (sw == 1)
                for (int64_t q = lo; q < hi; q++) y[q] += ws * x[q];
            else
                for (int64_t q = lo; q < hi; q++) y[q] += ws * x[q * sw];
        }
    }
}

kiln__dw_row_fn kiln__dw_row_best(void) {
#ifdef KILN__DW_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return kiln__dw_row_avx512;
#endif
    return kiln__dw_row_generic;
}

typedef struct dw_conv {
    kiln__conv2d g;
    kiln__dw_geom d;
    kiln__dw_row_fn row;
    int64_t nrb;  /* row blocks per plane */
    int workers;  /* threads the scratch has slices for */
    size_t slice; /* scratch per thread: R row pointers */
    int64_t ranges[]; /* qlo[S], qhi[S] */
} dw_conv;

static kiln_status dw_prepare(kiln__kctx *c) {
    kiln__conv2d g;
    KILN__TRY(kiln__conv2d_read(c, &g));
    if (g.G != g.C || g.Cg != 1)
        return kiln__err(KILN_E_UNSUPPORTED, "conv_depthwise: group %lld, C %lld",
                         (long long)g.G, (long long)g.C);
    dw_conv *s = calloc(1, sizeof *s + 2 * (size_t)g.S * sizeof(int64_t));
    if (!s) return kiln__err(KILN_E_NOMEM, "conv_depthwise: out of memory");
    s->g = g;
    int64_t *qlo = s->ranges, *qhi = s->ranges + g.S;
    s->d = (kiln__dw_geom){.W = g.W, .Q = g.Q, .R = g.R, .S = g.S, .sw = g.sw, .dw = g.dw,
                           .pw = g.pw, .qi0 = 0, .qi1 = g.Q, .qlo = qlo, .qhi = qhi};
    for (int64_t t = 0; t < g.S; t++) {
        kiln__stride_range(t * g.dw - g.pw, g.sw, g.W, g.Q, &qlo[t], &qhi[t]);
        if (qlo[t] > s->d.qi0) s->d.qi0 = qlo[t];
        if (qhi[t] < s->d.qi1) s->d.qi1 = qhi[t];
    }
    s->row = kiln__dw_row_best();
    s->workers = kiln__conv_nth(c);
    s->nrb = kiln__conv_mchunks(g.N * g.K, g.P, s->workers, 1);
    s->slice = kiln__conv_align64((size_t)g.R * sizeof(const float *));
    c->scratch_bytes = s->slice * (size_t)s->workers;
    c->kstate = s;
    c->flops = kiln__conv_direct_flops(&g);
    return KILN_OK;
}

static double dw_cost(const kiln__kctx *c) {
    const dw_conv *s = c->kstate;
    /* vector rows: about one FMA per load; strided rows shuffle, generic C is scalar-ish */
    double eff = s->row == kiln__dw_row_generic ? 0.03 : (s->g.sw == 1 ? 0.2 : 0.12);
    return kiln__cost_seconds(c, c->flops, eff, kiln__conv_io_bytes(&s->g));
}

static kiln_status dw_run(kiln__kctx *c) {
    const dw_conv *s = c->kstate;
    const kiln__conv2d *g = &s->g;
    int workers = c->nth < s->workers ? c->nth : s->workers;
    if (c->ith >= workers) return KILN_OK;
    kiln__conv_io io;
    kiln__conv_io_get(c, &io);
    const float **rows = (const float **)(void *)((char *)c->scratch + (size_t)c->ith * s->slice);
    const int64_t PQ = g->P * g->Q, HW = g->H * g->W, items = g->N * g->K * s->nrb;
    int64_t lo, hi;
    kiln__split(items, c->ith, workers, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        const int64_t plane = it / s->nrb, n = plane / g->K, k = plane % g->K;
        int64_t p0 = 0, p1 = g->P;
        if (s->nrb > 1) kiln__conv_chunk(g->P, 1, it % s->nrb, s->nrb, &p0, &p1);
        const float *xc = io.x + (n * g->C + k / g->Kg) * HW;
        const float *wk = io.w + k * g->R * g->S;
        const float bias = io.b ? io.b[k] : 0.0f;
        float *y = io.y + plane * PQ;
        for (int64_t p = p0; p < p1; p++) {
            for (int64_t r = 0; r < g->R; r++) {
                int64_t ih = p * g->sh - g->ph + r * g->dh;
                rows[r] = ih >= 0 && ih < g->H ? xc + ih * g->W : NULL;
            }
            s->row(&s->d, rows, wk, bias, y + p * g->Q);
        }
        const int64_t off = plane * PQ + p0 * g->Q, len = (p1 - p0) * g->Q;
        kiln__conv_epilogue_rows(g, io.y + off, 1, len, len, NULL, io.z ? io.z + off : NULL);
    }
    return KILN_OK;
}

static void dw_release(void *kstate) { free(kstate); }

const kiln__algo kiln__algo_conv_depthwise = {"conv_depthwise", "", "Conv", KILN_OPF_PARALLEL,
                                              dw_prepare, dw_cost, dw_run, dw_release};
const kiln__algo kiln__algo_fused_conv_depthwise = {"fused_conv_depthwise", "kiln", "FusedConv",
                                                    KILN_OPF_PARALLEL, dw_prepare, dw_cost,
                                                    dw_run, dw_release};
