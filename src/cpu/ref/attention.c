/* src/cpu/ref/attention.c: Attention (opset 23/24) and RotaryEmbedding.
 *
 * Attention works on one query row at a time with the scores recomputed in
 * each pass (max, sum of exponentials, weighted sum of values) so that no
 * scratch memory is needed; all arithmetic is in double. */
#include <math.h>
#include <string.h>

#include "graph/exec.h"
#include "ops/op.h"


/* ---- Attention ---------------------------------------------------------------
 * 4-D: Q (B,Hq,Sq,dk), K (B,Hkv,Skv,dk), V (B,Hkv,Skv,dv), Y (B,Hq,Sq,dv).
 * 3-D: Q (B,Sq,Hq*dk), K (B,Skv,Hkv*dk), V (B,Skv,Hkv*dv), Y (B,Sq,Hq*dv),
 *      with attributes q_num_heads and kv_num_heads.
 * attn_mask: bool or float, broadcast to (B,Hq,Sq,T) with a last dimension
 * up to T = P + Skv (missing columns are masked out); past_key (B,Hkv,P,dk),
 * past_value (B,Hkv,P,dv); nonpad_kv_seqlen (B) int64 (opset 24).
 * present_key (B,Hkv,T,dk), present_value (B,Hkv,T,dv), qk_matmul_output
 * (B,Hq,Sq,T). Query head h reads key/value head h / (Hq/Hkv) (GQA/MQA).
 * Per row: s_j = softcap(scale * q.k_j) + bias_j, y = softmax(s) @ V, where
 * bias_j is the mask plus -inf for causal (j > i + P) and padded positions.
 * qk_matmul_output_mode 0 outputs scale * q.k before the softcap, as the
 * spec says (onnx's numpy reference outputs it after the softcap).
 * softmax_precision needs no handling: the softmax is always done in double. */

/* Element strides of the batch, head and sequence axes (head dim stride 1). */
typedef struct attn_layout {
    int64_t sb, sh, ss;
} attn_layout;

/* Key or value rows 0..T-1 of a head: the past rows then the current ones. */
typedef struct attn_kv {
    const kiln_tensor *cur, *past;
    attn_layout lc;
    int64_t H, P, D;
} attn_kv;

typedef struct attn_ctx {
    int rank3;
    int64_t B, Hq, Hkv, Sq, Skv, P, T, dk, dv;
    const kiln_tensor *q, *mask, *nonpad;
    attn_layout lq;
    attn_kv key, value;
    int64_t msb, msh, msq, mlen; /* mask strides over (B,Hq,Sq) and its last dim */
    double scale, softcap;
    int causal, qk_mode;
} attn_ctx;

static attn_layout attn_layout_of(int rank3, int64_t H, int64_t S, int64_t D) {
    attn_layout l;
    l.sb = H * S * D;
    l.sh = rank3 ? D : S * D;
    l.ss = rank3 ? H * D : D;
    return l;
}

/* Offset of row j of head h in batch b; *t gets the tensor holding it. */
static inline int64_t kv_row(const attn_kv *s, int64_t b, int64_t h, int64_t j, const kiln_tensor **t) {
    if (j < s->P) {
        *t = s->past;
        return ((b * s->H + h) * s->P + j) * s->D;
    }
    *t = s->cur;
    return b * s->lc.sb + h * s->lc.sh + (j - s->P) * s->lc.ss;
}

static kiln_status attn_shape_err(const char *what, const kiln_tensor *t, const char *expected) {
    char buf[128];
    return kiln__err(KILN_E_SHAPE, "input '%s' has shape %s, expected %s", what,
                     kiln__shape_str(t->ndim, t->dims, buf, sizeof buf), expected);
}

