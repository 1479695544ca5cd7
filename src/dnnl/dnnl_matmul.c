/* src/dnnl/dnnl_matmul.c: MatMul, Gemm and kiln.FusedMatMul on oneDNN's
 * matmul primitive (algorithms dnnl_matmul, dnnl_gemm, dnnl_fused_matmul,
 * each also as _bf16; dnnl_prog.h says how they run).
 *
 *   MatMul       A (..., M, K) or (K) x B (..., K, N) or (K), numpy batch
 *                broadcasting (oneDNN's own: batch dims of 1 broadcast); a
 *                batch only A has, with one B matrix, folds into M.
 *   Gemm         Y (M,N) = alpha op(A) op(B) + beta C: op = transpose through
 *                the descriptors' strides, alpha an output scale, C a binary
 *                add post-op broadcast from its shape (scaled by beta once at
 *                prepare, which needs C constant when beta != 1).
 *   FusedMatMul  Y = act(MatMul(A, B) + Bias + Z): Bias the matmul's bias
 *                (N), Z a binary add post-op, act an eltwise post-op.
 *
 * B constant (weights): reordered once at prepare into the blocked layout
 * oneDNN chose (format any), in bf16 for the _bf16 algorithms. B computed at
 * run time: used in place at f32, reordered per run into the scratch at bf16.
 * The _bf16 algorithms (only when the session asks for bf16) reorder A to
 * bf16 per run and write f32 Y. f32 tensors only. */
#include <string.h>

#include "dnnl/dnnl_prog.h"

/* The product in oneDNN's terms: rank r >= 2 descriptors of A (..., M, K),
 * B (..., K, N), Y (..., M, N), batch dims of 1 where a side broadcasts. */
typedef struct mm_desc {
    int r;
    int64_t a[DNNL_MAX_NDIMS], b[DNNL_MAX_NDIMS], y[DNNL_MAX_NDIMS];
    int trans_a, trans_b; /* Gemm: A stored (K, M), B stored (N, K) */
    double m, n, k, batch;
} mm_desc;

/* What the node adds to the product. */
typedef struct mm_epi {
    float alpha;                      /* output scale */
    int bias_in;                      /* input of the (N) bias, -1: none */
    int add_in;                       /* input of the binary add operand, -1: none */
    int64_t add_dims[DNNL_MAX_NDIMS]; /* its dims at rank r (1: broadcast) */
    float add_scale;                  /* != 1: the operand is scaled once (constant only) */
    kiln__act act;
} mm_epi;

static void epi_init(mm_epi *e) {
    memset(e, 0, sizeof *e);
    e->alpha = 1.0f;
    e->bias_in = e->add_in = -1;
    e->add_scale = 1.0f;
}

/* KILN_OK if the present inputs [0, n) and output 0 are f32. */
static kiln_status all_f32(const kiln__kctx *c, int n) {
    for (int i = 0; i < n; i++)
        if (kiln__in(c, i) && c->in[i]->dtype != KILN_DTYPE_F32)
            return kiln__err(KILN_E_UNSUPPORTED, "oneDNN matmul: f32 only");
    const kiln_tensor *y = kiln__out(c, 0);
    if (!y || y->dtype != KILN_DTYPE_F32)
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN matmul: f32 only");
    return KILN_OK;
}

static kiln_status nonempty(const mm_desc *d) {
    if (d->m <= 0 || d->n <= 0 || d->k <= 0 || d->batch <= 0)
        return kiln__err(KILN_E_UNSUPPORTED, "oneDNN matmul: empty product");
    return KILN_OK;
}

/* numpy matmul of inputs 0 and 1 (shapes as MatMul's infer accepted them). */
static kiln_status matmul_desc(const kiln__kctx *c, mm_desc *d) {
    memset(d, 0, sizeof *d);
    const kiln_tensor *a = c->in[0], *b = c->in[1];
    if (a->ndim < 1 || b->ndim < 1) return kiln__err(KILN_E_UNSUPPORTED, "matmul of a scalar");
    const int a1 = a->ndim == 1, b1 = b->ndim == 1;
    const int64_t m = a1 ? 1 : a->dims[a->ndim - 2], k = a->dims[a->ndim - 1];
    const int64_t n = b1 ? 1 : b->dims[b->ndim - 1];
    const int anb = a1 ? 0 : a->ndim - 2, bnb = b1 ? 0 : b->ndim - 2;
    const int nb = anb > bnb ? anb : bnb;
    if (nb + 2 > DNNL_MAX_NDIMS) return kiln__err(KILN_E_UNSUPPORTED, "oneDNN matmul: rank");
    int64_t batch = 1;
    int b_batched = 0, a_full = 1;
    for (int i = 0; i < nb; i++) {
        int64_t da = i >= nb - anb ? a->dims[i - (nb - anb)] : 1;
        int64_t db = i >= nb - bnb ? b->dims[i - (nb - bnb)] : 1;
        int64_t dy = da == 1 ? db : da;
        d->a[i] = da;
        d->b[i] = db;
        d->y[i] = dy;
        batch *= dy;
        b_batched |= db != 1;
        a_full &= da == dy;
    }
    d->m = (double)m;
    d->n = (double)n;
    d->k = (double)k;
    d->batch = (double)batch;
    if (!b_batched && a_full) { /* (batch..., M, K) x one (K, N): batch rows of A and Y */
        d->r = 2;
        d->a[0] = d->y[0] = m * batch;
        d->m = (double)(m * batch);
        d->batch = 1;
    } else {
        d->r = nb + 2;
        d->a[nb] = d->y[nb] = m;
    }
    int r = d->r;
    d->a[r - 1] = d->b[r - 2] = k;
    d->b[r - 1] = d->y[r - 1] = n;
    return nonempty(d);
}

