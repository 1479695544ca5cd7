/* tools/kiln/train_data.h: kiln train's data: loading image or CSV sets into
 * the model's input layout, and making batches (shuffled order, augmentation)
 * on a background thread while the trainer steps. */
#ifndef KILN_TOOLS_TRAIN_DATA_H
#define KILN_TOOLS_TRAIN_DATA_H

#include <stdint.h>

#include "kiln/kiln.h"

typedef struct train_set {
    kiln_tensor *x;      /* (N, ...) in the model's input layout: f32, or int64 ids (text) */
    kiln_tensor *labels; /* (N) int64, or (N, T) for text: a label per position */
    int64_t n, sample;   /* samples, values per sample */
    int64_t per_label;   /* labels per sample: 1, or T */
} train_set;

/* Images and labels, each an IDX file (.gz or not) or a .npy file (told apart
 * by content). Images: u8 scaled to [0,1], or float taken as they are; shaped
 * (N,1,H,W) for a rank-4 model input given (N,H,W), (N,H*W...) for rank 2,
 * else as stored. Labels: integers in [0, classes) (classes <= 0: unchecked).
 * At most limit samples. Prints a one-line error and returns nonzero on
 * failure. */
int train_set_load_images(const char *images, const char *labels, int in_rank, int64_t limit,
                          int64_t classes, train_set *d);
/* A CSV file (kiln_csv_load): each row the features and, in the last column,
 * the label; features (N, columns - 1) for a rank-2 model input. */
int train_set_load_csv(const char *path, int in_rank, int64_t limit, int64_t classes, train_set *d);
/* A text file (bytes, read as they are) cut into n windows of seq_len + 1
 * bytes, one every seq_len: x (n, seq_len) int64 the window's first seq_len
 * bytes, labels (n, seq_len) the bytes that follow each (next-character
 * prediction over 256 classes). */
int train_set_load_text(const char *path, int64_t seq_len, int64_t limit, train_set *d);
/* x = (x - mean) / std, on every sample (f32 sets). */
void train_set_normalize(train_set *d, float mean, float std);
void train_set_free(train_set *d);

/* Augmentation of training images (N,C,H,W): a random shift by up to
 * crop_pad pixels each way with zeros coming in (random crop of the image
 * padded by crop_pad), and a horizontal flip with probability 1/2. The
 * randomness of sample i of epoch e is drawn from (seed, e, i), so a resumed
 * run augments as an unbroken one. */
typedef struct train_augment {
    int crop_pad;
    int hflip;
    uint64_t seed;
} train_augment;

/* Makes the batches of one pass over d on a thread of its own, up to two
 * ahead of the trainer: batch k holds samples order[k*batch ..) (order NULL:
 * in order), augmented as aug says (NULL: not). */
typedef struct train_batches train_batches;
int train_batches_start(const train_set *d, const int64_t *order, int64_t batch,
                        const train_augment *aug, int64_t epoch, train_batches **out);
/* The next batch (the caller frees both tensors); 1 at the end; -1 on failure
 * (message printed). */
int train_batches_next(train_batches *b, kiln_tensor **x, kiln_tensor **labels);
/* Stops the thread (also mid-pass) and frees b; NULL is fine. */
void train_batches_stop(train_batches *b);

#endif
