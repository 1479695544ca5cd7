/* tests/unit/test_select.c: the algorithm selector and the timing cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "algo_harness.h"
#include "graph/select.h"

/* With no algorithm for the op, the reference runs and matches itself. */
static void test_harness_reference_fallback(void **state) {
    unsigned seed = 1;
    int64_t d[] = {3, 5};
    ah_case c;
    ah_case_init(&c, "Relu", "", 17, 1);
    ah_input(&c, ah_random(KILN_DTYPE_F32, 2, d, &seed, -1, 1), 0);
    const char *algo = ah_run(&c, KILN_PRECISION_FP32, 2, 0);
    assert_non_null(algo);
    ah_case_free(&c);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_timing_cache_file(void **state) {
    char path[] = "/tmp/kiln_tc_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    kiln__timing_cache *tc;
    /* comments and blank lines are skipped; unknown algorithm names ignored */
    write_file(path, "# comment\n\nno_such_algorithm 1.5 cpu|t1|p0|.Conv|f32[1];|\n");
    assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_load(tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_size(tc), 0);
    kiln__timing_cache_free(tc);
    /* a malformed line names the file and line */
    write_file(path, "# ok\nbroken-line-without-fields\n");
    assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_load(tc), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), ":2:"));
    kiln__timing_cache_free(tc);
    /* an algorithm's own variant: "<name>#<n>"; a variant that is not a number fails */
    write_file(path, "attention_f32#7 0.25 cpu|t1|p0|.Attention|f32[1];|\n");
    assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_load(tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_size(tc), 1);
    kiln__timing_cache_free(tc);
    write_file(path, "attention_f32#x7 0.25 cpu|t1|p0|.Attention|f32[1];|\n");
    assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_load(tc), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), ":1: bad variant"));
    kiln__timing_cache_free(tc);
    /* a missing file is an empty cache */
    remove(path);
    assert_int_equal(kiln__timing_cache_create(path, &tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_load(tc), KILN_OK);
    assert_int_equal(kiln__timing_cache_size(tc), 0);
    assert_int_equal(kiln__timing_cache_save(tc), KILN_OK); /* nothing new: no file */
    assert_true(access(path, F_OK) != 0);
    kiln__timing_cache_free(tc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_harness_reference_fallback),
        cmocka_unit_test(test_timing_cache_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
