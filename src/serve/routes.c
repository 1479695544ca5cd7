/* src/serve/routes.c: the KServe v2 endpoints, as Triton serves them.
 *
 *   GET  /v2/health/live, /v2/health/ready
 *   GET  /v2                                         server metadata
 *   GET  /v2/models/stats                            statistics of every model
 *   GET  /v2/models/M[/versions/V]                   model metadata
 *   GET  /v2/models/M[/versions/V]/ready|config|stats
 *   POST /v2/models/M[/versions/V]/infer
 *   POST /v2/repository/index
 *   POST /v2/repository/models/M/load|unload         (explicit mode)
 *   GET  /v2/systemsharedmemory[/region/R]/status    (--allow-client-shm)
 *   POST /v2/systemsharedmemory/region/R/register
 *   POST /v2/systemsharedmemory[/region/R]/unregister
 *   GET  /v2/cudasharedmemory[/region/R]/status      (no regions: registering
 *   POST /v2/cudasharedmemory/...                     is refused)
 *
 * Errors are {"error": "..."} with 400 (bad request), 404 (no such model,
 * version or route), 503 (not ready, queue full or timed out), 500 (the model
 * failed to run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "serve/serve_internal.h"

static const char *const extensions[] = {"classification", "model_repository",
                                         "model_configuration", "binary_tensor_data",
                                         "statistics", "schedule_policy"};

static void reply_error(serve_reply *r, int status, const char *msg) {
    r->status = status;
    r->body = serve_error_body(msg, &r->len);
}

/* Replies with j (consumed) printed unformatted. */
static void reply_json(serve_reply *r, int status, cJSON *j) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        reply_error(r, 500, "out of memory");
        return;
    }
    r->status = status;
    r->body = text;
    r->len = strlen(text);
}

static void reply_empty(serve_reply *r, int status) {
    r->status = status;
    r->body = NULL;
    r->len = 0;
}

static int method_is(serve_reply *r, const char *method, const char *want) {
    if (!strcmp(method, want) || (!strcmp(want, "GET") && !strcmp(method, "HEAD"))) return 1;
    char msg[96];
    snprintf(msg, sizeof msg, "method %s not allowed here (use %s)", method, want);
    reply_error(r, 405, msg);
    return 0;
}

/* ---- metadata --------------------------------------------------------------- */

static cJSON *io_metadata(const serve_io *io, int batched) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", io->name);
    cJSON_AddStringToObject(o, "datatype", serve_dtype_wire_name(io->dtype));
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    if (batched) cJSON_AddItemToArray(shape, cJSON_CreateNumber(-1));
    for (int d = 0; d < io->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)io->dims[d]));
    return o;
}

static void route_model_metadata(serve_ctx *c, serve_model *m, serve_reply *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON *versions = cJSON_AddArrayToObject(o, "versions");
    serve_repo_versions(c->repo, m->name, versions);
    cJSON_AddStringToObject(o, "platform", m->cfg.platform ? m->cfg.platform : "onnxruntime_onnx");
    int batched = m->cfg.max_batch_size > 0;
    cJSON *in = cJSON_AddArrayToObject(o, "inputs");
    for (int i = 0; i < m->cfg.n_inputs; i++)
        cJSON_AddItemToArray(in, io_metadata(&m->cfg.inputs[i], batched));
    cJSON *out = cJSON_AddArrayToObject(o, "outputs");
    for (int i = 0; i < m->cfg.n_outputs; i++)
        cJSON_AddItemToArray(out, io_metadata(&m->cfg.outputs[i], batched));
    reply_json(r, 200, o);
}

static void route_server_metadata(serve_ctx *c, serve_reply *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "kiln");
    cJSON_AddStringToObject(o, "version", kiln_version());
    cJSON *ext = cJSON_AddArrayToObject(o, "extensions");
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
        cJSON_AddItemToArray(ext, cJSON_CreateString(extensions[i]));
    if (c->shm) cJSON_AddItemToArray(ext, cJSON_CreateString("system_shared_memory"));
    reply_json(r, 200, o);
}

