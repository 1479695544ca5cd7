/* src/cpu/kernels/conv_gemm.c: convolution lowered to the f32 GEMM
 * (conv_algo.h), two registered algorithms for Conv and kiln.FusedConv:
 *
 *   conv_1x1     1x1 kernels: with stride 1 and no padding X itself is the
 *                GEMM's B (C/G, H*W) for each image and group; otherwise the
 *                strided / padded pixels are gathered like im2col.
 *   conv_im2col  any 2-D convolution (stride, padding, dilation, groups):
 *                the output columns P*Q are cut into blocks small enough that
 *                the block's im2col matrix (Cg*R*S, nb) stays in cache; each
 *                block is gathered and multiplied at once (implicit-GEMM
 *                style), groups looped.
 *
 * For image n, group g, column block [j0, j0+nb), rows [m0, m1) of the group:
 *   Y[n, g*Kg+m0 : g*Kg+m1, j0 : j0+nb] = act(W_g[m0:m1] (., CgRS) x cols + B + Z)
 * with bias, residual and activation in the GEMM epilogue.
 *
 * Threads: one PARALLEL pass. Work items are (image, group, column block,
 * row chunk); each thread gathers into and multiplies from its own scratch
 * slice with a single-threaded GEMM, so no barrier is needed. With few
 * blocks (batch 1, small images) the rows are cut into chunks so that every
 * thread gets work (a chunk's thread regathers its block: Cg*R*S*nb copies
 * against 2*Kg*Cg*R*S*nb flops). Direct 1x1 convolutions gather nothing, so
 * their column block is the whole image; with fewer (image, group) products
 * than twice the threads, every thread takes its share of each product
 * through the GEMM's own thread grid (kiln__sgemm(ith, nth): whole tiles,
 * rows or columns split by what it packs) instead of row chunks.
 *
 * The weights are the GEMM's A. When they are known at plan time (an
 * initializer) prepare packs them once, per group and row chunk, in the
 * GEMM's panel layout and compute type (kiln__gemm_pack_a_ex) and every block
 * passes them with a_packed; a non-constant W is packed by the GEMM on every
 * block (K*Cg*R*S floats per block, against 2*K*Cg*R*S*nb flops).
 *
 * Spatial-major layout: the register tile is 14 rows by 32 columns, so the
 * channel-major product above wastes lanes when the output pixels of a
 * block are few or not a multiple of 32 (7x7: 49 of 64) and rows when the
 * output channels are not a multiple of 14. Late layers, with few pixels
 * and channel counts that are multiples of 32, run the transposed product
 *   T (nb, Kg chunk) = cols^T (nb, CgRS) x W_g^T (CgRS, Kg chunk)
 * (W packed once as the GEMM's B; cols or X read transposed by its A
 * packing) into the thread's scratch, then transpose T into Y and apply the
 * bias, residual and activation to the block (kiln__conv_epilogue_rows).
 * prepare takes the layout the cost model prices lower (the transpose and
 * epilogue pass included); constant weights only.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/ref/conv.h"

/* Bytes the im2col block of one thread may take. */
#define COLS_BYTES (256 * 1024)

typedef struct gemm_conv {
    kiln__conv2d g;
    int direct;            /* B = X (1x1, stride 1, no padding) */
    int spatial;           /* spatial-major product through T (see above) */
    int shared;            /* direct, each product split over all threads */
    int64_t crs;           /* Cg*R*S: the GEMM's K */
    int64_t nb, nblk;      /* columns per block; blocks per (image, group) */
    int64_t mch, malign;   /* row chunks per group and their alignment */
    int workers;           /* threads the scratch has slices for */
    size_t cols_bytes;     /* im2col block per slice (0 when direct) */
    size_t t_bytes;        /* spatial: T block per slice */
    size_t slice;          /* scratch bytes per thread */
    kiln__gemm_compute compute;
    /* W packed once (NULL when W is not known at plan time): the packed A of
     * group grp, row chunk ch starts at wpack + woff[grp * mch + ch] */
    char *wpack;
    size_t *woff;
    /* W known only at run time (training): each thread packs a chunk the
     * first time one of its products needs it, into its slice at wrun_at
     * (woff[G * mch] bytes, then G * mch "packed" flags) */
    int wrun;
    size_t wrun_at;
} gemm_conv;

