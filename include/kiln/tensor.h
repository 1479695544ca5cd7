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

/* Element types. The values are ONNX's TensorProto.DataType numbers. */
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
    X(BF16, 16, "bfloat16", 2)

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

#ifdef __cplusplus
}
#endif
#endif
