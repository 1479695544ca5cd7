/* src/onnx/container_pb.c: ONNX SequenceProto / OptionalProto (onnx-data.proto)
 * into kiln sequences and optionals.
 *
 * The onnx.proto kiln generates its protobuf-c code from does not define these
 * two messages, so they are read here from the wire format; the tensors inside
 * are TensorProto messages, unpacked and converted by tensor_pb.c.
 *
 *   SequenceProto { string name = 1; int32 elem_type = 2;
 *                   repeated TensorProto tensor_values = 3;
 *                   repeated SparseTensorProto sparse_tensor_values = 4;
 *                   repeated SequenceProto sequence_values = 5;
 *                   repeated MapProto map_values = 6;
 *                   repeated OptionalProto optional_values = 7; }
 *   OptionalProto { string name = 1; int32 elem_type = 2;
 *                   TensorProto tensor_value = 3; SparseTensorProto sparse_tensor_value = 4;
 *                   SequenceProto sequence_value = 5; MapProto map_value = 6;
 *                   OptionalProto optional_value = 7; }
 *
 * kiln holds sequences of tensors, optional tensors and optional sequences;
 * other nestings (and sparse or map items) are KILN_E_UNSUPPORTED.
 */
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_internal.h"

enum { F_NAME = 1, F_TENSOR = 3, F_SPARSE = 4, F_SEQUENCE = 5, F_MAP = 6, F_OPTIONAL = 7 };

