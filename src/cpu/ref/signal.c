/* src/cpu/ref/signal.c: signal processing ops: the window generators
 * (BlackmanWindow, HammingWindow, HannWindow), DFT (opset 17 and 20 forms),
 * STFT and MelWeightMatrix.
 *
 * Complex tensors are real tensors whose last axis holds (real, imaginary);
 * a last axis of size 1 is a real signal. Transforms are direct O(n^2)
 * sums in double over a twiddle table, rounded once on store.
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif


/* Reads a scalar (or 1-element) integer input. */
static kiln_status read_scalar_int(const kiln__kctx *c, int i, const char *what, int64_t *v) {
    int n;
    KILN__TRY(kiln__read_ints(c->in[i], what, v, 1, &n));
    if (n != 1) return kiln__err(KILN_E_SHAPE, "%s has %d elements, expected 1", what, n);
    return KILN_OK;
}
static kiln_status read_scalar_float(const kiln__kctx *c, int i, const char *what, double *v) {
    int n;
    KILN__TRY(kiln__read_floats(c->in[i], what, v, 1, &n));
    if (n != 1) return kiln__err(KILN_E_SHAPE, "%s has %d elements, expected 1", what, n);
    return KILN_OK;
}

/* The 'output_datatype' attribute (default float), which must be numeric. */
static kiln_status output_datatype(const kiln__kctx *c, kiln_dtype *dt) {
    int64_t v = kiln__attr_i(c->node, "output_datatype", KILN_DTYPE_F32);
    if (!kiln_dtype_valid((int)v) ||
        (!kiln__dtype_is_float((kiln_dtype)v) && !kiln__dtype_is_int((kiln_dtype)v)))
        return kiln__err(KILN_E_TYPE, "attribute 'output_datatype' is %lld, expected a numeric "
                         "dtype", (long long)v);
    *dt = (kiln_dtype)v;
    return KILN_OK;
}

/* ---- windows ------------------------------------------------------------------- */

enum { WIN_BLACKMAN, WIN_HAMMING, WIN_HANN };

// size: scalar int -> y: (size) of output_datatype
static kiln_status window_infer(kiln__kctx *c) {
    KILN__NEED(c, 0);
    int64_t size;
    kiln_dtype dt;
    KILN__TRY(read_scalar_int(c, 0, "input 'size'", &size));
    KILN__TRY(output_datatype(c, &dt));
    if (size < 0)
        return kiln__err(KILN_E_RANGE, "input 'size' is %lld, expected >= 0", (long long)size);
    return kiln__out_shape(c, 0, dt, 1, &size);
}

/* w[n] over N = size (periodic) or size - 1 (symmetric). */
static kiln_status window_ref(kiln__kctx *c, int kind) {
    kiln_tensor *y = c->out[0];
    int64_t size = y->dims[0];
    double span = kiln__attr_i(c->node, "periodic", 1) ? (double)size : (double)(size - 1);
    for (int64_t i = 0; i < size; i++) {
        double a = 2 * M_PI * (double)i / span, v;
        if (span == 0) v = 1; /* a one-point symmetric window */
        else if (kind == WIN_BLACKMAN) v = 0.42 - 0.5 * cos(a) + 0.08 * cos(2 * a);
        else if (kind == WIN_HAMMING) v = 25.0 / 46.0 - (21.0 / 46.0) * cos(a);
        else v = sin(a / 2) * sin(a / 2);
        kiln__elem_st_f(y->dtype, y->data, i, v);
    }
    return KILN_OK;
}

kiln_status kiln__infer_BlackmanWindow(kiln__kctx *c) { return window_infer(c); }
kiln_status kiln__ref_BlackmanWindow(kiln__kctx *c) { return window_ref(c, WIN_BLACKMAN); }
kiln_status kiln__infer_HammingWindow(kiln__kctx *c) { return window_infer(c); }
kiln_status kiln__ref_HammingWindow(kiln__kctx *c) { return window_ref(c, WIN_HAMMING); }
kiln_status kiln__infer_HannWindow(kiln__kctx *c) { return window_infer(c); }
kiln_status kiln__ref_HannWindow(kiln__kctx *c) { return window_ref(c, WIN_HANN); }

