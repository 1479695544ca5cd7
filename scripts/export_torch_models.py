"""Exports small real networks from PyTorch to ONNX for the whole-model tests
(tests/models/torch/*.onnx) and for the training test (tests/train/torch/),
committed, so the tests themselves need no torch. Seeded random weights;
dynamic batch/sequence axes as users export them.

    python scripts/export_torch_models.py tests/models/torch tests/train/torch
                                                       (needs torch, onnx, onnxscript)

The training model, a Fashion-MNIST ResNet with BatchNorm, residual
connections and dropout, is exported as one exports a model to train
elsewhere: in training mode (TrainingMode.TRAINING, the TorchScript exporter;
the dynamo exporter folds BatchNorm into the convolutions), so its
BatchNormalization nodes carry training_mode and running-statistic outputs and
its Dropout a training_mode input, which `kiln train` takes as they come.
"""
import os
import sys

import torch
from torch import nn

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.c1 = nn.Conv2d(c // stride, c, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, 1, 1, groups=4, bias=False)
        self.b2 = nn.BatchNorm2d(c)
        self.skip = nn.Conv2d(c // stride, c, 1, stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.skip(x))


class ResNetSmall(nn.Module):
    """A CIFAR-style ResNet: stem, two residual stages, global pool, classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.stages = nn.Sequential(Block(16, 1), Block(32, 2))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stages(self.stem(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return torch.softmax(self.fc(x), dim=-1)


class LstmIf(nn.Module):
    """Embedding -> 2-layer bidirectional LSTM -> data-dependent branch (torch.cond)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 12)
        self.lstm = nn.LSTM(12, 16, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(32, 5)

    def forward(self, tok):
        y, _ = self.lstm(self.emb(tok))
        z = self.head(y[:, -1])
        return torch.cond(z.sum() > 0, lambda t: torch.tanh(t), lambda t: torch.relu(t) * 2, (z,))


class Encoder(nn.Module):
    """Two Transformer encoder layers (multi-head attention, GELU MLP, pre-norm)."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.enc(x)


class GruTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.gru = nn.GRU(8, 10, batch_first=True)
        self.out = nn.Linear(10, 4)

    def forward(self, tok):
        y, _ = self.gru(self.emb(tok))
        return torch.log_softmax(self.out(y), -1)


class FashionResNet(nn.Module):
    """(N,1,28,28) -> stem conv 16, BN, ReLU -> residual blocks 16 and 32 (stride
    2, projection) -> global average pool -> dropout 0.25 -> linear 10 (logits)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.stages = nn.Sequential(TrainBlock(16, 16, 1), TrainBlock(16, 32, 2))
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)
        return self.fc(self.drop(x))


class TrainBlock(nn.Module):
    """Two 3x3 conv + BN, the input added back (through a 1x1 conv + BN when
    the shape changes), ReLU."""

    def __init__(self, cin, c, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(c)
        self.skip = (nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
                     if stride > 1 or cin != c else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.skip(x))


def export_for_training(path):
    model = FashionResNet().train()
    torch.onnx.export(model, (torch.randn(2, 1, 28, 28),), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, dynamo=False, opset_version=17,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    print("wrote", path, os.path.getsize(path), "bytes")


def export(model, args, names, dyn, path):
    model.eval()
    torch.onnx.export(model, args, path, input_names=names, output_names=["out"],
                      dynamic_shapes=dyn, dynamo=True, external_data=False)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    B, S = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=64)
    specs = {
        "torch_resnet_small": (ResNetSmall(), (torch.randn(2, 3, 32, 32),), ["x"], ({0: B},), "x 2,3,32,32"),
        "torch_lstm_if": (LstmIf(), (torch.randint(0, 50, (2, 7)),), ["tok"], ({0: B, 1: S},), "tok 2,7,int,50"),
        "torch_encoder": (Encoder(), (torch.randn(2, 9, 32),), ["x"], ({0: B, 1: S},), "x 2,9,32"),
        "torch_gru_tagger": (GruTagger(), (torch.randint(0, 30, (3, 6)),), ["tok"], ({0: B, 1: S},), "tok 3,6,int,30"),
    }
    for name, (m, args, names, dyn, spec) in specs.items():
        path = os.path.join(out, name + ".onnx")
        export(m, args, names, dyn, path)
        with open(os.path.join(out, name + ".inputs"), "w") as f:
            f.write(spec + "\n")
        print("wrote", path, os.path.getsize(path), "bytes")
    if len(sys.argv) > 2:
        os.makedirs(sys.argv[2], exist_ok=True)
        export_for_training(os.path.join(sys.argv[2], "torch_fashion_resnet.onnx"))


if __name__ == "__main__":
    main()
