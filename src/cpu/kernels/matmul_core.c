/* src/cpu/kernels/matmul_core.c: the batched f32 GEMM plan of the MatMul,
 * Gemm and kiln.FusedMatMul algorithms: batch geometry, B packed once,
 * scratch layout, the threaded run and the cost estimate (matmul.h). */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/matmul.h"
#include "ops/algo.h"

#define ALIGN 64

static size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

int kiln__mm_compute_supported(kiln__gemm_compute ct) {
    return kiln__gemm_compute_supported(ct);
}

void kiln__mm_plan_init(kiln__mm_plan *p) {
    memset(p, 0, sizeof *p);
    p->alpha = 1.0f;
    p->beta = 0.0f;
    p->act = KILN__GEMM_ACT_NONE;
    p->compute = KILN__GEMM_F32;
    p->nbatch = 1;
    p->a_in = p->b_in = p->bias_in = p->res_in = p->copy_in = -1;
    p->bias_scale = 1.0f;
    p->bias_stride = 1;
}

kiln_status kiln__mm_plan_matmul(kiln__mm_plan *p, const kiln__kctx *c, int a_in, int b_in) {
    const kiln_tensor *a = c->in[a_in], *b = c->in[b_in];
    char s1[96], s2[96];
    if (a->ndim < 1 || b->ndim < 1)
        return kiln__err(KILN_E_SHAPE, "matmul: inputs of rank 0");
    const int a1 = a->ndim == 1, b1 = b->ndim == 1;
    p->a_in = a_in;
    p->b_in = b_in;
    p->m = a1 ? 1 : a->dims[a->ndim - 2];
    p->k = a->dims[a->ndim - 1];
    p->n = b1 ? 1 : b->dims[b->ndim - 1];
    if ((b1 ? b->dims[0] : b->dims[b->ndim - 2]) != p->k)
        return kiln__err(KILN_E_SHAPE, "matmul: inputs %s and %s: inner dims differ",
                         kiln__shape_str(a->ndim, a->dims, s1, sizeof s1),
                         kiln__shape_str(b->ndim, b->dims, s2, sizeof s2));
    p->trans_a = p->trans_b = 0;
    p->lda = p->k;
    p->ldb = p->n;
    const int anb = a1 ? 0 : a->ndim - 2, bnb = b1 ? 0 : b->ndim - 2;
    KILN__TRY(kiln__broadcast(anb, a->dims, bnb, b->dims, &p->nb, p->bdims));
    kiln__bcast_strides(anb, a->dims, p->nb, p->bdims, p->a_bstr);
    kiln__bcast_strides(bnb, b->dims, p->nb, p->bdims, p->b_bstr);
    int b_batched = 0, a_full = anb == p->nb;
    p->nbatch = 1;
    for (int d = 0; d < p->nb; d++) {
        p->nbatch *= p->bdims[d];
        p->a_bstr[d] *= p->m * p->k;
        p->b_bstr[d] *= p->k * p->n;
        b_batched |= p->b_bstr[d] != 0;
        a_full &= a->dims[d] == p->bdims[d];
    }
    /* (batch..., M, K) x one (K, N): the batch is contiguous rows of A and Y */
    if (!b_batched && a_full) {
        p->m *= p->nbatch;
        p->nbatch = 1;
        p->nb = 0;
    }
    return KILN_OK;
}

void kiln__mm_release(void *kstate) {
    kiln__mm_plan *p = (kiln__mm_plan *)kstate;
    if (!p) return;
    kiln__aligned_free(p->packed);
    free(p);
}

/* Args of one product with the plan's sizes and epilogue kinds; the data
 * pointers are left for the caller. */
