/* src/ops/op.h: the op table and the kernel interface.
 *
 * Every op is one line in a file under src/ops/defs/ (ops.def includes them):
 *
 *   KILN_OP(Name, "domain", min_in, max_in, min_out, max_out, flags)
 *
 * Name is the ONNX op_type (a C identifier); domain is "" for ai.onnx. For
 * each line two functions must exist:
 *
 *   kiln_status kiln__infer_Name(kiln__kctx *c);  shape + dtype rule
 *   kiln_status kiln__ref_Name(kiln__kctx *c);    scalar reference kernel
 *
 * Infer reads c->in[i] (dtype and shape always; data only when the value is
 * known at plan time, e.g. initializers or folded shape computations, and
 * always when the node runs with dynamic shapes) and calls kiln__out_shape for
 * every present output. If it needs an input's values that are not known yet,
 * it returns KILN__NEED_VALUE (use KILN__NEED(c, i)); the node then gets its
 * shapes at run time. Infer must validate ranks, dtypes and attributes and
 * return an error (kiln__err) naming what is wrong; the executor prefixes the
 * node name and op type.
 *
 * The kernel reads c->in[i]->data and writes c->out[i]->data. All tensors are
 * contiguous. Outputs are already allocated with the shapes infer set, except
 * for ops flagged KILN_OPF_ALLOC_OUT, whose kernel calls kiln__out_alloc.
 * Kernels flagged KILN_OPF_PARALLEL are called on every thread with
 * c->ith/c->nth and split their own work (kiln__split); others run once with
 * ith = 0, nth = 1. Kernels may not malloc: scratch memory is requested by
 * infer (c->scratch_bytes) and given in c->scratch.
 */
#ifndef KILN_OP_H
#define KILN_OP_H

#include "core/core.h"
#include "core/elem.h"
#include "graph/ir.h"

/* Newest ai.onnx opset whose operator versions kiln implements (onnx 1.22). */
#define KILN__MAX_OPSET 27

/* Private status (positive, never escapes the executor). */
#define KILN__NEED_VALUE 1

#define KILN_OPF_PARALLEL 0x1  /* kernel splits work by ith/nth */
#define KILN_OPF_NOFOLD 0x2    /* never evaluate at plan time (random, ...) */
#define KILN_OPF_ALLOC_OUT 0x4 /* kernel allocates outputs (control flow) */
#define KILN_OPF_SHAPE_ONLY 0x8 /* kernel reads only input shapes (Shape, Size):
                                  folded at plan time whenever shapes are known */
#define KILN_OPF_CONTAINERS 0x10 /* takes sequences/optionals as inputs; every other op
                                    is refused them by the executor */
#define KILN_OPF_INPLACE 0x20 /* output 0 may share the buffer of an input of the same
                                 dtype and shape: element i of the output depends only on
                                 element i of that input, read before the write (unary
                                 and binary elementwise ops); algorithms for these ops
                                 must allow it too */
#define KILN_OPF_VIEW 0x40 /* output 0 is input 0's elements in the same order under
                              another shape (Reshape, Flatten, Squeeze, Unsqueeze): it
                              may share input 0's buffer, and the kernel then does
                              nothing */

struct kiln__runner;

typedef struct kiln__kctx {
    const kiln__node *node;
    const kiln_graph *graph; /* graph the node belongs to */
    int opset;               /* node->opset */
    int n_in, n_out;
    kiln_tensor **in;  /* NULL entries: omitted optional inputs */
    kiln_tensor **out; /* NULL entries: omitted optional outputs */
    int ith, nth;
    void *scratch;        /* kernel: scratch memory of scratch_bytes */
    size_t scratch_bytes; /* infer: bytes of scratch the kernel needs */
    int threads;          /* threads of the session (for subgraph sessions) */
    void *state;          /* per-node state owned by the executor (subgraph plans) */
    struct kiln__runner *runner; /* runner executing this node (subgraphs) */
    /* algorithms (algo.h) */
    kiln__pool *pool; /* the session's pool: non-parallel algorithms may drive it */
    int nth_plan;     /* threads the plan runs on (kiln__pool_size(pool)) */
    int precision;    /* kiln_precision of the session */
    void *kstate;     /* algorithm state from prepare (owned by the plan) */
    double flops;     /* operations of one run (from prepare; profiles) */
    int probe;        /* prepare: 1 when the planner only asks whether the algorithm
                         takes the node and what it costs (algo.h) */
    struct kiln__device *dev; /* KILN_ALGOF_CUDA algorithms: the device they run on (else NULL) */
    int variant;       /* prepare of an algorithm with variants (algo.h): in, the variant a
                          timing cache entry recorded (-1: none, choose); out, the one chosen */
    double variant_ms; /* ... out: > 0 when prepare measured its variants, the chosen one's ms */
} kiln__kctx;

