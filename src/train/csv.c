/* src/train/csv.c: numeric CSV files (kiln/train.h: kiln_csv_load).
 *
 * Comma-separated numbers, one row per line (\n or \r\n), every row with the
 * same number of fields; spaces around a field are ignored; blank lines are
 * skipped; a first line that is not all numbers is a header and skipped too.
 * Read twice: once to count rows and columns, once to parse into the tensor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "kiln/train.h"

/* Parses line (NUL-terminated, no newline) into up to max values (vals may be
 * NULL to count). Returns the number of fields, or -1 - k if field k is not a
 * number. */
static int64_t parse_line(char *line, float *vals, int64_t max) {
    int64_t k = 0;
    for (char *p = line;; k++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        while (*end == ' ' || *end == '\t') end++;
        if (end == p || (*end != ',' && *end != 0)) return -1 - k;
        if (vals && k < max) vals[k] = (float)v;
        if (*end == 0) return k + 1;
        p = end + 1;
    }
}

/* 1 if the line has only whitespace. */
static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return 0;
    return 1;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
}

kiln_status kiln_csv_load(const char *path, kiln_tensor **out) {
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return kiln__err(KILN_E_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int64_t rows = 0, cols = -1, lineno = 0, header = 0;
    kiln_status s = KILN_OK;
    kiln_tensor *t = NULL;
    for (int pass = 0; pass < 2 && s == KILN_OK; pass++) {
        float *data = pass ? kiln_tensor_data(t) : NULL;
        int64_t r = 0;
        lineno = 0;
        rewind(f);
        while (s == KILN_OK && getline(&line, &cap, f) >= 0) {
            lineno++;
            chomp(line);
            if (blank(line) || (header && lineno == 1)) continue;
            int64_t k = parse_line(line, data ? data + r * cols : NULL, cols);
            if (k < 0 && lineno == 1 && pass == 0) { /* a header */
                header = 1;
                continue;
            }
            if (k < 0)
                s = kiln__err(KILN_E_FORMAT, "%s: line %lld, field %lld is not a number", path,
                              (long long)lineno, (long long)(-k));
            else if (cols >= 0 && k != cols)
                s = kiln__err(KILN_E_FORMAT, "%s: line %lld has %lld fields, the rows before %lld",
                              path, (long long)lineno, (long long)k, (long long)cols);
            cols = k;
            r++;
        }
        if (s == KILN_OK && ferror(f)) s = kiln__err(KILN_E_IO, "%s: read error", path);
        if (s == KILN_OK && pass == 0) {
            rows = r;
            if (rows == 0) s = kiln__err(KILN_E_FORMAT, "%s: no rows of numbers", path);
            else s = kiln_tensor_create(KILN_DTYPE_F32, 2, (int64_t[]){rows, cols}, &t);
        }
    }
    free(line);
    fclose(f);
    if (s != KILN_OK) {
        kiln_tensor_free(t);
        return s;
    }
    *out = t;
    return KILN_OK;
}
