/* src/serve/model_config.c: Triton's ModelConfig (config.pbtxt) for kiln serve.
 *
 * serve_config_parse walks the pbtxt tree (pbtxt.h) against the fields of
 * Triton's model_config.proto: each message has a table of its field names;
 * a name outside the table is an unknown field (KILN_E_FORMAT), a known field
 * kiln does not implement is refused (KILN_E_UNSUPPORTED) unless it holds its
 * harmless default, and every accepted field lands in serve_model_config.
 * serve_config_complete (model_config_complete.c) then checks the
 * configuration against the graph and fills what is missing as Triton's
 * onnxruntime backend does; serve_config_to_json (model_config_json.c) prints
 * it as Triton's config endpoint does.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/model_config.h"
#include "serve/pbtxt.h"

/* ---- data types ------------------------------------------------------------- */

/* Indexed by Triton's DataType numbers (TYPE_INVALID = 0 ... TYPE_BF16 = 14). */
static const struct {
    const char *config, *wire;
    kiln_dtype dt;
} dtypes[] = {
    {"TYPE_INVALID", NULL, KILN_DTYPE_UNDEFINED}, {"TYPE_BOOL", "BOOL", KILN_DTYPE_BOOL},
    {"TYPE_UINT8", "UINT8", KILN_DTYPE_U8},       {"TYPE_UINT16", "UINT16", KILN_DTYPE_U16},
    {"TYPE_UINT32", "UINT32", KILN_DTYPE_U32},    {"TYPE_UINT64", "UINT64", KILN_DTYPE_U64},
    {"TYPE_INT8", "INT8", KILN_DTYPE_I8},         {"TYPE_INT16", "INT16", KILN_DTYPE_I16},
    {"TYPE_INT32", "INT32", KILN_DTYPE_I32},      {"TYPE_INT64", "INT64", KILN_DTYPE_I64},
    {"TYPE_FP16", "FP16", KILN_DTYPE_F16},        {"TYPE_FP32", "FP32", KILN_DTYPE_F32},
    {"TYPE_FP64", "FP64", KILN_DTYPE_F64},        {"TYPE_STRING", "BYTES", KILN_DTYPE_STRING},
    {"TYPE_BF16", "BF16", KILN_DTYPE_BF16},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof *dtypes))

kiln_dtype serve_dtype_from_config(const char *name) {
    for (int i = 1; name && i < N_DTYPES; i++)
        if (!strcmp(name, dtypes[i].config)) return dtypes[i].dt;
    return KILN_DTYPE_UNDEFINED;
}

const char *serve_dtype_config_name(kiln_dtype dt) {
    for (int i = 1; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt) return dtypes[i].config;
    return NULL;
}

kiln_dtype serve_dtype_from_wire(const char *name) {
    for (int i = 1; name && i < N_DTYPES; i++)
        if (!strcmp(name, dtypes[i].wire)) return dtypes[i].dt;
    return KILN_DTYPE_UNDEFINED;
}

const char *serve_dtype_wire_name(kiln_dtype dt) {
    for (int i = 1; i < N_DTYPES; i++)
        if (dtypes[i].dt == dt) return dtypes[i].wire;
    return NULL;
}

/* ---- init / free -------------------------------------------------------------- */

static const char *const kind_names[] = {"KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"};

void serve_config_init(serve_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->instance_count = 1;
    cfg->instance_kind = kind_names[2];
    cfg->version_policy = SERVE_VERSIONS_LATEST;
    cfg->latest_num_versions = 1;
    cfg->precision = KILN_PRECISION_FP32;
}

static void io_free(serve_io *io) {
    free(io->name);
    free(io->label_filename);
}

const serve_queue_policy *serve_config_queue_policy(const serve_model_config *cfg, int64_t level) {
    for (int i = 0; i < cfg->n_level_policies; i++)
        if (cfg->policy_levels[i] == level) return &cfg->level_policies[i];
    return &cfg->queue_policy;
}

void serve_config_free(serve_model_config *cfg) {
    if (!cfg) return;
    free(cfg->name);
    free(cfg->platform);
    free(cfg->backend);
    free(cfg->default_model_filename);
    for (int i = 0; i < cfg->n_inputs; i++) io_free(&cfg->inputs[i]);
    for (int i = 0; i < cfg->n_outputs; i++) io_free(&cfg->outputs[i]);
    free(cfg->inputs);
    free(cfg->outputs);
    free(cfg->preferred_batch_sizes);
    free(cfg->policy_levels);
    free(cfg->level_policies);
    for (int i = 0; i < cfg->n_instance_groups; i++) {
        free(cfg->instance_groups[i].name);
        free(cfg->instance_groups[i].gpus);
    }
    free(cfg->instance_groups);
    free(cfg->versions);
    for (int i = 0; i < cfg->n_parameters; i++) {
        free(cfg->param_keys[i]);
        free(cfg->param_values[i]);
    }
    free(cfg->param_keys);
    free(cfg->param_values);
    for (int w = 0; w < cfg->n_warmup; w++) {
        serve_warmup *wu = &cfg->warmup[w];
        free(wu->name);
        for (int i = 0; i < wu->n_inputs; i++) {
            free(wu->inputs[i].name);
            free(wu->inputs[i].input_data_file);
        }
        free(wu->inputs);
    }
    free(cfg->warmup);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- parse context and errors ------------------------------------------------------ */

typedef struct pctx {
    const char *path;
    char *err;
    size_t errlen;
    serve_model_config *cfg;
    int json;            /* the tree came from JSON (serve_config_parse_tree) */
} pctx;

kiln_status serve_config_error(char *err, size_t errlen, kiln_status st, const char *prefix,
                               const char *fmt, va_list ap) {
    if (!err || !errlen) return st;
    int n = snprintf(err, errlen, "%s", prefix);
    if (n >= 0 && (size_t)n < errlen) vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return st;
}

/* "PATH:LINE:COL: " (from JSON: "PATH: ") + message into c->err; returns st. */
static kiln_status at(pctx *c, int line, int col, kiln_status st, const char *fmt, ...) {
    char prefix[1024];
    if (c->json) snprintf(prefix, sizeof prefix, "%s: ", c->path);
    else snprintf(prefix, sizeof prefix, "%s:%d:%d: ", c->path, line, col);
    va_list ap;
    va_start(ap, fmt);
    serve_config_error(c->err, c->errlen, st, prefix, fmt, ap);
    va_end(ap);
    return st;
}
#define AT_FIELD(c, n, st, ...) at((c), (n)->line, (n)->col, (st), __VA_ARGS__)
#define AT_VALUE(c, n, st, ...) at((c), (n)->vline, (n)->vcol, (st), __VA_ARGS__)

static kiln_status oom(pctx *c) {
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "%s: out of memory", c->path);
    return KILN_E_NOMEM;
}

/* A field kiln does not implement. */
static kiln_status unsupported(pctx *c, const pbtxt_node *n, const char *where, const char *why) {
    return AT_FIELD(c, n, KILN_E_UNSUPPORTED, "%s: field '%s' is not supported (%s)", where,
                    n->name, why);
}

