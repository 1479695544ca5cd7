/* src/cpu/ref/conv.c: reference kernels of Conv, ConvInteger, QLinearConv,
 * DeformConv and CausalConvWithState, plus the window geometry (conv.h)
 * shared with ConvTranspose, Col2Im and the pools.
 *
 * One convolution core drives every forward convolution: a conv_prob holds
 * the geometry, the operands and an emit hook that turns the accumulated
 * sum of an output element into its stored value (plain store, int32, or
 * requantization). It has two loops over an output plane (n, m):
 *   - conv_plane_f32: the float32 fast path; for each input channel and
 *     kernel tap it adds w * x along whole output rows (contiguous inner
 *     loop, float accumulation), without im2col;
 *   - conv_plane_generic: every other dtype (f64/f16/bf16, the quantized
 *     ops); it gathers each output element's sum in double, with zero
 *     points subtracted, and calls emit.
 */
#if defined(__GNUC__) && !defined(__clang__) /* clang (the fuzz build): its own vectorizer */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <string.h>

#include "cpu/ref/conv.h"

/* Bounds that keep every index product below 2^63. */
#define WIN_MAX_STEP ((int64_t)1 << 24) /* strides, dilations */
#define WIN_MAX_PAD ((int64_t)1 << 32)

/* ---- window geometry ----------------------------------------------------- */

/* Reads ints attribute `name` into v[0..want) (def when absent), each in
 * [lo, hi]. */
static kiln_status read_win_attr(const kiln__node *n, const char *name, int want, int64_t def,
                                 int64_t lo, int64_t hi, int64_t *v) {
    const int64_t *a;
    int cnt = kiln__attr_ints(n, name, &a);
    if (cnt < 0) {
        for (int i = 0; i < want; i++) v[i] = def;
        return KILN_OK;
    }
    if (cnt != want)
        return kiln__err(KILN_E_INVAL, "attribute '%s' has %d values, expected %d", name, cnt,
                         want);
    for (int i = 0; i < want; i++) {
        if (a[i] < lo || a[i] > hi)
            return kiln__err(KILN_E_INVAL, "attribute '%s'[%d] is %lld, expected %lld..%lld", name,
                             i, (long long)a[i], (long long)lo, (long long)hi);
        v[i] = a[i];
    }
    return KILN_OK;
}

kiln_status kiln__win_read(const kiln__node *n, int nsp, const int64_t *in, const int64_t *wk,
                           kiln__win *w) {
    memset(w, 0, sizeof(*w));
    if (nsp < 1 || nsp > KILN_MAX_DIMS - 2)
        return kiln__err(KILN_E_SHAPE, "%d spatial dims, expected 1..%d", nsp, KILN_MAX_DIMS - 2);
    w->nsp = nsp;
    for (int i = 0; i < nsp; i++) w->in[i] = in[i];

    const char *ap = kiln__attr_s(n, "auto_pad", "NOTSET");
    if (strcmp(ap, "NOTSET") == 0 || ap[0] == 0)
        w->auto_pad = KILN__AUTOPAD_NOTSET;
    else if (strcmp(ap, "VALID") == 0)
        w->auto_pad = KILN__AUTOPAD_VALID;
    else if (strcmp(ap, "SAME_UPPER") == 0)
        w->auto_pad = KILN__AUTOPAD_SAME_UPPER;
    else if (strcmp(ap, "SAME_LOWER") == 0)
        w->auto_pad = KILN__AUTOPAD_SAME_LOWER;
    else
        return kiln__err(KILN_E_INVAL,
                         "attribute 'auto_pad' is '%s', expected NOTSET, VALID, SAME_UPPER or "
                         "SAME_LOWER",
                         ap);

    const int64_t *ks;
    int nk = kiln__attr_ints(n, "kernel_shape", &ks);
    if (nk < 0 && !wk) return kiln__err(KILN_E_INVAL, "attribute 'kernel_shape' is required");
    if (nk >= 0 && nk != nsp)
        return kiln__err(KILN_E_INVAL, "attribute 'kernel_shape' has %d values, expected %d", nk,
                         nsp);
    int64_t k_size = 1;
    for (int i = 0; i < nsp; i++) {
        int64_t k = nk >= 0 ? ks[i] : wk[i];
        if (k < 1 || k > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_INVAL, "kernel size %lld along spatial dim %d, expected >= 1",
                             (long long)k, i);
        if (wk && k != wk[i])
            return kiln__err(KILN_E_SHAPE,
                             "attribute 'kernel_shape'[%d] is %lld but the weight has %lld", i,
                             (long long)k, (long long)wk[i]);
        w->k[i] = k;
        k_size *= k;
        if (k_size > KILN__MAX_NUMEL)
            return kiln__err(KILN_E_LIMIT, "kernel of %lld+ elements is too large",
                             (long long)k_size);
    }
    KILN__TRY(read_win_attr(n, "strides", nsp, 1, 1, WIN_MAX_STEP, w->stride));
    KILN__TRY(read_win_attr(n, "dilations", nsp, 1, 1, WIN_MAX_STEP, w->dil));
    int64_t pads[2 * KILN_MAX_DIMS];
    KILN__TRY(read_win_attr(n, "pads", 2 * nsp, 0, 0, WIN_MAX_PAD, pads));
    for (int i = 0; i < nsp; i++) {
        w->pad0[i] = pads[i];
        w->pad1[i] = pads[nsp + i];
    }
    return KILN_OK;
}

