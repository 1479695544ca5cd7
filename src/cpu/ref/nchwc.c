/* src/cpu/ref/nchwc.c: shape rules and reference kernels of the blocked
 * layout ops (src/ops/nchwc.h): kiln.ReorderNCHWc, kiln.ReorderNCHW,
 * kiln.ConvNCHWc, kiln.ConvDwNCHWc and kiln.PoolNCHWc, and the geometry
 * readers the fast kernels share.
 *
 * ConvNCHWc's reference sums like Conv's (f32, taps in (c, r, s) order after
 * the bias, kiln__axpy_f32 along output rows), then adds Z and applies the
 * activation in f32, as kiln.FusedConv's reference does. Threads split the
 * output rows (n, block, p). ConvDwNCHWc's runs the same rows for its two
 * or three convolutions, one after the other, on one thread, the
 * intermediates whole in its scratch.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref/conv.h"
#include "ops/nchwc.h"

#define BLK KILN__NCHWC_BLOCK

/* ---- geometry ---------------------------------------------------------------- */

/* Where a ConvNCHWc geometry comes from: the node's attributes and its
 * inputs (named in messages as xname, wname, bname, "Z"). */
typedef struct conv_src {
    const kiln__node *node;
    const kiln_tensor *x, *w, *b, *z; /* b, z may be NULL */
    const char *xname, *wname, *bname;
    int pointwise;   /* ConvDwNCHWc's first convolution: 1x1, stride 1, unpadded, group 1,
                      * blocked X, whatever the node's window attributes say */
    const char *act; /* the activation attribute */
} conv_src;

static kiln_status conv_read(const conv_src *src, kiln__nchwc_conv *g) {
    memset(g, 0, sizeof *g);
    const kiln_tensor *x = src->x, *w = src->w, *b = src->b, *z = src->z;
    KILN__TRY(kiln__check_dtype(x, src->xname, KILN_DTYPE_F32, 0));
    KILN__TRY(kiln__check_dtype(w, src->wname, KILN_DTYPE_F32, 0));
    if (w->ndim != 4)
        return kiln__err(KILN_E_SHAPE, "input '%s' has rank %d, expected 4 (K,C/group,R,S)",
                         src->wname, w->ndim);
    g->input_blocked = src->pointwise || kiln__attr_i(src->node, "input_blocked", 1) != 0;
    const int xr = g->input_blocked ? 5 : 4;
    if (x->ndim != xr)
        return kiln__err(KILN_E_SHAPE, "input '%s' has rank %d, expected %d (%s)", src->xname,
                         x->ndim, xr, g->input_blocked ? "N,CB,H,W,16" : "N,C,H,W");
    const int64_t group = src->pointwise ? 1 : kiln__attr_i(src->node, "group", 1);
    g->N = x->dims[0];
    g->K = w->dims[0];
    g->C = w->dims[1] * group;
    g->KB = kiln__nchwc_blocks(g->K);
    g->H = x->dims[2];
    g->W = x->dims[3];
    g->R = w->dims[2];
    g->S = w->dims[3];
    if (g->input_blocked) {
        g->CB = kiln__nchwc_blocks(g->C);
        if (x->dims[1] != g->CB || x->dims[4] != BLK)
            return kiln__err(KILN_E_SHAPE, "input '%s' (blocked) has %lld blocks of %lld channels; "
                             "%s with group %lld says %lld channels: %lld blocks of %d",
                             src->xname, (long long)x->dims[1], (long long)x->dims[4], src->wname,
                             (long long)group, (long long)g->C, (long long)g->CB, BLK);
    } else {
        g->CB = 1;
        if (x->dims[1] != g->C)
            return kiln__err(KILN_E_SHAPE, "input '%s' has %lld channels; %s with group %lld says %lld",
                             src->xname, (long long)x->dims[1], src->wname, (long long)group,
                             (long long)g->C);
    }
    if (group < 1 || (group != 1 && (g->K % group || !g->input_blocked)))
        return kiln__err(KILN_E_UNSUPPORTED, "attribute group: %lld; ConvNCHWc takes 1, or a group "
                         "count dividing K (%lld) with a blocked input", (long long)group,
                         (long long)g->K);
    g->group = group;
    g->depthwise = group != 1 && group == g->C && g->K == g->C;
    if (src->pointwise) {
        if (g->R != 1 || g->S != 1)
            return kiln__err(KILN_E_SHAPE, "input '%s' has a %lldx%lld kernel, expected 1x1",
                             src->wname, (long long)g->R, (long long)g->S);
        g->P = g->H;
        g->Q = g->W;
        g->sh = g->sw = g->dh = g->dw = 1;
    } else {
        kiln__win win;
        const int64_t in[2] = {g->H, g->W}, wk[2] = {g->R, g->S};
        KILN__TRY(kiln__win_read(src->node, 2, in, wk, &win));
        KILN__TRY(kiln__win_forward(&win, 0));
        g->P = win.out[0];
        g->Q = win.out[1];
        g->sh = win.stride[0];
        g->sw = win.stride[1];
        g->dh = win.dil[0];
        g->dw = win.dil[1];
        g->ph = win.pad0[0];
        g->pw = win.pad0[1];
    }
    KILN__TRY(kiln__act_from_attrs(src->node, src->act, &g->act));
    g->has_bias = b != NULL;
    if (b) {
        KILN__TRY(kiln__check_dtype(b, src->bname, KILN_DTYPE_F32, 0));
        KILN__TRY(kiln__check_shape(b, src->bname, 1, &g->K));
    }
    g->has_z = z != NULL;
    if (z) {
        const int64_t yd[5] = {g->N, g->KB, g->P, g->Q, BLK};
        KILN__TRY(kiln__check_dtype(z, "Z", KILN_DTYPE_F32, 0));
        KILN__TRY(kiln__check_shape(z, "Z", 5, yd));
    }
    return KILN_OK;
}

