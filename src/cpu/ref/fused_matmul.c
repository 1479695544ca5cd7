/* src/cpu/ref/fused_matmul.c: shape rule and reference kernel of
 * kiln.FusedMatMul (src/ops/fused.h):
 *
 *   Y = act(MatMul(A, B) + Bias + Z)
 *
 * A: (..., M, K) or (K), B: (..., K, N) or (K), numpy matmul broadcasting
 * (MatMul's own infer and reference kernel do the product); Bias (optional):
 * (N) along Y's last axis, N = 1 when B is 1-D; Z (optional): Y's shape.
 * Float dtypes (f32, f64, f16, bf16), every input of A's dtype. The sums are
 * formed in the order of the unfused graph (MatMul, Add Bias, Add Z, then
 * the activation), in f32 for f32 and in double otherwise, rounded once.
 */
#include "ops/fused.h"
#include "ops/op.h"

/* N of the product: B's last dim, 1 when B is 1-D. */
static int64_t fused_n(const kiln__kctx *c) {
    const kiln_tensor *b = c->in[1];
    return b->ndim == 1 ? 1 : b->dims[b->ndim - 1];
}

kiln_status kiln__infer_FusedMatMul(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "A", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__infer_MatMul(c)); /* B's dtype, the shapes, output 0 */
    kiln__act act;
    KILN__TRY(kiln__act_from_node(c->node, &act));
    const kiln_tensor *bias = kiln__in(c, 2), *z = kiln__in(c, 3), *y = kiln__out(c, 0);
    for (int i = 2; i < 4; i++)
        if (kiln__in(c, i) && c->in[i]->dtype != c->in[0]->dtype)
            return kiln__err(KILN_E_TYPE, "input '%s' is %s, expected %s like A",
                             i == 2 ? "Bias" : "Z", kiln_dtype_name(c->in[i]->dtype),
                             kiln_dtype_name(c->in[0]->dtype));
    int64_t n = fused_n(c);
    KILN__TRY(kiln__check_shape(bias, "Bias", 1, &n));
    if (z && y) KILN__TRY(kiln__check_shape(z, "Z", y->ndim, y->dims));
    return KILN_OK;
}

/* Y rows [r0, r1) (rows of N elements) = act(Y + Bias + Z). */
static void fused_epilogue(const kiln__kctx *c, const kiln__act *act, int64_t n, int64_t r0,
                           int64_t r1) {
    const kiln_tensor *bias = kiln__in(c, 2), *z = kiln__in(c, 3);
    kiln_tensor *y = c->out[0];
    if (y->dtype == KILN_DTYPE_F32) {
        float *yd = (float *)y->data;
        const float *bd = bias ? (const float *)bias->data : NULL;
        const float *zd = z ? (const float *)z->data : NULL;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = 0; j < n; j++) {
                int64_t i = r * n + j;
                float v = yd[i];
                if (bd) v += bd[j];
                if (zd) v += zd[i];
                yd[i] = kiln__act_apply(act, v);
            }
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        for (int64_t j = 0; j < n; j++) {
            int64_t i = r * n + j;
            double v = kiln__ld_f(y->dtype, y->data, i);
            if (bias) v += kiln__ld_f(bias->dtype, bias->data, j);
            if (z) v += kiln__ld_f(z->dtype, z->data, i);
            kiln__act_store(act, y->dtype, y->data, i, v);
        }
}

/* kiln__ref_MatMul splits Y's batch*M rows over the threads with kiln__split;
 * the epilogue takes the same rows, so each thread finishes only rows it
 * computed itself (no barrier needed). */
kiln_status kiln__ref_FusedMatMul(kiln__kctx *c) {
    kiln__act act;
    KILN__TRY(kiln__act_from_node(c->node, &act));
    KILN__TRY(kiln__ref_MatMul(c));
    int64_t n = fused_n(c), rows = n > 0 ? kiln__n(c->out[0]) / n : 0, lo, hi;
    kiln__split(rows, c->ith, c->nth, &lo, &hi);
    fused_epilogue(c, &act, n, lo, hi);
    return KILN_OK;
}
