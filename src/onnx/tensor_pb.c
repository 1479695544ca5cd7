/* src/onnx/tensor_pb.c: ONNX TensorProto / SparseTensorProto <-> kiln tensors,
 * external tensor data, and kiln_tensor_load_onnx_pb.
 *
 * Reading trusts nothing: rank, dims, element count and the size of every data
 * field are checked against each other before anything is allocated. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx/onnx_internal.h"

/* ---- names -------------------------------------------------------------- */

const char *kiln__onnx_dtype_name(int onnx_type) {
    static const char *const names[] = {
        "undefined", "float32",  "uint8",     "int8",       "uint16",       "int16",
        "int32",     "int64",    "string",    "bool",       "float16",      "float64",
        "uint32",    "uint64",   "complex64", "complex128", "bfloat16",     "float8e4m3fn",
        "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "uint4", "int4", "float4e2m1",
        "float8e8m0", "uint2", "int2",
    };
    if (onnx_type >= 0 && onnx_type < (int)(sizeof(names) / sizeof(names[0])))
        return names[onnx_type];
    return "unknown";
}

static const char *tensor_name(const Onnx__TensorProto *tp) {
    return tp->name && tp->name[0] ? tp->name : "(unnamed)";
}

/* ---- packed sub-byte elements -------------------------------------------------
 * ONNX packs int4/uint4/float4e2m1 two to a byte and int2/uint2 four to a
 * byte, first element in the lowest bits, the last byte zero-padded; kiln
 * keeps one element per byte (signed types sign-extended). */

/* Bytes of numel elements of dt in ONNX's serialization. */
static int64_t packed_bytes(kiln_dtype dt, int64_t numel) {
    int bits = kiln__dtype_bits(dt);
    if (bits >= 8) return numel * (bits / 8);
    return (numel * bits + 7) / 8;
}

/* Expands the packed elements at the start of buf into one byte each, in
 * place (buf holds numel bytes). Walking backwards never overwrites a packed
 * byte that is still to be read. */
static void unpack_in_place(kiln_dtype dt, uint8_t *buf, int64_t numel) {
    int bits = kiln__dtype_bits(dt), per_byte = 8 / bits;
    unsigned mask = (1u << bits) - 1;
    int is_signed = dt == KILN_DTYPE_I4 || dt == KILN_DTYPE_I2;
    for (int64_t i = numel - 1; i >= 0; i--) {
        unsigned code = (buf[i / per_byte] >> (bits * (int)(i % per_byte))) & mask;
        if (is_signed && (code >> (bits - 1))) code |= ~mask & 0xffu; /* sign-extend */
        buf[i] = (uint8_t)code;
    }
}

/* Packs elements (one byte each, element k at src[off ? off[k] : k]) into dst
 * (packed_bytes(dt, n) bytes). */
static void pack_elems(kiln_dtype dt, const uint8_t *src, int64_t n, const int64_t *off,
                       uint8_t *dst) {
    int bits = kiln__dtype_bits(dt), per_byte = 8 / bits;
    unsigned mask = (1u << bits) - 1;
    memset(dst, 0, (size_t)packed_bytes(dt, n));
    for (int64_t k = 0; k < n; k++)
        dst[k / per_byte] |= (uint8_t)((src[off ? off[k] : k] & mask) << (bits * (int)(k % per_byte)));
}

/* ---- files -------------------------------------------------------------- */

