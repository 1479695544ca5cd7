/* src/cpu/ref/binary.c: broadcasting binary reference kernels (arithmetic,
 * Pow, Mod, logical, bitwise, comparisons), the variadic Sum/Mean/Max/Min and
 * Where.
 *
 * A: (shape a), B: (shape b), C: (numpy broadcast of a and b). Integer
 * semantics follow numpy/ONNX: + - * wrap, Div truncates toward zero, Mod
 * takes the divisor's sign unless fmod = 1; division by zero gives 0 (numpy's
 * value) instead of trapping. */
#include <math.h>
#include <string.h>

#include "cpu/ref/elementwise.h"

#define F2(name, expr)                                                     \
    static double name(double a, double b, const kiln__ew_prm *p) {        \
        (void)p;                                                           \
        return (expr);                                                     \
    }
#define I2(name, expr)                                                     \
    static int64_t name(int64_t a, int64_t b, const kiln__ew_prm *p) {     \
        (void)p;                                                           \
        return (expr);                                                     \
    }
#define U2(name, expr)                                                     \
    static uint64_t name(uint64_t a, uint64_t b, const kiln__ew_prm *p) {  \
        (void)p;                                                           \
        return (expr);                                                     \
    }

#define NUM KILN__EW_NUM
#define NONE KILN_DTYPE_UNDEFINED
#define BOOL KILN_DTYPE_BOOL

/* ---- arithmetic ------------------------------------------------------------------ */

/* Signed + - * in uint64 so that overflow wraps instead of being UB. */
#define WRAP(op) ((int64_t)((uint64_t)a op (uint64_t)b))

F2(f_add, a + b)
I2(i_add, WRAP(+))
U2(u_add, a + b)
F2(f_sub, a - b)
I2(i_sub, WRAP(-))
U2(u_sub, a - b)
F2(f_mul, a * b)
I2(i_mul, WRAP(*))
U2(u_mul, a * b)
F2(f_div, a / b)
/* C division truncates; x / 0 is 0 and INT_MIN / -1 wraps. */
I2(i_div, b == 0 ? 0 : b == -1 ? (int64_t)(0u - (uint64_t)a) : a / b)
U2(u_div, b == 0 ? 0 : a / b)

KILN__EW_BINARY_OP(Add, NUM, 1, NONE, NULL, f_add, i_add, u_add, NULL)
KILN__EW_BINARY_OP(Sub, NUM, 1, NONE, NULL, f_sub, i_sub, u_sub, NULL)
KILN__EW_BINARY_OP(Mul, NUM, 1, NONE, NULL, f_mul, i_mul, u_mul, NULL)
KILN__EW_BINARY_OP(Div, NUM, 1, NONE, NULL, f_div, i_div, u_div, NULL)

/* ---- Pow: base and exponent may have different dtypes; C has the base's ---------- */

/* Integer power by squaring, wrapping. Negative exponents truncate the real
 * result toward zero (only |a| == 1 survives). */
