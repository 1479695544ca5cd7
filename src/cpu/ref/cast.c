/* src/cpu/ref/cast.c: Cast, CastLike and BitCast reference kernels.
 *
 * input: (any shape) -> output: (same shape) in the target dtype.
 *
 * Numbers convert as numpy's astype does: floats round to nearest even (once,
 * from the exact source value), float to integer truncates toward zero (NaN
 * and out-of-range are undefined in ONNX: kiln gives x86's INT64_MIN, then
 * wraps), integers wrap to narrower ones, anything to bool is x != 0.
 *
 * The narrow types (float8*, float8e8m0, float4e2m1, int4, uint4, int2,
 * uint2; one byte per element in memory) convert through exact doubles:
 * to a float8 type rounds to nearest even, and attribute 'saturate' (default
 * 1) chooses between clamping out-of-range values and infinities to +-max
 * and giving inf/NaN (ONNX's tables); float4e2m1 always saturates; to
 * float8e8m0 follows 'round_mode' ("up" by default, "down", "nearest").
 * To int4/int2 truncates and wraps like the wider integers.
 *
 * Strings follow the ONNX spec and numpy's str() (the ONNX reference):
 * floats print as the shortest decimal that reads back exactly ("0.1",
 * "100.0", "1.5e-05"; "NaN", "INF", "-INF" for the special values), integers
 * in decimal, bool as "True"/"False". Parsing accepts plain and scientific notation and
 * "INF"/"+INF"/"-INF"/"NaN" in any case; a decimal string cast to an integer
 * truncates ("100.5" -> 100); bool also accepts "true"/"false". A string that
 * is not a number is an error. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpu/ref/elementwise.h"

/* Name of an ONNX TensorProto.DataType that kiln may not have, for messages. */
static const char *onnx_type_name(int64_t t) {
    static const char *const names[] = {
        [14] = "complex64",    [15] = "complex128",     [17] = "float8e4m3fn",
        [18] = "float8e4m3fnuz", [19] = "float8e5m2",   [20] = "float8e5m2fnuz",
        [21] = "uint4",        [22] = "int4",           [23] = "float4e2m1",
        [24] = "float8e8m0",   [25] = "uint2",          [26] = "int2",
    };
    if (t >= 0 && t < 32 && kiln_dtype_valid((int)t)) return kiln_dtype_name((kiln_dtype)t);
    if (t >= 0 && t < (int64_t)(sizeof names / sizeof names[0]) && names[t]) return names[t];
    return "unknown";
}

/* The dtype named by attribute 'to'. */
static kiln_status cast_target(const kiln__kctx *c, kiln_dtype *dt) {
    const kiln__attr *a = kiln__attr_find(c->node, "to");
    if (!a || a->type != KILN__ATTR_INT)
        return kiln__err(KILN_E_INVAL, "required int attribute 'to' is missing");
    if (a->i <= 0 || a->i >= 32 || !kiln_dtype_valid((int)a->i))
        return kiln__err(KILN_E_UNSUPPORTED, "attribute 'to' is %lld (%s), a dtype kiln does not support",
                         (long long)a->i, onnx_type_name(a->i));
    *dt = (kiln_dtype)a->i;
    return KILN_OK;
}

/* ---- narrow dtypes --------------------------------------------------------------- */

/* The dtypes the elementwise machinery does not handle: float8, float4, int4, int2. */
#define CAST_NARROW                                                                   \
    (KILN__EW_M(F8E4M3FN) | KILN__EW_M(F8E4M3FNUZ) | KILN__EW_M(F8E5M2) |             \
     KILN__EW_M(F8E5M2FNUZ) | KILN__EW_M(F8E8M0) | KILN__EW_M(F4E2M1) | KILN__EW_M(I4) | \
     KILN__EW_M(U4) | KILN__EW_M(I2) | KILN__EW_M(U2))

static int is_narrow(kiln_dtype dt) { return dt > 0 && dt < 32 && (CAST_NARROW >> dt & 1u); }

/* Attributes 'saturate' and 'round_mode' (for conversions to narrow floats). */
typedef struct cast_opts {
    int saturate;
    kiln__e8m0_round round;
} cast_opts;

static kiln_status cast_opts_read(const kiln__kctx *c, cast_opts *o) {
    o->saturate = kiln__attr_i(c->node, "saturate", 1) != 0;
    const char *mode = kiln__attr_s(c->node, "round_mode", "up");
    if (strcmp(mode, "up") == 0) o->round = KILN__E8M0_UP;
    else if (strcmp(mode, "down") == 0) o->round = KILN__E8M0_DOWN;
    else if (strcmp(mode, "nearest") == 0) o->round = KILN__E8M0_NEAREST;
    else
        return kiln__err(KILN_E_INVAL, "attribute 'round_mode' is \"%.32s\", expected \"up\", "
                         "\"down\" or \"nearest\"", mode);
    return KILN_OK;
}

