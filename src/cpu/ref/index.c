/* src/cpu/ref/index.c: ops that return positions: ArgMax, ArgMin, TopK and
 * NonMaxSuppression. */
#include <math.h>
#include <string.h>

#include "ops/op.h"

/* ---- shared helpers --------------------------------------------------------- */

/* Sort key of an element: floats as double (NaN kept), integers as int64
 * with uint64 mapped order-preservingly onto int64. */
typedef struct sort_key {
    int is_float;
    double f;
    int64_t i;
} sort_key;

static inline sort_key load_key(kiln_dtype dt, const void *base, int64_t off) {
    sort_key k = {0, 0, 0};
    if (dt == KILN_DTYPE_F32) {
        k.is_float = 1;
        k.f = ((const float *)base)[off];
    } else if (kiln__dtype_is_float(dt)) {
        k.is_float = 1;
        k.f = kiln__ld_f(dt, base, off);
    } else if (dt == KILN_DTYPE_U64) {
        k.i = (int64_t)(kiln__ld_u(dt, base, off) ^ ((uint64_t)1 << 63));
    } else {
        k.i = kiln__ld_i(dt, base, off);
    }
    return k;
}

/* 1 if a ranks strictly above b when looking for the largest (largest=1) or
 * smallest element. NaN ranks above every number, as in numpy's sorts. */
static inline int key_better(sort_key a, sort_key b, int largest) {
    if (!a.is_float) return largest ? a.i > b.i : a.i < b.i;
    int an = isnan(a.f), bn = isnan(b.f);
    if (an || bn) return largest ? an && !bn : !an && bn;
    return largest ? a.f > b.f : a.f < b.f;
}

/* ---- ArgMax, ArgMin ------------------------------------------------------------ */

// x: (d0,...,dr-1) numeric, y: (.., 1 or dropped at axis, ..) int64
static kiln_status arg_infer(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_numeric(x, "input 'data'", 1));
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "attribute 'axis'", &axis));
    if (x->dims[axis] == 0)
        return kiln__err(KILN_E_SHAPE, "input 'data' has size 0 along axis %d", axis);
    int keep = kiln__attr_i(c->node, "keepdims", 1) != 0;
    int64_t dims[KILN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (i != axis) dims[nd++] = x->dims[i];
        else if (keep) dims[nd++] = 1;
    }
    return kiln__out_shape(c, 0, KILN_DTYPE_I64, nd, dims);
}

/* Index of the largest (smallest) element along the axis; the first one on
 * ties, or the last with select_last_index. NaN wins, as in numpy. */
static kiln_status arg_ref(kiln__kctx *c, int largest) {
    const kiln_tensor *x = c->in[0];
    int64_t *y = c->out[0]->data;
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", 0), x->ndim, "attribute 'axis'", &axis));
    int last = kiln__attr_i(c->node, "select_last_index", 0) != 0;
    int64_t len = x->dims[axis], inner = 1, lo, hi;
    for (int i = axis + 1; i < x->ndim; i++) inner *= x->dims[i];
    kiln__split(kiln__n(c->out[0]), c->ith, c->nth, &lo, &hi);
    for (int64_t o = lo; o < hi; o++) {
        int64_t base = (o / inner) * len * inner + o % inner, best_j = 0;
        sort_key best = load_key(x->dtype, x->data, base);
        for (int64_t j = 1; j < len; j++) {
            sort_key v = load_key(x->dtype, x->data, base + j * inner);
            /* a NaN best stays unless select_last_index meets another NaN */
            int tie = !key_better(v, best, largest) && !key_better(best, v, largest);
            if (key_better(v, best, largest) || (last && tie)) {
                best = v;
                best_j = j;
            }
        }
        y[o] = best_j;
    }
    return KILN_OK;
}

kiln_status kiln__infer_ArgMax(kiln__kctx *c) { return arg_infer(c); }
kiln_status kiln__ref_ArgMax(kiln__kctx *c) { return arg_ref(c, 1); }
kiln_status kiln__infer_ArgMin(kiln__kctx *c) { return arg_infer(c); }
kiln_status kiln__ref_ArgMin(kiln__kctx *c) { return arg_ref(c, 0); }

/* ---- TopK ---------------------------------------------------------------------- */

typedef struct topk_item {
    sort_key key;
    int64_t idx;
} topk_item;

