/* src/cpu/kernels/winograd.c: Winograd convolution F(2x2,3x3) and F(4x4,3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks") for
 * 3x3, stride 1, dilation 1, ungrouped 2-D f32 convolutions with constant
 * weights: the algorithms conv_winograd_f2 / conv_winograd_f4 (Conv) and
 * fused_conv_winograd_f2 / _f4 (kiln.FusedConv).
 *
 * With output tiles of m x m (m = 2 or 4) and input tiles of a x a (a = m+2)
 * overlapping by 2, every tile's output is
 *     Y_tile = A^T [ (G g G^T) .* (B^T d B) ] A
 * summed over input channels; the a*a products per (tile, channel) are
 * regrouped as T = a*a GEMMs, one per transform point t:
 *     M_t (tiles, K) = V_t^T (tiles, C) x U_t (C, K)
 * with U_t = (G g G^T)[t] over (c, k) transformed in double and packed for
 * the GEMM once in prepare (c->kstate), V_t (C, tiles) the input transform
 * (read transposed by the GEMM) and M_t back through A^T . A into Y. Bias,
 * residual and activation follow in one pass over each finished block of
 * rows while it is in cache (the GEMM epilogue, conv_algo.h).
 *
 * Blocking and threads: the work is cut into blocks of whole tile rows
 * (V and M of a block sized to stay in L2/L3 per transform point). When
 * there are too few blocks for the threads, layers with more tiles than
 * output channels get smaller blocks (each block streams all the packed
 * weights). With enough blocks, the blocks run as items over the threads,
 * each thread in its own scratch slice with a single-threaded GEMM: one
 * pool pass, no barrier. With fewer blocks than twice the threads (batch 1,
 * small images) each block runs in three pool passes over shared V and M:
 * input transform by channels, the T GEMMs by point, output transform and
 * epilogue by output channels; so no thread redoes another's transform.
 * The algorithm drives the pool itself (not KILN_OPF_PARALLEL).
 *
 * Accuracy: the transforms add rounding (F4 more, its matrices hold 4, 5, 8
 * and 1/24); the unit test bounds the normalized error against the
 * reference (measured on uniform inputs: F2 1e-7..7.5e-7, F4 1e-6..3e-6,
 * growing slowly with C; im2col gives 1e-7..6e-7). NaN/Inf in a tile's
 * inputs spread to the whole output tile (the reference keeps them to the
 * windows that read them).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/winograd.h"

int kiln__wino_portable_only;

/* Bytes of V and M one thread's block may take. */
#define BLOCK_BYTES (4 * 1024 * 1024)
#define AMAX 6 /* input tile of F(4x4,3x3) */

/* ---- transforms ---------------------------------------------------------- */

