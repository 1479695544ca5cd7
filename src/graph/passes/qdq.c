/* src/graph/passes/qdq.c: QDQ fusion, in int8 sessions only
 * (kiln__opt_options.precision == KILN_PRECISION_INT8). The QDQ form that
 * onnxruntime's quantizer writes around a Conv or MatMul
 *
 *   DequantizeLinear(x_q, xs, xz) ----------------.
 *   DequantizeLinear(w_q, ws, wz)  (w_q constant) -+-> Conv / MatMul [-> Relu] -> QuantizeLinear(., ys, yz) -> y_q
 *   [DequantizeLinear(b_q int32, bs) or a float constant: Conv's bias]
 *
 * becomes the integer op the int8 algorithms run (src/cpu/kernels/qlinear_*):
 *
 *   QLinearConv(x_q, xs, xz, w_q, ws, wz, ys, yz, B) -> y_q
 *   QLinearMatMul(x_q, xs, xz, w_q, ws, wz, ys, yz)   -> y_q
 *
 * Conditions: x's scale and zero point per tensor; w's per tensor or per
 * output channel (DequantizeLinear axis 0 of a Conv weight, axis 1 = the
 * columns of a 2-D MatMul weight), no blocked quantization; y's per tensor;
 * 8-bit x, w and y; f32 scales; every parameter a constant. The bias B
 * (int32, scale xs * ws[k], zero point 0) is the int32 constant itself when
 * its DequantizeLinear has exactly that scale and no zero point, else the
 * float bias (dequantized, or a float constant) rounded to that scale; a
 * bias beyond int32 leaves the pattern alone.
 *
 * A Relu between the op and QuantizeLinear folds exactly: Q(relu(v)) =
 * max(Q(v), yz) since Q is monotonic and Q(0) = yz; when yz is the lowest
 * value of y's type (what calibration gives a Relu output) the max is a
 * no-op and the Relu just goes, else a Max(y_q, yz) node follows.
 *
 * The fused result equals the unfused DQ -> float op -> Q chain except where
 * the float op's rounding puts a value on the other side of a rounding
 * boundary: then the two differ by one quantization step. Anything that does
 * not match stays as it is (still correct, in float). The pass runs before
 * constant folding, which would otherwise turn DequantizeLinear(w_q) into a
 * float weight first. DequantizeLinear nodes left without consumers go with
 * the dead-node pass.
 */
#include <math.h>
#include <string.h>

#include "graph/passes/passes.h"

/* A DequantizeLinear / QuantizeLinear node's operands. */
typedef struct qparams {
    int node;         /* the node */
    int q;            /* the quantized value (DQ input / Q output) */
    int scale, zero;  /* values (zero -1: absent) */
    const kiln_tensor *s, *z; /* their constants (z NULL: absent) */
    kiln_dtype qt;    /* the quantized dtype */
    int axis;         /* normalized per-axis axis, -1 per tensor */
} qparams;

static int is_q8(kiln_dtype dt) { return dt == KILN_DTYPE_U8 || dt == KILN_DTYPE_I8; }

/* Reads the (de)quantization parameters of node i (DQ: input 0 quantized;
 * Q: output 0) for a tensor of rank `rank` (-1: per tensor only). 1 if they
 * are constants of a form the fused ops take: f32 scale, 8-bit zero point
 * per tensor, or per axis when rank >= 0 and the scale is 1-D. */
static int read_qparams(kiln__px *p, int i, int is_dq, int rank, qparams *q) {
    const kiln__node *n = &p->g->nodes[i];
    int ne = n->n_in - n->n_implicit;
    memset(q, 0, sizeof *q);
    q->node = i;
    q->q = is_dq ? n->in[0] : n->out[0];
    q->scale = ne > 1 ? n->in[1] : -1;
    q->zero = ne > 2 ? n->in[2] : -1;
    q->s = q->scale >= 0 ? kiln__px_const(p, q->scale) : NULL;
    q->z = q->zero >= 0 ? kiln__px_const(p, q->zero) : NULL;
    if (!q->s || q->s->dtype != KILN_DTYPE_F32 || (q->zero >= 0 && !q->z)) return 0;
    if (kiln__attr_i(n, "block_size", 0) != 0) return 0;
    if (is_dq) {
        q->qt = q->z ? q->z->dtype : kiln__px_dtype(p, q->q);
    } else {
        int64_t od = kiln__attr_i(n, "output_dtype", 0);
        q->qt = q->z ? q->z->dtype : od ? (kiln_dtype)od : KILN_DTYPE_U8;
        if (kiln__attr_i(n, "precision", 0) != 0) return 0;
    }
    if (!is_q8(q->qt)) return 0;
    int64_t ns = kiln_tensor_numel(q->s);
    if (q->z && kiln_tensor_numel(q->z) != ns) return 0;
    q->axis = -1;
    if (ns == 1 && q->s->ndim <= 1) return 1;
    if (rank < 1 || q->s->ndim != 1) return 0;
    int64_t ax = kiln__attr_i(n, "axis", 1);
    if (ax < -rank || ax >= rank) return 0;
    q->axis = (int)(ax < 0 ? ax + rank : ax);
    return 1;
}

