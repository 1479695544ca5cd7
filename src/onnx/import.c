/* src/onnx/import.c: ONNX ModelProto -> kiln_graph.
 *
 * A graph is built in passes, so that node order in the file does not matter
 * and subgraphs can tell captured names from their own:
 *   1. initializers (dense and sparse) and inputs become INIT / INPUT values;
 *   2. nodes are listed, calls of model-local functions expanded in place;
 *   3. every node output becomes a value (so all local names are known);
 *   4. value_info types are applied to the values that exist;
 *   5. nodes are added: inputs resolved, attributes converted (subgraphs
 *      built recursively); a name not defined locally is, in a subgraph, an
 *      OUTER value (and an implicit input of the node owning the subgraph,
 *      resolved the same way one level up), and an error at the top level;
 *   6. outputs are marked.
 * Then kiln__graph_finalize resolves ops, orders nodes and checks the rest.
 * Every error message starts with the file name and names the node, tensor or
 * field at fault. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_internal.h"

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* ---- function inlining scopes ------------------------------------------- */

/* One expanded call of a model-local function. Names of the function body are
 * mapped: formal inputs/outputs to the caller's actual names, every other
 * name to prefix + name, so that two calls never share internal values. */
typedef struct fn_scope {
    const Onnx__FunctionProto *fn;
    const Onnx__NodeProto *call;    /* calling node: attributes for ref_attr_name */
    const struct fn_scope *parent;  /* scope the calling node lives in (NULL: graph) */
    char **actual_in, **actual_out; /* caller's names, already mapped; "" if omitted */
    char *prefix;
    int n_defaults;                 /* FunctionProto.attribute_proto (field 11) defaults */
    Onnx__AttributeProto **defaults;
    struct fn_scope *next_alloc;    /* list of every scope of the import, for freeing */
} fn_scope;

typedef struct pending {
    const Onnx__NodeProto *np;
    const fn_scope *sc;
} pending;

typedef struct importer {
    kiln__onnx_src src;
    const Onnx__ModelProto *model;
    int n_calls;       /* function calls expanded so far (unique prefixes) */
    int64_t n_expanded; /* nodes those calls added (KILN__ONNX_MAX_EXPANDED_NODES) */
    fn_scope *scopes;  /* every scope, freed at the end */
    int depth;         /* current subgraph / function nesting */
} importer;

/* Subgraph or function levels named in an error message (the innermost text
 * is kept). */
#define KILN__ONNX_MSG_LEVELS 4

static const char *str_or_empty(const char *s) { return s ? s : ""; }

static const char *norm_domain(const char *d) {
    return !d || strcmp(d, "ai.onnx") == 0 ? "" : d;
}

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

/* Maps a name used in a function body (or a graph, sc == NULL) to the name
 * the graph uses. Returns a malloc'd string, NULL on OOM. */
static char *map_name(const fn_scope *sc, const char *name) {
    name = str_or_empty(name);
    if (!sc || !*name) return strdup(name);
    for (size_t i = 0; i < sc->fn->n_input; i++)
        if (strcmp(sc->fn->input[i], name) == 0) return strdup(sc->actual_in[i]);
    for (size_t i = 0; i < sc->fn->n_output; i++)
        if (strcmp(sc->fn->output[i], name) == 0) return strdup(sc->actual_out[i]);
    char *s;
    return asprintf(&s, "%s%s", sc->prefix, name) < 0 ? NULL : s;
}

static void free_scope(fn_scope *sc) {
    if (sc->actual_in)
        for (size_t i = 0; i < sc->fn->n_input; i++) free(sc->actual_in[i]);
    if (sc->actual_out)
        for (size_t i = 0; i < sc->fn->n_output; i++) free(sc->actual_out[i]);
    for (int i = 0; i < sc->n_defaults; i++)
        onnx__attribute_proto__free_unpacked(sc->defaults[i], NULL);
    free(sc->defaults);
    free(sc->actual_in);
    free(sc->actual_out);
    free(sc->prefix);
    free(sc);
}

static const Onnx__FunctionProto *find_function(const importer *im, const Onnx__NodeProto *np) {
    const char *dom = norm_domain(np->domain);
    for (size_t i = 0; i < im->model->n_functions; i++) {
        const Onnx__FunctionProto *f = im->model->functions[i];
        if (strcmp(str_or_empty(f->name), str_or_empty(np->op_type)) == 0 &&
            strcmp(norm_domain(f->domain), dom) == 0)
            return f;
    }
    return NULL;
}

/* FunctionProto.attribute_proto (default attribute values, field 11) is newer
 * than the onnx.proto kiln is generated from; protobuf-c keeps it as an
 * unknown field, parsed here. */
