/* src/train/safetensors.c: safetensors files (safetensors.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/safetensors.h"

static const struct {
    kiln_dtype dt;
    const char *name;
} st_dtypes[] = {
    {KILN_DTYPE_F32, "F32"}, {KILN_DTYPE_F64, "F64"}, {KILN_DTYPE_F16, "F16"},
    {KILN_DTYPE_BF16, "BF16"}, {KILN_DTYPE_I64, "I64"}, {KILN_DTYPE_I32, "I32"},
    {KILN_DTYPE_I16, "I16"}, {KILN_DTYPE_I8, "I8"}, {KILN_DTYPE_U8, "U8"},
    {KILN_DTYPE_BOOL, "BOOL"},
};

static const char *dtype_name(kiln_dtype dt) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (st_dtypes[i].dt == dt) return st_dtypes[i].name;
    return NULL;
}

static kiln_dtype dtype_of(const char *name) {
    for (size_t i = 0; name && i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return st_dtypes[i].dt;
    return KILN_DTYPE_UNDEFINED;
}

/* ---- writing ----------------------------------------------------------------- */

/* The JSON header of the tensors (data offsets in order) and the metadata. */
static char *header_json(int n, const kiln__st_tensor *t, int n_meta, const char *const *keys,
                         const char *const *values) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    int ok = root && meta;
    if (ok) ok = cJSON_AddItemToObject(root, "__metadata__", meta) != 0;
    else cJSON_Delete(meta);
    for (int i = 0; ok && i < n_meta; i++) ok = cJSON_AddStringToObject(meta, keys[i], values[i]) != NULL;
    size_t off = 0;
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = (size_t)kiln__numel(t[i].ndim, t[i].dims) * kiln_dtype_size(t[i].dtype);
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name), *shape = NULL, *offs = NULL;
        ok = e && cJSON_AddStringToObject(e, "dtype", dtype_name(t[i].dtype)) &&
             (shape = cJSON_AddArrayToObject(e, "shape")) && (offs = cJSON_AddArrayToObject(e, "data_offsets"));
        for (int d = 0; ok && d < t[i].ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].dims[d]));
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

kiln_status kiln__st_write(const char *path, int n, const kiln__st_tensor *t, int n_meta,
                           const char *const *keys, const char *const *values) {
    for (int i = 0; i < n; i++)
        if (!dtype_name(t[i].dtype))
            return kiln__err(KILN_E_UNSUPPORTED, "%s: tensor '%s' is %s, which safetensors has no name for",
                             path, t[i].name, kiln_dtype_name(t[i].dtype));
    char *json = header_json(n, t, n_meta, keys, values);
    if (!json) return kiln__err(KILN_E_NOMEM, "%s: out of memory for the header", path);
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7; /* data 8-byte aligned */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    kiln_status s = KILN_OK;
    if (!f) {
        free(json);
        return kiln__err(KILN_E_IO, "%s: cannot create", tmp);
    }
    unsigned char lenbuf[8];
    for (int b = 0; b < 8; b++) lenbuf[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    int ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
    for (size_t k = len; ok && k < padded; k++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t bytes = (size_t)kiln__numel(t[i].ndim, t[i].dims) * kiln_dtype_size(t[i].dtype);
        ok = fwrite(t[i].data, 1, bytes, f) == bytes;
    }
    free(json);
    if (fclose(f) != 0) ok = 0;
    if (!ok) s = kiln__err(KILN_E_IO, "%s: write failed", tmp);
    if (s == KILN_OK && rename(tmp, path) != 0) s = kiln__err(KILN_E_IO, "%s: cannot rename to %s", tmp, path);
    if (s != KILN_OK) remove(tmp);
    return s;
}

/* ---- reading ---------------------------------------------------------------- */

/* Checks entry e (a tensor of the header): dtype known, shape of
 * non-negative ints, offsets [begin, end) inside the data and matching the
 * shape's bytes. */
static kiln_status check_entry(const kiln__st_file *f, const cJSON *e) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    kiln_dtype d = cJSON_IsString(dt) ? dtype_of(dt->valuestring) : KILN_DTYPE_UNDEFINED;
    if (d == KILN_DTYPE_UNDEFINED || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2 || cJSON_GetArraySize(shape) > KILN_MAX_DIMS)
        return kiln__err(KILN_E_FORMAT, "%s: tensor '%s': bad dtype, shape or data_offsets", f->path,
                         e->string);
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, shape) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15)
            return kiln__err(KILN_E_FORMAT, "%s: tensor '%s': bad shape", f->path, e->string);
        dims[nd++] = (int64_t)v->valuedouble;
    }
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    int64_t numel = kiln__numel(nd, dims);
    if (numel < 0 || !(b >= 0 && en >= b && en <= (double)f->data_len) ||
        en - b != (double)numel * (double)kiln_dtype_size(d))
        return kiln__err(KILN_E_FORMAT, "%s: tensor '%s': data_offsets [%.0f, %.0f) do not hold its "
                         "shape inside the %zu data bytes", f->path, e->string, b, en, f->data_len);
    return KILN_OK;
}