kiln_status kiln__onnx_read_file(const char *path, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln__err(KILN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return kiln__err(KILN_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)KILN__MAX_TENSOR_BYTES) {
        fclose(f);
        return kiln__err(KILN_E_LIMIT, "%s: file of %lld bytes is too large", path,
                         (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return kiln__err(KILN_E_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    if (n && fread(b, 1, n, f) != n) {
        int e = errno;
        fclose(f);
        free(b);
        return kiln__err(KILN_E_IO, "%s: read failed: %s", path, strerror(e));
    }
    fclose(f);
    *buf = b;
    *len = n;
    return KILN_OK;
}

char *kiln__onnx_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* ---- TensorProto -> tensor ---------------------------------------------- */

/* Validates dtype, rank and dims (before anything is allocated); *numel gets
 * the element count. */
static kiln_status check_header(const char *nm, int data_type, size_t n_dims, const int64_t *dims,
                                int64_t *numel) {
    if (!kiln_dtype_valid(data_type) || data_type == KILN_DTYPE_UNDEFINED)
        return kiln__err(KILN_E_UNSUPPORTED, "tensor '%s': data type %s (%d) is not supported",
                         nm, kiln__onnx_dtype_name(data_type), data_type);
    if (n_dims > KILN_MAX_DIMS)
        return kiln__err(KILN_E_UNSUPPORTED, "tensor '%s': rank %zu exceeds kiln's maximum %d", nm,
                         n_dims, KILN_MAX_DIMS);
    for (size_t i = 0; i < n_dims; i++)
        if (dims[i] < 0)
            return kiln__err(KILN_E_FORMAT, "tensor '%s': dim %zu is negative (%lld)", nm, i,
                             (long long)dims[i]);
    int64_t n = kiln__numel((int)n_dims, dims);
    char sh[256];
    if (n < 0 || (int64_t)kiln_dtype_size((kiln_dtype)data_type) > KILN__MAX_TENSOR_BYTES / (n ? n : 1))
        return kiln__err(KILN_E_LIMIT, "tensor '%s': shape %s of %s is too large", nm,
                         kiln__shape_str((int)n_dims, dims, sh, sizeof sh),
                         kiln_dtype_name((kiln_dtype)data_type));
    *numel = n;
    return KILN_OK;
}

/* The typed field the ONNX spec assigns to dt: its name and value count. */
static const char *typed_field(const Onnx__TensorProto *tp, kiln_dtype dt, size_t *count) {
    switch (dt) {
    case KILN_DTYPE_F32: *count = tp->n_float_data; return "float_data";
    case KILN_DTYPE_F64: *count = tp->n_double_data; return "double_data";
    case KILN_DTYPE_I64: *count = tp->n_int64_data; return "int64_data";
    case KILN_DTYPE_U32:
    case KILN_DTYPE_U64: *count = tp->n_uint64_data; return "uint64_data";
    case KILN_DTYPE_STRING: *count = tp->n_string_data; return "string_data";
    default: /* every type of 32 bits or fewer; 16-bit floats as bit patterns */
        *count = tp->n_int32_data;
        return "int32_data";
    }
}

static kiln_status set_string(kiln_tensor *t, int64_t i, const uint8_t *s, size_t len) {
    char **slot = (char **)t->data + i;
    char *c = malloc(len + 1);
    if (!c) return kiln__err(KILN_E_NOMEM, "out of memory copying a string element");
    if (len) memcpy(c, s, len);
    c[len] = 0;
    free(*slot);
    *slot = c;
    return KILN_OK;
}

/* Fills t (count already checked) from the typed field of its dtype. */
static kiln_status fill_typed(kiln_tensor *t, const Onnx__TensorProto *tp) {
    int64_t n = kiln_tensor_numel(t);
    size_t esz = kiln_dtype_size(t->dtype);
    if (n == 0) return KILN_OK; /* the field may be NULL */
    switch (t->dtype) {
    case KILN_DTYPE_F32: memcpy(t->data, tp->float_data, (size_t)n * esz); return KILN_OK;
    case KILN_DTYPE_F64: memcpy(t->data, tp->double_data, (size_t)n * esz); return KILN_OK;
    case KILN_DTYPE_I64: memcpy(t->data, tp->int64_data, (size_t)n * esz); return KILN_OK;
    case KILN_DTYPE_U32:
    case KILN_DTYPE_U64:
        for (int64_t i = 0; i < n; i++) kiln__st_u(t->dtype, t->data, i, tp->uint64_data[i]);
        return KILN_OK;
    case KILN_DTYPE_STRING:
        for (int64_t i = 0; i < n; i++)
            KILN__TRY(set_string(t, i, tp->string_data[i].data, tp->string_data[i].len));
        return KILN_OK;
    default:
        if (kiln__dtype_bits(t->dtype) < 8) { /* one packed byte per int32 */
            int64_t nb = packed_bytes(t->dtype, n);
            for (int64_t i = 0; i < nb; i++) ((uint8_t *)t->data)[i] = (uint8_t)tp->int32_data[i];
            unpack_in_place(t->dtype, t->data, n);
            return KILN_OK;
        }
        for (int64_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)tp->int32_data[i];
            if (esz == 1) ((uint8_t *)t->data)[i] = t->dtype == KILN_DTYPE_BOOL ? v != 0 : (uint8_t)v;
            else if (esz == 2) ((uint16_t *)t->data)[i] = (uint16_t)v;
            else ((uint32_t *)t->data)[i] = v;
        }
        return KILN_OK;
    }
}

static int parse_i64(const char *s, int64_t *v) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || x < 0) return 0;
    *v = x;
    return 1;
}

/* Opens the external data of tp (location/offset/length relative to
 * src->base_dir, which it may not leave), checks that it holds exactly
 * `need` bytes and leaves *out positioned at them. */
static kiln_status open_external(const Onnx__TensorProto *tp, const kiln__onnx_src *src,
                                 int64_t need, FILE **out) {
    *out = NULL;
    const char *nm = tensor_name(tp);
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        const char *k = e->key ? e->key : "", *v = e->value ? e->value : "";
        if (strcmp(k, "location") == 0) location = v;
        else if (strcmp(k, "offset") == 0 && !parse_i64(v, &offset))
            return kiln__err(KILN_E_FORMAT, "tensor '%s': bad external data offset '%s'", nm, v);
        else if (strcmp(k, "length") == 0 && !parse_i64(v, &length))
            return kiln__err(KILN_E_FORMAT, "tensor '%s': bad external data length '%s'", nm, v);
    }
    if (!location || !*location)
        return kiln__err(KILN_E_FORMAT, "tensor '%s': external data without a location", nm);
    if (!src || !src->base_dir)
        return kiln__err(KILN_E_INVAL,
                         "tensor '%s': external data '%s' refused (model loaded without a directory)",
                         nm, location);
    if (location[0] == '/' || location[0] == '\\')
        return kiln__err(KILN_E_FORMAT, "tensor '%s': external data path '%s' is absolute", nm,
                         location);
    for (const char *p = location; *p;) { /* refuse any ".." component */
        size_t seg = strcspn(p, "/\\");
        if (seg == 2 && p[0] == '.' && p[1] == '.')
            return kiln__err(KILN_E_FORMAT,
                             "tensor '%s': external data path '%s' leaves the model directory", nm,
                             location);
        p += seg;
        if (*p) p++;
    }
    if (length < 0) length = need;
    if (length != need)
        return kiln__err(KILN_E_FORMAT, "tensor '%s': external data length %lld, the shape needs %lld",
                         nm, (long long)length, (long long)need);
    kiln_status st = KILN_OK;
    char *path = NULL, *real_dir = NULL, *real_file = NULL;
    FILE *f = NULL;
    if (asprintf(&path, "%s/%s", src->base_dir, location) < 0)
        return kiln__err(KILN_E_NOMEM, "tensor '%s': out of memory", nm);
    real_dir = realpath(src->base_dir, NULL);
    real_file = realpath(path, NULL);
    struct stat sb;
    size_t dl = real_dir ? strlen(real_dir) : 0;
    if (!real_dir || !real_file) {
        st = kiln__err(KILN_E_IO, "tensor '%s': external data file '%s': %s", nm, path,
                       strerror(errno));
    } else if (strncmp(real_file, real_dir, dl) != 0 || (real_file[dl] != '/' && dl != 1)) {
        /* a symbolic link out of the directory */
        st = kiln__err(KILN_E_FORMAT, "tensor '%s': external data '%s' resolves outside the model "
                       "directory", nm, location);
    } else if (!(f = fopen(real_file, "rb")) || fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = kiln__err(KILN_E_IO, "tensor '%s': cannot open external data file '%s'", nm, path);
    } else if (offset > (int64_t)sb.st_size || length > (int64_t)sb.st_size - offset) {
        st = kiln__err(KILN_E_FORMAT,
                       "tensor '%s': external data [%lld, +%lld) is past the end of '%s' (%lld bytes)",
                       nm, (long long)offset, (long long)length, path, (long long)sb.st_size);
    } else if (fseeko(f, (off_t)offset, SEEK_SET) != 0) {
        st = kiln__err(KILN_E_IO, "tensor '%s': cannot seek in '%s'", nm, path);
    }
    if (st != KILN_OK && f) fclose(f);
    else *out = f;
    free(path);
    free(real_dir);
    free(real_file);
    return st;
}

