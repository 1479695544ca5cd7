/* src/cpu/kernels/qlinear_conv.c: QLinearConv and ConvInteger on the u8 x s8
 * GEMM (qlinear.h), two registered algorithms:
 *
 *   qlinear_conv_u8s8  QLinearConv: x (N,C,H,W) or (N,C,W) u8/s8 with a
 *                      per-tensor scale and zero point; w (K,C/G,R,S) u8/s8
 *                      constant with per-tensor or per-output-channel scale and
 *                      constant zero point; bias (K) int32; y u8/s8 with a
 *                      per-tensor scale and zero point.
 *   conv_integer_u8s8  ConvInteger: the same x and w with their zero points;
 *                      y int32.
 * Any stride, dilation, padding (explicit or auto_pad) and group.
 *
 * The weights are the GEMM's packed B, so the product runs transposed: for
 * image n, group g,
 *     Y[n, g]^T (P*Q, Kg) = cols (P*Q, R*S*Cg) x W_g^T (R*S*Cg, Kg)
 * where row (p, q) of cols holds the input patch of output pixel (p, q) in
 * (r, s, c) order: taps outside X hold x_zero_point (padding is the real
 * value 0, i.e. the zero point, not the byte 0). To gather patches with
 * memcpy, X is first transposed to NHWC in the scratch (one phase, with the
 * s8 -> u8 shift); a 1x1 stride-1 unpadded convolution reads its rows
 * straight from there (no im2col). Items (image, group, block of mb output
 * pixels, column chunk) then gather, multiply into the thread's s32 block,
 * requantize (QLinearConv) and transpose the block into Y's NCHW planes.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/qlinear.h"
#include "cpu/ref/conv.h"

typedef struct qconv {
    int qlinear;             /* QLinearConv, else ConvInteger */
    int iw, ixz, iwz;        /* input indices of w and the zero points */
    int64_t N, C, H, W, K, G, Cg, Kg, R, S, P, Q;
    int64_t sh, sw, dh, dw, ph, pw;
    int64_t crs;             /* R*S*Cg: the GEMM's K */
    int direct;              /* 1x1, stride 1, no padding: rows straight from NHWC X */
    int x_s8;
    int transpose;           /* X goes through the NHWC copy (else X is used as is: C == 1) */
    kiln__qw w;
    int64_t mb, nrb;         /* output pixels per block, blocks per image */
    int workers;
    size_t xt_bytes;         /* NHWC copy of X at the start of the scratch */
    size_t slice, acc_off, yb_off, gemm_off; /* per thread: [cols][s32][bytes][GEMM] */
    size_t slices_off, par_off;
    kiln__gemm_isa isa;
} qconv;

static void qconv_release(void *kstate) {
    qconv *s = kstate;
    if (!s) return;
    kiln__qw_free(&s->w);
    free(s);
}

static int is_q8(const kiln_tensor *t) {
    return t && (t->dtype == KILN_DTYPE_U8 || t->dtype == KILN_DTYPE_I8);
}

/* Geometry and parameter forms of c's node; KILN_E_UNSUPPORTED for what
 * these algorithms do not run (infer validated the rest). */
