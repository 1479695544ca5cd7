/* src/ops/attn_form.c: the Attention form the fast algorithms run (attn_form.h). */
#include <math.h>

#include "ops/attn_form.h"

kiln_status kiln__attn_form_read(const kiln__kctx *c, kiln__attn_form *f) {
    const kiln_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2], *m = kiln__in(c, 3);
    const kiln_tensor *y = c->out[0];
    if (q->dtype != KILN_DTYPE_F32 || k->dtype != KILN_DTYPE_F32 || v->dtype != KILN_DTYPE_F32 ||
        y->dtype != KILN_DTYPE_F32)
        return KILN_E_UNSUPPORTED;
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || kiln__in(c, 4) || kiln__in(c, 5) ||
        kiln__in(c, 6))
        return KILN_E_UNSUPPORTED;
    for (int i = 1; i < c->n_out; i++)
        if (c->out[i]) return KILN_E_UNSUPPORTED;
    if (kiln__attr_f(c->node, "softcap", 0.0f) != 0.0f) return KILN_E_UNSUPPORTED;
    if (m && m->dtype != KILN_DTYPE_BOOL && m->dtype != KILN_DTYPE_F32) return KILN_E_UNSUPPORTED;
    *f = (kiln__attn_form){.B = q->dims[0], .Hq = q->dims[1], .Sq = q->dims[2], .dk = q->dims[3],
                           .Hkv = k->dims[1], .T = k->dims[2], .dv = v->dims[3]};
    if (f->T == 0 || f->dk == 0 || f->dv == 0 || f->Hkv == 0 || f->Hq % f->Hkv) return KILN_E_UNSUPPORTED;
    f->scale = kiln__attr_find(c->node, "scale") ? kiln__attr_f(c->node, "scale", 1.0f)
                                                 : (float)(1.0 / sqrt((double)f->dk));
    f->causal = kiln__attr_i(c->node, "is_causal", 0) != 0;
    if (m) { /* the reference's broadcast of the mask (infer validated it) */
        int64_t md[4] = {1, 1, 1, 1}, ms[4];
        if (m->ndim < 1 || m->ndim > 4) return KILN_E_UNSUPPORTED;
        for (int i = 0; i < m->ndim; i++) md[4 - m->ndim + i] = m->dims[i];
        kiln__contiguous_strides(4, md, ms);
        f->has_mask = 1;
        f->mask_bool = m->dtype == KILN_DTYPE_BOOL;
        f->msb = md[0] == 1 ? 0 : ms[0];
        f->msh = md[1] == 1 ? 0 : ms[1];
        f->msq = md[2] == 1 ? 0 : ms[2];
        f->mlen = md[3];
    }
    return KILN_OK;
}
