/* tools/kiln/cmd_train.c: `kiln train MODEL.onnx|--arch A --train-images F
 * --train-labels F ... --out DIR`: trains a classifier on image, CSV or text
 * data (kiln/train.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train_data.h"

static const char *help =
    "usage: kiln train (MODEL.onnx | --arch mlp|cnn|resnet|char-lstm [--width W])\n"
    "                  (--train-images F --train-labels F | --train-csv F |\n"
    "                  --train-text F [--seq-len T])\n"
    "                  [--test-images F --test-labels F | --test-csv F | --test-text F]\n"
    "                  [--random-crop P] [--hflip] [--normalize MEAN,STD]\n"
    "                  [--loss cross-entropy|nll|mse|bce-with-logits] [--label-smoothing X]\n"
    "                  [--optimizer sgd|adam|adamw] [--lr X] [--momentum X] [--nesterov]\n"
    "                  [--weight-decay X] [--schedule constant|step|cosine] [--warmup N]\n"
    "                  [--step-size N] [--gamma X] [--min-lr X] [--clip-norm X]\n"
    "                  [--batch N] [--epochs N]\n"
    "                  [--precision fp32|bf16|fp16] [-t N] [--seed S] [--limit N]\n"
    "                  [--profile] [--resume CKPT] --out DIR\n"
    "\n"
    "Trains MODEL on image data (IDX files as MNIST / Fashion-MNIST ship them,\n"
    ".gz read directly, or .npy files) or on a CSV table, and writes the trained\n"
    "model, inference form, to DIR/model.onnx, and after every epoch a checkpoint,\n"
    "DIR/checkpoint.safetensors (parameters, running statistics, optimizer state,\n"
    "step, loss scale, epoch and the data order's random state); --resume\n"
    "continues from one exactly as the run would have gone on. TensorBoard event\n"
    "files go to DIR/events/ (scalars train/loss, train/learning_rate,\n"
    "train/loss_scale with fp16, every step; train/accuracy, test/loss,\n"
    "test/accuracy, every epoch).\n"
    "The model's float32 initializers are the parameters; its first input takes\n"
    "the images as float32, (N,1,H,W) for a rank-4 input or (N,H*W) for a rank-2\n"
    "one (a CSV table's features: (N,F)); its first output is the logits (N,C).\n"
    "The loss is the batch mean of --loss; BatchNormalization trains on batch\n"
    "statistics and Dropout draws a new mask every step. Each epoch visits the\n"
    "training set in a seeded random order, a background thread making the next\n"
    "batches; a progress line (epoch, step, loss, accuracy, samples/s, ETA) shows\n"
    "on a terminal, and a summary line per epoch is printed (with the learning\n"
    "rate, and with fp16 the loss scale and skipped steps). With test data the\n"
    "last line is test_accuracy=0.xxxx.\n"
    "\n"
    "  --arch A           instead of MODEL.onnx, a built-in network, seeded from\n"
    "                     --seed and sized to the data (classes: the largest\n"
    "                     training label + 1): mlp (one ReLU hidden layer of W\n"
    "                     units), cnn (two stages of conv 3x3 + BN + ReLU +\n"
    "                     max-pool, W and 2W channels, then a linear layer),\n"
    "                     resnet (a conv stem of W channels, residual blocks of\n"
    "                     W and 2W channels, global average pooling, a linear\n"
    "                     layer), char-lstm (for --train-text: a byte embedding\n"
    "                     of 16, an LSTM of W units, a linear layer)\n"
    "  --width W          the built-in network's width W (default: 128 for mlp,\n"
    "                     16 for cnn and resnet, 64 for char-lstm)\n"
    "  --train-images F   images (N,H,W) or (N,C,H,W): IDX or .npy, u8 (scaled to\n"
    "                     [0,1]) or float (taken as they are)\n"
    "  --train-labels F   labels (N), integers: IDX or .npy\n"
    "  --train-csv F      instead: a CSV table, one sample per row, the features\n"
    "                     then the label (last column); a header line is skipped\n"
    "  --test-images F    test images, evaluated after every epoch\n"
    "  --test-labels F    test labels\n"
    "  --test-csv F       test samples as a CSV table\n"
    "  --train-text F     instead: a text file for next-character prediction: windows\n"
    "                     of --seq-len bytes as int64 ids (N,T), each position's label\n"
    "                     the byte after it; the model's logits are (N,256,T)\n"
    "  --seq-len T        window length for text (default 64)\n"
    "  --test-text F      test text, windows as for training\n"
    "  --random-crop P    augmentation: shift each training image by up to P pixels\n"
    "                     each way, zeros coming in (a random crop of the image\n"
    "                     padded by P), drawn anew every epoch from --seed\n"
    "  --hflip            augmentation: mirror each training image with chance 1/2\n"
    "  --normalize M,S    x = (x - M) / S on every input, training and test (the\n"
    "                     written model then expects inputs normalized so)\n"
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
    "  --seed S           seed of the shuffling, the dropout masks and the\n"
    "                     augmentation (default 1)\n"
    "  --limit N          use only the first N samples of each set\n"
    "  --profile          after training, print where a training step's time went:\n"
    "                     per node of the training graph (forward, loss, backward)\n"
    "                     op, node, algorithm, ms per step, share, GFLOP/s; then the\n"
    "                     whole step, whose rest is the optimizer update and copies\n"
    "  --resume CKPT      continue from a checkpoint of the same model, optimizer\n"
    "                     and data; --epochs counts the epochs in all\n"
    "  --out DIR          output directory (created if missing)\n";

/* --profile: the training graph's nodes, slowest first, then the whole step. */
static void print_step_profile(const kiln_trainer *t, int64_t n_steps, double step_ms) {
    int n = kiln_trainer_profile(t, NULL, 0);
    kiln_node_profile *p = calloc((size_t)n + 1, sizeof *p);
    if (!p) return;
    kiln_trainer_profile(t, p, n);
    kiln_cli_profile_sort(p, n);
    printf("training graph, per node (%lld steps):\n", (long long)n_steps);
    kiln_cli_profile_table(p, n, n_steps);
    printf("  %-77s %12.4f\n", "whole step (the graph, then the optimizer update and copies)",
           step_ms / (double)n_steps);
    free(p);
}

