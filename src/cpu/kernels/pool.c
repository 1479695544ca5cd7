/* src/cpu/kernels/pool.c: fast f32 pooling.
 *
 * MaxPool (without the Indices output), AveragePool, 2-D:
 *   X: (N,C,H,W) f32, Y: (N,C,OH,OW); kernel_shape, strides, pads or
 *   auto_pad, ceil_mode, count_include_pad (the window geometry of the
 *   reference, src/cpu/ref/conv.h); dilation 1 only. Each output row is one
 *   call of the ISA table's pool_row (eltwise.h): the windows that lie
 *   inside the row vectorized over 16 outputs (contiguous loads at stride 1,
 *   gathers otherwise), the edge windows one by one. Max follows the
 *   reference's rule (first tap, then v > max); the average divides by the
 *   taps inside X, or inside the padded X with count_include_pad (an empty
 *   window gives NaN, as the reference).
 * GlobalAveragePool, GlobalMaxPool: X: (N,C,D1..Dk) f32, Y: (N,C,1..1);
 *   one vector reduction per plane.
 * The average pools' gradients (src/ops/defs/grad.def; reference in
 * src/cpu/ref/pool.c), f32:
 *   kiln.AveragePoolGrad(dY, shape) -> dX, 2-D, dilation 1: per plane dX = 0,
 *     then each dY element, divided by its window's divisor (as above; an
 *     empty window passes nothing), added to the window's taps inside X;
 *   kiln.GlobalAveragePoolGrad(dY, shape) -> dX: each plane filled with its
 *     dY element over the plane's size.
 * Work is split over the threads (KILN_OPF_PARALLEL) by output rows
 * (planes for the global pools and the gradients).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/ref/conv.h"

typedef struct pool_state {
    kiln__eltw_state base;
    kiln__win w;
    int max;               /* MaxPool / GlobalMaxPool, else average */
    int global;
    int count_include_pad; /* AveragePool */
    int64_t planes;        /* N*C */
    int64_t plane;         /* elements of an input plane */
} pool_state;

static kiln_status pool_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    const char *op = c->node->op_type;
    int global = strncmp(op, "Global", 6) == 0;
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || x->ndim < 3 || kiln__out(c, 1))
        return KILN_E_UNSUPPORTED;
    kiln__win w;
    memset(&w, 0, sizeof w);
    if (!global) {
        if (x->ndim != 4) return KILN_E_UNSUPPORTED;
        KILN__TRY(kiln__win_read(c->node, 2, x->dims + 2, NULL, &w));
        KILN__TRY(kiln__win_forward(&w, kiln__attr_i(c->node, "ceil_mode", 0) != 0));
        if (w.dil[0] != 1 || w.dil[1] != 1 || w.out[0] != y->dims[2] || w.out[1] != y->dims[3])
            return KILN_E_UNSUPPORTED;
    }
    KILN__TRY(kiln__eltw_state_new(c, sizeof(pool_state)));
    pool_state *s = c->kstate;
    s->w = w;
    s->max = strstr(op, "Max") != NULL;
    s->global = global;
    s->count_include_pad = kiln__attr_i(c->node, "count_include_pad", 0) != 0;
    s->planes = x->dims[0] * x->dims[1];
    s->plane = kiln__dims_prod(x->dims, 2, x->ndim);
    c->flops = global ? (double)kiln__n(x) : (double)kiln__n(y) * (double)(w.k[0] * w.k[1]);
    return KILN_OK;
}

static double pool_cost(const kiln__kctx *c) {
    double bytes = 4.0 * ((double)kiln__n(c->in[0]) + (double)kiln__n(c->out[0]));
    return kiln__eltw_cost(c, c->flops, bytes);
}

/* Taps of a window starting at base (= o*s - pad0) along one dim: inside the
 * input [0, in), or inside the padded input (count_include_pad). */
