/* src/cpu/ref/grad_conv.c: reference kernel of kiln.ConvGrad, the gradients
 * of a convolution (src/ops/defs/grad.def):
 *
 *   kiln.ConvGrad(dY, X, W) -> (dX, dW, dB)
 *
 * X: (N,C,D1..Dk), W: (M,C/group,K1..Kk), dY: (N,M,O1..Ok) the gradient of
 * Conv(X, W[, B])'s output, with the forward node's attributes (group,
 * kernel_shape, strides, pads, dilations, auto_pad). Every output is optional:
 *   dX[n,c,i]    = sum over m of c's group, taps j and outputs o with
 *                  o*stride - pad0 + j*dil = i  of  dY[n,m,o] * W[m,c%Cg,j]
 *   dW[m,ci,j]   = sum over n and o of dY[n,m,o] * X[n,g*Cg+ci,o*stride-pad0+j*dil]
 *   dB[m]        = sum over n and o of dY[n,m,o]
 * Each element is gathered in double. Threads split the N*C planes of dX and
 * the M filters of dW and dB.
 */
#include <string.h>

#include "cpu/ref/conv.h"

typedef struct conv_grad {
    kiln__win w;
    int64_t N, C, M, Cg, Mg, in_size, out_size, k_size;
    const kiln_tensor *dy, *x, *wt;
} conv_grad;

static kiln_status conv_grad_setup(const kiln__kctx *c, conv_grad *p) {
    memset(p, 0, sizeof(*p));
    const kiln_tensor *dy = c->in[0], *x = c->in[1], *wt = c->in[2];
    int64_t group, dims[KILN_MAX_DIMS];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    if (wt->dtype != x->dtype || dy->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "inputs dY, X, W are %s, %s, %s, expected one float dtype",
                         kiln_dtype_name(dy->dtype), kiln_dtype_name(x->dtype),
                         kiln_dtype_name(wt->dtype));
    KILN__TRY(kiln__conv_window(c, 1, 2, &p->w, &group));
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = wt->dims[0];
    p->Cg = wt->dims[1];
    p->Mg = p->M / group;
    p->in_size = kiln__dims_prod(p->w.in, 0, p->w.nsp);
    p->out_size = kiln__dims_prod(p->w.out, 0, p->w.nsp);
    p->k_size = kiln__dims_prod(p->w.k, 0, p->w.nsp);
    dims[0] = p->N;
    dims[1] = p->M;
    memcpy(dims + 2, p->w.out, (size_t)p->w.nsp * sizeof(int64_t));
    KILN__TRY(kiln__check_shape(dy, "dY", x->ndim, dims));
    p->dy = dy;
    p->x = x;
    p->wt = wt;
    return KILN_OK;
}

kiln_status kiln__infer_ConvGrad(kiln__kctx *c) {
    conv_grad p;
    KILN__TRY(conv_grad_setup(c, &p));
    KILN__TRY(kiln__out_like(c, 0, c->in[1]));
    KILN__TRY(kiln__out_like(c, 1, c->in[2]));
    return kiln__out_shape(c, 2, c->in[2]->dtype, 1, &p.M);
}

/* Offset in the input plane of output o's tap j, or -1 in the padding. */
static int64_t tap_offset(const kiln__win *w, const int64_t *o, const int64_t *tap) {
    int64_t off = 0;
    for (int d = 0; d < w->nsp; d++) {
        int64_t pos = o[d] * w->stride[d] - w->pad0[d] + tap[d] * w->dil[d];
        if (pos < 0 || pos >= w->in[d]) return -1;
        off = off * w->in[d] + pos;
    }
    return off;
}

/* Output o reached from input position i through tap j, as a flat offset; -1 if
 * none (not on the stride grid, or outside the output). */
static int64_t tap_source(const kiln__win *w, const int64_t *i, const int64_t *tap) {
    int64_t off = 0;
    for (int d = 0; d < w->nsp; d++) {
        int64_t t = i[d] + w->pad0[d] - tap[d] * w->dil[d];
        if (t < 0 || t % w->stride[d]) return -1;
        t /= w->stride[d];
        if (t >= w->out[d]) return -1;
        off = off * w->out[d] + t;
    }
    return off;
}