static kiln_status qconv_read(const kiln__kctx *c, qconv *s) {
    s->qlinear = strcmp(c->node->op_type, "QLinearConv") == 0;
    s->iw = s->qlinear ? 3 : 1;
    s->ixz = 2;
    s->iwz = s->qlinear ? 5 : 3;
    const kiln_tensor *x = kiln__in(c, 0), *w = kiln__in(c, s->iw), *y = kiln__out(c, 0);
    if (!is_q8(x) || !is_q8(w) || !w->data || !y || x->ndim < 3 || x->ndim > 4 ||
        w->ndim != x->ndim || y->ndim != x->ndim)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: needs 1-D/2-D u8/s8 X, constant W");
    const int nsp = x->ndim - 2;
    kiln__win win;
    KILN__TRY(kiln__win_read(c->node, nsp, x->dims + 2, w->dims + 2, &win));
    KILN__TRY(kiln__win_forward(&win, 0));
    s->N = x->dims[0];
    s->C = x->dims[1];
    s->K = w->dims[0];
    s->Cg = w->dims[1];
    s->G = kiln__attr_i(c->node, "group", 1);
    if (s->G < 1 || s->C % s->G != 0 || s->K % s->G != 0 || s->C / s->G != s->Cg)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: group does not fit");
    s->Kg = s->K / s->G;
    const int d = nsp - 1; /* the last spatial dim is W; a 1-D conv has H = 1 */
    s->H = nsp == 2 ? x->dims[2] : 1;
    s->W = x->dims[2 + d];
    s->R = nsp == 2 ? w->dims[2] : 1;
    s->S = w->dims[2 + d];
    s->P = nsp == 2 ? win.out[0] : 1;
    s->Q = win.out[d];
    s->sh = nsp == 2 ? win.stride[0] : 1;
    s->dh = nsp == 2 ? win.dil[0] : 1;
    s->ph = nsp == 2 ? win.pad0[0] : 0;
    s->sw = win.stride[d];
    s->dw = win.dil[d];
    s->pw = win.pad0[d];
    if (y->dims[0] != s->N || y->dims[1] != s->K || y->dims[2 + d] != s->Q ||
        (nsp == 2 && y->dims[2] != s->P))
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: output shape does not match");
    s->crs = s->R * s->S * s->Cg;
    if (s->crs < 1 || s->crs > KILN__Q_MAX_K || s->Kg < 1)
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: C/G*R*S = %lld outside 1..%d",
                         (long long)s->crs, KILN__Q_MAX_K);
    const kiln_tensor *xz = kiln__in(c, s->ixz), *wz = kiln__in(c, s->iwz);
    if (!kiln__q_is_scalar(xz) || !kiln__q_is_vec(wz, s->K) || (wz && !wz->data) ||
        (xz && xz->dtype != x->dtype) || (wz && wz->dtype != w->dtype))
        return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: zero points not per tensor / per "
                         "channel, or W's not constant");
    if (s->qlinear) {
        const kiln_tensor *xs = kiln__in(c, 1), *ws = kiln__in(c, 4), *ys = kiln__in(c, 6);
        const kiln_tensor *yz = kiln__in(c, 7), *b = kiln__in(c, 8);
        if (!xs || !ws || !ys || !kiln__q_is_scalar(xs) || !kiln__q_is_vec(ws, s->K) ||
            !kiln__q_is_scalar(ys) || !kiln__q_is_scalar(yz) ||
            (b && (b->dtype != KILN_DTYPE_I32 || kiln__n(b) != s->K)) ||
            (y->dtype != KILN_DTYPE_U8 && y->dtype != KILN_DTYPE_I8))
            return kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: parameters not per tensor / "
                             "per channel");
    } else if (y->dtype != KILN_DTYPE_I32) {
        return kiln__err(KILN_E_UNSUPPORTED, "conv_integer: output not int32");
    }
    s->x_s8 = x->dtype == KILN_DTYPE_I8;
    s->transpose = s->C > 1 || s->x_s8;
    s->direct = s->R == 1 && s->S == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 &&
                s->pw == 0 && s->P == s->H && s->Q == s->W;
    return KILN_OK;
}

/* W (K, Cg, R, S) as (K, R*S*Cg) s8 rows in (r, s, c) order, packed per group
 * in nch chunks. */
static kiln_status qconv_pack(const kiln__kctx *c, qconv *s, int64_t nch) {
    const kiln_tensor *w = c->in[s->iw], *wz = kiln__in(c, s->iwz);
    int8_t *bt = malloc((size_t)(s->K * s->crs) + (size_t)s->K);
    if (!bt) return kiln__err(KILN_E_NOMEM, "qlinear_conv: out of memory");
    int8_t *z = bt + s->K * s->crs;
    const int64_t rs = s->R * s->S;
    for (int64_t k = 0; k < s->K; k++) {
        for (int64_t ch = 0; ch < s->Cg; ch++)
            for (int64_t t = 0; t < rs; t++)
                bt[k * s->crs + t * s->Cg + ch] = kiln__q_weight_s8(w, (k * s->Cg + ch) * rs + t);
        z[k] = kiln__q_wzero_s8(wz, w->dtype, k);
    }
    kiln_status st = kiln__qw_pack(&s->w, s->G, s->Kg, s->crs, nch, bt, z);
    free(bt);
    return st;
}

