/* src/cpu/ref/vision.c: spatial sampling ops: GridSample (2-D and N-D forms),
 * AffineGrid and RoiAlign. Interpolation runs in double and rounds once on
 * store. */
#include <math.h>
#include <string.h>

#include "ops/op.h"


/* ---- GridSample --------------------------------------------------------------- */

enum { GS_NEAREST, GS_LINEAR, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

typedef struct gs_params {
    int mode, padding, align_corners, r; /* r: number of spatial axes */
} gs_params;

static kiln_status gs_read_params(const kiln__kctx *c, gs_params *p) {
    const char *m = kiln__attr_s(c->node, "mode", c->opset < 20 ? "bilinear" : "linear");
    const char *pad = kiln__attr_s(c->node, "padding_mode", "zeros");
    if (strcmp(m, "nearest") == 0) p->mode = GS_NEAREST;
    else if (strcmp(m, "linear") == 0 || strcmp(m, "bilinear") == 0) p->mode = GS_LINEAR;
    else if (strcmp(m, "cubic") == 0 || strcmp(m, "bicubic") == 0) p->mode = GS_CUBIC;
    else return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected nearest, linear or cubic", m);
    if (strcmp(pad, "zeros") == 0) p->padding = GS_ZEROS;
    else if (strcmp(pad, "border") == 0) p->padding = GS_BORDER;
    else if (strcmp(pad, "reflection") == 0) p->padding = GS_REFLECTION;
    else return kiln__err(KILN_E_INVAL, "attribute 'padding_mode' is '%s', expected zeros, border "
                          "or reflection", pad);
    p->align_corners = kiln__attr_i(c->node, "align_corners", 0) != 0;
    p->r = c->in[0]->ndim - 2;
    return KILN_OK;
}

// X: (N, C, D1..Dr), grid: (N, O1..Or, r) -> Y: (N, C, O1..Or)
kiln_status kiln__infer_GridSample(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *g = c->in[1];
    char b1[128], b2[128];
    KILN__TRY(kiln__check_numeric(x, "input 'X'", 0));
    KILN__TRY(kiln__check_dtype(g, "input 'grid'", KILN__FLOAT_DTYPES));
    gs_params p;
    KILN__TRY(gs_read_params(c, &p));
    int r = x->ndim - 2;
    if (r < 1 || (c->opset < 20 && r != 2) || g->ndim != x->ndim || g->dims[0] != x->dims[0] ||
        g->dims[g->ndim - 1] != r)
        return kiln__err(KILN_E_SHAPE, "inputs 'X' %s and 'grid' %s: expected (N, C, D1..Dr) and "
                         "(N, O1..Or, r)%s",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1),
                         kiln__shape_str(g->ndim, g->dims, b2, sizeof b2),
                         c->opset < 20 ? " with r = 2 before opset 20" : "");
    int64_t dims[KILN_MAX_DIMS];
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < r; i++) dims[2 + i] = g->dims[1 + i];
    return kiln__out_shape(c, 0, x->dtype, x->ndim, dims);
}

/* Reflects x into [lo, hi] by mirroring at the borders, repeatedly. */
static double gs_reflect(double x, double lo, double hi) {
    double rng = hi - lo;
    if (rng <= 0) return lo;
    if (x < lo) {
        double dx = lo - x, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2) == 0 ? lo + r : hi - r;
    }
    if (x > hi) {
        double dx = x - hi, n = floor(dx / rng), r = dx - n * rng;
        return fmod(n, 2) == 0 ? hi - r : lo + r;
    }
    return x;
}

/* Input index read for integer position i along an axis of size d, or -1
 * when padding_mode zeros puts it outside. */
static int64_t gs_pixel(const gs_params *p, int64_t i, int64_t d, double lo, double hi) {
    if (i >= 0 && i < d) return i;
    if (p->padding == GS_ZEROS) return -1;
    if (p->padding == GS_BORDER) return i < 0 ? 0 : d - 1;
    int64_t j = (int64_t)gs_reflect((double)i, lo, hi);
    return j < 0 ? 0 : j >= d ? d - 1 : j;
}

