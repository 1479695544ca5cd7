/* src/graph/exec.c: building plans (shape inference, folding, liveness-based
 * arena placement) and running them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/device.h"
#include "graph/exec.h"

enum {
    VS_UNKNOWN = 0,
    VS_CONST, /* data known at plan time (initializer or folded), never written at run */
    VS_INPUT, /* graph input: arena slot filled by the run */
    VS_ARENA, /* static shape, arena slot */
    VS_HEAP,  /* static shape, own heap storage (strings) */
    VS_DYN,   /* shape known only at run time: grow-only heap storage */
};

#define MAX_SUBGRAPHS 4
typedef struct substate {
    int n;
    const kiln_graph *body[MAX_SUBGRAPHS];
    kiln__runner *runner[MAX_SUBGRAPHS];
} substate;

typedef struct step {
    int node;
    int dynamic; /* re-infers shapes and (re)allocates outputs when run */
    int folded;  /* evaluated at plan time */
    const kiln__algo *algo; /* chosen algorithm; NULL: the reference kernel */
    int inline_run;         /* parallel kernel with too little work to wake the pool */
    kiln__kctx ctx;
    size_t scratch_off;  /* arena offset of static scratch */
    void *dyn_scratch;   /* dynamic steps: grow-only scratch */
    size_t dyn_scratch_cap;
    /* device steps (algo flagged KILN_ALGOF_CUDA): ctx.in/out point at these
     * headers, whose data are device addresses */
    int on_device;
    kiln_tensor *dev_io;  /* n_in + n_out headers (owned) */
    kiln_tensor **dev_ptrs;
    /* copies before the step: xfer[xfer_at .. + n_up) values to upload (device
     * step), then n_down values to download (CPU step) */
    int xfer_at, n_up, n_down;
} step;

struct kiln__plan {
    kiln__runner *r;
    int n_sig;
    int64_t *sig;
    int nv;
    kiln_tensor *vals;   /* one header per value of r->g */
    unsigned char *vs;   /* VS_* per value */
    size_t *off;         /* arena offset per value (VS_INPUT/VS_ARENA) */
    int ns;
    step *steps;
    kiln_tensor **ptrs;  /* backing store of every step's in/out arrays */
    kiln__arena arena;
    /* with device steps: the device mirror of the arena (same offsets), device
     * copies of the constants device steps read, and the copy lists */
    kiln__device *dev;   /* the runner's; NULL: a CPU-only plan */
    uint8_t *dbase;
    void **dconst;       /* per value, or NULL */
    int *xfer;           /* value ids; steps' slices, then the final downloads */
    int n_xfer, final_at;
    void **pinned;       /* starts of the page-locked arena ranges the copies use */
    int n_pinned;
    unsigned char *direct; /* per value: a graph input only device steps read, uploaded
                              by the run straight from the caller's tensor */
};

/* ---- signatures -------------------------------------------------------------- */

static int n_positions(const kiln_graph *g) { return g->n_inputs + g->n_outer; }
static int position_value(const kiln_graph *g, int i) {
    return i < g->n_inputs ? g->inputs[i] : g->outer[i - g->n_inputs];
}

/* Signature of the inputs, per position: absent -1; a tensor dtype, ndim,
 * dims...; a sequence/optional its kind and element dtype (not its length:
 * containers are always handled at run time). */
static int sig_len(const kiln_tensor *t) {
    return !t ? 1 : kiln__is_container(t->dtype) ? 2 : 2 + t->ndim;
}

static void sig_write(const kiln_tensor *t, int64_t *s) {
    if (!t) {
        s[0] = -1;
        return;
    }
    s[0] = t->dtype;
    if (kiln__is_container(t->dtype)) {
        s[1] = t->elem;
        return;
    }
    s[1] = t->ndim;
    for (int d = 0; d < t->ndim; d++) s[2 + d] = t->dims[d];
}

static int64_t *make_sig(int n, const kiln_tensor *const *in, int *len) {
    int k = 0;
    for (int i = 0; i < n; i++) k += sig_len(in[i]);
    int64_t *s = malloc(((size_t)k + 1) * sizeof *s);
    if (!s) return NULL;
    k = 0;
    for (int i = 0; i < n; i++) {
        sig_write(in[i], s + k);
        k += sig_len(in[i]);
    }
    *len = k;
    return s;
}

/* 1 if the inputs have the signature sig (as make_sig would write it). */
static int sig_matches(const int64_t *sig, int len, int n, const kiln_tensor *const *in) {
    int64_t one[2 + KILN_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < n; i++) {
        int l = sig_len(in[i]);
        if (k + l > len) return 0;
        sig_write(in[i], one);
        if (memcmp(one, sig + k, (size_t)l * sizeof *one) != 0) return 0;
        k += l;
    }
    return k == len;
}

/* ---- plan lifetime ----------------------------------------------------------- */

static void plan_free(kiln__plan *p) {
    if (!p) return;
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        substate *ss = st->ctx.state;
        if (ss) {
            for (int j = 0; j < ss->n; j++) {
                kiln__runner_free(ss->runner[j]);
                free(ss->runner[j]);
            }
            free(ss);
        }
        kiln__aligned_free(st->dyn_scratch);
        if (st->algo && st->algo->release && st->ctx.kstate) st->algo->release(st->ctx.kstate);
        free(st->dev_io);
        free(st->dev_ptrs);
    }
    if (p->dev) {
        for (int v = 0; p->dconst && v < p->nv; v++) kiln__device_free(p->dev, p->dconst[v]);
        kiln__device_free(p->dev, p->dbase);
        for (int i = 0; i < p->n_pinned; i++) kiln__device_host_unregister(p->dev, p->pinned[i]);
    }
    free(p->pinned);
    free(p->direct);
    free(p->dconst);
    free(p->xfer);
    for (int v = 0; v < p->nv; v++)
        if (p->vals[v].owns) kiln__tensor_release(&p->vals[v]);
    kiln__arena_free(&p->arena);
    free(p->sig), free(p->vals), free(p->vs), free(p->off), free(p->steps), free(p->ptrs);
    free(p);
}