/* Reads and validates the node's inputs and attributes into a. */
static kiln_status attn_setup(const kiln__kctx *c, attn_ctx *a) {
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    const kiln_tensor *pk = kiln__in(c, 4), *pv = kiln__in(c, 5);
    memset(a, 0, sizeof *a);
    KILN__TRY(kiln__check_dtype(q, "Q", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(k, "K", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(v, "V", KILN__FLOAT_DTYPES));
    if ((q->ndim != 3 && q->ndim != 4) || k->ndim != q->ndim || v->ndim != q->ndim)
        return kiln__err(KILN_E_SHAPE, "inputs Q, K, V have ranks %d, %d, %d, expected all 3 or all 4", q->ndim,
                         k->ndim, v->ndim);
    a->rank3 = q->ndim == 3;
    a->B = q->dims[0];
    if (a->rank3) {
        a->Hq = kiln__attr_i(c->node, "q_num_heads", 0);
        a->Hkv = kiln__attr_i(c->node, "kv_num_heads", 0);
        if (a->Hq <= 0 || a->Hkv <= 0)
            return kiln__err(KILN_E_INVAL, "3-D inputs need positive attributes 'q_num_heads' and 'kv_num_heads' "
                             "(got %lld and %lld)", (long long)a->Hq, (long long)a->Hkv);
        a->Sq = q->dims[1];
        a->Skv = k->dims[1];
        if (q->dims[2] % a->Hq) return attn_shape_err("Q", q, "a hidden size divisible by q_num_heads");
        a->dk = q->dims[2] / a->Hq;
        if (k->dims[0] != a->B || k->dims[2] % a->Hkv || k->dims[2] / a->Hkv != a->dk) /* no Hkv * dk overflow */
            return attn_shape_err("K", k, "(B, kv_sequence_length, kv_num_heads * head_size of Q)");
        if (v->dims[0] != a->B || v->dims[1] != a->Skv || v->dims[2] % a->Hkv)
            return attn_shape_err("V", v, "(B, kv_sequence_length, kv_num_heads * v_head_size)");
        a->dv = v->dims[2] / a->Hkv;
        int64_t hidden_out; /* Y is (B, Sq, Hq * dv): huge head counts pass the checks above when dims are 0 */
        if (!kiln__dims_mul(a->Hq, a->dv, &hidden_out))
            return kiln__err(KILN_E_LIMIT, "q_num_heads %lld * v_head_size %lld is too large",
                             (long long)a->Hq, (long long)a->dv);
    } else {
        a->Hq = q->dims[1];
        a->Sq = q->dims[2];
        a->dk = q->dims[3];
        a->Hkv = k->dims[1];
        a->Skv = k->dims[2];
        if (k->dims[0] != a->B || k->dims[3] != a->dk)
            return attn_shape_err("K", k, "(B, kv_num_heads, kv_sequence_length, head_size of Q)");
        if (v->dims[0] != a->B || v->dims[1] != a->Hkv || v->dims[2] != a->Skv)
            return attn_shape_err("V", v, "(B, kv_num_heads, kv_sequence_length, v_head_size)");
        a->dv = v->dims[3];
    }
    if (a->Hkv <= 0 || a->Hq % a->Hkv)
        return kiln__err(KILN_E_SHAPE, "query heads (%lld) must be a multiple of key/value heads (%lld)",
                         (long long)a->Hq, (long long)a->Hkv);
    if (!pk != !pv) return kiln__err(KILN_E_INVAL, "inputs 'past_key' and 'past_value' must be given together");
    if (pk) {
        KILN__TRY(kiln__check_dtype(pk, "past_key", KILN__FLOAT_DTYPES));
        KILN__TRY(kiln__check_dtype(pv, "past_value", KILN__FLOAT_DTYPES));
        a->P = pk->ndim == 4 ? pk->dims[2] : -1;
        if (pk->ndim != 4 || pk->dims[0] != a->B || pk->dims[1] != a->Hkv || pk->dims[3] != a->dk)
            return attn_shape_err("past_key", pk, "(B, kv_num_heads, past_sequence_length, head_size)");
        if (pv->ndim != 4 || pv->dims[0] != a->B || pv->dims[1] != a->Hkv || pv->dims[2] != a->P ||
            pv->dims[3] != a->dv)
            return attn_shape_err("past_value", pv, "(B, kv_num_heads, past_sequence_length, v_head_size)");
    }
    a->T = a->P + a->Skv;
    a->q = q;
    a->lq = attn_layout_of(a->rank3, a->Hq, a->Sq, a->dk);
    a->key = (attn_kv){k, pk, attn_layout_of(a->rank3, a->Hkv, a->Skv, a->dk), a->Hkv, a->P, a->dk};
    a->value = (attn_kv){v, pv, attn_layout_of(a->rank3, a->Hkv, a->Skv, a->dv), a->Hkv, a->P, a->dv};

    const kiln_tensor *m = kiln__in(c, 3);
    if (m) {
        if (m->dtype != KILN_DTYPE_BOOL)
            KILN__TRY(kiln__check_dtype(m, "attn_mask", KILN__FLOAT_DTYPES));
        int64_t full[4] = {a->B, a->Hq, a->Sq, a->T}, md[4] = {1, 1, 1, 1}, ms[4];
        if (m->ndim < 1 || m->ndim > 4)
            return attn_shape_err("attn_mask", m, "rank 1 to 4, broadcastable to (B, q_num_heads, q_seq, total_seq)");
        for (int i = 0; i < m->ndim; i++) md[4 - m->ndim + i] = m->dims[i];
        kiln__contiguous_strides(4, md, ms);
        for (int i = 0; i < 3; i++)
            if (md[i] != 1 && md[i] != full[i])
                return attn_shape_err("attn_mask", m, "a shape broadcastable to (B, q_num_heads, q_seq, total_seq)");
        if (md[3] > a->T) return attn_shape_err("attn_mask", m, "a last dimension of at most total_sequence_length");
        a->mask = m;
        a->msb = md[0] == 1 ? 0 : ms[0];
        a->msh = md[1] == 1 ? 0 : ms[1];
        a->msq = md[2] == 1 ? 0 : ms[2];
        a->mlen = md[3];
    }
    const kiln_tensor *np = kiln__in(c, 6);
    if (np) {
        KILN__TRY(kiln__check_dtype(np, "nonpad_kv_seqlen", KILN_DTYPE_I64, 0));
        if (np->ndim != 1 || np->dims[0] != a->B) return attn_shape_err("nonpad_kv_seqlen", np, "(B)");
        a->nonpad = np;
    }
    a->causal = kiln__attr_i(c->node, "is_causal", 0) != 0;
    a->softcap = kiln__attr_f(c->node, "softcap", 0.0f);
    a->scale = kiln__attr_find(c->node, "scale") ? kiln__attr_f(c->node, "scale", 1.0f) : 1.0 / sqrt((double)a->dk);
    int64_t mode = kiln__attr_i(c->node, "qk_matmul_output_mode", 0);
    if (mode < 0 || mode > 3)
        return kiln__err(KILN_E_INVAL, "attribute 'qk_matmul_output_mode' is %lld, expected 0, 1, 2 or 3",
                         (long long)mode);
    a->qk_mode = (int)mode;
    return KILN_OK;
}

kiln_status kiln__infer_Attention(kiln__kctx *c) {
    attn_ctx a;
    KILN__TRY(attn_setup(c, &a));
    int64_t y3[3] = {a.B, a.Sq, a.Hq * a.dv}, y4[4] = {a.B, a.Hq, a.Sq, a.dv};
    int64_t pk[4] = {a.B, a.Hkv, a.T, a.dk}, pv[4] = {a.B, a.Hkv, a.T, a.dv}, qk[4] = {a.B, a.Hq, a.Sq, a.T};
    KILN__TRY(kiln__out_shape(c, 0, c->in[0]->dtype, a.rank3 ? 3 : 4, a.rank3 ? y3 : y4));
    KILN__TRY(kiln__out_shape(c, 1, c->in[1]->dtype, 4, pk));
    KILN__TRY(kiln__out_shape(c, 2, c->in[2]->dtype, 4, pv));
    return kiln__out_shape(c, 3, c->in[0]->dtype, 4, qk);
}

/* Mask, causal and padding bias of score (b,h,i,j): 0, a float, or -inf. */
static double attn_bias(const attn_ctx *a, int64_t b, int64_t h, int64_t i, int64_t j) {
    double bias = 0;
    if (a->mask) {
        if (j >= a->mlen) return -INFINITY;
        int64_t off = b * a->msb + h * a->msh + i * a->msq + j;
        if (a->mask->dtype == KILN_DTYPE_BOOL) {
            if (!((const uint8_t *)a->mask->data)[off]) return -INFINITY;
        } else {
            bias = kiln__elem_ld_f(a->mask->dtype, a->mask->data, off);
        }
    }
    if (a->causal && j > i + a->P) return -INFINITY;
    if (a->nonpad && j >= ((const int64_t *)a->nonpad->data)[b]) return -INFINITY;
    return bias;
}

/* Score of query row (b,h,i) (element 0 at qoff) against key j:
 * softcap(scale * q.k) + bias. *qk gets the qk_matmul_output value of modes
 * 0 (scale * q.k), 1 (after softcap) and 2 (the score itself). */
static double attn_logit(const attn_ctx *a, int64_t qoff, int64_t b, int64_t h, int64_t i, int64_t j, double *qk) {
    const kiln_tensor *kt;
    int64_t koff = kv_row(&a->key, b, h / (a->Hq / a->Hkv), j, &kt);
    double s = 0;
    for (int64_t e = 0; e < a->dk; e++)
        s += kiln__elem_ld_f(a->q->dtype, a->q->data, qoff + e) *
             kiln__elem_ld_f(kt->dtype, kt->data, koff + e);
    s *= a->scale;
    if (a->qk_mode == 0) *qk = s;
    if (a->softcap > 0) s = a->softcap * tanh(s / a->softcap);
    if (a->qk_mode == 1) *qk = s;
    s += attn_bias(a, b, h, i, j);
    if (a->qk_mode >= 2) *qk = s;
    return s;
}

/* Copies the rows [lo, hi) of the (B*Hkv*T)-row present cache of s into out. */
static void attn_copy_present(const attn_kv *s, kiln_tensor *out, int64_t T, int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        const kiln_tensor *src;
        int64_t off = kv_row(s, r / T / s->H, (r / T) % s->H, r % T, &src);
        for (int64_t e = 0; e < s->D; e++)
            kiln__elem_st_f(out->dtype, out->data, r * s->D + e,
                            kiln__elem_ld_f(src->dtype, src->data, off + e));
    }
}

#define ATTN_DV_CHUNK 128

// parallel over the B*Hq*Sq query rows (and the B*Hkv*T present cache rows)
kiln_status kiln__ref_Attention(kiln__kctx *c) {
    attn_ctx a;
    KILN__TRY(attn_setup(c, &a));
    kiln_tensor *y = c->out[0], *qk = kiln__out(c, 3);
    int64_t lo, hi;
    for (int i = 1; i <= 2; i++) {
        kiln_tensor *present = kiln__out(c, i);
        if (!present) continue;
        kiln__split(a.B * a.Hkv * a.T, c->ith, c->nth, &lo, &hi);
        attn_copy_present(i == 1 ? &a.key : &a.value, present, a.T, lo, hi);
    }
    attn_layout ly = attn_layout_of(a.rank3, a.Hq, a.Sq, a.dv);
    kiln__split(a.B * a.Hq * a.Sq, c->ith, c->nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int64_t b = r / (a.Hq * a.Sq), h = (r / a.Sq) % a.Hq, i = r % a.Sq, hk = h / (a.Hq / a.Hkv);
        int64_t qoff = b * a.lq.sb + h * a.lq.sh + i * a.lq.ss, yoff = b * ly.sb + h * ly.sh + i * ly.ss;
        double max = -INFINITY, sum = 0, qk_val;
        for (int64_t j = 0; j < a.T; j++) {
            double s = attn_logit(&a, qoff, b, h, i, j, &qk_val);
            if (s > max) max = s;
        }
        for (int64_t j = 0; j < a.T; j++) sum += exp(attn_logit(&a, qoff, b, h, i, j, &qk_val) - max);
        for (int64_t d0 = 0; d0 == 0 || d0 < a.dv; d0 += ATTN_DV_CHUNK) { /* qk output on the first chunk */
            int64_t nd = a.dv - d0 < ATTN_DV_CHUNK ? a.dv - d0 : ATTN_DV_CHUNK;
            double acc[ATTN_DV_CHUNK] = {0};
            for (int64_t j = 0; j < a.T; j++) {
                double s = attn_logit(&a, qoff, b, h, i, j, &qk_val), p = exp(s - max) / sum;
                if (qk && d0 == 0)
                    kiln__elem_st_f(qk->dtype, qk->data, r * a.T + j, a.qk_mode == 3 ? p : qk_val);
                if (p == 0) continue; /* masked out: skip (also avoids 0 * inf) */
                const kiln_tensor *vt;
                int64_t voff = kv_row(&a.value, b, hk, j, &vt) + d0;
                for (int64_t e = 0; e < nd; e++)
                    acc[e] += p * kiln__elem_ld_f(vt->dtype, vt->data, voff + e);
            }
            for (int64_t e = 0; e < nd; e++)
                kiln__elem_st_f(y->dtype, y->data, yoff + d0 + e, acc[e]);
        }
    }
    return KILN_OK;
}

/* ---- RotaryEmbedding -------------------------------------------------------
 * X: (B,H,S,D) or (B,S,H*D) with attribute num_heads; cos_cache, sin_cache:
 * (max_pos, R/2) with position_ids (B,S), else (B,S,R/2); Y: like X.
 * R = rotary_embedding_dim (0: D). The first R elements of each head vector
 * rotate in pairs (x[k], x[k+R/2]), or (x[2k], x[2k+1]) when interleaved:
 * (x1, x2) -> (cos*x1 - sin*x2, sin*x1 + cos*x2); the rest is copied. */

typedef struct rope_dims {
    int64_t B, H, S, D, R;
} rope_dims;

static kiln_status rope_setup(const kiln__kctx *c, rope_dims *r) {
    const kiln_tensor *x = c->in[0], *cs = c->in[1], *sn = c->in[2], *pos = kiln__in(c, 3);
    char buf[128];
    KILN__TRY(kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(cs, "cos_cache", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(sn, "sin_cache", KILN__FLOAT_DTYPES));
    if (x->ndim == 4) {
        r->B = x->dims[0], r->H = x->dims[1], r->S = x->dims[2], r->D = x->dims[3];
    } else if (x->ndim == 3) {
        r->H = kiln__attr_i(c->node, "num_heads", 0);
        if (r->H <= 0 || x->dims[2] % r->H)
            return kiln__err(KILN_E_INVAL, "attribute 'num_heads' is %lld, expected a positive divisor of the "
                             "hidden size %lld for 3-D input", (long long)r->H, (long long)x->dims[2]);
        r->B = x->dims[0], r->S = x->dims[1], r->D = x->dims[2] / r->H;
    } else {
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected rank 3 or 4",
                         kiln__shape_str(x->ndim, x->dims, buf, sizeof buf));
    }
    r->R = kiln__attr_i(c->node, "rotary_embedding_dim", 0);
    if (r->R == 0) r->R = r->D;
    if (r->R < 0 || r->R > r->D || r->R % 2)
        return kiln__err(KILN_E_INVAL, "attribute 'rotary_embedding_dim' is %lld, expected an even value <= head size %lld",
                         (long long)r->R, (long long)r->D);
    if (pos) {
        KILN__TRY(kiln__check_dtype(pos, "position_ids", KILN_DTYPE_I64, 0));
        if (pos->ndim != 2 || pos->dims[0] != r->B || pos->dims[1] != r->S)
            return attn_shape_err("position_ids", pos, "(batch_size, sequence_length)");
    }
    for (int i = 1; i <= 2; i++) {
        const kiln_tensor *t = c->in[i];
        int ok = pos ? t->ndim == 2 : t->ndim == 3 && t->dims[0] == r->B && t->dims[1] == r->S;
        if (!ok || t->dims[t->ndim - 1] != r->R / 2)
            return attn_shape_err(i == 1 ? "cos_cache" : "sin_cache", t,
                                  pos ? "(max_position_id + 1, rotary_embedding_dim / 2)"
                                      : "(batch_size, sequence_length, rotary_embedding_dim / 2)");
    }
    if (!kiln__same_shape(cs, sn)) return attn_shape_err("sin_cache", sn, "the shape of cos_cache");
    return KILN_OK;
}

kiln_status kiln__infer_RotaryEmbedding(kiln__kctx *c) {
    rope_dims r;
    KILN__TRY(rope_setup(c, &r));
    return kiln__out_like(c, 0, c->in[0]);
}

// parallel over the B*S*H head vectors
kiln_status kiln__ref_RotaryEmbedding(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *cs = c->in[1], *sn = c->in[2], *pos = kiln__in(c, 3);
    kiln_tensor *y = c->out[0];
    rope_dims r;
    KILN__TRY(rope_setup(c, &r));
    int interleaved = kiln__attr_i(c->node, "interleaved", 0) != 0;
    int64_t half = r.R / 2, lo, hi;
    kiln__split(r.B * r.S * r.H, c->ith, c->nth, &lo, &hi);
    for (int64_t v = lo; v < hi; v++) {
        int64_t b = v / (r.S * r.H), s = (v / r.H) % r.S, h = v % r.H;
        int64_t xoff = x->ndim == 4 ? ((b * r.H + h) * r.S + s) * r.D : (b * r.S + s) * r.H * r.D + h * r.D;
        int64_t crow = b * r.S + s;
        if (pos) {
            int64_t p = ((const int64_t *)pos->data)[b * r.S + s];
            if (p < 0 || p >= cs->dims[0])
                return kiln__err(KILN_E_RANGE, "position_ids value %lld at (%lld, %lld) is outside [0, %lld)",
                                 (long long)p, (long long)b, (long long)s, (long long)cs->dims[0]);
            crow = p;
        }
        for (int64_t k = 0; k < half; k++) {
            double cv = kiln__elem_ld_f(cs->dtype, cs->data, crow * half + k),
                   sv = kiln__elem_ld_f(sn->dtype, sn->data, crow * half + k);
            int64_t i1 = interleaved ? 2 * k : k, i2 = interleaved ? 2 * k + 1 : k + half;
            double x1 = kiln__elem_ld_f(x->dtype, x->data, xoff + i1),
                   x2 = kiln__elem_ld_f(x->dtype, x->data, xoff + i2);
            kiln__elem_st_f(y->dtype, y->data, xoff + i1, cv * x1 - sv * x2);
            kiln__elem_st_f(y->dtype, y->data, xoff + i2, sv * x1 + cv * x2);
        }
        for (int64_t k = r.R; k < r.D; k++)
            kiln__elem_st_f(y->dtype, y->data, xoff + k,
                            kiln__elem_ld_f(x->dtype, x->data, xoff + k));
    }
    return KILN_OK;
}

/* ---- LinearAttention (opset 27) ----------------------------------------------
 * query (B,T,Hq*dk), key (B,T,Hkv*dk), value (B,T,Hkv*dv), past_state
 * (B,Hkv,dk,dv) optional, decay (B,T,Hkv) or (B,T,Hkv*dk) (log-space gate,
 * "gated" rules), beta (B,T,Hkv) or (B,T,1) ("delta" rules); output
 * (B,T,Hq*dv), present_state (B,Hkv,dk,dv). Per kv head, for each step t:
 *   S *= exp(g_t) (gated);  v_t <- beta_t * (v_t - S^T k_t) (delta);
 *   S += k_t v_t^T;  o_t = scale * q_t^T S for each query head of the group.
 * The state S lives in scratch as double, one (dk,dv) block per (b, kv head). */

typedef struct lin_ctx {
    int64_t B, T, Hq, Hkv, dk, dv;
    int gating, delta;
    double scale;
} lin_ctx;

static kiln_status lin_setup(const kiln__kctx *c, lin_ctx *a) {
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    const kiln_tensor *past = kiln__in(c, 3), *decay = kiln__in(c, 4), *beta = kiln__in(c, 5);
    static const char *names[] = {"query", "key", "value"};
    for (int i = 0; i < 3; i++) {
        KILN__TRY(kiln__check_dtype(c->in[i], names[i], KILN__FLOAT_DTYPES));
        if (c->in[i]->ndim != 3) return attn_shape_err(names[i], c->in[i], "rank 3 (B, T, heads * head_size)");
    }
    const char *rule = kiln__attr_s(c->node, "update_rule", "gated_delta");
    if (strcmp(rule, "linear") && strcmp(rule, "gated") && strcmp(rule, "delta") && strcmp(rule, "gated_delta"))
        return kiln__err(KILN_E_INVAL, "attribute 'update_rule' is \"%s\", expected linear, gated, delta or gated_delta",
                         rule);
    a->gating = strstr(rule, "gated") != NULL;
    a->delta = strstr(rule, "delta") != NULL;
    a->Hq = kiln__attr_i(c->node, "q_num_heads", 0);
    a->Hkv = kiln__attr_i(c->node, "kv_num_heads", 0);
    if (a->Hq <= 0 || a->Hkv <= 0 || a->Hq % a->Hkv)
        return kiln__err(KILN_E_INVAL, "attributes 'q_num_heads' (%lld) and 'kv_num_heads' (%lld) are required, "
                         "positive, and q_num_heads must be a multiple of kv_num_heads",
                         (long long)a->Hq, (long long)a->Hkv);
    a->B = q->dims[0], a->T = q->dims[1];
    if (q->dims[2] % a->Hq) return attn_shape_err("query", q, "a last dimension divisible by q_num_heads");
    a->dk = q->dims[2] / a->Hq;
    if (k->dims[0] != a->B || k->dims[1] != a->T || k->dims[2] != a->Hkv * a->dk)
        return attn_shape_err("key", k, "(B, T, kv_num_heads * d_k)");
    if (v->dims[0] != a->B || v->dims[1] != a->T || v->dims[2] % a->Hkv)
        return attn_shape_err("value", v, "(B, T, kv_num_heads * d_v)");
    a->dv = v->dims[2] / a->Hkv;
    if (!decay != !a->gating)
        return kiln__err(KILN_E_INVAL, "update_rule \"%s\" %s input 'decay'", rule, a->gating ? "requires" : "forbids");
    if (!beta != !a->delta)
        return kiln__err(KILN_E_INVAL, "update_rule \"%s\" %s input 'beta'", rule, a->delta ? "requires" : "forbids");
    if (decay) {
        KILN__TRY(kiln__check_dtype(decay, "decay", KILN__FLOAT_DTYPES));
        if (decay->ndim != 3 || decay->dims[0] != a->B || decay->dims[1] != a->T ||
            (decay->dims[2] != a->Hkv && decay->dims[2] != a->Hkv * a->dk))
            return attn_shape_err("decay", decay, "(B, T, kv_num_heads) or (B, T, kv_num_heads * d_k)");
    }
    if (beta) {
        KILN__TRY(kiln__check_dtype(beta, "beta", KILN__FLOAT_DTYPES));
        if (beta->ndim != 3 || beta->dims[0] != a->B || beta->dims[1] != a->T ||
            (beta->dims[2] != a->Hkv && beta->dims[2] != 1))
            return attn_shape_err("beta", beta, "(B, T, kv_num_heads) or (B, T, 1)");
    }
    if (past) {
        KILN__TRY(kiln__check_dtype(past, "past_state", KILN__FLOAT_DTYPES));
        if (past->ndim != 4 || past->dims[0] != a->B || past->dims[1] != a->Hkv || past->dims[2] != a->dk ||
            past->dims[3] != a->dv)
            return attn_shape_err("past_state", past, "(B, kv_num_heads, d_k, d_v)");
    }
    double scale = kiln__attr_f(c->node, "scale", 0.0f);
    a->scale = scale != 0 ? scale : 1.0 / sqrt((double)a->dk);
    return KILN_OK;
}

kiln_status kiln__infer_LinearAttention(kiln__kctx *c) {
    lin_ctx a;
    KILN__TRY(lin_setup(c, &a));
    const kiln_tensor *past = kiln__in(c, 3);
    int64_t y[3] = {a.B, a.T, a.Hq * a.dv}, st[4] = {a.B, a.Hkv, a.dk, a.dv};
    int64_t n_state = kiln__numel(4, st);
    if (n_state < 0 || n_state > KILN__MAX_NUMEL / 8)
        return kiln__err(KILN_E_LIMIT, "recurrent state of %lld x %lld x %lld x %lld elements is too large",
                         (long long)a.B, (long long)a.Hkv, (long long)a.dk, (long long)a.dv);
    c->scratch_bytes = (size_t)n_state * sizeof(double);
    KILN__TRY(kiln__out_shape(c, 0, c->in[0]->dtype, 3, y));
    return kiln__out_shape(c, 1, past ? past->dtype : c->in[0]->dtype, 4, st);
}

// parallel over the B*Hkv recurrent states
kiln_status kiln__ref_LinearAttention(kiln__kctx *c) {
    lin_ctx a;
    KILN__TRY(lin_setup(c, &a));
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    const kiln_tensor *past = kiln__in(c, 3), *decay = kiln__in(c, 4), *beta = kiln__in(c, 5);
    kiln_tensor *y = c->out[0], *present = kiln__out(c, 1);
    int64_t group = a.Hq / a.Hkv, block = a.dk * a.dv, lo, hi;
    kiln__split(a.B * a.Hkv, c->ith, c->nth, &lo, &hi);
    for (int64_t bh = lo; bh < hi; bh++) {
        int64_t b = bh / a.Hkv, hk = bh % a.Hkv;
        double *S = (double *)c->scratch + bh * block; /* S[d * dv + m] */
        for (int64_t e = 0; e < block; e++)
            S[e] = past ? kiln__elem_ld_f(past->dtype, past->data, bh * block + e) : 0.0;
        for (int64_t t = 0; t < a.T; t++) {
            int64_t bt = b * a.T + t, koff = (bt * a.Hkv + hk) * a.dk, voff = (bt * a.Hkv + hk) * a.dv;
            if (decay) {
                int per_head = decay->dims[2] == a.Hkv;
                for (int64_t d = 0; d < a.dk; d++) {
                    double g = exp(kiln__elem_ld_f(decay->dtype, decay->data,
                                                   per_head ? bt * a.Hkv + hk : koff + d));
                    for (int64_t m = 0; m < a.dv; m++) S[d * a.dv + m] *= g;
                }
            }
            double beta_t = 1;
            if (beta)
                beta_t = kiln__elem_ld_f(beta->dtype, beta->data,
                                         bt * beta->dims[2] + (beta->dims[2] == 1 ? 0 : hk));
            for (int64_t m = 0; m < a.dv; m++) { /* columns of S update independently */
                double vm = kiln__elem_ld_f(v->dtype, v->data, voff + m);
                if (a.delta) {
                    double r = 0;
                    for (int64_t d = 0; d < a.dk; d++)
                        r += S[d * a.dv + m] * kiln__elem_ld_f(k->dtype, k->data, koff + d);
                    vm = beta_t * (vm - r);
                }
                for (int64_t d = 0; d < a.dk; d++)
                    S[d * a.dv + m] += kiln__elem_ld_f(k->dtype, k->data, koff + d) * vm;
            }
            for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
                int64_t qoff = (bt * a.Hq + h) * a.dk, yoff = (bt * a.Hq + h) * a.dv;
                for (int64_t m = 0; m < a.dv; m++) {
                    double o = 0;
                    for (int64_t d = 0; d < a.dk; d++)
                        o += kiln__elem_ld_f(q->dtype, q->data, qoff + d) * S[d * a.dv + m];
                    kiln__elem_st_f(y->dtype, y->data, yoff + m, a.scale * o);
                }
            }
        }
        if (present)
            for (int64_t e = 0; e < block; e++)
                kiln__elem_st_f(present->dtype, present->data, bh * block + e, S[e]);
    }
    return KILN_OK;
}