/* Looks child n up in the field table names[0..count) of message `type`
 * (Triton's message name, for the message). Singular fields (rep[i] == 0) may
 * appear once: seen[] counts. */
static kiln_status field_index(pctx *c, const pbtxt_node *n, const char *where, const char *type,
                               const char *const *names, const char *rep, int count,
                               unsigned char *seen, int *idx) {
    for (int i = 0; i < count; i++)
        if (!strcmp(n->name, names[i])) {
            if (!rep[i] && seen[i])
                return AT_FIELD(c, n, KILN_E_FORMAT, "%s: field '%s' is given twice (it is not repeated)",
                                where, n->name);
            seen[i] = 1;
            *idx = i;
            return KILN_OK;
        }
    return AT_FIELD(c, n, KILN_E_FORMAT, "%s: unknown field '%s' (Triton's %s has no such field)", where,
                    n->name, type);
}

/* ---- scalar values -------------------------------------------------------------------- */

static kiln_status want_scalar(pctx *c, const pbtxt_node *n, const char *where, const char *what) {
    if (n->type == PBTXT_MESSAGE)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes %s, not a message", where, n->name, what);
    return KILN_OK;
}

static kiln_status want_message(pctx *c, const pbtxt_node *n, const char *where) {
    if (n->type != PBTXT_MESSAGE)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' is a message: write %s { ... }", where, n->name,
                        n->name);
    return KILN_OK;
}

/* 1 if s is well-formed UTF-8 (protobuf's rule for string fields; JSON needs it). */
static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        int more;
        unsigned min, cp;
        if (c < 0x80) continue;
        if ((c & 0xE0) == 0xC0) more = 1, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) more = 2, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) more = 3, min = 0x10000, cp = c & 0x07;
        else return 0;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (*p & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    }
    return 1;
}

/* A string field; *out is a new copy (caller frees). */
static kiln_status get_str(pctx *c, const pbtxt_node *n, const char *where, char **out) {
    kiln_status st = want_scalar(c, n, where, "a string");
    if (st) return st;
    if (n->type != PBTXT_STRING)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes a quoted string, found %s '%s'", where,
                        n->name, pbtxt_type_name(n->type), n->text);
    if (strlen(n->text) != n->len)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' holds a NUL byte", where, n->name);
    if (!valid_utf8(n->text))
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' is not valid UTF-8", where, n->name);
    if (!(*out = strdup(n->text))) return oom(c);
    return KILN_OK;
}

/* An integer field in [lo, hi] (decimal, 0x hex or 0 octal, as protobuf reads them). */
static kiln_status get_int(pctx *c, const pbtxt_node *n, const char *where, int64_t lo, int64_t hi,
                           int64_t *out) {
    kiln_status st = want_scalar(c, n, where, "an integer");
    if (st) return st;
    const char *s = n->text;
    /* JSON writes 64-bit integers as strings ("100"), as protobuf's JSON mapping does */
    int number = n->type == PBTXT_NUMBER || (c->json && n->type == PBTXT_STRING);
    if (!number || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes an integer, found %s '%s'", where,
                        n->name, pbtxt_type_name(n->type), s);
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 0);
    if (*end || end == s)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes an integer, found '%s'", where, n->name, s);
    if (errno == ERANGE || v < lo || v > hi)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' is %s, outside [%lld, %lld]", where, n->name, s,
                        (long long)lo, (long long)hi);
    *out = v;
    return KILN_OK;
}

static kiln_status get_bool(pctx *c, const pbtxt_node *n, const char *where, int *out) {
    kiln_status st = want_scalar(c, n, where, "true or false");
    if (st) return st;
    const char *s = n->text;
    if (n->type == PBTXT_IDENT && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "t"))) *out = 1;
    else if (n->type == PBTXT_IDENT && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "f"))) *out = 0;
    else if (n->type == PBTXT_NUMBER && !strcmp(s, "1")) *out = 1;
    else if (n->type == PBTXT_NUMBER && !strcmp(s, "0")) *out = 0;
    else
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes true or false, found '%s'", where, n->name, s);
    return KILN_OK;
}

/* An enum field: names[i] is the name of value i (NULL: none). Accepts the
 * name or the number, as protobuf does. */
static kiln_status get_enum(pctx *c, const pbtxt_node *n, const char *where, const char *const *names,
                            int count, int *out) {
    kiln_status st = want_scalar(c, n, where, "an enum value");
    if (st) return st;
    if (n->type == PBTXT_STRING && !c->json) /* JSON names enum values as strings */
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s' takes an enum name without quotes, found \"%s\"",
                        where, n->name, n->text);
    if (n->type == PBTXT_IDENT || n->type == PBTXT_STRING) {
        for (int i = 0; i < count; i++)
            if (names[i] && !strcmp(n->text, names[i])) {
                *out = i;
                return KILN_OK;
            }
    } else if (n->type == PBTXT_NUMBER) {
        char *end;
        errno = 0;
        long v = strtol(n->text, &end, 10);
        if (!*end && !errno && v >= 0 && v < count && names[v]) {
            *out = (int)v;
            return KILN_OK;
        }
    }
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; i < count && used < sizeof list; i++)
        if (names[i]) {
            int k = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", names[i]);
            if (k < 0) break;
            used += (size_t)k;
        }
    return AT_VALUE(c, n, KILN_E_FORMAT, "%s: '%s' is not a value of field '%s' (expected one of %s)", where,
                    n->text, n->name, list);
}

/* A data_type field (TYPE_INVALID reads as not given). */
static kiln_status get_dtype(pctx *c, const pbtxt_node *n, const char *where, kiln_dtype *out) {
    const char *names[N_DTYPES];
    int e;
    for (int i = 0; i < N_DTYPES; i++) names[i] = dtypes[i].config;
    kiln_status st = get_enum(c, n, where, names, N_DTYPES, &e);
    if (st) return st;
    *out = dtypes[e].dt;
    return KILN_OK;
}

/* A relative path that stays inside its directory: no leading '/', no '..'. */
static int safe_relative_path(const char *s) {
    if (!s[0] || s[0] == '/') return 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!e) break;
        p = e + 1;
    }
    return 1;
}

static kiln_status get_file_name(pctx *c, const pbtxt_node *n, const char *where, char **out) {
    kiln_status st = get_str(c, n, where, out);
    if (st) return st;
    if ((*out)[0] && !safe_relative_path(*out)) {
        free(*out);
        *out = NULL;
        return AT_VALUE(c, n, KILN_E_FORMAT,
                        "%s: field '%s' must be a path relative to its directory (no leading '/', no '..')",
                        where, n->name);
    }
    if (!(*out)[0]) { /* "" is the proto default: not given */
        free(*out);
        *out = NULL;
    }
    return KILN_OK;
}

