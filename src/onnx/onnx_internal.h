/* src/onnx/onnx_internal.h: helpers shared by the ONNX reader and writer.
 *
 * tensor_pb.c converts between ONNX TensorProto / SparseTensorProto messages
 * and kiln tensors; import.c builds a kiln_graph from a ModelProto; export.c
 * writes one back. Messages built by the writer are malloc'd piece by piece so
 * that onnx__*__free_unpacked(msg, NULL) releases them.
 */
#ifndef KILN_ONNX_INTERNAL_H
#define KILN_ONNX_INTERNAL_H

#include "core/core.h"
#include "graph/ir.h"
#include "onnx.pb-c.h"

/* Deepest subgraph / function nesting the reader accepts. */
#define KILN__ONNX_MAX_DEPTH 64

/* Most nodes that expanding model-local function calls may add: functions
 * calling functions twice over grow exponentially with the depth, so a small
 * file could otherwise ask for billions of nodes. */
#define KILN__ONNX_MAX_EXPANDED_NODES (1 << 20)

/* Sparse tensors are made dense on load; the dense form may hold at most
 * this many elements per stored value (beyond the small allowance below),
 * so that a few bytes of protobuf cannot ask for gigabytes of zeros. */
#define KILN__ONNX_MAX_SPARSE_FILL 1024
#define KILN__ONNX_SPARSE_ALLOWANCE 4096

/* Where tensor data comes from, for messages and external data. */
typedef struct kiln__onnx_src {
    const char *name;     /* file (or buffer) name used in messages */
    const char *base_dir; /* directory of external data files; NULL: refused */
} kiln__onnx_src;

/* ONNX TensorProto.DataType name ("float8e4m3fn", ...) of any number. */
const char *kiln__onnx_dtype_name(int onnx_type);

/* Converts a TensorProto into a new owned contiguous tensor. Checks the rank,
 * every dim, the element count and the data size before allocating; unknown
 * data types fail with KILN_E_UNSUPPORTED. Messages name the tensor
 * ("tensor 'w': ..."); callers prefix the file and context. */
kiln_status kiln__onnx_tensor_from_proto(const Onnx__TensorProto *tp, const kiln__onnx_src *src,
                                         kiln_tensor **out);
/* Converts a SparseTensorProto (COO: linear or per-axis indices) into a new
 * dense tensor. */
kiln_status kiln__onnx_tensor_from_sparse(const Onnx__SparseTensorProto *sp,
                                          const kiln__onnx_src *src, kiln_tensor **out);

/* Fills a new malloc'd TensorProto (data as raw_data, strings as string_data)
 * from t (any strides). name may be NULL. */
kiln_status kiln__onnx_tensor_to_proto(const kiln_tensor *t, const char *name,
                                       Onnx__TensorProto **out);
/* Same as a SparseTensorProto with linear int64 indices of the non-zeros. */
kiln_status kiln__onnx_sparse_to_proto(const kiln_tensor *t, const char *name,
                                       Onnx__SparseTensorProto **out);

/* Directory part of path ("." if none), malloc'd; NULL on OOM. */
char *kiln__onnx_dirname(const char *path);

/* Reads a whole file into a malloc'd buffer. Messages name the file. */
kiln_status kiln__onnx_read_file(const char *path, uint8_t **buf, size_t *len);

#endif
