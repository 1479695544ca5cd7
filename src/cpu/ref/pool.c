/* src/cpu/ref/pool.c: reference kernels of the pools: MaxPool (with
 * Indices), AveragePool, LpPool, their Global forms, MaxUnpool and
 * MaxRoiPool.
 *
 * One pooling core (pool_plane) walks the windows of one (n, c) plane with
 * the shared window geometry of conv.h and reduces each window by kind:
 * max (with the flat index of the first maximum), average (dividing by the
 * taps inside the input, or inside the padded input with
 * count_include_pad) or Lp norm (sum |x|^p)^(1/p). The global pools are
 * the same windows with the kernel covering the whole plane.
 *
 * The gradients that autograd adds (src/ops/defs/grad.def) walk the same
 * windows backwards, with the forward node's attributes:
 *   kiln.MaxPoolGrad(dY, X) -> dX              dY[o] goes to the first maximum
 *                                              of window o in X; with relu = 1
 *                                              only where that maximum is > 0
 *                                              (ReluGrad(dX, X) fused, X a
 *                                              Relu's output: the grad pass)
 *   kiln.AveragePoolGrad(dY, shape) -> dX      dY[o] / divisor to every tap of
 *   kiln.GlobalAveragePoolGrad(dY, shape)      window o inside X
 * shape: X's shape (int64); dX: X's shape, dY's dtype.
 */
#include <math.h>
#include <string.h>

#include "cpu/ref/conv.h"

typedef enum { POOL_MAX, POOL_AVG, POOL_LP } pool_kind;

typedef struct pool_prob {
    kiln__win w;
    pool_kind kind;
    int count_include_pad; /* AVG */
    double p;              /* LP */
    int storage_order;     /* MAX indices: 0 row-major, 1 column-major */
    int relu;              /* MaxPoolGrad: dY only to maxima > 0 */
    int64_t NC, in_size, out_size;
    const kiln_tensor *x;
    kiln_tensor *y, *ind; /* ind: MaxPool Indices or NULL */
} pool_prob;

/* Reads the p attribute (int, or float in the opset-1 Lp pools). */
static kiln_status read_p(const kiln__node *n, double *p) {
    const kiln__attr *a = kiln__attr_find(n, "p");
    *p = !a ? 2.0 : a->type == KILN__ATTR_FLOAT ? a->f : (double)a->i;
    if (!(*p > 0) || *p > 1e6)
        return kiln__err(KILN_E_INVAL, "attribute 'p' is %g, expected > 0", *p);
    return KILN_OK;
}

/* Common checks: X (N, C, D1..Dk) of one of the float dtypes (plus int8 /
 * uint8 for MaxPool). */
static kiln_status pool_check_x(const kiln_tensor *x, int ints_ok) {
    char buf[96];
    if (x->ndim < 3)
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected (N, C, D1, ...)",
                         kiln__shape_str(x->ndim, x->dims, buf, sizeof buf));
    if (ints_ok)
        return kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16,
                                 KILN_DTYPE_BF16, KILN_DTYPE_I8, KILN_DTYPE_U8, 0);
    return kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES);
}

/* Fills p for pool `kind` on X (its dtype and shape; c's node has the
 * attributes); global pools use the whole plane as the window. Writes the
 * output shape (N, C, O...) to dims. */
static kiln_status pool_setup(const kiln__kctx *c, const kiln_tensor *x, pool_kind kind,
                              int global, pool_prob *p, int64_t *dims) {
    memset(p, 0, sizeof(*p));
    KILN__TRY(pool_check_x(x, kind == POOL_MAX));
    int nsp = x->ndim - 2;
    p->kind = kind;
    p->x = x;
    if (kind == POOL_LP) KILN__TRY(read_p(c->node, &p->p));
    if (global) {
        p->w.nsp = nsp;
        for (int i = 0; i < nsp; i++) {
            p->w.in[i] = p->w.k[i] = x->dims[2 + i];
            p->w.out[i] = p->w.stride[i] = p->w.dil[i] = 1;
        }
    } else {
        KILN__TRY(kiln__win_read(c->node, nsp, x->dims + 2, NULL, &p->w));
        int64_t ceil_mode = kiln__attr_i(c->node, "ceil_mode", 0);
        p->count_include_pad = kiln__attr_i(c->node, "count_include_pad", 0) != 0;
        p->storage_order = kiln__attr_i(c->node, "storage_order", 0) != 0;
        KILN__TRY(kiln__win_forward(&p->w, ceil_mode != 0));
    }
    p->NC = x->dims[0] * x->dims[1];
    p->in_size = kiln__dims_prod(p->w.in, 0, nsp);
    p->out_size = kiln__dims_prod(p->w.out, 0, nsp);
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    memcpy(dims + 2, p->w.out, nsp * sizeof(int64_t));
    return KILN_OK;
}

