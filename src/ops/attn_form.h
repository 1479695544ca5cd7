/* src/ops/attn_form.h: the form of an Attention node (opset 23) that the
 * fast algorithms run (src/cpu/kernels/attention.c, src/cuda/cuda_attention.c):
 * Q (B,Hq,S,dk), K (B,Hkv,T,dk), V (B,Hkv,T,dv), all 4-D and f32, Hq a
 * multiple of Hkv; no past key/value, no softcap, only output Y; a mask
 * absent, f32 or bool, broadcast as the reference kernel does (its last dim
 * mlen may be shorter than T: the keys beyond it are masked). */
#ifndef KILN_OPS_ATTN_FORM_H
#define KILN_OPS_ATTN_FORM_H

#include "ops/op.h"

typedef struct kiln__attn_form {
    int64_t B, Hq, Hkv, Sq, T, dk, dv;
    float scale; /* the `scale` attribute, else 1/sqrt(dk) */
    int causal;
    int has_mask, mask_bool;     /* mask present; bool (else f32) */
    int64_t msb, msh, msq, mlen; /* mask element (b,h,i,j) at b*msb + h*msh + i*msq + j */
} kiln__attn_form;

/* Reads c's Attention node into f; KILN_E_UNSUPPORTED if it has another form. */
kiln_status kiln__attn_form_read(const kiln__kctx *c, kiln__attn_form *f);

#endif
