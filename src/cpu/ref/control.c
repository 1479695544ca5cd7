/* src/cpu/ref/control.c: control flow (If, Loop, Scan) and SequenceMap.
 *
 * Bodies run through sub-runners (src/graph/exec.h), one per subgraph, kept
 * by the node for the life of the plan. Bodies see their captures from the
 * enclosing graph as extra inputs: the node's implicit inputs, matched by
 * name. Output shapes depend on data (branch taken, trip count), so these ops
 * allocate their outputs (KILN_OPF_ALLOC_OUT); loop-carried values are kept
 * in heap copies while the loop runs.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/exec.h"
#include "ops/op.h"

#define MAX_BODY_IO 1024

/* ---- shared helpers ---------------------------------------------------------- */

/* Fills in[n_formal..] with the node's implicit inputs that body captures. */
static kiln_status bind_captures(const kiln__kctx *c, const kiln_graph *body,
                                 const kiln_tensor **in, int n_formal) {
    const kiln__node *nd = c->node;
    for (int j = 0; j < body->n_outer; j++) {
        const char *name = body->values[body->outer[j]].name;
        in[n_formal + j] = NULL;
        for (int k = nd->n_in - nd->n_implicit; k < nd->n_in; k++)
            if (nd->in[k] >= 0 && strcmp(c->graph->values[nd->in[k]].name, name) == 0) {
                in[n_formal + j] = c->in[k];
                break;
            }
    }
    return KILN_OK;
}

/* Runs body with formal inputs (n_formal of them) plus its captures. */
static kiln_status run_body(kiln__kctx *c, const kiln_graph *body, const kiln_tensor **in,
                            int n_formal, kiln__runner **runner) {
    if (n_formal + body->n_outer > MAX_BODY_IO)
        return kiln__err(KILN_E_LIMIT, "subgraph has too many inputs");
    KILN__TRY(kiln__subgraph_runner(c, body, runner));
    KILN__TRY(bind_captures(c, body, in, n_formal));
    kiln_status s = kiln__runner_run(*runner, n_formal + body->n_outer, in);
    if (s != KILN_OK) return kiln__err_prefix(s, "in subgraph '%s'", body->name ? body->name : "");
    return KILN_OK;
}

