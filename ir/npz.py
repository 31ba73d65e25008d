"""``.npz`` files: deterministic writing, and lazy, checked reading of the arrays a text declares.

numpy's ``savez`` stamps the time and ``np.load`` reads any member on request, trusting its
header; :class:`NpzReader` reads only the members asked for, checks each ``.npy`` header
(dtype, shape, size against the budget) before reading the data, and refuses object arrays,
odd member names and a file that is a link leading out of the model's folder.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Optional

import numpy as np

from . import limits
from .ops import IRError

MAX_NAME = 200  # characters of an array name
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


def check_name(name: object, what: str) -> str:
    """``name`` if it is a valid array name (``[A-Za-z_][A-Za-z0-9_.]*``, at most MAX_NAME long)."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not _NAME.match(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise IRError(f"{what}: bad array name {shown} (letters, digits, _ and ., at most {MAX_NAME} characters)")
    return name


def write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as an uncompressed .npz with fixed timestamps, keys sorted."""
    path = Path(path)
    for name in arrays:
        check_name(name, str(path))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            try:
                np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
            except ValueError as exc:
                raise IRError(f"{path}: array {name}: {exc}") from None
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return path


class NpzReader:
    """The members of an ``.npz`` file, read one at a time after their headers were checked.

    ``folder`` is the model's folder: a file that is (or passes through) a link to a place
    outside it is refused.
    """

    def __init__(self, path: str | Path, folder: Optional[str | Path] = None) -> None:
        self.path = Path(path)
        if folder is not None:
            _check_inside(self.path, Path(folder))
        try:
            if not stat.S_ISREG(self.path.stat().st_mode):
                raise IRError(f"{self.path}: not a regular file")
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except _READ_ERRORS as exc:
            raise IRError(f"{self.path}: not a readable .npz file ({exc})") from None
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            self._add_member(info)

    def _add_member(self, info: zipfile.ZipInfo) -> None:
        stem, dot, ext = info.filename.rpartition(".")
        if not dot or ext != "npy" or info.is_dir():
            raise IRError(f"{self.path}: odd member {info.filename[:60]!r} (an .npz holds NAME.npy files)")
        check_name(stem, f"{self.path}: member")
        if stem in self._members:
            raise IRError(f"{self.path}: member {info.filename!r} appears twice")
        self._members[stem] = info

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, kind: Optional[type], value: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def __contains__(self, name: object) -> bool:
        return name in self._members

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def read(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """The array ``name``, which must have ``dtype`` and ``shape`` (checked before reading)."""
        info = self._members.get(name)
        what = f"{self.path}: {name}"
        if info is None:
            raise IRError(f"@{name}: tensor not inline and not in the weights file")
        limits.check_array(shape, dtype.itemsize, what)
        try:
            with self._zip.open(info) as f:
                found_shape, fortran, found_dtype = _read_header(f, what)
                if found_dtype.hasobject:
                    raise IRError(f"{what}: object arrays are refused (they need pickle)")
                if found_shape != shape or found_dtype != dtype:
                    found, declared = f"{found_dtype} {list(found_shape)}", f"{dtype} {list(shape)}"
                    raise IRError(f"@{name}: weights file has {found}, text declares {declared}")
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                data = f.read(nbytes)
        except _READ_ERRORS as exc:
            raise IRError(f"{what}: cannot read ({exc})") from None
        if len(data) != nbytes:
            raise IRError(f"{what}: truncated ({len(data)} of {nbytes} bytes)")
        order = "F" if fortran else "C"
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _read_header(f: io.BufferedIOBase, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a ``.npy`` header (the data is not read)."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(f)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise IRError(f"{what}: bad .npy header ({str(exc)[:80]})") from None
    raise IRError(f"{what}: unsupported .npy format version {version}")


def _check_inside(path: Path, folder: Path) -> None:
    """Refuse ``path`` when it resolves to a place outside ``folder`` (a link leading out)."""
    try:
        real, base = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise IRError(f"{path}: cannot read ({exc})") from None
    if not real.is_relative_to(base):
        raise IRError(f"{path}: a link leading outside the model's folder ({base}) is refused")
