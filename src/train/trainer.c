/* src/train/trainer.c: the trainer (kiln/train.h).
 *
 * From the user's model the trainer builds two graphs and a session for each:
 *
 *   training  the model with its parameters and BatchNormalization running
 *             statistics turned into graph inputs, BatchNormalization in
 *             training mode (its updated running statistics as extra outputs),
 *             the loss of the logits against the labels appended (losses.h), and the
 *             backward nodes from autograd (autograd.h); Dropout as
 *             kiln.TrainDropout with a seed input the trainer sets per step;
 *             the loss's gradient seed an input (1, or fp16's loss scale);
 *             with mixed precision, the products' operands and results
 *             rounded to bf16 / fp16 (mixed_precision.h);
 *             outputs: loss, logits, updated statistics, gradients
 *   eval      the same inputs, inference form, f32; outputs: loss, logits
 *
 * The parameters live in one f32 buffer (p), their gradients in another (grad,
 * same offsets), the running statistics in a third (stat); both sessions read
 * them through tensors wrapping slices of those buffers, so a step is: run,
 * copy the gradients and statistics out of the session's outputs, one
 * optimizer pass over the whole buffer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/optimize.h"
#include "graph/passes/passes.h"
#include "kiln/session.h"
#include "kiln/train.h"
#include "train/autograd.h"
#include "train/losses.h"
#include "train/mixed_precision.h"
#include "train/optim.h"
#include "train/safetensors.h"

/* A parameter or running statistic: an initializer of the model. */
typedef struct slot {
    char *name;    /* owned */
    int64_t off;   /* in its buffer, floats */
    int64_t numel;
    int ndim;
    int64_t dims[KILN_MAX_DIMS];
    int grad_out;  /* training output holding its gradient / updated value, -1: none */
    kiln_tensor *view; /* wraps its slice of the buffer (owned header) */
} slot;

struct kiln_trainer {
    kiln_graph *model; /* the user's model, copied */
    kiln_graph *train_g, *eval_g;
    kiln_session *train_s, *eval_s;
    int n_params, n_stats;
    slot *params, *stats;
    float *p, *grad, *stat; /* owned buffers */
    int64_t n_p, n_stat;
    kiln__optim opt;
    kiln_train_precision precision;
    kiln_loss loss;
    double label_smoothing;
    int64_t classes;          /* C of the logits (N, C[, D...]), -1 if unknown */
    int out_rank;             /* rank of the logits: 2, or more for per-position
                                 classes (N, C, D1..Dk) with labels (N, D1..Dk) */
    kiln__dim out_dims[KILN_MAX_DIMS]; /* the logits' dims as the model declares or infers them */
    kiln__loss_scaler scaler; /* fp16; otherwise scale 1 throughout */
    kiln_tensor *loss_seed;   /* () f32, the training graph's loss gradient seed: the scale */
    double clip_norm;         /* > 0: clip the gradients' global norm to it */
    double grad_norm;         /* of the last update, before clipping */
    char *labels_name; /* owned: the labels input's name, unique in the model */
    uint64_t seed;     /* dropout masks: step t's seed is derived from (seed, t) */
    kiln_tensor *step_seed; /* () int64, the training graph's dropout seed input, or NULL */
    int n_in;          /* session inputs: x, labels, params, stats (+ loss_seed and
                          step_seed if any: training) */
    const char **in_names;
    const kiln_tensor **in_vals;
};

static const char *const precision_names[] = {"fp32", "bf16", "fp16"};

kiln_status kiln_train_precision_parse(const char *name, kiln_train_precision *out) {
    int i;
    KILN__TRY(kiln__name_index("training precision", precision_names, 3, name, &i));
    *out = (kiln_train_precision)i;
    return KILN_OK;
}

kiln_status kiln_optimizer_parse(const char *name, kiln_optimizer *out) {
    kiln__optim_kind k;
    KILN__TRY(kiln__optim_parse(name, &k));
    *out = (kiln_optimizer)k;
    return KILN_OK;
}

static kiln_status oom(void) { return kiln__err(KILN_E_NOMEM, "out of memory"); }

/* ---- which initializers are what ----------------------------------------------- */

/* 1 if value v is input slot lo or hi of an ai.onnx `op` node. */
static int is_input_of(const kiln_graph *g, int v, const char *op, int lo, int hi) {
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *n = &g->nodes[i];
        if (n->domain[0] || strcmp(n->op_type, op) != 0) continue;
        for (int k = lo; k <= hi && k < n->n_in; k++)
            if (n->in[k] == v) return 1;
    }
    return 0;
}

static kiln_status add_slot(slot **list, int *n, int64_t *total, const kiln__value *val) {
    slot *s = realloc(*list, (size_t)(*n + 1) * sizeof *s);
    if (!s) return oom();
    *list = s;
    s = &s[(*n)++];
    memset(s, 0, sizeof *s);
    s->name = kiln__strdup(val->name);
    if (!s->name) return oom();
    s->off = *total;
    s->numel = kiln_tensor_numel(val->init);
    s->ndim = val->init->ndim;
    memcpy(s->dims, val->init->dims, sizeof s->dims);
    s->grad_out = -1;
    *total += s->numel;
    return KILN_OK;
}

/* Slot j of the parameters followed by the statistics (j < n_params + n_stats);
 * *data: its values in the buffer it lives in. */
