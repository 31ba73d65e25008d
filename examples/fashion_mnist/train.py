"""Train the Fashion-MNIST example networks with PyTorch and export them to ONNX.

    python examples/fashion_mnist/train.py     # needs data/fashion-mnist (make data)

mlp.onnx: 784-256-128-10 with biases and ReLU. cnn.onnx: two 5x5 convolutions (16, 32 channels)
with ReLU and 2x2 average pooling, then a dense layer to 10 classes. Also writes metrics.json
(test accuracy, training time) and calibration.npz (256 training images, which snnc uses when
no --calibration is given for a model in this folder).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "data" / "fashion-mnist"
EPOCHS = {"mlp": 8, "cnn": 5}


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * 7 * 7, 10),
    )


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0) -> None:
    """Adam with a cosine schedule, batches of 128 in an order drawn with ``seed``."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (len(x) // 128))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((torch.cat([net(b) for b in x.split(1000)]).argmax(1) == y).float().mean())


def export(net: nn.Module, sample: torch.Tensor, path: Path) -> None:
    """Write ``net`` in evaluation mode to ONNX (opset 17, any batch size)."""
    torch.onnx.export(
        net.eval(),
        sample,
        path,
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    train_set, test_set = np.load(DATA / "train.npz"), np.load(DATA / "test.npz")
    x, y = torch.tensor(train_set["x"]), torch.tensor(train_set["y"])
    xt, yt = torch.tensor(test_set["x"]), torch.tensor(test_set["y"])
    metrics = {}
    for name, make in (("mlp", mlp), ("cnn", cnn)):
        net, epochs = make(), EPOCHS[name]
        start = time.perf_counter()
        train(net, x, y, epochs)
        seconds = time.perf_counter() - start
        metrics[name] = {"test_accuracy": accuracy(net, xt, yt), "epochs": epochs, "train_seconds": round(seconds, 1)}
        export(net, x[:1], HERE / f"{name}.onnx")
        print(f"{name}: test accuracy {metrics[name]['test_accuracy']:.4f} after {seconds:.0f} s")
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(HERE / "calibration.npz", x=train_set["x"][-256:], y=train_set["y"][-256:])


if __name__ == "__main__":
    main()
