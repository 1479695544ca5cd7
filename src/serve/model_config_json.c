/* src/serve/model_config_json.c: a model configuration in Triton's JSON form,
 * both ways.
 *
 * Out (GET /v2/models/M/config): ModelConfig's snake_case field names, every
 * plain field printed with its default, int64 fields as numbers.
 *
 * In (a load request's "config" parameter): the JSON is turned into the tree
 * config.pbtxt parses to (objects -> messages, arrays -> repeated fields,
 * strings, numbers, true/false; the map fields "parameters", model_warmup's
 * "inputs" and dynamic_batching's "priority_queue_policy" -> key/value entries; null, {} and [] -> left
 * out, as protobuf cannot tell them from a field not given) and read by
 * the same code as config.pbtxt (model_config.c), so the same fields are
 * taken and refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/model_config.h"
#include "serve/pbtxt.h"

/* Adds v under key (arrays: key NULL); clears *ok when v is NULL or adding fails. */
static cJSON *put(cJSON *parent, const char *key, cJSON *v, int *ok) {
    if (!v || !parent) {
        cJSON_Delete(v);
        *ok = 0;
        return NULL;
    }
    if (!(key ? cJSON_AddItemToObject(parent, key, v) : cJSON_AddItemToArray(parent, v))) {
        cJSON_Delete(v);
        *ok = 0;
        return NULL;
    }
    return v;
}

static cJSON *num(double v) { return cJSON_CreateNumber(v); }
static cJSON *str(const char *s) { return cJSON_CreateString(s ? s : ""); }
static cJSON *boolean(int b) { return cJSON_CreateBool(b != 0); }

