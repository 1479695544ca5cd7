/* bench/serve_load.c: a closed-loop load generator for a KServe v2 server,
 * beside the same model timed in-process.
 *
 *   serve_load --port P --model NAME --input NAME --shape 1,1,28,28
 *              [--host 127.0.0.1] [--output NAME] [--concurrency 1,8,32]
 *              [--seconds S] [--warmup-seconds W] [--onnx FILE [-t N]] [--json]
 *
 * For each concurrency C, C threads each hold one keep-alive connection and
 * send infer requests back to back for S seconds (after W seconds of
 * warm-up): FP32 random input in Triton's binary tensor data form, the output
 * asked for in binary. Reported per C: requests, failures, throughput
 * (requests/s and inferences/s), latency p50/p90/p99 in microseconds as the
 * client saw it. With --onnx, the model is also run in-process (a kiln
 * session with -t N threads, the same input shape) for S seconds first, and
 * its p50 is reported: end-to-end minus in-process is the server's overhead.
 * It is Triton's perf_analyzer's measurement, in C so the client adds little
 * of its own (perf_analyzer is not installable here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kiln/kiln.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct load_cfg {
    const char *host;
    int port;
    const char *request;         /* the whole HTTP request */
    size_t request_len;
    double warm_until, until;    /* monotonic seconds */
} load_cfg;

typedef struct worker {
    const load_cfg *cfg;
    double *lat;                 /* latencies of measured requests, seconds */
    size_t n, cap;
    long failures;
    char first_error[256];
} worker;

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads one HTTP response; returns its status code, or -1 on a broken
 * connection or a response without Content-Length. */
