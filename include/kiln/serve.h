/* kiln/serve.h: the inference server (KServe v2 / Triton-compatible HTTP).
 *
 * A server serves the ONNX models of a Triton model repository
 *   DIR/<model>/config.pbtxt          (optional: completed from the model)
 *   DIR/<model>/<version>/model.onnx
 * over HTTP/REST with the KServe v2 protocol and Triton's extensions (binary
 * tensor data, classification, statistics, model repository), batches requests
 * per model (dynamic batching), runs them on kiln sessions (one per model
 * instance) and publishes Prometheus metrics on a second port.
 */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kiln_server kiln_server;

/* How the set of served models may change (Triton's --model-control-mode). */
typedef enum kiln_model_control {
    KILN_MODEL_CONTROL_NONE = 0, /* every model of the repository, loaded at start */
    KILN_MODEL_CONTROL_POLL,     /* as NONE, and the repository is rescanned: new,
                                    changed and removed models are loaded, reloaded
                                    and unloaded without dropping requests in flight */
    KILN_MODEL_CONTROL_EXPLICIT, /* only the models named at start, then what the
                                    repository API loads and unloads */
} kiln_model_control;

/* "none", "poll", "explicit"; NULL for a bad value. */
const char *kiln_model_control_name(kiln_model_control m);
/* Parses a mode name; KILN_E_INVAL naming the accepted ones otherwise. */
kiln_status kiln_model_control_parse(const char *name, kiln_model_control *out);

/* Zero-initialized options are not valid: start from kiln_server_options_init. */
typedef struct kiln_server_options {
    const char *model_repository;  /* the repository directory (required) */
    const char *host;              /* address to bind; default "127.0.0.1" */
    int http_port;                 /* default 8000; 0: any free port (see
                                      kiln_server_http_port) */
    int metrics_port;              /* default 8002; 0: any free port; -1: no
                                      metrics server */
    kiln_model_control model_control;
    const char *const *load_models; /* EXPLICIT: models to load at start */
    int n_load_models;
    int threads;                   /* the CPU thread budget shared by all model
                                      instances; <= 0: all online cores */
    size_t max_request_bytes;      /* request bodies above are refused; default 64 MiB */
    int poll_seconds;              /* POLL: seconds between rescans; default 15 */
    int allow_client_shm;          /* 1: clients may register system shared
                                      memory regions and pass tensors in them
                                      (Triton's --allow-client-shm); default 0 */
    int verbose;                   /* 1: a log line per model event on stderr */
} kiln_server_options;

void kiln_server_options_init(kiln_server_options *opt);

/* Loads the repository's models (per the control mode) and starts serving.
 * A model that fails to load is reported (and kept UNAVAILABLE with the
 * reason); it does not stop the server. Fails (with kiln_last_error()) when
 * the repository cannot be read or a port cannot be bound. */
kiln_status kiln_server_start(const kiln_server_options *opt, kiln_server **out);

/* Ports actually bound (useful with port 0); -1 for a server not started. */
int kiln_server_http_port(const kiln_server *s);
int kiln_server_metrics_port(const kiln_server *s);

/* Stops accepting connections, finishes the requests in flight, stops the
 * model instances and frees everything. NULL is a no-op. */
void kiln_server_stop(kiln_server *s);

#ifdef __cplusplus
}
#endif
#endif
