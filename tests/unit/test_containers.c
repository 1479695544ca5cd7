/* tests/unit/test_containers.c: sequences and optionals: the public API,
 * deep copies, session input checks, and small graphs built in memory
 * (SequenceConstruct -> SequenceInsert -> ConcatFromSequence; a Loop that
 * appends to a sequence). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph/exec.h"
#include "graph/ir.h"
#include "graph_builder.h"

/* ---- helpers -------------------------------------------------------------------- */

static kiln_tensor *scalar_i64(int64_t v) {
    kiln_tensor *t;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_I64, 0, NULL, &t), KILN_OK);
    *(int64_t *)kiln_tensor_data(t) = v;
    return t;
}

static void assert_values(const kiln_tensor *t, int64_t n, const double *want) {
    assert_non_null(t);
    assert_int_equal(kiln_tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        assert_true(kiln__ld_f(kiln_tensor_dtype(t), kiln_tensor_data(t), i) == want[i]);
}

/* Graph input of a tensor (container 0) or of a sequence / optional of dt,
 * of rank ndim (-1 unknown) with dynamic dims. */
static void add_input(kiln_graph *g, const char *name, int container, kiln_dtype dt, int ndim) {
    int v = kiln__graph_add_value(g, name);
    g->values[v].kind = KILN__VAL_INPUT;
    g->values[v].dtype = dt;
    g->values[v].ndim = ndim;
    for (int d = 0; d < ndim; d++) g->values[v].dims[d].v = -1; /* dynamic */
    g->values[v].has_type = 1;
    g->values[v].container = container;
    g->values[v].is_sequence = container != 0;
    g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *g->inputs);
    g->inputs[g->n_inputs++] = v;
}

/* ---- public API ------------------------------------------------------------------ */

static void test_sequence_api(void **state) {
    double a[] = {1, 2}, b[] = {3, 4, 5};
    kiln_tensor *ta = vec(KILN_DTYPE_F32, 2, a), *tb = vec(KILN_DTYPE_F32, 3, b), *seq;
    const kiln_tensor *items[] = {ta, tb};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_F32, 2, items, &seq), KILN_OK);
    assert_true(kiln_tensor_is_sequence(seq));
    assert_false(kiln_tensor_is_optional(seq));
    assert_int_equal(kiln_tensor_num_items(seq), 2);
    assert_int_equal(kiln_tensor_elem_dtype(seq), KILN_DTYPE_F32);
    /* items are copies: changing or freeing the originals leaves the sequence alone */
    ((float *)kiln_tensor_data(ta))[0] = 99;
    kiln_tensor_free(ta);
    assert_values(kiln_tensor_item(seq, 0), 2, a);
    assert_values(kiln_tensor_item(seq, 1), 3, b);
    assert_null(kiln_tensor_item(seq, 2));
    assert_null(kiln_tensor_item(seq, -1));
    assert_null(kiln_tensor_item(tb, 0));
    assert_int_equal(kiln_tensor_num_items(tb), -1);
    assert_int_equal(kiln_tensor_elem_dtype(tb), KILN_DTYPE_F32);
    /* the element dtype is kept when empty; items must have it */
    kiln_tensor *empty, *bad = NULL;
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_I64, 0, NULL, &empty), KILN_OK);
    assert_int_equal(kiln_tensor_num_items(empty), 0);
    assert_int_equal(kiln_tensor_elem_dtype(empty), KILN_DTYPE_I64);
    const kiln_tensor *one[] = {tb};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_I64, 1, one, &bad), KILN_E_TYPE);
    assert_null(bad);
    assert_non_null(strstr(kiln_last_error(), "int64"));
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_F32, 1, NULL, &bad), KILN_E_INVAL);
    kiln_tensor_free(seq), kiln_tensor_free(tb), kiln_tensor_free(empty);
}