kiln_status kiln__win_forward(kiln__win *w, int ceil_mode) {
    for (int i = 0; i < w->nsp; i++) {
        int64_t s = w->stride[i], ext = kiln__win_extent(w, i), in = w->in[i];
        if (w->auto_pad == KILN__AUTOPAD_SAME_UPPER || w->auto_pad == KILN__AUTOPAD_SAME_LOWER) {
            w->out[i] = (in + s - 1) / s;
            int64_t total = (w->out[i] - 1) * s + ext - in;
            if (total < 0) total = 0;
            w->pad0[i] = w->auto_pad == KILN__AUTOPAD_SAME_UPPER ? total / 2 : total - total / 2;
            w->pad1[i] = total - w->pad0[i];
            continue;
        }
        if (w->auto_pad == KILN__AUTOPAD_VALID) w->pad0[i] = w->pad1[i] = 0;
        int64_t span = in + w->pad0[i] + w->pad1[i] - ext;
        if (span < 0)
            return kiln__err(KILN_E_SHAPE,
                             "spatial dim %d: dilated kernel extent %lld exceeds the padded "
                             "input size %lld",
                             i, (long long)ext, (long long)(in + w->pad0[i] + w->pad1[i]));
        w->out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        /* a window may not start inside the end padding */
        if (ceil_mode && (w->out[i] - 1) * s >= in + w->pad0[i]) w->out[i]--;
    }
    return KILN_OK;
}

/* ---- the convolution core ----------------------------------------------- */

typedef struct conv_prob conv_prob;
/* Stores the accumulated sum acc of output element i (channel m). */
typedef void (*conv_emit_fn)(const conv_prob *p, int64_t m, double acc, int64_t i);

struct conv_prob {
    kiln__win w;
    int64_t N, C, M, G;                /* batch, input channels, output channels, groups */
    int64_t Cg, Mg;                    /* channels per group (input, output) */
    int64_t in_size, out_size, k_size; /* elements of one spatial plane / kernel */
    const kiln_tensor *x, *wt, *bias;  /* bias: (M) or NULL */
    const kiln_tensor *x_zp, *w_zp;    /* generic path: scalar / per-m, or NULL */
    const kiln_tensor *x_scale, *w_scale, *y_scale, *y_zp; /* QLinearConv */
    kiln_tensor *y;
    conv_emit_fn emit;
};

/* Element i of a scalar or per-channel parameter t (0 when t is NULL). */
static double param_at(const kiln_tensor *t, int64_t i) {
    if (!t) return 0;
    return kiln__ld_f(t->dtype, t->data, kiln__n(t) == 1 ? 0 : i);
}

/* Fails unless t is absent, a single element or a 1-D tensor of n. */
static kiln_status check_param(const kiln_tensor *t, const char *what, int64_t n) {
    if (!t) return KILN_OK;
    int64_t cnt = kiln__n(t);
    if (cnt == 1 && t->ndim <= 1) return KILN_OK;
    if (t->ndim == 1 && cnt == n) return KILN_OK;
    char buf[96];
    return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected a scalar or (%lld)", what,
                     kiln__shape_str(t->ndim, t->dims, buf, sizeof buf), (long long)n);
}

/* Fills p's geometry from X = in[xi]: (N, C, D1..Dk) and W = in[wi]:
 * (M, C/group, K1..Kk), with the node's window attributes and group. */
kiln_status kiln__conv_check_ranks(const kiln_tensor *x, const kiln_tensor *w) {
    char b1[96], b2[96];
    if (x->ndim < 3)
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected (N, C, D1, ...)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1));
    if (w->ndim != x->ndim)
        return kiln__err(KILN_E_SHAPE, "input 'W' has shape %s, expected rank %d like X %s",
                         kiln__shape_str(w->ndim, w->dims, b1, sizeof b1), x->ndim,
                         kiln__shape_str(x->ndim, x->dims, b2, sizeof b2));
    return KILN_OK;
}

