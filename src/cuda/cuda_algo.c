/* src/cuda/cuda_algo.c: helpers shared by the CUDA algorithms (cuda_algo.h). */
#include "cuda/cuda_algo.h"
#include "ops/fused.h"

kiln_status kiln__cuda_all_f32(const kiln__kctx *c, int n) {
    for (int k = 0; k < n && k < c->n_in; k++)
        if (c->in[k] && c->in[k]->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    for (int k = 0; k < c->n_out; k++)
        if (c->out[k] && c->out[k]->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    return KILN_OK;
}

/* Nominal H100 figures; only the ranking among CUDA candidates uses them. */
#define GPU_F32_FLOPS 50e12
#define GPU_BF16_FLOPS 700e12
#define GPU_BYTES_PER_S 2.5e12
#define GPU_LAUNCH_S 4e-6

double kiln__cuda_cost(double flops, double efficiency, int tensor_cores, double bytes) {
    if (efficiency <= 0) efficiency = 1e-3;
    return flops / ((tensor_cores ? GPU_BF16_FLOPS : GPU_F32_FLOPS) * efficiency) +
           bytes / GPU_BYTES_PER_S + GPU_LAUNCH_S;
}

kiln_status kiln__cuda_fused_act(const kiln__node *n, kiln__cu_op *op, float *p0, float *p1) {
    kiln__act a;
    KILN__TRY(kiln__act_from_node(n, &a));
    *p0 = a.lo;
    *p1 = a.hi;
    switch (a.kind) {
    case KILN__ACT_NONE: *op = KILN__CU_IDENTITY; return KILN_OK;
    case KILN__ACT_RELU: *op = KILN__CU_RELU; return KILN_OK;
    case KILN__ACT_CLIP: *op = KILN__CU_CLIP; return KILN_OK;
    case KILN__ACT_GELU: *op = KILN__CU_GELU; return KILN_OK;
    case KILN__ACT_GELU_TANH: *op = KILN__CU_GELU_TANH; return KILN_OK;
    case KILN__ACT_SILU: *op = KILN__CU_SILU; return KILN_OK;
    }
    return KILN_E_UNSUPPORTED;
}

kiln_status kiln__cuda_conv_read(const kiln__kctx *c, int fused, kiln__cuda_conv_node *out) {
    KILN__TRY(kiln__cuda_all_f32(c, fused ? 4 : 3));
    const kiln_tensor *x = c->in[0], *wt = c->in[1], *y = c->out[0], *b = kiln__in(c, 2);
    if (x->ndim != 4 || wt->ndim != 4 || !kiln__cuda_fits_int(x) || !kiln__cuda_fits_int(wt)) return KILN_E_UNSUPPORTED;
    kiln__win *w = &out->w;
    if (kiln__win_read(c->node, 2, x->dims + 2, wt->dims + 2, w) != KILN_OK ||
        kiln__win_forward(w, 0) != KILN_OK)
        return KILN_E_UNSUPPORTED;
    for (int i = 0; i < 2; i++)
        if (w->pad0[i] != w->pad1[i]) return KILN_E_UNSUPPORTED;
    out->group = kiln__attr_i(c->node, "group", 1);
    if (out->group < 1 || out->group > 0x7fffffff) return KILN_E_UNSUPPORTED;
    if (b && kiln__n(b) != y->dims[1]) return KILN_E_UNSUPPORTED;
    out->bias_in = b ? 2 : -1;
    out->z_in = -1;
    out->act = KILN__CU_IDENTITY;
    out->p0 = out->p1 = 0;
    if (!fused) return KILN_OK;
    if (kiln__cuda_fused_act(c->node, &out->act, &out->p0, &out->p1) != KILN_OK) return KILN_E_UNSUPPORTED;
    const kiln_tensor *z = kiln__in(c, 3);
    if (z) {
        if (kiln__n(z) != kiln__n(y)) return KILN_E_UNSUPPORTED;
        out->z_in = 3;
    }
    return KILN_OK;
}