/* Window of output o: input position of tap j along dim d is
 * base[d] + j*dil[d]; the taps inside X are the box [lo, hi) (tap starts at
 * lo), *inside of them, and *in_pads taps lie inside the padded input. */
static void window_taps(const kiln__win *w, const int64_t *o, int64_t *base, int64_t *lo,
                        int64_t *hi, int64_t *tap, int64_t *inside, int64_t *in_pads) {
    *inside = *in_pads = 1;
    for (int d = 0; d < w->nsp; d++) {
        int64_t plo, phi;
        base[d] = o[d] * w->stride[d] - w->pad0[d];
        kiln__stride_range(base[d], w->dil[d], w->in[d], w->k[d], &lo[d], &hi[d]);
        kiln__stride_range(base[d] + w->pad0[d], w->dil[d], w->in[d] + w->pad0[d] + w->pad1[d],
                           w->k[d], &plo, &phi);
        *inside *= hi[d] - lo[d];
        *in_pads *= phi - plo;
        tap[d] = lo[d];
    }
}

/* Plane nc: y[nc, o] = reduce over the taps j of window o of
 * X[nc, o*stride - pad0 + j*dil]. Only the taps inside X are visited (a
 * hostile kernel_shape with SAME padding may have ~2^34 taps, nearly all in
 * the padding); the taps inside the padded input (count_include_pad) are
 * counted per dim. */
static void pool_plane(const pool_prob *p, int64_t nc) {
    const kiln__win *w = &p->w;
    int nsp = w->nsp;
    kiln_dtype dt = p->x->dtype;
    int64_t istr[KILN_MAX_DIMS]; /* strides of the Indices output */
    if (p->storage_order)
        for (int d = 0; d < nsp; d++) istr[d] = d ? istr[d - 1] * w->in[d - 1] : 1;
    else
        kiln__contiguous_strides(nsp, w->in, istr);
    int64_t xbase = nc * p->in_size, o[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->out_size; i++, kiln__next_index(nsp, w->out, o)) {
        double acc = p->kind == POOL_MAX ? -INFINITY : 0.0;
        int64_t inside, in_pads, best = -1;
        int64_t base[KILN_MAX_DIMS], lo[KILN_MAX_DIMS], hi[KILN_MAX_DIMS], tap[KILN_MAX_DIMS];
        window_taps(w, o, base, lo, hi, tap, &inside, &in_pads);
        for (int more = inside > 0; more; more = kiln__next_in_box(nsp, lo, hi, tap)) {
            int64_t xoff = 0, ioff = 0;
            for (int d = 0; d < nsp; d++) {
                int64_t pos = base[d] + tap[d] * w->dil[d];
                xoff = xoff * w->in[d] + pos;
                ioff += pos * istr[d];
            }
            double v = kiln__elem_ld_f(dt, p->x->data, xbase + xoff);
            if (p->kind == POOL_MAX) {
                if (best < 0 || v > acc) {
                    acc = v;
                    best = ioff;
                }
            } else {
                acc += p->kind == POOL_AVG ? v : pow(fabs(v), p->p);
            }
        }
        if (p->kind == POOL_AVG) {
            int64_t div = p->count_include_pad ? in_pads : inside;
            acc = div ? acc / (double)div : NAN;
        } else if (p->kind == POOL_LP) {
            acc = pow(acc, 1.0 / p->p);
        }
        int64_t yi = nc * p->out_size + i;
        kiln__st_f(p->y->dtype, p->y->data, yi, acc);
        if (p->ind) ((int64_t *)p->ind->data)[yi] = best < 0 ? -1 : nc * p->in_size + best;
    }
}