/* ---- building ------------------------------------------------------------------ */

static kiln_status node_error(const kiln__plan *p, const kiln__node *n, kiln_status s) {
    char d[256];
    const kiln_graph *root = kiln__graph_root(p->r->g);
    if (root->path)
        return kiln__err_prefix(s, "%s: %s, opset %d", root->path, kiln__node_desc(n, d, sizeof d),
                                n->opset);
    return kiln__err_prefix(s, "%s, opset %d", kiln__node_desc(n, d, sizeof d), n->opset);
}

static kiln_status check_arity(const kiln__node *n, const kiln__op_def *def) {
    int n_in = n->n_in - n->n_implicit;
    int last_in = n_in; /* trailing omitted optional inputs do not count */
    while (last_in > 0 && n->in[last_in - 1] < 0) last_in--;
    if (last_in < def->min_in || (def->max_in >= 0 && last_in > def->max_in) ||
        n->n_out > def->max_out || n->n_out < 1)
        return kiln__err(KILN_E_FORMAT, "has %d inputs and %d outputs; the op takes %d..%d inputs "
                         "and %d..%d outputs", last_in, n->n_out, def->min_in, def->max_in,
                         def->min_out, def->max_out);
    /* required inputs; every input of a variadic op (Concat, Sum, Einsum, ...)
     * is required, except for control flow, whose kernels check their own */
    int required = def->max_in < 0 && !(def->flags & KILN_OPF_ALLOC_OUT) ? n_in : def->min_in;
    for (int k = 0; k < required && k < n_in; k++)
        if (n->in[k] < 0) return kiln__err(KILN_E_FORMAT, "required input %d is missing", k);
    /* required outputs too (fuzzfix): kernels write c->out[k] for k < min_out
     * without a NULL check (an output named "" is omitted) */
    for (int k = 0; k < def->min_out; k++)
        if (k >= n->n_out || n->out[k] < 0)
            return kiln__err(KILN_E_FORMAT, "required output %d is missing", k);
    return KILN_OK;
}

/* Refuses sequences/optionals as inputs of ops that only take tensors.
 * Inputs whose values are not known yet (dynamic) are checked at run time. */
static kiln_status check_containers(const kiln__kctx *c, const kiln__op_def *def) {
    if (def->flags & KILN_OPF_CONTAINERS) return KILN_OK;
    for (int k = 0; k < c->n_in; k++) {
        const kiln_tensor *t = c->in[k];
        if (t && kiln__is_container(t->dtype)) {
            char ty[128];
            return kiln__err(KILN_E_TYPE, "input %d is a %s; the op takes tensors only", k,
                             kiln__type_str(t, ty, sizeof ty));
        }
    }
    return KILN_OK;
}

/* Runs step st's kernel: its algorithm, or the reference kernel def; on the
 * pool when parallel (else inline, as when folding at plan time). */
static kiln_status run_kernel(step *st, const kiln__op_def *def, int parallel) {
    if (!parallel || st->inline_run) {
        if (st->inline_run && st->algo) {
            st->ctx.ith = 0;
            st->ctx.nth = 1;
            return st->algo->run(&st->ctx);
        }
        st->ctx.ith = 0;
        st->ctx.nth = 1;
        return def->ref(&st->ctx);
    }
    return kiln__run_node(st->algo, def, &st->ctx);
}

/* Waking the pool costs some microseconds per node (more on a busy
 * machine); a kernel that splits its work by ith/nth but has less than this
 * much to do runs on the caller alone. */
#define INLINE_SECONDS 10e-6
#define INLINE_BYTES ((size_t)32 << 10)

/* 1 if st is a parallel kernel with too little work for the pool: an
 * algorithm whose one-thread cost estimate is below INLINE_SECONDS, or a
 * reference kernel whose inputs and outputs total under INLINE_BYTES. Algorithms that
 * drive the pool themselves decide for themselves. */
static int small_work(step *st, const kiln__op_def *def) {
    kiln__kctx *c = &st->ctx;
    if (c->nth_plan <= 1) return 0;
    if (st->algo) {
        if (!(st->algo->flags & KILN_OPF_PARALLEL) || !st->algo->cost) return 0;
        int nth = c->nth_plan;
        c->nth_plan = 1;
        double t = st->algo->cost(c);
        c->nth_plan = nth;
        return t < INLINE_SECONDS;
    }
    if (!(def->flags & KILN_OPF_PARALLEL)) return 0;
    size_t bytes = 0;
    for (int k = 0; k < c->n_in; k++)
        if (c->in[k] && !kiln__is_container(c->in[k]->dtype)) bytes += kiln__tensor_bytes(c->in[k]);
    for (int k = 0; k < c->n_out; k++)
        if (c->out[k]) bytes += kiln__tensor_bytes(c->out[k]);
    return bytes < INLINE_BYTES;
}

typedef struct buf {
    size_t size;
    int first, last; /* step range the buffer is live in (inclusive) */
    size_t *off;     /* where to store the offset */
} buf;

