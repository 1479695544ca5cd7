/* src/cpu/ref/ml.c: reference kernels of domain ai.onnx.ml.
 *
 *   ArrayFeatureExtractor  X[..., indices]
 *   Binarizer              X > threshold ? 1 : 0
 *   LabelEncoder           map keys to values (opset 1 classes_strings,
 *                          opset 2 list attributes, opset 4 tensor attributes)
 *   TreeEnsemble           (opset 5) tree ensemble regression/scores
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/op.h"

/* ---- ArrayFeatureExtractor -------------------------------------------------- */

// X: (..., C) f32/f64/i64/i32/string, Y: indices int64 (any shape, K
// elements); Z: (..., K), or (1, K) when X is 1-D
kiln_status kiln__infer_ArrayFeatureExtractor(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_I64,
                                KILN_DTYPE_I32, KILN_DTYPE_STRING, 0));
    KILN__TRY(kiln__check_dtype(idx, "Y", KILN_DTYPE_I64, 0));
    if (x->ndim < 1) return kiln__err(KILN_E_SHAPE, "input 'X' is a scalar, expected rank >= 1");
    int64_t dims[KILN_MAX_DIMS];
    int nd = x->ndim == 1 ? 2 : x->ndim;
    if (x->ndim == 1) dims[0] = 1;
    else memcpy(dims, x->dims, sizeof(int64_t) * (x->ndim - 1));
    dims[nd - 1] = kiln__n(idx);
    return kiln__out_shape(c, 0, x->dtype, nd, dims);
}

kiln_status kiln__ref_ArrayFeatureExtractor(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    kiln_tensor *z = c->out[0];
    const int64_t cols = x->dims[x->ndim - 1], rows = cols ? kiln__n(x) / cols : 0;
    const int64_t k = kiln__n(idx);
    const int64_t *iv = idx->data;
    for (int64_t j = 0; j < k; j++)
        if (iv[j] < 0 || iv[j] >= cols)
            return kiln__err(KILN_E_RANGE, "input 'Y' has index %lld at %lld, expected 0..%lld",
                             (long long)iv[j], (long long)j, (long long)cols - 1);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++)
            KILN__TRY(kiln__elem_copy(z->dtype, z->data, r * k + j, x->data, r * cols + iv[j], 1));
    return KILN_OK;
}

/* ---- Binarizer ---------------------------------------------------------------- */

// X: any shape f32/f64/i64/i32, Y: like X
kiln_status kiln__infer_Binarizer(kiln__kctx *c) {
    KILN__TRY(kiln__check_dtype(c->in[0], "X", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_I64,
                                KILN_DTYPE_I32, 0));
    return kiln__out_like(c, 0, c->in[0]);
}

kiln_status kiln__ref_Binarizer(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    double threshold = kiln__attr_f(c->node, "threshold", 0.0f);
    int64_t n = kiln__n(x);
    for (int64_t i = 0; i < n; i++)
        kiln__st_f(y->dtype, y->data, i, kiln__ld_f(x->dtype, x->data, i) > threshold ? 1.0 : 0.0);
    return KILN_OK;
}

/* ---- LabelEncoder --------------------------------------------------------------- */

/* A list of keys or values: from a list attribute (floats: f32, ints: i64,
 * strings) or a tensor attribute. */
typedef struct le_list {
    kiln_dtype dt;
    int64_t n;
    const void *data;
} le_list;

/* The default of an unmatched key, by output kind. */
typedef struct le_default {
    double f;
    int64_t i;
    const char *s;
} le_default;

typedef struct le_params {
    le_list keys, values;
    le_default def;
    int index_mode; /* opset 1: keys are classes_strings, values their indices */
} le_params;

/* Reads the list attributes <prefix>_floats/_int64s/_strings/_tensor; fails
 * unless exactly one is present. */