/* A repeated int64 entry of dims-like fields: appended to dims[*nd]. */
static kiln_status add_dim(pctx *c, const pbtxt_node *n, const char *where, int64_t lo, int *nd,
                           int64_t *dims) {
    int64_t v;
    kiln_status st = get_int(c, n, where, lo == -1 ? INT64_MIN : lo, INT64_MAX, &v);
    if (st) return st;
    if (lo == -1 && v == 0)
        return AT_VALUE(c, n, KILN_E_FORMAT,
                        "%s: field '%s': a dimension must be >= 1, or -1 for any size (Triton does not "
                        "allow 0)", where, n->name);
    if (lo == -1 && v < -1)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s': %lld is not a dimension (>= 1, or -1 for any size)",
                        where, n->name, (long long)v);
    if (*nd >= KILN_MAX_DIMS)
        return AT_VALUE(c, n, KILN_E_FORMAT, "%s: field '%s': more than %d dimensions", where, n->name,
                        KILN_MAX_DIMS);
    dims[(*nd)++] = v;
    return KILN_OK;
}

/* Grows *arr (of *n items of size sz) by one zeroed item; returns it or NULL. */
void *serve_config_grow(void **arr, int *n, size_t sz) {
    if (*n >= (1 << 24)) return NULL;
    char *p = realloc(*arr, (size_t)(*n + 1) * sz);
    if (!p) return NULL;
    *arr = p;
    memset(p + (size_t)*n * sz, 0, sz);
    return p + (size_t)(*n)++ * sz;
}

/* The string value of child `field` of msg n, if it has one (for naming things
 * in messages before their fields are read); NULL otherwise. */
static const char *peek_string(const pbtxt_node *n, const char *field) {
    if (n->type != PBTXT_MESSAGE) return NULL;
    for (int i = 0; i < n->n_children; i++)
        if (!strcmp(n->children[i].name, field) && n->children[i].type == PBTXT_STRING)
            return n->children[i].text;
    return NULL;
}

/* ---- shapes ------------------------------------------------------------------------ */

/* "[1, 3, -1]" into buf. */
const char *serve_config_fmt_dims(char *buf, size_t len, int n, const int64_t *d) {
    size_t used = 0;
    buf[0] = '\0';
    int k = snprintf(buf, len, "[");
    if (k > 0) used = (size_t)k;
    for (int i = 0; i < n && used < len; i++) {
        k = snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)d[i]);
        if (k < 0) break;
        used += (size_t)k;
    }
    if (used < len) snprintf(buf + used, len - used, "]");
    return buf;
}

/* Element count as Triton counts it: 0 for no dims, -1 with a -1 dim, -2 on
 * overflow. */
static int64_t elem_count(int n, const int64_t *d) {
    if (n == 0) return 0;
    int64_t c = 1;
    for (int i = 0; i < n; i++) {
        if (d[i] < 0) return -1;
        if (__builtin_mul_overflow(c, d[i], &c)) return -2;
    }
    return c;
}

/* Triton's dims-vs-reshape rule: the same element count, or the same counts
 * between the -1 dimensions; an empty reshape stands for dims [1]. NULL when
 * fine, else what is wrong. */
static const char *reshape_problem(const serve_io *io) {
    int64_t dc = elem_count(io->ndim, io->dims), rc = elem_count(io->reshape_ndim, io->reshape);
    if (dc == -2 || rc == -2) return "too many elements";
    if (dc != rc && !(rc == 0 && dc == 1)) return "dims and reshape hold different numbers of elements";
    if (dc == -1) {
        int64_t a[KILN_MAX_DIMS + 1], b[KILN_MAX_DIMS + 1];
        int na = 0, nb = 0;
        int64_t cur = 1;
        for (int i = 0; i < io->ndim; i++) {
            if (io->dims[i] < 0) a[na++] = cur, cur = 1;
            else cur *= io->dims[i];
        }
        a[na++] = cur;
        cur = 1;
        for (int i = 0; i < io->reshape_ndim; i++) {
            if (io->reshape[i] < 0) b[nb++] = cur, cur = 1;
            else cur *= io->reshape[i];
        }
        b[nb++] = cur;
        if (na != nb) return "dims and reshape have different numbers of -1 dimensions";
        for (int i = 0; i < na; i++)
            if (a[i] != b[i]) return "dims and reshape hold different numbers of elements between their -1 dimensions";
    }
    return NULL;
}

/* ---- messages -------------------------------------------------------------------------- */

#define FIELD_ENUM(name, rep) F_##name,
#define FIELD_NAME(name, rep) #name,
#define FIELD_REP(name, rep) rep,
/* Declares the field table of one message: enum F_x, names, repeated flags. */
#define FIELD_TABLE(prefix, LIST)                                                  \
    enum { LIST(FIELD_ENUM) prefix##_COUNT };                                      \
    static const char *const prefix##_names[] = {LIST(FIELD_NAME)};                \
    static const char prefix##_rep[] = {LIST(FIELD_REP)}

#define LOOKUP(prefix, type, c, n, where, seen, idx)                                          \
    field_index((c), (n), (where), (type), prefix##_names, prefix##_rep, prefix##_COUNT, (seen), \
                (idx))

/* ModelTensorReshape */
static kiln_status parse_reshape(pctx *c, const pbtxt_node *n, const char *where, serve_io *io) {
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    io->has_reshape = 1;
    io->reshape_ndim = 0;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        if (strcmp(f->name, "shape"))
            return AT_FIELD(c, f, KILN_E_FORMAT, "%s: unknown field '%s' in reshape (Triton's ModelTensorReshape has only 'shape')",
                            where, f->name);
        if ((st = add_dim(c, f, where, -1, &io->reshape_ndim, io->reshape))) return st;
    }
    return KILN_OK;
}

#define IO_FIELDS(X)                                                                             \
    X(name, 0) X(data_type, 0) X(format, 0) X(dims, 1) X(reshape, 0) X(is_shape_tensor, 0)       \
    X(allow_ragged_batch, 0) X(optional, 0) X(is_non_linear_format_io, 0) X(label_filename, 0)

const char *const serve_format_names[3] = {"FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"};