/* ---- statistics --------------------------------------------------------------- */

/* Statistics of the ready versions of model `name` (NULL: every model),
 * only version `version` when given. */
static void route_stats(serve_ctx *c, const char *name, const char *version, serve_reply *r) {
    serve_model **models = NULL;
    int n = serve_repo_list_ready(c->repo, &models);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "model_stats");
    int found = 0;
    for (int i = 0; i < n; i++) {
        serve_model *m = models[i];
        if ((!name || !strcmp(m->name, name)) &&
            (!version || !*version || !strcmp(m->version_str, version))) {
            cJSON_AddItemToArray(list, serve_stats_json(m));
            found++;
        }
        serve_model_unref(m);
    }
    free(models);
    if (name && !found) {
        cJSON_Delete(o);
        char msg[400];
        snprintf(msg, sizeof msg, "no statistics: model '%s'%s%s is not loaded", name,
                 version && *version ? " version " : "", version && *version ? version : "");
        reply_error(r, 404, msg);
        return;
    }
    reply_json(r, 200, o);
}

/* ---- inference ------------------------------------------------------------------- */

/* Index of the graph output named name, or -1. */
static int graph_output_index(const kiln_graph *g, const char *name) {
    for (int i = 0; i < kiln_graph_num_outputs(g); i++) {
        kiln_value_info info;
        if (kiln_graph_output_info(g, i, &info) == KILN_OK && !strcmp(info.name, name)) return i;
    }
    return -1;
}

/* Output t as the client sees it: a configured reshape undone (the model
 * produces the reshape's shape, the client gets dims). *view is a new view
 * when one was needed (caller frees), else NULL and t is used as it is. */
static const kiln_tensor *client_view(const serve_model *m, const serve_io *io, const kiln_tensor *t,
                                      kiln_tensor **view) {
    *view = NULL;
    if (!io->has_reshape) return t;
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0, unknown = -1;
    int64_t known = 1, numel = kiln_tensor_numel(t);
    if (m->cfg.max_batch_size > 0) {
        if (kiln_tensor_ndim(t) < 1) return t;
        dims[nd++] = kiln_tensor_dims(t)[0];
        known *= dims[0];
    }
    for (int d = 0; d < io->ndim && nd < KILN_MAX_DIMS; d++) {
        dims[nd] = io->dims[d];
        if (dims[nd] < 0) unknown = nd;
        else known *= dims[nd];
        nd++;
    }
    if (unknown >= 0) dims[unknown] = known ? numel / known : 0;
    if (kiln_tensor_reshape_view(t, nd, dims, view) != KILN_OK) {
        *view = NULL;
        return t;
    }
    return *view;
}

static int parse_header_len(const char *text, size_t *out) {
    *out = 0;
    if (!text) return 0;
    if (!*text) return -1;
    size_t v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10) return -1;
        v = v * 10 + (size_t)(*p - '0');
    }
    *out = v;
    return 0;
}

/* Writes output o to its shared memory region (ref) and marks it sent there. */
static int write_shm_output(serve_ctx *c, serve_response_output *o, const serve_shm_ref *ref,
                            char *err, size_t errlen) {
    const void *data;
    size_t n;
    void *owned;
    int status = serve_output_bytes(o, &data, &n, &owned, err, errlen);
    if (!status) {
        char why[512] = "";
        status = serve_shm_write(c->shm, ref->region, ref->offset, ref->byte_size, data, n, why,
                                 sizeof why);
        if (status) snprintf(err, errlen, "output '%s': %s", o->name, why);
    }
    free(owned);
    o->shm_region = ref->region;
    o->shm_bytes = n;
    return status;
}

