/* src/cpu/ref/sequence.c: sequence and optional ops (SequenceEmpty,
 * SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase,
 * SequenceLength, SplitToSequence, ConcatFromSequence, Optional,
 * OptionalHasElement, OptionalGetElement). SequenceMap runs a body subgraph
 * and lives with the control-flow ops in control.c.
 *
 * Sequences and optionals are containers (core.h): a header of shape (n,)
 * whose slots own kiln_tensor copies. Their header (kind, element dtype,
 * length) is known at plan time; the tensors inside are not, so ops whose
 * output shape depends on an item (SequenceAt, ConcatFromSequence,
 * OptionalGetElement of an optional) ask for the value (KILN__NEED) and run
 * with dynamic shapes. Items are deep copies: container kernels allocate them
 * (the one allocation kernels may do, like strings).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/op.h"

/* ---- shared helpers --------------------------------------------------------------- */

static const char *kind_name(kiln_dtype kind) {
    return kind == KILN__DTYPE_SEQUENCE ? "a sequence" : kind == KILN__DTYPE_OPTIONAL ? "an optional"
                                                                                      : "a tensor";
}

/* Fails unless t (present) is of kind (a container kind, or 0 for a tensor). */
static kiln_status want_kind(const kiln_tensor *t, kiln_dtype kind, const char *what) {
    char buf[128];
    if (!t) return kiln__err(KILN_E_INVAL, "%s is missing", what);
    int is = kiln__is_container(t->dtype);
    if (kind ? t->dtype == kind : !is) return KILN_OK;
    return kiln__err(KILN_E_TYPE, "%s must be %s, got %s", what, kind_name(kind),
                     kiln__type_str(t, buf, sizeof buf));
}

/* Fails unless every slot of container t (with data) holds a value, and
 * every item of a sequence is a tensor: what kiln's own containers are, but
 * a tensor op fed a container by a hostile model may leave empty slots. */
static kiln_status want_items(const kiln_tensor *t, const char *what) {
    for (int64_t i = 0; t->data && i < t->dims[0]; i++) {
        const kiln_tensor *item = kiln__container_item(t, i);
        if (!item || (t->dtype == KILN__DTYPE_SEQUENCE && kiln__is_container(item->dtype)))
            return kiln__err(KILN_E_INVAL, "%s: item %" PRId64 " is %s", what, i,
                             item ? "not a tensor" : "missing");
    }
    return KILN_OK;
}

/* Fails unless a tensor of dtype dt may go into a sequence holding elem
 * (UNDEFINED: a sequence whose element dtype was never said). */
static kiln_status want_elem(kiln_dtype elem, const kiln_tensor *t, const char *what) {
    if (elem == KILN_DTYPE_UNDEFINED || t->dtype == elem) return KILN_OK;
    return kiln__err(KILN_E_TYPE, "%s has dtype %s, the sequence holds %s", what,
                     kiln_dtype_name(t->dtype), kiln_dtype_name(elem));
}

/* Puts a deep copy of src into slot i of container dst. */
static kiln_status set_copy(kiln_tensor *dst, int64_t i, const kiln_tensor *src) {
    kiln_tensor *copy;
    KILN__TRY(kiln_tensor_copy(src, KILN_DTYPE_UNDEFINED, &copy));
    kiln__container_set(dst, i, copy);
    return KILN_OK;
}

/* Reads the scalar position input t (int32/int64) against a sequence of
 * length n: valid positions are -n..n-1, or -n..n with at_end (insertion
 * after the last item). Writes the normalized position. */
static kiln_status read_position(const kiln_tensor *t, int64_t n, int at_end, int64_t *pos) {
    int64_t v;
    int cnt;
    KILN__TRY(kiln__read_ints(t, "input 'position'", &v, 1, &cnt)); /* older models: shape (1,) */
    if (cnt != 1) return kiln__err(KILN_E_SHAPE, "input 'position' must hold one integer, got none");
    int64_t hi = at_end ? n : n - 1;
    if (v < -n || v > hi)
        return kiln__err(KILN_E_RANGE, "position %" PRId64 " is out of range for a sequence of "
                         "length %" PRId64 " (valid: %" PRId64 "..%" PRId64 ")", v, n, -n, hi);
    *pos = v < 0 ? v + n : v;
    return KILN_OK;
}

