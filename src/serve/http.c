/* src/serve/http.c: the HTTP side of the server, on libmicrohttpd.
 *
 * Two daemons: the KServe v2 API (routes.c) and the metrics page. Each
 * connection gets its own thread (MHD_USE_THREAD_PER_CONNECTION): a handler
 * blocks while its request waits in a model's queue, and a thread per
 * connection lets any number of clients wait side by side with no hand-off to
 * a poll loop. Bodies are gathered up to the request size limit (checked
 * against Content-Length before reading when the client sends one). Shutdown
 * stops accepting (MHD_quiesce_daemon), waits for the requests in flight to
 * be answered, then stops the daemons, and only then the models. Bodies sent
 * with Content-Encoding gzip/deflate are inflated, and answers compressed
 * when the client accepts it (compress.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/core.h"
#include "serve/serve_internal.h"

struct kiln_server {
    kiln_server_options opt;
    serve_ctx ctx;
    struct MHD_Daemon *api, *metrics;
    int api_port, metrics_port;
    atomic_int inflight;         /* requests between their first byte and their answer */
};

/* What a connection gathers for its current request. */
typedef struct request_state {
    char *body;
    size_t len, cap;
    int too_big;                 /* the body passed the size limit: answer 400, keep nothing */
    int is_metrics;
    int counted;                 /* in s->inflight: the body is in and being answered */
} request_state;

/* Sends r, compressed with enc when that is not identity (and compressing
 * works: otherwise as it is, which any client takes). */