/* A user descriptor: plain, or for Gemm's transposed operands the (rows,
 * cols) matrix stored column-major. */
static kiln_status user_md(dnnl_memory_desc_t *md, int r, const int64_t *dims, int trans) {
    if (!trans) return kiln__dnnl_md_plain(md, r, dims, dnnl_f32);
    dnnl_dims_t d = {dims[0], dims[1]}, str = {1, dims[0]};
    return kiln__dnnl_check(kiln__dnnl.memory_desc_init_by_strides(md, 2, d, dnnl_f32, str),
                            "memory descriptor");
}

/* Builds the program of c's node: product d with epilogue e, in bf16 when
 * bf16; c->kstate on success. */
static kiln_status build(kiln__kctx *c, const mm_desc *d, const mm_epi *e, int bf16,
                         kiln__dnnl_prog *p) {
    const int r = d->r;
    const dnnl_data_type_t cdt = bf16 ? dnnl_bf16 : dnnl_f32;
    const kiln_tensor *b_t = c->in[1];
    dnnl_memory_desc_t a_u, b_u, y_u, a_c, b_c, bias_md, add_md;
    KILN__TRY(user_md(&a_u, r, d->a, d->trans_a));
    KILN__TRY(user_md(&b_u, r, d->b, d->trans_b));
    KILN__TRY(kiln__dnnl_md_plain(&y_u, r, d->y, dnnl_f32));
    a_c = a_u;
    b_c = b_u;
    dnnl_dims_t dims;
    if (bf16) {
        memcpy(dims, d->a, sizeof(int64_t) * (size_t)r);
        KILN__TRY(kiln__dnnl_check(kiln__dnnl.memory_desc_init_by_tag(&a_c, r, dims, cdt,
                                                                 dnnl_format_tag_any), "src"));
    }
    if (bf16 || b_t->data) { /* the layout oneDNN likes: reordered once, or per run at bf16 */
        memcpy(dims, d->b, sizeof(int64_t) * (size_t)r);
        KILN__TRY(kiln__dnnl_check(kiln__dnnl.memory_desc_init_by_tag(&b_c, r, dims, cdt,
                                                                 dnnl_format_tag_any), "weights"));
    }
    if (e->bias_in >= 0) {
        int64_t bd[DNNL_MAX_NDIMS];
        for (int i = 0; i < r; i++) bd[i] = 1;
        bd[r - 1] = d->y[r - 1];
        KILN__TRY(kiln__dnnl_md_plain(&bias_md, r, bd, dnnl_f32));
    }
    /* post-ops: [binary add] [eltwise] */
    dnnl_post_ops_t po;
    KILN__TRY(kiln__dnnl_check(kiln__dnnl.post_ops_create(&po), "dnnl_post_ops_create"));
    kiln_status s = KILN_OK;
    if (e->add_in >= 0) {
        s = kiln__dnnl_md_plain(&add_md, r, e->add_dims, dnnl_f32);
        if (s == KILN_OK)
            s = kiln__dnnl_check(kiln__dnnl.post_ops_append_binary(po, dnnl_binary_add, &add_md),
                                 "binary post-op");
    }
    if (s == KILN_OK) s = kiln__dnnl_post_act(po, &e->act);
    dnnl_primitive_attr_t attr = NULL;
    if (s == KILN_OK) s = kiln__dnnl_attr(&attr, po, e->alpha);
    kiln__dnnl.post_ops_destroy(po);
    dnnl_primitive_desc_t pd = NULL;
    if (s == KILN_OK) {
        dnnl_matmul_desc_t md;
        s = kiln__dnnl_check(kiln__dnnl.matmul_desc_init(&md, &a_c, &b_c,
                                                   e->bias_in >= 0 ? &bias_md : NULL, &y_u),
                             "matmul descriptor");
        if (s == KILN_OK)
            s = kiln__dnnl_check(
                kiln__dnnl.primitive_desc_create(&pd, &md, attr, kiln__dnnl_engine(), NULL),
                "matmul");
    }
    if (attr) kiln__dnnl.primitive_attr_destroy(attr);
    if (s != KILN_OK) return s;

    int am, au, bm, bu, ym, bias_m = -1, add_m = -1;
    const dnnl_memory_desc_t *src_md = kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md =
        kiln__dnnl.primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    s = kiln__dnnl_operand(p, &a_u, src_md, KILN__DNNL_BIND_IN, 0, &am, &au);
    if (s == KILN_OK && am != au) s = kiln__dnnl_reorder_add(p, au, am);
    if (s == KILN_OK && b_t->data) {
        s = kiln__dnnl_const_add(p, &b_u, b_t->data, w_md, &bm);
    } else if (s == KILN_OK) {
        s = kiln__dnnl_operand(p, &b_u, w_md, KILN__DNNL_BIND_IN, 1, &bm, &bu);
        if (s == KILN_OK && bm != bu) s = kiln__dnnl_reorder_add(p, bu, bm);
    }
    if (s == KILN_OK && e->bias_in >= 0)
        s = kiln__dnnl_mem_add(p, &bias_md, KILN__DNNL_BIND_IN, e->bias_in, &bias_m);
    if (s == KILN_OK && e->add_in >= 0 && e->add_scale != 1.0f) { /* beta * C, once */
        const kiln_tensor *t = c->in[e->add_in];
        s = kiln__dnnl_mem_add(p, &add_md, KILN__DNNL_BIND_OWNED, 0, &add_m);
        if (s == KILN_OK) {
            float *dst = (float *)kiln__dnnl_mem_data(p, add_m);
            const float *src = (const float *)t->data;
            for (int64_t i = 0, n = kiln__n(t); i < n; i++) dst[i] = e->add_scale * src[i];
        }
    } else if (s == KILN_OK && e->add_in >= 0) {
        s = kiln__dnnl_mem_add(p, &add_md, KILN__DNNL_BIND_IN, e->add_in, &add_m);
    }
    if (s == KILN_OK) s = kiln__dnnl_mem_add(p, &y_u, KILN__DNNL_BIND_OUT, 0, &ym);
    if (s == KILN_OK) {
        int args[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST}, mems[5] = {am, bm, ym}, n = 3;
        if (bias_m >= 0) {
            args[n] = DNNL_ARG_BIAS;
            mems[n++] = bias_m;
        }
        if (add_m >= 0) {
            args[n] = DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1;
            mems[n++] = add_m;
        }
        s = kiln__dnnl_step_add(p, pd, n, args, mems);
    }
    size_t wbytes = kiln__dnnl.memory_desc_get_size(w_md);
    kiln__dnnl.primitive_desc_destroy(pd);
    if (s != KILN_OK) return s;

    double flops = 2.0 * d->m * d->n * d->k * d->batch;
    c->flops = flops;
    p->cost_flops = bf16 ? 0.5 * flops : flops; /* vdpbf16ps: twice the products per cycle */
    p->cost_eff = kiln__dnnl_gemm_eff(d->m, d->n, d->k);
    p->cost_bytes += 4.0 * (double)kiln__n(c->in[0]) + (double)wbytes +
                     4.0 * (double)kiln__n(c->out[0]) * (e->add_in >= 0 ? 2 : 1);
    kiln__dnnl_prog_finish(c, p);
    return KILN_OK;
}