/* Copies n elements of dtype dt from src[so..] to dst[doff..] (both
 * contiguous buffers); strings are duplicated. */
static kiln_status copy_elems(kiln_dtype dt, void *dst, int64_t doff, const void *src, int64_t so,
                              int64_t n) {
    if (dt != KILN_DTYPE_STRING) {
        size_t es = kiln_dtype_size(dt);
        if (n > 0) memcpy((char *)dst + doff * (int64_t)es, (const char *)src + so * (int64_t)es, (size_t)n * es);
        return KILN_OK;
    }
    char **d = (char **)dst + doff;
    char *const *s = (char *const *)src + so;
    for (int64_t i = 0; i < n; i++) {
        char *c = kiln__strdup(s[i] ? s[i] : "");
        if (!c) return KILN_E_NOMEM;
        free(d[i]);
        d[i] = c;
    }
    return KILN_OK;
}

static int64_t prod(const int64_t *dims, int from, int to) {
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= dims[i];
    return p;
}

/* ---- SequenceEmpty ------------------------------------------------------------------ */

// no inputs; output: sequence of 0 tensors of dtype 'dtype' (default float32)
kiln_status kiln__infer_SequenceEmpty(kiln__kctx *c) {
    int64_t dt = kiln__attr_i(c->node, "dtype", KILN_DTYPE_F32);
    if (!kiln_dtype_valid((int)dt) || dt == KILN_DTYPE_UNDEFINED)
        return kiln__err(KILN_E_UNSUPPORTED, "attribute 'dtype' is %" PRId64 ", not a dtype kiln has", dt);
    return kiln__out_container(c, 0, KILN__DTYPE_SEQUENCE, (kiln_dtype)dt, 0);
}

kiln_status kiln__ref_SequenceEmpty(kiln__kctx *c) { return KILN_OK; }

/* ---- SequenceConstruct -------------------------------------------------------------- */

// inputs: n >= 1 tensors of one dtype (any shapes); output: sequence of their copies
kiln_status kiln__infer_SequenceConstruct(kiln__kctx *c) {
    char what[64];
    for (int i = 0; i < c->n_in; i++) {
        snprintf(what, sizeof what, "input %d", i);
        KILN__TRY(want_kind(c->in[i], 0, what));
        KILN__TRY(want_elem(c->in[0]->dtype, c->in[i], what));
    }
    return kiln__out_container(c, 0, KILN__DTYPE_SEQUENCE, c->in[0]->dtype, c->n_in);
}

kiln_status kiln__ref_SequenceConstruct(kiln__kctx *c) {
    for (int i = 0; i < c->n_in; i++) KILN__TRY(set_copy(c->out[0], i, c->in[i]));
    return KILN_OK;
}

/* ---- SequenceInsert ----------------------------------------------------------------- */

// input_sequence: sequence of n tensors, tensor: one more of the same dtype,
// position: optional int scalar in -n..n (default n: append); output: n + 1 tensors
kiln_status kiln__infer_SequenceInsert(kiln__kctx *c) {
    const kiln_tensor *seq = c->in[0], *t = kiln__in(c, 1);
    KILN__TRY(want_kind(seq, KILN__DTYPE_SEQUENCE, "input 'input_sequence'"));
    KILN__TRY(want_kind(t, 0, "input 'tensor'"));
    KILN__TRY(want_elem(seq->elem, t, "input 'tensor'"));
    return kiln__out_container(c, 0, KILN__DTYPE_SEQUENCE, t->dtype, seq->dims[0] + 1);
}

