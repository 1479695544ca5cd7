/* src/cpu/kernels/layout.c: threaded data movement for the ops that
 * rearrange elements (references in src/cpu/ref/layout.c).
 *
 * transpose_copy (Transpose, any dtype of 1, 2, 4 or 8 bytes): the
 *   permutation is first simplified: axes of size 1 dropped, and input axes
 *   that stay neighbours in the output merged (a channel shuffle
 *   (N,g,C/g,H,W) -> (N,C/g,g,H,W) becomes (g,C/g,HW) -> (C/g,g,HW)). Then
 *   either the input's last axis stays last, and each output row is one
 *   memcpy of a contiguous input run; or it moves, and the copy goes in
 *   16x16 tiles of the two axes that trade places (the input's last axis and
 *   the one that becomes the output's last), so both sides are read and
 *   written a cache line at a time; 4-byte tiles on AVX2 CPUs as 8x8
 *   register transposes (x86/transpose_avx2.c).
 * concat_copy (Concat, same dtypes): for each index of the axes before the
 *   concatenation axis, each input's slab is one memcpy; the slabs are split
 *   over the threads by bytes.
 * Both are KILN_OPF_PARALLEL and bit-exact (they move bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/layout.h"
#include "ops/algo.h"

#define MAXR KILN_MAX_DIMS
#define TILE 16

/* ---- Transpose ------------------------------------------------------------------ */

typedef struct transpose_plan {
    int r;                 /* rank after simplification (>= 1) */
    int64_t es;            /* element bytes */
    int64_t odims[MAXR];   /* output dims */
    int64_t istride[MAXR]; /* input stride (elements) of each output axis */
    /* inner axis moved: output axis b reads the input's last axis (stride 1) */
    int moved, b;
} transpose_plan;

/* Simplified permutation of x's dims by perm into *t. */
static void transpose_simplify(const int64_t *dims, int rank, const int *perm, transpose_plan *t) {
    /* keep the axes of size > 1; group[j]: output axis j of the kept ones */
    int keep[MAXR], nk = 0, newpos[MAXR];
    for (int a = 0; a < rank; a++) newpos[a] = -1;
    for (int a = 0, k = 0; a < rank; a++)
        if (dims[a] > 1) newpos[a] = k++;
    for (int j = 0; j < rank; j++)
        if (dims[perm[j]] > 1) keep[nk++] = newpos[perm[j]];
    int64_t kd[MAXR];
    for (int a = 0, k = 0; a < rank; a++)
        if (dims[a] > 1) kd[k++] = dims[a];
    /* merge runs of output axes that are consecutive input axes: groups of
     * input axes [first, last], in output order */
    int gfirst[MAXR], glast[MAXR], ng = 0;
    for (int j = 0; j < nk; j++) {
        if (ng && keep[j] == glast[ng - 1] + 1) {
            glast[ng - 1] = keep[j];
        } else {
            gfirst[ng] = glast[ng] = keep[j];
            ng++;
        }
    }
    if (ng == 0) { /* one element, or all dims 1 */
        t->r = 1;
        t->odims[0] = 1;
        t->istride[0] = 1;
        t->moved = 0;
        return;
    }
    /* each group's size, and its input stride: the product of the sizes of
     * the kept input axes after its last */
    t->r = ng;
    for (int gi = 0; gi < ng; gi++) {
        int64_t size = 1, stride = 1;
        for (int a = gfirst[gi]; a <= glast[gi]; a++) size *= kd[a];
        for (int a = glast[gi] + 1; a < nk; a++) stride *= kd[a];
        t->odims[gi] = size;
        t->istride[gi] = stride;
    }
    t->moved = t->istride[ng - 1] != 1;
    t->b = -1;
    for (int gi = 0; gi < ng; gi++)
        if (t->istride[gi] == 1) t->b = gi;
}

static kiln_status transpose_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const int64_t es = x->dtype == KILN_DTYPE_STRING ? 0 : kiln_dtype_size(x->dtype);
    if (es != 1 && es != 2 && es != 4 && es != 8) return KILN_E_UNSUPPORTED;
    int perm[MAXR];
    const int64_t *p;
    const int n = kiln__attr_ints(c->node, "perm", &p);
    for (int i = 0; i < x->ndim; i++) perm[i] = n < 0 ? x->ndim - 1 - i : (int)((p[i] + x->ndim) % x->ndim);
    transpose_plan *t = malloc(sizeof *t);
    if (!t) return kiln__err(KILN_E_NOMEM, "out of memory");
    t->es = es;
    transpose_simplify(x->dims, x->ndim, perm, t);
    c->kstate = t;
    c->flops = 0;
    return KILN_OK;
}

