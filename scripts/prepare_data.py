"""Turn Debian's Fashion-MNIST (IDX gz) into snnc's .npz data files under data/fashion-mnist/.

    python scripts/prepare_data.py

Reads /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (Debian
package dataset-fashion-mnist) and writes train.npz, test.npz (x float32 (N, 1, 28, 28) in [0, 1],
y int64) and calib.npz (the first 1000 training images). Needs numpy only. Installs the Debian
package when run as root and it is missing; otherwise exits 1 naming the command to run.
Idempotent: does nothing when all three files are there; each file is written atomically.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SOURCE = Path("/usr/share/datasets/fashion-mnist")
PACKAGE = "dataset-fashion-mnist"
OUT = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"
SPLITS = {"train": "train", "test": "t10k"}  # our name -> the IDX file prefix
SOURCE_FILES = [f"{p}-{kind}-ubyte.gz" for p in SPLITS.values() for kind in ("images-idx3", "labels-idx1")]
OUTPUTS = ["train.npz", "test.npz", "calib.npz"]
CALIBRATION_SAMPLES = 1000


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): zero, zero, type 0x08 (ubyte), ndim, big-endian sizes, data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data for shape {dims}")
    return data.reshape(dims)


def missing_sources() -> list[str]:
    return [name for name in SOURCE_FILES if not (SOURCE / name).is_file()]


def ensure_source() -> None:
    if not missing_sources():
        return
    command = f"apt-get update && apt-get install -y {PACKAGE}"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(f"prepare_data: Fashion-MNIST is missing from {SOURCE}; install it with: sudo sh -c '{command}'")
    print(f"prepare_data: installing {PACKAGE} with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", PACKAGE], check=True)
    if missing_sources():
        sys.exit(f"prepare_data: {PACKAGE} is installed but {SOURCE} lacks {', '.join(missing_sources())}")


def save(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """np.savez to a temporary name, then rename: an interrupted run leaves no half-written file."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, path)
    print(f"prepare_data: {path} (x {x.shape} {x.dtype}, y {y.shape} {y.dtype})")


def load_split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
        raise ValueError(f"{prefix}: unexpected shapes {images.shape} and {labels.shape}")
    return (images.astype(np.float32) / np.float32(255.0))[:, None], labels.astype(np.int64)


def main() -> None:
    if all((OUT / name).is_file() for name in OUTPUTS):
        return
    ensure_source()
    OUT.mkdir(parents=True, exist_ok=True)
    for split, prefix in SPLITS.items():
        x, y = load_split(prefix)
        save(OUT / f"{split}.npz", x, y)
        if split == "train":
            save(OUT / "calib.npz", x[:CALIBRATION_SAMPLES], y[:CALIBRATION_SAMPLES])


if __name__ == "__main__":
    main()
