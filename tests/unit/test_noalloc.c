/* tests/unit/test_noalloc.c: after the first run of a shape, a run allocates
 * nothing. malloc/calloc/realloc/posix_memalign are wrapped at link time
 * (-Wl,--wrap) and counted around the second run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph/ir.h"

static int counting;
static long allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n) { allocs += counting; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { allocs += counting; return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { allocs += counting; return __real_realloc(p, n); }
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    allocs += counting;
    return __real_posix_memalign(p, a, n);
}

static int value(kiln_graph *g, const char *name) { return kiln__graph_value(g, name); }

static void test_second_run_allocates_nothing(void **state) {
    kiln_graph *g = kiln__graph_new(NULL);
    g->opsets = calloc(1, sizeof *g->opsets);
    g->opsets[0].domain = kiln__strdup("");
    g->opsets[0].version = 17;
    g->n_opsets = 1;
    int x = kiln__graph_add_value(g, "x");
    g->values[x].kind = KILN__VAL_INPUT;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    /* y = Softmax(MatMul(Relu(x), x^T)) + Shape-driven Reshape: parallel
     * kernels, folding and several arena slots */
    const char *ops[][4] = {{"Relu", "r", "x", ""}, {"Transpose", "xt", "x", ""},
                            {"MatMul", "m", "r", "xt"}, {"Softmax", "s", "m", ""},
                            {"Shape", "sh", "s", ""}, {"Reshape", "y", "s", "sh"}};
    for (int i = 0; i < 6; i++) {
        int n_in = ops[i][3][0] ? 2 : 1;
        int k = kiln__graph_add_node(g, ops[i][1], ops[i][0], "", n_in, 1);
        g->nodes[k].in[0] = value(g, ops[i][2]);
        if (n_in == 2) g->nodes[k].in[1] = value(g, ops[i][3]);
        g->nodes[k].out[0] = value(g, ops[i][1]);
    }
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = value(g, "y");
    g->n_outputs = 1;
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session_options opt = {2};
    kiln_session *s;
    assert_int_equal(kiln_session_create(g, &opt, &s), KILN_OK);
    int64_t dims[] = {64, 32};
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_F32, 2, dims, &t), KILN_OK);
    float *d = kiln_tensor_data(t);
    for (int i = 0; i < 64 * 32; i++) d[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    const char *names[] = {"x"};
    const kiln_tensor *in[] = {t};
    assert_int_equal(kiln_session_run(s, 1, names, in), KILN_OK);
    counting = 1;
    kiln_status st = kiln_session_run(s, 1, names, in);
    counting = 0;
    assert_int_equal(st, KILN_OK);
    assert_int_equal(allocs, 0);
    const kiln_tensor *y;
    assert_int_equal(kiln_session_output(s, 0, &y), KILN_OK);
    const float *yd = kiln_tensor_data(y);
    float row = 0;
    for (int j = 0; j < 64; j++) row += yd[j];
    assert_true(row > 0.999f && row < 1.001f); /* a softmax row */
    kiln_session_free(s);
    kiln_tensor_free(t);
    kiln_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_second_run_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