kiln_status kiln__nchwc_conv_read(const kiln__kctx *c, kiln__nchwc_conv *g) {
    const conv_src src = {c->node, c->in[0], c->in[1], kiln__in(c, 2), kiln__in(c, 3),
                          "X", "W", "B", 0, "activation"};
    return conv_read(&src, g);
}

kiln_status kiln__nchwc_convdw_read(const kiln__kctx *c, kiln__nchwc_conv *pw,
                                    kiln__nchwc_conv *dw, kiln__nchwc_conv *pj) {
    const int project = kiln__in(c, 5) != NULL;
    memset(pj, 0, sizeof *pj);
    if (!project && (kiln__in(c, 6) || kiln__in(c, 7)))
        return kiln__err(KILN_E_INVAL, "inputs 'B3' and 'Z' need 'W3'");
    if (project && !kiln__in(c, 6)) return kiln__err(KILN_E_INVAL, "input 'W3' needs 'B3'");
    const conv_src s1 = {c->node, c->in[0], c->in[1], c->in[2], NULL,
                         "X", "W1", "B1", 1, "pw_activation"};
    KILN__TRY(conv_read(&s1, pw));
    kiln_tensor t = {.dtype = KILN_DTYPE_F32, .ndim = 5,
                     .dims = {pw->N, pw->KB, pw->H, pw->W, BLK}}; /* the pointwise output */
    const conv_src s2 = {c->node, &t, c->in[3], c->in[4], NULL,
                         "the pointwise output (N,KB,H,W,16)", "W2", "B2", 0,
                         project ? "dw_activation" : "activation"};
    KILN__TRY(conv_read(&s2, dw));
    if (!dw->depthwise || dw->C != pw->K || !dw->input_blocked)
        return kiln__err(KILN_E_SHAPE, "input 'W2' (%lld,%lld,%lld,%lld) with group %lld is not a "
                         "depthwise convolution of the %lld channels W1 makes",
                         (long long)c->in[3]->dims[0], (long long)c->in[3]->dims[1],
                         (long long)dw->R, (long long)dw->S, (long long)dw->group,
                         (long long)pw->K);
    if (!project) return KILN_OK;
    kiln_tensor d = {.dtype = KILN_DTYPE_F32, .ndim = 5,
                     .dims = {dw->N, dw->KB, dw->P, dw->Q, BLK}}; /* the depthwise output */
    const conv_src s3 = {c->node, &d, c->in[5], c->in[6], kiln__in(c, 7),
                         "the depthwise output (N,KB,P,Q,16)", "W3", "B3", 1, "activation"};
    return conv_read(&s3, pj);
}

