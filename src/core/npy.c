/* src/core/npy.c: numpy .npy reader and writer. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static const struct {
    const char *descr; /* without byte-order char */
    kiln_dtype dt;
} npy_types[] = {
    {"f4", KILN_DTYPE_F32}, {"f8", KILN_DTYPE_F64}, {"f2", KILN_DTYPE_F16},
    {"b1", KILN_DTYPE_BOOL}, {"u1", KILN_DTYPE_U8}, {"i1", KILN_DTYPE_I8},
    {"i2", KILN_DTYPE_I16}, {"u2", KILN_DTYPE_U16}, {"i4", KILN_DTYPE_I32},
    {"u4", KILN_DTYPE_U32}, {"i8", KILN_DTYPE_I64}, {"u8", KILN_DTYPE_U64},
};

/* Finds 'key' in the header dict and returns a pointer just after the ':'. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p) return NULL;
    p++;
    while (isspace((unsigned char)*p)) p++;
    return p;
}

static kiln_status parse_header(const char *path, const char *hdr, kiln_dtype *dt, int *ndim,
                                int64_t *dims) {
    const char *d = dict_value(hdr, "descr");
    if (!d || *d != '\'')
        return kiln__err(KILN_E_FORMAT, "%s: .npy header has no 'descr'", path);
    d++;
    char order = *d;
    if (order == '>' && d[1] != 'u' && d[1] != 'i' && d[1] != 'b')
        return kiln__err(KILN_E_UNSUPPORTED, "%s: big-endian .npy data is not supported", path);
    if (order == '<' || order == '|' || order == '=' || order == '>') d++;
    *dt = KILN_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++) {
        size_t n = strlen(npy_types[i].descr);
        if (strncmp(d, npy_types[i].descr, n) == 0 && d[n] == '\'') *dt = npy_types[i].dt;
    }
    if (*dt == KILN_DTYPE_UNDEFINED || (order == '>' && kiln_dtype_size(*dt) > 1))
        return kiln__err(KILN_E_UNSUPPORTED, "%s: .npy dtype '%.8s' is not supported", path, d);
    const char *f = dict_value(hdr, "fortran_order");
    if (!f) return kiln__err(KILN_E_FORMAT, "%s: .npy header has no 'fortran_order'", path);
    if (strncmp(f, "True", 4) == 0)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: Fortran-order .npy arrays are not supported "
                         "(save with np.ascontiguousarray)", path);
    const char *s = dict_value(hdr, "shape");
    if (!s || *s != '(') return kiln__err(KILN_E_FORMAT, "%s: .npy header has no 'shape'", path);
    s++;
    *ndim = 0;
    for (;;) {
        while (isspace((unsigned char)*s) || *s == ',') s++;
        if (*s == ')') break;
        if (!isdigit((unsigned char)*s))
            return kiln__err(KILN_E_FORMAT, "%s: bad .npy shape", path);
        if (*ndim >= KILN_MAX_DIMS)
            return kiln__err(KILN_E_LIMIT, "%s: .npy rank exceeds %d", path, KILN_MAX_DIMS);
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || v < 0) return kiln__err(KILN_E_FORMAT, "%s: bad .npy shape", path);
        dims[(*ndim)++] = v;
        s = end;
    }
    return KILN_OK;
}

kiln_status kiln_tensor_load_npy(const char *path, kiln_tensor **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return kiln__err(KILN_E_IO, "%s: %s", path, strerror(errno));
    kiln_status st = KILN_OK;
    char *hdr = NULL;
    kiln_tensor *t = NULL;
    unsigned char pre[10];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = kiln__err(KILN_E_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    uint32_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (uint32_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) {
            st = kiln__err(KILN_E_FORMAT, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)b[0] << 16 | (uint32_t)b[1] << 24;
    } else {
        st = kiln__err(KILN_E_UNSUPPORTED, "%s: .npy format version %d", path, pre[6]);
        goto fail;
    }
    if (hlen > (1u << 20)) {
        st = kiln__err(KILN_E_FORMAT, "%s: .npy header too long", path);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = kiln__err(KILN_E_NOMEM, "out of memory");
        goto fail;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        st = kiln__err(KILN_E_FORMAT, "%s: truncated .npy header", path);
        goto fail;
    }
    hdr[hlen] = 0;
    kiln_dtype dt = KILN_DTYPE_UNDEFINED;
    int ndim = 0;
    int64_t dims[KILN_MAX_DIMS];
    if ((st = parse_header(path, hdr, &dt, &ndim, dims)) != KILN_OK) goto fail;
    { /* the data must be in the file before memory is taken for it */
        long here = ftell(f), end = -1;
        int64_t n = kiln__numel(ndim, dims);
        if (here >= 0 && fseek(f, 0, SEEK_END) == 0) end = ftell(f);
        if (end < 0 || fseek(f, here, SEEK_SET) != 0) {
            st = kiln__err(KILN_E_IO, "%s: cannot seek", path);
            goto fail;
        }
        if (n < 0 || (uint64_t)n > (uint64_t)(end - here) / (kiln_dtype_size(dt) ? kiln_dtype_size(dt) : 1)) {
            st = kiln__err(KILN_E_FORMAT, "%s: truncated .npy data (the header's shape needs more "
                           "than the %ld bytes left)", path, end - here);
            goto fail;
        }
    }
    if ((st = kiln_tensor_create(dt, ndim, dims, &t)) != KILN_OK) {
        kiln__err_prefix(st, "%s", path);
        goto fail;
    }
    size_t bytes = kiln__tensor_bytes(t);
    if (fread(t->data, 1, bytes, f) != bytes) {
        st = kiln__err(KILN_E_FORMAT, "%s: truncated .npy data (expected %zu bytes)", path, bytes);
        goto fail;
    }
    if (dt == KILN_DTYPE_BOOL) { /* normalize to 0/1 */
        uint8_t *b = t->data;
        for (size_t i = 0; i < bytes; i++) b[i] = b[i] != 0;
    }
    free(hdr);
    fclose(f);
    *out = t;
    return KILN_OK;