static enum MHD_Result send_reply(struct MHD_Connection *conn, serve_reply *r,
                                  serve_encoding enc) {
    char *packed = NULL;
    size_t packed_len = 0;
    if (enc != SERVE_ENC_IDENTITY && r->body && r->len &&
        serve_deflate(enc, r->body, r->len, &packed, &packed_len) == 0) {
        free(r->body);
        r->body = packed;
        r->len = packed_len;
    } else {
        enc = SERVE_ENC_IDENTITY;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body ? r->body : (void *)"",
                                        r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (enc != SERVE_ENC_IDENTITY)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, serve_encoding_name(enc));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (r->header_len) { /* offsets in the uncompressed body, as Triton's */
        char v[32];
        snprintf(v, sizeof v, "%zu", r->header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", v);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void error_reply(serve_reply *r, int status, const char *msg) {
    r->status = status;
    r->header_len = 0;
    r->content_type = NULL;
    r->body = serve_error_body(msg, &r->len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    kiln_server *s = cls;
    request_state *rs = *con_cls;
    size_t limit = s->opt.max_request_bytes;
    if (!rs) { /* headers are in; the body (if any) comes in the next calls */
        if (!(rs = calloc(1, sizeof *rs))) return MHD_NO;
        *con_cls = rs;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > limit) rs->too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->too_big || rs->len + n > limit) {
            rs->too_big = 1;
            free(rs->body);
            rs->body = NULL;
            rs->len = rs->cap = 0;
            return MHD_YES;
        }
        if (rs->len + n + 1 > rs->cap) {
            size_t cap = rs->cap ? rs->cap : 16384;
            while (cap < rs->len + n + 1) cap *= 2;
            char *p = realloc(rs->body, cap);
            if (!p) {
                rs->too_big = 1; /* answered as too big rather than dropped */
                free(rs->body);
                rs->body = NULL;
                rs->len = rs->cap = 0;
                return MHD_YES;
            }
            rs->body = p;
            rs->cap = cap;
        }
        memcpy(rs->body + rs->len, upload_data, n);
        rs->len += n;
        rs->body[rs->len] = 0;
        return MHD_YES;
    }
    /* the request is complete: shutdown now waits for its answer (an upload
     * still arriving does not hold shutdown up) */
    rs->counted = 1;
    atomic_fetch_add(&s->inflight, 1);
    serve_reply r = {0};
    const char *enc_text = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_CONTENT_ENCODING);
    const serve_encoding answer_enc = serve_accept_encoding(
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
    serve_encoding enc;
    char msg[320];
    if (rs->too_big) {
        snprintf(msg, sizeof msg,
                 "request body larger than the limit of %zu bytes (kiln serve --max-request-size)",
                 limit);
        error_reply(&r, 400, msg);
        return send_reply(conn, &r, answer_enc);
    }
    if (serve_content_encoding(enc_text, &enc)) {
        snprintf(msg, sizeof msg, "Content-Encoding '%.40s' is not supported: send the body as "
                 "gzip, deflate or identity", enc_text);
        error_reply(&r, 400, msg);
        return send_reply(conn, &r, answer_enc);
    }
    if (enc != SERVE_ENC_IDENTITY && rs->len) {
        char *plain;
        size_t plain_len;
        if (serve_inflate(enc, rs->body, rs->len, limit, &plain, &plain_len, msg, sizeof msg)) {
            error_reply(&r, 400, msg);
            return send_reply(conn, &r, answer_enc);
        }
        free(rs->body);
        rs->body = plain;
        rs->len = plain_len;
        rs->cap = plain_len + 1;
    }
    if (rs->is_metrics) {
        if (!strcmp(url, "/metrics") && (!strcmp(method, "GET") || !strcmp(method, "HEAD")))
            serve_metrics_text(&s->ctx, &r);
        else
            error_reply(&r, 404, "not found: the metrics are at GET /metrics");
    } else {
        const char *hl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Inference-Header-Content-Length");
        serve_route(&s->ctx, method, url, rs->body ? rs->body : "", rs->len, hl, &r);
    }
    return send_reply(conn, &r, answer_enc);
}

static enum MHD_Result on_metrics_request(void *cls, struct MHD_Connection *conn,
                                          const char *url, const char *method,
                                          const char *version, const char *upload_data,
                                          size_t *upload_data_size, void **con_cls) {
    if (!*con_cls) {
        enum MHD_Result r = on_request(cls, conn, url, method, version, upload_data,
                                       upload_data_size, con_cls);
        if (*con_cls) ((request_state *)*con_cls)->is_metrics = 1;
        return r;
    }
    return on_request(cls, conn, url, method, version, upload_data, upload_data_size, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    kiln_server *s = cls;
    request_state *rs = *con_cls;
    if (!rs) return;
    if (rs->counted) atomic_fetch_sub(&s->inflight, 1);
    free(rs->body);
    free(rs);
    *con_cls = NULL;
}

/* The socket address of host:port in *a; 0, or -1 when host is not a
 * numeric IPv4 or IPv6 address. *ipv6 says which. */
static int parse_address(const char *host, int port, struct sockaddr_storage *a, int *ipv6) {
    memset(a, 0, sizeof *a);
    struct sockaddr_in *a4 = (struct sockaddr_in *)a;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)a;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *ipv6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *ipv6 = 1;
        return 0;
    }
    return -1;
}