static void route_infer(serve_ctx *c, serve_model *m, const char *body, size_t len,
                        const char *header_len_text, serve_reply *r) {
    uint64_t t0 = serve_now_ns();
    char err[1024];
    serve_request req;
    serve_job job;
    memset(&req, 0, sizeof req);
    memset(&job, 0, sizeof job);
    size_t header_len = 0;
    int status = 0, batch = 1;
    serve_response_output *outs = NULL;
    kiln_tensor **views = NULL;
    int n_out = 0;
    if (parse_header_len(header_len_text, &header_len)) {
        snprintf(err, sizeof err, "Inference-Header-Content-Length '%.40s' is not a byte count",
                 header_len_text);
        status = 400;
    }
    if (!status) status = serve_request_parse(body, len, header_len, &req, err, sizeof err);
    if (!status && req.input_shm && !c->shm) {
        snprintf(err, sizeof err, "an input is in shared memory, which is off: start kiln serve "
                 "with --allow-client-shm");
        status = 400;
    }
    if (!status && req.input_shm)
        status = serve_request_read_shm(&req, serve_shm_read, c->shm, err, sizeof err);
    for (int k = 0; !status && k < req.n_outputs; k++)
        if (req.outputs[k].shm.region && !c->shm) {
            snprintf(err, sizeof err, "output '%s' is asked for in shared memory, which is off: "
                     "start kiln serve with --allow-client-shm", req.outputs[k].name);
            status = 400;
        }
    if (!status) status = serve_request_check(&req, &m->cfg, &batch, err, sizeof err);
    if (status) {
        serve_stats_fail(&m->stats, SERVE_FAIL_OTHER, serve_now_ns() - t0);
        reply_error(r, status, err);
        serve_request_free(&req);
        return;
    }
    job.req = &req;
    job.batch = batch;
    /* as Triton: priority 0, or past the levels, takes the default level */
    job.priority = m->cfg.priority_levels == 0 ? 0
                   : req.priority == 0 || req.priority > (uint64_t)m->cfg.priority_levels
                       ? m->cfg.default_priority_level
                       : (int64_t)req.priority;
    atomic_fetch_add(&m->stats.pending, 1);
    serve_sched_submit(m->sched, &job);
    atomic_fetch_sub(&m->stats.pending, 1);
    if (job.status) {
        serve_stats_fail(&m->stats, job.status == 503 ? SERVE_FAIL_REJECTED : SERVE_FAIL_BACKEND,
                         serve_now_ns() - t0);
        reply_error(r, job.status, job.err);
        serve_request_free(&req);
        return;
    }
    /* the outputs asked for (all configured ones when the request names none) */
    n_out = req.n_outputs ? req.n_outputs : m->cfg.n_outputs;
    outs = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *outs);
    views = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *views);
    if (!outs || !views) {
        snprintf(err, sizeof err, "out of memory");
        status = 500;
    }
    for (int k = 0; !status && k < n_out; k++) {
        const char *name = req.n_outputs ? req.outputs[k].name : m->cfg.outputs[k].name;
        int ci = -1;
        for (int i = 0; i < m->cfg.n_outputs && ci < 0; i++)
            if (!strcmp(m->cfg.outputs[i].name, name)) ci = i;
        int gi = graph_output_index(m->graph, name);
        if (ci < 0 || gi < 0 || gi >= job.n_outputs) {
            snprintf(err, sizeof err, "model '%s' has no output '%s'", m->name, name);
            status = 400;
            break;
        }
        const serve_output_request *o = req.n_outputs ? &req.outputs[k] : NULL;
        outs[k].name = name;
        outs[k].t = client_view(m, &m->cfg.outputs[ci], job.outputs[gi], &views[k]);
        outs[k].binary = o && o->binary >= 0 ? o->binary : req.binary_data_output;
        outs[k].class_count = o ? o->class_count : 0;
        outs[k].batched = m->cfg.max_batch_size > 0;
        outs[k].labels = (const char *const *)m->labels[ci];
        outs[k].n_labels = m->n_labels[ci];
        if (o && o->shm.region)
            status = write_shm_output(c, &outs[k], &o->shm, err, sizeof err);
    }
    if (!status)
        status = serve_response_build(m->name, m->version_str, req.id, n_out, outs, &r->body,
                                      &r->len, &r->header_len, err, sizeof err);
    for (int k = 0; views && k < n_out; k++) kiln_tensor_free(views[k]);
    free(views);
    free(outs);
    for (int o = 0; o < job.n_outputs; o++) kiln_tensor_free(job.outputs[o]);
    free(job.outputs);
    serve_request_free(&req);
    if (status) {
        serve_stats_fail(&m->stats, status == 400 ? SERVE_FAIL_OTHER : SERVE_FAIL_BACKEND,
                         serve_now_ns() - t0);
        reply_error(r, status, err);
        return;
    }
    r->status = 200;
    if (r->header_len) r->content_type = "application/octet-stream";
    serve_stats_success(&m->stats, serve_now_ns() - t0, job.queue_ns);
}