static int64_t taps(const kiln__win *w, int d, int64_t o, int include_pad) {
    int64_t base = o * w->stride[d] - w->pad0[d], lo, hi;
    if (include_pad) {
        lo = base + w->pad0[d];
        hi = base + w->k[d] < w->in[d] + w->pad1[d] ? base + w->k[d] : w->in[d] + w->pad1[d];
        hi += w->pad0[d];
    } else {
        lo = base < 0 ? 0 : base;
        hi = base + w->k[d] < w->in[d] ? base + w->k[d] : w->in[d];
    }
    return hi > lo ? hi - lo : 0;
}

// x: (N*C planes, H, W), y: (N*C, OH, OW); thread ith does its output rows
static void pool2d_run(const kiln__kctx *c, const pool_state *s) {
    const kiln__win *w = &s->w;
    const int64_t H = w->in[0], W = w->in[1], OH = w->out[0], OW = w->out[1];
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    kiln__pool_row p = {.W = W, .k = w->k[1], .s = w->stride[1], .pad = w->pad0[1], .OW = OW,
                        .max = s->max};
    /* outputs whose windows lie inside [0, W): o*s >= pad and o*s - pad + k <= W */
    p.ow0 = (p.pad + p.s - 1) / p.s;
    p.ow1 = W + p.pad - p.k < 0 ? 0 : (W + p.pad - p.k) / p.s + 1;
    if (p.ow0 > OW) p.ow0 = OW;
    if (p.ow1 > OW) p.ow1 = OW;
    if (p.ow1 < p.ow0) p.ow1 = p.ow0;
    int64_t lo, hi, per_row = OW * w->k[0] * w->k[1];
    kiln__eltw_share(s->planes * OH, KILN__ELTW_GRAIN / (per_row > 0 ? per_row : 1), c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t pl = r / OH, oh = r % OH, hs = oh * w->stride[0] - w->pad0[0];
        p.x = x + pl * H * W;
        p.y = y + r * OW;
        p.h0 = hs < 0 ? 0 : hs;
        p.h1 = hs + w->k[0] < H ? hs + w->k[0] : H;
        if (p.h0 < p.h1) {
            s->base.k->pool_row(&p);
        } else {
            for (int64_t o = 0; o < OW; o++) p.y[o] = s->max ? -INFINITY : 0.0f;
        }
        if (s->max) continue;
        int64_t th = taps(w, 0, oh, s->count_include_pad);
        for (int64_t o = 0; o < OW; o++) {
            int64_t div = th * taps(w, 1, o, s->count_include_pad);
            p.y[o] = div ? p.y[o] / (float)div : NAN;
        }
    }
}

static kiln_status pool_run(kiln__kctx *c) {
    const pool_state *s = c->kstate;
    if (!s->global) {
        pool2d_run(c, s);
        return KILN_OK;
    }
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__eltw_share(s->planes, s->plane ? KILN__ELTW_GRAIN / s->plane : s->planes, c->ith, c->nth, &lo, &hi);
    for (int64_t pl = lo; pl < hi; pl++) {
        const float *xp = x + pl * s->plane;
        if (s->plane == 0)
            y[pl] = s->max ? -INFINITY : NAN; /* the reference's empty window */
        else
            y[pl] = s->max ? s->base.k->max(xp, s->plane) : s->base.k->sum(xp, s->plane) / (float)s->plane;
    }
    return KILN_OK;
}

#define POOL_ALGO(id, Op)                                                              \
    const kiln__algo kiln__algo_##id = {#id, "", #Op, KILN_OPF_PARALLEL, pool_prepare, \
                                        pool_cost, pool_run, free};
POOL_ALGO(max_pool2d_f32, MaxPool)
POOL_ALGO(average_pool2d_f32, AveragePool)
POOL_ALGO(global_max_pool_f32, GlobalMaxPool)
POOL_ALGO(global_average_pool_f32, GlobalAveragePool)

/* ---- the average pools' gradients --------------------------------------------------- */

typedef struct avg_grad_state {
    kiln__win w;
    int global, count_include_pad;
    int64_t planes, plane; /* N*C; elements of a plane of dX */
} avg_grad_state;

