/* src/serve/compress.c: HTTP body compression with zlib, as Triton's HTTP
 * endpoint does it.
 *
 * Requests: a body sent with "Content-Encoding: gzip" (RFC 1952) or
 * "deflate" (the zlib stream of RFC 1950, which is what HTTP's deflate means
 * and what tritonclient sends) is inflated before it is routed; the inflated
 * size is held to the same limit as an uncompressed body, so a small
 * compressed body cannot grow without bound. Binary tensor offsets
 * (Inference-Header-Content-Length) refer to the inflated body, as in Triton.
 *
 * Responses: when the client's Accept-Encoding takes gzip or deflate (or
 * "*"), the body is compressed and sent with Content-Encoding; gzip is
 * preferred when both are accepted. Level 1: tensors compress little, and
 * the server's time matters more than the bytes on a local link.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "serve/serve_internal.h"

/* zlib windowBits for each encoding: +16 asks for the gzip wrapper. */
static int window_bits(serve_encoding e) { return e == SERVE_ENC_GZIP ? 15 + 16 : 15; }

const char *serve_encoding_name(serve_encoding e) {
    switch (e) {
    case SERVE_ENC_GZIP: return "gzip";
    case SERVE_ENC_DEFLATE: return "deflate";
    default: return "identity";
    }
}

/* Token [s, s+n) equal to name, ignoring case. */
static int token_is(const char *s, size_t n, const char *name) {
    return strlen(name) == n && !strncasecmp(s, name, n);
}

int serve_content_encoding(const char *header, serve_encoding *out) {
    *out = SERVE_ENC_IDENTITY;
    if (!header) return 0;
    const char *s = header + strspn(header, " \t");
    size_t n = strcspn(s, " \t");
    if (s[n + strspn(s + n, " \t")]) return -1; /* several codings: not taken */
    if (token_is(s, n, "identity")) return 0;
    if (token_is(s, n, "gzip") || token_is(s, n, "x-gzip")) {
        *out = SERVE_ENC_GZIP;
        return 0;
    }
    if (token_is(s, n, "deflate")) {
        *out = SERVE_ENC_DEFLATE;
        return 0;
    }
    return -1;
}

serve_encoding serve_accept_encoding(const char *header) {
    int gzip = 0, deflate = 0, any = 0;
    for (const char *p = header; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t;,");
        const char *name = p;
        p += n;
        /* parameters: only q matters; q=0 means "not acceptable" */
        int ok = n > 0;
        while (*p && *p != ',') {
            p += strspn(p, " \t;");
            if ((*p == 'q' || *p == 'Q') && p[strspn(p + 1, " \t") + 1] == '=') {
                const char *v = p + 1 + strspn(p + 1, " \t") + 1;
                ok = n > 0 && strtod(v, NULL) > 0.0;
            }
            p += strcspn(p, ";,");
        }
        if (!ok) continue;
        if (token_is(name, n, "gzip") || token_is(name, n, "x-gzip")) gzip = 1;
        else if (token_is(name, n, "deflate")) deflate = 1;
        else if (token_is(name, n, "*")) any = 1;
    }
    if (gzip || any) return SERVE_ENC_GZIP;
    return deflate ? SERVE_ENC_DEFLATE : SERVE_ENC_IDENTITY;
}

int serve_inflate(serve_encoding e, const char *in, size_t n, size_t limit, char **out,
                  size_t *out_len, char *err, size_t errcap) {
    *out = NULL;
    *out_len = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window_bits(e)) != Z_OK) {
        snprintf(err, errcap, "out of memory inflating the %s request body", serve_encoding_name(e));
        return -1;
    }
    size_t cap = n < 4096 ? 16384 : 4 * n, len = 0;
    if (cap > limit) cap = limit;
    if (cap < 1) cap = 1;
    char *buf = malloc(cap + 1);
    int zr = buf ? Z_OK : Z_MEM_ERROR;
    z.next_in = (Bytef *)in;
    /* the body is in memory: feed it in pieces zlib's uInt can count */
    size_t fed = 0;
    int cut_short = 0; /* the body ended inside the stream */
    while (zr == Z_OK) {
        if (z.avail_in == 0 && fed < n) {
            size_t piece = n - fed > (1u << 30) ? (1u << 30) : n - fed;
            z.next_in = (Bytef *)in + fed;
            z.avail_in = (uInt)piece;
            fed += piece;
        }
        if (len == cap) { /* full: grow up to the limit, one byte past it to detect overflow */
            if (cap > limit) break;
            size_t ncap = cap * 2 > limit ? limit + 1 : cap * 2;
            char *p = realloc(buf, ncap + 1);
            if (!p) {
                zr = Z_MEM_ERROR;
                break;
            }
            buf = p;
            cap = ncap;
        }
        size_t room = cap - len > (1u << 30) ? (1u << 30) : cap - len;
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        len += room - z.avail_out;
        if (zr == Z_BUF_ERROR && z.avail_in == 0 && fed == n) {
            cut_short = 1;
            break;
        }
        if (zr == Z_BUF_ERROR) zr = Z_OK; /* no progress possible without more room */
    }
    const int trailing = zr == Z_STREAM_END && (z.avail_in > 0 || fed < n);
    const char *zmsg = z.msg; /* zlib's static message, if any */
    inflateEnd(&z);
    if (zr == Z_STREAM_END && !trailing && len <= limit) {
        buf[len] = 0;
        *out = buf;
        *out_len = len;
        return 0;
    }
    free(buf);
    if (zr == Z_MEM_ERROR)
        snprintf(err, errcap, "out of memory inflating the %s request body", serve_encoding_name(e));
    else if (len > limit)
        snprintf(err, errcap,
                 "request body inflated from Content-Encoding %s is larger than the limit of %zu "
                 "bytes (kiln serve --max-request-size)",
                 serve_encoding_name(e), limit);
    else if (cut_short)
        snprintf(err, errcap, "request body is not valid %s data (Content-Encoding): it ends "
                 "inside the compressed stream", serve_encoding_name(e));
    else if (trailing)
        snprintf(err, errcap, "request body: data after the end of the %s stream",
                 serve_encoding_name(e));
    else
        snprintf(err, errcap, "request body is not valid %s data (Content-Encoding)%s%s",
                 serve_encoding_name(e), zmsg ? ": " : "", zmsg ? zmsg : "");
    return -1;
}

int serve_deflate(serve_encoding e, const char *in, size_t n, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (e == SERVE_ENC_IDENTITY || n > (size_t)UINT32_MAX / 2) return -1;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, window_bits(e), 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
    const size_t cap = deflateBound(&z, (uLong)n);
    char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)cap;
    const int zr = deflate(&z, Z_FINISH); /* deflateBound's room: one call finishes */
    const size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}