/* ---- FlexAttention (ai.onnx.preview, opset 1) ----------------------------------
 * Q (B,Hq,L,E), K (B,Hkv,S,E), V (B,Hkv,S,Ev), Y (B,Hq,L,Ev); query head h
 * reads kv head h / (Hq/Hkv). scores = scale * Q K^T in the softmax dtype
 * (softmax_precision, else f32, or f64 for f64 inputs), held in scratch as
 * a (B,Hq,L,S) tensor; the optional subgraphs score_mod (before the softmax
 * over S) and prob_mod (after it) each map that tensor to one of the same
 * shape; Y = probs @ V. Runs subgraphs, so it is not a parallel kernel. */

typedef struct flex_ctx {
    int64_t B, Hq, Hkv, L, S, E, Ev;
    kiln_dtype compute;
    double scale;
} flex_ctx;

static kiln_status flex_check_mod(const kiln__kctx *c, const char *name) {
    const kiln_graph *g = kiln__attr_graph(c->node, name);
    if (g && (g->n_inputs != 1 || g->n_outputs != 1))
        return kiln__err(KILN_E_INVAL, "attribute '%s' must be a graph with 1 input and 1 output (has %d and %d)",
                         name, g->n_inputs, g->n_outputs);
    return KILN_OK;
}

