/* tests/unit/test_core.c: status/errors, dtypes, tensors, views, npy, broadcasting,
 * iteration, thread pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static void test_status_names(void **state) {
    assert_string_equal(kiln_status_name(KILN_OK), "OK");
    assert_string_equal(kiln_status_name(KILN_E_FORMAT), "E_FORMAT");
    assert_string_equal(kiln_status_text(KILN_E_NOMEM), "out of memory");
    assert_string_equal(kiln_status_name((kiln_status)-999), "E_UNKNOWN");
}

static void test_error_messages(void **state) {
    kiln__err_clear();
    assert_string_equal(kiln_last_error(), "");
    assert_int_equal(kiln__err(KILN_E_SHAPE, "input '%s' bad", "x"), KILN_E_SHAPE);
    assert_string_equal(kiln_last_error(), "input 'x' bad");
    kiln__err_prefix(KILN_E_SHAPE, "model.onnx: node '%s'", "n1");
    assert_string_equal(kiln_last_error(), "model.onnx: node 'n1': input 'x' bad");
}

static void test_dtype_traits(void **state) {
    assert_int_equal(kiln_dtype_size(KILN_DTYPE_F32), 4);
    assert_int_equal(kiln_dtype_size(KILN_DTYPE_BF16), 2);
    assert_int_equal(kiln_dtype_size(KILN_DTYPE_U64), 8);
    assert_int_equal(kiln_dtype_size((kiln_dtype)14), 0); /* complex: not supported */
    assert_string_equal(kiln_dtype_name(KILN_DTYPE_F16), "float16");
    assert_true(kiln__dtype_is_float(KILN_DTYPE_BF16));
    assert_false(kiln__dtype_is_float(KILN_DTYPE_I32));
    assert_true(kiln__dtype_is_int(KILN_DTYPE_U16));
    assert_false(kiln__dtype_is_int(KILN_DTYPE_BOOL));
}

static void test_half_conversions(void **state) {
    /* exact values */
    assert_int_equal(kiln_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(kiln_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(kiln_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kiln_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    assert_int_equal(kiln_f32_to_f16(5.9604644775390625e-8f), 0x0001); /* smallest subnormal */
    assert_true(isnan(kiln_f16_to_f32(kiln_f32_to_f16(NAN))));
    assert_true(isinf(kiln_f16_to_f32(0x7c00)));
    /* every half round-trips through float */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* nan payloads */
        assert_int_equal(kiln_f32_to_f16(kiln_f16_to_f32((uint16_t)h)), h);
    }
    /* round to nearest even: 1 + 2^-11 is halfway between 1 and 1+2^-10 */
    assert_int_equal(kiln_f32_to_f16(1.0f + 0.00048828125f), 0x3c00);
    assert_int_equal(kiln_f32_to_f16(1.0f + 3 * 0.00048828125f), 0x3c02);
    /* bfloat16 */
    assert_int_equal(kiln_f32_to_bf16(1.0f), 0x3f80);
    assert_true(kiln_bf16_to_f32(kiln_f32_to_bf16(3.140625f)) == 3.140625f);
    assert_int_equal(kiln_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80); /* tie to even */
    assert_true(isnan(kiln_bf16_to_f32(kiln_f32_to_bf16(NAN))));
}

static void test_tensor_create_and_views(void **state) {
    int64_t dims[] = {2, 3, 4};
    kiln_tensor *t, *v, *s;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 3, dims, &t), KILN_OK);
    assert_int_equal(kiln_tensor_numel(t), 24);
    assert_int_equal(kiln_tensor_strides(t)[0], 12);
    float *d = kiln_tensor_data(t);
    for (int i = 0; i < 24; i++) d[i] = (float)i;
    int perm[] = {2, 0, 1};
    assert_int_equal(kiln_tensor_transpose_view(t, perm, &v), KILN_OK);
    assert_int_equal(kiln_tensor_dims(v)[0], 4);
    assert_false(kiln_tensor_is_contiguous(v));
    kiln_tensor *c;
    assert_int_equal(kiln_tensor_copy(v, KILN_DTYPE_UNDEFINED, &c), KILN_OK);
    const float *cd = kiln_tensor_data(c);
    /* c[k][i][j] = t[i][j][k] */
    assert_true(cd[1 * 6 + 1 * 3 + 2] == d[1 * 12 + 2 * 4 + 1]);
    assert_int_equal(kiln_tensor_slice_view(t, 2, 3, -1, -2, &s), KILN_OK);
    assert_int_equal(kiln_tensor_dims(s)[2], 2); /* elements 3, 1 */
    kiln_tensor *sc;
    assert_int_equal(kiln_tensor_copy(s, KILN_DTYPE_I32, &sc), KILN_OK);
    const int32_t *sd = kiln_tensor_data(sc);
    assert_int_equal(sd[0], 3);
    assert_int_equal(sd[1], 1);
    assert_int_equal(sd[2], 7);
    kiln_tensor_free(s);
    assert_int_not_equal(kiln_tensor_slice_view(t, 0, 0, 5, 1, &s), KILN_OK);
    assert_null(s);
    kiln_tensor *r;
    int64_t rd[] = {6, 4};
    assert_int_equal(kiln_tensor_reshape_view(t, 2, rd, &r), KILN_OK);
    assert_int_not_equal(kiln_tensor_reshape_view(v, 2, rd, &s), KILN_OK); /* non-contiguous */
    kiln_tensor_free(r), kiln_tensor_free(sc), kiln_tensor_free(c), kiln_tensor_free(v);
    kiln_tensor_free(t);
    /* limits: huge and negative shapes are refused before allocation */
    int64_t huge[] = {1LL << 40, 1LL << 40};
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, huge, &t), KILN_E_LIMIT);
    assert_null(t);
    int64_t neg[] = {-1};
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 1, neg, &t), KILN_E_LIMIT);
}

