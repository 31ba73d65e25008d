"""Turn Debian's Fashion-MNIST (IDX gz) into snnc's .npz data files under data/fashion-mnist/.

    python scripts/prepare_data.py

Writes train.npz, test.npz (x float32 (N, 1, 28, 28) in [0, 1], y int64) and calib.npz
(the first 1000 training images). Installs the Debian package when run as root and missing.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SOURCE = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
OUT = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): magic, dimension sizes, then unsigned bytes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def ensure_source() -> None:
    if (SOURCE / "t10k-images-idx3-ubyte.gz").exists():
        return
    if os.geteuid() != 0:
        sys.exit(f"prepare_data: Fashion-MNIST is missing; install it with: sudo apt-get install {PACKAGE}")
    print(f"prepare_data: installing {PACKAGE} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", PACKAGE], check=True)


def main() -> None:
    if (OUT / "calib.npz").exists():
        return
    ensure_source()
    OUT.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
        y = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        np.savez(OUT / f"{split}.npz", x=x, y=y)
        if split == "train":
            np.savez(OUT / "calib.npz", x=x[:1000], y=y[:1000])
        print(f"prepare_data: {split}: {len(x)} images -> {OUT / (split + '.npz')}")


if __name__ == "__main__":
    main()
