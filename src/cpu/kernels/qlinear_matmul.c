/* src/cpu/kernels/qlinear_matmul.c: QLinearMatMul and MatMulInteger on the
 * u8 x s8 GEMM (qlinear.h), two registered algorithms:
 *
 *   qlinear_matmul_u8s8  QLinearMatMul: a (..., M, K) u8/s8 with a per-tensor
 *                        scale and zero point; b (K, N) u8/s8 constant with
 *                        per-tensor or per-column scale and zero point (the
 *                        zero point constant); y_scale / y_zero_point per
 *                        tensor or per column; y u8/s8.
 *   matmul_integer_u8s8  MatMulInteger: A (..., M, K) u8/s8 with a scalar zero
 *                        point, B (K, N) u8/s8 constant with a constant
 *                        scalar or per-column zero point; Y int32.
 *
 * A's batch dims fold into M. Work items are (block of mb rows, column
 * chunk); the GEMM writes s32 into the thread's slice (MatMulInteger: into
 * Y directly) and the block is requantized from there (qlinear.h). s8 A is
 * shifted to u8 block by block into the slice. Scales and A's zero point
 * may be run-time inputs (read per run); B and its zero point must be
 * constants (packed at prepare).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/qlinear.h"

typedef struct qmm {
    int qlinear;           /* QLinearMatMul, else MatMulInteger */
    int ia, ib, iaz, ias, ibs, iys, iyz; /* input indices (-1: none) */
    int64_t m, n, k;
    int a_s8;              /* A int8: shifted into the slice per block */
    kiln_dtype st;         /* dtype the multipliers round to (a_scale's) */
    kiln__qw w;
    int64_t mb, nrb;       /* rows per block, row blocks */
    int workers;
    size_t slice, acc_off, gemm_off; /* per thread: [A copy][s32 block][GEMM scratch] */
    size_t par_off;        /* mult[n], yz[n] (doubles) after the slices */
    kiln__gemm_isa isa;
} qmm;

static void qmm_release(void *kstate) {
    qmm *s = kstate;
    if (!s) return;
    kiln__qw_free(&s->w);
    free(s);
}

static int is_q8(const kiln_tensor *t) {
    return t && (t->dtype == KILN_DTYPE_U8 || t->dtype == KILN_DTYPE_I8);
}

/* Reads c's node into s (shapes, which inputs are where); KILN_E_UNSUPPORTED
 * for what these algorithms do not run. */
static kiln_status qmm_read(const kiln__kctx *c, qmm *s) {
    s->qlinear = strcmp(c->node->op_type, "QLinearMatMul") == 0;
    s->ia = 0;
    s->ib = s->qlinear ? 3 : 1;
    s->iaz = 2;
    s->ias = s->qlinear ? 1 : -1;
    s->ibs = s->qlinear ? 4 : -1;
    s->iys = s->qlinear ? 6 : -1;
    s->iyz = s->qlinear ? 7 : -1;
    const int ibz = s->qlinear ? 5 : 3;
    const kiln_tensor *a = kiln__in(c, s->ia), *b = kiln__in(c, s->ib), *y = kiln__out(c, 0);
    if (!is_q8(a) || !is_q8(b) || !y || !b->data || b->ndim != 2 || a->ndim < 1)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: needs u8/s8 A and constant 2-D B");
    s->k = b->dims[0];
    s->n = b->dims[1];
    if (s->k < 1 || s->k > KILN__Q_MAX_K || s->n < 1 || a->dims[a->ndim - 1] != s->k)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: K = %lld outside 1..%d",
                         (long long)s->k, KILN__Q_MAX_K);
    s->m = kiln__n(a) / s->k;
    if (kiln__n(y) != s->m * s->n)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: output is not (M, N)");
    const kiln_tensor *az = kiln__in(c, s->iaz), *bz = kiln__in(c, ibz);
    if (!kiln__q_is_scalar(az) || !kiln__q_is_vec(bz, s->n) || (bz && !bz->data) ||
        (az && az->dtype != a->dtype) || (bz && bz->dtype != b->dtype))
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: zero points not per tensor / per "
                         "column, or B's not constant");
    if (s->qlinear) {
        const kiln_tensor *as = kiln__in(c, s->ias), *bs = kiln__in(c, s->ibs);
        const kiln_tensor *ys = kiln__in(c, s->iys), *yz = kiln__in(c, s->iyz);
        if (!as || !bs || !ys || !kiln__q_is_scalar(as) || !kiln__q_is_vec(bs, s->n) ||
            !kiln__q_is_vec(ys, s->n) || !kiln__q_is_vec(yz, s->n) ||
            (y->dtype != KILN_DTYPE_U8 && y->dtype != KILN_DTYPE_I8))
            return kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: scales not per tensor / per column");
        s->st = as->dtype;
    } else if (y->dtype != KILN_DTYPE_I32) {
        return kiln__err(KILN_E_UNSUPPORTED, "matmul_integer: output not int32");
    }
    s->a_s8 = a->dtype == KILN_DTYPE_I8;
    return KILN_OK;
}