static kiln_status read_defaults(fn_scope *sc) {
    const ProtobufCMessage *base = &sc->fn->base;
    for (unsigned i = 0; i < base->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &base->unknown_fields[i];
        if (u->tag != 11 || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) continue;
        /* protobuf-c keeps the length prefix in the unknown field's data */
        const uint8_t *p = u->data, *end = u->data + u->len;
        uint64_t len;
        Onnx__AttributeProto *a = NULL;
        if (read_varint(&p, end, &len) && len == (uint64_t)(end - p))
            a = onnx__attribute_proto__unpack(NULL, (size_t)len, p);
        if (!a) return kiln__err(KILN_E_FORMAT, "function '%s': bad default attribute",
                                 str_or_empty(sc->fn->name));
        Onnx__AttributeProto **d = realloc(sc->defaults, (sc->n_defaults + 1) * sizeof *d);
        if (!d) {
            onnx__attribute_proto__free_unpacked(a, NULL);
            return oom();
        }
        sc->defaults = d;
        d[sc->n_defaults++] = a;
    }
    return KILN_OK;
}

static kiln_status push_pending(pending **list, int *n, int *cap, const Onnx__NodeProto *np,
                                const fn_scope *sc) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        pending *p = realloc(*list, (size_t)nc * sizeof *p);
        if (!p) return oom();
        *list = p;
        *cap = nc;
    }
    (*list)[(*n)++] = (pending){np, sc};
    return KILN_OK;
}

/* Appends the nodes of a node list to *list, expanding calls of model-local
 * functions recursively (each call gets its own scope). */
static kiln_status expand_nodes(importer *im, Onnx__NodeProto *const *nodes, size_t n,
                                const fn_scope *sc, int depth, pending **list, int *nl, int *cap) {
    for (size_t k = 0; k < n; k++) {
        const Onnx__NodeProto *np = nodes[k];
        const Onnx__FunctionProto *fn = find_function(im, np);
        const char *nm = str_or_empty(np->name);
        if (sc && ++im->n_expanded > KILN__ONNX_MAX_EXPANDED_NODES)
            return kiln__err(KILN_E_LIMIT, "node '%s' (%s): function calls expand to more than %d nodes",
                             nm, np->op_type, KILN__ONNX_MAX_EXPANDED_NODES);
        if (!fn) {
            KILN__TRY(push_pending(list, nl, cap, np, sc));
            continue;
        }
        if (depth >= KILN__ONNX_MAX_DEPTH)
            return kiln__err(KILN_E_LIMIT, "node '%s' (%s): functions nested deeper than %d "
                             "(recursive function?)", nm, np->op_type, KILN__ONNX_MAX_DEPTH);
        if (np->n_input > fn->n_input || np->n_output > fn->n_output)
            return kiln__err(KILN_E_FORMAT,
                             "node '%s' (%s): %zu inputs and %zu outputs, the function has %zu and %zu",
                             nm, np->op_type, np->n_input, np->n_output, fn->n_input, fn->n_output);
        fn_scope *ns = calloc(1, sizeof *ns);
        if (!ns) return oom();
        ns->fn = fn;
        ns->call = np;
        ns->parent = sc;
        ns->next_alloc = im->scopes;
        im->scopes = ns;
        ns->actual_in = calloc(fn->n_input + 1, sizeof(char *));
        ns->actual_out = calloc(fn->n_output + 1, sizeof(char *));
        if (!ns->actual_in || !ns->actual_out) return oom();
        for (size_t i = 0; i < fn->n_input; i++)
            if (!(ns->actual_in[i] = i < np->n_input ? map_name(sc, np->input[i]) : strdup("")))
                return oom();
        for (size_t i = 0; i < fn->n_output; i++)
            if (!(ns->actual_out[i] = i < np->n_output ? map_name(sc, np->output[i]) : strdup("")))
                return oom();
        if (asprintf(&ns->prefix, "%s__%s_%d__", fn->name, nm, im->n_calls++) < 0) {
            ns->prefix = NULL;
            return oom();
        }
        KILN__TRY(read_defaults(ns));
        kiln_status st = expand_nodes(im, fn->node, fn->n_node, ns, depth + 1, list, nl, cap);
        if (st != KILN_OK && depth < KILN__ONNX_MSG_LEVELS)
            return kiln__err_prefix(st, "node '%s' (function %s)", nm, str_or_empty(fn->name));
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

/* ---- small helpers ------------------------------------------------------ */

static kiln_status push_index(int **arr, int *n, int v) {
    /* the capacity doubles whenever n reaches a power of two (at least 4) */
    if ((*n & (*n - 1)) == 0 && (*n == 0 || *n >= 4)) {
        int cap = *n ? *n * 2 : 4;
        int *a = realloc(*arr, (size_t)cap * sizeof(int));
        if (!a) return oom();
        *arr = a;
    }
    (*arr)[(*n)++] = v;
    return KILN_OK;
}

/* A new value of the given kind; clear type info. */
static kiln_status new_value(kiln_graph *g, const char *name, kiln__val_kind kind, int *idx) {
    int v = kiln__graph_add_value(g, name);
    if (v < 0) return kiln__err(KILN_E_NOMEM, "value '%s': out of memory", name);
    kiln__value *val = &g->values[v];
    val->kind = kind;
    val->producer = -1;
    if (kind != KILN__VAL_INIT) val->ndim = -1;
    *idx = v;
    return KILN_OK;
}

static char *dup_or_null(const char *s) { return s ? kiln__strdup(s) : NULL; }

/* ---- types -------------------------------------------------------------- */

/* Kind of a declared type (see kiln__value.container): sets *outer and
 * *inner and returns the tensor type inside (NULL if none: unknown element
 * type, or a type kiln cannot hold). Accepted: tensor, sequence(tensor),
 * optional(tensor), optional(sequence(tensor)). */
static const Onnx__TypeProto__Tensor *declared_kind(const Onnx__TypeProto *tp, int *outer,
                                                    int *inner) {
    *outer = *inner = 0;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE) {
        *outer = KILN__DTYPE_OPTIONAL;
        tp = tp->optional_type ? tp->optional_type->elem_type : NULL;
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE) {
            *inner = KILN__DTYPE_SEQUENCE;
            tp = tp->sequence_type ? tp->sequence_type->elem_type : NULL;
        }
    } else if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE) {
        *outer = KILN__DTYPE_SEQUENCE;
        tp = tp->sequence_type ? tp->sequence_type->elem_type : NULL;
    }
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return NULL;
    if (tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) return tp->tensor_type;
    *outer = KILN__TYPE_OTHER; /* map, sparse tensor, sequence(sequence), ... */
    *inner = 0;
    return NULL;
}