/* ---- the transform of one line ---------------------------------------------------- */

enum { XF_FORWARD, XF_INVERSE, XF_INVERSE_REAL };

/* tw[2j], tw[2j+1] = cos, sin of 2 pi j / len, for j in [0, len). */
static void twiddles(double *tw, int64_t len) {
    for (int64_t j = 0; j < len; j++) {
        tw[2 * j] = cos(2 * M_PI * (double)j / (double)len);
        tw[2 * j + 1] = sin(2 * M_PI * (double)j / (double)len);
    }
}

/* Transform of length len of the complex line in[0..m) (interleaved,
 * zero-padded past m, truncated past len) into out[0..n_out):
 *   forward:      X[k] = sum_t x[t] e^(-2 pi i k t / len)
 *   inverse:      x[t] = 1/len sum_k X[k] e^(+2 pi i k t / len)
 *   inverse real: x[t] = 1/len sum over the full spectrum rebuilt from the
 *                 one-sided in[0..len/2] (numpy irfft; out is real). */
static void transform_line(int kind, const double *in, int64_t m, int64_t len, int64_t n_out,
                           const double *tw, double *out) {
    if (kind == XF_INVERSE_REAL) {
        int64_t bins = len / 2 + 1 < m ? len / 2 + 1 : m;
        for (int64_t t = 0; t < n_out; t++) {
            double acc = 0;
            for (int64_t k = 0; k < bins; k++) {
                int64_t j = (k * t) % len;
                int edge = k == 0 || (len % 2 == 0 && k == len / 2);
                if (edge) acc += in[2 * k] * tw[2 * j]; /* imaginary part ignored */
                else acc += 2 * (in[2 * k] * tw[2 * j] - in[2 * k + 1] * tw[2 * j + 1]);
            }
            out[t] = acc / (double)len;
        }
        return;
    }
    int64_t n_in = m < len ? m : len;
    double sign = kind == XF_FORWARD ? -1 : 1, norm = kind == XF_FORWARD ? 1 : 1 / (double)len;
    for (int64_t k = 0; k < n_out; k++) {
        double re = 0, im = 0;
        for (int64_t t = 0; t < n_in; t++) {
            int64_t j = (k * t) % len;
            double c = tw[2 * j], s = sign * tw[2 * j + 1];
            re += in[2 * t] * c - in[2 * t + 1] * s;
            im += in[2 * t] * s + in[2 * t + 1] * c;
        }
        out[2 * k] = re * norm;
        out[2 * k + 1] = im * norm;
    }
}

/* ---- DFT ------------------------------------------------------------------------- */

typedef struct dft_plan {
    int axis, kind, onesided;
    int64_t len;   /* transform length */
    int64_t n_out; /* output size along the axis */
} dft_plan;

/* Axis (attribute before opset 20, input 2 from then on), length and mode. */
static kiln_status dft_plan_build(kiln__kctx *c, dft_plan *p) {
    const kiln_tensor *x = c->in[0];
    int r = x->ndim;
    int64_t axis = c->opset < 20 ? kiln__attr_i(c->node, "axis", 1) : -2;
    if (c->opset >= 20 && kiln__in(c, 2)) {
        KILN__NEED(c, 2);
        KILN__TRY(read_scalar_int(c, 2, "input 'axis'", &axis));
    }
    if (axis < 0) axis += r;
    if (axis < 0 || axis > r - 2)
        return kiln__err(KILN_E_RANGE, "axis is out of range for input rank %d (the last axis "
                         "holds the complex parts)", r);
    p->axis = (int)axis;
    int inverse = kiln__attr_i(c->node, "inverse", 0) != 0;
    p->onesided = kiln__attr_i(c->node, "onesided", 0) != 0;
    p->kind = !inverse ? XF_FORWARD : p->onesided ? XF_INVERSE_REAL : XF_INVERSE;
    int64_t m = x->dims[p->axis];
    p->len = p->kind == XF_INVERSE_REAL ? 2 * (m - 1) : m;
    if (kiln__in(c, 1) && kiln__n(c->in[1]) > 0) {
        KILN__NEED(c, 1);
        KILN__TRY(read_scalar_int(c, 1, "input 'dft_length'", &p->len));
    }
    if (p->len < 1)
        return kiln__err(KILN_E_RANGE, "dft_length is %lld, expected >= 1", (long long)p->len);
    if (p->len > ((int64_t)1 << 24))
        return kiln__err(KILN_E_LIMIT, "dft_length %lld is too large", (long long)p->len);
    p->n_out = p->kind == XF_FORWARD && p->onesided ? p->len / 2 + 1 : p->len;
    return KILN_OK;
}