static void test_tensor_conversions(void **state) {
    int64_t n = 4;
    kiln_tensor *t, *u, *s, *back;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 1, &n, &t), KILN_OK);
    float *d = kiln_tensor_data(t);
    d[0] = 1.5f, d[1] = -2.75f, d[2] = 0.0f, d[3] = 300.0f;
    assert_int_equal(kiln_tensor_copy(t, KILN_DTYPE_I8, &u), KILN_OK);
    const int8_t *ud = kiln_tensor_data(u);
    assert_int_equal(ud[0], 1);
    assert_int_equal(ud[1], -2); /* truncation toward zero */
    assert_int_equal(kiln_tensor_copy(t, KILN_DTYPE_STRING, &s), KILN_OK);
    char **sd = kiln_tensor_data(s);
    assert_string_equal(sd[1], "-2.75");
    assert_int_equal(kiln_tensor_copy(s, KILN_DTYPE_F64, &back), KILN_OK);
    assert_true(((double *)kiln_tensor_data(back))[3] == 300.0);
    kiln_tensor *b;
    assert_int_equal(kiln_tensor_copy(t, KILN_DTYPE_BOOL, &b), KILN_OK);
    assert_int_equal(((uint8_t *)kiln_tensor_data(b))[2], 0);
    assert_int_equal(((uint8_t *)kiln_tensor_data(b))[1], 1);
    kiln_tensor_free(b), kiln_tensor_free(back), kiln_tensor_free(s), kiln_tensor_free(u);
    kiln_tensor_free(t);
}