/* Creates the program and builds it (nothing left allocated on failure). */
static kiln_status prepare(kiln__kctx *c, const mm_desc *d, const mm_epi *e, int bf16) {
    if (bf16 && !kiln__dnnl_bf16_ok(c))
        return kiln__err(KILN_E_UNSUPPORTED, "bf16 products only at bf16 precision");
    kiln__dnnl_prog *p;
    KILN__TRY(kiln__dnnl_prog_new(c, &p));
    kiln_status s = build(c, d, e, bf16, p);
    if (s != KILN_OK) {
        kiln__dnnl_prog_free(p);
        c->kstate = NULL;
        c->scratch_bytes = 0;
    }
    return s;
}

/* ---- the three ops ------------------------------------------------------------ */

static kiln_status matmul_prepare(kiln__kctx *c, int bf16) {
    KILN__TRY(all_f32(c, 2));
    mm_desc d;
    mm_epi e;
    KILN__TRY(matmul_desc(c, &d));
    epi_init(&e);
    return prepare(c, &d, &e, bf16);
}

/* A (..., M, K), B (..., K, N), Bias (N), Z (Y's shape) -> Y (..., M, N). */
static kiln_status fused_prepare(kiln__kctx *c, int bf16) {
    KILN__TRY(all_f32(c, 4));
    mm_desc d;
    mm_epi e;
    KILN__TRY(matmul_desc(c, &d));
    epi_init(&e);
    KILN__TRY(kiln__act_from_node(c->node, &e.act));
    const kiln_tensor *bias = kiln__in(c, 2), *z = kiln__in(c, 3);
    if (bias) {
        if (kiln__n(bias) != d.y[d.r - 1]) return KILN_E_UNSUPPORTED; /* infer refuses it */
        e.bias_in = 2;
    }
    if (z) {
        if (kiln__n(z) != kiln__n(c->out[0])) return KILN_E_UNSUPPORTED;
        e.add_in = 3;
        memcpy(e.add_dims, d.y, sizeof d.y);
    }
    return prepare(c, &d, &e, bf16);
}

