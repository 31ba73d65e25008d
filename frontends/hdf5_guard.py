"""Checks on an untrusted HDF5 file (Keras ``.h5``/``model.weights.h5``, NIR ``.nir``) made before any
of its data is read.

An HDF5 file can name other files (external storage, external links, virtual datasets), run
code (filters loaded as plugins) and expand a few compressed bytes into gigabytes. :func:`check_hdf5`
walks every link with h5py without following any and refuses all of that with one line naming
the file and the object; dataset sizes are checked against :mod:`snnc.ir.limits` from their
declared shapes, so reading stays lazy and bounded. Keras and NIR files use only hard links,
plain (contiguous, compact or chunked) datasets of numbers or strings and the filters HDF5 and
h5py build in. Two libhdf5 (2.0) defects found by fuzzing are kept out: attributes are read only
after their types are checked (a corrupt variable-length type crashes the process) and global
heaps are checked before any string is read (a corrupt one makes libhdf5 loop forever).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any, Union

from snnc.ir import limits
from snnc.ir.errors import SnncError

from .builder import FrontendError, one_line

# What h5py raises on a damaged file, and what reading it from an archive adds (CRC, inflate errors).
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)
MAX_DEPTH = 32  # groups nested deeper than this are refused (readers recurse)
MAX_OBJECTS = 100_000  # groups and datasets in one file


def _filters() -> dict[int, str]:
    from h5py import h5z

    return {
        h5z.FILTER_DEFLATE: "gzip",
        h5z.FILTER_SHUFFLE: "shuffle",
        h5z.FILTER_FLETCHER32: "fletcher32",
        h5z.FILTER_SZIP: "szip",
        h5z.FILTER_NBIT: "nbit",
        h5z.FILTER_SCALEOFFSET: "scaleoffset",
        h5z.FILTER_LZF: "lzf",
    }


def _type_ok(tid: Any) -> bool:
    """Numbers, booleans (an enum of integers) and strings; no references, compounds or opaque data."""
    from h5py import h5t

    cls = tid.get_class()
    if cls == h5t.ENUM:
        return tid.get_super().get_class() == h5t.INTEGER
    return cls in (h5t.INTEGER, h5t.FLOAT, h5t.STRING)


def _check_dataset(ds: Any, what: str) -> int:
    """Refuse what reading ``ds`` could do besides reading this file's own bytes; its size in bytes."""
    from h5py import h5d

    plist = ds.id.get_create_plist()
    if plist.get_external_count():
        name = plist.get_external(0)[0].decode(errors="replace")
        raise FrontendError(f"{what}: stored in external file {name!r}; snnc reads no file a model names")
    layout = plist.get_layout()
    if layout == h5d.VIRTUAL:
        raise FrontendError(f"{what}: a virtual dataset (reads other files); snnc reads no file a model names")
    if layout not in (h5d.COMPACT, h5d.CONTIGUOUS, h5d.CHUNKED):
        raise FrontendError(f"{what}: unknown storage layout {layout}")
    known = _filters()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in known:
            raise FrontendError(f"{what}: compressed with filter {code}, not built into HDF5 or h5py (a plugin)")
    tid = ds.id.get_type()
    if not _type_ok(tid):
        raise FrontendError(f"{what}: data of HDF5 type class {tid.get_class()} (not numbers or strings)")
    shape = ds.shape or ()
    itemsize = tid.get_size()
    limits.check_array(shape, itemsize, what)
    if layout == h5d.CHUNKED:
        limits.check_array(plist.get_chunk(), itemsize, f"{what} (one chunk)")
    return math.prod(shape) * itemsize


def _check_attrs(obj: Any, what: str) -> None:
    """Attributes hold numbers or strings of a size in the budget (libhdf5 crashes converting some
    corrupt variable-length types, so types are checked before any attribute is read)."""
    from h5py import h5a

    for i in range(h5a.get_num_attrs(obj.id)):
        attr = h5a.open(obj.id, index=i)
        name = f"{what} attribute {attr.get_name().decode(errors='replace')!r}"
        tid = attr.get_type()
        if not _type_ok(tid):
            raise FrontendError(f"{name}: data of HDF5 type class {tid.get_class()} (not numbers or strings)")
        limits.check_array(attr.shape or (), tid.get_size(), name)


def _children(group: Any, path: str, what: str) -> Iterator[tuple[str, Any]]:
    """(path, object) for each link in ``group``; refuses every link but a hard one."""
    import h5py

    for name in group:
        child = f"{path.rstrip('/')}/{name}"
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise FrontendError(f"{what}: {child} is an external link to {link.filename!r}; snnc reads no other file")
        if isinstance(link, h5py.SoftLink):
            raise FrontendError(f"{what}: {child} is a soft link to {link.path!r}; only hard links are read")
        if not isinstance(link, h5py.HardLink):
            raise FrontendError(f"{what}: {child} is a user-defined or unknown kind of link; only hard links are read")
        yield child, group[name]


