/* src/cpu/ref/quantize.c: linear quantization ops.
 *
 *   QuantizeLinear:        y = saturate(round_half_even(x / scale) + zero_point)
 *   DequantizeLinear:      y = (x - zero_point) * scale
 *   DynamicQuantizeLinear: uint8 quantization with scale and zero point
 *                          computed from the range of x
 *
 * Scale and zero point take one of three forms (opsets 10..25):
 *   per tensor: scalar or 1-element;
 *   per axis:   1-D of x.dims[axis] elements (opset 13+);
 *   blocked:    same rank as x, dims[axis] = ceil(x.dims[axis] / block_size)
 *               and the other dims equal to x's (opset 21+).
 * Quantized types: the integers uint8, int8, uint16, int16, uint4, int4,
 * uint2, int2 (int32 as a DequantizeLinear input), which round half to even
 * and saturate to their range; and the floats float8e4m3fn, float8e4m3fnuz,
 * float8e5m2, float8e5m2fnuz (round to nearest even; attribute 'saturate',
 * default 1, clamps out-of-range values to +-max, else they become inf/NaN
 * as Cast does) and float4e2m1 (always saturates). The zero point is added
 * (subtracted) in every case; for the float types it is normally 0.
 * The scale may also be float8e8m0 (opset 25).
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

/* ---- scale / zero-point broadcast ---------------------------------------- */

typedef enum { QUANT_PER_TENSOR, QUANT_PER_AXIS, QUANT_BLOCKED } quant_mode;

/* Maps element i of x to the index of its scale / zero point. x is viewed as
 * (outer, axis_dim, inner) around the quantization axis. */
typedef struct quant_map {
    quant_mode mode;
    int64_t outer, axis_dim, inner;
    int64_t block, n_blocks; /* blocked form */
} quant_map;

static int64_t quant_index(const quant_map *m, int64_t i) {
    if (m->mode == QUANT_PER_TENSOR) return 0;
    int64_t in = i % m->inner, a = (i / m->inner) % m->axis_dim;
    if (m->mode == QUANT_PER_AXIS) return a;
    int64_t o = i / (m->inner * m->axis_dim);
    return (o * m->n_blocks + a / m->block) * m->inner + in;
}

/* Works out the form of scale (named scale_name) against x and checks that the
 * zero point zp (if present) has the same shape. */
static kiln_status quant_map_init(const kiln__kctx *c, const kiln_tensor *x,
                                  const kiln_tensor *scale, const kiln_tensor *zp,
                                  const char *scale_name, const char *zp_name, quant_map *m) {
    memset(m, 0, sizeof *m);
    char got[128], want[128];
    /* per tensor, () and (1,) mix (the ONNX tests pair a () scale with a (1,) zero point) */
    int both_scalar = zp && kiln__n(zp) == 1 && kiln__n(scale) == 1 && zp->ndim <= 1 &&
                      scale->ndim <= 1;
    if (zp && !both_scalar && !kiln__same_shape(zp, scale))
        return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected the shape of '%s' %s",
                         zp_name, kiln__shape_str(zp->ndim, zp->dims, got, sizeof got),
                         scale_name, kiln__shape_str(scale->ndim, scale->dims, want, sizeof want));
    int64_t block_size = kiln__attr_i(c->node, "block_size", 0);
    if (block_size < 0)
        return kiln__err(KILN_E_INVAL, "attribute 'block_size' is %lld, expected >= 0",
                         (long long)block_size);
    if (block_size == 0 && kiln__n(scale) == 1 && scale->ndim <= 1) {
        m->mode = QUANT_PER_TENSOR;
        return KILN_OK;
    }
    int ax;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 1), x->ndim, "axis", &ax));
    m->outer = 1;
    m->inner = 1;
    for (int i = 0; i < ax; i++) m->outer *= x->dims[i];
    for (int i = ax + 1; i < x->ndim; i++) m->inner *= x->dims[i];
    m->axis_dim = x->dims[ax];
    if (block_size == 0) {
        if (scale->ndim != 1 || scale->dims[0] != m->axis_dim)
            return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected a scalar or (%lld) "
                             "for axis %d of x %s", scale_name,
                             kiln__shape_str(scale->ndim, scale->dims, got, sizeof got),
                             (long long)m->axis_dim, ax,
                             kiln__shape_str(x->ndim, x->dims, want, sizeof want));
        m->mode = QUANT_PER_AXIS;
        return KILN_OK;
    }
    m->mode = QUANT_BLOCKED;
    m->block = block_size;
    m->n_blocks = m->axis_dim ? (m->axis_dim - 1) / block_size + 1 : 0; /* no overflow for huge block_size */
    int ok = scale->ndim == x->ndim;
    for (int i = 0; ok && i < x->ndim; i++)
        ok = scale->dims[i] == (i == ax ? m->n_blocks : x->dims[i]);
    if (!ok)
        return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected x's shape %s with "
                         "dim %d = ceil(%lld / block_size %lld) = %lld", scale_name,
                         kiln__shape_str(scale->ndim, scale->dims, got, sizeof got),
                         kiln__shape_str(x->ndim, x->dims, want, sizeof want), ax,
                         (long long)m->axis_dim, (long long)block_size, (long long)m->n_blocks);
    return KILN_OK;
}

