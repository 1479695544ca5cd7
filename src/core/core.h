/* src/core/core.h: internal core API (errors, tensor layout, element access,
 * allocation helpers, thread pool). Everything above src/core may use it. */
#ifndef KILN_CORE_H
#define KILN_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

/* ---- errors ------------------------------------------------------------ */

/* Sets the thread's last-error message and returns s. */
kiln_status kiln__err(kiln_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Index of name in names[0..n) (the choices of an option called `what`) in
 * *index; KILN_E_INVAL otherwise, the message naming the value and listing
 * the choices: "unknown optimizer 'lion' (expected sgd, adam or adamw)". */
kiln_status kiln__name_index(const char *what, const char *const *names, int n, const char *name,
                             int *index);
/* Prepends "<prefix>: " to the current message; returns s. */
kiln_status kiln__err_prefix(kiln_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clears the last-error message. */
void kiln__err_clear(void);

#define KILN__TRY(expr)                        \
    do {                                       \
        kiln_status kiln__st_ = (expr);        \
        if (kiln__st_ != KILN_OK) return kiln__st_; \
    } while (0)

/* Hard limits that reject hostile inputs before allocation. */
#define KILN__MAX_TENSOR_BYTES ((int64_t)1 << 36) /* 64 GiB */
#define KILN__MAX_NUMEL ((int64_t)1 << 34)

/* ---- tensors ----------------------------------------------------------- */

struct kiln_tensor {
    kiln_dtype dtype;               /* or KILN__DTYPE_SEQUENCE / _OPTIONAL */
    kiln_dtype elem;                /* containers: dtype of the tensors held */
    int ndim;
    int64_t dims[KILN_MAX_DIMS];
    int64_t strides[KILN_MAX_DIMS]; /* elements */
    void *data;                     /* NULL: value not (yet) known */
    size_t cap;                     /* bytes allocated when owns */
    unsigned owns : 1;              /* data malloc'd by this tensor */
};

/* Product of dims with overflow and KILN__MAX_NUMEL checks. Returns -1 on
 * overflow or negative dims. */
int64_t kiln__numel(int ndim, const int64_t *dims);
/* Fills contiguous (row-major) strides. */
void kiln__contiguous_strides(int ndim, const int64_t *dims, int64_t *strides);
/* Initializes a tensor header in place (no data). Fails on bad ndim/dims. */
kiln_status kiln__tensor_init(kiln_tensor *t, kiln_dtype dt, int ndim, const int64_t *dims);
/* Makes t's (owned) storage large enough for its shape; grows only. Keeps t's
 * shape. Zero-fills new memory. STRING elements are set to owned "". */
kiln_status kiln__tensor_reserve(kiln_tensor *t);
/* Frees owned storage (and owned strings) but keeps the header. */
void kiln__tensor_release(kiln_tensor *t);
/* Number of bytes of a contiguous tensor of t's shape. */
size_t kiln__tensor_bytes(const kiln_tensor *t);
/* Copies src (contiguous) into dst (same dtype, contiguous, same numel);
 * strings are duplicated. */
kiln_status kiln__tensor_copy_data(kiln_tensor *dst, const kiln_tensor *src);
/* 1 if same ndim and dims. */
int kiln__same_shape(const kiln_tensor *a, const kiln_tensor *b);
/* "(2,3,4)" into buf. Returns buf. */
const char *kiln__shape_str(int ndim, const int64_t *dims, char *buf, size_t n);

/* ---- containers: sequences and optionals ------------------------------
 * A sequence (or an optional) is a tensor of shape (n,) whose elements are
 * owned kiln_tensor pointers; an optional holds 0 (none) or 1 element, which
 * may itself be a sequence. elem is the dtype of the tensors held (known even
 * when empty). Containers never live in the arena; copies are deep. */
#define KILN__DTYPE_SEQUENCE ((kiln_dtype)1000)
#define KILN__DTYPE_OPTIONAL ((kiln_dtype)1001)
static inline int kiln__is_container(kiln_dtype dt) {
    return dt == KILN__DTYPE_SEQUENCE || dt == KILN__DTYPE_OPTIONAL;
}
/* Header of a container of n (empty) slots; no storage (see tensor_reserve). */
kiln_status kiln__container_init(kiln_tensor *t, kiln_dtype kind, kiln_dtype elem, int64_t n);
/* New owned container of kind with n empty slots. The caller owns *out. */
kiln_status kiln__container_new(kiln_dtype kind, kiln_dtype elem, int64_t n, kiln_tensor **out);
/* Element i of a container (NULL if the slot is empty). */
static inline kiln_tensor *kiln__container_item(const kiln_tensor *t, int64_t i) {
    return ((kiln_tensor *const *)t->data)[i];
}
/* Puts item into slot i, freeing what was there. Takes ownership of item. */
void kiln__container_set(kiln_tensor *t, int64_t i, kiln_tensor *item);
/* "sequence(float32)", "optional(sequence(int64))", "float32" for messages. */
const char *kiln__type_str(const kiln_tensor *t, char *buf, size_t n);

/* ---- dtypes: generic element access (slow; for reference kernels) ------ */

int kiln__dtype_is_float(kiln_dtype dt);   /* f16 bf16 f32 f64 */
int kiln__dtype_is_int(kiln_dtype dt);     /* signed or unsigned integer (not bool) */
int kiln__dtype_is_signed(kiln_dtype dt);  /* signed integer or float */

/* Element i of a contiguous buffer of dtype dt, as double / int64 / uint64.
 * Bool reads as 0/1. Strings read as 0 (use the char** directly). */
double kiln__ld_f(kiln_dtype dt, const void *base, int64_t i);
int64_t kiln__ld_i(kiln_dtype dt, const void *base, int64_t i);
uint64_t kiln__ld_u(kiln_dtype dt, const void *base, int64_t i);
/* Stores v converted to dt: float to int truncates toward zero (out of range
 * is undefined in C, so it saturates here), to bool is v != 0, f16/bf16 round
 * to nearest even. */
void kiln__st_f(kiln_dtype dt, void *base, int64_t i, double v);
void kiln__st_i(kiln_dtype dt, void *base, int64_t i, int64_t v);
void kiln__st_u(kiln_dtype dt, void *base, int64_t i, uint64_t v);

/* ---- multi-index iteration with broadcasting ---------------------------- */

/* Broadcasts shapes (numpy rules). Writes the result to *ondim/odims. Fails
 * with a message showing both shapes when they are incompatible. */
kiln_status kiln__broadcast(int na, const int64_t *a, int nb, const int64_t *b, int *ondim,
                            int64_t *odims);
/* Element strides of a tensor of shape (ndim, dims) read as broadcast to
 * (ondim, odims): 0 for broadcast axes. */
void kiln__bcast_strides(int ndim, const int64_t *dims, int ondim, const int64_t *odims,
                         int64_t *strides);

#define KILN__ITER_MAX_OPS 4
/* Walks every index of a shape, keeping one element offset per operand.
 *   kiln__iter it; kiln__iter_init(&it, ndim, dims, nops, strides);
 *   for (int64_t k = 0; k < n; k++, kiln__iter_next(&it)) use it.off[j];
 * kiln__iter_seek positions the iterator at linear index k (for threads). */
typedef struct kiln__iter {
    int ndim, nops;
    int64_t dims[KILN_MAX_DIMS];
    int64_t idx[KILN_MAX_DIMS];
    int64_t strides[KILN__ITER_MAX_OPS][KILN_MAX_DIMS];
    int64_t off[KILN__ITER_MAX_OPS];
} kiln__iter;
void kiln__iter_init(kiln__iter *it, int ndim, const int64_t *dims, int nops,
                     int64_t (*strides)[KILN_MAX_DIMS]);
void kiln__iter_seek(kiln__iter *it, int64_t k);
void kiln__iter_next(kiln__iter *it);

/* ---- allocation -------------------------------------------------------- */

/* 64-byte aligned allocation; NULL on failure (message set). */
void *kiln__aligned_alloc(size_t bytes);
void kiln__aligned_free(void *p);
char *kiln__strdup(const char *s);

/* A growing text/byte buffer. Zero-initialize; the caller frees p. oom sticks
 * once an allocation failed (later writes do nothing). When it holds anything,
 * a NUL follows its n bytes. */
typedef struct kiln__strbuf {
    char *p;
    size_t n, cap;
    int oom;
} kiln__strbuf;
/* Room for extra more bytes (and the NUL); -1 (oom set) when out of memory. */
int kiln__sb_reserve(kiln__strbuf *b, size_t extra);
void kiln__sb_put(kiln__strbuf *b, const void *s, size_t n);
void kiln__sb_str(kiln__strbuf *b, const char *s);
void kiln__sb_printf(kiln__strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Arena: one aligned block; offsets are planned elsewhere. */
typedef struct kiln__arena {
    uint8_t *base;
    size_t size;
} kiln__arena;
kiln_status kiln__arena_reserve(kiln__arena *a, size_t size); /* grows only */
void kiln__arena_free(kiln__arena *a);

/* ---- thread pool ------------------------------------------------------- */

typedef struct kiln__pool kiln__pool;
/* nthreads <= 0: all online cores. */
kiln_status kiln__pool_create(int nthreads, kiln__pool **out);
void kiln__pool_free(kiln__pool *p);
int kiln__pool_size(const kiln__pool *p);
int kiln__cpu_count(void);
/* Runs fn(arg, ith, nth) for ith in [0, nth) with nth = min(n, pool size)
 * (n <= 0: pool size), the caller being ith 0. Returns when all are done.
 * Not reentrant: a task must not call kiln__pool_run on the same pool. */
typedef void (*kiln__task_fn)(void *arg, int ith, int nth);
void kiln__pool_run(kiln__pool *p, int n, kiln__task_fn fn, void *arg);

/* Splits [0, n) into nth near-equal chunks; chunk ith is [*lo, *hi). */
static inline void kiln__split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

/* ---- counter-based random numbers ---------------------------------------- */
/* Element i of the SplitMix64 stream started at seed: a well-mixed 64-bit
 * value that depends only on (seed, i), so any thread can draw any element
 * and a stream is replayed from its seed (dropout masks, per-step seeds). */
static inline uint64_t kiln__hash64(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- cpu ---------------------------------------------------------------- */
/* The CPU's model name (/proc/cpuinfo "model name", else "unknown-cpu"), with
 * spaces turned into '_'; a static string. */
const char *kiln__cpu_model(void);
/* 1 if the CPU has AVX-512F (x86 only; 0 elsewhere). */
int kiln__cpu_has_avx512f(void);

/* ---- time -------------------------------------------------------------- */
double kiln__now_s(void); /* monotonic seconds */

/* ---- narrow dtypes: float8, float4, int4, int2 (dtypes helper) ------------
 * In memory each element takes one byte (see kiln/tensor.h); only the ONNX
 * serialization packs the 4- and 2-bit types. kiln__dtype_is_float counts
 * the minifloats below as floats, kiln__dtype_is_int counts int4/uint4/
 * int2/uint2 as integers, and kiln__ld_* / kiln__st_* convert them: storing
 * a number into a minifloat rounds to nearest even and saturates (ONNX Cast's
 * default), into a 4/2-bit integer it truncates and wraps like the wider ones. */

/* 1 for float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz,
 * float8e8m0 and float4e2m1. */
int kiln__dtype_is_minifloat(kiln_dtype dt);
/* Bits of one element as ONNX packs it: 4 (int4, uint4, float4e2m1),
 * 2 (int2, uint2), else 8 * kiln_dtype_size (0 for an unknown dtype). */
int kiln__dtype_bits(kiln_dtype dt);
/* Exact value of minifloat code `code` of dtype dt: NaN codes give NaN, the
 * e5m2 inf codes +-inf; 0 for a dtype that is not a minifloat. */
double kiln__minifloat_to_f(kiln_dtype dt, uint8_t code);
/* Code of v in minifloat dtype dt, rounded to nearest even. Out of range
 * values and infinities give +-max finite when saturate is set; otherwise
 * +-inf (e5m2) or NaN (the fn/fnuz types), as ONNX Cast with saturate=0.
 * fnuz types have no -0 (it becomes 0); float4e2m1 has no inf or NaN and
 * always saturates. float8e8m0 rounds up (see kiln__f8e8m0_from_f). */
uint8_t kiln__minifloat_from_f(kiln_dtype dt, double v, int saturate);
/* float8e8m0 code of v (ONNX Cast's round_mode "up", "down", "nearest"). */
typedef enum { KILN__E8M0_UP, KILN__E8M0_DOWN, KILN__E8M0_NEAREST } kiln__e8m0_round;
uint8_t kiln__f8e8m0_from_f(double v, int saturate, kiln__e8m0_round mode);
/* ---- end of narrow dtypes ---------------------------------------------------- */

#endif