/* Applies a declared TypeProto to value v (unless it is an initializer, whose
 * tensor is authoritative). */
static kiln_status apply_type(kiln_graph *g, int v, const Onnx__TypeProto *tp, const char *what) {
    kiln__value *val = &g->values[v];
    if (!tp || val->kind == KILN__VAL_INIT) return KILN_OK;
    const Onnx__TypeProto__Tensor *tt = declared_kind(tp, &val->container, &val->container_inner);
    val->is_sequence = val->container != 0;
    val->has_type = 1;
    if (!tt) return KILN_OK;
    int et = tt->has_elem_type ? tt->elem_type : 0;
    if (et != 0 && !kiln_dtype_valid(et))
        return kiln__err(KILN_E_UNSUPPORTED, "%s '%s': data type %s (%d) is not supported", what,
                         val->name, kiln__onnx_dtype_name(et), et);
    val->dtype = (kiln_dtype)et;
    if (!tt->shape) {
        val->ndim = -1;
        return KILN_OK;
    }
    if (tt->shape->n_dim > KILN_MAX_DIMS)
        return kiln__err(KILN_E_UNSUPPORTED, "%s '%s': rank %zu exceeds kiln's maximum %d", what,
                         val->name, tt->shape->n_dim, KILN_MAX_DIMS);
    for (int i = 0; i < val->ndim && i < KILN_MAX_DIMS; i++) {
        free(val->dims[i].sym);
        val->dims[i].sym = NULL;
    }
    val->ndim = (int)tt->shape->n_dim;
    for (int i = 0; i < val->ndim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        val->dims[i].v = -1;
        val->dims[i].sym = NULL;
        if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return kiln__err(KILN_E_FORMAT, "%s '%s': dim %d is negative (%lld)", what,
                                 val->name, i, (long long)d->dim_value);
            val->dims[i].v = d->dim_value;
        } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   d->dim_param && d->dim_param[0]) {
            if (!(val->dims[i].sym = kiln__strdup(d->dim_param))) return oom();
        }
    }
    return KILN_OK;
}

/* Marks v as an initializer holding t (takes ownership of t). */
static void set_init(kiln_graph *g, int v, kiln_tensor *t) {
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INIT;
    val->init = t;
    val->dtype = t->dtype;
    val->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) val->dims[i] = (kiln__dim){t->dims[i], NULL};
    val->has_type = 1;
}

/* ---- graphs ------------------------------------------------------------- */

static kiln_status build_graph(importer *im, kiln_graph *g, const Onnx__GraphProto *gp,
                               const fn_scope *sc);

/* Value index of a name used in g: a local value, else (in a subgraph) an
 * OUTER capture, else an error. */
static kiln_status resolve(kiln_graph *g, const char *name, const char *what, int *idx) {
    int v = kiln__graph_find(g, name);
    if (v >= 0) {
        *idx = v;
        return KILN_OK;
    }
    if (!g->parent)
        return kiln__err(KILN_E_FORMAT,
                         "%s '%s' is not defined (not a graph input, initializer or node output)",
                         what, name);
    KILN__TRY(new_value(g, name, KILN__VAL_OUTER, idx));
    return push_index(&g->outer, &g->n_outer, *idx);
}

static int attr_type_of(const Onnx__AttributeProto *ap) {
    if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return ap->type;
    /* IR < 2 models carry no type field: infer it from the field present */
    if (ap->has_f) return KILN__ATTR_FLOAT;
    if (ap->has_i) return KILN__ATTR_INT;
    if (ap->has_s) return KILN__ATTR_STRING;
    if (ap->t) return KILN__ATTR_TENSOR;
    if (ap->g) return KILN__ATTR_GRAPH;
    if (ap->sparse_tensor) return KILN__ATTR_SPARSE_TENSOR;
    if (ap->tp) return KILN__ATTR_TYPE_PROTO;
    if (ap->n_floats) return KILN__ATTR_FLOATS;
    if (ap->n_ints) return KILN__ATTR_INTS;
    if (ap->n_strings) return KILN__ATTR_STRINGS;
    if (ap->n_tensors) return KILN__ATTR_TENSORS;
    if (ap->n_graphs) return KILN__ATTR_GRAPHS;
    if (ap->n_sparse_tensors) return KILN__ATTR_SPARSE_TENSORS;
    if (ap->n_type_protos) return KILN__ATTR_TYPE_PROTOS;
    return KILN__ATTR_UNDEFINED;
}

