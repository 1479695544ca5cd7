/* src/graph/session.c: the public session API over the runner: input
 * validation against the graph's declared types, outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/device.h"
#include "graph/exec.h"
#include "graph/optimize.h"

struct kiln_session {
    kiln__runner r;
    const kiln_tensor **inputs; /* per position, scratch for runs */
    kiln__timing_cache *cache;  /* tuned choices (owned) */
    kiln_graph *optimized;      /* the passes' rewrite of the user's graph (owned), or NULL */
    kiln__device *dev;          /* KILN_DEVICE_CUDA: the GPU (owned), else NULL */
};

static const char *const precision_names[] = {"fp32", "bf16", "int8"};

const char *kiln_precision_name(kiln_precision p) {
    return (unsigned)p < sizeof precision_names / sizeof *precision_names ? precision_names[p] : NULL;
}

kiln_status kiln_precision_parse(const char *name, kiln_precision *out) {
    int i;
    KILN__TRY(kiln__name_index("precision", precision_names,
                               (int)(sizeof precision_names / sizeof *precision_names), name, &i));
    *out = (kiln_precision)i;
    return KILN_OK;
}

static const char *const device_names[] = {"cpu", "cuda"};

const char *kiln_device_name(kiln_device d) {
    return (unsigned)d < sizeof device_names / sizeof *device_names ? device_names[d] : NULL;
}

kiln_status kiln_device_parse(const char *name, kiln_device *out) {
    for (int i = 0; i < (int)(sizeof device_names / sizeof *device_names); i++)
        if (name && strcmp(name, device_names[i]) == 0) {
            *out = (kiln_device)i;
            return KILN_OK;
        }
    return kiln__err(KILN_E_INVAL, "unknown device '%s' (expected cpu or cuda)",
                     name ? name : "(null)");
}

/* Planner settings from the options: precision, reference, tuning, cache, device. */
static kiln_status apply_options(kiln_session *s, const kiln_session_options *opt) {
    s->r.memory_limit = opt->memory_limit;
    if (!kiln_precision_name(opt->precision))
        return kiln__err(KILN_E_INVAL, "kiln_session_create: bad precision %d", (int)opt->precision);
    s->r.sel.precision = opt->precision;
    s->r.sel.reference = opt->reference != 0;
    s->r.sel.tune = opt->tune != 0;
    if (!kiln_device_name(opt->device))
        return kiln__err(KILN_E_INVAL, "kiln_session_create: bad device %d", (int)opt->device);
    if (opt->device == KILN_DEVICE_CUDA && !opt->reference) {
        KILN__TRY(kiln__device_open(&s->dev));
        s->r.sel.dev = s->dev;
    }
    /* On a device the cache also keeps the variants device algorithms measure
     * (cuDNN's convolution algorithms), so each signature is measured once
     * per session, or once per cache file. */
    if (opt->tune || opt->timing_cache || s->dev) {
        KILN__TRY(kiln__timing_cache_create(opt->timing_cache, &s->cache));
        KILN__TRY(kiln__timing_cache_load(s->cache));
    }
    s->r.sel.cache = s->cache;
    return KILN_OK;
}

