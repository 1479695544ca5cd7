/* tools/kiln/cmd_train.c: `kiln train MODEL.onnx --train-images F --train-labels F
 * ... --out DIR`: trains a classifier on IDX image data (kiln/train.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *help =
    "usage: kiln train MODEL.onnx --train-images F --train-labels F\n"
    "                  [--test-images F --test-labels F]\n"
    "                  [--loss cross-entropy|nll|mse|bce-with-logits] [--label-smoothing X]\n"
    "                  [--optimizer sgd|adam|adamw] [--lr X] [--momentum X] [--nesterov]\n"
    "                  [--weight-decay X] [--schedule constant|step|cosine] [--warmup N]\n"
    "                  [--step-size N] [--gamma X] [--min-lr X] [--clip-norm X]\n"
    "                  [--batch N] [--epochs N]\n"
    "                  [--precision fp32|bf16|fp16] [-t N] [--seed S] [--limit N]\n"
    "                  [--resume CKPT] --out DIR\n"
    "\n"
    "Trains MODEL on IDX image data (the MNIST / Fashion-MNIST files, .gz read\n"
    "directly) and writes the trained model, inference form, to DIR/model.onnx,\n"
    "and after every epoch a checkpoint, DIR/checkpoint.safetensors (parameters,\n"
    "running statistics, optimizer state, step, epoch and the data order's random\n"
    "state); --resume continues from one exactly as the run would have gone on.\n"
    "TensorBoard event files go to DIR/events/ (scalars train/loss,\n"
    "train/learning_rate, train/loss_scale with fp16, every step; train/accuracy,\n"
    "test/loss, test/accuracy, every epoch).\n"
    "The model's float32 initializers are the parameters; its first input takes\n"
    "the images as float32 scaled to [0,1], (N,1,H,W) for a rank-4 input or\n"
    "(N,H*W) for a rank-2 one; its first output is the logits (N,C). The loss is\n"
    "the batch mean of --loss; BatchNormalization trains on batch\n"
    "statistics and Dropout draws a new mask every step. Each epoch visits the\n"
    "training set in a seeded random order; a progress line (epoch, step, loss,\n"
    "accuracy, samples/s, ETA) shows on a terminal, and a summary line per epoch\n"
    "is printed. With test data the last line is test_accuracy=0.xxxx.\n"
    "\n"
    "  --train-images F   IDX images (N,H,W) u8\n"
    "  --train-labels F   IDX labels (N) u8\n"
    "  --test-images F    test images, evaluated after every epoch\n"
    "  --test-labels F    test labels\n"
    "  --loss L           cross-entropy (softmax; default), nll (the output is\n"
    "                     log-probabilities), mse or bce-with-logits (against\n"
    "                     one-hot targets)\n"
    "  --label-smoothing X  cross-entropy's target: (1 - X) one-hot + X / C\n"
    "  --optimizer O      sgd (default), adam or adamw\n"
    "  --lr X             learning rate (default 0.01 for sgd, 0.001 otherwise)\n"
    "  --momentum X       SGD momentum (default 0.9)\n"
    "  --nesterov         Nesterov momentum\n"
    "  --weight-decay X   weight decay (default 0; L2 for sgd and adam,\n"
    "                     decoupled for adamw)\n"
    "  --schedule S       learning rate over the run's steps: constant (default),\n"
    "                     step (times --gamma every --step-size steps) or cosine\n"
    "                     (from --lr down to --min-lr at the last step)\n"
    "  --warmup N         the first N steps ramp the rate up linearly (default 0)\n"
    "  --step-size N      steps between the step schedule's decays\n"
    "  --gamma X          the step schedule's factor (default 0.1)\n"
    "  --min-lr X         the cosine schedule's final rate (default 0)\n"
    "  --clip-norm X      scale the gradients down to global norm X when above it\n"
    "  --batch N          batch size (default 64)\n"
    "  --epochs N         epochs (default 1)\n"
    "  --precision P      fp32 (default), or mixed precision: bf16 or fp16, the\n"
    "                     operands and results of every matrix product (forward\n"
    "                     and backward) rounded to it, accumulation, the other\n"
    "                     ops and the weights in fp32; fp16 scales the loss\n"
    "                     dynamically (from 65536; a step with inf/NaN gradients\n"
    "                     is skipped and halves the scale, 2000 clean steps double\n"
    "                     it; the epoch line shows the scale and skipped steps).\n"
    "                     Evaluation and the written model are fp32\n"
    "  -t N               threads (default: all cores)\n"
    "  --seed S           seed of the shuffling and of the dropout masks (default 1)\n"
    "  --limit N          use only the first N samples of each set\n"
    "  --resume CKPT      continue from a checkpoint of the same model, optimizer\n"
    "                     and data; --epochs counts the epochs in all\n"
    "  --out DIR          output directory (created if missing)\n";

typedef struct dataset {
    kiln_tensor *x;      /* (N, ...) f32 in the model's input layout */
    kiln_tensor *labels; /* (N) int64 */
    int64_t n, sample;   /* samples, floats per sample */
} dataset;