static void test_optional_api(void **state) {
    double a[] = {7, 8};
    kiln_tensor *t = vec(KILN_DTYPE_F64, 2, a), *none, *some, *of_seq, *bad = NULL, *seq;
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F64, NULL, &none), KILN_OK);
    assert_true(kiln_tensor_is_optional(none));
    assert_int_equal(kiln_tensor_num_items(none), 0);
    assert_null(kiln_tensor_item(none, 0));
    assert_int_equal(kiln_tensor_elem_dtype(none), KILN_DTYPE_F64);
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F64, t, &some), KILN_OK);
    assert_int_equal(kiln_tensor_num_items(some), 1);
    assert_ptr_not_equal(kiln_tensor_item(some, 0), t);
    assert_values(kiln_tensor_item(some, 0), 2, a);
    /* an optional holding a sequence */
    const kiln_tensor *items[] = {t};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_F64, 1, items, &seq), KILN_OK);
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F64, seq, &of_seq), KILN_OK);
    const kiln_tensor *inner = kiln_tensor_item(of_seq, 0);
    assert_true(kiln_tensor_is_sequence(inner));
    assert_values(kiln_tensor_item(inner, 0), 2, a);
    char buf[128];
    assert_string_equal(kiln__type_str(of_seq, buf, sizeof buf), "optional(sequence(float64))");
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F32, t, &bad), KILN_E_TYPE);
    assert_null(bad);
    kiln_tensor_free(t), kiln_tensor_free(none), kiln_tensor_free(some);
    kiln_tensor_free(seq), kiln_tensor_free(of_seq);
}

/* kiln_tensor_copy of containers is deep, strings included. */
static void test_deep_copy(void **state) {
    int64_t n = 2;
    kiln_tensor *s, *seq, *opt, *c1, *c2, *bad = NULL;
    assert_int_equal(kiln_tensor_create(KILN_DTYPE_STRING, 1, &n, &s), KILN_OK);
    char **str = kiln_tensor_data(s);
    free(str[0]), free(str[1]);
    str[0] = kiln__strdup("kiln"), str[1] = kiln__strdup("seq");
    const kiln_tensor *items[] = {s, s};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_STRING, 2, items, &seq), KILN_OK);
    assert_int_equal(kiln_optional_create(KILN_DTYPE_STRING, seq, &opt), KILN_OK);
    assert_int_equal(kiln_tensor_copy(seq, KILN_DTYPE_UNDEFINED, &c1), KILN_OK);
    assert_int_equal(kiln_tensor_copy(opt, KILN_DTYPE_UNDEFINED, &c2), KILN_OK);
    assert_int_equal(kiln_tensor_copy(seq, KILN_DTYPE_F32, &bad), KILN_E_TYPE);
    kiln_tensor_free(s), kiln_tensor_free(seq), kiln_tensor_free(opt);
    /* the copies own everything they hold */
    assert_int_equal(kiln_tensor_num_items(c1), 2);
    for (int i = 0; i < 2; i++) {
        char *const *got = kiln_tensor_data(kiln_tensor_item(c1, i));
        assert_string_equal(got[0], "kiln");
        assert_string_equal(got[1], "seq");
    }
    const kiln_tensor *inner = kiln_tensor_item(c2, 0);
    assert_true(kiln_tensor_is_sequence(inner));
    assert_ptr_not_equal(kiln_tensor_item(inner, 0), kiln_tensor_item(c1, 0));
    assert_string_equal(((char *const *)kiln_tensor_data(kiln_tensor_item(inner, 1)))[1], "seq");
    kiln_tensor_free(c1), kiln_tensor_free(c2);
}

/* ---- graphs ---------------------------------------------------------------------- */