/* ---- ReorderNCHWc / ReorderNCHW --------------------------------------------- */

kiln_status kiln__infer_ReorderNCHWc(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    if (x->ndim != 4)
        return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected 4 (N,C,H,W)", x->ndim);
    const int64_t dims[5] = {x->dims[0], kiln__nchwc_blocks(x->dims[1]), x->dims[2], x->dims[3], BLK};
    return kiln__out_shape(c, 0, x->dtype, 5, dims);
}

kiln_status kiln__infer_ReorderNCHW(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const int64_t ch = kiln__attr_i(c->node, "channels", -1);
    if (x->ndim != 5 || x->dims[4] != BLK)
        return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected 5 (N,CB,H,W,%d)", x->ndim, BLK);
    if (ch < 0 || kiln__nchwc_blocks(ch) != x->dims[1])
        return kiln__err(KILN_E_INVAL, "attribute channels: %lld does not fill the %lld blocks of "
                         "input 'X'", (long long)ch, (long long)x->dims[1]);
    const int64_t dims[4] = {x->dims[0], ch, x->dims[2], x->dims[3]};
    return kiln__out_shape(c, 0, x->dtype, 4, dims);
}

/* Element (n, ch, pixel) of a (N,C,HW) tensor <-> of its (N,CB,HW,16) blocked
 * form, for the channel planes (n, ch) of [lo, hi); to_blocked says which way.
 * The blocked side's padding lanes are zeroed when written. */
static void reorder_planes(const kiln_tensor *x, kiln_tensor *y, int64_t C, int64_t HW,
                           int to_blocked, int64_t lo, int64_t hi) {
    const size_t es = kiln_dtype_size(x->dtype);
    const char *src = x->data;
    char *dst = y->data;
    const int64_t CB = kiln__nchwc_blocks(C), CBp = CB * BLK; /* channels with padding */
    for (int64_t pl = lo; pl < hi; pl++) {                       /* pl = n*CBp + ch */
        const int64_t n = pl / CBp, ch = pl % CBp;
        const int64_t blocked = ((n * CB + ch / BLK) * HW) * BLK + ch % BLK; /* + pix*16 */
        const int64_t plain = (n * C + ch) * HW;                                    /* + pix */
        for (int64_t i = 0; i < HW; i++) {
            if (to_blocked) {
                char *d = dst + (size_t)(blocked + i * BLK) * es;
                if (ch < C) memcpy(d, src + (size_t)(plain + i) * es, es);
                else memset(d, 0, es);
            } else if (ch < C) {
                memcpy(dst + (size_t)(plain + i) * es, src + (size_t)(blocked + i * BLK) * es, es);
            }
        }
    }
}

kiln_status kiln__ref_ReorderNCHWc(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const int64_t C = x->dims[1], HW = x->dims[2] * x->dims[3];
    int64_t lo, hi;
    kiln__split(x->dims[0] * kiln__nchwc_blocks(C) * BLK, c->ith, c->nth, &lo, &hi);
    reorder_planes(x, c->out[0], C, HW, 1, lo, hi);
    return KILN_OK;
}

