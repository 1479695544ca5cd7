/* src/cpu/kernels/rnn.c: fast LSTM and GRU (ONNX semantics; the reference is
 * src/cpu/ref/rnn.c), as four algorithms (src/ops/algo.h):
 *
 *   lstm_gemm, gru_gemm              each direction on one thread
 *   lstm_gemm_split, gru_gemm_split  the hidden units of each direction split
 *                                    across threads, a barrier per step
 *
 * Shapes (G gates: GRU 3, LSTM 4; D directions; S steps; N batch; I input;
 * H hidden; layout 0 / layout 1):
 *   X (S,N,I) / (N,S,I)     W (D,G*H,I)   R (D,G*H,H)   B (D,2*G*H)   P (D,3*H)
 *   initial_h/c, Y_h/c (D,N,H) / (N,D,H)   Y (S,D,N,H) / (N,S,D,H)
 *
 * Plan time (prepare): each direction's hidden units are cut into slices
 * (one, or one per thread for _split); a slice keeps its gates as
 * consecutive blocks (LSTM i,o,f,c; GRU z,r,h), so one thread computes all
 * gates of its hidden units and runs the gate math on them at once. W is packed once as the B operand (I, D*G*H) of the input
 * projection with its columns in that order, the biases summed into one
 * column bias (GRU with linear_before_reset keeps Rbh out: it is multiplied
 * by r); each slice's rows of R are packed once as the B operand (H, cols)
 * of its per-step product (GRU without linear_before_reset: two, z,r and h,
 * as h's product needs r*h first). All of that is one weights block: owned
 * by the kstate and packed in prepare when W, R, B and P are constants; in
 * the run's scratch and packed at the start of every run when they are not
 * (a model being trained).
 *
 * Run: (1) the projection for every step and direction, one GEMM with
 * M = S*N rows (X's rows in memory order, either layout) into scratch; (2)
 * per step and slice, rec (N, cols) = h_prev (N,H) x R_slice^T (M = N), then
 * the gate kernel (rnn.h: AVX-512 or scalar) per batch row adds the row's
 * projection and writes c in place and h into the other of two h buffers.
 * sequence_lens: every row is multiplied each step; a row past its length
 * keeps its state and gets zeros in Y (reverse rows start at their own last
 * step), as the reference does.
 *
 * Threads (non-parallel algorithms driving c->pool): the projection GEMM
 * splits over the pool; the recurrence runs directions on different threads
 * (one kiln__pool_run for the whole sequence) or, for _split, every
 * (direction, slice) pair on thread pair % nth with a barrier (spin, then
 * futex) between steps and between GRU's two products. All arithmetic is f32; with
 * precision bf16 (when the GEMM supports it) the projection GEMM rounds its
 * operands to bf16, the recurrence stays f32 (its error would compound over
 * the steps).
 *
 * Refused (the reference runs them): dtypes other than f32, activations
 * other than the defaults, empty sizes, projections over 1 GiB (S*N*D*G*H
 * floats).
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu/kernels/gemm.h"
#include "cpu/kernels/rnn.h"
#include "ops/algo.h"

enum { IN_X, IN_W, IN_R, IN_B, IN_SEQ_LENS, IN_INITIAL_H, IN_INITIAL_C, IN_P };

/* One (direction, slice of hidden units) pair. Its weights are at byte
 * offsets in the weights block. */
typedef struct rnn_pair {
    int d;
    int64_t j0, hs;   /* hidden units [j0, j0 + hs) */
    int64_t n0;       /* columns of the first product: LSTM 4hs, GRU lbr 3hs, else 2hs */
    size_t b0;        /* packed op(B) (H, n0): the slice's R rows, gate-block order */
    size_t bias0;     /* GRU lbr: (n0) column bias of the first product (0, 0, Rbh) */
    size_t b1;        /* GRU without lbr: packed op(B) (H, hs) of Rh rows */
    size_t gemm_off;  /* its GEMM scratch in the run's scratch */
} rnn_pair;