static kiln__gemm_args base_args(const kiln__mm_plan *p) {
    kiln__gemm_args g = {
        .m = p->m, .n = p->n, .k = p->k, .trans_a = p->trans_a, .trans_b = p->trans_b,
        .alpha = p->alpha, .beta = p->beta, .lda = p->lda, .ldb = p->ldb,
        .b_packed = p->packed != NULL, .ldc = p->n, .bias_kind = KILN__GEMM_BIAS_NONE,
        .ldr = p->n, .act = p->act, .act_min = p->act_min, .act_max = p->act_max,
        .isa = KILN__GEMM_ISA_AUTO, .compute = p->compute,
    };
    if (p->bias_in >= 0) g.bias_kind = p->bias_kind;
    return g;
}

/* Packs every distinct B matrix of input b_in (its data known) into p. */
static kiln_status pack_weights(kiln__mm_plan *p, const kiln_tensor *b) {
    const int64_t kn = p->k * p->n;
    p->n_packed = kiln__n(b) / kn;
    size_t one = kiln__gemm_packed_b_bytes_ex(KILN__GEMM_ISA_AUTO, p->compute, p->k, p->n);
    if (one == 0 || p->n_packed < 1)
        return kiln__err(KILN_E_INVAL, "matmul: cannot pack B (K=%lld N=%lld)",
                         (long long)p->k, (long long)p->n);
    p->packed_stride = align_up(one);
    if ((size_t)p->n_packed > SIZE_MAX / p->packed_stride)
        return kiln__err(KILN_E_NOMEM, "matmul: packed B too large");
    p->packed = kiln__aligned_alloc(p->packed_stride * (size_t)p->n_packed);
    if (!p->packed) return KILN_E_NOMEM;
    for (int64_t i = 0; i < p->n_packed; i++)
        KILN__TRY(kiln__gemm_pack_b_ex(KILN__GEMM_ISA_AUTO, p->compute, p->trans_b, p->k, p->n,
                                       (const float *)b->data + i * kn, p->ldb,
                                       (char *)p->packed + (size_t)i * p->packed_stride,
                                       p->packed_stride));
    return KILN_OK;
}

/* Sizes the scratch (the layout is in matmul.h). Fails as kiln__sgemm
 * would on the plan's arguments. */
static kiln_status size_scratch(kiln__mm_plan *p, kiln__kctx *c) {
    p->nth = c->nth_plan > 0 && !p->serial ? c->nth_plan : 1;
    size_t one = 0, split = 0;
    if (p->m > 0 && p->n > 0) {
        /* sizing reads no data, but the argument checks want pointers */
        static const float dummy[1];
        kiln__gemm_args g = base_args(p);
        g.a = g.b = g.bias = dummy;
        if (g.b_packed) g.b = (const float *)p->packed;
        g.c = (float *)dummy;
        one = kiln__sgemm_scratch_bytes(&g, 1);
        split = p->nth > 1 ? kiln__sgemm_scratch_bytes(&g, p->nth) : 0;
        if (one == 0 || (p->nth > 1 && split == 0))
            return KILN_E_UNSUPPORTED; /* kiln__sgemm refuses it (message set) */
    }
    /* whole products run on every thread when there are several (or one
     * thread); a single product on the caller alone (no pool) uses the split
     * region */
    p->n_slices = p->nth == 1 || p->nbatch > 1 ? p->nth : 0;
    p->slice_bytes = align_up(one);
    p->tile_off = p->slice_bytes * (size_t)p->n_slices;
    p->bias_off = p->tile_off + align_up(split);
    size_t bias_floats = 0;
    if (p->bias_in >= 0 && p->bias_src == KILN__MM_BIAS_SCALED)
        bias_floats = (size_t)(p->bias_kind == KILN__GEMM_BIAS_COL ? p->n : p->m);
    c->scratch_bytes = ALIGN + p->bias_off + bias_floats * sizeof(float);
    return KILN_OK;
}