static void gemm_conv_free(gemm_conv *s) {
    if (!s) return;
    kiln__aligned_free(s->wpack);
    free(s->woff);
    free(s);
}

int kiln__conv_flat_tap_of(const kiln__conv2d *g, int64_t r, int64_t s, kiln__conv_flat_tap *t) {
    if (g->sh != 1 || g->sw != 1 || g->Q != g->W) return 0;
    const int64_t yoff = r * g->dh - g->ph, xoff = s * g->dw - g->pw;
    t->delta = yoff * g->W + xoff;
    kiln__stride_range(yoff, 1, g->H, g->P, &t->plo, &t->phi);
    kiln__stride_range(xoff, 1, g->W, g->Q, &t->qlo, &t->qhi);
    t->lo = t->hi = 0;
    if (t->plo < t->phi && t->qlo < t->qhi) {
        t->lo = t->plo * g->Q + t->qlo;
        t->hi = (t->phi - 1) * g->Q + t->qhi;
    }
    return 1;
}

/* dst[j - j0] for pixels j in [j0, j0 + nbk) of a flat tap t of xc, Q wide:
 * one copy of the span's part in the window, zeros around it and at its
 * pixels that wrap across a row's edge. */
static void im2col_flat(const kiln__conv_flat_tap *t, int64_t Q, const float *xc, int64_t j0,
                        int64_t nbk, float *restrict dst) {
    const int64_t j1 = j0 + nbk;
    int64_t a = t->lo > j0 ? t->lo : j0, b = t->hi < j1 ? t->hi : j1;
    if (b < a) a = b = j0;
    memset(dst, 0, (size_t)(a - j0) * sizeof(float));
    memcpy(dst + (a - j0), xc + a + t->delta, (size_t)(b - a) * sizeof(float));
    memset(dst + (b - j0), 0, (size_t)(j1 - b) * sizeof(float));
    if (a == b || (t->qlo == 0 && t->qhi == Q)) return;
    for (int64_t p = a / Q; p <= (b - 1) / Q; p++) {
        for (int64_t j = p * Q; j < p * Q + t->qlo; j++)
            if (j >= a && j < b) dst[j - j0] = 0.0f;
        for (int64_t j = p * Q + t->qhi; j < (p + 1) * Q; j++)
            if (j >= a && j < b) dst[j - j0] = 0.0f;
    }
}

void kiln__conv_im2col(const kiln__conv2d *g, const float *x, int64_t j0, int64_t nbk,
                       float *restrict cols) {
    const int64_t H = g->H, W = g->W, Q = g->Q, sw = g->sw;
    for (int64_t ch = 0; ch < g->Cg; ch++) {
        const float *xc = x + ch * H * W;
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                float *dst = cols + ((ch * g->R + r) * g->S + s) * nbk;
                kiln__conv_flat_tap ft;
                if (kiln__conv_flat_tap_of(g, r, s, &ft)) {
                    im2col_flat(&ft, Q, xc, j0, nbk, dst);
                    continue;
                }
                const int64_t xoff = s * g->dw - g->pw; /* input column = q*sw + xoff */
                int64_t qlo, qhi;
                kiln__stride_range(xoff, sw, W, Q, &qlo, &qhi);
                int64_t p = j0 / Q, q = j0 % Q;
                for (int64_t j = j0; j < j0 + nbk; p++, q = 0) {
                    const int64_t qend = Q < q + (j0 + nbk - j) ? Q : q + (j0 + nbk - j);
                    const int64_t ih = p * g->sh - g->ph + r * g->dh;
                    const int64_t len = qend - q;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)len * sizeof(float));
                    } else {
                        const float *xr = xc + ih * W;
                        int64_t a = q > qlo ? q : qlo, b = qend < qhi ? qend : qhi;
                        if (b < a) b = a;
                        for (int64_t t = q; t < a; t++) dst[t - q] = 0.0f;
                        if (sw == 1)
                            memcpy(dst + (a - q), xr + a + xoff, (size_t)(b - a) * sizeof(float));
                        else if (sw == 2)
                            kiln__copy_stride2(dst + (a - q), xr + 2 * a + xoff, b - a);
                        else
                            for (int64_t t = a; t < b; t++) dst[t - q] = xr[t * sw + xoff];
                        for (int64_t t = b; t < qend; t++) dst[t - q] = 0.0f;
                    }
                    dst += len;
                    j += len;
                }
            }
    }
}