kiln_status kiln__ref_SequenceInsert(kiln__kctx *c) {
    const kiln_tensor *seq = c->in[0], *t = c->in[1], *pos_t = kiln__in(c, 2);
    kiln_tensor *out = c->out[0];
    int64_t n = seq->dims[0], pos = n;
    KILN__TRY(want_items(seq, "input 'input_sequence'"));
    KILN__TRY(want_elem(seq->elem, t, "input 'tensor'"));
    if (pos_t) KILN__TRY(read_position(pos_t, n, 1, &pos));
    out->elem = t->dtype;
    for (int64_t i = 0, k = 0; i <= n; i++)
        KILN__TRY(set_copy(out, i, i == pos ? t : kiln__container_item(seq, k++)));
    return KILN_OK;
}

/* ---- SequenceAt --------------------------------------------------------------------- */

// input_sequence: sequence of n tensors, position: int scalar in -n..n-1;
// output: a copy of that tensor
kiln_status kiln__infer_SequenceAt(kiln__kctx *c) {
    KILN__TRY(want_kind(c->in[0], KILN__DTYPE_SEQUENCE, "input 'input_sequence'"));
    KILN__TRY(want_kind(c->in[1], 0, "input 'position'"));
    KILN__NEED(c, 0);
    KILN__NEED(c, 1);
    KILN__TRY(want_items(c->in[0], "input 'input_sequence'"));
    int64_t pos;
    KILN__TRY(read_position(c->in[1], c->in[0]->dims[0], 0, &pos));
    return kiln__out_like(c, 0, kiln__container_item(c->in[0], pos));
}

kiln_status kiln__ref_SequenceAt(kiln__kctx *c) {
    int64_t pos;
    KILN__TRY(want_items(c->in[0], "input 'input_sequence'"));
    KILN__TRY(read_position(c->in[1], c->in[0]->dims[0], 0, &pos));
    return kiln__tensor_copy_data(c->out[0], kiln__container_item(c->in[0], pos));
}

/* ---- SequenceErase ------------------------------------------------------------------ */

// input_sequence: sequence of n >= 1 tensors, position: optional int scalar in
// -n..n-1 (default -1: the last); output: the other n - 1 tensors
kiln_status kiln__infer_SequenceErase(kiln__kctx *c) {
    const kiln_tensor *seq = c->in[0];
    KILN__TRY(want_kind(seq, KILN__DTYPE_SEQUENCE, "input 'input_sequence'"));
    if (seq->dims[0] == 0) return kiln__err(KILN_E_RANGE, "cannot erase from an empty sequence");
    return kiln__out_container(c, 0, KILN__DTYPE_SEQUENCE, seq->elem, seq->dims[0] - 1);
}

kiln_status kiln__ref_SequenceErase(kiln__kctx *c) {
    const kiln_tensor *seq = c->in[0], *pos_t = kiln__in(c, 1);
    int64_t n = seq->dims[0], pos = n - 1;
    KILN__TRY(want_items(seq, "input 'input_sequence'"));
    if (pos_t) KILN__TRY(read_position(pos_t, n, 0, &pos));
    c->out[0]->elem = seq->elem;
    for (int64_t i = 0, k = 0; i < n; i++)
        if (i != pos) KILN__TRY(set_copy(c->out[0], k++, kiln__container_item(seq, i)));
    return KILN_OK;
}

/* ---- SequenceLength ----------------------------------------------------------------- */

// input_sequence: sequence of n tensors; output: n as an int64 scalar
kiln_status kiln__infer_SequenceLength(kiln__kctx *c) {
    KILN__TRY(want_kind(c->in[0], KILN__DTYPE_SEQUENCE, "input 'input_sequence'"));
    return kiln__out_shape(c, 0, KILN_DTYPE_I64, 0, NULL);
}

kiln_status kiln__ref_SequenceLength(kiln__kctx *c) {
    *(int64_t *)c->out[0]->data = c->in[0]->dims[0];
    return KILN_OK;
}

/* ---- SplitToSequence ---------------------------------------------------------------- */

/* How input x splits along axis: into pieces of 1 (no split input; keepdims
 * 0 then drops the axis), into pieces of 'size' (scalar split; the last may
 * be shorter), or by the lengths listed in split (1-D). */
typedef struct split_plan {
    int axis, keepdims;
    int64_t dim;                /* x->dims[axis] */
    const kiln_tensor *lengths; /* 1-D split, else NULL */
    int64_t size;               /* piece length when lengths is NULL */
    int64_t n;                  /* number of pieces */
} split_plan;