static int read_response(int fd, char *buf, size_t cap, char *err, size_t errlen) {
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have + 1 >= cap) return -1;
        ssize_t k = recv(fd, buf + have, cap - have - 1, 0);
        if (k <= 0) return -1;
        have += (size_t)k;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    int status = atoi(buf + 9);
    long body = -1;
    for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n"))
        if (!strncasecmp(line + 2, "Content-Length:", 15)) body = strtol(line + 17, NULL, 10);
    if (body < 0) return -1;
    size_t head = (size_t)(end + 4 - buf), got = have - head;
    if (status != 200 && err && !err[0])
        snprintf(err, errlen, "HTTP %d: %.200s", status, end + 4);
    while (got < (size_t)body) {
        size_t want = (size_t)body - got;
        if (want > cap - 1) want = cap - 1;
        ssize_t k = recv(fd, buf, want, 0);
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return status;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    const load_cfg *c = w->cfg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    int fd = -1;
    while (buf && now_s() < c->until) {
        if (fd < 0 && (fd = connect_to(c->host, c->port)) < 0) {
            w->failures++;
            if (!w->first_error[0]) snprintf(w->first_error, sizeof w->first_error, "connect: %s",
                                             strerror(errno));
            usleep(1000);
            continue;
        }
        double t0 = now_s();
        int status = send_all(fd, c->request, c->request_len) ? -1
                     : read_response(fd, buf, cap, w->first_error, sizeof w->first_error);
        double t1 = now_s();
        if (status < 0) {
            close(fd);
            fd = -1;
        }
        if (t0 < c->warm_until) continue;
        if (status != 200) {
            w->failures++;
            continue;
        }
        if (w->n == w->cap) {
            size_t nc = w->cap ? w->cap * 2 : 4096;
            double *p = realloc(w->lat, nc * sizeof *p);
            if (!p) break;
            w->lat = p;
            w->cap = nc;
        }
        w->lat[w->n++] = t1 - t0;
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p) {
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* The in-process p50 (seconds) of the model on one input of this shape. */
static int in_process(const char *onnx, int threads, const char *input, int nd, const int64_t *dims,
                      double seconds, double *p50, double *p99) {
    kiln_graph *g = NULL;
    kiln_session *s = NULL;
    kiln_tensor *x = NULL;
    if (kiln_graph_load_onnx(onnx, &g) != KILN_OK) goto fail;
    kiln_session_options so = {0};
    so.threads = threads;
    if (kiln_session_create(g, &so, &s) != KILN_OK) goto fail;
    if (kiln_tensor_create(KILN_DTYPE_F32, nd, dims, &x) != KILN_OK) goto fail;
    float *d = kiln_tensor_data(x);
    for (int64_t i = 0; i < kiln_tensor_numel(x); i++) d[i] = (float)((i * 7919) % 1000) / 1000.0f;
    const char *names[1] = {input};
    const kiln_tensor *ins[1] = {x};
    size_t cap = 1 << 16, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    double warm = now_s() + 0.5, until = warm + seconds;
    while (lat && now_s() < until) {
        double t0 = now_s();
        if (kiln_session_run(s, 1, names, ins) != KILN_OK) {
            free(lat);
            goto fail;
        }
        double t1 = now_s();
        if (t0 >= warm && n < cap) lat[n++] = t1 - t0;
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    *p50 = pct(lat, n, 0.5);
    *p99 = pct(lat, n, 0.99);
    free(lat);
    kiln_tensor_free(x);
    kiln_session_free(s);
    kiln_graph_free(g);
    return 0;
fail:
    fprintf(stderr, "serve_load: in-process run of %s: %s\n", onnx, kiln_last_error());
    kiln_tensor_free(x);
    kiln_session_free(s);
    kiln_graph_free(g);
    return -1;
}

static const char *usage =
    "usage: serve_load --port P --model NAME --input NAME --shape d0,d1,...\n"
    "                  [--host 127.0.0.1] [--output NAME] [--concurrency 1,8,32]\n"
    "                  [--seconds S] [--warmup-seconds W] [--onnx FILE [-t N]] [--json]\n";

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *model = NULL, *input = NULL, *output = NULL, *onnx = NULL;
    const char *conc = "1", *shape = NULL;
    int port = 0, threads = 1, json = 0;
    double seconds = 5, warmup = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int v = i + 1 < argc;
        if (!strcmp(a, "--port") && v) port = atoi(argv[++i]);
        else if (!strcmp(a, "--host") && v) host = argv[++i];
        else if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--input") && v) input = argv[++i];
        else if (!strcmp(a, "--output") && v) output = argv[++i];
        else if (!strcmp(a, "--shape") && v) shape = argv[++i];
        else if (!strcmp(a, "--concurrency") && v) conc = argv[++i];
        else if (!strcmp(a, "--seconds") && v) seconds = atof(argv[++i]);
        else if (!strcmp(a, "--warmup-seconds") && v) warmup = atof(argv[++i]);
        else if (!strcmp(a, "--onnx") && v) onnx = argv[++i];
        else if (!strcmp(a, "-t") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return fputs(usage, stdout), 0;
        else return fprintf(stderr, "serve_load: unexpected argument '%s'\n%s", a, usage), 2;
    }
    if (!port || !model || !input || !shape || seconds <= 0)
        return fprintf(stderr, "%s", usage), 2;
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    int64_t numel = 1;
    for (const char *p = shape; *p && nd < KILN_MAX_DIMS; nd++) {
        dims[nd] = strtoll(p, (char **)&p, 10);
        if (dims[nd] < 1) return fprintf(stderr, "serve_load: bad --shape '%s'\n", shape), 2;
        numel *= dims[nd];
        if (*p == ',') p++;
    }
    /* the request: JSON header + the binary input */
    size_t data_bytes = (size_t)numel * 4;
    char header[2048], shape_json[256] = "";
    for (int d = 0, k = 0; d < nd; d++)
        k += snprintf(shape_json + k, sizeof shape_json - (size_t)k, "%s%lld", d ? "," : "",
                      (long long)dims[d]);
    int hl = snprintf(header, sizeof header,
                      "{\"inputs\":[{\"name\":\"%s\",\"shape\":[%s],\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":%zu}}]%s%s%s}",
                      input, shape_json, data_bytes, output ? ",\"outputs\":[{\"name\":\"" : "",
                      output ? output : "",
                      output ? "\",\"parameters\":{\"binary_data\":true}}]" : "");
    size_t cap = (size_t)hl + data_bytes + 1024;
    char *req = malloc(cap);
    if (!req) return 1;
    int n0 = snprintf(req, cap,
                      "POST /v2/models/%s/infer HTTP/1.1\r\nHost: %s\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      "Inference-Header-Content-Length: %d\r\nContent-Length: %zu\r\n\r\n%s",
                      model, host, hl, (size_t)hl + data_bytes, header);
    float *x = (float *)(req + n0);
    for (int64_t i = 0; i < numel; i++) {
        float f = (float)((i * 7919) % 1000) / 1000.0f;
        memcpy(&x[i], &f, 4);
    }
    size_t req_len = (size_t)n0 + data_bytes;

    double ip50 = 0, ip99 = 0;
    int have_ip = onnx && !in_process(onnx, threads, input, nd, dims, seconds, &ip50, &ip99);
    if (json) {
        if (have_ip)
            printf("{\"in_process_p50_us\": %.3f, \"in_process_p99_us\": %.3f, \"runs\": [",
                   ip50 * 1e6, ip99 * 1e6);
        else
            printf("{\"in_process_p50_us\": null, \"in_process_p99_us\": null, \"runs\": [");
    } else if (have_ip)
        printf("in-process (%d thread%s): p50 %.1f us, p99 %.1f us\n", threads,
               threads == 1 ? "" : "s", ip50 * 1e6, ip99 * 1e6);
    if (!json)
        printf("%11s %9s %8s %10s %12s %10s %10s %10s\n", "concurrency", "requests", "failed",
               "req/s", "infer/s", "p50 us", "p90 us", "p99 us");
    int first = 1, rc = 0;
    for (const char *p = conc; *p;) {
        int c = (int)strtol(p, (char **)&p, 10);
        if (*p == ',') p++;
        if (c < 1 || c > 4096) return fprintf(stderr, "serve_load: bad --concurrency\n"), 2;
        load_cfg cfg = {host, port, req, req_len, 0, 0};
        cfg.warm_until = now_s() + warmup;
        cfg.until = cfg.warm_until + seconds;
        worker *ws = calloc((size_t)c, sizeof *ws);
        pthread_t *th = calloc((size_t)c, sizeof *th);
        if (!ws || !th) return 1;
        for (int i = 0; i < c; i++) {
            ws[i].cfg = &cfg;
            pthread_create(&th[i], NULL, worker_main, &ws[i]);
        }
        size_t total = 0;
        long failures = 0;
        for (int i = 0; i < c; i++) {
            pthread_join(th[i], NULL);
            total += ws[i].n;
            failures += ws[i].failures;
        }
        double *all = malloc((total ? total : 1) * sizeof *all);
        size_t k = 0;
        for (int i = 0; i < c; i++) {
            if (all) memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
            k += ws[i].n;
            if (ws[i].first_error[0] && failures)
                fprintf(stderr, "serve_load: concurrency %d: %s\n", c, ws[i].first_error);
            free(ws[i].lat);
        }
        qsort(all, total, sizeof *all, cmp_double);
        double rps = (double)total / seconds;
        if (json)
            printf("%s{\"concurrency\": %d, \"requests\": %zu, \"failed\": %ld, \"req_s\": %.2f, "
                   "\"infer_s\": %.2f, \"p50_us\": %.2f, \"p90_us\": %.2f, \"p99_us\": %.2f}",
                   first ? "" : ", ", c, total, failures, rps, rps * (double)dims[0],
                   pct(all, total, 0.5) * 1e6, pct(all, total, 0.9) * 1e6,
                   pct(all, total, 0.99) * 1e6);
        else
            printf("%11d %9zu %8ld %10.1f %12.1f %10.1f %10.1f %10.1f\n", c, total, failures, rps,
                   rps * (double)dims[0], pct(all, total, 0.5) * 1e6, pct(all, total, 0.9) * 1e6,
                   pct(all, total, 0.99) * 1e6);
        fflush(stdout);
        first = 0;
        if (failures) rc = 1;
        free(all);
        free(ws);
        free(th);
    }
    if (json) printf("]}\n");
    free(req);
    return rc;
}