static int cmp_buf_size(const void *a, const void *b) {
    const buf *x = *(buf *const *)a, *y = *(buf *const *)b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

typedef struct span {
    size_t lo, hi;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Greedy placement: largest first, each at the lowest offset that does not
 * overlap a placed buffer whose live range intersects. Returns arena size. */
static kiln_status place_buffers(buf *bufs, int nb, size_t *total) {
    buf **order = malloc(((size_t)nb + 1) * sizeof *order);
    buf **placed = malloc(((size_t)nb + 1) * sizeof *placed);
    span *sp = malloc(((size_t)nb + 1) * sizeof *sp);
    if (!order || !placed || !sp) {
        free(order), free(placed), free(sp);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < nb; i++) order[i] = &bufs[i];
    qsort(order, (size_t)nb, sizeof *order, cmp_buf_size);
    int np = 0;
    size_t end = 0;
    for (int i = 0; i < nb; i++) {
        buf *b = order[i];
        int ns = 0;
        for (int j = 0; j < np; j++)
            if (placed[j]->first <= b->last && b->first <= placed[j]->last)
                sp[ns++] = (span){*placed[j]->off, *placed[j]->off + placed[j]->size};
        qsort(sp, (size_t)ns, sizeof *sp, cmp_span);
        size_t off = 0;
        for (int j = 0; j < ns; j++) {
            if (sp[j].lo >= off + b->size) break;
            if (sp[j].hi > off) off = sp[j].hi;
        }
        *b->off = off;
        if (off + b->size > end) end = off + b->size;
        placed[np++] = b;
    }
    free(order), free(placed), free(sp);
    *total = end;
    return KILN_OK;
}

/* Values that own what their elements point to live on the heap, not in the arena. */
static int heap_value(kiln_dtype dt) { return dt == KILN_DTYPE_STRING || kiln__is_container(dt); }

/* A node's shapes cannot be planned (status s, message set): in shape
 * inference its outputs become unknown and KILN_OK is returned (the caller
 * skips the node); otherwise the error, prefixed with the node. */
static void mark_unknown(kiln__plan *p, step *st, const kiln__node *nd);
static kiln_status plan_failure(kiln__plan *p, step *st, const kiln__node *nd, kiln_status s,
                                int infer_only) {
    if (!infer_only) return node_error(p, nd, s);
    mark_unknown(p, st, nd);
    return KILN_OK;
}

/* The node runs with shapes known only at run time: its outputs are dynamic. */
static void mark_unknown(kiln__plan *p, step *st, const kiln__node *nd) {
    st->dynamic = 1;
    for (int k = 0; k < nd->n_out; k++) {
        int v = nd->out[k];
        if (v < 0) continue;
        if (p->vals[v].owns) kiln__tensor_release(&p->vals[v]);
        p->vs[v] = VS_DYN;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- device steps ------------------------------------------------------------- */

/* Device address of value v for a device step: its slot in the device
 * arena, or its device copy when it is a constant (uploaded on first use). */
static kiln_status device_value(kiln__plan *p, int v, void **out) {
    if (p->vs[v] == VS_ARENA || p->vs[v] == VS_INPUT) {
        *out = p->dbase + p->off[v];
        return KILN_OK;
    }
    if (p->vs[v] != VS_CONST)
        return kiln__err(KILN_E_INTERNAL, "a GPU kernel was given a value whose storage the plan "
                         "keeps on the host only");
    if (!p->dconst[v]) {
        size_t bytes = kiln__tensor_bytes(&p->vals[v]);
        KILN__TRY(kiln__device_alloc(p->dev, bytes, &p->dconst[v]));
        KILN__TRY(kiln__device_upload(p->dev, p->dconst[v], p->vals[v].data, bytes));
    }
    *out = p->dconst[v];
    return KILN_OK;
}

/* Page-locks the host side of the plan's copies (their arena bytes, merged
 * into ranges at least two pages apart, so no page is locked twice): the
 * copies then run as DMA straight from the arena. Where locking fails they
 * stay pageable copies. */
static kiln_status pin_copies(kiln__plan *p) {
    span *sp = malloc(((size_t)p->n_xfer + 1) * sizeof *sp);
    p->pinned = malloc(((size_t)p->n_xfer + 1) * sizeof *p->pinned);
    if (!sp || !p->pinned) {
        free(sp);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    int n = 0;
    for (int j = 0; j < p->n_xfer; j++) {
        int v = p->xfer[j];
        size_t bytes = kiln__tensor_bytes(&p->vals[v]);
        if (bytes) sp[n++] = (span){p->off[v], p->off[v] + bytes};
    }
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    const size_t gap = 2 * (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n;) {
        span m = sp[i++];
        while (i < n && sp[i].lo <= m.hi + gap) {
            if (sp[i].hi > m.hi) m.hi = sp[i].hi;
            i++;
        }
        void *at = p->arena.base + m.lo;
        if (kiln__device_host_register(p->dev, at, m.hi - m.lo)) p->pinned[p->n_pinned++] = at;
    }
    free(sp);
    return KILN_OK;
}

/* Gives the device steps (those whose algorithm is flagged KILN_ALGOF_CUDA)
 * their device tensors: the device arena mirrors the host arena (total
 * bytes, same offsets); constants get device copies. Then, walking the
 * steps in order and tracking on which side each value is valid, lists the
 * copies: before a device step the inputs valid only on the host (uploads),
 * before a CPU step those valid only on the device (downloads), after the
 * last step the graph outputs still on the device. A graph input that only
 * device steps read is not copied into the host arena at all: the run
 * uploads it from the caller's tensor (p->direct). */
static kiln_status plan_device(kiln__plan *p, size_t total) {
    const kiln_graph *g = p->r->g;
    int any = 0;
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        st->on_device = !st->folded && st->algo && (st->algo->flags & KILN_ALGOF_CUDA);
        any |= st->on_device;
    }
    if (!any) return KILN_OK;
    p->dev = p->r->sel.dev;
    size_t cap = (size_t)g->n_outputs + 1;
    for (int i = 0; i < p->ns; i++) cap += (size_t)g->nodes[i].n_in;
    p->dconst = calloc((size_t)p->nv + 1, sizeof *p->dconst);
    p->xfer = malloc(cap * sizeof *p->xfer);
    p->direct = calloc((size_t)p->nv + 1, 1);
    unsigned char *on_host = malloc((size_t)p->nv + 1), *on_dev = calloc((size_t)p->nv + 1, 1);
    kiln_status s = KILN_OK;
    if (!p->dconst || !p->xfer || !p->direct || !on_host || !on_dev) {
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto done;
    }
    memset(on_host, 1, (size_t)p->nv + 1);
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        p->direct[v] = p->vs[v] == VS_INPUT && !g->values[v].is_output;
    }
    for (int i = 0; i < p->ns; i++) {
        const kiln__node *nd = &g->nodes[i];
        if (p->steps[i].folded || p->steps[i].on_device) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0) p->direct[nd->in[k]] = 0;
    }
    for (int v = 0; v < p->nv; v++)
        if (p->direct[v]) on_dev[v] = 1; /* there from the start of the run */
    if ((s = kiln__device_alloc(p->dev, total ? total : 64, (void **)&p->dbase)) != KILN_OK) goto done;
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        if (st->folded) continue;
        const kiln__node *nd = &g->nodes[i];
        kiln__kctx *c = &st->ctx;
        st->xfer_at = p->n_xfer;
        for (int k = 0; k < nd->n_in; k++) {
            int v = nd->in[k];
            if (v < 0 || !c->in[k] || (p->vs[v] != VS_ARENA && p->vs[v] != VS_INPUT)) continue;
            unsigned char *valid = st->on_device ? on_dev : on_host;
            if (valid[v]) continue;
            p->xfer[p->n_xfer++] = v;
            valid[v] = 1;
            if (st->on_device) st->n_up++;
            else st->n_down++;
        }
        for (int k = 0; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (v < 0) continue;
            on_dev[v] = (unsigned char)st->on_device;
            on_host[v] = (unsigned char)!st->on_device;
        }
        if (!st->on_device) continue;
        int nio = c->n_in + c->n_out;
        st->dev_io = calloc((size_t)nio + 1, sizeof *st->dev_io);
        st->dev_ptrs = calloc((size_t)nio + 1, sizeof *st->dev_ptrs);
        if (!st->dev_io || !st->dev_ptrs) {
            s = kiln__err(KILN_E_NOMEM, "out of memory");
            goto done;
        }
        for (int k = 0; k < nio; k++) {
            kiln_tensor *t = k < c->n_in ? c->in[k] : c->out[k - c->n_in];
            int v = k < c->n_in ? nd->in[k] : nd->out[k - c->n_in];
            if (!t) continue;
            st->dev_io[k] = *t;
            st->dev_io[k].owns = 0;
            st->dev_io[k].cap = 0;
            if ((s = device_value(p, v, &st->dev_io[k].data)) != KILN_OK) {
                s = node_error(p, nd, s);
                goto done;
            }
            st->dev_ptrs[k] = &st->dev_io[k];
        }
        c->in = st->dev_ptrs;
        c->out = st->dev_ptrs + c->n_in;
        if (c->scratch_bytes) c->scratch = p->dbase + st->scratch_off;
    }
    p->final_at = p->n_xfer;
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if ((p->vs[v] == VS_ARENA || p->vs[v] == VS_INPUT) && !on_host[v]) {
            p->xfer[p->n_xfer++] = v;
            on_host[v] = 1;
        }
    }
    s = pin_copies(p);
done:
    free(on_host);
    free(on_dev);
    return s;
}

