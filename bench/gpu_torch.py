"""PyTorch eager on the GPU, the anchor for kiln's CUDA backend
(scripts/gpu-check.sh): the networks of bench/models.py built in PyTorch
(torchvision's ResNet-50, transformers' BERT-base at sequence 128, random
weights), timed with CUDA events after warm-up; median of the timed runs.

    python bench/gpu_torch.py resnet50 64 fp32
    python bench/gpu_torch.py bert_base 8 bf16

Prints one JSON object: {"model", "batch", "precision", "resident_ms",
"with_copies_ms"}. resident_ms: inputs already on the GPU, output left there;
with_copies_ms: input copied from host memory and output back, as `kiln bench
--device cuda` measures. fp32 keeps TF32 off (kiln's fp32 is f32 products);
bf16 runs under torch.autocast(bfloat16).
"""
import json
import sys

import torch


def build(name, batch):
    if name == "resnet50":
        import torchvision
        return torchvision.models.resnet50(), torch.rand(batch, 3, 224, 224)
    if name == "bert_base":
        from transformers import BertConfig, BertModel
        cfg = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, attn_implementation="eager")
        return BertModel(cfg), torch.randint(0, 1000, (batch, 128))
    raise SystemExit(f"unknown model {name}")


def median_ms(fn, iters=20, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    name, batch, prec = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, x_host = build(name, batch)
    model = model.cuda().eval()
    x_dev = x_host.cuda()

    def out_tensor(o):
        return o if torch.is_tensor(o) else o[0]

    def run(x, back):
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=prec == "bf16"):
            y = out_tensor(model(x.cuda(non_blocking=False)))
            if back:
                y.float().cpu()

    res = {"model": name, "batch": batch, "precision": prec,
           "resident_ms": median_ms(lambda: run(x_dev, False)),
           "with_copies_ms": median_ms(lambda: run(x_host, True))}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
