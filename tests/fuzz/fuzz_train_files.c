/* tests/fuzz/fuzz_train_files.c: libFuzzer harness for the files training
 * reads: checkpoints (safetensors, restored into a trainer), CSV tables, IDX
 * and .npy arrays. The first byte picks the reader, the rest is the file
 * (written to a temporary file: the readers take paths). Every input must be
 * read or refused with a status; never crash, hang or leak; a refused
 * checkpoint leaves the trainer as it was. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kiln/kiln.h"

/* A trainer for x (N, 3) -> MatMul w (3, 2) -> logits, made once. */
static kiln_trainer *trainer(void) {
    static kiln_trainer *t;
    if (t) return t;
    /* the model: scripts/fuzz.sh writes it beside the seeds */
    const char *path = getenv("KILN_FUZZ_MODEL");
    kiln_graph *g = NULL;
    if (!path || kiln_graph_load_onnx(path, &g) != KILN_OK) {
        fprintf(stderr, "fuzz_train_files: set KILN_FUZZ_MODEL to a small ONNX classifier\n");
        abort();
    }
    kiln_train_options o = {.optimizer = KILN_OPTIMIZER_ADAM, .threads = 1};
    if (kiln_trainer_create(g, &o, &t) != KILN_OK) abort();
    kiln_graph_free(g);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/kiln_fuzz_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    kiln_tensor *t = NULL;
    switch (data[0] % 4) {
    case 0: {
        kiln_trainer *tr = trainer();
        kiln_graph *before = NULL, *after = NULL;
        kiln_trainer_export(tr, &before);
        if (kiln_trainer_load(tr, path) != KILN_OK) { /* refused: nothing changed */
            kiln_trainer_export(tr, &after);
            for (int i = 0; i < kiln_graph_num_initializers(before); i++) {
                const char *n;
                const kiln_tensor *a = kiln_graph_initializer(before, i, &n);
                const kiln_tensor *b = kiln_graph_initializer(after, i, &n);
                if (memcmp(kiln_tensor_data(a), kiln_tensor_data(b),
                           (size_t)kiln_tensor_numel(a) * sizeof(float)) != 0)
                    abort();
            }
        }
        char buf[64];
        kiln_checkpoint_meta(path, "kiln.step", buf, sizeof buf);
        kiln_graph_free(before);
        kiln_graph_free(after);
        break;
    }
    case 1: kiln_csv_load(path, &t); break;
    case 2: kiln_idx_load(path, &t); break;
    default: kiln_tensor_load_npy(path, &t); break;
    }
    kiln_tensor_free(t);
    unlink(path);
    return 0;
}