static kiln_status qconv_prepare(kiln__kctx *c) {
    qconv *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "qlinear_conv: out of memory");
    kiln_status st = qconv_read(c, s);
    if (st != KILN_OK) goto fail;
    s->isa = kiln__qlinear_isa;
    if (!kiln__gemm_u8s8_isa_supported(s->isa)) {
        st = kiln__err(KILN_E_UNSUPPORTED, "qlinear_conv: GEMM isa not available");
        goto fail;
    }
    const int nth = c->nth_plan > 0 ? c->nth_plan : 1;
    const int64_t PQ = s->P * s->Q;
    /* pixel blocks: the gathered rows within ~128 KB, the s32 block within ~64 KB */
    int64_t mb = (128 << 10) / s->crs, mb2 = (16 << 10) / s->Kg;
    mb = (mb < mb2 ? mb : mb2) / 14 * 14;
    mb = mb < 14 ? 14 : mb > 448 ? 448 : mb;
    s->mb = mb < PQ ? mb : PQ > 0 ? PQ : 1;
    s->nrb = PQ > 0 ? (PQ + s->mb - 1) / s->mb : 0;
    if ((st = qconv_pack(c, s, kiln__q_chunks(s->N * s->G * s->nrb, s->Kg, nth))) != KILN_OK)
        goto fail;
    const int64_t items = s->N * s->G * s->nrb * s->w.nch;
    s->workers = items < nth ? (int)(items > 0 ? items : 1) : nth;
    const int64_t cw = s->w.lo[1] - s->w.lo[0]; /* chunk 0 is a widest */
    size_t gs = kiln__q_gemm_scratch(s->mb, cw, s->crs, kiln__qw_at(&s->w, 0, 0), s->isa);
    s->xt_bytes = s->transpose ? kiln__q_align64((size_t)(s->N * s->C * s->H * s->W)) : 0;
    s->acc_off = s->direct ? 0 : kiln__q_align64((size_t)(s->mb * s->crs));
    s->yb_off = s->acc_off + kiln__q_align64((size_t)(s->mb * cw) * 4);
    s->gemm_off = s->yb_off + (s->qlinear ? kiln__q_align64((size_t)(s->mb * cw)) : 0);
    s->slice = kiln__q_align64(s->gemm_off + gs);
    s->slices_off = s->xt_bytes;
    s->par_off = s->slices_off + s->slice * (size_t)s->workers;
    c->scratch_bytes = 64 + s->par_off + (s->qlinear ? (size_t)s->K * 2 * sizeof(double) : 0);
    c->flops = 2.0 * (double)s->N * (double)s->K * (double)PQ * (double)s->crs;
    c->kstate = s;
    return KILN_OK;
fail:
    qconv_release(s);
    return st;
}

static double qconv_cost(const kiln__kctx *c) {
    const qconv *s = c->kstate;
    const double PQ = (double)(s->P * s->Q), cw = (double)(s->w.lo[1] - s->w.lo[0]);
    double bytes = (double)s->N * s->C * s->H * s->W * (s->transpose ? 3.0 : 1.0) +
                   (double)s->K * s->crs +
                   (double)s->N * s->K * PQ * (s->qlinear ? 10.0 : 12.0) +
                   (s->direct ? 0.0 : 2.0 * (double)s->N * s->G * PQ * s->crs * s->w.nch);
    return kiln__q_cost(c, c->flops, (double)s->mb, cw, (double)s->crs, bytes, s->isa);
}

/* What the threads of one run share. */
typedef struct qconv_job {
    const qconv *s;
    const uint8_t *x;  /* NHWC u8 (the copy, or X itself when C == 1) */
    const uint8_t *xin; /* X as given (NCHW) */
    uint8_t x_zero;    /* u8 domain */
    void *y;
    char *scratch;     /* 64-aligned */
    kiln__qreq q;
    _Atomic int status;
} qconv_job;

/* Phase 1: X (N, C, H*W) -> NHWC (N, H*W, C), s8 shifted to u8. */
static void qconv_transpose_task(void *arg, int ith, int nth) {
    qconv_job *j = arg;
    const qconv *s = j->s;
    const int64_t HW = s->H * s->W, blk = 256, nb = (HW + blk - 1) / blk;
    int64_t lo, hi;
    kiln__split(s->N * nb, ith, nth, &lo, &hi);
    uint8_t *xt = (uint8_t *)j->scratch;
    for (int64_t it = lo; it < hi; it++) {
        const int64_t n = it / nb, p0 = (it % nb) * blk, cnt = HW - p0 < blk ? HW - p0 : blk;
        kiln__q_transpose_u8(cnt, s->C, j->xin + n * s->C * HW + p0, HW,
                             xt + (n * HW + p0) * s->C, s->C, s->x_s8 ? 0x80 : 0);
    }
}

/* cols (rows, R*S*Cg) = patches of output pixels [r0, r0 + rows) of image n,
 * group g, from NHWC x; taps outside X hold the zero point. */
static void gather(const qconv *s, const uint8_t *x, uint8_t xz, int64_t n, int64_t g, int64_t r0,
                   int64_t rows, uint8_t *restrict cols) {
    const size_t cg = (size_t)s->Cg;
    for (int64_t i = 0; i < rows; i++) {
        const int64_t p = (r0 + i) / s->Q, q = (r0 + i) % s->Q;
        uint8_t *dst = cols + i * s->crs;
        for (int64_t r = 0; r < s->R; r++) {
            const int64_t ih = p * s->sh - s->ph + r * s->dh;
            for (int64_t t = 0; t < s->S; t++, dst += cg) {
                const int64_t iw = q * s->sw - s->pw + t * s->dw;
                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W)
                    memset(dst, xz, cg);
                else
                    memcpy(dst, x + ((n * s->H + ih) * s->W + iw) * s->C + g * s->Cg, cg);
            }
        }
    }
}

