/* src/cpu/ref/resize.c: Resize (opsets 10 to 19 forms) and the deprecated
 * Upsample, for any rank.
 *
 * Resampling is separable: along each axis, output index o maps to a source
 * coordinate x (coordinate_transformation_mode) and to a few input indices
 * with weights ("taps": 1 for nearest, 2 for linear, 4 for cubic, more with
 * antialias when downsampling). An output element is the sum over the
 * cartesian product of its axes' taps of the product of the weights times the
 * input element, computed in double and rounded once on store. The taps of
 * each axis follow the onnx reference: the n nearest indices of x (the lower
 * ones on ties), clamped into the input (edge padding).
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

enum { MODE_NEAREST, MODE_LINEAR, MODE_CUBIC };
enum {
    CT_HALF_PIXEL,
    CT_HALF_PIXEL_SYMMETRIC,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_CROP_AND_RESIZE,
};
/* NEAREST_SIMPLE: Upsample and Resize-10 (floor, or ceil when downsampling). */
enum { NEAREST_ROUND_PREFER_FLOOR, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL,
       NEAREST_SIMPLE };

/* Most taps one output element may gather over all axes (stack storage). */
#define RESIZE_MAX_TAPS 4096

typedef struct resize_axis {
    int64_t in, out;
    double scale;      /* scale factor of the coordinate transform */
    double roi0, roi1; /* tf_crop_and_resize region, normalized */
    int identity;      /* out == in and scale ~ 1: index maps to itself */
    int n_taps;        /* taps per output index before dropping zero weights */
} resize_axis;

typedef struct resize_plan {
    int rank;
    int mode, ctm, nearest, antialias, exclude_outside;
    double cubic_a, extrapolation;
    resize_axis ax[KILN_MAX_DIMS];
} resize_plan;

/* Index of s in names[0..n), or -1. */
static int pick(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Reads the mode attributes. Upsample and Resize-10 resample with
 * asymmetric coordinates and "simple" nearest rounding. */
static kiln_status resize_attrs(const kiln__kctx *c, int legacy, resize_plan *p) {
    static const char *const modes[] = {"nearest", "linear", "cubic", "bilinear"};
    static const char *const ctms[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                       "align_corners", "asymmetric", "tf_crop_and_resize"};
    static const char *const nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                           "ceil"};
    const char *s = kiln__attr_s(c->node, "mode", "nearest");
    p->mode = pick(s, modes, legacy ? 4 : 3);
    if (p->mode == 3) p->mode = MODE_LINEAR; /* Upsample-7 spelling */
    if (p->mode < 0 || (legacy && p->mode == MODE_CUBIC))
        return kiln__err(KILN_E_INVAL, "attribute 'mode' is '%s', expected %s", s,
                         legacy ? "nearest or linear" : "nearest, linear or cubic");
    if (legacy) {
        p->ctm = CT_ASYMMETRIC;
        p->nearest = NEAREST_SIMPLE;
        p->cubic_a = -0.75;
        return KILN_OK;
    }
    s = kiln__attr_s(c->node, "coordinate_transformation_mode", "half_pixel");
    if ((p->ctm = pick(s, ctms, 6)) < 0)
        return kiln__err(KILN_E_INVAL, "attribute 'coordinate_transformation_mode' is '%s'", s);
    s = kiln__attr_s(c->node, "nearest_mode", "round_prefer_floor");
    if ((p->nearest = pick(s, nearests, 4)) < 0)
        return kiln__err(KILN_E_INVAL, "attribute 'nearest_mode' is '%s'", s);
    p->cubic_a = kiln__attr_f(c->node, "cubic_coeff_a", -0.75f);
    p->exclude_outside = kiln__attr_i(c->node, "exclude_outside", 0) != 0;
    p->extrapolation = kiln__attr_f(c->node, "extrapolation_value", 0.0f);
    p->antialias = kiln__attr_i(c->node, "antialias", 0) != 0 && p->mode != MODE_NEAREST;
    return KILN_OK;
}

/* Taps per output index along an axis with this scale (before dropping zero
 * weights); fails when antialiasing a tiny scale needs too many. */