static kiln_status pool_infer(kiln__kctx *c, pool_kind kind, int global) {
    pool_prob p;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(pool_setup(c, c->in[0], kind, global, &p, dims));
    KILN__TRY(kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, dims));
    if (kind == POOL_MAX && !global)
        KILN__TRY(kiln__out_shape(c, 1, KILN_DTYPE_I64, c->in[0]->ndim, dims));
    return KILN_OK;
}

static kiln_status pool_ref(kiln__kctx *c, pool_kind kind, int global) {
    pool_prob p;
    int64_t dims[KILN_MAX_DIMS], lo, hi;
    KILN__TRY(pool_setup(c, c->in[0], kind, global, &p, dims));
    p.y = c->out[0];
    p.ind = kind == POOL_MAX && !global ? kiln__out(c, 1) : NULL;
    kiln__split(p.NC, c->ith, c->nth, &lo, &hi);
    for (int64_t nc = lo; nc < hi; nc++) pool_plane(&p, nc);
    return KILN_OK;
}

/* X: (N,C,D1..Dk); Y: (N,C,O1..Ok); MaxPool also Indices: (N,C,O...) int64,
 * flat indices into X (spatial part column-major with storage_order 1). */
kiln_status kiln__infer_MaxPool(kiln__kctx *c) { return pool_infer(c, POOL_MAX, 0); }
kiln_status kiln__ref_MaxPool(kiln__kctx *c) { return pool_ref(c, POOL_MAX, 0); }
kiln_status kiln__infer_AveragePool(kiln__kctx *c) { return pool_infer(c, POOL_AVG, 0); }
kiln_status kiln__ref_AveragePool(kiln__kctx *c) { return pool_ref(c, POOL_AVG, 0); }
kiln_status kiln__infer_LpPool(kiln__kctx *c) { return pool_infer(c, POOL_LP, 0); }
kiln_status kiln__ref_LpPool(kiln__kctx *c) { return pool_ref(c, POOL_LP, 0); }
/* X: (N,C,D1..Dk); Y: (N,C,1..1). */
kiln_status kiln__infer_GlobalMaxPool(kiln__kctx *c) { return pool_infer(c, POOL_MAX, 1); }
kiln_status kiln__ref_GlobalMaxPool(kiln__kctx *c) { return pool_ref(c, POOL_MAX, 1); }
kiln_status kiln__infer_GlobalAveragePool(kiln__kctx *c) { return pool_infer(c, POOL_AVG, 1); }
kiln_status kiln__ref_GlobalAveragePool(kiln__kctx *c) { return pool_ref(c, POOL_AVG, 1); }
kiln_status kiln__infer_GlobalLpPool(kiln__kctx *c) { return pool_infer(c, POOL_LP, 1); }
kiln_status kiln__ref_GlobalLpPool(kiln__kctx *c) { return pool_ref(c, POOL_LP, 1); }

/* ---- gradients ------------------------------------------------------------------ */

/* Plane nc of dX: zeroed, then every output o's dY goes to window o's first
 * maximum in X (MAX) or, divided by the window's divisor, to each of its taps
 * inside X (AVG); sums in dX's dtype. */
static void pool_grad_plane(const pool_prob *p, const kiln_tensor *dy, kiln_tensor *dx,
                            int64_t nc) {
    const kiln__win *w = &p->w;
    int nsp = w->nsp;
    kiln_dtype dt = dx->dtype;
    int64_t xbase = nc * p->in_size, o[KILN_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->in_size; i++) kiln__elem_st_f(dt, dx->data, xbase + i, 0);
    for (int64_t i = 0; i < p->out_size; i++, kiln__next_index(nsp, w->out, o)) {
        int64_t inside, in_pads, best = -1;
        int64_t base[KILN_MAX_DIMS], lo[KILN_MAX_DIMS], hi[KILN_MAX_DIMS], tap[KILN_MAX_DIMS];
        window_taps(w, o, base, lo, hi, tap, &inside, &in_pads);
        double g = kiln__elem_ld_f(dy->dtype, dy->data, nc * p->out_size + i), max = -INFINITY;
        if (p->kind == POOL_AVG) {
            int64_t div = p->count_include_pad ? in_pads : inside;
            g = div ? g / (double)div : 0;
        }
        for (int more = inside > 0; more; more = kiln__next_in_box(nsp, lo, hi, tap)) {
            int64_t xoff = 0;
            for (int d = 0; d < nsp; d++) xoff = xoff * w->in[d] + base[d] + tap[d] * w->dil[d];
            if (p->kind == POOL_MAX) {
                double v = kiln__elem_ld_f(p->x->dtype, p->x->data, xbase + xoff);
                if (best < 0 || v > max) {
                    max = v;
                    best = xoff;
                }
            } else {
                kiln__elem_st_f(dt, dx->data, xbase + xoff,
                                kiln__elem_ld_f(dt, dx->data, xbase + xoff) + g);
            }
        }
        if (best >= 0 && (!p->relu || max > 0))
            kiln__elem_st_f(dt, dx->data, xbase + best,
                            kiln__elem_ld_f(dt, dx->data, xbase + best) + g);
    }
}