/* dst <- src element-wise over dst's shape, both possibly strided. */
static kiln_status strided_copy(kiln_tensor *dst, const kiln_tensor *src) {
    int64_t n = kiln__n(dst);
    size_t es = kiln_dtype_size(dst->dtype);
    int64_t st[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    memcpy(st[0], dst->strides, sizeof st[0]);
    memcpy(st[1], src->strides, sizeof st[1]);
    kiln__iter it;
    kiln__iter_init(&it, dst->ndim, dst->dims, 2, st);
    for (int64_t i = 0; i < n; i++, kiln__iter_next(&it)) {
        char *d = (char *)dst->data + it.off[0] * (int64_t)es;
        const char *s = (const char *)src->data + it.off[1] * (int64_t)es;
        if (dst->dtype == KILN_DTYPE_STRING) {
            char *copy = kiln__strdup(*(char *const *)s);
            if (!copy) return KILN_E_NOMEM;
            free(*(char **)d);
            *(char **)d = copy;
        } else {
            memcpy(d, s, es);
        }
    }
    return KILN_OK;
}

/* View of t without axis, at index idx along it. */
static kiln_tensor drop_axis(const kiln_tensor *t, int axis, int64_t idx) {
    kiln_tensor v = *t;
    v.owns = 0;
    v.cap = 0;
    v.data = (char *)t->data + idx * t->strides[axis] * (int64_t)kiln_dtype_size(t->dtype);
    for (int d = axis; d + 1 < t->ndim; d++) {
        v.dims[d] = t->dims[d + 1];
        v.strides[d] = t->strides[d + 1];
    }
    v.ndim = t->ndim - 1;
    return v;
}

/* Owned copy of t into *slot (replacing what was there). */
static kiln_status keep_copy(kiln_tensor **slot, const kiln_tensor *t) {
    kiln_tensor *c;
    KILN__TRY(kiln_tensor_copy(t, t->dtype, &c));
    kiln_tensor_free(*slot);
    *slot = c;
    return KILN_OK;
}

static int cond_value(const kiln_tensor *t) {
    return t && kiln__n(t) > 0 && kiln__ld_i(t->dtype, t->data, 0) != 0;
}

/* ---- If ------------------------------------------------------------------------ */

kiln_status kiln__infer_If(kiln__kctx *c) { return KILN_OK; }

// cond: bool scalar (or one element); outputs: the taken branch's outputs
kiln_status kiln__ref_If(kiln__kctx *c) {
    const kiln_graph *then_g = kiln__attr_graph(c->node, "then_branch");
    const kiln_graph *else_g = kiln__attr_graph(c->node, "else_branch");
    if (!then_g || !else_g)
        return kiln__err(KILN_E_FORMAT, "attributes then_branch and else_branch are required");
    const kiln_tensor *cond = kiln__in(c, 0);
    if (!cond || kiln__n(cond) != 1)
        return kiln__err(KILN_E_SHAPE, "input 'cond' must hold exactly one element");
    const kiln_graph *body = cond_value(cond) ? then_g : else_g;
    if (body->n_outputs != c->n_out)
        return kiln__err(KILN_E_FORMAT, "branch has %d outputs, the node %d", body->n_outputs,
                         c->n_out);
    const kiln_tensor *in[MAX_BODY_IO];
    kiln__runner *r;
    KILN__TRY(run_body(c, body, in, 0, &r));
    for (int i = 0; i < c->n_out; i++) KILN__TRY(kiln__out_assign(c, i, kiln__runner_output(r, i)));
    return KILN_OK;
}

/* ---- scan-output accumulation (Loop) --------------------------------------------- */

typedef struct stack {
    kiln_tensor *elem; /* shape of one iteration's value (first iteration's) */
    char *data;
    size_t used, cap;  /* bytes */
    int64_t count;
} stack;

/* limit: the session's memory limit (0: none); the stacked output would be
 * refused by kiln__out_alloc anyway, so a Loop fails as soon as a scan
 * output outgrows it instead of growing the heap for ~2^31 iterations. */
static kiln_status stack_push(stack *s, const kiln_tensor *t, int k, size_t limit) {
    char buf[128];
    if (kiln__is_container(t->dtype))
        return kiln__err(KILN_E_TYPE, "scan output %d is %s; scan outputs must be tensors", k,
                         kiln__type_str(t, buf, sizeof buf));
    if (!s->elem) {
        KILN__TRY(kiln_tensor_create(t->dtype, t->ndim, t->dims, &s->elem));
    } else if (!kiln__same_shape(s->elem, t) || s->elem->dtype != t->dtype) {
        return kiln__err(KILN_E_SHAPE, "scan output %d changes shape or dtype between iterations", k);
    }
    if (t->dtype == KILN_DTYPE_STRING)
        return kiln__err(KILN_E_UNSUPPORTED, "string scan outputs are not supported");
    size_t b = kiln__tensor_bytes(t);
    if (limit && s->used + b > limit)
        return kiln__err(KILN_E_LIMIT, "scan output %d exceeds the session's memory limit of "
                         "%.1f MB after %lld iterations", k, limit / 1048576.0, (long long)s->count);
    if (s->used + b > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        while (cap < s->used + b) cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d) return kiln__err(KILN_E_NOMEM, "out of memory");
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->used, t->data, b);
    s->used += b;
    s->count++;
    return KILN_OK;
}

static kiln_status stack_output(kiln__kctx *c, int i, const stack *s) {
    int64_t dims[KILN_MAX_DIMS];
    int ndim = 1;
    dims[0] = s->count;
    kiln_dtype dt = KILN_DTYPE_F32;
    if (s->elem) {
        if (s->elem->ndim + 1 > KILN_MAX_DIMS) return kiln__err(KILN_E_LIMIT, "scan output rank too large");
        for (int d = 0; d < s->elem->ndim; d++) dims[ndim++] = s->elem->dims[d];
        dt = s->elem->dtype;
    }
    if (!kiln__out(c, i)) return KILN_OK;
    KILN__TRY(kiln__out_alloc(c, i, dt, ndim, dims));
    if (s->used) memcpy(c->out[i]->data, s->data, s->used);
    return KILN_OK;
}