/* Mean loss and accuracy of the trainer's inference form on d. */
static int evaluate(kiln_trainer *t, const train_set *d, int64_t batch, double *loss, double *acc) {
    double lsum = 0, bl;
    int64_t right = 0, c;
    kiln_tensor *x, *l;
    train_batches *b;
    int rc = 0, r;
    if (train_batches_start(d, NULL, batch, NULL, 0, &b)) return -1;
    while (!rc && (r = train_batches_next(b, &x, &l)) != 1) {
        if (r) {
            rc = -1;
            break;
        }
        kiln_status s = kiln_trainer_evaluate(t, x, l, &bl, &c);
        lsum += bl * (double)kiln_tensor_dims(x)[0];
        right += c;
        kiln_tensor_free(x);
        kiln_tensor_free(l);
        if (s != KILN_OK) rc = kiln_cli_fail("train", s);
    }
    train_batches_stop(b);
    *loss = d->n ? lsum / (double)d->n : 0;
    *acc = d->n ? (double)right / (double)(d->n * d->per_label) : 0;
    return rc;
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

enum { ARCH_MLP, ARCH_CNN, ARCH_RESNET, ARCH_CHAR_LSTM, ARCH_COUNT };
static const char *const arch_names[ARCH_COUNT] = {"mlp", "cnn", "resnet", "char-lstm"};

/* Built-in network `arch` for the training set d (images (N,C,H,W) for cnn and
 * resnet, (N,F) for mlp, text for char-lstm) of width (0: the default) from
 * seed; -1 (message printed) if it does not fit the data. */
static int build_arch(int arch, int64_t width, const train_set *d, uint64_t seed, kiln_graph **g) {
    const int64_t *dims = kiln_tensor_dims(d->x);
    int64_t classes = 1;
    const int64_t *lab = kiln_tensor_data(d->labels);
    for (int64_t i = 0; i < kiln_tensor_numel(d->labels); i++)
        if (lab[i] >= classes) classes = lab[i] + 1;
    const int image = arch == ARCH_CNN || arch == ARCH_RESNET;
    if ((arch == ARCH_CHAR_LSTM) != (d->per_label > 1) || (image && kiln_tensor_ndim(d->x) != 4)) {
        fprintf(stderr, "kiln train: error: --arch %s is for %s\n", arch_names[arch],
                arch == ARCH_CHAR_LSTM ? "--train-text" : image ? "images" : "images or CSV tables");
        return -1;
    }
    kiln_status s;
    switch (arch) {
    case ARCH_MLP:
        s = kiln_model_mlp(dims[1], 1, (int64_t[]){width ? width : 128}, classes, seed, g);
        break;
    case ARCH_CNN:
        s = kiln_model_cnn(dims[1], dims[2], dims[3], width ? width : 16, classes, seed, g);
        break;
    case ARCH_RESNET:
        s = kiln_model_resnet(dims[1], dims[2], dims[3], width ? width : 16, 2, classes, seed, g);
        break;
    default:
        s = kiln_model_char_lstm(256, 16, width ? width : 64, seed, g);
        break;
    }
    return s == KILN_OK ? 0 : kiln_cli_fail("train", s);
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
               *test_lab = NULL, *out_dir = NULL, *resume = NULL, *train_csv = NULL,
               *test_csv = NULL, *train_text = NULL, *test_text = NULL;
    double seq_len_d = 64;
    train_augment aug = {0};
    double crop_d = 0, norm_mean = 0, norm_std = 1;
    int normalize = 0;
    kiln_train_options opt = {0};
    double lr = -1, momentum = 0.9, wd = 0, batch_d = 64, epochs_d = 1, seed_d = 1, limit_d = -1;
    kiln_lr_schedule sched = {.kind = KILN_LR_CONSTANT, .gamma = 0.1};
    double warmup_d = 0, step_size_d = -1, width_d = 0;
    int threads = 0, arch = -1, profile = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1, bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(help, stdout);
            return 0;
        } else if (!strcmp(a, "--nesterov")) {
            opt.nesterov = 1;
            takes = 0;
        } else if (!strcmp(a, "--hflip")) {
            aug.hflip = 1;
            takes = 0;
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
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
        } else if (!strcmp(a, "--train-csv")) {
            train_csv = v;
        } else if (!strcmp(a, "--test-csv")) {
            test_csv = v;
        } else if (!strcmp(a, "--train-text")) {
            train_text = v;
        } else if (!strcmp(a, "--test-text")) {
            test_text = v;
        } else if (!strcmp(a, "--seq-len")) {
            bad = num_arg(a, v, 1, &seq_len_d);
        } else if (!strcmp(a, "--random-crop")) {
            bad = num_arg(a, v, 0, &crop_d);
        } else if (!strcmp(a, "--normalize")) {
            char *end;
            norm_mean = strtod(v, &end);
            norm_std = *end == ',' ? strtod(end + 1, &end) : 0;
            normalize = 1;
            if (*end || !(norm_std > 0) || !isfinite(norm_mean) || !isfinite(norm_std)) {
                fprintf(stderr, "kiln train: error: --normalize '%s': expected MEAN,STD with STD > 0\n", v);
                return 2;
            }
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
        } else if (!strcmp(a, "--arch")) {
            int k = 0;
            while (k < ARCH_COUNT && strcmp(v, arch_names[k])) k++;
            if (k == ARCH_COUNT) {
                fprintf(stderr, "kiln train: error: --arch '%s': expected mlp, cnn, resnet or char-lstm\n", v);
                return 2;
            }
            arch = k;
        } else if (!strcmp(a, "--width")) {
            bad = num_arg(a, v, 1, &width_d);
        } else {
            int r = kiln_cli_common_option("train", help, argc, argv, &i, &threads, &path);
            if (r < 0) return 2;
            takes = 0;
        }
        if (bad) return 2;
        i += takes;
    }
    if (arch >= 0 && path) {
        fprintf(stderr, "kiln train: error: give a model or --arch, not both\n");
        return 2;
    }
    if (arch < 0 && kiln_cli_need_model(help, path)) return 2;
    if ((train_img && train_lab) + !!train_csv + !!train_text != 1 || !out_dir ||
        (!test_img != !test_lab) || !!test_img + !!test_csv + !!test_text > 1 ||
        (!train_img != !train_lab)) {
        fprintf(stderr, "kiln train: error: --out and one of --train-images with --train-labels, "
                "--train-csv or --train-text are required (and for test data, --test-images with "
                "--test-labels, --test-csv or --test-text)\n%s", help);
        return 2;
    }
    if (train_text && (normalize || crop_d > 0 || aug.hflip)) {
        fprintf(stderr, "kiln train: error: --normalize, --random-crop and --hflip are for images\n");
        return 2;
    }
    aug.crop_pad = (int)crop_d;
    aug.seed = (uint64_t)seed_d;
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
    train_set train = {0}, test = {0};
    train_batches *tb = NULL;
    int64_t *order = NULL;
    int rc = 1;
    kiln_status s = KILN_OK;
    kiln_value_info in, out;
    int in_rank = arch == ARCH_CNN || arch == ARCH_RESNET ? 4 : 2; /* a built-in's input */
    int64_t classes = -1; /* unchecked: a built-in is sized to the training labels */
    char arch_desc[64];
    if (arch < 0) {
        if ((s = kiln_graph_load_onnx(path, &g)) != KILN_OK) return kiln_cli_fail("train", s);
        if ((s = kiln_graph_input_info(g, 0, &in)) != KILN_OK ||
            (s = kiln_graph_output_info(g, 0, &out)) != KILN_OK) {
            rc = kiln_cli_fail("train", s);
            goto done;
        }
        in_rank = in.ndim;
        classes = out.ndim == 2 ? out.dims[1] : -1;
    }
    if (train_text ? train_set_load_text(train_text, (int64_t)seq_len_d, limit, &train)
        : train_csv ? train_set_load_csv(train_csv, in_rank, limit, classes, &train)
                    : train_set_load_images(train_img, train_lab, in_rank, limit, classes, &train))
        goto done;
    if (arch >= 0) {
        if (build_arch(arch, (int64_t)width_d, &train, (uint64_t)seed_d, &g)) goto done;
        (void)kiln_graph_input_info(g, 0, &in);
        (void)kiln_graph_output_info(g, 0, &out);
        classes = out.ndim == 2 ? out.dims[1] : -1;
        snprintf(arch_desc, sizeof arch_desc, "built-in %s", arch_names[arch]);
        path = arch_desc;
    }
    if (test_text && train_set_load_text(test_text, (int64_t)seq_len_d, limit, &test)) goto done;
    if (test_csv && train_set_load_csv(test_csv, in_rank, limit, classes, &test)) goto done;
    if (test_img && train_set_load_images(test_img, test_lab, in_rank, limit, classes, &test)) goto done;
    { /* a sample must fill the model's input (when its sizes are known) */
        int64_t per = 1;
        for (int k = 1; k < in.ndim && per > 0; k++) per = in.dims[k] > 0 ? per * in.dims[k] : -1;
        const train_set *sets[2] = {&train, &test};
        for (int k = 0; k < 2; k++)
            if (sets[k]->n && per > 0 && sets[k]->sample != per) {
                char shape[128];
                kiln_cli_describe(&in, shape, sizeof shape);
                fprintf(stderr, "kiln train: error: %s has %lld values per sample; the model's input "
                        "'%s' (%s) takes %lld\n",
                        k ? (test_csv ? test_csv : test_text ? test_text : test_img)
                          : (train_csv ? train_csv : train_text ? train_text : train_img),
                        (long long)sets[k]->sample, in.name, shape, (long long)per);
                goto done;
            }
    }
    if (normalize) {
        train_set_normalize(&train, (float)norm_mean, (float)norm_std);
        if (test.n) train_set_normalize(&test, (float)norm_mean, (float)norm_std);
    }
    if ((s = kiln_trainer_create(g, &opt, &t)) != KILN_OK) {
        rc = kiln_cli_fail("train", s);
        goto done;
    }
    if (profile && (s = kiln_trainer_set_profiling(t, 1)) != KILN_OK) {
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
    int64_t first_epoch = 0, n_steps = 0; /* n_steps, step_ms: the steps taken here, for --profile */
    double step_ms = 0;
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
            int64_t j = (int64_t)(kiln_cli_splitmix64(&rng) % (uint64_t)(i + 1)), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double lsum = 0, te = kiln_cli_now_ms(), step_lr = lr, last_test_loss = 0;
        int64_t right = 0, seen = 0, positions = 0; /* samples; labelled positions */
        if (train_batches_start(&train, order, batch, &aug, e, &tb)) goto done;
        for (int64_t st = 0; st < steps; st++) {
            int64_t c, nb;
            kiln_tensor *x, *l;
            double bl;
            if (train_batches_next(tb, &x, &l)) goto done;
            nb = kiln_tensor_dims(x)[0];
            step_lr = kiln_lr_at(&sched, e * steps + st);
            const double t0 = kiln_cli_now_ms();
            s = kiln_trainer_step(t, x, l, step_lr, &bl, &c);
            step_ms += kiln_cli_now_ms() - t0;
            n_steps++;
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
            lsum += bl * (double)nb;
            right += c;
            seen += nb;
            positions += nb * train.per_label;
            if (tty) {
                double rate = seen / ((kiln_cli_now_ms() - te) / 1000);
                double left = ((double)(epochs - e) * train.n - seen) / (rate > 0 ? rate : 1);
                char eta[32];
                fmt_duration(left, eta, sizeof eta);
                fprintf(stderr, "\repoch %lld/%lld step %lld/%lld loss %.4f acc %.4f %.0f samples/s "
                        "ETA %s  ", (long long)e + 1, (long long)epochs, (long long)st + 1,
                        (long long)steps, lsum / seen, (double)right / positions, rate, eta);
            }
        }
        train_batches_stop(tb);
        tb = NULL;
        if (tty) fprintf(stderr, "\r%*s\r", 100, "");
        if (!seen) {
            fprintf(stderr, "kiln train: error: the loss was not finite at any step of epoch %lld "
                    "(diverged: try a smaller --lr)\n", (long long)e + 1);
            goto done;
        }
        double secs = (kiln_cli_now_ms() - te) / 1000;
        printf("epoch %lld/%lld: loss %.4f train_accuracy %.4f, lr %.4g, %.1f s, %.0f samples/s",
               (long long)e + 1, (long long)epochs, lsum / (seen ? seen : 1),
               (double)right / (positions ? positions : 1), step_lr, secs, seen / (secs > 0 ? secs : 1));
        if (test.n) {
            double tl = 0;
            if (evaluate(t, &test, batch, &tl, &test_acc)) goto done;
            last_test_loss = tl;
            printf(", test loss %.4f test_accuracy %.4f", tl, test_acc);
        }
        const int64_t end_step = (e + 1) * steps - 1;
        s = kiln_events_scalar(ev, "train/accuracy", end_step, (double)right / positions);
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
    if (profile && n_steps) print_step_profile(t, n_steps, step_ms);
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
    train_batches_stop(tb);
    train_set_free(&train);
    train_set_free(&test);
    kiln_trainer_free(t);
    kiln_graph_free(g);
    return rc;
}