kiln_status kiln__conv_check_float_xw(const kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "X", KILN__FLOAT_DTYPES));
    if (c->in[1]->dtype != c->in[0]->dtype)
        return kiln__err(KILN_E_TYPE, "input 'W' is %s, expected %s like X",
                         kiln_dtype_name(c->in[1]->dtype), kiln_dtype_name(c->in[0]->dtype));
    return KILN_OK;
}

static kiln_status conv_setup(const kiln__kctx *c, int xi, int wi, conv_prob *p) {
    memset(p, 0, sizeof(*p));
    const kiln_tensor *x = c->in[xi], *w = c->in[wi];
    char b1[96], b2[96];
    KILN__TRY(kiln__conv_check_ranks(x, w));
    int64_t group = kiln__attr_i(c->node, "group", 1);
    if (group < 1 || group > (x->dims[1] > 1 ? x->dims[1] : 1))
        return kiln__err(KILN_E_INVAL, "attribute 'group' is %lld, expected 1..C (C = %lld)",
                         (long long)group, (long long)x->dims[1]);
    p->x = x;
    p->wt = w;
    p->N = x->dims[0];
    p->C = x->dims[1];
    p->M = w->dims[0];
    p->G = group;
    p->Cg = w->dims[1];
    if (p->C % group != 0 || p->C / group != p->Cg || p->M % group != 0)
        return kiln__err(KILN_E_SHAPE,
                         "X %s and W %s do not match group %lld: expected W (M, C/group, ...) "
                         "with M divisible by group",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1),
                         kiln__shape_str(w->ndim, w->dims, b2, sizeof b2), (long long)group);
    p->Mg = p->M / group;
    int nsp = x->ndim - 2;
    KILN__TRY(kiln__win_read(c->node, nsp, x->dims + 2, w->dims + 2, &p->w));
    p->in_size = kiln__dims_prod(p->w.in, 0, nsp);
    p->k_size = kiln__dims_prod(p->w.k, 0, nsp);
    return KILN_OK;
}

/* Forward geometry plus the output shape (N, M, out...). */
static kiln_status conv_forward_shape(conv_prob *p, int64_t *dims) {
    KILN__TRY(kiln__win_forward(&p->w, 0));
    p->out_size = kiln__dims_prod(p->w.out, 0, p->w.nsp);
    dims[0] = p->N;
    dims[1] = p->M;
    memcpy(dims + 2, p->w.out, p->w.nsp * sizeof(int64_t));
    return KILN_OK;
}

kiln_status kiln__conv_window(const kiln__kctx *c, int xi, int wi, kiln__win *w,
                             int64_t *group) {
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(conv_setup(c, xi, wi, &p));
    KILN__TRY(conv_forward_shape(&p, dims));
    *w = p.w;
    *group = p.G;
    return KILN_OK;
}

/* Kernel side of conv_setup + conv_forward_shape: the geometry of X = in[0]
 * and W = in[wi] with the output extents (infer validated the rest). */
static kiln_status conv_plan(const kiln__kctx *c, int wi, conv_prob *p) {
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(conv_setup(c, 0, wi, p));
    return conv_forward_shape(p, dims);
}

static kiln_status check_bias(const kiln_tensor *b, int64_t M, kiln_dtype dt) {
    if (!b) return KILN_OK;
    char buf[96];
    if (b->ndim != 1 || b->dims[0] != M)
        return kiln__err(KILN_E_SHAPE, "input 'B' has shape %s, expected (%lld)",
                         kiln__shape_str(b->ndim, b->dims, buf, sizeof buf), (long long)M);
    if (b->dtype != dt)
        return kiln__err(KILN_E_TYPE, "input 'B' is %s, expected %s", kiln_dtype_name(b->dtype),
                         kiln_dtype_name(dt));
    return KILN_OK;
}

/* y[o] += sum_{c<4} w[c] * x[c][o*xs] for o in [0, n): four input channels
 * per pass over the output row, so y is loaded and stored once per four
 * products. */
static inline void axpy4_f32(float *restrict y, const float *const *x, const float *w, int64_t xs,
                             int64_t n) {
    const float *restrict x0 = x[0], *restrict x1 = x[1], *restrict x2 = x[2], *restrict x3 = x[3];
    float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    if (xs == 1)
        for (int64_t o = 0; o < n; o++) y[o] += w0 * x0[o] + w1 * x1[o] + w2 * x2[o] + w3 * x3[o];
    else
        for (int64_t o = 0; o < n; o++)
            y[o] += w0 * x0[o * xs] + w1 * x1[o * xs] + w2 * x2[o * xs] + w3 * x3[o * xs];
}

/* Float32 output plane (n, m): y: (out...) = B[m] + sum over input channels
 * c of m's group and kernel taps j of W[m,c,j] * X[n,c,o*stride-pad0+j*dil].
 * For each tap and block of (up to) four input channels, the products are
 * added as runs over the outputs whose tap lands inside X: one output row,
 * or several rows (up to the whole plane, as in a 1x1 convolution) when the
 * trailing dims map outputs onto inputs one to one. */