kiln_status kiln__st_read(const char *path, kiln__st_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return kiln__err(KILN_E_IO, "%s: cannot open", path);
    unsigned char lenbuf[8];
    uint64_t hlen = 0;
    kiln_status s = KILN_OK;
    char *json = NULL;
    f->path = kiln__strdup(path);
    if (!f->path) s = kiln__err(KILN_E_NOMEM, "out of memory");
    if (s == KILN_OK && fread(lenbuf, 1, 8, fp) != 8) s = kiln__err(KILN_E_FORMAT, "%s: truncated header", path);
    for (int b = 0; s == KILN_OK && b < 8; b++) hlen |= (uint64_t)lenbuf[b] << (8 * b);
    long end = 0;
    if (s == KILN_OK && (fseek(fp, 0, SEEK_END) != 0 || (end = ftell(fp)) < 0 || fseek(fp, 8, SEEK_SET) != 0))
        s = kiln__err(KILN_E_IO, "%s: cannot seek", path);
    if (s == KILN_OK && hlen > (uint64_t)end - 8)
        s = kiln__err(KILN_E_FORMAT, "%s: header length %llu exceeds the file (%ld bytes)", path,
                      (unsigned long long)hlen, end);
    if (s == KILN_OK) {
        json = malloc((size_t)hlen + 1);
        f->data_len = (size_t)((uint64_t)end - 8 - hlen);
        f->data = malloc(f->data_len + 1);
        if (!json || !f->data) s = kiln__err(KILN_E_NOMEM, "%s: out of memory", path);
    }
    if (s == KILN_OK && (fread(json, 1, (size_t)hlen, fp) != hlen ||
                         fread(f->data, 1, f->data_len, fp) != f->data_len))
        s = kiln__err(KILN_E_IO, "%s: read failed", path);
    fclose(fp);
    if (s == KILN_OK) {
        json[hlen] = 0;
        f->header = cJSON_Parse(json);
        if (!cJSON_IsObject(f->header)) s = kiln__err(KILN_E_FORMAT, "%s: the header is not a JSON object", path);
    }
    free(json);
    const cJSON *e;
    if (s == KILN_OK) cJSON_ArrayForEach(e, f->header) {
            if (strcmp(e->string, "__metadata__") == 0) continue;
            if ((s = check_entry(f, e)) != KILN_OK) break;
        }
    if (s != KILN_OK) kiln__st_close(f);
    return s;
}

void kiln__st_close(kiln__st_file *f) {
    cJSON_Delete(f->header);
    free(f->data);
    free(f->path);
    memset(f, 0, sizeof *f);
}

kiln_status kiln__st_get(const kiln__st_file *f, const char *name, kiln_dtype dt, int ndim,
                         const int64_t *dims, const void **data) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!e) return kiln__err(KILN_E_NOTFOUND, "%s: no tensor '%s'", f->path, name);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int ok = dtype_of(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring) == dt &&
             cJSON_GetArraySize(shape) == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble == dims[d];
    if (!ok) {
        char buf[96];
        return kiln__err(KILN_E_SHAPE, "%s: tensor '%s' is not %s %s as expected", f->path, name,
                         dtype_name(dt) ? dtype_name(dt) : "?", kiln__shape_str(ndim, dims, buf, sizeof buf));
    }
    *data = f->data + (size_t)cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(e, "data_offsets"), 0)->valuedouble;
    return KILN_OK;
}

const char *kiln__st_meta(const kiln__st_file *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->header, "__metadata__");
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