/* The DequantizeLinear producing v, with its parameters; -1 if none fits. */
static int dq_of(kiln__px *p, int v, int rank, qparams *q) {
    int pr = kiln__px_producer(p, v);
    if (!kiln__px_is(p, pr, "DequantizeLinear")) return -1;
    return read_qparams(p, pr, 1, rank, q) ? pr : -1;
}

/* A zero-point value for q: its own, or a new 0 scalar of q->qt. */
static int zero_value(kiln__px *p, const qparams *q) {
    if (q->zero >= 0) return q->zero;
    kiln_tensor *t;
    if (kiln_tensor_create(q->qt, 0, NULL, &t) != KILN_OK) return -1;
    memset(kiln_tensor_data(t), 0, 1);
    return kiln__px_add_init(p, "zero_point", t);
}

static double zero_at(const kiln_tensor *z, int64_t i) {
    if (!z) return 0;
    return kiln__ld_f(z->dtype, kiln_tensor_data((kiln_tensor *)z), kiln_tensor_numel(z) == 1 ? 0 : i);
}

/* Element j of a scalar-or-vector f32 constant. */
static double f32_at(const kiln_tensor *t, int64_t j) {
    return ((const float *)kiln_tensor_data((kiln_tensor *)t))[kiln_tensor_numel(t) == 1 ? 0 : j];
}

/* The int32 bias (k values) of a fused Conv with input scale xs and weight
 * scales ws, from Conv bias value b: a float constant, or DequantizeLinear
 * of an int32 constant (scale and zero point per tensor or per channel).
 * -1 if it cannot be made, -2 on OOM. */
static int int_bias(kiln__px *p, int b, float xs, const kiln_tensor *ws, int64_t k) {
    const kiln_tensor *bf = kiln__px_const(p, b), *bi = NULL, *bs = NULL, *bz = NULL;
    int bq = -1;
    if (bf) {
        if (bf->dtype != KILN_DTYPE_F32 || kiln_tensor_numel(bf) != k) return -1;
    } else {
        int dq = kiln__px_producer(p, b);
        if (!kiln__px_is(p, dq, "DequantizeLinear")) return -1;
        const kiln__node *n = &p->g->nodes[dq];
        int ne = n->n_in - n->n_implicit;
        bq = n->in[0];
        bi = kiln__px_const(p, bq);
        bs = ne > 1 ? kiln__px_const(p, n->in[1]) : NULL;
        bz = ne > 2 && n->in[2] >= 0 ? kiln__px_const(p, n->in[2]) : NULL;
        if (!bi || bi->dtype != KILN_DTYPE_I32 || kiln_tensor_numel(bi) != k || !bs ||
            bs->dtype != KILN_DTYPE_F32 || (kiln_tensor_numel(bs) != 1 && kiln_tensor_numel(bs) != k) ||
            (ne > 2 && n->in[2] >= 0 && (!bz || kiln_tensor_numel(bz) != kiln_tensor_numel(bs))) ||
            kiln__attr_i(n, "block_size", 0) != 0)
            return -1;
    }
    /* the int32 constant as is, if its scale is exactly xs * ws[j] (as onnxruntime writes it) */
    int same = bi && !bz;
    for (int64_t j = 0; same && j < k; j++) same = f32_at(bs, j) == (double)(xs * (float)f32_at(ws, j));
    if (same) return bq;
    kiln_tensor *out;
    if (kiln_tensor_create(KILN_DTYPE_I32, 1, &k, &out) != KILN_OK) return -2;
    int32_t *o = kiln_tensor_data(out);
    for (int64_t j = 0; j < k; j++) {
        double f = bf ? f32_at(bf, j)
                      : ((double)((const int32_t *)kiln_tensor_data((kiln_tensor *)bi))[j] -
                         zero_at(bz, j)) * f32_at(bs, j);
        double v = nearbyint(f / (double)(xs * (float)f32_at(ws, j)));
        if (!(fabs(v) < 2147483647.0)) {
            kiln_tensor_free(out);
            return -1;
        }
        o[j] = (int32_t)v;
    }
    int v = kiln__px_add_init(p, p->g->values[b].name, out);
    return v >= 0 ? v : -2;
}

/* Lowest value of an 8-bit type. */
static double q_lowest(kiln_dtype dt) { return dt == KILN_DTYPE_I8 ? -128 : 0; }

static int onnx_opset(kiln__px *p) {
    for (int i = 0; i < p->g->n_opsets; i++)
        if (!p->g->opsets[i].domain[0] || strcmp(p->g->opsets[i].domain, "ai.onnx") == 0)
            return (int)p->g->opsets[i].version;
    return 0;
}

