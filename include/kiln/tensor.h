/* kiln/tensor.h: element types and n-dimensional tensors.
 *
 * A tensor has a dtype, a shape (dims), strides (in elements) and a data
 * pointer. Tensors made by kiln_tensor_create own their data; views and
 * wrapped tensors do not.
 */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_MAX_DIMS 12

/* Element types. The values are ONNX's TensorProto.DataType numbers.
 * Every element takes whole bytes in memory: the float8 types (17-20, 24)
 * hold their 8-bit code; the sub-byte types are stored unpacked, one element
 * per byte: uint4/uint2 and float4e2m1 hold their code (0..15 / 0..3) in a
 * uint8, int4/int2 their value (-8..7 / -2..1) in an int8. Only the ONNX
 * serialization packs them (2 or 4 to a byte). */
#define KILN_DTYPE_MAP(X)              \
    X(F32, 1, "float32", 4)            \
    X(U8, 2, "uint8", 1)               \
    X(I8, 3, "int8", 1)                \
    X(U16, 4, "uint16", 2)             \
    X(I16, 5, "int16", 2)              \
    X(I32, 6, "int32", 4)              \
    X(I64, 7, "int64", 8)              \
    X(STRING, 8, "string", sizeof(char *)) \
    X(BOOL, 9, "bool", 1)              \
    X(F16, 10, "float16", 2)           \
    X(F64, 11, "float64", 8)           \
    X(U32, 12, "uint32", 4)            \
    X(U64, 13, "uint64", 8)            \
    X(BF16, 16, "bfloat16", 2)         \
    X(F8E4M3FN, 17, "float8e4m3fn", 1) \
    X(F8E4M3FNUZ, 18, "float8e4m3fnuz", 1) \
    X(F8E5M2, 19, "float8e5m2", 1)     \
    X(F8E5M2FNUZ, 20, "float8e5m2fnuz", 1) \
    X(U4, 21, "uint4", 1)              \
    X(I4, 22, "int4", 1)               \
    X(F4E2M1, 23, "float4e2m1", 1)     \
    X(F8E8M0, 24, "float8e8m0", 1)     \
    X(U2, 25, "uint2", 1)              \
    X(I2, 26, "int2", 1)

typedef enum kiln_dtype {
    KILN_DTYPE_UNDEFINED = 0,
#define KILN__DTYPE_ENUM(name, value, text, size) KILN_DTYPE_##name = value,
    KILN_DTYPE_MAP(KILN__DTYPE_ENUM)
#undef KILN__DTYPE_ENUM
} kiln_dtype;

typedef struct kiln_tensor kiln_tensor;

/* Name ("float32", ...) of a dtype, "undefined" for unknown values. */
const char *kiln_dtype_name(kiln_dtype dt);
/* Size of one element in bytes; 0 for an unknown dtype. */
size_t kiln_dtype_size(kiln_dtype dt);
/* 1 if dt is one of the dtypes above. */
int kiln_dtype_valid(int dt);
/* 1 for the signed and unsigned integer dtypes (not bool), else 0. */
int kiln_dtype_is_integer(kiln_dtype dt);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float kiln_f16_to_f32(uint16_t h);
uint16_t kiln_f32_to_f16(float f);
float kiln_bf16_to_f32(uint16_t b);
uint16_t kiln_f32_to_bf16(float f);

/* New contiguous tensor with zeroed data, owned by the tensor.
 * STRING tensors start with every element "" (each string owned by the tensor). */
kiln_status kiln_tensor_create(kiln_dtype dt, int ndim, const int64_t *dims, kiln_tensor **out);
/* Tensor over caller memory (contiguous); the caller keeps ownership of data
 * and must keep it alive while the tensor is used. */
kiln_status kiln_tensor_wrap(kiln_dtype dt, int ndim, const int64_t *dims, void *data,
                             kiln_tensor **out);
/* Frees t and, if it owns it, its data. NULL is fine. */
void kiln_tensor_free(kiln_tensor *t);

