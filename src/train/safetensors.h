/* src/train/safetensors.h: reading and writing safetensors files (the format
 * of Hugging Face's safetensors: an 8-byte little-endian header length, a JSON
 * header mapping each tensor name to {"dtype", "shape", "data_offsets"} and
 * "__metadata__" to string pairs, then the tensors' bytes, little-endian,
 * row-major). Checkpoints (trainer.c) are written in it.
 */
#ifndef KILN_TRAIN_SAFETENSORS_H
#define KILN_TRAIN_SAFETENSORS_H

#include "core/core.h"

typedef struct kiln__st_tensor {
    const char *name;
    kiln_dtype dtype;
    int ndim;
    const int64_t *dims;
    const void *data; /* kiln__numel(ndim, dims) elements */
} kiln__st_tensor;

/* Writes the tensors and the metadata pairs (keys[i] = values[i]) to path,
 * through path + ".tmp" renamed at the end, so a failed write never leaves a
 * half file under path. Messages name the file. */
kiln_status kiln__st_write(const char *path, int n, const kiln__st_tensor *t, int n_meta,
                           const char *const *keys, const char *const *values);

/* A file read whole. */
typedef struct kiln__st_file {
    char *path;           /* owned copy, for messages */
    struct cJSON *header; /* owned */
    unsigned char *data;  /* owned: the bytes after the header */
    size_t data_len;
} kiln__st_file;

/* Reads and checks path (header JSON, every tensor's dtype, shape and offsets
 * inside the data). Fails naming the file and the entry at fault. */
kiln_status kiln__st_read(const char *path, kiln__st_file *f);
void kiln__st_close(kiln__st_file *f);
/* Tensor `name`, which must have dtype dt and shape (ndim, dims): its bytes in
 * *data. Fails naming the file and tensor (missing, other dtype or shape). */
kiln_status kiln__st_get(const kiln__st_file *f, const char *name, kiln_dtype dt, int ndim,
                         const int64_t *dims, const void **data);
/* Metadata value of key, or NULL. */
const char *kiln__st_meta(const kiln__st_file *f, const char *key);

#endif