/* k from the attribute (opset < 10) or the 1-element input 'K'. */
static kiln_status topk_k(kiln__kctx *c, int axis, int64_t *k) {
    const kiln_tensor *x = c->in[0];
    if (c->opset < 10) {
        *k = kiln__attr_i(c->node, "k", -1);
    } else {
        const kiln_tensor *kt = kiln__in(c, 1);
        if (!kt) return kiln__err(KILN_E_INVAL, "input 'K' is missing");
        KILN__NEED(c, 1);
        int n;
        if (kt->dtype != KILN_DTYPE_I64)
            return kiln__err(KILN_E_TYPE, "input 'K' has dtype %s, expected int64",
                             kiln_dtype_name(kt->dtype));
        KILN__TRY(kiln__read_ints(kt, "input 'K'", k, 1, &n));
        if (n != 1) return kiln__err(KILN_E_SHAPE, "input 'K' has %d elements, expected 1", n);
    }
    if (*k < 0 || *k > x->dims[axis])
        return kiln__err(KILN_E_RANGE, "k = %lld is out of range [0, %lld] (size of axis %d)",
                         (long long)*k, (long long)x->dims[axis], axis);
    return KILN_OK;
}

// x: (.., n at axis, ..), K: (1) int64 -> values: (.., k, ..) like x, indices: int64
kiln_status kiln__infer_TopK(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    KILN__TRY(kiln__check_numeric(x, "input 'X'", 0));
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "attribute 'axis'", &axis));
    int64_t k, dims[KILN_MAX_DIMS];
    KILN__TRY(topk_k(c, axis, &k));
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = k;
    c->scratch_bytes = (size_t)k * sizeof(topk_item); /* the heap of one line */
    KILN__TRY(kiln__out_shape(c, 0, x->dtype, x->ndim, dims));
    return kiln__out_shape(c, 1, KILN_DTYPE_I64, x->ndim, dims);
}

/* Strict total order of TopK: better key, then lower index. */
static inline int item_better(const topk_item *a, const topk_item *b, int largest) {
    if (key_better(a->key, b->key, largest)) return 1;
    if (key_better(b->key, a->key, largest)) return 0;
    return a->idx < b->idx;
}

/* Heap whose root h[0] is the worst item. */
static void heap_sift_down(topk_item *h, int64_t n, int64_t i, int largest) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && item_better(&h[worst], &h[l], largest)) worst = l;
        if (r < n && item_better(&h[worst], &h[r], largest)) worst = r;
        if (worst == i) return;
        topk_item t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

/* Keeps the k best elements of each line along the axis in a heap
 * (O(n log k)), then emits them best first: largest (or smallest) value,
 * ties by lower index. The output is always sorted, which also satisfies
 * sorted=0. */
kiln_status kiln__ref_TopK(kiln__kctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_tensor *vals = c->out[0], *inds = c->out[1];
    int axis;
    KILN__TRY(kiln__axis(kiln__attr_i(c->node, "axis", -1), x->ndim, "attribute 'axis'", &axis));
    int64_t k;
    KILN__TRY(topk_k(c, axis, &k));
    int largest = c->opset < 11 || kiln__attr_i(c->node, "largest", 1) != 0;
    int64_t len = x->dims[axis], inner = 1, outer = 1;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = axis + 1; i < x->ndim; i++) inner *= x->dims[i];
    topk_item *heap = c->scratch;
    size_t esize = kiln_dtype_size(x->dtype);
    for (int64_t line = 0; k > 0 && line < outer * inner; line++) {
        int64_t o = line / inner, in = line % inner;
        int64_t xbase = o * len * inner + in, ybase = o * k * inner + in;
        for (int64_t j = 0; j < len; j++) {
            topk_item it = {load_key(x->dtype, x->data, xbase + j * inner), j};
            if (j < k) {
                heap[j] = it;
                if (j == k - 1)
                    for (int64_t i = k / 2 - 1; i >= 0; i--) heap_sift_down(heap, k, i, largest);
            } else if (item_better(&it, &heap[0], largest)) {
                heap[0] = it;
                heap_sift_down(heap, k, 0, largest);
            }
        }
        for (int64_t m = k - 1; m >= 0; m--) { /* pop the worst into the last slot */
            int64_t yo = ybase + m * inner, src = heap[0].idx;
            if (vals)
                memcpy((char *)vals->data + yo * esize,
                       (const char *)x->data + (xbase + src * inner) * esize, esize);
            if (inds) ((int64_t *)inds->data)[yo] = src;
            heap[0] = heap[m];
            heap_sift_down(heap, m, 0, largest);
        }
    }
    return KILN_OK;
}