// x: (.., n at axis, .., 1 or 2) float, dft_length: scalar int, axis: scalar int
// -> y: (.., n_out at axis, .., 2), or (.., len, .., 1) for an inverse onesided DFT
kiln_status kiln__infer_DFT(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    char b[128];
    KILN__TRY(kiln__check_dtype(x, "input 'input'", KILN__FLOAT_DTYPES));
    if (x->ndim < 2 || (x->dims[x->ndim - 1] != 1 && x->dims[x->ndim - 1] != 2))
        return kiln__err(KILN_E_SHAPE, "input 'input' has shape %s, expected (.., 1) or (.., 2)",
                         kiln__shape_str(x->ndim, x->dims, b, sizeof b));
    dft_plan p;
    KILN__TRY(dft_plan_build(c, &p));
    int64_t dims[KILN_MAX_DIMS];
    memcpy(dims, x->dims, sizeof dims);
    dims[p.axis] = p.n_out;
    dims[x->ndim - 1] = p.kind == XF_INVERSE_REAL ? 1 : 2;
    int64_t m = x->dims[p.axis];
    c->scratch_bytes = (size_t)(2 * p.len + 2 * m + 2 * p.n_out) * sizeof(double);
    return kiln__out_shape(c, 0, x->dtype, x->ndim, dims);
}

kiln_status kiln__ref_DFT(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    dft_plan p;
    KILN__TRY(dft_plan_build(c, &p));
    int r = x->ndim;
    int64_t m = x->dims[p.axis], cin = x->dims[r - 1], cout = y->dims[r - 1];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < p.axis; i++) outer *= x->dims[i];
    for (int i = p.axis + 1; i < r - 1; i++) inner *= x->dims[i];
    double *tw = c->scratch, *line = tw + 2 * p.len, *res = line + 2 * m;
    twiddles(tw, p.len);
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t t = 0; t < m; t++) {
                int64_t off = ((o * m + t) * inner + i) * cin;
                line[2 * t] = kiln__elem_ld_f(x->dtype, x->data, off);
                line[2 * t + 1] = cin == 2 ? kiln__elem_ld_f(x->dtype, x->data, off + 1) : 0;
            }
            transform_line(p.kind, line, m, p.len, p.n_out, tw, res);
            for (int64_t k = 0; k < p.n_out; k++) {
                int64_t off = ((o * p.n_out + k) * inner + i) * cout;
                for (int64_t j = 0; j < cout; j++)
                    kiln__elem_st_f(y->dtype, y->data, off + j, res[cout * k + j]);
            }
        }
    }
    return KILN_OK;
}

/* ---- STFT ------------------------------------------------------------------------ */

typedef struct stft_plan {
    int64_t step, frame_len, n_frames, bins;
} stft_plan;