/* Runs the copies xfer[at .. at+n_up) host -> device and [at+n_up .. +n_down)
 * device -> host; waits for the downloads (the CPU reads them next). */
static kiln_status run_copies(kiln__plan *p, int at, int n_up, int n_down) {
    for (int j = at; j < at + n_up + n_down; j++) {
        int v = p->xfer[j];
        size_t bytes = kiln__tensor_bytes(&p->vals[v]);
        uint8_t *host = p->arena.base + p->off[v], *dev = p->dbase + p->off[v];
        KILN__TRY(j < at + n_up ? kiln__device_upload(p->dev, dev, host, bytes)
                                : kiln__device_download(p->dev, host, dev, bytes));
    }
    return n_down ? kiln__device_sync(p->dev) : KILN_OK;
}

/* Largest value folded during shape inference (symbolic probes can make
 * ConstantOfShape & co. large; the values are not needed, only shapes). */
#define INFER_FOLD_LIMIT ((size_t)16 << 20)

/* Builds the plan of r's graph for inputs in. infer_only: shape inference
 * only (see kiln__infer_types): a node whose shapes cannot be inferred makes
 * its outputs unknown instead of failing, and no arena is placed. */
static kiln_status plan_build(kiln__runner *r, int n, const kiln_tensor *const *in,
                              int infer_only, kiln__plan **out) {
    const kiln_graph *g = r->g;
    kiln_status s = KILN_OK;
    kiln__plan *p = calloc(1, sizeof *p);
    buf *bufs = NULL;
    size_t *scratch_off = NULL;
    int *alias = NULL;
    if (!p) return kiln__err(KILN_E_NOMEM, "out of memory");
    p->r = r;
    p->nv = g->n_values;
    p->ns = g->n_nodes;
    p->sig = make_sig(n, in, &p->n_sig);
    p->vals = calloc((size_t)p->nv + 1, sizeof *p->vals);
    p->vs = calloc((size_t)p->nv + 1, 1);
    p->off = calloc((size_t)p->nv + 1, sizeof *p->off);
    p->steps = calloc((size_t)p->ns + 1, sizeof *p->steps);
    size_t nptr = 0;
    for (int i = 0; i < g->n_nodes; i++) nptr += (size_t)g->nodes[i].n_in + g->nodes[i].n_out;
    p->ptrs = calloc(nptr + 1, sizeof *p->ptrs);
    if (!p->sig || !p->vals || !p->vs || !p->off || !p->steps || !p->ptrs) {
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto fail;
    }
    /* constants and inputs */
    for (int v = 0; v < g->n_values; v++) {
        const kiln__value *val = &g->values[v];
        if (val->init) {
            p->vals[v] = *val->init;
            p->vals[v].owns = 0;
            p->vals[v].cap = 0;
            p->vs[v] = VS_CONST;
        }
    }
    for (int i = 0; i < n; i++) {
        int v = position_value(g, i);
        if (!in[i]) continue;
        if (kiln__is_container(in[i]->dtype))
            s = kiln__container_init(&p->vals[v], in[i]->dtype, in[i]->elem, in[i]->dims[0]);
        else
            s = kiln__tensor_init(&p->vals[v], in[i]->dtype, in[i]->ndim, in[i]->dims);
        if (s != KILN_OK) goto fail;
        /* a container's length is not part of the plan: its consumers run dynamically */
        p->vs[v] = kiln__is_container(in[i]->dtype) ? VS_DYN : heap_value(in[i]->dtype) ? VS_HEAP : VS_INPUT;
    }
    size_t folded_bytes = 0; /* values computed at plan time */
    /* steps: infer, fold */
    kiln_tensor **pp = p->ptrs;
    for (int i = 0; i < g->n_nodes; i++) {
        const kiln__node *nd = &g->nodes[i];
        step *st = &p->steps[i];
        st->node = i;
        kiln__kctx *c = &st->ctx;
        c->node = nd;
        c->graph = g;
        c->opset = nd->opset;
        c->threads = r->threads;
        c->runner = r;
        c->pool = r->pool;
        c->nth_plan = r->threads;
        c->precision = r->sel.precision;
        c->n_in = nd->n_in;
        c->n_out = nd->n_out;
        c->in = pp;
        pp += nd->n_in;
        c->out = pp;
        pp += nd->n_out;
        for (int k = 0; k < nd->n_in; k++) c->in[k] = nd->in[k] >= 0 ? &p->vals[nd->in[k]] : NULL;
        for (int k = 0; k < nd->n_out; k++)
            c->out[k] = nd->out[k] >= 0 ? &p->vals[nd->out[k]] : NULL;
        if (nd->op < 0) s = kiln__err(KILN_E_UNSUPPORTED, "kiln has no kernel for this op");
        else s = check_arity(nd, &kiln__ops[nd->op]);
        if (s != KILN_OK) {
            if ((s = plan_failure(p, st, nd, s, infer_only)) != KILN_OK) goto fail;
            continue;
        }
        const kiln__op_def *def = &kiln__ops[nd->op];
        int all_const = 1, any_dyn = 0, any_unknown = 0;
        for (int k = 0; k < nd->n_in; k++) {
            int v = nd->in[k];
            if (v < 0) continue;
            if (p->vs[v] == VS_UNKNOWN) { /* optional input absent (e.g. subgraph capture) */
                c->in[k] = NULL;
                any_unknown = 1;
                continue;
            }
            if (p->vs[v] != VS_CONST) all_const = 0;
            if (p->vs[v] == VS_DYN) any_dyn = 1;
        }
        if (infer_only && any_unknown) { /* shape inference of a graph whose input type it
                                            could not probe (optional inputs): unknown */
            mark_unknown(p, st, nd);
            continue;
        }
        if ((s = check_containers(c, def)) != KILN_OK) {
            if ((s = plan_failure(p, st, nd, s, infer_only)) != KILN_OK) goto fail;
            continue;
        }
        int dynamic = any_dyn || (def->flags & KILN_OPF_ALLOC_OUT);
        if (!dynamic) {
            c->scratch_bytes = 0;
            s = def->infer(c);
            if (s == KILN__NEED_VALUE) {
                dynamic = 1;
                s = KILN_OK;
            } else if (s != KILN_OK) {
                if ((s = plan_failure(p, st, nd, s, infer_only)) != KILN_OK) goto fail;
                continue;
            }
        }
        if (dynamic) {
            mark_unknown(p, st, nd);
            continue;
        }
        int fold = !(def->flags & KILN_OPF_NOFOLD) &&
                   (all_const || (def->flags & KILN_OPF_SHAPE_ONLY));
        for (int k = 0; infer_only && fold && k < nd->n_out; k++)
            if (c->out[k] && kiln__tensor_bytes(c->out[k]) > INFER_FOLD_LIMIT) fold = 0;
        for (int k = 0; fold && k < nd->n_out; k++) {
            folded_bytes += c->out[k] ? kiln__tensor_bytes(c->out[k]) : 0;
            if (r->memory_limit && folded_bytes > r->memory_limit) {
                kiln__err(KILN_E_LIMIT, "constants folded at plan time exceed the session's "
                          "memory limit of %.1f MB", r->memory_limit / 1048576.0);
                s = node_error(p, nd, KILN_E_LIMIT);
                goto fail;
            }
        }
        for (int k = 0; k < nd->n_out; k++) {
            int v = nd->out[k];
            if (v < 0) continue;
            if (fold) {
                if ((s = kiln__tensor_reserve(&p->vals[v])) != KILN_OK) goto fail;
                p->vs[v] = VS_CONST;
            } else if (heap_value(p->vals[v].dtype)) {
                p->vs[v] = VS_HEAP; /* storage after planning: data stays unknown until then */
            } else {
                p->vs[v] = VS_ARENA;
            }
        }
        if (fold) {
            void *scratch = NULL;
            if (c->scratch_bytes && !(scratch = kiln__aligned_alloc(c->scratch_bytes))) {
                s = KILN_E_NOMEM;
                goto fail;
            }
            c->scratch = scratch;
            s = run_kernel(st, def, 0);
            c->scratch = NULL;
            kiln__aligned_free(scratch);
            if (s != KILN_OK) { /* in shape inference: e.g. a Reshape of probe dims that do not divide */
                if ((s = plan_failure(p, st, nd, s, infer_only)) != KILN_OK) goto fail;
                continue;
            }
            st->folded = 1;
        } else if (!infer_only) {
            if ((s = kiln__select_algo(&r->sel, c, &st->algo)) != KILN_OK) {
                s = node_error(p, nd, s);
                goto fail;
            }
            st->inline_run = small_work(st, def);
        }
    }
    if (infer_only) {
        *out = p;
        return KILN_OK;
    }
    for (int v = 0; v < p->nv; v++)
        if (p->vs[v] == VS_HEAP && (s = kiln__tensor_reserve(&p->vals[v])) != KILN_OK) goto fail;
    /* liveness of arena buffers */
    int *first = malloc(((size_t)p->nv + 1) * sizeof *first);
    int *last = malloc(((size_t)p->nv + 1) * sizeof *last);
    alias = malloc(((size_t)p->nv + 1) * sizeof *alias);
    bufs = calloc((size_t)p->nv + (size_t)p->ns + 1, sizeof *bufs);
    scratch_off = calloc((size_t)p->ns + 1, sizeof *scratch_off);
    if (!first || !last || !alias || !bufs || !scratch_off) {
        free(first), free(last);
        s = kiln__err(KILN_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int v = 0; v < p->nv; v++) {
        first[v] = p->vs[v] == VS_INPUT ? -1 : g->values[v].producer;
        last[v] = g->values[v].is_output ? p->ns : first[v];
    }
    for (int i = 0; i < p->ns; i++) {
        if (p->steps[i].folded) continue;
        const kiln__node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++)
            if (nd->in[k] >= 0 && last[nd->in[k]] < i) last[nd->in[k]] = i;
    }
    /* in-place: the output of an elementwise step takes the buffer of an input
     * that dies there; views (reshapes) share their input's buffer whether it
     * dies or not, its lifetime growing to cover theirs (alias[v]: the value
     * whose buffer v shares, or -1; a buffer is written only by its first
     * value, so the in-place rule, checking the root's lifetime, never writes
     * over a view that is still to be read) */
    for (int v = 0; v < p->nv; v++) alias[v] = -1;
    for (int i = 0; i < p->ns; i++) {
        const step *st = &p->steps[i];
        const kiln__node *nd = &g->nodes[i];
        const unsigned flags = kiln__ops[nd->op].flags;
        if (st->folded || st->dynamic || !(flags & (KILN_OPF_INPLACE | KILN_OPF_VIEW))) continue;
        int v = nd->out[0];
        if (v < 0 || p->vs[v] != VS_ARENA) continue;
        if (flags & KILN_OPF_VIEW) {
            int u = nd->in[0], root = u;
            if (u < 0 || (p->vs[u] != VS_ARENA && p->vs[u] != VS_INPUT) ||
                p->vals[u].dtype != p->vals[v].dtype || p->vals[v].dtype == KILN_DTYPE_STRING ||
                kiln__tensor_bytes(&p->vals[u]) != kiln__tensor_bytes(&p->vals[v]))
                continue;
            while (alias[root] >= 0) root = alias[root];
            alias[v] = root;
            if (last[v] > last[root]) last[root] = last[v];
            continue;
        }
        for (int k = 0; k < nd->n_in; k++) {
            int u = nd->in[k], root = u;
            if (u < 0 || (p->vs[u] != VS_ARENA && p->vs[u] != VS_INPUT)) continue;
            while (alias[root] >= 0) root = alias[root];
            if (last[root] != i || p->vals[u].dtype != p->vals[v].dtype ||
                p->vals[u].ndim != p->vals[v].ndim ||
                memcmp(p->vals[u].dims, p->vals[v].dims, (size_t)p->vals[v].ndim * sizeof(int64_t)))
                continue;
            alias[v] = root;
            last[root] = last[v] > i ? last[v] : i;
            break;
        }
    }
    int nb = 0;
    for (int v = 0; v < p->nv; v++)
        if ((p->vs[v] == VS_ARENA || p->vs[v] == VS_INPUT) && alias[v] < 0)
            bufs[nb++] = (buf){align64(kiln__tensor_bytes(&p->vals[v])), first[v], last[v], &p->off[v]};
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        if (!st->folded && !st->dynamic && st->ctx.scratch_bytes)
            bufs[nb++] = (buf){align64(st->ctx.scratch_bytes), i, i, &st->scratch_off};
    }
    free(first), free(last);
    size_t total = 0;
    if ((s = place_buffers(bufs, nb, &total)) != KILN_OK) goto fail;
    if (r->memory_limit && total > r->memory_limit) {
        s = kiln__err(KILN_E_LIMIT, "%s: the plan needs %.1f MB for its values, above the "
                      "session's memory limit of %.1f MB",
                      kiln__graph_root(g)->path ? kiln__graph_root(g)->path : "model",
                      total / 1048576.0, r->memory_limit / 1048576.0);
        goto fail;
    }
    if ((s = kiln__arena_reserve(&p->arena, total ? total : 64)) != KILN_OK) goto fail;
    for (int v = 0; v < p->nv; v++) {
        if (p->vs[v] != VS_ARENA && p->vs[v] != VS_INPUT) continue;
        int root = v;
        while (alias[root] >= 0) root = alias[root];
        p->off[v] = p->off[root];
        p->vals[v].data = p->arena.base + p->off[v];
    }
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        if (!st->folded && !st->dynamic && st->ctx.scratch_bytes)
            st->ctx.scratch = p->arena.base + st->scratch_off;
    }
    if ((s = plan_device(p, total)) != KILN_OK) goto fail;
    free(bufs);
    free(scratch_off);
    free(alias);
    *out = p;
    return KILN_OK;
