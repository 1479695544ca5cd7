/* src/cpu/kernels/conv_grad.c: conv_grad_gemm, kiln.ConvGrad (the gradients
 * of a 2-D f32 convolution; src/cpu/ref/grad_conv.c is the reference) as f32
 * GEMMs. For image n and group g, with cols = im2col(X[n, g]) (Cg*R*S, P*Q)
 * (conv_algo.h's layout) and dY_ng = dY[n, g*Kg:(g+1)*Kg] (Kg, P*Q):
 *
 *   dW_g  (Kg, CgRS) += dY_ng x cols^T          (K = P*Q; summed over images)
 *   dcols (CgRS, PQ)  = W_g^T x dY_ng           (K = Kg)
 *   dX[n, g]          = col2im(dcols)           (taps that read the same pixel add)
 *   dB[m]             = sum over n, p, q of dY[n, m]
 *
 * A 1x1 convolution with stride 1 and no padding needs neither im2col nor
 * col2im: cols is X[n, g] and dcols is dX[n, g]. The GEMMs run on all the
 * plan's threads (kiln__sgemm_run on the session pool), and so do the gathers
 * and scatters between them (channels split). W_g^T, the dX GEMM's A for every
 * image, is packed once per run. With unit strides and Q = W each tap's
 * gather and scatter is one span (conv_algo.h's flat taps; the scatter's adds
 * and dB's sums on the row-kernel table). Scratch: one image's cols and dcols
 * (not cut into column blocks yet), the packed W^T of each group and the
 * GEMM's packing space.
 */
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/eltwise.h"
#include "cpu/ref/conv.h"

typedef struct grad_plan {
    kiln__conv2d g;
    int direct;           /* 1x1, stride 1, no padding */
    int64_t crs, pq;      /* Cg*R*S, P*Q */
    size_t cols_bytes;    /* cols and dcols, each (0 when direct) */
    size_t wt_bytes;      /* one group's W_g^T packed as the dX GEMM's A */
    const kiln__eltw_kernels *k; /* col2im's runs of adds */
} grad_plan;

/* Bytes of packing scratch the larger of the two GEMMs needs on nth threads
 * (for the dX GEMM, as if it packed its A too: an upper bound). */
static size_t gemm_scratch(const grad_plan *p, int nth) {
    size_t dw = kiln__conv_gemm_scratch(p->g.Kg, p->crs, p->pq, KILN__GEMM_F32, NULL, NULL, nth);
    size_t dx = kiln__conv_gemm_scratch(p->crs, p->pq, p->g.Kg, KILN__GEMM_F32, NULL, NULL, nth);
    return dw > dx ? dw : dx;
}

// dY: (N,K,P,Q), X: (N,C,H,W), W: (K,C/G,R,S) f32; outputs dX, dW, dB optional
static kiln_status grad_prepare(kiln__kctx *c) {
    grad_plan p;
    memset(&p, 0, sizeof p);
    KILN__TRY(kiln__conv2d_geometry(c, kiln__in(c, 1), kiln__in(c, 2), kiln__in(c, 0), &p.g));
    for (int i = 0; i < 3; i++)
        if (kiln__out(c, i) && kiln__out(c, i)->dtype != KILN_DTYPE_F32)
            return KILN_E_UNSUPPORTED;
    const kiln__conv2d *g = &p.g;
    p.crs = g->Cg * g->R * g->S;
    p.pq = g->P * g->Q;
    p.k = kiln__eltw_best();
    p.direct = g->R == 1 && g->S == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
               g->P == g->H && g->Q == g->W;
    p.cols_bytes = p.direct ? 0 : kiln__conv_align64((size_t)(p.crs * p.pq) * sizeof(float));
    p.wt_bytes = kiln__conv_align64(kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32,
                                                                 p.crs, g->Kg));
    if (p.wt_bytes == 0) return KILN_E_UNSUPPORTED;
    c->scratch_bytes =
        64 + 2 * p.cols_bytes + (size_t)g->G * p.wt_bytes + gemm_scratch(&p, kiln__conv_nth(c));
    c->flops = 2.0 * kiln__conv_direct_flops(g);
    grad_plan *s = kiln__aligned_alloc(sizeof *s);
    if (!s) return KILN_E_NOMEM;
    *s = p;
    c->kstate = s;
    return KILN_OK;
}