/* ModelInput (is_input) or ModelOutput n into io. */
static kiln_status parse_io(pctx *c, const pbtxt_node *n, int is_input, int index, serve_io *io) {
    FIELD_TABLE(IO, IO_FIELDS);
    const char *kind = is_input ? "input" : "output", *type = is_input ? "ModelInput" : "ModelOutput";
    char where[320];
    kiln_status st = want_message(c, n, kind);
    if (st) return st;
    const char *nm = peek_string(n, "name");
    if (nm) snprintf(where, sizeof where, "%s '%s'", kind, nm);
    else snprintf(where, sizeof where, "%s #%d", kind, index + 1);
    unsigned char seen[IO_COUNT] = {0};
    const pbtxt_node *reshape_node = NULL, *format_node = NULL;
    int b;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx;
        if ((st = LOOKUP(IO, type, c, f, where, seen, &idx))) return st;
        /* fields of the other message */
        if ((is_input && idx == F_label_filename) ||
            (!is_input && (idx == F_format || idx == F_allow_ragged_batch || idx == F_optional)))
            return AT_FIELD(c, f, KILN_E_FORMAT, "%s: unknown field '%s' (Triton's %s has no such field)", where,
                            f->name, type);
        switch (idx) {
        case F_name:
            if ((st = get_str(c, f, where, &io->name))) return st;
            break;
        case F_data_type:
            if ((st = get_dtype(c, f, where, &io->dtype))) return st;
            break;
        case F_format:
            if ((st = get_enum(c, f, where, serve_format_names, 3, &io->format))) return st;
            format_node = f;
            break;
        case F_dims:
            if ((st = add_dim(c, f, where, -1, &io->ndim, io->dims))) return st;
            break;
        case F_reshape:
            reshape_node = f;
            if ((st = parse_reshape(c, f, where, io))) return st;
            break;
        case F_is_shape_tensor:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (b) return unsupported(c, f, where, "shape tensors are a TensorRT feature");
            break;
        case F_allow_ragged_batch:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (b) return unsupported(c, f, where, "kiln batches only requests of equal shapes");
            break;
        case F_optional:
            if ((st = get_bool(c, f, where, &io->optional))) return st;
            break;
        case F_is_non_linear_format_io:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (b) return unsupported(c, f, where, "non-linear I/O formats are a TensorRT feature");
            break;
        case F_label_filename:
            if ((st = get_file_name(c, f, where, &io->label_filename))) return st;
            break;
        }
    }
    if (!io->name || !io->name[0])
        return AT_FIELD(c, n, KILN_E_FORMAT, "%s: must specify 'name'", where);
    if (io->format && io->ndim && io->ndim != 3) /* Triton's rule (dims not given: checked on completion) */
        return AT_FIELD(c, format_node, KILN_E_FORMAT, "%s: %s needs 3 dims (without the batch dimension), "
                        "not %d", where, serve_format_names[io->format], io->ndim);
    if (reshape_node) {
        if (io->ndim == 0)
            return AT_FIELD(c, reshape_node, KILN_E_FORMAT, "%s: reshape needs 'dims' (the shape requests carry)",
                            where);
        const char *why = reshape_problem(io);
        if (why) return AT_FIELD(c, reshape_node, KILN_E_FORMAT, "%s: reshape: %s", where, why);
        if (io->reshape_ndim == 0 && c->cfg->max_batch_size_given && c->cfg->max_batch_size == 0)
            return AT_FIELD(c, reshape_node, KILN_E_FORMAT,
                            "%s: an empty reshape (a scalar) needs max_batch_size > 0", where);
    }
    return KILN_OK;
}

/* version_policy { latest { num_versions } | all { } | specific { versions } } */
static kiln_status parse_version_policy(pctx *c, const pbtxt_node *n) {
    serve_model_config *cfg = c->cfg;
    const char *where = "version_policy";
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    if (n->n_children == 0) return KILN_OK; /* the default: latest 1 */
    if (n->n_children > 1)
        return AT_FIELD(c, &n->children[1], KILN_E_FORMAT,
                        "version_policy takes one of latest, all or specific (found a second: '%s')",
                        n->children[1].name);
    const pbtxt_node *p = &n->children[0];
    if ((st = want_message(c, p, where))) return st;
    if (!strcmp(p->name, "latest")) {
        cfg->version_policy = SERVE_VERSIONS_LATEST;
        cfg->latest_num_versions = 1;
        for (int i = 0; i < p->n_children; i++) {
            const pbtxt_node *f = &p->children[i];
            int64_t v;
            if (strcmp(f->name, "num_versions"))
                return AT_FIELD(c, f, KILN_E_FORMAT, "version_policy.latest: unknown field '%s'", f->name);
            if (i > 0)
                return AT_FIELD(c, f, KILN_E_FORMAT, "version_policy.latest: field 'num_versions' is given twice");
            if ((st = get_int(c, f, "version_policy.latest", 1, INT32_MAX, &v))) return st;
            cfg->latest_num_versions = (int)v;
        }
    } else if (!strcmp(p->name, "all")) {
        cfg->version_policy = SERVE_VERSIONS_ALL;
        if (p->n_children)
            return AT_FIELD(c, &p->children[0], KILN_E_FORMAT, "version_policy.all: unknown field '%s' (all takes none)",
                            p->children[0].name);
    } else if (!strcmp(p->name, "specific")) {
        cfg->version_policy = SERVE_VERSIONS_SPECIFIC;
        for (int i = 0; i < p->n_children; i++) {
            const pbtxt_node *f = &p->children[i];
            int64_t v, *slot;
            if (strcmp(f->name, "versions"))
                return AT_FIELD(c, f, KILN_E_FORMAT, "version_policy.specific: unknown field '%s'", f->name);
            if ((st = get_int(c, f, "version_policy.specific", 0, INT64_MAX, &v))) return st;
            if (!(slot = serve_config_grow((void **)&cfg->versions, &cfg->n_versions, sizeof *slot))) return oom(c);
            *slot = v;
        }
        if (cfg->n_versions == 0)
            return AT_FIELD(c, p, KILN_E_FORMAT, "version_policy.specific lists no versions");
    } else {
        return AT_FIELD(c, p, KILN_E_FORMAT,
                        "version_policy: unknown field '%s' (expected latest, all or specific)", p->name);
    }
    return KILN_OK;
}

#define QP_FIELDS(X)                                                                      \
    X(timeout_action, 0) X(default_timeout_microseconds, 0) X(allow_timeout_override, 0) \
        X(max_queue_size, 0)

static kiln_status parse_queue_policy(pctx *c, const pbtxt_node *n, const char *where,
                                      serve_queue_policy *out) {
    FIELD_TABLE(QP, QP_FIELDS);
    static const char *const actions[] = {"REJECT", "DELAY"};
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    unsigned char seen[QP_COUNT] = {0};
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx, e;
        int64_t v;
        if ((st = LOOKUP(QP, "ModelQueuePolicy", c, f, where, seen, &idx))) return st;
        switch (idx) {
        case F_timeout_action:
            if ((st = get_enum(c, f, where, actions, 2, &e))) return st;
            out->timeout_action_delay = e;
            break;
        case F_default_timeout_microseconds:
            if ((st = get_int(c, f, where, 0, INT64_MAX, &v))) return st;
            out->default_timeout_us = v;
            break;
        case F_allow_timeout_override:
            if ((st = get_bool(c, f, where, &out->allow_timeout_override))) return st;
            break;
        case F_max_queue_size:
            if ((st = get_int(c, f, where, 0, UINT32_MAX, &v))) return st;
            out->max_queue_size = v;
            break;
        }
    }
    return KILN_OK;
}

/* A map entry n, { key: K value: V }: its key (required) and value (NULL when
 * left out), each given once and nothing else. */
static kiln_status map_entry(pctx *c, const pbtxt_node *n, const char *where, const pbtxt_node **key,
                             const pbtxt_node **value) {
    *key = *value = NULL;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        const pbtxt_node **slot = !strcmp(f->name, "key") ? key : !strcmp(f->name, "value") ? value : NULL;
        if (!slot)
            return AT_FIELD(c, f, KILN_E_FORMAT, "%s: unknown field '%s' (a map entry has key and value)",
                            where, f->name);
        if (*slot) return AT_FIELD(c, f, KILN_E_FORMAT, "%s: field '%s' is given twice", where, f->name);
        *slot = f;
    }
    if (!*key) return AT_FIELD(c, n, KILN_E_FORMAT, "%s: an entry without 'key'", where);
    return KILN_OK;
}