/* B (K, N) as the transposed s8 rows kiln__qw_pack takes, packed in nch chunks. */
static kiln_status qmm_pack(const kiln__kctx *c, qmm *s, int64_t nch) {
    const kiln_tensor *b = c->in[s->ib], *bz = kiln__in(c, s->qlinear ? 5 : 3);
    int8_t *bt = malloc((size_t)(s->n * s->k) + (size_t)s->n);
    if (!bt) return kiln__err(KILN_E_NOMEM, "qlinear_matmul: out of memory");
    int8_t *z = bt + s->n * s->k;
    for (int64_t j = 0; j < s->n; j++) {
        for (int64_t p = 0; p < s->k; p++) bt[j * s->k + p] = kiln__q_weight_s8(b, p * s->n + j);
        z[j] = kiln__q_wzero_s8(bz, b->dtype, j);
    }
    kiln_status st = kiln__qw_pack(&s->w, 1, s->n, s->k, nch, bt, z);
    free(bt);
    return st;
}

static kiln_status qmm_prepare(kiln__kctx *c) {
    qmm *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "qlinear_matmul: out of memory");
    kiln_status st = qmm_read(c, s);
    if (st != KILN_OK) goto fail;
    s->isa = kiln__qlinear_isa;
    if (!kiln__gemm_u8s8_isa_supported(s->isa)) {
        st = kiln__err(KILN_E_UNSUPPORTED, "qlinear_matmul: GEMM isa not available");
        goto fail;
    }
    /* row blocks whose s32 block (mb, N) stays within ~64 KB */
    int nth = c->nth_plan > 0 ? c->nth_plan : 1;
    int64_t mb = 16384 / s->n / 14 * 14;
    mb = mb < 14 ? 14 : mb > 448 ? 448 : mb;
    s->mb = mb < s->m ? mb : s->m > 0 ? s->m : 1;
    s->nrb = (s->m + s->mb - 1) / s->mb;
    if ((st = qmm_pack(c, s, kiln__q_chunks(s->nrb, s->n, nth))) != KILN_OK) goto fail;
    int64_t items = s->nrb * s->w.nch;
    s->workers = items < nth ? (int)(items > 0 ? items : 1) : nth;
    const int64_t cw = s->w.lo[1] - s->w.lo[0]; /* chunk 0 is a widest */
    size_t gs = kiln__q_gemm_scratch(s->mb, cw, s->k, kiln__qw_at(&s->w, 0, 0), s->isa);
    s->acc_off = s->a_s8 ? kiln__q_align64((size_t)(s->mb * s->k)) : 0;
    s->gemm_off = s->acc_off + (s->qlinear ? kiln__q_align64((size_t)(s->mb * cw) * 4) : 0);
    s->slice = kiln__q_align64(s->gemm_off + gs);
    s->par_off = s->slice * (size_t)s->workers;
    c->scratch_bytes = 64 + s->par_off + (s->qlinear ? (size_t)s->n * 2 * sizeof(double) : 0);
    c->flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    c->kstate = s;
    return KILN_OK;
fail:
    qmm_release(s);
    return st;
}

static double qmm_cost(const kiln__kctx *c) {
    const qmm *s = c->kstate;
    double bytes = (double)s->m * s->k * s->w.nch + (double)s->k * s->n +
                   (double)s->m * s->n * (s->qlinear ? 9.0 : 4.0);
    return kiln__q_cost(c, c->flops, (double)s->mb, (double)(s->w.lo[1] - s->w.lo[0]),
                        (double)s->k, bytes, s->isa);
}

