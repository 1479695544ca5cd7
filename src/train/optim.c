/* src/train/optim.c: optimizers, schedules and clipping (optim.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/optim.h"

static const char *const optim_names[] = {"sgd", "adam", "adamw"};

const char *kiln__optim_name(kiln__optim_kind k) {
    return (unsigned)k < sizeof optim_names / sizeof *optim_names ? optim_names[k] : NULL;
}

kiln_status kiln__optim_parse(const char *name, kiln__optim_kind *out) {
    int i;
    KILN__TRY(kiln__name_index("optimizer", optim_names, 3, name, &i));
    *out = (kiln__optim_kind)i;
    return KILN_OK;
}

kiln_status kiln__optim_init(kiln__optim *o, kiln__optim_kind kind, int64_t n) {
    memset(o, 0, sizeof *o);
    if (n < 0 || !kiln__optim_name(kind)) return kiln__err(KILN_E_INVAL, "bad optimizer set-up");
    o->kind = kind;
    o->n = n;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    return KILN_OK;
}

void kiln__optim_free(kiln__optim *o) {
    free(o->state);
    memset(o, 0, sizeof *o);
}

int64_t kiln__optim_state_size(const kiln__optim *o) {
    if (o->kind == KILN__OPTIM_SGD) return o->momentum != 0 ? o->n : 0;
    return 2 * o->n;
}


// p, g, b: (n)
static void sgd_step(kiln__optim *o, float *restrict p, const float *restrict g, float lr) {
    const float wd = (float)o->weight_decay, mu = (float)o->momentum;
    float *restrict b = mu != 0 ? o->state : NULL;
    const int first = o->step == 0;
    for (int64_t i = 0; i < o->n; i++) {
        float d = g[i] + wd * p[i];
        if (b) {
            b[i] = first ? d : mu * b[i] + d;
            d = o->nesterov ? d + mu * b[i] : b[i];
        }
        p[i] -= lr * d;
    }
}

// p, g, m, v: (n)
static void adam_step(kiln__optim *o, float *restrict p, const float *restrict g, float lr) {
    float *restrict m = o->state, *restrict v = o->state + o->n;
    const int decoupled = o->kind == KILN__OPTIM_ADAMW;
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float wd = (float)o->weight_decay, shrink = (float)(1.0 - (double)lr * o->weight_decay);
    const double t = (double)(o->step + 1);
    const float c1 = (float)(1.0 - pow(o->beta1, t)), c2 = (float)sqrt(1.0 - pow(o->beta2, t));
    const float step = lr / c1;
    for (int64_t i = 0; i < o->n; i++) {
        float d = g[i];
        if (decoupled)
            p[i] *= shrink;
        else
            d += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * d;
        v[i] = b2 * v[i] + (1 - b2) * d * d;
        p[i] -= step * m[i] / (sqrtf(v[i]) / c2 + eps);
    }
}

kiln_status kiln__optim_step(kiln__optim *o, float *params, const float *grads, double lr) {
    int64_t k = kiln__optim_state_size(o);
    if (!o->state && k > 0 && !(o->state = calloc((size_t)k, sizeof(float))))
        return kiln__err(KILN_E_NOMEM, "out of memory for the optimizer state (%lld floats)",
                         (long long)k);
    if (o->kind == KILN__OPTIM_SGD)
        sgd_step(o, params, grads, (float)lr);
    else
        adam_step(o, params, grads, (float)lr);
    o->step++;
    return KILN_OK;
}

double kiln__global_norm(const float *g, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

double kiln__clip_global_norm(float *g, int64_t n, double max_norm) {
    double norm = kiln__global_norm(g, n), f = max_norm / (norm + 1e-6);
    if (f < 1)
        for (int64_t i = 0; i < n; i++) g[i] = (float)(g[i] * f);
    return norm;
}

static const char *const schedule_names[] = {"constant", "step", "cosine"};

kiln_status kiln_lr_schedule_parse(const char *name, kiln_lr_schedule_kind *out) {
    int i;
    KILN__TRY(kiln__name_index("learning-rate schedule", schedule_names, 3, name, &i));
    *out = (kiln_lr_schedule_kind)i;
    return KILN_OK;
}

double kiln_lr_at(const kiln_lr_schedule *s, int64_t t) {
    if (t < s->warmup) return s->lr * (double)(t + 1) / (double)s->warmup;
    t -= s->warmup;
    switch (s->kind) {
    case KILN_LR_STEP:
        return s->step_size > 0 ? s->lr * pow(s->gamma, (double)(t / s->step_size)) : s->lr;
    case KILN_LR_COSINE: {
        double f = s->total > 0 && t < s->total ? (double)t / (double)s->total : 1.0;
        return s->lr_min + (s->lr - s->lr_min) * (1 + cos(M_PI * f)) / 2;
    }
    default:
        return s->lr;
    }
}