/* o (a) = B^T d (a): the input transform along one dim. */
static inline __attribute__((always_inline)) void in1d(int m, const float *d, float *o) {
    if (m == 2) {
        o[0] = d[0] - d[2];
        o[1] = d[1] + d[2];
        o[2] = d[2] - d[1];
        o[3] = d[1] - d[3];
    } else {
        o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
        o[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
        o[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
        o[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
        o[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
        o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
    }
}

/* o (m) = A^T d (a): the output transform along one dim. */
static inline __attribute__((always_inline)) void out1d(int m, const float *d, float *o) {
    if (m == 2) {
        o[0] = d[0] + d[1] + d[2];
        o[1] = d[1] - d[2] - d[3];
    } else {
        const float p12 = d[1] + d[2], m12 = d[1] - d[2];
        const float p34 = d[3] + d[4], m34 = d[3] - d[4];
        o[0] = d[0] + p12 + p34;
        o[1] = m12 + 2.0f * m34;
        o[2] = p12 + 4.0f * p34;
        o[3] = m12 + 8.0f * m34 + d[5];
    }
}

/* G (a x 3) of F(m x m, 3x3). */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

/* ---- state ---------------------------------------------------------------- */

typedef struct wino {
    kiln__conv2d g;
    int m, a, T;           /* output tile, input tile, points a*a */
    int64_t th, tw;        /* tile rows and columns */
    int64_t rpb, nblk;     /* tile rows per block, blocks per image */
    int64_t ntmax;         /* tiles per block (rpb * tw) */
    int64_t wp;            /* padded input row: tw*m + 2, room for vector over-reads */
    int workers;
    int phased;            /* few blocks: each block in three pool passes */
    int avx512;            /* transforms in AVX-512 (winograd.h) */
    size_t off_tmp, off_v, off_m, off_gemm, slice; /* scratch slice layout */
    void **packed;         /* [T]: U_t (C, K), packed for the GEMM as B */
    kiln__gemm_compute compute;
} wino;

static void wino_release(void *kstate) {
    wino *s = kstate;
    if (!s) return;
    if (s->packed)
        for (int t = 0; t < s->T; t++) kiln__aligned_free(s->packed[t]);
    free(s->packed);
    free(s);
}

void kiln__wino_weights(int m, const float *w, int64_t K, int64_t C, float *U, int64_t ts,
                        int64_t cs) {
    const int a = m + 2;
    const double(*G)[3] = m == 2 ? G2 : G4;
    for (int64_t ch = 0; ch < C; ch++) /* k fastest: the writes run along U's rows */
        for (int64_t k = 0; k < K; k++) {
            const float *f = w + (k * C + ch) * 9;
            double gf[AMAX][3]; /* G f */
            for (int i = 0; i < a; i++)
                for (int j = 0; j < 3; j++)
                    gf[i][j] = G[i][0] * f[j] + G[i][1] * f[3 + j] + G[i][2] * f[6 + j];
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    double u = gf[i][0] * G[j][0] + gf[i][1] * G[j][1] + gf[i][2] * G[j][2];
                    U[(i * a + j) * ts + ch * cs + k] = (float)u;
                }
        }
}

static kiln_status wino_prepare(kiln__kctx *c, int m, kiln__gemm_compute ct) {
    kiln__conv2d g;
    KILN__TRY(kiln__conv_accept_compute(c, ct));
    KILN__TRY(kiln__conv2d_read(c, &g));
    if (g.R != 3 || g.S != 3 || g.sh != 1 || g.sw != 1 || g.dh != 1 || g.dw != 1 || g.G != 1)
        return kiln__err(KILN_E_UNSUPPORTED, "winograd: 3x3 stride-1 ungrouped only");
    if (!c->in[1]->data) return kiln__err(KILN_E_UNSUPPORTED, "winograd: weights not constant");
    if (g.N * g.P * g.Q * g.K == 0 || g.C == 0)
        return kiln__err(KILN_E_UNSUPPORTED, "winograd: empty convolution");
    kiln_status st = KILN_OK;
    float *U = NULL;
    wino *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "winograd: out of memory");
    s->g = g;
    s->m = m;
    s->a = m + 2;
    s->T = s->a * s->a;
    s->compute = ct;
    s->th = (g.P + m - 1) / m;
    s->tw = (g.Q + m - 1) / m;
    s->wp = kiln__wino_row_floats(m, s->tw);
#ifdef KILN__WINO_X86
    s->avx512 = !kiln__wino_portable_only && kiln__wino_avx512_ok();
#endif
    s->workers = kiln__conv_nth(c);
    /* blocks of tile rows whose V (T, C, tiles) and M (T, tiles, K) fit BLOCK_BYTES */
    double row_bytes = 4.0 * s->T * (double)s->tw * (double)(g.C + g.K);
    s->rpb = (int64_t)(BLOCK_BYTES / row_bytes);
    if (s->rpb < 1) s->rpb = 1;
    if (s->rpb > s->th) s->rpb = s->th;
    s->nblk = (s->th + s->rpb - 1) / s->rpb;
    /* too few blocks for the threads: with more tiles than output channels cut
     * the tile rows finer (each block streams all the weights); blocks still
     * too few for the threads run phased (below) */
    const int64_t want = (4 * (int64_t)s->workers + g.N - 1) / g.N;
    if (s->workers > 1 && s->nblk < want && s->th * s->tw >= g.K)
        s->nblk = want < s->th ? want : s->th;
    s->rpb = (s->th + s->nblk - 1) / s->nblk; /* even blocks */
    s->nblk = (s->th + s->rpb - 1) / s->rpb;
    s->ntmax = s->rpb * s->tw;
    s->phased = s->workers > 1 && g.N * s->nblk < 2 * (int64_t)s->workers;
    if (c->probe) { /* cost() needs the blocking only: skip the weight transform */
        c->kstate = s;
        c->flops = kiln__conv_direct_flops(&g);
        return KILN_OK;
    }

    /* weights: transform, then pack each point's U_t as a GEMM B (C, K) */
    U = malloc((size_t)s->T * (size_t)g.C * (size_t)g.K * sizeof(float));
    s->packed = calloc((size_t)s->T, sizeof *s->packed);
    if (!U || !s->packed) {
        st = kiln__err(KILN_E_NOMEM, "winograd: out of memory for the transformed weights");
        goto fail;
    }
    kiln__wino_weights(m, (const float *)c->in[1]->data, g.K, g.C, U, g.C * g.K, g.K);
    const size_t bytes = kiln__gemm_packed_b_bytes_ex(KILN__GEMM_ISA_AUTO, ct, g.C, g.K);
    for (int t = 0; t < s->T; t++) {
        if (!(s->packed[t] = kiln__aligned_alloc(bytes))) {
            st = kiln__err(KILN_E_NOMEM, "winograd: out of memory for the packed weights");
            goto fail;
        }
        st = kiln__gemm_pack_b_ex(KILN__GEMM_ISA_AUTO, ct, 0, g.C, g.K,
                                  U + (int64_t)t * g.C * g.K, g.K, s->packed[t], bytes);
        if (st != KILN_OK) goto fail;
    }
    free(U);
    U = NULL;

    /* scratch slice: padded rows (a, wp), vertical transform (a, wp), V, M, GEMM */
    kiln__gemm_args ga = {.m = s->ntmax, .n = g.K, .k = g.C, .trans_a = 1, .alpha = 1.0f,
                          .a = (const float *)s->packed[0], .lda = s->ntmax, .b = s->packed[0],
                          .b_packed = 1, .c = (float *)s->packed[0], .ldc = g.K,
                          .compute = s->compute};
    size_t rows = kiln__conv_align64((size_t)s->a * (size_t)s->wp * sizeof(float));
    s->off_tmp = rows;
    s->off_v = s->off_tmp + rows;
    s->off_m = s->off_v + kiln__conv_align64((size_t)s->T * g.C * s->ntmax * sizeof(float));
    s->off_gemm = s->off_m + kiln__conv_align64((size_t)s->T * s->ntmax * g.K * sizeof(float));
    s->slice = s->off_gemm + kiln__conv_align64(kiln__sgemm_scratch_bytes(&ga, 1));
    c->scratch_bytes = s->slice * (size_t)s->workers;
    c->kstate = s;
    c->flops = kiln__conv_direct_flops(&g);
    return KILN_OK;
fail:
    free(U);
    wino_release(s);
    return st;
}

static kiln_status wino_f2_prepare(kiln__kctx *c) { return wino_prepare(c, 2, KILN__GEMM_F32); }
static kiln_status wino_f4_prepare(kiln__kctx *c) { return wino_prepare(c, 4, KILN__GEMM_F32); }
static kiln_status wino_f2_bf16_prepare(kiln__kctx *c) {
    return wino_prepare(c, 2, KILN__GEMM_BF16);
}

static double wino_cost(const kiln__kctx *c) {
    const wino *s = c->kstate;
    const kiln__conv2d *g = &s->g;
    const double tiles = (double)g->N * s->th * s->tw, T = s->T;
    const double gemm = 2.0 * tiles * T * (double)g->C * (double)g->K;
    const double eff =
        kiln__conv_gemm_efficiency((double)s->ntmax, (double)g->K, (double)g->C, s->compute);
    /* transforms: ~8 (input) and ~6 (output) operations per point, vector code */
    const double xform = tiles * T * (8.0 * g->C + 6.0 * g->K);
    /* V and M written and read once per block (mostly cache), the packed weights
     * streamed from memory once per block */
    const double vm = 2.0 * 4.0 * tiles * T * ((double)g->C + g->K);
    const double wts = (s->compute == KILN__GEMM_BF16 ? 2.0 : 4.0) * g->N * s->nblk * T * (double)g->C * g->K;
    /* the packed weights stream through the GEMMs' B reads while they
     * compute: the slower of the two, not their sum; they come from memory
     * (T times the layer's weights), at about half the rate the cost model
     * gives cache traffic (11 GB/s measured on ResNet-50's last layers) */
    const double products = kiln__cost_seconds(c, gemm, eff, 0.0);
    const double weights = kiln__cost_seconds(c, 0.0, 1.0, 1.8 * wts);
    return (products > weights ? products : weights) +
           kiln__cost_seconds(c, 0.0, 1.0, kiln__conv_io_bytes(g) + 0.25 * vm) +
           kiln__cost_seconds(c, xform, 0.08, 0);
}

/* V[t][ch][0 .. (ty1-ty0)*tw) = B^T d B of the tiles of tile rows [ty0, ty1)
 * of channel plane x (H, W); V: (T, C, ntmax). rb, tmp: (a, wp) buffers. */
static inline __attribute__((always_inline)) void input_tiles(const wino *s, int m,
                                                              const float *x, int64_t ch,
                                                              int64_t ty0, int64_t ty1,
                                                              float *restrict rb,
                                                              float *restrict tmp,
                                                              float *restrict V) {
    const kiln__conv2d *g = &s->g;
    const int a = m + 2;
    const int64_t wp = s->wp, tw = s->tw, W = g->W;
    const int64_t x0 = g->pw < wp ? g->pw : wp;                      /* rb[j] = x[j - pw] */
    const int64_t x1 = W + g->pw < wp ? W + g->pw : wp;              /* for j in [x0, x1) */
    for (int64_t ty = ty0; ty < ty1; ty++) {
        for (int i = 0; i < a; i++) { /* the a input rows, zero-padded */
            float *r = rb + i * wp;
            const int64_t iy = ty * m - g->ph + i;
            if (iy < 0 || iy >= g->H || x1 <= x0) {
                memset(r, 0, (size_t)wp * sizeof(float));
                continue;
            }
            for (int64_t j = 0; j < x0; j++) r[j] = 0.0f;
            memcpy(r + x0, x + iy * W + (x0 - g->pw), (size_t)(x1 - x0) * sizeof(float));
            for (int64_t j = x1; j < wp; j++) r[j] = 0.0f;
        }
        float *v = V + ch * s->ntmax + (ty - ty0) * tw;
        const int64_t pstride = g->C * s->ntmax; /* between points */
#ifdef KILN__WINO_X86
        if (s->avx512) {
            kiln__wino_in_row_avx512(m, rb, tmp, wp, tw, v, pstride);
            continue;
        }
#endif
        for (int64_t j = 0; j < wp; j++) { /* vertical: tmp[i][j] = (B^T rows)[i][j] */
            float d[AMAX], o[AMAX];
            for (int i = 0; i < a; i++) d[i] = rb[i * wp + j];
            in1d(m, d, o);
            for (int i = 0; i < a; i++) tmp[i * wp + j] = o[i];
        }
        for (int i = 0; i < a; i++) /* horizontal, per tile: point (i, j) */
            for (int64_t q = 0; q < tw; q++) {
                float d[AMAX], o[AMAX];
                for (int l = 0; l < a; l++) d[l] = tmp[i * wp + q * m + l];
                in1d(m, d, o);
                for (int j = 0; j < a; j++) v[(i * a + j) * pstride + q] = o[j];
            }
    }
}

/* Output tiles: Y[k0 + l][tile] = A^T M A for l in [0, kc), the tiles of
 * tile rows [ty0, ty1). Mb: (T, ntmax, K); y: image n's (K, P, Q) at
 * channel k0. Vectorized over 16 channels at a time. */
static inline __attribute__((always_inline)) void output_tiles(const wino *s, int m,
                                                               const float *Mb, int64_t ty0,
                                                               int64_t ty1, int64_t kc,
                                                               float *y) {
    const kiln__conv2d *g = &s->g;
    const int a = m + 2;
    const int64_t PQ = g->P * g->Q, tstride = s->ntmax * g->K;
    for (int64_t ty = ty0; ty < ty1; ty++)
        for (int64_t tx = 0; tx < s->tw; tx++) {
            const float *mt = Mb + ((ty - ty0) * s->tw + tx) * g->K;
            const int64_t oy = ty * m, ox = tx * m;
            const int hm = g->P - oy < m ? (int)(g->P - oy) : m;
            const int wm = g->Q - ox < m ? (int)(g->Q - ox) : m;
#ifdef KILN__WINO_X86
            if (s->avx512) {
                kiln__wino_out_tile_avx512(m, mt, tstride, kc, y + oy * g->Q + ox, PQ, g->Q, hm, wm);
                continue;
            }
#endif
            for (int64_t k0 = 0; k0 < kc; k0 += 16) {
                const int L = kc - k0 < 16 ? (int)(kc - k0) : 16;
                float sv[AMAX][4][16], res[4][4][16];
                for (int j = 0; j < a; j++) /* vertical: column j of A^T M */
                    for (int l = 0; l < L; l++) {
                        float d[AMAX], o[4];
                        for (int i = 0; i < a; i++) d[i] = mt[(i * a + j) * tstride + k0 + l];
                        out1d(m, d, o);
                        for (int i = 0; i < m; i++) sv[j][i][l] = o[i];
                    }
                for (int i = 0; i < m; i++) /* horizontal */
                    for (int l = 0; l < L; l++) {
                        float d[AMAX], o[4];
                        for (int j = 0; j < a; j++) d[j] = sv[j][i][l];
                        out1d(m, d, o);
                        for (int j = 0; j < m; j++) res[i][j][l] = o[j];
                    }
                for (int l = 0; l < L; l++) {
                    float *yk = y + (k0 + l) * PQ + oy * g->Q + ox;
                    for (int i = 0; i < hm; i++)
                        for (int j = 0; j < wm; j++) yk[i * g->Q + j] = res[i][j][l];
                }
            }
        }
}

/* The three stages of block (image n, tile rows [ty0, ty1)), each over a
 * range so that one thread can run a whole block (the item passes) or all
 * threads a share of each stage (the phased passes). slice: the running
 * thread's scratch (padded rows, GEMM packing); V, Mb: the block's. */

/* V for input channels [ch0, ch1). */
static inline __attribute__((always_inline)) void stage_in(const wino *s, int m, const float *x,
                                                           int64_t ch0, int64_t ch1, int64_t ty0,
                                                           int64_t ty1, char *slice, float *V) {
    const int64_t HW = s->g.H * s->g.W;
    for (int64_t ch = ch0; ch < ch1; ch++)
        input_tiles(s, m, x + ch * HW, ch, ty0, ty1, (float *)slice,
                    (float *)(slice + s->off_tmp), V);
}

/* M_t = V_t^T U_t for points [t0, t1). */
static kiln_status stage_products(const wino *s, int64_t t0, int64_t t1, int64_t ty0,
                                  int64_t ty1, char *slice, const float *V, float *Mb) {
    const kiln__conv2d *g = &s->g;
    for (int64_t t = t0; t < t1; t++) {
        kiln__gemm_args a = {.m = (ty1 - ty0) * s->tw, .n = g->K, .k = g->C, .trans_a = 1,
                             .alpha = 1.0f, .beta = 0.0f, .a = V + t * g->C * s->ntmax,
                             .lda = s->ntmax, .b = s->packed[t], .b_packed = 1,
                             .c = Mb + t * s->ntmax * g->K, .ldc = g->K, .compute = s->compute,
                             .scratch = slice + s->off_gemm};
        KILN__TRY(kiln__sgemm(&a, 0, 1));
    }
    return KILN_OK;
}

/* Y of output channels [k0, k1) of image n, with the epilogue. */
static inline __attribute__((always_inline)) void stage_out(const wino *s, int m,
                                                            const kiln__conv_io *io, int64_t n,
                                                            int64_t k0, int64_t k1, int64_t ty0,
                                                            int64_t ty1, const float *Mb) {
    const kiln__conv2d *g = &s->g;
    if (k0 >= k1) return;
    const int64_t PQ = g->P * g->Q;
    output_tiles(s, m, Mb + k0, ty0, ty1, k1 - k0, io->y + (n * g->K + k0) * PQ);
    const int64_t r0 = ty0 * m, r1 = ty1 * m < g->P ? ty1 * m : g->P;
    const int64_t off = (n * g->K + k0) * PQ + r0 * g->Q;
    kiln__conv_epilogue_rows(g, io->y + off, k1 - k0, (r1 - r0) * g->Q, PQ,
                             io->b ? io->b + k0 : NULL, io->z ? io->z + off : NULL);
}

/* One pass of wino_run over the pool: the items, or one stage of block
 * (n, ty0, ty1). */
typedef struct wino_job {
    const kiln__kctx *c;
    const wino *s;
    int workers;
    int phase; /* 0: items; 1: input transform; 2: GEMMs; 3: output transform */
    int64_t n, ty0, ty1;
    int failed; /* a GEMM refused its arguments (a bug): the first status */
} wino_job;

/* Thread ith's items (whole blocks, in its own slice's V and M); m constant
 * when inlined. */
static inline __attribute__((always_inline)) kiln_status wino_items(const wino_job *j, int m,
                                                                    int ith) {
    const wino *s = j->s;
    const kiln__conv2d *g = &s->g;
    kiln__conv_io io;
    kiln__conv_io_get(j->c, &io);
    char *slice = (char *)j->c->scratch + (size_t)ith * s->slice;
    float *V = (float *)(slice + s->off_v), *Mb = (float *)(slice + s->off_m);
    int64_t lo, hi;
    kiln__split(g->N * s->nblk, ith, j->workers, &lo, &hi);
    for (int64_t block = lo; block < hi; block++) {
        const int64_t blk = block % s->nblk, n = block / s->nblk;
        const int64_t ty0 = blk * s->rpb, ty1 = ty0 + s->rpb < s->th ? ty0 + s->rpb : s->th;
        stage_in(s, m, io.x + n * g->C * g->H * g->W, 0, g->C, ty0, ty1, slice, V);
        KILN__TRY(stage_products(s, 0, s->T, ty0, ty1, slice, V, Mb));
        stage_out(s, m, &io, n, 0, g->K, ty0, ty1, Mb);
    }
    return KILN_OK;
}

/* Thread ith's share of stage j->phase of block j (V and M of slice 0):
 * input channels, points, or output channels in whole vectors of 16. */
static inline __attribute__((always_inline)) kiln_status wino_stage(const wino_job *j, int m,
                                                                    int ith) {
    const wino *s = j->s;
    const kiln__conv2d *g = &s->g;
    char *slice = (char *)j->c->scratch + (size_t)ith * s->slice;
    float *V = (float *)((char *)j->c->scratch + s->off_v);
    float *Mb = (float *)((char *)j->c->scratch + s->off_m);
    kiln__conv_io io;
    kiln__conv_io_get(j->c, &io);
    int64_t lo, hi;
    switch (j->phase) {
    case 1:
        kiln__split(g->C, ith, j->workers, &lo, &hi);
        stage_in(s, m, io.x + j->n * g->C * g->H * g->W, lo, hi, j->ty0, j->ty1, slice, V);
        return KILN_OK;
    case 2:
        kiln__split(s->T, ith, j->workers, &lo, &hi);
        return stage_products(s, lo, hi, j->ty0, j->ty1, slice, V, Mb);
    default:
        kiln__conv_chunk(g->K, 16, ith, j->workers, &lo, &hi);
        stage_out(s, m, &io, j->n, lo, hi, j->ty0, j->ty1, Mb);
        return KILN_OK;
    }
}

static inline __attribute__((always_inline)) kiln_status wino_pass(const wino_job *j, int m,
                                                                   int ith) {
    return j->phase == 0 ? wino_items(j, m, ith) : wino_stage(j, m, ith);
}

static void wino_task(void *arg, int ith, int nth) {
    wino_job *j = arg;
    (void)nth;
    if (ith >= j->workers) return;
    kiln_status st = j->s->m == 2 ? wino_pass(j, 2, ith) : wino_pass(j, 4, ith);
    int none = KILN_OK;
    if (st != KILN_OK)
        __atomic_compare_exchange_n(&j->failed, &none, (int)st, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
}

/* Runs pass j on the pool (or the caller with one worker). */
static kiln_status wino_pool_pass(kiln__pool *pool, wino_job *j) {
    j->failed = KILN_OK;
    if (j->workers <= 1)
        wino_task(j, 0, 1);
    else
        kiln__pool_run(pool, j->workers, wino_task, j);
    if (j->failed != KILN_OK)
        return kiln__err((kiln_status)j->failed, "winograd: a GEMM failed (pass %d)", j->phase);
    return KILN_OK;
}

static kiln_status wino_run(kiln__kctx *c) {
    const wino *s = c->kstate;
    wino_job j = {.c = c, .s = s, .workers = c->pool ? kiln__pool_size(c->pool) : 1};
    if (j.workers > s->workers) j.workers = s->workers;
    if (!s->phased || j.workers <= 1) return wino_pool_pass(c->pool, &j);
    for (j.n = 0; j.n < s->g.N; j.n++)
        for (int64_t blk = 0; blk < s->nblk; blk++) {
            j.ty0 = blk * s->rpb;
            j.ty1 = j.ty0 + s->rpb < s->th ? j.ty0 + s->rpb : s->th;
            for (j.phase = 1; j.phase <= 3; j.phase++) KILN__TRY(wino_pool_pass(c->pool, &j));
        }
    return KILN_OK;
}

/* Conv and kiln.FusedConv, F2 and F4 in f32, F2 also in bf16 (F4's larger
 * transform coefficients amplify bf16 rounding past the 1e-2 bound: 2.3e-2
 * measured on the unit test's layers) */
#define WINO_ALGO(name, domain, op, prep)                                                    \
    const kiln__algo kiln__algo_##name = {#name, domain, op, 0, prep,                       \
                                          wino_cost, wino_run, wino_release};
WINO_ALGO(conv_winograd_f2, "", "Conv", wino_f2_prepare)
WINO_ALGO(conv_winograd_f4, "", "Conv", wino_f4_prepare)
WINO_ALGO(conv_winograd_f2_bf16, "", "Conv", wino_f2_bf16_prepare)
WINO_ALGO(fused_conv_winograd_f2, "kiln", "FusedConv", wino_f2_prepare)
WINO_ALGO(fused_conv_winograd_f4, "kiln", "FusedConv", wino_f4_prepare)
WINO_ALGO(fused_conv_winograd_f2_bf16, "kiln", "FusedConv", wino_f2_bf16_prepare)