kiln_status kiln__ref_ReorderNCHW(kiln__kctx *c) {
    kiln_tensor *y = c->out[0];
    const int64_t C = y->dims[1], HW = y->dims[2] * y->dims[3];
    int64_t lo, hi;
    kiln__split(y->dims[0] * kiln__nchwc_blocks(C) * BLK, c->ith, c->nth, &lo, &hi);
    reorder_planes(c->in[0], y, C, HW, 0, lo, hi);
    return KILN_OK;
}

/* ---- ConvNCHWc ------------------------------------------------------------------ */

kiln_status kiln__infer_ConvNCHWc(kiln__kctx *c) {
    kiln__nchwc_conv g;
    KILN__TRY(kiln__nchwc_conv_read(c, &g));
    const int64_t dims[5] = {g.N, g.KB, g.P, g.Q, BLK};
    return kiln__out_shape(c, 0, KILN_DTYPE_F32, 5, dims);
}

/* Output row (n, kb, p): every lane k = kb*16 + l. */
static void conv_row(const kiln__nchwc_conv *g, const float *x, const float *w, const float *b,
                     const float *z, float *y, int64_t n, int64_t kb, int64_t p) {
    const int64_t Q = g->Q, HW = g->H * g->W;
    const int64_t row = ((n * g->KB + kb) * g->P + p) * Q * BLK;
    float *yr = y + row;
    /* element (n, c, ih, iw) of X is at xc(c) + ih*xrow + iw*xpix */
    const int64_t xpix = g->input_blocked ? BLK : 1, xrow = g->W * xpix;
    for (int l = 0; l < BLK; l++) {
        const int64_t k = kb * BLK + l;
        if (k >= g->K) {
            for (int64_t q = 0; q < Q; q++) yr[q * BLK + l] = 0.0f;
            continue;
        }
        for (int64_t q = 0; q < Q; q++) yr[q * BLK + l] = b ? b[k] : 0.0f;
        const int64_t Cg = g->C / g->group, c0 = k / (g->K / g->group) * Cg, c1 = c0 + Cg;
        for (int64_t ch = c0; ch < c1; ch++) {
            const float *xc = g->input_blocked
                                  ? x + ((n * g->CB + ch / BLK) * HW) * BLK + ch % BLK
                                  : x + (n * g->C + ch) * HW;
            const float *wk = w + (k * (c1 - c0) + (ch - c0)) * g->R * g->S;
            for (int64_t r = 0; r < g->R; r++) {
                const int64_t ih = p * g->sh - g->ph + r * g->dh;
                if (ih < 0 || ih >= g->H) continue;
                for (int64_t s = 0; s < g->S; s++) {
                    const int64_t off = s * g->dw - g->pw; /* input column = q*sw + off */
                    int64_t lo, hi;
                    kiln__stride_range(off, g->sw, g->W, Q, &lo, &hi);
                    if (lo < hi)
                        kiln__axpy_f32(yr + lo * BLK + l, BLK,
                                       xc + ih * xrow + (lo * g->sw + off) * xpix, g->sw * xpix,
                                       wk[r * g->S + s], hi - lo);
                }
            }
        }
        for (int64_t q = 0; q < Q; q++) {
            float v = yr[q * BLK + l];
            if (z) v += z[row + q * BLK + l];
            yr[q * BLK + l] = kiln__act_apply(&g->act, v);
        }
    }
}

kiln_status kiln__ref_ConvNCHWc(kiln__kctx *c) {
    kiln__nchwc_conv g;
    KILN__TRY(kiln__nchwc_conv_read(c, &g));
    const kiln_tensor *b = kiln__in(c, 2), *z = kiln__in(c, 3);
    const float *x = c->in[0]->data, *w = c->in[1]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__split(g.N * g.KB * g.P, c->ith, c->nth, &lo, &hi);
    for (int64_t it = lo; it < hi; it++)
        conv_row(&g, x, w, b ? b->data : NULL, z ? z->data : NULL, y, it / (g.KB * g.P),
                 it / g.P % g.KB, it % g.P);
    return KILN_OK;
}