/* y = ConcatFromSequence(SequenceInsert(SequenceConstruct(a), b, pos), axis 0) */
static void test_construct_insert_concat(void **state) {
    kiln_graph *g = new_graph(NULL);
    add_input(g, "a", 0, KILN_DTYPE_F32, 1);
    add_input(g, "b", 0, KILN_DTYPE_F32, 1);
    add_input(g, "pos", 0, KILN_DTYPE_I64, 0);
    node(g, "SequenceConstruct", "s1", "a", NULL);
    node(g, "SequenceInsert", "s2", "s1", "b", "pos", NULL);
    int_attr(node(g, "ConcatFromSequence", "y", "s2", NULL), "axis", 0);
    add_output(g, "y");
    add_output(g, "s2");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *sess;
    assert_int_equal(kiln_session_create(g, NULL, &sess), KILN_OK);
    double av[] = {1, 2}, bv[] = {3, 4, 5};
    kiln_tensor *a = vec(KILN_DTYPE_F32, 2, av), *b = vec(KILN_DTYPE_F32, 3, bv);
    const char *names[] = {"a", "b", "pos"};
    const double front[] = {3, 4, 5, 1, 2}, back[] = {1, 2, 3, 4, 5};
    struct { int64_t pos; const double *want; } cases[] = {{0, front}, {1, back}, {-1, front}};
    for (int k = 0; k < 3; k++) {
        kiln_tensor *pos = scalar_i64(cases[k].pos);
        const kiln_tensor *in[] = {a, b, pos};
        assert_int_equal(kiln_session_run(sess, 3, names, in), KILN_OK);
        const kiln_tensor *y, *s2;
        assert_int_equal(kiln_session_output(sess, 0, &y), KILN_OK);
        assert_values(y, 5, cases[k].want);
        assert_int_equal(kiln_session_output(sess, 1, &s2), KILN_OK);
        assert_true(kiln_tensor_is_sequence(s2));
        assert_int_equal(kiln_tensor_num_items(s2), 2);
        kiln_tensor_free(pos);
    }
    /* a position past the end names the position and the length */
    kiln_tensor *pos = scalar_i64(5);
    const kiln_tensor *in[] = {a, b, pos};
    assert_int_equal(kiln_session_run(sess, 3, names, in), KILN_E_RANGE);
    assert_non_null(strstr(kiln_last_error(), "position 5"));
    assert_non_null(strstr(kiln_last_error(), "length 1"));
    kiln_tensor_free(pos), kiln_tensor_free(a), kiln_tensor_free(b);
    kiln_session_free(sess);
    kiln_graph_free(g);
}

/* res = Loop(M, cond omitted, SequenceEmpty(int64)) with
 * body(i, cond, s) -> (cond, SequenceInsert(s, i)); then its length and
 * ConcatFromSequence(res, axis 0, new_axis 1). */
static void test_loop_appends_to_sequence(void **state) {
    kiln_graph *g = new_graph(NULL);
    add_input(g, "M", 0, KILN_DTYPE_I64, 0);
    int_attr(node(g, "SequenceEmpty", "empty", NULL), "dtype", KILN_DTYPE_I64);
    kiln_graph *body = new_graph(g);
    add_input(body, "i", 0, KILN_DTYPE_I64, 0);
    add_input(body, "cond_in", 0, KILN_DTYPE_BOOL, 0);
    add_input(body, "s_in", KILN__DTYPE_SEQUENCE, KILN_DTYPE_I64, -1);
    node(body, "Identity", "cond_out", "cond_in", NULL);
    node(body, "SequenceInsert", "s_out", "s_in", "i", NULL);
    add_output(body, "cond_out");
    add_output(body, "s_out");
    kiln__node *loop = node(g, "Loop", "res", "M", "", "empty", NULL);
    loop->attr = calloc(1, sizeof *loop->attr);
    loop->attr[0] = (kiln__attr){.name = kiln__strdup("body"), .type = KILN__ATTR_GRAPH, .g = body};
    loop->n_attr = 1;
    node(g, "SequenceLength", "len", "res", NULL);
    kiln__node *cat = node(g, "ConcatFromSequence", "stacked", "res", NULL);
    int_attr(cat, "axis", 0);
    int_attr(cat, "new_axis", 1);
    add_output(g, "len");
    add_output(g, "stacked");
    add_output(g, "res");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *sess;
    assert_int_equal(kiln_session_create(g, NULL, &sess), KILN_OK);
    const char *names[] = {"M"};
    for (int64_t m = 1; m <= 4; m += 3) {
        kiln_tensor *M = scalar_i64(m);
        const kiln_tensor *in[] = {M};
        assert_int_equal(kiln_session_run(sess, 1, names, in), KILN_OK);
        const kiln_tensor *len, *stacked, *res;
        assert_int_equal(kiln_session_output(sess, 0, &len), KILN_OK);
        assert_int_equal(kiln_session_output(sess, 1, &stacked), KILN_OK);
        assert_int_equal(kiln_session_output(sess, 2, &res), KILN_OK);
        double n = (double)m, want[] = {0, 1, 2, 3};
        assert_values(len, 1, &n);
        assert_values(stacked, m, want);
        assert_int_equal(kiln_tensor_num_items(res), m);
        assert_int_equal(kiln_tensor_elem_dtype(res), KILN_DTYPE_I64);
        kiln_tensor_free(M);
    }
    kiln_session_free(sess);
    kiln_graph_free(g);
}