/* Starts a daemon on host:port (port 0: any), handler h. */
static struct MHD_Daemon *start_daemon(kiln_server *s, int port, MHD_AccessHandlerCallback h,
                                       int *bound) {
    struct sockaddr_storage addr;
    int ipv6 = 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (parse_address(s->opt.host, port, &addr, &ipv6)) {
        kiln__err(KILN_E_INVAL, "--host '%s' is not an IPv4 or IPv6 address", s->opt.host);
        return NULL;
    }
    if (ipv6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, h, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!d) {
        kiln__err(KILN_E_IO, "cannot listen on %s:%d (port in use, or not allowed)", s->opt.host,
                  port);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = info ? (int)info->port : port;
    return d;
}

const char *kiln_model_control_name(kiln_model_control m) {
    switch (m) {
    case KILN_MODEL_CONTROL_NONE: return "none";
    case KILN_MODEL_CONTROL_POLL: return "poll";
    case KILN_MODEL_CONTROL_EXPLICIT: return "explicit";
    }
    return NULL;
}

kiln_status kiln_model_control_parse(const char *name, kiln_model_control *out) {
    for (int m = KILN_MODEL_CONTROL_NONE; m <= KILN_MODEL_CONTROL_EXPLICIT; m++)
        if (name && !strcmp(name, kiln_model_control_name((kiln_model_control)m))) {
            *out = (kiln_model_control)m;
            return KILN_OK;
        }
    return kiln__err(KILN_E_INVAL, "model control mode '%s': expected none, poll or explicit",
                     name ? name : "");
}

void kiln_server_options_init(kiln_server_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->host = "127.0.0.1";
    opt->http_port = 8000;
    opt->metrics_port = 8002;
    opt->max_request_bytes = (size_t)64 << 20;
    opt->poll_seconds = 15;
}

kiln_status kiln_server_start(const kiln_server_options *opt, kiln_server **out) {
    *out = NULL;
    if (!opt || !opt->model_repository)
        return kiln__err(KILN_E_INVAL, "kiln_server_start: no model repository given");
    kiln_server *s = calloc(1, sizeof *s);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    s->opt = *opt;
    if (!s->opt.host) s->opt.host = "127.0.0.1";
    if (!s->opt.max_request_bytes) s->opt.max_request_bytes = (size_t)64 << 20;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->ctx.live, 1);
    s->ctx.opt = &s->opt;
    s->api_port = s->metrics_port = -1;
    struct sockaddr_storage addr;
    int ipv6;
    if (parse_address(s->opt.host, 0, &addr, &ipv6)) { /* before any model loads */
        free(s);
        return kiln__err(KILN_E_INVAL, "--host '%s' is not an IPv4 or IPv6 address", opt->host);
    }
    int threads = opt->threads > 0 ? opt->threads : kiln__cpu_count();
    if (opt->allow_client_shm && !(s->ctx.shm = serve_shm_new())) {
        free(s);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    kiln_status st = serve_repo_open(&s->opt, threads, &s->ctx.repo);
    if (st != KILN_OK) {
        serve_shm_free(s->ctx.shm);
        free(s);
        return kiln__err(st, "model repository %s: %s", opt->model_repository,
                         st == KILN_E_IO ? "not a readable directory" : "out of memory");
    }
    if (!(s->api = start_daemon(s, opt->http_port, on_request, &s->api_port))) goto fail;
    if (opt->metrics_port >= 0 &&
        !(s->metrics = start_daemon(s, opt->metrics_port, on_metrics_request, &s->metrics_port)))
        goto fail;
    *out = s;
    return KILN_OK;
fail:
    st = KILN_E_IO;
    if (s->api) MHD_stop_daemon(s->api);
    serve_repo_close(s->ctx.repo);
    serve_shm_free(s->ctx.shm);
    free(s);
    return st;
}

int kiln_server_http_port(const kiln_server *s) { return s ? s->api_port : -1; }
int kiln_server_metrics_port(const kiln_server *s) { return s ? s->metrics_port : -1; }

void kiln_server_stop(kiln_server *s) {
    if (!s) return;
    atomic_store(&s->ctx.live, 0);
    /* no new connections; requests already in are answered */
    MHD_socket l = MHD_quiesce_daemon(s->api);
    if (l != MHD_INVALID_SOCKET) close(l);
    if (s->metrics) {
        l = MHD_quiesce_daemon(s->metrics);
        if (l != MHD_INVALID_SOCKET) close(l);
    }
    for (int waited_ms = 0; atomic_load(&s->inflight) > 0 && waited_ms < 60000; waited_ms += 5) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->api);
    if (s->metrics) MHD_stop_daemon(s->metrics);
    serve_repo_close(s->ctx.repo);
    serve_shm_free(s->ctx.shm);
    free(s);
}