static slot *slot_at(const kiln_trainer *t, int j, float **data) {
    slot *sl = j < t->n_params ? &t->params[j] : &t->stats[j - t->n_params];
    *data = (j < t->n_params ? t->p : t->stat) + sl->off;
    return sl;
}

/* Sorts the model's f32 initializers into parameters and statistics, fills the
 * buffers with their values and wraps each slice. */
static kiln_status collect(kiln_trainer *t) {
    const kiln_graph *g = t->model;
    for (int i = 0; i < g->n_inits; i++) {
        const kiln__value *val = &g->values[g->inits[i]];
        if (!val->init || val->init->dtype != KILN_DTYPE_F32) continue;
        if (is_input_of(g, g->inits[i], "Dropout", 1, 1)) continue; /* its ratio: a constant */
        if (is_input_of(g, g->inits[i], "BatchNormalization", 3, 4))
            KILN__TRY(add_slot(&t->stats, &t->n_stats, &t->n_stat, val));
        else
            KILN__TRY(add_slot(&t->params, &t->n_params, &t->n_p, val));
    }
    t->p = calloc((size_t)t->n_p + 1, sizeof(float));
    t->grad = calloc((size_t)t->n_p + 1, sizeof(float));
    t->stat = calloc((size_t)t->n_stat + 1, sizeof(float));
    if (!t->p || !t->grad || !t->stat) return oom();
    for (int j = 0; j < t->n_params + t->n_stats; j++) {
        float *data;
        slot *sl = slot_at(t, j, &data);
        const kiln_tensor *init = g->values[kiln__graph_find(g, sl->name)].init;
        memcpy(data, init->data, (size_t)sl->numel * sizeof(float)); /* f32, contiguous */
        KILN__TRY(kiln_tensor_wrap(KILN_DTYPE_F32, sl->ndim, sl->dims, data, &sl->view));
    }
    return KILN_OK;
}

/* ---- building the graphs ------------------------------------------------------------ */

/* 1 if output k of node n is read by a node or is a graph output. */
static int output_used(kiln__px *p, const kiln__node *n, int k) {
    return k < n->n_out && n->out[k] >= 0 &&
           (kiln__px_uses(p, n->out[k]) > 0 || kiln__px_pinned(p, n->out[k]));
}

/* Dropout node i's ratio, when a Constant node gives it, becomes an
 * initializer (a copy of the Constant's value), the form train_dropout reads. */
static kiln_status ratio_to_init(kiln__px *p, int i) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->opset < 12 || n->n_in < 2 || n->in[1] < 0) return KILN_OK;
    int c = kiln__px_producer(p, n->in[1]);
    const kiln_tensor *value =
        c >= 0 && kiln__px_is(p, c, "Constant") ? kiln__attr_tensor(&p->g->nodes[c], "value") : NULL;
    if (!value) return KILN_OK;
    kiln_tensor *copy;
    KILN__TRY(kiln_tensor_copy(value, value->dtype, &copy));
    int v = kiln__px_add_init(p, "dropout_ratio", copy);
    if (v < 0) return KILN_E_NOMEM;
    p->g->nodes[i].in[1] = v;
    return KILN_OK;
}

/* Puts model g into inference form, the form the eval graph and the export
 * take and the training graph starts from. A model exported in training mode
 * (PyTorch's TrainingMode.TRAINING) has BatchNormalization with training_mode
 * 1 and running-statistic outputs, and Dropout with a training_mode input, a
 * mask output and its ratio from a Constant node: the modes become inference,
 * the extra outputs go (refused when something reads them), the ratio becomes
 * an initializer, and the Constant nodes left unread go. */
static kiln_status inference_form(kiln_graph *g) {
    kiln__px p;
    kiln__opt_options opt = {0};
    char desc[256];
    KILN__TRY(kiln__px_init(&p, g, &opt));
    kiln_status s = KILN_OK;
    for (int i = 0; i < g->n_nodes && s == KILN_OK; i++) {
        kiln__node *n = &g->nodes[i];
        int bn = kiln__px_is(&p, i, "BatchNormalization"), dropout = kiln__px_is(&p, i, "Dropout");
        if (!bn && !dropout) continue;
        for (int k = 1; k < n->n_out; k++)
            if (output_used(&p, n, k))
                s = kiln__err(KILN_E_UNSUPPORTED, "%s: its output %d ('%s') is read; kiln train needs "
                              "only output 0", kiln__node_desc(n, desc, sizeof desc), k,
                              g->values[n->out[k]].name);
        if (s != KILN_OK) break;
        n->n_out = 1;
        if (bn && kiln__attr_i(n, "training_mode", 0) != 0)
            s = kiln__px_attr_int(&p, i, "training_mode", 0);
        if (dropout && n->opset >= 12 && n->n_in > 2) s = kiln__px_set_n_in(&p, i, 2);
        if (dropout && s == KILN_OK) s = ratio_to_init(&p, i);
    }
    if (s == KILN_OK) s = kiln__pass_dead(&p);
    if (s == KILN_OK) s = kiln__px_sweep(&p);
    kiln__px_free(&p);
    return s;
}