static kiln_status flex_setup(const kiln__kctx *c, flex_ctx *a) {
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    static const char *names[] = {"Q", "K", "V"};
    for (int i = 0; i < 3; i++) {
        KILN__TRY(kiln__check_dtype(c->in[i], names[i], KILN__FLOAT_DTYPES));
        if (c->in[i]->ndim != 4) return attn_shape_err(names[i], c->in[i], "rank 4 (batch, heads, sequence, head_size)");
    }
    a->B = q->dims[0], a->Hq = q->dims[1], a->L = q->dims[2], a->E = q->dims[3];
    a->Hkv = k->dims[1], a->S = k->dims[2], a->Ev = v->dims[3];
    if (k->dims[0] != a->B || k->dims[3] != a->E) return attn_shape_err("K", k, "(B, kv_heads, S, head_size of Q)");
    if (v->dims[0] != a->B || v->dims[1] != a->Hkv || v->dims[2] != a->S)
        return attn_shape_err("V", v, "(B, kv_heads, S, v_head_size)");
    if (a->Hkv <= 0 || a->Hq % a->Hkv)
        return kiln__err(KILN_E_SHAPE, "query heads (%lld) must be a multiple of key/value heads (%lld)",
                         (long long)a->Hq, (long long)a->Hkv);
    int64_t prec = kiln__attr_i(c->node, "softmax_precision", q->dtype == KILN_DTYPE_F64 ? KILN_DTYPE_F64 : KILN_DTYPE_F32);
    if (prec != KILN_DTYPE_F32 && prec != KILN_DTYPE_F64 && prec != KILN_DTYPE_F16 && prec != KILN_DTYPE_BF16)
        return kiln__err(KILN_E_INVAL, "attribute 'softmax_precision' is %lld, expected 1, 10, 11 or 16", (long long)prec);
    a->compute = (kiln_dtype)prec;
    a->scale = kiln__attr_find(c->node, "scale") ? kiln__attr_f(c->node, "scale", 1.0f) : 1.0 / sqrt((double)a->E);
    KILN__TRY(flex_check_mod(c, "score_mod"));
    return flex_check_mod(c, "prob_mod");
}

