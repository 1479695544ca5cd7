/* src/serve/serve_internal.h: the server's parts and how they meet.
 *
 *   http.c        libmicrohttpd: connections, request bodies, the route table
 *   routes.c      one handler per KServe v2 / Triton endpoint
 *   repository.c  the model repository: scan, versions, load, unload, poll
 *   scheduler.c   per-model queue, dynamic batcher, instance workers
 *   stats.c       per-model counters: Prometheus metrics, statistics extension
 *   compress.c    gzip / deflate request and response bodies (zlib)
 *   shm.c         system shared memory regions (shared-memory extension)
 *   model_config.c, infer_codec.c: config.pbtxt, and request/response bodies
 *
 * A request's path: http.c gathers the body, routes.c finds the model (taking
 * a reference), parses and checks the request (infer_codec.c), hands a job to
 * the model's scheduler and waits; an instance worker runs the batch on its
 * kiln session and hands each job its slice of the outputs; routes.c writes
 * the response. Models are reference counted, so an unload or a reload never
 * frees a model a request still uses.
 */
#ifndef KILN_SERVE_INTERNAL_H
#define KILN_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "kiln/kiln.h"
#include "kiln/serve.h"
#include "serve/infer_codec.h"
#include "serve/model_config.h"

typedef struct serve_model serve_model;

/* ---- statistics (stats.c) ---------------------------------------------- */

typedef struct serve_duration {
    uint64_t count, ns;
} serve_duration;

/* Buckets of the latency histogram (+Inf implied; bounds in stats.c). */
#define SERVE_HIST_BUCKETS 14

/* Failure reasons of nv_inference_request_failure. */
typedef enum serve_fail_reason {
    SERVE_FAIL_REJECTED = 0, /* queue full, queue timeout */
    SERVE_FAIL_BACKEND,      /* the model failed to run */
    SERVE_FAIL_OTHER,        /* a bad request */
    SERVE_FAIL_COUNT
} serve_fail_reason;

/* Counters of one model version; guarded by mu. */
typedef struct serve_stats {
    pthread_mutex_t mu;
    uint64_t last_inference_ms;      /* wall clock, ms since the epoch */
    uint64_t inference_count;        /* batch items inferred (successful) */
    uint64_t execution_count;        /* batches run */
    serve_duration success, queue, compute_input, compute_infer, compute_output;
    serve_duration fail[SERVE_FAIL_COUNT];
    uint64_t hist[SERVE_HIST_BUCKETS + 1]; /* successful requests' end-to-end latency */
    int n_batch;                     /* per batch size (index = size - 1) */
    serve_duration *batch_input, *batch_infer, *batch_output;
    atomic_int pending;              /* requests queued or running */
} serve_stats;

int serve_stats_init(serve_stats *st, int max_batch);
void serve_stats_free(serve_stats *st);
void serve_stats_success(serve_stats *st, uint64_t total_ns, uint64_t queue_ns);
void serve_stats_fail(serve_stats *st, serve_fail_reason why, uint64_t total_ns);
/* One batch of `size` items run: its input, infer and output times. */
void serve_stats_batch(serve_stats *st, int size, uint64_t in_ns, uint64_t infer_ns,
                       uint64_t out_ns);
/* Triton's statistics-extension entry of one model version (caller owns). */
cJSON *serve_stats_json(serve_model *m);

/* ---- models and the scheduler (scheduler.c) ---------------------------- */

/* One request waiting for (or in) a batch. Lives on the requesting thread's
 * stack; the worker fills the results and signals done. */
typedef struct serve_job {
    serve_request *req;          /* checked: inputs in the model's form */
    int batch;                   /* its batch size (1 without batching) */
    int64_t priority;            /* its level (1 first); 0 without levels */
    uint64_t t_enqueue_ns, deadline_ns; /* deadline: answered 503 past it; 0: none */
    uint64_t delay_after_ns;     /* DELAY timeout: past it, after the others; 0: none */
    uint64_t queue_ns;           /* time spent queued */
    /* results, set by the worker before done */
    int status;                  /* 0, or an HTTP status with err */
    char err[512];
    int n_outputs;
    kiln_tensor **outputs;       /* model outputs (all), this job's slice; owned */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    struct serve_job *next;
} serve_job;

