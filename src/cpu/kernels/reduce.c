/* src/cpu/kernels/reduce.c: fast f32 ReduceSum, ReduceMean, ReduceMax and
 * ReduceMin (the reference is src/cpu/ref/reduce.c), on the row kernels of
 * eltwise.h; and kiln.SumTo (autograd's gradient of broadcasting; reference
 * src/cpu/ref/grad_eltwise.c) as the ReduceSum over the axes dX was
 * broadcast along.
 *
 * X is viewed as (O, R, I) and Y as (O, I): the reduced axes must form one
 * run of adjacent axes once axes of size 1 are set aside (a global pool's
 * trailing axes, a row's last axis, a batch's leading one); other patterns,
 * empty tensors and axes not known at plan time are left to the reference.
 *
 *   I == 1  each output reduces a contiguous row of R values: Sum and Mean
 *           by the table's sum; Max and Min keep LANES running values,
 *           folded with each next LANES of the row by the table's binary
 *           max/min, then folded one by one.
 *   I > 1   an output row (I values, in column chunks of CHUNK) starts as
 *           X's first row and folds in the others in order with the
 *           table's binary add, max or min.
 *
 * Mean divides the sum by R. Max and min propagate NaN, as the reference
 * does. Sums are in f32 (the reference's are in double): rows of R values
 * summed in order lose about R/2 ulp at worst.
 *
 * Threads (KILN_OPF_PARALLEL): the outputs (I == 1) or the (o, column chunk)
 * items (I > 1), in units of about KILN__ELTW_GRAIN elements read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"
#include "ops/reduce.h"

#define LANES 64    /* running values of a contiguous max/min row */
#define CHUNK 2048  /* columns of an I > 1 item */

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN } red_kind;

typedef struct reduce_state {
    kiln__eltw_state base;
    red_kind kind;
    int64_t O, R, I;
} reduce_state;

/* (O, R, I) of x with the axes red[] reduced; 0 when the reduced axes of
 * size > 1 are not one adjacent run. */
static int reduce_view(const kiln_tensor *x, const uint8_t *red, int64_t *O, int64_t *R,
                       int64_t *I) {
    int runs = 0, prev = -1; /* runs of reduced axes; kind of the last axis of size > 1 */
    *O = *R = *I = 1;
    for (int a = 0; a < x->ndim; a++) {
        const int64_t d = x->dims[a];
        if (d == 1) continue;
        if (red[a]) {
            if (prev != 1) runs++;
            *R *= d;
        } else {
            *(runs ? I : O) *= d;
        }
        prev = red[a];
    }
    return runs <= 1;
}

/* SumTo's reduced axes: those dX (right-aligned to dY) lacks or has as 1. */
static void sum_to_axes(const kiln_tensor *dy, const kiln_tensor *dx, uint8_t *red) {
    const int off = dy->ndim - dx->ndim;
    for (int a = 0; a < dy->ndim; a++) red[a] = a < off || dx->dims[a - off] == 1;
}

static kiln_status reduce_prepare(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *y = c->out[0];
    if (!kiln__eltw_f32(x) || !kiln__eltw_f32(y) || kiln__n(x) == 0) return KILN_E_UNSUPPORTED;
    const char *op = c->node->op_type;
    const int sum_to = strcmp(op, "SumTo") == 0;
    uint8_t red[KILN_MAX_DIMS];
    if (sum_to) sum_to_axes(x, y, red);
    else if (kiln__reduce_axes(c, x->ndim, red) != KILN_OK) return KILN_E_UNSUPPORTED;
    int64_t O, R, I;
    if (!reduce_view(x, red, &O, &R, &I)) return KILN_E_UNSUPPORTED;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(reduce_state)));
    reduce_state *s = c->kstate;
    s->kind = sum_to || strcmp(op, "ReduceSum") == 0 ? R_SUM
              : strcmp(op, "ReduceMean") == 0 ? R_MEAN
              : strcmp(op, "ReduceMax") == 0  ? R_MAX
                                              : R_MIN;
    s->O = O;
    s->R = R;
    s->I = I;
    c->flops = (double)kiln__n(x);
    return KILN_OK;
}

static double reduce_cost(const kiln__kctx *c) {
    const double n = (double)kiln__n(c->in[0]);
    return kiln__eltw_cost(c, n, 4.0 * n + 4.0 * (double)kiln__n(c->out[0]));
}