kiln_status kiln__infer_FlexAttention(kiln__kctx *c) {
    flex_ctx a;
    KILN__TRY(flex_setup(c, &a));
    int64_t sd[4] = {a.B, a.Hq, a.L, a.S}, yd[4] = {a.B, a.Hq, a.L, a.Ev};
    int64_t n = kiln__numel(4, sd);
    if (n < 0) return kiln__err(KILN_E_LIMIT, "attention scores of shape (%lld,%lld,%lld,%lld) are too large",
                                (long long)a.B, (long long)a.Hq, (long long)a.L, (long long)a.S);
    c->scratch_bytes = (size_t)n * kiln_dtype_size(a.compute);
    return kiln__out_shape(c, 0, c->in[0]->dtype, 4, yd);
}

/* Runs the mod subgraph `name` (if any) on *t; *t then points to its output. */
static kiln_status flex_apply_mod(kiln__kctx *c, const char *name, const kiln_tensor **t) {
    kiln_graph *g = kiln__attr_graph(c->node, name);
    if (!g) return KILN_OK;
    kiln__runner *r;
    KILN__TRY(kiln__subgraph_runner(c, g, &r));
    kiln_status s = kiln__runner_run(r, 1, t);
    if (s != KILN_OK) return kiln__err_prefix(s, "in attribute '%s'", name);
    const kiln_tensor *out = kiln__runner_output(r, 0);
    if (!out || !kiln__same_shape(out, *t) || !kiln__dtype_is_float(out->dtype))
        return kiln__err(KILN_E_SHAPE, "attribute '%s' must return a float tensor shaped like its input", name);
    *t = out;
    return KILN_OK;
}