fail:
    free(bufs);
    free(scratch_off);
    free(alias);
    plan_free(p);
    return s;
}

/* ---- running ------------------------------------------------------------------ */

static kiln_status run_dynamic_step(kiln__runner *r, kiln__plan *p, step *st,
                                    const kiln__op_def *def) {
    kiln__kctx *c = &st->ctx;
    const kiln__node *nd = c->node;
    for (int k = 0; k < nd->n_in; k++) /* absent optional values stay NULL */
        c->in[k] = nd->in[k] >= 0 && p->vs[nd->in[k]] != VS_UNKNOWN ? &p->vals[nd->in[k]] : NULL;
    KILN__TRY(check_containers(c, def));
    if (def->flags & KILN_OPF_ALLOC_OUT) {
        c->scratch = NULL;
        c->scratch_bytes = 0;
        return run_kernel(st, def, 1);
    }
    c->scratch_bytes = 0;
    kiln_status s = def->infer(c);
    if (s == KILN__NEED_VALUE)
        return kiln__err(KILN_E_INTERNAL, "shape inference needs a value that is missing at run time");
    if (s != KILN_OK) return s;
    for (int k = 0; k < nd->n_out; k++) {
        if (!c->out[k]) continue;
        if (r->memory_limit && kiln__tensor_bytes(c->out[k]) > r->memory_limit)
            return kiln__err(KILN_E_LIMIT, "output %d needs %.1f MB, above the session's memory "
                             "limit of %.1f MB", k, kiln__tensor_bytes(c->out[k]) / 1048576.0,
                             r->memory_limit / 1048576.0);
        KILN__TRY(kiln__tensor_reserve(c->out[k]));
    }
    if (c->scratch_bytes > st->dyn_scratch_cap) {
        kiln__aligned_free(st->dyn_scratch);
        st->dyn_scratch_cap = 0;
        if (!(st->dyn_scratch = kiln__aligned_alloc(c->scratch_bytes))) return KILN_E_NOMEM;
        st->dyn_scratch_cap = c->scratch_bytes;
    }
    c->scratch = st->dyn_scratch;
    return run_kernel(st, def, 1);
}