static kiln_status resize_n_taps(const resize_plan *p, double scale, int *n) {
    if (p->mode == MODE_NEAREST) {
        *n = 2;
        return KILN_OK;
    }
    double support = p->mode == MODE_LINEAR ? 1 : 2;
    if (!p->antialias) {
        *n = (int)(2 * support);
        return KILN_OK;
    }
    double s = scale < 1 ? scale : 1;
    double start = floor(-support / s) + 1;
    if (!(start > -RESIZE_MAX_TAPS / 2))
        return kiln__err(KILN_E_LIMIT, "antialias at scale %g needs too many taps", scale);
    *n = (int)(2 - 2 * start);
    return KILN_OK;
}

/* Builds the per-axis plan from the attributes and the scales/sizes/roi
 * inputs (values needed: KILN__NEED). roi is read only if need_roi. */
static kiln_status resize_plan_build(kiln__kctx *c, int is_upsample, int need_roi, resize_plan *p) {
    const kiln_tensor *x = c->in[0];
    int rank = x->ndim, legacy = is_upsample || c->opset < 11;
    memset(p, 0, sizeof *p);
    p->rank = rank;
    KILN__TRY(resize_attrs(c, legacy, p));

    /* which inputs hold roi, scales and sizes in this form */
    int i_roi = legacy ? -1 : 1, i_scales = legacy ? 1 : 2, i_sizes = legacy ? -1 : 3;
    double scales[KILN_MAX_DIMS], roi[2 * KILN_MAX_DIMS];
    int64_t sizes[KILN_MAX_DIMS], axes[KILN_MAX_DIMS];
    int n_scales = 0, n_sizes = 0, n_roi = 0, n_axes = rank;
    for (int i = 0; i < rank; i++) axes[i] = i;

    if (is_upsample && c->opset < 9) {
        const float *v;
        n_scales = kiln__attr_floats(c->node, "scales", &v);
        if (n_scales < 0) return kiln__err(KILN_E_INVAL, "attribute 'scales' is missing");
        if (n_scales > KILN_MAX_DIMS) n_scales = KILN_MAX_DIMS + 1; /* reported below */
        for (int i = 0; i < n_scales && i < KILN_MAX_DIMS; i++) scales[i] = v[i];
    } else if (kiln__in(c, i_scales) && kiln__n(c->in[i_scales]) > 0) {
        KILN__NEED(c, i_scales);
        KILN__TRY(kiln__read_floats(c->in[i_scales], "input 'scales'", scales, KILN_MAX_DIMS,
                                    &n_scales));
    }
    if (i_sizes >= 0 && kiln__in(c, i_sizes) && kiln__n(c->in[i_sizes]) > 0) {
        KILN__NEED(c, i_sizes);
        KILN__TRY(kiln__read_ints(c->in[i_sizes], "input 'sizes'", sizes, KILN_MAX_DIMS, &n_sizes));
    }
    if ((n_scales > 0) == (n_sizes > 0))
        return kiln__err(KILN_E_INVAL, "exactly one of 'scales' and 'sizes' must be given "
                                       "(non-empty)");
    const int64_t *av;
    int na = c->opset >= 18 && !is_upsample ? kiln__attr_ints(c->node, "axes", &av) : -1;
    if (na >= 0) {
        uint8_t seen[KILN_MAX_DIMS] = {0};
        if (na > rank)
            return kiln__err(KILN_E_INVAL, "attribute 'axes' has %d entries for rank %d", na, rank);
        for (int i = 0; i < na; i++) {
            int a;
            KILN__TRY(kiln__axis(av[i], rank, "attribute 'axes'", &a));
            if (seen[a]) return kiln__err(KILN_E_INVAL, "attribute 'axes' names axis %d twice", a);
            seen[a] = 1;
            axes[i] = a;
        }
        n_axes = na;
    }
    int n_given = n_scales > 0 ? n_scales : n_sizes;
    if (n_given != n_axes)
        return kiln__err(KILN_E_SHAPE, "input '%s' has %d entries, expected %d",
                         n_scales > 0 ? "scales" : "sizes", n_given, n_axes);
    if (p->ctm == CT_TF_CROP_AND_RESIZE && need_roi) {
        const kiln_tensor *r = i_roi >= 0 ? kiln__in(c, i_roi) : NULL;
        if (!r || kiln__n(r) == 0)
            return kiln__err(KILN_E_INVAL, "tf_crop_and_resize needs input 'roi'");
        KILN__TRY(kiln__read_floats(r, "input 'roi'", roi, 2 * KILN_MAX_DIMS, &n_roi));
        if (n_roi != 2 * n_axes)
            return kiln__err(KILN_E_SHAPE, "input 'roi' has %d entries, expected %d", n_roi,
                             2 * n_axes);
    }

    for (int d = 0; d < rank; d++) {
        resize_axis *a = &p->ax[d];
        a->in = a->out = x->dims[d];
        a->scale = 1;
        a->roi0 = 0;
        a->roi1 = 1;
    }
    /* keep_aspect_ratio_policy: one scale for all resized axes */
    const char *policy = kiln__attr_s(c->node, "keep_aspect_ratio_policy", "stretch");
    int keep_ratio = n_sizes > 0 && c->opset >= 18 && strcmp(policy, "stretch") != 0;
    if (keep_ratio && strcmp(policy, "not_larger") != 0 && strcmp(policy, "not_smaller") != 0)
        return kiln__err(KILN_E_INVAL, "attribute 'keep_aspect_ratio_policy' is '%s'", policy);
    double common = 0;
    for (int i = 0; i < n_axes; i++) {
        resize_axis *a = &p->ax[axes[i]];
        if (n_roi) {
            a->roi0 = roi[i];
            a->roi1 = roi[n_axes + i];
        }
        if (n_scales > 0) {
            if (!(scales[i] > 0) || !isfinite(scales[i]))
                return kiln__err(KILN_E_RANGE, "scales[%d] is %g, expected > 0", i, scales[i]);
            a->scale = scales[i];
            double o = floor(scales[i] * (double)a->in);
            if (o > (double)KILN__MAX_NUMEL)
                return kiln__err(KILN_E_LIMIT, "scales[%d] = %g makes axis %lld too large", i,
                                 scales[i], (long long)axes[i]);
            a->out = (int64_t)o;
        } else {
            if (sizes[i] < 0)
                return kiln__err(KILN_E_RANGE, "sizes[%d] is %lld, expected >= 0", i,
                                 (long long)sizes[i]);
            if (a->in == 0 && sizes[i] > 0)
                return kiln__err(KILN_E_SHAPE, "axis %lld of input 'X' is empty, cannot resize "
                                 "it to %lld", (long long)axes[i], (long long)sizes[i]);
            a->out = sizes[i];
            a->scale = a->in ? (double)sizes[i] / (double)a->in : 1;
            double s = a->scale;
            if (i == 0 || (strcmp(policy, "not_larger") == 0 ? s < common : s > common)) common = s;
        }
    }
    if (keep_ratio) {
        for (int i = 0; i < n_axes; i++) {
            resize_axis *a = &p->ax[axes[i]];
            a->scale = common;
            double o = common * (double)a->in + 0.5; /* checked before the int conversion */
            if (!(o <= (double)KILN__MAX_NUMEL))
                return kiln__err(KILN_E_LIMIT, "input 'sizes' with keep_aspect_ratio_policy '%s' "
                                 "makes axis %lld too large (%g)", policy, (long long)axes[i], o);
            a->out = (int64_t)o;
        }
    }
    int total_taps = 0;
    for (int d = 0; d < rank; d++) {
        resize_axis *a = &p->ax[d];
        a->identity = a->out == a->in && fabs(a->scale - 1) <= 1e-9 &&
                      (p->ctm != CT_TF_CROP_AND_RESIZE ||
                       (fabs(a->roi0) <= 1e-9 && fabs(a->roi1 - 1) <= 1e-9 * fabs(a->roi1)));
        if (a->identity) {
            a->n_taps = 1;
        } else {
            if (a->in == 0 && a->out > 0)
                return kiln__err(KILN_E_SHAPE, "axis %d of input 'X' is empty", d);
            KILN__TRY(resize_n_taps(p, a->scale, &a->n_taps));
        }
        total_taps += a->n_taps;
        if (total_taps > RESIZE_MAX_TAPS)
            return kiln__err(KILN_E_LIMIT, "resize needs more than %d taps per element",
                             RESIZE_MAX_TAPS);
    }
    return KILN_OK;
}