static void dataset_free(dataset *d) {
    kiln_tensor_free(d->x);
    kiln_tensor_free(d->labels);
}

/* Loads an IDX image/label pair as the model's input layout (rank in_rank). */
static int load_set(const char *img_path, const char *lab_path, int in_rank, int64_t limit,
                    int64_t n_classes, dataset *d) {
    kiln_tensor *img = NULL, *lab = NULL;
    kiln_status s;
    memset(d, 0, sizeof *d);
    if ((s = kiln_idx_load(img_path, &img)) != KILN_OK ||
        (s = kiln_idx_load(lab_path, &lab)) != KILN_OK) {
        kiln_tensor_free(img);
        return kiln_cli_fail("train", s);
    }
    int rc = -1;
    const int64_t *id = kiln_tensor_dims(img);
    int ir = kiln_tensor_ndim(img);
    if (kiln_tensor_dtype(img) != KILN_DTYPE_U8 || ir < 2 || kiln_tensor_dtype(lab) != KILN_DTYPE_U8 ||
        kiln_tensor_ndim(lab) != 1 || kiln_tensor_dims(lab)[0] != id[0]) {
        fprintf(stderr, "kiln train: error: %s and %s: expected u8 images (N,H,W) and u8 labels (N) "
                "of the same N\n", img_path, lab_path);
        goto done;
    }
    int64_t n = id[0] < limit ? id[0] : limit, sample = kiln_tensor_numel(img) / (id[0] ? id[0] : 1);
    int64_t dims[8] = {n};
    int nd;
    if (in_rank == 2) {
        dims[1] = sample;
        nd = 2;
    } else if (in_rank == ir + 1 && ir == 3) {
        dims[1] = 1;
        dims[2] = id[1];
        dims[3] = id[2];
        nd = 4;
    } else if (in_rank == ir && ir <= 8) {
        for (int k = 1; k < ir; k++) dims[k] = id[k];
        nd = ir;
    } else {
        fprintf(stderr, "kiln train: error: %s has rank %d; the model's input has rank %d (expected "
                "2, or 4 for (N,1,H,W) images)\n", img_path, ir, in_rank);
        goto done;
    }
    if ((s = kiln_tensor_create(KILN_DTYPE_F32, nd, dims, &d->x)) != KILN_OK ||
        (s = kiln_tensor_create(KILN_DTYPE_I64, 1, &n, &d->labels)) != KILN_OK) {
        rc = kiln_cli_fail("train", s);
        goto done;
    }
    const uint8_t *src = kiln_tensor_data(img), *ls = kiln_tensor_data(lab);
    float *x = kiln_tensor_data(d->x);
    int64_t *l = kiln_tensor_data(d->labels);
    for (int64_t i = 0; i < n * sample; i++) x[i] = src[i] / 255.0f;
    for (int64_t i = 0; i < n; i++) {
        l[i] = ls[i];
        if (n_classes > 0 && l[i] >= n_classes) {
            fprintf(stderr, "kiln train: error: %s: label %lld at %lld, but the model has %lld "
                    "classes\n", lab_path, (long long)l[i], (long long)i, (long long)n_classes);
            goto done;
        }
    }
    d->n = n;
    d->sample = sample;
    rc = 0;
done:
    kiln_tensor_free(img);
    kiln_tensor_free(lab);
    if (rc) dataset_free(d);
    return rc;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Copies samples order[lo..hi) of d into the batch tensors (made for hi - lo
 * samples; reshaped views are not needed: the batch owns its memory). */
static int make_batch(const dataset *d, const int64_t *order, int64_t lo, int64_t hi,
                      kiln_tensor **x, kiln_tensor **labels) {
    int64_t dims[8];
    int nd = kiln_tensor_ndim(d->x);
    memcpy(dims, kiln_tensor_dims(d->x), (size_t)nd * sizeof *dims);
    dims[0] = hi - lo;
    kiln_status s;
    if ((s = kiln_tensor_create(KILN_DTYPE_F32, nd, dims, x)) != KILN_OK ||
        (s = kiln_tensor_create(KILN_DTYPE_I64, 1, dims, labels)) != KILN_OK)
        return kiln_cli_fail("train", s);
    const float *src = kiln_tensor_data(d->x);
    const int64_t *ls = kiln_tensor_data(d->labels);
    float *dst = kiln_tensor_data(*x);
    int64_t *ld = kiln_tensor_data(*labels);
    for (int64_t i = lo; i < hi; i++) {
        int64_t k = order ? order[i] : i;
        memcpy(dst + (i - lo) * d->sample, src + k * d->sample, (size_t)d->sample * sizeof(float));
        ld[i - lo] = ls[k];
    }
    return 0;
}

/* Mean loss and accuracy of the trainer's inference form on d. */
static int evaluate(kiln_trainer *t, const dataset *d, int64_t batch, double *loss, double *acc) {
    double lsum = 0;
    int64_t right = 0;
    for (int64_t lo = 0; lo < d->n; lo += batch) {
        int64_t hi = lo + batch < d->n ? lo + batch : d->n, c;
        kiln_tensor *x, *l;
        double bl;
        if (make_batch(d, NULL, lo, hi, &x, &l)) return -1;
        kiln_status s = kiln_trainer_evaluate(t, x, l, &bl, &c);
        kiln_tensor_free(x);
        kiln_tensor_free(l);
        if (s != KILN_OK) return kiln_cli_fail("train", s);
        lsum += bl * (double)(hi - lo);
        right += c;
    }
    *loss = d->n ? lsum / (double)d->n : 0;
    *acc = d->n ? (double)right / (double)d->n : 0;
    return 0;
}

static void fmt_duration(double s, char *buf, size_t len) {
    long v = s > 0 && s < 1e7 ? (long)(s + 0.5) : 0;
    if (v >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, len, "%ld:%02ld", v / 60, v % 60);
}

/* Parses a number option value; -1 (message printed) if bad. */
static int num_arg(const char *opt, const char *v, double lo, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(x >= lo) || !isfinite(x)) {
        fprintf(stderr, "kiln train: error: %s '%s': expected a number >= %g\n", opt, v, lo);
        return -1;
    }
    *out = x;
    return 0;
}