/* Initializer `name` of g becomes a graph input of its dtype and shape. */
static kiln_status init_to_input(kiln_graph *g, const char *name) {
    int v = kiln__graph_find(g, name), k = 0;
    kiln__value *val = &g->values[v];
    int *inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *inputs);
    if (!inputs) return oom();
    g->inputs = inputs;
    g->inputs[g->n_inputs++] = v;
    for (int i = 0; i < g->n_inits; i++)
        if (g->inits[i] != v) g->inits[k++] = g->inits[i];
    g->n_inits = k;
    val->kind = KILN__VAL_INPUT;
    val->dtype = val->init->dtype;
    val->ndim = val->init->ndim;
    for (int d = 0; d < val->ndim; d++) val->dims[d].v = val->init->dims[d];
    val->has_type = 1;
    kiln_tensor_free(val->init);
    val->init = NULL;
    return KILN_OK;
}

/* New graph input `name` of dtype dt and rank ndim with symbolic dims. */
static kiln_status add_input(kiln_graph *g, const char *name, kiln_dtype dt, int ndim) {
    int v = kiln__graph_add_value(g, name);
    int *inputs = v >= 0 ? realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof *inputs) : NULL;
    if (!inputs) return oom();
    g->inputs = inputs;
    g->inputs[g->n_inputs++] = v;
    kiln__value *val = &g->values[v];
    val->kind = KILN__VAL_INPUT;
    val->dtype = dt;
    val->ndim = ndim;
    val->has_type = 1;
    for (int d = 0; d < ndim; d++) val->dims[d].v = -1;
    return KILN_OK;
}

static kiln_status set_outputs(kiln_graph *g, int n, const int *v) {
    for (int i = 0; i < g->n_outputs; i++) g->values[g->outputs[i]].is_output = 0;
    int *o = realloc(g->outputs, (size_t)(n + 1) * sizeof *o);
    if (!o) return oom();
    g->outputs = o;
    g->n_outputs = n;
    for (int i = 0; i < n; i++) {
        o[i] = v[i];
        g->values[v[i]].is_output = 1;
    }
    return KILN_OK;
}

#define STEP_SEED "kiln_dropout_seed"
#define LOSS_SEED "kiln_loss_scale"

/* Dropout node i becomes kiln.TrainDropout(data, step seed) with its ratio (a
 * constant: input 1 from opset 12, else the attribute; default 0.5), so that
 * every step draws a new mask from the seed the trainer feeds. */
static kiln_status train_dropout(kiln__px *p, int i) {
    kiln_graph *g = p->g;
    kiln__node *n = &g->nodes[i];
    char desc[256];
    double ratio = n->opset >= 12 ? 0.5 : kiln__attr_f(n, "ratio", 0.5f);
    if (n->opset >= 12 && n->n_in > 1 && n->in[1] >= 0 && !kiln__px_scalar(p, n->in[1], &ratio))
        return kiln__err(KILN_E_UNSUPPORTED, "%s: its ratio is computed at run time",
                         kiln__node_desc(n, desc, sizeof desc));
    if (!(ratio >= 0 && ratio < 1))
        return kiln__err(KILN_E_RANGE, "%s: ratio %g, expected [0, 1)",
                         kiln__node_desc(n, desc, sizeof desc), ratio);
    int seed = kiln__graph_find(g, STEP_SEED);
    if (seed < 0) {
        KILN__TRY(add_input(g, STEP_SEED, KILN_DTYPE_I64, 0));
        KILN__TRY(kiln__px_need_opset(p, "kiln", 1));
        seed = kiln__graph_find(g, STEP_SEED);
    }
    KILN__TRY(kiln__px_set_n_in(p, i, 2));
    n = &g->nodes[i];
    n->in[1] = seed;
    char *op = kiln__strdup("TrainDropout"), *dom = kiln__strdup("kiln");
    if (!op || !dom) {
        free(op), free(dom);
        return oom();
    }
    free(n->op_type), free(n->domain);
    n->op_type = op;
    n->domain = dom;
    for (int a = 0; a < n->n_attr; a++) kiln__attr_clear(&n->attr[a]);
    n->n_attr = 0;
    return kiln__px_attr_float(p, i, "ratio", (float)ratio);
}

/* Training mode for every BatchNormalization of g: training_mode = 1 (opset
 * >= 14; before, the extra outputs alone say so) and outputs 1, 2 (running mean
 * and variance, updated); for each statistic slot, the output that updates it.
 * Dropout nodes become kiln.TrainDropout (train_dropout). */
static kiln_status train_mode(kiln_trainer *t, kiln__px *p, int *stat_out) {
    kiln_graph *g = p->g;
    for (int i = 0; i < t->n_stats; i++) stat_out[i] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        kiln__node *n = &g->nodes[i];
        if (n->domain[0]) continue;
        if (strcmp(n->op_type, "Dropout") == 0) {
            KILN__TRY(train_dropout(p, i));
            continue;
        }
        if (strcmp(n->op_type, "BatchNormalization") != 0) continue;
        if (n->opset >= 14) KILN__TRY(kiln__px_attr_int(p, i, "training_mode", 1));
        if (n->n_out < 3) {
            int *o = realloc(n->out, 3 * sizeof *o);
            if (!o) return oom();
            for (int k = n->n_out; k < 3; k++) o[k] = -1;
            n->out = o;
            n->n_out = 3;
        }
        for (int k = 1; k < 3; k++) {
            if (n->out[k] < 0) {
                int v = kiln__px_new_value(p, "running_stat");
                if (v < 0) return oom();
                n = &g->nodes[i];
                n->out[k] = v;
            }
            for (int s = 0; s < t->n_stats; s++)
                if (n->in[2 + k] >= 0 && strcmp(g->values[n->in[2 + k]].name, t->stats[s].name) == 0)
                    stat_out[s] = n->out[k];
        }
    }
    return KILN_OK;
}