/* What a quantized dtype is: an integer of range [lo, hi], or a narrow float. */
typedef struct quant_type {
    int is_float; /* float8 or float4e2m1 */
    double lo, hi;
} quant_type;

/* The quantized type of dt; fails (naming what) for other dtypes. */
static kiln_status quant_type_of(kiln_dtype dt, const char *what, quant_type *q) {
    q->is_float = 0;
    switch (dt) {
    case KILN_DTYPE_U8: q->lo = 0, q->hi = 255; return KILN_OK;
    case KILN_DTYPE_I8: q->lo = -128, q->hi = 127; return KILN_OK;
    case KILN_DTYPE_U16: q->lo = 0, q->hi = 65535; return KILN_OK;
    case KILN_DTYPE_I16: q->lo = -32768, q->hi = 32767; return KILN_OK;
    case KILN_DTYPE_I32: q->lo = -2147483648.0, q->hi = 2147483647.0; return KILN_OK;
    case KILN_DTYPE_U4: q->lo = 0, q->hi = 15; return KILN_OK;
    case KILN_DTYPE_I4: q->lo = -8, q->hi = 7; return KILN_OK;
    case KILN_DTYPE_U2: q->lo = 0, q->hi = 3; return KILN_OK;
    case KILN_DTYPE_I2: q->lo = -2, q->hi = 1; return KILN_OK;
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F4E2M1:
        q->is_float = 1;
        q->lo = q->hi = 0;
        return KILN_OK;
    default:
        return kiln__err(KILN_E_UNSUPPORTED, "%s has type %s (%d); kiln quantizes to uint8, int8, "
                         "uint16, int16, uint4, int4, uint2, int2, float8e4m3fn, float8e4m3fnuz, "
                         "float8e5m2, float8e5m2fnuz and float4e2m1 only", what,
                         kiln_dtype_valid(dt) ? kiln_dtype_name(dt) : "not a kiln dtype", (int)dt);
    }
}

/* Fails unless the scale named what is a float type a scale may have. */
static kiln_status check_scale(const kiln_tensor *scale, const char *what) {
    return kiln__check_dtype(scale, what, KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16,
                             KILN_DTYPE_F64, KILN_DTYPE_F8E8M0, 0);
}

