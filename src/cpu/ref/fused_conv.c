/* src/cpu/ref/fused_conv.c: shape rule and reference kernel of
 * kiln.FusedConv (src/ops/fused.h):
 *
 *   Y = act(Conv(X, W, B) + Z)
 *
 * X: (N,C,D1..Dk), W: (M,C/group,K1..Kk), B (optional): (M), Z (optional):
 * Y's shape (N,M,O1..Ok); every Conv attribute plus `activation` and
 * `activation_params`. Float dtypes, every input of X's dtype. Conv's own
 * infer and reference kernel do the convolution (bias included); the
 * residual and the activation follow in the order of the unfused graph, in
 * f32 for f32 and in double otherwise.
 */
#include "ops/fused.h"
#include "ops/op.h"

kiln_status kiln__infer_FusedConv(kiln__kctx *c) {
    KILN__TRY(kiln__infer_Conv(c)); /* X, W, B, the window, output 0 */
    kiln__act act;
    KILN__TRY(kiln__act_from_node(c->node, &act));
    const kiln_tensor *z = kiln__in(c, 3), *y = kiln__out(c, 0);
    if (z && z->dtype != c->in[0]->dtype)
        return kiln__err(KILN_E_TYPE, "input 'Z' is %s, expected %s like X",
                         kiln_dtype_name(z->dtype), kiln_dtype_name(c->in[0]->dtype));
    if (z && y) KILN__TRY(kiln__check_shape(z, "Z", y->ndim, y->dims));
    return KILN_OK;
}

/* Output planes [p0, p1) (planes of `plane` elements) = act(Y + Z). */
static void fused_conv_epilogue(const kiln__kctx *c, const kiln__act *act, int64_t plane,
                                int64_t p0, int64_t p1) {
    const kiln_tensor *z = kiln__in(c, 3);
    kiln_tensor *y = c->out[0];
    if (!z && act->kind == KILN__ACT_NONE) return;
    if (y->dtype == KILN_DTYPE_F32) {
        float *yd = (float *)y->data;
        const float *zd = z ? (const float *)z->data : NULL;
        for (int64_t i = p0 * plane; i < p1 * plane; i++)
            yd[i] = kiln__act_apply(act, zd ? yd[i] + zd[i] : yd[i]);
        return;
    }
    for (int64_t i = p0 * plane; i < p1 * plane; i++) {
        double v = kiln__ld_f(y->dtype, y->data, i);
        if (z) v += kiln__ld_f(z->dtype, z->data, i);
        kiln__act_store(act, y->dtype, y->data, i, v);
    }
}

/* kiln__ref_Conv splits the N*M output planes over the threads with
 * kiln__split; the epilogue takes the same planes, so each thread finishes
 * only planes it computed itself (no barrier needed). */
kiln_status kiln__ref_FusedConv(kiln__kctx *c) {
    kiln__act act;
    KILN__TRY(kiln__act_from_node(c->node, &act));
    KILN__TRY(kiln__ref_Conv(c));
    const kiln_tensor *y = c->out[0];
    int64_t planes = y->dims[0] * y->dims[1], lo, hi;
    int64_t plane = planes > 0 ? kiln__n(y) / planes : 0;
    kiln__split(planes, c->ith, c->nth, &lo, &hi);
    fused_conv_epilogue(c, &act, plane, lo, hi);
    return KILN_OK;
}