/* Builds the training (training = 1) or eval graph; for training, fills the
 * slots' grad_out (index among the graph's outputs). */
static kiln_status build(kiln_trainer *t, int training, kiln_graph **out) {
    kiln_graph *g = kiln__graph_clone(t->model);
    kiln__px p;
    kiln__opt_options opt = {0};
    int *outs = NULL, *stat_out = NULL, *wrt = NULL, *grads = NULL;
    if (!g) return KILN_E_NOMEM;
    kiln_status s = kiln__px_init(&p, g, &opt);
    for (int i = 0; i < t->n_params && s == KILN_OK; i++) s = init_to_input(g, t->params[i].name);
    for (int i = 0; i < t->n_stats && s == KILN_OK; i++) s = init_to_input(g, t->stats[i].name);
    if (s == KILN_OK) s = add_input(g, t->labels_name, KILN_DTYPE_I64, t->out_rank - 1);
    if (s == KILN_OK) { /* labels (N, D1..Dk): the batch dim is x's, the others the logits'
                           (for shape inference) */
        kiln__dim *lab = g->values[kiln__graph_find(g, t->labels_name)].dims;
        kiln__dim *xn = &g->values[g->inputs[0]].dims[0];
        if (g->values[g->inputs[0]].ndim > 0) {
            if (xn->v < 0 && !xn->sym && !(xn->sym = kiln__strdup("kiln_batch"))) s = oom();
            lab[0].v = xn->v;
            if (xn->sym && !(lab[0].sym = kiln__strdup(xn->sym))) s = oom();
        }
        for (int d = 1; d < t->out_rank - 1 && s == KILN_OK; d++) {
            lab[d].v = t->out_dims[d + 1].v;
            if (t->out_dims[d + 1].sym && !(lab[d].sym = kiln__strdup(t->out_dims[d + 1].sym))) s = oom();
        }
    }
    if (s == KILN_OK && training) s = add_input(g, LOSS_SEED, KILN_DTYPE_F32, 0);
    int logits = g->n_outputs > 0 ? g->outputs[0] : -1;
    if (s == KILN_OK && logits < 0) s = kiln__err(KILN_E_INVAL, "the model has no outputs");
    int loss = -1;
    if (s == KILN_OK)
        s = kiln__add_loss(&p, t->loss, t->label_smoothing, t->classes, logits,
                           kiln__graph_find(g, t->labels_name), &loss);
    outs = malloc(((size_t)2 + t->n_stats + t->n_params) * sizeof *outs);
    stat_out = malloc(((size_t)t->n_stats + 1) * sizeof *stat_out);
    wrt = malloc(((size_t)t->n_params + 1) * sizeof *wrt);
    grads = malloc(((size_t)t->n_params + 1) * sizeof *grads);
    if (s == KILN_OK && (!outs || !stat_out || !wrt || !grads)) s = oom();
    int n_out = 2;
    if (s == KILN_OK) {
        outs[0] = loss;
        outs[1] = logits;
        s = kiln__px_sweep(&p); /* finalize: opsets, producers, order */
    }
    if (s == KILN_OK && training) s = train_mode(t, &p, stat_out);
    if (s == KILN_OK) s = kiln__px_sweep(&p);
    if (s == KILN_OK) s = kiln_graph_infer_shapes(g);
    if (s == KILN_OK && g->values[logits].ndim >= 0 && g->values[logits].ndim != t->out_rank)
        s = kiln__err(KILN_E_SHAPE, "the model's first output '%s' has rank %d, expected logits (N, C) "
                      "or (N, C, D1..Dk)", g->values[logits].name, g->values[logits].ndim);
    if (s == KILN_OK && training) {
        int seed = kiln__graph_find(g, LOSS_SEED);
        for (int i = 0; i < t->n_params; i++) wrt[i] = kiln__graph_find(g, t->params[i].name);
        if (s == KILN_OK) s = kiln__autograd(g, loss, seed, t->n_params, wrt, grads);
        for (int i = 0; i < t->n_stats && s == KILN_OK; i++) {
            t->stats[i].grad_out = stat_out[i] >= 0 ? n_out : -1;
            if (stat_out[i] >= 0) outs[n_out++] = stat_out[i];
        }
        for (int i = 0; i < t->n_params && s == KILN_OK; i++) {
            t->params[i].grad_out = grads[i] >= 0 ? n_out : -1;
            if (grads[i] >= 0) outs[n_out++] = grads[i];
        }
    }
    if (s == KILN_OK && training && t->precision != KILN_TRAIN_FP32) {
        kiln__px q;
        s = kiln_graph_infer_shapes(g);
        if (s == KILN_OK) s = kiln__px_init(&q, g, &opt);
        if (s == KILN_OK) {
            s = kiln__round_products(&q, t->precision == KILN_TRAIN_BF16 ? KILN_DTYPE_BF16
                                                                        : KILN_DTYPE_F16);
            if (s == KILN_OK) s = kiln__px_sweep(&q);
            kiln__px_free(&q);
        }
    }
    if (s == KILN_OK) s = set_outputs(g, n_out, outs);
    if (s == KILN_OK) s = kiln__graph_finalize(g);
    kiln__px_free(&p);
    free(outs), free(stat_out), free(wrt), free(grads);
    if (s != KILN_OK) {
        kiln_graph_free(g);
        return s;
    }
    *out = g;
    return KILN_OK;
}