static int64_t i_pow(int64_t a, int64_t b, const kiln__ew_prm *p) {
    if (b < 0) return a == 1 ? 1 : a == -1 ? (b % 2 ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    for (uint64_t e = (uint64_t)b; e; e >>= 1, base *= base)
        if (e & 1) r *= base;
    return (int64_t)r;
}
static uint64_t u_pow(uint64_t a, uint64_t b, const kiln__ew_prm *p) {
    uint64_t r = 1;
    for (; b; b >>= 1, a *= a)
        if (b & 1) r *= a;
    return r;
}
F2(f_pow, pow(a, b))

KILN__EW_BINARY_OP(Pow, NUM, 0, NONE, NULL, f_pow, i_pow, u_pow, NULL)

/* ---- Mod ------------------------------------------------------------------------- */

static kiln_status prm_mod(const kiln__kctx *c, kiln__ew_prm *p) {
    p->mode = kiln__attr_i(c->node, "fmod", 0);
    if (p->mode != 0 && p->mode != 1)
        return kiln__err(KILN_E_INVAL, "attribute 'fmod' is %lld, expected 0 or 1",
                         (long long)p->mode);
    return KILN_OK;
}

/* Floats always use C fmod (the ONNX reference does so even with fmod = 0). */
F2(f_mod, fmod(a, b))
static int64_t i_mod(int64_t a, int64_t b, const kiln__ew_prm *p) {
    if (b == 0 || b == -1) return 0; /* x % -1 == 0, and avoids INT_MIN % -1 */
    int64_t r = a % b;               /* sign of the dividend (fmod = 1) */
    if (!p->mode && r != 0 && (r < 0) != (b < 0)) r += b; /* sign of the divisor */
    return r;
}
U2(u_mod, b == 0 ? 0 : a % b)

kiln_status kiln__infer_Mod(kiln__kctx *c) {
    return kiln__ew_binary_infer(c, NUM, 1, NONE, prm_mod);
}
kiln_status kiln__ref_Mod(kiln__kctx *c) {
    static const kiln__ew_binary op = {f_mod, i_mod, u_mod, NULL};
    return kiln__ew_binary_ref(c, &op, prm_mod);
}

/* ---- logical (bool) and bitwise (integers) ------------------------------------------ */

U2(u_and, a && b)
U2(u_or, a || b)
U2(u_xor, !a != !b)
I2(i_bitand, a & b)
U2(u_bitand, a & b)
I2(i_bitor, a | b)
U2(u_bitor, a | b)
I2(i_bitxor, a ^ b)
U2(u_bitxor, a ^ b)

KILN__EW_BINARY_OP(And, KILN__EW_BOOL, 1, BOOL, NULL, NULL, NULL, u_and, NULL)
KILN__EW_BINARY_OP(Or, KILN__EW_BOOL, 1, BOOL, NULL, NULL, NULL, u_or, NULL)
KILN__EW_BINARY_OP(Xor, KILN__EW_BOOL, 1, BOOL, NULL, NULL, NULL, u_xor, NULL)
KILN__EW_BINARY_OP(BitwiseAnd, KILN__EW_INT, 1, NONE, NULL, NULL, i_bitand, u_bitand, NULL)
KILN__EW_BINARY_OP(BitwiseOr, KILN__EW_INT, 1, NONE, NULL, NULL, i_bitor, u_bitor, NULL)
KILN__EW_BINARY_OP(BitwiseXor, KILN__EW_INT, 1, NONE, NULL, NULL, i_bitxor, u_bitxor, NULL)

#define SHIFT_LEFT 1

static kiln_status prm_bitshift(const kiln__kctx *c, kiln__ew_prm *p) {
    const char *d = kiln__attr_s(c->node, "direction", NULL);
    if (!d) return kiln__err(KILN_E_INVAL, "required attribute 'direction' is missing");
    if (strcmp(d, "LEFT") == 0)
        p->mode = SHIFT_LEFT;
    else if (strcmp(d, "RIGHT") == 0)
        p->mode = 0;
    else
        return kiln__err(KILN_E_INVAL, "attribute 'direction' is \"%s\", expected \"LEFT\" or \"RIGHT\"", d);
    return KILN_OK;
}

/* Bits shifted past the dtype's width are dropped on store, so shifting in
 * uint64 gives the dtype's result for any amount below 64. */
static uint64_t u_shift(uint64_t a, uint64_t b, const kiln__ew_prm *p) {
    if (b >= 64) return 0;
    return p->mode == SHIFT_LEFT ? a << b : a >> b;
}

kiln_status kiln__infer_BitShift(kiln__kctx *c) {
    return kiln__ew_binary_infer(c, KILN__EW_UINT, 1, NONE, prm_bitshift);
}
kiln_status kiln__ref_BitShift(kiln__kctx *c) {
    static const kiln__ew_binary op = {NULL, NULL, u_shift, NULL};
    return kiln__ew_binary_ref(c, &op, prm_bitshift);
}

/* ---- comparisons: C is bool ---------------------------------------------------------- */

static int s_equal(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

#define CMP(Name, mask, OP, s)                                                        \
    F2(f_##Name, a OP b)                                                              \
    I2(i_##Name, a OP b)                                                              \
    U2(u_##Name, a OP b)                                                              \
    KILN__EW_BINARY_OP(Name, mask, 1, BOOL, NULL, f_##Name, i_##Name, u_##Name, s)

CMP(Equal, NUM | KILN__EW_BOOL | KILN__EW_STRING, ==, s_equal)
CMP(Greater, NUM, >, NULL)
CMP(GreaterOrEqual, NUM, >=, NULL)
CMP(Less, NUM, <, NULL)
CMP(LessOrEqual, NUM, <=, NULL)

/* ---- variadic: data_0..data_{n-1} broadcast together ---------------------------------- */

/* NaN wins, as numpy's maximum/minimum. */
F2(f_max, a != a ? a : b != b ? b : a > b ? a : b)
I2(i_max, a > b ? a : b)
U2(u_max, a > b ? a : b)
F2(f_min, a != a ? a : b != b ? b : a < b ? a : b)
I2(i_min, a < b ? a : b)
U2(u_min, a < b ? a : b)

static const kiln__ew_binary ew_sum = {f_add, i_add, u_add, NULL};
static const kiln__ew_binary ew_max = {f_max, i_max, u_max, NULL};
static const kiln__ew_binary ew_min = {f_min, i_min, u_min, NULL};

kiln_status kiln__infer_Sum(kiln__kctx *c) { return kiln__ew_infer_variadic(c, KILN__EW_FLOAT); }
kiln_status kiln__ref_Sum(kiln__kctx *c) { return kiln__ew_variadic_run(c, &ew_sum, NULL); }
kiln_status kiln__infer_Max(kiln__kctx *c) { return kiln__ew_infer_variadic(c, NUM); }
kiln_status kiln__ref_Max(kiln__kctx *c) { return kiln__ew_variadic_run(c, &ew_max, NULL); }
kiln_status kiln__infer_Min(kiln__kctx *c) { return kiln__ew_infer_variadic(c, NUM); }
kiln_status kiln__ref_Min(kiln__kctx *c) { return kiln__ew_variadic_run(c, &ew_min, NULL); }

static double f_scale(double x, const kiln__ew_prm *p) { return x / p->alpha; }

kiln_status kiln__infer_Mean(kiln__kctx *c) { return kiln__ew_infer_variadic(c, KILN__EW_FLOAT); }
/* The sum is rounded to the dtype after each input, as the ONNX reference. */
kiln_status kiln__ref_Mean(kiln__kctx *c) {
    static const kiln__ew_unary scale = {f_scale, NULL, NULL};
    kiln__ew_prm p = {.alpha = c->n_in};
    KILN__TRY(kiln__ew_variadic_run(c, &ew_sum, NULL));
    return kiln__ew_unary_run(c, &scale, &p, c->out[0], c->out[0]); /* same share of y */
}

/* ---- Where ------------------------------------------------------------------------------ */

// condition: bool, X, Y: same dtype (any, strings too); all broadcast together
kiln_status kiln__infer_Where(kiln__kctx *c) {
    kiln_tensor *cond, *x, *y;
    KILN__TRY(kiln__ew_input(c, 0, "condition", &cond));
    KILN__TRY(kiln__ew_input(c, 1, "X", &x));
    KILN__TRY(kiln__ew_input(c, 2, "Y", &y));
    KILN__TRY(kiln__ew_check(cond, "input 'condition'", KILN__EW_BOOL));
    KILN__TRY(kiln__ew_check(x, "input 'X'", KILN__EW_ANY));
    if (y->dtype != x->dtype)
        return kiln__err(KILN_E_TYPE, "input 'Y' has dtype %s, expected %s like 'X'",
                         kiln_dtype_name(y->dtype), kiln_dtype_name(x->dtype));
    int nd;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(kiln__broadcast(cond->ndim, cond->dims, x->ndim, x->dims, &nd, dims));
    KILN__TRY(kiln__broadcast(nd, dims, y->ndim, y->dims, &nd, dims));
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

kiln_status kiln__ref_Where(kiln__kctx *c) {
    return kiln__ew_select_run(c, c->in[0], c->in[1], c->in[2], c->out[0]);
}
