/* src/train/events.c: TensorBoard event files (kiln/train.h).
 *
 * An event file is a sequence of TFRecords, each
 *   u64 length (little-endian), u32 masked CRC-32C of those 8 bytes,
 *   length bytes of data, u32 masked CRC-32C of the data,
 * where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. The data is a
 * tensorflow.Event protocol buffer; the fields written here:
 *   Event   1 wall_time (double, seconds), 2 step (int64),
 *           3 file_version (string, the first record: "brain.Event:2"),
 *           5 summary (Summary)
 *   Summary 1 value (Summary.Value, repeated)
 *   Value   1 tag (string), 2 simple_value (float)
 * encoded by hand below (tags, varints, fixed 32/64-bit little-endian).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/core.h"
#include "kiln/train.h"

struct kiln_events {
    FILE *f;
    char *path; /* owned */
};

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) ------------------ */

static uint32_t crc32c(const unsigned char *p, size_t n) {
    static uint32_t table[256];
    static int ready; /* benign race: every thread computes the same table */
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xffffffffu;
    while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static uint32_t masked_crc(const unsigned char *p, size_t n) {
    uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protocol buffer encoding ------------------------------------------------- */

typedef struct pb {
    unsigned char b[1024];
    size_t n;
    int overflow;
} pb;

static void put(pb *o, const void *p, size_t n) {
    if (o->n + n > sizeof o->b) {
        o->overflow = 1;
        return;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void varint(pb *o, uint64_t v) {
    unsigned char c[10];
    int k = 0;
    do {
        c[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(o, c, (size_t)k);
}

static void le(pb *o, uint64_t v, int bytes) {
    unsigned char c[8];
    for (int i = 0; i < bytes; i++) c[i] = (unsigned char)(v >> (8 * i));
    put(o, c, (size_t)bytes);
}

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_BYTES = 2, WT_FIXED32 = 5 };

static void key(pb *o, int field, int wire) { varint(o, (uint64_t)field << 3 | (uint64_t)wire); }

static void bytes_field(pb *o, int field, const void *p, size_t n) {
    key(o, field, WT_BYTES);
    varint(o, n);
    put(o, p, n);
}

static void double_field(pb *o, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    key(o, field, WT_FIXED64);
    le(o, u, 8);
}

static void float_field(pb *o, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    key(o, field, WT_FIXED32);
    le(o, u, 4);
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Appends one TFRecord holding data[0..n). */
static kiln_status write_record(kiln_events *ev, const unsigned char *data, size_t n) {
    pb head = {0};
    le(&head, n, 8);
    uint32_t hc = masked_crc(head.b, 8), dc = masked_crc(data, n);
    le(&head, hc, 4);
    unsigned char tail[4] = {(unsigned char)dc, (unsigned char)(dc >> 8), (unsigned char)(dc >> 16),
                             (unsigned char)(dc >> 24)};
    if (fwrite(head.b, 1, head.n, ev->f) != head.n || fwrite(data, 1, n, ev->f) != n ||
        fwrite(tail, 1, 4, ev->f) != 4)
        return kiln__err(KILN_E_IO, "%s: write failed: %s", ev->path, strerror(errno));
    return KILN_OK;
}

kiln_status kiln_events_open(const char *dir, kiln_events **out) {
    *out = NULL;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return kiln__err(KILN_E_IO, "cannot create %s: %s", dir, strerror(errno));
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    kiln_events *ev = calloc(1, sizeof *ev);
    size_t len = strlen(dir) + strlen(host) + 64;
    if (!ev || !(ev->path = malloc(len))) {
        free(ev);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    /* a new file every time, never over another run's: the time, host, pid
     * and, in the same second, a counter */
    long long sec = (long long)now_s();
    for (int k = 0; !ev->f && k < 1000; k++) {
        snprintf(ev->path, len, "%s/events.out.tfevents.%lld.%s.%d.%d.kiln", dir, sec, host,
                 (int)getpid(), k);
        ev->f = fopen(ev->path, "wx");
        if (!ev->f && errno != EEXIST) break;
    }
    if (!ev->f) {
        kiln_status s = kiln__err(KILN_E_IO, "cannot create %s: %s", ev->path, strerror(errno));
        free(ev->path);
        free(ev);
        return s;
    }
    pb e = {0};
    double_field(&e, 1, now_s());
    bytes_field(&e, 3, "brain.Event:2", 13);
    kiln_status s = write_record(ev, e.b, e.n);
    if (s != KILN_OK) {
        kiln_events_close(ev);
        return s;
    }
    *out = ev;
    return KILN_OK;
}

kiln_status kiln_events_scalar(kiln_events *ev, const char *tag, int64_t step, double value) {
    pb v = {0}, sum = {0}, e = {0};
    bytes_field(&v, 1, tag, strlen(tag));
    float_field(&v, 2, (float)value);
    bytes_field(&sum, 1, v.b, v.n);
    double_field(&e, 1, now_s());
    key(&e, 2, WT_VARINT);
    varint(&e, (uint64_t)step);
    bytes_field(&e, 5, sum.b, sum.n);
    if (v.overflow || sum.overflow || e.overflow)
        return kiln__err(KILN_E_LIMIT, "event tag '%.40s...' is too long", tag);
    return write_record(ev, e.b, e.n);
}

kiln_status kiln_events_flush(kiln_events *ev) {
    if (fflush(ev->f) != 0)
        return kiln__err(KILN_E_IO, "%s: write failed: %s", ev->path, strerror(errno));
    return KILN_OK;
}

kiln_status kiln_events_close(kiln_events *ev) {
    if (!ev) return KILN_OK;
    kiln_status s = KILN_OK;
    if (fclose(ev->f) != 0) s = kiln__err(KILN_E_IO, "%s: write failed: %s", ev->path, strerror(errno));
    free(ev->path);
    free(ev);
    return s;
}
