/* tools/kiln/train_data.c: kiln train's data sets and batch making
 * (train_data.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train_data.h"

/* ---- loading ------------------------------------------------------------------- */

/* 1 if path starts like a .npy file. */
static int is_npy(const char *path) {
    char magic[6] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return got == 6 && !memcmp(magic, "\x93NUMPY", 6);
}

static kiln_status load_array(const char *path, kiln_tensor **out) {
    return is_npy(path) ? kiln_tensor_load_npy(path, out) : kiln_idx_load(path, out);
}

/* d->x (the first n samples, in the layout for a model input of rank
 * in_rank) from samples src (N, ...); values through kiln_tensor_copy to f32,
 * u8 scaled to [0,1]. */
static int fill_x(const char *what, const kiln_tensor *src, int in_rank, int64_t n, train_set *d) {
    const int64_t *id = kiln_tensor_dims(src);
    int sr = kiln_tensor_ndim(src);
    int64_t sample = kiln_tensor_numel(src) / (id[0] ? id[0] : 1), dims[8] = {n};
    int nd;
    if (in_rank == 2) {
        dims[1] = sample;
        nd = 2;
    } else if (in_rank == sr + 1 && sr == 3) {
        dims[1] = 1, dims[2] = id[1], dims[3] = id[2];
        nd = 4;
    } else if (in_rank == sr && sr <= 8) {
        for (int k = 1; k < sr; k++) dims[k] = id[k];
        nd = sr;
    } else {
        fprintf(stderr, "kiln train: error: %s has rank %d; the model's input has rank %d (expected "
                "2, or 4 for (N,1,H,W) images)\n", what, sr, in_rank);
        return -1;
    }
    kiln_tensor *first = NULL, *f32 = NULL; /* the first n samples, then as f32 */
    kiln_status s = kiln_tensor_slice_view(src, 0, 0, n, 1, &first);
    if (s == KILN_OK) s = kiln_tensor_copy(first, KILN_DTYPE_F32, &f32);
    kiln_tensor_free(first);
    if (s == KILN_OK) s = kiln_tensor_create(KILN_DTYPE_F32, nd, dims, &d->x);
    if (s != KILN_OK) {
        kiln_tensor_free(f32);
        return kiln_cli_fail("train", s);
    }
    const float *from = kiln_tensor_data(f32);
    float *x = kiln_tensor_data(d->x), scale = kiln_tensor_dtype(src) == KILN_DTYPE_U8 ? 1 / 255.0f : 1;
    for (int64_t i = 0; i < n * sample; i++) x[i] = from[i] * scale;
    kiln_tensor_free(f32);
    d->n = n;
    d->sample = sample;
    d->per_label = 1;
    return 0;
}

/* d->labels from n values of src (any integer dtype, or whole floats from a
 * CSV column: at stride, offset), each checked against classes. */
static int fill_labels(const char *what, const kiln_tensor *src, int64_t n, int64_t stride,
                       int64_t offset, int64_t classes, train_set *d) {
    kiln_status s = kiln_tensor_create(KILN_DTYPE_I64, 1, &n, &d->labels);
    if (s != KILN_OK) return kiln_cli_fail("train", s);
    kiln_tensor *first = NULL, *f64 = NULL; /* the first n rows, as f64 */
    s = kiln_tensor_slice_view(src, 0, 0, n, 1, &first);
    if (s == KILN_OK) s = kiln_tensor_copy(first, KILN_DTYPE_F64, &f64);
    kiln_tensor_free(first);
    if (s != KILN_OK) return kiln_cli_fail("train", s);
    const double *v = kiln_tensor_data(f64);
    int64_t *l = kiln_tensor_data(d->labels);
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        double x = v[i * stride + offset];
        l[i] = (int64_t)x;
        if (x != (double)l[i] || l[i] < 0 || (classes > 0 && l[i] >= classes)) {
            fprintf(stderr, "kiln train: error: %s: label %g of sample %lld is not a class of the "
                    "model (0..%lld)\n", what, x, (long long)i, (long long)classes - 1);
            rc = -1;
        }
    }
    kiln_tensor_free(f64);
    return rc;
}

int train_set_load_images(const char *images, const char *labels, int in_rank, int64_t limit,
                          int64_t classes, train_set *d) {
    kiln_tensor *img = NULL, *lab = NULL;
    memset(d, 0, sizeof *d);
    kiln_status s = load_array(images, &img);
    if (s == KILN_OK) s = load_array(labels, &lab);
    if (s != KILN_OK) {
        kiln_tensor_free(img);
        return kiln_cli_fail("train", s);
    }
    int rc = -1;
    int img_ok = kiln_tensor_ndim(img) >= 2 &&
                 (kiln_tensor_dtype(img) == KILN_DTYPE_U8 || kiln_tensor_dtype(img) == KILN_DTYPE_F32 ||
                  kiln_tensor_dtype(img) == KILN_DTYPE_F64);
    if (!img_ok || !kiln_dtype_is_integer(kiln_tensor_dtype(lab)) || kiln_tensor_ndim(lab) != 1 ||
        kiln_tensor_dims(lab)[0] != kiln_tensor_dims(img)[0]) {
        fprintf(stderr, "kiln train: error: %s and %s: expected images (N,H,W...) of u8, float32 or "
                "float64 and integer labels (N) of the same N\n", images, labels);
    } else {
        int64_t n = kiln_tensor_dims(img)[0] < limit ? kiln_tensor_dims(img)[0] : limit;
        rc = fill_x(images, img, in_rank, n, d);
        if (!rc) rc = fill_labels(labels, lab, n, 1, 0, classes, d);
    }
    kiln_tensor_free(img);
    kiln_tensor_free(lab);
    if (rc) train_set_free(d);
    return rc;
}

