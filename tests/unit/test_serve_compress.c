/* tests/unit/test_serve_compress.c: the server's body compression
 * (src/serve/compress.c): Content-Encoding and Accept-Encoding parsing,
 * gzip / deflate round trips against zlib's own output, the inflate limit at
 * its edge, and every refusal (not the coding named, cut short, bytes after
 * the end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "serve/serve_internal.h"

static char err[512];

/* n bytes of text-like data that compresses, from a fixed seed. */
static char *sample(size_t n) {
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        p[i] = "0123456789 ,.[]{}"[(s >> 16) % 17];
    }
    return p;
}

static void test_content_encoding(void **state) {
    (void)state;
    serve_encoding e;
    assert_int_equal(serve_content_encoding(NULL, &e), 0);
    assert_int_equal(e, SERVE_ENC_IDENTITY);
    assert_int_equal(serve_content_encoding("identity", &e), 0);
    assert_int_equal(e, SERVE_ENC_IDENTITY);
    assert_int_equal(serve_content_encoding(" GZip ", &e), 0);
    assert_int_equal(e, SERVE_ENC_GZIP);
    assert_int_equal(serve_content_encoding("x-gzip", &e), 0);
    assert_int_equal(e, SERVE_ENC_GZIP);
    assert_int_equal(serve_content_encoding("deflate", &e), 0);
    assert_int_equal(e, SERVE_ENC_DEFLATE);
    assert_int_equal(serve_content_encoding("br", &e), -1);
    assert_int_equal(serve_content_encoding("gzip, deflate", &e), -1);
    assert_int_equal(serve_content_encoding("gzip deflate", &e), -1);
}

static void test_accept_encoding(void **state) {
    (void)state;
    assert_int_equal(serve_accept_encoding(NULL), SERVE_ENC_IDENTITY);
    assert_int_equal(serve_accept_encoding(""), SERVE_ENC_IDENTITY);
    assert_int_equal(serve_accept_encoding("gzip"), SERVE_ENC_GZIP);
    assert_int_equal(serve_accept_encoding("deflate"), SERVE_ENC_DEFLATE);
    assert_int_equal(serve_accept_encoding("deflate, gzip"), SERVE_ENC_GZIP);
    assert_int_equal(serve_accept_encoding("br, deflate;q=0.5"), SERVE_ENC_DEFLATE);
    assert_int_equal(serve_accept_encoding("gzip;q=0, deflate"), SERVE_ENC_DEFLATE);
    assert_int_equal(serve_accept_encoding("gzip; q = 0"), SERVE_ENC_IDENTITY);
    assert_int_equal(serve_accept_encoding("GZIP;Q=0.001"), SERVE_ENC_GZIP);
    assert_int_equal(serve_accept_encoding("*"), SERVE_ENC_GZIP);
    assert_int_equal(serve_accept_encoding("*;q=0"), SERVE_ENC_IDENTITY);
    assert_int_equal(serve_accept_encoding("identity, br"), SERVE_ENC_IDENTITY);
    assert_int_equal(serve_accept_encoding(",,;;q=1,gzipx"), SERVE_ENC_IDENTITY);
}

/* Compresses with serve_deflate, inflates with zlib (uncompress / gzip
 * wrapper) and with serve_inflate: both give the input back. */
static void roundtrip(serve_encoding e, size_t n) {
    char *in = sample(n), *z, *back;
    size_t zn, bn;
    assert_int_equal(serve_deflate(e, in, n, &z, &zn), 0);
    /* zlib itself reads it (15 + 32: either wrapper, detected) */
    z_stream s;
    memset(&s, 0, sizeof s);
    assert_int_equal(inflateInit2(&s, 15 + 32), Z_OK);
    char *ref = malloc(n + 1);
    s.next_in = (Bytef *)z;
    s.avail_in = (uInt)zn;
    s.next_out = (Bytef *)ref;
    s.avail_out = (uInt)n + 1;
    assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
    assert_int_equal(s.total_out, n);
    inflateEnd(&s);
    assert_memory_equal(ref, in, n);
    /* the header bytes say which wrapper: gzip 1f 8b, zlib 78 */
    if (e == SERVE_ENC_GZIP) assert_int_equal((unsigned char)z[0], 0x1f);
    else assert_int_equal((unsigned char)z[0], 0x78);
    assert_int_equal(serve_inflate(e, z, zn, n, &back, &bn, err, sizeof err), 0);
    assert_int_equal(bn, n);
    assert_memory_equal(back, in, n);
    assert_int_equal(back[n], 0); /* NUL-terminated for the JSON parser */
    free(back);
    /* one byte under its size: refused, naming the limit */
    if (n > 0) {
        assert_int_equal(serve_inflate(e, z, zn, n - 1, &back, &bn, err, sizeof err), -1);
        assert_null(back);
        char lim[32];
        snprintf(lim, sizeof lim, "limit of %zu bytes", n - 1);
        assert_non_null(strstr(err, lim));
    }
    free(ref);
    free(z);
    free(in);
}

static void test_roundtrip(void **state) {
    (void)state;
    const size_t sizes[] = {0, 1, 100, 4095, 4096, 16384, 16385, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        roundtrip(SERVE_ENC_GZIP, sizes[i]);
        roundtrip(SERVE_ENC_DEFLATE, sizes[i]);
    }
}

static void test_refusals(void **state) {
    (void)state;
    const size_t n = 50000;
    char *in = sample(n), *z, *back;
    size_t zn, bn;
    assert_int_equal(serve_deflate(SERVE_ENC_GZIP, in, n, &z, &zn), 0);
    /* plain bytes sent as gzip */
    assert_int_equal(serve_inflate(SERVE_ENC_GZIP, in, n, n, &back, &bn, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid gzip data"));
    /* a gzip stream sent as deflate (the zlib wrapper) */
    assert_int_equal(serve_inflate(SERVE_ENC_DEFLATE, z, zn, n, &back, &bn, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid deflate data"));
    /* cut short, at several points */
    for (size_t cut = 1; cut < zn; cut += zn / 7 + 1) {
        assert_int_equal(serve_inflate(SERVE_ENC_GZIP, z, cut, n, &back, &bn, err, sizeof err), -1);
        assert_null(back);
        assert_non_null(strstr(err, "gzip"));
    }
    assert_int_equal(serve_inflate(SERVE_ENC_GZIP, z, zn - 1, n, &back, &bn, err, sizeof err), -1);
    assert_non_null(strstr(err, "ends inside"));
    /* bytes after the end of the stream */
    char *more = malloc(zn + 3);
    memcpy(more, z, zn);
    memcpy(more + zn, "abc", 3);
    assert_int_equal(serve_inflate(SERVE_ENC_GZIP, more, zn + 3, n, &back, &bn, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "after the end"));
    free(more);
    free(z);
    free(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_encoding),
        cmocka_unit_test(test_accept_encoding),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