size_t kiln__conv_gemm_scratch(int64_t m, int64_t n, int64_t k, kiln__gemm_compute compute,
                               const void *packed_a, const void *packed_b, int nth) {
    static const float dummy[1];
    kiln__gemm_args a = {.m = m, .n = n, .k = k, .alpha = 1.0f, .a = dummy, .lda = k > 1 ? k : 1,
                         .b = dummy, .ldb = n > 1 ? n : 1, .c = (float *)dummy,
                         .ldc = n > 1 ? n : 1, .compute = compute};
    if (packed_a) {
        a.a = packed_a;
        a.a_packed = 1;
    }
    if (packed_b) {
        a.b = packed_b;
        a.b_packed = 1;
    }
    return kiln__sgemm_scratch_bytes(&a, nth);
}

/* Rows [*m0, *m1) of a group that row chunk ch covers. */
static void chunk_rows(const gemm_conv *s, int64_t ch, int64_t *m0, int64_t *m1) {
    *m0 = 0;
    *m1 = s->g.Kg;
    if (s->mch > 1) kiln__conv_chunk(s->g.Kg, s->malign, ch, s->mch, m0, m1);
}

/* The packed size of every (group, row chunk) of W (K, Cg*R*S), as run()
 * multiplies them: s->woff[i] is chunk i's offset, s->woff[G * mch] the total. */
static kiln_status plan_weight_offsets(gemm_conv *s) {
    const int64_t n = s->g.G * s->mch;
    s->woff = malloc((size_t)(n + 1) * sizeof *s->woff);
    if (!s->woff) return kiln__err(KILN_E_NOMEM, "conv: out of memory for packed weights");
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t m0, m1;
        chunk_rows(s, i % s->mch, &m0, &m1);
        size_t bytes =
            s->spatial ? kiln__gemm_packed_b_bytes_ex(KILN__GEMM_ISA_AUTO, s->compute, s->crs,
                                                      m1 - m0)
                       : kiln__gemm_packed_a_bytes_ex(KILN__GEMM_ISA_AUTO, s->compute, m1 - m0,
                                                      s->crs);
        if (bytes == 0) return kiln__err(KILN_E_UNSUPPORTED, "conv: weights too large to pack");
        s->woff[i] = total;
        total += kiln__conv_align64(bytes);
    }
    s->woff[n] = total;
    return KILN_OK;
}

/* Packs chunk i of W into dst (s->woff[i + 1] - s->woff[i] bytes). */
static kiln_status pack_weight_chunk(const gemm_conv *s, const float *w, int64_t i, char *dst) {
    const kiln__conv2d *g = &s->g;
    const int64_t grp = i / s->mch;
    int64_t m0, m1;
    chunk_rows(s, i % s->mch, &m0, &m1);
    const float *wi = w + (grp * g->Kg + m0) * s->crs;
    const int64_t ld = s->crs > 0 ? s->crs : 1;
    const size_t bytes = s->woff[i + 1] - s->woff[i];
    if (s->spatial) /* B (CgRS, rows) = W_g[m0:m1]^T */
        return kiln__gemm_pack_b_ex(KILN__GEMM_ISA_AUTO, s->compute, 1, s->crs, m1 - m0, wi, ld, dst,
                                    bytes);
    return kiln__gemm_pack_a_ex(KILN__GEMM_ISA_AUTO, s->compute, 0, m1 - m0, s->crs, wi, ld, dst,
                                bytes);
}

/* Packs a constant W once, at plan time. */
static kiln_status pack_weights(gemm_conv *s, const float *w) {
    KILN__TRY(plan_weight_offsets(s));
    const int64_t n = s->g.G * s->mch;
    s->wpack = kiln__aligned_alloc(s->woff[n] ? s->woff[n] : 64);
    if (!s->wpack) return kiln__err(KILN_E_NOMEM, "conv: out of memory for packed weights");
    for (int64_t i = 0; i < n; i++) KILN__TRY(pack_weight_chunk(s, w, i, s->wpack + s->woff[i]));
    return KILN_OK;
}

