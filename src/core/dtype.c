/* src/core/dtype.c: dtype traits, f16/bf16 conversion, float8/float4/int4/int2
 * conversion, generic element access. */
#include <math.h>
#include <string.h>

#include "core/core.h"

const char *kiln_dtype_name(kiln_dtype dt) {
    switch (dt) {
#define KILN__CASE(name, value, text, size) \
    case KILN_DTYPE_##name:                 \
        return text;
        KILN_DTYPE_MAP(KILN__CASE)
#undef KILN__CASE
    default:
        return "undefined";
    }
}

size_t kiln_dtype_size(kiln_dtype dt) {
    switch (dt) {
#define KILN__CASE(name, value, text, size) \
    case KILN_DTYPE_##name:                 \
        return size;
        KILN_DTYPE_MAP(KILN__CASE)
#undef KILN__CASE
    default:
        return 0;
    }
}

int kiln_dtype_valid(int dt) { return kiln_dtype_size((kiln_dtype)dt) != 0; }

int kiln__dtype_is_float(kiln_dtype dt) {
    return dt == KILN_DTYPE_F32 || dt == KILN_DTYPE_F64 || dt == KILN_DTYPE_F16 ||
           dt == KILN_DTYPE_BF16 || kiln__dtype_is_minifloat(dt);
}

int kiln__dtype_is_minifloat(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F8E8M0: case KILN_DTYPE_F4E2M1:
        return 1;
    default:
        return 0;
    }
}

int kiln_dtype_is_integer(kiln_dtype dt) { return kiln__dtype_is_int(dt); }

int kiln__dtype_is_int(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_I8: case KILN_DTYPE_U8: case KILN_DTYPE_I16: case KILN_DTYPE_U16:
    case KILN_DTYPE_I32: case KILN_DTYPE_U32: case KILN_DTYPE_I64: case KILN_DTYPE_U64:
    case KILN_DTYPE_I4: case KILN_DTYPE_U4: case KILN_DTYPE_I2: case KILN_DTYPE_U2:
        return 1;
    default:
        return 0;
    }
}

int kiln__dtype_is_signed(kiln_dtype dt) {
    return kiln__dtype_is_float(dt) || dt == KILN_DTYPE_I8 || dt == KILN_DTYPE_I16 ||
           dt == KILN_DTYPE_I32 || dt == KILN_DTYPE_I64 || dt == KILN_DTYPE_I4 ||
           dt == KILN_DTYPE_I2;
}

int kiln__dtype_bits(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_I4: case KILN_DTYPE_U4: case KILN_DTYPE_F4E2M1: return 4;
    case KILN_DTYPE_I2: case KILN_DTYPE_U2: return 2;
    default: return 8 * (int)kiln_dtype_size(dt);
    }
}

/* ---- half precision ---------------------------------------------------- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float kiln_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return u2f(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {
        if (man == 0) return u2f(sign);
        /* subnormal: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t kiln_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or nan */
        return sign | 0x7c00 | (a > 0x7f800000u ? 0x200 | ((a >> 13) & 0x3ff) : 0);
    if (a >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                      /* below 2^-14: subnormal or zero */
        /* value * 2^24 rounded to nearest even, via float arithmetic */
        float v = u2f(a) * 16777216.0f;
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent */
    uint32_t half = r >> 13, low = r & 0x1fff;
    if (low > 0x1000 || (low == 0x1000 && (half & 1))) half++;
    return sign | (uint16_t)half;
}

float kiln_bf16_to_f32(uint16_t b) { return u2f((uint32_t)b << 16); }

uint16_t kiln_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- float8 and float4 ------------------------------------------------------
 *
 * A minifloat code is sign | exponent (ebits) | mantissa (mbits). Normal
 * values are (1 + M / 2^mbits) * 2^(E - bias), subnormals (E = 0)
 * M * 2^(1 - bias - mbits). The formats differ in where NaN and inf live:
 *   e4m3fn     bias 7,  no inf, NaN = S.1111.111, max 448
 *   e4m3fnuz   bias 8,  no inf, NaN = 0x80 (the would-be -0), max 240
 *   e5m2       bias 15, IEEE: inf = S.11111.00, NaN = S.11111.xx, max 57344
 *   e5m2fnuz   bias 16, no inf, NaN = 0x80, max 57344
 *   e2m1       bias 1,  4 bits, no inf or NaN, max 6
 * float8e8m0 is an exponent alone (2^(code - 127), NaN = 0xff), see below. */

