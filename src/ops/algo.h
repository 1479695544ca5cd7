/* src/ops/algo.h: algorithms, the fast ways to run an op.
 *
 * Every op has one reference kernel (op.h). An algorithm is another way to
 * run it, for some shapes, dtypes and precisions: im2col + GEMM, Winograd or
 * depthwise for Conv; packed-weight GEMM for MatMul; a vectorized softmax.
 * The planner (src/graph/select.c) offers each node that runs from a static
 * plan to every algorithm registered for its (domain, op_type); those that
 * accept it are candidates, and the one with the lowest cost() runs, or with
 * tuning, the one that measured fastest on the real shapes (kept in a timing
 * cache file). Nodes no algorithm accepts, folded nodes and nodes with
 * data-dependent shapes run the reference kernel.
 *
 * A new algorithm is a `const kiln__algo kiln__algo_<name>` and one line
 * KILN_ALGO(<name>) in a file under src/cpu/kernels/algos/ (algos.def
 * includes them).
 *
 * Contract:
 *   prepare(c)   plan time, once per plan. c->in[k]/c->out[k] have their
 *                dtypes and shapes (infer ran); c->in[k]->data is set only for
 *                inputs known at plan time (weights, folded constants), NULL
 *                otherwise; outputs have no data. c->precision is the session's
 *                precision. c->scratch_bytes is 0 on entry.
 *                Returns KILN_OK if the algorithm runs this node, after setting
 *                c->scratch_bytes (bytes of scratch run() gets in c->scratch),
 *                c->kstate (owned state: prepacked or bf16 weights, tables;
 *                freed by release) and c->flops (floating-point or integer
 *                operations of one run, for profiles; 0 if not meaningful).
 *                Returns KILN_E_UNSUPPORTED if it does not handle this node
 *                (a message is optional and not shown); any other error fails
 *                the plan (out of memory, say). It must not change the output
 *                shapes and must leave c->kstate NULL when it fails.
 *                Probing: with c->probe set, the planner only compares costs;
 *                prepare may then skip expensive work (weight transforms,
 *                packing) as long as cost() works on the kstate it leaves.
 *                run() never sees a probed kstate: the winner is prepared
 *                again without probe.
 *   cost(c)      after a successful prepare: the estimated seconds of one run
 *                on c->nth_plan threads (kiln__cost_seconds helps). Lower wins.
 *   run(c)       run time, with c->in/out data set and c->kstate from prepare.
 *                If flags has KILN_OPF_PARALLEL, run is called on every thread
 *                with c->ith/c->nth and splits its own work; otherwise it is
 *                called once (ith 0, nth 1) and may drive c->pool itself
 *                (kiln__pool_run), e.g. for phases that need a barrier
 *                between them. No malloc: scratch comes from c->scratch.
 *   release(s)   frees a kstate (may be NULL if prepare never sets one).
 *
 * Variants: an algorithm with variants of its own (cuDNN's convolution
 * algorithms) may choose among them in prepare by measuring them on the
 * node's shapes (never when probing). It then sets c->variant to the one
 * chosen and c->variant_ms to its time; with a timing cache the planner keeps
 * that ("<name>#<variant>" in the file) and, for the same signature later,
 * hands it back in c->variant (-1 otherwise), which prepare checks still
 * applies and uses without measuring.
 *
 * An algorithm flagged KILN_ALGOF_TUNE_ONLY is never chosen by cost (nor
 * prepared when nothing else could choose it): only tuning, a timing cache
 * entry tuning wrote, or a test's force_algo picks it. For external
 * libraries whose edge semantics differ from the reference (oneDNN's relu
 * and clip turn NaN into a number) or that allocate inside run.
 *
 * Precision: an algorithm computing in bf16 (weights converted once in
 * prepare, products accumulated in f32) or int8 accepts a node only when
 * c->precision asks for it, or when the model itself is quantized (QLinear*,
 * *Integer ops). fp32 nodes must match the reference within 1e-5 normalized
 * error; bf16 within 1e-2.
 */
#ifndef KILN_ALGO_H
#define KILN_ALGO_H

#include "ops/op.h"

#define KILN_ALGOF_TUNE_ONLY 0x100 /* chosen only by tuning, never by the heuristic (external libraries whose edge semantics differ from the reference) */
#define KILN_ALGOF_CUDA 0x200 /* runs on the CUDA device (backend/device.h): offered only when the
                                 session has one (c->dev), and then before every CPU algorithm:
                                 a node runs on the GPU when any CUDA algorithm accepts it.
                                 prepare() sees host data of the constant inputs (upload what
                                 run needs into kstate, through c->dev); run() is called once,
                                 gets device pointers in every c->in/out->data (constants
                                 included) and in c->scratch, and enqueues its work on c->dev's
                                 stream without waiting for it. Not timed by the planner:
                                 chosen by cost (they may measure variants of their own). */

typedef struct kiln__algo {
    const char *name;    /* unique; shown in profiles, stored in timing caches */
    const char *domain;  /* "" for ai.onnx, "kiln" for kiln's fused ops */
    const char *op_type; /* the op it runs */
    int flags;           /* KILN_OPF_PARALLEL, KILN_ALGOF_TUNE_ONLY, or 0 */
    kiln_status (*prepare)(kiln__kctx *c);
    double (*cost)(const kiln__kctx *c);
    kiln_status (*run)(kiln__kctx *c);
    void (*release)(void *kstate); /* may be NULL */
} kiln__algo;

#define KILN_ALGO(name) extern const kiln__algo kiln__algo_##name;
#include "cpu/kernels/algos.def"
#undef KILN_ALGO

/* Every registered algorithm, NULL-terminated. */
extern const kiln__algo *const kiln__algos[];

/* Algorithm named name, or NULL. */
const kiln__algo *kiln__algo_find(const char *name);

/* Estimated seconds of work that does `flops` operations at `efficiency`
 * (0..1] of this CPU's f32 FMA peak on c->nth_plan threads and moves `bytes`
 * through memory. For cost() functions; only the ranking matters. */
double kiln__cost_seconds(const kiln__kctx *c, double flops, double efficiency, double bytes);

#endif