static kiln_status le_list_attr(const kiln__node *node, const char *prefix, le_list *l) {
    char name[32];
    int found = 0;
    const float *f;
    const int64_t *i;
    char *const *s;
    int n;
    snprintf(name, sizeof name, "%s_floats", prefix);
    if ((n = kiln__attr_floats(node, name, &f)) >= 0) *l = (le_list){KILN_DTYPE_F32, n, f}, found++;
    snprintf(name, sizeof name, "%s_int64s", prefix);
    if ((n = kiln__attr_ints(node, name, &i)) >= 0) *l = (le_list){KILN_DTYPE_I64, n, i}, found++;
    snprintf(name, sizeof name, "%s_strings", prefix);
    if ((n = kiln__attr_strings(node, name, &s)) >= 0) *l = (le_list){KILN_DTYPE_STRING, n, s}, found++;
    snprintf(name, sizeof name, "%s_tensor", prefix);
    const kiln_tensor *t = kiln__attr_tensor(node, name);
    if (t) *l = (le_list){t->dtype, kiln__n(t), t->data}, found++;
    if (found != 1)
        return kiln__err(KILN_E_INVAL, "expected exactly one of the attributes %s_floats, "
                         "%s_int64s, %s_strings, %s_tensor, found %d", prefix, prefix, prefix,
                         prefix, found);
    return KILN_OK;
}

static kiln_status le_parse(const kiln__kctx *c, le_params *p) {
    const kiln__node *node = c->node;
    memset(p, 0, sizeof *p);
    p->def.f = -0.0;
    p->def.i = kiln__attr_i(node, "default_int64", -1);
    p->def.s = kiln__attr_s(node, "default_string", "_Unused");
    const kiln_tensor *x = c->in[0];
    if (c->opset < 2) { /* classes_strings: string -> index, or index -> string */
        char *const *classes;
        int n = kiln__attr_strings(node, "classes_strings", &classes);
        if (n < 0) return kiln__err(KILN_E_INVAL, "attribute 'classes_strings' is required");
        p->index_mode = 1;
        p->keys = (le_list){KILN_DTYPE_STRING, n, classes};
        p->values = (le_list){KILN_DTYPE_I64, n, NULL};
        if (x->dtype == KILN_DTYPE_I64) {
            p->keys = (le_list){KILN_DTYPE_I64, n, NULL};
            p->values = (le_list){KILN_DTYPE_STRING, n, classes};
        }
    } else {
        KILN__TRY(le_list_attr(node, "keys", &p->keys));
        KILN__TRY(le_list_attr(node, "values", &p->values));
        if (p->keys.n != p->values.n)
            return kiln__err(KILN_E_INVAL, "%lld keys but %lld values", (long long)p->keys.n,
                             (long long)p->values.n);
        p->def.f = kiln__attr_f(node, "default_float", -0.0f);
        const kiln_tensor *dt = kiln__attr_tensor(node, "default_tensor");
        if (dt) {
            if (kiln__n(dt) != 1 || dt->dtype != p->values.dt)
                return kiln__err(KILN_E_INVAL, "attribute 'default_tensor' must be one %s "
                                 "element like the values", kiln_dtype_name(p->values.dt));
            if (dt->dtype == KILN_DTYPE_STRING) p->def.s = ((char *const *)dt->data)[0];
            else if (kiln__dtype_is_float(dt->dtype)) p->def.f = kiln__ld_f(dt->dtype, dt->data, 0);
            else p->def.i = kiln__ld_i(dt->dtype, dt->data, 0);
        }
    }
    int x_str = x->dtype == KILN_DTYPE_STRING, k_str = p->keys.dt == KILN_DTYPE_STRING;
    if (x_str != k_str || (!x_str && kiln__dtype_is_float(x->dtype) !=
                                         kiln__dtype_is_float(p->keys.dt)))
        return kiln__err(KILN_E_TYPE, "input 'X' is %s but the keys are %s",
                         kiln_dtype_name(x->dtype), kiln_dtype_name(p->keys.dt));
    return KILN_OK;
}

/* 1 if element i of x equals key j (NaN matches NaN). */
static int le_match(const le_params *p, const kiln_tensor *x, int64_t i, int64_t j) {
    if (p->index_mode && p->keys.dt == KILN_DTYPE_I64) return kiln__ld_i(x->dtype, x->data, i) == j;
    if (x->dtype == KILN_DTYPE_STRING)
        return strcmp(((char *const *)x->data)[i], ((char *const *)p->keys.data)[j]) == 0;
    if (kiln__dtype_is_float(x->dtype)) {
        double a = kiln__ld_f(x->dtype, x->data, i), b = kiln__ld_f(p->keys.dt, p->keys.data, j);
        return a == b || (isnan(a) && isnan(b));
    }
    return kiln__ld_i(x->dtype, x->data, i) == kiln__ld_i(p->keys.dt, p->keys.data, j);
}