/* priority_queue_policy { key: LEVEL value { ModelQueuePolicy } }: one map
 * entry; *key_node the key, for the range check once the levels are known. */
static kiln_status parse_level_policy(pctx *c, const pbtxt_node *n, const pbtxt_node **key_node) {
    const char *where = "dynamic_batching.priority_queue_policy";
    serve_model_config *cfg = c->cfg;
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    const pbtxt_node *key, *value;
    if ((st = map_entry(c, n, where, &key, &value))) return st;
    int64_t level;
    if ((st = get_int(c, key, where, 1, INT32_MAX, &level))) return st;
    for (int i = 0; i < cfg->n_level_policies; i++)
        if (cfg->policy_levels[i] == level)
            return AT_VALUE(c, key, KILN_E_FORMAT, "%s: level %lld is given twice", where, (long long)level);
    int n0 = cfg->n_level_policies, n1 = n0;
    int64_t *lv = serve_config_grow((void **)&cfg->policy_levels, &n0, sizeof *lv);
    serve_queue_policy *pol = lv ? serve_config_grow((void **)&cfg->level_policies, &n1, sizeof *pol) : NULL;
    if (!pol) return oom(c);
    cfg->n_level_policies = n1;
    *lv = level;
    memset(pol, 0, sizeof *pol);
    *key_node = key;
    char w[96];
    snprintf(w, sizeof w, "%s %lld", where, (long long)level);
    return value ? parse_queue_policy(c, value, w, pol) : KILN_OK;
}

#define DB_FIELDS(X)                                                                         \
    X(preferred_batch_size, 1) X(max_queue_delay_microseconds, 0) X(preserve_ordering, 0)    \
        X(priority_levels, 0) X(default_priority_level, 0) X(default_queue_policy, 0)        \
            X(priority_queue_policy, 1)

static kiln_status parse_dynamic_batching(pctx *c, const pbtxt_node *n) {
    FIELD_TABLE(DB, DB_FIELDS);
    const char *where = "dynamic_batching";
    serve_model_config *cfg = c->cfg;
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    if (cfg->max_batch_size_given && cfg->max_batch_size == 0)
        return AT_FIELD(c, n, KILN_E_FORMAT,
                        "dynamic_batching needs max_batch_size > 0 (this model is configured without a "
                        "batch dimension)");
    cfg->dynamic_batching = 1;
    unsigned char seen[DB_COUNT] = {0};
    const pbtxt_node *prio_levels = NULL, *prio_default = NULL, *level_key = NULL;
    int64_t max_level = 0;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx, b, *slot;
        int64_t v;
        if ((st = LOOKUP(DB, "ModelDynamicBatching", c, f, where, seen, &idx))) return st;
        switch (idx) {
        case F_preferred_batch_size:
            if ((st = get_int(c, f, where, 1, INT32_MAX, &v))) return st;
            if (cfg->max_batch_size_given && v > cfg->max_batch_size)
                return AT_VALUE(c, f, KILN_E_FORMAT, "%s: preferred_batch_size %lld is above max_batch_size %d",
                                where, (long long)v, cfg->max_batch_size);
            if (!(slot = serve_config_grow((void **)&cfg->preferred_batch_sizes, &cfg->n_preferred, sizeof *slot)))
                return oom(c);
            *slot = (int)v;
            break;
        case F_max_queue_delay_microseconds:
            if ((st = get_int(c, f, where, 0, INT64_MAX, &v))) return st;
            cfg->max_queue_delay_us = v;
            break;
        case F_preserve_ordering:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (b) return unsupported(c, f, where, "kiln's batcher does not order responses across requests");
            break;
        case F_priority_levels:
            if ((st = get_int(c, f, where, 0, INT32_MAX, &v))) return st;
            cfg->priority_levels = v;
            prio_levels = f;
            break;
        case F_default_priority_level:
            if ((st = get_int(c, f, where, 0, INT32_MAX, &v))) return st;
            cfg->default_priority_level = v;
            prio_default = f;
            break;
        case F_default_queue_policy:
            if ((st = parse_queue_policy(c, f, "dynamic_batching.default_queue_policy",
                                         &cfg->queue_policy)))
                return st;
            break;
        case F_priority_queue_policy: {
            const pbtxt_node *key = NULL;
            if ((st = parse_level_policy(c, f, &key))) return st;
            const int64_t level = cfg->policy_levels[cfg->n_level_policies - 1];
            if (level > max_level) { /* the highest level named, checked below */
                max_level = level;
                level_key = key;
            }
            break;
        }
        }
    }
    if (max_level > cfg->priority_levels)
        return AT_VALUE(c, level_key, KILN_E_FORMAT,
                        "%s: priority_queue_policy names level %lld, but priority_levels is %lld", where,
                        (long long)max_level, (long long)cfg->priority_levels);
    /* as Triton checks them: a default level within the levels, none without */
    const int64_t levels = cfg->priority_levels, def = cfg->default_priority_level;
    if (levels > 0 && (def < 1 || def > levels))
        return AT_FIELD(c, prio_default ? prio_default : prio_levels, KILN_E_FORMAT,
                        "%s: default_priority_level must be in 1..%lld (priority_levels), it is %lld",
                        where, (long long)levels, (long long)def);
    if (levels == 0 && def != 0)
        return AT_FIELD(c, prio_default, KILN_E_FORMAT,
                        "%s: default_priority_level %lld needs priority_levels >= %lld", where,
                        (long long)def, (long long)def);
    return KILN_OK;
}

#define IG_FIELDS(X)                                                                         \
    X(name, 0) X(kind, 0) X(count, 0) X(rate_limiter, 0) X(gpus, 1) X(secondary_devices, 1)  \
        X(profile, 1) X(passive, 0) X(host_policy, 0)

