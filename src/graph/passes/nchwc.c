/* src/graph/passes/nchwc.c: convolutions into the blocked channel layout
 * (src/ops/nchwc.h):
 *
 *   Conv / kiln.FusedConv (2-D, constant f32 W and B, group 1, depthwise,
 *   or grouped, see MAX_GROUP_OVERHEAD)
 *     -> kiln.ConvNCHWc
 *
 * with a kiln.ReorderNCHWc where a converted convolution reads a plain value
 * (its input X or residual Z) and a kiln.ReorderNCHW where a plain consumer
 * (or a graph output) reads a converted convolution's output: one reorder
 * per value, whatever its number of readers, so a chain of convolutions
 * hands blocked tensors from one to the next and the layout changes only at
 * the chain's ends (planned once per graph, not per layer). A group-1
 * convolution of fewer than 16 input channels (the first layer, RGB) reads
 * its plain input directly (input_blocked 0) instead of through a reorder.
 * Max and average pools (plain and global) that read a converted output
 * become kiln.PoolNCHWc, and channel Concats of converted outputs whose
 * channel counts (but the last) are whole blocks a Concat of the blocked
 * tensors along their block axis, so chains keep their layout through the
 * pools and the branches of inception-style modules. A BatchNormalization
 * left standing (pre-activation networks: BN, Relu, Conv) on a converted
 * output becomes a depthwise 1x1 ConvNCHWc with its activation. Last, a
 * pointwise ConvNCHWc (1x1, stride 1, unpadded, group 1, no residual) whose
 * output only a depthwise ConvNCHWc (no residual) reads becomes, with it,
 * one kiln.ConvDwNCHWc (MobileNetV2's expansion and depthwise layers: the
 * expanded tensor, six times the block's input, then never goes to memory
 * whole; 15-20% of MobileNetV2 at batch 8), and with the pointwise
 * projection that alone reads the depthwise output, on images of at least
 * MIN_PROJECT_PIXELS.
 *
 * Runs once, after the other passes have fused the epilogues (see
 * optimize.c), and only where the blocked kernels run: fp32 and bf16
 * sessions (bf16: conv_nchwc_bf16 competes with the f32 algorithms), CPUs
 * with AVX-512, no device (the CUDA algorithms take plain Conv nodes).
 * Nodes are visited in topological order, so a convolution's producer has
 * been converted (or not) before it.
 */
#include <stdlib.h>
#include <string.h>

#include "graph/passes/passes.h"
#include "ops/nchwc.h"

/* Grouped convolutions run in the blocked layout as dense ones restricted
 * to the input blocks of each output block's groups (kiln.ConvNCHWc), when
 * that costs at most this many times the products they need: only groups
 * of whole blocks (AlexNet's group-2 layers: 15-20% faster than the plain
 * per-group GEMMs). ShuffleNet's groups (68 channels into 17: twice the
 * products; 1088 into 68: 1.2 times) measured 30% slower there, with the
 * reorders around its channel shuffles, than in the plain layout. */
#define MAX_GROUP_OVERHEAD 1.0
/* Windowed (not 1x1) convolutions whose groups are narrower than a block
 * (4 or 8 input channels: ResNeXt-style blocks of small networks) lower to
 * per-group im2col GEMMs of a few rows, 12-19 GFLOP/s; the blocked kernel
 * computing 2-4 times their products (all of a block's groups at once)
 * measured 1.8-2.5x faster (a 32x32 PyTorch ResNet's 16- and 32-channel
 * group-4 3x3 layers). Narrow 1x1 groups stay plain: their per-group GEMMs
 * read X as it is (ShuffleNet's 24-channel group-4 layer: 0.15 ms plain,
 * 0.18 ms blocked plus a 0.13 ms reorder). */
#define MAX_NARROW_GROUP_OVERHEAD 4.0

/* What a convertible convolution node reads. */
typedef struct conv_in {
    int x, w, b, z; /* values (-1 absent) */
    int64_t C, K, group;
} conv_in;