// X: any shape (string/i64/f32/...: the keys' type), Y: shape of X, values' type
kiln_status kiln__infer_LabelEncoder(kiln__kctx *c) {
    le_params p;
    KILN__TRY(le_parse(c, &p));
    return kiln__out_shape(c, 0, p.values.dt, c->in[0]->ndim, c->in[0]->dims);
}

kiln_status kiln__ref_LabelEncoder(kiln__kctx *c) {
    le_params p;
    KILN__TRY(le_parse(c, &p));
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int64_t n = kiln__n(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t j = -1; /* a repeated key: the last one wins */
        for (int64_t k = p.keys.n - 1; k >= 0 && j < 0; k--)
            if (le_match(&p, x, i, k)) j = k;
        if (y->dtype == KILN_DTYPE_STRING)
            KILN__TRY(kiln__str_take(
                y, i, kiln__strdup(j >= 0 ? ((char *const *)p.values.data)[j] : p.def.s)));
        else if (p.index_mode)
            kiln__st_i(y->dtype, y->data, i, j >= 0 ? j : p.def.i);
        else if (j >= 0)
            KILN__TRY(kiln__elem_copy(y->dtype, y->data, i, p.values.data, j, 1));
        else if (kiln__dtype_is_float(y->dtype))
            kiln__st_f(y->dtype, y->data, i, p.def.f);
        else
            kiln__st_i(y->dtype, y->data, i, p.def.i);
    }
    return KILN_OK;
}

/* ---- TreeEnsemble (opset 5) ---------------------------------------------------- */

enum { TREE_LEQ, TREE_LT, TREE_GTE, TREE_GT, TREE_EQ, TREE_NEQ, TREE_MEMBER };
enum { AGG_AVERAGE, AGG_SUM, AGG_MIN, AGG_MAX };
enum { POST_NONE, POST_SOFTMAX, POST_LOGISTIC, POST_SOFTMAX_ZERO, POST_PROBIT };

typedef struct tree_params {
    int64_t n_nodes, n_leaves, n_trees, n_targets, n_features;
    const int64_t *feature, *true_id, *false_id, *true_leaf, *false_leaf, *missing_true;
    const int64_t *leaf_target, *roots;
    const kiln_tensor *splits, *modes, *leaf_weights, *members;
    int64_t aggregate, post;
} tree_params;

/* Reads a required ints attribute of exactly n entries (n < 0: any). */
static kiln_status tree_ints(const kiln__node *node, const char *name, int64_t n, int required,
                             const int64_t **v, int64_t *count) {
    int k = kiln__attr_ints(node, name, v);
    if (k < 0) {
        *v = NULL;
        if (required) return kiln__err(KILN_E_INVAL, "attribute '%s' is required", name);
        return KILN_OK;
    }
    if (n >= 0 && k != n)
        return kiln__err(KILN_E_INVAL, "attribute '%s' has %d entries, expected %lld", name, k,
                         (long long)n);
    if (count) *count = k;
    return KILN_OK;
}

