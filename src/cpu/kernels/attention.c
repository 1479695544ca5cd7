/* src/cpu/kernels/attention.c: fast f32 Attention (opset 23), the 4-D form
 * the attention-fusion pass produces for encoders.
 *
 *   Q: (B,Hq,Sq,dk), K: (B,Hkv,T,dk), V: (B,Hkv,T,dv) f32, Y: (B,Hq,Sq,dv);
 *   query head h reads key/value head h / (Hq/Hkv). attn_mask (optional):
 *   f32 (added to the scores) or bool (false masks out), broadcast to
 *   (B,Hq,Sq,T) with a last dim up to T (missing columns masked out);
 *   is_causal masks j > i. Taken only without past_key/past_value,
 *   nonpad_kv_seqlen and softcap, and with only Y requested; the rest is
 *   left to the reference (src/cpu/ref/attention.c).
 *
 * Per (batch, head) and block of R query rows (R * T scores sized to stay in
 * L2): S = scale * Q_blk K^T by the f32 GEMM (kiln__sgemm, one thread),
 * then per row the mask, the causal cut and the softmax (the ISA row
 * kernels of eltwise.h) in place, then Y_blk = S V by the GEMM. With
 * is_causal a block's products stop at its last row's column. The
 * (batch, head, block) units are split over the threads
 * (KILN_OPF_PARALLEL); each thread has its own scratch slice (scores and
 * GEMM packing), sized in prepare for c->nth_plan threads.
 *
 * Differences from the reference (which works in double): a masked-out
 * probability is exactly 0 here too, but it still multiplies its V row, so a
 * NaN/Inf in a V row that every query masks out reaches Y (the reference
 * skips it). Fully masked rows give NaN in both.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels/eltwise.h"
#include "cpu/kernels/gemm.h"
#include "ops/attn_form.h"

#define SCORES_FLOATS 32768 /* R * T target: 128 KiB of scores per thread */

typedef struct attn_state {
    kiln__eltw_state base;
    int64_t B, Hq, Hkv, Sq, T, dk, dv;
    int64_t R, blocks;            /* query rows per block, blocks per head */
    float scale;
    int causal;
    int mask_bool;                /* mask present: 1 bool, 0 float */
    int64_t msb, msh, msq, mlen;  /* mask strides over (B, Hq, Sq), last dim */
    size_t scores_bytes, thread_bytes;
    int nth;                      /* threads the scratch is sized for */
} attn_state;

static const float dummy_operand[1]; /* GEMM args for sizing the scratch only */

/* Scratch of one single-threaded product (m, n, k), B transposed or not. */
static size_t gemm_bytes(int64_t m, int64_t n, int64_t k, int trans_b) {
    kiln__gemm_args g = {.m = m, .n = n, .k = k, .trans_b = trans_b, .alpha = 1.0f,
                         .a = dummy_operand, .lda = k, .b = dummy_operand,
                         .ldb = trans_b ? k : n, .c = (float *)dummy_operand, .ldc = n};
    return kiln__sgemm_scratch_bytes(&g, 1);
}

static kiln_status attn_prepare(kiln__kctx *c) {
    kiln__attn_form f;
    KILN__TRY(kiln__attn_form_read(c, &f));
    attn_state st = {.B = f.B, .Hq = f.Hq, .Sq = f.Sq, .dk = f.dk, .Hkv = f.Hkv, .T = f.T, .dv = f.dv,
                     .scale = f.scale, .causal = f.causal, .mask_bool = f.mask_bool, .msb = f.msb,
                     .msh = f.msh, .msq = f.msq, .mlen = f.mlen};
    /* blocks: R*T scores near SCORES_FLOATS, and at least 2 units per thread when rows allow */
    int nth = c->nth_plan > 0 ? c->nth_plan : 1;
    st.R = SCORES_FLOATS / st.T;
    if (st.R < 1) st.R = 1;
    if (st.R > st.Sq) st.R = st.Sq > 0 ? st.Sq : 1;
    while (st.R > 16 && st.B * st.Hq * ((st.Sq + st.R - 1) / st.R) < 2 * nth) st.R = (st.R + 1) / 2;
    st.blocks = (st.Sq + st.R - 1) / st.R;
    st.scores_bytes = ((size_t)(st.R * st.T) * sizeof(float) + 63) & ~(size_t)63;
    size_t g1 = gemm_bytes(st.R, st.T, st.dk, 1), g2 = gemm_bytes(st.R, st.dv, st.T, 0);
    st.thread_bytes = st.scores_bytes + ((g1 > g2 ? g1 : g2) + 63) / 64 * 64;
    st.nth = nth;
    KILN__TRY(kiln__eltw_state_new(c, sizeof(attn_state)));
    st.base = *(kiln__eltw_state *)c->kstate;
    *(attn_state *)c->kstate = st;
    c->scratch_bytes = st.thread_bytes * (size_t)nth + 64;
    c->flops = 2.0 * (double)(st.B * st.Hq * st.Sq) * (double)st.T * (double)(st.dk + st.dv);
    return KILN_OK;
}

