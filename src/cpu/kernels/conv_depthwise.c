/* src/cpu/kernels/conv_depthwise.c: depthwise convolution (group == C, any
 * channel multiplier K/C), direct: the algorithms conv_depthwise (Conv) and
 * fused_conv_depthwise (kiln.FusedConv), the plan-time mask tables of the
 * vector kernels (x86/conv_depthwise_avx512.c, x86/conv_depthwise_avx2.c)
 * and the portable kernels (conv_depthwise.h). Any kernel size, stride,
 * padding and dilation.
 *
 * x: (N,C,H,W), w: (K,1,R,S), y: (N,K,P,Q); output channel k reads input
 * channel k / (K/C). Bias, the residual Z and the activation are applied by
 * the kernels while each output is in registers (AVX-512), or right after
 * its row (portable).
 *
 * Kernel choice (once, in prepare; dw_choose): on AVX-512 CPUs the flat
 * kernel straight over the input when the geometry allows it (stride 1,
 * Q == W: every "same"-padded stride-1 layer), else over phase planes the
 * run fills per plane (strided "same" layers: MobileNetV2's stride 2), else
 * the row kernels; on AVX2 CPUs the rows over padded phase planes
 * (x86/conv_depthwise_avx2.c) while its scratch fits DW_PHASE_MAX, and the
 * portable rows for planes with a non-finite weight; elsewhere the portable
 * rows.
 *
 * Threads: run drives the pool itself; the threads take blocks of (plane,
 * chunk) items from a shared counter (a thread woken late leaves its share
 * to the others). Planes are cut into chunks (of rows, or of groups of
 * KILN__DW_NB flat vectors) only when there are too few planes for the
 * threads to share evenly.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/conv_algo.h"
#include "cpu/kernels/conv_depthwise.h"
#include "cpu/ref/conv.h"

/* ---- portable kernels ---------------------------------------------------------------
 * Also compiled for x86-64-v3 (AVX2 + FMA, picked at load time: the CPUs
 * without AVX-512 run these), with the loop vectorizer's full cost model:
 * -O2's leaves loops of unknown length scalar. */

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

/* y[q] = act(y[q]) for q < n: ReLU and Clip inline (so the loop vectorizes;
 * the same results as kiln__act_apply, NaN passing through), the rest
 * through it. */
static inline void act_row(const kiln__act *a, float *restrict y, int64_t n) {
    if (a->kind == KILN__ACT_RELU) {
        for (int64_t q = 0; q < n; q++) y[q] = y[q] < 0.0f ? 0.0f : y[q];
    } else if (a->kind == KILN__ACT_CLIP) {
        const float lo = a->lo, hi = a->hi;
        for (int64_t q = 0; q < n; q++) y[q] = y[q] < lo ? lo : y[q] > hi ? hi : y[q];
    } else if (a->kind != KILN__ACT_NONE) {
        for (int64_t q = 0; q < n; q++) y[q] = kiln__act_apply(a, y[q]);
    }
}

KILN__F32_CLONES void kiln__dw_row_generic(const kiln__dw_geom *d, const float *const *rows,
                                           const float *w, float bias, float *restrict y) {
    for (int64_t q = 0; q < d->Q; q++) y[q] = bias;
    for (int64_t r = 0; r < d->R; r++) {
        if (!rows[r]) continue;
        for (int64_t s = 0; s < d->S; s++) {
            const float ws = w[r * d->S + s];
            const float *restrict x = rows[r] + s * d->dw - d->pw; /* x[q*sw] for q in range */
            const int64_t lo = d->qlo[s], hi = d->qhi[s], sw = d->sw;
            if (sw == 1)
                for (int64_t q = lo; q < hi; q++) y[q] += ws * x[q];
            else
                for (int64_t q = lo; q < hi; q++) y[q] += ws * x[q * sw];
        }
    }
}