static kiln_status plan_run(kiln__runner *r, kiln__plan *p, int n, const kiln_tensor *const *in) {
    const kiln_graph *g = r->g;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue;
        int v = position_value(g, i);
        kiln_tensor *dst = &p->vals[v];
        if (kiln__is_container(in[i]->dtype)) { /* length may differ from the last run */
            KILN__TRY(kiln__container_init(dst, in[i]->dtype, in[i]->elem, in[i]->dims[0]));
            KILN__TRY(kiln__tensor_reserve(dst));
        }
        if (p->direct && p->direct[v] && kiln_tensor_is_contiguous(in[i])) {
            KILN__TRY(kiln__device_upload(p->dev, p->dbase + p->off[v], kiln_tensor_data(in[i]),
                                          kiln__tensor_bytes(dst)));
        } else if (p->direct && p->direct[v]) {
            kiln_tensor *c; /* a view: made contiguous, uploaded, then freed after the copy */
            KILN__TRY(kiln_tensor_copy(in[i], in[i]->dtype, &c));
            kiln_status s = kiln__device_upload(p->dev, p->dbase + p->off[v], kiln_tensor_data(c),
                                                kiln__tensor_bytes(dst));
            if (s == KILN_OK) s = kiln__device_sync(p->dev);
            kiln_tensor_free(c);
            KILN__TRY(s);
        } else if (kiln_tensor_is_contiguous(in[i]) || kiln__is_container(in[i]->dtype)) {
            KILN__TRY(kiln__tensor_copy_data(dst, in[i]));
        } else {
            kiln_tensor *c;
            KILN__TRY(kiln_tensor_copy(in[i], in[i]->dtype, &c));
            kiln_status s = kiln__tensor_copy_data(dst, c);
            kiln_tensor_free(c);
            KILN__TRY(s);
        }
    }
    for (int i = 0; i < p->ns; i++) {
        step *st = &p->steps[i];
        if (st->folded) continue;
        const kiln__node *nd = &g->nodes[i];
        const kiln__op_def *def = &kiln__ops[nd->op];
        double t0 = r->prof ? kiln__now_s() : 0; /* a step's time includes its copies */
        kiln_status s = KILN_OK;
        if (st->n_up + st->n_down) s = run_copies(p, st->xfer_at, st->n_up, st->n_down);
        if (s == KILN_OK) s = st->dynamic ? run_dynamic_step(r, p, st, def) : run_kernel(st, def, 1);
        if (s == KILN_OK && st->on_device && r->prof) s = kiln__device_sync(p->dev);
        if (r->prof) {
            r->prof[i].seconds += kiln__now_s() - t0;
            r->prof[i].calls++;
        }
        if (s != KILN_OK) return node_error(p, nd, s);
    }
    if (p->dev) { /* the outputs still on the device; waiting also reports a failed kernel */
        KILN__TRY(run_copies(p, p->final_at, 0, p->n_xfer - p->final_at));
        KILN__TRY(kiln__device_sync(p->dev));
    }
    return KILN_OK;
}