int train_set_load_csv(const char *path, int in_rank, int64_t limit, int64_t classes, train_set *d) {
    kiln_tensor *t = NULL, *feat = NULL;
    memset(d, 0, sizeof *d);
    kiln_status s = kiln_csv_load(path, &t);
    if (s != KILN_OK) return kiln_cli_fail("train", s);
    int64_t rows = kiln_tensor_dims(t)[0], cols = kiln_tensor_dims(t)[1], rc = -1;
    int64_t n = rows < limit ? rows : limit;
    if (cols < 2) {
        fprintf(stderr, "kiln train: error: %s: %lld column(s); expected features and a label "
                "column (the last)\n", path, (long long)cols);
    } else if ((s = kiln_tensor_slice_view(t, 1, 0, cols - 1, 1, &feat)) != KILN_OK) {
        rc = kiln_cli_fail("train", s);
    } else {
        rc = fill_x(path, feat, in_rank, n, d); /* copy makes the view contiguous */
        if (!rc) rc = fill_labels(path, t, n, cols, cols - 1, classes, d);
    }
    kiln_tensor_free(feat);
    kiln_tensor_free(t);
    if (rc) train_set_free(d);
    return (int)rc;
}

int train_set_load_text(const char *path, int64_t seq_len, int64_t limit, train_set *d) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kiln train: error: %s: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 65536 > cap) {
            unsigned char *grown = realloc(text, cap = 2 * cap + 65536);
            if (!grown) {
                free(text);
                fclose(f);
                return kiln_cli_fail("train", KILN_E_NOMEM);
            }
            text = grown;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    int bad = ferror(f);
    fclose(f);
    int64_t n = len > (size_t)seq_len ? (int64_t)((len - 1) / (size_t)seq_len) : 0;
    if (n > limit) n = limit;
    if (bad || n == 0) {
        fprintf(stderr, "kiln train: error: %s: %s\n", path,
                bad ? "read error" : "shorter than one window of --seq-len + 1 bytes");
        free(text);
        return -1;
    }
    int64_t dims[2] = {n, seq_len};
    kiln_status s = kiln_tensor_create(KILN_DTYPE_I64, 2, dims, &d->x);
    if (s == KILN_OK) s = kiln_tensor_create(KILN_DTYPE_I64, 2, dims, &d->labels);
    if (s != KILN_OK) {
        free(text);
        train_set_free(d);
        return kiln_cli_fail("train", s);
    }
    int64_t *x = kiln_tensor_data(d->x), *l = kiln_tensor_data(d->labels);
    for (int64_t i = 0; i < n * seq_len; i++) {
        x[i] = text[i];
        l[i] = text[i + 1];
    }
    free(text);
    d->n = n;
    d->sample = d->per_label = seq_len;
    return 0;
}

void train_set_normalize(train_set *d, float mean, float std) {
    float *x = kiln_tensor_data(d->x);
    for (int64_t i = 0; i < d->n * d->sample; i++) x[i] = (x[i] - mean) / std;
}

void train_set_free(train_set *d) {
    kiln_tensor_free(d->x);
    kiln_tensor_free(d->labels);
    memset(d, 0, sizeof *d);
}

/* ---- batches --------------------------------------------------------------------- */

/* Sample x (C,H,W) shifted by (dy, dx) with zeros coming in, mirrored if flip, into out. */
static void augment_image(const float *x, float *out, int64_t c, int64_t h, int64_t w, int64_t dy,
                          int64_t dx, int flip) {
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                int64_t si = i + dy, sj = (flip ? w - 1 - j : j) + dx;
                out[(ch * h + i) * w + j] =
                    si >= 0 && si < h && sj >= 0 && sj < w ? x[(ch * h + si) * w + sj] : 0.0f;
            }
}

#define DEPTH 2 /* batches made ahead */

struct train_batches {
    const train_set *d;
    const int64_t *order;
    int64_t batch, n_batches, epoch;
    train_augment aug;
    int use_aug;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kiln_tensor *x[DEPTH], *labels[DEPTH];
    int64_t made, taken; /* batches made by the thread / taken by the caller */
    int failed, stop;
};