def check_hdf5(h5: Any, source: str) -> None:
    """Walk every object of the open h5py file ``h5`` and refuse links, storage, filters, types and
    sizes snnc does not read (see the module docstring). ``source`` names the file in messages."""
    import h5py
    from h5py import h5o

    seen = {h5o.get_info(h5.id).addr}
    _check_attrs(h5, f"{source}: /")
    stack: list[tuple[str, Any, int]] = [("/", h5, 0)]
    total = 0
    while stack:
        path, group, depth = stack.pop()
        if depth >= MAX_DEPTH:
            raise FrontendError(f"{source}: {path}: groups nested deeper than {MAX_DEPTH}")
        for child, obj in _children(group, path, source):
            addr = h5o.get_info(obj.id).addr
            if addr in seen:
                raise FrontendError(f"{source}: {child} is a second link to an object (a cycle or an alias)")
            seen.add(addr)
            if len(seen) > MAX_OBJECTS:
                raise FrontendError(f"{source}: more than {MAX_OBJECTS:,} groups and datasets")
            _check_attrs(obj, f"{source}: {child}")
            if isinstance(obj, h5py.Dataset):
                total += _check_dataset(obj, f"{source}: dataset {child}")
            elif isinstance(obj, h5py.Group):
                stack.append((child, obj, depth + 1))
            else:
                raise FrontendError(f"{source}: {child} is a {type(obj).__name__}, not a group or dataset")
    limits.check("bytes", total, f"{source}: all datasets together")


def check_global_heaps(path: str, source: str) -> None:
    """Refuse global heap collections (where HDF5 keeps variable-length strings) that libhdf5 would
    walk forever or past their end: its loader (H5HG__cache_heap_deserialize, HDF5 2.0) never
    advances over a free-space object of size 0. Every collection starts with ``GCOL`` (the
    library checks it), so all are found by that signature; 8-byte lengths are assumed (checked
    by :func:`open_hdf5`)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            at = m.find(b"GCOL")
            while at != -1:
                _check_collection(m, at, source)
                at = m.find(b"GCOL", at + 1)


def _check_collection(m: Any, at: int, source: str) -> None:
    if at + 16 > len(m) or m[at + 4] != 1:
        return  # not a collection header libhdf5 would accept
    (size,) = struct.unpack_from("<Q", m, at + 8)
    stop = at + size
    if size < 16 or stop > len(m):
        raise FrontendError(f"{source}: global heap at byte {at} claims {size:,} bytes beyond the file")
    p = at + 16
    while p + 16 <= stop:
        idx, length = struct.unpack_from("<H6xQ", m, p)
        need = 16 + (length + 7) // 8 * 8 if idx else length
        if need == 0 or need > stop - p:
            raise FrontendError(f"{source}: global heap at byte {at} is corrupt (object at byte {p})")
        p += need


@contextlib.contextmanager
def open_hdf5(file: Union[str, IO[bytes]], source: str) -> Iterator[Any]:
    """An h5py file opened read-only and checked by :func:`check_hdf5`; errors of HDF5 itself
    (a truncated or corrupt file) become one-line FrontendErrors."""
    import h5py

    try:
        h5 = h5py.File(file, "r")
    except READ_ERRORS as exc:
        raise FrontendError(f"{source}: not a readable HDF5 file ({one_line(exc)})") from None
    with h5:
        try:
            if h5.id.get_create_plist().get_sizes()[1] != 8:
                raise FrontendError(f"{source}: HDF5 lengths of other than 8 bytes are not read")
            if isinstance(file, str):
                check_global_heaps(file, source)
            check_hdf5(h5, source)
        except SnncError:
            raise
        except READ_ERRORS as exc:
            raise FrontendError(f"{source}: not a readable HDF5 file ({one_line(exc)})") from None
        yield h5


def zip_member(z: zipfile.ZipFile, name: str, source: str, max_bytes: int | None = None) -> zipfile.ZipInfo:
    """The entry ``name`` of an archive after checking it exists, is no symbolic link and
    expands to at most ``max_bytes`` (default: the byte budget)."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise FrontendError(f"{source}: the archive has no {name}") from None
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise FrontendError(f"{source}: {name} is a symbolic link; snnc reads no file an archive names")
    if max_bytes is not None and info.file_size > max_bytes:
        raise FrontendError(f"{source}: {name} expands to {info.file_size:,} bytes (at most {max_bytes:,} are read)")
    limits.check("bytes", info.file_size, f"{source}: {name}")
    return info