typedef enum { MF_NAN_ALL_ONES, MF_NAN_IEEE, MF_NAN_UZ, MF_NAN_NONE } mf_nan;

typedef struct mf_format {
    int ebits, mbits, bias;
    mf_nan nan;
    unsigned max_code; /* largest finite positive code */
} mf_format;

static const mf_format *mf_format_of(kiln_dtype dt) {
    static const mf_format e4m3fn = {4, 3, 7, MF_NAN_ALL_ONES, 0x7e};
    static const mf_format e4m3fnuz = {4, 3, 8, MF_NAN_UZ, 0x7f};
    static const mf_format e5m2 = {5, 2, 15, MF_NAN_IEEE, 0x7b};
    static const mf_format e5m2fnuz = {5, 2, 16, MF_NAN_UZ, 0x7f};
    static const mf_format e2m1 = {2, 1, 1, MF_NAN_NONE, 0x7};
    switch (dt) {
    case KILN_DTYPE_F8E4M3FN: return &e4m3fn;
    case KILN_DTYPE_F8E4M3FNUZ: return &e4m3fnuz;
    case KILN_DTYPE_F8E5M2: return &e5m2;
    case KILN_DTYPE_F8E5M2FNUZ: return &e5m2fnuz;
    case KILN_DTYPE_F4E2M1: return &e2m1;
    default: return NULL;
    }
}

static double mf_decode(const mf_format *f, unsigned code) {
    unsigned emask = (1u << f->ebits) - 1, mmask = (1u << f->mbits) - 1;
    unsigned sign = (code >> (f->ebits + f->mbits)) & 1, e = (code >> f->mbits) & emask,
             m = code & mmask;
    double s = sign ? -1.0 : 1.0;
    switch (f->nan) {
    case MF_NAN_ALL_ONES:
        if (e == emask && m == mmask) return copysign(NAN, s);
        break;
    case MF_NAN_IEEE:
        if (e == emask) return m ? copysign(NAN, s) : s * INFINITY;
        break;
    case MF_NAN_UZ:
        if (sign && e == 0 && m == 0) return NAN;
        break;
    case MF_NAN_NONE:
        break;
    }
    double v = e ? ldexp(1.0 + (double)m / (double)(1u << f->mbits), (int)e - f->bias)
                 : ldexp((double)m, 1 - f->bias - f->mbits);
    return s * v;
}

/* The NaN code of the format for a NaN of the given sign bit. */
static uint8_t mf_nan_code(const mf_format *f, unsigned sign) {
    unsigned sbit = 1u << (f->ebits + f->mbits);
    switch (f->nan) {
    case MF_NAN_ALL_ONES: return (uint8_t)((sign ? sbit : 0) | (sbit - 1));
    case MF_NAN_IEEE: /* quiet NaN: exponent all ones, top mantissa bit */
        return (uint8_t)((sign ? sbit : 0) | (((1u << f->ebits) - 1) << f->mbits) |
                         (1u << (f->mbits - 1)));
    case MF_NAN_UZ: return 0x80;
    case MF_NAN_NONE: /* no NaN code: the sign-flipped zero, as ml_dtypes (the ONNX reference) */
    default: return (uint8_t)(sign ? 0 : sbit);
    }
}

static uint8_t mf_encode(const mf_format *f, double v, int saturate) {
    unsigned sbit = 1u << (f->ebits + f->mbits), sign = signbit(v) ? sbit : 0;
    if (isnan(v)) return mf_nan_code(f, sign != 0);
    double a = fabs(v), max = mf_decode(f, f->max_code);
    int min_exp = 1 - f->bias; /* exponent of the smallest normal */
    if (!isinf(a) && a != 0) { /* round to the format's grid, nearest even */
        int e;
        frexp(a, &e); /* a in [2^(e-1), 2^e) */
        e = e - 1 < min_exp ? min_exp : e - 1;
        double quantum = ldexp(1.0, e - f->mbits);
        a = rint(a / quantum) * quantum;
    }
    if (a > max) {
        if (saturate || f->nan == MF_NAN_NONE) a = max;
        else if (f->nan == MF_NAN_IEEE) return (uint8_t)(sign | (((1u << f->ebits) - 1) << f->mbits));
        else return mf_nan_code(f, sign != 0);
    }
    if (a == 0) return (uint8_t)(f->nan == MF_NAN_UZ ? 0 : sign); /* fnuz: no -0 */
    int e;
    frexp(a, &e);
    unsigned ecode, m;
    if (e - 1 < min_exp) { /* subnormal */
        ecode = 0;
        m = (unsigned)ldexp(a, f->bias - 1 + f->mbits);
    } else {
        ecode = (unsigned)(e - 1 + f->bias);
        m = (unsigned)((ldexp(a, 1 - e) - 1.0) * (double)(1u << f->mbits));
    }
    return (uint8_t)(sign | (ecode << f->mbits) | m);
}

