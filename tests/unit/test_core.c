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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
