/* src/core/dtype.c: dtype traits, f16/bf16 conversion, generic element access. */
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
           dt == KILN_DTYPE_BF16;
}

int kiln__dtype_is_int(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_I8: case KILN_DTYPE_U8: case KILN_DTYPE_I16: case KILN_DTYPE_U16:
    case KILN_DTYPE_I32: case KILN_DTYPE_U32: case KILN_DTYPE_I64: case KILN_DTYPE_U64:
        return 1;
    default:
        return 0;
    }
}

int kiln__dtype_is_signed(kiln_dtype dt) {
    return kiln__dtype_is_float(dt) || dt == KILN_DTYPE_I8 || dt == KILN_DTYPE_I16 ||
           dt == KILN_DTYPE_I32 || dt == KILN_DTYPE_I64;
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

/* ---- generic element access -------------------------------------------- */

double kiln__ld_f(kiln_dtype dt, const void *base, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_F32: return ((const float *)base)[i];
    case KILN_DTYPE_F64: return ((const double *)base)[i];
    case KILN_DTYPE_F16: return kiln_f16_to_f32(((const uint16_t *)base)[i]);
    case KILN_DTYPE_BF16: return kiln_bf16_to_f32(((const uint16_t *)base)[i]);
    case KILN_DTYPE_U64: return (double)((const uint64_t *)base)[i];
    default: return (double)kiln__ld_i(dt, base, i);
    }
}

int64_t kiln__ld_i(kiln_dtype dt, const void *base, int64_t i) {
    switch (dt) {
    case KILN_DTYPE_I8: return ((const int8_t *)base)[i];
    case KILN_DTYPE_U8: return ((const uint8_t *)base)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)base)[i] != 0;
    case KILN_DTYPE_I16: return ((const int16_t *)base)[i];
    case KILN_DTYPE_U16: return ((const uint16_t *)base)[i];
    case KILN_DTYPE_I32: return ((const int32_t *)base)[i];
    case KILN_DTYPE_U32: return ((const uint32_t *)base)[i];
    case KILN_DTYPE_I64: return ((const int64_t *)base)[i];
    case KILN_DTYPE_U64: return (int64_t)((const uint64_t *)base)[i];
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16: {
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
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16:
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