/* ---- repository ------------------------------------------------------------------- */

/* The load request's file overrides: its "file:<path>" parameters, each a
 * base64 string, decoded into *files (caller frees each data and the array).
 * 0, or 400 with err naming the parameter at fault. */
static int load_files(const char *name, const cJSON *params, serve_file **files, int *n_files,
                      char *err, size_t errlen) {
    const cJSON *p = NULL;
    int n = 0;
    cJSON_ArrayForEach(p, params) n += p->string && !strncmp(p->string, "file:", 5);
    *files = n ? calloc((size_t)n, sizeof **files) : NULL;
    *n_files = 0;
    if (n && !*files) return snprintf(err, errlen, "out of memory"), 500;
    cJSON_ArrayForEach(p, params) {
        if (!p->string || strncmp(p->string, "file:", 5)) continue;
        serve_file *f = &(*files)[*n_files];
        unsigned char *data = NULL;
        if (!cJSON_IsString(p) || serve_base64_decode(p->valuestring, &data, &f->len)) {
            snprintf(err, errlen, "load of '%s': parameter '%.200s' must be a string holding the "
                     "file's content in base64", name, p->string);
            return 400;
        }
        f->path = p->string + 5;
        f->data = data;
        (*n_files)++;
    }
    return 0;
}

static void route_repository(serve_ctx *c, const char *rest, const char *body, size_t len,
                             serve_reply *r) {
    char err[1024];
    cJSON *req = len ? cJSON_ParseWithLength(body, len) : NULL;
    if (len && (!req || !cJSON_IsObject(req))) {
        cJSON_Delete(req);
        reply_error(r, 400, "the request body is not a JSON object");
        return;
    }
    if (!strcmp(rest, "index")) {
        cJSON *ready = cJSON_GetObjectItemCaseSensitive(req, "ready");
        reply_json(r, 200, serve_repo_index(c->repo, cJSON_IsTrue(ready)));
        cJSON_Delete(req);
        return;
    }
    const char *slash = strncmp(rest, "models/", 7) ? NULL : strrchr(rest + 7, '/');
    if (!slash || slash == rest + 7) {
        cJSON_Delete(req);
        reply_error(r, 404, "not found: expected /v2/repository/index or "
                            "/v2/repository/models/<model>/load|unload");
        return;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(slash - (rest + 7)), rest + 7);
    const char *action = slash + 1;
    cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "parameters");
    int status;
    if (!strcmp(action, "load")) {
        const cJSON *config = cJSON_GetObjectItemCaseSensitive(params, "config");
        serve_file *files = NULL;
        int n_files = 0;
        status = load_files(name, params, &files, &n_files, err, sizeof err);
        if (!status && config && !cJSON_IsString(config)) {
            snprintf(err, sizeof err, "load of '%s': parameter 'config' must be a string holding "
                     "the model configuration in JSON", name);
            status = 400;
        }
        if (!status)
            status = serve_repo_load(c->repo, name, config ? config->valuestring : NULL, files,
                                     n_files, err, sizeof err);
        for (int i = 0; i < n_files; i++) free((void *)files[i].data);
        free(files);
    } else if (!strcmp(action, "unload")) {
        status = serve_repo_unload(c->repo, name, err, sizeof err);
    } else {
        snprintf(err, sizeof err, "not found: repository action '%s' (load or unload)", action);
        status = 404;
    }
    cJSON_Delete(req);
    if (status) reply_error(r, status, err);
    else reply_empty(r, 200);
}