/* 1 if node i is a convolution ConvNCHWc can run; fills *ci. */
static int convertible(kiln__px *p, int i, conv_in *ci) {
    const kiln__node *n = &p->g->nodes[i];
    const int fused = n->domain[0] && strcmp(n->domain, "kiln") == 0 &&
                      strcmp(n->op_type, "FusedConv") == 0;
    if (p->dead[i] || !(fused || kiln__px_is(p, i, "Conv"))) return 0;
    const int ne = n->n_in - n->n_implicit;
    if (ne < 2 || n->in[0] < 0 || n->out[0] < 0) return 0;
    const kiln_tensor *w = kiln__px_const(p, n->in[1]);
    if (!w || w->dtype != KILN_DTYPE_F32 || w->ndim != 4) return 0;
    ci->x = n->in[0];
    ci->w = n->in[1];
    ci->b = ne > 2 ? n->in[2] : -1;
    ci->z = fused && ne > 3 ? n->in[3] : -1;
    ci->group = kiln__attr_i(n, "group", 1);
    ci->K = w->dims[0];
    ci->C = w->dims[1] * ci->group;
    /* depthwise, or grouped where whole input blocks per output block cost
     * at most MAX_GROUP_OVERHEAD (narrow windowed groups
     * MAX_NARROW_GROUP_OVERHEAD) times the products the groups need */
    if (ci->group != 1 && !(w->dims[1] == 1 && ci->K == ci->group)) {
        const int narrow = w->dims[1] < KILN__NCHWC_BLOCK && w->dims[2] * w->dims[3] > 1;
        const double max_overhead = narrow ? MAX_NARROW_GROUP_OVERHEAD : MAX_GROUP_OVERHEAD;
        if (ci->group < 1 || ci->K % ci->group ||
            kiln__nchwc_group_overhead(ci->K, ci->C, ci->group) > max_overhead)
            return 0;
    }
    if (ci->b >= 0 && !kiln__px_const(p, ci->b)) return 0; /* the kernel packs B at plan time */
    const kiln_dtype xt = kiln__px_dtype(p, ci->x);
    return xt == KILN_DTYPE_F32 || xt == KILN_DTYPE_UNDEFINED;
}

/* The blocked twin of plain value v: made once by a ReorderNCHWc node.
 * -1 on OOM. */
static int blocked_of(kiln__px *p, int *blocked, int v) {
    if (blocked[v] >= 0) return blocked[v];
    int bv = kiln__px_new_value(p, p->g->values[v].name);
    int r = bv >= 0 ? kiln__px_add_node(p, p->g->values[v].name, "ReorderNCHWc", "kiln", 1, 1) : -1;
    if (r < 0) return -1;
    p->g->nodes[r].in[0] = v;
    p->g->nodes[r].out[0] = bv;
    p->g->values[bv].producer = r;
    return blocked[v] = bv;
}

static kiln_status convert(kiln__px *p, int i, const conv_in *ci, int *blocked) {
    int plain_x = ci->group == 1 && ci->C < KILN__NCHWC_BLOCK && blocked[ci->x] < 0;
    int x = plain_x ? ci->x : blocked_of(p, blocked, ci->x);
    int z = ci->z >= 0 ? blocked_of(p, blocked, ci->z) : -1;
    int y = p->g->nodes[i].out[0];
    int by = kiln__px_new_value(p, p->g->values[y].name);
    if (x < 0 || (ci->z >= 0 && z < 0) || by < 0) return KILN_E_NOMEM;
    int f = kiln__px_add_node(p, p->g->nodes[i].name, "ConvNCHWc", "kiln",
                              z >= 0 ? 4 : ci->b >= 0 ? 3 : 2, 1);
    if (f < 0) return KILN_E_NOMEM;
    kiln__node *fn = &p->g->nodes[f];
    fn->in[0] = x;
    fn->in[1] = ci->w;
    if (z >= 0 || ci->b >= 0) fn->in[2] = ci->b;
    if (z >= 0) fn->in[3] = z;
    fn->out[0] = by;
    p->g->values[by].producer = f;
    KILN__TRY(kiln__px_copy_attrs(p, f, i));
    if (plain_x) KILN__TRY(kiln__px_attr_int(p, f, "input_blocked", 0));
    kiln__px_kill(p, i);
    blocked[y] = by;
    p->count++;
    return KILN_OK;
}

/* The pools PoolNCHWc runs. */
static const char *const POOLS[] = {"MaxPool", "AveragePool", "GlobalMaxPool",
                                    "GlobalAveragePool"};

/* 1 if node i is a pool PoolNCHWc can run on the output of a converted
 * node (channels[x] >= 0: its blocked f32 twin exists, no reorder is
 * added); for MaxPool, no Indices anyone reads. */