static void grad_input_plane(const conv_grad *p, kiln_tensor *dx, int64_t n, int64_t c) {
    const kiln__win *w = &p->w;
    kiln_dtype dt = p->x->dtype;
    int64_t ci = c % p->Cg, m0 = (c / p->Cg) * p->Mg, pos[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->in_size; i++, kiln__next_index(w->nsp, w->in, pos)) {
        double acc = 0;
        int64_t tap[KILN_MAX_DIMS] = {0};
        for (int64_t j = 0; j < p->k_size; j++, kiln__next_index(w->nsp, w->k, tap)) {
            int64_t o = tap_source(w, pos, tap);
            if (o < 0) continue;
            for (int64_t m = m0; m < m0 + p->Mg; m++)
                acc += kiln__elem_ld_f(dt, p->dy->data, (n * p->M + m) * p->out_size + o) *
                       kiln__elem_ld_f(dt, p->wt->data, (m * p->Cg + ci) * p->k_size + j);
        }
        kiln__elem_st_f(dt, dx->data, (n * p->C + c) * p->in_size + i, acc);
    }
}

static void grad_filter(const conv_grad *p, kiln_tensor *dw, int64_t m) {
    const kiln__win *w = &p->w;
    kiln_dtype dt = p->x->dtype;
    int64_t c0 = (m / p->Mg) * p->Cg;
    for (int64_t ci = 0; ci < p->Cg; ci++) {
        int64_t tap[KILN_MAX_DIMS] = {0};
        for (int64_t j = 0; j < p->k_size; j++, kiln__next_index(w->nsp, w->k, tap)) {
            double acc = 0;
            for (int64_t n = 0; n < p->N; n++) {
                int64_t o[KILN_MAX_DIMS] = {0};
                for (int64_t k = 0; k < p->out_size; k++, kiln__next_index(w->nsp, w->out, o)) {
                    int64_t off = tap_offset(w, o, tap);
                    if (off < 0) continue;
                    acc += kiln__elem_ld_f(dt, p->dy->data, (n * p->M + m) * p->out_size + k) *
                           kiln__elem_ld_f(dt, p->x->data, (n * p->C + c0 + ci) * p->in_size + off);
                }
            }
            kiln__elem_st_f(dt, dw->data, (m * p->Cg + ci) * p->k_size + j, acc);
        }
    }
}

static void grad_bias(const conv_grad *p, kiln_tensor *db, int64_t m) {
    kiln_dtype dt = p->dy->dtype;
    double acc = 0;
    for (int64_t n = 0; n < p->N; n++)
        for (int64_t k = 0; k < p->out_size; k++)
            acc += kiln__elem_ld_f(dt, p->dy->data, (n * p->M + m) * p->out_size + k);
    kiln__elem_st_f(dt, db->data, m, acc);
}

// dY: (N,M,O...), X: (N,C,D...), W: (M,C/group,K...); dX: like X, dW: like W, dB: (M)
kiln_status kiln__ref_ConvGrad(kiln__kctx *c) {
    conv_grad p;
    KILN__TRY(conv_grad_setup(c, &p));
    kiln_tensor *dx = kiln__out(c, 0), *dw = kiln__out(c, 1), *db = kiln__out(c, 2);
    int64_t lo, hi;
    if (dx) {
        kiln__split(p.N * p.C, c->ith, c->nth, &lo, &hi);
        for (int64_t nc = lo; nc < hi; nc++) grad_input_plane(&p, dx, nc / p.C, nc % p.C);
    }
    kiln__split(p.M, c->ith, c->nth, &lo, &hi);
    for (int64_t m = lo; m < hi; m++) {
        if (dw) grad_filter(&p, dw, m);
        if (db) grad_bias(&p, db, m);
    }
    return KILN_OK;
}