/* What the threads of one run share. */
typedef struct qmm_job {
    const qmm *s;
    const uint8_t *a;
    uint8_t a_zero;
    void *y;
    char *scratch; /* 64-aligned */
    kiln__qreq q;
    _Atomic int status; /* a failure (only on a broken plan: every thread fails alike) */
} qmm_job;

static void qmm_task(void *arg, int ith, int nth) {
    qmm_job *j = arg;
    const qmm *s = j->s;
    char *slice = j->scratch + (size_t)ith * s->slice;
    int64_t lo, hi;
    kiln__split(s->nrb * s->w.nch, ith, nth, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        const int64_t rb = it / s->w.nch, h = it % s->w.nch;
        const int64_t r0 = rb * s->mb, rows = s->m - r0 < s->mb ? s->m - r0 : s->mb;
        const int64_t c0 = s->w.lo[h], cw = s->w.lo[h + 1] - c0;
        const uint8_t *a = j->a + r0 * s->k;
        if (s->a_s8) {
            uint8_t *ac = (uint8_t *)slice;
            for (int64_t i = 0; i < rows * s->k; i++) ac[i] = a[i] ^ 0x80;
            a = ac;
        }
        kiln__gemm_u8s8_args g = {.m = rows, .n = cw, .k = s->k, .a = a, .lda = s->k,
                                  .a_zero = j->a_zero, .b = kiln__qw_at(&s->w, 0, h),
                                  .out = KILN__GEMM_U8S8_S32, .isa = s->isa,
                                  .scratch = slice + s->gemm_off};
        if (s->qlinear) {
            g.c = slice + s->acc_off;
            g.ldc = cw;
        } else {
            g.c = (int32_t *)j->y + r0 * s->n + c0;
            g.ldc = s->n;
        }
        kiln_status st = kiln__gemm_u8s8(&g, 0, 1);
        if (st != KILN_OK) {
            atomic_store(&j->status, (int)st);
            return;
        }
        if (s->qlinear)
            kiln__qreq_rows(&j->q, rows, cw, (const int32_t *)g.c, cw, c0,
                            (uint8_t *)j->y + r0 * s->n + c0, s->n);
    }
}

static kiln_status qmm_run(kiln__kctx *c) {
    const qmm *s = c->kstate;
    if (s->m == 0) return KILN_OK;
    char *scratch = (char *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63);
    qmm_job j = {.s = s, .a = c->in[s->ia]->data, .y = c->out[0]->data, .scratch = scratch,
                 .a_zero = kiln__q_azero_u8(kiln__in(c, s->iaz), c->in[s->ia]->dtype)};
    if (s->qlinear) {
        double *mult = (double *)(scratch + s->par_off), *yz = mult + s->n;
        const kiln_tensor *as = c->in[s->ias], *bs = c->in[s->ibs], *ys = c->in[s->iys];
        const kiln_tensor *yzt = kiln__in(c, s->iyz);
        const double av = kiln__q_param(as, 0);
        for (int64_t n = 0; n < s->n; n++) {
            mult[n] = kiln__q_matmul_mult(s->st, av, kiln__q_param(bs, n), kiln__q_param(ys, n));
            yz[n] = kiln__q_param(yzt, n);
        }
        j.q = (kiln__qreq){.out = c->out[0]->dtype, .zero_in_round = 1, .mult = mult, .yz = yz};
        kiln__qreq_finish(&j.q, s->n, s->isa);
    }
    atomic_init(&j.status, KILN_OK);
    kiln__q_parallel(c, s->workers, qmm_task, &j);
    return (kiln_status)atomic_load(&j.status);
}

const kiln__algo kiln__algo_qlinear_matmul_u8s8 = {
    "qlinear_matmul_u8s8", "", "QLinearMatMul", 0, qmm_prepare, qmm_cost, qmm_run, qmm_release};
const kiln__algo kiln__algo_matmul_integer_u8s8 = {
    "matmul_integer_u8s8", "", "MatMulInteger", 0, qmm_prepare, qmm_cost, qmm_run, qmm_release};