static int pool_convertible(kiln__px *p, int i, const int64_t *channels, int n_values) {
    const kiln__node *n = &p->g->nodes[i];
    int pool = 0;
    for (size_t k = 0; k < sizeof POOLS / sizeof *POOLS && !pool; k++) pool = kiln__px_is(p, i, POOLS[k]);
    if (!pool || n->n_in - n->n_implicit != 1 || n->in[0] < 0 || n->in[0] >= n_values ||
        n->out[0] < 0 || channels[n->in[0]] < 0)
        return 0;
    if (n->n_out > 1 && n->out[1] >= 0 &&
        (kiln__px_uses(p, n->out[1]) > 0 || kiln__px_pinned(p, n->out[1])))
        return 0;
    return 1; /* converted outputs are f32 */
}

static kiln_status convert_pool(kiln__px *p, int i, int *blocked, int64_t *channels) {
    const int x = p->g->nodes[i].in[0], y = p->g->nodes[i].out[0];
    const int by = kiln__px_new_value(p, p->g->values[y].name);
    const int f = by >= 0 ? kiln__px_add_node(p, p->g->nodes[i].name, "PoolNCHWc", "kiln", 1, 1) : -1;
    if (f < 0) return KILN_E_NOMEM;
    kiln__node *fn = &p->g->nodes[f];
    fn->in[0] = blocked[x];
    fn->out[0] = by;
    p->g->values[by].producer = f;
    KILN__TRY(kiln__px_copy_attrs(p, f, i));
    KILN__TRY(kiln__px_attr_string(p, f, "kind", p->g->nodes[i].op_type));
    KILN__TRY(kiln__px_attr_int(p, f, "channels", channels[x]));
    kiln__px_kill(p, i);
    blocked[y] = by;
    channels[y] = channels[x];
    p->count++;
    return KILN_OK;
}

/* 1 if node i is a Concat along the channels of converted outputs whose
 * channel counts, all but the last, are whole blocks: then the blocked
 * tensors concatenated along their block axis are the blocked form of the
 * result (the last input's padding lanes become the result's). *C gets the
 * result's channels. */
static int concat_convertible(kiln__px *p, int i, const int64_t *channels, int n_values,
                              int64_t *C) {
    const kiln__node *n = &p->g->nodes[i];
    const int ne = n->n_in - n->n_implicit;
    if (!kiln__px_is(p, i, "Concat") || ne < 1 || n->out[0] < 0) return 0;
    const int64_t axis = kiln__attr_i(n, "axis", 0);
    if (axis != 1 && axis != -3) return 0; /* inputs are 4-D (converted outputs) */
    *C = 0;
    for (int k = 0; k < ne; k++) {
        const int v = n->in[k];
        if (v < 0 || v >= n_values || channels[v] < 0) return 0;
        if (k < ne - 1 && channels[v] % KILN__NCHWC_BLOCK) return 0;
        *C += channels[v];
    }
    return 1;
}

static kiln_status convert_concat(kiln__px *p, int i, int64_t C, int *blocked, int64_t *channels) {
    const int ne = p->g->nodes[i].n_in - p->g->nodes[i].n_implicit, y = p->g->nodes[i].out[0];
    const int by = kiln__px_new_value(p, p->g->values[y].name);
    const int f = by >= 0 ? kiln__px_add_node(p, p->g->nodes[i].name, "Concat", "", ne, 1) : -1;
    if (f < 0) return KILN_E_NOMEM;
    for (int k = 0; k < ne; k++) p->g->nodes[f].in[k] = blocked[p->g->nodes[i].in[k]];
    p->g->nodes[f].out[0] = by;
    p->g->values[by].producer = f;
    KILN__TRY(kiln__px_attr_int(p, f, "axis", 1));
    kiln__px_kill(p, i);
    blocked[y] = by;
    channels[y] = C;
    p->count++;
    return KILN_OK;
}

/* An inference BatchNormalization node i (constant parameters) of a
 * converted output x: a depthwise 1x1 ConvNCHWc with weights s and bias
 * shift (the map y = x * s + shift it computes per channel), taking the
 * activation that follows it alone (pre-activation networks: BN, Relu,
 * Conv). 1 if converted, 0 if not, <0 on OOM. */