int kiln__conv_gemm_layout;

static double gemm_conv_cost(const kiln__kctx *c);

/* The work split of layout spatial (0: channel-major, 1: spatial-major). */
static void plan_layout(gemm_conv *s, int spatial) {
    const kiln__conv2d *g = &s->g;
    s->spatial = spatial;
    s->shared = !spatial && s->direct && s->workers > 1 && g->N * g->G < 2 * (int64_t)s->workers;
    s->malign = spatial ? 32 : 16; /* output channels: B columns or A rows */
    s->mch = s->shared ? 1
                       : kiln__conv_mchunks(g->N * g->G * s->nblk, g->Kg, s->workers, s->malign);
}

static kiln_status gemm_conv_prepare(kiln__kctx *c, int only_1x1, kiln__gemm_compute ct) {
    kiln__conv2d g;
    KILN__TRY(kiln__conv_accept_compute(c, ct));
    KILN__TRY(kiln__conv2d_read(c, &g));
    if (only_1x1 && (g.R != 1 || g.S != 1))
        return kiln__err(KILN_E_UNSUPPORTED, "conv_1x1: kernel %lldx%lld", (long long)g.R,
                         (long long)g.S);
    gemm_conv *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "conv: out of memory");
    s->g = g;
    s->compute = ct;
    s->crs = g.Cg * g.R * g.S;
    s->direct = g.R == 1 && g.S == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
                g.P == g.H && g.Q == g.W;
    const int64_t PQ = g.P * g.Q;
    /* column blocks: the block's B (CgRS, nb) within COLS_BYTES, whole GEMM
     * tiles; direct: the whole image (the GEMM blocks B itself) */
    int64_t nb = COLS_BYTES / (4 * (s->crs > 0 ? s->crs : 1));
    nb = nb < 64 ? 64 : nb / 32 * 32;
    if (s->direct) nb = PQ;
    s->nb = nb < PQ ? nb : (PQ > 0 ? PQ : 1);
    s->nblk = PQ > 0 ? (PQ + s->nb - 1) / s->nb : 0;
    s->workers = kiln__conv_nth(c);
    const kiln_tensor *w = kiln__in(c, 1);
    plan_layout(s, 0);
    if (w->data && kiln__conv_gemm_layout != 1) { /* constant W: the cheaper layout */
        c->kstate = s;
        const double channel_major = gemm_conv_cost(c);
        plan_layout(s, 1);
        if (kiln__conv_gemm_layout != 2 && gemm_conv_cost(c) >= channel_major) plan_layout(s, 0);
    }
    int64_t lo, hi;
    chunk_rows(s, 0, &lo, &hi); /* chunk 0 is a largest */
    if (w->data) {
        kiln_status st = pack_weights(s, (const float *)w->data);
        if (st != KILN_OK) {
            gemm_conv_free(s);
            return st;
        }
    }
    s->cols_bytes = s->direct ? 0 : kiln__conv_align64((size_t)s->crs * (size_t)s->nb * 4);
    s->t_bytes = s->spatial ? kiln__conv_align64((size_t)s->nb * (size_t)(hi - lo) * 4) : 0;
    const size_t gs =
        s->spatial ? kiln__conv_gemm_scratch(s->nb, hi - lo, s->crs, s->compute, NULL, s->wpack, 1)
                   : kiln__conv_gemm_scratch(hi - lo, s->nb, s->crs, s->compute, s->wpack, NULL, 1);
    s->slice = s->cols_bytes + s->t_bytes + kiln__conv_align64(gs);
    /* W at run time: worth packing per thread when a thread multiplies each
     * chunk for several images */
    const int64_t items = g.N * g.G * s->nblk * s->mch;
    if (!w->data && !s->shared && !s->spatial && items >= 2 * (int64_t)s->workers * g.G * s->mch) {
        kiln_status st = plan_weight_offsets(s);
        if (st != KILN_OK) {
            gemm_conv_free(s);
            return st;
        }
        s->wrun = 1;
        s->wrun_at = s->slice;
        s->slice += kiln__conv_align64(s->woff[g.G * s->mch] + (size_t)(g.G * s->mch));
    }
    c->scratch_bytes = s->slice * (size_t)s->workers;
    c->kstate = s;
    c->flops = kiln__conv_direct_flops(&g);
    return KILN_OK;
}

