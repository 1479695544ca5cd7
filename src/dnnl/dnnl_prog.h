/* src/dnnl/dnnl_prog.h: what the oneDNN-backed algorithms (dnnl_matmul.c,
 * dnnl_conv.c) share: a node compiled at prepare time into a short program of
 * oneDNN primitives, run with no allocation on kiln's side.
 *
 * A program is the algorithm's c->kstate. It holds
 *   - memory objects, each bound to where its data lives at run time: an input
 *     or output tensor of the node, a slice of c->scratch (intermediate
 *     buffers: blocked or bf16 copies of activations), the scratchpad area
 *     (oneDNN's own scratch, user mode), or a buffer the program owns
 *     (weights reordered once into the layout the primitive chose, a
 *     beta-scaled constant);
 *   - steps, each a primitive (a reorder or the compute primitive) with its
 *     execution arguments; the steps run in order on the program's stream.
 * Scratch layout: [intermediates, 64-byte aligned each][scratchpad: the
 * largest of the steps' scratchpads, which run one after the other], plus 64
 * bytes of slack to align c->scratch.
 *
 * Loading: oneDNN is loaded at run time by the first prepare
 * (kiln__dnnl_prog_new; dnnl_api.h says why and how); when it cannot be,
 * every prepare returns KILN_E_UNSUPPORTED.
 *
 * Threads: kiln's Debian oneDNN is built with OpenMP (libgomp). A program
 * runs once per node (the algorithms are not KILN_OPF_PARALLEL) on the
 * calling thread, with oneDNN's OpenMP team sized to c->nth_plan (set before
 * the primitives are created, since some implementations balance their work
 * at creation, and before every run, since the setting is per calling
 * thread). kiln's pool workers sleep on a condition variable meanwhile, and
 * the team sleeps (OMP_WAIT_POLICY=passive, set by the loader) while kiln's
 * nodes run.
 *
 * Choice: the algorithms are KILN_ALGOF_TUNE_ONLY (algo.h): only tuning (or
 * a timing cache entry it wrote, or a test forcing one) picks them, never
 * the cost heuristic, because
 *   - oneDNN's relu and clip post-ops turn NaN into 0 / the lower bound
 *     where kiln's reference keeps it (kiln__dnnl_post_act);
 *   - kiln allocates nothing at run time (intermediates and oneDNN's
 *     scratchpad come from c->scratch), but oneDNN's execute builds its
 *     argument map on the heap inside the library.
 *
 * Errors: oneDNN's "unimplemented" and "invalid arguments" (a shape or
 * attribute combination it does not take) become KILN_E_UNSUPPORTED, so the
 * node goes to another algorithm; so does a primitive for which oneDNN only
 * has its slow reference implementation ("ref:..."), which would never win.
 */
#ifndef KILN_DNNL_PROG_H
#define KILN_DNNL_PROG_H

#include "dnnl/dnnl_api.h"
#include "ops/algo.h"
#include "ops/fused.h"

#define KILN__DNNL_MAX_MEMS 16
#define KILN__DNNL_MAX_STEPS 6
#define KILN__DNNL_MAX_ARGS 8
#define KILN__DNNL_MAX_OWNED 4

typedef enum kiln__dnnl_bind {
    KILN__DNNL_BIND_OWNED = 0, /* a buffer of the program (set at prepare) */
    KILN__DNNL_BIND_IN,        /* c->in[index]->data */
    KILN__DNNL_BIND_OUT,       /* c->out[index]->data */
    KILN__DNNL_BIND_SCRATCH,   /* c->scratch (aligned) + offset */
    KILN__DNNL_BIND_PAD,       /* the scratchpad area */
} kiln__dnnl_bind;

typedef struct kiln__dnnl_mem {
    dnnl_memory_t mem;
    kiln__dnnl_bind bind;
    int index;     /* IN / OUT: tensor index */
    size_t offset; /* SCRATCH: bytes from the aligned scratch base */
} kiln__dnnl_mem;

typedef struct kiln__dnnl_step {
    dnnl_primitive_t prim;
    int nargs;
    int arg[KILN__DNNL_MAX_ARGS]; /* DNNL_ARG_* */
    int mem[KILN__DNNL_MAX_ARGS]; /* indices into the program's mems */
} kiln__dnnl_step;

typedef struct kiln__dnnl_prog {
    dnnl_stream_t stream;
    int nth; /* oneDNN threads (c->nth_plan) */
    int n_mem, n_step, n_owned;
    kiln__dnnl_mem mems[KILN__DNNL_MAX_MEMS];
    kiln__dnnl_step steps[KILN__DNNL_MAX_STEPS];
    void *owned[KILN__DNNL_MAX_OWNED]; /* kiln__aligned_alloc'd */
    size_t interm_bytes;                /* intermediates in the scratch */
    size_t pad_bytes;                   /* the scratchpad area */
    /* cost model inputs (set by the algorithm; kiln__dnnl_cost) */
    double cost_flops;  /* operations, already divided by the compute type's speed-up */
    double cost_eff;    /* fraction of kiln__cost_seconds's peak */
    double cost_bytes;  /* memory traffic of one run, reorders included */
} kiln__dnnl_prog;

