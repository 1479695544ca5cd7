/* src/graph/select.h: choosing an algorithm per node (algo.h) and the
 * timing cache that remembers tuned choices.
 *
 * Heuristic (default): every registered algorithm for the node's op (except
 * KILN_ALGOF_TUNE_ONLY ones, which only tuning or a cache entry may choose)
 * is asked to prepare in probe mode; the one whose cost() is lowest is
 * prepared fully and runs, unless the timing cache
 * (when the session has one) holds a tuned winner for the node's key. Tuning: each candidate
 * that prepared is run on the node's real shapes (inputs not known at plan
 * time get seeded random values) and the fastest median wins; winners are
 * kept in the timing cache under a key of CPU model, thread count, precision
 * and node signature (op, input dtypes and shapes, which inputs are
 * constant, attributes), so the next plan of the same signature, in this
 * process or (through the cache file) the next one, skips the timing.
 *
 * On a device, nodes are not timed by the planner: the cheapest device
 * algorithm that accepts a node runs it, and one with variants of its own
 * measures them once per signature (algo.h) and keeps its choice in the
 * cache under a key that names the GPU instead of the CPU.
 *
 * Cache file format (text, one entry a line, '#' comments):
 *   <algorithm name>[#<variant>] <median ms> <key>
 * with the key the rest of the line. Unknown algorithm names are ignored
 * (a newer or older kiln wrote them).
 */
#ifndef KILN_SELECT_H
#define KILN_SELECT_H

#include "ops/algo.h"

typedef struct kiln__timing_cache kiln__timing_cache;

/* An empty cache; path (may be NULL) is where kiln__timing_cache_save writes
 * and what kiln__timing_cache_load reads. */
kiln_status kiln__timing_cache_create(const char *path, kiln__timing_cache **out);
void kiln__timing_cache_free(kiln__timing_cache *tc);
/* Reads the cache file if it exists (a missing file is not an error; a
 * malformed line fails naming the file and line). */
kiln_status kiln__timing_cache_load(kiln__timing_cache *tc);
/* Writes the file if entries were added since the load (atomically: a
 * temporary file renamed over the old one). */
kiln_status kiln__timing_cache_save(kiln__timing_cache *tc);
/* Number of entries. */
int kiln__timing_cache_size(const kiln__timing_cache *tc);

/* How the planner chooses. */
typedef struct kiln__select_opts {
    int precision;          /* kiln_precision */
    int reference;          /* 1: no algorithms, reference kernels only */
    int tune;               /* 1: time candidates */
    const char *force_algo; /* tests: the only algorithm offered (NULL: all) */
    kiln__timing_cache *cache; /* NULL: none (tuning then times every plan) */
    struct kiln__device *dev;  /* the session's GPU (backend/device.h), or NULL: CPU only */
} kiln__select_opts;

/* Chooses the algorithm for the node of c (shapes inferred, constant inputs
 * with data, c->pool/nth_plan/precision set, c->scratch_bytes the reference's
 * request). On KILN_OK, *out is the algorithm (c->kstate, c->scratch_bytes
 * and c->flops from its prepare) or NULL for the reference kernel (c
 * unchanged). Errors other than "unsupported" from a prepare fail.
 * With o->dev, the KILN_ALGOF_CUDA algorithms are asked first and the
 * cheapest that accepts runs the node (c->dev is then o->dev; they are not
 * timed here, only their variants by themselves); only when none does are the
 * CPU algorithms asked (c->dev NULL). */
kiln_status kiln__select_algo(const kiln__select_opts *o, kiln__kctx *c, const kiln__algo **out);

/* Runs an algorithm (or, algo NULL, the reference kernel def) on c: on every
 * thread of c->pool when it is parallel, else once on the caller. Keeps the
 * first error message of a failing thread. */
kiln_status kiln__run_node(const kiln__algo *algo, const kiln__op_def *def, kiln__kctx *c);

#endif