typedef struct serve_sched serve_sched;

/* Starts cfg->instance_count workers, each with a session of `threads`
 * threads on g (which must outlive the scheduler). err on failure. */
kiln_status serve_sched_start(serve_model *m, int threads, serve_sched **out, char *err,
                              size_t errlen);
/* Queues job and waits until it is done (job->status says how it went). */
void serve_sched_submit(serve_sched *s, serve_job *job);
/* Runs the inputs once on every instance's session, outside the queue (model
 * warm-up, before the model is published). err on failure. */
kiln_status serve_sched_warm(serve_sched *s, int n, const char *const *names,
                             const kiln_tensor *const *inputs, char *err, size_t errlen);
/* Stops the workers after the queue is empty and frees the scheduler. */
void serve_sched_stop(serve_sched *s);

/* ---- the repository (repository.c) ------------------------------------- */

/* One loaded version of a model. */
struct serve_model {
    char *name;
    int64_t version;
    char version_str[24];
    char *dir;                   /* DIR/<model> */
    serve_model_config cfg;      /* completed */
    kiln_graph *graph;
    char ***labels;              /* per output: classification labels or NULL */
    int *n_labels;
    serve_sched *sched;
    serve_stats stats;
    atomic_int refs;             /* the repository's + one per request using it */
    uint64_t fingerprint;        /* of DIR/<model>/<version>/ when it was loaded */
};

void serve_model_ref(serve_model *m);
/* Drops a reference; the last one stops the scheduler and frees the model. */
void serve_model_unref(serve_model *m);

typedef struct serve_repo serve_repo;

kiln_status serve_repo_open(const kiln_server_options *opt, int threads, serve_repo **out);
void serve_repo_close(serve_repo *r);

/* The model version a request names (version NULL or "": the highest ready
 * one), with a reference the caller drops with serve_model_unref. Returns 0,
 * or 404 (no such model or version) / 503 (known but not ready) with err. */
int serve_repo_get(serve_repo *r, const char *name, const char *version, serve_model **out,
                   char *err, size_t errlen);
/* Every ready model version (references taken; caller unrefs each and frees
 * the array). */
int serve_repo_list_ready(serve_repo *r, serve_model ***out);
/* Repository index (POST /v2/repository/index): caller owns the array. */
cJSON *serve_repo_index(serve_repo *r, int ready_only);
/* The versions of a model as known to the repository (for metadata): "1","2". */
int serve_repo_versions(serve_repo *r, const char *name, cJSON *array);
/* A load request's file override: the file at `path` (relative, e.g.
 * "1/model.onnx") of the model's directory holds data. */
typedef struct serve_file {
    const char *path;
    const unsigned char *data;
    size_t len;
} serve_file;
/* Loads or reloads (load) / unloads a model; EXPLICIT mode only. config_json:
 * NULL, or Triton's JSON form of a configuration to load the model with
 * instead of its config.pbtxt (a later load without one reads the file
 * again). n_files > 0 (config_json then required): files alone form the
 * model's directory, in place of the repository's (the model may have no
 * directory there). Returns 0 or an HTTP status with err. */
int serve_repo_load(serve_repo *r, const char *name, const char *config_json,
                    const serve_file *files, int n_files, char *err, size_t errlen);
int serve_repo_unload(serve_repo *r, const char *name, char *err, size_t errlen);
int serve_repo_ready(serve_repo *r);  /* every model that should load is READY */

/* ---- file overrides (override_files.c) ---------------------------------- */

/* Decodes padded base64 text into *out (caller frees), *len bytes; -1 when
 * text is not base64 (or out of memory). */
int serve_base64_decode(const char *text, unsigned char **out, size_t *len);
/* Writes files (paths checked: relative, plain components) into a new
 * temporary directory: root gets its path (to pass to serve_override_remove,
 * also after a failure), dir the model directory root/name. 0, or -1 with
 * err naming the file at fault. */
int serve_override_write(const char *name, const serve_file *files, int n, char *root,
                         size_t rootlen, char *dir, size_t dirlen, char *err, size_t errlen);
