/* src/serve/model_config.h: a Triton model configuration (config.pbtxt).
 *
 * Triton's model repository gives each model a config.pbtxt in protobuf text
 * format (the ModelConfig message of Triton's model_config.proto). kiln reads
 * the fields that matter for serving ONNX models on its engine, refuses the
 * ones it does not implement (naming them), and, where a field is absent,
 * completes the configuration from the ONNX model as Triton's auto-complete
 * does. The completed configuration is what GET /v2/models/M/config returns.
 */
#ifndef KILN_SERVE_MODEL_CONFIG_H
#define KILN_SERVE_MODEL_CONFIG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kiln/kiln.h"

typedef struct pbtxt_node pbtxt_node; /* serve/pbtxt.h */

/* ModelQueuePolicy: how the batcher's queue treats a request. */
typedef struct serve_queue_policy {
    int64_t max_queue_size;          /* 0: unbounded */
    int64_t default_timeout_us;      /* 0: none */
    int timeout_action_delay;        /* 0: REJECT (default), 1: DELAY */
    int allow_timeout_override;
} serve_queue_policy;

/* Data types. kiln_dtype values stand for Triton's types; KILN_DTYPE_STRING is
 * TYPE_STRING in a config and BYTES on the wire. */
/* "TYPE_FP32" -> KILN_DTYPE_F32; KILN_DTYPE_UNDEFINED for names Triton does not have. */
kiln_dtype serve_dtype_from_config(const char *name);
/* KILN_DTYPE_F32 -> "TYPE_FP32"; NULL for dtypes Triton has no name for. */
const char *serve_dtype_config_name(kiln_dtype dt);
/* "FP32" -> KILN_DTYPE_F32, "BYTES" -> KILN_DTYPE_STRING; UNDEFINED otherwise. */
kiln_dtype serve_dtype_from_wire(const char *name);
/* KILN_DTYPE_F32 -> "FP32", STRING -> "BYTES"; NULL for others. */
const char *serve_dtype_wire_name(kiln_dtype dt);

/* Names of serve_io.format's values: FORMAT_NONE, FORMAT_NHWC, FORMAT_NCHW. */
extern const char *const serve_format_names[3];

/* One model input or output (ModelInput / ModelOutput). */
typedef struct serve_io {
    char *name;
    kiln_dtype dtype;
    int ndim;                        /* dims as configured: without the batch
                                        dimension when max_batch_size > 0 */
    int64_t dims[KILN_MAX_DIMS];     /* -1: any size */
    int has_reshape;                 /* reshape { shape: [...] } given: the
                                        tensor the model sees (outputs: has) */
    int reshape_ndim;
    int64_t reshape[KILN_MAX_DIMS];
    char *label_filename;            /* outputs: classification labels, one per
                                        line, relative to the model directory; NULL if none */
    int optional;                    /* inputs: may be left out of a request */
    int format;                      /* inputs: Triton's Format number: 0 FORMAT_NONE,
                                        1 FORMAT_NHWC, 2 FORMAT_NCHW (3 dims). A hint for
                                        image clients that the config endpoint reports;
                                        Triton does not act on it either */
} serve_io;

typedef enum serve_version_policy {
    SERVE_VERSIONS_LATEST = 0,       /* the latest_num_versions highest (default 1) */
    SERVE_VERSIONS_ALL,
    SERVE_VERSIONS_SPECIFIC,         /* the listed ones */
} serve_version_policy;

typedef enum serve_warmup_data {
    SERVE_WARMUP_ZERO = 0,           /* zero_data: true */
    SERVE_WARMUP_RANDOM,             /* random_data: true */
    SERVE_WARMUP_FILE,               /* input_data_file: "name", in DIR/M/warmup/ */
} serve_warmup_data;

typedef struct serve_warmup_input {
    char *name;
    kiln_dtype dtype;
    int ndim;
    int64_t dims[KILN_MAX_DIMS];     /* without the batch dimension */
    serve_warmup_data data;
    char *input_data_file;           /* SERVE_WARMUP_FILE only */
} serve_warmup_input;

typedef struct serve_warmup {
    char *name;
    int batch_size;                  /* default 1 */
    int count;                       /* default 1 */
    int n_inputs;
    serve_warmup_input *inputs;
} serve_warmup;

/* One instance_group entry, as configured (kinds are static strings). */
typedef struct serve_instance_group {
    char *name;                      /* NULL until serve_config_complete names it
                                        MODEL_<index> (Triton's default) */
    const char *kind;                /* "KIND_CPU", "KIND_GPU" or "KIND_AUTO"; not owned */
    int count;                       /* >= 1 (default 1) */
    int n_gpus;                      /* gpus: [...]; kiln's only GPU is 0 */
    int *gpus;
} serve_instance_group;

