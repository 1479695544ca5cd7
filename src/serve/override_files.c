/* src/serve/override_files.c: a load request's file overrides (Triton's
 * "file:<path>" load parameters, base64 in HTTP): the files, and nothing
 * else, form the directory the model is loaded from. They are written under
 * a new temporary directory ($TMPDIR or /tmp, kiln-load-XXXXXX/<model>/),
 * loaded like a repository directory, and removed after the load. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/serve_internal.h"

/* The 6-bit value of base64 character ch, or -1. */
static int b64_value(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

int serve_base64_decode(const char *text, unsigned char **out, size_t *len) {
    size_t n = strlen(text), pad = 0;
    if (n % 4) return -1;
    while (pad < 2 && n > pad && text[n - 1 - pad] == '=') pad++;
    n -= pad; /* the data characters: n % 4 is 0, 3 or 2 (one or two '=') */
    unsigned char *d = malloc(n / 4 * 3 + 3);
    if (!d) return -1;
    size_t k = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)text[i]);
        if (v < 0) {
            free(d);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            d[k++] = (unsigned char)(acc >> 16), d[k++] = (unsigned char)(acc >> 8);
            d[k++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) d[k++] = (unsigned char)(acc >> 4);
    if (n % 4 == 3) d[k++] = (unsigned char)(acc >> 10), d[k++] = (unsigned char)(acc >> 2);
    *out = d;
    *len = k;
    return 0;
}

/* 1 if p is a relative path of plain components ("1/model.onnx"): no
 * leading or doubled '/', no "." or "..", no control characters. */
static int plain_relative_path(const char *p) {
    if (!*p || strlen(p) > 512) return 0;
    for (const char *c = p;;) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)c[i] < 0x20) return 0;
        if (!c[n]) return 1;
        c += n + 1;
    }
}

/* Writes len bytes to path, creating its missing parent directories. */
static int write_file(char *path, size_t dir_len, const unsigned char *data, size_t len) {
    for (char *s = path + dir_len + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        int bad = mkdir(path, 0700) && errno != EEXIST;
        *s = '/';
        if (bad) return -1;
    }
    FILE *f = fopen(path, "wbx"); /* a path given twice fails here */
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int serve_override_write(const char *name, const serve_file *files, int n, char *root,
                         size_t rootlen, char *dir, size_t dirlen, char *err, size_t errlen) {
    root[0] = 0;
    for (int i = 0; i < n; i++)
        if (!plain_relative_path(files[i].path)) {
            snprintf(err, errlen, "file override 'file:%.200s': expected a relative path such as "
                     "'1/model.onnx' (no '..', no leading '/')", files[i].path);
            return -1;
        }
    const char *tmp = getenv("TMPDIR");
    if (snprintf(root, rootlen, "%s/kiln-load-XXXXXX", tmp && *tmp ? tmp : "/tmp") >= (int)rootlen ||
        !mkdtemp(root)) {
        snprintf(err, errlen, "file overrides: cannot create a temporary directory in %s: %s",
                 tmp && *tmp ? tmp : "/tmp", strerror(errno));
        root[0] = 0;
        return -1;
    }
    if (snprintf(dir, dirlen, "%s/%s", root, name) >= (int)dirlen || mkdir(dir, 0700)) {
        snprintf(err, errlen, "file overrides: cannot create %s", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i].path) >= (int)sizeof path ||
            write_file(path, strlen(dir), files[i].data, files[i].len)) {
            snprintf(err, errlen, "file override 'file:%.200s': cannot write it (%s)", files[i].path,
                     errno == EEXIST ? "given twice, or a directory of another file" : strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void serve_override_remove(const char *root) {
    if (root[0]) nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
