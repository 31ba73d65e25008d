"""Prepare Fashion-MNIST for the examples, tests and benchmarks: data/fashion-mnist/*.npz.

    python scripts/prepare_data.py

Reads Debian's dataset-fashion-mnist (through snnc.datasets) and writes train.npz, test.npz
(x float32 (N, 1, 28, 28) in [0, 1], y int64) and calib.npz (the first 1000 training images).
Installs the Debian package when run as root and it is missing; otherwise exits 1 naming the
command to run. Idempotent: does nothing when all three files are there; each file is written
atomically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from snnc.datasets import DatasetError, fashion_mnist

PACKAGE = "dataset-fashion-mnist"
OUT = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"
OUTPUTS = ["train.npz", "test.npz", "calib.npz"]
CALIBRATION_SAMPLES = 1000


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split, installing the Debian package first when root and it is missing."""
    try:
        return fashion_mnist(split)
    except DatasetError as exc:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit(f"prepare_data: {exc}")
    print(f"prepare_data: installing {PACKAGE} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", PACKAGE], check=True)
    return fashion_mnist(split)


def save(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """np.savez to a temporary name, then rename: an interrupted run leaves no half-written file."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, path)
    print(f"prepare_data: {path} (x {x.shape} {x.dtype}, y {y.shape} {y.dtype})")


def main() -> None:
    if all((OUT / name).is_file() for name in OUTPUTS):
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x, y = load(split)
        save(OUT / f"{split}.npz", x, y)
        if split == "train":
            save(OUT / "calib.npz", x[:CALIBRATION_SAMPLES], y[:CALIBRATION_SAMPLES])


if __name__ == "__main__":
    main()