/* ---- the trainer ------------------------------------------------------------------- */

kiln_status kiln_trainer_create(const kiln_graph *model, const kiln_train_options *opt,
                                kiln_trainer **out) {
    kiln_train_options defaults = {0};
    if (!opt) opt = &defaults;
    *out = NULL;
    if (model->n_inputs < 1) return kiln__err(KILN_E_INVAL, "the model has no inputs");
    kiln_trainer *t = calloc(1, sizeof *t);
    if (!t) return oom();
    kiln_status s = KILN_OK;
    if (!(t->model = kiln__graph_clone(model))) s = KILN_E_NOMEM;
    if (s == KILN_OK) s = inference_form(t->model);
    /* a labels input name the model does not use */
    char name[64] = "labels";
    for (int k = 1; s == KILN_OK && kiln__graph_find(t->model, name) >= 0; k++)
        snprintf(name, sizeof name, "labels_%d", k);
    if (s == KILN_OK && !(t->labels_name = kiln__strdup(name))) s = oom();
    if ((unsigned)opt->precision > KILN_TRAIN_FP16)
        s = kiln__err(KILN_E_INVAL, "kiln_trainer_create: bad precision %d", (int)opt->precision);
    if (opt->loss_scale < 0 || opt->loss_scale_interval < 0 || !(opt->clip_norm >= 0))
        s = kiln__err(KILN_E_INVAL, "kiln_trainer_create: negative loss scale, interval or clip norm");
    t->clip_norm = opt->clip_norm;
    t->loss = opt->loss;
    t->label_smoothing = opt->label_smoothing;
    if (!kiln_loss_name(opt->loss))
        s = kiln__err(KILN_E_INVAL, "kiln_trainer_create: bad loss %d", (int)opt->loss);
    t->classes = -1;
    t->out_rank = 2;
    if (s == KILN_OK && kiln_graph_infer_shapes(t->model) == KILN_OK && t->model->n_outputs > 0) {
        const kiln__value *o = &t->model->values[t->model->outputs[0]];
        if (o->ndim >= 2) {
            t->classes = o->dims[1].v;
            t->out_rank = o->ndim;
            memcpy(t->out_dims, o->dims, (size_t)o->ndim * sizeof *o->dims); /* names borrowed */
        } else if (o->ndim >= 0) {
            s = kiln__err(KILN_E_SHAPE, "the model's first output '%s' has rank %d, expected logits "
                          "(N, C) or (N, C, D1..Dk)", o->name, o->ndim);
        }
    }
    if (s == KILN_OK && t->out_rank > 2 && (opt->loss == KILN_LOSS_MSE || opt->loss == KILN_LOSS_BCE_WITH_LOGITS))
        s = kiln__err(KILN_E_INVAL, "the %s loss needs logits (N, C); the model's are of rank %d",
                      kiln_loss_name(opt->loss), t->out_rank);
    t->precision = opt->precision;
    t->scaler = (kiln__loss_scaler){.scale = 1, .interval = INT64_MAX};
    if (t->precision == KILN_TRAIN_FP16)
        t->scaler = (kiln__loss_scaler){
            .scale = opt->loss_scale > 0 ? opt->loss_scale : 65536.0,
            .interval = opt->loss_scale_interval > 0 ? opt->loss_scale_interval : 2000};
    if (s == KILN_OK) s = collect(t);
    if (s == KILN_OK) s = build(t, 1, &t->train_g);
    if (s == KILN_OK) s = build(t, 0, &t->eval_g);
    kiln_session_options so = {.threads = opt->threads};
    t->seed = opt->seed;
    if (s == KILN_OK && kiln__graph_find(t->train_g, STEP_SEED) >= 0)
        s = kiln_tensor_create(KILN_DTYPE_I64, 0, NULL, &t->step_seed);
    if (s == KILN_OK) s = kiln_tensor_create(KILN_DTYPE_F32, 0, NULL, &t->loss_seed);
    /* the training session plans in fp32 at every precision: a bf16 session
     * made the rounded training graph twice as slow on an AVX2 CPU (without
     * native bf16 products), and native bf16 training kernels are not there
     * yet */
    if (s == KILN_OK) s = kiln_session_create(t->train_g, &so, &t->train_s);
    if (s == KILN_OK) s = kiln_session_create(t->eval_g, &so, &t->eval_s);
    if (s == KILN_OK) s = kiln__optim_init(&t->opt, (kiln__optim_kind)opt->optimizer, t->n_p);
    if (s == KILN_OK) {
        t->opt.momentum = opt->momentum;
        t->opt.nesterov = opt->nesterov;
        t->opt.weight_decay = opt->weight_decay;
        if (opt->beta1 > 0) t->opt.beta1 = opt->beta1;
        if (opt->beta2 > 0) t->opt.beta2 = opt->beta2;
        if (opt->eps > 0) t->opt.eps = opt->eps;
        t->n_in = 2 + t->n_params + t->n_stats;
        t->in_names = calloc((size_t)t->n_in + 2, sizeof *t->in_names);
        t->in_vals = calloc((size_t)t->n_in + 2, sizeof *t->in_vals);
        if (!t->in_names || !t->in_vals) s = oom();
    }
    if (s == KILN_OK) {
        t->in_names[0] = t->model->values[t->model->inputs[0]].name;
        t->in_names[1] = t->labels_name;
        for (int i = 0; i < t->n_params; i++) {
            t->in_names[2 + i] = t->params[i].name;
            t->in_vals[2 + i] = t->params[i].view;
        }
        for (int i = 0; i < t->n_stats; i++) {
            t->in_names[2 + t->n_params + i] = t->stats[i].name;
            t->in_vals[2 + t->n_params + i] = t->stats[i].view;
        }
        t->in_names[t->n_in] = LOSS_SEED; /* training only */
        t->in_vals[t->n_in] = t->loss_seed;
        t->in_names[t->n_in + 1] = STEP_SEED;
        t->in_vals[t->n_in + 1] = t->step_seed;
    }
    if (s != KILN_OK) {
        kiln_trainer_free(t);
        return s;
    }
    *out = t;
    return KILN_OK;
}