/* The forward problem of a pool gradient: X = in[1] itself (MAX) or, when
 * in[1] is X's shape, a header of that shape with dY's dtype. Checks that dY
 * has the forward output's shape and dtype. */
static kiln_status pool_grad_setup(const kiln__kctx *c, pool_kind kind, int global,
                                   kiln_tensor *xh, pool_prob *p) {
    const kiln_tensor *dy = c->in[0], *x = c->in[1];
    int64_t dims[KILN_MAX_DIMS];
    if (kind != POOL_MAX) {
        int nd;
        KILN__NEED(c, 1);
        KILN__TRY(kiln__read_ints(x, "shape", dims, KILN_MAX_DIMS, &nd));
        KILN__TRY(kiln__tensor_init(xh, dy->dtype, nd, dims));
        x = xh;
    }
    KILN__TRY(pool_setup(c, x, kind, global, p, dims));
    if (dy->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input 'dY' is %s, expected %s like X",
                         kiln_dtype_name(dy->dtype), kiln_dtype_name(x->dtype));
    return kiln__check_shape(dy, "dY", x->ndim, dims);
}

static kiln_status pool_grad_infer(kiln__kctx *c, pool_kind kind, int global) {
    pool_prob p;
    kiln_tensor xh;
    KILN__TRY(pool_grad_setup(c, kind, global, &xh, &p));
    return kiln__out_shape(c, 0, c->in[0]->dtype, p.x->ndim, p.x->dims);
}

static kiln_status pool_grad_ref(kiln__kctx *c, pool_kind kind, int global) {
    pool_prob p;
    kiln_tensor xh;
    int64_t lo, hi;
    KILN__TRY(pool_grad_setup(c, kind, global, &xh, &p));
    p.relu = kind == POOL_MAX && kiln__attr_i(c->node, "relu", 0) != 0;
    kiln__split(p.NC, c->ith, c->nth, &lo, &hi);
    for (int64_t nc = lo; nc < hi; nc++) pool_grad_plane(&p, c->in[0], c->out[0], nc);
    return KILN_OK;
}

kiln_status kiln__infer_MaxPoolGrad(kiln__kctx *c) { return pool_grad_infer(c, POOL_MAX, 0); }
kiln_status kiln__ref_MaxPoolGrad(kiln__kctx *c) { return pool_grad_ref(c, POOL_MAX, 0); }
kiln_status kiln__infer_AveragePoolGrad(kiln__kctx *c) { return pool_grad_infer(c, POOL_AVG, 0); }
kiln_status kiln__ref_AveragePoolGrad(kiln__kctx *c) { return pool_grad_ref(c, POOL_AVG, 0); }
kiln_status kiln__infer_GlobalAveragePoolGrad(kiln__kctx *c) {
    return pool_grad_infer(c, POOL_AVG, 1);
}
kiln_status kiln__ref_GlobalAveragePoolGrad(kiln__kctx *c) {
    return pool_grad_ref(c, POOL_AVG, 1);
}

/* ---- MaxUnpool ---------------------------------------------------------------- */

/* X: (N,C,D1..Dk) float, I: same shape int64, output_shape: (k+2) int64
 * optional. The unpooled shape is U = (N, C, O...) with
 * O = (D-1)*stride - pads + kernel; I holds flat indices into U (as MaxPool
 * returns them). Y has output_shape (default U): zeros except that X[i] goes
 * to the position of U's element I[i], Y being U padded at the ends (as the
 * ONNX reference does). */
