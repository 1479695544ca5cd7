/* tests/unit/test_onnx.c: the ONNX reader and writer.
 *
 * Models are built in memory with protobuf-c (the generated onnx.pb-c.h),
 * packed, and loaded through the public API; the IR is checked directly. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph/ir.h"
#include "kiln/kiln.h"
#include "onnx.pb-c.h"

/* ---- a bump allocator for the message trees of one test ------------------ */

static char g_pool[8 << 20];
static size_t g_used;

static void *T(size_t n) {
    n = (n + 15) & ~(size_t)15;
    assert_true(g_used + n <= sizeof g_pool);
    void *p = g_pool + g_used;
    g_used += n;
    memset(p, 0, n);
    return p;
}

static int reset_pool(void **state) {
    (void)state;
    g_used = 0;
    return 0;
}

static char **strs(int n, ...) {
    char **a = T(sizeof(char *) * (size_t)(n + 1));
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) a[i] = va_arg(ap, char *);
    va_end(ap);
    return a;
}

static Onnx__ValueInfoProto *vi(const char *name, int elem, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = T(sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    Onnx__TypeProto *tp = T(sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = T(sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->type = tp;
    if (ndim >= 0) {
        Onnx__TensorShapeProto *sh = T(sizeof *sh);
        onnx__tensor_shape_proto__init(sh);
        sh->n_dim = (size_t)ndim;
        sh->dim = T(sizeof *sh->dim * (size_t)(ndim + 1));
        for (int i = 0; i < ndim; i++) {
            Onnx__TensorShapeProto__Dimension *d = T(sizeof *d);
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = "N";
            }
            sh->dim[i] = d;
        }
        tt->shape = sh;
    }
    return v;
}

static Onnx__TensorProto *tensor(const char *name, int dt, int ndim, const int64_t *dims) {
    Onnx__TensorProto *t = T(sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = dt;
    t->n_dims = (size_t)ndim;
    t->dims = (int64_t *)dims;
    return t;
}

static Onnx__TensorProto *tensor_raw(const char *name, int dt, int ndim, const int64_t *dims,
                                     const void *data, size_t bytes) {
    Onnx__TensorProto *t = tensor(name, dt, ndim, dims);
    t->has_raw_data = 1;
    t->raw_data.data = (uint8_t *)data;
    t->raw_data.len = bytes;
    return t;
}

static Onnx__AttributeProto *attr(const char *name, int type) {
    Onnx__AttributeProto *a = T(sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = (Onnx__AttributeProto__AttributeType)type;
    return a;
}

static Onnx__NodeProto *node(const char *name, const char *op, int n_in, char **in, int n_out,
                             char **out, int n_attr, Onnx__AttributeProto **attrs) {
    Onnx__NodeProto *n = T(sizeof *n);
    onnx__node_proto__init(n);
    n->name = (char *)name;
    n->op_type = (char *)op;
    n->n_input = (size_t)n_in;
    n->input = in;
    n->n_output = (size_t)n_out;
    n->output = out;
    n->n_attribute = (size_t)n_attr;
    n->attribute = attrs;
    return n;
}

static Onnx__GraphProto *graph(const char *name, int n_nodes, Onnx__NodeProto **nodes, int n_in,
                               Onnx__ValueInfoProto **in, int n_out, Onnx__ValueInfoProto **out) {
    Onnx__GraphProto *g = T(sizeof *g);
    onnx__graph_proto__init(g);
    g->name = (char *)name;
    g->n_node = (size_t)n_nodes;
    g->node = nodes;
    g->n_input = (size_t)n_in;
    g->input = in;
    g->n_output = (size_t)n_out;
    g->output = out;
    return g;
}

static Onnx__ModelProto *model(Onnx__GraphProto *g, int opset) {
    Onnx__ModelProto *m = T(sizeof *m);
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 8;
    m->producer_name = "test_onnx";
    m->graph = g;
    Onnx__OperatorSetIdProto *o = T(sizeof *o);
    onnx__operator_set_id_proto__init(o);
    o->domain = "";
    o->has_version = 1;
    o->version = opset;
    m->n_opset_import = 1;
    m->opset_import = T(sizeof *m->opset_import * 2);
    m->opset_import[0] = o;
    return m;
}

static uint8_t *pack(const Onnx__ModelProto *m, size_t *len) {
    *len = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    onnx__model_proto__pack(m, buf);
    return buf;
}

/* ---- the sample model --------------------------------------------------------
 *
 *   X (2,3) f32, cond bool; W (3) raw initializer, C (1) float_data, I (2) int64_data
 *   Z = If(cond, then: Identity(M), else: If(cond, then: Neg(M), else: Identity(X)))
 *   M = Mul(A, C)        (listed after the If: the loader must order nodes)
 *   A = Add(X, W)
 *   K = test.Custom(X)   with one attribute of every kind
 */
static const int64_t dims23[] = {2, 3}, dims3[] = {3}, dims1[] = {1}, dims2[] = {2};
static const float w_data[] = {1, 2, 3};
static float c_data[] = {0.5f};
static int64_t i_data[] = {3, 4};
static float attr_floats[] = {1.5f, -2.5f};
static int64_t attr_ints[] = {7, -8, 9};

static Onnx__GraphProto *branch(const char *name, Onnx__NodeProto *n, const char *out) {
    return graph(name, 1, (Onnx__NodeProto **)strs(1, n), 0, NULL, 1,
                 (Onnx__ValueInfoProto **)strs(1, vi(out, 1, -1, NULL)));
}

static Onnx__ModelProto *sample_model_ex(int with_custom) {
    /* inner If of the else branch: captures M and X (two levels up) and cond */
    Onnx__AttributeProto *inner_then = attr("then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    inner_then->g = branch("inner_then", node("neg", "Neg", 1, strs(1, "M"), 1, strs(1, "a1"), 0, NULL), "a1");
    Onnx__AttributeProto *inner_else = attr("else_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    inner_else->g = branch("inner_else", node("idx", "Identity", 1, strs(1, "X"), 1, strs(1, "a2"), 0, NULL), "a2");
    Onnx__NodeProto *inner_if = node("inner_if", "If", 1, strs(1, "cond"), 1, strs(1, "e_out"), 2,
                                     (Onnx__AttributeProto **)strs(2, inner_then, inner_else));
    Onnx__AttributeProto *then_b = attr("then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    then_b->g = branch("then", node("idm", "Identity", 1, strs(1, "M"), 1, strs(1, "t_out"), 0, NULL), "t_out");
    Onnx__AttributeProto *else_b = attr("else_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
    else_b->g = branch("else", inner_if, "e_out");

    /* one attribute of every kind on a custom-domain node */
    Onnx__AttributeProto *af = attr("f", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    af->has_f = 1, af->f = 0.25f;
    Onnx__AttributeProto *ai = attr("i", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    ai->has_i = 1, ai->i = -42;
    Onnx__AttributeProto *as = attr("s", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    as->has_s = 1, as->s.data = (uint8_t *)"hello", as->s.len = 5;
    Onnx__AttributeProto *at = attr("t", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    at->t = tensor("", 7, 1, dims2);
    at->t->n_int64_data = 2, at->t->int64_data = i_data;
    Onnx__AttributeProto *afs = attr("fs", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    afs->n_floats = 2, afs->floats = attr_floats;
    Onnx__AttributeProto *ais = attr("is", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    ais->n_ints = 3, ais->ints = attr_ints;
    Onnx__AttributeProto *ass = attr("ss", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    ass->n_strings = 2;
    ass->strings = T(2 * sizeof(ProtobufCBinaryData));
    ass->strings[0] = (ProtobufCBinaryData){2, (uint8_t *)"ab"};
    ass->strings[1] = (ProtobufCBinaryData){0, (uint8_t *)""};
    Onnx__NodeProto *custom = node("custom", "Custom", 1, strs(1, "X"), 1, strs(1, "K"), 7,
                                   (Onnx__AttributeProto **)strs(7, af, ai, as, at, afs, ais, ass));
    custom->domain = "test.domain";

    Onnx__NodeProto *nodes[] = {
        node("n_if", "If", 1, strs(1, "cond"), 1, strs(1, "Z"), 2,
             (Onnx__AttributeProto **)strs(2, then_b, else_b)),
        node("n_mul", "Mul", 2, strs(2, "A", "C"), 1, strs(1, "M"), 0, NULL),
        node("n_add", "Add", 2, strs(2, "X", "W"), 1, strs(1, "A"), 0, NULL),
        custom,
    };
    Onnx__NodeProto **np = T(sizeof nodes);
    memcpy(np, nodes, sizeof nodes);
    Onnx__GraphProto *g = graph("main", with_custom ? 4 : 3, np, 3,
                                (Onnx__ValueInfoProto **)strs(3, vi("X", 1, 2, dims23), vi("cond", 9, 0, NULL),
                                                              vi("W", 1, 1, dims3)),
                                with_custom ? 2 : 1,
                                (Onnx__ValueInfoProto **)strs(2, vi("Z", 1, 2, dims23), vi("K", 1, -1, NULL)));
    g->n_initializer = 3;
    g->initializer = (Onnx__TensorProto **)strs(3, tensor_raw("W", 1, 1, dims3, w_data, sizeof w_data),
                                                tensor("C", 1, 1, dims1), tensor("I", 7, 1, dims2));
    g->initializer[1]->n_float_data = 1, g->initializer[1]->float_data = c_data;
    g->initializer[2]->n_int64_data = 2, g->initializer[2]->int64_data = i_data;
    Onnx__ModelProto *m = model(g, 13);
    /* the custom domain needs an opset import too */
    Onnx__OperatorSetIdProto *o = T(sizeof *o);
    onnx__operator_set_id_proto__init(o);
    o->domain = "test.domain", o->has_version = 1, o->version = 1;
    m->opset_import[1] = o;
    m->n_opset_import = 2;
    return m;
}

static Onnx__ModelProto *sample_model(void) { return sample_model_ex(1); }

static kiln_status load_model(const Onnx__ModelProto *m, const char *name, kiln_graph **g) {
    size_t len;
    uint8_t *buf = pack(m, &len);
    kiln_status st = kiln_graph_load_onnx_buffer(buf, len, name, NULL, g);
    free(buf);
    return st;
}

static const kiln__node *find_node(const kiln_graph *g, const char *name) {
    for (int i = 0; i < g->n_nodes; i++)
        if (strcmp(g->nodes[i].name, name) == 0) return &g->nodes[i];
    fail_msg("node %s not found", name);
    return NULL;
}

static int node_index(const kiln_graph *g, const char *name) {
    return (int)(find_node(g, name) - g->nodes);
}

static const char *vname(const kiln_graph *g, int v) { return v >= 0 ? g->values[v].name : ""; }

/* Whether the implicit inputs of n are exactly the names given. */
static void assert_implicit(const kiln_graph *g, const kiln__node *n, int count, ...) {
    assert_int_equal(n->n_implicit, count);
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const char *want = va_arg(ap, const char *);
        int found = 0;
        for (int k = n->n_in - n->n_implicit; k < n->n_in; k++)
            found |= strcmp(vname(g, n->in[k]), want) == 0;
        if (!found) fail_msg("%s is not an implicit input of %s", want, n->name);
    }
    va_end(ap);
}

static void assert_outer(const kiln_graph *sub, int count, ...) {
    assert_int_equal(sub->n_outer, count);
    va_list ap;
    va_start(ap, count);
    for (int i = 0; i < count; i++) {
        const char *want = va_arg(ap, const char *);
        int v = kiln__graph_find(sub, want);
        assert_true(v >= 0);
        assert_int_equal(sub->values[v].kind, KILN__VAL_OUTER);
    }
    va_end(ap);
}

/* Checks the IR of the sample model (as loaded, or after a round trip). */
static void check_sample(const kiln_graph *g) {
    assert_int_equal(g->n_nodes, 4);
    assert_int_equal(kiln_graph_num_inputs(g), 2); /* W is an initializer */
    assert_int_equal(kiln_graph_num_outputs(g), 2);
    /* topological order: Add before Mul before If */
    assert_true(node_index(g, "n_add") < node_index(g, "n_mul"));
    assert_true(node_index(g, "n_mul") < node_index(g, "n_if"));
    int w = kiln__graph_find(g, "W");
    assert_true(w >= 0);
    assert_int_equal(g->values[w].kind, KILN__VAL_INIT);
    assert_memory_equal(g->values[w].init->data, w_data, sizeof w_data);
    int c = kiln__graph_find(g, "C");
    assert_int_equal(g->values[c].kind, KILN__VAL_INIT);
    assert_true(((float *)g->values[c].init->data)[0] == 0.5f);
    int iv = kiln__graph_find(g, "I");
    assert_int_equal(g->values[iv].init->dtype, KILN_DTYPE_I64);
    assert_int_equal(((int64_t *)g->values[iv].init->data)[1], 4);
    int x = kiln__graph_find(g, "X");
    assert_int_equal(g->values[x].kind, KILN__VAL_INPUT);
    assert_int_equal(g->values[x].ndim, 2);
    assert_int_equal(g->values[x].dims[1].v, 3);

    /* captures: then captures M; else captures M, X, cond through its inner If */
    const kiln__node *nif = find_node(g, "n_if");
    assert_int_equal(nif->n_in - nif->n_implicit, 1);
    assert_implicit(g, nif, 3, "M", "X", "cond");
    const kiln_graph *then_g = kiln__attr_graph(nif, "then_branch");
    const kiln_graph *else_g = kiln__attr_graph(nif, "else_branch");
    assert_non_null(then_g);
    assert_non_null(else_g);
    assert_ptr_equal(then_g->parent, g);
    assert_outer(then_g, 1, "M");
    assert_outer(else_g, 3, "M", "X", "cond");
    const kiln__node *inner = find_node(else_g, "inner_if");
    assert_implicit(else_g, inner, 2, "M", "X");
    assert_outer(kiln__attr_graph(inner, "then_branch"), 1, "M");
    assert_outer(kiln__attr_graph(inner, "else_branch"), 1, "X");

    /* attributes of every kind */
    const kiln__node *cu = find_node(g, "custom");
    assert_string_equal(cu->domain, "test.domain");
    assert_int_equal(cu->op, -1); /* kiln has no such op: not an import error */
    assert_true(kiln__attr_f(cu, "f", 0) == 0.25f);
    assert_int_equal(kiln__attr_i(cu, "i", 0), -42);
    assert_string_equal(kiln__attr_s(cu, "s", ""), "hello");
    const kiln_tensor *t = kiln__attr_tensor(cu, "t");
    assert_non_null(t);
    assert_int_equal(t->dtype, KILN_DTYPE_I64);
    assert_int_equal(((int64_t *)t->data)[0], 3);
    const float *fs;
    assert_int_equal(kiln__attr_floats(cu, "fs", &fs), 2);
    assert_true(fs[1] == -2.5f);
    const int64_t *is;
    assert_int_equal(kiln__attr_ints(cu, "is", &is), 3);
    assert_int_equal(is[1], -8);
    char *const *ss;
    assert_int_equal(kiln__attr_strings(cu, "ss", &ss), 2);
    assert_string_equal(ss[0], "ab");
    assert_string_equal(ss[1], "");
    assert_int_equal(kiln__graph_opset(g, "test.domain"), 1);
    assert_int_equal(kiln__graph_opset(g, ""), 13);
}

static void test_load_sample(void **state) {
    (void)state;
    kiln_graph *g = NULL;
    kiln_status st = load_model(sample_model(), "sample.onnx", &g);
    if (st != KILN_OK) fail_msg("load: %s", kiln_last_error());
    check_sample(g);
    kiln_graph_free(g);
}

/* Round trip: save, load again, same IR. */
static void test_round_trip(void **state) {
    (void)state;
    kiln_graph *g = NULL, *g2 = NULL;
    assert_int_equal(load_model(sample_model(), "sample.onnx", &g), KILN_OK);
    char dir[] = "/tmp/kiln_test_onnx_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/rt.onnx", dir);
    kiln_status st = kiln_graph_save_onnx(g, path);
    if (st != KILN_OK) fail_msg("save: %s", kiln_last_error());
    st = kiln_graph_load_onnx(path, &g2);
    if (st != KILN_OK) fail_msg("reload: %s", kiln_last_error());
    check_sample(g2);
    assert_int_equal(kiln_graph_num_initializers(g2), 3);
    const char *pname = kiln__graph_root(g2)->producer_name;
    assert_string_equal(pname, "kiln");
    assert_int_equal(g2->ir_version, 8);
    kiln_graph_free(g);
    kiln_graph_free(g2);
    unlink(path);
    rmdir(dir);
}

/* The sample runs: cond true gives (X + W) * 0.5. */
static void test_run_sample(void **state) {
    (void)state;
    kiln_graph *g = NULL;
    assert_int_equal(load_model(sample_model_ex(0), "sample.onnx", &g), KILN_OK);
    kiln_session *s = NULL;
    kiln_status st = kiln_session_create(g, NULL, &s);
    if (st != KILN_OK) {
        kiln_graph_free(g);
        fail_msg("session: %s", kiln_last_error());
    }
    float x[6] = {0, 1, 2, 3, 4, 5};
    uint8_t cond = 1;
    kiln_tensor *tx, *tc;
    assert_int_equal(kiln_tensor_wrap(KILN_DTYPE_F32, 2, dims23, x, &tx), KILN_OK);
    assert_int_equal(kiln_tensor_wrap(KILN_DTYPE_BOOL, 0, NULL, &cond, &tc), KILN_OK);
    const char *names[] = {"X", "cond"};
    const kiln_tensor *ins[] = {tx, tc};
    st = kiln_session_run(s, 2, names, ins);
    if (st != KILN_OK) fail_msg("run: %s", kiln_last_error());
    const kiln_tensor *z;
    assert_int_equal(kiln_session_output(s, 0, &z), KILN_OK);
    const float *zd = kiln_tensor_data(z);
    for (int i = 0; i < 6; i++) assert_float_equal(zd[i], (x[i] + w_data[i % 3]) * 0.5f, 1e-6);
    cond = 0; /* else: inner If(cond=false) -> Identity(X) */
    assert_int_equal(kiln_session_run(s, 2, names, ins), KILN_OK);
    assert_int_equal(kiln_session_output(s, 0, &z), KILN_OK);
    zd = kiln_tensor_data(z);
    for (int i = 0; i < 6; i++) assert_float_equal(zd[i], x[i], 0);
    kiln_tensor_free(tx);
    kiln_tensor_free(tc);
    kiln_session_free(s);
    kiln_graph_free(g);
}

/* ---- hostile input ---------------------------------------------------------- */

static void test_truncated(void **state) {
    (void)state;
    size_t len;
    uint8_t *buf = pack(sample_model(), &len);
    size_t cuts[] = {1, len / 4, len / 2, 3 * len / 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        kiln_graph *g = NULL;
        kiln_status st = kiln_graph_load_onnx_buffer(buf, cuts[i], "trunc.onnx", NULL, &g);
        if (st != KILN_E_FORMAT) fail_msg("cut at %zu of %zu: status %d", cuts[i], len, st);
        assert_null(g);
        assert_non_null(strstr(kiln_last_error(), "trunc.onnx"));
    }
    /* every prefix: a clean status, never a crash */
    for (size_t cut = 0; cut < len; cut++) {
        kiln_graph *g = NULL;
        kiln_status st = kiln_graph_load_onnx_buffer(buf, cut, "trunc.onnx", NULL, &g);
        if (st == KILN_OK) kiln_graph_free(g);
        else assert_true(strlen(kiln_last_error()) > 0);
    }
    free(buf);
}

static void test_corrupted(void **state) {
    (void)state;
    const char junk[] = "this is not a protobuf \xff\xff\xff\xff\xff";
    kiln_graph *g = NULL;
    assert_int_equal(kiln_graph_load_onnx_buffer(junk, sizeof junk, "junk.onnx", NULL, &g),
                     KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "junk.onnx: not an ONNX model"));
    /* flip every byte in turn: errors are statuses with messages */
    size_t len;
    uint8_t *buf = pack(sample_model(), &len);
    int failures = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t save = buf[i];
        buf[i] ^= 0xA5;
        kiln_status st = kiln_graph_load_onnx_buffer(buf, len, "flip.onnx", NULL, &g);
        if (st == KILN_OK) {
            kiln_graph_free(g);
        } else {
            failures++;
            assert_non_null(strstr(kiln_last_error(), "flip.onnx"));
        }
        buf[i] = save;
    }
    assert_true(failures > 0);
    free(buf);
}

/* A model whose only content is one initializer t feeding Identity. */
static Onnx__ModelProto *init_model(Onnx__TensorProto *t) {
    Onnx__NodeProto *n = node("id", "Identity", 1, strs(1, t->name), 1, strs(1, "y"), 0, NULL);
    Onnx__GraphProto *g = graph("g", 1, (Onnx__NodeProto **)strs(1, n), 0, NULL, 1,
                                (Onnx__ValueInfoProto **)strs(1, vi("y", t->data_type, -1, NULL)));
    g->n_initializer = 1;
    g->initializer = (Onnx__TensorProto **)strs(1, t);
    return model(g, 13);
}

static void expect_init_error(Onnx__TensorProto *t, kiln_status want, const char *text) {
    kiln_graph *g = NULL;
    kiln_status st = load_model(init_model(t), "bad.onnx", &g);
    if (st != want) fail_msg("status %s, expected %s: %s", kiln_status_name(st),
                             kiln_status_name(want), kiln_last_error());
    assert_null(g);
    const char *msg = kiln_last_error();
    if (!strstr(msg, text) || !strstr(msg, "bad.onnx") || !strstr(msg, "'w'"))
        fail_msg("message '%s' lacks '%s'", msg, text);
}

static void test_hostile_initializers(void **state) {
    (void)state;
    static const float four[1] = {1};
    static const int64_t huge[] = {(int64_t)1 << 40, (int64_t)1 << 40};
    static const int64_t big[] = {(int64_t)1 << 33};
    static const int64_t neg[] = {2, -3};
    static const int64_t deep[14] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    /* numel overflows: rejected before any allocation */
    expect_init_error(tensor_raw("w", 1, 2, huge, four, 4), KILN_E_LIMIT, "too large");
    /* 2^33 floats announced, 4 bytes given: the size check comes before allocating 32 GiB */
    expect_init_error(tensor_raw("w", 1, 1, big, four, 4), KILN_E_FORMAT, "raw data has 4 bytes");
    expect_init_error(tensor("w", 1, 1, big), KILN_E_FORMAT, "float_data has 0 values");
    expect_init_error(tensor_raw("w", 1, 2, neg, four, 4), KILN_E_FORMAT, "negative");
    expect_init_error(tensor_raw("w", 1, 14, deep, four, 4), KILN_E_UNSUPPORTED, "rank 14");
    expect_init_error(tensor_raw("w", 14, 0, NULL, four, 1), KILN_E_UNSUPPORTED, "complex64");
    expect_init_error(tensor_raw("w", 99, 0, NULL, four, 1), KILN_E_UNSUPPORTED, "99");
    /* a sparse tensor of one value asking for 2^33 dense elements (32 GiB of
     * zeros) is refused before allocating; 4096 elements from one value load */
    static const int64_t one[] = {1}, idx[] = {5}, small[] = {4096};
    for (int k = 0; k < 2; k++) {
        Onnx__SparseTensorProto *sp = T(sizeof *sp);
        onnx__sparse_tensor_proto__init(sp);
        sp->values = tensor_raw("w", 1, 1, one, four, 4);
        sp->indices = tensor_raw("", 7, 1, one, idx, sizeof idx);
        sp->n_dims = 1, sp->dims = (int64_t *)(k ? big : small);
        Onnx__GraphProto *gp = graph("g", 0, NULL, 0, NULL, 0, NULL);
        gp->n_sparse_initializer = 1;
        gp->sparse_initializer = (Onnx__SparseTensorProto **)strs(1, sp);
        kiln_graph *g = NULL;
        kiln_status st = load_model(model(gp, 13), "bad.onnx", &g);
        if (k == 0) {
            if (st != KILN_OK) fail_msg("%s", kiln_last_error());
            kiln_graph_free(g);
            continue;
        }
        assert_int_equal(st, KILN_E_LIMIT);
        assert_non_null(strstr(kiln_last_error(), "sparse tensor 'w': dense shape (8589934592,) has more than 1024 elements per stored value (1 stored)"));
    }
}

static void test_undefined_input(void **state) {
    (void)state;
    Onnx__NodeProto *n = node("lonely", "Relu", 1, strs(1, "nowhere"), 1, strs(1, "y"), 0, NULL);
    Onnx__GraphProto *gp = graph("g", 1, (Onnx__NodeProto **)strs(1, n), 0, NULL, 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("y", 1, -1, NULL)));
    kiln_graph *g = NULL;
    assert_int_equal(load_model(model(gp, 13), "undef.onnx", &g), KILN_E_FORMAT);
    const char *msg = kiln_last_error();
    assert_non_null(strstr(msg, "undef.onnx"));
    assert_non_null(strstr(msg, "node 'lonely' (Relu)"));
    assert_non_null(strstr(msg, "'nowhere'"));
}

/* A chain of `levels` Ifs, each in the then-branch of the one above. */
static Onnx__ModelProto *nested_ifs(int levels) {
    Onnx__GraphProto *leaf = branch("leaf", node("id", "Identity", 1, strs(1, "c"), 1, strs(1, "o"), 0, NULL), "o");
    Onnx__GraphProto *inner = leaf;
    for (int i = 0; i < levels; i++) {
        Onnx__AttributeProto *a = attr("then_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
        a->g = inner;
        Onnx__AttributeProto *b = attr("else_branch", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
        b->g = leaf; /* a chain, not a tree: the size stays linear */
        inner = branch("level", node("if", "If", 1, strs(1, "c"), 1, strs(1, "o"), 2,
                                     (Onnx__AttributeProto **)strs(2, a, b)), "o");
    }
    inner->n_input = 1;
    inner->input = (Onnx__ValueInfoProto **)strs(1, vi("c", 9, 0, NULL));
    return model(inner, 13);
}

static void test_deep_nesting(void **state) {
    (void)state;
    kiln_graph *g = NULL;
    /* moderate nesting loads */
    kiln_status st = load_model(nested_ifs(10), "nest.onnx", &g);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    kiln_graph_free(g);
    /* past the subgraph limit, and far past it (refused before unpacking) */
    assert_int_equal(load_model(nested_ifs(100), "nest.onnx", &g), KILN_E_LIMIT);
    assert_non_null(strstr(kiln_last_error(), "nested deeper"));
    assert_int_equal(load_model(nested_ifs(1000), "nest.onnx", &g), KILN_E_LIMIT);
    assert_non_null(strstr(kiln_last_error(), "nest.onnx: messages nested deeper"));
}

/* ---- tensor data forms ------------------------------------------------------- */

static void test_typed_and_sparse(void **state) {
    (void)state;
    /* float16 and bool through int32_data, uint32 through uint64_data, strings */
    static int32_t h[] = {0x3C00, 0xC000}; /* 1.0, -2.0 */
    static int32_t b[] = {0, 5};
    static uint64_t u[] = {4000000000u, 7};
    static ProtobufCBinaryData sd[] = {{3, (uint8_t *)"abc"}, {0, (uint8_t *)""}};
    Onnx__TensorProto *th = tensor("h", 10, 1, dims2);
    th->n_int32_data = 2, th->int32_data = h;
    Onnx__TensorProto *tb = tensor("b", 9, 1, dims2);
    tb->n_int32_data = 2, tb->int32_data = b;
    Onnx__TensorProto *tu = tensor("u", 12, 1, dims2);
    tu->n_uint64_data = 2, tu->uint64_data = u;
    Onnx__TensorProto *ts = tensor("s", 8, 1, dims2);
    ts->n_string_data = 2, ts->string_data = sd;
    /* sparse (2,3) with values 5, 6 at linear 1 and 4 */
    static float sv[] = {5, 6};
    static int64_t si[] = {1, 4};
    Onnx__SparseTensorProto *sp = T(sizeof *sp);
    onnx__sparse_tensor_proto__init(sp);
    sp->values = tensor_raw("sp", 1, 1, dims2, sv, sizeof sv);
    sp->indices = tensor_raw("", 7, 1, dims2, si, sizeof si);
    sp->n_dims = 2, sp->dims = (int64_t *)dims23;

    Onnx__NodeProto *n = node("id", "Identity", 1, strs(1, "h"), 1, strs(1, "y"), 0, NULL);
    Onnx__GraphProto *gp = graph("g", 1, (Onnx__NodeProto **)strs(1, n), 0, NULL, 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("y", 10, -1, NULL)));
    gp->n_initializer = 4;
    gp->initializer = (Onnx__TensorProto **)strs(4, th, tb, tu, ts);
    gp->n_sparse_initializer = 1;
    gp->sparse_initializer = (Onnx__SparseTensorProto **)strs(1, sp);
    kiln_graph *g = NULL;
    kiln_status st = load_model(model(gp, 13), "typed.onnx", &g);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    const kiln_tensor *t = g->values[kiln__graph_find(g, "h")].init;
    assert_true(kiln_f16_to_f32(((uint16_t *)t->data)[1]) == -2.0f);
    t = g->values[kiln__graph_find(g, "b")].init;
    assert_int_equal(((uint8_t *)t->data)[1], 1);
    t = g->values[kiln__graph_find(g, "u")].init;
    assert_int_equal(((uint32_t *)t->data)[0], 4000000000u);
    t = g->values[kiln__graph_find(g, "s")].init;
    assert_string_equal(((char **)t->data)[0], "abc");
    t = g->values[kiln__graph_find(g, "sp")].init;
    assert_int_equal(t->ndim, 2);
    const float *d = t->data;
    assert_true(d[0] == 0 && d[1] == 5 && d[4] == 6 && d[5] == 0);
    kiln_graph_free(g);
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static Onnx__TensorProto *external(const char *location, const char *offset, const char *length) {
    Onnx__TensorProto *t = tensor("w", 1, 1, dims3);
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *keys[] = {"location", "offset", "length"};
    const char *vals[] = {location, offset, length};
    t->external_data = T(3 * sizeof *t->external_data);
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        Onnx__StringStringEntryProto *e = T(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = (char *)keys[i];
        e->value = (char *)vals[i];
        t->external_data[t->n_external_data++] = e;
    }
    return t;
}

static kiln_status load_from_dir(const char *dir, Onnx__TensorProto *t, kiln_graph **g) {
    size_t len;
    uint8_t *buf = pack(init_model(t), &len);
    char path[256];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_file(path, buf, len);
    free(buf);
    return kiln_graph_load_onnx(path, g);
}

static void test_external_data(void **state) {
    (void)state;
    char dir[] = "/tmp/kiln_test_onnx_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    uint8_t blob[8 + sizeof w_data] = {0};
    memcpy(blob + 8, w_data, sizeof w_data);
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    write_file(path, blob, sizeof blob);
    kiln_graph *g = NULL;
    kiln_status st = load_from_dir(dir, external("weights.bin", "8", "12"), &g);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_memory_equal(g->values[kiln__graph_find(g, "w")].init->data, w_data, sizeof w_data);
    kiln_graph_free(g);
    /* refused: leaving the directory, absolute paths, past the end, wrong length */
    assert_int_equal(load_from_dir(dir, external("../weights.bin", NULL, NULL), &g), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "leaves the model directory"));
    assert_int_equal(load_from_dir(dir, external("/etc/passwd", NULL, NULL), &g), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "absolute"));
    assert_int_equal(load_from_dir(dir, external("weights.bin", "16", NULL), &g), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), "past the end"));
    assert_int_equal(load_from_dir(dir, external("weights.bin", "0", "8"), &g), KILN_E_FORMAT);
    assert_int_equal(load_from_dir(dir, external("missing.bin", NULL, NULL), &g), KILN_E_IO);
    /* from memory without a directory: refused */
    size_t len;
    uint8_t *buf = pack(init_model(external("weights.bin", "8", NULL)), &len);
    assert_int_equal(kiln_graph_load_onnx_buffer(buf, len, "mem.onnx", NULL, &g), KILN_E_INVAL);
    free(buf);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    unlink(path);
    rmdir(dir);
}

static void test_tensor_pb(void **state) {
    (void)state;
    static int32_t h[] = {0x3C00, 0x4000};
    Onnx__TensorProto *t = tensor("half", 10, 1, dims2);
    t->n_int32_data = 2, t->int32_data = h;
    size_t len = onnx__tensor_proto__get_packed_size(t);
    uint8_t *buf = malloc(len);
    onnx__tensor_proto__pack(t, buf);
    char path[] = "/tmp/kiln_test_tensor_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    kiln_tensor *out = NULL;
    char *name = NULL;
    kiln_status st = kiln_tensor_load_onnx_pb(path, &out, &name);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_string_equal(name, "half");
    assert_int_equal(kiln_tensor_dtype(out), KILN_DTYPE_F16);
    assert_true(kiln_f16_to_f32(((uint16_t *)kiln_tensor_data(out))[1]) == 2.0f);
    kiln_tensor_free(out);
    free(name);
    /* truncated file */
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len - 1, f);
    fclose(f);
    assert_int_equal(kiln_tensor_load_onnx_pb(path, &out, NULL), KILN_E_FORMAT);
    assert_non_null(strstr(kiln_last_error(), path));
    unlink(path);
    free(buf);
}

/* ---- model-local functions --------------------------------------------------- */

/* local.AddScaled(a, b; alpha) = (a + b) * Constant(value_float = alpha),
 * called twice (internal names must not clash). */
static void test_function_inlining(void **state) {
    (void)state;
    Onnx__AttributeProto *ref = attr("value_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    ref->ref_attr_name = "alpha";
    Onnx__FunctionProto *fn = T(sizeof *fn);
    onnx__function_proto__init(fn);
    fn->name = "AddScaled";
    fn->domain = "local";
    fn->n_input = 2, fn->input = strs(2, "a", "b");
    fn->n_output = 1, fn->output = strs(1, "c");
    fn->n_attribute = 1, fn->attribute = strs(1, "alpha");
    fn->n_node = 3;
    fn->node = (Onnx__NodeProto **)strs(
        3, node("add", "Add", 2, strs(2, "a", "b"), 1, strs(1, "s"), 0, NULL),
        node("k", "Constant", 0, NULL, 1, strs(1, "k"), 1, (Onnx__AttributeProto **)strs(1, ref)),
        node("mul", "Mul", 2, strs(2, "s", "k"), 1, strs(1, "c"), 0, NULL));
    Onnx__AttributeProto *alpha2 = attr("alpha", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    alpha2->has_f = 1, alpha2->f = 2.0f;
    Onnx__AttributeProto *alpha3 = attr("alpha", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    alpha3->has_f = 1, alpha3->f = 3.0f;
    Onnx__NodeProto *call1 = node("call1", "AddScaled", 2, strs(2, "X", "X"), 1, strs(1, "Y"), 1,
                                  (Onnx__AttributeProto **)strs(1, alpha2));
    /* call2 sets no alpha: the function's default (FunctionProto.attribute_proto,
     * field 11, newer than kiln's onnx.proto: an unknown field) applies */
    uint8_t def_buf[64];
    size_t def_len = onnx__attribute_proto__pack(alpha3, def_buf + 1) + 1;
    def_buf[0] = (uint8_t)(def_len - 1); /* protobuf-c keeps the length prefix */
    ProtobufCMessageUnknownField *uf = T(sizeof *uf);
    uf->tag = 11;
    uf->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    uf->len = def_len;
    uf->data = def_buf;
    fn->base.n_unknown_fields = 1;
    fn->base.unknown_fields = uf;
    Onnx__NodeProto *call2 = node("call2", "AddScaled", 2, strs(2, "Y", "X"), 1, strs(1, "Z"), 0, NULL);
    call1->domain = call2->domain = "local";
    Onnx__GraphProto *gp = graph("g", 2, (Onnx__NodeProto **)strs(2, call1, call2), 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("X", 1, 1, dims3)), 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("Z", 1, 1, dims3)));
    Onnx__ModelProto *m = model(gp, 13);
    m->n_functions = 1;
    m->functions = (Onnx__FunctionProto **)strs(1, fn);
    kiln_graph *g = NULL;
    kiln_status st = load_model(m, "fn.onnx", &g);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_int_equal(g->n_nodes, 6);
    int consts = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        assert_true(n->op >= 0 || strcmp(n->op_type, "Constant") == 0);
        if (strcmp(n->op_type, "Constant") == 0) {
            float want = consts++ == 0 ? 2.0f : 3.0f;
            assert_true(kiln__attr_f(n, "value_float", 0) == want);
        }
    }
    assert_int_equal(consts, 2);
    /* run it if kiln has the ops: Z = ((X + X) * 2 + X) * 3 */
    kiln_session *s = NULL;
    if (kiln_session_create(g, NULL, &s) == KILN_OK) {
        float x[3] = {1, 2, 3};
        kiln_tensor *tx;
        assert_int_equal(kiln_tensor_wrap(KILN_DTYPE_F32, 1, dims3, x, &tx), KILN_OK);
        const char *names[] = {"X"};
        const kiln_tensor *ins[] = {tx};
        st = kiln_session_run(s, 1, names, ins);
        if (st != KILN_OK) fail_msg("%s", kiln_last_error());
        const kiln_tensor *z;
        assert_int_equal(kiln_session_output(s, 0, &z), KILN_OK);
        for (int i = 0; i < 3; i++) assert_float_equal(((float *)kiln_tensor_data(z))[i], 15 * x[i], 1e-5);
        kiln_tensor_free(tx);
        kiln_session_free(s);
    }
    kiln_graph_free(g);
}

/* local.F<k>(a) = F<k-1>(F<k-1>(a)), F0 = Relu: F<levels> expands to
 * 2^levels nodes. Moderate levels load; a 40-level chain (a few KB of
 * protobuf asking for 2^40 nodes) is refused quickly. */
static Onnx__ModelProto *doubling_functions(int levels) {
    Onnx__FunctionProto **fns = T((size_t)(levels + 1) * sizeof *fns);
    for (int k = 0; k <= levels; k++) {
        Onnx__FunctionProto *fn = fns[k] = T(sizeof *fn);
        onnx__function_proto__init(fn);
        fn->name = T(16);
        snprintf(fn->name, 16, "F%d", k);
        fn->domain = "local";
        fn->n_input = 1, fn->input = strs(1, "a");
        fn->n_output = 1, fn->output = strs(1, "b");
        if (k == 0) {
            fn->n_node = 1;
            fn->node = (Onnx__NodeProto **)strs(1, node("r", "Relu", 1, strs(1, "a"), 1, strs(1, "b"), 0, NULL));
            continue;
        }
        Onnx__NodeProto *c1 = node("c1", fns[k - 1]->name, 1, strs(1, "a"), 1, strs(1, "t"), 0, NULL);
        Onnx__NodeProto *c2 = node("c2", fns[k - 1]->name, 1, strs(1, "t"), 1, strs(1, "b"), 0, NULL);
        c1->domain = c2->domain = "local";
        fn->n_node = 2;
        fn->node = (Onnx__NodeProto **)strs(2, c1, c2);
    }
    Onnx__NodeProto *top = node("top", fns[levels]->name, 1, strs(1, "X"), 1, strs(1, "Y"), 0, NULL);
    top->domain = "local";
    Onnx__GraphProto *gp = graph("g", 1, (Onnx__NodeProto **)strs(1, top), 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("X", 1, 1, dims3)), 1,
                                 (Onnx__ValueInfoProto **)strs(1, vi("Y", 1, 1, dims3)));
    Onnx__ModelProto *m = model(gp, 13);
    m->n_functions = (size_t)levels + 1;
    m->functions = fns;
    return m;
}

static void test_function_expansion_limit(void **state) {
    (void)state;
    kiln_graph *g = NULL;
    kiln_status st = load_model(doubling_functions(6), "fn.onnx", &g);
    if (st != KILN_OK) fail_msg("%s", kiln_last_error());
    assert_int_equal(g->n_nodes, 64);
    kiln_graph_free(g);
    assert_int_equal(load_model(doubling_functions(40), "fn.onnx", &g), KILN_E_LIMIT);
    /* the outer calls and the cause are named; the levels between are not */
    assert_non_null(strstr(kiln_last_error(), "fn.onnx: node 'top' (function F40): node 'c1' (function F39)"));
    assert_non_null(strstr(kiln_last_error(), "function calls expand to more than"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_load_sample, reset_pool),
        cmocka_unit_test_setup(test_round_trip, reset_pool),
        cmocka_unit_test_setup(test_run_sample, reset_pool),
        cmocka_unit_test_setup(test_truncated, reset_pool),
        cmocka_unit_test_setup(test_corrupted, reset_pool),
        cmocka_unit_test_setup(test_hostile_initializers, reset_pool),
        cmocka_unit_test_setup(test_undefined_input, reset_pool),
        cmocka_unit_test_setup(test_deep_nesting, reset_pool),
        cmocka_unit_test_setup(test_typed_and_sparse, reset_pool),
        cmocka_unit_test_setup(test_external_data, reset_pool),
        cmocka_unit_test_setup(test_tensor_pb, reset_pool),
        cmocka_unit_test_setup(test_function_inlining, reset_pool),
        cmocka_unit_test_setup(test_function_expansion_limit, reset_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