static void gs_cubic_coeffs(double t, double *w) {
    const double A = -0.75;
    double u = t + 1, v = 1 - t, z = 2 - t;
    w[0] = ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
    w[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    w[2] = ((A + 2) * v - (A + 3)) * v * v + 1;
    w[3] = ((A * z - 5 * A) * z + 8 * A) * z - 4 * A;
}

/* Samples channel planes at one grid point: per spatial axis up to 4 taps
 * (offset into a channel plane, or -1 for a zero pad, and weight); the
 * value is the sum over the product of the taps. */
kiln_status kiln__ref_GridSample(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *g = c->in[1];
    kiln_tensor *y = c->out[0];
    gs_params p;
    KILN__TRY(gs_read_params(c, &p));
    int r = p.r;
    int64_t n_batch = x->dims[0], n_chan = x->dims[1], plane = 1, n_pts = 1;
    int64_t xstr[KILN_MAX_DIMS];
    for (int i = r - 1; i >= 0; i--) {
        xstr[i] = plane;
        plane *= x->dims[2 + i];
    }
    for (int i = 0; i < r; i++) n_pts *= y->dims[2 + i];
    if (plane == 0) { /* nothing to sample from: all padding */
        if (c->ith == 0) memset(y->data, 0, kiln__tensor_bytes(y));
        return KILN_OK;
    }
    int64_t lo, hi;
    kiln__split(n_batch * n_pts, c->ith, c->nth, &lo, &hi);
    for (int64_t job = lo; job < hi; job++) {
        int64_t n = job / n_pts, pt = job % n_pts;
        int64_t tap_off[KILN_MAX_DIMS][4];
        double tap_w[KILN_MAX_DIMS][4];
        int cnt[KILN_MAX_DIMS];
        for (int i = 0; i < r; i++) {
            int64_t d = x->dims[2 + i];
            double blo = p.align_corners ? 0 : -0.5, bhi = p.align_corners ? d - 1.0 : d - 0.5;
            /* grid's last axis lists coordinates innermost axis first */
            double gv = kiln__elem_ld_f(g->dtype, g->data, (n * n_pts + pt) * r + (r - 1 - i));
            double xc = p.align_corners ? (gv + 1) / 2 * (double)(d - 1)
                                        : ((gv + 1) * (double)d - 1) / 2;
            if (g->dtype == KILN_DTYPE_F32) xc = (float)xc; /* as the reference computes */
            if (p.mode == GS_NEAREST) xc = nearbyint(xc); /* ties to even, like PyTorch */
            if (isnan(xc)) xc = blo - 1; /* NaN samples padding */
            xc = fmin(fmax(xc, -1e15), 1e15); /* keep integer conversions defined */
            if (xc < blo || xc > bhi) {
                if (p.padding == GS_BORDER) xc = fmin(fmax(xc, 0), (double)(d - 1));
                else if (p.padding == GS_REFLECTION) xc = gs_reflect(xc, blo, bhi);
            }
            if (p.mode == GS_NEAREST) {
                int64_t pi = gs_pixel(&p, (int64_t)xc, d, blo, bhi);
                tap_off[i][0] = pi < 0 ? -1 : pi * xstr[i];
                tap_w[i][0] = 1;
                cnt[i] = 1;
                continue;
            }
            double x0 = floor(xc), t = xc - x0, w[4];
            int n_t = p.mode == GS_LINEAR ? 2 : 4;
            int64_t first = (int64_t)x0 - (p.mode == GS_CUBIC);
            if (p.mode == GS_LINEAR) {
                w[0] = 1 - t;
                w[1] = t;
            } else {
                gs_cubic_coeffs(t, w);
            }
            for (int k = 0; k < n_t; k++) {
                int64_t pi = gs_pixel(&p, first + k, d, blo, bhi);
                tap_off[i][k] = pi < 0 ? -1 : pi * xstr[i];
                tap_w[i][k] = w[k];
            }
            cnt[i] = n_t;
        }
        for (int64_t ch = 0; ch < n_chan; ch++) {
            int64_t xbase = (n * n_chan + ch) * plane;
            int t[KILN_MAX_DIMS] = {0};
            double v = 0;
            for (;;) {
                int64_t xo = xbase;
                double wt = 1;
                for (int i = 0; i < r && wt != 0; i++) {
                    if (tap_off[i][t[i]] < 0) wt = 0;
                    else xo += tap_off[i][t[i]];
                    wt *= tap_w[i][t[i]];
                }
                if (wt != 0) v += wt * kiln__elem_ld_f(x->dtype, x->data, xo);
                int i = r - 1;
                while (i >= 0 && ++t[i] == cnt[i]) t[i--] = 0;
                if (i < 0) break;
            }
            int64_t yo = (n * n_chan + ch) * n_pts + pt;
            if (kiln__dtype_is_float(y->dtype)) kiln__elem_st_f(y->dtype, y->data, yo, v);
            else kiln__st_f(y->dtype, y->data, yo, rint(v));
        }
    }
    return KILN_OK;
}

/* ---- AffineGrid ------------------------------------------------------------------ */

/* Reads 'size' = (N, C, H, W) or (N, C, D, H, W). */
static kiln_status affine_size(const kiln__kctx *c, int64_t *size, int *n) {
    KILN__TRY(kiln__check_dtype(c->in[1], "input 'size'", KILN_DTYPE_I64, 0));
    KILN__TRY(kiln__read_ints(c->in[1], "input 'size'", size, 5, n));
    if (*n != 4 && *n != 5)
        return kiln__err(KILN_E_SHAPE, "input 'size' has %d entries, expected 4 or 5", *n);
    for (int i = 0; i < *n; i++)
        if (size[i] < 0)
            return kiln__err(KILN_E_RANGE, "input 'size'[%d] is %lld, expected >= 0", i,
                             (long long)size[i]);
    return KILN_OK;
}

// theta: (N, 2, 3) or (N, 3, 4), size: (4) or (5) int64 -> grid: (N, H, W, 2) or (N, D, H, W, 3)
kiln_status kiln__infer_AffineGrid(kiln__kctx *c) {
    const kiln_tensor *theta = c->in[0];
    char b[128];
    KILN__TRY(kiln__check_dtype(theta, "input 'theta'", KILN__FLOAT_DTYPES));
    KILN__NEED(c, 1);
    int64_t size[5];
    int n;
    KILN__TRY(affine_size(c, size, &n));
    int r = n - 2;
    if (theta->ndim != 3 || theta->dims[0] != size[0] || theta->dims[1] != r ||
        theta->dims[2] != r + 1)
        return kiln__err(KILN_E_SHAPE, "input 'theta' has shape %s, expected (%lld, %d, %d)",
                         kiln__shape_str(theta->ndim, theta->dims, b, sizeof b),
                         (long long)size[0], r, r + 1);
    int64_t dims[5];
    dims[0] = size[0];
    for (int i = 0; i < r; i++) dims[1 + i] = size[2 + i];
    dims[r + 1] = r;
    return kiln__out_shape(c, 0, theta->dtype, r + 2, dims);
}

/* Each output point is theta times the homogeneous base coordinate
 * (x, y[, z], 1) of its pixel center (or corner, with align_corners) in
 * [-1, 1]. */
kiln_status kiln__ref_AffineGrid(kiln__kctx *c) {
    const kiln_tensor *theta = c->in[0];
    kiln_tensor *grid = c->out[0];
    int64_t size[5];
    int n;
    KILN__TRY(affine_size(c, size, &n));
    int r = n - 2, align = kiln__attr_i(c->node, "align_corners", 0) != 0;
    int64_t n_pts = 1;
    for (int i = 0; i < r; i++) n_pts *= size[2 + i];
    for (int64_t b = 0; b < size[0]; b++) {
        for (int64_t pt = 0; pt < n_pts; pt++) {
            double base[4];
            int64_t rem = pt;
            for (int i = r - 1; i >= 0; i--) { /* spatial axis i: D, H, W order */
                int64_t d = size[2 + i], idx = rem % d;
                rem /= d;
                double step = align ? (d > 1 ? 2.0 / (double)(d - 1) : 0) : 2.0 / (double)d;
                double start = align ? -1 : -1 + step / 2;
                base[r - 1 - i] = start + (double)idx * step; /* x first */
            }
            base[r] = 1;
            for (int j = 0; j < r; j++) {
                double v = 0;
                for (int k = 0; k <= r; k++)
                    v += kiln__elem_ld_f(theta->dtype, theta->data, (b * r + j) * (r + 1) + k) *
                         base[k];
                kiln__elem_st_f(grid->dtype, grid->data, (b * n_pts + pt) * r + j, v);
            }
        }
    }
    return KILN_OK;
}

/* ---- RoiAlign ------------------------------------------------------------------------ */

// X: (N, C, H, W), rois: (R, 4) [x1, y1, x2, y2], batch_indices: (R) int64
// -> Y: (R, C, output_height, output_width)
kiln_status kiln__infer_RoiAlign(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *rois = c->in[1], *bi = c->in[2];
    char b1[128], b2[128], b3[128];
    KILN__TRY(kiln__check_dtype(x, "input 'X'", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(rois, "input 'rois'", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(bi, "input 'batch_indices'", KILN_DTYPE_I64, 0));
    if (x->ndim != 4 || rois->ndim != 2 || rois->dims[1] != 4 || bi->ndim != 1 ||
        bi->dims[0] != rois->dims[0])
        return kiln__err(KILN_E_SHAPE, "inputs 'X' %s, 'rois' %s, 'batch_indices' %s: expected "
                         "(N, C, H, W), (R, 4) and (R)",
                         kiln__shape_str(x->ndim, x->dims, b1, sizeof b1),
                         kiln__shape_str(rois->ndim, rois->dims, b2, sizeof b2),
                         kiln__shape_str(bi->ndim, bi->dims, b3, sizeof b3));
    int64_t oh = kiln__attr_i(c->node, "output_height", 1), ow = kiln__attr_i(c->node, "output_width", 1);
    if (oh < 1 || ow < 1)
        return kiln__err(KILN_E_RANGE, "output_height %lld and output_width %lld must be >= 1",
                         (long long)oh, (long long)ow);
    const char *mode = kiln__attr_s(c->node, "mode", "avg");
    if (strcmp(mode, "avg") != 0 && strcmp(mode, "max") != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected avg or max", mode);
    if (kiln__attr_i(c->node, "sampling_ratio", 0) < 0)
        return kiln__err(KILN_E_RANGE, "attribute 'sampling_ratio' must be >= 0");
    int64_t dims[4] = {rois->dims[0], x->dims[1], oh, ow};
    return kiln__out_shape(c, 0, x->dtype, 4, dims);
}

/* Bilinear sample of a (H, W) plane at (yy, xx) as four (position, weight)
 * pairs; all weights 0 when the point is more than one pixel outside. */
static void roi_bilinear(double yy, double xx, int64_t h, int64_t w, int64_t *pos, double *wt) {
    if (!(yy >= -1.0 && yy <= (double)h && xx >= -1.0 && xx <= (double)w)) { /* or NaN */
        memset(pos, 0, 4 * sizeof *pos);
        memset(wt, 0, 4 * sizeof *wt);
        return;
    }
    double y = yy < 0 ? 0 : yy, x = xx < 0 ? 0 : xx;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= h - 1) {
        y1 = y0 = h - 1;
        y = (double)y0;
    } else {
        y1 = y0 + 1;
    }
    if (x0 >= w - 1) {
        x1 = x0 = w - 1;
        x = (double)x0;
    } else {
        x1 = x0 + 1;
    }
    double ly = y - (double)y0, lx = x - (double)x0, hy = 1 - ly, hx = 1 - lx;
    pos[0] = y0 * w + x0;
    pos[1] = y0 * w + x1;
    pos[2] = y1 * w + x0;
    pos[3] = y1 * w + x1;
    wt[0] = hy * hx;
    wt[1] = hy * lx;
    wt[2] = ly * hx;
    wt[3] = ly * lx;
}

/* v rounded to float when the geometry is computed in single precision. */
static inline double roi_q(int single, double v) { return single ? (double)(float)v : v; }

/* Each output bin averages (or, in max mode, takes the largest weighted
 * corner of) a grid of bilinear samples, as onnxruntime does. The roi
 * geometry is computed in the input's precision (float for f32), as
 * onnxruntime and the reference do: it decides the sample counts. */
kiln_status kiln__ref_RoiAlign(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *rois = c->in[1];
    const int64_t *bidx = c->in[2]->data;
    kiln_tensor *y = c->out[0];
    int64_t n_roi = rois->dims[0], n_chan = x->dims[1], h = x->dims[2], w = x->dims[3];
    int64_t oh = y->dims[2], ow = y->dims[3];
    const char *ctm = kiln__attr_s(c->node, "coordinate_transformation_mode",
                                   c->opset < 16 ? "output_half_pixel" : "half_pixel");
    int half_pixel = strcmp(ctm, "half_pixel") == 0;
    if (!half_pixel && strcmp(ctm, "output_half_pixel") != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'coordinate_transformation_mode' is '%s'", ctm);
    int is_max = strcmp(kiln__attr_s(c->node, "mode", "avg"), "max") == 0;
    int64_t ratio = kiln__attr_i(c->node, "sampling_ratio", 0);
    double scale = kiln__attr_f(c->node, "spatial_scale", 1.0f);
    for (int64_t i = 0; i < n_roi; i++)
        if (bidx[i] < 0 || bidx[i] >= x->dims[0])
            return kiln__err(KILN_E_RANGE, "batch_indices[%lld] is %lld, expected [0, %lld)",
                             (long long)i, (long long)bidx[i], (long long)x->dims[0]);
    if (h == 0 || w == 0) { /* empty feature map: every sample is outside */
        if (c->ith == 0) memset(y->data, 0, kiln__tensor_bytes(y));
        return KILN_OK;
    }
    int64_t lo, hi;
    kiln__split(n_roi * n_chan, c->ith, c->nth, &lo, &hi);
    for (int64_t job = lo; job < hi; job++) {
        int64_t n = job / n_chan, ch = job % n_chan;
        int sp = x->dtype != KILN_DTYPE_F64;
        double off = half_pixel ? 0.5 : 0, roi[4];
        for (int k = 0; k < 4; k++)
            roi[k] = roi_q(
                sp, roi_q(sp, kiln__elem_ld_f(rois->dtype, rois->data, n * 4 + k) * scale) - off);
        double rw = roi_q(sp, roi[2] - roi[0]), rh = roi_q(sp, roi[3] - roi[1]);
        if (!half_pixel) { /* malformed rois become 1x1 */
            rw = fmax(rw, 1);
            rh = fmax(rh, 1);
        }
        double bin_h = roi_q(sp, rh / (double)oh), bin_w = roi_q(sp, rw / (double)ow);
        double gh_d = ratio > 0 ? (double)ratio : ceil(bin_h);
        double gw_d = ratio > 0 ? (double)ratio : ceil(bin_w);
        /* samples per bin, capped at twice the map's resolution (hostile rois) */
        int64_t gh = gh_d > 0 ? (int64_t)fmin(gh_d, 2.0 * (double)h + 2) : 0;
        int64_t gw = gw_d > 0 ? (int64_t)fmin(gw_d, 2.0 * (double)w + 2) : 0;
        double count = gh * gw > 1 ? (double)(gh * gw) : 1;
        int64_t plane = (bidx[n] * n_chan + ch) * h * w;
        for (int64_t ph = 0; ph < oh; ph++) {
            for (int64_t pw = 0; pw < ow; pw++) {
                double acc = 0;
                int first = 1;
                for (int64_t iy = 0; iy < gh; iy++) {
                    double yy = roi_q(sp, roi_q(sp, roi[1] + roi_q(sp, (double)ph * bin_h)) +
                                          roi_q(sp, roi_q(sp, ((double)iy + 0.5) * bin_h) / (double)gh));
                    for (int64_t ix = 0; ix < gw; ix++) {
                        double xx = roi_q(sp, roi_q(sp, roi[0] + roi_q(sp, (double)pw * bin_w)) +
                                              roi_q(sp, roi_q(sp, ((double)ix + 0.5) * bin_w) / (double)gw));
                        int64_t pos[4];
                        double wt[4], v[4];
                        roi_bilinear(yy, xx, h, w, pos, wt);
                        for (int k = 0; k < 4; k++)
                            v[k] = wt[k] * kiln__elem_ld_f(x->dtype, x->data, plane + pos[k]);
                        if (is_max) {
                            double m = fmax(fmax(v[0], v[1]), fmax(v[2], v[3]));
                            acc = first ? m : fmax(acc, m);
                            first = 0;
                        } else {
                            acc += v[0] + v[1] + v[2] + v[3];
                        }
                    }
                }
                if (!is_max) acc /= count;
                kiln__elem_st_f(y->dtype, y->data, ((n * n_chan + ch) * oh + ph) * ow + pw, acc);
            }
        }
    }
    return KILN_OK;
}
