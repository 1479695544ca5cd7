/* src/cpu/ref/conv_transpose.c: reference kernels of ConvTranspose and
 * Col2Im, the two "scatter" convolutions: input position i and kernel tap j
 * feed output position  i*stride - pad0 + j*dil.
 *
 * Col2Im is a ConvTranspose whose weight is the identity over the kernel
 * taps (input channel c*K + j feeds output channel c through tap j only), so
 * both share one problem struct and one generic gather loop; ConvTranspose
 * float32 also has a fast path that scatters whole input rows.
 */
#if defined(__GNUC__) && !defined(__clang__) /* clang (the fuzz build): its own vectorizer */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <string.h>

#include "cpu/ref/conv.h"

/* Window roles: w.in = input (block-grid) size, w.out = output (image) size. */
typedef struct tconv_prob {
    kiln__win w;
    int64_t N, C, M, G; /* batch, input channels, output channels, groups */
    int64_t Cg, Mg;     /* channels per group (input, output) */
    int64_t in_size, out_size, k_size;
    const kiln_tensor *x, *wt, *bias; /* wt, bias NULL for Col2Im */
    kiln_tensor *y;
} tconv_prob;

/* Reads ints attribute `name` of exactly n values (or n+2, of which the
 * trailing n count, for output_shape) into v; returns 0 if absent. */
static kiln_status read_spatial_attr(const kiln__node *node, const char *name, int n, int64_t lo,
                                     int64_t *v, int *present) {
    const int64_t *a;
    int cnt = kiln__attr_ints(node, name, &a);
    *present = cnt >= 0;
    if (cnt < 0) return KILN_OK;
    int skip = cnt == n + 2 && strcmp(name, "output_shape") == 0 ? 2 : 0;
    if (cnt - skip != n)
        return kiln__err(KILN_E_INVAL, "attribute '%s' has %d values, expected %d", name, cnt, n);
    for (int i = 0; i < n; i++) {
        v[i] = a[skip + i];
        if (v[i] < lo || v[i] > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_INVAL, "attribute '%s'[%d] is %lld, expected >= %lld", name,
                             skip + i, (long long)v[i], (long long)lo);
    }
    return KILN_OK;
}

/* ConvTranspose geometry: X (N, C, D...), W (C, M/group, K...). Output size
 *   full = stride*(in-1) + output_padding + (K-1)*dil + 1,
 *   out  = output_shape if given, in*stride for SAME_*, else full - pads;
 * when out is imposed, the begin pad is total/2 for SAME_UPPER, else
 * total - total/2, of the total padding full - out (as the spec says; 0 when
 * the total is negative). */