KILN__F32_CLONES static void conv_plane_f32(const conv_prob *p, int64_t n, int64_t m,
                                            float *restrict y) {
    const kiln__win *w = &p->w;
    int nsp = w->nsp;
    int64_t ostr[KILN_MAX_DIMS], istr[KILN_MAX_DIMS];
    kiln__contiguous_strides(nsp, w->out, ostr);
    kiln__contiguous_strides(nsp, w->in, istr);
    float b = p->bias ? ((const float *)p->bias->data)[m] : 0.f;
    for (int64_t i = 0; i < p->out_size; i++) y[i] = b;

    int64_t ci0 = (m / p->Mg) * p->Cg;
    const float *X = (const float *)p->x->data + (n * p->C + ci0) * p->in_size;
    const float *W = (const float *)p->wt->data + m * p->Cg * p->k_size;
    int64_t tap[KILN_MAX_DIMS] = {0};
    for (int64_t t = 0; t < p->k_size; t++, kiln__next_index(nsp, w->k, tap)) {
        int64_t lo[KILN_MAX_DIMS], hi[KILN_MAX_DIMS], o[KILN_MAX_DIMS], b0[KILN_MAX_DIMS];
        int empty = 0;
        for (int d = 0; d < nsp; d++) {
            b0[d] = tap[d] * w->dil[d] - w->pad0[d]; /* input pos = o*stride + b0 */
            kiln__stride_range(b0[d], w->stride[d], w->in[d], w->out[d], &lo[d], &hi[d]);
            empty |= lo[d] >= hi[d];
        }
        if (empty) continue;
        /* rd: the runs' dim; the dims after it map one to one (blocks of B) */
        int rd = nsp - 1;
        int64_t B = 1;
        while (rd >= 0 && b0[rd] == 0 && w->stride[rd] == 1 && w->in[rd] == w->out[rd])
            B *= w->out[rd--];
        if (rd >= 0 && B > 1 && w->stride[rd] != 1) { /* runs not contiguous: rows */
            rd = nsp - 1;
            B = 1;
        }
        int64_t xs = rd < 0 ? 1 : w->stride[rd];
        int64_t len = rd < 0 ? p->out_size : (hi[rd] - lo[rd]) * B;
        for (int64_t ci = 0; ci < p->Cg; ci += 4) {
            int cnt = p->Cg - ci < 4 ? (int)(p->Cg - ci) : 4;
            const float *xc[4];
            float wv[4];
            for (int j = 0; j < cnt; j++) {
                xc[j] = X + (ci + j) * p->in_size;
                wv[j] = W[(ci + j) * p->k_size + t];
            }
            for (int d = 0; d < nsp; d++) o[d] = lo[d];
            do { /* one run per iteration */
                int64_t yoff = 0, xoff = 0;
                if (rd >= 0) {
                    yoff = lo[rd] * ostr[rd];
                    xoff = (lo[rd] * w->stride[rd] + b0[rd]) * istr[rd];
                }
                for (int d = 0; d < rd; d++) {
                    yoff += o[d] * ostr[d];
                    xoff += (o[d] * w->stride[d] + b0[d]) * istr[d];
                }
                if (cnt == 4) {
                    const float *xr[4] = {xc[0] + xoff, xc[1] + xoff, xc[2] + xoff, xc[3] + xoff};
                    axpy4_f32(y + yoff, xr, wv, xs, len);
                } else {
                    for (int j = 0; j < cnt; j++)
                        kiln__axpy_f32(y + yoff, 1, xc[j] + xoff, xs, wv[j], len);
                }
            } while (rd > 0 && kiln__next_in_box(rd, lo, hi, o));
        }
    }
}

/* Any-dtype output plane (n, m): for every output element o,
 *   emit(B[m] + sum_{c,j} (X[n,c,pos(o,j)] - x_zp) * (W[m,c,j] - w_zp[m]))
 * in double, taps outside X (padding) contributing 0. */