/* Source coordinate of output index o along an axis; *outside is set when
 * tf_crop_and_resize maps it outside the input (extrapolation). */
static double resize_coord(const resize_plan *p, const resize_axis *a, int64_t o, int *outside) {
    double in = (double)a->in, s = a->scale, width = s * in, x = (double)o;
    *outside = 0;
    switch (p->ctm) {
    case CT_ALIGN_CORNERS:
        return width == 1 ? 0 : x * (in - 1) / (width - 1);
    case CT_ASYMMETRIC:
        return x / s;
    case CT_TF_CROP_AND_RESIZE: {
        double r = a->roi1 - a->roi0;
        double v = width == 1 ? r * (in - 1) / 2 : x * r * (in - 1) / (width - 1);
        v += a->roi0 * (in - 1);
        *outside = !(v >= 0 && v <= in - 1); /* NaN roi: outside too */
        return v;
    }
    case CT_PYTORCH_HALF_PIXEL:
        return width == 1 ? -0.5 : (x + 0.5) / s - 0.5;
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adjustment = (double)a->out / width, center = in / 2;
        return center * (1 - adjustment) + (x + 0.5) / s - 0.5;
    }
    default:
        return (x + 0.5) / s - 0.5;
    }
}

/* Keys cubic convolution kernel with parameter A at distance t. */
static double cubic_kernel(double t, double A) {
    t = fabs(t);
    if (t <= 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
    if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
    return 0;
}

/* Taps of output index o along axis a: input indices (clamped into the
 * input) and weights, zero weights dropped. Returns the count (>= 1), or 0
 * when the element is extrapolated. */
static int resize_taps(const resize_plan *p, const resize_axis *a, int64_t o, int64_t *idx,
                       double *w) {
    if (a->identity) {
        idx[0] = o;
        w[0] = 1;
        return 1;
    }
    int outside, n = a->n_taps;
    double x = resize_coord(p, a, o, &outside);
    if (outside) return 0;
    double xf = floor(x);
    /* ratio in (0, 1]: an integer x counts as the right end of [x-1, x] */
    double ratio = x == xf ? 1 : x - xf;
    int64_t start = (int64_t)xf - (x == xf) + 1 - n / 2;
    if (p->mode == MODE_NEAREST) {
        int right;
        switch (p->nearest) {
        case NEAREST_ROUND_PREFER_CEIL: right = ratio >= 0.5; break;
        case NEAREST_FLOOR: right = 0; break;
        case NEAREST_CEIL: right = 1; break;
        case NEAREST_SIMPLE: right = a->scale < 1; break;
        default: right = ratio > 0.5; break;
        }
        if (ratio == 1) right = 1;
        w[0] = !right;
        w[1] = right;
    } else {
        double s = p->antialias && a->scale < 1 ? a->scale : 1, sum = 0;
        for (int k = 0; k < n; k++) {
            double t = (double)(k + 1 - n / 2) - ratio; /* tap position - x */
            if (p->mode == MODE_LINEAR) w[k] = p->antialias ? fmax(0, 1 - fabs(t * s)) : 1 - fabs(t);
            else w[k] = cubic_kernel(t * s, p->cubic_a);
            sum += w[k];
        }
        if (p->antialias && sum != 0)
            for (int k = 0; k < n; k++) w[k] /= sum;
    }
    if (p->exclude_outside) {
        double sum = 0;
        for (int k = 0; k < n; k++) {
            if (start + k < 0 || start + k >= a->in) w[k] = 0;
            sum += w[k];
        }
        if (sum != 0)
            for (int k = 0; k < n; k++) w[k] /= sum;
    }
    int m = 0;
    for (int k = 0; k < n; k++) {
        if (w[k] == 0) continue;
        int64_t i = start + k;
        idx[m] = i < 0 ? 0 : i >= a->in ? a->in - 1 : i;
        w[m++] = w[k];
    }
    if (m == 0) { /* all weights cancelled: take the nearest input index */
        idx[0] = (int64_t)fmin(fmax(floor(x + 0.5), 0), (double)(a->in - 1));
        w[0] = 0;
        m = 1;
    }
    return m;
}

static kiln_status resize_infer(kiln__kctx *c, int is_upsample) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_numeric(x, "input 'X'", 1));
    resize_plan p;
    KILN__TRY(resize_plan_build(c, is_upsample, 0, &p));
    if (x->dtype == KILN_DTYPE_BOOL && p.mode != MODE_NEAREST)
        return kiln__err(KILN_E_TYPE, "bool input 'X' can only be resized in nearest mode");
    int64_t dims[KILN_MAX_DIMS];
    for (int d = 0; d < p.rank; d++) dims[d] = p.ax[d].out;
    return kiln__out_shape(c, 0, x->dtype, p.rank, dims);
}