kiln_status kiln__onnx_tensor_from_proto(const Onnx__TensorProto *tp, const kiln__onnx_src *src,
                                         kiln_tensor **out) {
    *out = NULL;
    if (!tp) return kiln__err(KILN_E_FORMAT, "missing tensor");
    const char *nm = tensor_name(tp);
    if (tp->segment)
        return kiln__err(KILN_E_UNSUPPORTED, "tensor '%s': segmented tensors are not supported", nm);
    int64_t numel;
    KILN__TRY(check_header(nm, tp->data_type, tp->n_dims, tp->dims, &numel));
    kiln_dtype dt = (kiln_dtype)tp->data_type;
    int64_t need = packed_bytes(dt, numel); /* bytes of raw or external data */
    int packed = kiln__dtype_bits(dt) < 8;
    char sh[256];
    kiln__shape_str((int)tp->n_dims, tp->dims, sh, sizeof sh);
    /* every size is checked against the shape before allocating */
    FILE *ext = NULL;
    int external = tp->has_data_location &&
                   tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if ((external || tp->has_raw_data) && dt == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_FORMAT, "tensor '%s': string tensors cannot use raw or external data", nm);
    if (external) {
        KILN__TRY(open_external(tp, src, need, &ext));
    } else if (tp->has_raw_data) {
        if ((int64_t)tp->raw_data.len != need)
            return kiln__err(KILN_E_FORMAT, "tensor '%s': raw data has %zu bytes, shape %s of %s needs %lld",
                             nm, tp->raw_data.len, sh, kiln_dtype_name(dt), (long long)need);
    } else {
        size_t count;
        const char *field = typed_field(tp, dt, &count);
        int64_t want = packed ? need : numel; /* sub-byte types: one packed byte per value */
        if ((int64_t)count != want)
            return kiln__err(KILN_E_FORMAT, "tensor '%s': %s has %zu values, shape %s of %s needs %lld",
                             nm, field, count, sh, kiln_dtype_name(dt), (long long)want);
    }
    kiln_tensor *t = NULL;
    kiln_status st = kiln_tensor_create(dt, (int)tp->n_dims, tp->dims, &t);
    if (st == KILN_OK) {
        /* ONNX raw and external data are little-endian, as is the host */
        if (ext) {
            if (need && fread(t->data, 1, (size_t)need, ext) != (size_t)need)
                st = kiln__err(KILN_E_IO, "tensor '%s': reading external data failed", nm);
        } else if (tp->has_raw_data) {
            if (need) memcpy(t->data, tp->raw_data.data, (size_t)need);
        } else {
            st = fill_typed(t, tp);
        }
    }
    if (ext) fclose(ext);
    if (st == KILN_OK && packed && (ext || tp->has_raw_data)) unpack_in_place(dt, t->data, numel);
    if (st == KILN_OK && dt == KILN_DTYPE_BOOL)
        for (int64_t i = 0; i < numel; i++) ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    if (st != KILN_OK) {
        kiln_tensor_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

kiln_status kiln__onnx_tensor_from_sparse(const Onnx__SparseTensorProto *sp,
                                          const kiln__onnx_src *src, kiln_tensor **out) {
    *out = NULL;
    if (!sp || !sp->values || !sp->indices)
        return kiln__err(KILN_E_FORMAT, "sparse tensor without values or indices");
    const char *nm = tensor_name(sp->values);
    kiln_tensor *vals = NULL, *idx = NULL, *dense = NULL;
    kiln_status st = kiln__onnx_tensor_from_proto(sp->values, src, &vals);
    if (st == KILN_OK) st = kiln__onnx_tensor_from_proto(sp->indices, src, &idx);
    int64_t total = 0;
    if (st == KILN_OK) st = check_header(nm, vals->dtype, sp->n_dims, sp->dims, &total);
    int64_t nnz = st == KILN_OK ? kiln_tensor_numel(vals) : 0;
    if (st == KILN_OK && total > KILN__ONNX_SPARSE_ALLOWANCE && total / KILN__ONNX_MAX_SPARSE_FILL > nnz) {
        char sh[256];
        st = kiln__err(KILN_E_LIMIT,
                       "sparse tensor '%s': dense shape %s has more than %d elements per stored "
                       "value (%lld stored); kiln does not make one so sparse dense",
                       nm, kiln__shape_str((int)sp->n_dims, sp->dims, sh, sizeof sh),
                       KILN__ONNX_MAX_SPARSE_FILL, (long long)nnz);
    }
    if (st == KILN_OK) st = kiln_tensor_create(vals->dtype, (int)sp->n_dims, sp->dims, &dense);
    if (st != KILN_OK) goto fail;
    int rank = dense->ndim;
    if (vals->ndim != 1 || !kiln__dtype_is_int(idx->dtype) ||
        !((idx->ndim == 1 && idx->dims[0] == nnz) ||
          (idx->ndim == 2 && idx->dims[0] == nnz && idx->dims[1] == rank))) {
        char a[256], b[256];
        st = kiln__err(KILN_E_FORMAT,
                       "sparse tensor '%s': values %s and %s indices %s do not match rank %d", nm,
                       kiln__shape_str(vals->ndim, vals->dims, a, sizeof a),
                       kiln_dtype_name(idx->dtype), kiln__shape_str(idx->ndim, idx->dims, b, sizeof b),
                       rank);
        goto fail;
    }
    size_t esz = kiln_dtype_size(vals->dtype);
    for (int64_t k = 0; k < nnz; k++) {
        int64_t lin = 0;
        if (idx->ndim == 1) {
            lin = kiln__ld_i(idx->dtype, idx->data, k);
        } else {
            for (int d = 0; d < rank; d++) {
                int64_t c = kiln__ld_i(idx->dtype, idx->data, k * rank + d);
                if (c < 0 || c >= dense->dims[d]) {
                    lin = -1;
                    break;
                }
                lin = lin * dense->dims[d] + c;
            }
        }
        if (lin < 0 || lin >= total) {
            st = kiln__err(KILN_E_FORMAT, "sparse tensor '%s': index %lld is out of range", nm,
                           (long long)k);
            goto fail;
        }
        if (vals->dtype == KILN_DTYPE_STRING) {
            const char *s = ((char **)vals->data)[k];
            st = set_string(dense, lin, (const uint8_t *)s, strlen(s));
            if (st != KILN_OK) goto fail;
        } else {
            memcpy((uint8_t *)dense->data + lin * esz, (uint8_t *)vals->data + k * esz, esz);
        }
    }
    kiln_tensor_free(vals);
    kiln_tensor_free(idx);
    *out = dense;
    return KILN_OK;
fail:
    kiln_tensor_free(vals);
    kiln_tensor_free(idx);
    kiln_tensor_free(dense);
    return st;
}

/* ---- tensor -> TensorProto ---------------------------------------------- */

static kiln_status contiguous(const kiln_tensor *t, kiln_tensor **tmp, const kiln_tensor **c) {
    *tmp = NULL;
    *c = t;
    if (kiln_tensor_is_contiguous(t)) return KILN_OK;
    KILN__TRY(kiln_tensor_copy(t, KILN_DTYPE_UNDEFINED, tmp));
    *c = *tmp;
    return KILN_OK;
}

/* A new TensorProto header (name, dtype, dims) without data. */
static Onnx__TensorProto *proto_header(kiln_dtype dt, int ndim, const int64_t *dims, const char *name) {
    Onnx__TensorProto *tp = malloc(sizeof *tp);
    if (!tp) return NULL;
    onnx__tensor_proto__init(tp);
    tp->has_data_type = 1;
    tp->data_type = (int32_t)dt;
    if (name && !(tp->name = strdup(name))) goto oom;
    if (ndim > 0) {
        if (!(tp->dims = malloc((size_t)ndim * sizeof(int64_t)))) goto oom;
        memcpy(tp->dims, dims, (size_t)ndim * sizeof(int64_t));
        tp->n_dims = (size_t)ndim;
    }
    return tp;
oom:
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return NULL;
}

/* Appends elements [0, n) at element offsets off[] (NULL: 0..n-1) of the
 * contiguous data of c as raw_data or string_data. */
static int proto_fill(Onnx__TensorProto *tp, const kiln_tensor *c, int64_t n, const int64_t *off) {
    if (c->dtype == KILN_DTYPE_STRING) {
        if (n == 0) return 1;
        tp->string_data = calloc((size_t)n, sizeof(ProtobufCBinaryData));
        if (!tp->string_data) return 0;
        tp->n_string_data = (size_t)n;
        for (int64_t i = 0; i < n; i++) {
            const char *s = ((char *const *)c->data)[off ? off[i] : i];
            if (!s) s = "";
            size_t len = strlen(s);
            if (!(tp->string_data[i].data = malloc(len ? len : 1))) return 0;
            memcpy(tp->string_data[i].data, s, len);
            tp->string_data[i].len = len;
        }
        return 1;
    }
    size_t esz = kiln_dtype_size(c->dtype), bytes = (size_t)packed_bytes(c->dtype, n);
    tp->has_raw_data = 1;
    if (!(tp->raw_data.data = malloc(bytes ? bytes : 1))) return 0;
    tp->raw_data.len = bytes;
    if (kiln__dtype_bits(c->dtype) < 8) {
        pack_elems(c->dtype, c->data, n, off, tp->raw_data.data);
    } else if (!off) {
        if (bytes) memcpy(tp->raw_data.data, c->data, bytes);
    } else {
        for (int64_t i = 0; i < n; i++)
            memcpy(tp->raw_data.data + i * esz, (const uint8_t *)c->data + off[i] * esz, esz);
    }
    return 1;
}

kiln_status kiln__onnx_tensor_to_proto(const kiln_tensor *t, const char *name,
                                       Onnx__TensorProto **out) {
    *out = NULL;
    kiln_tensor *tmp;
    const kiln_tensor *c;
    KILN__TRY(contiguous(t, &tmp, &c));
    if (!c->data && kiln_tensor_numel(c) > 0) {
        kiln_tensor_free(tmp);
        return kiln__err(KILN_E_INVAL, "tensor '%s': has no data to serialize", name ? name : "");
    }
    Onnx__TensorProto *tp = proto_header(c->dtype, c->ndim, c->dims, name);
    if (!tp || !proto_fill(tp, c, kiln_tensor_numel(c), NULL)) {
        if (tp) onnx__tensor_proto__free_unpacked(tp, NULL);
        kiln_tensor_free(tmp);
        return kiln__err(KILN_E_NOMEM, "tensor '%s': out of memory serializing", name ? name : "");
    }
    kiln_tensor_free(tmp);
    *out = tp;
    return KILN_OK;
}

static int elem_is_zero(const kiln_tensor *c, int64_t i, size_t esz) {
    if (c->dtype == KILN_DTYPE_STRING) {
        const char *s = ((char *const *)c->data)[i];
        return !s || !*s;
    }
    const uint8_t *p = (const uint8_t *)c->data + i * esz;
    for (size_t b = 0; b < esz; b++)
        if (p[b]) return 0;
    return 1;
}

kiln_status kiln__onnx_sparse_to_proto(const kiln_tensor *t, const char *name,
                                       Onnx__SparseTensorProto **out) {
    *out = NULL;
    kiln_tensor *tmp;
    const kiln_tensor *c;
    KILN__TRY(contiguous(t, &tmp, &c));
    int64_t n = kiln_tensor_numel(c), nnz = 0;
    size_t esz = kiln_dtype_size(c->dtype);
    int64_t *lin = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    Onnx__SparseTensorProto *sp = malloc(sizeof *sp);
    if (!lin || !sp) goto oom;
    onnx__sparse_tensor_proto__init(sp);
    for (int64_t i = 0; i < n; i++)
        if (!elem_is_zero(c, i, esz)) lin[nnz++] = i;
    if (c->ndim > 0) {
        if (!(sp->dims = malloc((size_t)c->ndim * sizeof(int64_t)))) goto oom;
        memcpy(sp->dims, c->dims, (size_t)c->ndim * sizeof(int64_t));
        sp->n_dims = (size_t)c->ndim;
    }
    sp->values = proto_header(c->dtype, 1, &nnz, name);
    if (!sp->values || !proto_fill(sp->values, c, nnz, lin)) goto oom;
    sp->indices = proto_header(KILN_DTYPE_I64, 1, &nnz, NULL);
    if (!sp->indices) goto oom;
    sp->indices->has_raw_data = 1;
    sp->indices->raw_data.data = (uint8_t *)lin; /* hand the index array over */
    sp->indices->raw_data.len = (size_t)nnz * sizeof(int64_t);
    kiln_tensor_free(tmp);
    *out = sp;
    return KILN_OK;
oom:
    if (!(sp && sp->indices)) free(lin);
    if (sp) onnx__sparse_tensor_proto__free_unpacked(sp, NULL);
    kiln_tensor_free(tmp);
    return kiln__err(KILN_E_NOMEM, "sparse tensor '%s': out of memory", name ? name : "");
}

/* ---- public: one serialized TensorProto ---------------------------------- */

kiln_status kiln_tensor_load_onnx_pb(const char *path, kiln_tensor **out, char **name) {
    if (out) *out = NULL;
    if (name) *name = NULL;
    if (!path || !out) return kiln__err(KILN_E_INVAL, "kiln_tensor_load_onnx_pb: NULL argument");
    uint8_t *buf;
    size_t len;
    KILN__TRY(kiln__onnx_read_file(path, &buf, &len));
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!tp)
        return kiln__err(KILN_E_FORMAT, "%s: not an ONNX TensorProto (protobuf parse failed)", path);
    /* external data of a lone tensor file is looked up next to it */
    char *dir = kiln__onnx_dirname(path);
    if (!dir) {
        onnx__tensor_proto__free_unpacked(tp, NULL);
        return kiln__err(KILN_E_NOMEM, "%s: out of memory", path);
    }
    kiln__onnx_src src = {path, dir};
    kiln_status st = kiln__onnx_tensor_from_proto(tp, &src, out);
    if (st != KILN_OK) {
        kiln__err_prefix(st, "%s", path);
    } else if (name) {
        *name = strdup(tp->name ? tp->name : "");
        if (!*name) {
            kiln_tensor_free(*out);
            *out = NULL;
            st = kiln__err(KILN_E_NOMEM, "%s: out of memory", path);
        }
    }
    free(dir);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}