static kiln_status unpool_setup(kiln__kctx *c, int64_t *udims, int64_t *ydims) {
    const kiln_tensor *x = c->in[0], *ind = c->in[1], *shape = kiln__in(c, 2);
    char b1[96], b2[96];
    KILN__TRY(pool_check_x(x, 0));
    if (ind->dtype != KILN_DTYPE_I64 || !kiln__same_shape(x, ind))
        return kiln__err(KILN_E_SHAPE, "input 'I' is %s %s, expected int64 %s like X",
                         kiln_dtype_name(ind->dtype),
                         kiln__shape_str(ind->ndim, ind->dims, b1, sizeof b1),
                         kiln__shape_str(x->ndim, x->dims, b2, sizeof b2));
    int nsp = x->ndim - 2;
    kiln__win w;
    KILN__TRY(kiln__win_read(c->node, nsp, x->dims + 2, NULL, &w));
    udims[0] = x->dims[0];
    udims[1] = x->dims[1];
    for (int i = 0; i < nsp; i++) {
        udims[2 + i] = (w.in[i] - 1) * w.stride[i] - w.pad0[i] - w.pad1[i] + w.k[i];
        if (udims[2 + i] < 0)
            return kiln__err(KILN_E_SHAPE, "spatial dim %d: output size %lld is negative", i,
                             (long long)udims[2 + i]);
    }
    memcpy(ydims, udims, x->ndim * sizeof(int64_t));
    if (!shape) return KILN_OK;
    int n, ok;
    KILN__TRY(kiln__read_ints(shape, "output_shape", ydims, KILN_MAX_DIMS, &n));
    ok = n == x->ndim;
    for (int i = 0; ok && i < n; i++) ok = i < 2 ? ydims[i] == udims[i] : ydims[i] >= udims[i];
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "input 'output_shape' is %s, expected at least %s",
                         kiln__shape_str(n, ydims, b1, sizeof b1),
                         kiln__shape_str(x->ndim, udims, b2, sizeof b2));
    return KILN_OK;
}

kiln_status kiln__infer_MaxUnpool(kiln__kctx *c) {
    KILN__NEED(c, 2);
    int64_t udims[KILN_MAX_DIMS], ydims[KILN_MAX_DIMS];
    KILN__TRY(unpool_setup(c, udims, ydims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, c->in[0]->ndim, ydims);
}

kiln_status kiln__ref_MaxUnpool(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *ind = c->in[1];
    kiln_tensor *y = c->out[0];
    int64_t udims[KILN_MAX_DIMS], ydims[KILN_MAX_DIMS];
    KILN__TRY(unpool_setup(c, udims, ydims));
    int nd = x->ndim;
    int64_t n = kiln__n(x), nu = kiln__dims_prod(udims, 0, nd);
    memset(y->data, 0, kiln__tensor_bytes(y));
    for (int64_t i = 0; i < n; i++) {
        int64_t at = ((const int64_t *)ind->data)[i], yi = 0, mul = 1;
        if (at < 0 || at >= nu)
            return kiln__err(KILN_E_RANGE, "input 'I'[%lld] is %lld, expected 0..%lld",
                             (long long)i, (long long)at, (long long)(nu - 1));
        for (int d = nd - 1; d >= 0; d--) { /* U's multi-index, laid out in Y */
            yi += (at % udims[d]) * mul;
            at /= udims[d];
            mul *= ydims[d];
        }
        kiln__st_f(y->dtype, y->data, yi, kiln__ld_f(x->dtype, x->data, i));
    }
    return KILN_OK;
}

/* ---- MaxRoiPool ---------------------------------------------------------------- */

/* X: (N,C,H,W) float, rois: (R, 5) rows [batch, x1, y1, x2, y2] in input
 * pixels times spatial_scale; pooled_shape (PH, PW). Y: (R, C, PH, PW), the
 * max over each of the PH x PW bins of the rounded RoI (0 for empty bins). */
static kiln_status roipool_setup(kiln__kctx *c, int64_t *dims) {
    const kiln_tensor *x = c->in[0], *rois = c->in[1];
    char b1[96];
    KILN__TRY(pool_check_x(x, 0));
    if (x->ndim != 4)
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected (N, C, H, W)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1));
    if (rois->ndim != 2 || rois->dims[1] != 5 || rois->dtype != x->dtype)
        return kiln__err(KILN_E_SHAPE, "input 'rois' is %s %s, expected (num_rois, 5) of %s",
                         kiln_dtype_name(rois->dtype),
                         kiln__shape_str(rois->ndim, rois->dims, b1, sizeof b1),
                         kiln_dtype_name(x->dtype));
    const int64_t *ps;
    if (kiln__attr_ints(c->node, "pooled_shape", &ps) != 2 || ps[0] < 1 || ps[1] < 1 ||
        ps[0] > KILN__MAX_NUMEL || ps[1] > KILN__MAX_NUMEL)
        return kiln__err(KILN_E_INVAL, "attribute 'pooled_shape' must be 2 values >= 1");
    dims[0] = rois->dims[0];
    dims[1] = x->dims[1];
    dims[2] = ps[0];
    dims[3] = ps[1];
    return KILN_OK;
}

