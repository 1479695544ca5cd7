/* src/serve/infer_codec.c: KServe v2 inference requests and responses (the
 * wire format is described in infer_codec.h).
 *
 * Requests. The JSON header is parsed with cJSON after one fix-up, and the
 * tree is patched after parsing from the text itself:
 *   - NaN, Infinity, -Infinity, Inf (what Triton's parser accepts, rapidjson's
 *     kParseNanAndInfFlag, and what Python's json.dumps writes) are not JSON;
 *     they are blanked to "0" in a copy before cJSON reads it, and their values
 *     put back into the tree afterwards;
 *   - cJSON keeps numbers as doubles, exact only up to 2^53: integer literals
 *     beyond that (INT64/UINT64 data, shapes, sizes) are copied from the text
 *     into the number node's (otherwise unused) valuestring, which cJSON_Delete
 *     frees.
 * Both patches walk the original text in step with the tree: cJSON keeps
 * children in document order, so the k-th number node of a pre-order walk is
 * the k-th number token of the text (strings skipped).
 * Every size is checked against the bytes the body holds before anything is
 * allocated for it: a JSON input's element count is the number of values its
 * "data" holds, a binary input's bytes are in the body, so a hostile shape
 * costs nothing.
 *
 * Responses are written directly into one buffer (JSON, then the binary
 * outputs), not through a cJSON tree: numbers must be printed exactly (cJSON
 * prints 64-bit integers through a double) and a tree costs ~64 bytes per
 * element.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "serve/infer_codec.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binary tensor data is little-endian on the wire; infer_codec.c assumes a little-endian host"
#endif

#define DATA_MAX_DEPTH 64           /* arrays nested in "data" (Triton: 100) */
#define TWO_POW_53 9007199254740992.0
#define TWO_POW_64 18446744073709551616.0
/* Doubles below this magnitude round to a finite float (to FLT_MAX at most):
 * the midpoint between FLT_MAX and 2^128. */
#define FLT_ROUND_LIMIT 0x1.ffffffp+127

