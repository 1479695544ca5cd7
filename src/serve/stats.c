/* src/serve/stats.c: per-model-version counters, published two ways: the
 * Prometheus text of GET :8002/metrics (Triton's metric names and labels,
 * plus a latency histogram) and the JSON of Triton's statistics extension
 * (GET /v2/models[/M[/versions/V]]/stats).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "serve/serve_internal.h"

/* Upper bounds (seconds) of the latency histogram's buckets. */
static const double hist_le_s[SERVE_HIST_BUCKETS] = {
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 1, 5};

static const char *const fail_reason_names[SERVE_FAIL_COUNT] = {"REJECTED", "BACKEND", "OTHER"};

int serve_stats_init(serve_stats *st, int max_batch) {
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    st->n_batch = max_batch > 0 ? max_batch : 1;
    st->batch_input = calloc((size_t)st->n_batch, sizeof(serve_duration));
    st->batch_infer = calloc((size_t)st->n_batch, sizeof(serve_duration));
    st->batch_output = calloc((size_t)st->n_batch, sizeof(serve_duration));
    atomic_init(&st->pending, 0);
    if (!st->batch_input || !st->batch_infer || !st->batch_output) {
        serve_stats_free(st);
        return -1;
    }
    return 0;
}

void serve_stats_free(serve_stats *st) {
    free(st->batch_input);
    free(st->batch_infer);
    free(st->batch_output);
    st->batch_input = st->batch_infer = st->batch_output = NULL;
    pthread_mutex_destroy(&st->mu);
}

static void add(serve_duration *d, uint64_t ns) {
    d->count++;
    d->ns += ns;
}

static uint64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000ull + (uint64_t)tv.tv_usec / 1000ull;
}

void serve_stats_success(serve_stats *st, uint64_t total_ns, uint64_t queue_ns) {
    double sec = (double)total_ns / 1e9;
    int b = 0;
    while (b < SERVE_HIST_BUCKETS && sec > hist_le_s[b]) b++;
    pthread_mutex_lock(&st->mu);
    add(&st->success, total_ns);
    add(&st->queue, queue_ns);
    st->hist[b]++;
    st->last_inference_ms = wall_ms();
    pthread_mutex_unlock(&st->mu);
}

void serve_stats_fail(serve_stats *st, serve_fail_reason why, uint64_t total_ns) {
    pthread_mutex_lock(&st->mu);
    add(&st->fail[why], total_ns);
    pthread_mutex_unlock(&st->mu);
}

void serve_stats_batch(serve_stats *st, int size, uint64_t in_ns, uint64_t infer_ns,
                       uint64_t out_ns) {
    pthread_mutex_lock(&st->mu);
    st->inference_count += (uint64_t)size;
    st->execution_count++;
    add(&st->compute_input, in_ns);
    add(&st->compute_infer, infer_ns);
    add(&st->compute_output, out_ns);
    if (size >= 1 && size <= st->n_batch) {
        add(&st->batch_input[size - 1], in_ns);
        add(&st->batch_infer[size - 1], infer_ns);
        add(&st->batch_output[size - 1], out_ns);
    }
    pthread_mutex_unlock(&st->mu);
}

