/* src/ops/fused.c: activation attributes of kiln's fused ops (fused.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/fused.h"

static const char *const act_names[] = {"", "Relu", "Clip", "Gelu", "GeluTanh", "Silu"};

const char *kiln__act_name(kiln__act_kind kind) {
    return (unsigned)kind < sizeof act_names / sizeof *act_names ? act_names[kind] : "";
}

kiln_status kiln__act_from_attrs(const kiln__node *n, const char *attr, kiln__act *out) {
    char params[64];
    snprintf(params, sizeof params, "%s_params", attr);
    out->kind = KILN__ACT_NONE;
    out->lo = -INFINITY;
    out->hi = INFINITY;
    const char *name = kiln__attr_s(n, attr, "");
    int found = 0;
    for (int k = 0; k < (int)(sizeof act_names / sizeof *act_names); k++)
        if (strcmp(name, act_names[k]) == 0) {
            out->kind = (kiln__act_kind)k;
            found = 1;
        }
    if (!found) return kiln__err(KILN_E_INVAL, "attribute %s: unknown activation '%s'", attr, name);
    const float *p;
    int np = kiln__attr_floats(n, params, &p);
    if (out->kind == KILN__ACT_CLIP && np >= 1) out->lo = p[0];
    if (out->kind == KILN__ACT_CLIP && np >= 2) out->hi = p[1];
    if (out->kind == KILN__ACT_CLIP && (np > 2 || isnan(out->lo) || isnan(out->hi)))
        return kiln__err(KILN_E_INVAL, "attribute %s: Clip takes (min, max), got %d values",
                         params, np);
    return KILN_OK;
}

kiln_status kiln__act_from_node(const kiln__node *n, kiln__act *out) {
    return kiln__act_from_attrs(n, "activation", out);
}

float kiln__act_apply(const kiln__act *a, float x) {
    switch (a->kind) {
    case KILN__ACT_NONE: return x;
    case KILN__ACT_RELU: return x < 0.0f ? 0.0f : x; /* as the GEMM epilogue */
    case KILN__ACT_CLIP: return isnan(x) ? x : x < a->lo ? a->lo : x > a->hi ? a->hi : x;
    case KILN__ACT_GELU: return (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440)));
    case KILN__ACT_GELU_TANH: {
        double xd = x;
        return (float)(0.5 * xd * (1.0 + tanh(0.79788456080286535588 * (xd + 0.044715 * xd * xd * xd))));
    }
    case KILN__ACT_SILU: return (float)(x / (1.0 + exp(-(double)x)));
    }
    return x;
}

void kiln__act_store(const kiln__act *a, kiln_dtype dt, void *data, int64_t i, double v) {
    kiln__st_f(dt, data, i, a->kind == KILN__ACT_NONE ? v : kiln__act_apply(a, (float)v));
}