static void conv_plane_generic(const conv_prob *p, int64_t n, int64_t m) {
    const kiln__win *w = &p->w;
    int nsp = w->nsp;
    kiln_dtype xt = p->x->dtype, wt = p->wt->dtype;
    double bias = param_at(p->bias, m), xz = param_at(p->x_zp, 0), wz = param_at(p->w_zp, m);
    int64_t ci0 = (m / p->Mg) * p->Cg;
    int64_t o[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->out_size; i++, kiln__next_index(nsp, w->out, o)) {
        double acc = bias;
        int64_t tap[KILN_MAX_DIMS] = {0};
        for (int64_t t = 0; t < p->k_size; t++, kiln__next_index(nsp, w->k, tap)) {
            int64_t xoff = 0;
            int inside = 1;
            for (int d = 0; d < nsp && inside; d++) {
                int64_t pos = o[d] * w->stride[d] - w->pad0[d] + tap[d] * w->dil[d];
                inside = pos >= 0 && pos < w->in[d];
                xoff = xoff * w->in[d] + pos;
            }
            if (!inside) continue;
            for (int64_t ci = 0; ci < p->Cg; ci++) {
                double xv = kiln__ld_f(xt, p->x->data, (n * p->C + ci0 + ci) * p->in_size + xoff);
                double wv = kiln__ld_f(wt, p->wt->data, (m * p->Cg + ci) * p->k_size + t);
                acc += (xv - xz) * (wv - wz);
            }
        }
        p->emit(p, m, acc, (n * p->M + m) * p->out_size + i);
    }
}

/* Runs this thread's share of the N*M output planes. */
static void conv_run(const kiln__kctx *c, const conv_prob *p) {
    int fast = p->x->dtype == KILN_DTYPE_F32 && p->emit == NULL;
    int64_t lo, hi;
    kiln__split(p->N * p->M, c->ith, c->nth, &lo, &hi);
    for (int64_t nm = lo; nm < hi; nm++) {
        int64_t n = nm / p->M, m = nm % p->M;
        if (fast)
            conv_plane_f32(p, n, m, (float *)p->y->data + nm * p->out_size);
        else
            conv_plane_generic(p, n, m);
    }
}

static void emit_float(const conv_prob *p, int64_t m, double acc, int64_t i) {
    kiln__st_f(p->y->dtype, p->y->data, i, acc);
}

static void emit_int32(const conv_prob *p, int64_t m, double acc, int64_t i) {
    ((int32_t *)p->y->data)[i] = (int32_t)(int64_t)acc;
}

/* Lowest / highest value of an 8-bit quantized dtype. */
static void quant_range(kiln_dtype dt, double *lo, double *hi) {
    *lo = dt == KILN_DTYPE_I8 ? -128 : 0;
    *hi = dt == KILN_DTYPE_I8 ? 127 : 255;
}

/* QLinearConv: y = saturate(round_half_even(acc * x_scale * w_scale[m] / y_scale) + y_zp). */
static void emit_qlinear(const conv_prob *p, int64_t m, double acc, int64_t i) {
    float mult = (float)param_at(p->x_scale, 0) * (float)param_at(p->w_scale, m);
    mult /= (float)param_at(p->y_scale, 0);
    double v = nearbyint(acc * (double)mult) + param_at(p->y_zp, 0), lo, hi;
    quant_range(p->y->dtype, &lo, &hi);
    kiln__st_f(p->y->dtype, p->y->data, i, v < lo ? lo : v > hi ? hi : v);
}

/* ---- Conv ------------------------------------------------------------------ */

/* x: (N,C,D1..Dk), w: (M,C/group,K1..Kk), b: (M) optional, y: (N,M,O1..Ok);
 * f16 / bf16 / f32 / f64. */
