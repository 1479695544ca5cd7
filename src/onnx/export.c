/* src/onnx/export.c: kiln_graph -> ONNX ModelProto -> file.
 *
 * Every piece of the message tree is malloc'd separately (strings included),
 * so onnx__model_proto__free_unpacked(m, NULL) releases it whatever state a
 * failure left it in. Tensors are written inline as raw_data. Subgraph
 * captures (OUTER values, implicit node inputs) are not written: ONNX expresses
 * them by name. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_internal.h"

#define KILN__ONNX_DEFAULT_IR 8
#define KILN__ONNX_DEFAULT_OPSET 17

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

/* malloc'd copy of s ("" for NULL) into *dst. */
static kiln_status put_str(char **dst, const char *s) {
    *dst = strdup(s ? s : "");
    return *dst ? KILN_OK : oom();
}

/* Allocates an array of n zeroed elements of size sz into *arr (n may be 0). */
static kiln_status put_array(void *arr, size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) return oom();
    *(void **)arr = p;
    return KILN_OK;
}

/* ---- types -------------------------------------------------------------- */

static kiln_status tensor_type(const kiln__value *v, Onnx__TypeProto **out) {
    Onnx__TypeProto *tp = *out = malloc(sizeof *tp);
    if (!tp) return oom();
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = malloc(sizeof *tt);
    if (!tt) return oom();
    onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = (int32_t)v->dtype;
    if (v->ndim < 0) return KILN_OK;
    Onnx__TensorShapeProto *sh = malloc(sizeof *sh);
    if (!sh) return oom();
    onnx__tensor_shape_proto__init(sh);
    tt->shape = sh;
    KILN__TRY(put_array(&sh->dim, (size_t)v->ndim, sizeof *sh->dim));
    for (int i = 0; i < v->ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = malloc(sizeof *d);
        if (!d) return oom();
        onnx__tensor_shape_proto__dimension__init(d);
        sh->dim[i] = d;
        sh->n_dim = (size_t)i + 1;
        if (v->dims[i].v >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = v->dims[i].v;
        } else if (v->dims[i].sym) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            KILN__TRY(put_str(&d->dim_param, v->dims[i].sym));
        }
    }
    return KILN_OK;
}

/* Wraps *tp (already attached where *tp points) into a sequence or optional
 * type of kind; the wrapper replaces it in place. */
static kiln_status wrap_type(Onnx__TypeProto **tp, int kind) {
    Onnx__TypeProto *outer = malloc(sizeof *outer);
    if (!outer) return oom();
    onnx__type_proto__init(outer);
    if (kind == KILN__DTYPE_SEQUENCE) {
        Onnx__TypeProto__Sequence *seq = malloc(sizeof *seq);
        if (!seq) {
            free(outer);
            return oom();
        }
        onnx__type_proto__sequence__init(seq);
        seq->elem_type = *tp;
        outer->value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
        outer->sequence_type = seq;
    } else {
        Onnx__TypeProto__Optional *opt = malloc(sizeof *opt);
        if (!opt) {
            free(outer);
            return oom();
        }
        onnx__type_proto__optional__init(opt);
        opt->elem_type = *tp;
        outer->value_case = ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE;
        outer->optional_type = opt;
    }
    *tp = outer;
    return KILN_OK;
}

/* The declared type of v: a tensor type, wrapped as declared in a sequence,
 * an optional or optional(sequence). Types kiln cannot hold (maps, ...) are
 * left out (the name alone is written). */
static kiln_status value_info(const kiln__value *v, Onnx__ValueInfoProto **out) {
    Onnx__ValueInfoProto *vi = *out = malloc(sizeof *vi);
    if (!vi) return oom();
    onnx__value_info_proto__init(vi);
    KILN__TRY(put_str(&vi->name, v->name));
    if (!v->has_type && v->dtype == KILN_DTYPE_UNDEFINED && v->ndim < 0) return KILN_OK;
    if (v->container == KILN__TYPE_OTHER) return KILN_OK;
    KILN__TRY(tensor_type(v, &vi->type)); /* attached at once: freed with vi */
    if (v->container_inner) KILN__TRY(wrap_type(&vi->type, v->container_inner));
    if (v->container) KILN__TRY(wrap_type(&vi->type, v->container));
    return KILN_OK;
}

/* Appends value_info for each value index of idx[0..n) to (*arr, *count). */
static kiln_status value_infos(const kiln_graph *g, const int *idx, int n,
                               Onnx__ValueInfoProto ***arr, size_t *count) {
    for (int i = 0; i < n; i++) {
        kiln_status st = value_info(&g->values[idx[i]], &(*arr)[*count]);
        if ((*arr)[*count]) (*count)++; /* counted even if partial: freed with the graph */
        KILN__TRY(st);
    }
    return KILN_OK;
}