/* Taps of the axes with more than one tap ("active"); single-tap axes are
 * folded into a base offset and weight. */
typedef struct tap_set {
    int n;                          /* active axes */
    const int64_t *off[KILN_MAX_DIMS]; /* element offsets (index times stride) */
    const double *w[KILN_MAX_DIMS];
    int cnt[KILN_MAX_DIMS];
} tap_set;

/* base_w * sum over the product of the active taps of weight * x[base + offset]. */
static double resize_gather(const kiln_tensor *x, int64_t base, double base_w, const tap_set *ts) {
    if (ts->n == 1) { /* 1-D and the common 2-D cases without the odometer */
        double v = 0;
        for (int a = 0; a < ts->cnt[0]; a++)
            v += ts->w[0][a] * kiln__elem_ld_f(x->dtype, x->data, base + ts->off[0][a]);
        return base_w * v;
    }
    if (ts->n == 2) {
        double v = 0;
        for (int a = 0; a < ts->cnt[0]; a++) {
            double s = 0;
            int64_t row = base + ts->off[0][a];
            for (int b = 0; b < ts->cnt[1]; b++)
                s += ts->w[1][b] * kiln__elem_ld_f(x->dtype, x->data, row + ts->off[1][b]);
            v += ts->w[0][a] * s;
        }
        return base_w * v;
    }
    int t[KILN_MAX_DIMS] = {0};
    double v = 0;
    for (;;) {
        int64_t xo = base;
        double wt = base_w;
        for (int a = 0; a < ts->n; a++) {
            xo += ts->off[a][t[a]];
            wt *= ts->w[a][t[a]];
        }
        v += wt * kiln__elem_ld_f(x->dtype, x->data, xo);
        int a = ts->n - 1;
        while (a >= 0 && ++t[a] == ts->cnt[a]) t[a--] = 0;
        if (a < 0) return v;
    }
}

