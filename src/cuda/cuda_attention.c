/* src/cuda/cuda_attention.c: Attention (opset 23, the op kiln's attention
 * fusion writes) on the GPU, f32 (algorithm cuda_attention):
 *
 *   scores (B*H, S, T) = scale * Q K^T         batched cuBLASLt product
 *   scores = softmax(scores + mask, causal cut) one block per row, in place
 *   Y (B*H, S, dv)     = scores V              batched cuBLASLt product
 *
 * Q (B,H,S,dk), K (B,H,T,dk), V (B,H,T,dv) 4-D with as many key/value heads
 * as query heads; mask f32 (added) or bool, broadcast as the reference does;
 * no past key/value, no softcap, only the first output. The scores live in
 * the step's scratch (B*H*S*T floats). Other forms stay on the CPU.
 */
#include <math.h>
#include <stdlib.h>

#include "cuda/cuda_algo.h"

typedef struct attn_state {
    kiln__cuda_gemm *qk, *pv;
    int64_t B, H, S, T;
    int causal, mask_bool;
    int64_t msb, msh, msq, mlen;
} attn_state;

static void attn_release(void *ks) {
    attn_state *s = ks;
    if (!s) return;
    kiln__cuda_gemm_free(s->qk);
    kiln__cuda_gemm_free(s->pv);
    free(s);
}

static kiln_status attn_prepare(kiln__kctx *c) {
    KILN__TRY(kiln__cuda_all_f32(c, 3));
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2], *m = kiln__in(c, 3);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || kiln__in(c, 4) || kiln__in(c, 5) ||
        kiln__in(c, 6))
        return KILN_E_UNSUPPORTED;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) return KILN_E_UNSUPPORTED;
    if (kiln__attr_f(c->node, "softcap", 0.0f) != 0.0f) return KILN_E_UNSUPPORTED;
    if (m && m->dtype != KILN_DTYPE_BOOL && m->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    int64_t B = q->dims[0], H = q->dims[1], S = q->dims[2], dk = q->dims[3];
    int64_t T = k->dims[2], dv = v->dims[3];
    if (k->dims[0] != B || v->dims[0] != B || k->dims[1] != H || v->dims[1] != H || T == 0 ||
        dk == 0 || dv == 0)
        return KILN_E_UNSUPPORTED;
    attn_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    c->kstate = s;
    *s = (attn_state){.B = B, .H = H, .S = S, .T = T};
    s->causal = kiln__attr_i(c->node, "is_causal", 0) != 0;
    if (m) { /* the reference's broadcast of the mask (infer validated it) */
        int64_t md[4] = {1, 1, 1, 1}, ms[4];
        if (m->ndim < 1 || m->ndim > 4) return KILN_E_UNSUPPORTED;
        for (int i = 0; i < m->ndim; i++) md[4 - m->ndim + i] = m->dims[i];
        kiln__contiguous_strides(4, md, ms);
        s->mask_bool = m->dtype == KILN_DTYPE_BOOL;
        s->msb = md[0] == 1 ? 0 : ms[0];
        s->msh = md[1] == 1 ? 0 : ms[1];
        s->msq = md[2] == 1 ? 0 : ms[2];
        s->mlen = md[3];
    }
    float scale = kiln__attr_find(c->node, "scale") ? kiln__attr_f(c->node, "scale", 1.0f)
                                                    : (float)(1.0 / sqrt((double)dk));
    KILN__TRY(kiln__cuda_gemm_new(c->dev, S, T, dk, B * H, S * dk, T * dk, 1, scale, &s->qk));
    KILN__TRY(kiln__cuda_gemm_new(c->dev, S, dv, T, B * H, S * T, T * dv, 0, 1.0f, &s->pv));
    c->scratch_bytes = (size_t)(B * H * S * T) * sizeof(float);
    c->flops = 2.0 * (double)(B * H * S) * (double)T * (double)(dk + dv);
    return KILN_OK;
}

static double attn_cost(const kiln__kctx *c) {
    double bytes = (double)c->scratch_bytes * 3;
    for (int k = 0; k < 3; k++) bytes += (double)kiln__tensor_bytes(c->in[k]);
    return kiln__cuda_cost(c->flops, 0.4, 0, bytes);
}

static kiln_status attn_run(kiln__kctx *c) {
    attn_state *s = c->kstate;
    float *scores = c->scratch;
    const kiln_tensor *m = kiln__in(c, 3);
    KILN__TRY(kiln__cuda_gemm_run(s->qk, c->in[0]->data, c->in[1]->data, scores));
    KILN__TRY(kiln__cuda_launched(kiln__cu_attn_softmax(kiln__cuda_stream(c), scores, s->B * s->H * s->S,
                                                        s->T, s->H, s->S, m ? m->data : NULL,
                                                        s->mask_bool, s->msb, s->msh, s->msq, s->mlen,
                                                        s->causal),
                                  "attention softmax"));
    return kiln__cuda_gemm_run(s->pv, scores, c->in[2]->data, c->out[0]->data);
}

const kiln__algo kiln__algo_cuda_attention = {
    "cuda_attention", "", "Attention", KILN_ALGOF_CUDA, attn_prepare, attn_cost, attn_run,
    attn_release,
};