/* ---- runner -------------------------------------------------------------------- */

#define MAX_PLANS 16

kiln_status kiln__runner_init(kiln__runner *r, const kiln_graph *g, kiln__pool *pool,
                              int threads) {
    memset(r, 0, sizeof *r);
    r->g = g;
    if (pool) {
        r->pool = pool;
    } else {
        KILN__TRY(kiln__pool_create(threads, &r->pool));
        r->owns_pool = 1;
    }
    r->threads = kiln__pool_size(r->pool);
    r->plans = calloc(MAX_PLANS, sizeof *r->plans);
    if (!r->plans) {
        kiln__runner_free(r);
        return kiln__err(KILN_E_NOMEM, "out of memory");
    }
    return KILN_OK;
}

void kiln__runner_free(kiln__runner *r) {
    for (int i = 0; i < r->n_plans; i++) plan_free(r->plans[i]);
    free(r->plans);
    free(r->prof);
    if (r->owns_pool) kiln__pool_free(r->pool);
    memset(r, 0, sizeof *r);
}

/* The cached plan for inputs (moved to the front), or a new one. */
static kiln_status find_plan(kiln__runner *r, int n, const kiln_tensor *const *inputs, kiln__plan **out) {
    const kiln_graph *g = r->g;
    if (n != n_positions(g))
        return kiln__err(KILN_E_INTERNAL, "runner given %d inputs, graph has %d", n, n_positions(g));
    int found = -1;
    for (int i = 0; i < r->n_plans && found < 0; i++)
        if (sig_matches(r->plans[i]->sig, r->plans[i]->n_sig, n, inputs)) found = i;
    kiln__plan *p;
    if (found >= 0) {
        p = r->plans[found];
        memmove(r->plans + 1, r->plans, (size_t)found * sizeof *r->plans);
        r->plans[0] = p;
    } else {
        KILN__TRY(plan_build(r, n, inputs, 0, &p));
        if (r->n_plans == MAX_PLANS) {
            if (r->last == r->plans[MAX_PLANS - 1]) r->last = NULL;
            plan_free(r->plans[--r->n_plans]);
        }
        memmove(r->plans + 1, r->plans, (size_t)r->n_plans * sizeof *r->plans);
        r->plans[0] = p;
        r->n_plans++;
    }
    *out = p;
    return KILN_OK;
}

