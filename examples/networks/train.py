"""Train two Fashion-MNIST CNNs written the way people usually write them, and save them in
their frameworks' own formats.

    python examples/networks/train.py     # about 3 minutes on 2 CPU cores; needs keras (torch backend)

keras_cnn.keras   the most common Keras idiom: Conv2D(32, 3, relu, same) -> BatchNormalization
                  -> MaxPooling2D -> Conv2D(64, 3, relu, same) -> BatchNormalization ->
                  MaxPooling2D -> Flatten -> Dense(128, relu) -> Dropout -> Dense(10, softmax),
                  channels-last input (28, 28, 1); saved with ``model.save``
torchscript_cnn.pt  a PyTorch CNN with max pooling: (Conv2d 3x3 -> ReLU -> MaxPool2d) x 2 (16,
                  32 channels), Flatten, Linear(1568, 128) -> ReLU, Linear(128, 10); saved as
                  TorchScript, ``torch.jit.save(torch.jit.trace(model.eval(), example))``

Both train on the first 59,000 of the 60,000 training images with fixed seeds.
metrics.json records each one's test accuracy (10,000 test images), epochs and training time,
and whether snnc loads the file. calibration.npz holds the last 1000 training images (never
trained on) as (N, 28, 28): with one channel that is both models' layout, so snnc uses it for
either when no --calibration is given.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402 - after choosing its backend
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import snnc  # noqa: E402
from snnc.datasets import load  # noqa: E402

HERE = Path(__file__).resolve().parent
TRAIN_IMAGES = 59000  # the last 1000 are the calibration images
CALIBRATION_IMAGES = 1000


def keras_cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def torch_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def train_keras(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, epochs: int) -> dict:
    """Adam, cross-entropy, batch 128; the model saved to keras_cnn.keras."""
    keras.utils.set_random_seed(0)
    model = keras_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=2)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(xt, batch_size=1000, verbose=0).argmax(1) == yt))
    model.save(HERE / "keras_cnn.keras")
    return {"test_accuracy": accuracy, "epochs": epochs, "train_seconds": round(seconds, 1)}


def train_torch(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, epochs: int) -> dict:
    """Adam with a cosine schedule, batch 128; the traced module saved to torchscript_cnn.pt."""
    torch.manual_seed(0)
    net = torch_cnn()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(x) // 128))
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        accuracy = float((torch.cat([net(b) for b in xt.split(1000)]).argmax(1) == yt).float().mean())
    torch.jit.save(torch.jit.trace(net.eval(), x[:1]), HERE / "torchscript_cnn.pt")
    return {"test_accuracy": accuracy, "epochs": epochs, "train_seconds": round(seconds, 1)}


def snnc_loads(path: Path) -> str:
    """The word yes, or the one-line error snnc gives for the file."""
    try:
        snnc.load(path)
    except Exception as exc:  # noqa: BLE001 - recorded, not hidden
        return f"no: {exc}"
    return "yes"


def main() -> None:
    torch.set_num_threads(2)
    x, y = load("fashion-mnist:train")
    xt, yt = load("fashion-mnist:test")
    x_train, y_train = x[:TRAIN_IMAGES], y[:TRAIN_IMAGES]
    metrics = {
        "keras_cnn": train_keras(x_train.transpose(0, 2, 3, 1), y_train, xt.transpose(0, 2, 3, 1), yt, epochs=4),
        "torchscript_cnn": train_torch(
            torch.tensor(x_train), torch.tensor(y_train), torch.tensor(xt), torch.tensor(yt), epochs=8
        ),
    }
    for name, suffix in (("keras_cnn", ".keras"), ("torchscript_cnn", ".pt")):
        metrics[name]["train_images"] = TRAIN_IMAGES
        metrics[name]["snnc_loads"] = snnc_loads(HERE / f"{name}{suffix}")
        print(f"{name}: test accuracy {metrics[name]['test_accuracy']:.4f} after {metrics[name]['train_seconds']} s")
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(HERE / "calibration.npz", x=x[-CALIBRATION_IMAGES:, 0], y=y[-CALIBRATION_IMAGES:])


if __name__ == "__main__":
    main()