/* ---- ConvDwNCHWc ---------------------------------------------------------------- */

/* Floats of the reference's scratch: T, and D when there is a projection. */
static int64_t convdw_scratch(const kiln__nchwc_conv *pw, const kiln__nchwc_conv *dw,
                              const kiln__nchwc_conv *pj) {
    return pw->N * pw->KB * pw->H * pw->W * BLK + (pj->K ? dw->N * dw->KB * dw->P * dw->Q * BLK : 0);
}

kiln_status kiln__infer_ConvDwNCHWc(kiln__kctx *c) {
    kiln__nchwc_conv pw, dw, pj;
    KILN__TRY(kiln__nchwc_convdw_read(c, &pw, &dw, &pj));
    const kiln__nchwc_conv *last = pj.K ? &pj : &dw;
    const int64_t dims[5] = {last->N, last->KB, last->P, last->Q, BLK};
    c->scratch_bytes = (size_t)convdw_scratch(&pw, &dw, &pj) * sizeof(float);
    return kiln__out_shape(c, 0, KILN_DTYPE_F32, 5, dims);
}

/* Output rows (n, kb, p) of g, all of them, into y. */
static void conv_all_rows(const kiln__nchwc_conv *g, const float *x, const kiln_tensor *w,
                          const kiln_tensor *b, const kiln_tensor *z, float *y) {
    for (int64_t it = 0; it < g->N * g->KB * g->P; it++)
        conv_row(g, x, w->data, b ? b->data : NULL, z ? z->data : NULL, y, it / (g->KB * g->P),
                 it / g->P % g->KB, it % g->P);
}

/* The convolutions one after the other, T (and D) whole in the scratch
 * (one thread). */
kiln_status kiln__ref_ConvDwNCHWc(kiln__kctx *c) {
    kiln__nchwc_conv pw, dw, pj;
    KILN__TRY(kiln__nchwc_convdw_read(c, &pw, &dw, &pj));
    float *t = c->scratch, *d = t + pw.N * pw.KB * pw.H * pw.W * BLK;
    conv_all_rows(&pw, c->in[0]->data, c->in[1], c->in[2], NULL, t);
    if (!pj.K) {
        conv_all_rows(&dw, t, c->in[3], c->in[4], NULL, c->out[0]->data);
        return KILN_OK;
    }
    conv_all_rows(&dw, t, c->in[3], c->in[4], NULL, d);
    conv_all_rows(&pj, d, c->in[5], c->in[6], kiln__in(c, 7), c->out[0]->data);
    return KILN_OK;
}

/* ---- PoolNCHWc ------------------------------------------------------------------ */