/* Phase 2: items (image, group, pixel block, column chunk). */
static void qconv_item_task(void *arg, int ith, int nth) {
    qconv_job *j = arg;
    const qconv *s = j->s;
    char *slice = j->scratch + s->slices_off + (size_t)ith * s->slice;
    const int64_t PQ = s->P * s->Q, nch = s->w.nch;
    int64_t lo, hi, gathered = -1;
    kiln__split(s->N * s->G * s->nrb * nch, ith, nth, &lo, &hi);
    for (int64_t it = lo; it < hi; it++) {
        const int64_t h = it % nch, block = it / nch;
        const int64_t rb = block % s->nrb, ng = block / s->nrb, g = ng % s->G, n = ng / s->G;
        const int64_t r0 = rb * s->mb, rows = PQ - r0 < s->mb ? PQ - r0 : s->mb;
        const int64_t c0 = s->w.lo[h], cw = s->w.lo[h + 1] - c0;
        kiln__gemm_u8s8_args a = {.m = rows, .n = cw, .k = s->crs, .a_zero = j->x_zero,
                                  .b = kiln__qw_at(&s->w, g, h), .c = slice + s->acc_off,
                                  .ldc = cw, .out = KILN__GEMM_U8S8_S32, .isa = s->isa,
                                  .scratch = slice + s->gemm_off};
        if (s->direct) {
            a.a = j->x + (n * PQ + r0) * s->C + g * s->Cg;
            a.lda = s->C;
        } else {
            if (gathered != block) gather(s, j->x, j->x_zero, n, g, r0, rows, (uint8_t *)slice);
            gathered = block;
            a.a = (const uint8_t *)slice;
            a.lda = s->crs;
        }
        kiln_status st = kiln__gemm_u8s8(&a, 0, 1);
        if (st != KILN_OK) {
            atomic_store(&j->status, (int)st);
            return;
        }
        const int64_t ch = g * s->Kg + c0, yoff = (n * s->K + ch) * PQ + r0;
        const int32_t *acc = (const int32_t *)(slice + s->acc_off);
        if (s->qlinear) {
            uint8_t *yb = (uint8_t *)slice + s->yb_off;
            kiln__qreq_rows(&j->q, rows, cw, acc, cw, ch, yb, cw);
            kiln__q_transpose_u8(cw, rows, yb, cw, (uint8_t *)j->y + yoff, PQ, 0);
        } else {
            kiln__q_transpose_s32(cw, rows, acc, cw, (int32_t *)j->y + yoff, PQ);
        }
    }
}

static kiln_status qconv_run(kiln__kctx *c) {
    const qconv *s = c->kstate;
    if (s->N * s->P * s->Q == 0) return KILN_OK;
    char *scratch = (char *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63);
    const kiln_tensor *x = c->in[0];
    qconv_job j = {.s = s, .xin = x->data, .y = c->out[0]->data, .scratch = scratch,
                   .x_zero = kiln__q_azero_u8(kiln__in(c, s->ixz), x->dtype)};
    j.x = s->transpose ? (const uint8_t *)scratch : (const uint8_t *)x->data;
    atomic_init(&j.status, KILN_OK);
    if (s->qlinear) {
        double *mult = (double *)(scratch + s->par_off), *yz = mult + s->K;
        const double xs = kiln__q_param(c->in[1], 0), ys = kiln__q_param(c->in[6], 0);
        const double z = kiln__q_param(kiln__in(c, 7), 0);
        for (int64_t k = 0; k < s->K; k++) {
            mult[k] = kiln__q_conv_mult(xs, kiln__q_param(c->in[4], k), ys);
            yz[k] = z;
        }
        const kiln_tensor *b = kiln__in(c, 8);
        j.q = (kiln__qreq){.out = c->out[0]->dtype, .zero_in_round = 0, .mult = mult, .yz = yz,
                           .bias = b ? (const int32_t *)b->data : NULL};
        kiln__qreq_finish(&j.q, s->K, s->isa);
    }
    if (s->transpose) {
        const int64_t HW = s->H * s->W, tasks = s->N * ((HW + 255) / 256);
        kiln__q_parallel(c, tasks < s->workers ? (int)tasks : s->workers, qconv_transpose_task, &j);
    }
    kiln__q_parallel(c, s->workers, qconv_item_task, &j);
    return (kiln_status)atomic_load(&j.status);
}

const kiln__algo kiln__algo_qlinear_conv_u8s8 = {
    "qlinear_conv_u8s8", "", "QLinearConv", 0, qconv_prepare, qconv_cost, qconv_run,
    qconv_release};
const kiln__algo kiln__algo_conv_integer_u8s8 = {
    "conv_integer_u8s8", "", "ConvInteger", 0, qconv_prepare, qconv_cost, qconv_run,
    qconv_release};