/* ---- shared memory ---------------------------------------------------------------- */

/* /v2/systemsharedmemory/<rest> and /v2/cudasharedmemory/<rest>: rest is
 * "status", "unregister", or "region/<R>/status|register|unregister". */
static void route_shm(serve_ctx *c, int cuda, const char *method, const char *rest,
                      const char *body, size_t len, serve_reply *r) {
    char name[256] = "", err[1024];
    const char *action = rest;
    if (!strncmp(rest, "region/", 7)) {
        const char *slash = strrchr(rest + 7, '/');
        if (!slash || slash == rest + 7 || (size_t)(slash - (rest + 7)) >= sizeof name) {
            reply_error(r, 404, "not found: expected .../region/<name>/status|register|unregister");
            return;
        }
        memcpy(name, rest + 7, (size_t)(slash - (rest + 7)));
        action = slash + 1;
    }
    const char *region = *name ? name : NULL;
    const char *kind = cuda ? "CUDA" : "system";
    if (!strcmp(action, "status")) {
        if (!method_is(r, method, "GET")) return;
        if (cuda || !c->shm) { /* nothing can be registered: no regions */
            if (region) {
                snprintf(err, sizeof err, "unable to find %s shared memory region: '%s'", kind, region);
                reply_error(r, 400, err);
            } else {
                reply_json(r, 200, cJSON_CreateArray());
            }
            return;
        }
        cJSON *a = serve_shm_status(c->shm, region, err, sizeof err);
        if (a) reply_json(r, 200, a);
        else reply_error(r, 400, err);
        return;
    }
    if (!strcmp(action, "unregister")) {
        if (!method_is(r, method, "POST")) return;
        if (!cuda && c->shm) serve_shm_unregister(c->shm, region);
        reply_empty(r, 200);
        return;
    }
    if (strcmp(action, "register") || !region) {
        snprintf(err, sizeof err, "not found: unknown %s shared memory endpoint '%.60s'", kind, rest);
        reply_error(r, 404, err);
        return;
    }
    if (!method_is(r, method, "POST")) return;
    if (cuda) {
        reply_error(r, 400, "CUDA shared memory is not supported by kiln serve: register a "
                            "system shared memory region (/v2/systemsharedmemory)");
        return;
    }
    if (!c->shm) {
        reply_error(r, 400, "system shared memory is off: start kiln serve with --allow-client-shm "
                            "to let clients register regions");
        return;
    }
    cJSON *req = cJSON_ParseWithLength(body, len);
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(req, "key");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(req, "offset");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(req, "byte_size");
    int status = 0;
    if (!cJSON_IsObject(req) || !cJSON_IsString(key) || !cJSON_IsNumber(size) ||
        (off && !cJSON_IsNumber(off)) || size->valuedouble < 0 || size->valuedouble > 9.0e15 ||
        (off && (off->valuedouble < 0 || off->valuedouble > 9.0e15)) ||
        size->valuedouble != (double)(uint64_t)size->valuedouble ||
        (off && off->valuedouble != (double)(uint64_t)off->valuedouble)) {
        snprintf(err, sizeof err, "register of system shared memory region '%s': expected a JSON "
                 "object {\"key\": string, \"offset\": integer >= 0, \"byte_size\": integer >= 0}",
                 region);
        status = 400;
    } else {
        status = serve_shm_register(c->shm, region, key->valuestring,
                                    off ? (uint64_t)off->valuedouble : 0,
                                    (uint64_t)size->valuedouble, err, sizeof err);
    }
    cJSON_Delete(req);
    if (status) reply_error(r, status, err);
    else reply_empty(r, 200);
}