/* KILN_OK for dnnl_success; else an error naming `what`: KILN_E_UNSUPPORTED
 * for unimplemented / invalid arguments, KILN_E_NOMEM, or KILN_E_DEVICE. */
kiln_status kiln__dnnl_check(dnnl_status_t s, const char *what);

/* A new program (stream, thread count from c) in *out; loads oneDNN on
 * first use (KILN_E_UNSUPPORTED, saying why, when it cannot be loaded). */
kiln_status kiln__dnnl_prog_new(const kiln__kctx *c, kiln__dnnl_prog **out);
/* Frees a program and everything it owns (release() of every dnnl algorithm). */
void kiln__dnnl_prog_free(void *kstate);

/* Adds a memory object of md bound as said (offset: ignored; a SCRATCH
 * memory gets its own slice, an OWNED one a new buffer of md's size,
 * filled by the caller through kiln__dnnl_mem_data). Returns its index in *out. */
kiln_status kiln__dnnl_mem_add(kiln__dnnl_prog *p, const dnnl_memory_desc_t *md,
                               kiln__dnnl_bind bind, int index, int *out);
/* Data of an OWNED memory. */
void *kiln__dnnl_mem_data(const kiln__dnnl_prog *p, int mem);

/* Appends a step running pd's primitive with args (DNNL_ARG_*, memory index)
 * pairs, plus its scratchpad. Refuses (KILN_E_UNSUPPORTED) reference
 * implementations. Does not take pd. */
kiln_status kiln__dnnl_step_add(kiln__dnnl_prog *p, const_dnnl_primitive_desc_t pd, int nargs,
                                const int *args, const int *mems);
/* Appends a reorder step from memory src to memory dst (its traffic is
 * added to p->cost_bytes). */
kiln_status kiln__dnnl_reorder_add(kiln__dnnl_prog *p, int src, int dst);

/* Reorders, now, `data` described by user_md into a new OWNED memory of md
 * (weights into the layout and dtype a primitive chose). Index in *out. */
kiln_status kiln__dnnl_const_add(kiln__dnnl_prog *p, const dnnl_memory_desc_t *user_md,
                                 const void *data, const dnnl_memory_desc_t *md, int *out);

/* The memories of an operand the compute primitive wants laid out as md,
 * for the node's tensor (bind IN or OUT, index) laid out as user_md: *user
 * is bound to the tensor; *mem is the same memory when the layouts agree,
 * else a new intermediate in the scratch (the caller then appends the
 * reorder: user -> mem before the compute step for an input, mem -> user
 * after it for an output). */
kiln_status kiln__dnnl_operand(kiln__dnnl_prog *p, const dnnl_memory_desc_t *user_md,
                               const dnnl_memory_desc_t *md, kiln__dnnl_bind bind, int index,
                               int *mem, int *user);

/* Completes prepare: c->scratch_bytes from the program, c->kstate = p. */
void kiln__dnnl_prog_finish(kiln__kctx *c, kiln__dnnl_prog *p);

/* run() of every dnnl algorithm: binds the data, runs the steps, waits. */
kiln_status kiln__dnnl_run(kiln__kctx *c);
/* cost() of every dnnl algorithm (kiln__cost_seconds of the program's
 * cost_* fields). */
double kiln__dnnl_cost(const kiln__kctx *c);

/* Fraction of kiln__cost_seconds's peak oneDNN's f32 kernels reach on a
 * GEMM-shaped product (m, n, k): ~0.6 (~190 GFLOP/s a core here) on large
 * products, less where m, n fill its register tiles partly or k is short. */
double kiln__dnnl_gemm_eff(double m, double n, double k);

/* ---- primitive attributes ---------------------------------------------------- */

/* Appends act as an eltwise post-op (NONE: nothing). oneDNN's relu and clip
 * are max/min based: a NaN comes out as 0 (relu) or the lower bound (clip),
 * where kiln's reference keeps it. */
kiln_status kiln__dnnl_post_act(dnnl_post_ops_t po, const kiln__act *act);

/* New attributes with user scratchpad mode and post-ops po (may be NULL);
 * alpha != 1 becomes a common output scale (applied before the post-ops). */
kiln_status kiln__dnnl_attr(dnnl_primitive_attr_t *attr, const_dnnl_post_ops_t po, float alpha);

/* A plain row-major (contiguous) memory descriptor. */
kiln_status kiln__dnnl_md_plain(dnnl_memory_desc_t *md, int ndim, const int64_t *dims,
                                dnnl_data_type_t dt);

/* The algorithm table entry of a dnnl algorithm with this prepare: chosen
 * only by tuning; not PARALLEL (oneDNN runs its own threads inside). */
#define KILN__DNNL_ALGO(algo_name, domain, op, prep)                       \
    const kiln__algo kiln__algo_##algo_name = {                            \
        #algo_name, domain, op, KILN_ALGOF_TUNE_ONLY, prep, kiln__dnnl_cost, \
        kiln__dnnl_run, kiln__dnnl_prog_free}

/* 1 if c's session asks for bf16 products. */
static inline int kiln__dnnl_bf16_ok(const kiln__kctx *c) {
    return c->precision == KILN_PRECISION_BF16;
}

#endif