/* ---- Loop ------------------------------------------------------------------------ */

kiln_status kiln__infer_Loop(kiln__kctx *c) { return KILN_OK; }

// M: optional int64 trip count, cond: optional bool, v_initial: N carried values
// body(iter: int64 scalar, cond: bool, v...) -> (cond, v..., scan_k...)
// outputs: N final carried values, then K scan outputs stacked on a new axis 0
kiln_status kiln__ref_Loop(kiln__kctx *c) {
    const kiln_graph *body = kiln__attr_graph(c->node, "body");
    if (!body) return kiln__err(KILN_E_FORMAT, "attribute 'body' is required");
    int n_decl = c->node->n_in - c->node->n_implicit;
    int N = n_decl - 2, K = body->n_outputs - 1 - N;
    if (N < 0 || K < 0 || body->n_inputs != N + 2 || c->n_out != N + K || N + 2 > MAX_BODY_IO)
        return kiln__err(KILN_E_FORMAT, "body has %d inputs and %d outputs, which does not match "
                         "the node's %d loop-carried values and %d outputs",
                         body->n_inputs, body->n_outputs, N, c->n_out);
    const kiln_tensor *M = kiln__in(c, 0), *cond0 = kiln__in(c, 1);
    if (!M && !cond0)
        return kiln__err(KILN_E_UNSUPPORTED, "a Loop with neither trip count nor condition never ends");
    int64_t max_trip = M ? kiln__ld_i(M->dtype, M->data, 0) : INT64_MAX;
    int cond = cond0 ? cond_value(cond0) : 1;

    kiln_status s = KILN_OK;
    kiln_tensor **carried = calloc((size_t)N + 1, sizeof *carried);
    stack *scans = calloc((size_t)K + 1, sizeof *scans);
    const kiln_tensor **in = calloc(MAX_BODY_IO, sizeof *in);
    kiln_tensor *iter_t = NULL, *cond_t = NULL;
    int64_t one = 1;
    if (!carried || !scans || !in) {
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    if ((s = kiln_tensor_create(KILN_DTYPE_I64, 0, &one, &iter_t)) != KILN_OK) goto done;
    if ((s = kiln_tensor_create(KILN_DTYPE_BOOL, 0, &one, &cond_t)) != KILN_OK) goto done;
    for (int j = 0; j < N; j++) {
        const kiln_tensor *v = kiln__in(c, 2 + j);
        if (!v) {
            s = kiln__err(KILN_E_FORMAT, "loop-carried input %d is missing", j);
            goto done;
        }
        if ((s = keep_copy(&carried[j], v)) != KILN_OK) goto done;
    }
    for (int64_t it = 0; it < max_trip && cond; it++) {
        ((int64_t *)iter_t->data)[0] = it;
        ((uint8_t *)cond_t->data)[0] = (uint8_t)cond;
        in[0] = iter_t;
        in[1] = cond_t;
        for (int j = 0; j < N; j++) in[2 + j] = carried[j];
        kiln__runner *r;
        if ((s = run_body(c, body, in, N + 2, &r)) != KILN_OK) {
            kiln__err_prefix(s, "iteration %lld", (long long)it);
            goto done;
        }
        cond = cond_value(kiln__runner_output(r, 0));
        for (int j = 0; j < N; j++)
            if ((s = keep_copy(&carried[j], kiln__runner_output(r, 1 + j))) != KILN_OK) goto done;
        for (int k = 0; k < K; k++)
            if ((s = stack_push(&scans[k], kiln__runner_output(r, 1 + N + k), k,
                                 c->runner ? c->runner->memory_limit : 0)) != KILN_OK) goto done;
    }
    for (int j = 0; j < N && s == KILN_OK; j++) s = kiln__out_assign(c, j, carried[j]);
    for (int k = 0; k < K && s == KILN_OK; k++) s = stack_output(c, N + k, &scans[k]);
done:
    for (int j = 0; carried && j < N; j++) kiln_tensor_free(carried[j]);
    for (int k = 0; scans && k < K; k++) {
        kiln_tensor_free(scans[k].elem);
        free(scans[k].data);
    }
    free(carried), free(scans), free(in);
    kiln_tensor_free(iter_t);
    kiln_tensor_free(cond_t);
    return s;
}

/* ---- Scan --------------------------------------------------------------------------- */

kiln_status kiln__infer_Scan(kiln__kctx *c) { return KILN_OK; }

/* Reads the int list attribute name into v[0..n) with default def. */
static kiln_status scan_axes(const kiln__node *nd, const char *name, int n, int64_t def,
                             int64_t *v) {
    const int64_t *a;
    int cnt = kiln__attr_ints(nd, name, &a);
    for (int i = 0; i < n; i++) v[i] = def;
    if (cnt < 0) return KILN_OK;
    if (cnt != n) return kiln__err(KILN_E_FORMAT, "attribute '%s' has %d entries, expected %d", name, cnt, n);
    for (int i = 0; i < n; i++) v[i] = a[i];
    return KILN_OK;
}

/* One scan over inputs whose scan axes are given; states/scans are views the
 * results are written into. opset >= 9 semantics. */
typedef struct scan_io {
    int N, M, K;
    const kiln_tensor **state_in; /* N */
    const kiln_tensor **scan_in;  /* M */
    int64_t *in_axis, *in_dir, *out_axis, *out_dir;
} scan_io;

static kiln_status scan_run(kiln__kctx *c, const kiln_graph *body, const scan_io *io,
                            int64_t len, kiln_tensor **state_out, kiln_tensor **scan_out,
                            int alloc_scan_out) {
    kiln_status s = KILN_OK;
    const kiln_tensor **in = calloc(MAX_BODY_IO, sizeof *in);
    kiln_tensor **state = calloc((size_t)io->N + 1, sizeof *state);
    kiln_tensor *slices = calloc((size_t)io->M + 1, sizeof *slices);
    if (!in || !state || !slices) {
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    for (int j = 0; j < io->N; j++)
        if ((s = keep_copy(&state[j], io->state_in[j])) != KILN_OK) goto done;
    for (int64_t t = 0; t < len; t++) {
        for (int j = 0; j < io->N; j++) in[j] = state[j];
        for (int m = 0; m < io->M; m++) {
            int64_t idx = io->in_dir[m] ? len - 1 - t : t;
            slices[m] = drop_axis(io->scan_in[m], (int)io->in_axis[m], idx);
            in[io->N + m] = &slices[m];
        }
        kiln__runner *r;
        if ((s = run_body(c, body, in, io->N + io->M, &r)) != KILN_OK) goto done;
        for (int j = 0; j < io->N; j++)
            if ((s = keep_copy(&state[j], kiln__runner_output(r, j))) != KILN_OK) goto done;
        for (int k = 0; k < io->K; k++) {
            const kiln_tensor *y = kiln__runner_output(r, io->N + k);
            int ax = (int)io->out_axis[k];
            if (ax < 0) ax += y->ndim + 1;
            if (ax < 0 || ax > y->ndim || y->ndim + 1 > KILN_MAX_DIMS) {
                s = kiln__err(KILN_E_RANGE, "scan_output_axes[%d] out of range", k);
                goto done;
            }
            if (alloc_scan_out && t == 0) {
                int64_t dims[KILN_MAX_DIMS];
                for (int d = 0, e = 0; d <= y->ndim; d++) dims[d] = d == ax ? len : y->dims[e++];
                if ((s = kiln__out_alloc(c, io->N + k, y->dtype, y->ndim + 1, dims)) != KILN_OK) goto done;
            }
            kiln_tensor *o = scan_out[k];
            if (!o) continue;
            int64_t idx = io->out_dir[k] ? len - 1 - t : t;
            kiln_tensor dst = drop_axis(o, ax, idx);
            if (!kiln__same_shape(&dst, y) || o->dtype != y->dtype) {
                s = kiln__err(KILN_E_SHAPE, "scan output %d changes shape between iterations", k);
                goto done;
            }
            if ((s = strided_copy(&dst, y)) != KILN_OK) goto done;
        }
    }
    for (int j = 0; j < io->N; j++) {
        if (!state_out[j]) continue;
        if (state_out[j]->data == NULL || alloc_scan_out) {
            if ((s = kiln__out_assign(c, j, state[j])) != KILN_OK) goto done;
        } else if ((s = strided_copy(state_out[j], state[j])) != KILN_OK) {
            goto done;
        }
    }
done:
    for (int j = 0; state && j < io->N; j++) kiln_tensor_free(state[j]);
    free(in), free(state), free(slices);
    return s;
}

// opset >= 9: inputs N states then M scan inputs; outputs N states then K scan outputs
// opset 8: input 0 is optional sequence_lens, every input and output has a batch axis 0
kiln_status kiln__ref_Scan(kiln__kctx *c) {
    const kiln__node *nd = c->node;
    const kiln_graph *body = kiln__attr_graph(nd, "body");
    if (!body) return kiln__err(KILN_E_FORMAT, "attribute 'body' is required");
    int v8 = c->opset < 9;
    int n_decl = nd->n_in - nd->n_implicit - v8;
    int64_t m_attr = kiln__attr_i(nd, "num_scan_inputs", -1);
    int M = m_attr < 1 || m_attr > n_decl ? -1 : (int)m_attr; /* checked before any arithmetic */
    int N = n_decl - M, K = c->n_out - N;
    if (M < 1 || N < 0 || K < 0 || body->n_inputs != N + M || body->n_outputs != N + K ||
        N + M > MAX_BODY_IO)
        return kiln__err(KILN_E_FORMAT, "num_scan_inputs=%lld does not match %d inputs, %d outputs "
                         "and a body with %d inputs and %d outputs", (long long)m_attr, n_decl, c->n_out,
                         body->n_inputs, body->n_outputs);
    int64_t in_axis[MAX_BODY_IO], in_dir[MAX_BODY_IO], out_axis[MAX_BODY_IO], out_dir[MAX_BODY_IO];
    KILN__TRY(scan_axes(nd, "scan_input_axes", M, 0, in_axis));
    KILN__TRY(scan_axes(nd, v8 ? "directions" : "scan_input_directions", M, 0, in_dir));
    KILN__TRY(scan_axes(nd, "scan_output_axes", K, 0, out_axis));
    KILN__TRY(scan_axes(nd, "scan_output_directions", K, 0, out_dir));
    const kiln_tensor *ins[MAX_BODY_IO];
    for (int i = 0; i < N + M; i++) {
        ins[i] = kiln__in(c, v8 + i);
        if (!ins[i]) return kiln__err(KILN_E_FORMAT, "input %d is missing", v8 + i);
        if (kiln__is_container(ins[i]->dtype)) /* sliced and stacked: tensors only */
            return kiln__err(KILN_E_TYPE, "input %d is a sequence or optional; Scan takes tensors",
                             v8 + i);
    }
    scan_io io = {N, M, K, ins, ins + N, in_axis, in_dir, out_axis, out_dir};
    if (!v8) {
        int64_t len = -1;
        for (int m = 0; m < M; m++) {
            const kiln_tensor *x = ins[N + m];
            int ax;
            KILN__TRY(kiln__axis(in_axis[m], x->ndim, "scan_input_axes", &ax));
            in_axis[m] = ax;
            if (len >= 0 && x->dims[ax] != len)
                return kiln__err(KILN_E_SHAPE, "scan inputs have different lengths (%lld and %lld)",
                                 (long long)len, (long long)x->dims[ax]);
            len = x->dims[ax];
        }
        return scan_run(c, body, &io, len, c->out, c->out + N, 1);
    }
    /* opset 8: batch axis 0 everywhere, scan axis 1 of the inputs */
    const kiln_tensor *lens = kiln__in(c, 0);
    int64_t batch = ins[0]->dims[0];
    for (int i = 0; i < N + M; i++)
        if (ins[i]->ndim < 1 + (i >= N) || ins[i]->dims[0] != batch)
            return kiln__err(KILN_E_SHAPE, "input %d lacks the batch axis of size %lld", i + 1,
                             (long long)batch);
    int64_t len = ins[N]->dims[1];
    if (lens) {
        for (int64_t b = 0; b < kiln__n(lens) && b < batch; b++)
            if (kiln__ld_i(lens->dtype, lens->data, b) != len)
                return kiln__err(KILN_E_UNSUPPORTED, "sequence_lens shorter than the scan axis");
    }
    /* outputs: states (batch, ...state), scans (batch, len, ...) from the first batch's shapes */
    kiln_tensor sv[MAX_BODY_IO], *state_out[MAX_BODY_IO], *scan_out[MAX_BODY_IO];
    kiln_tensor bin[MAX_BODY_IO];
    const kiln_tensor *bins[MAX_BODY_IO];
    for (int j = 0; j < N; j++)
        KILN__TRY(kiln__out_alloc(c, j, ins[j]->dtype, ins[j]->ndim, ins[j]->dims));
    for (int64_t b = 0; b < batch; b++) {
        for (int i = 0; i < N + M; i++) {
            bin[i] = drop_axis(ins[i], 0, b);
            bins[i] = &bin[i];
        }
        for (int m = 0; m < M; m++) in_axis[m] = 0;
        scan_io bio = {N, M, K, bins, bins + N, in_axis, in_dir, out_axis, out_dir};
        for (int j = 0; j < N; j++) {
            sv[j] = drop_axis(c->out[j], 0, b);
            state_out[j] = c->out[j] ? &sv[j] : NULL;
        }
        kiln_tensor so[MAX_BODY_IO];
        if (b > 0)
            for (int k = 0; k < K; k++) {
                so[k] = drop_axis(c->out[N + k], 0, b);
                scan_out[k] = c->out[N + k] ? &so[k] : NULL;
            }
        if (b == 0) {
            /* first batch: run into temporary outputs, then allocate the batched ones */
            kiln_status s = KILN_OK;
            kiln__kctx sub = *c;
            kiln_tensor *outs[MAX_BODY_IO];
            kiln_tensor hdr[MAX_BODY_IO];
            memset(hdr, 0, sizeof(kiln_tensor) * (size_t)(N + K));
            for (int i = 0; i < N + K; i++) outs[i] = &hdr[i];
            sub.out = outs;
            s = scan_run(&sub, body, &bio, len, outs, outs + N, 1);
            c->state = sub.state; /* keep the body runner created on the copy */
            for (int j = 0; j < N && s == KILN_OK; j++)
                if (state_out[j]) s = strided_copy(state_out[j], &hdr[j]);
            for (int k = 0; k < K && s == KILN_OK; k++) {
                int64_t dims[KILN_MAX_DIMS];
                dims[0] = batch;
                for (int d = 0; d < hdr[N + k].ndim; d++) dims[d + 1] = hdr[N + k].dims[d];
                s = kiln__out_alloc(c, N + k, hdr[N + k].dtype, hdr[N + k].ndim + 1, dims);
                if (s == KILN_OK && c->out[N + k]) {
                    kiln_tensor d0 = drop_axis(c->out[N + k], 0, 0);
                    s = strided_copy(&d0, &hdr[N + k]);
                }
            }
            for (int i = 0; i < N + K; i++) kiln__tensor_release(&hdr[i]);
            KILN__TRY(s);
            continue;
        }
        KILN__TRY(scan_run(c, body, &bio, len, state_out, scan_out, 0));
    }
    return KILN_OK;
}

/* ---- SequenceMap -------------------------------------------------------------------- */

kiln_status kiln__infer_SequenceMap(kiln__kctx *c) { return KILN_OK; }

/* Checks the declared inputs of SequenceMap: input 0 a sequence of n
 * tensors, the others sequences of n tensors or tensors. */
static kiln_status seqmap_inputs(const kiln__kctx *c, int n_decl, int64_t *n) {
    char buf[128];
    const kiln_tensor *seq = kiln__in(c, 0);
    if (!seq || seq->dtype != KILN__DTYPE_SEQUENCE)
        return kiln__err(KILN_E_TYPE, "input 'input_sequence' must be a sequence, got %s",
                         seq ? kiln__type_str(seq, buf, sizeof buf) : "nothing");
    *n = seq->dims[0];
    for (int j = 1; j < n_decl; j++) {
        const kiln_tensor *x = kiln__in(c, j);
        if (!x) return kiln__err(KILN_E_FORMAT, "input %d is missing", j);
        if (x->dtype == KILN__DTYPE_OPTIONAL)
            return kiln__err(KILN_E_TYPE, "input %d must be a tensor or a sequence, got %s", j,
                             kiln__type_str(x, buf, sizeof buf));
        if (x->dtype == KILN__DTYPE_SEQUENCE && x->dims[0] != *n)
            return kiln__err(KILN_E_SHAPE, "input %d is a sequence of length %lld, input 0 has "
                             "length %lld", j, (long long)x->dims[0], (long long)*n);
    }
    for (int j = 0; j < n_decl; j++) { /* items are fed to the body as tensors */
        const kiln_tensor *x = c->in[j];
        for (int64_t i = 0; x->dtype == KILN__DTYPE_SEQUENCE && i < x->dims[0]; i++) {
            const kiln_tensor *item = kiln__container_item(x, i);
            if (!item || kiln__is_container(item->dtype))
                return kiln__err(KILN_E_INVAL, "input %d: item %lld is %s", j, (long long)i,
                                 item ? "not a tensor" : "missing");
        }
    }
    return KILN_OK;
}

/* Appends a copy of body output y as item i of SequenceMap output k. */
static kiln_status seqmap_collect(kiln__kctx *c, int k, int64_t i, const kiln_tensor *y) {
    char buf[128];
    kiln_tensor *out = kiln__out(c, k);
    if (!out) return KILN_OK;
    if (kiln__is_container(y->dtype))
        return kiln__err(KILN_E_UNSUPPORTED, "body output %d is %s; kiln's SequenceMap outputs "
                         "sequences of tensors", k, kiln__type_str(y, buf, sizeof buf));
    if (i > 0 && y->dtype != out->elem)
        return kiln__err(KILN_E_TYPE, "body output %d is %s for item %lld but %s for item 0", k,
                         kiln_dtype_name(y->dtype), (long long)i, kiln_dtype_name(out->elem));
    kiln_tensor *copy;
    KILN__TRY(kiln_tensor_copy(y, KILN_DTYPE_UNDEFINED, &copy));
    out->elem = y->dtype;
    kiln__container_set(out, i, copy);
    return KILN_OK;
}

// input_sequence: sequence of n tensors; additional inputs: sequences of n
// tensors (taken item by item) or tensors (the same for every item);
// body(x_0, x_1, ...) -> (y_0, ..., y_m); outputs: m sequences of n tensors
kiln_status kiln__ref_SequenceMap(kiln__kctx *c) {
    const kiln_graph *body = kiln__attr_graph(c->node, "body");
    if (!body) return kiln__err(KILN_E_FORMAT, "attribute 'body' is required");
    int n_decl = c->node->n_in - c->node->n_implicit;
    if (body->n_inputs != n_decl || body->n_outputs != c->n_out || n_decl > MAX_BODY_IO)
        return kiln__err(KILN_E_FORMAT, "body has %d inputs and %d outputs, the node %d and %d",
                         body->n_inputs, body->n_outputs, n_decl, c->n_out);
    int64_t n = 0;
    KILN__TRY(seqmap_inputs(c, n_decl, &n));
    for (int k = 0; k < c->n_out; k++) {
        kiln_dtype elem = body->values[body->outputs[k]].dtype; /* kept when n is 0 */
        KILN__TRY(kiln__out_container(c, k, KILN__DTYPE_SEQUENCE, elem, n));
        if (c->out[k]) KILN__TRY(kiln__tensor_reserve(c->out[k]));
    }
    const kiln_tensor *in[MAX_BODY_IO];
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < n_decl; j++)
            in[j] = c->in[j]->dtype == KILN__DTYPE_SEQUENCE ? kiln__container_item(c->in[j], i) : c->in[j];
        kiln__runner *r;
        kiln_status s = run_body(c, body, in, n_decl, &r);
        for (int k = 0; k < c->n_out && s == KILN_OK; k++)
            s = seqmap_collect(c, k, i, kiln__runner_output(r, k));
        if (s != KILN_OK) return kiln__err_prefix(s, "item %lld", (long long)i);
    }
    return KILN_OK;
}