/* float8e8m0: 2^(code - 127); 0xff is NaN; no sign, no zero. Encoding follows
 * ONNX's reference (numpy_helper.to_float8e8m0): the value is rounded to
 * float32 first and only its exponent field is kept (the sign is ignored,
 * float32 NaN/inf give 0xff); the mantissa decides the rounding:
 *   up:      any nonzero mantissa bumps the exponent;
 *   down:    the mantissa is dropped;
 *   nearest: bumps when mantissa bit 22 is set and (any lower bit is set or
 *            the float32 is normal).
 * A bump from 0xfe reaches 0xff (NaN) unless saturating. */
static double e8m0_decode(unsigned code) { return code == 0xff ? NAN : ldexp(1.0, (int)code - 127); }

uint8_t kiln__f8e8m0_from_f(double v, int saturate, kiln__e8m0_round mode) {
    uint32_t bits = f2u((float)v);
    uint32_t e = (bits >> 23) & 0xff, man = bits & 0x7fffff;
    if (e == 0xff) return 0xff;
    int bump = 0;
    switch (mode) {
    case KILN__E8M0_UP: bump = man != 0; break;
    case KILN__E8M0_NEAREST: bump = (man & 0x400000) && ((man & 0x3fffff) || e > 0); break;
    case KILN__E8M0_DOWN: break;
    }
    if (bump && saturate && e == 0xfe) bump = 0;
    return (uint8_t)(e + (uint32_t)bump);
}

double kiln__minifloat_to_f(kiln_dtype dt, uint8_t code) {
    if (dt == KILN_DTYPE_F8E8M0) return e8m0_decode(code);
    const mf_format *f = mf_format_of(dt);
    return f ? mf_decode(f, code & ((2u << (f->ebits + f->mbits)) - 1)) : 0.0;
}

uint8_t kiln__minifloat_from_f(kiln_dtype dt, double v, int saturate) {
    if (dt == KILN_DTYPE_F8E8M0) return kiln__f8e8m0_from_f(v, saturate, KILN__E8M0_UP);
    const mf_format *f = mf_format_of(dt);
    return f ? mf_encode(f, v, saturate) : 0;
}

/* ---- 4- and 2-bit integers ---------------------------------------------------- */

/* v's low `bits` bits, sign-extended when the dtype is signed (two's complement wrap). */
static int64_t wrap_bits(int64_t v, int bits, int is_signed) {
    uint64_t mask = ((uint64_t)1 << bits) - 1, u = (uint64_t)v & mask;
    if (is_signed && (u >> (bits - 1))) return (int64_t)u - (int64_t)(mask + 1);
    return (int64_t)u;
}

/* ---- generic element access -------------------------------------------- */

double kiln__ld_f(kiln_dtype dt, const void *base, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_F32: return ((const float *)base)[i];
    case KILN_DTYPE_F64: return ((const double *)base)[i];
    case KILN_DTYPE_F16: return kiln_f16_to_f32(((const uint16_t *)base)[i]);
    case KILN_DTYPE_BF16: return kiln_bf16_to_f32(((const uint16_t *)base)[i]);
    case KILN_DTYPE_U64: return (double)((const uint64_t *)base)[i];
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F8E8M0: case KILN_DTYPE_F4E2M1:
        return kiln__minifloat_to_f(dt, ((const uint8_t *)base)[i]);
    default: return (double)kiln__ld_i(dt, base, i);
    }
}

int64_t kiln__ld_i(kiln_dtype dt, const void *base, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_I8: case KILN_DTYPE_I4: case KILN_DTYPE_I2: return ((const int8_t *)base)[i];
    case KILN_DTYPE_U8: case KILN_DTYPE_U4: case KILN_DTYPE_U2: return ((const uint8_t *)base)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)base)[i] != 0;
    case KILN_DTYPE_I16: return ((const int16_t *)base)[i];
    case KILN_DTYPE_U16: return ((const uint16_t *)base)[i];
    case KILN_DTYPE_I32: return ((const int32_t *)base)[i];
    case KILN_DTYPE_U32: return ((const uint32_t *)base)[i];
    case KILN_DTYPE_I64: return ((const int64_t *)base)[i];
    case KILN_DTYPE_U64: return (int64_t)((const uint64_t *)base)[i];
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16:
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F8E8M0: case KILN_DTYPE_F4E2M1: {
        double v = kiln__ld_f(dt, base, i);
        if (v != v) return 0;
        if (v >= 9.2233720368547758e18) return INT64_MAX;
        if (v <= -9.2233720368547758e18) return INT64_MIN;
        return (int64_t)v;
    }
    default: return 0;
    }
}