kiln_status kiln__runner_plan(kiln__runner *r, int n, const kiln_tensor *const *inputs) {
    kiln__plan *p;
    return find_plan(r, n, inputs, &p);
}

kiln_status kiln__runner_run(kiln__runner *r, int n, const kiln_tensor *const *inputs) {
    kiln__plan *p;
    KILN__TRY(find_plan(r, n, inputs, &p));
    r->last = NULL;
    KILN__TRY(plan_run(r, p, n, inputs));
    r->last = p;
    return KILN_OK;
}

kiln_tensor *kiln__runner_output(const kiln__runner *r, int i) {
    if (!r->last || i < 0 || i >= r->g->n_outputs) return NULL;
    return &r->last->vals[r->g->outputs[i]];
}

kiln_status kiln__runner_profile(kiln__runner *r, int on) {
    free(r->prof);
    r->prof = NULL;
    if (on && !(r->prof = calloc((size_t)r->g->n_nodes + 1, sizeof *r->prof)))
        return kiln__err(KILN_E_NOMEM, "out of memory");
    return KILN_OK;
}

int kiln__runner_folded(const kiln__runner *r, int node) {
    return r->last && node >= 0 && node < r->last->ns && r->last->steps[node].folded;
}

const kiln__algo *kiln__runner_algo(const kiln__runner *r, int node) {
    return r->last && node >= 0 && node < r->last->ns ? r->last->steps[node].algo : NULL;
}

double kiln__runner_flops(const kiln__runner *r, int node) {
    return r->last && node >= 0 && node < r->last->ns && r->last->steps[node].algo
               ? r->last->steps[node].ctx.flops
               : 0;
}

kiln_status kiln__infer_types(const kiln_graph *g, int n, const kiln_tensor *const *in,
                              kiln_tensor *types) {
    kiln__runner r;
    KILN__TRY(kiln__runner_init(&r, g, NULL, 1));
    kiln__plan *p;
    kiln_status s = plan_build(&r, n, in, 1, &p);
    if (s == KILN_OK) {
        for (int v = 0; v < g->n_values; v++) {
            memset(&types[v], 0, sizeof types[v]);
            if (p->vs[v] == VS_UNKNOWN || p->vs[v] == VS_DYN) {
                types[v].ndim = -1;
                continue;
            }
            types[v].dtype = p->vals[v].dtype;
            types[v].elem = p->vals[v].elem;
            types[v].ndim = p->vals[v].ndim;
            memcpy(types[v].dims, p->vals[v].dims, sizeof types[v].dims);
        }
        plan_free(p);
    }
    kiln__runner_free(&r);
    return s;
}

size_t kiln__runner_arena_bytes(const kiln__runner *r) { return r->last ? r->last->arena.size : 0; }
const void *kiln__runner_arena_base(const kiln__runner *r) { return r->last ? r->last->arena.base : NULL; }
int kiln__runner_num_plans(const kiln__runner *r) { return r->n_plans; }

kiln_status kiln__subgraph_runner(kiln__kctx *c, const kiln_graph *body, kiln__runner **out) {
    substate *ss = c->state;
    if (!ss) {
        if (!(ss = calloc(1, sizeof *ss))) return kiln__err(KILN_E_NOMEM, "out of memory");
        c->state = ss;
    }
    for (int i = 0; i < ss->n; i++)
        if (ss->body[i] == body) {
            *out = ss->runner[i];
            return KILN_OK;
        }
    if (ss->n == MAX_SUBGRAPHS) return kiln__err(KILN_E_LIMIT, "too many subgraphs on one node");
    kiln__runner *r = calloc(1, sizeof *r);
    if (!r) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln_status s = kiln__runner_init(r, body, c->runner->pool, c->threads);
    r->memory_limit = c->runner->memory_limit;
    r->sel = c->runner->sel;
    r->sel.dev = NULL; /* subgraph bodies (control flow) run on the CPU */
    if (s != KILN_OK) {
        free(r);
        return s;
    }
    ss->body[ss->n] = body;
    ss->runner[ss->n++] = r;
    *out = r;
    return KILN_OK;
}