typedef struct rnn_state {
    int lstm;            /* else GRU */
    int G, D, layout, reverse[2];
    int64_t S, N, I, H;
    int has_clip;
    float clip;
    int input_forget, lbr;
    int nslices, npairs; /* pairs direction-major: pair d*nslices + s */
    int split;           /* the _split variant */
    rnn_pair *pairs;
    /* the weights block: at w_off (0) op(B) (I, D*G*H) of the projection; at
     * bias_off its (D*G*H) column bias; at peep_off (D, 3H) peepholes when
     * has_peep; the pairs' products */
    size_t w_off, bias_off, peep_off, wblock_bytes;
    int has_peep;
    uint8_t *wblock;     /* constant weights: packed in prepare; else NULL */
    kiln__gemm_compute proj_compute;
    int nth;             /* threads the projection scratch is sized for */
    /* scratch layout (bytes); off_wblock, off_pack_tmp, off_pack_rows: the
     * weights block and the packing's temporaries when the weights come at
     * run time */
    size_t off_wblock, off_pack_tmp, off_pack_rows, off_proj, off_proj_gemm, off_lens, off_dirs, dir_bytes;
    size_t dir_h0, dir_h1, dir_c, dir_rh, dir_rec; /* within a direction's block */
    size_t scratch_bytes;
    const kiln__rnn_gates *gates;
} rnn_state;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Column of gate g, hidden unit j (in pair p's slice) within a direction. */
static int64_t slice_col(const rnn_state *st, const rnn_pair *p, int g, int64_t j) {
    return st->G * p->j0 + g * p->hs + (j - p->j0);
}

static void rnn_release(void *kstate) {
    rnn_state *st = kstate;
    if (!st) return;
    free(st->pairs);
    kiln__aligned_free(st->wblock);
    free(st);
}

/* ---- plan time ------------------------------------------------------------ */

/* Reads the attributes this implementation supports into st; KILN_E_UNSUPPORTED
 * for the others (the reference runs them). */
static kiln_status parse_attrs(const kiln__node *node, rnn_state *st) {
    const char *dir = kiln__attr_s(node, "direction", "forward");
    if (strcmp(dir, "forward") == 0) {
        st->D = 1;
    } else if (strcmp(dir, "reverse") == 0) {
        st->D = 1;
        st->reverse[0] = 1;
    } else if (strcmp(dir, "bidirectional") == 0) {
        st->D = 2;
        st->reverse[1] = 1;
    } else {
        return KILN_E_UNSUPPORTED;
    }
    int64_t layout = kiln__attr_i(node, "layout", 0);
    if (layout != 0 && layout != 1) return KILN_E_UNSUPPORTED;
    st->layout = (int)layout;
    const kiln__attr *clip = kiln__attr_find(node, "clip");
    if (clip) {
        if (!(clip->f >= 0)) return KILN_E_UNSUPPORTED;
        st->has_clip = 1;
        st->clip = clip->f;
    }
    st->input_forget = st->lstm && kiln__attr_i(node, "input_forget", 0) != 0;
    st->lbr = !st->lstm && kiln__attr_i(node, "linear_before_reset", 0) != 0;
    /* Activations: only the defaults (named or not), shared or per direction. */
    static const char *const lstm_acts[] = {"Sigmoid", "Tanh", "Tanh"};
    static const char *const gru_acts[] = {"Sigmoid", "Tanh"};
    const char *const *defaults = st->lstm ? lstm_acts : gru_acts;
    const int n_acts = st->lstm ? 3 : 2;
    char *const *names = NULL;
    int n_names = kiln__attr_strings(node, "activations", &names);
    if (n_names > 0) {
        if (n_names != n_acts && n_names != n_acts * st->D) return KILN_E_UNSUPPORTED;
        for (int k = 0; k < n_names; k++)
            if (strcasecmp(names[k], defaults[k % n_acts]) != 0) return KILN_E_UNSUPPORTED;
    }
    return KILN_OK;
}

/* Slice s of nslices over H hidden units: multiples of 16 (one vector) when
 * every slice can get at least 16, else near-equal. */
static void slice_bounds(int64_t H, int nslices, int s, int64_t *j0, int64_t *j1) {
    if (H >= 16 * (int64_t)nslices) {
        int64_t blocks = (H + 15) / 16, lo, hi;
        kiln__split(blocks, s, nslices, &lo, &hi);
        *j0 = lo * 16;
        *j1 = hi * 16 < H ? hi * 16 : H;
    } else {
        kiln__split(H, s, nslices, j0, j1);
    }
}

static size_t packed_bytes(kiln__gemm_compute compute, int64_t K, int64_t n) {
    return kiln__gemm_packed_b_bytes_ex(KILN__GEMM_ISA_AUTO, compute, K, n);
}

/* Packs rows rows[0..n) of the row-major (.., K) matrix src as op(B) (K, n)
 * (B^T of the gathered rows) for `compute` into out (packed_bytes(compute,
 * K, n) bytes). tmp holds n*K floats. */
static kiln_status pack_rows(const float *src, int64_t K, const int64_t *rows, int64_t n,
                             kiln__gemm_compute compute, float *tmp, uint8_t *out) {
    for (int64_t r = 0; r < n; r++) memcpy(tmp + r * K, src + rows[r] * K, (size_t)K * sizeof(float));
    return kiln__gemm_pack_b_ex(KILN__GEMM_ISA_AUTO, compute, 1, K, n, tmp, K, out,
                                packed_bytes(compute, K, n));
}

/* Scratch bytes of product g on nth threads, its packed B perhaps not
 * packed yet: sized as for a B it would pack itself (a packed one's header
 * would be read), a little more than it needs. */
static size_t gemm_bytes(kiln__gemm_args g, int nth) {
    static float dummy[1];
    g.a = g.b = g.c = dummy;
    g.bias_kind = KILN__GEMM_BIAS_NONE;
    g.bias = NULL;
    g.b_packed = 0;
    g.ldb = g.n;
    return kiln__sgemm_scratch_bytes(&g, nth);
}

/* Scratch bytes of one single-threaded per-step product with n columns. */
static size_t step_gemm_bytes(const rnn_state *st, int64_t n) {
    return gemm_bytes((kiln__gemm_args){.m = st->N, .n = n, .k = st->H, .alpha = 1, .lda = st->H,
                                        .ldc = n}, 1);
}

/* The projection GEMM's arguments with the weights block wb (NULL: only
 * the shapes; A and C are filled at run time). */
static kiln__gemm_args proj_args(const rnn_state *st, const uint8_t *wb) {
    const int64_t cols = st->D * st->G * st->H;
    kiln__gemm_args g = {.m = st->S * st->N, .n = cols, .k = st->I, .alpha = 1, .lda = st->I,
                         .b_packed = 1, .ldc = cols, .bias_kind = KILN__GEMM_BIAS_COL,
                         .compute = st->proj_compute};
    if (wb) {
        g.b = (const float *)(wb + st->w_off);
        g.bias = (const float *)(wb + st->bias_off);
    }
    return g;
}

/* Offsets of everything in the weights block (pairs' slices and n0 set). */
static kiln_status layout_weights(rnn_state *st) {
    const int64_t GH = st->G * st->H;
    size_t off = 0, b;
    st->w_off = off;
    if (!(b = packed_bytes(st->proj_compute, st->I, st->D * GH))) return KILN_E_UNSUPPORTED;
    off += align64(b);
    st->bias_off = off;
    off += align64((size_t)(st->D * GH) * sizeof(float));
    for (int q = 0; q < st->npairs; q++) {
        rnn_pair *p = &st->pairs[q];
        p->b0 = off;
        if (!(b = packed_bytes(KILN__GEMM_F32, st->H, p->n0))) return KILN_E_UNSUPPORTED;
        off += align64(b);
        if (!st->lstm && !st->lbr) {
            p->b1 = off;
            if (!(b = packed_bytes(KILN__GEMM_F32, st->H, p->hs))) return KILN_E_UNSUPPORTED;
            off += align64(b);
        }
        if (!st->lstm && st->lbr) {
            p->bias0 = off;
            off += align64((size_t)p->n0 * sizeof(float));
        }
    }
    st->peep_off = off;
    if (st->has_peep) off += align64((size_t)(st->D * 3 * st->H) * sizeof(float));
    st->wblock_bytes = off;
    return KILN_OK;
}

/* Floats of the packing's temporary matrix, and its int64 row indices. */
static size_t pack_tmp_floats(const rnn_state *st) {
    return (size_t)(st->D * st->G * st->H * (st->I > st->H ? st->I : st->H));
}
static size_t pack_rows_count(const rnn_state *st) { return (size_t)(st->D * st->G * st->H); }

/* Packs W, R, B, P (c's inputs, with data) into the weights block wb; tmp
 * and rows: pack_tmp_floats and pack_rows_count of room. */
static kiln_status pack_weights(const kiln__kctx *c, const rnn_state *st, uint8_t *wb, float *tmp,
                                int64_t *rows) {
    const int64_t G = st->G, D = st->D, H = st->H, I = st->I, GH = G * H;
    const float *W = c->in[IN_W]->data, *R = c->in[IN_R]->data;
    const kiln_tensor *bt = kiln__in(c, IN_B);
    const float *B = bt ? bt->data : NULL;
    float *bias = (float *)(wb + st->bias_off);
    /* projection: column (d, slice col) <- W row d*GH + g*H + j */
    for (int q = 0; q < st->npairs; q++) {
        const rnn_pair *p = &st->pairs[q];
        for (int g = 0; g < G; g++)
            for (int64_t j = p->j0; j < p->j0 + p->hs; j++) {
                int64_t col = p->d * GH + slice_col(st, p, g, j), src = p->d * GH + g * H + j;
                rows[col] = src;
                float b = 0;
                if (B) {
                    b = B[p->d * 2 * GH + g * H + j];
                    if (!(st->lbr && g == 2)) b += B[p->d * 2 * GH + GH + g * H + j];
                }
                bias[col] = b;
            }
    }
    KILN__TRY(pack_rows(W, I, rows, D * GH, st->proj_compute, tmp, wb + st->w_off));
    /* per-step products: R rows of each slice */
    for (int q = 0; q < st->npairs; q++) {
        const rnn_pair *p = &st->pairs[q];
        for (int g = 0; g < G; g++) /* rows of R's direction-d block, gate-block order */
            for (int64_t j = 0; j < p->hs; j++) rows[g * p->hs + j] = g * H + p->j0 + j;
        KILN__TRY(pack_rows(R + p->d * GH * H, H, rows, p->n0, KILN__GEMM_F32, tmp, wb + p->b0));
        if (!st->lstm && !st->lbr)
            KILN__TRY(pack_rows(R + p->d * GH * H, H, rows + 2 * p->hs, p->hs, KILN__GEMM_F32, tmp,
                                wb + p->b1));
        if (!st->lstm && st->lbr) {
            float *bias0 = (float *)(wb + p->bias0);
            for (int64_t j = 0; j < p->n0; j++) bias0[j] = 0;
            if (B)
                for (int64_t j = 0; j < p->hs; j++)
                    bias0[2 * p->hs + j] = B[p->d * 2 * GH + GH + 2 * H + p->j0 + j];
        }
    }
    if (st->has_peep)
        memcpy(wb + st->peep_off, kiln__in(c, IN_P)->data, (size_t)(D * 3 * H) * sizeof(float));
    return KILN_OK;
}

/* Packs the constant weights into a new block st->wblock. */
static kiln_status pack_constant_weights(const kiln__kctx *c, rnn_state *st) {
    float *tmp = malloc(pack_tmp_floats(st) * sizeof(float));
    int64_t *rows = malloc(pack_rows_count(st) * sizeof(int64_t));
    st->wblock = kiln__aligned_alloc(st->wblock_bytes);
    kiln_status s = tmp && rows && st->wblock
                        ? pack_weights(c, st, st->wblock, tmp, rows)
                        : kiln__err(KILN_E_NOMEM, "rnn: out of memory packing weights");
    free(tmp);
    free(rows);
    return s;
}

/* Scratch layout: projection, its GEMM scratch, lens, per direction
 * (h0, h1, c, rh, rec), per pair GEMM scratch. */
static void layout_scratch(rnn_state *st) {
    const int64_t N = st->N, H = st->H, GH = st->G * H;
    size_t off = 0;
    if (!st->wblock) { /* weights packed at run time */
        st->off_wblock = off;
        off += align64(st->wblock_bytes);
        st->off_pack_tmp = off;
        off += align64(pack_tmp_floats(st) * sizeof(float));
        st->off_pack_rows = off;
        off += align64(pack_rows_count(st) * sizeof(int64_t));
    }
    st->off_proj = off;
    off += align64((size_t)(st->S * N * st->D * GH) * sizeof(float));
    st->off_proj_gemm = off;
    off += align64(gemm_bytes(proj_args(st, NULL), st->nth));
    st->off_lens = off;
    off += align64((size_t)N * sizeof(int64_t));
    const size_t state = align64((size_t)(N * H) * sizeof(float));
    st->dir_h0 = 0;
    st->dir_h1 = state;
    st->dir_c = 2 * state;
    st->dir_rh = 3 * state;
    st->dir_rec = 4 * state;
    st->dir_bytes = 4 * state + align64((size_t)(N * GH) * sizeof(float));
    st->off_dirs = off;
    off += (size_t)st->D * st->dir_bytes;
    for (int q = 0; q < st->npairs; q++) {
        rnn_pair *p = &st->pairs[q];
        size_t a = step_gemm_bytes(st, p->n0);
        if (!st->lstm && !st->lbr) {
            size_t b = step_gemm_bytes(st, p->hs);
            if (b > a) a = b;
        }
        p->gemm_off = off;
        off += align64(a);
    }
    st->scratch_bytes = off;
}

static kiln_status rnn_prepare(kiln__kctx *c, int lstm, int split) {
    const kiln_tensor *x = kiln__in(c, IN_X), *w = kiln__in(c, IN_W), *r = kiln__in(c, IN_R);
    const kiln_tensor *b = kiln__in(c, IN_B), *p = lstm ? kiln__in(c, IN_P) : NULL;
    if (!x || !w || !r || x->dtype != KILN_DTYPE_F32 || x->ndim != 3 || r->ndim != 3 ||
        w->dtype != KILN_DTYPE_F32 || r->dtype != KILN_DTYPE_F32)
        return KILN_E_UNSUPPORTED;
    if ((b && b->dtype != KILN_DTYPE_F32) || (p && p->dtype != KILN_DTYPE_F32)) return KILN_E_UNSUPPORTED;
    const int constant = w->data && r->data && (!b || b->data) && (!p || p->data);
    for (int i = IN_INITIAL_H; i <= (lstm ? IN_INITIAL_C : IN_INITIAL_H); i++)
        if (kiln__in(c, i) && kiln__in(c, i)->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    if (split && c->nth_plan < 2) return KILN_E_UNSUPPORTED;

    rnn_state tmp = {.lstm = lstm, .G = lstm ? 4 : 3, .split = split};
    if (parse_attrs(c->node, &tmp) != KILN_OK) return KILN_E_UNSUPPORTED;
    tmp.S = x->dims[tmp.layout ? 1 : 0];
    tmp.N = x->dims[tmp.layout ? 0 : 1];
    tmp.I = x->dims[2];
    tmp.H = r->dims[2];
    if (tmp.S < 1 || tmp.N < 1 || tmp.I < 1 || tmp.H < 1) return KILN_E_UNSUPPORTED;
    /* infer checked the weight shapes; be safe against being offered anything */
    if (w->ndim != 3 || w->dims[0] != tmp.D || w->dims[1] != tmp.G * tmp.H || w->dims[2] != tmp.I ||
        r->dims[0] != tmp.D || r->dims[1] != tmp.G * tmp.H ||
        (b && (b->ndim != 2 || b->dims[1] != 2 * tmp.G * tmp.H)) ||
        (p && (p->ndim != 2 || p->dims[1] != 3 * tmp.H)))
        return KILN_E_UNSUPPORTED;
    /* The projection of every step is kept whole; past 1 GiB the reference runs. */
    if ((double)tmp.S * tmp.N * tmp.D * tmp.G * tmp.H * sizeof(float) > (double)(1 << 30))
        return KILN_E_UNSUPPORTED;
    if (split) {
        int per_dir = c->nth_plan / tmp.D;
        tmp.nslices = per_dir < 2 ? 2 : per_dir;
        if (tmp.nslices > tmp.H) tmp.nslices = (int)tmp.H;
        if (tmp.nslices < 2) return KILN_E_UNSUPPORTED;
    } else {
        tmp.nslices = 1;
    }
    tmp.npairs = tmp.D * tmp.nslices;
    tmp.has_peep = p != NULL;
    tmp.nth = c->nth_plan > 0 ? c->nth_plan : 1;
    /* bf16 only for the projection: the recurrence's rounding would compound */
    tmp.proj_compute = c->precision == KILN_PRECISION_BF16 &&
                               kiln__gemm_compute_supported(KILN__GEMM_BF16)
                           ? KILN__GEMM_BF16
                           : KILN__GEMM_F32;
    if (!(tmp.gates = kiln__rnn_gates_for(KILN__GEMM_ISA_AUTO))) return KILN_E_UNSUPPORTED;

    rnn_state *st = calloc(1, sizeof *st);
    if (!st) return kiln__err(KILN_E_NOMEM, "rnn: out of memory");
    *st = tmp;
    kiln_status s = KILN_OK;
    if (!(st->pairs = calloc((size_t)st->npairs, sizeof *st->pairs))) {
        s = kiln__err(KILN_E_NOMEM, "rnn: out of memory");
        goto fail;
    }
    for (int q = 0; q < st->npairs; q++) {
        int64_t j0, j1;
        slice_bounds(st->H, st->nslices, q % st->nslices, &j0, &j1);
        st->pairs[q].d = q / st->nslices;
        st->pairs[q].j0 = j0;
        st->pairs[q].hs = j1 - j0;
        /* gates in the first product: LSTM 4, GRU lbr 3, else 2 */
        st->pairs[q].n0 = (st->lstm ? 4 : st->lbr ? 3 : 2) * (j1 - j0);
    }
    if ((s = layout_weights(st)) != KILN_OK) goto fail;
    if (constant && (s = pack_constant_weights(c, st)) != KILN_OK) goto fail;
    layout_scratch(st);
    const double SN = (double)st->S * st->N, DGH = (double)st->D * st->G * st->H;
    c->flops = 2 * SN * DGH * (double)(st->I + st->H) + SN * st->D * st->H * (st->lstm ? 40 : 30);
    c->scratch_bytes = st->scratch_bytes;
    c->kstate = st;
    return KILN_OK;
fail:
    rnn_release(st);
    return s;
}

/* Estimated seconds: the projection GEMM on every thread, the recurrence on
 * as many threads as run it in parallel, with per-step product overheads and
 * (split) a barrier per phase. */
static double rnn_cost(const kiln__kctx *c) {
    const rnn_state *st = c->kstate;
    const int nth = c->nth_plan > 0 ? c->nth_plan : 1;
    const double SN = (double)st->S * st->N, DGH = (double)st->D * st->G * st->H;
    double proj = 2 * SN * DGH * st->I;
    if (st->proj_compute == KILN__GEMM_BF16) proj *= 0.5; /* twice the products per cycle */
    const double rec = 2 * SN * DGH * st->H;
    const double gates = SN * st->D * st->H * (st->lstm ? 40 : 30);
    double bytes = 4.0 * (SN * st->I + 2 * SN * DGH + SN * st->D * st->H + DGH * (st->I + st->H));
    if (!st->wblock) bytes += 4.0 * 3 * DGH * (st->I + st->H); /* packed at run time */
    int par = st->split ? (st->npairs < nth ? st->npairs : nth) : (st->D < nth ? st->D : nth);
    if (par < 1) par = 1;
    /* per-step products have M = N rows: a register tile is 14 rows tall */
    double eff = 0.5 * (st->N >= 14 ? 1.0 : (double)st->N / 14.0);
    if (eff < 0.04) eff = 0.04;
    const int phases = (!st->lstm && !st->lbr) ? 2 : 1;
    double sec = kiln__cost_seconds(c, proj, 0.6, bytes);
    sec += kiln__cost_seconds(c, (rec / eff + gates * 4) * nth / par, 1.0, 0);
    sec += (double)st->S * phases * st->npairs / par * 3e-7; /* product call + packing A */
    /* a barrier costs ~1 us on idle cores, far more when they are shared */
    if (st->split && par > 1) sec += (double)st->S * phases * 5e-6;
    return sec;
}

/* ---- run time ------------------------------------------------------------- */

/* A reusable barrier for the threads of one kiln__pool_run task: spins
 * briefly (a step's partner is usually microseconds away), then sleeps on a
 * futex, so that a thread whose partner was descheduled gives its core back
 * (the machine may have fewer free cores than threads). */
typedef struct rnn_barrier {
    atomic_int count, gen, sleepers;
    int n;
} rnn_barrier;

#define BARRIER_SPINS 1000

static void futex_wait(atomic_int *addr, int val) {
#ifdef __linux__
    syscall(SYS_futex, (int *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    (void)addr;
    (void)val;
    sched_yield();
#endif
}

static void futex_wake_all(atomic_int *addr) {
#ifdef __linux__
    syscall(SYS_futex, (int *)addr, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static void barrier_wait(rnn_barrier *b) {
    if (b->n <= 1) return;
    const int gen = atomic_load(&b->gen);
    if (atomic_fetch_add(&b->count, 1) == b->n - 1) {
        atomic_store(&b->count, 0);
        atomic_fetch_add(&b->gen, 1);
        if (atomic_load(&b->sleepers) > 0) futex_wake_all(&b->gen);
        return;
    }
    for (int spins = 0; spins < BARRIER_SPINS; spins++) {
        if (atomic_load_explicit(&b->gen, memory_order_acquire) != gen) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    /* sleepers is raised before gen is read again, and the last thread bumps
     * gen before reading sleepers (both sequentially consistent): either it
     * sees the sleeper or the sleeper sees the new gen (FUTEX_WAIT compares
     * atomically). */
    atomic_fetch_add(&b->sleepers, 1);
    while (atomic_load(&b->gen) == gen) futex_wait(&b->gen, gen);
    atomic_fetch_sub(&b->sleepers, 1);
}

typedef struct rnn_run {
    const rnn_state *st;
    const uint8_t *wb;   /* the weights block */
    uint8_t *scratch;
    const float *proj;   /* (S*N, D*G*H), rows in X's order */
    const int64_t *lens; /* (N) */
    float *y;            /* Y or NULL */
    int nth;             /* threads of the recurrence task */
    int use_barrier;
    rnn_barrier bar;
    atomic_int failed;
} rnn_run;

static float *dir_buf(const rnn_run *r, int d, size_t off) {
    return (float *)(r->scratch + r->st->off_dirs + (size_t)d * r->st->dir_bytes + off);
}

/* Row of the projection / Y for time t, batch row b. */
static int64_t x_row(const rnn_state *st, int64_t t, int64_t b) {
    return st->layout ? b * st->S + t : t * st->N + b;
}
static float *y_at(const rnn_run *r, int64_t t, int d, int64_t b) {
    const rnn_state *st = r->st;
    int64_t row = st->layout ? (b * st->S + t) * st->D + d : (t * st->D + d) * st->N + b;
    return r->y + row * st->H;
}

/* One product of a step: rec[:, col0 : col0 + n] = a (N,H) x packed + bias. */
static kiln_status step_gemm(const rnn_run *r, const rnn_pair *p, const float *a, const void *packed,
                             int64_t n, const float *bias, float *rec, int64_t col0) {
    const rnn_state *st = r->st;
    kiln__gemm_args g = {.m = st->N, .n = n, .k = st->H, .alpha = 1, .a = a, .lda = st->H,
                         .b = packed, .b_packed = 1, .c = rec + col0, .ldc = st->G * st->H,
                         .bias_kind = bias ? KILN__GEMM_BIAS_COL : KILN__GEMM_BIAS_NONE,
                         .bias = bias, .scratch = r->scratch + p->gemm_off};
    return kiln__sgemm(&g, 0, 1);
}

/* Phase `phase` of step k for pair p: the product(s), then the gate math per
 * batch row; in the step's last phase rows past their length carry h over
 * and get zeros in Y. */
static kiln_status pair_step(rnn_run *r, const rnn_pair *p, int64_t k, int phase) {
    const rnn_state *st = r->st;
    const int d = p->d;
    const int64_t H = st->H, GH = st->G * H, N = st->N, hs = p->hs, j0 = p->j0;
    const int64_t col0 = st->G * j0;
    float *h_prev = dir_buf(r, d, (k & 1) ? st->dir_h1 : st->dir_h0);
    float *h_next = dir_buf(r, d, (k & 1) ? st->dir_h0 : st->dir_h1);
    float *cst = dir_buf(r, d, st->dir_c), *rh = dir_buf(r, d, st->dir_rh);
    float *rec = dir_buf(r, d, st->dir_rec);
    const int two_phase = !st->lstm && !st->lbr;
    const int last = !two_phase || phase == 1;
    if (phase == 0)
        KILN__TRY(step_gemm(r, p, h_prev, r->wb + p->b0, p->n0,
                            !st->lstm && st->lbr ? (const float *)(r->wb + p->bias0) : NULL, rec, col0));
    else
        KILN__TRY(step_gemm(r, p, rh, r->wb + p->b1, hs, NULL, rec, col0 + 2 * hs));
    const float *pp = st->has_peep ? (const float *)(r->wb + st->peep_off) + d * 3 * H : NULL;
    for (int64_t b = 0; b < N; b++) {
        const int64_t len = r->lens[b];
        if (k >= len) {
            if (!last) continue;
            memcpy(h_next + b * H + j0, h_prev + b * H + j0, (size_t)hs * sizeof(float));
            if (r->y) memset(y_at(r, k, d, b) + j0, 0, (size_t)hs * sizeof(float));
            continue;
        }
        const int64_t t = st->reverse[d] ? len - 1 - k : k;
        const float *proj = r->proj + x_row(st, t, b) * st->D * GH + d * GH + col0;
        float *rrow = rec + b * GH + col0;
        if (st->lstm) {
            kiln__rnn_lstm_row a = {.n = hs, .proj = proj, .rec = rrow,
                                    .pi = pp ? pp + j0 : NULL, .po = pp ? pp + H + j0 : NULL,
                                    .pf = pp ? pp + 2 * H + j0 : NULL, .has_clip = st->has_clip,
                                    .clip = st->clip, .input_forget = st->input_forget,
                                    .c = cst + b * H + j0, .h = h_next + b * H + j0};
            st->gates->lstm(&a);
        } else {
            kiln__rnn_gru_row a = {.n = hs, .proj = proj, .rec = rrow, .h_prev = h_prev + b * H + j0,
                                   .rh = two_phase ? rh + b * H + j0 : NULL, .lbr = st->lbr,
                                   .has_clip = st->has_clip, .clip = st->clip,
                                   .h = h_next + b * H + j0};
            if (phase == 0) st->gates->gru_zr(&a);
            if (last) st->gates->gru_h(&a);
        }
        if (last && r->y) memcpy(y_at(r, t, d, b) + j0, h_next + b * H + j0, (size_t)hs * sizeof(float));
    }
    return KILN_OK;
}

static void run_pair(rnn_run *r, int q, int64_t k, int phase) {
    if (atomic_load_explicit(&r->failed, memory_order_relaxed)) return;
    if (pair_step(r, &r->st->pairs[q], k, phase) != KILN_OK)
        atomic_store_explicit(&r->failed, 1, memory_order_relaxed);
}

/* The recurrence on thread ith of nth. Without the barrier every direction
 * runs whole on one thread (d % nth == ith); with it, pair q runs on thread
 * q % nth and all threads meet after every phase. */
static void recurrence_task(void *arg, int ith, int nth) {
    rnn_run *r = arg;
    const rnn_state *st = r->st;
    const int phases = (!st->lstm && !st->lbr) ? 2 : 1;
    if (!r->use_barrier) {
        for (int d = ith; d < st->D; d += nth)
            for (int64_t k = 0; k < st->S; k++)
                for (int ph = 0; ph < phases; ph++)
                    for (int s = 0; s < st->nslices; s++) run_pair(r, d * st->nslices + s, k, ph);
        return;
    }
    for (int64_t k = 0; k < st->S; k++)
        for (int ph = 0; ph < phases; ph++) {
            for (int q = ith; q < st->npairs; q += nth) run_pair(r, q, k, ph);
            barrier_wait(&r->bar);
        }
}

/* Copies the (D,N,H) / (N,D,H) state tensor's direction d into buf (N,H), or
 * zeros; dir 1: the other way. */
static void state_io(const rnn_state *st, float *t, int d, float *buf, int to_tensor) {
    const int64_t N = st->N, H = st->H;
    for (int64_t b = 0; b < N; b++) {
        float *row = t ? t + (st->layout ? b * st->D + d : d * N + b) * H : NULL;
        if (to_tensor)
            memcpy(row, buf + b * H, (size_t)H * sizeof(float));
        else if (row)
            memcpy(buf + b * H, row, (size_t)H * sizeof(float));
        else
            memset(buf + b * H, 0, (size_t)H * sizeof(float));
    }
}

static kiln_status rnn_run_fn(kiln__kctx *c) {
    const rnn_state *st = c->kstate;
    uint8_t *scratch = c->scratch;
    const int64_t N = st->N, S = st->S;
    int64_t *lens = (int64_t *)(scratch + st->off_lens);
    const kiln_tensor *lt = kiln__in(c, IN_SEQ_LENS);
    for (int64_t b = 0; b < N; b++) {
        lens[b] = lt ? kiln__ld_i(lt->dtype, lt->data, b) : S;
        if (lens[b] < 0 || lens[b] > S)
            return kiln__err(KILN_E_RANGE, "input 'sequence_lens' has %lld at batch %lld, "
                             "expected 0..%lld", (long long)lens[b], (long long)b, (long long)S);
    }
    uint8_t *wb = st->wblock;
    if (!wb) { /* weights known only now */
        wb = scratch + st->off_wblock;
        KILN__TRY(pack_weights(c, st, wb, (float *)(scratch + st->off_pack_tmp),
                               (int64_t *)(scratch + st->off_pack_rows)));
    }
    /* (1) the input projection for every step and direction */
    kiln__pool *pool = kiln__pool_size(c->pool) <= st->nth ? c->pool : NULL;
    kiln__gemm_args pa = proj_args(st, wb);
    pa.a = c->in[IN_X]->data;
    pa.c = (float *)(scratch + st->off_proj);
    KILN__TRY(kiln__sgemm_run(pool, &pa, scratch + st->off_proj_gemm));

    /* (2) the recurrence */
    const kiln_tensor *h0 = kiln__in(c, IN_INITIAL_H), *c0 = st->lstm ? kiln__in(c, IN_INITIAL_C) : NULL;
    kiln_tensor *y = kiln__out(c, 0), *yh = kiln__out(c, 1), *yc = st->lstm ? kiln__out(c, 2) : NULL;
    rnn_run r = {.st = st, .wb = wb, .scratch = scratch, .proj = pa.c, .lens = lens,
                 .y = y ? y->data : NULL};
    for (int d = 0; d < st->D; d++) {
        state_io(st, h0 ? h0->data : NULL, d, dir_buf(&r, d, st->dir_h0), 0);
        if (st->lstm) state_io(st, c0 ? c0->data : NULL, d, dir_buf(&r, d, st->dir_c), 0);
    }
    int nth = kiln__pool_size(c->pool);
    int work = st->nslices > 1 ? st->npairs : st->D;
    if (nth > work) nth = work;
    r.nth = nth;
    r.use_barrier = st->nslices > 1 && nth > 1;
    r.bar.n = nth;
    atomic_init(&r.bar.count, 0);
    atomic_init(&r.bar.gen, 0);
    atomic_init(&r.bar.sleepers, 0);
    atomic_init(&r.failed, 0);
    kiln__pool_run(c->pool, nth, recurrence_task, &r);
    if (atomic_load(&r.failed)) return kiln__err(KILN_E_INTERNAL, "rnn: a step product failed");

    /* (3) final states: rows past their length carried theirs over */
    for (int d = 0; d < st->D; d++) {
        if (yh) state_io(st, yh->data, d, dir_buf(&r, d, (S & 1) ? st->dir_h1 : st->dir_h0), 1);
        if (yc) state_io(st, yc->data, d, dir_buf(&r, d, st->dir_c), 1);
    }
    return KILN_OK;
}

static kiln_status lstm_prepare(kiln__kctx *c) { return rnn_prepare(c, 1, 0); }
static kiln_status lstm_split_prepare(kiln__kctx *c) { return rnn_prepare(c, 1, 1); }
static kiln_status gru_prepare(kiln__kctx *c) { return rnn_prepare(c, 0, 0); }
static kiln_status gru_split_prepare(kiln__kctx *c) { return rnn_prepare(c, 0, 1); }

const kiln__algo kiln__algo_lstm_gemm = {
    .name = "lstm_gemm", .domain = "", .op_type = "LSTM", .flags = 0,
    .prepare = lstm_prepare, .cost = rnn_cost, .run = rnn_run_fn, .release = rnn_release,
};
const kiln__algo kiln__algo_lstm_gemm_split = {
    .name = "lstm_gemm_split", .domain = "", .op_type = "LSTM", .flags = 0,
    .prepare = lstm_split_prepare, .cost = rnn_cost, .run = rnn_run_fn, .release = rnn_release,
};
const kiln__algo kiln__algo_gru_gemm = {
    .name = "gru_gemm", .domain = "", .op_type = "GRU", .flags = 0,
    .prepare = gru_prepare, .cost = rnn_cost, .run = rnn_run_fn, .release = rnn_release,
};
const kiln__algo kiln__algo_gru_gemm_split = {
    .name = "gru_gemm_split", .domain = "", .op_type = "GRU", .flags = 0,
    .prepare = gru_split_prepare, .cost = rnn_cost, .run = rnn_run_fn, .release = rnn_release,
};