kiln_status kiln__infer_Conv(kiln__kctx *c) {
    KILN__TRY(kiln__conv_check_float_xw(c));
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(conv_setup(c, 0, 1, &p));
    KILN__TRY(check_bias(kiln__in(c, 2), p.M, c->in[0]->dtype));
    KILN__TRY(conv_forward_shape(&p, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, dims);
}

kiln_status kiln__ref_Conv(kiln__kctx *c) {
    conv_prob p;
    KILN__TRY(conv_plan(c, 1, &p));
    p.bias = kiln__in(c, 2);
    p.y = c->out[0];
    p.emit = p.x->dtype == KILN_DTYPE_F32 ? NULL : emit_float;
    conv_run(c, &p);
    return KILN_OK;
}

/* ---- ConvInteger ---------------------------------------------------------- */

/* x: (N,C,D...) u8/i8, w: (M,C/group,K...) u8/i8, x_zero_point: scalar,
 * w_zero_point: scalar or (M); y: (N,M,O...) int32 = sum (x - xz)(w - wz). */
kiln_status kiln__infer_ConvInteger(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "x", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(kiln__check_dtype(c->in[1], "w", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(conv_setup(c, 0, 1, &p));
    KILN__TRY(check_param(kiln__in(c, 2), "x_zero_point", 1));
    KILN__TRY(check_param(kiln__in(c, 3), "w_zero_point", p.M));
    KILN__TRY(conv_forward_shape(&p, dims));
    return kiln__out_shape(c, 0, KILN_DTYPE_I32, c->in[0]->ndim, dims);
}

kiln_status kiln__ref_ConvInteger(kiln__kctx *c) {
    conv_prob p;
    KILN__TRY(conv_plan(c, 1, &p));
    p.x_zp = kiln__in(c, 2);
    p.w_zp = kiln__in(c, 3);
    p.y = c->out[0];
    p.emit = emit_int32;
    conv_run(c, &p);
    return KILN_OK;
}

/* ---- QLinearConv ---------------------------------------------------------- */

/* x: (N,C,D...) u8/i8 with x_scale, x_zero_point scalars; w: (M,C/group,K...)
 * u8/i8 with w_scale, w_zero_point scalar or (M); y_scale, y_zero_point
 * scalars; B: (M) int32 optional. y: (N,M,O...) of y_zero_point's dtype. */
kiln_status kiln__infer_QLinearConv(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "x", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    KILN__TRY(kiln__check_dtype(c->in[3], "w", KILN_DTYPE_U8, KILN_DTYPE_I8, 0));
    static const char *const names[] = {"x",       "x_scale",      "x_zero_point", "w",
                                        "w_scale", "w_zero_point", "y_scale",      "y_zero_point"};
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(conv_setup(c, 0, 3, &p));
    for (int i = 1; i < 8; i++) {
        if (i == 3) continue;
        KILN__TRY(check_param(kiln__in(c, i), names[i], i == 4 || i == 5 ? p.M : 1));
        if ((i == 1 || i == 4 || i == 6) && c->in[i])
            KILN__TRY(kiln__check_dtype(c->in[i], names[i], KILN_DTYPE_F32, KILN_DTYPE_F16,
                                        KILN_DTYPE_BF16, KILN_DTYPE_F64, 0));
    }
    KILN__TRY(check_bias(kiln__in(c, 8), p.M, KILN_DTYPE_I32));
    kiln_dtype yt = kiln__in(c, 7) ? c->in[7]->dtype : c->in[0]->dtype;
    if (yt != KILN_DTYPE_U8 && yt != KILN_DTYPE_I8)
        return kiln__err(KILN_E_TYPE, "input 'y_zero_point' is %s, expected uint8 or int8",
                         kiln_dtype_name(yt));
    KILN__TRY(conv_forward_shape(&p, dims));
    return kiln__out_shape(c, 0, yt, c->in[0]->ndim, dims);
}

kiln_status kiln__ref_QLinearConv(kiln__kctx *c) {
    conv_prob p;
    KILN__TRY(conv_plan(c, 3, &p));
    p.x_scale = c->in[1];
    p.x_zp = kiln__in(c, 2);
    p.w_scale = c->in[4];
    p.w_zp = kiln__in(c, 5);
    p.y_scale = c->in[6];
    p.y_zp = kiln__in(c, 7);
    p.bias = kiln__in(c, 8);
    p.y = c->out[0];
    p.emit = emit_qlinear;
    conv_run(c, &p);
    return KILN_OK;
}

/* ---- DeformConv ------------------------------------------------------------ */

/* Value of plane x (sizes in[0..nsp)) at the fractional position pos by
 * multilinear interpolation; corners outside the plane count as 0. */
static double sample_linear(kiln_dtype dt, const void *x, int64_t base, int nsp, const int64_t *in,
                            const double *pos) {
    int64_t i0[KILN_MAX_DIMS];
    double frac[KILN_MAX_DIMS];
    for (int d = 0; d < nsp; d++) {
        if (!(pos[d] > -1.0 && pos[d] < (double)in[d])) return 0; /* also NaN */
        double f = floor(pos[d]);
        i0[d] = (int64_t)f;
        frac[d] = pos[d] - f;
    }
    double v = 0;
    for (int corner = 0; corner < (1 << nsp); corner++) {
        double wgt = 1;
        int64_t off = 0;
        int inside = 1;
        for (int d = 0; d < nsp; d++) {
            int up = (corner >> (nsp - 1 - d)) & 1;
            int64_t idx = i0[d] + up;
            wgt *= up ? frac[d] : 1.0 - frac[d];
            inside &= idx >= 0 && idx < in[d];
            off = off * in[d] + idx;
        }
        if (inside && wgt != 0) v += wgt * kiln__ld_f(dt, x, base + off);
    }
    return v;
}

/* Reads DeformConv's inputs into p and checks offset / mask shapes:
 * X: (N,C,D...), W: (M,C/group,K...), offset: (N, og*prod(K)*k, O...),
 * B: (M) optional, mask: (N, og*prod(K), O...) optional. */
static kiln_status deform_setup(const kiln__kctx *c, conv_prob *p, int64_t *dims, int64_t *og) {
    KILN__TRY(conv_setup(c, 0, 1, p));
    p->w.auto_pad = KILN__AUTOPAD_NOTSET; /* DeformConv has explicit pads only */
    KILN__TRY(conv_forward_shape(p, dims));
    *og = kiln__attr_i(c->node, "offset_group", 1);
    if (*og < 1 || p->C % *og != 0)
        return kiln__err(KILN_E_INVAL,
                         "attribute 'offset_group' is %lld, expected a divisor of C = %lld",
                         (long long)*og, (long long)p->C);
    int nsp = p->w.nsp;
    for (int i = 2; i <= 4; i += 2) { /* offset, mask */
        const kiln_tensor *t = kiln__in(c, i);
        if (!t) continue;
        int64_t want = *og * p->k_size * (i == 2 ? nsp : 1);
        int ok = t->ndim == nsp + 2 && t->dims[0] == p->N && t->dims[1] == want;
        for (int d = 0; ok && d < nsp; d++) ok = t->dims[2 + d] == p->w.out[d];
        if (!ok) {
            char b1[96], b2[96];
            dims[1] = want;
            return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected %s",
                             i == 2 ? "offset" : "mask",
                             kiln__shape_str(t->ndim, t->dims, b1, sizeof b1),
                             kiln__shape_str(nsp + 2, dims, b2, sizeof b2));
        }
        if (t->dtype != p->x->dtype)
            return kiln__err(KILN_E_TYPE, "input '%s' is %s, expected %s like X",
                             i == 2 ? "offset" : "mask", kiln_dtype_name(t->dtype),
                             kiln_dtype_name(p->x->dtype));
    }
    return KILN_OK;
}

kiln_status kiln__infer_DeformConv(kiln__kctx *c) {
    KILN__TRY(kiln__conv_check_float_xw(c));
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS], og;
    KILN__TRY(deform_setup(c, &p, dims, &og));
    KILN__TRY(check_bias(kiln__in(c, 3), p.M, c->in[0]->dtype));
    return kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, dims);
}