static kiln_status tconv_setup(const kiln__kctx *c, tconv_prob *p, int64_t *dims) {
    memset(p, 0, sizeof(*p));
    const kiln_tensor *x = c->in[0], *w = c->in[1];
    char b1[96], b2[96];
    KILN__TRY(kiln__conv_check_ranks(x, w));
    int64_t group = kiln__attr_i(c->node, "group", 1);
    if (group < 1 || group > (x->dims[1] > 1 ? x->dims[1] : 1) || x->dims[1] % group != 0 ||
        w->dims[0] != x->dims[1])
        return kiln__err(KILN_E_SHAPE,
                         "X %s and W %s do not match group %lld: expected W (C, M/group, ...) "
                         "with C divisible by group",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1),
                         kiln__shape_str(w->ndim, w->dims, b2, sizeof b2), (long long)group);
    p->x = x;
    p->wt = w;
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->G = group;
    p->Cg = p->C / group;
    p->Mg = w->dims[1];
    if (!kiln__dims_mul(p->Mg, group, &p->M))
        return kiln__err(KILN_E_LIMIT, "W %s with group %lld gives too many output channels",
                         kiln__shape_str(w->ndim, w->dims, b1, sizeof b1), (long long)group);
    int nsp = x->ndim - 2, has_shape, has_opad;
    kiln__win *win = &p->w;
    KILN__TRY(kiln__win_read(c->node, nsp, x->dims + 2, w->dims + 2, win));
    int64_t opad[KILN_MAX_DIMS] = {0}, oshape[KILN_MAX_DIMS];
    KILN__TRY(read_spatial_attr(c->node, "output_padding", nsp, 0, opad, &has_opad));
    KILN__TRY(read_spatial_attr(c->node, "output_shape", nsp, 0, oshape, &has_shape));
    for (int i = 0; i < nsp; i++) {
        int64_t full = win->stride[i] * (win->in[i] - 1) + opad[i] + kiln__win_extent(win, i);
        int same =
            win->auto_pad == KILN__AUTOPAD_SAME_UPPER || win->auto_pad == KILN__AUTOPAD_SAME_LOWER;
        if (has_shape || same) {
            win->out[i] = has_shape ? oshape[i] : win->in[i] * win->stride[i];
            int64_t total = full - win->out[i];
            if (total <= 0)
                win->pad0[i] = 0; /* a larger output gets its extra at the end */
            else if (win->auto_pad == KILN__AUTOPAD_SAME_UPPER)
                win->pad0[i] = total / 2;
            else
                win->pad0[i] = total - total / 2;
        } else {
            if (win->auto_pad == KILN__AUTOPAD_VALID) win->pad0[i] = win->pad1[i] = 0;
            win->out[i] = full - win->pad0[i] - win->pad1[i];
            if (win->out[i] < 0)
                return kiln__err(KILN_E_SHAPE, "spatial dim %d: output size %lld is negative", i,
                                 (long long)win->out[i]);
        }
    }
    p->in_size = kiln__dims_prod(win->in, 0, nsp);
    p->out_size = kiln__dims_prod(win->out, 0, nsp);
    p->k_size = kiln__dims_prod(win->k, 0, nsp);
    dims[0] = p->N;
    dims[1] = p->M;
    memcpy(dims + 2, win->out, nsp * sizeof(int64_t));
    return KILN_OK;
}

/* Float32 output plane (n, m) of ConvTranspose: y (out...) = B[m] + for every
 * input channel c of m's group, tap j and input position i,
 * W[c, m%Mg, j] * X[n,c,i] added at i*stride - pad0 + j*dil, row by row. */
KILN__F32_CLONES static void tconv_plane_f32(const tconv_prob *p, int64_t n, int64_t m,
                                             float *restrict y) {
    const kiln__win *w = &p->w;
    int nsp = w->nsp, last = nsp - 1;
    int64_t ostr[KILN_MAX_DIMS], istr[KILN_MAX_DIMS];
    kiln__contiguous_strides(nsp, w->out, ostr);
    kiln__contiguous_strides(nsp, w->in, istr);
    float b = p->bias ? ((const float *)p->bias->data)[m] : 0.f;
    for (int64_t i = 0; i < p->out_size; i++) y[i] = b;

    int64_t g = m / p->Mg, ml = m % p->Mg;
    for (int64_t ci = g * p->Cg; ci < (g + 1) * p->Cg; ci++) {
        const float *xc = (const float *)p->x->data + (n * p->C + ci) * p->in_size;
        const float *wc = (const float *)p->wt->data + (ci * p->Mg + ml) * p->k_size;
        int64_t tap[KILN_MAX_DIMS] = {0};
        for (int64_t t = 0; t < p->k_size; t++, kiln__next_index(nsp, w->k, tap)) {
            int64_t lo[KILN_MAX_DIMS], hi[KILN_MAX_DIMS], i[KILN_MAX_DIMS], b0[KILN_MAX_DIMS];
            int empty = 0;
            for (int d = 0; d < nsp; d++) {
                b0[d] = tap[d] * w->dil[d] - w->pad0[d]; /* output pos = i*stride + b0 */
                kiln__stride_range(b0[d], w->stride[d], w->out[d], w->in[d], &lo[d], &hi[d]);
                empty |= lo[d] >= hi[d];
                i[d] = lo[d];
            }
            if (empty) continue;
            do { /* one input row per iteration */
                int64_t xoff = lo[last], yoff = lo[last] * w->stride[last] + b0[last];
                for (int d = 0; d < last; d++) {
                    xoff += i[d] * istr[d];
                    yoff += (i[d] * w->stride[d] + b0[d]) * ostr[d];
                }
                kiln__axpy_f32(y + yoff, w->stride[last], xc + xoff, 1, wc[t], hi[last] - lo[last]);
            } while (kiln__next_in_box(last, lo, hi, i));
        }
    }
}