/* Node i: a Conv or MatMul (conv says which). Fuses it if the pattern fits. */
static kiln_status try_fuse(kiln__px *p, int i, int conv) {
    kiln_graph *g = p->g;
    const kiln__node *n = &g->nodes[i];
    int ne = n->n_in - n->n_implicit;
    if (ne < 2 || n->out[0] < 0) return KILN_OK;
    qparams xq, wq, yq;
    if (dq_of(p, n->in[0], -1, &xq) < 0) return KILN_OK;
    const kiln_tensor *w0 = NULL;
    int wdq = kiln__px_producer(p, n->in[1]);
    if (!kiln__px_is(p, wdq, "DequantizeLinear") || !(w0 = kiln__px_const(p, g->nodes[wdq].in[0])))
        return KILN_OK;
    const int wrank = w0->ndim;
    if (!read_qparams(p, wdq, 1, wrank, &wq) || !is_q8(w0->dtype)) return KILN_OK;
    int64_t kout; /* output channels: per-channel parameters run along them */
    if (conv) {
        if (wrank < 3 || (wq.axis >= 0 && wq.axis != 0)) return KILN_OK;
        kout = w0->dims[0];
    } else {
        if (wrank != 2 || (wq.axis >= 0 && wq.axis != 1)) return KILN_OK;
        kout = w0->dims[1];
    }
    if (wq.axis >= 0 && kiln_tensor_numel(wq.s) != kout) return KILN_OK;
    /* output chain: [Relu ->] QuantizeLinear */
    int y = n->out[0], u = kiln__px_sole_user(p, y, NULL), relu = -1;
    if (kiln__px_is(p, u, "Relu")) {
        relu = u;
        u = kiln__px_sole_user(p, g->nodes[relu].out[0], NULL);
    }
    if (!kiln__px_is(p, u, "QuantizeLinear") || !read_qparams(p, u, 0, -1, &yq)) return KILN_OK;
    if (relu >= 0 && zero_at(yq.z, 0) != q_lowest(yq.qt) && onnx_opset(p) < 12) return KILN_OK;
    int bias = -1;
    if (conv && ne > 2 && n->in[2] >= 0) {
        bias = int_bias(p, n->in[2], *(const float *)kiln_tensor_data((kiln_tensor *)xq.s), wq.s, kout);
        if (bias == -2) return kiln__err(KILN_E_NOMEM, "out of memory");
        if (bias < 0) return KILN_OK;
    }
    int xz = zero_value(p, &xq), wz = xz >= 0 ? zero_value(p, &wq) : -1;
    int yz = wz >= 0 ? zero_value(p, &yq) : -1;
    if (yz < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
    int out = yq.q, clamp = relu >= 0 && zero_at(yq.z, 0) != q_lowest(yq.qt);
    int mid = clamp ? kiln__px_new_value(p, g->values[out].name) : out;
    int f = mid >= 0 ? kiln__px_add_node(p, g->nodes[i].name, conv ? "QLinearConv" : "QLinearMatMul",
                                         "", bias >= 0 ? 9 : 8, 1)
                     : -1;
    if (f < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
    kiln__node *fn = &g->nodes[f];
    const int ins[9] = {xq.q, xq.scale, xz, g->nodes[wdq].in[0], wq.scale, wz, yq.scale, yz, bias};
    for (int k = 0; k < (bias >= 0 ? 9 : 8); k++) fn->in[k] = ins[k];
    fn->out[0] = mid;
    g->values[mid].producer = f;
    if (conv) KILN__TRY(kiln__px_copy_attrs(p, f, i));
    if (clamp) { /* relu folded as max(y_q, yz) */
        int mx = kiln__px_add_node(p, g->nodes[i].name, "Max", "", 2, 1);
        if (mx < 0) return kiln__err(KILN_E_NOMEM, "out of memory");
        g->nodes[mx].in[0] = mid;
        g->nodes[mx].in[1] = yz;
        g->nodes[mx].out[0] = out;
        g->values[out].producer = mx;
    } else {
        g->values[out].producer = f;
    }
    kiln__px_kill(p, i);
    if (relu >= 0) kiln__px_kill(p, relu);
    kiln__px_kill(p, u);
    p->count++;
    return KILN_OK;
}

kiln_status kiln__pass_qdq(kiln__px *p) {
    if (p->o->precision != KILN_PRECISION_INT8) return KILN_OK;
    for (int i = 0; i < p->g->n_nodes; i++) {
        if (kiln__px_is(p, i, "Conv"))
            KILN__TRY(try_fuse(p, i, 1));
        else if (kiln__px_is(p, i, "MatMul"))
            KILN__TRY(try_fuse(p, i, 0));
    }
    return KILN_OK;
}