static kiln_status make_split_plan(const kiln__kctx *c, split_plan *sp) {
    const kiln_tensor *x = c->in[0], *split = kiln__in(c, 1);
    KILN__TRY(want_kind(x, 0, "input 'input'"));
    if (x->ndim == 0) return kiln__err(KILN_E_SHAPE, "input 'input' must have rank >= 1, got a scalar");
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "attribute 'axis'", &sp->axis));
    sp->keepdims = kiln__attr_i(c->node, "keepdims", 1) != 0;
    sp->dim = x->dims[sp->axis];
    sp->lengths = NULL;
    sp->size = 1;
    sp->n = sp->dim;
    if (!split) return KILN_OK;
    sp->keepdims = 1; /* ignored when split is given */
    KILN__TRY(kiln__check_dtype(split, "input 'split'", KILN_DTYPE_I32, KILN_DTYPE_I64, 0));
    if (split->ndim == 0) {
        sp->size = kiln__ld_i(split->dtype, split->data, 0);
        if (sp->size <= 0)
            return kiln__err(KILN_E_RANGE, "input 'split' is %" PRId64 ", expected a positive length", sp->size);
        sp->n = sp->dim ? (sp->dim - 1) / sp->size + 1 : 0; /* ceil, no overflow for huge sizes */
        return KILN_OK;
    }
    if (split->ndim != 1)
        return kiln__err(KILN_E_SHAPE, "input 'split' must be a scalar or 1-D, got rank %d", split->ndim);
    int64_t sum = 0;
    for (int64_t i = 0; i < split->dims[0]; i++) {
        int64_t len = kiln__ld_i(split->dtype, split->data, i);
        if (len < 0 || len > sp->dim)
            return kiln__err(KILN_E_RANGE, "split[%" PRId64 "] = %" PRId64 " is out of range 0..%" PRId64,
                             i, len, sp->dim);
        sum += len;
    }
    if (sum != sp->dim)
        return kiln__err(KILN_E_SHAPE, "input 'split' sums to %" PRId64 ", axis %d has length %" PRId64,
                         sum, sp->axis, sp->dim);
    sp->lengths = split;
    sp->n = split->dims[0];
    return KILN_OK;
}

/* Length of piece i that starts at start. */
static int64_t piece_len(const split_plan *sp, int64_t i, int64_t start) {
    if (sp->lengths) return kiln__ld_i(sp->lengths->dtype, sp->lengths->data, i);
    return sp->size < sp->dim - start ? sp->size : sp->dim - start;
}

// input: (d0,..,d_axis,..), split: optional scalar or 1-D int lengths;
// output: sequence of pieces (d0,..,len_i,..) (axis dropped with keepdims=0
// and no split)
kiln_status kiln__infer_SplitToSequence(kiln__kctx *c) {
    KILN__NEED(c, 1);
    split_plan sp;
    KILN__TRY(make_split_plan(c, &sp));
    return kiln__out_container(c, 0, KILN__DTYPE_SEQUENCE, c->in[0]->dtype, sp.n);
}

kiln_status kiln__ref_SplitToSequence(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    split_plan sp;
    KILN__TRY(make_split_plan(c, &sp));
    int64_t outer = prod(x->dims, 0, sp.axis), inner = prod(x->dims, sp.axis + 1, x->ndim);
    c->out[0]->elem = x->dtype;
    for (int64_t i = 0, start = 0; i < sp.n; i++) {
        int64_t len = piece_len(&sp, i, start), dims[KILN_MAX_DIMS];
        int nd = 0;
        for (int d = 0; d < x->ndim; d++) {
            if (d != sp.axis) dims[nd++] = x->dims[d];
            else if (sp.keepdims) dims[nd++] = len;
        }
        kiln_tensor *piece;
        KILN__TRY(kiln_tensor_create(x->dtype, nd, dims, &piece));
        kiln_status s = KILN_OK;
        for (int64_t o = 0; o < outer && s == KILN_OK; o++)
            s = copy_elems(x->dtype, piece->data, o * len * inner, x->data,
                           (o * sp.dim + start) * inner, len * inner);
        kiln__container_set(c->out[0], i, piece); /* owned by the output even on failure */
        KILN__TRY(s);
        start += len;
    }
    return KILN_OK;
}