kiln_status kiln__mm_finish(kiln__kctx *c, const kiln__mm_plan *plan) {
    kiln__mm_plan *p = (kiln__mm_plan *)malloc(sizeof *p);
    if (!p) return kiln__err(KILN_E_NOMEM, "matmul: out of memory");
    *p = *plan;
    p->packed = NULL;
    p->n_packed = 0;
    kiln_status s = KILN_OK;
    const kiln_tensor *b = c->in[p->b_in];
    if (b->data && p->k > 0 && p->n > 0 && p->m > 0 && p->nbatch > 0)
        s = pack_weights(p, b);
    if (s == KILN_OK) {
        kiln__kctx one = *c; /* the estimate on one thread */
        one.nth_plan = 1;
        one.kstate = p;
        one.flops = 2.0 * (double)p->m * (double)p->n * (double)p->k * (double)p->nbatch;
        p->serial = kiln__mm_cost(&one) < KILN__MM_SERIAL_S;
        s = size_scratch(p, c);
    }
    if (s != KILN_OK) {
        kiln__mm_release(p);
        return s;
    }
    c->flops = 2.0 * (double)p->m * (double)p->n * (double)p->k * (double)p->nbatch;
    c->kstate = p;
    return KILN_OK;
}

/* ---- cost ---------------------------------------------------------------- */

/* Share of a t-wide register tile that x rows / columns fill. */
static double fill(int64_t x, int64_t t) {
    if (x <= 0) return 1.0;
    return (double)x / (double)((x + t - 1) / t * t);
}

double kiln__mm_cost(const kiln__kctx *c) {
    const kiln__mm_plan *p = (const kiln__mm_plan *)c->kstate;
    double flops = c->flops;
    /* the AVX-512 tile is 14x32; a thin M runs its edge rows at a fraction of
     * peak but streams B (then the bytes dominate); a short K leaves each
     * tile's load, epilogue and store less product to hide behind */
    double k = (double)p->k;
    double eff = 0.85 * fill(p->m, 14) * fill(p->n, 32) * (k / (k + 8.0));
    double welem = p->compute == KILN__GEMM_BF16 ? 2.0 : 4.0;
    if (p->compute == KILN__GEMM_BF16) flops *= 0.5; /* twice the products per cycle */
    double a_elems = (double)kiln__n(c->in[p->a_in]);
    double b_elems = p->packed ? (double)p->n_packed * (double)p->k * (double)p->n
                               : (double)kiln__n(c->in[p->b_in]);
    double y_elems = (double)p->nbatch * (double)p->m * (double)p->n;
    double bytes = 4.0 * a_elems + welem * b_elems + 4.0 * y_elems * (p->res_in >= 0 ? 2 : 1);
    if (p->serial && c->nth_plan > 1) { /* runs on one thread whatever the plan has */
        kiln__kctx one = *c;
        one.nth_plan = 1;
        return kiln__cost_seconds(&one, flops, eff, bytes);
    }
    return kiln__cost_seconds(c, flops, eff, bytes);
}

/* ---- run ------------------------------------------------------------------ */

typedef struct mm_job {
    const kiln__mm_plan *p;
    kiln__gemm_args g; /* product 0's args */
    char *scratch;     /* ALIGN-aligned (layout in matmul.h) */
    int failed;        /* set (atomically) by a thread whose kiln__sgemm failed */
} mm_job;

/* Args of product bi: the template moved to its batch offsets. */
static void product_args(const mm_job *j, int64_t bi, kiln__gemm_args *g) {
    const kiln__mm_plan *p = j->p;
    *g = j->g;
    if (p->nb == 0) return;
    int64_t ao = 0, bo = 0, yo = bi * p->m * p->n;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t i = bi % p->bdims[d];
        bi /= p->bdims[d];
        ao += i * p->a_bstr[d];
        bo += i * p->b_bstr[d];
    }
    g->a += ao;
    if (g->b_packed)
        g->b = (const float *)((const char *)g->b +
                               (size_t)(bo / (p->k * p->n)) * p->packed_stride);
    else
        g->b += bo;
    g->c += yo;
    if (g->residual) g->residual += yo;
}