/* ---- attributes --------------------------------------------------------- */

static kiln_status export_graph(const kiln_graph *g, int64_t ir_version, Onnx__GraphProto **out);

static kiln_status type_proto_of_elem(int elem, Onnx__TypeProto **out) {
    kiln__value v;
    memset(&v, 0, sizeof v);
    v.dtype = (kiln_dtype)elem;
    v.ndim = -1;
    return tensor_type(&v, out);
}

static kiln_status export_attr(const kiln__attr *a, int64_t ir_version, Onnx__AttributeProto *ap) {
    KILN__TRY(put_str(&ap->name, a->name));
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    size_t n = a->n > 0 ? (size_t)a->n : 0;
    switch (a->type) {
    case KILN__ATTR_FLOAT: ap->has_f = 1; ap->f = a->f; return KILN_OK;
    case KILN__ATTR_INT: ap->has_i = 1; ap->i = a->i; return KILN_OK;
    case KILN__ATTR_STRING:
        ap->has_s = 1;
        if (!(ap->s.data = malloc(a->s_len ? a->s_len : 1))) return oom();
        if (a->s_len) memcpy(ap->s.data, a->s, a->s_len);
        ap->s.len = a->s_len;
        return KILN_OK;
    case KILN__ATTR_TENSOR: return kiln__onnx_tensor_to_proto(a->t, NULL, &ap->t);
    case KILN__ATTR_SPARSE_TENSOR: return kiln__onnx_sparse_to_proto(a->t, NULL, &ap->sparse_tensor);
    case KILN__ATTR_GRAPH: return export_graph(a->g, ir_version, &ap->g);
    case KILN__ATTR_TYPE_PROTO: return type_proto_of_elem(a->tp_elem, &ap->tp);
    case KILN__ATTR_FLOATS:
        KILN__TRY(put_array(&ap->floats, n, sizeof(float)));
        if (n) memcpy(ap->floats, a->floats, n * sizeof(float));
        ap->n_floats = n;
        return KILN_OK;
    case KILN__ATTR_INTS:
        KILN__TRY(put_array(&ap->ints, n, sizeof(int64_t)));
        if (n) memcpy(ap->ints, a->ints, n * sizeof(int64_t));
        ap->n_ints = n;
        return KILN_OK;
    case KILN__ATTR_STRINGS:
        KILN__TRY(put_array(&ap->strings, n, sizeof(ProtobufCBinaryData)));
        for (size_t i = 0; i < n; i++, ap->n_strings++) {
            size_t len = strlen(a->strings[i]);
            if (!(ap->strings[i].data = malloc(len ? len : 1))) return oom();
            memcpy(ap->strings[i].data, a->strings[i], len);
            ap->strings[i].len = len;
        }
        return KILN_OK;
    case KILN__ATTR_TENSORS:
        KILN__TRY(put_array(&ap->tensors, n, sizeof *ap->tensors));
        for (size_t i = 0; i < n; i++, ap->n_tensors++)
            KILN__TRY(kiln__onnx_tensor_to_proto(a->tensors[i], NULL, &ap->tensors[i]));
        return KILN_OK;
    case KILN__ATTR_SPARSE_TENSORS:
        KILN__TRY(put_array(&ap->sparse_tensors, n, sizeof *ap->sparse_tensors));
        for (size_t i = 0; i < n; i++, ap->n_sparse_tensors++)
            KILN__TRY(kiln__onnx_sparse_to_proto(a->tensors[i], NULL, &ap->sparse_tensors[i]));
        return KILN_OK;
    case KILN__ATTR_GRAPHS:
        KILN__TRY(put_array(&ap->graphs, n, sizeof *ap->graphs));
        for (size_t i = 0; i < n; i++, ap->n_graphs++)
            KILN__TRY(export_graph(a->graphs[i], ir_version, &ap->graphs[i]));
        return KILN_OK;
    case KILN__ATTR_TYPE_PROTOS:
        KILN__TRY(put_array(&ap->type_protos, n, sizeof *ap->type_protos));
        for (size_t i = 0; i < n; i++, ap->n_type_protos++)
            KILN__TRY(type_proto_of_elem((int)a->ints[i], &ap->type_protos[i]));
        return KILN_OK;
    default:
        return kiln__err(KILN_E_INVAL, "attribute '%s': unknown type %d", a->name, (int)a->type);
    }
}

/* ---- nodes and graphs ---------------------------------------------------- */

