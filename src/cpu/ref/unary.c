/* src/cpu/ref/unary.c: unary math, logical/bitwise Not, IsInf/IsNaN and
 * Identity reference kernels.
 *
 * Every op here maps x: (any shape) to y: (same shape). Each is a few
 * per-class functions (see elementwise.h): float dtypes are computed in double
 * and rounded once on store; integers wrap like numpy. */
#include <math.h>

#include "cpu/ref/elementwise.h"

#define F1(name, expr) \
    static double name(double x, const kiln__ew_prm *p) { (void)p; return (expr); }
#define I1(name, expr) \
    static int64_t name(int64_t x, const kiln__ew_prm *p) { (void)p; return (expr); }
#define U1(name, expr) \
    static uint64_t name(uint64_t x, const kiln__ew_prm *p) { (void)p; return (expr); }

/* Negation in two's complement without signed-overflow UB. */
static inline int64_t wrap_neg(int64_t x) { return (int64_t)(0u - (uint64_t)x); }

/* ---- math on float dtypes -------------------------------------------------- */

F1(f_acos, acos(x))
F1(f_acosh, acosh(x))
F1(f_asin, asin(x))
F1(f_asinh, asinh(x))
F1(f_atan, atan(x))
F1(f_atanh, atanh(x))
F1(f_ceil, ceil(x))
F1(f_cos, cos(x))
F1(f_cosh, cosh(x))
F1(f_erf, erf(x))
F1(f_exp, exp(x))
F1(f_floor, floor(x))
F1(f_log, log(x))
F1(f_reciprocal, 1.0 / x)
F1(f_round, nearbyint(x)) /* half to even (default rounding mode), as numpy */
F1(f_sin, sin(x))
F1(f_sinh, sinh(x))
F1(f_sqrt, sqrt(x))
F1(f_tan, tan(x))
F1(f_tanh, tanh(x))

#define FLOATS KILN__EW_FLOAT
#define NONE KILN_DTYPE_UNDEFINED

KILN__EW_UNARY_OP(Acos, FLOATS, NONE, NULL, f_acos, NULL, NULL)
KILN__EW_UNARY_OP(Acosh, FLOATS, NONE, NULL, f_acosh, NULL, NULL)
KILN__EW_UNARY_OP(Asin, FLOATS, NONE, NULL, f_asin, NULL, NULL)
KILN__EW_UNARY_OP(Asinh, FLOATS, NONE, NULL, f_asinh, NULL, NULL)
KILN__EW_UNARY_OP(Atan, FLOATS, NONE, NULL, f_atan, NULL, NULL)
KILN__EW_UNARY_OP(Atanh, FLOATS, NONE, NULL, f_atanh, NULL, NULL)
KILN__EW_UNARY_OP(Ceil, FLOATS, NONE, NULL, f_ceil, NULL, NULL)
KILN__EW_UNARY_OP(Cos, FLOATS, NONE, NULL, f_cos, NULL, NULL)
KILN__EW_UNARY_OP(Cosh, FLOATS, NONE, NULL, f_cosh, NULL, NULL)
KILN__EW_UNARY_OP(Erf, FLOATS, NONE, NULL, f_erf, NULL, NULL)
KILN__EW_UNARY_OP(Exp, FLOATS, NONE, NULL, f_exp, NULL, NULL)
KILN__EW_UNARY_OP(Floor, FLOATS, NONE, NULL, f_floor, NULL, NULL)
KILN__EW_UNARY_OP(Log, FLOATS, NONE, NULL, f_log, NULL, NULL)
KILN__EW_UNARY_OP(Reciprocal, FLOATS, NONE, NULL, f_reciprocal, NULL, NULL)
KILN__EW_UNARY_OP(Round, FLOATS, NONE, NULL, f_round, NULL, NULL)
KILN__EW_UNARY_OP(Sin, FLOATS, NONE, NULL, f_sin, NULL, NULL)
KILN__EW_UNARY_OP(Sinh, FLOATS, NONE, NULL, f_sinh, NULL, NULL)
KILN__EW_UNARY_OP(Sqrt, FLOATS, NONE, NULL, f_sqrt, NULL, NULL)
KILN__EW_UNARY_OP(Tan, FLOATS, NONE, NULL, f_tan, NULL, NULL)
KILN__EW_UNARY_OP(Tanh, FLOATS, NONE, NULL, f_tanh, NULL, NULL)

/* ---- ops that also take integers ------------------------------------------- */

F1(f_abs, fabs(x))
I1(i_abs, x < 0 ? wrap_neg(x) : x) /* abs(INT_MIN) wraps to INT_MIN, as numpy */
U1(u_self, x)
F1(f_neg, -x)
I1(i_neg, wrap_neg(x))
F1(f_sign, x > 0 ? 1.0 : x < 0 ? -1.0 : x) /* 0 and NaN stay */
I1(i_sign, (x > 0) - (x < 0))
U1(u_sign, x > 0)

KILN__EW_UNARY_OP(Abs, KILN__EW_NUM, NONE, NULL, f_abs, i_abs, u_self)
KILN__EW_UNARY_OP(Neg, KILN__EW_SIGNED, NONE, NULL, f_neg, i_neg, NULL)
KILN__EW_UNARY_OP(Sign, KILN__EW_NUM, NONE, NULL, f_sign, i_sign, u_sign)

/* ---- logical and bitwise ----------------------------------------------------- */

U1(u_not, !x)
I1(i_bitnot, ~x)
U1(u_bitnot, ~x) /* high bits beyond the dtype are dropped on store */

KILN__EW_UNARY_OP(Not, KILN__EW_BOOL, NONE, NULL, NULL, NULL, u_not)
KILN__EW_UNARY_OP(BitwiseNot, KILN__EW_INT, NONE, NULL, NULL, i_bitnot, u_bitnot)

/* ---- classification: float x to bool y ------------------------------------------ */

#define ISINF_NEG 1
#define ISINF_POS 2

static kiln_status prm_isinf(const kiln__kctx *c, kiln__ew_prm *p) {
    p->mode = (kiln__attr_i(c->node, "detect_negative", 1) ? ISINF_NEG : 0) |
              (kiln__attr_i(c->node, "detect_positive", 1) ? ISINF_POS : 0);
    return KILN_OK;
}

static double f_isinf(double x, const kiln__ew_prm *p) {
    return isinf(x) && (p->mode & (x < 0 ? ISINF_NEG : ISINF_POS));
}
F1(f_isnan, isnan(x))

KILN__EW_UNARY_OP(IsInf, FLOATS, KILN_DTYPE_BOOL, prm_isinf, f_isinf, NULL, NULL)
KILN__EW_UNARY_OP(IsNaN, FLOATS, KILN_DTYPE_BOOL, NULL, f_isnan, NULL, NULL)

/* ---- Identity -------------------------------------------------------------------- */

// input: any shape, any dtype (strings copied), or a sequence / optional
// (deep-copied); output: same
kiln_status kiln__infer_Identity(kiln__kctx *c) { return kiln__out_like(c, 0, c->in[0]); }

kiln_status kiln__ref_Identity(kiln__kctx *c) {
    if (kiln__is_container(c->in[0]->dtype)) /* one deep copy, on the first thread */
        return c->ith == 0 ? kiln__tensor_copy_data(c->out[0], c->in[0]) : KILN_OK;
    return kiln__ew_copy_run(c, c->in[0], c->out[0]);
}