static double attn_cost(const kiln__kctx *c) {
    const attn_state *s = c->kstate;
    double bytes = 4.0 * ((double)kiln__n(c->in[0]) + (double)kiln__n(c->out[0]) +
                          (double)(kiln__n(c->in[1]) + kiln__n(c->in[2])) * (double)(s->Hq / s->Hkv));
    return kiln__cost_seconds(c, c->flops, 0.5, bytes);
}

/* Row i (of head (b, h)) of the scores, n columns: the mask, the causal cut,
 * then the softmax, in place. */
static void attn_row(const kiln__kctx *c, const attn_state *s, float *row, int64_t n, int64_t b,
                     int64_t h, int64_t i) {
    const kiln_tensor *m = kiln__in(c, 3);
    if (m) {
        int64_t off = b * s->msb + h * s->msh + i * s->msq, nm = n < s->mlen ? n : s->mlen;
        if (s->mask_bool) {
            const uint8_t *mb = (const uint8_t *)m->data + off;
            for (int64_t j = 0; j < nm; j++)
                if (!mb[j]) row[j] = -INFINITY;
        } else {
            s->base.k->binary(KILN__ELTW_ADD, row, 1, (const float *)m->data + off, 1, row, nm);
        }
        for (int64_t j = nm; j < n; j++) row[j] = -INFINITY;
    }
    if (s->causal)
        for (int64_t j = i + 1; j < n; j++) row[j] = -INFINITY;
    s->base.k->softmax(row, row, n, 0);
}

// Q, K, V, Y as in the header; thread ith does its (b, h, block) units
static kiln_status attn_run(kiln__kctx *c) {
    const attn_state *s = c->kstate;
    if (c->ith >= s->nth)
        return kiln__err(KILN_E_INVAL, "attention: thread %d of %d, scratch planned for %d", c->ith, c->nth,
                         s->nth);
    const float *q = c->in[0]->data, *k = c->in[1]->data, *v = c->in[2]->data;
    float *y = c->out[0]->data;
    uint8_t *base = (uint8_t *)(((uintptr_t)c->scratch + 63) & ~(uintptr_t)63) + (size_t)c->ith * s->thread_bytes;
    float *scores = (float *)base;
    int64_t lo, hi, group = s->Hq / s->Hkv;
    kiln__split(s->B * s->Hq * s->blocks, c->ith, c->nth, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        int64_t b = u / (s->Hq * s->blocks), h = (u / s->blocks) % s->Hq, i0 = (u % s->blocks) * s->R;
        int64_t rows = s->Sq - i0 < s->R ? s->Sq - i0 : s->R, hk = b * s->Hkv + h / group;
        int64_t n = s->causal && i0 + rows < s->T ? i0 + rows : s->T; /* later columns all masked */
        const float *qb = q + ((b * s->Hq + h) * s->Sq + i0) * s->dk;
        float *yb = y + ((b * s->Hq + h) * s->Sq + i0) * s->dv;
        kiln__gemm_args g1 = {.m = rows, .n = n, .k = s->dk, .trans_b = 1, .alpha = s->scale,
                              .a = qb, .lda = s->dk, .b = k + hk * s->T * s->dk, .ldb = s->dk,
                              .c = scores, .ldc = n, .scratch = base + s->scores_bytes};
        KILN__TRY(kiln__sgemm(&g1, 0, 1));
        for (int64_t r = 0; r < rows; r++) attn_row(c, s, scores + r * n, n, b, h, i0 + r);
        kiln__gemm_args g2 = {.m = rows, .n = s->dv, .k = n, .alpha = 1.0f, .a = scores, .lda = n,
                              .b = v + hk * s->T * s->dv, .ldb = s->dv, .c = yb, .ldc = s->dv,
                              .scratch = base + s->scores_bytes};
        KILN__TRY(kiln__sgemm(&g2, 0, 1));
    }
    return KILN_OK;
}

const kiln__algo kiln__algo_attention_f32 = {"attention_f32", "", "Attention", KILN_OPF_PARALLEL,
                                             attn_prepare, attn_cost, attn_run, free};