static kiln_status tree_parse(const kiln__kctx *c, tree_params *p) {
    const kiln__node *node = c->node;
    const kiln_tensor *x = c->in[0];
    memset(p, 0, sizeof *p);
    KILN__TRY(kiln__check_dtype(x, "X", KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16, 0));
    if (x->ndim != 2) {
        char got[128];
        return kiln__err(KILN_E_SHAPE, "input 'X' has shape %s, expected [N,F]",
                         kiln__shape_str(x->ndim, x->dims, got, sizeof got));
    }
    p->n_features = x->dims[1];
    p->splits = kiln__attr_tensor(node, "nodes_splits");
    p->modes = kiln__attr_tensor(node, "nodes_modes");
    p->leaf_weights = kiln__attr_tensor(node, "leaf_weights");
    p->members = kiln__attr_tensor(node, "membership_values");
    if (!p->splits || !p->modes || !p->leaf_weights)
        return kiln__err(KILN_E_INVAL, "attributes 'nodes_splits', 'nodes_modes' and "
                         "'leaf_weights' are required");
    if (p->splits->dtype != x->dtype || (p->members && p->members->dtype != x->dtype))
        return kiln__err(KILN_E_TYPE, "attributes 'nodes_splits' and 'membership_values' must "
                         "have the type of 'X' (%s)", kiln_dtype_name(x->dtype));
    if (!kiln__dtype_is_float(p->leaf_weights->dtype))
        return kiln__err(KILN_E_TYPE, "attribute 'leaf_weights' must be a float tensor");
    p->n_nodes = kiln__n(p->splits);
    p->n_leaves = kiln__n(p->leaf_weights);
    if (kiln__n(p->modes) != p->n_nodes || kiln__dtype_is_float(p->modes->dtype))
        return kiln__err(KILN_E_INVAL, "attribute 'nodes_modes' must have %lld uint8 entries",
                         (long long)p->n_nodes);
    int64_t N = p->n_nodes;
    KILN__TRY(tree_ints(node, "nodes_featureids", N, 1, &p->feature, NULL));
    KILN__TRY(tree_ints(node, "nodes_truenodeids", N, 1, &p->true_id, NULL));
    KILN__TRY(tree_ints(node, "nodes_falsenodeids", N, 1, &p->false_id, NULL));
    KILN__TRY(tree_ints(node, "nodes_trueleafs", N, 1, &p->true_leaf, NULL));
    KILN__TRY(tree_ints(node, "nodes_falseleafs", N, 1, &p->false_leaf, NULL));
    KILN__TRY(tree_ints(node, "nodes_missing_value_tracks_true", N, 0, &p->missing_true, NULL));
    KILN__TRY(tree_ints(node, "leaf_targetids", p->n_leaves, 1, &p->leaf_target, NULL));
    KILN__TRY(tree_ints(node, "tree_roots", -1, 1, &p->roots, &p->n_trees));
    p->n_targets = kiln__attr_i(node, "n_targets", 1);
    p->aggregate = kiln__attr_i(node, "aggregate_function", AGG_SUM);
    p->post = kiln__attr_i(node, "post_transform", POST_NONE);
    if (p->n_targets < 1)
        return kiln__err(KILN_E_INVAL, "attribute 'n_targets' is %lld, expected >= 1",
                         (long long)p->n_targets);
    if (p->aggregate < AGG_AVERAGE || p->aggregate > AGG_MAX)
        return kiln__err(KILN_E_INVAL, "attribute 'aggregate_function' is %lld, expected 0..3",
                         (long long)p->aggregate);
    if (p->post < POST_NONE || p->post > POST_PROBIT)
        return kiln__err(KILN_E_INVAL, "attribute 'post_transform' is %lld, expected 0..4",
                         (long long)p->post);

    int64_t n_member_nodes = 0, n_sets = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t mode = kiln__ld_i(p->modes->dtype, p->modes->data, i);
        if (mode < TREE_LEQ || mode > TREE_MEMBER)
            return kiln__err(KILN_E_INVAL, "attribute 'nodes_modes'[%lld] is %lld, expected 0..6",
                             (long long)i, (long long)mode);
        n_member_nodes += mode == TREE_MEMBER;
        if (p->feature[i] < 0 || p->feature[i] >= p->n_features)
            return kiln__err(KILN_E_RANGE, "attribute 'nodes_featureids'[%lld] is %lld, X has %lld "
                             "features", (long long)i, (long long)p->feature[i],
                             (long long)p->n_features);
        int64_t ids[2] = {p->true_id[i], p->false_id[i]};
        int64_t leafs[2] = {p->true_leaf[i], p->false_leaf[i]};
        for (int b = 0; b < 2; b++) {
            int64_t limit = leafs[b] ? p->n_leaves : N;
            if (ids[b] < 0 || ids[b] >= limit)
                return kiln__err(KILN_E_RANGE, "attribute 'nodes_%snodeids'[%lld] is %lld, expected "
                                 "0..%lld", b ? "false" : "true", (long long)i, (long long)ids[b],
                                 (long long)limit - 1);
        }
    }
    if (p->members) { /* sets are NaN-terminated (the last one may not be) */
        int64_t m = kiln__n(p->members);
        for (int64_t i = 0; i < m; i++)
            if (isnan(kiln__ld_f(p->members->dtype, p->members->data, i)) || i == m - 1) n_sets++;
    }
    if (n_sets < n_member_nodes)
        return kiln__err(KILN_E_INVAL, "attribute 'membership_values' has %lld sets for %lld "
                         "BRANCH_MEMBER nodes", (long long)n_sets, (long long)n_member_nodes);
    for (int64_t t = 0; t < p->n_trees; t++)
        if (p->roots[t] < 0 || p->roots[t] >= N)
            return kiln__err(KILN_E_RANGE, "attribute 'tree_roots'[%lld] is %lld, expected 0..%lld",
                             (long long)t, (long long)p->roots[t], (long long)N - 1);
    for (int64_t l = 0; l < p->n_leaves; l++)
        if (p->leaf_target[l] < 0 || p->leaf_target[l] >= p->n_targets)
            return kiln__err(KILN_E_RANGE, "attribute 'leaf_targetids'[%lld] is %lld, expected "
                             "0..%lld", (long long)l, (long long)p->leaf_target[l],
                             (long long)p->n_targets - 1);
    return KILN_OK;
}