static int fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes the message into err (when there is room) and returns status. */
static int fail(char *err, size_t errlen, int status, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

#define OOM(err, errlen) fail(err, errlen, 500, "out of memory")

/* The wire name of a dtype ("FP32"), kiln's name for the ones it lacks. */
static const char *wire_name(kiln_dtype dt) {
    const char *n = serve_dtype_wire_name(dt);
    return n ? n : kiln_dtype_name(dt);
}

/* The refusal of FP16 / BF16 data in a JSON response (Triton's words). */
static int half_json_refusal(const char *dtype, const char *output, char *err, size_t errlen) {
    return fail(err, errlen, 400,
                "sending %s data via JSON is not supported: ask for output '%s' in the binary data "
                "format (\"binary_data\": true)", dtype, output);
}

/* "[2,3,28,28]" into buf (truncated to n); lead_wild: a leading -1 (the batch
 * dimension of a configured shape). Returns buf. */
static const char *shape_str(char *buf, size_t n, int lead_wild, int ndim, const int64_t *dims) {
    size_t at = 0;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, n, "[%s", lead_wild ? "-1" : "");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, (i || lead_wild) ? "," : "", dims[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

/* Product of dims (each >= 0): 0 when one is 0, -1 when it overflows int64. */
static int64_t numel_of(int ndim, const int64_t *dims) {
    for (int i = 0; i < ndim; i++)
        if (dims[i] == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || n > INT64_MAX / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

/* ======================================================================== */
/* JSON text: NaN/Infinity and exact integers                               */
/* ======================================================================== */

/* Length of a NaN / Inf / Infinity token (optionally after '-') at p, n bytes
 * left, with its value in *v; 0 if there is none. */
static size_t special_len(const char *p, size_t n, double *v) {
    size_t s = (n > 0 && p[0] == '-') ? 1 : 0;
    double sign = s ? -1.0 : 1.0;
    if (n - s >= 8 && !memcmp(p + s, "Infinity", 8)) {
        *v = sign * INFINITY;
        return s + 8;
    }
    if (n - s >= 3 && !memcmp(p + s, "Inf", 3)) {
        *v = sign * INFINITY;
        return s + 3;
    }
    if (n - s >= 3 && !memcmp(p + s, "NaN", 3)) {
        *v = NAN;
        return s + 3;
    }
    return 0;
}

static int is_number_char(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* A cursor over JSON text that stops at number tokens. */
typedef struct json_scan {
    const char *p;
    size_t n, i;
    int nul_escape; /* a string held \u0000 */
} json_scan;

/* The next number token outside strings (NaN/Infinity included): its start,
 * with its length in *len and, for a NaN/Infinity one, *special = 1 and its
 * value in *v; NULL at the end. Skips strings as cJSON does (a backslash takes
 * the next byte with it). */
static const char *scan_number(json_scan *s, size_t *len, int *special, double *v) {
    while (s->i < s->n) {
        char c = s->p[s->i];
        if (c == '"') {
            s->i++;
            while (s->i < s->n && s->p[s->i] != '"') {
                if (s->p[s->i] == '\\' && s->i + 1 < s->n) {
                    if (s->p[s->i + 1] == 'u' && s->n - s->i >= 6 && !memcmp(s->p + s->i + 2, "0000", 4))
                        s->nul_escape = 1;
                    s->i += 2;
                } else {
                    s->i++;
                }
            }
            s->i++;
            continue;
        }
        /* NaN / Infinity only where a value may start: "1NaN" must not read
         * as "10" once blanked */
        char prev = s->i ? s->p[s->i - 1] : ' ';
        size_t k = prev && strchr(" \t\r\n[,:", prev) ? special_len(s->p + s->i, s->n - s->i, v) : 0;
        if (k || c == '-' || (c >= '0' && c <= '9')) {
            const char *tok = s->p + s->i;
            *special = k > 0;
            if (!k)
                while (s->i + k < s->n && is_number_char(s->p[s->i + k])) k++;
            s->i += k;
            *len = k;
            return tok;
        }
        s->i++;
    }
    return NULL;
}

/* A plain integer literal: -?[0-9]+ */
static int plain_integer(const char *p, size_t n) {
    size_t i = (n > 0 && p[0] == '-') ? 1 : 0;
    if (i == n) return 0;
    for (; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return 0;
    return 1;
}

/* Puts back what the blanking hid and keeps big integer literals (see the top
 * of the file). s walks the original text. Returns 0, or -1 out of memory. */
static int patch_numbers(cJSON *it, json_scan *s) {
    for (; it; it = it->next) {
        if (cJSON_IsNumber(it)) {
            size_t len = 0;
            int special = 0;
            double v = 0;
            const char *tok = scan_number(s, &len, &special, &v);
            if (!tok) return 0; /* cannot happen: cJSON read the same tokens */
            if (special) {
                it->valuedouble = v;
                it->valueint = 0;
            } else if (fabs(it->valuedouble) >= TWO_POW_53 && plain_integer(tok, len)) {
                if (!(it->valuestring = cJSON_malloc(len + 1))) return -1;
                memcpy(it->valuestring, tok, len);
                it->valuestring[len] = '\0';
            }
        }
        if (it->child && patch_numbers(it->child, s)) return -1;
    }
    return 0;
}

/* Parses n bytes of JSON text into *root. Returns 0, or 400 / 500 with err. */
static int parse_json(const char *text, size_t n, cJSON **root, char *err, size_t errlen) {
    *root = NULL;
    if (memchr(text, '\0', n)) return fail(err, errlen, 400, "the request's JSON holds a NUL byte");
    char *copy = malloc(n + 1);
    if (!copy) return OOM(err, errlen);
    memcpy(copy, text, n);
    copy[n] = '\0';
    /* blank NaN / Infinity for cJSON */
    json_scan s = {.p = copy, .n = n};
    size_t len;
    int special;
    double v;
    const char *tok;
    while ((tok = scan_number(&s, &len, &special, &v)))
        if (special) {
            char *w = copy + (tok - copy);
            w[0] = '0';
            memset(w + 1, ' ', len - 1);
        }
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(copy, n, &end, 0);
    size_t at = (end && end >= copy && end <= copy + n) ? (size_t)(end - copy) : 0;
    free(copy);
    if (!r) return fail(err, errlen, 400, "malformed JSON in the request at byte %zu", at);
    for (size_t i = at; i < n; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
            cJSON_Delete(r);
            return fail(err, errlen, 400, "unexpected text after the request's JSON at byte %zu", i);
        }
    if (s.nul_escape) {
        cJSON_Delete(r);
        return fail(err, errlen, 400,
                    "the request's JSON holds a \\u0000 escape: strings with NUL characters "
                    "are not supported");
    }
    json_scan orig = {.p = text, .n = n};
    if (patch_numbers(r, &orig)) {
        cJSON_Delete(r);
        return OOM(err, errlen);
    }
    *root = r;
    return 0;
}

/* ======================================================================== */
/* JSON values                                                              */
/* ======================================================================== */

enum { NUM_OK = 0, NUM_NOT_NUMBER = -1, NUM_NOT_INTEGER = -2, NUM_TOO_BIG = -3 };

/* The integer a JSON number holds, as sign and magnitude (0 is never
 * negative). Returns NUM_OK, NUM_NOT_NUMBER, NUM_NOT_INTEGER (a fraction, NaN)
 * or NUM_TOO_BIG (beyond 64 bits, infinite). */
static int json_int(const cJSON *v, int *neg, uint64_t *mag) {
    if (!cJSON_IsNumber(v)) return NUM_NOT_NUMBER;
    *neg = 0;
    *mag = 0;
    if (v->valuestring) { /* an integer literal beyond 2^53, kept by patch_numbers */
        const char *p = v->valuestring;
        int ng = *p == '-';
        uint64_t m = 0;
        for (p += ng; *p; p++) {
            unsigned d = (unsigned)(*p - '0');
            if (m > (UINT64_MAX - d) / 10) return NUM_TOO_BIG;
            m = m * 10 + d;
        }
        *neg = ng && m;
        *mag = m;
        return NUM_OK;
    }
    double d = v->valuedouble;
    if (isnan(d)) return NUM_NOT_INTEGER;
    if (isinf(d) || fabs(d) >= TWO_POW_64) return NUM_TOO_BIG;
    if (d != floor(d)) return NUM_NOT_INTEGER;
    *mag = (uint64_t)fabs(d);
    *neg = d < 0 && *mag;
    return NUM_OK;
}

/* A JSON number that must be an integer in [0, max]. Returns 0 or -1. */
static int json_uint(const cJSON *v, uint64_t max, uint64_t *out) {
    int neg;
    uint64_t mag;
    if (json_int(v, &neg, &mag) != NUM_OK || neg || mag > max) return -1;
    *out = mag;
    return 0;
}

/* "a string", "true", ... for messages. */
static const char *json_kind(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsTrue(v)) return "true";
    if (cJSON_IsFalse(v)) return "false";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    return "a number";
}

/* The text of a JSON number for messages (15 digits when they read back). */
static const char *num_text(const cJSON *v, char *buf, size_t n) {
    if (v->valuestring) snprintf(buf, n, "%s", v->valuestring);
    else if (snprintf(buf, n, "%.15g", v->valuedouble), strtod(buf, NULL) != v->valuedouble)
        snprintf(buf, n, "%.17g", v->valuedouble);
    return buf;
}

/* Stores integer (neg, mag) as dtype dt at element k of data. Returns 0, or
 * -1 when it is out of range for dt. */
static int store_int(kiln_dtype dt, void *data, int64_t k, int neg, uint64_t mag) {
    int bits;
    int is_signed = 1;
    switch (dt) {
    case KILN_DTYPE_I8: bits = 8; break;
    case KILN_DTYPE_I16: bits = 16; break;
    case KILN_DTYPE_I32: bits = 32; break;
    case KILN_DTYPE_I64: bits = 64; break;
    case KILN_DTYPE_U8: bits = 8, is_signed = 0; break;
    case KILN_DTYPE_U16: bits = 16, is_signed = 0; break;
    case KILN_DTYPE_U32: bits = 32, is_signed = 0; break;
    case KILN_DTYPE_U64: bits = 64, is_signed = 0; break;
    default: return -1;
    }
    if (is_signed) {
        uint64_t lim = (uint64_t)1 << (bits - 1); /* |min|; max is lim - 1 */
        if (neg ? mag > lim : mag >= lim) return -1;
        int64_t x = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
        switch (bits) {
        case 8: ((int8_t *)data)[k] = (int8_t)x; break;
        case 16: ((int16_t *)data)[k] = (int16_t)x; break;
        case 32: ((int32_t *)data)[k] = (int32_t)x; break;
        default: ((int64_t *)data)[k] = x; break;
        }
    } else {
        if (neg || (bits < 64 && mag >> bits)) return -1;
        switch (bits) {
        case 8: ((uint8_t *)data)[k] = (uint8_t)mag; break;
        case 16: ((uint16_t *)data)[k] = (uint16_t)mag; break;
        case 32: ((uint32_t *)data)[k] = (uint32_t)mag; break;
        default: ((uint64_t *)data)[k] = mag; break;
        }
    }
    return 0;
}

/* Element k of JSON input `name` into t. Returns 0, or 400 / 500 with err. */
static int store_json_elem(const cJSON *v, kiln_tensor *t, int64_t k, const char *name, char *err,
                           size_t errlen) {
    kiln_dtype dt = kiln_tensor_dtype(t);
    void *data = kiln_tensor_data(t);
    const char *dn = wire_name(dt);
    char num[64];
    switch (dt) {
    case KILN_DTYPE_BOOL:
        if (!cJSON_IsBool(v))
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, expected true or false (BOOL)",
                        name, k, json_kind(v));
        ((uint8_t *)data)[k] = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case KILN_DTYPE_F32:
    case KILN_DTYPE_F64: {
        if (!cJSON_IsNumber(v))
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, expected a number (%s)",
                        name, k, json_kind(v), dn);
        double d = v->valuedouble;
        if (dt == KILN_DTYPE_F64) {
            ((double *)data)[k] = d;
            return 0;
        }
        float f;
        if (isnan(d) || isinf(d) || fabs(d) <= FLT_MAX) f = (float)d;
        else if (fabs(d) < FLT_ROUND_LIMIT) f = d < 0 ? -FLT_MAX : FLT_MAX;
        else
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, out of range for FP32",
                        name, k, num_text(v, num, sizeof num));
        ((float *)data)[k] = f;
        return 0;
    }
    case KILN_DTYPE_STRING: {
        if (!cJSON_IsString(v))
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, expected a string (BYTES)",
                        name, k, json_kind(v));
        size_t n = strlen(v->valuestring);
        char *c = malloc(n + 1);
        if (!c) return OOM(err, errlen);
        memcpy(c, v->valuestring, n + 1);
        char **slot = (char **)data + k;
        free(*slot);
        *slot = c;
        return 0;
    }
    default: {
        int neg;
        uint64_t mag;
        int rc = json_int(v, &neg, &mag);
        if (rc == NUM_NOT_NUMBER)
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, expected an integer (%s)",
                        name, k, json_kind(v), dn);
        if (rc == NUM_NOT_INTEGER)
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, not an integer (%s)",
                        name, k, num_text(v, num, sizeof num), dn);
        if (rc != NUM_OK || store_int(dt, data, k, neg, mag))
            return fail(err, errlen, 400, "input '%s': data element %" PRId64 " is %s, out of range for %s",
                        name, k, num_text(v, num, sizeof num), dn);
        return 0;
    }
    }
}

/* Values in a "data" array, arrays nested up to DATA_MAX_DEPTH deep; -1 when
 * deeper. */
static int64_t count_leaves(const cJSON *a, int depth) {
    if (depth > DATA_MAX_DEPTH) return -1;
    int64_t n = 0;
    for (const cJSON *v = a->child; v; v = v->next) {
        if (cJSON_IsArray(v)) {
            int64_t m = count_leaves(v, depth + 1);
            if (m < 0) return -1;
            n += m;
        } else {
            n++;
        }
    }
    return n;
}

/* Fills t from "data" in row-major order (count_leaves said how many). */
static int fill_json(const cJSON *a, kiln_tensor *t, int64_t *k, const char *name, char *err,
                     size_t errlen) {
    for (const cJSON *v = a->child; v; v = v->next) {
        int rc = cJSON_IsArray(v) ? fill_json(v, t, k, name, err, errlen)
                                  : store_json_elem(v, t, (*k)++, name, err, errlen);
        if (rc) return rc;
    }
    return 0;
}

/* ======================================================================== */
/* Requests                                                                 */
/* ======================================================================== */