static int type_proto_elem(const Onnx__TypeProto *tp) {
    for (int guard = 0; tp && guard < 8; guard++) {
        switch (tp->value_case) {
        case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
            return tp->tensor_type ? tp->tensor_type->elem_type : 0;
        case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
            return tp->sparse_tensor_type ? tp->sparse_tensor_type->elem_type : 0;
        case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE:
            tp = tp->sequence_type ? tp->sequence_type->elem_type : NULL;
            break;
        case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE:
            tp = tp->optional_type ? tp->optional_type->elem_type : NULL;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

static kiln_status build_subgraph(importer *im, kiln_graph *parent, const Onnx__GraphProto *gp,
                                  const fn_scope *sc, kiln_graph **out) {
    *out = NULL;
    if (!gp) return kiln__err(KILN_E_FORMAT, "missing graph");
    if (im->depth >= KILN__ONNX_MAX_DEPTH)
        return kiln__err(KILN_E_LIMIT, "subgraphs nested deeper than %d", KILN__ONNX_MAX_DEPTH);
    kiln_graph *sub = kiln__graph_new(parent);
    if (!sub) return KILN_E_NOMEM;
    *out = sub; /* owned by the attribute from now on, even on failure */
    if (gp->name && !(sub->name = kiln__strdup(gp->name))) return oom();
    im->depth++;
    kiln_status st = build_graph(im, sub, gp, sc);
    im->depth--;
    return st;
}

/* The attribute a function body refers to with ref_attr_name, looked up on
 * the calling node (following references through nested calls), else the
 * function's default. *scope gets the scope the found attribute lives in. */
static const Onnx__AttributeProto *lookup_ref(const fn_scope *sc, const char *ref,
                                              const fn_scope **scope) {
    for (int guard = 0; sc && guard < KILN__ONNX_MAX_DEPTH; guard++) {
        for (size_t i = 0; i < sc->call->n_attribute; i++) {
            const Onnx__AttributeProto *a = sc->call->attribute[i];
            if (strcmp(str_or_empty(a->name), ref) != 0) continue;
            if (a->ref_attr_name && a->ref_attr_name[0] && sc->parent) {
                ref = a->ref_attr_name; /* the caller forwards its own attribute */
                goto next;
            }
            *scope = sc->parent;
            return a;
        }
        for (int i = 0; i < sc->n_defaults; i++)
            if (strcmp(str_or_empty(sc->defaults[i]->name), ref) == 0) {
                *scope = sc->parent;
                return sc->defaults[i];
            }
        return NULL;
    next:
        sc = sc->parent;
    }
    return NULL;
}

/* Converts ap into a (the attribute named name). */
static kiln_status convert_attr(importer *im, kiln_graph *g, const Onnx__AttributeProto *ap,
                                const char *name, const fn_scope *sc, kiln__attr *a) {
    memset(a, 0, sizeof *a);
    if (!(a->name = kiln__strdup(name))) return oom();
    int type = attr_type_of(ap);
    a->type = (kiln__attr_type)type;
    kiln__onnx_src *src = &im->src;
    switch (type) {
    case KILN__ATTR_FLOAT: a->f = ap->f; return KILN_OK;
    case KILN__ATTR_INT: a->i = ap->i; return KILN_OK;
    case KILN__ATTR_STRING:
        if (!(a->s = malloc(ap->s.len + 1))) return oom();
        if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        a->s_len = ap->s.len;
        return KILN_OK;
    case KILN__ATTR_TENSOR: return kiln__onnx_tensor_from_proto(ap->t, src, &a->t);
    case KILN__ATTR_SPARSE_TENSOR: return kiln__onnx_tensor_from_sparse(ap->sparse_tensor, src, &a->t);
    case KILN__ATTR_GRAPH: return build_subgraph(im, g, ap->g, sc, &a->g);
    case KILN__ATTR_TYPE_PROTO: a->tp_elem = type_proto_elem(ap->tp); return KILN_OK;
    case KILN__ATTR_FLOATS:
        a->n = (int)ap->n_floats;
        if (!(a->floats = malloc((ap->n_floats + 1) * sizeof(float)))) return oom();
        if (ap->n_floats) memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        return KILN_OK;
    case KILN__ATTR_INTS:
        a->n = (int)ap->n_ints;
        if (!(a->ints = malloc((ap->n_ints + 1) * sizeof(int64_t)))) return oom();
        if (ap->n_ints) memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        return KILN_OK;
    case KILN__ATTR_TYPE_PROTOS: /* element types, as ints */
        a->n = (int)ap->n_type_protos;
        if (!(a->ints = calloc(ap->n_type_protos + 1, sizeof(int64_t)))) return oom();
        for (size_t i = 0; i < ap->n_type_protos; i++) a->ints[i] = type_proto_elem(ap->type_protos[i]);
        return KILN_OK;
    case KILN__ATTR_STRINGS:
        if (!(a->strings = calloc(ap->n_strings + 1, sizeof(char *)))) return oom();
        for (size_t i = 0; i < ap->n_strings; i++, a->n++) {
            if (!(a->strings[i] = malloc(ap->strings[i].len + 1))) return oom();
            if (ap->strings[i].len) memcpy(a->strings[i], ap->strings[i].data, ap->strings[i].len);
            a->strings[i][ap->strings[i].len] = 0;
        }
        return KILN_OK;
    case KILN__ATTR_TENSORS:
    case KILN__ATTR_SPARSE_TENSORS: {
        size_t n = type == KILN__ATTR_TENSORS ? ap->n_tensors : ap->n_sparse_tensors;
        if (!(a->tensors = calloc(n + 1, sizeof(kiln_tensor *)))) return oom();
        for (size_t i = 0; i < n; i++, a->n++) {
            kiln_status st = type == KILN__ATTR_TENSORS
                                 ? kiln__onnx_tensor_from_proto(ap->tensors[i], src, &a->tensors[i])
                                 : kiln__onnx_tensor_from_sparse(ap->sparse_tensors[i], src, &a->tensors[i]);
            if (st != KILN_OK) return kiln__err_prefix(st, "element %zu", i);
        }
        return KILN_OK;
    }
    case KILN__ATTR_GRAPHS:
        if (!(a->graphs = calloc(ap->n_graphs + 1, sizeof(kiln_graph *)))) return oom();
        for (size_t i = 0; i < ap->n_graphs; i++, a->n++) {
            kiln_status st = build_subgraph(im, g, ap->graphs[i], sc, &a->graphs[i]);
            if (st != KILN_OK) return kiln__err_prefix(st, "graph %zu", i);
        }
        return KILN_OK;
    default:
        return kiln__err(KILN_E_FORMAT, "unknown attribute type %d", type);
    }
}

/* Converts the attributes of np into a new array; *n_out of them (references
 * to attributes the caller does not set are dropped). */
static kiln_status convert_attrs(importer *im, kiln_graph *g, const Onnx__NodeProto *np,
                                 const fn_scope *sc, kiln__attr **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (np->n_attribute == 0) return KILN_OK;
    kiln__attr *attrs = calloc(np->n_attribute, sizeof *attrs);
    if (!attrs) return oom();
    *out = attrs;
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *ap = np->attribute[i];
        const char *name = str_or_empty(ap->name);
        const fn_scope *asc = sc;
        if (ap->ref_attr_name && ap->ref_attr_name[0]) {
            if (!sc)
                return kiln__err(KILN_E_FORMAT,
                                 "attribute '%s' refers to '%s' outside of a function", name,
                                 ap->ref_attr_name);
            ap = lookup_ref(sc, ap->ref_attr_name, &asc);
            if (!ap) continue; /* not set by the caller: the attribute is absent */
        }
        for (int j = 0; j < *n_out; j++)
            if (strcmp(attrs[j].name, name) == 0)
                return kiln__err(KILN_E_FORMAT, "attribute '%s' is given twice", name);
        kiln_status st = convert_attr(im, g, ap, name, asc, &attrs[*n_out]);
        (*n_out)++;
        if (st != KILN_OK) return im->depth < KILN__ONNX_MSG_LEVELS
                                      ? kiln__err_prefix(st, "attribute '%s'", name) : st;
    }
    return KILN_OK;
}

static void free_attrs(kiln__attr *attrs, int n) {
    for (int i = 0; i < n; i++) kiln__attr_clear(&attrs[i]);
    free(attrs);
}

/* Names captured by the subgraphs of attrs (each once): value indices in g
 * written to *caps (malloc'd). */
static kiln_status collect_captures(kiln_graph *g, const kiln__attr *attrs, int n_attr,
                                    int **caps, int *n_caps) {
    *caps = NULL;
    *n_caps = 0;
    for (int i = 0; i < n_attr; i++) {
        int ng = attrs[i].type == KILN__ATTR_GRAPH ? (attrs[i].g != NULL)
                 : attrs[i].type == KILN__ATTR_GRAPHS ? attrs[i].n : 0;
        for (int k = 0; k < ng; k++) {
            const kiln_graph *sub = attrs[i].type == KILN__ATTR_GRAPH ? attrs[i].g : attrs[i].graphs[k];
            for (int j = 0; j < sub->n_outer; j++) {
                const char *name = sub->values[sub->outer[j]].name;
                int v;
                KILN__TRY(resolve(g, name, "captured name", &v));
                int dup = 0;
                for (int c = 0; c < *n_caps; c++) dup |= (*caps)[c] == v;
                if (!dup) KILN__TRY(push_index(caps, n_caps, v));
            }
        }
    }
    return KILN_OK;
}

/* kiln__attr keeps only the tensor element type of a TYPE_PROTO attribute.
 * For Optional(type=sequence(...)) the output's kind says the rest, so that
 * the writer can put the sequence back (a declared output type wins). */
static void note_optional_type(kiln_graph *g, const Onnx__NodeProto *np, const kiln__node *node) {
    if (strcmp(str_or_empty(np->op_type), "Optional") != 0 || node->n_out < 1 || node->out[0] < 0)
        return;
    kiln__value *out = &g->values[node->out[0]];
    for (size_t i = 0; i < np->n_attribute && !out->container; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        if (strcmp(str_or_empty(a->name), "type") != 0 || !a->tp) continue;
        out->container = KILN__DTYPE_OPTIONAL;
        out->container_inner =
            a->tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE ? KILN__DTYPE_SEQUENCE : 0;
        out->is_sequence = 1;
    }
}

/* Pass 5 for one node (index expect in g). */
static kiln_status add_node(importer *im, kiln_graph *g, const pending *p, int expect) {
    const Onnx__NodeProto *np = p->np;
    kiln__attr *attrs = NULL;
    int n_attr = 0, *caps = NULL, n_caps = 0;
    int *ins = calloc(np->n_input + 1, sizeof(int));
    char *node_name = map_name(p->sc, np->name);
    kiln_status st = KILN_OK;
    if (!ins || !node_name) {
        st = oom();
        goto fail;
    }
    for (size_t i = 0; i < np->n_input; i++) {
        char *nm = map_name(p->sc, np->input[i]);
        if (!nm) {
            st = oom();
            goto fail;
        }
        ins[i] = -1;
        if (*nm) st = resolve(g, nm, "input", &ins[i]);
        free(nm);
        if (st != KILN_OK) goto fail;
    }
    st = convert_attrs(im, g, np, p->sc, &attrs, &n_attr);
    if (st == KILN_OK) st = collect_captures(g, attrs, n_attr, &caps, &n_caps);
    if (st != KILN_OK) goto fail;
    int n_in = (int)np->n_input + n_caps;
    int idx = kiln__graph_add_node(g, node_name, np->op_type, norm_domain(np->domain), n_in,
                                   (int)np->n_output);
    if (idx < 0) {
        st = oom();
        goto fail;
    }
    if (idx != expect) {
        st = kiln__err(KILN_E_INTERNAL, "node index %d, expected %d", idx, expect);
        goto fail;
    }
    kiln__node *node = &g->nodes[idx];
    for (size_t i = 0; i < np->n_input; i++) node->in[i] = ins[i];
    for (int i = 0; i < n_caps; i++) node->in[np->n_input + i] = caps[i];
    node->n_implicit = n_caps;
    for (size_t i = 0; i < np->n_output; i++) {
        char *nm = map_name(p->sc, np->output[i]);
        if (!nm) {
            st = oom();
            goto fail;
        }
        node->out[i] = *nm ? kiln__graph_find(g, nm) : -1;
        free(nm);
    }
    node->attr = attrs;
    node->n_attr = n_attr;
    note_optional_type(g, np, node);
    free(ins);
    free(caps);
    free(node_name);
    return KILN_OK;
fail:
    free_attrs(attrs, n_attr);
    free(ins);
    free(caps);
    free(node_name);
    return st;
}

static kiln_status add_initializers(importer *im, kiln_graph *g, const Onnx__GraphProto *gp,
                                    const fn_scope *sc) {
    size_t n_dense = gp->n_initializer, n = n_dense + gp->n_sparse_initializer;
    for (size_t i = 0; i < n; i++) {
        const Onnx__SparseTensorProto *sp = i < n_dense ? NULL : gp->sparse_initializer[i - n_dense];
        const Onnx__TensorProto *tp = sp ? sp->values : gp->initializer[i];
        const char *raw = tp ? str_or_empty(tp->name) : "";
        if (!*raw)
            return kiln__err(KILN_E_FORMAT, "%s %zu has no name",
                             sp ? "sparse initializer" : "initializer", sp ? i - n_dense : i);
        char *name = map_name(sc, raw);
        if (!name) return oom();
        kiln_tensor *t = NULL;
        kiln_status st = kiln__graph_find(g, name) >= 0
                             ? kiln__err(KILN_E_FORMAT, "initializer '%s' is defined twice", name)
                         : sp ? kiln__onnx_tensor_from_sparse(sp, &im->src, &t)
                              : kiln__onnx_tensor_from_proto(tp, &im->src, &t);
        int v = -1;
        if (st == KILN_OK) st = new_value(g, name, KILN__VAL_INIT, &v);
        if (st == KILN_OK) {
            set_init(g, v, t);
            t = NULL;
            st = push_index(&g->inits, &g->n_inits, v);
        }
        kiln_tensor_free(t);
        if (st != KILN_OK) {
            kiln__err_prefix(st, "initializer '%s'", name);
            free(name);
            return st;
        }
        free(name);
    }
    return KILN_OK;
}

static kiln_status add_inputs(kiln_graph *g, const Onnx__GraphProto *gp, const fn_scope *sc) {
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        char *name = map_name(sc, vi->name);
        if (!name) return oom();
        kiln_status st = KILN_OK;
        int v = kiln__graph_find(g, name);
        if (!*name) {
            st = kiln__err(KILN_E_FORMAT, "graph input %zu has no name", i);
        } else if (v >= 0 && g->values[v].kind != KILN__VAL_INIT) {
            st = kiln__err(KILN_E_FORMAT, "graph input '%s' is declared twice", name);
        } else if (v < 0) { /* inputs that are also initializers stay INIT */
            st = new_value(g, name, KILN__VAL_INPUT, &v);
            if (st == KILN_OK) st = apply_type(g, v, vi->type, "graph input");
            if (st == KILN_OK) st = push_index(&g->inputs, &g->n_inputs, v);
        }
        free(name);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

/* Pass 3: every node output becomes a value, defined exactly once. */
static kiln_status declare_outputs(kiln_graph *g, const pending *list, int n) {
    for (int k = 0; k < n; k++) {
        const Onnx__NodeProto *np = list[k].np;
        for (size_t i = 0; i < np->n_output; i++) {
            char *name = map_name(list[k].sc, np->output[i]);
            if (!name) return oom();
            kiln_status st = KILN_OK;
            if (*name) {
                int v = kiln__graph_find(g, name);
                if (v >= 0) {
                    const kiln__value *val = &g->values[v];
                    st = kiln__err(KILN_E_FORMAT, "output '%s' is already defined (%s)", name,
                                   val->kind == KILN__VAL_INPUT  ? "a graph input"
                                   : val->kind == KILN__VAL_INIT ? "an initializer"
                                                                 : "by another node");
                } else if ((st = new_value(g, name, KILN__VAL_INTERMEDIATE, &v)) == KILN_OK) {
                    g->values[v].producer = k;
                }
            }
            if (st != KILN_OK) {
                char desc[256];
                snprintf(desc, sizeof desc, "node '%s' (%s)", str_or_empty(np->name),
                         str_or_empty(np->op_type));
                free(name);
                return kiln__err_prefix(st, "%s", desc);
            }
            free(name);
        }
    }
    return KILN_OK;
}

static kiln_status add_outputs(kiln_graph *g, const Onnx__GraphProto *gp, const fn_scope *sc) {
    for (size_t i = 0; i < gp->n_output; i++) {
        const Onnx__ValueInfoProto *vi = gp->output[i];
        char *name = map_name(sc, vi->name);
        if (!name) return oom();
        int v = -1;
        kiln_status st = KILN_OK;
        if (!*name) st = kiln__err(KILN_E_FORMAT, "graph output %zu has no name", i);
        else st = resolve(g, name, "graph output", &v);
        if (st == KILN_OK && !g->values[v].has_type) st = apply_type(g, v, vi->type, "graph output");
        else if (st == KILN_OK && vi->type) { /* keep the declared kind of the output */
            kiln__value *val = &g->values[v];
            declared_kind(vi->type, &val->container, &val->container_inner);
            val->is_sequence = val->container != 0;
        }
        if (st == KILN_OK) {
            g->values[v].is_output = 1;
            st = push_index(&g->outputs, &g->n_outputs, v);
        }
        free(name);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

static kiln_status build_graph(importer *im, kiln_graph *g, const Onnx__GraphProto *gp,
                               const fn_scope *sc) {
    pending *list = NULL;
    int n = 0, cap = 0;
    kiln_status st = add_initializers(im, g, gp, sc);
    if (st == KILN_OK) st = add_inputs(g, gp, sc);
    if (st == KILN_OK) st = expand_nodes(im, gp->node, gp->n_node, sc, 0, &list, &n, &cap);
    if (st == KILN_OK) st = declare_outputs(g, list, n);
    for (size_t i = 0; st == KILN_OK && i < gp->n_value_info; i++) {
        char *name = map_name(sc, gp->value_info[i]->name);
        if (!name) {
            st = oom();
            break;
        }
        int v = kiln__graph_find(g, name);
        if (v >= 0) st = apply_type(g, v, gp->value_info[i]->type, "value");
        free(name);
    }
    for (int k = 0; st == KILN_OK && k < n; k++) {
        st = add_node(im, g, &list[k], k);
        if (st != KILN_OK && im->depth < KILN__ONNX_MSG_LEVELS) {
            const Onnx__NodeProto *np = list[k].np;
            kiln__err_prefix(st, "node '%s' (%s)", str_or_empty(np->name), str_or_empty(np->op_type));
        }
    }
    if (st == KILN_OK) st = add_outputs(g, gp, sc);
    free(list);
    return st;
}

/* ---- model -------------------------------------------------------------- */

static kiln_status import_model(const Onnx__ModelProto *m, const kiln__onnx_src *src,
                                kiln_graph **out) {
    if (!m->graph) return kiln__err(KILN_E_FORMAT, "%s: the model has no graph", src->name);
    importer im = {.src = *src, .model = m};
    kiln_graph *g = kiln__graph_new(NULL);
    if (!g) return kiln__err_prefix(KILN_E_NOMEM, "%s", src->name);
    kiln_status st = KILN_OK;
    g->ir_version = m->has_ir_version ? m->ir_version : 0;
    g->model_version = m->has_model_version ? m->model_version : 0;
    if ((src->name && !(g->path = kiln__strdup(src->name))) ||
        (m->graph->name && !(g->name = kiln__strdup(m->graph->name))) ||
        (m->producer_name && !(g->producer_name = dup_or_null(m->producer_name))) ||
        (m->producer_version && !(g->producer_version = dup_or_null(m->producer_version))) ||
        (m->doc_string && !(g->doc = dup_or_null(m->doc_string)))) {
        st = oom();
        goto done;
    }
    if (m->n_opset_import) {
        g->opsets = calloc(m->n_opset_import, sizeof *g->opsets);
        if (!g->opsets) {
            st = oom();
            goto done;
        }
        for (size_t i = 0; i < m->n_opset_import; i++) {
            const Onnx__OperatorSetIdProto *o = m->opset_import[i];
            kiln__opset *k = &g->opsets[g->n_opsets];
            if (!(k->domain = kiln__strdup(norm_domain(o->domain)))) {
                st = oom();
                goto done;
            }
            k->version = o->has_version ? o->version : 1;
            g->n_opsets++;
        }
    }
    st = build_graph(&im, g, m->graph, NULL);
    if (st == KILN_OK) st = kiln__graph_finalize(g);
done:
    while (im.scopes) {
        fn_scope *next = im.scopes->next_alloc;
        free_scope(im.scopes);
        im.scopes = next;
    }
    if (st != KILN_OK) {
        kiln_graph_free(g);
        return kiln__err_prefix(st, "%s", src->name);
    }
    *out = g;
    return KILN_OK;
}

/* ---- nesting guard -------------------------------------------------------- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

/* Depth of message nesting in buf read as desc (following the schema), or
 * -1 once it exceeds max. protobuf-c unpacks recursively without a limit, so
 * a small hostile file of deeply nested subgraphs would overflow the stack;
 * this walk is bounded by max. Malformed data is left to the unpacker. */
static int nesting_depth(const uint8_t *p, const uint8_t *end,
                         const ProtobufCMessageDescriptor *desc, int max) {
    if (max < 0) return -1;
    int deepest = 0;
    while (p < end) {
        uint64_t key, len;
        if (!read_varint(&p, end, &key)) return 0;
        switch (key & 7) {
        case 0: if (!read_varint(&p, end, &len)) return 0; break;
        case 1: if (end - p < 8) return 0; p += 8; break;
        case 5: if (end - p < 4) return 0; p += 4; break;
        case 2: {
            if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) return 0;
            const ProtobufCFieldDescriptor *f =
                key >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3))
                                       : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int d = nesting_depth(p, p + len, f->descriptor, max - 1);
                if (d < 0) return -1;
                if (d + 1 > deepest) deepest = d + 1;
            }
            p += len;
            break;
        }
        default: return 0;
        }
    }
    return deepest;
}

/* Messages nest about 6 deep per subgraph level (attribute, graph, node...). */
#define KILN__ONNX_MAX_MESSAGE_DEPTH (8 * KILN__ONNX_MAX_DEPTH)

kiln_status kiln_graph_load_onnx_buffer(const void *buf, size_t len, const char *name,
                                        const char *base_dir, kiln_graph **out) {
    if (out) *out = NULL;
    if (!out || (!buf && len)) return kiln__err(KILN_E_INVAL, "kiln_graph_load_onnx_buffer: NULL argument");
    if (!name) name = "(buffer)";
    if (nesting_depth(buf, (const uint8_t *)buf + len, &onnx__model_proto__descriptor,
                      KILN__ONNX_MAX_MESSAGE_DEPTH) < 0)
        return kiln__err(KILN_E_LIMIT, "%s: messages nested deeper than %d levels", name,
                         KILN__ONNX_MAX_MESSAGE_DEPTH);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    if (!m)
        return kiln__err(KILN_E_FORMAT, "%s: not an ONNX model (protobuf parse failed)", name);
    kiln__onnx_src src = {name, base_dir};
    kiln_status st = import_model(m, &src, out);
    onnx__model_proto__free_unpacked(m, NULL);
    return st;
}

kiln_status kiln_graph_load_onnx(const char *path, kiln_graph **out) {
    if (out) *out = NULL;
    if (!path || !out) return kiln__err(KILN_E_INVAL, "kiln_graph_load_onnx: NULL argument");
    uint8_t *buf;
    size_t len;
    KILN__TRY(kiln__onnx_read_file(path, &buf, &len));
    char *dir = kiln__onnx_dirname(path);
    if (!dir) {
        free(buf);
        return kiln__err(KILN_E_NOMEM, "%s: out of memory", path);
    }
    kiln_status st = kiln_graph_load_onnx_buffer(buf, len, path, dir, out);
    free(dir);
    free(buf);
    return st;
}