kiln_status kiln__infer_MaxRoiPool(kiln__kctx *c) {
    int64_t dims[4];
    KILN__TRY(roipool_setup(c, dims));
    return kiln__out_shape(c, 0, c->in[0]->dtype, 4, dims);
}

kiln_status kiln__ref_MaxRoiPool(kiln__kctx *c) {
    int64_t dims[4];
    KILN__TRY(roipool_setup(c, dims));
    const kiln_tensor *x = c->in[0], *rois = c->in[1];
    kiln_tensor *y = c->out[0];
    kiln_dtype dt = x->dtype;
    double scale = kiln__attr_f(c->node, "spatial_scale", 1.0f);
    int64_t C = x->dims[1], H = x->dims[2], W = x->dims[3], PH = dims[2], PW = dims[3];
    for (int64_t r = 0; r < dims[0]; r++) {
        double v[5];
        for (int j = 0; j < 5; j++) v[j] = kiln__ld_f(dt, rois->data, r * 5 + j);
        if (!(v[0] >= 0 && v[0] < (double)x->dims[0]))
            return kiln__err(KILN_E_RANGE,
                             "input 'rois'[%lld] has batch index %g, expected 0..%lld",
                             (long long)r, v[0], (long long)(x->dims[0] - 1));
        int64_t b = (int64_t)v[0], box[4]; /* x1 y1 x2 y2, rounded and scaled */
        for (int j = 0; j < 4; j++) {
            double s = round(v[1 + j] * scale);
            box[j] = s != s      ? 0
                     : s < -1e15 ? -1000000000000000
                     : s > 1e15  ? 1000000000000000
                                 : (int64_t)s;
        }
        double bin_h = (double)(box[3] - box[1] + 1 > 1 ? box[3] - box[1] + 1 : 1) / (double)PH;
        double bin_w = (double)(box[2] - box[0] + 1 > 1 ? box[2] - box[0] + 1 : 1) / (double)PW;
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t ph = 0; ph < PH; ph++)
                for (int64_t pw = 0; pw < PW; pw++) {
                    int64_t h0 = (int64_t)floor(ph * bin_h) + box[1];
                    int64_t h1 = (int64_t)ceil((ph + 1) * bin_h) + box[1];
                    int64_t w0 = (int64_t)floor(pw * bin_w) + box[0];
                    int64_t w1 = (int64_t)ceil((pw + 1) * bin_w) + box[0];
                    h0 = h0 < 0 ? 0 : h0 > H ? H : h0;
                    h1 = h1 < 0 ? 0 : h1 > H ? H : h1;
                    w0 = w0 < 0 ? 0 : w0 > W ? W : w0;
                    w1 = w1 < 0 ? 0 : w1 > W ? W : w1;
                    double m = h1 <= h0 || w1 <= w0 ? 0.0 : -INFINITY;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) {
                            double xv = kiln__ld_f(dt, x->data, ((b * C + ch) * H + h) * W + w);
                            if (xv > m) m = xv;
                        }
                    kiln__st_f(dt, y->data, ((r * C + ch) * PH + ph) * PW + pw, m);
                }
    }
    return KILN_OK;
}