static int convert_bn(kiln__px *p, int i, int n_values, int *blocked, int64_t *channels) {
    const kiln__node *n = &p->g->nodes[i];
    const int x = n->in[0];
    if (x < 0 || x >= n_values || channels[x] < 0 || n->out[0] < 0) return 0;
    int64_t k;
    double *s;
    const int a = kiln__px_bn_affine(p, i, &k, &s);
    if (a <= 0) return a;
    if (k != channels[x]) {
        free(s);
        return 0;
    }
    kiln_tensor *w = NULL, *b = NULL;
    const int64_t wd[4] = {k, 1, 1, 1};
    if (kiln_tensor_create(KILN_DTYPE_F32, 4, wd, &w) == KILN_OK)
        kiln_tensor_create(KILN_DTYPE_F32, 1, &k, &b);
    if (!w || !b) {
        free(s);
        kiln_tensor_free(w);
        kiln_tensor_free(b);
        return -1;
    }
    for (int64_t c = 0; c < k; c++) {
        ((float *)w->data)[c] = (float)s[c];
        ((float *)b->data)[c] = (float)s[k + c];
    }
    free(s);
    const char *name = p->g->nodes[i].name;
    const int vw = kiln__px_add_init(p, name, w);
    const int vb = vw >= 0 ? kiln__px_add_init(p, name, b) : (kiln_tensor_free(b), -1);
    kiln__px_act act;
    const int y = kiln__px_match_act(p, p->g->nodes[i].out[0], &act) ? act.out : p->g->nodes[i].out[0];
    const int by = vb >= 0 ? kiln__px_new_value(p, p->g->values[y].name) : -1;
    const int f = by >= 0 ? kiln__px_add_node(p, name, "ConvNCHWc", "kiln", 3, 1) : -1;
    if (f < 0) return -1;
    kiln__node *fn = &p->g->nodes[f];
    fn->in[0] = blocked[x];
    fn->in[1] = vw;
    fn->in[2] = vb;
    fn->out[0] = by;
    p->g->values[by].producer = f;
    if (kiln__px_attr_int(p, f, "group", k) != KILN_OK) return -1;
    if (y != p->g->nodes[i].out[0]) {
        if (kiln__px_set_act(p, f, &act.act) != KILN_OK) return -1;
        for (int j = 0; j < 2; j++)
            if (act.nodes[j] >= 0) kiln__px_kill(p, act.nodes[j]);
    }
    kiln__px_kill(p, i);
    blocked[y] = by;
    channels[y] = k;
    p->count++;
    return 1;
}

/* Plain value y (K channels) back from its blocked twin, for the readers
 * that stayed plain. */
static kiln_status unblock(kiln__px *p, int y, int by, int64_t K) {
    int r = kiln__px_add_node(p, p->g->values[y].name, "ReorderNCHW", "kiln", 1, 1);
    if (r < 0) return KILN_E_NOMEM;
    p->g->nodes[r].in[0] = by;
    p->g->nodes[r].out[0] = y;
    p->g->values[y].producer = r;
    return kiln__px_attr_int(p, r, "channels", K);
}

/* A projection after a depthwise convolution joins the fused node only
 * where the depthwise output has at least this many pixels per image:
 * the fused kernel then has one group of channel blocks, so its threads
 * split the bands of rows, which small images have too few of (and
 * there the depthwise output stays in cache anyway). MobileNetV2 at batch
 * 8, 2 threads (best of 7 runs): its 56x56 blocks 6-12% faster with the
 * projection fused, the 28x28 ones 2-3% slower. */
#define MIN_PROJECT_PIXELS (56 * 56)

/* 1 if node i is a live kiln.ConvNCHWc with constant weights (and without
 * residual unless allow_z). */
static int blocked_conv(kiln__px *p, int i, int allow_z) {
    if (i < 0 || p->dead[i]) return 0;
    const kiln__node *n = &p->g->nodes[i];
    return strcmp(n->domain, "kiln") == 0 && strcmp(n->op_type, "ConvNCHWc") == 0 &&
           n->n_in - n->n_implicit <= (allow_z ? 4 : 3) && n->in[0] >= 0 && n->out[0] >= 0 &&
           kiln__px_const(p, n->in[1]);
}

/* 1 if every value of integer list attribute `name` of node n is v (or it is absent). */
static int ints_all(const kiln__node *n, const char *name, int64_t v) {
    const int64_t *a;
    const int k = kiln__attr_ints(n, name, &a);
    for (int j = 0; j < k; j++)
        if (a[j] != v) return 0;
    return 1;
}