/* The tail of the body after the JSON: binary inputs take from it in order. */
typedef struct bin_tail {
    const uint8_t *p;
    size_t left;
    int have_header; /* Inference-Header-Content-Length was given */
} bin_tail;

/* Makes an empty tensor (dt, shape) for input `name`. */
static int new_tensor(kiln_dtype dt, int ndim, const int64_t *dims, kiln_tensor **t,
                      const char *name, char *err, size_t errlen) {
    kiln_status st = kiln_tensor_create(dt, ndim, dims, t);
    if (st == KILN_E_NOMEM) return OOM(err, errlen);
    if (st != KILN_OK)
        return fail(err, errlen, 400, "input '%s': %s", name, kiln_last_error());
    return 0;
}

/* A BYTES input in binary form: elements of a 4-byte little-endian length
 * and the bytes, exactly numel of them filling size bytes. */
static int read_bytes_binary(const uint8_t *p, size_t size, int ndim, const int64_t *dims,
                             int64_t numel, kiln_tensor **out, const char *name, char *err,
                             size_t errlen) {
    char sb[300];
    int64_t count = 0;
    /* count first: each element is at least 4 bytes, so numel is bounded by
     * the body before the tensor is made */
    for (size_t off = 0; off < size; count++) {
        uint32_t l;
        if (size - off < 4)
            return fail(err, errlen, 400,
                        "input '%s': binary BYTES data ends inside the length of element %" PRId64
                        " (%zu bytes left)", name, count, size - off);
        memcpy(&l, p + off, 4);
        off += 4;
        if (l > size - off)
            return fail(err, errlen, 400,
                        "input '%s': binary BYTES element %" PRId64 " is %" PRIu32
                        " bytes long but only %zu bytes of its binary_data_size remain",
                        name, count, l, size - off);
        if (memchr(p + off, '\0', l))
            return fail(err, errlen, 400,
                        "input '%s': binary BYTES element %" PRId64 " holds a NUL byte, which kiln's "
                        "string tensors cannot carry", name, count);
        off += l;
    }
    if (count != numel)
        return fail(err, errlen, 400,
                    "input '%s': binary BYTES data holds %" PRId64 " elements but shape %s needs %" PRId64,
                    name, count, shape_str(sb, sizeof sb, 0, ndim, dims), numel);
    int rc = new_tensor(KILN_DTYPE_STRING, ndim, dims, out, name, err, errlen);
    if (rc) return rc;
    char **slots = kiln_tensor_data(*out);
    size_t off = 0;
    for (int64_t i = 0; i < numel; i++) {
        uint32_t l;
        memcpy(&l, p + off, 4);
        off += 4;
        char *c = malloc((size_t)l + 1);
        if (!c) return OOM(err, errlen); /* the caller frees *out */
        memcpy(c, p + off, l);
        c[l] = '\0';
        off += l;
        free(slots[i]);
        slots[i] = c;
    }
    return 0;
}

/* The shared-memory parameters of an input or output ("what" 'name') into
 * *ref; ref->region stays NULL when there are none. */
static int parse_shm_ref(const cJSON *jp, const char *what, const char *name, serve_shm_ref *ref,
                         char *err, size_t errlen) {
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(jp, "shared_memory_region");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(jp, "shared_memory_byte_size");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(jp, "shared_memory_offset");
    if (!jr && !js && !jo) return 0;
    if (!jr || !js)
        return fail(err, errlen, 400,
                    "%s '%s': shared memory needs both 'shared_memory_region' and "
                    "'shared_memory_byte_size' (in 'parameters'); it sets only '%s'", what, name,
                    jr ? "shared_memory_region" : js ? "shared_memory_byte_size" : "shared_memory_offset");
    if (!cJSON_IsString(jr) || !*jr->valuestring)
        return fail(err, errlen, 400, "%s '%s': 'shared_memory_region' is not a region name", what, name);
    if (json_uint(js, INT64_MAX, &ref->byte_size))
        return fail(err, errlen, 400, "%s '%s': 'shared_memory_byte_size' is not a non-negative integer",
                    what, name);
    if (jo && json_uint(jo, INT64_MAX, &ref->offset))
        return fail(err, errlen, 400, "%s '%s': 'shared_memory_offset' is not a non-negative integer",
                    what, name);
    size_t n = strlen(jr->valuestring);
    if (!(ref->region = malloc(n + 1))) return OOM(err, errlen);
    memcpy(ref->region, jr->valuestring, n + 1);
    return 0;
}

/* Reads element idx of the n "inputs" into r: its name and tensor, or where
 * the input is in shared memory its description (r->input_shm). On failure
 * the caller frees what was set. */