static void free_slots(slot *list, int n) {
    for (int i = 0; i < n; i++) {
        free(list[i].name);
        kiln_tensor_free(list[i].view);
    }
    free(list);
}

void kiln_trainer_free(kiln_trainer *t) {
    if (!t) return;
    kiln_session_free(t->train_s);
    kiln_session_free(t->eval_s);
    kiln_graph_free(t->train_g);
    kiln_graph_free(t->eval_g);
    kiln_graph_free(t->model);
    free_slots(t->params, t->n_params);
    free_slots(t->stats, t->n_stats);
    free(t->p), free(t->grad), free(t->stat);
    kiln__optim_free(&t->opt);
    free(t->labels_name);
    kiln_tensor_free(t->step_seed);
    kiln_tensor_free(t->loss_seed);
    free(t->in_names);
    free(t->in_vals);
    free(t);
}

int64_t kiln_trainer_num_params(const kiln_trainer *t) { return t->n_p; }

/* Runs session s on the batch; *loss and *correct from outputs 0 and 1. */
static kiln_status run_batch(kiln_trainer *t, kiln_session *s, int n_in, const kiln_tensor *x,
                             const kiln_tensor *labels, double *loss, int64_t *correct) {
    char b1[96];
    if (labels->dtype != KILN_DTYPE_I64 || labels->ndim != t->out_rank - 1 || x->ndim < 1 ||
        labels->dims[0] != x->dims[0])
        return kiln__err(KILN_E_SHAPE, "labels are %s %s, expected int64 of rank %d with the batch's "
                         "%lld first", kiln_dtype_name(labels->dtype),
                         kiln__shape_str(labels->ndim, labels->dims, b1, sizeof b1), t->out_rank - 1,
                         (long long)(x->ndim ? x->dims[0] : 0));
    t->in_vals[0] = x;
    t->in_vals[1] = labels;
    KILN__TRY(kiln_session_run(s, n_in, t->in_names, t->in_vals));
    const kiln_tensor *l, *logits;
    KILN__TRY(kiln_session_output(s, 0, &l));
    KILN__TRY(kiln_session_output(s, 1, &logits));
    if (loss) *loss = kiln__ld_f(l->dtype, l->data, 0);
    if (correct) { /* logits (N, C, D), labels (N, D): position (i, d)'s classes at stride D */
        int64_t n = logits->dims[0], c = logits->dims[1], d = kiln__dims_prod(logits->dims, 2, logits->ndim);
        int64_t k = 0;
        const int64_t *lab = kiln_tensor_data(labels);
        enum { BLOCK = 256 }; /* positions at a time, so that each class's row is read in order */
        double best_v[BLOCK];
        int64_t best[BLOCK];
        for (int64_t i = 0; i < n; i++)
            for (int64_t p0 = 0; p0 < d; p0 += BLOCK) {
                int64_t np = d - p0 < BLOCK ? d - p0 : BLOCK;
                for (int64_t j = 0; j < c; j++) {
                    int64_t base = (i * c + j) * d + p0;
                    for (int64_t p = 0; p < np; p++) {
                        double v = kiln__ld_f(logits->dtype, logits->data, base + p);
                        if (j == 0 || v > best_v[p]) best[p] = j, best_v[p] = v;
                    }
                }
                for (int64_t p = 0; p < np; p++) k += best[p] == lab[i * d + p0 + p];
            }
        *correct = k;
    }
    return KILN_OK;
}

/* Copies session output i (f32, numel floats) to dst. */
static kiln_status take_output(kiln_session *s, int i, float *dst, int64_t numel) {
    const kiln_tensor *o;
    KILN__TRY(kiln_session_output(s, i, &o));
    if (o->dtype != KILN_DTYPE_F32 || kiln_tensor_numel(o) != numel)
        return kiln__err(KILN_E_INTERNAL, "training output %d is %s of %lld elements, expected %lld f32",
                         i, kiln_dtype_name(o->dtype), (long long)kiln_tensor_numel(o),
                         (long long)numel);
    memcpy(dst, o->data, (size_t)numel * sizeof(float));
    return KILN_OK;
}