/* Removes the temporary directory root and everything in it ("" : nothing). */
void serve_override_remove(const char *root);

/* ---- routes (routes.c) and HTTP (http.c) ------------------------------- */

/* What a handler answers. body is malloc'd (http.c frees it). */
typedef struct serve_reply {
    int status;
    char *body;
    size_t len;
    size_t header_len;           /* > 0: Inference-Header-Content-Length */
    const char *content_type;    /* default application/json */
} serve_reply;

/* ---- system shared memory (shm.c) -------------------------------------- */

typedef struct serve_shm serve_shm;

serve_shm *serve_shm_new(void);  /* NULL when out of memory */
void serve_shm_free(serve_shm *s);
/* Registers region name = [offset, offset + byte_size) of the POSIX shared
 * memory object key. 0, or 400 (name taken, key not openable, object too
 * small) / 500 with err. */
int serve_shm_register(serve_shm *s, const char *name, const char *key, uint64_t offset,
                       uint64_t byte_size, char *err, size_t errlen);
/* Unregisters region name (NULL: every region); an unknown name is no error,
 * as in Triton. */
int serve_shm_unregister(serve_shm *s, const char *name);
/* Triton's status array of region name (NULL: all); NULL with err when name
 * is not registered or out of memory. */
cJSON *serve_shm_status(serve_shm *s, const char *name, char *err, size_t errlen);
/* serve_shm_read_fn (infer_codec.h) over a serve_shm (ctx). */
int serve_shm_read(void *ctx, const char *name, uint64_t offset, uint64_t size, void *dst,
                   char *err, size_t errlen);
/* Writes n bytes at offset of region name, where the request allowed
 * capacity bytes. 0, or 400 with err (n > capacity, unknown region, range
 * outside it). */
int serve_shm_write(serve_shm *s, const char *name, uint64_t offset, uint64_t capacity,
                    const void *src, size_t n, char *err, size_t errlen);

typedef struct serve_ctx {
    serve_repo *repo;
    serve_shm *shm;              /* NULL unless --allow-client-shm */
    const kiln_server_options *opt;
    atomic_int live;             /* 0 while shutting down */
} serve_ctx;

/* Dispatches one HTTP request (method, url path, body). */
void serve_route(serve_ctx *c, const char *method, const char *url, const char *body,
                 size_t len, const char *header_len_text, serve_reply *out);
/* Prometheus text of every ready model's counters (GET /metrics). */
void serve_metrics_text(serve_ctx *c, serve_reply *out);

/* ---- body compression (compress.c) ------------------------------------ */

typedef enum serve_encoding {
    SERVE_ENC_IDENTITY = 0,
    SERVE_ENC_GZIP,
    SERVE_ENC_DEFLATE,       /* HTTP's deflate: a zlib stream (RFC 1950) */
} serve_encoding;

const char *serve_encoding_name(serve_encoding e);
/* A request's Content-Encoding header (NULL: none) in *out; -1 when it names
 * a coding other than identity, gzip or deflate, or several codings. */
int serve_content_encoding(const char *header, serve_encoding *out);
/* The coding to answer a request with, from its Accept-Encoding header (NULL:
 * none): gzip or deflate when accepted (q > 0), gzip first, else identity. */
serve_encoding serve_accept_encoding(const char *header);
/* Inflates a gzip or deflate body into *out (malloc'd, NUL-terminated, *out_len
 * bytes). -1 with err when the data is not valid, has bytes after the end of
 * the stream, or inflates to more than limit bytes. */
int serve_inflate(serve_encoding e, const char *in, size_t n, size_t limit, char **out,
                  size_t *out_len, char *err, size_t errcap);
/* Compresses in (n bytes) with e (gzip or deflate) into *out (malloc'd); -1
 * when out of memory (the caller then answers uncompressed). */
int serve_deflate(serve_encoding e, const char *in, size_t n, char **out, size_t *out_len);

/* Monotonic nanoseconds. */
uint64_t serve_now_ns(void);
/* A condition variable whose timed waits take serve_now_ns() deadlines. */
void serve_cond_init_monotonic(pthread_cond_t *cv);

#endif