static void mm_task(void *arg, int ith, int nth) {
    mm_job *j = (mm_job *)arg;
    const kiln__mm_plan *p = j->p;
    kiln__gemm_args g;
    /* whole products first, nth at a time */
    const int64_t whole = p->nbatch / nth * nth;
    int64_t lo, hi;
    kiln__split(whole, ith, nth, &lo, &hi);
    for (int64_t bi = lo; bi < hi; bi++) {
        product_args(j, bi, &g);
        g.scratch = p->n_slices ? j->scratch + (size_t)ith * p->slice_bytes
                                : j->scratch + p->tile_off;
        if (kiln__sgemm(&g, 0, 1) != KILN_OK) __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    }
    /* the rest: each product's C tiles over all threads */
    for (int64_t bi = whole; bi < p->nbatch; bi++) {
        product_args(j, bi, &g);
        g.scratch = j->scratch + p->tile_off;
        if (kiln__sgemm(&g, ith, nth) != KILN_OK) __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    }
}

/* 1 if the n floats at x and y overlap. */
static int overlaps(const float *x, const float *y, int64_t n) {
    return x < y + n && y < x + n;
}

/* Gemm: Y (M,N) = C broadcast through strides (rs, cs), unless C is Y. */
static void expand_into(float *y, const float *src, int64_t m, int64_t n, int64_t rs, int64_t cs) {
    if (src == y) return;
    for (int64_t i = 0; i < m; i++)
        for (int64_t jj = 0; jj < n; jj++) y[i * n + jj] = src[i * rs + jj * cs];
}

kiln_status kiln__mm_run(kiln__kctx *c) {
    const kiln__mm_plan *p = (const kiln__mm_plan *)c->kstate;
    if (!p) return kiln__err(KILN_E_INVAL, "matmul: algorithm not prepared");
    if (p->nbatch == 0 || p->m == 0 || p->n == 0) return KILN_OK;
    if (!c->scratch && c->scratch_bytes) return kiln__err(KILN_E_INVAL, "matmul: no scratch");
    mm_job j = {.p = p, .g = base_args(p)};
    j.scratch = (char *)(((uintptr_t)c->scratch + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    j.g.a = (const float *)c->in[p->a_in]->data;
    j.g.b = p->packed ? (const float *)p->packed : (const float *)c->in[p->b_in]->data;
    j.g.c = (float *)c->out[0]->data;
    const int64_t ny = p->nbatch * p->m * p->n;
    if (p->res_in >= 0) {
        const float *r = (const float *)c->in[p->res_in]->data;
        if (r == j.g.c && p->beta == 0.0f) { /* planned in place: Y already holds R */
            j.g.beta = 1.0f;
        } else if (overlaps(r, j.g.c, ny)) {
            return kiln__err(KILN_E_INVAL, "matmul: residual input %d overlaps the output",
                             p->res_in);
        } else {
            j.g.residual = r;
        }
    }
    if (p->bias_in >= 0) {
        const float *src = (const float *)c->in[p->bias_in]->data;
        if (p->bias_src == KILN__MM_BIAS_SCALED) {
            float *v = (float *)(j.scratch + p->bias_off);
            int64_t len = p->bias_kind == KILN__GEMM_BIAS_COL ? p->n : p->m;
            for (int64_t i = 0; i < len; i++) v[i] = p->bias_scale * src[i * p->bias_stride];
            src = v;
        }
        j.g.bias = src;
    }
    if (p->copy_in >= 0)
        expand_into(j.g.c, (const float *)c->in[p->copy_in]->data, p->m, p->n, p->copy_rs,
                    p->copy_cs);
    int nth = c->pool ? kiln__pool_size(c->pool) : 1;
    if (nth > p->nth) nth = p->nth; /* 1 when serial */
    if (nth > 1)
        kiln__pool_run(c->pool, nth, mm_task, &j);
    else
        mm_task(&j, 0, 1);
    if (j.failed) return kiln__err(KILN_E_INVAL, "matmul: sgemm refused a product");
    return KILN_OK;
}