kiln_status kiln_trainer_step(kiln_trainer *t, const kiln_tensor *x, const kiln_tensor *labels,
                              double lr, double *loss, int64_t *correct) {
    if (t->step_seed) /* a new dropout mask per step, reproducible from (seed, step) */
        *(int64_t *)kiln_tensor_data(t->step_seed) =
            (int64_t)kiln__hash64(t->seed, (uint64_t)(t->opt.step + t->scaler.skipped));
    *(float *)kiln_tensor_data(t->loss_seed) = (float)t->scaler.scale;
    KILN__TRY(run_batch(t, t->train_s, t->n_in + 1 + (t->step_seed != NULL), x, labels, loss,
                        correct));
    for (int i = 0; i < t->n_params; i++) {
        slot *p = &t->params[i];
        if (p->grad_out < 0)
            memset(t->grad + p->off, 0, (size_t)p->numel * sizeof(float));
        else
            KILN__TRY(take_output(t->train_s, p->grad_out, t->grad + p->off, p->numel));
    }
    for (int i = 0; i < t->n_stats; i++)
        if (t->stats[i].grad_out >= 0)
            KILN__TRY(take_output(t->train_s, t->stats[i].grad_out, t->stat + t->stats[i].off,
                                  t->stats[i].numel));
    if (t->precision == KILN_TRAIN_FP16 && !kiln__loss_scaler_update(&t->scaler, t->grad, t->n_p))
        return KILN_OK; /* skipped: the running statistics moved, as the forward pass ran */
    t->grad_norm = t->clip_norm > 0 ? kiln__clip_global_norm(t->grad, t->n_p, t->clip_norm)
                                    : kiln__global_norm(t->grad, t->n_p);
    return kiln__optim_step(&t->opt, t->p, t->grad, lr);
}

void kiln_trainer_stats(const kiln_trainer *t, kiln_train_stats *out) {
    *out = (kiln_train_stats){.updates = t->opt.step,
                              .skipped_steps = t->scaler.skipped,
                              .loss_scale = t->scaler.scale,
                              .grad_norm = t->grad_norm};
}

kiln_status kiln_trainer_set_profiling(kiln_trainer *t, int on) {
    return kiln_session_set_profiling(t->train_s, on);
}

int kiln_trainer_profile(const kiln_trainer *t, kiln_node_profile *out, int max) {
    return kiln_session_profile(t->train_s, out, max);
}

kiln_status kiln_trainer_evaluate(kiln_trainer *t, const kiln_tensor *x,
                                  const kiln_tensor *labels, double *loss, int64_t *correct) {
    return run_batch(t, t->eval_s, t->n_in, x, labels, loss, correct);
}

kiln_status kiln_trainer_export(const kiln_trainer *t, kiln_graph **out) {
    kiln_graph *g = kiln__graph_clone(t->model);
    if (!g) return KILN_E_NOMEM;
    for (int j = 0; j < t->n_params + t->n_stats; j++) {
        float *data;
        const slot *sl = slot_at(t, j, &data);
        kiln_tensor *init = g->values[kiln__graph_find(g, sl->name)].init;
        memcpy(kiln_tensor_data(init), data, (size_t)sl->numel * sizeof(float));
    }
    *out = g;
    return KILN_OK;
}

/* ---- checkpoints ------------------------------------------------------------------ */

#define STATE_NAME "kiln.optimizer_state"

kiln_status kiln_trainer_save(const kiln_trainer *t, const char *path, int n_meta,
                              const char *const *keys, const char *const *values) {
    int n = t->n_params + t->n_stats + 1, k = 0;
    kiln__st_tensor *e = calloc((size_t)n, sizeof *e);
    enum { OWN_META = 6 };
    const char **mk = calloc((size_t)n_meta + OWN_META, sizeof *mk),
               **mv = calloc((size_t)n_meta + OWN_META, sizeof *mv);
    if (!e || !mk || !mv) {
        free(e), free(mk), free(mv);
        return oom();
    }
    for (int j = 0; j < t->n_params + t->n_stats; j++) {
        float *data;
        const slot *sl = slot_at(t, j, &data);
        e[k++] = (kiln__st_tensor){sl->name, KILN_DTYPE_F32, sl->ndim, sl->dims, data};
    }
    int64_t state_n = kiln__optim_state_size(&t->opt);
    if (t->opt.state) e[k++] = (kiln__st_tensor){STATE_NAME, KILN_DTYPE_F32, 1, &state_n, t->opt.state};
    char step[32], scale[32], clean[32], skipped[32];
    snprintf(step, sizeof step, "%lld", (long long)t->opt.step);
    snprintf(scale, sizeof scale, "%.17g", t->scaler.scale);
    snprintf(clean, sizeof clean, "%lld", (long long)t->scaler.clean);
    snprintf(skipped, sizeof skipped, "%lld", (long long)t->scaler.skipped);
    mk[0] = "kiln.optimizer", mv[0] = kiln__optim_name(t->opt.kind);
    mk[1] = "kiln.step", mv[1] = step;
    mk[2] = "kiln.precision", mv[2] = precision_names[t->precision];
    mk[3] = "kiln.loss_scale", mv[3] = scale;
    mk[4] = "kiln.loss_scale_clean_steps", mv[4] = clean;
    mk[5] = "kiln.skipped_steps", mv[5] = skipped;
    for (int i = 0; i < n_meta; i++) mk[OWN_META + i] = keys[i], mv[OWN_META + i] = values[i];
    kiln_status s = kiln__st_write(path, k, e, n_meta + OWN_META, mk, mv);
    free(e), free(mk), free(mv);
    return s;
}