/* Stores the number v as element k of y (dtype dt): minifloats by the options,
 * others as kiln__st_f (truncating, wrapping). */
static void store_number(const cast_opts *o, kiln_dtype dt, void *y, int64_t k, double v) {
    if (dt == KILN_DTYPE_F8E8M0)
        ((uint8_t *)y)[k] = kiln__f8e8m0_from_f(v, o->saturate, o->round);
    else if (kiln__dtype_is_minifloat(dt))
        ((uint8_t *)y)[k] = kiln__minifloat_from_f(dt, v, o->saturate);
    else
        kiln__st_f(dt, y, k, v);
}

/* Element k of x into element k of y, one of them narrow and neither a string:
 * from floats through the exact double, from integers and bool exactly. */
static void convert_narrow(const cast_opts *o, const kiln_tensor *x, kiln_tensor *y, int64_t k) {
    kiln_dtype sd = x->dtype, dd = y->dtype;
    if (kiln__dtype_is_float(sd) || kiln__dtype_is_minifloat(dd))
        store_number(o, dd, y->data, k, kiln__ld_f(sd, x->data, k));
    else if (sd == KILN_DTYPE_U64)
        kiln__st_u(dd, y->data, k, kiln__ld_u(sd, x->data, k));
    else
        kiln__st_i(dd, y->data, k, kiln__ld_i(sd, x->data, k));
}

/* ---- strings ------------------------------------------------------------------- */

/* 1 if the decimal text s reads back as x in dtype dt. */
static int reads_back(const char *s, double x, kiln_dtype dt) {
    uint64_t tmp = 0;
    if (kiln__dtype_is_minifloat(dt)) {
        kiln__st_f(dt, &tmp, 0, strtod(s, NULL));
        return kiln__ld_f(dt, &tmp, 0) == x;
    }
    kiln__ew_val v = {.f = strtod(s, NULL)};
    kiln__ew_store(dt, &tmp, 0, KILN__EW_F, v);
    return kiln__ew_load(dt, &tmp, 0).f == x;
}

/* Adds d (+1 or -1) to the last mantissa digit of "[-]d.ddde+XX" in place.
 * Returns 0 (text unusable) when the carry or borrow would reach the
 * leading digit's place value change. */
static int bump_last_digit(char *sci, int d) {
    char *e = strchr(sci, 'e');
    if (!e) return 0;
    for (char *q = e - 1; q >= sci; q--) {
        if (*q == '.') continue;
        if (*q < '0' || *q > '9') return 0;
        if (d > 0 && *q == '9') { *q = '0'; continue; }
        if (d < 0 && *q == '0') { *q = '9'; continue; }
        *q = (char)(*q + d);
        return !(q == sci + (sci[0] == '-') && *q == '0'); /* leading digit 0: no */
    }
    return 0;
}

/* Shortest "%e" text of x that reads back as x in dtype dt (numpy's unique
 * repr digits). Next to a power of two a neighbour of the rounded p-digit
 * decimal can read back when the rounded one does not, so both are tried. */
static void shortest_sci(double x, kiln_dtype dt, char *sci, size_t n) {
    for (int p = 1; p < 17; p++) {
        for (int bump = 0; bump <= 2; bump++) {
            snprintf(sci, n, "%.*e", p - 1, x);
            if (bump && !bump_last_digit(sci, bump == 1 ? +1 : -1)) continue;
            if (reads_back(sci, x, dt)) return;
        }
    }
    snprintf(sci, n, "%.16e", x); /* 17 digits always read back */
}

/* Shortest decimal that reads back as x in dtype dt, formatted like numpy's
 * str(): positional for 1e-4 <= |x| < cutoff (1e16 for f64, 1e6 for f32,
 * 1e3 for 16-bit floats) with at least one fractional digit, else
 * scientific ("1.5e-05"). NaN and infinities use the ONNX literals. */
static void format_float(double x, kiln_dtype dt, char *buf, size_t n) {
    if (isnan(x)) {
        snprintf(buf, n, "NaN");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, n, "%s", x < 0 ? "-INF" : "INF");
        return;
    }
    char sci[40];
    shortest_sci(x, dt, sci, sizeof sci);
    /* sci is "[-]d[.ddd]e[+-]XX": split into digits and exponent */
    char digits[24];
    int nd = 0, exp10 = 0, neg = sci[0] == '-';
    const char *q = sci + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    if (*q == 'e') exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    double cutoff = dt == KILN_DTYPE_F64 ? 1e16 : dt == KILN_DTYPE_F32 ? 1e6 : 1e3;
    size_t len = 0;