/* Checkpoint after `epochs` epochs, with the data order's random state. */
static int save_checkpoint(kiln_trainer *t, const char *path, int64_t epochs, uint64_t rng) {
    char ep[32], st[32];
    snprintf(ep, sizeof ep, "%lld", (long long)epochs);
    snprintf(st, sizeof st, "%llu", (unsigned long long)rng);
    const char *keys[] = {"epoch", "order_rng"}, *vals[] = {ep, st};
    kiln_status s = kiln_trainer_save(t, path, 2, keys, vals);
    return s == KILN_OK ? 0 : kiln_cli_fail("train", s);
}

/* Restores checkpoint path into t; *epoch and *rng from its metadata. */
static int resume_from(kiln_trainer *t, const char *path, int64_t *epoch, uint64_t *rng) {
    char ep[32], st[32], *e1, *e2;
    kiln_status s;
    if ((s = kiln_checkpoint_meta(path, "epoch", ep, sizeof ep)) != KILN_OK ||
        (s = kiln_checkpoint_meta(path, "order_rng", st, sizeof st)) != KILN_OK)
        return kiln_cli_fail("train", s);
    long long v = strtoll(ep, &e1, 10);
    unsigned long long r = strtoull(st, &e2, 10);
    if (*e1 || *e2 || v < 0) {
        fprintf(stderr, "kiln train: error: %s: metadata epoch '%s' / order_rng '%s' are not "
                "numbers\n", path, ep, st);
        return -1;
    }
    if ((s = kiln_trainer_load(t, path)) != KILN_OK) return kiln_cli_fail("train", s);
    *epoch = v;
    *rng = r;
    printf("resumed from %s after epoch %lld\n", path, v);
    return 0;
}