/* Any-dtype output element o of plane (n, m): the sum over taps j and input
 * positions i with i*stride - pad0 + j*dil == o of
 *   ConvTranspose: sum_c X[n,c,i] * W[c, m%Mg, j]   (c in m's group)
 *   Col2Im:        X[n, m*K + j, i]                  (no weight). */
static double tconv_gather(const tconv_prob *p, int64_t n, int64_t m, const int64_t *o) {
    const kiln__win *w = &p->w;
    kiln_dtype xt = p->x->dtype;
    double acc = 0;
    int64_t tap[KILN_MAX_DIMS] = {0};
    for (int64_t t = 0; t < p->k_size; t++, kiln__next_index(w->nsp, w->k, tap)) {
        int64_t ioff = 0;
        int hit = 1;
        for (int d = 0; d < w->nsp && hit; d++) {
            int64_t num = o[d] + w->pad0[d] - tap[d] * w->dil[d];
            hit = num >= 0 && num % w->stride[d] == 0 && num / w->stride[d] < w->in[d];
            ioff = ioff * w->in[d] + num / w->stride[d];
        }
        if (!hit) continue;
        if (!p->wt) {
            acc += kiln__ld_f(xt, p->x->data, ((n * p->C) + m * p->k_size + t) * p->in_size + ioff);
            continue;
        }
        int64_t g = m / p->Mg, ml = m % p->Mg;
        for (int64_t ci = g * p->Cg; ci < (g + 1) * p->Cg; ci++)
            acc += kiln__ld_f(xt, p->x->data, (n * p->C + ci) * p->in_size + ioff) *
                   kiln__ld_f(p->wt->dtype, p->wt->data, (ci * p->Mg + ml) * p->k_size + t);
    }
    return acc;
}

/* Runs this thread's share of the N*M output planes. */
static void tconv_run(const kiln__kctx *c, const tconv_prob *p) {
    int fast = p->wt && p->x->dtype == KILN_DTYPE_F32;
    kiln_tensor *y = p->y;
    int64_t lo, hi;
    kiln__split(p->N * p->M, c->ith, c->nth, &lo, &hi);
    for (int64_t nm = lo; nm < hi; nm++) {
        int64_t n = nm / p->M, m = nm % p->M;
        if (fast) {
            tconv_plane_f32(p, n, m, (float *)y->data + nm * p->out_size);
            continue;
        }
        double bias = p->bias ? kiln__ld_f(p->bias->dtype, p->bias->data, m) : 0.0;
        int64_t o[KILN_MAX_DIMS] = {0};
        for (int64_t i = 0; i < p->out_size; i++, kiln__next_index(p->w.nsp, p->w.out, o))
            kiln__st_f(y->dtype, y->data, nm * p->out_size + i, bias + tconv_gather(p, n, m, o));
    }
}

/* ---- ConvTranspose ------------------------------------------------------ */

/* x: (N,C,D1..Dk), w: (C,M/group,K1..Kk), b: (M) optional, y: (N,M,O1..Ok);
 * f16 / bf16 / f32 / f64. */
kiln_status kiln__infer_ConvTranspose(kiln__kctx *c) {
    KILN__TRY(kiln__conv_check_float_xw(c));
    tconv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(tconv_setup(c, &p, dims));
    const kiln_tensor *b = kiln__in(c, 2);
    if (b && (b->ndim != 1 || b->dims[0] != p.M || b->dtype != c->in[0]->dtype)) {
        char buf[96];
        return kiln__err(KILN_E_SHAPE, "input 'B' is %s %s, expected %s (%lld)",
                         kiln_dtype_name(b->dtype),
                         kiln__shape_str(b->ndim, b->dims, buf, sizeof buf),
                         kiln_dtype_name(c->in[0]->dtype), (long long)p.M);
    }
    return kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, dims);
}