static void test_npy_round_trip(void **state) {
    char path[] = "/tmp/kiln_test_npy_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    kiln_dtype types[] = {KILN_DTYPE_F32, KILN_DTYPE_I64, KILN_DTYPE_BOOL, KILN_DTYPE_F16,
                          KILN_DTYPE_U8};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        int64_t dims[] = {3, 1, 2};
        kiln_tensor *t, *r;
        assert_int_equal(kiln_tensor_create(types[k], 3, dims, &t), KILN_OK);
        for (int i = 0; i < 6; i++) kiln__st_i(types[k], kiln_tensor_data(t), i, i % 2);
        assert_int_equal(kiln_tensor_save_npy(t, path), KILN_OK);
        assert_int_equal(kiln_tensor_load_npy(path, &r), KILN_OK);
        assert_int_equal(kiln_tensor_dtype(r), types[k]);
        assert_int_equal(kiln_tensor_ndim(r), 3);
        assert_memory_equal(kiln_tensor_data(r), kiln_tensor_data(t), 6 * kiln_dtype_size(types[k]));
        kiln_tensor_free(t), kiln_tensor_free(r);
    }
    /* a scalar */
    kiln_tensor *t, *r;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F64, 0, NULL, &t), KILN_OK);
    assert_int_equal(kiln_tensor_save_npy(t, path), KILN_OK);
    assert_int_equal(kiln_tensor_load_npy(path, &r), KILN_OK);
    assert_int_equal(kiln_tensor_ndim(r), 0);
    kiln_tensor_free(t), kiln_tensor_free(r);
    /* truncated and garbage files are refused with a message naming the file */
    FILE *f = fopen(path, "wb");
    fputs("\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'", f);
    fclose(f);
    assert_int_equal(kiln_tensor_load_npy(path, &r), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), path));
    f = fopen(path, "wb");
    fputs("hello world, not numpy", f);
    fclose(f);
    assert_int_equal(kiln_tensor_load_npy(path, &r), KILN_E_FORMAT);
    assert_int_equal(kiln_tensor_load_npy("/nonexistent/x.npy", &r), KILN_E_IO);
    unlink(path);
}