static int parse_input(const cJSON *in, int idx, int n, bin_tail *bin, serve_request *r, char *err,
                       size_t errlen) {
    char sb[300];
    char **name_out = &r->input_names[idx];
    kiln_tensor **t_out = &r->inputs[idx];
    if (!cJSON_IsObject(in)) return fail(err, errlen, 400, "inputs[%d] is not an object", idx);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (!cJSON_IsString(jn)) return fail(err, errlen, 400, "inputs[%d] has no 'name' string", idx);
    const char *name = jn->valuestring;
    size_t nl = strlen(name);
    if (!(*name_out = malloc(nl + 1))) return OOM(err, errlen);
    memcpy(*name_out, name, nl + 1);

    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    if (!cJSON_IsString(jd)) return fail(err, errlen, 400, "input '%s' has no 'datatype' string", name);
    kiln_dtype dt = serve_dtype_from_wire(jd->valuestring);
    if (dt == KILN_DTYPE_UNDEFINED)
        return fail(err, errlen, 400, "input '%s': unknown datatype '%.64s'", name, jd->valuestring);

    const cJSON *js = cJSON_GetObjectItemCaseSensitive(in, "shape");
    if (!cJSON_IsArray(js)) return fail(err, errlen, 400, "input '%s' has no 'shape' array", name);
    int ndim = 0;
    int64_t dims[KILN_MAX_DIMS];
    for (const cJSON *d = js->child; d; d = d->next) {
        uint64_t u;
        if (ndim == KILN_MAX_DIMS)
            return fail(err, errlen, 400, "input '%s': shape has more than %d dimensions", name,
                        KILN_MAX_DIMS);
        if (json_uint(d, INT64_MAX, &u))
            return fail(err, errlen, 400,
                        "input '%s': shape dimension %d is not an integer in 0..%" PRId64, name, ndim,
                        INT64_MAX);
        dims[ndim++] = (int64_t)u;
    }
    int64_t numel = numel_of(ndim, dims);
    if (numel < 0)
        return fail(err, errlen, 400, "input '%s': shape %s has more elements than 64 bits count",
                    name, shape_str(sb, sizeof sb, 0, ndim, dims));

    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(in, "parameters");
    const cJSON *jb = NULL;
    if (jp) {
        if (!cJSON_IsObject(jp)) return fail(err, errlen, 400, "input '%s': 'parameters' is not an object", name);
        jb = cJSON_GetObjectItemCaseSensitive(jp, "binary_data_size");
        serve_shm_ref ref = {0};
        int rc = parse_shm_ref(jp, "input", name, &ref, err, errlen);
        if (rc) return rc;
        if (ref.region) {
            if (!r->input_shm && !(r->input_shm = calloc((size_t)n, sizeof *r->input_shm))) {
                free(ref.region);
                return OOM(err, errlen);
            }
            serve_shm_input *si = &r->input_shm[idx];
            si->ref = ref; /* owned by r from here */
            if (jb || cJSON_GetObjectItemCaseSensitive(in, "data"))
                return fail(err, errlen, 400,
                            "input '%s': its data is in shared memory region '%s', so it may not "
                            "also set '%s'", name, ref.region, jb ? "binary_data_size" : "data");
            si->dtype = dt;
            si->ndim = ndim;
            memcpy(si->dims, dims, sizeof dims);
            uint64_t es = kiln_dtype_size(dt);
            if (dt != KILN_DTYPE_STRING &&
                ((uint64_t)numel > UINT64_MAX / es || (uint64_t)numel * es != ref.byte_size))
                return fail(err, errlen, 400,
                            "input '%s': shared_memory_byte_size is %" PRIu64 " but shape %s of %s "
                            "takes %s%" PRIu64 " bytes", name, ref.byte_size,
                            shape_str(sb, sizeof sb, 0, ndim, dims), jd->valuestring,
                            (uint64_t)numel > UINT64_MAX / es ? "more than " : "",
                            (uint64_t)numel > UINT64_MAX / es ? UINT64_MAX : (uint64_t)numel * es);
            return 0; /* the tensor comes from serve_request_read_shm */
        }
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (!data == !jb)
        return fail(err, errlen, 400,
                    "input '%s': set exactly one of 'data' and 'binary_data_size' (in 'parameters'); "
                    "it sets %s", name, data ? "both" : "neither");

    if (jb) { /* binary data extension */
        uint64_t size;
        if (json_uint(jb, UINT64_MAX, &size))
            return fail(err, errlen, 400, "input '%s': 'binary_data_size' is not a non-negative integer",
                        name);
        if (size > 0 && !bin->have_header)
            return fail(err, errlen, 400,
                        "input '%s': 'binary_data_size' needs the Inference-Header-Content-Length "
                        "header giving the length of the JSON that the binary data follows", name);
        if (size > bin->left)
            return fail(err, errlen, 400,
                        "input '%s': binary_data_size is %" PRIu64 " but only %zu bytes of binary "
                        "data remain after the JSON and the inputs before it", name, size, bin->left);
        const uint8_t *p = bin->p;
        bin->p += size;
        bin->left -= (size_t)size;
        if (dt == KILN_DTYPE_STRING)
            return read_bytes_binary(p, (size_t)size, ndim, dims, numel, t_out, name, err, errlen);
        uint64_t es = kiln_dtype_size(dt);
        if ((uint64_t)numel > UINT64_MAX / es || (uint64_t)numel * es != size)
            return fail(err, errlen, 400,
                        "input '%s': binary_data_size is %" PRIu64 " but shape %s of %s takes %s%" PRIu64
                        " bytes", name, size, shape_str(sb, sizeof sb, 0, ndim, dims), jd->valuestring,
                        (uint64_t)numel > UINT64_MAX / es ? "more than " : "",
                        (uint64_t)numel > UINT64_MAX / es ? UINT64_MAX : (uint64_t)numel * es);
        int rc = new_tensor(dt, ndim, dims, t_out, name, err, errlen);
        if (rc) return rc;
        uint8_t *d = kiln_tensor_data(*t_out);
        if (size) memcpy(d, p, (size_t)size);
        if (dt == KILN_DTYPE_BOOL)
            for (size_t i = 0; i < size; i++) d[i] = d[i] != 0;
        return 0;
    }

    /* JSON "data" */
    if (!cJSON_IsArray(data)) return fail(err, errlen, 400, "input '%s': 'data' is not an array", name);
    if (dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16)
        return fail(err, errlen, 400,
                    "receiving %s data via JSON is not supported: send input '%s' in the binary data "
                    "format ('binary_data_size')", jd->valuestring, name);
    int64_t count = count_leaves(data, 1);
    if (count < 0)
        return fail(err, errlen, 400, "input '%s': 'data' nests arrays more than %d deep", name,
                    DATA_MAX_DEPTH);
    if (count != numel)
        return fail(err, errlen, 400,
                    "input '%s': 'data' holds %" PRId64 " elements but shape %s needs %" PRId64, name,
                    count, shape_str(sb, sizeof sb, 0, ndim, dims), numel);
    int rc = new_tensor(dt, ndim, dims, t_out, name, err, errlen);
    if (rc) return rc;
    int64_t k = 0;
    return fill_json(data, *t_out, &k, name, err, errlen);
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads "outputs" (an array, already checked) into r. */
static int parse_outputs(const cJSON *outs, serve_request *r, char *err, size_t errlen) {
    int n = cJSON_GetArraySize(outs);
    if (n == 0) return 0;
    if (!(r->outputs = calloc((size_t)n, sizeof *r->outputs))) return OOM(err, errlen);
    int i = 0;
    for (const cJSON *o = outs->child; o; o = o->next, i++) {
        serve_output_request *q = &r->outputs[i];
        if (!cJSON_IsObject(o)) return fail(err, errlen, 400, "outputs[%d] is not an object", i);
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (!cJSON_IsString(jn)) return fail(err, errlen, 400, "outputs[%d] has no 'name' string", i);
        size_t nl = strlen(jn->valuestring);
        if (!(q->name = malloc(nl + 1))) return OOM(err, errlen);
        memcpy(q->name, jn->valuestring, nl + 1);
        r->n_outputs = i + 1;
        q->binary = -1;
        const cJSON *jp = cJSON_GetObjectItemCaseSensitive(o, "parameters");
        if (!jp) continue;
        if (!cJSON_IsObject(jp))
            return fail(err, errlen, 400, "output '%s': 'parameters' is not an object", q->name);
        int rc = parse_shm_ref(jp, "output", q->name, &q->shm, err, errlen);
        if (rc) return rc;
        const cJSON *jb = cJSON_GetObjectItemCaseSensitive(jp, "binary_data");
        if (jb) {
            if (!cJSON_IsBool(jb))
                return fail(err, errlen, 400, "output '%s': 'binary_data' is not true or false", q->name);
            q->binary = cJSON_IsTrue(jb) ? 1 : 0;
        }
        const cJSON *jc = cJSON_GetObjectItemCaseSensitive(jp, "classification");
        uint64_t k;
        if (jc) {
            if (json_uint(jc, INT32_MAX, &k))
                return fail(err, errlen, 400,
                            "output '%s': 'classification' is not an integer in 0..%d", q->name, INT32_MAX);
            q->class_count = (int)k;
        }
    }
    /* a name given twice (sorted copy of the names: O(n log n) on any request) */
    char **names = malloc((size_t)n * sizeof *names);
    if (!names) return OOM(err, errlen);
    for (i = 0; i < n; i++) names[i] = r->outputs[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_name_ptr);
    for (i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) {
            int rc = fail(err, errlen, 400, "output '%s' is requested twice", names[i]);
            free(names);
            return rc;
        }
    free(names);
    return 0;
}

/* Reads the request-level "parameters". */
static int parse_request_params(const cJSON *jp, serve_request *r, char *err, size_t errlen) {
    if (!cJSON_IsObject(jp)) return fail(err, errlen, 400, "the request's 'parameters' is not an object");
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(jp, "binary_data_output");
    if (jb) {
        if (!cJSON_IsBool(jb))
            return fail(err, errlen, 400, "'binary_data_output' in 'parameters' is not true or false");
        r->binary_data_output = cJSON_IsTrue(jb);
    }
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(jp, "timeout");
    if (jt) {
        uint64_t t;
        if (json_uint(jt, INT64_MAX, &t))
            return fail(err, errlen, 400,
                        "'timeout' in 'parameters' is not a non-negative integer (microseconds)");
        r->timeout_us = (int64_t)t;
    }
    const cJSON *jq = cJSON_GetObjectItemCaseSensitive(jp, "priority");
    if (jq && json_uint(jq, UINT64_MAX, &r->priority))
        return fail(err, errlen, 400, "'priority' in 'parameters' is not a non-negative integer");
    return 0; /* others (sequence_id, custom ones) are accepted and ignored */
}

static int parse_root(const cJSON *root, bin_tail *bin, serve_request *r, char *err, size_t errlen) {
    if (!cJSON_IsObject(root)) return fail(err, errlen, 400, "the request is not a JSON object");
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (jid) {
        if (!cJSON_IsString(jid)) return fail(err, errlen, 400, "the request's 'id' is not a string");
        size_t n = strlen(jid->valuestring);
        if (!(r->id = malloc(n + 1))) return OOM(err, errlen);
        memcpy(r->id, jid->valuestring, n + 1);
    }
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    int rc;
    if (jp && (rc = parse_request_params(jp, r, err, errlen))) return rc;

    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsArray(ins)) return fail(err, errlen, 400, "the request has no 'inputs' array");
    int n = cJSON_GetArraySize(ins);
    r->input_names = calloc((size_t)(n > 0 ? n : 1), sizeof *r->input_names);
    r->inputs = calloc((size_t)(n > 0 ? n : 1), sizeof *r->inputs);
    if (!r->input_names || !r->inputs) return OOM(err, errlen);
    int i = 0;
    for (const cJSON *in = ins->child; in; in = in->next, i++) {
        r->n_inputs = i + 1; /* so that serve_request_free frees what is set */
        if ((rc = parse_input(in, i, n, bin, r, err, errlen))) return rc;
    }
    if (bin->left)
        return fail(err, errlen, 400,
                    "unexpected additional input data: %zu bytes follow the binary inputs", bin->left);

    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(root, "outputs");
    if (outs) {
        if (!cJSON_IsArray(outs)) return fail(err, errlen, 400, "the request's 'outputs' is not an array");
        if ((rc = parse_outputs(outs, r, err, errlen))) return rc;
    }
    return 0;
}

int serve_request_parse(const void *body, size_t len, size_t header_len, serve_request *out,
                        char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (err && errlen) err[0] = '\0';
    if (!body) len = header_len = 0;
    if (header_len > len)
        return fail(err, errlen, 400,
                    "Inference-Header-Content-Length is %zu but the body has only %zu bytes",
                    header_len, len);
    size_t hlen = header_len ? header_len : len;
    if (hlen == 0) return fail(err, errlen, 400, "the request body is empty: expected a JSON inference request");
    cJSON *root;
    int rc = parse_json(body, hlen, &root, err, errlen);
    if (rc) return rc;
    bin_tail bin = {.p = (const uint8_t *)body + hlen, .left = len - hlen, .have_header = header_len > 0};
    rc = parse_root(root, &bin, out, err, errlen);
    cJSON_Delete(root);
    if (rc) serve_request_free(out);
    return rc;
}

/* read() of an input's bytes, its message prefixed with the input's name. */
static int read_region(serve_shm_read_fn read, void *ctx, const serve_shm_ref *ref, void *dst,
                       const char *name, char *err, size_t errlen) {
    char why[512] = "";
    int rc = read(ctx, ref->region, ref->offset, ref->byte_size, dst, why, sizeof why);
    return rc ? fail(err, errlen, rc, "input '%s': %s", name, why) : 0;
}

int serve_request_read_shm(serve_request *r, serve_shm_read_fn read, void *ctx, char *err,
                           size_t errlen) {
    for (int i = 0; r->input_shm && i < r->n_inputs; i++) {
        const serve_shm_input *si = &r->input_shm[i];
        const char *name = r->input_names[i];
        if (!si->ref.region || r->inputs[i]) continue;
        /* the region bounds the size: check it before allocating for it */
        int rc = read_region(read, ctx, &si->ref, NULL, name, err, errlen);
        if (rc) return rc;
        if (si->dtype == KILN_DTYPE_STRING) { /* parsed from a copy: the client may write meanwhile */
            if (si->ref.byte_size > SIZE_MAX - 1) return OOM(err, errlen);
            uint8_t *tmp = malloc((size_t)si->ref.byte_size + 1);
            if (!tmp) return OOM(err, errlen);
            rc = read_region(read, ctx, &si->ref, tmp, name, err, errlen);
            if (!rc)
                rc = read_bytes_binary(tmp, (size_t)si->ref.byte_size, si->ndim, si->dims,
                                       numel_of(si->ndim, si->dims), &r->inputs[i], name, err, errlen);
            free(tmp);
        } else {
            rc = new_tensor(si->dtype, si->ndim, si->dims, &r->inputs[i], name, err, errlen);
            uint8_t *d = rc ? NULL : kiln_tensor_data(r->inputs[i]);
            if (!rc && si->ref.byte_size) rc = read_region(read, ctx, &si->ref, d, name, err, errlen);
            if (!rc && si->dtype == KILN_DTYPE_BOOL)
                for (uint64_t k = 0; k < si->ref.byte_size; k++) d[k] = d[k] != 0;
        }
        if (rc) { /* no half-read tensor stays behind */
            kiln_tensor_free(r->inputs[i]);
            r->inputs[i] = NULL;
            return rc;
        }
    }
    return 0;
}

void serve_request_free(serve_request *r) {
    if (!r) return;
    free(r->id);
    for (int i = 0; i < r->n_inputs; i++) {
        if (r->input_names) free(r->input_names[i]);
        if (r->inputs) kiln_tensor_free(r->inputs[i]);
    }
    free(r->input_names);
    free(r->inputs);
    for (int i = 0; r->input_shm && i < r->n_inputs; i++) free(r->input_shm[i].ref.region);
    free(r->input_shm);
    for (int i = 0; i < r->n_outputs; i++) {
        free(r->outputs[i].name);
        free(r->outputs[i].shm.region);
    }
    free(r->outputs);
    memset(r, 0, sizeof *r);
}

/* ======================================================================== */
/* Checking a request against the model                                     */
/* ======================================================================== */

/* "a, b, c" of the names of n ios into buf (truncated with "..."). */
static const char *io_names(const serve_io *ios, int n, char *buf, size_t size) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at < size; i++) {
        int w = snprintf(buf + at, size - at, "%s%s", i ? ", " : "", ios[i].name ? ios[i].name : "");
        if (w < 0) break;
        at += (size_t)w;
    }
    if (at >= size && size > 4) memcpy(buf + size - 4, "...", 4);
    if (n == 0) snprintf(buf, size, "none");
    return buf;
}

