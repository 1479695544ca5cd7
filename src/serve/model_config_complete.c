/* src/serve/model_config_complete.c: serve_config_complete (model_config.h),
 * a parsed configuration checked against the model's graph and completed
 * from it as Triton's onnxruntime backend completes one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/model_config.h"

typedef struct cctx {
    char *err;
    size_t errlen;
    const char *model;
} cctx;

/* "model 'M': " + message into c->err; returns st. */
static kiln_status cfail(cctx *c, kiln_status st, const char *fmt, ...) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "model '%s': ", c->model);
    va_list ap;
    va_start(ap, fmt);
    serve_config_error(c->err, c->errlen, st, prefix, fmt, ap);
    va_end(ap);
    return st;
}

/* The model-side shape of io (reshape when given), without the batch dimension. */
static void model_side(const serve_io *io, int *n, const int64_t **d) {
    *n = io->has_reshape ? io->reshape_ndim : io->ndim;
    *d = io->has_reshape ? io->reshape : io->dims;
}

/* Finds the graph tensor named `name` among infos[0..n). */
static const kiln_value_info *find_info(const kiln_value_info *infos, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (infos[i].name && !strcmp(infos[i].name, name)) return &infos[i];
    return NULL;
}

/* Fills io's missing dtype and dims from the graph, then checks it. */
static kiln_status complete_io(cctx *c, serve_io *io, const kiln_value_info *vi, int mbs, const char *kind) {
    char a[200], b[200];
    const char *gname = serve_dtype_config_name(vi->dtype);
    if (vi->dtype != KILN_DTYPE_UNDEFINED && !gname)
        return cfail(c, KILN_E_INVAL, "%s '%s': the model's data type %s has no Triton equivalent", kind, io->name,
                     kiln_dtype_name(vi->dtype));
    if (io->dtype == KILN_DTYPE_UNDEFINED) {
        if (vi->dtype == KILN_DTYPE_UNDEFINED)
            return cfail(c, KILN_E_INVAL, "%s '%s': the model does not declare its data type; give data_type "
                                          "in config.pbtxt", kind, io->name);
        io->dtype = vi->dtype;
    } else if (vi->dtype != KILN_DTYPE_UNDEFINED && io->dtype != vi->dtype) {
        return cfail(c, KILN_E_INVAL, "%s '%s': data_type is %s in the configuration but %s in the model", kind,
                     io->name, serve_dtype_config_name(io->dtype), gname);
    }
    if (io->ndim == 0) { /* dims from the model */
        if (vi->ndim < 0)
            return cfail(c, KILN_E_INVAL, "%s '%s': the model does not declare its shape; give dims in "
                                          "config.pbtxt", kind, io->name);
        int off = mbs > 0 ? 1 : 0;
        if (vi->ndim < off)
            return cfail(c, KILN_E_INVAL, "%s '%s': max_batch_size is %d but the model's %s is a scalar (no batch "
                                          "dimension): set max_batch_size: 0", kind, io->name, mbs, kind);
        for (int d = off; d < vi->ndim; d++) {
            if (vi->dims[d] == 0)
                return cfail(c, KILN_E_INVAL, "%s '%s': the model's dimension %d has size 0, which Triton's "
                                              "configuration cannot express", kind, io->name, d);
            io->dims[io->ndim++] = vi->dims[d] < 0 ? -1 : vi->dims[d];
        }
        if (io->ndim == 0) { /* a scalar per batch item: dims [1], reshaped to [] */
            io->dims[io->ndim++] = 1;
            io->has_reshape = 1;
            io->reshape_ndim = 0;
        }
    }
    if (io->format && io->ndim != 3)
        return cfail(c, KILN_E_INVAL, "%s '%s': %s needs 3 dims (without the batch dimension), not %s", kind,
                     io->name, serve_format_names[io->format], serve_config_fmt_dims(a, sizeof a, io->ndim, io->dims));
    if (io->has_reshape && io->reshape_ndim == 0 && mbs == 0 && vi->ndim != 0)
        return cfail(c, KILN_E_INVAL, "%s '%s': an empty reshape (a scalar) needs max_batch_size > 0", kind,
                     io->name);
    if (vi->ndim < 0) return KILN_OK; /* rank unknown: nothing to compare */
    int n;
    const int64_t *d;
    model_side(io, &n, &d);
    if (vi->ndim == 0) { /* a scalar in the model: Triton takes dims of 1s for it */
        if (mbs > 0)
            return cfail(c, KILN_E_INVAL, "%s '%s': the model's %s is a scalar, with no batch dimension for "
                                          "max_batch_size %d: set max_batch_size: 0", kind, io->name, kind, mbs);
        for (int i = 0; i < n; i++)
            if (d[i] != 1)
                return cfail(c, KILN_E_INVAL, "%s '%s': the model's %s is a scalar; dims must be [1], not %s",
                             kind, io->name, kind, serve_config_fmt_dims(a, sizeof a, n, d));
        if (!io->has_reshape) { /* the server reshapes requests to the scalar */
            io->has_reshape = 1;
            io->reshape_ndim = 0;
        }
        return KILN_OK;
    }
    int off = mbs > 0 ? 1 : 0;
    const char *what = io->has_reshape ? "reshape" : "dims";
    if (n + off != vi->ndim)
        return cfail(c, KILN_E_INVAL, "%s '%s': %s %s%s has rank %d but the model's %s has rank %d (shape %s)",
                     kind, io->name, what, serve_config_fmt_dims(a, sizeof a, n, d),
                     off ? " plus the batch dimension (max_batch_size > 0)" : "", n + off, kind, vi->ndim,
                     serve_config_fmt_dims(b, sizeof b, vi->ndim, vi->dims));
    if (off && vi->dims[0] >= 0)
        return cfail(c, KILN_E_INVAL, "%s '%s': max_batch_size is %d but the model's first dimension is fixed at "
                                      "%lld (shape %s), not a batch dimension: set max_batch_size: 0 and give "
                                      "the full shape in dims", kind, io->name, mbs, (long long)vi->dims[0],
                     serve_config_fmt_dims(b, sizeof b, vi->ndim, vi->dims));
    for (int i = 0; i < n; i++) {
        int64_t g = vi->dims[i + off];
        if (g >= 0 && d[i] != g)
            return cfail(c, KILN_E_INVAL, "%s '%s': %s %s does not match the model's shape %s%s: dimension %d is "
                                          "%lld in the configuration, %lld in the model", kind, io->name, what,
                         serve_config_fmt_dims(a, sizeof a, n, d), serve_config_fmt_dims(b, sizeof b, vi->ndim, vi->dims),
                         off ? " (its first dimension is the batch)" : "", i + off, (long long)d[i],
                         (long long)g);
    }
    return KILN_OK;
}