/* Rounds half to even and saturates into [lo, hi]; NaN gives 0. */
static double quant_round_sat(double v, double lo, double hi) {
    if (isnan(v)) return 0 < lo ? lo : 0 > hi ? hi : 0;
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- QuantizeLinear -------------------------------------------------------- */

/* Output dtype: the zero point's, else attribute output_dtype, else uint8. */
static kiln_status quantize_out_dtype(const kiln__kctx *c, kiln_dtype *out) {
    const kiln_tensor *zp = kiln__in(c, 2);
    int64_t attr = kiln__attr_i(c->node, "output_dtype", 0);
    kiln_dtype dt = zp ? zp->dtype : attr ? (kiln_dtype)attr : KILN_DTYPE_U8;
    if (zp && attr && attr != zp->dtype)
        return kiln__err(KILN_E_TYPE, "attribute 'output_dtype' is %lld but 'y_zero_point' is %s",
                         (long long)attr, kiln_dtype_name(zp->dtype));
    quant_type q;
    KILN__TRY(quant_type_of(dt, zp ? "input 'y_zero_point'" : "the output", &q));
    if (dt == KILN_DTYPE_I32)
        return kiln__err(KILN_E_UNSUPPORTED, "QuantizeLinear output type int32 is not allowed");
    *out = dt;
    return KILN_OK;
}

// x: any shape f32/f16/bf16/f64/i32, y_scale: see header, y_zero_point: like
// y_scale (a quantized type, see header), y: shape of x
kiln_status kiln__infer_QuantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *scale = c->in[1];
    if (!x || !scale) return kiln__err(KILN_E_INVAL, "inputs 'x' and 'y_scale' are required");
    KILN__TRY(kiln__check_dtype(x, "x", KILN_DTYPE_F32, KILN_DTYPE_F16, KILN_DTYPE_BF16,
                                KILN_DTYPE_F64, KILN_DTYPE_I32, 0));
    KILN__TRY(check_scale(scale, "y_scale"));
    kiln_dtype dt = KILN_DTYPE_U8;
    KILN__TRY(quantize_out_dtype(c, &dt));
    quant_map m;
    KILN__TRY(quant_map_init(c, x, scale, kiln__in(c, 2), "y_scale", "y_zero_point", &m));
    return kiln__out_shape(c, 0, dt, x->ndim, x->dims);
}

kiln_status kiln__ref_QuantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *scale = c->in[1], *zp = kiln__in(c, 2);
    kiln_tensor *y = c->out[0];
    quant_map m;
    KILN__TRY(quant_map_init(c, x, scale, zp, "y_scale", "y_zero_point", &m));
    quant_type qt;
    KILN__TRY(quant_type_of(y->dtype, "the output", &qt));
    int saturate = kiln__attr_i(c->node, "saturate", 1) != 0;
    /* The division runs in the precision of y_scale (or attribute
     * 'precision'): double for f64, float otherwise; int32 and f64 x divide
     * in double (as numpy promotes them). */
    int64_t precision = kiln__attr_i(c->node, "precision", 0);
    int in_double = (precision ? precision == KILN_DTYPE_F64 : scale->dtype == KILN_DTYPE_F64) ||
                    x->dtype == KILN_DTYPE_I32 || x->dtype == KILN_DTYPE_F64;
    int64_t n = kiln__n(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = quant_index(&m, i);
        double xv = kiln__ld_f(x->dtype, x->data, i), sv = kiln__ld_f(scale->dtype, scale->data, k);
        double q = in_double ? xv / sv : (double)((float)xv / (float)sv);
        if (qt.is_float) { /* float8 / float4: add the zero point, round once into y */
            if (zp) {
                double z = kiln__ld_f(zp->dtype, zp->data, k);
                q = in_double ? q + z : (double)((float)q + (float)z);
            }
            ((uint8_t *)y->data)[i] = kiln__minifloat_from_f(y->dtype, q, saturate);
            continue;
        }
        if (!isnan(q)) q = nearbyint(q);
        if (zp) q += (double)kiln__ld_i(zp->dtype, zp->data, k);
        kiln__st_f(y->dtype, y->data, i, quant_round_sat(q, qt.lo, qt.hi));
    }
    return KILN_OK;
}

/* ---- DequantizeLinear ------------------------------------------------------ */