/* ModelInstanceGroup n into a new entry of cfg->instance_groups. */
static kiln_status parse_instance_group(pctx *c, const pbtxt_node *n) {
    FIELD_TABLE(IG, IG_FIELDS);
    serve_model_config *cfg = c->cfg;
    char where[320];
    kiln_status st = want_message(c, n, "instance_group");
    if (st) return st;
    serve_instance_group *g =
        serve_config_grow((void **)&cfg->instance_groups, &cfg->n_instance_groups, sizeof *g);
    if (!g) return oom(c);
    int index = cfg->n_instance_groups - 1;
    const char *nm = peek_string(n, "name");
    if (nm) snprintf(where, sizeof where, "instance_group '%s'", nm);
    else snprintf(where, sizeof where, "instance_group #%d", index + 1);
    g->kind = kind_names[0]; /* KIND_AUTO, the proto default */
    g->count = 1;
    unsigned char seen[IG_COUNT] = {0};
    const pbtxt_node *gpus_node = NULL;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx, e, b, *slot;
        int64_t v;
        char *s = NULL;
        if ((st = LOOKUP(IG, "ModelInstanceGroup", c, f, where, seen, &idx))) return st;
        switch (idx) {
        case F_name:
            if ((st = get_str(c, f, where, &s))) return st;
            if (s[0]) g->name = s;
            else free(s);
            break;
        case F_kind:
            if ((st = get_enum(c, f, where, kind_names, 4, &e))) return st;
            if (e == 3) return unsupported(c, f, where, "KIND_MODEL leaves placement to the backend; say KIND_CPU or KIND_GPU");
            g->kind = kind_names[e];
            break;
        case F_count:
            if ((st = get_int(c, f, where, 1, 1024, &v))) return st;
            g->count = (int)v;
            break;
        case F_gpus:
            if ((st = get_int(c, f, where, 0, INT32_MAX, &v))) return st;
            if (v != 0)
                return AT_VALUE(c, f, KILN_E_UNSUPPORTED, "%s: gpus: kiln runs on GPU 0 only, not GPU %lld", where,
                                (long long)v);
            gpus_node = f;
            if (!(slot = serve_config_grow((void **)&g->gpus, &g->n_gpus, sizeof *slot))) return oom(c);
            *slot = (int)v;
            break;
        case F_rate_limiter:
            return unsupported(c, f, where, "kiln has no rate limiter");
        case F_secondary_devices:
            return unsupported(c, f, where, "secondary devices (NVDLA) are a TensorRT feature");
        case F_profile:
            return unsupported(c, f, where, "optimization profiles are a TensorRT feature");
        case F_passive:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (b) return unsupported(c, f, where, "every kiln instance takes requests");
            break;
        case F_host_policy:
            if ((st = get_str(c, f, where, &s))) return st;
            b = s[0] != 0;
            free(s);
            if (b) return unsupported(c, f, where, "kiln has no host policies");
            break;
        }
    }
    if (gpus_node && !strcmp(g->kind, "KIND_CPU"))
        return AT_FIELD(c, gpus_node, KILN_E_FORMAT, "%s: gpus cannot be given for KIND_CPU", where);
    /* the summary the server uses: one kind, counts summed */
    if (index == 0) {
        cfg->instance_kind = g->kind;
        cfg->instance_count = g->count;
    } else {
        if (strcmp(cfg->instance_kind, g->kind))
            return AT_FIELD(c, n, KILN_E_UNSUPPORTED,
                            "%s: kind %s differs from the first group's %s; kiln runs all instances of "
                            "a model on one kind of device", where, g->kind, cfg->instance_kind);
        if (cfg->instance_count > 4096 - g->count)
            return AT_FIELD(c, n, KILN_E_FORMAT, "%s: more than 4096 instances in all", where);
        cfg->instance_count += g->count;
    }
    return KILN_OK;
}

/* parameters { key: "k" value: { string_value: "v" } }: one map entry. */
static kiln_status parse_parameter(pctx *c, const pbtxt_node *n) {
    serve_model_config *cfg = c->cfg;
    const char *where = "parameters";
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    char *key = NULL, *value = NULL;
    const pbtxt_node *key_node = NULL, *value_node = n;
    for (int i = 0; i < n->n_children && !st; i++) {
        const pbtxt_node *f = &n->children[i];
        if (!strcmp(f->name, "key")) {
            if (key_node) st = AT_FIELD(c, f, KILN_E_FORMAT, "parameters: field 'key' is given twice");
            else if (!(st = get_str(c, f, where, &key))) key_node = f;
        } else if (!strcmp(f->name, "value")) {
            if (value_node != n) {
                st = AT_FIELD(c, f, KILN_E_FORMAT, "parameters: field 'value' is given twice");
                break;
            }
            value_node = f;
            if ((st = want_message(c, f, where))) break;
            for (int k = 0; k < f->n_children && !st; k++) {
                const pbtxt_node *v = &f->children[k];
                if (strcmp(v->name, "string_value"))
                    st = AT_FIELD(c, v, KILN_E_FORMAT,
                                  "parameters: unknown field '%s' (Triton's ModelParameter has only string_value)",
                                  v->name);
                else if (value)
                    st = AT_FIELD(c, v, KILN_E_FORMAT, "parameters: field 'string_value' is given twice");
                else {
                    st = get_str(c, v, where, &value);
                    value_node = v;
                }
            }
        } else {
            st = AT_FIELD(c, f, KILN_E_FORMAT, "parameters: unknown field '%s' (a map entry has key and value)",
                          f->name);
        }
    }
    if (!st && !key) st = AT_FIELD(c, n, KILN_E_FORMAT, "parameters: an entry without 'key'");
    if (!st && !value && !(value = strdup(""))) st = oom(c);
    for (int i = 0; !st && i < cfg->n_parameters; i++)
        if (!strcmp(cfg->param_keys[i], key))
            st = AT_FIELD(c, key_node, KILN_E_FORMAT, "parameters: key '%s' is given twice", key);
    if (!st) {
        char where2[300];
        snprintf(where2, sizeof where2, "parameters '%s'", key);
        if (!strcmp(key, "precision")) {
            if (kiln_precision_parse(value, &cfg->precision) != KILN_OK)
                st = AT_VALUE(c, value_node, KILN_E_FORMAT, "%s: %s", where2, kiln_last_error());
        } else if (!strcmp(key, "threads") || !strcmp(key, "intra_op_thread_count")) {
            /* intra_op_thread_count: Triton's onnxruntime backend's name for the same
             * thing (0 there means its default: here the server's budget) */
            int ort = key[0] == 'i';
            char *end;
            errno = 0;
            long v = strtol(value, &end, 10);
            if (!value[0] || *end || errno || v < (ort ? 0 : 1) || v > 4096)
                st = AT_VALUE(c, value_node, KILN_E_FORMAT, "%s: '%s' is not %s integer up to 4096", where2,
                              value, ort ? "a non-negative" : "a positive");
            else if (cfg->threads && v && cfg->threads != v)
                st = AT_VALUE(c, value_node, KILN_E_FORMAT,
                              "%s: %ld contradicts the thread count already given (%d)", where2, v,
                              cfg->threads);
            else if (v)
                cfg->threads = (int)v;
        }
    }
    if (!st) {
        int n0 = cfg->n_parameters;
        char **k2 = realloc(cfg->param_keys, (size_t)(n0 + 1) * sizeof *k2);
        if (k2) cfg->param_keys = k2;
        char **v2 = k2 ? realloc(cfg->param_values, (size_t)(n0 + 1) * sizeof *v2) : NULL;
        if (v2) cfg->param_values = v2;
        if (!k2 || !v2) {
            st = oom(c);
        } else {
            cfg->param_keys[n0] = key;
            cfg->param_values[n0] = value;
            cfg->n_parameters = n0 + 1;
            return KILN_OK;
        }
    }
    free(key);
    free(value);
    return st;
}

#define WI_FIELDS(X) X(data_type, 0) X(dims, 1) X(zero_data, 0) X(random_data, 0) X(input_data_file, 0)