static kiln_status avg_grad_prepare(kiln__kctx *c) {
    const kiln_tensor *dy = c->in[0], *dx = c->out[0];
    const int global = strncmp(c->node->op_type, "Global", 6) == 0;
    if (!kiln__eltw_f32(dy) || !kiln__eltw_f32(dx) || dx->ndim < 3 || dy->ndim != dx->ndim ||
        dy->dims[0] != dx->dims[0] || dy->dims[1] != dx->dims[1] || (!global && dx->ndim != 4))
        return KILN_E_UNSUPPORTED;
    avg_grad_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->global = global;
    s->count_include_pad = kiln__attr_i(c->node, "count_include_pad", 0) != 0;
    s->planes = dx->dims[0] * dx->dims[1];
    s->plane = kiln__dims_prod(dx->dims, 2, dx->ndim);
    if (!global) {
        kiln__win *w = &s->w;
        kiln_status st = kiln__win_read(c->node, 2, dx->dims + 2, NULL, w);
        if (st == KILN_OK) st = kiln__win_forward(w, kiln__attr_i(c->node, "ceil_mode", 0) != 0);
        if (st != KILN_OK || w->dil[0] != 1 || w->dil[1] != 1 || dy->dims[2] != w->out[0] ||
            dy->dims[3] != w->out[1]) { /* shapes or attributes the reference reports on */
            free(s);
            return KILN_E_UNSUPPORTED;
        }
    }
    c->kstate = s;
    c->flops = global ? (double)kiln__n(dx) : (double)kiln__n(dy) * (double)(s->w.k[0] * s->w.k[1]);
    return KILN_OK;
}

static double avg_grad_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, c->flops, 0.2, 4.0 * ((double)kiln__n(c->in[0]) + (double)kiln__n(c->out[0])));
}

// dY: (N*C planes, OH, OW) or (N*C) for the global pool; dX: (N*C, H, W) or (N*C, plane)
static kiln_status avg_grad_run(kiln__kctx *c) {
    const avg_grad_state *s = c->kstate;
    const kiln__win *w = &s->w;
    const float *dy = c->in[0]->data;
    float *dx = c->out[0]->data;
    int64_t lo, hi;
    kiln__split(s->planes, c->ith, c->nth, &lo, &hi);
    for (int64_t pl = lo; pl < hi; pl++) {
        float *d = dx + pl * s->plane;
        if (s->global) {
            const float g = dy[pl] / (float)s->plane;
            for (int64_t i = 0; i < s->plane; i++) d[i] = g;
            continue;
        }
        const int64_t H = w->in[0], W = w->in[1], OH = w->out[0], OW = w->out[1];
        const float *g = dy + pl * OH * OW;
        memset(d, 0, (size_t)s->plane * sizeof *d);
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * w->stride[0] - w->pad0[0], h1 = h0 + w->k[0];
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > H ? H : h1;
            const int64_t th = taps(w, 0, oh, s->count_include_pad);
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t w0 = ow * w->stride[1] - w->pad0[1], w1 = w0 + w->k[1];
                w0 = w0 < 0 ? 0 : w0;
                w1 = w1 > W ? W : w1;
                const int64_t div = th * taps(w, 1, ow, s->count_include_pad);
                if (!div || h0 >= h1 || w0 >= w1) continue;
                const float v = g[oh * OW + ow] / (float)div;
                for (int64_t i = h0; i < h1; i++)
                    for (int64_t j = w0; j < w1; j++) d[i * W + j] += v;
            }
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_average_pool2d_grad_f32 = {
    "average_pool2d_grad_f32", "kiln", "AveragePoolGrad", KILN_OPF_PARALLEL, avg_grad_prepare,
    avg_grad_cost, avg_grad_run, free};
const kiln__algo kiln__algo_global_average_pool_grad_f32 = {
    "global_average_pool_grad_f32", "kiln", "GlobalAveragePoolGrad", KILN_OPF_PARALLEL,
    avg_grad_prepare, avg_grad_cost, avg_grad_run, free};