/* Whether node i sends feature value v down its true branch. set_start:
 * first membership value of node i's set. */
static int tree_goes_true(const tree_params *p, int64_t i, double v, int64_t set_start) {
    if (isnan(v) && p->missing_true && p->missing_true[i]) return 1;
    double s = kiln__ld_f(p->splits->dtype, p->splits->data, i);
    switch (kiln__ld_i(p->modes->dtype, p->modes->data, i)) {
    case TREE_LEQ: return v <= s;
    case TREE_LT: return v < s;
    case TREE_GTE: return v >= s;
    case TREE_GT: return v > s;
    case TREE_EQ: return v == s;
    case TREE_NEQ: return v != s;
    default: { /* TREE_MEMBER */
        int64_t m = kiln__n(p->members);
        for (int64_t k = set_start; k < m; k++) {
            double member = kiln__ld_f(p->members->dtype, p->members->data, k);
            if (isnan(member)) break;
            if (member == v) return 1;
        }
        return 0;
    }
    }
}

/* Inverse error function: initial approximation refined by Newton steps. */
static double tree_erfinv(double y) {
    if (!(y >= -1 && y <= 1)) return NAN;
    if (y == -1) return -INFINITY;
    if (y == 1) return INFINITY;
    double w = -log((1 - y) * (1 + y)), x;
    if (w < 5) {
        w -= 2.5;
        x = 2.81022636e-08;
        x = 3.43273939e-07 + x * w;
        x = -3.5233877e-06 + x * w;
        x = -4.39150654e-06 + x * w;
        x = 0.00021858087 + x * w;
        x = -0.00125372503 + x * w;
        x = -0.00417768164 + x * w;
        x = 0.246640727 + x * w;
        x = 1.50140941 + x * w;
    } else {
        w = sqrt(w) - 3;
        x = -0.000200214257;
        x = 0.000100950558 + x * w;
        x = 0.00134934322 + x * w;
        x = -0.00367342844 + x * w;
        x = 0.00573950773 + x * w;
        x = -0.0076224613 + x * w;
        x = 0.00943887047 + x * w;
        x = 1.00167406 + x * w;
        x = 2.83297682 + x * w;
    }
    x *= y;
    for (int k = 0; k < 2; k++) /* Newton: erf(x) - y = 0 */
        x -= (erf(x) - y) / (2 / sqrt(M_PI) * exp(-x * x));
    return x;
}