kiln_status kiln__ref_ConvTranspose(kiln__kctx *c) {
    tconv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(tconv_setup(c, &p, dims));
    p.bias = kiln__in(c, 2);
    p.y = c->out[0];
    tconv_run(c, &p);
    return KILN_OK;
}

/* ---- Col2Im --------------------------------------------------------------- */

/* input: (N, C*prod(block_shape), L), image_shape: (k) int64, block_shape:
 * (k) int64; y: (N, C, image_shape...). L must be the number of blocks
 *   prod_i ((image[i] + pads - (block[i]-1)*dil[i] - 1) / stride[i] + 1). */
static kiln_status col2im_setup(const kiln__kctx *c, tconv_prob *p, int64_t *dims) {
    memset(p, 0, sizeof(*p));
    const kiln_tensor *x = c->in[0];
    int64_t image[KILN_MAX_DIMS], block[KILN_MAX_DIMS];
    int ni, nb;
    char b1[96];
    KILN__TRY(kiln__read_ints(c->in[1], "image_shape", image, KILN_MAX_DIMS - 2, &ni));
    KILN__TRY(kiln__read_ints(c->in[2], "block_shape", block, KILN_MAX_DIMS - 2, &nb));
    if (ni != nb || ni < 1)
        return kiln__err(KILN_E_SHAPE,
                         "image_shape has %d values and block_shape %d, expected the same "
                         "number >= 1", ni, nb);
    if (x->ndim != 3)
        return kiln__err(KILN_E_SHAPE,
                         "input 'input' has shape %s, expected (N, C*prod(block_shape), L)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1));
    for (int i = 0; i < ni; i++)
        if (image[i] < 0 || block[i] < 1 || image[i] > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_INVAL,
                             "image_shape[%d] = %lld, block_shape[%d] = %lld: expected "
                             ">= 0 and >= 1",
                             i, (long long)image[i], i, (long long)block[i]);
    kiln__win *w = &p->w;
    KILN__TRY(kiln__win_read(c->node, ni, image, block, w));
    int64_t K = kiln__dims_prod(block, 0, ni), L = 1;
    for (int i = 0; i < ni; i++) {
        w->out[i] = image[i];
        int64_t span = image[i] + w->pad0[i] + w->pad1[i] - kiln__win_extent(w, i);
        w->in[i] = span < 0 ? 0 : span / w->stride[i] + 1;
        L *= w->in[i];
    }
    if (x->dims[1] % K != 0 || x->dims[2] != L)
        return kiln__err(KILN_E_SHAPE, "input 'input' has shape %s, expected (N, C*%lld, %lld)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1), (long long)K,
                         (long long)L);
    p->x = x;
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = p->C / K;
    p->k_size = K;
    p->in_size = L;
    p->out_size = kiln__dims_prod(image, 0, ni);
    dims[0] = p->N;
    dims[1] = p->M;
    memcpy(dims + 2, image, ni * sizeof(int64_t));
    return KILN_OK;
}

kiln_status kiln__infer_Col2Im(kiln__kctx *c) {
    KILN__NEED(c, 1);
    KILN__NEED(c, 2);
    const kiln_tensor *x = c->in[0];
    if (x->dtype == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_UNSUPPORTED, "input 'input' is string, expected a numeric type");
    tconv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(col2im_setup(c, &p, dims));
    return kiln__out_shape(c, 0, x->dtype, p.w.nsp + 2, dims);
}

kiln_status kiln__ref_Col2Im(kiln__kctx *c) {
    tconv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(col2im_setup(c, &p, dims));
    p.y = c->out[0];
    tconv_run(c, &p);
    return KILN_OK;
}