/* Batch k of the pass into *x, *labels. */
static kiln_status make_batch(const train_batches *b, int64_t k, kiln_tensor **x, kiln_tensor **labels) {
    const train_set *d = b->d;
    int64_t lo = k * b->batch, hi = lo + b->batch < d->n ? lo + b->batch : d->n, dims[8];
    int nd = kiln_tensor_ndim(d->x), nl = kiln_tensor_ndim(d->labels);
    kiln_dtype dt = kiln_tensor_dtype(d->x);
    size_t esize = kiln_dtype_size(dt);
    memcpy(dims, kiln_tensor_dims(d->x), (size_t)nd * sizeof *dims);
    dims[0] = hi - lo;
    kiln_status s = kiln_tensor_create(dt, nd, dims, x);
    if (s == KILN_OK) s = kiln_tensor_create(KILN_DTYPE_I64, nl, (int64_t[]){hi - lo, d->per_label}, labels);
    if (s != KILN_OK) {
        kiln_tensor_free(*x);
        return s;
    }
    const char *src = kiln_tensor_data(d->x);
    const int64_t *ls = kiln_tensor_data(d->labels);
    char *dst = kiln_tensor_data(*x);
    int64_t *ld = kiln_tensor_data(*labels);
    for (int64_t i = lo; i < hi; i++) {
        int64_t j = b->order ? b->order[i] : i;
        void *out = dst + (size_t)((i - lo) * d->sample) * esize;
        memcpy(ld + (i - lo) * d->per_label, ls + j * d->per_label, (size_t)d->per_label * sizeof *ld);
        if (!b->use_aug) {
            memcpy(out, src + (size_t)(j * d->sample) * esize, (size_t)d->sample * esize);
            continue;
        }
        uint64_t r = kiln_cli_mix64(kiln_cli_mix64(b->aug.seed ^ (uint64_t)b->epoch * 0x9E3779B97F4A7C15ull) +
                                    (uint64_t)i);
        int64_t span = 2 * b->aug.crop_pad + 1;
        int64_t dy = (int64_t)(r % (uint64_t)span) - b->aug.crop_pad;
        int64_t dx = (int64_t)((r >> 20) % (uint64_t)span) - b->aug.crop_pad;
        int flip = b->aug.hflip && (r >> 63);
        augment_image((const float *)src + j * d->sample, out, dims[1], dims[2], dims[3], dy, dx, flip);
    }
    return KILN_OK;
}

static void *producer(void *arg) {
    train_batches *b = arg;
    for (int64_t k = 0; k < b->n_batches; k++) {
        pthread_mutex_lock(&b->mu);
        while (!b->stop && b->made - b->taken >= DEPTH) pthread_cond_wait(&b->cv, &b->mu);
        int stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        if (stop) break;
        kiln_tensor *x = NULL, *l = NULL;
        kiln_status s = make_batch(b, k, &x, &l);
        pthread_mutex_lock(&b->mu);
        if (s != KILN_OK) {
            b->failed = 1;
        } else {
            b->x[k % DEPTH] = x;
            b->labels[k % DEPTH] = l;
            b->made++;
        }
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        if (s != KILN_OK) break;
    }
    return NULL;
}

int train_batches_start(const train_set *d, const int64_t *order, int64_t batch,
                        const train_augment *aug, int64_t epoch, train_batches **out) {
    *out = NULL;
    if (aug && (aug->crop_pad > 0 || aug->hflip) &&
        (kiln_tensor_ndim(d->x) != 4 || kiln_tensor_dtype(d->x) != KILN_DTYPE_F32)) {
        fprintf(stderr, "kiln train: error: --random-crop and --hflip need image inputs (N,C,H,W)\n");
        return -1;
    }
    train_batches *b = calloc(1, sizeof *b);
    if (!b) return kiln_cli_fail("train", KILN_E_NOMEM);
    *b = (train_batches){.d = d, .order = order, .batch = batch, .epoch = epoch,
                         .n_batches = (d->n + batch - 1) / batch};
    if (aug && (aug->crop_pad > 0 || aug->hflip)) {
        b->aug = *aug;
        b->use_aug = 1;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, producer, b) != 0) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        free(b);
        fprintf(stderr, "kiln train: error: cannot start the data thread\n");
        return -1;
    }
    *out = b;
    return 0;
}

int train_batches_next(train_batches *b, kiln_tensor **x, kiln_tensor **labels) {
    if (b->taken == b->n_batches) return 1;
    pthread_mutex_lock(&b->mu);
    while (b->made == b->taken && !b->failed) pthread_cond_wait(&b->cv, &b->mu);
    if (b->made == b->taken) { /* the thread failed making this batch */
        pthread_mutex_unlock(&b->mu);
        fprintf(stderr, "kiln train: error: out of memory making batch %lld\n", (long long)b->taken + 1);
        return -1;
    }
    *x = b->x[b->taken % DEPTH];
    *labels = b->labels[b->taken % DEPTH];
    b->x[b->taken % DEPTH] = NULL;
    b->labels[b->taken % DEPTH] = NULL;
    b->taken++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

void train_batches_stop(train_batches *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    for (int k = 0; k < DEPTH; k++) {
        kiln_tensor_free(b->x[k]);
        kiln_tensor_free(b->labels[k]);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