fail:
    free(hdr);
    kiln_tensor_free(t);
    fclose(f);
    return st;
}

kiln_status kiln_tensor_save_npy(const kiln_tensor *t, const char *path) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dt == t->dtype) descr = npy_types[i].descr;
    if (!descr)
        return kiln__err(KILN_E_UNSUPPORTED, "%s: dtype %s cannot be stored in .npy", path,
                         kiln_dtype_name(t->dtype));
    kiln_tensor *c = NULL;
    if (!kiln_tensor_is_contiguous(t)) KILN__TRY(kiln_tensor_copy(t, t->dtype, &c));
    const kiln_tensor *src = c ? c : t;
    char hdr[512];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     kiln_dtype_size(t->dtype) == 1 ? '|' : '<', descr);
    for (int i = 0; i < t->ndim; i++) k += snprintf(hdr + k, sizeof hdr - k, "%" PRId64 ",%s",
                                                    t->dims[i], i + 1 < t->ndim ? " " : "");
    if (t->ndim > 1) k--; /* numpy writes "(2, 3)" but "(4,)" */
    k += snprintf(hdr + k, sizeof hdr - k, "), }");
    int total = 10 + k + 1;
    int pad = (64 - total % 64) % 64;
    for (int i = 0; i < pad; i++) hdr[k++] = ' ';
    hdr[k++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) {
        kiln_tensor_free(c);
        return kiln__err(KILN_E_IO, "%s: %s", path, strerror(errno));
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff),
                             (unsigned char)(k >> 8)};
    size_t bytes = kiln__tensor_bytes(src);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)k, f) == (size_t)k &&
             (bytes == 0 || fwrite(src->data, 1, bytes, f) == bytes);
    ok = (fclose(f) == 0) && ok;
    kiln_tensor_free(c);
    if (!ok) return kiln__err(KILN_E_IO, "%s: write failed", path);
    return KILN_OK;
}
