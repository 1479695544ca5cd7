/* src/dnnl/dnnl_conv.c: Conv and kiln.FusedConv (2-D, f32 NCHW) on oneDNN's
 * convolution primitive (algorithms dnnl_conv, dnnl_fused_conv, each also as
 * _bf16; dnnl_prog.h says how they run).
 *
 *   x: (N,C,H,W), w: (K,C/G,R,S) (as (G,K/G,C/G,R,S) when grouped), b: (K),
 *   z, y: (N,K,P,Q); groups, strides, dilations and asymmetric pads (oneDNN's
 *   padding_l / padding_r); Y = act(conv(x, w) + b + z) with act an eltwise
 *   post-op and z a sum post-op (z is copied into the destination first).
 *
 * oneDNN picks every layout (format any): the weights are reordered once at
 * prepare (per run when they are computed), x is reordered per run from NCHW
 * into the layout it chose (NHWC or blocked, usually), and y is computed in
 * its layout and reordered back to NCHW; the reorders' traffic is part of
 * the cost. The _bf16 algorithms (only when the session asks for bf16) take
 * x and w in bf16 (the same reorders convert them) and write f32 y. */
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "dnnl/dnnl_prog.h"

/* A descriptor of dims with oneDNN choosing the layout. */
static kiln_status md_any(dnnl_memory_desc_t *md, int ndim, const int64_t *dims,
                          dnnl_data_type_t dt) {
    dnnl_dims_t d;
    for (int i = 0; i < ndim; i++) d[i] = dims[i];
    return kiln__dnnl_check(
        kiln__dnnl.memory_desc_init_by_tag(md, ndim, d, dt, dnnl_format_tag_any),
        "memory descriptor");
}

/* End pad that makes oneDNN's output size out, given the begin pad
 * (0 when the begin pad alone already reaches it). */
static int64_t end_pad(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t dil,
                       int64_t pad0) {
    int64_t e = (out - 1) * stride + (k - 1) * dil + 1 - in - pad0;
    return e > 0 ? e : 0;
}

/* The convolution primitive descriptor of geometry g with post-ops. */
static kiln_status conv_pd(const kiln__conv2d *g, int bf16, dnnl_primitive_desc_t *pd) {
    const dnnl_data_type_t cdt = bf16 ? dnnl_bf16 : dnnl_f32;
    int64_t xd[4] = {g->N, g->C, g->H, g->W}, yd[4] = {g->N, g->K, g->P, g->Q};
    int64_t wd[5] = {g->G, g->Kg, g->Cg, g->R, g->S};
    dnnl_memory_desc_t x, w, b, y;
    KILN__TRY(md_any(&x, 4, xd, cdt));
    if (g->G > 1) KILN__TRY(md_any(&w, 5, wd, cdt));
    else KILN__TRY(md_any(&w, 4, wd + 1, cdt));
    KILN__TRY(kiln__dnnl_md_plain(&b, 1, &g->K, dnnl_f32));
    KILN__TRY(md_any(&y, 4, yd, dnnl_f32));
    dnnl_dims_t strides = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pad_l = {g->ph, g->pw};
    dnnl_dims_t pad_r = {end_pad(g->H, g->P, g->R, g->sh, g->dh, g->ph),
                         end_pad(g->W, g->Q, g->S, g->sw, g->dw, g->pw)};
    dnnl_convolution_desc_t cd;
    KILN__TRY(kiln__dnnl_check(
        kiln__dnnl.dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &x, &w,
                                                   g->has_bias ? &b : NULL, &y, strides, dil,
                                                   pad_l, pad_r),
        "convolution descriptor"));
    /* post-ops: [sum z] [eltwise] */
    dnnl_post_ops_t po;
    KILN__TRY(kiln__dnnl_check(kiln__dnnl.post_ops_create(&po), "dnnl_post_ops_create"));
    kiln_status s = KILN_OK;
    if (g->has_z) s = kiln__dnnl_check(kiln__dnnl.post_ops_append_sum(po, 1.0f), "sum post-op");
    if (s == KILN_OK) s = kiln__dnnl_post_act(po, &g->act);
    dnnl_primitive_attr_t attr = NULL;
    if (s == KILN_OK) s = kiln__dnnl_attr(&attr, po, 1.0f);
    kiln__dnnl.post_ops_destroy(po);
    if (s == KILN_OK)
        s = kiln__dnnl_check(
            kiln__dnnl.primitive_desc_create(pd, &cd, attr, kiln__dnnl_engine(), NULL),
            "convolution");
    if (attr) kiln__dnnl.primitive_attr_destroy(attr);
    return s;
}