kiln_dtype kiln_tensor_dtype(const kiln_tensor *t);
int kiln_tensor_ndim(const kiln_tensor *t);
const int64_t *kiln_tensor_dims(const kiln_tensor *t);
const int64_t *kiln_tensor_strides(const kiln_tensor *t); /* in elements */
void *kiln_tensor_data(const kiln_tensor *t);
int64_t kiln_tensor_numel(const kiln_tensor *t);
int kiln_tensor_is_contiguous(const kiln_tensor *t);

/* Views share t's data and are valid while t lives. The view is freed with
 * kiln_tensor_free (which leaves t's data alone). */
/* perm: new axis i is old axis perm[i]. */
kiln_status kiln_tensor_transpose_view(const kiln_tensor *t, const int *perm, kiln_tensor **out);
/* Elements start, start+step, ... (< end for step > 0, > end for step < 0) of axis. */
kiln_status kiln_tensor_slice_view(const kiln_tensor *t, int axis, int64_t start, int64_t end,
                                   int64_t step, kiln_tensor **out);
/* Same elements, new shape; t must be contiguous. */
kiln_status kiln_tensor_reshape_view(const kiln_tensor *t, int ndim, const int64_t *dims,
                                     kiln_tensor **out);

/* New contiguous owned copy of t (any strides) converted to dtype dt
 * (KILN_DTYPE_UNDEFINED keeps t's dtype). Float to integer truncates toward
 * zero; numbers to bool are x != 0; strings parse/format numbers. */
kiln_status kiln_tensor_copy(const kiln_tensor *t, kiln_dtype dt, kiln_tensor **out);

/* numpy .npy files (format 1.0/2.0/3.0, little-endian, C order; bool,
 * ints, float16/32/64; bfloat16 is not a numpy type and is refused). */
kiln_status kiln_tensor_load_npy(const char *path, kiln_tensor **out);
kiln_status kiln_tensor_save_npy(const kiln_tensor *t, const char *path);

/* ---- sequences and optionals ---------------------------------------------
 * ONNX sequence and optional values are kiln_tensor handles too: a sequence
 * holds any number of tensors of one element dtype (shapes may differ), an
 * optional holds nothing or one value (a tensor or a sequence). They are
 * freed with kiln_tensor_free and deep-copied by kiln_tensor_copy (with
 * KILN_DTYPE_UNDEFINED); kiln_tensor_dtype of one is not an element dtype:
 * use kiln_tensor_elem_dtype. Session inputs and outputs may be either. */
int kiln_tensor_is_sequence(const kiln_tensor *t);
int kiln_tensor_is_optional(const kiln_tensor *t);
/* dtype of the tensors a sequence or optional holds (known even when it is
 * empty; KILN_DTYPE_UNDEFINED if never said); a tensor's own dtype. */
kiln_dtype kiln_tensor_elem_dtype(const kiln_tensor *t);
/* Items held: the length of a sequence, 0 or 1 for an optional, -1 for a
 * tensor. */
int64_t kiln_tensor_num_items(const kiln_tensor *t);
/* Item i of a sequence or optional, borrowed: valid while t lives and is not
 * changed (for a session output: until the next run). NULL if t is a tensor
 * or i is out of range. */
const kiln_tensor *kiln_tensor_item(const kiln_tensor *t, int64_t i);
/* New sequence of copies of items[0..n) (items may be NULL when n is 0).
 * Every item must be a tensor of dtype elem. The caller owns *out. */
kiln_status kiln_sequence_create(kiln_dtype elem, int64_t n, const kiln_tensor *const *items,
                                 kiln_tensor **out);
/* New optional holding a copy of item (a tensor of dtype elem or a sequence
 * of elem), or nothing if item is NULL. The caller owns *out. */
kiln_status kiln_optional_create(kiln_dtype elem, const kiln_tensor *item, kiln_tensor **out);
/* Reads one serialized ONNX SequenceProto / OptionalProto (the backend test
 * suite's .pb files for sequence and optional values; items are dense tensors
 * or, for optionals, sequences). An empty one has element dtype UNDEFINED.
 * The caller owns *out; name (may be NULL) receives the value's name (free()). */
kiln_status kiln_sequence_load_onnx_pb(const char *path, kiln_tensor **out, char **name);
kiln_status kiln_optional_load_onnx_pb(const char *path, kiln_tensor **out, char **name);

#ifdef __cplusplus
}
#endif
#endif