// x: any shape, a quantized type (see header) or i32, x_scale: see header
// (float), x_zero_point: like x_scale with x's dtype, y: shape of x, dtype
// output_dtype or x_scale's
kiln_status kiln__infer_DequantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *scale = c->in[1], *zp = kiln__in(c, 2);
    if (!x || !scale) return kiln__err(KILN_E_INVAL, "inputs 'x' and 'x_scale' are required");
    quant_type qt;
    KILN__TRY(quant_type_of(x->dtype, "input 'x'", &qt));
    KILN__TRY(check_scale(scale, "x_scale"));
    if (zp && zp->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input 'x_zero_point' is %s, expected %s like 'x'",
                         kiln_dtype_name(zp->dtype), kiln_dtype_name(x->dtype));
    int64_t attr = kiln__attr_i(c->node, "output_dtype", 0);
    kiln_dtype out = attr ? (kiln_dtype)attr : scale->dtype;
    if (!kiln_dtype_valid((int)out) || !kiln__dtype_is_float(out) || kiln__dtype_is_minifloat(out))
        return kiln__err(KILN_E_UNSUPPORTED, "output type is %s (attribute 'output_dtype' %lld, "
                         "else x_scale's), expected float32, float16, bfloat16 or float64",
                         kiln_dtype_valid((int)out) ? kiln_dtype_name(out) : "not a kiln dtype",
                         (long long)attr);
    quant_map m;
    KILN__TRY(quant_map_init(c, x, scale, zp, "x_scale", "x_zero_point", &m));
    return kiln__out_shape(c, 0, out, x->ndim, x->dims);
}

kiln_status kiln__ref_DequantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *scale = c->in[1], *zp = kiln__in(c, 2);
    kiln_tensor *y = c->out[0];
    quant_map m;
    KILN__TRY(quant_map_init(c, x, scale, zp, "x_scale", "x_zero_point", &m));
    int is_float = kiln__dtype_is_minifloat(x->dtype);
    int64_t n = kiln__n(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = quant_index(&m, i);
        double q; /* exact: the difference of two quantized values */
        if (is_float) {
            q = kiln__ld_f(x->dtype, x->data, i);
            if (zp) q -= kiln__ld_f(zp->dtype, zp->data, k);
        } else {
            int64_t qi = kiln__ld_i(x->dtype, x->data, i);
            if (zp) qi -= kiln__ld_i(zp->dtype, zp->data, k);
            q = (double)qi;
        }
        kiln__st_f(y->dtype, y->data, i, q * kiln__ld_f(scale->dtype, scale->data, k));
    }
    return KILN_OK;
}

/* ---- DynamicQuantizeLinear ----------------------------------------------- */

// x: any shape f32, y: shape of x u8, y_scale: () f32, y_zero_point: () u8
kiln_status kiln__infer_DynamicQuantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_dtype(x, "x", KILN_DTYPE_F32, 0));
    KILN__TRY(kiln__out_shape(c, 0, KILN_DTYPE_U8, x->ndim, x->dims));
    KILN__TRY(kiln__out_shape(c, 1, KILN_DTYPE_F32, 0, NULL));
    return kiln__out_shape(c, 2, KILN_DTYPE_U8, 0, NULL);
}

/* In float, as the ONNX definition:
 *   scale = (max(0, max x) - min(0, min x)) / 255   (1/255 if the range is 0)
 *   zero_point = round(saturate(0 - min(0, min x) / scale))
 *   y = saturate(round(x / scale) + zero_point) */
kiln_status kiln__ref_DynamicQuantizeLinear(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    const float *xv = x->data;
    int64_t n = kiln__n(x);
    float max_x = 0, min_x = 0;
    for (int64_t i = 0; i < n; i++) {
        if (xv[i] > max_x) max_x = xv[i];
        if (xv[i] < min_x) min_x = xv[i];
    }
    float scale = (max_x == min_x ? 1.0f : max_x - min_x) / 255.0f;
    float zero_point = (float)quant_round_sat(0.0f - min_x / scale, 0, 255);
    kiln_tensor *y = kiln__out(c, 0), *y_scale = kiln__out(c, 1), *y_zp = kiln__out(c, 2);
    if (y) {
        uint8_t *yv = y->data;
        for (int64_t i = 0; i < n; i++) {
            float q = xv[i] / scale;
            q = isnan(q) ? q : nearbyintf(q);
            yv[i] = (uint8_t)quant_round_sat(q + zero_point, 0, 255);
        }
    }
    if (y_scale) *(float *)y_scale->data = scale;
    if (y_zp) *(uint8_t *)y_zp->data = (uint8_t)zero_point;
    return KILN_OK;
}