kiln_status kiln__nchwc_pool_read(const kiln__kctx *c, kiln__nchwc_pool *g) {
    memset(g, 0, sizeof *g);
    const kiln_tensor *x = c->in[0];
    if (x->dtype != KILN_DTYPE_F32)
        return kiln__err(KILN_E_TYPE, "input 'X' has dtype %s, expected float32",
                         kiln_dtype_name(x->dtype));
    if (x->ndim != 5 || x->dims[4] != BLK)
        return kiln__err(KILN_E_SHAPE, "input 'X' has rank %d, expected 5 (N,CB,H,W,%d)",
                         x->ndim, BLK);
    const char *kind = kiln__attr_s(c->node, "kind", "");
    const int global = strncmp(kind, "Global", 6) == 0;
    const char *base = global ? kind + 6 : kind;
    if (strcmp(base, "MaxPool") != 0 && strcmp(base, "AveragePool") != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'kind' is '%s', expected MaxPool, AveragePool, "
                         "GlobalMaxPool or GlobalAveragePool", kind);
    g->max = base[0] == 'M';
    g->C = kiln__attr_i(c->node, "channels", -1);
    if (g->C < 0 || kiln__nchwc_blocks(g->C) != x->dims[1])
        return kiln__err(KILN_E_INVAL, "attribute channels: %lld does not fill the %lld blocks of "
                         "input 'X'", (long long)g->C, (long long)x->dims[1]);
    g->N = x->dims[0];
    g->CB = x->dims[1];
    g->H = x->dims[2];
    g->W = x->dims[3];
    kiln__win w;
    if (global) {
        memset(&w, 0, sizeof w);
        w.nsp = 2;
        for (int i = 0; i < 2; i++) {
            w.in[i] = w.k[i] = x->dims[2 + i];
            w.out[i] = w.stride[i] = w.dil[i] = 1;
        }
    } else {
        KILN__TRY(kiln__win_read(c->node, 2, x->dims + 2, NULL, &w));
        KILN__TRY(kiln__win_forward(&w, kiln__attr_i(c->node, "ceil_mode", 0) != 0));
        g->count_include_pad = kiln__attr_i(c->node, "count_include_pad", 0) != 0;
    }
    g->P = w.out[0];
    g->Q = w.out[1];
    g->R = w.k[0];
    g->S = w.k[1];
    g->sh = w.stride[0];
    g->sw = w.stride[1];
    g->dh = w.dil[0];
    g->dw = w.dil[1];
    g->ph = w.pad0[0];
    g->pw = w.pad0[1];
    g->hp = g->H + w.pad0[0] + w.pad1[0];
    g->wp = g->W + w.pad0[1] + w.pad1[1];
    return KILN_OK;
}

kiln_status kiln__infer_PoolNCHWc(kiln__kctx *c) {
    kiln__nchwc_pool g;
    KILN__TRY(kiln__nchwc_pool_read(c, &g));
    const int64_t dims[5] = {g.N, g.CB, g.P, g.Q, BLK};
    return kiln__out_shape(c, 0, KILN_DTYPE_F32, 5, dims);
}

/* Output rows (n, cb, p) of [lo, hi): each lane as the ONNX pool's reference
 * (ref/pool.c) reduces its plane: max taking a tap when it is greater (NaN
 * only as the first tap), average in double over the taps inside the input
 * (or inside the padded input with count_include_pad). */
kiln_status kiln__ref_PoolNCHWc(kiln__kctx *c) {
    kiln__nchwc_pool g;
    KILN__TRY(kiln__nchwc_pool_read(c, &g));
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__split(g.N * g.CB * g.P, c->ith, c->nth, &lo, &hi);
    for (int64_t row = lo; row < hi; row++) {
        const int64_t p = row % g.P, nb = row / g.P, cb = nb % g.CB;
        const float *xb = x + nb * g.H * g.W * BLK;
        for (int64_t q = 0; q < g.Q; q++)
            for (int l = 0; l < BLK; l++) {
                double acc = g.max ? -INFINITY : 0.0;
                int64_t inside = 0, padded = 0;
                for (int64_t r = 0; r < g.R; r++) {
                    const int64_t ih = p * g.sh - g.ph + r * g.dh;
                    for (int64_t s = 0; s < g.S; s++) {
                        const int64_t iw = q * g.sw - g.pw + s * g.dw;
                        padded += ih + g.ph < g.hp && iw + g.pw < g.wp; /* begin pads: >= 0 */
                        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                        const double v = xb[(ih * g.W + iw) * BLK + l];
                        if (g.max ? inside == 0 || v > acc : 1) acc = g.max ? v : acc + v;
                        inside++;
                    }
                }
                if (!g.max) {
                    const int64_t div = g.count_include_pad ? padded : inside;
                    acc = div ? acc / (double)div : NAN;
                }
                y[((row * g.Q) + q) * BLK + l] = cb * BLK + l < g.C ? (float)acc : 0.0f;
            }
    }
    return KILN_OK;
}