/* Metadata `key` of f as a count >= 0 into *v; absent: *v = def unless
 * required. */
static kiln_status meta_count(const kiln__st_file *f, const char *path, const char *key,
                              int required, int64_t def, int64_t *v) {
    const char *text = kiln__st_meta(f, key);
    char *end = NULL;
    long long x = text ? strtoll(text, &end, 10) : -1;
    if (!text && !required) {
        *v = def;
        return KILN_OK;
    }
    if (!text || *end || x < 0)
        return kiln__err(KILN_E_FORMAT, "%s: metadata %s is missing or not a count", path, key);
    *v = x;
    return KILN_OK;
}

/* The loss scaler of a checkpoint: its counters, and its scale when both
 * it and t are fp16 (else t's stays). */
static kiln_status load_scaler(const kiln_trainer *t, const kiln__st_file *f, const char *path,
                               kiln__loss_scaler *ls) {
    *ls = t->scaler;
    const char *prec = kiln__st_meta(f, "kiln.precision"), *scale = kiln__st_meta(f, "kiln.loss_scale");
    KILN__TRY(meta_count(f, path, "kiln.skipped_steps", 0, 0, &ls->skipped));
    if (t->precision != KILN_TRAIN_FP16 || !prec || strcmp(prec, "fp16") != 0) return KILN_OK;
    char *end = NULL;
    double x = scale ? strtod(scale, &end) : -1;
    if (!scale || *end || !(x > 0) || !isfinite(x))
        return kiln__err(KILN_E_FORMAT, "%s: metadata kiln.loss_scale is missing or not a positive number",
                         path);
    ls->scale = x;
    return meta_count(f, path, "kiln.loss_scale_clean_steps", 1, 0, &ls->clean);
}

kiln_status kiln_trainer_load(kiln_trainer *t, const char *path) {
    kiln__st_file f;
    KILN__TRY(kiln__st_read(path, &f));
    kiln_status s = KILN_OK;
    const char *opt = kiln__st_meta(&f, "kiln.optimizer");
    int64_t steps = 0;
    kiln__loss_scaler scaler;
    if (!opt || strcmp(opt, kiln__optim_name(t->opt.kind)) != 0)
        s = kiln__err(KILN_E_INVAL, "%s: written by optimizer %s, this trainer uses %s", path,
                      opt ? opt : "(none)", kiln__optim_name(t->opt.kind));
    if (s == KILN_OK) s = meta_count(&f, path, "kiln.step", 1, 0, &steps);
    if (s == KILN_OK) s = load_scaler(t, &f, path, &scaler);
    /* everything checked before anything is copied */
    const void **src = calloc((size_t)(t->n_params + t->n_stats) + 1, sizeof *src);
    const void *state = NULL;
    int64_t state_n = kiln__optim_state_size(&t->opt);
    if (s == KILN_OK && !src) s = oom();
    for (int j = 0; s == KILN_OK && j < t->n_params + t->n_stats; j++) {
        float *data;
        const slot *sl = slot_at(t, j, &data);
        s = kiln__st_get(&f, sl->name, KILN_DTYPE_F32, sl->ndim, sl->dims, &src[j]);
    }
    if (s == KILN_OK && state_n > 0 && steps > 0)
        s = kiln__st_get(&f, STATE_NAME, KILN_DTYPE_F32, 1, &state_n, &state);
    if (s == KILN_OK && state && !t->opt.state &&
        !(t->opt.state = calloc((size_t)state_n, sizeof(float))))
        s = oom();
    if (s == KILN_OK) {
        for (int j = 0; j < t->n_params + t->n_stats; j++) {
            float *data;
            const slot *sl = slot_at(t, j, &data);
            memcpy(data, src[j], (size_t)sl->numel * sizeof(float));
        }
        if (state) memcpy(t->opt.state, state, (size_t)state_n * sizeof(float));
        else if (t->opt.state) memset(t->opt.state, 0, (size_t)state_n * sizeof(float));
        t->opt.step = steps;
        t->scaler = scaler;
    }
    free(src);
    kiln__st_close(&f);
    return s;
}

kiln_status kiln_checkpoint_meta(const char *path, const char *key, char *buf, size_t len) {
    kiln__st_file f;
    KILN__TRY(kiln__st_read(path, &f));
    const char *v = kiln__st_meta(&f, key);
    kiln_status s = KILN_OK;
    if (!v)
        s = kiln__err(KILN_E_NOTFOUND, "%s: no metadata '%s'", path, key);
    else if (strlen(v) >= len)
        s = kiln__err(KILN_E_LIMIT, "%s: metadata '%s' is longer than %zu bytes", path, key, len);
    else
        memcpy(buf, v, strlen(v) + 1);
    kiln__st_close(&f);
    return s;
}