typedef kiln_status (*kiln__op_fn)(kiln__kctx *c);

typedef struct kiln__op_def {
    const char *name;
    const char *domain;
    int min_in, max_in; /* max -1: variadic */
    int min_out, max_out;
    int flags;
    kiln__op_fn infer;
    kiln__op_fn ref;
} kiln__op_def;

/* The op table, from ops.def. */
extern const kiln__op_def kiln__ops[];
extern const int kiln__n_ops;

/* Index of (domain, op_type) in kiln__ops, or -1. "ai.onnx" == "". */
int kiln__op_find(const char *domain, const char *op_type);

#define KILN_OP(name, domain, min_in, max_in, min_out, max_out, flags) \
    kiln_status kiln__infer_##name(kiln__kctx *c);                       \
    kiln_status kiln__ref_##name(kiln__kctx *c);
#include "ops/ops.def"
#undef KILN_OP

/* ---- helpers for infer functions and kernels -------------------------- */

/* Input i if present (not omitted), else NULL. */
static inline kiln_tensor *kiln__in(const kiln__kctx *c, int i) {
    return i < c->n_in ? c->in[i] : NULL;
}
static inline kiln_tensor *kiln__out(const kiln__kctx *c, int i) {
    return i < c->n_out ? c->out[i] : NULL;
}
/* Returns KILN__NEED_VALUE from the caller if input i is present but its
 * values are not known. */
#define KILN__NEED(c, i)                                              \
    do {                                                              \
        if (kiln__in((c), (i)) && !kiln__in((c), (i))->data) return KILN__NEED_VALUE; \
    } while (0)

/* Infer: sets dtype and shape of output i (ignored if the output is omitted).
 * Fails on negative or huge dims. */
kiln_status kiln__out_shape(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims);
/* Infer: output i gets the dtype and shape of tensor t (containers too). */
kiln_status kiln__out_like(kiln__kctx *c, int i, const kiln_tensor *t);
/* Infer: output i is a sequence or optional (kind) of n tensors of dtype elem;
 * the kernel fills the slots with kiln__container_set. */
kiln_status kiln__out_container(kiln__kctx *c, int i, kiln_dtype kind, kiln_dtype elem, int64_t n);
/* Kernel of a KILN_OPF_ALLOC_OUT op: gives output i this shape and storage. */
kiln_status kiln__out_alloc(kiln__kctx *c, int i, kiln_dtype dt, int ndim, const int64_t *dims);
/* Kernel of a KILN_OPF_ALLOC_OUT op: output i becomes a copy of src (any
 * strides; containers deep-copied). */
kiln_status kiln__out_assign(kiln__kctx *c, int i, const kiln_tensor *src);

/* Reads a 1-D (or scalar) integer tensor (int32/int64) into v[0..n). Fails
 * (naming what) if it has the wrong dtype or more than max elements. */
kiln_status kiln__read_ints(const kiln_tensor *t, const char *what, int64_t *v, int max, int *n);
/* Same for a float tensor of any float dtype. */
kiln_status kiln__read_floats(const kiln_tensor *t, const char *what, double *v, int max, int *n);
/* Normalizes axis into [0, rank); fails naming the attribute if out of range. */
kiln_status kiln__axis(int64_t axis, int rank, const char *what, int *out);
/* Fails unless t's dtype is one of the listed ones (terminated by 0). */
kiln_status kiln__check_dtype(const kiln_tensor *t, const char *what, ...);
/* The float dtypes, as the (0-terminated) tail of a kiln__check_dtype call:
 *   kiln__check_dtype(x, "X", KILN__FLOAT_DTYPES) */
#define KILN__FLOAT_DTYPES KILN_DTYPE_F32, KILN_DTYPE_F64, KILN_DTYPE_F16, KILN_DTYPE_BF16, 0
/* Reads an integer list that older opsets give as attribute `name` and newer
 * ones as input number `input` (from_input selects which) into v[0..*n),
 * at most max values. *n = -1 when it is absent. Returns KILN__NEED_VALUE
 * when the input's values are not known yet (infer may call it directly). */
kiln_status kiln__ints_arg(const kiln__kctx *c, int from_input, const char *name, int input,
                           int64_t *v, int max, int *n);
/* Fails (naming input `what`, both shapes in the message) unless t has
 * exactly shape (ndim, dims). t NULL (an omitted input) passes. */
kiln_status kiln__check_shape(const kiln_tensor *t, const char *what, int ndim,
                              const int64_t *dims);
/* Fails (naming `what`) unless t is a float or integer tensor, or bool when
 * allow_bool. */
kiln_status kiln__check_numeric(const kiln_tensor *t, const char *what, int allow_bool);
/* Number of elements (contiguous). */
static inline int64_t kiln__n(const kiln_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

#endif