/* ---- ConcatFromSequence ------------------------------------------------------------- */

/* Checks the items of seq against item 0 and writes the output shape; *axis
 * is the normalized axis of the output. */
static kiln_status concat_shape(const kiln__kctx *c, int *axis, int *ndim, int64_t *dims) {
    const kiln_tensor *seq = c->in[0];
    const kiln__attr *a = kiln__attr_find(c->node, "axis");
    if (!a) return kiln__err(KILN_E_FORMAT, "attribute 'axis' is required");
    int new_axis = kiln__attr_i(c->node, "new_axis", 0) != 0;
    int64_t n = seq->dims[0];
    if (n == 0) return kiln__err(KILN_E_SHAPE, "cannot concatenate an empty sequence");
    KILN__TRY(want_items(seq, "input 'input_sequence'"));
    const kiln_tensor *first = kiln__container_item(seq, 0);
    int r = first->ndim;
    if (r + new_axis > KILN_MAX_DIMS) return kiln__err(KILN_E_LIMIT, "rank %d is too large", r + new_axis);
    if (r + new_axis == 0) return kiln__err(KILN_E_SHAPE, "cannot concatenate scalars without new_axis=1");
    KILN__TRY(kiln__axis(a->i, r + new_axis, "attribute 'axis'", axis));
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        const kiln_tensor *t = kiln__container_item(seq, i);
        char s0[128], s1[128];
        int same = t->ndim == r && t->dtype == first->dtype;
        for (int d = 0; same && d < r; d++)
            same = t->dims[d] == first->dims[d] || (!new_axis && d == *axis);
        if (!same)
            return kiln__err(KILN_E_SHAPE, "item %" PRId64 " is %s %s, item 0 is %s %s: they differ "
                             "outside axis %d", i, kiln_dtype_name(t->dtype),
                             kiln__shape_str(t->ndim, t->dims, s0, sizeof s0),
                             kiln_dtype_name(first->dtype),
                             kiln__shape_str(r, first->dims, s1, sizeof s1), *axis);
        total += new_axis ? 1 : t->dims[*axis];
    }
    *ndim = r + new_axis;
    for (int d = 0, k = 0; d < *ndim; d++) dims[d] = new_axis && d == *axis ? 1 : first->dims[k++];
    dims[*axis] = total;
    return KILN_OK;
}

// input_sequence: n tensors of rank r, equal except along axis;
// output: their concatenation along axis (new_axis=1: stacked on a new axis,
// axis in -r-1..r)
kiln_status kiln__infer_ConcatFromSequence(kiln__kctx *c) {
    KILN__TRY(want_kind(c->in[0], KILN__DTYPE_SEQUENCE, "input 'input_sequence'"));
    KILN__NEED(c, 0);
    int axis, ndim;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(concat_shape(c, &axis, &ndim, dims));
    return kiln__out_shape(c, 0, kiln__container_item(c->in[0], 0)->dtype, ndim, dims);
}

kiln_status kiln__ref_ConcatFromSequence(kiln__kctx *c) {
    const kiln_tensor *seq = c->in[0];
    kiln_tensor *y = c->out[0];
    int axis, ndim;
    int64_t dims[KILN_MAX_DIMS];
    KILN__TRY(concat_shape(c, &axis, &ndim, dims));
    /* every item is a (outer, chunk) block of y's (outer, total * inner) rows */
    int64_t outer = prod(dims, 0, axis), inner = prod(dims, axis + 1, ndim);
    int64_t row = dims[axis] * inner, at = 0;
    for (int64_t i = 0; i < seq->dims[0]; i++) {
        const kiln_tensor *t = kiln__container_item(seq, i);
        int64_t chunk = kiln__n(t) / (outer ? outer : 1);
        for (int64_t o = 0; o < outer; o++)
            KILN__TRY(copy_elems(y->dtype, y->data, o * row + at, t->data, o * chunk, chunk));
        at += chunk;
    }
    return KILN_OK;
}

