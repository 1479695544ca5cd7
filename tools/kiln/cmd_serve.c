/* tools/kiln/cmd_serve.c: `kiln serve --model-repository DIR`. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/serve.h"

static const char *help =
    "usage: kiln serve --model-repository DIR [--host ADDR] [--http-port P]\n"
    "                  [--metrics-port P | --no-metrics]\n"
    "                  [--model-control-mode none|poll|explicit] [--load-model NAME ...]\n"
    "                  [--repository-poll-secs S] [--max-request-size BYTES]\n"
    "                  [--allow-client-shm] [-t N] [-v]\n"
    "\n"
    "Serves the ONNX models of a Triton model repository over HTTP with the KServe v2\n"
    "protocol (Triton's clients work unchanged): DIR/<model>/config.pbtxt (optional:\n"
    "completed from the model) and DIR/<model>/<version>/model.onnx. Runs until\n"
    "SIGINT or SIGTERM, then stops accepting, answers the requests in flight and\n"
    "exits 0.\n"
    "\n"
    "  --model-repository DIR  the model repository (required)\n"
    "  --host ADDR             address to bind (default 127.0.0.1: this machine only)\n"
    "  --http-port P           KServe v2 HTTP port (default 8000; 0: any free port)\n"
    "  --metrics-port P        Prometheus metrics at GET /metrics (default 8002)\n"
    "  --no-metrics            no metrics server\n"
    "  --model-control-mode M  none (default): serve every model of DIR;\n"
    "                          poll: also rescan DIR and load, reload and unload\n"
    "                          models as they change; explicit: serve the models\n"
    "                          named by --load-model, then what the repository\n"
    "                          API (POST /v2/repository/models/M/load|unload) says\n"
    "  --load-model NAME       explicit mode: load NAME at start (repeatable)\n"
    "  --repository-poll-secs S  poll mode: seconds between rescans (default 15)\n"
    "  --max-request-size B    largest request body in bytes (default 67108864; a\n"
    "                          gzip or deflate body is held to it once inflated)\n"
    "  --allow-client-shm      let clients register POSIX shared memory regions\n"
    "                          (/v2/systemsharedmemory) and pass tensors in them\n"
    "                          (off by default, as in Triton: a client then reads\n"
    "                          and writes memory the server maps)\n"
    "  -t N                    CPU threads shared by all model instances (default:\n"
    "                          all cores); a model's \"threads\" parameter overrides\n"
    "  -v, --verbose           a line per model load and unload on stderr\n";

#define MAX_LOAD_MODELS 256

static int parse_port(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 65535) return -1;
    *out = (int)v;
    return 0;
}

int kiln_cmd_serve(int argc, char **argv) {
    kiln_server_options opt;
    kiln_server_options_init(&opt);
    const char *load[MAX_LOAD_MODELS];
    int n_load = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "--model-repository") && has_val) {
            opt.model_repository = argv[++i];
        } else if (!strcmp(a, "--host") && has_val) {
            opt.host = argv[++i];
        } else if (!strcmp(a, "--http-port") && has_val) {
            if (parse_port(argv[++i], &opt.http_port)) {
                fprintf(stderr, "kiln serve: --http-port expects 0..65535, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--metrics-port") && has_val) {
            if (parse_port(argv[++i], &opt.metrics_port)) {
                fprintf(stderr, "kiln serve: --metrics-port expects 0..65535, got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--no-metrics")) {
            opt.metrics_port = -1;
        } else if (!strcmp(a, "--model-control-mode") && has_val) {
            if (kiln_model_control_parse(argv[++i], &opt.model_control) != KILN_OK) {
                fprintf(stderr, "kiln serve: --model-control-mode: %s\n", kiln_last_error());
                return 2;
            }
        } else if (!strcmp(a, "--load-model") && has_val) {
            if (n_load == MAX_LOAD_MODELS) {
                fprintf(stderr, "kiln serve: more than %d --load-model\n", MAX_LOAD_MODELS);
                return 2;
            }
            load[n_load++] = argv[++i];
        } else if (!strcmp(a, "--repository-poll-secs") && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 1 || v > 86400) {
                fprintf(stderr, "kiln serve: --repository-poll-secs expects 1..86400, got '%s'\n",
                        argv[i]);
                return 2;
            }
            opt.poll_seconds = (int)v;
        } else if (!strcmp(a, "--max-request-size") && has_val) {
            char *end;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 1024 || argv[i][0] == '-') {
                fprintf(stderr, "kiln serve: --max-request-size expects a byte count >= 1024, "
                        "got '%s'\n", argv[i]);
                return 2;
            }
            opt.max_request_bytes = (size_t)v;
        } else if (!strcmp(a, "-t") && has_val) {
            if ((opt.threads = kiln_cli_threads(argv[++i])) < 0) {
                fprintf(stderr, "kiln serve: -t expects a thread count in 1..256, got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--allow-client-shm")) {
            opt.allow_client_shm = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            opt.verbose = 1;
        } else {
            fprintf(stderr, "kiln serve: unexpected argument '%s'\n%s", a, help);
            return 2;
        }
    }
    if (!opt.model_repository) {
        fprintf(stderr, "kiln serve: --model-repository DIR is required\n%s", help);
        return 2;
    }
    if (n_load && opt.model_control != KILN_MODEL_CONTROL_EXPLICIT) {
        fprintf(stderr, "kiln serve: --load-model needs --model-control-mode explicit\n");
        return 2;
    }
    opt.load_models = load;
    opt.n_load_models = n_load;

    /* SIGINT/SIGTERM are taken by sigwait below: block them before any server
     * thread starts, so every thread inherits the mask */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    kiln_server *server = NULL;
    kiln_status st = kiln_server_start(&opt, &server);
    if (st != KILN_OK) {
        fprintf(stderr, "kiln serve: %s\n", kiln_last_error());
        return 1;
    }
    if (kiln_server_metrics_port(server) >= 0)
        fprintf(stderr, "kiln serve: listening on http://%s:%d (metrics: http://%s:%d/metrics)\n",
                opt.host, kiln_server_http_port(server), opt.host,
                kiln_server_metrics_port(server));
    else
        fprintf(stderr, "kiln serve: listening on http://%s:%d\n", opt.host,
                kiln_server_http_port(server));
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "kiln serve: %s: finishing the requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    kiln_server_stop(server);
    fprintf(stderr, "kiln serve: stopped\n");
    return 0;
}