kiln_status kiln__ref_FlexAttention(kiln__kctx *c) {
    flex_ctx a;
    KILN__TRY(flex_setup(c, &a));
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    kiln_tensor *y = c->out[0], scores_t;
    int64_t sd[4] = {a.B, a.Hq, a.L, a.S}, rows = a.B * a.Hq * a.L, group = a.Hq / a.Hkv;
    KILN__TRY(kiln__tensor_init(&scores_t, a.compute, 4, sd));
    scores_t.data = c->scratch;
    for (int64_t r = 0; r < rows; r++) {
        int64_t bh = r / a.L, kv = (bh / a.Hq) * a.Hkv + (bh % a.Hq) / group;
        for (int64_t j = 0; j < a.S; j++) {
            double s = 0;
            for (int64_t e = 0; e < a.E; e++)
                s += kiln__elem_ld_f(q->dtype, q->data, r * a.E + e) *
                     kiln__elem_ld_f(k->dtype, k->data, (kv * a.S + j) * a.E + e);
            kiln__elem_st_f(a.compute, scores_t.data, r * a.S + j, s * a.scale);
        }
    }
    const kiln_tensor *t = &scores_t;
    KILN__TRY(flex_apply_mod(c, "score_mod", &t));
    for (int64_t r = 0; r < rows; r++) { /* softmax over S, into scratch */
        double max = -INFINITY, sum = 0;
        for (int64_t j = 0; j < a.S; j++) {
            double s = kiln__elem_ld_f(t->dtype, t->data, r * a.S + j);
            if (s > max) max = s;
        }
        for (int64_t j = 0; j < a.S; j++)
            sum += exp(kiln__elem_ld_f(t->dtype, t->data, r * a.S + j) - max);
        for (int64_t j = 0; j < a.S; j++)
            kiln__elem_st_f(a.compute, scores_t.data, r * a.S + j,
                            exp(kiln__elem_ld_f(t->dtype, t->data, r * a.S + j) - max) / sum);
    }
    t = &scores_t;
    KILN__TRY(flex_apply_mod(c, "prob_mod", &t));
    for (int64_t r = 0; r < rows; r++) {
        int64_t bh = r / a.L, kv = (bh / a.Hq) * a.Hkv + (bh % a.Hq) / group;
        for (int64_t m = 0; m < a.Ev; m++) {
            double o = 0;
            for (int64_t j = 0; j < a.S; j++)
                o += kiln__elem_ld_f(t->dtype, t->data, r * a.S + j) *
                     kiln__elem_ld_f(v->dtype, v->data, (kv * a.S + j) * a.Ev + m);
            kiln__elem_st_f(y->dtype, y->data, r * a.Ev + m, o);
        }
    }
    return KILN_OK;
}
