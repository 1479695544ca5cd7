/* src/train/idx.c: IDX files (kiln/train.h: kiln_idx_load).
 *
 * Layout: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
 * 0x0D f32, 0x0E f64), a rank byte, rank big-endian u32 dims, then the
 * elements big-endian, row-major. zlib's gzread reads gzip files and plain
 * ones alike.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/core.h"
#include "kiln/train.h"

/* Reads exactly n bytes; fails naming path and what was being read. */
static kiln_status read_all(gzFile f, const char *path, void *buf, size_t n, const char *what) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0) {
            int err;
            const char *msg = gzerror(f, &err);
            return kiln__err(err < 0 ? KILN_E_IO : KILN_E_FORMAT, "%s: %s (%s at byte %zu of %zu)",
                             path, r < 0 ? msg : "truncated", what, got, n);
        }
        got += (size_t)r;
    }
    return KILN_OK;
}

/* The dtype of an IDX type byte, or UNDEFINED. */
static kiln_dtype idx_dtype(uint8_t code) {
    switch (code) {
    case 0x08: return KILN_DTYPE_U8;
    case 0x09: return KILN_DTYPE_I8;
    case 0x0B: return KILN_DTYPE_I16;
    case 0x0C: return KILN_DTYPE_I32;
    case 0x0D: return KILN_DTYPE_F32;
    case 0x0E: return KILN_DTYPE_F64;
    default: return KILN_DTYPE_UNDEFINED;
    }
}

/* Big-endian elements of size sz to host order, in place. */
static void from_big_endian(uint8_t *p, int64_t n, size_t sz) {
    if (sz == 1) return;
    for (int64_t i = 0; i < n; i++, p += sz)
        for (size_t a = 0, b = sz - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

kiln_status kiln_idx_load(const char *path, kiln_tensor **out) {
    *out = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) return kiln__err(KILN_E_IO, "%s: cannot open", path);
    kiln_tensor *t = NULL;
    uint8_t head[4];
    kiln_status s = read_all(f, path, head, 4, "header");
    kiln_dtype dt = idx_dtype(head[2]);
    if (s == KILN_OK && (head[0] || head[1] || dt == KILN_DTYPE_UNDEFINED || head[3] < 1 ||
                         head[3] > KILN_MAX_DIMS))
        s = kiln__err(KILN_E_FORMAT,
                      "%s: not an IDX file (magic %02x %02x %02x %02x: expected 00 00, a type "
                      "byte 08/09/0b/0c/0d/0e and a rank 1..%d)",
                      path, head[0], head[1], head[2], head[3], KILN_MAX_DIMS);
    int64_t dims[KILN_MAX_DIMS];
    for (int d = 0; s == KILN_OK && d < head[3]; d++) {
        uint8_t b[4];
        s = read_all(f, path, b, 4, "dims");
        dims[d] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
    }
    int64_t n = s == KILN_OK ? kiln__numel(head[3], dims) : 0;
    if (s == KILN_OK && (n < 0 || (uint64_t)n > SIZE_MAX / 8))
        s = kiln__err(KILN_E_FORMAT, "%s: dims too large", path);
    /* the elements are read in growing chunks before the tensor is made, so
     * a header claiming more than the file holds fails as truncated without
     * taking that much memory (gzip hides the true size until read) */
    size_t need = (size_t)n * kiln_dtype_size(dt), have = 0, cap = 0;
    uint8_t *buf = NULL;
    while (s == KILN_OK && have < need) {
        size_t grow = cap ? cap : (size_t)1 << 16;
        if (grow > need - have) grow = need - have;
        uint8_t *b = realloc(buf, cap = have + grow);
        if (!b) {
            s = kiln__err(KILN_E_NOMEM, "out of memory");
            break;
        }
        buf = b;
        s = read_all(f, path, buf + have, grow, "elements");
        have += grow;
    }
    if (s == KILN_OK) s = kiln_tensor_create(dt, head[3], dims, &t);
    if (s == KILN_OK) {
        if (need) memcpy(kiln_tensor_data(t), buf, need);
        from_big_endian(kiln_tensor_data(t), n, kiln_dtype_size(dt));
    }
    free(buf);
    gzclose(f);
    if (s != KILN_OK) {
        kiln_tensor_free(t);
        return s;
    }
    *out = t;
    return KILN_OK;
}