static double move_cost(const kiln__kctx *c) {
    double bytes = 0;
    for (int k = 0; k < c->n_out; k++)
        bytes += 2.0 * (double)kiln__n(c->out[k]) * (double)kiln_dtype_size(c->out[k]->dtype);
    return kiln__cost_seconds(c, 0, 1, bytes);
}

/* Input offset (elements) of output row `row` (all output axes but the
 * last, row-major), and the row's coordinates in idx. */
static int64_t row_offset(const transpose_plan *t, int64_t row, int64_t *idx) {
    int64_t off = 0;
    for (int d = t->r - 2; d >= 0; d--) {
        idx[d] = row % t->odims[d];
        row /= t->odims[d];
        off += idx[d] * t->istride[d];
    }
    return off;
}

/* Rows [lo, hi) of the output: the last axis contiguous in the input. */
static void transpose_rows(const transpose_plan *t, const char *x, char *y, int64_t lo, int64_t hi) {
    const int64_t len = t->odims[t->r - 1] * t->es;
    int64_t idx[MAXR];
    int64_t off = row_offset(t, lo, idx);
    for (int64_t row = lo; row < hi; row++) {
        memcpy(y + row * len, x + off * t->es, (size_t)len);
        for (int d = t->r - 2; d >= 0; d--) { /* next row */
            off += t->istride[d];
            if (++idx[d] < t->odims[d]) break;
            off -= idx[d] * t->istride[d];
            idx[d] = 0;
        }
    }
}

/* One TILE x TILE tile: output rows i0.. (along axis b, input stride 1),
 * columns j0.. (the output's last axis, input stride sj). */
#define TILE_COPY(T)                                                                          \
    static void tile_##T(const T *x, T *y, int64_t ni, int64_t nj, int64_t yi, int64_t sj) { \
        for (int64_t i = 0; i < ni; i++)                                                     \
            for (int64_t j = 0; j < nj; j++) y[i * yi + j] = x[i + j * sj];                 \
    }
TILE_COPY(uint8_t)
TILE_COPY(uint16_t)
TILE_COPY(uint32_t)
TILE_COPY(uint64_t)

/* The 4-byte tile copy this CPU runs best. */
static kiln__tile32_fn tile32_best(void) {
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx2")) return kiln__transpose_tile32_avx2;
#endif
    return tile_uint32_t;
}

/* Items [lo, hi) of the moved case: an item is one tile position (block of
 * TILE along axis b, block of TILE along the last axis) within one index of
 * the other axes. */
static void transpose_tiles(const transpose_plan *t, const char *x, char *y, int64_t lo, int64_t hi) {
    const kiln__tile32_fn tile32 = t->es == 4 ? tile32_best() : NULL;
    const int r = t->r, b = t->b;
    const int64_t nb = t->odims[b], nl = t->odims[r - 1], sl = t->istride[r - 1];
    const int64_t tb = (nb + TILE - 1) / TILE, tl = (nl + TILE - 1) / TILE;
    int64_t ostride[MAXR]; /* output strides */
    ostride[r - 1] = 1;
    for (int d = r - 2; d >= 0; d--) ostride[d] = ostride[d + 1] * t->odims[d + 1];
    for (int64_t it = lo; it < hi; it++) {
        int64_t rest = it / (tb * tl), i0 = it / tl % tb * TILE, j0 = it % tl * TILE;
        int64_t xo = i0 + j0 * sl, yo = i0 * ostride[b] + j0;
        for (int d = r - 2; d >= 0; d--) { /* the other axes, from rest */
            if (d == b) continue;
            const int64_t k = rest % t->odims[d];
            rest /= t->odims[d];
            xo += k * t->istride[d];
            yo += k * ostride[d];
        }
        const int64_t ni = nb - i0 < TILE ? nb - i0 : TILE, nj = nl - j0 < TILE ? nl - j0 : TILE;
        switch (t->es) {
        case 1: tile_uint8_t((const uint8_t *)x + xo, (uint8_t *)y + yo, ni, nj, ostride[b], sl); break;
        case 2: tile_uint16_t((const uint16_t *)x + xo, (uint16_t *)y + yo, ni, nj, ostride[b], sl); break;
        case 4: tile32((const uint32_t *)x + xo, (uint32_t *)y + yo, ni, nj, ostride[b], sl); break;
        default: tile_uint64_t((const uint64_t *)x + xo, (uint64_t *)y + yo, ni, nj, ostride[b], sl); break;
        }
    }
}

