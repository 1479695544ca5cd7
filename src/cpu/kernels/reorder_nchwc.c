/* src/cpu/kernels/reorder_nchwc.c: the algorithms reorder_nchwc
 * (kiln.ReorderNCHWc) and reorder_nchw (kiln.ReorderNCHW), f32 on AVX-512:
 * 16 pixels x 16 channels at a time through a register transpose
 * (x86/conv_nchwc_avx512.c). Threads (KILN_OPF_PARALLEL) split the
 * (image, channel block) planes. */
#include "cpu/kernels/conv_nchwc.h"
#include "ops/algo.h"

static kiln_status reorder_prepare(kiln__kctx *c) {
    if (!kiln__cpu_has_avx512f() || c->in[0]->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    c->flops = 0;
    return KILN_OK;
}

static double reorder_cost(const kiln__kctx *c) {
    return kiln__cost_seconds(c, 0, 1, 8.0 * (double)kiln__n(c->in[0]));
}

/* The plain side of c is (N, C, H, W): the input (to_blocked) or the output. */
static kiln_status reorder_run(kiln__kctx *c, int to_blocked) {
#ifdef KILN__NCHWC_X86
    const kiln_tensor *plain = to_blocked ? c->in[0] : c->out[0];
    const int64_t N = plain->dims[0], C = plain->dims[1], HW = plain->dims[2] * plain->dims[3];
    const int64_t CB = kiln__nchwc_blocks(C), image = CB * 16 * HW;
    const int64_t x_image = to_blocked ? C * HW : image, y_image = to_blocked ? image : C * HW;
    const float *x = c->in[0]->data;
    float *y = c->out[0]->data;
    int64_t lo, hi;
    kiln__split(N * CB, c->ith, c->nth, &lo, &hi);
    for (int64_t it = lo; it < hi; it++)
        kiln__nchwc_reorder_avx512(x + it / CB * x_image, y + it / CB * y_image, C, HW, it % CB,
                                   to_blocked);
    return KILN_OK;
#else
    (void)to_blocked;
    return kiln__err(KILN_E_UNSUPPORTED, "%s needs AVX-512", c->node->op_type);
#endif
}

static kiln_status to_blocked_run(kiln__kctx *c) { return reorder_run(c, 1); }
static kiln_status to_plain_run(kiln__kctx *c) { return reorder_run(c, 0); }

const kiln__algo kiln__algo_reorder_nchwc = {"reorder_nchwc", "kiln", "ReorderNCHWc",
                                             KILN_OPF_PARALLEL, reorder_prepare, reorder_cost,
                                             to_blocked_run, NULL};
const kiln__algo kiln__algo_reorder_nchw = {"reorder_nchw", "kiln", "ReorderNCHW",
                                            KILN_OPF_PARALLEL, reorder_prepare, reorder_cost,
                                            to_plain_run, NULL};