KILN__F32_CLONES void kiln__dw_rows_generic(const kiln__dw_geom *d, const kiln__dw_plane *pl,
                                            int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; p++) {
        for (int64_t r = 0; r < d->R; r++) {
            int64_t ih = p * d->sh - d->ph + r * d->dh;
            pl->rows[r] = ih >= 0 && ih < d->H ? pl->x + ih * d->W : NULL;
        }
        float *y = pl->y + p * d->Q;
        kiln__dw_row_generic(d, pl->rows, pl->w, pl->bias, y);
        const float *z = pl->z ? pl->z + p * d->Q : NULL;
        if (z)
            for (int64_t q = 0; q < d->Q; q++) y[q] += z[q];
        act_row(&d->act, y, d->Q);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/* ---- mask tables ---------------------------------------------------------------------- */

/* Bits [lo, hi) of 16 (clamped). */
static uint16_t range16(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (uint16_t)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

void kiln__dw_row_masks(const kiln__dw_geom *d, uint16_t *t) {
    memset(t, 0, (size_t)kiln__dw_row_masks_len(d->Q, d->S) * sizeof *t);
    for (int64_t v = 0; v < (d->Q + 15) / 16; v++)
        for (int64_t s = 0; s < d->S; s++) {
            uint16_t *e = t + (v * d->S + s) * 3;
            const int64_t q0 = v * 16;
            e[0] = range16(d->qlo[s] - q0, d->qhi[s] - q0);
            if (d->sw == 2) {
                /* elements x[e] of the two loads, at column c0 + e, inside [0, W) */
                int64_t c0 = 2 * q0 + s * d->dw - d->pw, lo = -c0, hi = d->W - c0;
                if (hi > 31) hi = 31; /* 15 lanes x 2 + 1: never past the last tap */
                e[1] = range16(lo, hi);
                e[2] = range16(lo - 16, hi - 16);
            }
        }
}

int64_t kiln__dw_flat_period(int64_t Q) {
    int64_t a = Q, b = 16;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return Q / a;
}

void kiln__dw_flat_masks(const kiln__dw_geom *d, uint16_t *t) {
    const int64_t V = kiln__dw_flat_period(d->Q);
    for (int64_t v = 0; v < V; v++)
        for (int64_t s = 0; s < d->S; s++) {
            unsigned m = 0;
            for (int l = 0; l < 16; l++) {
                int64_t q = (v * 16 + l) % d->Q;
                if (q >= d->qlo[s] && q < d->qhi[s]) m |= 1u << l;
            }
            t[v * d->S + s] = (uint16_t)m;
        }
}

void kiln__dw_flat_tapmasks(const kiln__dw_geom *d, uint16_t *t) {
    const int64_t PQ = d->P * d->Q, RS = d->R * d->S;
    memset(t, 0, (size_t)kiln__dw_flat_tapmasks_len(d) * sizeof *t);
    for (int64_t v = 0; v < (PQ + 15) / 16; v++)
        for (int64_t r = 0; r < d->R; r++)
            for (int64_t s = 0; s < d->S; s++) {
                unsigned m = 0;
                for (int l = 0; l < 16 && v * 16 + l < PQ; l++) {
                    int64_t p = (v * 16 + l) / d->Q, q = (v * 16 + l) % d->Q;
                    int64_t ih = p * d->sh - d->ph + r * d->dh;
                    if (ih >= 0 && ih < d->H && q >= d->qlo[s] && q < d->qhi[s]) m |= 1u << l;
                }
                t[v * RS + r * d->S + s] = (uint16_t)m;
            }
}

/* floor(a / b), b > 0 */
static int64_t floordiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int kiln__dw_phase_ok(const kiln__dw_geom *d) {
    for (int64_t s = 0; s < d->S; s++) /* the last output reading inside reads the last column */
        if (d->qhi[s] > d->qlo[s] && ((d->qhi[s] - 1) * d->sw + s * d->dw - d->pw) / d->sw >= d->Q)
            return 0;
    return 1;
}

void kiln__dw_tapoffs(const kiln__dw_geom *d, int64_t *off) {
    for (int64_t r = 0; r < d->R; r++)
        for (int64_t s = 0; s < d->S; s++) {
            if (d->padded) {
                const int64_t a = r * d->dh, b = s * d->dw;
                off[r * d->S + s] = (a % d->sh * d->sw + b % d->sw) * kiln__dw_pad_plane_stride(d) +
                                    a / d->sh * d->Wp + b / d->sw;
                continue;
            }
            int64_t a = r * d->dh - d->ph, b = s * d->dw - d->pw;
            if (!d->phased) {
                off[r * d->S + s] = a * d->W + b;
                continue;
            }
            int64_t fa = floordiv(a, d->sh), fb = floordiv(b, d->sw);
            int64_t rho = a - fa * d->sh, sigma = b - fb * d->sw;
            off[r * d->S + s] = ((rho * d->sw + sigma) * d->Hp + fa) * d->Q + fb;
        }
}

void kiln__dw_pad_geom(kiln__dw_geom *d) {
    d->padded = 1;
    d->Wp = d->Q + (d->S - 1) * d->dw / d->sw;
    const int64_t rows = kiln__dw_pad_block_rows(d); /* reads Wp */
    d->Hp = (d->P < rows ? d->P : rows) + (d->R - 1) * d->dh / d->sh;
}

void kiln__dw_geom_init(kiln__dw_geom *d, const kiln__conv2d *g, int64_t *ranges) {
    *d = (kiln__dw_geom){.H = g->H, .W = g->W, .P = g->P, .Q = g->Q, .R = g->R, .S = g->S,
                         .sh = g->sh, .sw = g->sw, .dh = g->dh, .dw = g->dw, .ph = g->ph,
                         .pw = g->pw, .act = g->act,
                         .qlo = ranges, .qhi = ranges + g->S};
    for (int64_t t = 0; t < g->S; t++) {
        kiln__stride_range(t * g->dw - g->pw, g->sw, g->W, g->Q, &ranges[t], &ranges[g->S + t]);
    }
}

/* ---- the algorithm ---------------------------------------------------------------------- */

/* Flat kernel tables, in entries: the whole-plane table (kiln__dw_flat_tapmasks)
 * up to DW_TAPMASK_MAX (16 KB: 3x3 up to 112x112 outputs), so that masks cost
 * one load each at run time; beyond, direct planes take the column masks
 * (up to DW_COLMASK_MAX: huge odd Q loses little on the row kernels) and
 * phased ones the row kernels. Phase planes (and the AVX2 kernel's padded
 * planes) up to DW_PHASE_MAX floats per thread (1 MB). */
#define DW_TAPMASK_MAX 8192
#define DW_COLMASK_MAX 4096
#define DW_PHASE_MAX (256 * 1024)

typedef enum dw_kind {
    DW_GENERIC,   /* portable rows */
    DW_ROWS,      /* AVX-512 rows (vmask) */
    DW_FLAT_COLS, /* AVX-512 flat, direct, colmask */
    DW_FLAT_FULL, /* AVX-512 flat, direct, tapmask */
    DW_FLAT_PHASED, /* AVX-512 flat, phase planes, tapmask */
    DW_PADDED,    /* AVX2 rows over padded phase planes (portable rows for
                     planes with a non-finite weight) */
} dw_kind;

typedef struct dw_conv {
    kiln__conv2d g;
    kiln__dw_geom d;      /* points into data[] */
    dw_kind kind;
    kiln__dw_plane_fn fn; /* the kernel */
    int64_t units, align; /* units per plane (rows or vectors), chunk boundaries */
    int64_t nch;          /* chunks per plane */
    int workers;          /* threads the scratch has slices for */
    size_t rows_bytes;    /* scratch per thread: KILN__DW_NB * R row pointers, */
    size_t slice;         /* then the phase planes (phased or padded) */
    int64_t data[];       /* qlo[S], qhi[S], tapoff[R*S], then the mask table */
} dw_conv;

/* The kernel for d on this CPU, and its table's entries: AVX-512F CPUs
 * above; AVX2 + FMA ones the padded rows while the padded planes fit. */
static dw_kind dw_choose(kiln__dw_geom *d, int64_t *masks) {
    *masks = 0;
    if (d->Q <= 0) return DW_GENERIC;
    if (!kiln__cpu_has_avx512f()) {
        kiln__dw_geom t = *d;
        kiln__dw_pad_geom(&t);
        if (!kiln__gemm_isa_supported(KILN__GEMM_ISA_AVX2) || kiln__dw_pad_scratch_len(&t) > DW_PHASE_MAX)
            return DW_GENERIC;
        *d = t;
        return DW_PADDED;
    }
    if (kiln__dw_flat_ok(d) && (*masks = kiln__dw_flat_tapmasks_len(d)) <= DW_TAPMASK_MAX)
        return DW_FLAT_FULL;
    if (kiln__dw_flat_ok(d) && (*masks = kiln__dw_flat_period(d->Q) * d->S) <= DW_COLMASK_MAX)
        return DW_FLAT_COLS;
    d->phased = 1;
    d->Hp = (d->H + d->sh - 1) / d->sh;
    if (!kiln__dw_flat_ok(d) && kiln__dw_phase_ok(d) && kiln__dw_phase_len(d) <= DW_PHASE_MAX &&
        (*masks = kiln__dw_flat_tapmasks_len(d)) <= DW_TAPMASK_MAX)
        return DW_FLAT_PHASED;
    d->phased = 0;
    d->Hp = 0;
    *masks = kiln__dw_row_masks_len(d->Q, d->S);
    return DW_ROWS;
}

static kiln_status dw_prepare(kiln__kctx *c) {
    kiln__conv2d g;
    KILN__TRY(kiln__conv2d_read(c, &g));
    if (g.G != g.C || g.Cg != 1)
        return kiln__err(KILN_E_UNSUPPORTED, "conv_depthwise: group %lld, C %lld",
                         (long long)g.G, (long long)g.C);
    /* column ranges first: the tables and kiln__dw_phase_ok read them */
    int64_t *ranges = malloc(2 * (size_t)g.S * sizeof *ranges);
    if (!ranges) return kiln__err(KILN_E_NOMEM, "conv_depthwise: out of memory");
    kiln__dw_geom d;
    kiln__dw_geom_init(&d, &g, ranges);
    int64_t masks;
    dw_kind kind = dw_choose(&d, &masks);
    size_t head = (2 * (size_t)g.S + (size_t)(g.R * g.S)) * sizeof(int64_t);
    dw_conv *s = calloc(1, sizeof *s + head + (size_t)masks * sizeof(uint16_t));
    if (!s) {
        free(ranges);
        return kiln__err(KILN_E_NOMEM, "conv_depthwise: out of memory");
    }
    memcpy(s->data, ranges, 2 * (size_t)g.S * sizeof *ranges);
    free(ranges);
    s->g = g;
    s->kind = kind;
    d.qlo = s->data;
    d.qhi = s->data + g.S;
    int64_t *tapoff = s->data + 2 * g.S;
    uint16_t *table = (uint16_t *)(void *)(tapoff + g.R * g.S);
    s->units = g.P;
    s->align = 1;
    s->fn = kiln__dw_rows_generic;
#ifdef KILN__DW_X86
    switch (kind) {
    case DW_ROWS:
        kiln__dw_row_masks(&d, table);
        d.vmask = table;
        s->fn = kiln__dw_rows_avx512_pick(&d);
        break;
    case DW_FLAT_COLS:
        d.period = kiln__dw_flat_period(g.Q);
        kiln__dw_flat_masks(&d, table);
        d.colmask = table;
        break;
    case DW_FLAT_FULL:
    case DW_FLAT_PHASED:
        kiln__dw_flat_tapmasks(&d, table);
        d.tapmask = table;
        kiln__dw_tapoffs(&d, tapoff);
        d.tapoff = tapoff;
        break;
    case DW_PADDED:
        kiln__dw_tapoffs(&d, tapoff);
        d.tapoff = tapoff;
        s->fn = kiln__dw_pad_avx2_pick(&d);
        break;
    default: break;
    }
    if (kind == DW_FLAT_COLS || kind == DW_FLAT_FULL || kind == DW_FLAT_PHASED) {
        s->fn = kiln__dw_flat_avx512_pick(&d);
        s->units = (g.P * g.Q + 15) / 16;
        s->align = KILN__DW_NB;
    }
#endif
    s->d = d;
    s->workers = kiln__conv_nth(c);
    s->nch = kiln__conv_mchunks(g.N * g.K, s->units, s->workers, s->align);
    s->rows_bytes = kiln__conv_align64((size_t)KILN__DW_NB * (size_t)g.R * sizeof(const float *));
    const int64_t planes = d.padded   ? kiln__dw_pad_scratch_len(&d)
                           : d.phased ? kiln__dw_phase_len(&d)
                                      : 0;
    s->slice = s->rows_bytes + kiln__conv_align64((size_t)planes * sizeof(float));
    c->scratch_bytes = s->slice * (size_t)s->workers;
    c->kstate = s;
    c->flops = kiln__conv_direct_flops(&g);
    return KILN_OK;
}

static double dw_cost(const kiln__kctx *c) {
    const dw_conv *s = c->kstate;
    /* masked vector FMAs, one per tap and 16 outputs: a fair share of peak;
     * strided loads permute or gather; the portable rows are scalar-ish */
    double eff = s->kind == DW_GENERIC ? 0.03 : s->kind == DW_ROWS && s->g.sw != 1 ? 0.15 : 0.3;
    if (s->kind == DW_PADDED) eff = 0.2; /* 8 lanes, and the planes' copy */
    return kiln__cost_seconds(c, c->flops, eff, kiln__conv_io_bytes(&s->g));
}

/* Input rows [*ih0, *ih1) that flat vectors [lo, hi) read. */
static void dw_flat_rows(const kiln__dw_geom *d, int64_t lo, int64_t hi, int64_t *ih0,
                         int64_t *ih1) {
    const int64_t PQ = d->P * d->Q, last = (hi * 16 < PQ ? hi * 16 : PQ) - 1;
    *ih0 = *ih1 = 0;
    if (last < lo * 16) return;
    if (lo == 0 && last == PQ - 1) { /* the whole plane (no divisions) */
        *ih1 = d->H;
        return;
    }
    int64_t a = lo * 16 / d->Q * d->sh - d->ph, b = last / d->Q * d->sh - d->ph + (d->R - 1) * d->dh + 1;
    *ih0 = a < 0 ? 0 : a;
    *ih1 = b > d->H ? d->H : b;
}

/* 1 if the n weights are all finite. */
static int dw_finite(const float *w, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return 0;
    return 1;
}

/* Items [lo, hi) (item = (plane, chunk)) with thread scratch `mine`. */
static void dw_items(const dw_conv *s, const kiln__conv_io *io, char *mine, int64_t lo,
                     int64_t hi) {
    const kiln__conv2d *g = &s->g;
    kiln__dw_plane pl;
    pl.rows = (const float **)(void *)mine;
    float *phase = (float *)(void *)(mine + s->rows_bytes);
    const int64_t PQ = g->P * g->Q, HW = g->H * g->W;
    /* plane = n*K + k reads input channel k / Kg: counters instead of
     * divisions per item (planes can be 7x7) */
    int64_t plane = lo / s->nch, ch = lo % s->nch, k = plane % g->K, m = k % g->Kg;
    const float *xc = io->x + (plane / g->K * g->C + k / g->Kg) * HW; /* input channel */
    for (int64_t it = lo; it < hi; it++) {
        int64_t u0 = 0, u1 = s->units;
        if (s->nch > 1) kiln__conv_chunk(s->units, s->align, ch, s->nch, &u0, &u1);
        pl.x = xc;
        pl.w = io->w + k * g->R * g->S;
        pl.bias = io->b ? io->b[k] : 0.0f;
        pl.z = io->z ? io->z + plane * PQ : NULL;
        pl.y = io->y + plane * PQ;
#ifdef KILN__DW_X86
        if (s->d.phased) {
            int64_t ih0, ih1;
            dw_flat_rows(&s->d, u0, u1, &ih0, &ih1);
            kiln__dw_phase_fill_avx512(&s->d, xc, phase, ih0, ih1);
            pl.x = phase;
        }
#endif
        kiln__dw_plane_fn fn = s->fn;
        if (s->d.padded) { /* zero padding would multiply a non-finite weight by 0 */
            pl.buf = phase;
            if (!dw_finite(pl.w, g->R * g->S)) fn = kiln__dw_rows_generic;
        }
        fn(&s->d, &pl, u0, u1);
        if (++ch < s->nch) continue;
        ch = 0;
        plane++;
        if (++m == g->Kg) { /* next input channel (the next image's first after the last) */
            m = 0;
            xc += HW;
        }
        if (++k == g->K) k = 0;
    }
}

/* Threads take blocks of items from a shared counter, so that a thread the
 * pool wakes late (or the OS preempts) leaves its share to the others. */
typedef struct dw_job {
    const dw_conv *s;
    kiln__conv_io io;
    char *scratch;
    int64_t items, block;
    atomic_llong next;
} dw_job;

static void dw_task(void *arg, int ith, int nth) {
    (void)nth;
    dw_job *j = arg;
    char *mine = j->scratch + (size_t)ith * j->s->slice;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add(&j->next, 1) * j->block;
        if (lo >= j->items) return;
        dw_items(j->s, &j->io, mine, lo, lo + j->block < j->items ? lo + j->block : j->items);
    }
}

/* Blocks per thread: enough to even out late starts, few enough that the
 * counter costs nothing. */
#define DW_BLOCKS_PER_THREAD 8

static kiln_status dw_run(kiln__kctx *c) {
    const dw_conv *s = c->kstate;
    const kiln__conv2d *g = &s->g;
    dw_job j = {.s = s, .scratch = c->scratch, .items = g->N * g->K * s->nch};
    kiln__conv_io_get(c, &j.io);
    int workers = c->pool ? kiln__pool_size(c->pool) : 1;
    if (workers > s->workers) workers = s->workers;
    if (workers <= 1 || j.items <= 1) {
        dw_items(s, &j.io, c->scratch, 0, j.items);
        return KILN_OK;
    }
    int64_t blocks = (int64_t)workers * DW_BLOCKS_PER_THREAD;
    j.block = (j.items + blocks - 1) / blocks;
    atomic_init(&j.next, 0);
    kiln__pool_run(c->pool, workers, dw_task, &j);
    return KILN_OK;
}

static void dw_release(void *kstate) { free(kstate); }

const kiln__algo kiln__algo_conv_depthwise = {"conv_depthwise", "", "Conv", 0, dw_prepare,
                                              dw_cost, dw_run, dw_release};
const kiln__algo kiln__algo_fused_conv_depthwise = {"fused_conv_depthwise", "kiln", "FusedConv", 0,
                                                    dw_prepare, dw_cost, dw_run, dw_release};
