/* src/core/strbuf.c: a growing text/byte buffer (kiln__strbuf, core.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int kiln__sb_reserve(kiln__strbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (extra > SIZE_MAX - b->n - 1) return b->oom = 1, -1;
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) return b->oom = 1, -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void kiln__sb_put(kiln__strbuf *b, const void *s, size_t n) {
    if (kiln__sb_reserve(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void kiln__sb_str(kiln__strbuf *b, const char *s) { kiln__sb_put(b, s, strlen(s)); }

void kiln__sb_printf(kiln__strbuf *b, const char *fmt, ...) {
    va_list ap;
    if (kiln__sb_reserve(b, 64)) return;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)w >= b->cap - b->n) {
        if (kiln__sb_reserve(b, (size_t)w)) return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
    }
    b->n += (size_t)w;
}