/* Can the model batch: every graph input and output of rank >= 1 with a
 * variable first dimension, and every configured shape one short of it. */
static int can_batch(const serve_model_config *cfg, const kiln_value_info *in, int ni,
                     const kiln_value_info *out, int no) {
    for (int i = 0; i < ni; i++)
        if (in[i].ndim < 1 || in[i].dims[0] >= 0) return 0;
    for (int i = 0; i < no; i++)
        if (out[i].ndim < 1 || out[i].dims[0] >= 0) return 0;
    for (int k = 0; k < 2; k++) {
        const serve_io *ios = k ? cfg->outputs : cfg->inputs;
        int nios = k ? cfg->n_outputs : cfg->n_inputs;
        for (int i = 0; i < nios; i++) {
            const kiln_value_info *vi = find_info(k ? out : in, k ? no : ni, ios[i].name);
            int n;
            const int64_t *d;
            model_side(&ios[i], &n, &d);
            if (vi && (ios[i].ndim > 0 || ios[i].has_reshape) && n != vi->ndim - 1) return 0;
        }
    }
    return 1;
}

static char *dup_or_null(const char *s, int *bad) {
    char *r = strdup(s);
    if (!r) *bad = 1;
    return r;
}

kiln_status serve_config_complete(serve_model_config *cfg, const kiln_graph *g, const char *model_name,
                                  char *err, size_t errlen) {
    cctx c = {.err = err, .errlen = errlen, .model = model_name ? model_name : "?"};
    kiln_value_info *in = NULL, *out = NULL;
    kiln_status st = KILN_OK;
    int oomed = 0;
    if (err && errlen) err[0] = '\0';
    if (!cfg || !g || !model_name || !model_name[0]) return cfail(&c, KILN_E_INVAL, "no configuration, graph or name");
    if (!cfg->instance_kind) cfg->instance_kind = "KIND_CPU";

    /* name, platform, backend, file */
    if (cfg->name && strcmp(cfg->name, model_name))
        return cfail(&c, KILN_E_INVAL, "name: the configuration says '%s' but the model's directory is '%s' (they "
                                       "must match)", cfg->name, model_name);
    if (!cfg->name) cfg->name = dup_or_null(model_name, &oomed);
    if (!cfg->platform) cfg->platform = dup_or_null("onnxruntime_onnx", &oomed);
    if (!cfg->backend) cfg->backend = dup_or_null("onnxruntime", &oomed);
    if (!cfg->default_model_filename) cfg->default_model_filename = dup_or_null("model.onnx", &oomed);
    if (oomed) return cfail(&c, KILN_E_NOMEM, "out of memory");

    /* the graph's inputs and outputs */
    int ni = kiln_graph_num_inputs(g), no = kiln_graph_num_outputs(g);
    in = calloc((size_t)(ni > 0 ? ni : 1), sizeof *in);
    out = calloc((size_t)(no > 0 ? no : 1), sizeof *out);
    if (!in || !out) {
        st = cfail(&c, KILN_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < ni; i++)
        if (kiln_graph_input_info(g, i, &in[i]) != KILN_OK) {
            st = cfail(&c, KILN_E_INVAL, "graph input %d: %s", i, kiln_last_error());
            goto done;
        }
    for (int i = 0; i < no; i++)
        if (kiln_graph_output_info(g, i, &out[i]) != KILN_OK) {
            st = cfail(&c, KILN_E_INVAL, "graph output %d: %s", i, kiln_last_error());
            goto done;
        }
    for (int k = 0; k < 2; k++) {
        const serve_io *ios = k ? cfg->outputs : cfg->inputs;
        for (int i = 0; i < (k ? cfg->n_outputs : cfg->n_inputs); i++)
            if (!find_info(k ? out : in, k ? no : ni, ios[i].name)) {
                char names[512] = "";
                size_t used = 0;
                for (int j = 0; j < (k ? no : ni) && used < sizeof names; j++) {
                    int w = snprintf(names + used, sizeof names - used, "%s'%s'", j ? ", " : "",
                                     (k ? out : in)[j].name);
                    if (w < 0) break;
                    used += (size_t)w;
                }
                st = cfail(&c, KILN_E_INVAL, "%s '%s' of the configuration is not an %s of the model (it has %s)",
                           k ? "output" : "input", ios[i].name, k ? "output" : "input", names);
                goto done;
            }
    }

    /* max_batch_size and dynamic batching */
    int autocomplete = cfg->n_inputs == 0 || cfg->n_outputs == 0 || !cfg->max_batch_size_given;
    if (!cfg->max_batch_size_given) cfg->max_batch_size = can_batch(cfg, in, ni, out, no) ? 4 : 0;
    int mbs = cfg->max_batch_size;
    if (autocomplete && mbs > 1 && !cfg->dynamic_batching) cfg->dynamic_batching = 1;
    if (cfg->dynamic_batching && mbs == 0) {
        st = cfail(&c, KILN_E_INVAL, "dynamic_batching: needs max_batch_size > 0, and the model %s",
                   cfg->max_batch_size_given ? "is configured with max_batch_size 0"
                                             : "cannot batch (not every input and output has a variable first "
                                               "dimension)");
        goto done;
    }
    for (int i = 0; i < cfg->n_preferred; i++)
        if (cfg->preferred_batch_sizes[i] > mbs) {
            st = cfail(&c, KILN_E_INVAL, "dynamic_batching: preferred_batch_size %d is above max_batch_size %d",
                       cfg->preferred_batch_sizes[i], mbs);
            goto done;
        }

    /* inputs: the configured ones, then the rest of the graph's */
    int n_conf = cfg->n_inputs;
    for (int i = 0; i < ni; i++) {
        int found = 0;
        for (int k = 0; k < n_conf && !found; k++) found = !strcmp(cfg->inputs[k].name, in[i].name);
        if (found) continue;
        serve_io *io = serve_config_grow((void **)&cfg->inputs, &cfg->n_inputs, sizeof *io);
        if (!io || !(io->name = strdup(in[i].name))) {
            st = cfail(&c, KILN_E_NOMEM, "out of memory");
            goto done;
        }
    }
    for (int i = 0; i < cfg->n_inputs; i++)
        if ((st = complete_io(&c, &cfg->inputs[i], find_info(in, ni, cfg->inputs[i].name), mbs, "input")))
            goto done;
    /* outputs: the configured ones, or all of the graph's */
    if (cfg->n_outputs == 0)
        for (int i = 0; i < no; i++) {
            serve_io *io = serve_config_grow((void **)&cfg->outputs, &cfg->n_outputs, sizeof *io);
            if (!io || !(io->name = strdup(out[i].name))) {
                st = cfail(&c, KILN_E_NOMEM, "out of memory");
                goto done;
            }
        }
    for (int i = 0; i < cfg->n_outputs; i++)
        if ((st = complete_io(&c, &cfg->outputs[i], find_info(out, no, cfg->outputs[i].name), mbs, "output")))
            goto done;

    /* warm-up samples against the inputs */
    for (int w = 0; w < cfg->n_warmup; w++) {
        const serve_warmup *wu = &cfg->warmup[w];
        const char *wn = wu->name ? wu->name : "";
        char a[200], b[200];
        if (wu->batch_size > (mbs > 0 ? mbs : 1)) {
            st = cfail(&c, KILN_E_INVAL, "model_warmup '%s': batch_size %d is above %s %d", wn, wu->batch_size,
                       mbs > 0 ? "max_batch_size" : "1 (max_batch_size is 0):", mbs > 0 ? mbs : 1);
            goto done;
        }
        for (int i = 0; i < wu->n_inputs; i++) {
            const serve_warmup_input *wi = &wu->inputs[i];
            const serve_io *io = NULL;
            for (int k = 0; k < cfg->n_inputs && !io; k++)
                if (!strcmp(cfg->inputs[k].name, wi->name)) io = &cfg->inputs[k];
            if (!io) {
                st = cfail(&c, KILN_E_INVAL, "model_warmup '%s': input '%s' is not an input of the model", wn,
                           wi->name);
                goto done;
            }
            if (wi->dtype != io->dtype) {
                st = cfail(&c, KILN_E_INVAL, "model_warmup '%s' input '%s': data_type %s, but the input is %s", wn,
                           wi->name, serve_dtype_config_name(wi->dtype), serve_dtype_config_name(io->dtype));
                goto done;
            }
            int ok = wi->ndim == io->ndim;
            for (int d = 0; ok && d < io->ndim; d++) ok = io->dims[d] < 0 || io->dims[d] == wi->dims[d];
            if (!ok) {
                st = cfail(&c, KILN_E_INVAL, "model_warmup '%s' input '%s': dims %s do not fit the input's dims %s",
                           wn, wi->name, serve_config_fmt_dims(a, sizeof a, wi->ndim, wi->dims),
                           serve_config_fmt_dims(b, sizeof b, io->ndim, io->dims));
                goto done;
            }
        }
        for (int k = 0; k < cfg->n_inputs; k++) {
            int found = cfg->inputs[k].optional;
            for (int i = 0; i < wu->n_inputs && !found; i++) found = !strcmp(wu->inputs[i].name, cfg->inputs[k].name);
            if (!found) {
                st = cfail(&c, KILN_E_INVAL, "model_warmup '%s': gives no data for input '%s'", wn,
                           cfg->inputs[k].name);
                goto done;
            }
        }
    }

    /* instance groups: Triton names them MODEL_<index>, or MODEL for the default one */
    if (cfg->n_instance_groups == 0) {
        serve_instance_group *gr = serve_config_grow((void **)&cfg->instance_groups, &cfg->n_instance_groups, sizeof *gr);
        if (!gr || !(gr->name = strdup(model_name))) {
            st = cfail(&c, KILN_E_NOMEM, "out of memory");
            goto done;
        }
        gr->kind = cfg->instance_kind;
        gr->count = cfg->instance_count > 0 ? cfg->instance_count : 1;
    }
    for (int i = 0; i < cfg->n_instance_groups; i++)
        if (!cfg->instance_groups[i].name) {
            size_t len = strlen(model_name) + 16;
            char *nm = malloc(len);
            if (!nm) {
                st = cfail(&c, KILN_E_NOMEM, "out of memory");
                goto done;
            }
            snprintf(nm, len, "%s_%d", model_name, i);
            cfg->instance_groups[i].name = nm;
        }
done:
    free(in);
    free(out);
    return st;
}
