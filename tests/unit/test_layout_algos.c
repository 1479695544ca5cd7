/* tests/unit/test_layout_algos.c: the data movement algorithms
 * (src/cpu/kernels/layout.c) against the reference kernels, exactly (they
 * move bytes), forced, at 1 and 2 threads, on fresh random inputs.
 *
 * transpose_copy: a channel shuffle (merged axes, last axis kept), NCHW to
 * NHWC and back (last axis moved, tiles cut at the edges), plain 2-D
 * transposes of odd sizes, the default (reversed) permutation, axes of size
 * 1, the identity, a scalar-like shape, dtypes of 1, 2, 4 and 8 bytes (4:
 * the AVX2 tiles where the CPU has AVX2).
 * concat_copy: axes 0, 1, the last and negative, several inputs of unequal
 * sizes, an empty input, 1- and 8-byte dtypes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "algo_harness.h"

static unsigned seed = 4242;

static void transpose_check(kiln_dtype dt, int ndim, const int64_t *dims, const int64_t *perm) {
    ah_case c;
    ah_case_init(&c, "Transpose", "", 17, 1);
    ah_input(&c, ah_random(dt, ndim, dims, &seed, -100, 100), 0);
    if (perm) ah_attr_ints(&c, "perm", ndim, perm);
    for (int t = 1; t <= 2; t++) ah_run_algo(&c, "transpose_copy", KILN_PRECISION_FP32, t, 0);
    ah_case_free(&c);
}

static void test_transpose(void **state) {
    (void)state;
    static const kiln_dtype dts[] = {KILN_DTYPE_U8, KILN_DTYPE_F16, KILN_DTYPE_F32, KILN_DTYPE_I64};
    for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
        const kiln_dtype dt = dts[i];
        /* channel shuffle: (N, g, C/g, H, W) -> (N, C/g, g, H, W) */
        transpose_check(dt, 5, (int64_t[]){2, 4, 17, 7, 6}, (int64_t[]){0, 2, 1, 3, 4});
        /* NCHW -> NHWC and back */
        transpose_check(dt, 4, (int64_t[]){2, 35, 5, 9}, (int64_t[]){0, 2, 3, 1});
        transpose_check(dt, 4, (int64_t[]){1, 5, 9, 3}, (int64_t[]){0, 3, 1, 2});
        /* 2-D, sizes off the tile */
        transpose_check(dt, 2, (int64_t[]){17, 33}, (int64_t[]){1, 0});
        transpose_check(dt, 2, (int64_t[]){1, 40}, (int64_t[]){1, 0});
        /* a sequence model's logits: (S, N, C) -> (N, C, S), whole 8x8 blocks and edges */
        transpose_check(dt, 3, (int64_t[]){21, 3, 40}, (int64_t[]){1, 2, 0});
        /* reversed (no perm), 3-D */
        transpose_check(dt, 3, (int64_t[]){3, 18, 20}, NULL);
        /* attention: (B, S, H, D) -> (B, H, S, D) and (B, H, D, S) */
        transpose_check(dt, 4, (int64_t[]){2, 13, 3, 8}, (int64_t[]){0, 2, 1, 3});
        transpose_check(dt, 4, (int64_t[]){2, 13, 3, 8}, (int64_t[]){0, 2, 3, 1});
        /* axes of size 1, the identity, one element */
        transpose_check(dt, 4, (int64_t[]){1, 6, 1, 5}, (int64_t[]){2, 3, 0, 1});
        transpose_check(dt, 3, (int64_t[]){4, 5, 6}, (int64_t[]){0, 1, 2});
        transpose_check(dt, 3, (int64_t[]){1, 1, 1}, (int64_t[]){2, 0, 1});
    }
}

/* Concat of n inputs of dims d with their axis-dims from ax_sizes. */
static void concat_check(kiln_dtype dt, int ndim, const int64_t *dims, int64_t axis, int n,
                         const int64_t *ax_sizes) {
    ah_case c;
    ah_case_init(&c, "Concat", "", 17, 1);
    const int a = (int)(axis < 0 ? axis + ndim : axis);
    for (int k = 0; k < n; k++) {
        int64_t d[KILN_MAX_DIMS];
        memcpy(d, dims, (size_t)ndim * sizeof *d);
        d[a] = ax_sizes[k];
        ah_input(&c, ah_random(dt, ndim, d, &seed, -100, 100), 0);
    }
    ah_attr_int(&c, "axis", axis);
    for (int t = 1; t <= 2; t++) ah_run_algo(&c, "concat_copy", KILN_PRECISION_FP32, t, 0);
    ah_case_free(&c);
}

static void test_concat(void **state) {
    (void)state;
    static const kiln_dtype dts[] = {KILN_DTYPE_I8, KILN_DTYPE_F32, KILN_DTYPE_F64};
    for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
        const kiln_dtype dt = dts[i];
        concat_check(dt, 4, (int64_t[]){2, 0, 7, 9}, 1, 3, (int64_t[]){16, 5, 32});
        concat_check(dt, 3, (int64_t[]){0, 4, 5}, 0, 2, (int64_t[]){3, 1});
        concat_check(dt, 3, (int64_t[]){3, 4, 0}, -1, 4, (int64_t[]){1, 7, 0, 200});
        concat_check(dt, 2, (int64_t[]){300, 0}, 1, 2, (int64_t[]){33, 65});
        concat_check(dt, 1, (int64_t[]){0}, 0, 1, (int64_t[]){1000});
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_concat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