static kiln_status stft_plan_build(kiln__kctx *c, stft_plan *p) {
    const kiln_tensor *x = c->in[0], *win = kiln__in(c, 2);
    KILN__NEED(c, 1);
    KILN__TRY(read_scalar_int(c, 1, "input 'frame_step'", &p->step));
    if (p->step < 1)
        return kiln__err(KILN_E_RANGE, "input 'frame_step' is %lld, expected >= 1", (long long)p->step);
    if (win && win->ndim != 1)
        return kiln__err(KILN_E_SHAPE, "input 'window' has rank %d, expected 1", win->ndim);
    if (kiln__in(c, 3)) {
        KILN__NEED(c, 3);
        KILN__TRY(read_scalar_int(c, 3, "input 'frame_length'", &p->frame_len));
        if (win && win->dims[0] != p->frame_len)
            return kiln__err(KILN_E_SHAPE, "input 'window' has length %lld, expected frame_length "
                             "%lld", (long long)win->dims[0], (long long)p->frame_len);
    } else if (win) {
        p->frame_len = win->dims[0];
    } else {
        return kiln__err(KILN_E_INVAL, "STFT needs input 'window' or 'frame_length'");
    }
    int64_t n = x->dims[1];
    if (p->frame_len < 1 || p->frame_len > n)
        return kiln__err(KILN_E_RANGE, "frame_length %lld must be in [1, %lld] (signal length)",
                         (long long)p->frame_len, (long long)n);
    p->n_frames = 1 + (n - p->frame_len) / p->step;
    p->bins = kiln__attr_i(c->node, "onesided", 1) ? p->frame_len / 2 + 1 : p->frame_len;
    return KILN_OK;
}

// signal: (B, n, 1 or 2), frame_step: scalar, window: (L), frame_length: scalar
// -> y: (B, frames, bins, 2), frames = 1 + (n - L) / frame_step
kiln_status kiln__infer_STFT(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *win = kiln__in(c, 2);
    char b[128];
    KILN__TRY(kiln__check_dtype(x, "input 'signal'", KILN__FLOAT_DTYPES));
    if (x->ndim != 3 || (x->dims[2] != 1 && x->dims[2] != 2))
        return kiln__err(KILN_E_SHAPE, "input 'signal' has shape %s, expected (B, n, 1 or 2)",
                         kiln__shape_str(x->ndim, x->dims, b, sizeof b));
    if (win) KILN__TRY(kiln__check_dtype(win, "input 'window'", x->dtype, 0));
    stft_plan p;
    KILN__TRY(stft_plan_build(c, &p));
    int64_t dims[4] = {x->dims[0], p.n_frames, p.bins, 2};
    c->scratch_bytes = (size_t)(4 * p.frame_len + 2 * p.bins) * sizeof(double);
    return kiln__out_shape(c, 0, x->dtype, 4, dims);
}

/* Each frame: the windowed samples [f * step, f * step + L) transformed. */
kiln_status kiln__ref_STFT(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *win = kiln__in(c, 2);
    kiln_tensor *y = c->out[0];
    stft_plan p;
    KILN__TRY(stft_plan_build(c, &p));
    int64_t n = x->dims[1], cin = x->dims[2], len = p.frame_len;
    double *tw = c->scratch, *line = tw + 2 * len, *res = line + 2 * len;
    twiddles(tw, len);
    for (int64_t b = 0; b < x->dims[0]; b++) {
        for (int64_t f = 0; f < p.n_frames; f++) {
            for (int64_t t = 0; t < len; t++) {
                int64_t off = (b * n + f * p.step + t) * cin;
                double w = win ? kiln__elem_ld_f(win->dtype, win->data, t) : 1;
                line[2 * t] = w * kiln__elem_ld_f(x->dtype, x->data, off);
                line[2 * t + 1] = cin == 2 ? w * kiln__elem_ld_f(x->dtype, x->data, off + 1) : 0;
            }
            transform_line(XF_FORWARD, line, len, len, p.bins, tw, res);
            int64_t yo = (b * p.n_frames + f) * p.bins * 2;
            for (int64_t k = 0; k < 2 * p.bins; k++)
                kiln__elem_st_f(y->dtype, y->data, yo + k, res[k]);
        }
    }
    return KILN_OK;
}