static void test_broadcast_and_iter(void **state) {
    int64_t a[] = {2, 1, 4}, b[] = {3, 1}, o[KILN_MAX_DIMS];
    int n;
    assert_int_equal(kiln__broadcast(3, a, 2, b, &n, o), KILN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(o[0], 2);
    assert_int_equal(o[1], 3);
    assert_int_equal(o[2], 4);
    int64_t c[] = {5};
    assert_int_equal(kiln__broadcast(3, a, 1, c, &n, o), KILN_E_SHAPE);
    assert_non_null(strstr(kiln_last_error(), "(2,1,4)"));
    int64_t st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    int64_t od[] = {2, 3, 4};
    kiln__bcast_strides(2, b, 3, od, st[0]);
    assert_int_equal(st[0][0], 0);
    assert_int_equal(st[0][1], 1);
    assert_int_equal(st[0][2], 0);
    kiln__iter it;
    kiln__iter_init(&it, 3, od, 1, st);
    int64_t seen[24];
    for (int k = 0; k < 24; k++, kiln__iter_next(&it)) seen[k] = it.off[0];
    for (int k = 0; k < 24; k++) assert_int_equal(seen[k], (k / 4) % 3);
    kiln__iter_seek(&it, 17);
    assert_int_equal(it.off[0], (17 / 4) % 3);
}

typedef struct {
    int64_t n;
    int64_t *hits;
} pool_arg;

static void pool_task(void *a, int ith, int nth) {
    pool_arg *p = a;
    int64_t lo, hi;
    kiln__split(p->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) p->hits[i]++;
}

static void test_thread_pool(void **state) {
    kiln__pool *p;
    assert_int_equal(kiln__pool_create(4, &p), KILN_OK);
    assert_int_equal(kiln__pool_size(p), 4);
    int64_t hits[1001] = {0};
    pool_arg a = {1001, hits};
    for (int r = 0; r < 200; r++) kiln__pool_run(p, 0, pool_task, &a);
    for (int i = 0; i < 1001; i++) assert_int_equal(hits[i], 200);
    kiln__pool_run(p, 1, pool_task, &a); /* a single thread */
    assert_int_equal(hits[1000], 201);
    kiln__pool_free(p);
    assert_int_equal(kiln__pool_create(100000, &p), KILN_E_INVAL);
}

/* The spin-then-sleep hand-off: with no spinning (every task wakes sleeping
 * workers, the caller sleeps on the rest), with a short spin and pauses
 * longer than it (threads fall asleep between tasks), and with the default;
 * every task seen exactly once by every thread, fewer threads than the pool
 * included. */
static void test_thread_pool_handoff(void **state) {
    (void)state;
    const char *spins[] = {"0", "20", NULL};
    for (int v = 0; v < 3; v++) {
        if (spins[v])
            setenv("KILN_POOL_SPIN_US", spins[v], 1);
        else
            unsetenv("KILN_POOL_SPIN_US");
        kiln__pool *p;
        assert_int_equal(kiln__pool_create(3, &p), KILN_OK);
        int64_t hits[97] = {0};
        pool_arg a = {97, hits};
        int runs = 0;
        for (int r = 0; r < 300; r++) {
            kiln__pool_run(p, r % 3 == 0 ? 2 : 0, pool_task, &a);
            runs++;
            if (v == 1 && r % 50 == 0) usleep(200); /* past the 20 us spin */
        }
        for (int i = 0; i < 97; i++) assert_int_equal(hits[i], runs);
        kiln__pool_free(p);
    }
    unsetenv("KILN_POOL_SPIN_US");
}

/* float8 / float4 / int4 / int2: traits, exhaustive code round trips, rounding
 * and saturation (expected codes from ml_dtypes, ONNX's reference). */
static int nan_codes(kiln_dtype dt) {
    int n = 0, codes = dt == KILN_DTYPE_F4E2M1 ? 16 : 256;
    for (int c = 0; c < codes; c++) n += isnan(kiln__minifloat_to_f(dt, (uint8_t)c)) != 0;
    return n;
}

static void test_narrow_dtypes(void **state) {
    static const kiln_dtype f8_types[] = {KILN_DTYPE_F8E4M3FN, KILN_DTYPE_F8E4M3FNUZ, KILN_DTYPE_F8E5M2,
                                          KILN_DTYPE_F8E5M2FNUZ};
    /* traits */
    assert_int_equal(KILN_DTYPE_F8E4M3FN, 17);
    assert_int_equal(KILN_DTYPE_I2, 26);
    for (int dt = 17; dt <= 26; dt++) assert_int_equal(kiln_dtype_size((kiln_dtype)dt), 1);
    assert_string_equal(kiln_dtype_name(KILN_DTYPE_F8E5M2FNUZ), "float8e5m2fnuz");
    assert_string_equal(kiln_dtype_name(KILN_DTYPE_U4), "uint4");
    assert_int_equal(kiln__dtype_bits(KILN_DTYPE_I4), 4);
    assert_int_equal(kiln__dtype_bits(KILN_DTYPE_F4E2M1), 4);
    assert_int_equal(kiln__dtype_bits(KILN_DTYPE_U2), 2);
    assert_int_equal(kiln__dtype_bits(KILN_DTYPE_F8E8M0), 8);
    assert_int_equal(kiln__dtype_bits(KILN_DTYPE_F32), 32);
    assert_true(kiln__dtype_is_float(KILN_DTYPE_F8E4M3FN));
    assert_true(kiln__dtype_is_minifloat(KILN_DTYPE_F4E2M1));
    assert_false(kiln__dtype_is_minifloat(KILN_DTYPE_F16));
    assert_true(kiln__dtype_is_int(KILN_DTYPE_I2));
    assert_false(kiln__dtype_is_float(KILN_DTYPE_U4));
    assert_true(kiln__dtype_is_signed(KILN_DTYPE_I4));
    assert_false(kiln__dtype_is_signed(KILN_DTYPE_U4));

    /* every float8 code: NaN codes decode to NaN, the others round-trip (saturating
     * or not), and positive codes increase */
    assert_int_equal(nan_codes(KILN_DTYPE_F8E4M3FN), 2);   /* S.1111.111 */
    assert_int_equal(nan_codes(KILN_DTYPE_F8E4M3FNUZ), 1); /* 0x80 */
    assert_int_equal(nan_codes(KILN_DTYPE_F8E5M2), 6);     /* S.11111.{01,10,11} */
    assert_int_equal(nan_codes(KILN_DTYPE_F8E5M2FNUZ), 1);
    assert_int_equal(nan_codes(KILN_DTYPE_F8E8M0), 1);     /* 0xff */
    assert_int_equal(nan_codes(KILN_DTYPE_F4E2M1), 0);
    for (int t = 0; t < 4; t++) {
        double prev = -1;
        for (int c = 0; c < 256; c++) {
            double v = kiln__minifloat_to_f(f8_types[t], (uint8_t)c);
            if (isnan(v)) continue;
            if (c < 0x80) {
                assert_true(v > prev || (c == 0 && v == 0));
                prev = v;
            }
            assert_int_equal(kiln__minifloat_from_f(f8_types[t], v, 0), c);
            if (!isinf(v)) assert_int_equal(kiln__minifloat_from_f(f8_types[t], v, 1), c);
        }
    }
    for (int c = 0; c < 16; c++) { /* float4e2m1: 0 0.5 1 1.5 2 3 4 6 and negatives */
        static const double pos[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
        double v = kiln__minifloat_to_f(KILN_DTYPE_F4E2M1, (uint8_t)c);
        assert_true(v == (c & 8 ? -pos[c & 7] : pos[c & 7]));
        assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, v, 0), c);
    }
    for (int c = 0; c < 255; c++) { /* float8e8m0: 2^(c-127), exact in every mode */
        double v = kiln__minifloat_to_f(KILN_DTYPE_F8E8M0, (uint8_t)c);
        assert_true(v == ldexp(1.0, c - 127));
        for (int mode = KILN__E8M0_UP; mode <= KILN__E8M0_NEAREST; mode++)
            if (c > 0 || mode != KILN__E8M0_UP)
                assert_int_equal(kiln__f8e8m0_from_f(v, 0, (kiln__e8m0_round)mode), c);
    }
    /* 2^-127 is a float32 subnormal whose mantissa field is nonzero: "up" bumps it
     * (as the ONNX reference does) */
    assert_int_equal(kiln__f8e8m0_from_f(ldexp(1.0, -127), 0, KILN__E8M0_UP), 1);

    /* e4m3fn: ties to even, NaN instead of overflow unless saturating, signed NaN and zero */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, 464, 0), 0x7e); /* tie: 448 */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, 465, 0), 0x7f); /* NaN */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, 465, 1), 0x7e);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, INFINITY, 1), 0x7e);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, -INFINITY, 0), 0xff);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, NAN, 1), 0x7f);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, -0.0, 1), 0x80);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, 0.4, 1), 45); /* 0.40625 */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, ldexp(1, -9), 1), 0x01);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, ldexp(1, -10), 1), 0x00);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FN, ldexp(1.5, -10), 1), 0x01);
    /* e4m3fnuz: one NaN (0x80), no -0 */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, -0.0, 1), 0x00);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, -1e-30, 0), 0x00);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, 240, 0), 0x7f);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, 1000, 0), 0x80);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, 1000, 1), 0x7f);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E4M3FNUZ, NAN, 1), 0x80);
    /* e5m2: IEEE-like inf */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2, 57344, 0), 0x7b);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2, 61440, 0), 0x7c); /* tie: inf */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2, 61440, 1), 0x7b);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2, NAN, 0), 0x7e);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2, -NAN, 0), 0xfe);
    assert_true(isinf(kiln__minifloat_to_f(KILN_DTYPE_F8E5M2, 0xfc)) &&
                kiln__minifloat_to_f(KILN_DTYPE_F8E5M2, 0xfc) < 0);
    /* e5m2fnuz */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2FNUZ, 57344, 0), 0x7f);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2FNUZ, INFINITY, 0), 0x80);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F8E5M2FNUZ, INFINITY, 1), 0x7f);
    /* float4e2m1: ties to even, always saturating, NaN as ml_dtypes gives it */
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, 0.25, 0), 0x0);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, 0.75, 0), 0x2);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, 2.5, 0), 0x4);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, 5, 0), 0x6);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, 100, 0), 0x7);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, -INFINITY, 0), 0xf);
    assert_int_equal(kiln__minifloat_from_f(KILN_DTYPE_F4E2M1, NAN, 0), 0x8);
    /* float8e8m0 rounding modes and saturation */
    assert_int_equal(kiln__f8e8m0_from_f(0.124, 1, KILN__E8M0_UP), 124);
    assert_int_equal(kiln__f8e8m0_from_f(0.124, 1, KILN__E8M0_DOWN), 123);
    assert_int_equal(kiln__f8e8m0_from_f(0.124, 1, KILN__E8M0_NEAREST), 124);
    assert_int_equal(kiln__f8e8m0_from_f(1.4, 1, KILN__E8M0_UP), 128);
    assert_int_equal(kiln__f8e8m0_from_f(1.4, 1, KILN__E8M0_NEAREST), 127);
    assert_int_equal(kiln__f8e8m0_from_f(1.5, 1, KILN__E8M0_NEAREST), 128);
    assert_int_equal(kiln__f8e8m0_from_f(0, 1, KILN__E8M0_UP), 0);
    assert_int_equal(kiln__f8e8m0_from_f(NAN, 1, KILN__E8M0_UP), 0xff);
    assert_int_equal(kiln__f8e8m0_from_f(3.4e38, 1, KILN__E8M0_UP), 0xfe);
    assert_int_equal(kiln__f8e8m0_from_f(3.4e38, 0, KILN__E8M0_UP), 0xff);

    /* 4- and 2-bit integers: every value round-trips, wider values wrap */
    static const struct { kiln_dtype dt; int lo, hi; } ints[] = {
        {KILN_DTYPE_I4, -8, 7}, {KILN_DTYPE_U4, 0, 15}, {KILN_DTYPE_I2, -2, 1}, {KILN_DTYPE_U2, 0, 3}};
    uint8_t b[4];
    for (int t = 0; t < 4; t++) {
        int span = ints[t].hi - ints[t].lo + 1;
        for (int v = ints[t].lo - 2 * span; v <= ints[t].hi + 2 * span; v++) {
            kiln__st_i(ints[t].dt, b, 0, v);
            int64_t want = ((v - ints[t].lo) % span + span) % span + ints[t].lo;
            assert_int_equal(kiln__ld_i(ints[t].dt, b, 0), want);
            assert_true(kiln__ld_f(ints[t].dt, b, 0) == (double)want);
        }
    }
    kiln__st_f(KILN_DTYPE_I4, b, 0, 7.9); /* truncates */
    assert_int_equal(kiln__ld_i(KILN_DTYPE_I4, b, 0), 7);
    kiln__st_f(KILN_DTYPE_I4, b, 1, -8.5);
    assert_int_equal(kiln__ld_i(KILN_DTYPE_I4, b, 1), -8);
    kiln__st_f(KILN_DTYPE_U2, b, 2, NAN);
    assert_int_equal(kiln__ld_i(KILN_DTYPE_U2, b, 2), 0);
    assert_int_equal((int8_t)b[1], -8); /* int4 is stored sign-extended, one per byte */

    /* generic access: float8 stores saturate, loads are exact, ints truncate */
    kiln__st_f(KILN_DTYPE_F8E4M3FN, b, 0, 1000.0);
    assert_int_equal(b[0], 0x7e);
    assert_true(kiln__ld_f(KILN_DTYPE_F8E4M3FN, b, 0) == 448.0);
    kiln__st_i(KILN_DTYPE_F8E5M2, b, 1, -3);
    assert_true(kiln__ld_f(KILN_DTYPE_F8E5M2, b, 1) == -3.0);
    kiln__st_f(KILN_DTYPE_F8E4M3FN, b, 2, -2.5);
    assert_int_equal(kiln__ld_i(KILN_DTYPE_F8E4M3FN, b, 2), -2);

    /* tensor copies convert through the same rules; .npy refuses these dtypes */
    int64_t dims[1] = {3};
    float src[3] = {0.3f, -1000.0f, 2.5f};
    kiln_tensor *t, *f8, *back;
    assert_int_equal(kiln_tensor_wrap(KILN_DTYPE_F32, 1, dims, src, &t), KILN_OK);
    assert_int_equal(kiln_tensor_copy(t, KILN_DTYPE_F8E5M2, &f8), KILN_OK);
    assert_int_equal(kiln_tensor_copy(f8, KILN_DTYPE_F32, &back), KILN_OK);
    const float *bv = kiln_tensor_data(back);
    assert_true(bv[0] == 0.3125f && bv[1] == -1024.0f && bv[2] == 2.5f);
    char path[] = "/tmp/kiln_test_f8_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(kiln_tensor_save_npy(f8, path), KILN_E_UNSUPPORTED);
    assert_non_null(strstr(kiln_last_error(), "float8e5m2"));
    unlink(path);
    kiln_tensor_free(t);
    kiln_tensor_free(f8);
    kiln_tensor_free(back);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_dtype_traits),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_tensor_create_and_views),
        cmocka_unit_test(test_tensor_conversions),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_broadcast_and_iter),
        cmocka_unit_test(test_thread_pool),
        cmocka_unit_test(test_thread_pool_handoff),
        cmocka_unit_test(test_narrow_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