static double grad_cost(const kiln__kctx *c) {
    const grad_plan *p = c->kstate;
    double eff = kiln__conv_gemm_efficiency((double)p->g.Kg, (double)p->crs, (double)p->pq,
                                            KILN__GEMM_F32);
    return kiln__cost_seconds(c, c->flops, eff, 3 * kiln__conv_io_bytes(&p->g));
}

/* xc[j + delta] += src[j] over a flat tap's span (conv_algo.h), its pixels
 * that wrap across a row's edge first set to 0 in src (they are padding taps,
 * whose gradient goes nowhere): one long run of adds (the row-kernel table's,
 * vectorized), and adding 0 leaves every sum as it was. */
static void col2im_flat(const kiln__eltw_kernels *k, const kiln__conv_flat_tap *t, int64_t Q,
                        float *restrict src, float *restrict xc) {
    if (t->lo == t->hi) return;
    if (t->qlo > 0 || t->qhi < Q)
        for (int64_t p = t->plo; p < t->phi; p++) {
            for (int64_t j = p * Q; j < p * Q + t->qlo; j++) src[j] = 0.0f;
            for (int64_t j = p * Q + t->qhi; j < (p + 1) * Q; j++) src[j] = 0.0f;
        }
    float *to = xc + t->delta + t->lo;
    k->binary(KILN__ELTW_ADD, to, 1, src + t->lo, 1, to, t->hi - t->lo);
}

/* dx (Cg, H, W) += the taps of dcols (CgRS, PQ): the adjoint of im2col.
 * Clobbers the padding taps of dcols (col2im_flat). */
static void col2im_add(const kiln__eltw_kernels *k, const kiln__conv2d *g, float *restrict dcols,
                       float *restrict dx) {
    const int64_t H = g->H, W = g->W, P = g->P, Q = g->Q, sw = g->sw;
    for (int64_t ch = 0; ch < g->Cg; ch++) {
        float *xc = dx + ch * H * W;
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                float *src = dcols + ((ch * g->R + r) * g->S + s) * P * Q;
                kiln__conv_flat_tap ft;
                if (kiln__conv_flat_tap_of(g, r, s, &ft)) {
                    col2im_flat(k, &ft, Q, src, xc);
                    continue;
                }
                const int64_t xoff = s * g->dw - g->pw; /* input column = q*sw + xoff */
                int64_t qlo, qhi;
                kiln__stride_range(xoff, sw, W, Q, &qlo, &qhi);
                for (int64_t p = 0; p < P; p++) {
                    const int64_t ih = p * g->sh - g->ph + r * g->dh;
                    if (ih < 0 || ih >= H) continue;
                    float *xr = xc + ih * W + xoff;
                    const float *sr = src + p * Q;
                    if (sw == 1)
                        for (int64_t q = qlo; q < qhi; q++) xr[q] += sr[q];
                    else
                        for (int64_t q = qlo; q < qhi; q++) xr[q * sw] += sr[q];
                }
            }
    }
}

/* im2col of x into cols (gather) or col2im_add of dcols into dx (scatter) for
 * one image and group, the channels split over the threads: each channel's
 * rows of cols and plane of x are its own. */
typedef struct gather_job {
    const kiln__conv2d *g;
    const kiln__eltw_kernels *k; /* scatter: its adds */
    int scatter;
    const float *x;    /* gather: (Cg, H, W) */
    float *cols;       /* gather: (CgRS, PQ) */
    float *dcols;      /* scatter: (CgRS, PQ), its padding taps clobbered */
    float *dx;         /* scatter: (Cg, H, W) */
} gather_job;