/* y[n,m,o] = B[m] + sum_{c,j} W[m,c,j] * mask[n,g,j,o] *
 *            X[n,c](o*stride - pad0 + j*dil + offset[n,g,j,:,o])
 * where g = c / (C/offset_group) and X is sampled multilinearly. */
kiln_status kiln__ref_DeformConv(kiln__kctx *c) {
    conv_prob p;
    int64_t dims[KILN_MAX_DIMS], og;
    KILN__TRY(deform_setup(c, &p, dims, &og));
    const kiln_tensor *off = c->in[2], *mask = kiln__in(c, 4), *bias = kiln__in(c, 3);
    const kiln__win *w = &p.w;
    int nsp = w->nsp;
    kiln_dtype dt = p.x->dtype;
    kiln_tensor *y = c->out[0];
    int64_t C_og = p.C / og, lo, hi;
    kiln__split(p.N * p.M, c->ith, c->nth, &lo, &hi);
    for (int64_t nm = lo; nm < hi; nm++) {
        int64_t n = nm / p.M, m = nm % p.M, ci0 = (m / p.Mg) * p.Cg;
        int64_t o[KILN_MAX_DIMS] = {0};
        for (int64_t i = 0; i < p.out_size; i++, kiln__next_index(nsp, w->out, o)) {
            double acc = param_at(bias, m);
            for (int64_t ci = 0; ci < p.Cg; ci++) {
                int64_t ch = ci0 + ci, g = ch / C_og;
                int64_t tap[KILN_MAX_DIMS] = {0};
                for (int64_t t = 0; t < p.k_size; t++, kiln__next_index(nsp, w->k, tap)) {
                    double pos[KILN_MAX_DIMS];
                    for (int d = 0; d < nsp; d++) {
                        int64_t oc = ((n * og + g) * p.k_size + t) * nsp + d;
                        pos[d] = (double)(o[d] * w->stride[d] - w->pad0[d] + tap[d] * w->dil[d]) +
                                 kiln__ld_f(dt, off->data, oc * p.out_size + i);
                    }
                    double mk = mask ? kiln__ld_f(dt, mask->data,
                                                  ((n * og + g) * p.k_size + t) * p.out_size + i)
                                     : 1.0;
                    double xv =
                        sample_linear(dt, p.x->data, (n * p.C + ch) * p.in_size, nsp, w->in, pos);
                    acc += kiln__ld_f(dt, p.wt->data, (m * p.Cg + ci) * p.k_size + t) * mk * xv;
                }
            }
            kiln__st_f(y->dtype, y->data, nm * p.out_size + i, acc);
        }
    }
    return KILN_OK;
}

/* ---- CausalConvWithState (opset 27) ---------------------------------------- */