kiln_status kiln_session_create(const kiln_graph *g, const kiln_session_options *opt,
                                kiln_session **out) {
    *out = NULL;
    if (!g) return kiln__err(KILN_E_INVAL, "kiln_session_create: graph is NULL");
    const char *file = g->path ? g->path : "model";
    /* opsets newer than the ones whose operator versions kiln knows */
    int64_t v = kiln__graph_opset(g, "");
    if (v > KILN__MAX_OPSET)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: the model imports ai.onnx opset %lld; kiln supports "
                         "opsets up to %d", file, (long long)v, KILN__MAX_OPSET);
    /* every node must have a kernel: report the first one that has none */
    char buf[512];
    if (kiln_graph_unsupported_ops(g, buf, sizeof buf) > 0)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: unsupported op(s): %s", file, buf);
    kiln_session *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->inputs = calloc((size_t)g->n_inputs + 1, sizeof *s->inputs);
    kiln_status st = s->inputs ? KILN_OK : kiln__err(KILN_E_NOMEM, "out of memory");
    /* the graph passes rewrite a private copy; the user's graph stays as it is */
    if (st == KILN_OK && !(opt && (opt->reference || opt->no_graph_passes))) {
        kiln__opt_options oo = {.precision = opt ? (int)opt->precision : 0,
                                .device = opt && opt->device != KILN_DEVICE_CPU};
        if (!(s->optimized = kiln__graph_clone_borrowing(g))) st = KILN_E_NOMEM;
        else if ((st = kiln__graph_optimize(s->optimized, &oo)) != KILN_OK)
            kiln__err_prefix(st, "%s: graph optimization", file);
        else
            g = s->optimized;
    }
    if (st == KILN_OK) st = kiln__runner_init(&s->r, g, NULL, opt ? opt->threads : 0);
    if (st == KILN_OK && opt) st = apply_options(s, opt);
    if (st != KILN_OK) {
        kiln_session_free(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

void kiln_session_free(kiln_session *s) {
    if (!s) return;
    kiln__runner_free(&s->r); /* before the device: plans give their device memory back */
    kiln__device_close(s->dev);
    kiln__timing_cache_free(s->cache);
    kiln_graph_free(s->optimized);
    free(s->inputs);
    free(s);
}

int kiln_session_threads(const kiln_session *s) { return s->r.threads; }

const char *kiln_session_device_name(const kiln_session *s) {
    return s->dev ? kiln__device_name(s->dev) : NULL;
}

/* "optional(sequence(float32))" for the declared type of v. */
static const char *declared_str(const kiln__value *v, char *buf, size_t n) {
    const char *elem = kiln_dtype_name(v->dtype);
    if (v->container == KILN__DTYPE_SEQUENCE) snprintf(buf, n, "sequence(%s)", elem);
    else if (v->container == KILN__DTYPE_OPTIONAL && v->container_inner == KILN__DTYPE_SEQUENCE)
        snprintf(buf, n, "optional(sequence(%s))", elem);
    else if (v->container == KILN__DTYPE_OPTIONAL) snprintf(buf, n, "optional(%s)", elem);
    else snprintf(buf, n, "%s", elem);
    return buf;
}

/* 1 if t is of kind kinds[0] (0: a tensor) holding values of kind kinds[1],
 * and so on, with tensors of dtype dt (UNDEFINED: any). Empty containers may
 * leave their element dtype undefined. */
static int kind_matches(const kiln_tensor *t, const int *kinds, kiln_dtype dt) {
    if (!t) return 0;
    if (!kinds[0]) return !kiln__is_container(t->dtype) && (!dt || t->dtype == dt);
    if ((int)t->dtype != kinds[0] || (dt && t->elem && t->elem != dt)) return 0;
    for (int64_t i = 0; i < t->dims[0]; i++)
        if (!kind_matches(kiln__container_item(t, i), kinds + 1, dt)) return 0;
    return 1;
}

/* Checks t against the declared type of graph input value v. */
static kiln_status check_input(const kiln_graph *g, const kiln__value *v, const kiln_tensor *t) {
    char got[256], want[256];
    const char *file = g->path ? g->path : "model";
    if (v->container == KILN__TYPE_OTHER)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: input '%s' has a type kiln cannot hold (a map, "
                         "sparse tensor or nested sequence)", file, v->name);
    if (v->container || kiln__is_container(t->dtype)) {
        int kinds[3] = {v->container, v->container_inner, 0};
        if (v->container && kind_matches(t, kinds, v->dtype)) return KILN_OK;
        return kiln__err(KILN_E_TYPE, "%s: input '%s' is %s, the model expects %s", file, v->name,
                         kiln__type_str(t, got, sizeof got), declared_str(v, want, sizeof want));
    }
    if (v->dtype != KILN_DTYPE_UNDEFINED && v->dtype != t->dtype)
        return kiln__err(KILN_E_TYPE, "%s: input '%s' has dtype %s, the model expects %s", file,
                         v->name, kiln_dtype_name(t->dtype), kiln_dtype_name(v->dtype));
    if (v->ndim < 0) return KILN_OK;
    int bad = v->ndim != t->ndim;
    for (int d = 0; !bad && d < v->ndim; d++) bad = v->dims[d].v >= 0 && v->dims[d].v != t->dims[d];
    if (!bad) return KILN_OK;
    size_t k = 0;
    k += snprintf(want + k, sizeof want - k, "(");
    for (int d = 0; d < v->ndim && k < sizeof want; d++) {
        if (v->dims[d].v >= 0)
            k += snprintf(want + k, sizeof want - k, "%s%lld", d ? "," : "", (long long)v->dims[d].v);
        else
            k += snprintf(want + k, sizeof want - k, "%s%s", d ? "," : "",
                          v->dims[d].sym ? v->dims[d].sym : "?");
    }
    if (k < sizeof want) snprintf(want + k, sizeof want - k, ")");
    return kiln__err(KILN_E_SHAPE, "%s: input '%s' has shape %s, the model expects %s", file,
                     v->name, kiln__shape_str(t->ndim, t->dims, got, sizeof got), want);
}

/* Checks the named inputs against the graph's declared types and puts them
 * in s->inputs by position. need_data: every tensor must hold data. */
static kiln_status bind_inputs(kiln_session *s, int n, const char *const *names,
                               const kiln_tensor *const *inputs, int need_data) {
    const kiln_graph *g = s->r.g;
    const char *file = g->path ? g->path : "model";
    for (int i = 0; i < g->n_inputs; i++) s->inputs[i] = NULL;
    for (int k = 0; k < n; k++) {
        int pos = -1;
        for (int i = 0; i < g->n_inputs; i++)
            if (strcmp(g->values[g->inputs[i]].name, names[k]) == 0) pos = i;
        if (pos < 0) return kiln__err(KILN_E_NOTFOUND, "%s: the model has no input named '%s'", file, names[k]);
        if (!inputs[k] || (need_data && !inputs[k]->data && kiln__numel(inputs[k]->ndim, inputs[k]->dims) > 0))
            return kiln__err(KILN_E_INVAL, "%s: input '%s' has no data", file, names[k]);
        KILN__TRY(check_input(g, &g->values[g->inputs[pos]], inputs[k]));
        s->inputs[pos] = inputs[k];
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (!s->inputs[i]) {
            const kiln__value *v = &g->values[g->inputs[i]];
            return kiln__err(KILN_E_INVAL, "%s: input '%s' (%s) was not given", file, v->name,
                             kiln_dtype_name(v->dtype));
        }
    return KILN_OK;
}

kiln_status kiln_session_run(kiln_session *s, int n, const char *const *names,
                             const kiln_tensor *const *inputs) {
    kiln__err_clear();
    KILN__TRY(bind_inputs(s, n, names, inputs, 1));
    KILN__TRY(kiln__runner_run(&s->r, s->r.g->n_inputs, s->inputs));
    /* a new plan may have tuned nodes: keep the winners for the next start */
    if (s->cache) KILN__TRY(kiln__timing_cache_save(s->cache));
    return KILN_OK;
}

kiln_status kiln_session_plan(kiln_session *s, int n, const char *const *names,
                              const kiln_tensor *const *inputs) {
    kiln__err_clear();
    KILN__TRY(bind_inputs(s, n, names, inputs, 0));
    KILN__TRY(kiln__runner_plan(&s->r, s->r.g->n_inputs, s->inputs));
    if (s->cache) KILN__TRY(kiln__timing_cache_save(s->cache));
    return KILN_OK;
}

kiln_status kiln_session_output(const kiln_session *s, int i, const kiln_tensor **out) {
    *out = NULL;
    if (i < 0 || i >= s->r.g->n_outputs)
        return kiln__err(KILN_E_RANGE, "output index %d out of range (the model has %d outputs)", i,
                         s->r.g->n_outputs);
    kiln_tensor *t = kiln__runner_output(&s->r, i);
    if (!t) return kiln__err(KILN_E_INVAL, "no output: the session has not run successfully");
    *out = t;
    return KILN_OK;
}

kiln_status kiln_session_set_profiling(kiln_session *s, int on) { return kiln__runner_profile(&s->r, on); }

int kiln_session_profile(const kiln_session *s, kiln_node_profile *out, int max) {
    const kiln_graph *g = s->r.g;
    for (int i = 0; i < g->n_nodes && i < max; i++) {
        out[i].name = g->nodes[i].name;
        out[i].op_type = g->nodes[i].op_type;
        const kiln__algo *a = kiln__runner_algo(&s->r, i);
        out[i].algorithm = kiln__runner_folded(&s->r, i) ? "folded" : a ? a->name : "reference";
        out[i].flops = kiln__runner_flops(&s->r, i);
        out[i].total_ms = s->r.prof ? s->r.prof[i].seconds * 1e3 : 0;
        out[i].calls = s->r.prof ? s->r.prof[i].calls : 0;
    }
    return g->n_nodes;
}