static int find_io(const serve_io *ios, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (ios[i].name && !strcmp(ios[i].name, name)) return i;
    return -1;
}

/* The model's shape for input io (config dims with the reshape applied, the
 * batch dimension first when batching) for request tensor t. Returns 0, or
 * 400 when the configured reshape does not fit. */
static int reshaped_dims(const serve_io *io, const kiln_tensor *t, int batched, int *ndim,
                         int64_t *dims, char *err, size_t errlen) {
    const int64_t *td = kiln_tensor_dims(t);
    int64_t var[KILN_MAX_DIMS];
    int nvar = 0, nd = 0, used = 0;
    char a[300], b[300];
    for (int d = 0; d < io->ndim; d++)
        if (io->dims[d] == -1) var[nvar++] = td[d + batched];
    if (io->reshape_ndim + batched > KILN_MAX_DIMS)
        return fail(err, errlen, 400, "input '%s': the configured reshape has too many dimensions",
                    io->name);
    if (batched) dims[nd++] = td[0];
    for (int d = 0; d < io->reshape_ndim; d++) {
        if (io->reshape[d] == -1) {
            if (used == nvar)
                return fail(err, errlen, 400,
                            "input '%s': the configured reshape %s has more variable dimensions than "
                            "dims %s", io->name,
                            shape_str(a, sizeof a, 0, io->reshape_ndim, io->reshape),
                            shape_str(b, sizeof b, 0, io->ndim, io->dims));
            dims[nd++] = var[used++];
        } else {
            dims[nd++] = io->reshape[d];
        }
    }
    int64_t want = numel_of(nd, dims);
    if (want != kiln_tensor_numel(t))
        return fail(err, errlen, 400,
                    "input '%s': shape %s cannot take the configured reshape %s (%" PRId64
                    " elements, the reshape has %" PRId64 ")", io->name,
                    shape_str(a, sizeof a, 0, kiln_tensor_ndim(t), td), shape_str(b, sizeof b, 0, nd, dims),
                    kiln_tensor_numel(t), want);
    *ndim = nd;
    return 0;
}

/* Replaces *t (contiguous, owned) by a tensor of the same elements in shape
 * dims. */
static kiln_status tensor_reshape_owned(kiln_tensor **t, int ndim, const int64_t *dims) {
    kiln_tensor *o = *t, *n = NULL;
    kiln_dtype dt = kiln_tensor_dtype(o);
    kiln_status st = kiln_tensor_create(dt, ndim, dims, &n);
    if (st != KILN_OK) return st;
    int64_t cnt = kiln_tensor_numel(o);
    if (dt == KILN_DTYPE_STRING) { /* move the strings */
        char **from = kiln_tensor_data(o), **to = kiln_tensor_data(n);
        for (int64_t i = 0; i < cnt; i++) {
            free(to[i]);
            to[i] = from[i];
            from[i] = NULL;
        }
    } else if (cnt > 0) {
        memcpy(kiln_tensor_data(n), kiln_tensor_data(o), (size_t)cnt * kiln_dtype_size(dt));
    }
    kiln_tensor_free(o);
    *t = n;
    return KILN_OK;
}