/* Stack storage for taps: the outer axes' current taps plus the last
 * axis' taps for a chunk of its output positions. */
#define RESIZE_POOL (2 * RESIZE_MAX_TAPS)

// x: (d0,...,dr-1) numeric, scales/sizes/roi: (r) or (len(axes)), y: (o0,...,or-1)
// Threads split the rows (all axes but the last); the last axis' taps are
// computed once per chunk of positions and reused by every row.
static kiln_status resize_ref(kiln__kctx *c, int is_upsample) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    resize_plan p;
    KILN__TRY(resize_plan_build(c, is_upsample, 1, &p));
    int r = p.rank;
    size_t esize = kiln_dtype_size(x->dtype);
    int64_t n_out = kiln__n(y);
    if (n_out == 0) return KILN_OK;
    if (r == 0) {
        if (c->ith == 0) memcpy(y->data, x->data, esize);
        return KILN_OK;
    }
    int64_t width = y->dims[r - 1], lo, hi;
    kiln__split(n_out / width, c->ith, c->nth, &lo, &hi);
    if (lo >= hi) return KILN_OK;

    int64_t xstr[KILN_MAX_DIMS];
    kiln__contiguous_strides(r, x->dims, xstr);
    int64_t tap_off[RESIZE_POOL];
    double tap_w[RESIZE_POOL];
    int64_t *off[KILN_MAX_DIMS];
    double *w[KILN_MAX_DIMS];
    int cnt[KILN_MAX_DIMS], pos = 0;
    for (int d = 0; d < r - 1; d++) {
        off[d] = tap_off + pos;
        w[d] = tap_w + pos;
        pos += p.ax[d].n_taps;
    }
    const resize_axis *last = &p.ax[r - 1];
    int n_last = last->n_taps;
    int64_t chunk = (RESIZE_POOL - pos) / n_last; /* >= 1: total taps <= RESIZE_MAX_TAPS */
    if (chunk > width) chunk = width;
    int64_t *last_off = tap_off + pos;
    double *last_w = tap_w + pos;
    int last_cnt[RESIZE_POOL];
    int is_float = kiln__dtype_is_float(y->dtype);

    for (int64_t j0 = 0; j0 < width; j0 += chunk) {
        int64_t j1 = j0 + chunk < width ? j0 + chunk : width;
        for (int64_t j = j0; j < j1; j++) {
            int64_t *o = last_off + (j - j0) * n_last;
            int n = last_cnt[j - j0] = resize_taps(&p, last, j, o, last_w + (j - j0) * n_last);
            for (int k = 0; k < n; k++) o[k] *= xstr[r - 1];
        }
        int64_t oidx[KILN_MAX_DIMS], rem = lo;
        for (int d = r - 2; d >= 0; d--) { /* multi-index of row lo */
            oidx[d] = rem % y->dims[d];
            rem /= y->dims[d];
        }
        int dirty = 0; /* outer axes >= dirty need their taps recomputed */
        for (int64_t row = lo; row < hi; row++) {
            for (int d = dirty; d < r - 1; d++) {
                cnt[d] = resize_taps(&p, &p.ax[d], oidx[d], off[d], w[d]);
                for (int k = 0; k < cnt[d]; k++) off[d][k] *= xstr[d];
            }
            /* fold the single-tap outer axes */
            tap_set ts = {0};
            int64_t base = 0;
            double base_w = 1;
            int extrap = 0;
            for (int d = 0; d < r - 1; d++) {
                if (cnt[d] == 0) {
                    extrap = 1;
                } else if (cnt[d] == 1) {
                    base += off[d][0];
                    base_w *= w[d][0];
                } else {
                    ts.off[ts.n] = off[d];
                    ts.w[ts.n] = w[d];
                    ts.cnt[ts.n++] = cnt[d];
                }
            }
            int n_outer = ts.n;
            ts.n = n_outer + 1;
            for (int64_t j = j0; j < j1; j++) {
                int64_t o = row * width + j, k = j - j0;
                int nl = last_cnt[k];
                const int64_t *lo_off = last_off + k * n_last;
                const double *lo_w = last_w + k * n_last;
                if (!extrap && nl == 1 && n_outer == 0 && base_w * lo_w[0] == 1) {
                    int64_t xo = base + lo_off[0]; /* nearest: copy the element */
                    if (esize == 4) ((uint32_t *)y->data)[o] = ((const uint32_t *)x->data)[xo];
                    else memcpy((char *)y->data + o * esize, (const char *)x->data + xo * esize, esize);
                    continue;
                }
                double v;
                if (extrap || nl == 0) {
                    v = p.extrapolation;
                } else { /* the last axis takes the slot after the outer ones */
                    ts.off[n_outer] = lo_off;
                    ts.w[n_outer] = lo_w;
                    ts.cnt[n_outer] = nl;
                    v = resize_gather(x, base, base_w, &ts);
                }
                if (y->dtype == KILN_DTYPE_F32) ((float *)y->data)[o] = (float)v;
                else if (is_float) kiln__st_f(y->dtype, y->data, o, v);
                else kiln__st_f(y->dtype, y->data, o, rint(v)); /* saturates */
            }
            int d = r - 2; /* next row */
            for (; d >= 0; d--) {
                if (++oidx[d] < y->dims[d]) break;
                oidx[d] = 0;
            }
            dirty = d < 0 ? 0 : d;
        }
    }
    return KILN_OK;
}

kiln_status kiln__infer_Resize(kiln__kctx *c) { return resize_infer(c, 0); }
kiln_status kiln__ref_Resize(kiln__kctx *c) { return resize_ref(c, 0); }
kiln_status kiln__infer_Upsample(kiln__kctx *c) { return resize_infer(c, 1); }
kiln_status kiln__ref_Upsample(kiln__kctx *c) { return resize_ref(c, 1); }