int kiln_cmd_train(int argc, char **argv) {
    const char *path = NULL, *train_img = NULL, *train_lab = NULL, *test_img = NULL,
               *test_lab = NULL, *out_dir = NULL, *resume = NULL;
    kiln_train_options opt = {0};
    double lr = -1, momentum = 0.9, wd = 0, batch_d = 64, epochs_d = 1, seed_d = 1, limit_d = -1;
    kiln_lr_schedule sched = {.kind = KILN_LR_CONSTANT, .gamma = 0.1};
    double warmup_d = 0, step_size_d = -1;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "--nesterov")) {
            opt.nesterov = 1;
            takes = 0;
        } else if (!v && a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "kiln train: error: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--train-images")) {
            train_img = v;
        } else if (!strcmp(a, "--train-labels")) {
            train_lab = v;
        } else if (!strcmp(a, "--test-images")) {
            test_img = v;
        } else if (!strcmp(a, "--test-labels")) {
            test_lab = v;
        } else if (!strcmp(a, "--out")) {
            out_dir = v;
        } else if (!strcmp(a, "--resume")) {
            resume = v;
        } else if (!strcmp(a, "--loss")) {
            kiln_status s = kiln_loss_parse(v, &opt.loss);
            if (s != KILN_OK) {
                kiln_cli_fail("train", s);
                return 2;
            }
        } else if (!strcmp(a, "--label-smoothing")) {
            bad = num_arg(a, v, 0, &opt.label_smoothing);
        } else if (!strcmp(a, "--precision")) {
            kiln_status s = kiln_train_precision_parse(v, &opt.precision);
            if (s != KILN_OK) {
                kiln_cli_fail("train", s);
                return 2;
            }
        } else if (!strcmp(a, "--schedule")) {
            kiln_status s = kiln_lr_schedule_parse(v, &sched.kind);
            if (s != KILN_OK) {
                kiln_cli_fail("train", s);
                return 2;
            }
        } else if (!strcmp(a, "--warmup")) {
            bad = num_arg(a, v, 0, &warmup_d);
        } else if (!strcmp(a, "--step-size")) {
            bad = num_arg(a, v, 1, &step_size_d);
        } else if (!strcmp(a, "--gamma")) {
            bad = num_arg(a, v, 0, &sched.gamma);
        } else if (!strcmp(a, "--min-lr")) {
            bad = num_arg(a, v, 0, &sched.lr_min);
        } else if (!strcmp(a, "--clip-norm")) {
            bad = num_arg(a, v, 0, &opt.clip_norm);
        } else if (!strcmp(a, "--optimizer")) {
            kiln_status s = kiln_optimizer_parse(v, &opt.optimizer);
            if (s != KILN_OK) {
                kiln_cli_fail("train", s);
                return 2;
            }
        } else if (!strcmp(a, "--lr")) {
            bad = num_arg(a, v, 0, &lr);
        } else if (!strcmp(a, "--momentum")) {
            bad = num_arg(a, v, 0, &momentum);
        } else if (!strcmp(a, "--weight-decay")) {
            bad = num_arg(a, v, 0, &wd);
        } else if (!strcmp(a, "--batch")) {
            bad = num_arg(a, v, 1, &batch_d);
        } else if (!strcmp(a, "--epochs")) {
            bad = num_arg(a, v, 1, &epochs_d);
        } else if (!strcmp(a, "--seed")) {
            bad = num_arg(a, v, 0, &seed_d);
        } else if (!strcmp(a, "--limit")) {
            bad = num_arg(a, v, 1, &limit_d);
        } else {
            int r = kiln_cli_common_option("train", help, argc, argv, &i, &threads, &path);
            if (r < 0) return 2;
            takes = 0;
        }
        if (bad) return 2;
        i += takes;
    }
    if (kiln_cli_need_model(help, path)) return 2;
    if (!train_img || !train_lab || !out_dir || (!test_img != !test_lab)) {
        fprintf(stderr, "kiln train: error: --train-images, --train-labels and --out are required "
                "(and --test-images with --test-labels)\n%s", help);
        return 2;
    }
    if (lr < 0) lr = opt.optimizer == KILN_OPTIMIZER_SGD ? 0.01 : 0.001;
    if (sched.kind == KILN_LR_STEP && step_size_d < 0) {
        fprintf(stderr, "kiln train: error: --schedule step needs --step-size N\n");
        return 2;
    }
    sched.lr = lr;
    sched.warmup = (int64_t)warmup_d;
    sched.step_size = step_size_d > 0 ? (int64_t)step_size_d : 0;
    if (opt.optimizer == KILN_OPTIMIZER_SGD) opt.momentum = momentum;
    opt.weight_decay = wd;
    opt.threads = threads;
    opt.seed = (uint64_t)seed_d;
    const int64_t batch = (int64_t)batch_d, epochs = (int64_t)epochs_d;
    const int64_t limit = limit_d > 0 ? (int64_t)limit_d : INT64_MAX;
    uint64_t rng = (uint64_t)seed_d;

    kiln_graph *g = NULL;
    kiln_trainer *t = NULL;
    kiln_events *ev = NULL;
    dataset train = {0}, test = {0};
    int64_t *order = NULL;
    int rc = 1;
    kiln_status s = kiln_graph_load_onnx(path, &g);
    if (s != KILN_OK) return kiln_cli_fail("train", s);
    kiln_value_info in, out;
    if ((s = kiln_graph_input_info(g, 0, &in)) != KILN_OK ||
        (s = kiln_graph_output_info(g, 0, &out)) != KILN_OK) {
        rc = kiln_cli_fail("train", s);
        goto done;
    }
    int64_t classes = out.ndim == 2 ? out.dims[1] : -1;
    if (load_set(train_img, train_lab, in.ndim, limit, classes, &train)) goto done;
    if (test_img && load_set(test_img, test_lab, in.ndim, limit, classes, &test)) goto done;
    if ((s = kiln_trainer_create(g, &opt, &t)) != KILN_OK) {
        rc = kiln_cli_fail("train", s);
        goto done;
    }
    if (kiln_cli_mkdir_p(out_dir) != 0) {
        fprintf(stderr, "kiln train: error: cannot create %s: %s\n", out_dir, strerror(errno));
        goto done;
    }
    {
        char evdir[4096];
        snprintf(evdir, sizeof evdir, "%s/events", out_dir);
        if ((s = kiln_events_open(evdir, &ev)) != KILN_OK) {
            rc = kiln_cli_fail("train", s);
            goto done;
        }
    }
    char th[16] = "all cores";
    if (threads) snprintf(th, sizeof th, "%d threads", threads);
    static const char *const precisions[] = {"fp32", "bf16", "fp16"};
    printf("kiln train: %s, %lld parameters, %lld training samples%s, batch %lld, %s lr %g, %s, %s\n",
           path, (long long)kiln_trainer_num_params(t), (long long)train.n,
           test.n ? "" : " (no test set)", (long long)batch,
           opt.optimizer == KILN_OPTIMIZER_SGD ? "sgd" : opt.optimizer == KILN_OPTIMIZER_ADAM ? "adam" : "adamw",
           lr, precisions[opt.precision], th);
    int64_t first_epoch = 0;
    if (resume && resume_from(t, resume, &first_epoch, &rng)) goto done;
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out_dir);
    order = malloc((size_t)train.n * sizeof *order + 1);
    if (!order) goto done;
    const int tty = isatty(2);
    const int64_t steps = (train.n + batch - 1) / batch;
    sched.total = epochs * steps - sched.warmup; /* cosine: reaches --min-lr at the last step */
    double test_acc = -1;
    for (int64_t e = first_epoch; e < epochs; e++) {
        /* this epoch's order: a Fisher-Yates shuffle of 0..n-1 from the running
         * random state (all a checkpoint needs to restore it) */
        for (int64_t i = 0; i < train.n; i++) order[i] = i;
        for (int64_t i = train.n - 1; i > 0; i--) {
            int64_t j = (int64_t)(splitmix64(&rng) % (uint64_t)(i + 1)), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double lsum = 0, te = kiln_cli_now_ms(), step_lr = lr, last_test_loss = 0;
        int64_t right = 0, seen = 0;
        for (int64_t st = 0; st < steps; st++) {
            int64_t lo = st * batch, hi = lo + batch < train.n ? lo + batch : train.n, c;
            kiln_tensor *x, *l;
            double bl;
            if (make_batch(&train, order, lo, hi, &x, &l)) goto done;
            step_lr = kiln_lr_at(&sched, e * steps + st);
            s = kiln_trainer_step(t, x, l, step_lr, &bl, &c);
            kiln_tensor_free(x);
            kiln_tensor_free(l);
            if (s != KILN_OK) {
                rc = kiln_cli_fail("train", s);
                goto done;
            }
            if (!isfinite(bl) && opt.precision != KILN_TRAIN_FP16) {
                fprintf(stderr, "\nkiln train: error: the loss is %g at epoch %lld step %lld "
                        "(diverged: try a smaller --lr)\n", bl, (long long)e + 1, (long long)st + 1);
                goto done;
            }
            const int64_t gstep = e * steps + st;
            kiln_train_stats ts;
            kiln_trainer_stats(t, &ts);
            s = kiln_events_scalar(ev, "train/learning_rate", gstep, step_lr);
            if (s == KILN_OK && opt.precision == KILN_TRAIN_FP16)
                s = kiln_events_scalar(ev, "train/loss_scale", gstep, ts.loss_scale);
            if (s == KILN_OK && isfinite(bl)) s = kiln_events_scalar(ev, "train/loss", gstep, bl);
            if (s != KILN_OK) {
                rc = kiln_cli_fail("train", s);
                goto done;
            }
            if (!isfinite(bl)) continue; /* fp16 overflowed: the trainer skipped the step */
            lsum += bl * (double)(hi - lo);
            right += c;
            seen += hi - lo;
            if (tty) {
                double rate = seen / ((kiln_cli_now_ms() - te) / 1000);
                double left = ((double)(epochs - e) * train.n - seen) / (rate > 0 ? rate : 1);
                char eta[32];
                fmt_duration(left, eta, sizeof eta);
                fprintf(stderr, "\repoch %lld/%lld step %lld/%lld loss %.4f acc %.4f %.0f samples/s "
                        "ETA %s  ", (long long)e + 1, (long long)epochs, (long long)st + 1,
                        (long long)steps, lsum / seen, (double)right / seen, rate, eta);
            }
        }
        if (tty) fprintf(stderr, "\r%*s\r", 100, "");
        if (!seen) {
            fprintf(stderr, "kiln train: error: the loss was not finite at any step of epoch %lld "
                    "(diverged: try a smaller --lr)\n", (long long)e + 1);
            goto done;
        }
        double secs = (kiln_cli_now_ms() - te) / 1000;
        printf("epoch %lld/%lld: loss %.4f train_accuracy %.4f, lr %.4g, %.1f s, %.0f samples/s",
               (long long)e + 1, (long long)epochs, lsum / (seen ? seen : 1),
               (double)right / (seen ? seen : 1), step_lr, secs, seen / (secs > 0 ? secs : 1));
        if (test.n) {
            double tl = 0;
            if (evaluate(t, &test, batch, &tl, &test_acc)) goto done;
            last_test_loss = tl;
            printf(", test loss %.4f test_accuracy %.4f", tl, test_acc);
        }
        const int64_t end_step = (e + 1) * steps - 1;
        s = kiln_events_scalar(ev, "train/accuracy", end_step, (double)right / seen);
        if (s == KILN_OK && test.n) s = kiln_events_scalar(ev, "test/accuracy", end_step, test_acc);
        if (s == KILN_OK && test.n) s = kiln_events_scalar(ev, "test/loss", end_step, last_test_loss);
        if (s == KILN_OK) s = kiln_events_flush(ev);
        if (s != KILN_OK) {
            rc = kiln_cli_fail("train", s);
            goto done;
        }
        if (opt.precision == KILN_TRAIN_FP16) {
            kiln_train_stats ts;
            kiln_trainer_stats(t, &ts);
            printf(", loss_scale %g, skipped_steps %lld", ts.loss_scale, (long long)ts.skipped_steps);
        }
        printf("\n");
        fflush(stdout);
        if (save_checkpoint(t, ckpt, e + 1, rng)) goto done;
    }
    if (test.n && test_acc < 0) { /* resumed after the last epoch: evaluate once */
        double tl = 0;
        if (evaluate(t, &test, batch, &tl, &test_acc)) goto done;
    }
    {
        kiln_graph *trained;
        char file[4096];
        snprintf(file, sizeof file, "%s/model.onnx", out_dir);
        if ((s = kiln_trainer_export(t, &trained)) != KILN_OK) {
            rc = kiln_cli_fail("train", s);
            goto done;
        }
        s = kiln_graph_save_onnx(trained, file);
        kiln_graph_free(trained);
        if (s != KILN_OK) {
            rc = kiln_cli_fail("train", s);
            goto done;
        }
        printf("wrote %s\n", file);
    }
    if (test.n) printf("test_accuracy=%.4f\n", test_acc);
    rc = 0;
done:
    if (kiln_events_close(ev) != KILN_OK && rc == 0) rc = kiln_cli_fail("train", KILN_E_IO);
    free(order);
    dataset_free(&train);
    dataset_free(&test);
    kiln_trainer_free(t);
    kiln_graph_free(g);
    return rc;
}