static kiln_status transpose_run(kiln__kctx *c) {
    const transpose_plan *t = c->kstate;
    const int64_t n = kiln__n(c->out[0]);
    if (n == 0) return KILN_OK;
    int64_t items, lo, hi;
    if (!t->moved) {
        items = n / t->odims[t->r - 1];
    } else {
        items = (t->odims[t->b] + TILE - 1) / TILE * ((t->odims[t->r - 1] + TILE - 1) / TILE);
        for (int d = 0; d < t->r - 1; d++)
            if (d != t->b) items *= t->odims[d];
    }
    kiln__split(items, c->ith, c->nth, &lo, &hi);
    if (!t->moved) transpose_rows(t, c->in[0]->data, c->out[0]->data, lo, hi);
    else transpose_tiles(t, c->in[0]->data, c->out[0]->data, lo, hi);
    return KILN_OK;
}

const kiln__algo kiln__algo_transpose_copy = {"transpose_copy", "", "Transpose", KILN_OPF_PARALLEL,
                                              transpose_prepare, move_cost, transpose_run, free};

/* ---- Concat --------------------------------------------------------------------- */

typedef struct concat_plan {
    int64_t outer;     /* product of the dims before the axis */
    int64_t out_slab;  /* bytes of one outer index of the output */
    int n;             /* inputs */
    int64_t slab[];    /* bytes of one outer index of each input */
} concat_plan;

static kiln_status concat_prepare(kiln__kctx *c) {
    const kiln_tensor *y = c->out[0];
    const int64_t es = y->dtype == KILN_DTYPE_STRING ? 0 : kiln_dtype_size(y->dtype);
    if (es <= 0 || c->n_in < 1) return KILN_E_UNSUPPORTED;
    int64_t a = kiln__attr_i(c->node, "axis", 0);
    if (a < 0) a += y->ndim;
    concat_plan *t = malloc(sizeof *t + (size_t)c->n_in * sizeof(int64_t));
    if (!t) return kiln__err(KILN_E_NOMEM, "out of memory");
    t->n = c->n_in;
    t->outer = kiln__dims_prod(y->dims, 0, (int)a);
    const int64_t inner = kiln__dims_prod(y->dims, (int)a + 1, y->ndim) * es;
    t->out_slab = y->dims[a] * inner;
    for (int k = 0; k < c->n_in; k++) {
        if (c->in[k]->dtype != y->dtype) {
            free(t);
            return KILN_E_UNSUPPORTED;
        }
        t->slab[k] = c->in[k]->dims[a] * inner;
    }
    c->kstate = t;
    c->flops = 0;
    return KILN_OK;
}

/* Output bytes [lo, hi) (of outer * out_slab), copied from the inputs. */
static kiln_status concat_run(kiln__kctx *c) {
    const concat_plan *t = c->kstate;
    char *y = c->out[0]->data;
    const int64_t total = t->outer * t->out_slab;
    /* split by bytes, cut at 256-byte granules */
    int64_t lo, hi;
    kiln__split((total + 255) / 256, c->ith, c->nth, &lo, &hi);
    lo *= 256;
    hi = hi * 256 < total ? hi * 256 : total;
    for (int64_t o = lo / (t->out_slab ? t->out_slab : 1); o < t->outer && o * t->out_slab < hi; o++) {
        int64_t at = o * t->out_slab;
        for (int k = 0; k < t->n; at += t->slab[k], k++) {
            const int64_t s = at > lo ? at : lo, e = at + t->slab[k] < hi ? at + t->slab[k] : hi;
            if (e > s)
                memcpy(y + s, (const char *)c->in[k]->data + o * t->slab[k] + (s - at), (size_t)(e - s));
        }
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_concat_copy = {"concat_copy", "", "Concat", KILN_OPF_PARALLEL,
                                           concat_prepare, move_cost, concat_run, free};