/* Shape and batch checks of request input i against config input io. */
static int check_shape(const serve_request *r, int i, const serve_io *io, int max_batch,
                       int *batch, int *batch_from, char *err, size_t errlen) {
    const kiln_tensor *t = r->inputs[i];
    const char *name = r->input_names[i];
    int batched = max_batch > 0, nd = kiln_tensor_ndim(t);
    const int64_t *td = kiln_tensor_dims(t);
    const char *bnote = batched ? " (the first dimension is the batch dimension)" : "";
    char got[300], want[300]; /* the shapes as text, made only for a message */
    int bad_dim = -1;             /* a dimension that differs, or -1 */
    for (int d = 0; nd == io->ndim + batched && d < io->ndim && bad_dim < 0; d++)
        if (io->dims[d] != -1 && io->dims[d] != td[d + batched]) bad_dim = d;
    if (nd != io->ndim + batched || bad_dim >= 0) {
        shape_str(got, sizeof got, 0, nd, td);
        shape_str(want, sizeof want, batched, io->ndim, io->dims);
    }
    if (nd != io->ndim + batched)
        return fail(err, errlen, 400,
                    "input '%s': shape %s does not match the model's %s: %d dimensions, expected %d%s",
                    name, got, want, nd, io->ndim + batched, bnote);
    if (batched) {
        if (td[0] < 1 || td[0] > max_batch)
            return fail(err, errlen, 400, "input '%s': batch size %" PRId64 " %s max_batch_size %d%s",
                        name, td[0], td[0] < 1 ? "is below 1; the range is 1 to" : "exceeds", max_batch,
                        bnote);
        if (*batch_from >= 0 && td[0] != *batch)
            return fail(err, errlen, 400,
                        "inputs disagree on the batch dimension: input '%s' has batch size %d, input "
                        "'%s' has %" PRId64 "%s", r->input_names[*batch_from], *batch, name, td[0], bnote);
        if (*batch_from < 0) {
            *batch = (int)td[0];
            *batch_from = i;
        }
    }
    if (bad_dim >= 0)
        return fail(err, errlen, 400,
                    "input '%s': shape %s does not match the model's %s: dimension %d is %" PRId64
                    ", expected %" PRId64, name, got, want, bad_dim + batched, td[bad_dim + batched],
                    io->dims[bad_dim]);
    return 0;
}

int serve_request_check(serve_request *r, const serve_model_config *cfg, int *batch, char *err,
                        size_t errlen) {
    char list[512];
    const char *model = cfg->name ? cfg->name : "";
    int batched = cfg->max_batch_size > 0, b = 1, b_from = -1, rc = 0;
    if (err && errlen) err[0] = '\0';
    *batch = 1;
    int *seen = calloc((size_t)(cfg->n_inputs > 0 ? cfg->n_inputs : 1), sizeof *seen);
    if (!seen) return OOM(err, errlen);
    for (int i = 0; i < r->n_inputs && !rc; i++) {
        const char *name = r->input_names[i];
        int c = find_io(cfg->inputs, cfg->n_inputs, name);
        if (c < 0) {
            rc = fail(err, errlen, 400, "input '%s' is not an input of model '%s' (its inputs: %s)", name,
                      model, io_names(cfg->inputs, cfg->n_inputs, list, sizeof list));
            break;
        }
        if (seen[c]++) {
            rc = fail(err, errlen, 400, "input '%s' is given twice", name);
            break;
        }
        const serve_io *io = &cfg->inputs[c];
        if (!r->inputs[i]) { /* in shared memory, not read (serve_request_read_shm) */
            rc = fail(err, errlen, 400, "input '%s': its shared memory data has not been read", name);
            break;
        }
        kiln_dtype dt = kiln_tensor_dtype(r->inputs[i]);
        if (dt != io->dtype) {
            rc = fail(err, errlen, 400, "input '%s': datatype %s does not match the model's %s", name,
                      wire_name(dt), wire_name(io->dtype));
            break;
        }
        rc = check_shape(r, i, io, cfg->max_batch_size, &b, &b_from, err, errlen);
    }
    for (int c = 0; c < cfg->n_inputs && !rc; c++)
        if (!seen[c] && !cfg->inputs[c].optional)
            rc = fail(err, errlen, 400, "input '%s' of model '%s' is missing (its inputs: %s)",
                      cfg->inputs[c].name, model, io_names(cfg->inputs, cfg->n_inputs, list, sizeof list));
    free(seen);
    for (int o = 0; o < r->n_outputs && !rc; o++) {
        const serve_output_request *q = &r->outputs[o];
        int c = find_io(cfg->outputs, cfg->n_outputs, q->name);
        kiln_dtype dt = c >= 0 ? cfg->outputs[c].dtype : KILN_DTYPE_UNDEFINED;
        int json = !q->shm.region && (q->binary == 0 || (q->binary < 0 && !r->binary_data_output));
        if (c < 0)
            rc = fail(err, errlen, 400, "output '%s' is not an output of model '%s' (its outputs: %s)",
                      q->name, model, io_names(cfg->outputs, cfg->n_outputs, list, sizeof list));
        else if (q->class_count > 0 && (dt == KILN_DTYPE_STRING || dt == KILN_DTYPE_BOOL))
            rc = fail(err, errlen, 400,
                      "output '%s': classification needs a numeric output; its datatype is %s", q->name,
                      wire_name(dt));
        else if (q->class_count > 0 && q->shm.region)
            rc = fail(err, errlen, 400,
                      "output '%s': classification results are sent in the response, not to shared "
                      "memory region '%s'", q->name, q->shm.region);
        else if (json && q->class_count <= 0 && (dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16))
            rc = half_json_refusal(wire_name(dt), q->name, err, errlen);
    }
    /* no outputs named: all of them, in JSON unless binary_data_output */
    for (int c = 0; c < cfg->n_outputs && !rc && !r->n_outputs && !r->binary_data_output; c++)
        if (cfg->outputs[c].dtype == KILN_DTYPE_F16 || cfg->outputs[c].dtype == KILN_DTYPE_BF16)
            rc = half_json_refusal(wire_name(cfg->outputs[c].dtype), cfg->outputs[c].name, err, errlen);
    if (rc) return rc;
    /* everything fits: apply the configured reshapes */
    for (int i = 0; i < r->n_inputs; i++) {
        const serve_io *io = &cfg->inputs[find_io(cfg->inputs, cfg->n_inputs, r->input_names[i])];
        if (!io->has_reshape) continue;
        int nd = 0;
        int64_t dims[KILN_MAX_DIMS];
        if ((rc = reshaped_dims(io, r->inputs[i], batched, &nd, dims, err, errlen))) return rc;
        kiln_status st = tensor_reshape_owned(&r->inputs[i], nd, dims);
        if (st == KILN_E_NOMEM) return OOM(err, errlen);
        if (st != KILN_OK) return fail(err, errlen, 400, "input '%s': %s", io->name, kiln_last_error());
    }
    *batch = batched ? b : 1;
    return 0;
}

/* ======================================================================== */
/* Responses                                                                */
/* ======================================================================== */

/* s (n bytes) as a JSON string. Bytes >= 0x80 pass as they are (as Triton
 * does: BYTES that are not UTF-8 belong in binary form). */
static void sb_json_str(kiln__strbuf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (kiln__sb_reserve(b, n + 2)) return;
    b->p[b->n++] = '"';
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        kiln__sb_put(b, s + run, i - run);
        run = i + 1;
        char e[7] = {'\\', 0};
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: memcpy(e + 1, "u00", 3), e[4] = hex[c >> 4], e[5] = hex[c & 15]; break;
        }
        kiln__sb_str(b, e);
    }
    kiln__sb_put(b, s + run, n - run);
    kiln__sb_put(b, "\"", 1);
}

/* A float or double that reads back the same (prec 9 or 17 significant
 * digits), always with a '.' or an exponent so that it reads as a float. */