static kiln_status export_node(const kiln_graph *g, const kiln__node *n, int64_t ir_version,
                               Onnx__NodeProto *np) {
    int n_in = n->n_in - n->n_implicit; /* captures are implicit in ONNX */
    KILN__TRY(put_str(&np->name, n->name));
    KILN__TRY(put_str(&np->op_type, n->op_type));
    if (n->domain && n->domain[0]) KILN__TRY(put_str(&np->domain, n->domain));
    KILN__TRY(put_array(&np->input, (size_t)n_in, sizeof(char *)));
    for (int i = 0; i < n_in; i++, np->n_input++)
        KILN__TRY(put_str(&np->input[i], n->in[i] >= 0 ? g->values[n->in[i]].name : ""));
    /* trailing omitted inputs are dropped, as ONNX writers do */
    while (np->n_input > 0 && np->input[np->n_input - 1][0] == 0) free(np->input[--np->n_input]);
    KILN__TRY(put_array(&np->output, (size_t)n->n_out, sizeof(char *)));
    for (int i = 0; i < n->n_out; i++, np->n_output++)
        KILN__TRY(put_str(&np->output[i], n->out[i] >= 0 ? g->values[n->out[i]].name : ""));
    KILN__TRY(put_array(&np->attribute, (size_t)n->n_attr, sizeof *np->attribute));
    for (int i = 0; i < n->n_attr; i++) {
        Onnx__AttributeProto *ap = malloc(sizeof *ap);
        if (!ap) return oom();
        onnx__attribute_proto__init(ap);
        np->attribute[np->n_attribute++] = ap;
        kiln_status st = export_attr(&n->attr[i], ir_version, ap);
        /* Optional(type=sequence(...)): the import noted the sequence on the output */
        if (st == KILN_OK && n->attr[i].type == KILN__ATTR_TYPE_PROTO && n->n_out > 0 && n->out[0] >= 0 &&
            strcmp(n->op_type, "Optional") == 0 &&
            g->values[n->out[0]].container_inner == KILN__DTYPE_SEQUENCE)
            st = wrap_type(&ap->tp, KILN__DTYPE_SEQUENCE);
        if (st != KILN_OK) return kiln__err_prefix(st, "attribute '%s'", n->attr[i].name);
    }
    return KILN_OK;
}

static int is_listed(const int *idx, int n, int v) {
    for (int i = 0; i < n; i++)
        if (idx[i] == v) return 1;
    return 0;
}

static kiln_status fill_graph(const kiln_graph *g, int64_t ir_version, Onnx__GraphProto *gp) {
    KILN__TRY(put_str(&gp->name, g->name && g->name[0] ? g->name : "kiln"));
    /* initializers: the declared ones, then any other known constant */
    int n_init = 0, n_inter = 0;
    for (int v = 0; v < g->n_values; v++) {
        const kiln__value *val = &g->values[v];
        if (val->kind == KILN__VAL_INIT && val->init) n_init++;
        if (val->kind == KILN__VAL_INTERMEDIATE && val->has_type && !val->is_output) n_inter++;
    }
    int *inits = malloc(((size_t)n_init + 1) * sizeof(int));
    if (!inits) return oom();
    int k = 0;
    for (int i = 0; i < g->n_inits; i++)
        if (g->values[g->inits[i]].init && !is_listed(inits, k, g->inits[i])) inits[k++] = g->inits[i];
    for (int v = 0; v < g->n_values; v++)
        if (g->values[v].kind == KILN__VAL_INIT && g->values[v].init && !is_listed(inits, k, v))
            inits[k++] = v;
    n_init = k;
    kiln_status st = put_array(&gp->initializer, (size_t)n_init, sizeof *gp->initializer);
    for (int i = 0; st == KILN_OK && i < n_init; i++) {
        const kiln__value *val = &g->values[inits[i]];
        st = kiln__onnx_tensor_to_proto(val->init, val->name, &gp->initializer[i]);
        if (st == KILN_OK) gp->n_initializer++;
        else kiln__err_prefix(st, "initializer '%s'", val->name);
    }
    /* IR < 4 requires every initializer to be a graph input as well */
    int init_inputs = ir_version < 4 ? n_init : 0;
    if (st == KILN_OK)
        st = put_array(&gp->input, (size_t)(g->n_inputs + init_inputs), sizeof *gp->input);
    if (st == KILN_OK) st = value_infos(g, g->inputs, g->n_inputs, &gp->input, &gp->n_input);
    if (st == KILN_OK) st = value_infos(g, inits, init_inputs, &gp->input, &gp->n_input);
    free(inits);
    KILN__TRY(st);
    KILN__TRY(put_array(&gp->output, (size_t)g->n_outputs, sizeof *gp->output));
    KILN__TRY(value_infos(g, g->outputs, g->n_outputs, &gp->output, &gp->n_output));
    KILN__TRY(put_array(&gp->value_info, (size_t)n_inter, sizeof *gp->value_info));
    for (int v = 0; v < g->n_values && (int)gp->n_value_info < n_inter; v++) {
        const kiln__value *val = &g->values[v];
        if (val->kind == KILN__VAL_INTERMEDIATE && val->has_type && !val->is_output) {
            kiln_status vst = value_info(val, &gp->value_info[gp->n_value_info]);
            if (gp->value_info[gp->n_value_info]) gp->n_value_info++;
            KILN__TRY(vst);
        }
    }
    KILN__TRY(put_array(&gp->node, (size_t)g->n_nodes, sizeof *gp->node));
    for (int i = 0; i < g->n_nodes; i++) {
        Onnx__NodeProto *np = malloc(sizeof *np);
        if (!np) return oom();
        onnx__node_proto__init(np);
        gp->node[gp->n_node++] = np;
        kiln_status nst = export_node(g, &g->nodes[i], ir_version, np);
        if (nst != KILN_OK) {
            char d[256];
            return kiln__err_prefix(nst, "%s", kiln__node_desc(&g->nodes[i], d, sizeof d));
        }
    }
    return KILN_OK;
}

