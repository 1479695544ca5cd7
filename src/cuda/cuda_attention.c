/* src/cuda/cuda_attention.c: Attention (opset 23, the op kiln's attention
 * fusion writes) on the GPU, f32 (algorithm cuda_attention):
 *
 *   scores (B*H, S, T) = scale * Q K^T         batched cuBLASLt product
 *   scores = softmax(scores + mask, causal cut) one block per row, in place
 *   Y (B*H, S, dv)     = scores V              batched cuBLASLt product
 *
 * The form of ops/attn_form.h with as many key/value heads as query heads.
 * The scores live in the step's scratch (B*H*S*T floats). Other forms stay
 * on the CPU.
 */
#include <stdlib.h>

#include "cuda/cuda_algo.h"
#include "ops/attn_form.h"

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
    kiln__attn_form f;
    KILN__TRY(kiln__attn_form_read(c, &f));
    if (f.Hkv != f.Hq) return KILN_E_UNSUPPORTED; /* grouped key/value heads stay on the CPU */
    attn_state *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    c->kstate = s;
    *s = (attn_state){.B = f.B, .H = f.Hq, .S = f.Sq, .T = f.T, .causal = f.causal,
                      .mask_bool = f.mask_bool, .msb = f.msb, .msh = f.msh, .msq = f.msq,
                      .mlen = f.mlen};
    int64_t BH = f.B * f.Hq;
    KILN__TRY(kiln__cuda_gemm_new(c->dev, f.Sq, f.T, f.dk, BH, f.Sq * f.dk, f.T * f.dk, 1, f.scale, &s->qk));
    KILN__TRY(kiln__cuda_gemm_new(c->dev, f.Sq, f.dv, f.T, BH, f.Sq * f.T, f.T * f.dv, 0, 1.0f, &s->pv));
    c->scratch_bytes = (size_t)(BH * f.Sq * f.T) * sizeof(float);
    c->flops = 2.0 * (double)(BH * f.Sq) * (double)f.T * (double)(f.dk + f.dv);
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