/* ---- Optional ----------------------------------------------------------------------- */

// input: optional tensor or sequence; attribute type: the type when the input
// is absent; output: an optional holding a copy of the input, or empty
kiln_status kiln__infer_Optional(kiln__kctx *c) {
    const kiln_tensor *x = kiln__in(c, 0);
    const kiln__attr *type = kiln__attr_find(c->node, "type");
    kiln_dtype tp = type ? (kiln_dtype)type->tp_elem : KILN_DTYPE_UNDEFINED;
    if (!x) {
        if (!type) return kiln__err(KILN_E_FORMAT, "attribute 'type' is required without an input");
        return kiln__out_container(c, 0, KILN__DTYPE_OPTIONAL, tp, 0);
    }
    if (x->dtype == KILN__DTYPE_OPTIONAL)
        return kiln__err(KILN_E_TYPE, "input must be a tensor or a sequence, got an optional");
    kiln_dtype elem = x->dtype == KILN__DTYPE_SEQUENCE ? x->elem : x->dtype;
    if (tp != KILN_DTYPE_UNDEFINED && elem != KILN_DTYPE_UNDEFINED && tp != elem)
        return kiln__err(KILN_E_TYPE, "input holds %s, attribute 'type' says %s", kiln_dtype_name(elem),
                         kiln_dtype_name(tp));
    return kiln__out_container(c, 0, KILN__DTYPE_OPTIONAL, elem, 1);
}

kiln_status kiln__ref_Optional(kiln__kctx *c) {
    const kiln_tensor *x = kiln__in(c, 0);
    return x ? set_copy(c->out[0], 0, x) : KILN_OK;
}

/* ---- OptionalHasElement ------------------------------------------------------------- */

// input: optional (or, opset >= 18, a tensor or sequence; absent counts as
// empty); output: bool scalar, true if it holds a value
kiln_status kiln__infer_OptionalHasElement(kiln__kctx *c) {
    return kiln__out_shape(c, 0, KILN_DTYPE_BOOL, 0, NULL);
}

kiln_status kiln__ref_OptionalHasElement(kiln__kctx *c) {
    const kiln_tensor *x = kiln__in(c, 0);
    int has = x && (x->dtype != KILN__DTYPE_OPTIONAL || x->dims[0] > 0);
    *(uint8_t *)c->out[0]->data = (uint8_t)has;
    return KILN_OK;
}

/* ---- OptionalGetElement ------------------------------------------------------------- */

/* The value x holds: its item if it is an optional (fails if empty), else x. */
static kiln_status held_value(const kiln_tensor *x, const kiln_tensor **v) {
    if (!x) return kiln__err(KILN_E_INVAL, "input 'input' is missing");
    if (x->dtype != KILN__DTYPE_OPTIONAL) {
        *v = x;
        return KILN_OK;
    }
    if (x->dims[0] == 0) return kiln__err(KILN_E_INVAL, "input 'input' is an empty optional");
    KILN__TRY(want_items(x, "input 'input'"));
    *v = kiln__container_item(x, 0);
    return KILN_OK;
}

// input: optional holding a tensor or sequence (or, opset >= 18, the tensor or
// sequence itself); output: a copy of the value held
kiln_status kiln__infer_OptionalGetElement(kiln__kctx *c) {
    const kiln_tensor *x = kiln__in(c, 0), *v = NULL;
    if (x && x->dtype == KILN__DTYPE_OPTIONAL) {
        if (x->dims[0] == 0) return kiln__err(KILN_E_INVAL, "input 'input' is an empty optional");
        KILN__NEED(c, 0);
    }
    KILN__TRY(held_value(x, &v));
    return kiln__out_like(c, 0, v);
}

kiln_status kiln__ref_OptionalGetElement(kiln__kctx *c) {
    const kiln_tensor *v = NULL;
    KILN__TRY(held_value(kiln__in(c, 0), &v));
    return kiln__tensor_copy_data(c->out[0], v);
}