/* ModelWarmup.Input n (the value of the inputs map entry) into wi. */
static kiln_status parse_warmup_input(pctx *c, const pbtxt_node *n, const char *where, serve_warmup_input *wi) {
    FIELD_TABLE(WI, WI_FIELDS);
    kiln_status st = want_message(c, n, where);
    if (st) return st;
    unsigned char seen[WI_COUNT] = {0};
    const pbtxt_node *data = NULL;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx, b;
        if ((st = LOOKUP(WI, "ModelWarmup.Input", c, f, where, seen, &idx))) return st;
        if (idx >= F_zero_data) {
            if (data)
                return AT_FIELD(c, f, KILN_E_FORMAT, "%s: '%s' and '%s' are one choice: give one", where,
                                data->name, f->name);
            data = f;
        }
        switch (idx) {
        case F_data_type:
            if ((st = get_dtype(c, f, where, &wi->dtype))) return st;
            break;
        case F_dims:
            if ((st = add_dim(c, f, where, 0, &wi->ndim, wi->dims))) return st;
            break;
        case F_zero_data:
        case F_random_data:
            if ((st = get_bool(c, f, where, &b))) return st;
            if (!b)
                return AT_VALUE(c, f, KILN_E_FORMAT, "%s: '%s: false' chooses no data; say %s: true or give another source",
                                where, f->name, f->name);
            wi->data = idx == F_zero_data ? SERVE_WARMUP_ZERO : SERVE_WARMUP_RANDOM;
            break;
        case F_input_data_file:
            if ((st = get_file_name(c, f, where, &wi->input_data_file))) return st;
            if (!wi->input_data_file)
                return AT_VALUE(c, f, KILN_E_FORMAT, "%s: input_data_file is empty", where);
            wi->data = SERVE_WARMUP_FILE;
            break;
        }
    }
    if (wi->dtype == KILN_DTYPE_UNDEFINED)
        return AT_FIELD(c, n, KILN_E_FORMAT, "%s: must specify 'data_type'", where);
    if (!data)
        return AT_FIELD(c, n, KILN_E_FORMAT, "%s: must give zero_data, random_data or input_data_file", where);
    return KILN_OK;
}

#define WU_FIELDS(X) X(name, 0) X(batch_size, 0) X(inputs, 1) X(count, 0)

/* ModelWarmup n into a new entry of cfg->warmup. */
static kiln_status parse_warmup(pctx *c, const pbtxt_node *n) {
    FIELD_TABLE(WU, WU_FIELDS);
    serve_model_config *cfg = c->cfg;
    char where[320], where2[640];
    kiln_status st = want_message(c, n, "model_warmup");
    if (st) return st;
    serve_warmup *wu = serve_config_grow((void **)&cfg->warmup, &cfg->n_warmup, sizeof *wu);
    if (!wu) return oom(c);
    const char *nm = peek_string(n, "name");
    if (nm) snprintf(where, sizeof where, "model_warmup '%s'", nm);
    else snprintf(where, sizeof where, "model_warmup #%d", cfg->n_warmup);
    wu->batch_size = 1;
    wu->count = 1;
    unsigned char seen[WU_COUNT] = {0};
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int idx;
        int64_t v;
        if ((st = LOOKUP(WU, "ModelWarmup", c, f, where, seen, &idx))) return st;
        switch (idx) {
        case F_name:
            if ((st = get_str(c, f, where, &wu->name))) return st;
            break;
        case F_batch_size:
            if ((st = get_int(c, f, where, 1, INT32_MAX, &v))) return st;
            if (cfg->max_batch_size_given && v > (cfg->max_batch_size > 0 ? cfg->max_batch_size : 1))
                return AT_VALUE(c, f, KILN_E_FORMAT, "%s: batch_size %lld is above %s %d", where, (long long)v,
                                cfg->max_batch_size > 0 ? "max_batch_size" : "1 (max_batch_size is 0):",
                                cfg->max_batch_size > 0 ? cfg->max_batch_size : 1);
            wu->batch_size = (int)v;
            break;
        case F_count:
            if ((st = get_int(c, f, where, 0, 1000000, &v))) return st;
            wu->count = v > 0 ? (int)v : 1; /* 0: once, as Triton reads it */
            break;
        case F_inputs: {
            if ((st = want_message(c, f, where))) return st;
            char where_inputs[300];
            snprintf(where_inputs, sizeof where_inputs, "%s: inputs", where);
            const pbtxt_node *key, *value;
            if ((st = map_entry(c, f, where_inputs, &key, &value))) return st;
            if (!value) return AT_FIELD(c, f, KILN_E_FORMAT, "%s: inputs: an entry without 'value'", where);
            char *name = NULL;
            if ((st = get_str(c, key, where, &name))) return st;
            for (int k = 0; k < wu->n_inputs; k++)
                if (!strcmp(wu->inputs[k].name, name)) {
                    free(name);
                    return AT_VALUE(c, key, KILN_E_FORMAT, "%s: inputs: key '%s' is given twice", where,
                                    wu->inputs[k].name);
                }
            serve_warmup_input *wi = serve_config_grow((void **)&wu->inputs, &wu->n_inputs, sizeof *wi);
            if (!wi) {
                free(name);
                return oom(c);
            }
            wi->name = name;
            snprintf(where2, sizeof where2, "%s input '%s'", where, name);
            if ((st = parse_warmup_input(c, value, where2, wi))) return st;
            break;
        }
        }
    }
    return KILN_OK;
}

/* A message of one bool field that kiln accepts only false (its default). */
static kiln_status parse_false_only(pctx *c, const pbtxt_node *n, const char *type, const char *field,
                                    const char *why) {
    kiln_status st = want_message(c, n, n->name);
    if (st) return st;
    int seen = 0;
    for (int i = 0; i < n->n_children; i++) {
        const pbtxt_node *f = &n->children[i];
        int b;
        if (strcmp(f->name, field))
            return AT_FIELD(c, f, KILN_E_FORMAT, "%s: unknown field '%s' (Triton's %s has no such field)", n->name,
                            f->name, type);
        if (seen++) return AT_FIELD(c, f, KILN_E_FORMAT, "%s: field '%s' is given twice", n->name, f->name);
        if ((st = get_bool(c, f, n->name, &b))) return st;
        if (b) return unsupported(c, f, n->name, why);
    }
    return KILN_OK;
}

#define MC_FIELDS(X)                                                                              \
    X(name, 0) X(platform, 0) X(backend, 0) X(runtime, 0) X(version_policy, 0)                    \
    X(max_batch_size, 0) X(input, 1) X(output, 1) X(batch_input, 1) X(batch_output, 1)            \
    X(optimization, 0) X(dynamic_batching, 0) X(sequence_batching, 0) X(ensemble_scheduling, 0)   \
    X(instance_group, 1) X(default_model_filename, 0) X(cc_model_filenames, 1) X(metric_tags, 1)  \
    X(parameters, 1) X(model_warmup, 1) X(model_operations, 0) X(model_transaction_policy, 0)     \
    X(model_repository_agents, 0) X(response_cache, 0) X(model_metrics, 0)

/* platform (is_platform) or backend: a string naming an ONNX runtime
 * ("onnxruntime_onnx"; "onnxruntime" or "kiln"), or empty. */
