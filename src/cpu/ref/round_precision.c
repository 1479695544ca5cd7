/* src/cpu/ref/round_precision.c: kiln.RoundToPrecision, what mixed-precision
 * training puts around matrix products (src/train/mixed_precision.c).
 *
 *   kiln.RoundToPrecision(X) -> Y, attribute `to` (TensorProto number:
 *   10 float16 or 16 bfloat16): X and Y float32 of one shape; every element
 *   rounded to the nearest value of type `to` (ties to even), kept in float32.
 *   float16 overflows to +-inf and flushes below its subnormals to +-0, as a
 *   cast to it does; NaN stays NaN.
 *
 * Y holds exactly what a tensor of type `to` would, so a product of rounded
 * operands, accumulated in float32, is the low-precision product. */
#include "ops/op.h"

static kiln_status round_target(const kiln__kctx *c, kiln_dtype *to) {
    *to = (kiln_dtype)kiln__attr_i(c->node, "to", 0);
    if (*to != KILN_DTYPE_F16 && *to != KILN_DTYPE_BF16)
        return kiln__err(KILN_E_INVAL, "attribute 'to' is %d, expected 10 (float16) or 16 (bfloat16)",
                         (int)*to);
    return KILN_OK;
}

// X: (any shape) f32; Y: like X
kiln_status kiln__infer_RoundToPrecision(kiln__kctx *c) {
    kiln_dtype to;
    KILN__TRY(round_target(c, &to));
    KILN__TRY(kiln__check_dtype(c->in[0], "X", KILN_DTYPE_F32, 0));
    return kiln__out_like(c, 0, c->in[0]);
}

/* Elements [lo, hi) of this thread; Y may be X's buffer (in place). */
kiln_status kiln__ref_RoundToPrecision(kiln__kctx *c) {
    kiln_dtype to;
    KILN__TRY(round_target(c, &to));
    const float *x = (const float *)c->in[0]->data;
    float *y = (float *)c->out[0]->data;
    int64_t lo, hi;
    kiln__split(kiln__n(c->out[0]), c->ith, c->nth, &lo, &hi);
    if (to == KILN_DTYPE_BF16)
        for (int64_t i = lo; i < hi; i++) y[i] = kiln_bf16_to_f32(kiln_f32_to_bf16(x[i]));
    else
        for (int64_t i = lo; i < hi; i++) y[i] = kiln_f16_to_f32(kiln_f32_to_f16(x[i]));
    return KILN_OK;
}
