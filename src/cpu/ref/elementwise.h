/* src/cpu/ref/elementwise.h: machinery shared by the elementwise reference
 * kernels (unary.c, activation.c, binary.c, cast.c; the drivers live in
 * elementwise.c). Private to src/cpu/ref.
 *
 * Every element is computed in one of three value classes picked from its
 * dtype:
 *   F  f16, bf16, f32, f64: computed in double and rounded once on store
 *      (for + - * / sqrt this is exactly numpy's f32/f16 result);
 *   I  signed integers: computed in int64, wrapping (uint64 arithmetic);
 *   U  unsigned integers and bool: computed in uint64.
 * Storing into a narrower integer keeps the low bits (two's complement wrap),
 * as numpy does. An op is a small table of per-class functions; the drivers
 * load, convert, call and store. A class without a function falls back to F
 * (the value goes through double and the result is truncated back).
 */
#ifndef KILN_CPU_REF_ELEMENTWISE_H
#define KILN_CPU_REF_ELEMENTWISE_H

#include <string.h>

#include "ops/op.h"

typedef enum { KILN__EW_F, KILN__EW_I, KILN__EW_U, KILN__EW_S } kiln__ew_class;

typedef union kiln__ew_val {
    double f;
    int64_t i;
    uint64_t u;
} kiln__ew_val;

static inline kiln__ew_class kiln__ew_class_of(kiln_dtype dt) {
    switch (dt) {
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16:
        return KILN__EW_F;
    case KILN_DTYPE_I8: case KILN_DTYPE_I16: case KILN_DTYPE_I32: case KILN_DTYPE_I64:
        return KILN__EW_I;
    case KILN_DTYPE_STRING:
        return KILN__EW_S;
    default:
        return KILN__EW_U;
    }
}

/* Element k of a contiguous buffer of dtype dt, in dt's class (strings: 0). */
static inline kiln__ew_val kiln__ew_load(kiln_dtype dt, const void *base, int64_t k) {
    kiln__ew_val v;
    switch (dt) {
    case KILN_DTYPE_F32: v.f = ((const float *)base)[k]; break;
    case KILN_DTYPE_F64: v.f = ((const double *)base)[k]; break;
    case KILN_DTYPE_F16: v.f = kiln_f16_to_f32(((const uint16_t *)base)[k]); break;
    case KILN_DTYPE_BF16: v.f = kiln_bf16_to_f32(((const uint16_t *)base)[k]); break;
    case KILN_DTYPE_I8: v.i = ((const int8_t *)base)[k]; break;
    case KILN_DTYPE_I16: v.i = ((const int16_t *)base)[k]; break;
    case KILN_DTYPE_I32: v.i = ((const int32_t *)base)[k]; break;
    case KILN_DTYPE_I64: v.i = ((const int64_t *)base)[k]; break;
    case KILN_DTYPE_U8: v.u = ((const uint8_t *)base)[k]; break;
    case KILN_DTYPE_U16: v.u = ((const uint16_t *)base)[k]; break;
    case KILN_DTYPE_U32: v.u = ((const uint32_t *)base)[k]; break;
    case KILN_DTYPE_U64: v.u = ((const uint64_t *)base)[k]; break;
    case KILN_DTYPE_BOOL: v.u = ((const uint8_t *)base)[k] != 0; break;
    default: v.u = 0; break;
    }
    return v;
}

/* v (of class from) as class to. F to I/U truncates toward zero; NaN and
 * out-of-range values (undefined in ONNX) give INT64_MIN as x86 does. */
kiln__ew_val kiln__ew_convert(kiln__ew_class from, kiln__ew_class to, kiln__ew_val v);
/* Stores v (of class cls) as element k of dtype dt: floats round to nearest
 * even (once, from double), integers wrap, bool is v != 0. */
void kiln__ew_store(kiln_dtype dt, void *base, int64_t k, kiln__ew_class cls, kiln__ew_val v);
/* Sets string slot *slot to a copy of s, freeing the previous string. */
kiln_status kiln__ew_set_string(char **slot, const char *s);

/* ---- ops ------------------------------------------------------------------ */

/* What an op's functions may read: attributes and Clip bounds. */
typedef struct kiln__ew_prm {
    double alpha, beta, gamma; /* float attributes */
    kiln__ew_val lo, hi;       /* Clip bounds, in the input's class */
    int64_t mode;              /* integer attribute (Mod fmod, BitShift direction, ...) */
} kiln__ew_prm;

typedef struct kiln__ew_unary {
    double (*f)(double x, const kiln__ew_prm *p);
    int64_t (*i)(int64_t x, const kiln__ew_prm *p);
    uint64_t (*u)(uint64_t x, const kiln__ew_prm *p);
} kiln__ew_unary;

typedef struct kiln__ew_binary {
    double (*f)(double a, double b, const kiln__ew_prm *p);
    int64_t (*i)(int64_t a, int64_t b, const kiln__ew_prm *p);
    uint64_t (*u)(uint64_t a, uint64_t b, const kiln__ew_prm *p);
    int (*s)(const char *a, const char *b); /* string operands: result 0/1 (bool output) */
} kiln__ew_binary;

/* ---- drivers (KILN_OPF_PARALLEL: each thread does its share of y) -------- */

/* y[k] = op(x[k]); x and y have the same number of elements. In place is fine. */
kiln_status kiln__ew_unary_run(const kiln__kctx *c, const kiln__ew_unary *op,
                               const kiln__ew_prm *p, const kiln_tensor *x, kiln_tensor *y);
/* y = op(a, b) with numpy broadcasting of a and b to y's shape. a or b may be y
 * itself (then of y's shape: each element is read before it is written). */
