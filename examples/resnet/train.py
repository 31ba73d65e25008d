"""Train a small ResNet-style network on Fashion-MNIST with PyTorch and export it to ONNX.

    python examples/resnet/train.py     # 5 to 8 minutes on 2 shared CPU cores

resnet.onnx: a stem (3x3 convolution with stride 2 to 16 channels, batch-norm, ReLU: 16x14x14),
then three basic blocks (3x3 convolution, batch-norm, ReLU, 3x3 convolution, batch-norm, plus the
shortcut, ReLU after the add): 16 channels at 14x14 with an identity shortcut; 32 channels at 7x7
entered with stride 2 through a projection shortcut (1x1 convolution with stride 2, batch-norm);
32 channels at 7x7 with an identity shortcut; global average pooling and a dense layer to 10
classes (38,266 parameters). Exported in eval mode, so
batch-norm uses its running statistics; exported without constant folding, so the file keeps its
BatchNormalization nodes and snnc's fold-batchnorm folds them into the convolutions.

Trains on the first 59,000 of the 60,000 training images (Adam, one-cycle schedule, fixed
seeds). metrics.json records the test accuracy (10,000 test images), epochs, parameters and
training time; calibration.npz holds the last 1000 training images (never trained on), which
snnc uses when no --calibration is given for a model in this folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from snnc.datasets import load

HERE = Path(__file__).resolve().parent
TRAIN_IMAGES = 59000  # the last 1000 are the calibration images
CALIBRATION_IMAGES = 1000
EPOCHS = 3
BATCH = 128


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, ReLU after the add (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:  # projection shortcut
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1, bias=False),  # stride 2 keeps training within minutes
        nn.BatchNorm2d(16),
        nn.ReLU(),
        BasicBlock(16, 16),
        BasicBlock(16, 32, stride=2),
        BasicBlock(32, 32),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    steps = epochs * -(-len(x) // BATCH)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        net.train()
        start = time.perf_counter()
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: {time.perf_counter() - start:.0f} s", flush=True)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((torch.cat([net(b) for b in x.split(1000)]).argmax(1) == y).float().mean())


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = load("fashion-mnist:train")
    xt, yt = load("fashion-mnist:test")
    net = resnet()
    start = time.perf_counter()
    train(net, torch.tensor(x[:TRAIN_IMAGES]), torch.tensor(y[:TRAIN_IMAGES]), EPOCHS)
    seconds = time.perf_counter() - start
    metrics = {
        "resnet": {
            "test_accuracy": accuracy(net, torch.tensor(xt), torch.tensor(yt)),
            "epochs": EPOCHS,
            "train_seconds": round(seconds, 1),
            "train_images": TRAIN_IMAGES,
            "parameters": sum(p.numel() for p in net.parameters()),
        }
    }
    torch.onnx.export(
        net.eval(),
        torch.tensor(x[:1]),
        HERE / "resnet.onnx",
        dynamo=False,
        do_constant_folding=False,  # keep the BatchNormalization nodes: snnc folds them, not the exporter
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    print(f"resnet: test accuracy {metrics['resnet']['test_accuracy']:.4f} after {seconds:.0f} s")
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(HERE / "calibration.npz", x=x[-CALIBRATION_IMAGES:], y=y[-CALIBRATION_IMAGES:])


if __name__ == "__main__":
    main()