uint64_t kiln__ld_u(kiln_dtype dt, const void *base, int64_t i) {
    if (dt == KILN_DTYPE_U64) return ((const uint64_t *)base)[i];
    if (kiln__dtype_is_float(dt)) {
        double v = kiln__ld_f(dt, base, i);
        if (!(v > 0)) return (uint64_t)(int64_t)(v != v ? 0 : v);
        if (v >= 1.8446744073709552e19) return UINT64_MAX;
        return (uint64_t)v;
    }
    return (uint64_t)kiln__ld_i(dt, base, i);
}

void kiln__st_f(kiln_dtype dt, void *base, int64_t i, double v) {
    switch (dt) {
    case KILN_DTYPE_F32: ((float *)base)[i] = (float)v; return;
    case KILN_DTYPE_F64: ((double *)base)[i] = v; return;
    case KILN_DTYPE_F16: ((uint16_t *)base)[i] = kiln_f32_to_f16((float)v); return;
    case KILN_DTYPE_BF16: ((uint16_t *)base)[i] = kiln_f32_to_bf16((float)v); return;
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F8E8M0: case KILN_DTYPE_F4E2M1:
        ((uint8_t *)base)[i] = kiln__minifloat_from_f(dt, v, 1);
        return;
    case KILN_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0; return;
    case KILN_DTYPE_U64:
        ((uint64_t *)base)[i] = v != v || v <= 0 ? (uint64_t)(int64_t)(v != v ? 0 : v)
                                : v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v;
        return;
    default: {
        int64_t x = v != v ? 0 : v >= 9.2233720368547758e18 ? INT64_MAX
                  : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v;
        kiln__st_i(dt, base, i, x);
        return;
    }
    }
}

void kiln__st_i(kiln_dtype dt, void *base, int64_t i, int64_t v) {
    switch (dt) {
    case KILN_DTYPE_I8: ((int8_t *)base)[i] = (int8_t)v; return;
    case KILN_DTYPE_U8: ((uint8_t *)base)[i] = (uint8_t)v; return;
    case KILN_DTYPE_BOOL: ((uint8_t *)base)[i] = v != 0; return;
    case KILN_DTYPE_I16: ((int16_t *)base)[i] = (int16_t)v; return;
    case KILN_DTYPE_U16: ((uint16_t *)base)[i] = (uint16_t)v; return;
    case KILN_DTYPE_I32: ((int32_t *)base)[i] = (int32_t)v; return;
    case KILN_DTYPE_U32: ((uint32_t *)base)[i] = (uint32_t)v; return;
    case KILN_DTYPE_I64: ((int64_t *)base)[i] = v; return;
    case KILN_DTYPE_U64: ((uint64_t *)base)[i] = (uint64_t)v; return;
    case KILN_DTYPE_I4: ((int8_t *)base)[i] = (int8_t)wrap_bits(v, 4, 1); return;
    case KILN_DTYPE_U4: ((uint8_t *)base)[i] = (uint8_t)wrap_bits(v, 4, 0); return;
    case KILN_DTYPE_I2: ((int8_t *)base)[i] = (int8_t)wrap_bits(v, 2, 1); return;
    case KILN_DTYPE_U2: ((uint8_t *)base)[i] = (uint8_t)wrap_bits(v, 2, 0); return;
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16:
    case KILN_DTYPE_F8E4M3FN: case KILN_DTYPE_F8E4M3FNUZ: case KILN_DTYPE_F8E5M2:
    case KILN_DTYPE_F8E5M2FNUZ: case KILN_DTYPE_F8E8M0: case KILN_DTYPE_F4E2M1:
        kiln__st_f(dt, base, i, (double)v);
        return;
    default: return;
    }
}

void kiln__st_u(kiln_dtype dt, void *base, int64_t i, uint64_t v) {
    if (kiln__dtype_is_float(dt))
        kiln__st_f(dt, base, i, (double)v);
    else
        kiln__st_i(dt, base, i, (int64_t)v);
}