static kiln_status conv_1x1_prepare(kiln__kctx *c) {
    return gemm_conv_prepare(c, 1, KILN__GEMM_F32);
}
static kiln_status conv_im2col_prepare(kiln__kctx *c) {
    return gemm_conv_prepare(c, 0, KILN__GEMM_F32);
}
static kiln_status conv_1x1_bf16_prepare(kiln__kctx *c) {
    return gemm_conv_prepare(c, 1, KILN__GEMM_BF16);
}
static kiln_status conv_im2col_bf16_prepare(kiln__kctx *c) {
    return gemm_conv_prepare(c, 0, KILN__GEMM_BF16);
}

/* Seconds of the GEMMs plus the memory traffic: the gathering (written once,
 * read once by the GEMM's packing, mostly in cache) and the weights, once per
 * column block: streamed from the buffer packed in prepare (f32 or bf16), or
 * read and written again by the GEMM's own packing when W was not known. */
static double gemm_conv_cost(const kiln__kctx *c) {
    const gemm_conv *s = c->kstate;
    const kiln__conv2d *g = &s->g;
    double mrows = (double)g->Kg / (double)s->mch, ncols = (double)s->nb;
    if (s->shared) { /* the GEMM's grid: rows or columns over the threads */
        const int w = s->workers;
        if (mrows / w >= ncols / w && mrows >= 14.0 * w) mrows /= w;
        else ncols /= w;
    }
    double eff = s->spatial ? kiln__conv_gemm_efficiency(ncols, mrows, (double)s->crs, s->compute)
                            : kiln__conv_gemm_efficiency(mrows, ncols, (double)s->crs, s->compute);
    /* spatial: T written and read, Y written, then read and written by the
     * epilogue, and the residual read: about 25 bytes of traffic per output
     * value measured (ResNet-50 layer3, 14x14x1024) */
    const double tpass = s->spatial ? 25.0 * (double)g->N * g->K * g->P * g->Q : 0.0;
    double gather = s->direct ? 0.0
                              : 2.0 * 4.0 * (double)g->N * g->G * (double)s->crs * g->P * g->Q *
                                    (double)s->mch;
    const double wbytes = s->wpack ? (s->compute == KILN__GEMM_BF16 ? 2.0 : 4.0) : 2.0 * 4.0;
    double wpack = wbytes * (double)g->N * s->nblk * (double)g->K * (double)s->crs;
    return kiln__cost_seconds(c, kiln__conv_direct_flops(g), eff,
                              kiln__conv_io_bytes(g) + 0.25 * gather + tpass + wpack);
}