/* A (M,K) or (K,M) (transA), B (K,N) or (N,K) (transB), C broadcastable
 * to (M,N) -> Y (M,N). */
static kiln_status gemm_prepare(kiln__kctx *c, int bf16) {
    KILN__TRY(all_f32(c, 3));
    const kiln_tensor *a = c->in[0], *b = c->in[1], *cc = kiln__in(c, 2);
    if (a->ndim != 2 || b->ndim != 2) return KILN_E_UNSUPPORTED; /* infer refuses it */
    mm_desc d;
    memset(&d, 0, sizeof d);
    d.r = 2;
    d.trans_a = kiln__attr_i(c->node, "transA", 0) != 0;
    d.trans_b = kiln__attr_i(c->node, "transB", 0) != 0;
    int64_t m = a->dims[d.trans_a ? 1 : 0], k = a->dims[d.trans_a ? 0 : 1];
    int64_t n = b->dims[d.trans_b ? 0 : 1];
    if (b->dims[d.trans_b ? 1 : 0] != k) return KILN_E_UNSUPPORTED;
    d.a[0] = d.y[0] = m;
    d.a[1] = d.b[0] = k;
    d.b[1] = d.y[1] = n;
    d.m = (double)m;
    d.n = (double)n;
    d.k = (double)k;
    d.batch = 1;
    KILN__TRY(nonempty(&d));
    mm_epi e;
    epi_init(&e);
    e.alpha = kiln__attr_f(c->node, "alpha", 1.0f);
    float beta = kiln__attr_f(c->node, "beta", 1.0f);
    if (cc && beta != 0.0f) {
        if (cc->ndim > 2) return KILN_E_UNSUPPORTED; /* infer refuses it */
        if (beta != 1.0f && !cc->data)
            return kiln__err(KILN_E_UNSUPPORTED, "oneDNN gemm: beta != 1 needs a constant C");
        e.add_dims[0] = e.add_dims[1] = 1;
        for (int i = 0; i < cc->ndim; i++) {
            int64_t dim = cc->dims[i], want = d.y[2 - cc->ndim + i];
            if (dim != want && dim != 1) return KILN_E_UNSUPPORTED; /* infer refuses it */
            e.add_dims[2 - cc->ndim + i] = dim;
        }
        e.add_in = 2;
        e.add_scale = beta;
    }
    return prepare(c, &d, &e, bf16);
}

/* ---- the algorithm table entries ----------------------------------------------------- */

static kiln_status matmul_f32(kiln__kctx *c) { return matmul_prepare(c, 0); }
static kiln_status matmul_bf16(kiln__kctx *c) { return matmul_prepare(c, 1); }
static kiln_status gemm_f32(kiln__kctx *c) { return gemm_prepare(c, 0); }
static kiln_status gemm_bf16(kiln__kctx *c) { return gemm_prepare(c, 1); }
static kiln_status fused_f32(kiln__kctx *c) { return fused_prepare(c, 0); }
static kiln_status fused_bf16(kiln__kctx *c) { return fused_prepare(c, 1); }

KILN__DNNL_ALGO(dnnl_matmul, "", "MatMul", matmul_f32);
KILN__DNNL_ALGO(dnnl_matmul_bf16, "", "MatMul", matmul_bf16);
KILN__DNNL_ALGO(dnnl_gemm, "", "Gemm", gemm_f32);
KILN__DNNL_ALGO(dnnl_gemm_bf16, "", "Gemm", gemm_bf16);
KILN__DNNL_ALGO(dnnl_fused_matmul, "kiln", "FusedMatMul", fused_f32);
KILN__DNNL_ALGO(dnnl_fused_matmul_bf16, "kiln", "FusedMatMul", fused_bf16);