/* ---- dispatch --------------------------------------------------------------------- */

void serve_route(serve_ctx *c, const char *method, const char *url, const char *body,
                 size_t len, const char *header_len_text, serve_reply *out) {
    memset(out, 0, sizeof *out);
    if (!strcmp(url, "/v2/health/live")) {
        if (method_is(out, method, "GET")) reply_empty(out, 200);
        return;
    }
    if (!strcmp(url, "/v2/health/ready")) {
        if (method_is(out, method, "GET")) reply_empty(out, serve_repo_ready(c->repo) ? 200 : 503);
        return;
    }
    if (!strcmp(url, "/v2") || !strcmp(url, "/v2/")) {
        if (method_is(out, method, "GET")) route_server_metadata(c, out);
        return;
    }
    if (!strcmp(url, "/v2/models/stats")) {
        if (method_is(out, method, "GET")) route_stats(c, NULL, NULL, out);
        return;
    }
    if (!strncmp(url, "/v2/repository/", 15)) {
        if (method_is(out, method, "POST")) route_repository(c, url + 15, body, len, out);
        return;
    }
    if (!strncmp(url, "/v2/systemsharedmemory/", 23)) {
        route_shm(c, 0, method, url + 23, body, len, out);
        return;
    }
    if (!strncmp(url, "/v2/cudasharedmemory/", 21)) {
        route_shm(c, 1, method, url + 21, body, len, out);
        return;
    }
    if (strncmp(url, "/v2/models/", 11) || !url[11]) {
        reply_error(out, 404, "not found: no such route (see the KServe v2 protocol)");
        return;
    }
    /* /v2/models/M[/versions/V][/action] */
    char name[256] = "", version[32] = "";
    const char *p = url + 11, *e = strchr(p, '/');
    size_t nl = e ? (size_t)(e - p) : strlen(p);
    if (nl >= sizeof name) {
        reply_error(out, 404, "not found: model name too long");
        return;
    }
    memcpy(name, p, nl);
    name[nl] = 0;
    p += nl;
    if (!strncmp(p, "/versions/", 10)) {
        p += 10;
        e = strchr(p, '/');
        size_t vl = e ? (size_t)(e - p) : strlen(p);
        if (!vl || vl >= sizeof version) {
            reply_error(out, 400, "bad model version in the URL");
            return;
        }
        memcpy(version, p, vl);
        version[vl] = 0;
        p += vl;
    }
    const char *action = *p == '/' ? p + 1 : p; /* the name stops at '/' */
    if (!strcmp(action, "stats")) {
        if (method_is(out, method, "GET")) route_stats(c, name, version, out);
        return;
    }
    if (strcmp(action, "") && strcmp(action, "ready") && strcmp(action, "config") &&
        strcmp(action, "infer")) {
        char msg[160];
        snprintf(msg, sizeof msg, "not found: unknown model endpoint '%.60s'", action);
        reply_error(out, 404, msg);
        return;
    }
    if (!method_is(out, method, strcmp(action, "infer") ? "GET" : "POST")) return;
    char err[1024];
    serve_model *m = NULL;
    int status = serve_repo_get(c->repo, name, version, &m, err, sizeof err);
    if (!strcmp(action, "ready")) {
        serve_model_unref(m);
        if (status) reply_error(out, status, err);
        else reply_empty(out, 200);
        return;
    }
    if (status) {
        reply_error(out, status, err);
        return;
    }
    if (!strcmp(action, "")) route_model_metadata(c, m, out);
    else if (!strcmp(action, "config")) reply_json(out, 200, serve_config_to_json(&m->cfg));
    else route_infer(c, m, body, len, header_len_text, out);
    serve_model_unref(m);
}