/* ---- NonMaxSuppression ------------------------------------------------------------ */

// boxes: (B, N, 4), scores: (B, C, N), max_output_boxes_per_class: (1) int64,
// iou_threshold: (1) float, score_threshold: (1) float -> selected: (S, 3) int64
kiln_status kiln__infer_NonMaxSuppression(kiln__kctx *c) {
    const kiln_tensor *boxes = c->in[0], *scores = c->in[1];
    char b1[128], b2[128];
    KILN__TRY(kiln__check_dtype(boxes, "input 'boxes'", KILN__FLOAT_DTYPES));
    KILN__TRY(kiln__check_dtype(scores, "input 'scores'", KILN__FLOAT_DTYPES));
    if (boxes->ndim != 3 || boxes->dims[2] != 4 || scores->ndim != 3 ||
        scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return kiln__err(KILN_E_SHAPE,
                         "inputs 'boxes' %s and 'scores' %s: expected (B, N, 4) and (B, C, N)",
                         kiln__shape_str(boxes->ndim, boxes->dims, b1, sizeof b1),
                         kiln__shape_str(scores->ndim, scores->dims, b2, sizeof b2));
    if (kiln__in(c, 2))
        KILN__TRY(kiln__check_dtype(c->in[2], "input 'max_output_boxes_per_class'",
                                    KILN_DTYPE_I64, KILN_DTYPE_I32, 0));
    int cpb = (int)kiln__attr_i(c->node, "center_point_box", 0);
    if (cpb != 0 && cpb != 1)
        return kiln__err(KILN_E_INVAL, "attribute 'center_point_box' is %d, expected 0 or 1", cpb);
    return KILN_OK; /* output shape depends on the data: the kernel allocates it */
}

typedef struct nms_box {
    double x0, y0, x1, y1; /* min/max corners */
} nms_box;

static nms_box nms_load_box(const kiln_tensor *boxes, int64_t b, int64_t i, int center) {
    double v[4];
    for (int j = 0; j < 4; j++) v[j] = kiln__ld_f(boxes->dtype, boxes->data, (b * boxes->dims[1] + i) * 4 + j);
    nms_box r;
    if (center) { /* [x_center, y_center, width, height] */
        r.x0 = v[0] - v[2] / 2;
        r.x1 = v[0] + v[2] / 2;
        r.y0 = v[1] - v[3] / 2;
        r.y1 = v[1] + v[3] / 2;
    } else { /* [y1, x1, y2, x2], corners in any order */
        r.y0 = fmin(v[0], v[2]);
        r.y1 = fmax(v[0], v[2]);
        r.x0 = fmin(v[1], v[3]);
        r.x1 = fmax(v[1], v[3]);
    }
    return r;
}

/* 1 if the boxes overlap with IoU above the threshold. */
static int nms_suppresses(nms_box a, nms_box b, double iou_threshold) {
    double ix0 = fmax(a.x0, b.x0), ix1 = fmin(a.x1, b.x1);
    double iy0 = fmax(a.y0, b.y0), iy1 = fmin(a.y1, b.y1);
    if (ix1 <= ix0 || iy1 <= iy0) return 0;
    double inter = (ix1 - ix0) * (iy1 - iy0);
    double area_a = (a.x1 - a.x0) * (a.y1 - a.y0), area_b = (b.x1 - b.x0) * (b.y1 - b.y0);
    double uni = area_a + area_b - inter;
    if (inter <= 0 || area_a <= 0 || area_b <= 0 || uni <= 0) return 0;
    return inter / uni > iou_threshold;
}

/* Stable merge sort of idx[0..n) by "better" (tmp: n entries of scratch).
 * Equal elements keep their order, so ties go to the lower position. */
typedef int (*better_fn)(const void *ctx, int64_t a, int64_t b);
static void merge_sort(int64_t *idx, int64_t *tmp, int64_t n, better_fn better, const void *ctx) {
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n;
            int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = better(ctx, idx[j], idx[i]) ? idx[j++] : idx[i++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

typedef struct nms_ctx {
    const double *scores;
} nms_ctx;

static int nms_better(const void *ctx, int64_t a, int64_t b) {
    return ((const nms_ctx *)ctx)->scores[a] > ((const nms_ctx *)ctx)->scores[b];
}

/* Greedy NMS per (batch, class): candidates above score_threshold in order of
 * decreasing score (ties: lower box index first), each kept unless it
 * overlaps a kept box too much. Writes rows to out (if not NULL) and returns
 * how many were selected. */
static int64_t nms_select(kiln__kctx *c, void *work, int64_t max_per_class, double iou_thr,
                          int has_score_thr, double score_thr, int64_t *out) {
    const kiln_tensor *boxes = c->in[0], *scores = c->in[1];
    int center = kiln__attr_i(c->node, "center_point_box", 0) == 1;
    int64_t n_batch = boxes->dims[0], n_box = boxes->dims[1], n_class = scores->dims[1];
    int64_t *cand = work, *tmp = cand + n_box, *sel = tmp + n_box;
    double *sc = (double *)(sel + n_box);
    nms_ctx ctx = {sc};
    int64_t total = 0;
    for (int64_t b = 0; b < n_batch; b++) {
        for (int64_t cl = 0; cl < n_class; cl++) {
            int64_t n_cand = 0, n_sel = 0;
            for (int64_t i = 0; i < n_box; i++) {
                sc[i] = kiln__ld_f(scores->dtype, scores->data, (b * n_class + cl) * n_box + i);
                if (!has_score_thr || sc[i] > score_thr) cand[n_cand++] = i;
            }
            merge_sort(cand, tmp, n_cand, nms_better, &ctx);
            for (int64_t j = 0; j < n_cand && n_sel < max_per_class; j++) {
                nms_box bj = nms_load_box(boxes, b, cand[j], center);
                int keep = 1;
                for (int64_t s = 0; s < n_sel && keep; s++)
                    if (nms_suppresses(bj, nms_load_box(boxes, b, sel[s], center), iou_thr))
                        keep = 0;
                if (!keep) continue;
                sel[n_sel++] = cand[j];
                if (out) {
                    out[total * 3 + 0] = b;
                    out[total * 3 + 1] = cl;
                    out[total * 3 + 2] = cand[j];
                }
                total++;
            }
        }
    }
    return total;
}

/* Reads an optional 1-element threshold input; returns 0 if absent/empty. */
static kiln_status nms_scalar(const kiln__kctx *c, int i, const char *what, double *v, int *present) {
    const kiln_tensor *t = kiln__in(c, i);
    int n = 0;
    *present = 0;
    if (!t || kiln__n(t) == 0) return KILN_OK;
    KILN__TRY(kiln__read_floats(t, what, v, 1, &n));
    *present = n == 1;
    return KILN_OK;
}

/* The executor runs KILN_OPF_ALLOC_OUT kernels without infer, hence without
 * planned scratch: the working memory (candidates, merge buffer, selected
 * boxes, scores: 4 words per box) is allocated here and freed before return. */
kiln_status kiln__ref_NonMaxSuppression(kiln__kctx *c) {
    KILN__TRY(kiln__infer_NonMaxSuppression(c));
    int64_t max_per_class = 0;
    double iou_thr = 0, score_thr = 0;
    int has_iou, has_score;
    const kiln_tensor *mt = kiln__in(c, 2);
    if (mt && kiln__n(mt) > 0) {
        int n;
        KILN__TRY(kiln__read_ints(mt, "input 'max_output_boxes_per_class'", &max_per_class, 1, &n));
        if (max_per_class < 0) max_per_class = 0;
    }
    KILN__TRY(nms_scalar(c, 3, "input 'iou_threshold'", &iou_thr, &has_iou));
    KILN__TRY(nms_scalar(c, 4, "input 'score_threshold'", &score_thr, &has_score));
    if (iou_thr < 0 || iou_thr > 1)
        return kiln__err(KILN_E_RANGE, "input 'iou_threshold' is %g, expected a value in [0, 1]",
                         iou_thr);
    size_t n_box = (size_t)c->in[0]->dims[1];
    void *work = kiln__aligned_alloc(n_box ? n_box * 4 * sizeof(int64_t) : 64);
    if (!work) return KILN_E_NOMEM;
    int64_t n = nms_select(c, work, max_per_class, iou_thr, has_score, score_thr, NULL);
    int64_t dims[2] = {n, 3};
    kiln_status s = kiln__out_alloc(c, 0, KILN_DTYPE_I64, 2, dims);
    if (s == KILN_OK) nms_select(c, work, max_per_class, iou_thr, has_score, score_thr, c->out[0]->data);
    kiln__aligned_free(work);
    return s;
}