static kiln_status gemm_conv_run(kiln__kctx *c) {
    const gemm_conv *s = c->kstate;
    const kiln__conv2d *g = &s->g;
    int workers = c->nth < s->workers ? c->nth : s->workers;
    if (c->ith >= workers) return KILN_OK;
    kiln__conv_io io;
    kiln__conv_io_get(c, &io);
    const int64_t PQ = g->P * g->Q, HW = g->H * g->W;
    const int64_t items = g->N * g->G * s->nblk * s->mch;
    int64_t lo = 0, hi = items;
    if (!s->shared) kiln__split(items, c->ith, workers, &lo, &hi);
    /* shared: every thread walks every product, kiln__sgemm picks its share
     * and its packing space in the whole scratch */
    char *slice = (char *)c->scratch + (s->shared ? 0 : (size_t)c->ith * s->slice);
    float *cols = (float *)slice;
    char *wrun = s->wrun ? slice + s->wrun_at : NULL; /* W packed by this thread */
    unsigned char *wrun_done = wrun ? (unsigned char *)wrun + s->woff[g->G * s->mch] : NULL;
    if (wrun) memset(wrun_done, 0, (size_t)(g->G * s->mch));
    int64_t gathered = -1; /* block whose im2col matrix cols holds */
    for (int64_t it = lo; it < hi; it++) {
        const int64_t chunk = it % s->mch, block = it / s->mch;
        const int64_t blk = block % s->nblk, ng = block / s->nblk;
        const int64_t grp = ng % g->G, n = ng / g->G;
        const int64_t j0 = blk * s->nb, nbk = PQ - j0 < s->nb ? PQ - j0 : s->nb;
        const float *xg = io.x + (n * g->C + grp * g->Cg) * HW;
        kiln__gemm_args a = {.n = nbk, .k = s->crs, .alpha = 1.0f, .beta = 0.0f,
                             .compute = s->compute, .scratch = slice + s->cols_bytes};
        if (s->direct) {
            a.b = xg + j0;
            a.ldb = HW;
        } else {
            if (gathered != block) kiln__conv_im2col(g, xg, j0, nbk, cols);
            gathered = block;
            a.b = cols;
            a.ldb = nbk;
        }
        int64_t m0, m1;
        chunk_rows(s, chunk, &m0, &m1);
        const int64_t row = grp * g->Kg + m0, yoff = (n * g->K + row) * PQ + j0;
        if (s->spatial) { /* T (nbk, m1-m0) = B^T W^T, then Y = T^T + epilogue */
            float *T = (float *)(slice + s->cols_bytes);
            a.m = nbk;
            a.n = m1 - m0;
            a.trans_a = 1;
            a.a = a.b; /* the pixels: X or the gathered columns, (CgRS, nbk) */
            a.lda = a.ldb;
            a.b = (const float *)(s->wpack + s->woff[grp * s->mch + chunk]);
            a.b_packed = 1;
            a.ldb = 0;
            a.c = T;
            a.ldc = m1 - m0;
            a.scratch = slice + s->cols_bytes + s->t_bytes;
            KILN__TRY(kiln__sgemm(&a, 0, 1));
            kiln__transpose_f32(T, m1 - m0, nbk, m1 - m0, io.y + yoff, PQ);
            kiln__conv_epilogue_rows(g, io.y + yoff, m1 - m0, nbk, PQ, io.b ? io.b + row : NULL,
                                     io.z ? io.z + yoff : NULL);
            continue;
        }
        a.m = m1 - m0;
        const int64_t wi = grp * s->mch + chunk;
        if (wrun && !wrun_done[wi]) {
            KILN__TRY(pack_weight_chunk(s, io.w, wi, wrun + s->woff[wi]));
            wrun_done[wi] = 1;
        }
        if (s->wpack || wrun) {
            a.a = (const float *)((s->wpack ? s->wpack : wrun) + s->woff[wi]);
            a.a_packed = 1;
        } else {
            a.a = io.w + row * s->crs;
            a.lda = s->crs;
        }
        a.c = io.y + yoff;
        a.ldc = PQ;
        kiln__conv_gemm_epilogue(g, &a, io.b ? io.b + row : NULL, io.z ? io.z + yoff : NULL, PQ);
        KILN__TRY(s->shared ? kiln__sgemm(&a, c->ith, workers) : kiln__sgemm(&a, 0, 1));
    }
    return KILN_OK;
}

static void gemm_conv_release(void *kstate) { gemm_conv_free(kstate); }

/* Conv and kiln.FusedConv, each in f32 and bf16 */
#define GEMM_CONV_ALGO(name, domain, op, prep)                                                  \
    const kiln__algo kiln__algo_##name = {#name, domain, op, KILN_OPF_PARALLEL, prep,          \
                                          gemm_conv_cost, gemm_conv_run, gemm_conv_release};
GEMM_CONV_ALGO(conv_1x1, "", "Conv", conv_1x1_prepare)
GEMM_CONV_ALGO(conv_im2col, "", "Conv", conv_im2col_prepare)
GEMM_CONV_ALGO(conv_1x1_bf16, "", "Conv", conv_1x1_bf16_prepare)
GEMM_CONV_ALGO(conv_im2col_bf16, "", "Conv", conv_im2col_bf16_prepare)
GEMM_CONV_ALGO(fused_conv_1x1, "kiln", "FusedConv", conv_1x1_prepare)
GEMM_CONV_ALGO(fused_conv_im2col, "kiln", "FusedConv", conv_im2col_prepare)
GEMM_CONV_ALGO(fused_conv_1x1_bf16, "kiln", "FusedConv", conv_1x1_bf16_prepare)
GEMM_CONV_ALGO(fused_conv_im2col_bf16, "kiln", "FusedConv", conv_im2col_bf16_prepare)