/* Applies post_transform to the n scores of one row. */
static void tree_post_transform(int64_t post, double *v, int64_t n) {
    if (post == POST_SOFTMAX || post == POST_SOFTMAX_ZERO) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < n; j++)
            if (v[j] > mx) mx = v[j];
        for (int64_t j = 0; j < n; j++) {
            v[j] = post == POST_SOFTMAX_ZERO && v[j] == 0 ? 0 : exp(v[j] - mx);
            sum += v[j];
        }
        for (int64_t j = 0; j < n; j++) v[j] = sum > 0 ? v[j] / sum : 0;
    } else if (post == POST_LOGISTIC) {
        for (int64_t j = 0; j < n; j++) v[j] = 1 / (1 + exp(-v[j]));
    } else if (post == POST_PROBIT) {
        for (int64_t j = 0; j < n; j++) v[j] = M_SQRT2 * tree_erfinv(2 * v[j] - 1);
    }
}

// X: (N, F) f32/f64/f16, Y: (N, n_targets) like X
kiln_status kiln__infer_TreeEnsemble(kiln__kctx *c) {
    tree_params p;
    KILN__TRY(tree_parse(c, &p));
    int64_t dims[2] = {c->in[0]->dims[0], p.n_targets};
    /* scratch: set start per node (n_nodes), one row of scores and of leaf
     * counts (n_targets each) */
    c->scratch_bytes = sizeof(int64_t) * (size_t)p.n_nodes + 2 * sizeof(double) * (size_t)p.n_targets;
    return kiln__out_shape(c, 0, c->in[0]->dtype, 2, dims);
}

kiln_status kiln__ref_TreeEnsemble(kiln__kctx *c) {
    tree_params p;
    KILN__TRY(tree_parse(c, &p));
    const kiln_tensor *x = c->in[0];
    kiln_tensor *y = c->out[0];
    int64_t *set_start = c->scratch;
    double *scores = (double *)(set_start + p.n_nodes), *hits = scores + p.n_targets;
    for (int64_t i = 0, k = 0; i < p.n_nodes; i++) {
        set_start[i] = k;
        if (kiln__ld_i(p.modes->dtype, p.modes->data, i) != TREE_MEMBER) continue;
        int64_t m = kiln__n(p.members);
        while (k < m && !isnan(kiln__ld_f(p.members->dtype, p.members->data, k))) k++;
        k++; /* past the NaN */
    }
    for (int64_t r = 0; r < x->dims[0]; r++) {
        for (int64_t j = 0; j < p.n_targets; j++) scores[j] = hits[j] = 0;
        for (int64_t t = 0; t < p.n_trees; t++) {
            int64_t id = p.roots[t];
            /* a root with both branches on the same leaf is a one-leaf tree */
            int is_leaf = p.true_leaf[id] && p.false_leaf[id] && p.true_id[id] == p.false_id[id];
            if (is_leaf) id = p.true_id[id];
            for (int64_t steps = 0; !is_leaf; steps++) {
                if (steps > p.n_nodes)
                    return kiln__err(KILN_E_INVAL, "tree %lld has a cycle", (long long)t);
                double v = kiln__ld_f(x->dtype, x->data, r * p.n_features + p.feature[id]);
                int go_true = tree_goes_true(&p, id, v, set_start[id]);
                is_leaf = (go_true ? p.true_leaf[id] : p.false_leaf[id]) != 0; /* any nonzero flag, as validated */
                id = go_true ? p.true_id[id] : p.false_id[id];
            }
            double w = kiln__ld_f(p.leaf_weights->dtype, p.leaf_weights->data, id);
            int64_t j = p.leaf_target[id];
            if (p.aggregate == AGG_MIN) scores[j] = !hits[j] || w < scores[j] ? w : scores[j];
            else if (p.aggregate == AGG_MAX) scores[j] = !hits[j] || w > scores[j] ? w : scores[j];
            else scores[j] += w;
            hits[j] += 1;
        }
        /* MIN and MAX of a target no leaf reached are 0 (as ONNX Runtime) */
        if (p.aggregate == AGG_AVERAGE && p.n_trees > 0)
            for (int64_t j = 0; j < p.n_targets; j++) scores[j] /= (double)p.n_trees;
        tree_post_transform(p.post, scores, p.n_targets);
        for (int64_t j = 0; j < p.n_targets; j++)
            kiln__st_f(y->dtype, y->data, r * p.n_targets + j, scores[j]);
    }
    return KILN_OK;
}