/* input: (B,C,L), weight: (C,1,K), bias: (C) optional, past_state:
 * (B,C,K-1) optional (zeros when absent); f32/f16/bf16. With
 * padded = concat(past_state, input) along L:
 *   output[b,c,t] = act(bias[c] + sum_j weight[c,0,j] * padded[b,c,t+j])
 *   present_state = padded[:, :, L:L+K-1]; act is none or silu (= swish). */
static kiln_status causal_setup(const kiln__kctx *c, int64_t *K, int *silu) {
    const kiln_tensor *x = c->in[0], *w = c->in[1];
    char b1[96];
    KILN__TRY(kiln__check_dtype(x, "input", KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16,
                                KILN_DTYPE_F64, 0));
    if (x->ndim != 3)
        return kiln__err(KILN_E_SHAPE, "input 'input' has shape %s, expected (B, C, L)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1));
    if (w->ndim != 3 || w->dims[0] != x->dims[1] || w->dims[1] != 1 || w->dims[2] < 1)
        return kiln__err(KILN_E_SHAPE, "input 'weight' has shape %s, expected (%lld, 1, k)",
                         kiln__shape_str(w->ndim, w->dims, b1, sizeof b1), (long long)x->dims[1]);
    *K = w->dims[2];
    for (int i = 1; i < 4; i++)
        if (kiln__in(c, i) && c->in[i]->dtype != x->dtype)
            return kiln__err(KILN_E_TYPE, "input %d is %s, expected %s like input", i,
                             kiln_dtype_name(c->in[i]->dtype), kiln_dtype_name(x->dtype));
    KILN__TRY(check_bias(kiln__in(c, 2), x->dims[1], x->dtype));
    const kiln_tensor *ps = kiln__in(c, 3);
    if (ps && (ps->ndim != 3 || ps->dims[0] != x->dims[0] || ps->dims[1] != x->dims[1] ||
               ps->dims[2] != *K - 1))
        return kiln__err(KILN_E_SHAPE,
                         "input 'past_state' has shape %s, expected (%lld, %lld, %lld)",
                         kiln__shape_str(ps->ndim, ps->dims, b1, sizeof b1), (long long)x->dims[0],
                         (long long)x->dims[1], (long long)(*K - 1));
    const char *act = kiln__attr_s(c->node, "activation", "none");
    if (strcmp(act, "none") && strcmp(act, "silu") && strcmp(act, "swish"))
        return kiln__err(KILN_E_INVAL,
                         "attribute 'activation' is '%s', expected none, silu or swish", act);
    *silu = strcmp(act, "none") != 0;
    return KILN_OK;
}

kiln_status kiln__infer_CausalConvWithState(kiln__kctx *c) {
    int64_t K;
    int silu;
    KILN__TRY(causal_setup(c, &K, &silu));
    const kiln_tensor *x = c->in[0];
    int64_t sdims[3] = {x->dims[0], x->dims[1], K - 1};
    KILN__TRY(kiln__out_like(c, 0, x));
    return kiln__out_shape(c, 1, x->dtype, 3, sdims);
}

/* Element t of row (b, ch) of padded = concat(past_state, input). */
static double causal_padded(const kiln_tensor *x, const kiln_tensor *ps, int64_t K, int64_t row,
                            int64_t t) {
    int64_t L = x->dims[2];
    if (t >= K - 1) return kiln__ld_f(x->dtype, x->data, row * L + t - (K - 1));
    return ps ? kiln__ld_f(ps->dtype, ps->data, row * (K - 1) + t) : 0.0;
}

kiln_status kiln__ref_CausalConvWithState(kiln__kctx *c) {
    int64_t K;
    int silu;
    KILN__TRY(causal_setup(c, &K, &silu));
    const kiln_tensor *x = c->in[0], *w = c->in[1], *bias = kiln__in(c, 2), *ps = kiln__in(c, 3);
    kiln_tensor *y = c->out[0], *state = kiln__out(c, 1);
    kiln_dtype dt = x->dtype;
    int64_t C = x->dims[1], L = x->dims[2];
    for (int64_t row = 0; row < x->dims[0] * C; row++) {
        int64_t ch = row % C;
        for (int64_t t = 0; t < L; t++) {
            double acc = param_at(bias, ch);
            for (int64_t j = 0; j < K; j++)
                acc += kiln__ld_f(dt, w->data, ch * K + j) * causal_padded(x, ps, K, row, t + j);
            kiln__st_f(dt, y->data, row * L + t, acc);
            if (silu) { /* on the value rounded to the output dtype, in float */
                float v = (float)kiln__ld_f(dt, y->data, row * L + t);
                kiln__st_f(dt, y->data, row * L + t, v / (1.0f + expf(-v)));
            }
        }
        for (int64_t t = 0; state && t < K - 1; t++)
            kiln__st_f(dt, state->data, row * (K - 1) + t, causal_padded(x, ps, K, row, L + t));
    }
    return KILN_OK;
}