/* Graph inputs declared as containers: Identity deep-copies them; the
 * session refuses values of the wrong kind or element dtype. */
static void test_container_inputs(void **state) {
    kiln_graph *g = new_graph(NULL);
    add_input(g, "s", KILN__DTYPE_SEQUENCE, KILN_DTYPE_F32, 1);
    add_input(g, "o", KILN__DTYPE_OPTIONAL, KILN_DTYPE_F32, 1);
    node(g, "Identity", "s_copy", "s", NULL);
    node(g, "OptionalHasElement", "has", "o", NULL);
    add_output(g, "s_copy");
    add_output(g, "has");
    assert_int_equal(kiln__graph_finalize(g), KILN_OK);
    kiln_session *sess;
    assert_int_equal(kiln_session_create(g, NULL, &sess), KILN_OK);
    double v[] = {1, 2, 3};
    kiln_tensor *t = vec(KILN_DTYPE_F32, 3, v), *ti = vec(KILN_DTYPE_I32, 3, v), *seq, *seq_i;
    kiln_tensor *none, *some;
    const kiln_tensor *items[] = {t, t};
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_F32, 2, items, &seq), KILN_OK);
    assert_int_equal(kiln_sequence_create(KILN_DTYPE_I32, 1, (const kiln_tensor *const *)&ti, &seq_i), KILN_OK);
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F32, NULL, &none), KILN_OK);
    assert_int_equal(kiln_optional_create(KILN_DTYPE_F32, t, &some), KILN_OK);
    const char *names[] = {"s", "o"};
    for (int k = 0; k < 2; k++) {
        const kiln_tensor *in[] = {seq, k ? some : none};
        assert_int_equal(kiln_session_run(sess, 2, names, in), KILN_OK);
        const kiln_tensor *copy, *has;
        assert_int_equal(kiln_session_output(sess, 0, &copy), KILN_OK);
        assert_int_equal(kiln_tensor_num_items(copy), 2);
        assert_ptr_not_equal(kiln_tensor_item(copy, 1), kiln_tensor_item(seq, 1));
        assert_values(kiln_tensor_item(copy, 1), 3, v);
        assert_int_equal(kiln_session_output(sess, 1, &has), KILN_OK);
        assert_int_equal(*(const uint8_t *)kiln_tensor_data(has), k);
    }
    const kiln_tensor *wrong[][2] = {{t, none}, {seq_i, none}, {seq, seq}};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(kiln_session_run(sess, 2, names, wrong[k]), KILN_E_TYPE);
        assert_non_null(strstr(kiln_last_error(), k < 2 ? "sequence(float32)" : "optional(float32)"));
    }
    kiln_tensor_free(t), kiln_tensor_free(ti), kiln_tensor_free(seq), kiln_tensor_free(seq_i);
    kiln_tensor_free(none), kiln_tensor_free(some);
    kiln_session_free(sess);
    kiln_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_api),
        cmocka_unit_test(test_optional_api),
        cmocka_unit_test(test_deep_copy),
        cmocka_unit_test(test_construct_insert_concat),
        cmocka_unit_test(test_loop_appends_to_sequence),
        cmocka_unit_test(test_container_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