static void gather_task(void *arg, int ith, int nth) {
    const gather_job *j = arg;
    int64_t lo, hi;
    kiln__split(j->g->Cg, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    kiln__conv2d g = *j->g;
    g.Cg = hi - lo;
    const int64_t rows = lo * g.R * g.S * g.P * g.Q, plane = lo * g.H * g.W;
    if (j->scatter)
        col2im_add(j->k, &g, j->dcols + rows, j->dx + plane);
    else
        kiln__conv_im2col(&g, j->x + plane, 0, g.P * g.Q, j->cols + rows);
}

static void gather(const kiln__kctx *c, gather_job *j) {
    int nth = c->pool ? kiln__pool_size(c->pool) : 1;
    if (nth > kiln__conv_nth(c)) nth = kiln__conv_nth(c);
    if (nth > j->g->Cg) nth = (int)j->g->Cg;
    if (nth > 1)
        kiln__pool_run(c->pool, nth, gather_task, j);
    else
        gather_task(j, 0, 1);
}

static kiln_status grad_run(kiln__kctx *c) {
    const grad_plan *p = c->kstate;
    const kiln__conv2d *g = &p->g;
    const float *dy = c->in[0]->data, *x = c->in[1]->data, *w = c->in[2]->data;
    kiln_tensor *dxt = kiln__out(c, 0), *dwt = kiln__out(c, 1), *dbt = kiln__out(c, 2);
    float *dx = dxt ? dxt->data : NULL, *dw = dwt ? dwt->data : NULL;
    char *base = (char *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63);
    float *cols = (float *)base, *dcols = (float *)(base + p->cols_bytes);
    char *wt = base + 2 * p->cols_bytes; /* W_g^T packed, per group, once per run */
    void *gs = wt + (size_t)g->G * p->wt_bytes;
    if (dx)
        for (int64_t grp = 0; grp < g->G; grp++)
            KILN__TRY(kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, KILN__GEMM_F32, 1, p->crs, g->Kg,
                                           w + grp * g->Kg * p->crs, p->crs, wt + grp * p->wt_bytes,
                                           p->wt_bytes));
    const int64_t in_size = g->H * g->W, crs = p->crs, pq = p->pq;
    if (dx) memset(dx, 0, (size_t)(g->N * g->C * in_size) * sizeof(float));
    if (dw && g->N == 0) memset(dw, 0, (size_t)(g->K * crs) * sizeof(float));
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t grp = 0; grp < g->G; grp++) {
            const float *xg = x + (n * g->C + grp * g->Cg) * in_size;
            const float *dyg = dy + (n * g->K + grp * g->Kg) * pq;
            if (dw) {
                const float *b = xg;
                if (!p->direct) {
                    gather(c, &(gather_job){.g = g, .x = xg, .cols = cols});
                    b = cols;
                }
                kiln__gemm_args a = {.m = g->Kg, .n = crs, .k = pq, .trans_b = 1, .alpha = 1,
                                     .beta = n ? 1.0f : 0.0f, .a = dyg, .lda = pq, .b = b,
                                     .ldb = pq, .c = dw + grp * g->Kg * crs, .ldc = crs};
                KILN__TRY(kiln__sgemm_run(c->pool, &a, gs));
            }
            if (dx) {
                float *dxg = dx + (n * g->C + grp * g->Cg) * in_size;
                kiln__gemm_args a = {.m = crs, .n = pq, .k = g->Kg, .alpha = 1,
                                     .a = (const float *)(wt + grp * p->wt_bytes), .a_packed = 1,
                                     .b = dyg, .ldb = pq, .c = p->direct ? dxg : dcols, .ldc = pq};
                KILN__TRY(kiln__sgemm_run(c->pool, &a, gs));
                if (!p->direct)
                    gather(c, &(gather_job){.g = g, .k = p->k, .scatter = 1, .dcols = dcols, .dx = dxg});
            }
        }
    if (dbt) {
        float *db = dbt->data;
        for (int64_t m = 0; m < g->K; m++) {
            double sum = 0;
            for (int64_t n = 0; n < g->N && pq > 0; n++) sum += p->k->sum(dy + (n * g->K + m) * pq, pq);
            db[m] = (float)sum;
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_conv_grad_gemm = {
    .name = "conv_grad_gemm",
    .domain = "kiln",
    .op_type = "ConvGrad",
    .flags = 0,
    .prepare = grad_prepare,
    .cost = grad_cost,
    .run = grad_run,
    .release = kiln__aligned_free,
};