static kiln_status get_onnx_choice(pctx *c, const pbtxt_node *f, const char *where,
                                   int is_platform, char **out) {
    kiln_status st = get_str(c, f, where, out);
    if (st) return st;
    const char *s = *out;
    int ok = !s[0] || (is_platform ? !strcmp(s, "onnxruntime_onnx")
                                   : !strcmp(s, "onnxruntime") || !strcmp(s, "kiln"));
    if (ok) return KILN_OK;
    st = AT_VALUE(c, f, KILN_E_UNSUPPORTED,
                  "%s '%s' is not supported: kiln serves ONNX models (%s)",
                  is_platform ? "platform" : "backend", s,
                  is_platform ? "platform \"onnxruntime_onnx\""
                              : "backend \"onnxruntime\" or \"kiln\"");
    free(*out);
    *out = NULL;
    return st;
}

static kiln_status parse_model_config(pctx *c, const pbtxt_node *root) {
    FIELD_TABLE(MC, MC_FIELDS);
    serve_model_config *cfg = c->cfg;
    const char *where = "config";
    kiln_status st;
    /* max_batch_size first: other fields are checked against it */
    for (int i = 0; i < root->n_children; i++)
        if (!strcmp(root->children[i].name, "max_batch_size")) {
            int64_t v;
            if ((st = get_int(c, &root->children[i], where, 0, INT32_MAX, &v))) {
                if (root->children[i].type == PBTXT_NUMBER && root->children[i].text[0] == '-')
                    return AT_VALUE(c, &root->children[i], KILN_E_FORMAT,
                                    "max_batch_size must be >= 0 (0: no batch dimension)");
                return st;
            }
            cfg->max_batch_size = (int)v;
            cfg->max_batch_size_given = 1;
            break;
        }
    unsigned char seen[MC_COUNT] = {0};
    const pbtxt_node *sched = NULL;
    for (int i = 0; i < root->n_children; i++) {
        const pbtxt_node *f = &root->children[i];
        int idx, b;
        char *s = NULL;
        if ((st = LOOKUP(MC, "ModelConfig", c, f, where, seen, &idx))) return st;
        if (idx == F_dynamic_batching || idx == F_sequence_batching || idx == F_ensemble_scheduling) {
            if (sched)
                return AT_FIELD(c, f, KILN_E_FORMAT, "'%s' and '%s' are one choice (scheduling): give one",
                                sched->name, f->name);
            sched = f;
        }
        switch (idx) {
        case F_name:
            if ((st = get_str(c, f, where, &s))) return st;
            if (s[0]) cfg->name = s;
            else free(s);
            break;
        case F_platform:
        case F_backend:
            if ((st = get_onnx_choice(c, f, where, idx == F_platform, &s))) return st;
            if (s[0]) *(idx == F_platform ? &cfg->platform : &cfg->backend) = s;
            else free(s);
            break;
        case F_runtime:
            if ((st = get_str(c, f, where, &s))) return st;
            b = s[0] != 0;
            free(s);
            if (b) return unsupported(c, f, where, "kiln loads no backend libraries");
            break;
        case F_version_policy:
            if ((st = parse_version_policy(c, f))) return st;
            break;
        case F_max_batch_size:
            break; /* read above */
        case F_input:
        case F_output: {
            int is_in = idx == F_input;
            serve_io **arr = is_in ? &cfg->inputs : &cfg->outputs;
            int *n = is_in ? &cfg->n_inputs : &cfg->n_outputs;
            serve_io *io = serve_config_grow((void **)arr, n, sizeof *io);
            if (!io) return oom(c);
            if ((st = parse_io(c, f, is_in, *n - 1, io))) return st;
            for (int k = 0; k < *n - 1; k++)
                if (!strcmp((*arr)[k].name, io->name))
                    return AT_FIELD(c, f, KILN_E_FORMAT, "%s '%s' is configured twice", is_in ? "input" : "output",
                                    io->name);
            break;
        }
        case F_batch_input:
        case F_batch_output:
            return unsupported(c, f, where, "kiln has no batch inputs or outputs");
        case F_optimization:
            if ((st = want_message(c, f, where))) return st;
            if (f->n_children) {
                return unsupported(c, &f->children[0], "optimization",
                                   "kiln plans its own graph passes, precision and memory; use "
                                   "parameters { key: \"precision\" ... } for precision");
            }
            break;
        case F_dynamic_batching:
            if ((st = parse_dynamic_batching(c, f))) return st;
            break;
        case F_sequence_batching:
            return unsupported(c, f, where, "kiln has no sequence batcher for stateful models");
        case F_ensemble_scheduling:
            return unsupported(c, f, where, "kiln serves single ONNX models, not ensembles");
        case F_instance_group:
            if ((st = parse_instance_group(c, f))) return st;
            break;
        case F_default_model_filename:
            free(cfg->default_model_filename);
            cfg->default_model_filename = NULL;
            if ((st = get_file_name(c, f, where, &cfg->default_model_filename))) return st;
            break;
        case F_cc_model_filenames:
            return unsupported(c, f, where, "kiln loads one model file per version");
        case F_metric_tags:
            return unsupported(c, f, where, "kiln's metrics carry no custom labels");
        case F_parameters:
            if ((st = parse_parameter(c, f))) return st;
            break;
        case F_model_warmup:
            if ((st = parse_warmup(c, f))) return st;
            break;
        case F_model_operations:
        case F_model_repository_agents:
        case F_model_metrics:
            if ((st = want_message(c, f, where))) return st;
            if (f->n_children)
                return unsupported(c, f, where,
                                   idx == F_model_operations ? "kiln loads no custom-op libraries"
                                   : idx == F_model_metrics ? "kiln's metric histograms are fixed"
                                                            : "kiln has no repository agents");
            break;
        case F_model_transaction_policy:
            if ((st = parse_false_only(c, f, "ModelTransactionPolicy", "decoupled",
                                       "kiln answers each request with one response")))
                return st;
            break;
        case F_response_cache:
            if ((st = parse_false_only(c, f, "ModelResponseCache", "enable", "kiln has no response cache")))
                return st;
            break;
        }
    }
    return KILN_OK;
}

kiln_status serve_config_parse_tree(const pbtxt_node *root, const char *path, int from_json,
                                    serve_model_config *out, char *err, size_t errlen) {
    pctx c = {.path = path ? path : "config", .err = err, .errlen = errlen, .cfg = out,
              .json = from_json};
    if (err && errlen) err[0] = '\0';
    serve_config_init(out);
    kiln_status st = parse_model_config(&c, root);
    if (st != KILN_OK) serve_config_free(out); /* zeroes it */
    return st;
}

kiln_status serve_config_parse(const char *text, size_t len, const char *path, serve_model_config *out,
                               char *err, size_t errlen) {
    pctx c = {.path = path ? path : "config.pbtxt", .err = err, .errlen = errlen, .cfg = out};
    pbtxt_node *root = NULL;
    if (err && errlen) err[0] = '\0';
    serve_config_init(out);
    kiln_status st = pbtxt_parse(text, len, c.path, &root, err, errlen);
    if (st == KILN_OK) st = parse_model_config(&c, root);
    pbtxt_free(root);
    if (st != KILN_OK) serve_config_free(out); /* zeroes it */
    return st;
}
