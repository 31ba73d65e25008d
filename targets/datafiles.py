"""Data files: ``.npz`` with ``x`` (N, ...) float32 samples and ``y`` (N,) integer labels."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from snnc.ir import IRError


class DataError(IRError):
    """A data file snnc cannot use; the message names the file."""


def to_model_layout(x: np.ndarray, shape: tuple[int, ...], layout: Optional[str]) -> np.ndarray:
    """Samples as the IR takes them: NHWC data of a channels-last model becomes NCHW."""
    if layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.reshape((len(x), *shape)), dtype=np.float32)


def load_data(path: str | Path, samples: Optional[int] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(x, y)`` from an .npz file, the first ``samples`` of them; ``y`` is None when absent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data.files:
                raise DataError(f"{path}: no array 'x' in the file (has {', '.join(data.files) or 'none'})")
            x = data["x"][:samples].astype(np.float32)
            y = data["y"][:samples].astype(np.int64) if "y" in data.files else None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DataError(f"{path}: y has shape {list(y.shape)}, expected [{len(x)}]")
    if samples is not None and samples > len(x):
        raise DataError(f"{path}: {samples} samples asked for, the file has {len(x)}")
    return x, y