/* The program: [x reorder] [w reorder] [z -> y copy] conv [y reorder]. */
static kiln_status build(kiln__kctx *c, const kiln__conv2d *g, int bf16, kiln__dnnl_prog *p) {
    dnnl_primitive_desc_t pd;
    KILN__TRY(conv_pd(g, bf16, &pd));
    int64_t xd[4] = {g->N, g->C, g->H, g->W}, yd[4] = {g->N, g->K, g->P, g->Q};
    int64_t wd[5] = {g->G, g->Kg, g->Cg, g->R, g->S};
    dnnl_memory_desc_t x_u, w_u, b_u, y_u;
    kiln_status s = kiln__dnnl_md_plain(&x_u, 4, xd, dnnl_f32);
    if (s == KILN_OK)
        s = g->G > 1 ? kiln__dnnl_md_plain(&w_u, 5, wd, dnnl_f32)
                     : kiln__dnnl_md_plain(&w_u, 4, wd + 1, dnnl_f32);
    if (s == KILN_OK) s = kiln__dnnl_md_plain(&b_u, 1, &g->K, dnnl_f32);
    if (s == KILN_OK) s = kiln__dnnl_md_plain(&y_u, 4, yd, dnnl_f32);
    const dnnl_memory_desc_t *x_md = kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md =
        kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *y_md = kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    int xm, xu, wm, wu, bm = -1, ym, yu, zu;
    if (s == KILN_OK) s = kiln__dnnl_operand(p, &x_u, x_md, KILN__DNNL_BIND_IN, 0, &xm, &xu);
    if (s == KILN_OK && xm != xu) s = kiln__dnnl_reorder_add(p, xu, xm);
    const kiln_tensor *w = c->in[1];
    if (s == KILN_OK && w->data) {
        s = kiln__dnnl_const_add(p, &w_u, w->data, w_md, &wm);
    } else if (s == KILN_OK) {
        s = kiln__dnnl_operand(p, &w_u, w_md, KILN__DNNL_BIND_IN, 1, &wm, &wu);
        if (s == KILN_OK && wm != wu) s = kiln__dnnl_reorder_add(p, wu, wm);
    }
    if (s == KILN_OK && g->has_bias) s = kiln__dnnl_mem_add(p, &b_u, KILN__DNNL_BIND_IN, 2, &bm);
    if (s == KILN_OK) s = kiln__dnnl_operand(p, &y_u, y_md, KILN__DNNL_BIND_OUT, 0, &ym, &yu);
    if (s == KILN_OK && g->has_z) { /* the sum post-op adds what the destination holds */
        s = kiln__dnnl_mem_add(p, &y_u, KILN__DNNL_BIND_IN, 3, &zu);
        if (s == KILN_OK) s = kiln__dnnl_reorder_add(p, zu, ym);
    }
    if (s == KILN_OK) {
        int args[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}, mems[4] = {xm, wm, ym}, n = 3;
        if (bm >= 0) {
            args[n] = DNNL_ARG_BIAS;
            mems[n++] = bm;
        }
        s = kiln__dnnl_step_add(p, pd, n, args, mems);
    }
    if (s == KILN_OK && ym != yu) s = kiln__dnnl_reorder_add(p, ym, yu);
    size_t wbytes = kiln__dnnl.memory_desc_get_size(w_md);
    kiln__dnnl.primitive_desc_destroy(pd);
    if (s != KILN_OK) return s;

    double flops = kiln__conv_direct_flops(g);
    c->flops = flops;
    p->cost_flops = bf16 ? 0.5 * flops : flops; /* vdpbf16ps: twice the products per cycle */
    /* as a GEMM per group: output channels x output pixels x reduction */
    p->cost_eff = kiln__dnnl_gemm_eff((double)g->Kg, (double)(g->P * g->Q),
                                      (double)(g->Cg * g->R * g->S));
    double w_f32 = 4.0 * (double)g->K * (double)(g->Cg * g->R * g->S);
    p->cost_bytes += kiln__conv_io_bytes(g) - w_f32 + (double)wbytes; /* weights as stored */
    kiln__dnnl_prog_finish(c, p);
    return KILN_OK;
}

static kiln_status conv_prepare(kiln__kctx *c, int bf16) {
    if (bf16 && !kiln__dnnl_bf16_ok(c))
        return kiln__err(KILN_E_UNSUPPORTED, "bf16 products only at bf16 precision");
    kiln__conv2d g;
    KILN__TRY(kiln__conv2d_read(c, &g));
    if (g.N <= 0 || g.K <= 0 || g.C <= 0 || g.P <= 0 || g.Q <= 0)
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN conv: empty tensor");
    kiln__dnnl_prog *p;
    KILN__TRY(kiln__dnnl_prog_new(c, &p));
    kiln_status s = build(c, &g, bf16, p);
    if (s != KILN_OK) {
        kiln__dnnl_prog_free(p);
        c->kstate = NULL;
        c->scratch_bytes = 0;
    }
    return s;
}

static kiln_status conv_f32(kiln__kctx *c) { return conv_prepare(c, 0); }
static kiln_status conv_bf16(kiln__kctx *c) { return conv_prepare(c, 1); }

KILN__DNNL_ALGO(dnnl_conv, "", "Conv", conv_f32);
KILN__DNNL_ALGO(dnnl_conv_bf16, "", "Conv", conv_bf16);
KILN__DNNL_ALGO(dnnl_fused_conv, "kiln", "FusedConv", conv_f32);
KILN__DNNL_ALGO(dnnl_fused_conv_bf16, "kiln", "FusedConv", conv_bf16);