/* 1 if blocked ConvNCHWc node i is pointwise (1x1 weights of k output and
 * c input channels, stride 1, unpadded, group 1, blocked input) and its
 * activation is known (*act). */
static int pointwise(kiln__px *p, int i, int64_t k, int64_t c, kiln__act *act) {
    const kiln__node *n = &p->g->nodes[i];
    const kiln_tensor *w = kiln__px_const(p, n->in[1]);
    const char *pad = kiln__attr_s(n, "auto_pad", "NOTSET");
    if (w->ndim != 4 || w->dims[0] != k || (c >= 0 && w->dims[1] != c) || w->dims[2] != 1 ||
        w->dims[3] != 1 || kiln__attr_i(n, "group", 1) != 1 ||
        kiln__attr_i(n, "input_blocked", 1) == 0 || !ints_all(n, "strides", 1) ||
        !ints_all(n, "pads", 0) || (strcmp(pad, "NOTSET") != 0 && strcmp(pad, "VALID") != 0))
        return 0;
    if (kiln__act_from_node(n, act) == KILN_OK) return 1;
    kiln__err_clear();
    return 0;
}

/* Pixels per image of blocked value bv, from the shape of the plain value
 * it stands for; -1 if unknown. */
static int64_t pixels_of(kiln__px *p, const int *blocked, int n_values, int bv) {
    for (int v = 0; v < n_values; v++) {
        if (blocked[v] != bv) continue;
        const kiln__value *val = &p->g->values[v];
        if (val->ndim != 4 || val->dims[2].v < 0 || val->dims[3].v < 0) return -1;
        return val->dims[2].v * val->dims[3].v;
    }
    return -1;
}

/* B of ConvNCHWc node i, or a new zero bias of k channels: -1 on OOM. */
static int bias_or_zeros(kiln__px *p, int i, int64_t k) {
    const kiln__node *n = &p->g->nodes[i];
    if (n->n_in - n->n_implicit > 2 && n->in[2] >= 0) return n->in[2];
    kiln_tensor *t = NULL;
    if (kiln_tensor_create(KILN_DTYPE_F32, 1, &k, &t) != KILN_OK) return -1;
    return kiln__px_add_init(p, n->name, t);
}

/* Blocked depthwise ConvNCHWc node i reading, alone, the output of a
 * blocked pointwise ConvNCHWc (no residual) of as many channels -> one
 * kiln.ConvDwNCHWc, with the pointwise projection (and its residual) that
 * alone reads i's output when that has MIN_PROJECT_PIXELS. 1 if fused, 0
 * if not, <0 on OOM. */
static int fuse_pointwise_depthwise(kiln__px *p, int i, const int *blocked, int n_values) {
    if (!blocked_conv(p, i, 0) || kiln__op_find("kiln", "ConvDwNCHWc") < 0) return 0;
    const kiln__node *dn = &p->g->nodes[i];
    const kiln_tensor *w2 = kiln__px_const(p, dn->in[1]);
    const int pi = kiln__px_producer(p, dn->in[0]);
    const int64_t k = w2->dims[0];
    kiln__act act1, act2, act3;
    if (w2->ndim != 4 || w2->dims[1] != 1 || kiln__attr_i(dn, "group", 1) != k ||
        !blocked_conv(p, pi, 0) || kiln__px_sole_user(p, dn->in[0], NULL) != i ||
        kiln__px_pinned(p, dn->in[0]) || !pointwise(p, pi, k, -1, &act1))
        return 0;
    if (kiln__act_from_node(dn, &act2) != KILN_OK) {
        kiln__err_clear();
        return 0;
    }
    /* the projection: a blocked pointwise convolution of k input channels */
    int slot = -1;
    const int ji = kiln__px_sole_user(p, dn->out[0], &slot);
    const kiln_tensor *w3 =
        ji >= 0 && slot == 0 && blocked_conv(p, ji, 1) ? kiln__px_const(p, p->g->nodes[ji].in[1]) : NULL;
    const int64_t k3 = w3 && w3->ndim == 4 ? w3->dims[0] : 0;
    const int project = k3 > 0 && !kiln__px_pinned(p, dn->out[0]) &&
                        pointwise(p, ji, k3, k, &act3) &&
                        pixels_of(p, blocked, n_values, dn->out[0]) >= MIN_PROJECT_PIXELS;
    const int b1 = bias_or_zeros(p, pi, k), b2 = b1 >= 0 ? bias_or_zeros(p, i, k) : -1;
    const int b3 = project && b2 >= 0 ? bias_or_zeros(p, ji, k3) : b2;
    const int nz = project && p->g->nodes[ji].n_in - p->g->nodes[ji].n_implicit > 3;
    const int n_in = project ? 7 + nz : 5;
    const int f = b3 >= 0 ? kiln__px_add_node(p, p->g->nodes[i].name, "ConvDwNCHWc", "kiln", n_in, 1) : -1;
    if (f < 0) return -1;
    kiln__node *fn = &p->g->nodes[f];
    const kiln__node *pw = &p->g->nodes[pi], *dw = &p->g->nodes[i]; /* add_node may move nodes */
    const int ins[8] = {pw->in[0], pw->in[1], b1, dw->in[1], b2,
                        project ? p->g->nodes[ji].in[1] : -1, b3,
                        nz ? p->g->nodes[ji].in[3] : -1};
    for (int j = 0; j < n_in; j++) fn->in[j] = ins[j];
    fn->out[0] = project ? p->g->nodes[ji].out[0] : dw->out[0];
    p->g->values[fn->out[0]].producer = f;
    if (kiln__px_copy_attrs_except(p, f, i, "activation") != KILN_OK ||
        kiln__px_set_act_attr(p, f, "pw_activation", &act1) != KILN_OK ||
        kiln__px_set_act_attr(p, f, project ? "dw_activation" : "activation", &act2) != KILN_OK ||
        (project && kiln__px_set_act_attr(p, f, "activation", &act3) != KILN_OK))
        return -1;
    kiln__px_kill(p, i);
    kiln__px_kill(p, pi);
    if (project) kiln__px_kill(p, ji);
    p->count++;
    return 1;
}