#define PUT(...) (len += (size_t)snprintf(buf + len, len < n ? n - len : 0, __VA_ARGS__))
    PUT("%s", neg ? "-" : "");
    if (x == 0 || (fabs(x) >= 1e-4 && fabs(x) < cutoff)) {
        if (exp10 < 0) {
            PUT("0.%.*s%s", -exp10 - 1, "000", digits); /* |x| >= 1e-4: at most 3 zeros */
        } else {
            for (int i = 0; i <= exp10; i++) PUT("%c", i < nd ? digits[i] : '0');
            PUT(".%s", nd > exp10 + 1 ? digits + exp10 + 1 : "0");
        }
    } else {
        PUT("%c%s%s", digits[0], nd > 1 ? "." : "", digits + 1);
        PUT("e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
#undef PUT
}

/* Element k of x as text into buf (n >= 64). */
static void format_elem(const kiln_tensor *x, int64_t k, char *buf, size_t n) {
    if (kiln__dtype_is_minifloat(x->dtype)) {
        format_float(kiln__ld_f(x->dtype, x->data, k), x->dtype, buf, n);
        return;
    }
    if (is_narrow(x->dtype)) { /* int4, uint4, int2, uint2 */
        snprintf(buf, n, "%lld", (long long)kiln__ld_i(x->dtype, x->data, k));
        return;
    }
    kiln__ew_val v = kiln__ew_load(x->dtype, x->data, k);
    switch (kiln__ew_class_of(x->dtype)) {
    case KILN__EW_F: format_float(v.f, x->dtype, buf, n); break;
    case KILN__EW_I: snprintf(buf, n, "%lld", (long long)v.i); break;
    default:
        if (x->dtype == KILN_DTYPE_BOOL)
            snprintf(buf, n, "%s", v.u ? "True" : "False");
        else
            snprintf(buf, n, "%llu", (unsigned long long)v.u);
        break;
    }
}

/* 1 if only white space is left at end. */
static int at_end(const char *end) {
    while (isspace((unsigned char)*end)) end++;
    return *end == '\0';
}

/* Parses s into element k of y. */
static kiln_status parse_elem(const cast_opts *o, const char *s, int64_t k, kiln_tensor *y) {
    kiln__ew_class cls = kiln__ew_class_of(y->dtype);
    kiln__ew_val v;
    char *end = NULL;
    if (!s) s = "";
    if (is_narrow(y->dtype)) {
        double d = strtod(s, &end);
        if (end == s || !at_end(end)) goto not_a_number;
        store_number(o, y->dtype, y->data, k, d);
        return KILN_OK;
    }
    if (y->dtype == KILN_DTYPE_BOOL) {
        while (isspace((unsigned char)*s)) s++;
        if (strncasecmp(s, "true", 4) == 0 && at_end(s + 4)) s = "1";
        if (strncasecmp(s, "false", 5) == 0 && at_end(s + 5)) s = "0";
    }
    if (y->dtype == KILN_DTYPE_F32) { /* strtof rounds the decimal once */
        float f = strtof(s, &end);
        if (end != s && at_end(end)) {
            ((float *)y->data)[k] = f;
            return KILN_OK;
        }
    } else if (cls == KILN__EW_I || cls == KILN__EW_U) {
        if (cls == KILN__EW_I)
            v.i = strtoll(s, &end, 10);
        else
            v.u = strtoull(s, &end, 10);
        if (end != s && at_end(end)) {
            kiln__ew_store(y->dtype, y->data, k, cls, v);
            return KILN_OK;
        }
    }
    /* floats, and "100.5" / "1e3" into integers: through double */
    v.f = strtod(s, &end);
    if (end != s && at_end(end)) {
        kiln__ew_store(y->dtype, y->data, k, KILN__EW_F, v);
        return KILN_OK;
    }
not_a_number:
    return kiln__err(KILN_E_FORMAT, "input element %lld is \"%.64s\", which is not a number",
                     (long long)k, s);
}

/* ---- conversion ----------------------------------------------------------------------- */

static double f_id(double x, const kiln__ew_prm *p) { return x; }
static int64_t i_id(int64_t x, const kiln__ew_prm *p) { return x; }
static uint64_t u_id(uint64_t x, const kiln__ew_prm *p) { return x; }

/* y = x converted to y's dtype (the same element count). */
static kiln_status cast_run(const kiln__kctx *c, const kiln_tensor *x, kiln_tensor *y) {
    static const kiln__ew_unary convert = {f_id, i_id, u_id};
    cast_opts o;
    KILN__TRY(cast_opts_read(c, &o));
    if (x->dtype == y->dtype) return kiln__ew_copy_run(c, x, y);
    int strings = x->dtype == KILN_DTYPE_STRING || y->dtype == KILN_DTYPE_STRING;
    if (!strings && !is_narrow(x->dtype) && !is_narrow(y->dtype))
        return kiln__ew_unary_run(c, &convert, NULL, x, y); /* the store converts */
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    for (int64_t k = lo; k < hi; k++) {
        if (!strings) {
            convert_narrow(&o, x, y, k);
        } else if (y->dtype == KILN_DTYPE_STRING) {
            char buf[64];
            format_elem(x, k, buf, sizeof buf);
            KILN__TRY(kiln__ew_set_string((char **)y->data + k, buf));
        } else {
            KILN__TRY(parse_elem(&o, ((char *const *)x->data)[k], k, y));
        }
    }
    return KILN_OK;
}

// input: (any shape, any dtype); attribute to; output: (same shape) of dtype 'to'
kiln_status kiln__infer_Cast(kiln__kctx *c) {
    kiln_tensor *x;
    kiln_dtype to;
    cast_opts o;
    KILN__TRY(kiln__ew_input(c, 0, "input", &x));
    KILN__TRY(kiln__ew_check(x, "input 'input'", KILN__EW_ANY | CAST_NARROW));
    KILN__TRY(cast_target(c, &to));
    KILN__TRY(cast_opts_read(c, &o));
    return kiln__out_shape(c, 0, to, x->ndim, x->dims);
}

kiln_status kiln__ref_Cast(kiln__kctx *c) { return cast_run(c, c->in[0], c->out[0]); }

// input: (any shape, any dtype), target_type: (any shape); output: input's shape, target's dtype
kiln_status kiln__infer_CastLike(kiln__kctx *c) {
    kiln_tensor *x, *target;
    KILN__TRY(kiln__ew_input(c, 0, "input", &x));
    KILN__TRY(kiln__ew_input(c, 1, "target_type", &target));
    cast_opts o;
    KILN__TRY(kiln__ew_check(x, "input 'input'", KILN__EW_ANY | CAST_NARROW));
    KILN__TRY(kiln__ew_check(target, "input 'target_type'", KILN__EW_ANY | CAST_NARROW));
    KILN__TRY(cast_opts_read(c, &o));
    return kiln__out_shape(c, 0, target->dtype, x->ndim, x->dims);
}

kiln_status kiln__ref_CastLike(kiln__kctx *c) { return cast_run(c, c->in[0], c->out[0]); }

/* ---- BitCast ------------------------------------------------------------------------------- */

// input: (any shape), non-string; output: same shape, dtype 'to' of the same bit width
kiln_status kiln__infer_BitCast(kiln__kctx *c) {
    kiln_tensor *x;
    kiln_dtype to;
    KILN__TRY(kiln__ew_input(c, 0, "input", &x));
    KILN__TRY(kiln__ew_check(x, "input 'input'", KILN__EW_NUM | KILN__EW_BOOL | CAST_NARROW));
    KILN__TRY(cast_target(c, &to));
    if (to == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_TYPE, "attribute 'to' is string, which BitCast cannot produce");
    if (kiln__dtype_bits(to) != kiln__dtype_bits(x->dtype))
        return kiln__err(KILN_E_TYPE, "attribute 'to' is %s (%d bits) but input is %s (%d bits)",
                         kiln_dtype_name(to), kiln__dtype_bits(to), kiln_dtype_name(x->dtype),
                         kiln__dtype_bits(x->dtype));
    return kiln__out_shape(c, 0, to, x->ndim, x->dims);
}

kiln_status kiln__ref_BitCast(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    size_t esz = kiln_dtype_size(x->dtype);
    int bits = kiln__dtype_bits(x->dtype);
    int64_t lo, hi;
    kiln__split(kiln__n(y), c->ith, c->nth, &lo, &hi);
    if (bits < 8) { /* one element per byte: keep the code bits, sign-extend for int4/int2 */
        const uint8_t *xs = x->data;
        uint8_t *ys = y->data;
        unsigned mask = (1u << bits) - 1;
        int to_signed = y->dtype == KILN_DTYPE_I4 || y->dtype == KILN_DTYPE_I2;
        for (int64_t k = lo; k < hi; k++) {
            unsigned code = xs[k] & mask;
            ys[k] = (uint8_t)(to_signed && (code >> (bits - 1)) ? code | (~mask & 0xffu) : code);
        }
        return KILN_OK;
    }
    if (hi > lo && x->data != y->data)
        memcpy((char *)y->data + lo * esz, (const char *)x->data + lo * esz, (size_t)(hi - lo) * esz);
    return KILN_OK;
}