static cJSON *queue_policy_json(const serve_queue_policy *q) {
    cJSON *o = cJSON_CreateObject();
    int ok = 1;
    put(o, "timeout_action", str(q->timeout_action_delay ? "DELAY" : "REJECT"), &ok);
    put(o, "default_timeout_microseconds", num((double)q->default_timeout_us), &ok);
    put(o, "allow_timeout_override", boolean(q->allow_timeout_override), &ok);
    put(o, "max_queue_size", num((double)q->max_queue_size), &ok);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *dims_json(int n, const int64_t *d) {
    cJSON *a = cJSON_CreateArray();
    int ok = 1;
    for (int i = 0; a && i < n; i++) put(a, NULL, num((double)d[i]), &ok);
    if (!ok) {
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

static cJSON *io_json(const serve_io *io, int is_input) {
    cJSON *o = cJSON_CreateObject();
    int ok = 1;
    put(o, "name", str(io->name), &ok);
    const char *t = serve_dtype_config_name(io->dtype);
    put(o, "data_type", str(t ? t : "TYPE_INVALID"), &ok);
    if (is_input) put(o, "format", str(serve_format_names[io->format >= 0 && io->format < 3 ? io->format : 0]), &ok);
    put(o, "dims", dims_json(io->ndim, io->dims), &ok);
    if (io->has_reshape) {
        cJSON *r = put(o, "reshape", cJSON_CreateObject(), &ok);
        put(r, "shape", dims_json(io->reshape_ndim, io->reshape), &ok);
    }
    if (!is_input) put(o, "label_filename", str(io->label_filename), &ok);
    put(o, "is_shape_tensor", boolean(0), &ok);
    if (is_input) {
        put(o, "allow_ragged_batch", boolean(0), &ok);
        put(o, "optional", boolean(io->optional), &ok);
    }
    put(o, "is_non_linear_format_io", boolean(0), &ok);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Triton's config JSON: protobuf's JSON of ModelConfig with snake_case names
 * and every scalar printed (preserve_proto_field_names,
 * always_print_primitive_fields), int64 fields as numbers. */
cJSON *serve_config_to_json(const serve_model_config *cfg) {
    cJSON *j = cJSON_CreateObject(), *o, *a;
    int ok = 1;
    put(j, "name", str(cfg->name), &ok);
    put(j, "platform", str(cfg->platform), &ok);
    put(j, "backend", str(cfg->backend), &ok);
    put(j, "runtime", str(""), &ok);
    o = put(j, "version_policy", cJSON_CreateObject(), &ok);
    if (cfg->version_policy == SERVE_VERSIONS_ALL) {
        put(o, "all", cJSON_CreateObject(), &ok);
    } else if (cfg->version_policy == SERVE_VERSIONS_SPECIFIC) {
        cJSON *s = put(o, "specific", cJSON_CreateObject(), &ok);
        put(s, "versions", dims_json(cfg->n_versions, cfg->versions), &ok);
    } else {
        cJSON *l = put(o, "latest", cJSON_CreateObject(), &ok);
        put(l, "num_versions", num(cfg->latest_num_versions > 0 ? cfg->latest_num_versions : 1), &ok);
    }
    put(j, "max_batch_size", num(cfg->max_batch_size), &ok);
    a = put(j, "input", cJSON_CreateArray(), &ok);
    for (int i = 0; i < cfg->n_inputs; i++) put(a, NULL, io_json(&cfg->inputs[i], 1), &ok);
    a = put(j, "output", cJSON_CreateArray(), &ok);
    for (int i = 0; i < cfg->n_outputs; i++) put(a, NULL, io_json(&cfg->outputs[i], 0), &ok);
    put(j, "batch_input", cJSON_CreateArray(), &ok);
    put(j, "batch_output", cJSON_CreateArray(), &ok);
    if (cfg->dynamic_batching) {
        o = put(j, "dynamic_batching", cJSON_CreateObject(), &ok);
        a = put(o, "preferred_batch_size", cJSON_CreateArray(), &ok);
        for (int i = 0; i < cfg->n_preferred; i++) put(a, NULL, num(cfg->preferred_batch_sizes[i]), &ok);
        /* Triton's normalization: no preferred sizes means [max_batch_size] */
        if (cfg->n_preferred == 0 && cfg->max_batch_size > 0) put(a, NULL, num(cfg->max_batch_size), &ok);
        put(o, "max_queue_delay_microseconds", num((double)cfg->max_queue_delay_us), &ok);
        put(o, "preserve_ordering", boolean(0), &ok);
        put(o, "priority_levels", num((double)cfg->priority_levels), &ok);
        put(o, "default_priority_level", num((double)cfg->default_priority_level), &ok);
        const serve_queue_policy *dq = &cfg->queue_policy;
        if (dq->timeout_action_delay || dq->default_timeout_us || dq->allow_timeout_override ||
            dq->max_queue_size)
            put(o, "default_queue_policy", queue_policy_json(dq), &ok);
        cJSON *pq = put(o, "priority_queue_policy", cJSON_CreateObject(), &ok);
        for (int i = 0; pq && i < cfg->n_level_policies; i++) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)cfg->policy_levels[i]);
            put(pq, key, queue_policy_json(&cfg->level_policies[i]), &ok);
        }
    }
    a = put(j, "instance_group", cJSON_CreateArray(), &ok);
    int ng = cfg->n_instance_groups;
    for (int i = 0; i < (ng ? ng : 1); i++) {
        const serve_instance_group *gr = ng ? &cfg->instance_groups[i] : NULL;
        o = put(a, NULL, cJSON_CreateObject(), &ok);
        put(o, "name", str(gr ? gr->name : cfg->name), &ok);
        put(o, "kind", str(gr ? gr->kind : cfg->instance_kind ? cfg->instance_kind : "KIND_CPU"), &ok);
        put(o, "count", num(gr ? gr->count : cfg->instance_count), &ok);
        cJSON *gp = put(o, "gpus", cJSON_CreateArray(), &ok);
        for (int k = 0; gr && k < gr->n_gpus; k++) put(gp, NULL, num(gr->gpus[k]), &ok);
        put(o, "secondary_devices", cJSON_CreateArray(), &ok);
        put(o, "profile", cJSON_CreateArray(), &ok);
        put(o, "passive", boolean(0), &ok);
        put(o, "host_policy", str(""), &ok);
    }
    put(j, "default_model_filename", str(cfg->default_model_filename ? cfg->default_model_filename : "model.onnx"),
        &ok);
    put(j, "cc_model_filenames", cJSON_CreateObject(), &ok);
    put(j, "metric_tags", cJSON_CreateObject(), &ok);
    o = put(j, "parameters", cJSON_CreateObject(), &ok);
    for (int i = 0; i < cfg->n_parameters; i++) {
        cJSON *p = put(o, cfg->param_keys[i], cJSON_CreateObject(), &ok);
        put(p, "string_value", str(cfg->param_values[i]), &ok);
    }
    a = put(j, "model_warmup", cJSON_CreateArray(), &ok);
    for (int w = 0; w < cfg->n_warmup; w++) {
        const serve_warmup *wu = &cfg->warmup[w];
        o = put(a, NULL, cJSON_CreateObject(), &ok);
        put(o, "name", str(wu->name), &ok);
        put(o, "batch_size", num(wu->batch_size), &ok);
        cJSON *ins = put(o, "inputs", cJSON_CreateObject(), &ok);
        for (int i = 0; i < wu->n_inputs; i++) {
            const serve_warmup_input *wi = &wu->inputs[i];
            const char *t = serve_dtype_config_name(wi->dtype);
            cJSON *x = put(ins, wi->name, cJSON_CreateObject(), &ok);
            put(x, "data_type", str(t ? t : "TYPE_INVALID"), &ok);
            put(x, "dims", dims_json(wi->ndim, wi->dims), &ok);
            if (wi->data == SERVE_WARMUP_FILE) put(x, "input_data_file", str(wi->input_data_file), &ok);
            else put(x, wi->data == SERVE_WARMUP_RANDOM ? "random_data" : "zero_data", boolean(1), &ok);
        }
        put(o, "count", num(wu->count), &ok);
    }
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ---- JSON in ------------------------------------------------------------------------- */

#define JSON_MAX_DEPTH 32

static char *dup_text(const char *s, size_t *len) {
    *len = strlen(s);
    char *d = malloc(*len + 1);
    return d ? memcpy(d, s, *len + 1) : NULL;
}

/* A map field: an object whose keys are data, written as key/value entries. */
static int is_map(const char *field, const char *parent) {
    return (!strcmp(field, "parameters") && !strcmp(parent, "")) ||
           (!strcmp(field, "inputs") && !strcmp(parent, "model_warmup")) ||
           (!strcmp(field, "priority_queue_policy") && !strcmp(parent, "dynamic_batching"));
}

static int to_node(const cJSON *j, const char *name, int depth, pbtxt_node *n, char *err,
                   size_t errlen);

/* A member protobuf cannot tell from one not given: null, {}, []. */
static int absent(const cJSON *m) {
    return cJSON_IsNull(m) || ((cJSON_IsObject(m) || cJSON_IsArray(m)) && !m->child);
}

/* The children of message n (field `name`) from the members of object j:
 * one node per member, per element of an array, per entry of a map. */
static int object_children(const cJSON *j, const char *name, int depth, pbtxt_node *n, char *err,
                           size_t errlen) {
    int count = 0;
    for (const cJSON *m = j->child; m; m = m->next)
        if (!absent(m))
            count += cJSON_IsArray(m) || (cJSON_IsObject(m) && is_map(m->string, name))
                         ? cJSON_GetArraySize(m)
                         : 1;
    n->type = PBTXT_MESSAGE;
    if (count && !(n->children = calloc((size_t)count, sizeof *n->children))) goto nomem;
    for (const cJSON *m = j->child; m; m = m->next) {
        if (absent(m)) continue;
        if (cJSON_IsObject(m) && is_map(m->string, name)) {
            for (const cJSON *x = m->child; x; x = x->next) { /* m { key: "k" value { ... } } */
                pbtxt_node *e = &n->children[n->n_children++];
                e->type = PBTXT_MESSAGE;
                if (!(e->name = strdup(m->string)) || !(e->children = calloc(2, sizeof *e->children)))
                    goto nomem;
                pbtxt_node *k = &e->children[e->n_children++];
                k->type = PBTXT_STRING;
                if (!(k->name = strdup("key")) || !(k->text = dup_text(x->string, &k->len))) goto nomem;
                if (to_node(x, "value", depth + 1, &e->children[e->n_children++], err, errlen))
                    return -1;
            }
        } else if (cJSON_IsArray(m)) { /* repeated: one node per element */
            for (const cJSON *x = m->child; x; x = x->next)
                if (to_node(x, m->string, depth + 1, &n->children[n->n_children++], err, errlen))
                    return -1;
        } else if (to_node(m, m->string, depth + 1, &n->children[n->n_children++], err, errlen)) {
            return -1;
        }
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Node n (zeroed) for value j of field `name`. */
static int to_node(const cJSON *j, const char *name, int depth, pbtxt_node *n, char *err,
                   size_t errlen) {
    if (!(n->name = strdup(name))) goto nomem;
    if (depth > JSON_MAX_DEPTH) {
        snprintf(err, errlen, "field '%s': nested more than %d deep", name, JSON_MAX_DEPTH);
        return -1;
    }
    if (cJSON_IsObject(j)) return object_children(j, name, depth, n, err, errlen);
    if (cJSON_IsString(j)) {
        n->type = PBTXT_STRING;
        if (!(n->text = dup_text(j->valuestring, &n->len))) goto nomem;
        return 0;
    }
    char buf[64];
    if (cJSON_IsBool(j)) {
        n->type = PBTXT_IDENT;
        snprintf(buf, sizeof buf, "%s", cJSON_IsTrue(j) ? "true" : "false");
    } else if (cJSON_IsNumber(j)) {
        n->type = PBTXT_NUMBER;
        double v = j->valuedouble;
        if (v == (double)(long long)v && v > -9.0e15 && v < 9.0e15)
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        else
            snprintf(buf, sizeof buf, "%.17g", v);
    } else {
        snprintf(err, errlen, "field '%s': %s is not a value a configuration field takes", name,
                 cJSON_IsArray(j) ? "an array inside an array" : "this JSON value");
        return -1;
    }
    if (!(n->text = dup_text(buf, &n->len))) goto nomem;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

kiln_status serve_config_parse_json(const char *text, size_t len, const char *path,
                                    serve_model_config *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    path = path ? path : "config";
    cJSON *j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, "%s: not a JSON object (Triton's JSON form of the model configuration)",
                 path);
        return KILN_E_FORMAT;
    }
    pbtxt_node *root = calloc(1, sizeof *root);
    char why[512] = "";
    kiln_status st = KILN_OK;
    if (!root || !(root->name = strdup(""))) {
        snprintf(why, sizeof why, "out of memory");
        st = KILN_E_NOMEM;
    } else if (object_children(j, "", 0, root, why, sizeof why)) {
        st = strcmp(why, "out of memory") ? KILN_E_FORMAT : KILN_E_NOMEM;
    }
    cJSON_Delete(j);
    if (st == KILN_OK) st = serve_config_parse_tree(root, path, 1, out, err, errlen);
    else snprintf(err, errlen, "%s: %s", path, why);
    pbtxt_free(root);
    return st;
}