/* ---- Prometheus text ---------------------------------------------------- */

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label_value(const char *s, char *out, size_t n) {
    size_t k = 0;
    for (; *s && k + 3 < n; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = 0;
}

/* A snapshot of one model version's counters with its labels. */
typedef struct model_snap {
    char model[256], version[24];
    serve_stats s;               /* copy of the counters (no per-batch arrays) */
    int pending;
} model_snap;

typedef struct metric_def {
    const char *name, *type, *help;
} metric_def;

static const metric_def metric_defs[] = {
    {"nv_inference_request_success", "counter", "Successful inference requests, all batch sizes"},
    {"nv_inference_request_failure", "counter", "Failed inference requests, all batch sizes, by reason"},
    {"nv_inference_count", "counter", "Inferences performed (a batch of N counts N)"},
    {"nv_inference_exec_count", "counter", "Model executions (batches) performed"},
    {"nv_inference_request_duration_us", "counter",
     "Cumulative end-to-end request duration in microseconds (successful and failed)"},
    {"nv_inference_queue_duration_us", "counter", "Cumulative time requests waited in the queue, microseconds"},
    {"nv_inference_compute_input_duration_us", "counter",
     "Cumulative time spent gathering batch inputs, microseconds"},
    {"nv_inference_compute_infer_duration_us", "counter", "Cumulative time the model ran, microseconds"},
    {"nv_inference_compute_output_duration_us", "counter",
     "Cumulative time spent handing outputs back, microseconds"},
    {"nv_inference_pending_request_count", "gauge", "Requests queued or running, per model"},
};

static uint64_t metric_value(const model_snap *m, int k) {
    const serve_stats *s = &m->s;
    uint64_t fail_ns = 0;
    for (int r = 0; r < SERVE_FAIL_COUNT; r++) fail_ns += s->fail[r].ns;
    switch (k) {
    case 0: return s->success.count;
    case 2: return s->inference_count;
    case 3: return s->execution_count;
    case 4: return (s->success.ns + fail_ns) / 1000;
    case 5: return s->queue.ns / 1000;
    case 6: return s->compute_input.ns / 1000;
    case 7: return s->compute_infer.ns / 1000;
    case 8: return s->compute_output.ns / 1000;
    case 9: return (uint64_t)(m->pending > 0 ? m->pending : 0);
    }
    return 0;
}

void serve_metrics_text(serve_ctx *c, serve_reply *out) {
    serve_model **models = NULL;
    int n = serve_repo_list_ready(c->repo, &models);
    model_snap *snaps = calloc((size_t)(n > 0 ? n : 1), sizeof *snaps);
    kiln__strbuf b = {0};
    if (!snaps) b.oom = 1;
    for (int i = 0; i < n && snaps; i++) {
        serve_model *m = models[i];
        label_value(m->name, snaps[i].model, sizeof snaps[i].model);
        snprintf(snaps[i].version, sizeof snaps[i].version, "%s", m->version_str);
        pthread_mutex_lock(&m->stats.mu);
        snaps[i].s = m->stats; /* counters only: the arrays are not read from the copy */
        pthread_mutex_unlock(&m->stats.mu);
        snaps[i].pending = atomic_load(&m->stats.pending);
    }
    for (int i = 0; i < n; i++) serve_model_unref(models[i]);
    free(models);
    for (size_t k = 0; k < sizeof metric_defs / sizeof metric_defs[0] && snaps; k++) {
        const metric_def *d = &metric_defs[k];
        kiln__sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        for (int i = 0; i < n; i++) {
            const model_snap *m = &snaps[i];
            if (k == 1) {
                for (int r = 0; r < SERVE_FAIL_COUNT; r++)
                    kiln__sb_printf(&b, "%s{model=\"%s\",reason=\"%s\",version=\"%s\"} %llu\n", d->name,
                        m->model, fail_reason_names[r], m->version,
                        (unsigned long long)m->s.fail[r].count);
            } else {
                kiln__sb_printf(&b, "%s{model=\"%s\",version=\"%s\"} %llu\n", d->name, m->model, m->version,
                    (unsigned long long)metric_value(m, (int)k));
            }
        }
    }
    if (snaps) {
        const char *h = "kiln_inference_request_duration_seconds";
        kiln__sb_printf(&b, "# HELP %s End-to-end latency of successful requests\n", h);
        kiln__sb_printf(&b, "# TYPE %s histogram\n", h);
        for (int i = 0; i < n; i++) {
            const model_snap *m = &snaps[i];
            uint64_t cum = 0;
            for (int k = 0; k <= SERVE_HIST_BUCKETS; k++) {
                cum += m->s.hist[k];
                if (k < SERVE_HIST_BUCKETS)
                    kiln__sb_printf(&b, "%s_bucket{model=\"%s\",version=\"%s\",le=\"%g\"} %llu\n", h, m->model,
                        m->version, hist_le_s[k], (unsigned long long)cum);
                else
                    kiln__sb_printf(&b, "%s_bucket{model=\"%s\",version=\"%s\",le=\"+Inf\"} %llu\n", h,
                        m->model, m->version, (unsigned long long)cum);
            }
            kiln__sb_printf(&b, "%s_sum{model=\"%s\",version=\"%s\"} %.9f\n", h, m->model, m->version,
                (double)m->s.success.ns / 1e9);
            kiln__sb_printf(&b, "%s_count{model=\"%s\",version=\"%s\"} %llu\n", h, m->model, m->version,
                (unsigned long long)m->s.success.count);
        }
    }
    free(snaps);
    if (b.oom) {
        free(b.p);
        out->status = 500;
        out->body = serve_error_body("out of memory writing the metrics", &out->len);
        return;
    }
    out->status = 200;
    out->body = b.p ? b.p : calloc(1, 1);
    out->len = b.n;
    out->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- statistics extension (JSON) ---------------------------------------- */

static cJSON *duration_json(const serve_duration *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)d->count);
    cJSON_AddNumberToObject(o, "ns", (double)d->ns);
    return o;
}

cJSON *serve_stats_json(serve_model *m) {
    serve_stats *st = &m->stats;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "version", m->version_str);
    pthread_mutex_lock(&st->mu);
    cJSON_AddNumberToObject(o, "last_inference", (double)st->last_inference_ms);
    cJSON_AddNumberToObject(o, "inference_count", (double)st->inference_count);
    cJSON_AddNumberToObject(o, "execution_count", (double)st->execution_count);
    cJSON *is = cJSON_AddObjectToObject(o, "inference_stats");
    serve_duration fail = {0, 0};
    for (int r = 0; r < SERVE_FAIL_COUNT; r++) {
        fail.count += st->fail[r].count;
        fail.ns += st->fail[r].ns;
    }
    serve_duration none = {0, 0};
    if (is) {
        cJSON_AddItemToObject(is, "success", duration_json(&st->success));
        cJSON_AddItemToObject(is, "fail", duration_json(&fail));
        cJSON_AddItemToObject(is, "queue", duration_json(&st->queue));
        cJSON_AddItemToObject(is, "compute_input", duration_json(&st->compute_input));
        cJSON_AddItemToObject(is, "compute_infer", duration_json(&st->compute_infer));
        cJSON_AddItemToObject(is, "compute_output", duration_json(&st->compute_output));
        cJSON_AddItemToObject(is, "cache_hit", duration_json(&none));
        cJSON_AddItemToObject(is, "cache_miss", duration_json(&none));
    }
    cJSON *bs = cJSON_AddArrayToObject(o, "batch_stats");
    for (int b = 0; bs && b < st->n_batch; b++) {
        if (!st->batch_infer[b].count) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "batch_size", b + 1);
        cJSON_AddItemToObject(e, "compute_input", duration_json(&st->batch_input[b]));
        cJSON_AddItemToObject(e, "compute_infer", duration_json(&st->batch_infer[b]));
        cJSON_AddItemToObject(e, "compute_output", duration_json(&st->batch_output[b]));
        cJSON_AddItemToArray(bs, e);
    }
    pthread_mutex_unlock(&st->mu);
    cJSON_AddArrayToObject(o, "memory_usage");
    return o;
}