/* One field of a message: number, and for length-delimited ones the bytes. */
typedef struct pb_field {
    uint32_t number;
    int wire;
    const uint8_t *data;
    size_t len;
} pb_field;

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Reads the next field at *p; 0 at the end, -1 on malformed data. */
static int next_field(const uint8_t **p, const uint8_t *end, pb_field *f) {
    if (*p >= end) return 0;
    uint64_t key, v;
    if (!read_varint(p, end, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0: return read_varint(p, end, &v) ? 1 : -1;
    case 1: if (end - *p < 8) return -1; *p += 8; return 1;
    case 5: if (end - *p < 4) return -1; *p += 4; return 1;
    case 2:
        if (!read_varint(p, end, &v) || v > (uint64_t)(end - *p)) return -1;
        f->data = *p;
        f->len = (size_t)v;
        *p += v;
        return 1;
    default: return -1;
    }
}

static kiln_status bad_message(const char *what) {
    return kiln__err(KILN_E_FORMAT, "malformed %s (protobuf parse failed)", what);
}

static kiln_status unsupported_item(const char *what, uint32_t field) {
    static const char *const kinds[] = {"", "", "", "tensor", "sparse tensor", "sequence", "map",
                                        "optional"};
    return kiln__err(KILN_E_UNSUPPORTED, "%s holding a %s: kiln holds sequences of tensors and "
                     "optionals of a tensor or sequence", what, kinds[field]);
}

/* Keeps a malloc'd copy of a name field (the last one wins). */
static kiln_status keep_name(const pb_field *f, char **name) {
    if (!name) return KILN_OK;
    char *s = malloc(f->len + 1);
    if (!s) return kiln__err(KILN_E_NOMEM, "out of memory");
    memcpy(s, f->data, f->len);
    s[f->len] = 0;
    free(*name);
    *name = s;
    return KILN_OK;
}

static kiln_status tensor_from_bytes(const pb_field *f, const kiln__onnx_src *src,
                                     kiln_tensor **out) {
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, f->len, f->data);
    if (!tp) return bad_message("TensorProto");
    kiln_status st = kiln__onnx_tensor_from_proto(tp, src, out);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

/* SequenceProto bytes -> sequence of tensors (one dtype). */
static kiln_status parse_sequence(const uint8_t *buf, size_t len, const kiln__onnx_src *src,
                                  kiln_tensor **out, char **name) {
    const uint8_t *p = buf, *end = buf + len;
    pb_field f;
    int r;
    int64_t n = 0;
    while ((r = next_field(&p, end, &f)) > 0) { /* count, check item kinds */
        if (f.wire != 2) continue;
        if (f.number == F_TENSOR) n++;
        else if (f.number >= F_SPARSE && f.number <= F_OPTIONAL) return unsupported_item("sequence", f.number);
    }
    if (r < 0) return bad_message("SequenceProto");
    kiln_tensor *seq;
    KILN__TRY(kiln__container_new(KILN__DTYPE_SEQUENCE, KILN_DTYPE_UNDEFINED, n, &seq));
    kiln_status st = KILN_OK;
    int64_t k = 0;
    for (p = buf; st == KILN_OK && next_field(&p, end, &f) > 0;) {
        if (f.wire != 2) continue;
        if (f.number == F_NAME) {
            st = keep_name(&f, name);
        } else if (f.number == F_TENSOR) {
            kiln_tensor *t = NULL;
            st = tensor_from_bytes(&f, src, &t);
            if (st == KILN_OK && k > 0 && t->dtype != seq->elem)
                st = kiln__err(KILN_E_FORMAT, "sequence item %lld is %s, item 0 is %s", (long long)k,
                               kiln_dtype_name(t->dtype), kiln_dtype_name(seq->elem));
            if (st == KILN_OK) {
                seq->elem = t->dtype;
                kiln__container_set(seq, k++, t);
            } else {
                kiln_tensor_free(t);
                kiln__err_prefix(st, "sequence item %lld", (long long)k);
            }
        }
    }
    if (st != KILN_OK) {
        kiln_tensor_free(seq);
        return st;
    }
    *out = seq;
    return KILN_OK;
}

/* OptionalProto bytes -> optional of nothing, a tensor or a sequence. */
static kiln_status parse_optional(const uint8_t *buf, size_t len, const kiln__onnx_src *src,
                                  kiln_tensor **out, char **name) {
    const uint8_t *p = buf, *end = buf + len;
    pb_field f;
    int r;
    kiln_tensor *item = NULL;
    kiln_status st = KILN_OK;
    while (st == KILN_OK && (r = next_field(&p, end, &f)) > 0) {
        if (f.wire != 2) continue;
        if (f.number == F_NAME) {
            st = keep_name(&f, name);
        } else if (f.number == F_TENSOR || f.number == F_SEQUENCE) {
            kiln_tensor_free(item); /* a repeated field: the last one wins */
            item = NULL;
            st = f.number == F_TENSOR ? tensor_from_bytes(&f, src, &item)
                                      : parse_sequence(f.data, f.len, src, &item, NULL);
        } else if (f.number >= F_SPARSE && f.number <= F_OPTIONAL) {
            st = unsupported_item("optional", f.number);
        }
    }
    if (st == KILN_OK && r < 0) st = bad_message("OptionalProto");
    kiln_tensor *opt = NULL;
    if (st == KILN_OK)
        st = kiln__container_new(KILN__DTYPE_OPTIONAL,
                           !item ? KILN_DTYPE_UNDEFINED : kiln__is_container(item->dtype) ? item->elem
                                                                                           : item->dtype,
                           item ? 1 : 0, &opt);
    if (st != KILN_OK) {
        kiln_tensor_free(item);
        return st;
    }
    if (item) kiln__container_set(opt, 0, item);
    *out = opt;
    return KILN_OK;
}

typedef kiln_status (*parse_fn)(const uint8_t *, size_t, const kiln__onnx_src *, kiln_tensor **,
                                char **);

static kiln_status load_file(const char *path, parse_fn parse, const char *fn, kiln_tensor **out,
                             char **name) {
    if (out) *out = NULL;
    if (name) *name = NULL;
    if (!path || !out) return kiln__err(KILN_E_INVAL, "%s: NULL argument", fn);
    uint8_t *buf;
    size_t len;
    KILN__TRY(kiln__onnx_read_file(path, &buf, &len));
    char *dir = kiln__onnx_dirname(path); /* external tensor data lies next to the file */
    kiln_status st = dir ? KILN_OK : kiln__err(KILN_E_NOMEM, "out of memory");
    if (st == KILN_OK) {
        kiln__onnx_src src = {path, dir};
        st = parse(buf, len, &src, out, name);
    }
    if (st == KILN_OK && name && !*name && !(*name = kiln__strdup(""))) {
        kiln_tensor_free(*out);
        *out = NULL;
        st = kiln__err(KILN_E_NOMEM, "out of memory");
    }
    if (st != KILN_OK && name) {
        free(*name);
        *name = NULL;
    }
    free(dir);
    free(buf);
    return st == KILN_OK ? KILN_OK : kiln__err_prefix(st, "%s", path);
}

kiln_status kiln_sequence_load_onnx_pb(const char *path, kiln_tensor **out, char **name) {
    return load_file(path, parse_sequence, "kiln_sequence_load_onnx_pb", out, name);
}

kiln_status kiln_optional_load_onnx_pb(const char *path, kiln_tensor **out, char **name) {
    return load_file(path, parse_optional, "kiln_optional_load_onnx_pb", out, name);
}