/* acc folded with v, NaN winning (the reference's rule). */
static float fold1(float acc, float v, int is_max) {
    if (isnan(acc) || isnan(v)) return isnan(acc) ? acc : v;
    return (is_max ? v > acc : v < acc) ? v : acc;
}

/* Max (min) of the contiguous row x[0..R). */
static float minmax_row(const kiln__eltw_kernels *k, const float *x, int64_t R, int is_max) {
    const kiln__eltw_op op = is_max ? KILN__ELTW_MAX : KILN__ELTW_MIN;
    float lanes[LANES], acc = x[0];
    int64_t j = 1;
    if (R >= 2 * LANES) {
        memcpy(lanes, x, sizeof lanes);
        for (j = LANES; j + LANES <= R; j += LANES) k->binary(op, lanes, 1, x + j, 1, lanes, LANES);
        acc = lanes[0];
        for (int l = 1; l < LANES; l++) acc = fold1(acc, lanes[l], is_max);
    }
    for (; j < R; j++) acc = fold1(acc, x[j], is_max);
    return acc;
}

// x: (O, R, I) f32, y: (O, I) f32; thread ith does its share of the items
static kiln_status reduce_run(kiln__kctx *c) {
    const reduce_state *s = c->kstate;
    const kiln__eltw_kernels *k = s->base.k;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    const int64_t O = s->O, R = s->R, I = s->I;
    const float inv_r = 1.0f / (float)R;
    int64_t lo, hi;
    if (I == 1) {
        kiln__eltw_share(O, KILN__ELTW_GRAIN / R, c->ith, c->nth, &lo, &hi);
        for (int64_t o = lo; o < hi; o++) {
            const float *row = x + o * R;
            switch (s->kind) {
            case R_SUM: y[o] = k->sum(row, R); break;
            case R_MEAN: y[o] = k->sum(row, R) * inv_r; break;
            case R_MAX: y[o] = minmax_row(k, row, R, 1); break;
            case R_MIN: y[o] = minmax_row(k, row, R, 0); break;
            }
        }
        return KILN_OK;
    }
    const kiln__eltw_op op = s->kind == R_MAX ? KILN__ELTW_MAX
                             : s->kind == R_MIN ? KILN__ELTW_MIN
                                                : KILN__ELTW_ADD;
    const int64_t chunks = (I + CHUNK - 1) / CHUNK, width = I < CHUNK ? I : CHUNK;
    kiln__eltw_share(O * chunks, KILN__ELTW_GRAIN / (R * width), c->ith, c->nth, &lo, &hi);
    for (int64_t item = lo; item < hi; item++) {
        const int64_t o = item / chunks, i0 = item % chunks * CHUNK;
        const int64_t n = I - i0 < CHUNK ? I - i0 : CHUNK;
        const float *src = x + o * R * I + i0;
        float *dst = y + o * I + i0;
        memcpy(dst, src, (size_t)n * sizeof(float));
        for (int64_t r = 1; r < R; r++) k->binary(op, dst, 1, src + r * I, 1, dst, n);
        if (s->kind == R_MEAN) {
            const kiln__eltw_unary u = {.op = KILN__ELTW_AFFINE, .alpha = inv_r, .beta = 0};
            k->unary(&u, dst, dst, n);
        }
    }
    return KILN_OK;
}

#define REDUCE_ALGO(var, name, domain, op)                                                     \
    const kiln__algo var = {name, domain, op, KILN_OPF_PARALLEL, reduce_prepare, reduce_cost, \
                            reduce_run, free};
REDUCE_ALGO(kiln__algo_reduce_sum_f32, "reduce_sum_f32", "", "ReduceSum")
REDUCE_ALGO(kiln__algo_reduce_mean_f32, "reduce_mean_f32", "", "ReduceMean")
REDUCE_ALGO(kiln__algo_reduce_max_f32, "reduce_max_f32", "", "ReduceMax")
REDUCE_ALGO(kiln__algo_reduce_min_f32, "reduce_min_f32", "", "ReduceMin")
REDUCE_ALGO(kiln__algo_sum_to_f32, "sum_to_f32", "kiln", "SumTo")
#undef REDUCE_ALGO