kiln_status kiln__ew_binary_run(const kiln__kctx *c, const kiln__ew_binary *op,
                                const kiln__ew_prm *p, const kiln_tensor *a,
                                const kiln_tensor *b, kiln_tensor *y);
/* y = op(...op(op(in0, in1), in2)..., in_{n-1}) over all inputs of c, broadcast;
 * one input: a copy. */
kiln_status kiln__ew_variadic_run(const kiln__kctx *c, const kiln__ew_binary *op,
                                  const kiln__ew_prm *p);
/* y = cond ? a : b with broadcasting (any dtype, strings copied). */
kiln_status kiln__ew_select_run(const kiln__kctx *c, const kiln_tensor *cond,
                                const kiln_tensor *a, const kiln_tensor *b, kiln_tensor *y);
/* y = x (same dtype and element count), strings duplicated. */
kiln_status kiln__ew_copy_run(const kiln__kctx *c, const kiln_tensor *x, kiln_tensor *y);

/* ---- one-line op definitions ------------------------------------------------ */

/* Reads an op's attributes into p; called by infer (to validate) and by the
 * kernel. NULL when the op has none. */
typedef kiln_status (*kiln__ew_prm_fn)(const kiln__kctx *c, kiln__ew_prm *p);

kiln_status kiln__ew_unary_infer(kiln__kctx *c, unsigned mask, kiln_dtype out_dt,
                                 kiln__ew_prm_fn prm);
kiln_status kiln__ew_unary_ref(kiln__kctx *c, const kiln__ew_unary *op, kiln__ew_prm_fn prm);
kiln_status kiln__ew_binary_infer(kiln__kctx *c, unsigned mask, int same_dtype,
                                  kiln_dtype out_dt, kiln__ew_prm_fn prm);
kiln_status kiln__ew_binary_ref(kiln__kctx *c, const kiln__ew_binary *op, kiln__ew_prm_fn prm);

/* Defines kiln__infer_Name and kiln__ref_Name of a unary op: input dtypes in
 * mask, output dtype out_dt (KILN_DTYPE_UNDEFINED: the input's), attributes
 * read by prm, per-class functions f, i, u (any may be NULL). */
#define KILN__EW_UNARY_OP(Name, mask, out_dt, prm, f, i, u)                  \
    kiln_status kiln__infer_##Name(kiln__kctx *c) {                          \
        return kiln__ew_unary_infer(c, (mask), (out_dt), (prm));             \
    }                                                                        \
    kiln_status kiln__ref_##Name(kiln__kctx *c) {                            \
        static const kiln__ew_unary op_ = {(f), (i), (u)};                   \
        return kiln__ew_unary_ref(c, &op_, (prm));                           \
    }

/* Same for a broadcasting binary op (s: string comparison or NULL). */
#define KILN__EW_BINARY_OP(Name, mask, same_dtype, out_dt, prm, f, i, u, s)  \
    kiln_status kiln__infer_##Name(kiln__kctx *c) {                          \
        return kiln__ew_binary_infer(c, (mask), (same_dtype), (out_dt), (prm)); \
    }                                                                        \
    kiln_status kiln__ref_##Name(kiln__kctx *c) {                            \
        static const kiln__ew_binary op_ = {(f), (i), (u), (s)};             \
        return kiln__ew_binary_ref(c, &op_, (prm));                          \
    }

/* ---- infer helpers ---------------------------------------------------------- */

#define KILN__EW_M(dt) (1u << KILN_DTYPE_##dt)
#define KILN__EW_FLOAT (KILN__EW_M(F16) | KILN__EW_M(BF16) | KILN__EW_M(F32) | KILN__EW_M(F64))
#define KILN__EW_SINT (KILN__EW_M(I8) | KILN__EW_M(I16) | KILN__EW_M(I32) | KILN__EW_M(I64))
#define KILN__EW_UINT (KILN__EW_M(U8) | KILN__EW_M(U16) | KILN__EW_M(U32) | KILN__EW_M(U64))
#define KILN__EW_INT (KILN__EW_SINT | KILN__EW_UINT)
#define KILN__EW_BOOL KILN__EW_M(BOOL)
#define KILN__EW_STRING KILN__EW_M(STRING)
#define KILN__EW_SIGNED (KILN__EW_FLOAT | KILN__EW_SINT)
#define KILN__EW_NUM (KILN__EW_FLOAT | KILN__EW_INT)
#define KILN__EW_ANY (KILN__EW_NUM | KILN__EW_BOOL | KILN__EW_STRING)

/* Input i of c, or an error naming it when it is omitted. */
kiln_status kiln__ew_input(const kiln__kctx *c, int i, const char *what, kiln_tensor **out);
/* Fails unless t's dtype is in mask, naming what and listing the allowed dtypes. */
kiln_status kiln__ew_check(const kiln_tensor *t, const char *what, unsigned mask);
/* Unary: input 0 of a dtype in mask; output 0 of its shape with dtype out_dt
 * (KILN_DTYPE_UNDEFINED: the input's dtype). */
kiln_status kiln__ew_infer_unary(kiln__kctx *c, unsigned mask, kiln_dtype out_dt);
/* Binary: inputs 0 and 1 in mask (same dtype when same_dtype), output 0 of
 * the broadcast shape with dtype out_dt (UNDEFINED: input 0's dtype). */
kiln_status kiln__ew_infer_binary(kiln__kctx *c, unsigned mask, int same_dtype,
                                  kiln_dtype out_dt);
/* Variadic: every input in mask, all the same dtype, broadcast together. */
kiln_status kiln__ew_infer_variadic(kiln__kctx *c, unsigned mask);

#endif