static void sb_float(kiln__strbuf *b, double v, int prec) {
    char t[48];
    if (isnan(v)) {
        kiln__sb_str(b, "NaN");
        return;
    }
    if (isinf(v)) {
        kiln__sb_str(b, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    int w = snprintf(t, sizeof t - 2, "%.*g", prec, v);
    if (w < 0 || (size_t)w >= sizeof t - 2) return;
    if (!strpbrk(t, ".e")) memcpy(t + w, ".0", 3), w += 2;
    kiln__sb_put(b, t, (size_t)w);
}

/* One output, as it will be sent. */
typedef struct out_prep {
    const serve_response_output *o;
    kiln_tensor *copy;            /* contiguous copy of o->t when it was strided; owned */
    const kiln_tensor *t;         /* contiguous */
    const char *dtype;            /* wire name */
    int ndim;
    int64_t dims[KILN_MAX_DIMS];  /* the shape sent */
    kiln__strbuf cls;                     /* classification: length-prefixed strings; owned */
    int64_t n_cls;
    size_t bin_size;              /* binary size of the data */
} out_prep;

/* A classification candidate. */
typedef struct cls_entry {
    union {
        double f;
        int64_t i;
        uint64_t u;
    } v;
    int64_t idx;
} cls_entry;

/* Descending by value, NaN last, ties to the lower index. */
static int cls_cmp_f(const void *a, const void *b) {
    const cls_entry *x = a, *y = b;
    int xn = isnan(x->v.f), yn = isnan(y->v.f);
    if (xn != yn) return xn - yn;
    if (!xn && x->v.f != y->v.f) return x->v.f > y->v.f ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}
static int cls_cmp_i(const void *a, const void *b) {
    const cls_entry *x = a, *y = b;
    if (x->v.i != y->v.i) return x->v.i > y->v.i ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}
static int cls_cmp_u(const void *a, const void *b) {
    const cls_entry *x = a, *y = b;
    if (x->v.u != y->v.u) return x->v.u > y->v.u ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* The comparison that ranks values of dtype dt (NULL: not numeric). */
static int (*cls_cmp_for(kiln_dtype dt))(const void *, const void *) {
    switch (dt) {
    case KILN_DTYPE_F32: case KILN_DTYPE_F64: case KILN_DTYPE_F16: case KILN_DTYPE_BF16:
        return cls_cmp_f;
    case KILN_DTYPE_I8: case KILN_DTYPE_I16: case KILN_DTYPE_I32: case KILN_DTYPE_I64:
        return cls_cmp_i;
    case KILN_DTYPE_U8: case KILN_DTYPE_U16: case KILN_DTYPE_U32: case KILN_DTYPE_U64:
        return cls_cmp_u;
    default:
        return NULL;
    }
}

/* Element k of data (a numeric dtype dt) into e. */
static void cls_load(kiln_dtype dt, const void *data, int64_t k, cls_entry *e) {
    switch (dt) {
    case KILN_DTYPE_F32: e->v.f = ((const float *)data)[k]; break;
    case KILN_DTYPE_F64: e->v.f = ((const double *)data)[k]; break;
    case KILN_DTYPE_F16: e->v.f = kiln_f16_to_f32(((const uint16_t *)data)[k]); break;
    case KILN_DTYPE_BF16: e->v.f = kiln_bf16_to_f32(((const uint16_t *)data)[k]); break;
    case KILN_DTYPE_I8: e->v.i = ((const int8_t *)data)[k]; break;
    case KILN_DTYPE_I16: e->v.i = ((const int16_t *)data)[k]; break;
    case KILN_DTYPE_I32: e->v.i = ((const int32_t *)data)[k]; break;
    case KILN_DTYPE_I64: e->v.i = ((const int64_t *)data)[k]; break;
    case KILN_DTYPE_U8: e->v.u = ((const uint8_t *)data)[k]; break;
    case KILN_DTYPE_U16: e->v.u = ((const uint16_t *)data)[k]; break;
    case KILN_DTYPE_U32: e->v.u = ((const uint32_t *)data)[k]; break;
    case KILN_DTYPE_U64: e->v.u = ((const uint64_t *)data)[k]; break;
    default: e->v.u = 0; break;
    }
}

/* The top-K strings of p->t into p->cls (serialized as BYTES: 4-byte length
 * and text each) and the shape sent into p->dims. Returns 0, or 400 / 500. */
static int classify(out_prep *p, char *err, size_t errlen) {
    const serve_response_output *o = p->o;
    kiln_dtype dt = kiln_tensor_dtype(p->t);
    const void *data = kiln_tensor_data(p->t);
    int (*cmp)(const void *, const void *) = cls_cmp_for(dt);
    if (!cmp)
        return fail(err, errlen, 400,
                    "output '%s': classification needs a numeric output; its datatype is %s",
                    o->name ? o->name : "", p->dtype);
    int nd = kiln_tensor_ndim(p->t);
    const int64_t *td = kiln_tensor_dims(p->t);
    int batched = o->batched && nd > 0;
    int64_t items = batched ? td[0] : 1;
    int64_t per = batched ? numel_of(nd - 1, td + 1) : kiln_tensor_numel(p->t);
    int64_t k = o->class_count < per ? o->class_count : per;
    p->ndim = 0;
    if (batched) p->dims[p->ndim++] = items;
    p->dims[p->ndim++] = k;
    p->dtype = "BYTES";
    p->n_cls = items * k;
    if (k == 0 || items == 0) return 0;
    cls_entry *e = malloc((size_t)per * sizeof *e);
    if (!e) return OOM(err, errlen);
    for (int64_t item = 0; item < items; item++) {
        for (int64_t j = 0; j < per; j++) {
            cls_load(dt, data, item * per + j, &e[j]);
            e[j].idx = j;
        }
        qsort(e, (size_t)per, sizeof *e, cmp);
        for (int64_t j = 0; j < k; j++) {
            if (kiln__sb_reserve(&p->cls, 4)) break;
            size_t at = p->cls.n;
            p->cls.n += 4;
            /* std::to_string: "%f" for floating point, decimal integers */
            if (cmp == cls_cmp_f) kiln__sb_printf(&p->cls, "%f:%" PRId64, e[j].v.f, e[j].idx);
            else if (cmp == cls_cmp_i) kiln__sb_printf(&p->cls, "%" PRId64 ":%" PRId64, e[j].v.i, e[j].idx);
            else kiln__sb_printf(&p->cls, "%" PRIu64 ":%" PRId64, e[j].v.u, e[j].idx);
            const char *label = (o->labels && e[j].idx < o->n_labels) ? o->labels[e[j].idx] : NULL;
            if (label && *label) {
                kiln__sb_put(&p->cls, ":", 1);
                kiln__sb_str(&p->cls, label);
            }
            if (p->cls.oom) break;
            uint32_t l = (uint32_t)(p->cls.n - at - 4);
            memcpy(p->cls.p + at, &l, 4);
        }
    }
    free(e);
    if (p->cls.oom) return OOM(err, errlen);
    p->bin_size = p->cls.n;
    return 0;
}

/* Checks output o and works out what will be sent. */
static int prepare_output(const serve_response_output *o, out_prep *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    p->o = o;
    const char *name = o->name ? o->name : "";
    if (!o->t || kiln_tensor_is_sequence(o->t) || kiln_tensor_is_optional(o->t))
        return fail(err, errlen, 500, "output '%s' is not a tensor", name);
    kiln_dtype dt = kiln_tensor_dtype(o->t);
    if (!(p->dtype = serve_dtype_wire_name(dt)))
        return fail(err, errlen, 500, "output '%s' has datatype %s, which the protocol cannot carry", name,
                    kiln_dtype_name(dt));
    p->t = o->t;
    if (!kiln_tensor_is_contiguous(o->t)) {
        kiln_status st = kiln_tensor_copy(o->t, KILN_DTYPE_UNDEFINED, &p->copy);
        if (st != KILN_OK) return fail(err, errlen, 500, "output '%s': %s", name, kiln_last_error());
        p->t = p->copy;
    }
    if (o->class_count > 0) return classify(p, err, errlen);
    if (!o->binary && !o->shm_region && (dt == KILN_DTYPE_F16 || dt == KILN_DTYPE_BF16))
        return half_json_refusal(p->dtype, name, err, errlen);
    p->ndim = kiln_tensor_ndim(p->t);
    memcpy(p->dims, kiln_tensor_dims(p->t), (size_t)p->ndim * sizeof *p->dims);
    int64_t n = kiln_tensor_numel(p->t);
    if (dt == KILN_DTYPE_STRING) {
        char *const *s = kiln_tensor_data(p->t);
        for (int64_t i = 0; i < n; i++) {
            size_t l = strlen(s[i] ? s[i] : "");
            if (l > UINT32_MAX)
                return fail(err, errlen, 500, "output '%s': element %" PRId64 " is longer than 4 GiB", name, i);
            p->bin_size += 4 + l;
        }
    } else {
        p->bin_size = (size_t)n * kiln_dtype_size(dt);
    }
    return 0;
}

/* The elements of p as a JSON array. */
static void write_json_data(kiln__strbuf *b, const out_prep *p) {
    kiln__sb_put(b, "[", 1);
    if (p->o->class_count > 0) {
        size_t off = 0;
        for (int64_t i = 0; i < p->n_cls && !b->oom; i++) {
            uint32_t l;
            memcpy(&l, p->cls.p + off, 4);
            if (i) kiln__sb_put(b, ",", 1);
            sb_json_str(b, p->cls.p + off + 4, l);
            off += 4 + (size_t)l;
        }
        kiln__sb_put(b, "]", 1);
        return;
    }
    kiln_dtype dt = kiln_tensor_dtype(p->t);
    const void *d = kiln_tensor_data(p->t);
    int64_t n = kiln_tensor_numel(p->t);
    for (int64_t i = 0; i < n && !b->oom; i++) {
        if (i) kiln__sb_put(b, ",", 1);
        switch (dt) {
        case KILN_DTYPE_BOOL: kiln__sb_str(b, ((const uint8_t *)d)[i] ? "true" : "false"); break;
        case KILN_DTYPE_I8: kiln__sb_printf(b, "%d", ((const int8_t *)d)[i]); break;
        case KILN_DTYPE_I16: kiln__sb_printf(b, "%d", ((const int16_t *)d)[i]); break;
        case KILN_DTYPE_I32: kiln__sb_printf(b, "%" PRId32, ((const int32_t *)d)[i]); break;
        case KILN_DTYPE_I64: kiln__sb_printf(b, "%" PRId64, ((const int64_t *)d)[i]); break;
        case KILN_DTYPE_U8: kiln__sb_printf(b, "%u", ((const uint8_t *)d)[i]); break;
        case KILN_DTYPE_U16: kiln__sb_printf(b, "%u", ((const uint16_t *)d)[i]); break;
        case KILN_DTYPE_U32: kiln__sb_printf(b, "%" PRIu32, ((const uint32_t *)d)[i]); break;
        case KILN_DTYPE_U64: kiln__sb_printf(b, "%" PRIu64, ((const uint64_t *)d)[i]); break;
        case KILN_DTYPE_F32: sb_float(b, ((const float *)d)[i], 9); break;
        case KILN_DTYPE_F64: sb_float(b, ((const double *)d)[i], 17); break;
        case KILN_DTYPE_STRING: {
            const char *s = ((char *const *)d)[i];
            s = s ? s : "";
            sb_json_str(b, s, strlen(s));
            break;
        }
        default: kiln__sb_str(b, "null"); break; /* FP16/BF16 are refused before */
        }
    }
    kiln__sb_put(b, "]", 1);
}

/* The binary form of p's data. */
static void write_binary(kiln__strbuf *b, const out_prep *p) {
    if (p->o->class_count > 0) {
        kiln__sb_put(b, p->cls.p, p->cls.n);
        return;
    }
    kiln_dtype dt = kiln_tensor_dtype(p->t);
    const void *d = kiln_tensor_data(p->t);
    int64_t n = kiln_tensor_numel(p->t);
    if (dt == KILN_DTYPE_STRING) {
        for (int64_t i = 0; i < n && !b->oom; i++) {
            const char *s = ((char *const *)d)[i];
            s = s ? s : "";
            uint32_t l = (uint32_t)strlen(s);
            kiln__sb_put(b, &l, 4);
            kiln__sb_put(b, s, l);
        }
    } else if (dt == KILN_DTYPE_BOOL) {
        if (kiln__sb_reserve(b, (size_t)n)) return;
        for (int64_t i = 0; i < n; i++) b->p[b->n + (size_t)i] = ((const uint8_t *)d)[i] != 0;
        b->n += (size_t)n;
        b->p[b->n] = '\0';
    } else {
        kiln__sb_put(b, d, p->bin_size);
    }
}

int serve_response_build(const char *model, const char *version, const char *id, int n,
                         const serve_response_output *outs, char **body, size_t *len,
                         size_t *header_len, char *err, size_t errlen) {
    *body = NULL;
    *len = 0;
    *header_len = 0;
    if (err && errlen) err[0] = '\0';
    out_prep *prep = calloc((size_t)(n > 0 ? n : 1), sizeof *prep);
    if (!prep) return OOM(err, errlen);
    int rc = 0, any_binary = 0;
    size_t bin_total = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = prepare_output(&outs[i], &prep[i], err, errlen);
        if (!rc && outs[i].binary && !outs[i].shm_region) {
            any_binary = 1;
            bin_total += prep[i].bin_size;
        }
    }
    kiln__strbuf b = {0};
    if (!rc) {
        kiln__sb_reserve(&b, 256 + bin_total);
        kiln__sb_str(&b, "{\"model_name\":");
        sb_json_str(&b, model ? model : "", model ? strlen(model) : 0);
        if (version) {
            kiln__sb_str(&b, ",\"model_version\":");
            sb_json_str(&b, version, strlen(version));
        }
        if (id && *id) {
            kiln__sb_str(&b, ",\"id\":");
            sb_json_str(&b, id, strlen(id));
        }
        kiln__sb_str(&b, ",\"outputs\":[");
        for (int i = 0; i < n && !b.oom; i++) {
            const out_prep *p = &prep[i];
            kiln__sb_str(&b, i ? ",{\"name\":" : "{\"name\":");
            sb_json_str(&b, outs[i].name ? outs[i].name : "", outs[i].name ? strlen(outs[i].name) : 0);
            kiln__sb_str(&b, ",\"datatype\":\"");
            kiln__sb_str(&b, p->dtype);
            kiln__sb_str(&b, "\",\"shape\":[");
            for (int d = 0; d < p->ndim; d++) {
                if (d) kiln__sb_put(&b, ",", 1);
                kiln__sb_printf(&b, "%" PRId64, p->dims[d]);
            }
            kiln__sb_str(&b, "],");
            if (outs[i].shm_region) {
                kiln__sb_str(&b, "\"parameters\":{\"shared_memory_region\":");
                sb_json_str(&b, outs[i].shm_region, strlen(outs[i].shm_region));
                kiln__sb_printf(&b, ",\"shared_memory_byte_size\":%zu}}", outs[i].shm_bytes);
            } else if (outs[i].binary) {
                kiln__sb_printf(&b, "\"parameters\":{\"binary_data_size\":%zu}}", p->bin_size);
            } else {
                kiln__sb_str(&b, "\"data\":");
                write_json_data(&b, p);
                kiln__sb_str(&b, "}");
            }
        }
        kiln__sb_str(&b, "]}");
        size_t json_len = b.n;
        for (int i = 0; i < n && !b.oom; i++)
            if (outs[i].binary && !outs[i].shm_region) write_binary(&b, &prep[i]);
        if (b.oom) {
            rc = OOM(err, errlen);
        } else {
            *body = b.p;
            *len = b.n;
            *header_len = any_binary ? json_len : 0;
            b.p = NULL;
        }
    }
    free(b.p);
    for (int i = 0; i < n; i++) {
        kiln_tensor_free(prep[i].copy);
        free(prep[i].cls.p);
    }
    free(prep);
    return rc;
}

int serve_output_bytes(const serve_response_output *o, const void **data, size_t *n, void **owned,
                       char *err, size_t errlen) {
    *data = NULL;
    *n = 0;
    *owned = NULL;
    out_prep p;
    int rc = prepare_output(o, &p, err, errlen);
    kiln_dtype dt = rc ? KILN_DTYPE_UNDEFINED : kiln_tensor_dtype(p.t);
    if (!rc && !p.copy && o->class_count <= 0 && dt != KILN_DTYPE_STRING && dt != KILN_DTYPE_BOOL) {
        *data = kiln_tensor_data(p.t); /* the tensor's own bytes: nothing to build */
        *n = p.bin_size;
    } else if (!rc) {
        kiln__strbuf b = {0};
        write_binary(&b, &p);
        if (b.oom) {
            free(b.p);
            rc = OOM(err, errlen);
        } else {
            *data = *owned = b.p;
            *n = b.n;
        }
    }
    kiln_tensor_free(p.copy);
    free(p.cls.p);
    return rc;
}

char *serve_error_body(const char *msg, size_t *len) {
    kiln__strbuf b = {0};
    msg = msg ? msg : "";
    kiln__sb_str(&b, "{\"error\":");
    sb_json_str(&b, msg, strlen(msg));
    kiln__sb_str(&b, "}");
    if (b.oom) {
        free(b.p);
        *len = 0;
        return NULL;
    }
    *len = b.n;
    return b.p;
}
