"""Data files: ``.npz`` with ``x`` (N, ...) float32 samples and ``y`` (N,) integer labels.

A data file is untrusted. Each member's ``.npy`` header is read first (numpy's format module)
and its shape and dtype checked (numeric, no objects, x of rank >= 2, at least one sample)
and against the byte budget (:mod:`snnc.ir.limits`) before any data is read; then only the
rows asked for are read from the (possibly compressed) member. Samples must be finite and
labels whole numbers >= 0 (``check_labels`` checks them against a model's output size).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO, Optional

import numpy as np
from numpy.lib import format as npformat

from snnc.ir import IRError, limits

_X_KINDS = "biuf"  # bool, signed, unsigned, float
_Y_KINDS = "iuf"  # float labels must hold whole numbers


class DataError(IRError):
    """A data file snnc cannot use; the message names the file and the array."""


def to_model_layout(x: np.ndarray, shape: tuple[int, ...], layout: Optional[str]) -> np.ndarray:
    """Samples as the IR takes them: NHWC data of a channels-last model becomes NCHW."""
    if layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.reshape((len(x), *shape)), dtype=np.float32)


def _header(f: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from an .npy header, without reading the data."""
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(f)
        else:
            raise DataError(f"{what}: .npy format version {version} is not supported")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise DataError(f"{what}: not a readable .npy member ({_first_line(exc)})") from None
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_member(zf: zipfile.ZipFile, name: str, kinds: str, out_itemsize: int, rows: Optional[int],
                 what: str) -> np.ndarray:
    """The first ``rows`` rows (all when None) of member ``name``.npy, checked before reading
    (``out_itemsize``: the bytes per element once converted)."""
    with zf.open(f"{name}.npy") as f:
        shape, fortran, dtype = _header(f, what)
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise DataError(f"{what}: dtype {dtype} is not a plain numeric type")
        if not shape:
            raise DataError(f"{what}: a scalar, expected one entry per sample")
        take = shape[0] if rows is None or fortran else min(rows, shape[0])
        limits.check_array((take, *shape[1:]), max(dtype.itemsize, out_itemsize), what)
        count = take * math.prod(shape[1:])
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise DataError(f"{what}: the member ends before its declared shape {list(shape)}")
    if fortran:
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")
        return array[:rows] if rows is not None else array
    return np.frombuffer(raw, dtype=dtype).reshape((take, *shape[1:]))


def _count(samples: Optional[int], what: str) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise DataError(f"{what}: samples={samples!r}: must be a positive integer")


def load_data(
    path: str | Path,
    samples: Optional[int] = None,
    *,
    at_most: Optional[int] = None,
    require_y: bool = False,
    classes: Optional[int] = None,
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(x, y)`` from an .npz file; ``y`` is None when absent (an error with ``require_y``).

    ``samples``: exactly the first that many (an error when the file has fewer); ``at_most``:
    the first up to that many. ``classes``: the model's output size, the bound of the labels.
    """
    path = Path(path)
    _count(samples, str(path))
    _count(at_most, str(path))
    try:
        is_file = path.is_file()
    except OSError as exc:  # a name too long for the file system
        raise DataError(f"{str(path)[:80]}: not a usable file name ({exc.strerror})") from None
    if not is_file:
        raise DataError(f"{path}: no such data file")
    rows = samples if samples is not None else at_most
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if "x" not in names:
                raise DataError(f"{path}: no array 'x' in the file (has {', '.join(sorted(names)) or 'none'})")
            x = _read_member(zf, "x", _X_KINDS, 4, rows, f"{path}: x")
            y = _read_member(zf, "y", _Y_KINDS, 8, rows, f"{path}: y") if "y" in names else None
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    if samples is not None and samples > len(x):
        raise DataError(f"{path}: {samples} samples asked for, the file has {len(x)}")
    x, y = check_samples(x, y, str(path))
    if y is None and require_y:
        raise DataError(f"{path}: no labels 'y' to measure accuracy with")
    if y is not None and classes is not None:
        check_labels(y, classes, str(path))
    return x, y


def check_samples(x: np.ndarray, y: Optional[np.ndarray], what: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``x`` as float32 (N >= 1 samples of rank >= 1, all finite) and ``y`` as int64 (N,) whole
    numbers >= 0; raises DataError naming ``what`` (a file or "calibration data")."""
    x = np.asarray(x)
    if x.dtype.hasobject or x.dtype.kind not in _X_KINDS:
        raise DataError(f"{what}: x has dtype {x.dtype}, expected numbers")
    if x.ndim < 2:
        raise DataError(f"{what}: x has shape {list(x.shape)}, expected (samples, ...) of rank >= 2")
    if len(x) == 0:
        raise DataError(f"{what}: x holds no samples")
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf: refused below
        x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{what}: x holds NaN or infinite values (sample {int(np.flatnonzero(bad)[0])})")
    if y is None:
        return x, None
    y = np.asarray(y)
    if y.dtype.hasobject or y.dtype.kind not in _Y_KINDS:
        raise DataError(f"{what}: y has dtype {y.dtype}, expected integer labels")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{what}: y has shape {list(y.shape)}, expected [{len(x)}]")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{what}: y holds labels that are not whole numbers")
    if (y < 0).any():
        raise DataError(f"{what}: y holds the label {int(y.min())}; labels must be >= 0")
    return x, y.astype(np.int64)


def check_labels(y: np.ndarray, classes: int, what: str) -> None:
    """Labels must index the model's ``classes`` outputs: 0 <= y < classes."""
    y = np.asarray(y)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise DataError(f"{what}: y holds the label {bad}, outside [0, {classes}) for a model with {classes} outputs")