kiln_status kiln__pass_nchwc(kiln__px *p) {
    kiln_graph *g = p->g;
    if ((p->o->precision != KILN_PRECISION_FP32 && p->o->precision != KILN_PRECISION_BF16) ||
        p->o->device || !kiln__cpu_has_avx512f() ||
        kiln__op_find("kiln", "ConvNCHWc") < 0)
        return KILN_OK;
    const int n_values = g->n_values, n_nodes = g->n_nodes;
    int *blocked = malloc((size_t)(n_values + 1) * sizeof *blocked);
    int64_t *channels = malloc((size_t)(n_values + 1) * sizeof *channels);
    kiln_status s = blocked && channels ? KILN_OK : kiln__err(KILN_E_NOMEM, "out of memory");
    for (int v = 0; s == KILN_OK && v < n_values; v++) blocked[v] = -1, channels[v] = -1;
    /* blocked[] grows past n_values only through values made here, which no
     * original node reads: it is only ever indexed by original values */
    for (int i = 0; s == KILN_OK && i < n_nodes; i++) {
        if (pool_convertible(p, i, channels, n_values)) {
            s = convert_pool(p, i, blocked, channels);
            continue;
        }
        const int rb = convert_bn(p, i, n_values, blocked, channels);
        if (rb < 0) s = KILN_E_NOMEM;
        if (rb) continue;
        int64_t cc;
        if (concat_convertible(p, i, channels, n_values, &cc)) {
            s = convert_concat(p, i, cc, blocked, channels);
            continue;
        }
        conv_in ci;
        if (!convertible(p, i, &ci)) continue;
        if ((s = kiln__px_need_opset(p, "kiln", 1)) != KILN_OK) break;
        int y = g->nodes[i].out[0];
        s = convert(p, i, &ci, blocked);
        if (s == KILN_OK) channels[y] = ci.K;
    }
    /* every converted output a plain reader (or the graph) still needs */
    for (int v = 0; s == KILN_OK && v < n_values; v++) {
        if (channels[v] < 0) continue; /* not a converted output (or a plain value with a twin) */
        if (kiln__px_uses(p, v) > 0 || kiln__px_pinned(p, v)) s = unblock(p, v, blocked[v], channels[v]);
    }
    /* pointwise + depthwise pairs (visited as created: the depthwise after its producer) */
    for (int i = 0; s == KILN_OK && i < g->n_nodes; i++)
        if (fuse_pointwise_depthwise(p, i, blocked, n_values) < 0) s = KILN_E_NOMEM;
    free(blocked);
    free(channels);
    if (s == KILN_E_NOMEM) kiln__err(KILN_E_NOMEM, "out of memory");
    return s;
}