static kiln_status export_graph(const kiln_graph *g, int64_t ir_version, Onnx__GraphProto **out) {
    if (!g) return kiln__err(KILN_E_INVAL, "missing subgraph");
    Onnx__GraphProto *gp = *out = malloc(sizeof *gp);
    if (!gp) return oom();
    onnx__graph_proto__init(gp);
    return fill_graph(g, ir_version, gp);
}

/* ---- model -------------------------------------------------------------- */

static kiln_status fill_model(const kiln_graph *g, Onnx__ModelProto *m) {
    const kiln_graph *root = kiln__graph_root(g);
    m->has_ir_version = 1;
    m->ir_version = root->ir_version > 0 ? root->ir_version : KILN__ONNX_DEFAULT_IR;
    KILN__TRY(put_str(&m->producer_name, "kiln"));
    KILN__TRY(put_str(&m->producer_version, kiln_version()));
    if (root->model_version) {
        m->has_model_version = 1;
        m->model_version = root->model_version;
    }
    if (root->doc && root->doc[0]) KILN__TRY(put_str(&m->doc_string, root->doc));
    int n_ops = root->n_opsets > 0 ? root->n_opsets : 1;
    KILN__TRY(put_array(&m->opset_import, (size_t)n_ops, sizeof *m->opset_import));
    for (int i = 0; i < n_ops; i++) {
        Onnx__OperatorSetIdProto *o = malloc(sizeof *o);
        if (!o) return oom();
        onnx__operator_set_id_proto__init(o);
        m->opset_import[m->n_opset_import++] = o;
        KILN__TRY(put_str(&o->domain, root->n_opsets > 0 ? root->opsets[i].domain : ""));
        o->has_version = 1;
        o->version = root->n_opsets > 0 ? root->opsets[i].version : KILN__ONNX_DEFAULT_OPSET;
    }
    return export_graph(g, m->ir_version, &m->graph);
}

kiln_status kiln_graph_save_onnx(const kiln_graph *g, const char *path) {
    if (!g || !path) return kiln__err(KILN_E_INVAL, "kiln_graph_save_onnx: NULL argument");
    Onnx__ModelProto *m = malloc(sizeof *m);
    if (!m) return kiln__err_prefix(oom(), "%s", path);
    onnx__model_proto__init(m);
    kiln_status st = fill_model(g, m);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (st == KILN_OK) {
        len = onnx__model_proto__get_packed_size(m);
        if (len > (size_t)INT_MAX)
            st = kiln__err(KILN_E_LIMIT, "model of %zu bytes exceeds protobuf's 2 GiB limit", len);
        else if (!(buf = malloc(len ? len : 1)))
            st = oom();
        else
            onnx__model_proto__pack(m, buf);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    if (st == KILN_OK) {
        FILE *f = fopen(path, "wb");
        if (!f) {
            st = kiln__err(KILN_E_IO, "cannot create: %s", strerror(errno));
        } else {
            size_t w = fwrite(buf, 1, len, f);
            int e = errno;
            if (fclose(f) != 0 || w != len)
                st = kiln__err(KILN_E_IO, "write failed: %s", strerror(e ? e : errno));
        }
    }
    free(buf);
    return st == KILN_OK ? KILN_OK : kiln__err_prefix(st, "%s", path);
}