typedef struct serve_model_config {
    char *name;
    char *platform;                  /* "onnxruntime_onnx" (the only one kiln serves);
                                        NULL until serve_config_complete when not given */
    char *backend;                   /* "onnxruntime" or "kiln"; the two are the same here;
                                        NULL until serve_config_complete when not given */
    char *default_model_filename;    /* NULL means "model.onnx" (serve_config_complete
                                        sets it) */
    int max_batch_size;              /* 0: the model takes no batch dimension */
    int max_batch_size_given;        /* 1 when the file says max_batch_size (else
                                        serve_config_complete chooses it) */
    int n_inputs, n_outputs;
    serve_io *inputs, *outputs;

    /* dynamic_batching { ... }; present = on */
    int dynamic_batching;
    int n_preferred;
    int *preferred_batch_sizes;
    int64_t max_queue_delay_us;      /* default 0 */
    serve_queue_policy queue_policy; /* default_queue_policy */
    int64_t priority_levels;         /* 0: none; else levels 1 (first) .. n */
    int64_t default_priority_level;  /* 1..priority_levels (0 without levels) */
    int n_level_policies;            /* priority_queue_policy: the policy of */
    int64_t *policy_levels;          /* level policy_levels[i] is */
    serve_queue_policy *level_policies; /* level_policies[i] */

    /* instance_group [ ... ]: counts summed over the groups (which must all be
     * of one kind) */
    int instance_count;              /* default 1 */
    const char *instance_kind;       /* "KIND_CPU" (default), "KIND_GPU", "KIND_AUTO";
                                        a static string, not owned */
    int n_instance_groups;           /* the groups as configured; serve_config_complete
                                        adds one {MODEL, KIND_CPU, 1} when none is */
    serve_instance_group *instance_groups;

    serve_version_policy version_policy;
    int latest_num_versions;         /* SERVE_VERSIONS_LATEST; default 1 */
    int n_versions;                  /* SERVE_VERSIONS_SPECIFIC */
    int64_t *versions;

    /* parameters { key: "..." value: { string_value: "..." } }: all kept (the
     * config endpoint returns them); kiln reads "precision" (fp32|bf16|int8) and
     * "threads" (per instance), validated by serve_config_parse */
    int n_parameters;
    char **param_keys, **param_values;
    kiln_precision precision;        /* default fp32 */
    int threads;                     /* 0: share the server's budget */

    int n_warmup;
    serve_warmup *warmup;
} serve_model_config;

/* Parses config.pbtxt text (len bytes, need not be NUL-terminated). path is
 * only used in messages. The caller owns what *out holds (serve_config_free).
 * Fields kiln does not implement are refused. On failure returns
 * KILN_E_FORMAT (syntax, unknown field, bad value) or KILN_E_UNSUPPORTED and
 * writes "PATH:LINE:COL: ..." naming the field into err; *out is then left
 * zeroed. Fields not given keep the defaults above; out->name stays NULL when
 * the file gives none. */
kiln_status serve_config_parse(const char *text, size_t len, const char *path,
                               serve_model_config *out, char *err, size_t errlen);

/* The same from a tree already built (pbtxt.h); from_json: the tree was made
 * from Triton's JSON form (serve_config_parse_json), so enum values and
 * 64-bit integers may be strings and messages carry no line:col. */
kiln_status serve_config_parse_tree(const pbtxt_node *root, const char *path, int from_json,
                                    serve_model_config *out, char *err, size_t errlen);

/* A configuration in Triton's JSON form (ModelConfig as protobuf maps it to
 * JSON, snake_case names, what GET .../config returns and what a load request
 * may carry as its "config" parameter; len bytes), read with the same rules
 * and refusals as config.pbtxt. Messages start with path. */
kiln_status serve_config_parse_json(const char *text, size_t len, const char *path,
                                    serve_model_config *out, char *err, size_t errlen);

/* Sets the defaults of an empty configuration (what an absent config.pbtxt
 * parses to). */
void serve_config_init(serve_model_config *cfg);

/* Checks cfg against the loaded model and fills what is missing, as Triton's
 * auto-complete does: name (model_name, the repository directory; a different
 * configured name is an error), platform/backend, inputs and outputs (dtype and
 * dims from the graph; without a batch dimension when max_batch_size > 0),
 * max_batch_size when not configured (4 with dynamic_batching on when every
 * input and output has a variable first dimension, else 0). Configured inputs
 * and outputs must exist in the graph with the same dtype and compatible dims.
 * Errors (KILN_E_INVAL) name the model, the tensor and the field.
 *
 * Reads the graph only through kiln/graph.h: run kiln_graph_infer_shapes first
 * so that outputs the model does not declare have a dtype and rank. Inputs the
 * file leaves out are added (all graph inputs are required); outputs are all
 * of the graph's when the file lists none, else the listed ones. A configured
 * input or output without data_type or dims takes them from the graph. When
 * max_batch_size was chosen here, or the file lists no inputs or no outputs
 * (Triton's auto-complete runs then), and max_batch_size > 1 with no
 * dynamic_batching, dynamic batching is turned on, as Triton's onnxruntime
 * backend does. On failure cfg may be partly completed; free it. */
kiln_status serve_config_complete(serve_model_config *cfg, const kiln_graph *g,
                                  const char *model_name, char *err, size_t errlen);

/* Triton's JSON form of the configuration (GET /v2/models/M/config). Caller
 * owns the result (cJSON_Delete); NULL when out of memory. */
cJSON *serve_config_to_json(const serve_model_config *cfg);

/* The queue policy of priority level `level`: its priority_queue_policy
 * entry, else default_queue_policy. */
const serve_queue_policy *serve_config_queue_policy(const serve_model_config *cfg, int64_t level);

/* Frees what cfg holds and zeroes it. */
void serve_config_free(serve_model_config *cfg);

/* What model_config.c shares with model_config_complete.c: "[1, 3, -1]"
 * into buf (len bytes), returning buf; and growing *arr (of *n items of size
 * sz) by one zeroed item, returning it (NULL when out of memory or past
 * 2^24 items). */
const char *serve_config_fmt_dims(char *buf, size_t len, int n, const int64_t *d);
void *serve_config_grow(void **arr, int *n, size_t sz);
/* Writes prefix, then fmt's message, into err (errlen bytes, none when
 * NULL or 0); returns st. */
kiln_status serve_config_error(char *err, size_t errlen, kiln_status st, const char *prefix,
                               const char *fmt, va_list ap);

#endif