/* ---- MelWeightMatrix ------------------------------------------------------------------ */

// num_mel_bins, dft_length, sample_rate: scalar ints, lower/upper_edge_hertz: scalar floats
// -> y: (dft_length / 2 + 1, num_mel_bins) of output_datatype
kiln_status kiln__infer_MelWeightMatrix(kiln__kctx *c) {
    KILN__NEED(c, 0);
    KILN__NEED(c, 1);
    int64_t mel, dft;
    kiln_dtype dt;
    KILN__TRY(read_scalar_int(c, 0, "input 'num_mel_bins'", &mel));
    KILN__TRY(read_scalar_int(c, 1, "input 'dft_length'", &dft));
    KILN__TRY(output_datatype(c, &dt));
    if (mel < 1 || dft < 1)
        return kiln__err(KILN_E_RANGE, "num_mel_bins %lld and dft_length %lld must be >= 1",
                         (long long)mel, (long long)dft);
    int64_t dims[2] = {dft / 2 + 1, mel};
    return kiln__out_shape(c, 0, dt, 2, dims);
}

/* Spectrogram bin of mel frequency point i (of num_mel_bins + 2). */
static int64_t mel_bin(int64_t i, double step, double lo_mel, int64_t dft, int64_t rate) {
    double hz = 700 * (pow(10, ((double)i * step + lo_mel) / 2595) - 1);
    double bin = floor((double)(dft + 1) * hz / (double)rate);
    /* bins past the spectrogram are never written: clamp just outside it */
    if (!(bin >= -1)) bin = -1;
    if (bin > (double)dft + 2) bin = (double)dft + 2;
    return (int64_t)bin;
}

/* Triangular filters between mel-spaced frequencies, mapped to spectrogram
 * bins the way the onnx reference does (mel step over num_mel_bins + 2). */
kiln_status kiln__ref_MelWeightMatrix(kiln__kctx *c) {
    kiln_tensor *y = c->out[0];
    int64_t mel, dft, rate;
    double lo_hz, hi_hz;
    KILN__TRY(read_scalar_int(c, 0, "input 'num_mel_bins'", &mel));
    KILN__TRY(read_scalar_int(c, 1, "input 'dft_length'", &dft));
    KILN__TRY(read_scalar_int(c, 2, "input 'sample_rate'", &rate));
    KILN__TRY(read_scalar_float(c, 3, "input 'lower_edge_hertz'", &lo_hz));
    KILN__TRY(read_scalar_float(c, 4, "input 'upper_edge_hertz'", &hi_hz));
    if (rate < 1)
        return kiln__err(KILN_E_RANGE, "input 'sample_rate' is %lld, expected >= 1", (long long)rate);
    int64_t n_spec = y->dims[0];
    memset(y->data, 0, kiln__tensor_bytes(y));
    double lo_mel = 2595 * log10(1 + lo_hz / 700), hi_mel = 2595 * log10(1 + hi_hz / 700);
    double step = (hi_mel - lo_mel) / (double)(mel + 2);
    for (int64_t i = 0; i < mel; i++) {
        int64_t left = mel_bin(i, step, lo_mel, dft, rate);
        int64_t center = mel_bin(i + 1, step, lo_mel, dft, rate);
        int64_t right = mel_bin(i + 2, step, lo_mel, dft, rate);
        if (center == left) {
            if (center >= 0 && center < n_spec)
                kiln__elem_st_f(y->dtype, y->data, center * mel + i, 1);
        } else {
            for (int64_t j = left; j <= center; j++)
                if (j >= 0 && j < n_spec)
                    kiln__elem_st_f(y->dtype, y->data, j * mel + i,
                            (double)(j - left) / (double)(center - left));
        }
        for (int64_t j = center; j < right; j++)
            if (j >= 0 && j < n_spec)
                kiln__elem_st_f(y->dtype, y->data, j * mel + i,
                                (double)(right - j) / (double)(right - center));
    }
    return KILN_OK;
}
