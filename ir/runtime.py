"""What snnc and the emitted run scripts share: data files read in the model's layout, the checks
of ``network.json`` and ``weights.npz``, spike-train encoding, run-script arguments and results.

Every target copies this file into its output folder as ``snnc_runtime.py`` beside ``run.py``, so
it needs only the standard library and numpy. Where snnc is importable (inside snnc as
``snnc.ir.runtime``, or a script run where snnc is installed) DataError is an SnncError and
arrays are checked against snnc's byte budget (:mod:`snnc.ir.limits`); elsewhere DataError is a
ValueError and the budget is DEFAULT_MAX_ARRAY_BYTES.

Everything read is untrusted (an output folder may have been tampered with). A data file is
``.npz`` with ``x`` (N, ...) samples and ``y`` (N,) integer labels. Each ``.npy`` member's header
is read first and its shape and dtype checked (numeric, no objects) and against the byte budget
before any data is read; then only the rows asked for are read. Samples must be finite, labels
whole numbers >= 0. Arrays are never unpickled; no file is opened by a name taken from
``network.json`` (arrays are looked up by key in ``weights.npz``).

Two kinds of failure: the data functions snnc calls (``load_data``, ``check_samples``,
``check_labels``, ``to_model_layout``) raise DataError; the functions for run scripts
(``read_json``, ``read_npz``, ``data_path``, ``load_samples`` and the value checks) exit with one
line ``run.py: <where>: <why>`` (Invalid, a SystemExit).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Optional

import numpy as np
from numpy.lib import format as npformat

try:  # snnc's error root and configurable byte budget, where snnc is importable
    from snnc.ir import limits as _limits
    from snnc.ir.errors import SnncError as _ErrorBase
except ImportError:  # a copy beside a run script, without snnc
    _limits = None
    _ErrorBase = ValueError

DEFAULT_MAX_ARRAY_BYTES = 8 * 2**30  # one array, as snnc's default byte budget
MAX_JSON_BYTES = 256 * 2**20
MAX_NEURONS = 100_000_000
MAX_SYNAPSES = 500_000_000  # a convolution or pool a run script spells out (24 bytes each as it connects)
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
LABEL_KINDS = "iuf"  # float labels must hold whole numbers
_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


class DataError(_ErrorBase):
    """A data file (or array) snnc cannot use; the message names the file and the array."""


# What a run script turns into one line: a DataError, or snnc's BudgetError where snnc is importable.
_REFUSED = (DataError,) if _limits is None else (DataError, _limits.BudgetError)


class Invalid(SystemExit):
    """A value a run script refuses: the script exits with one line ``run.py: <where>: <why>``."""

    def __init__(self, where: str, why: Optional[str] = None) -> None:
        super().__init__(f"run.py: {where}" + (f": {why}" if why else ""))


# --------------------------------------------------------------------------- .npy members


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _check_bytes(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    if _limits is not None:
        _limits.check_array(shape, itemsize, what)
    elif math.prod(shape) * itemsize > DEFAULT_MAX_ARRAY_BYTES:
        raise DataError(f"{what}: shape {list(shape)} exceeds {DEFAULT_MAX_ARRAY_BYTES} bytes")


def _header(f: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from an .npy header, without reading the data."""
    try:
        version = npformat.read_magic(f)
        read = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}.get(version)
        if read is not None:
            shape, fortran, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise DataError(f"{what}: not a readable .npy member ({_first_line(exc)})") from None
    if read is None:
        raise DataError(f"{what}: .npy format version {version} is not supported")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def read_member(
    zf: zipfile.ZipFile, member: str, kinds: str, out_itemsize: int, rows: Optional[int], what: str
) -> np.ndarray:
    """The first ``rows`` rows (all when None) of ``member`` (an .npy file in ``zf``), its header
    checked before reading: dtype of ``kinds``, not a scalar, within the byte budget at
    ``out_itemsize`` bytes per element once converted."""
    with zf.open(member) as f:
        shape, fortran, dtype = _header(f, what)
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise DataError(f"{what}: dtype {dtype} is not a plain numeric type")
        if not shape:
            raise DataError(f"{what}: a scalar, expected one entry per sample")
        take = shape[0] if rows is None or fortran else min(rows, shape[0])
        _check_bytes((take, *shape[1:]), max(dtype.itemsize, out_itemsize), what)
        count = take * math.prod(shape[1:])
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise DataError(f"{what}: the member ends before its declared shape {list(shape)}")
    if fortran:
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")
        return array[:rows] if rows is not None else array
    return np.frombuffer(raw, dtype=dtype).reshape((take, *shape[1:]))


# --------------------------------------------------------------------------- data files


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
            x = read_member(zf, "x.npy", NUMERIC_KINDS, 4, rows, f"{path}: x")
            y = read_member(zf, "y.npy", LABEL_KINDS, 8, rows, f"{path}: y") if "y" in names else None
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
    if x.dtype.hasobject or x.dtype.kind not in NUMERIC_KINDS:
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
    if y.dtype.hasobject or y.dtype.kind not in LABEL_KINDS:
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


def to_model_layout(x: np.ndarray, shape: tuple[int, ...], layout: Optional[str]) -> np.ndarray:
    """Samples as the IR takes them, (N, *shape) float32: NHWC data (rank 4) of a channels-last
    model becomes NCHW. Samples over time, (N, T, ...) whose steps hold ``shape``'s size, keep
    their time axis: (N, T, *shape)."""
    steps = steps_in(x.shape, shape)
    if steps is not None:
        flat = to_model_layout(x.reshape(len(x) * steps, *x.shape[2:]), shape, layout)
        return flat.reshape(len(x), steps, *shape)
    if layout == "NHWC" and x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.reshape((len(x), *shape)), dtype=np.float32)


def steps_in(data_shape: tuple[int, ...], shape: tuple[int, ...]) -> Optional[int]:
    """T for samples of ``data_shape`` (N, T, ...) over time whose steps hold ``shape``'s size;
    None for samples of one presentation (N, ...) and for anything else."""
    size = math.prod(shape)
    if math.prod(data_shape[1:]) == size:
        return None
    return data_shape[1] if len(data_shape) >= 3 and math.prod(data_shape[2:]) == size else None


# --------------------------------------------------------------------------- run script inputs


def read_json(path: Path, finite: bool = True) -> dict:
    """A JSON object from ``path``: size-limited; NaN and Infinity refused where ``finite``
    (snnc.json records tau_m = Infinity)."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise Invalid(path.name, f"larger than {MAX_JSON_BYTES} bytes")

    def constant(name: str) -> None:
        raise Invalid(path.name, f"{name} is not a valid value")

    try:
        value = json.loads(path.read_text(encoding="utf-8"), parse_constant=constant if finite else None)
    except (ValueError, RecursionError) as exc:
        raise Invalid(path.name, f"not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(value, dict):
        raise Invalid(path.name, "must hold a JSON object")
    return value


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The numeric arrays of an .npz file (``weights.npz``), each header checked before reading."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.endswith(".npy"):
                    arrays[member[:-4]] = read_member(zf, member, NUMERIC_KINDS, 8, None, f"{path.name}: {member[:-4]}")
    except _REFUSED as exc:
        raise Invalid(str(exc)) from None
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, ValueError) as exc:
        raise Invalid(str(path), f"not a readable .npz file ({str(exc)[:100]})") from None
    return arrays


def data_path(folder: Path, given: Optional[Path]) -> Path:
    """The data file: ``--data``, else the one snnc.json (in ``folder``) recorded at compile time."""
    if given is not None:
        return Path(given)
    manifest = read_json(folder / "snnc.json", finite=False)
    recorded = manifest.get("data")
    if not recorded:
        raise Invalid("no data recorded at compile time; pass --data FILE.npz")
    if not isinstance(recorded, str) or not recorded.endswith(".npz"):
        raise Invalid("snnc.json: data", "must be the path of an .npz file")
    return Path(recorded)


def ann_reference(folder: Path, x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """The original ANN's accuracy on the same samples, where snnc is installed here
    (ann.snnir in ``folder``; None for a model that was spiking already)."""
    try:
        from snnc.ir import load
        from snnc.ir.semantics.ann import accuracy
    except ImportError:
        print("run.py: snnc is not installed here, so no ANN reference accuracy")
        return None
    graph = load(folder / "ann.snnir")
    size = math.prod(graph.shape(graph.ops_of("ann.input")[0])) if graph.dialect == "ann" else 0
    if size and x.ndim == 2 and x.shape[1] != size and x.shape[1] % size == 0:  # samples over time
        x = x.reshape(len(x), -1, size).mean(axis=1)  # the ANN takes each input's mean value (rate) per step
    return accuracy(graph, x, y)


def load_inputs(
    folder: Path, data: Optional[Path], samples: Optional[int], check_network: Callable[[dict, dict], None]
) -> tuple[dict, dict, Path, np.ndarray, np.ndarray]:
    """What a run script reads, all checked: ``(network.json, weights.npz arrays, data path,
    x (N, inputs) in the network's C, H, W order, y)``; ``check_network`` is the script's own check."""
    network = read_json(folder / "network.json")
    arrays = read_npz(folder / "weights.npz")
    check_network(network, arrays)
    path = data_path(folder, data)
    source = network["cells"][0]
    readout = next(c for c in network["cells"] if c.get("readout"))
    x, y = load_samples(path, samples, tuple(source["shape"]), readout["size"], network["input_layout"])
    return network, arrays, path, x.reshape(len(x), -1), y


def load_samples(
    path: Path, samples: Optional[int], shape: tuple[int, ...], classes: int, layout: Optional[str] = "NCHW"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x (N, *shape) float32 in the network's layout, y (N,) int64)``: the first (up to)
    ``samples`` of a data file, read by ``load_data`` with labels required in [0, classes)."""
    try:
        x, y = load_data(path, at_most=samples, require_y=True, classes=classes)
        if math.prod(x.shape[1:]) != math.prod(shape) and steps_in(x.shape, shape) is None:
            raise DataError(f"{path}: samples of shape {list(x.shape[1:])}, the network takes {list(shape)}")
    except _REFUSED as exc:
        raise Invalid(str(exc)) from None
    return to_model_layout(x, tuple(shape), layout), y


# --------------------------------------------------------------------------- network.json values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """``repr(value)``, cut to 40 characters for a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def number(
    obj: dict,
    key: str,
    where: str,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    optional: bool = False,
) -> Optional[float]:
    """``obj[key]``: a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and optional and isinstance(obj, dict):
        return None
    if not _is_number(value) or not math.isfinite(value):
        raise Invalid(f"{where}.{key}", f"must be a finite number, got {shown(value)}")
    if value < low or value > high or (low_open and value == low):
        raise Invalid(f"{where}.{key}", f"{value} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
    return float(value)


def integer(obj: dict, key: str, where: str, low: int, high: int) -> int:
    """``obj[key]``: an integer in [low, high]."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid(f"{where}.{key}", f"must be an integer in [{low}, {high}], got {shown(value)}")
    return value


def choice(obj: dict, key: str, where: str, options: tuple) -> Any:
    """``obj[key]``: one of ``options`` (None among them where it may be absent)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value not in options or type(value) not in {type(o) for o in options}:
        raise Invalid(f"{where}.{key}", f"must be one of {', '.join(map(str, options))}, got {shown(value)}")
    return value


def entries(obj: dict, key: str, where: str, kind: type, low: int = 0) -> list:
    """``obj[key]``: a list (at least ``low`` long) of ``kind`` items."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list) or len(value) < low or not all(isinstance(v, kind) for v in value):
        raise Invalid(f"{where}.{key}", f"must be a list of {kind.__name__} (at least {low})")
    return value


def array(arrays: dict, obj: dict, key: str, where: str, shape: tuple, file: str = "weights.npz") -> np.ndarray:
    """The float64 array ``obj[key]`` names in ``arrays`` (from ``file``): finite, of ``shape`` (None: any size)."""
    name = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(name, str) or not _KEY.fullmatch(name) or name not in arrays:
        raise Invalid(f"{where}.{key}", f"must name an array of {file}, got {shown(name)}")
    value = arrays[name]
    if value.ndim != len(shape) or any(s is not None and s != value.shape[k] for k, s in enumerate(shape)):
        raise Invalid(f"{file}: {name}", f"shape {list(value.shape)}, expected {list(shape)}")
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        raise Invalid(f"{file}: {name}", "holds NaN or infinite values")
    arrays[name] = value
    return value


def index_column(conn: np.ndarray, column: int, size: int, what: str) -> None:
    """Column ``column`` of a connection list holds whole numbers in [0, size)."""
    values = conn[:, column]
    if len(values) and (values.min() < 0 or values.max() >= size or (values != np.floor(values)).any()):
        raise Invalid(what, f"column {column} holds indices outside [0, {size})")


def synapse_list(arrays: dict, proj: dict, pre: dict, post: dict, where: str) -> np.ndarray:
    """A projection stored as a list (``indices``: an (n, 2) array of pre and post indices within
    the two cells; ``weights``: n weights) as (pre, post, weight) float64 rows."""
    indices = array(arrays, proj, "indices", where, (None, 2))
    index_column(indices, 0, pre["size"], f"{where}.indices")
    index_column(indices, 1, post["size"], f"{where}.indices")
    weights = array(arrays, proj, "weights", where, (len(indices),))
    return np.column_stack([indices, weights])


def windows(
    in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple, strides: tuple, pads: tuple, dilations: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input row and column of every (out y, out x, kernel y, kernel x) of a sliding window, and
    whether it lies inside the input (``pads``: top, left, ...)."""
    oy = np.arange(out_hw[0])[:, None, None, None]
    ox = np.arange(out_hw[1])[None, :, None, None]
    ky = np.arange(kernel[0])[None, None, :, None]
    kx = np.arange(kernel[1])[None, None, None, :]
    iy = oy * strides[0] - pads[0] + ky * dilations[0]
    ix = ox * strides[1] - pads[1] + kx * dilations[1]
    iy, ix = np.broadcast_arrays(iy, ix)
    inside = (iy >= 0) & (iy < in_hw[0]) & (ix >= 0) & (ix < in_hw[1])
    return iy, ix, inside


def conv_connections(
    pre_shape: tuple, post_shape: tuple, weight: np.ndarray, strides: tuple, pads: tuple, dilations: tuple, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every synapse of a convolution with a non-zero weight: (pre, post) indices into the C-major
    flattened populations (int64) and the weights (float32), in (out channel, in channel, out y,
    out x, kernel y, kernel x) order. ``weight``: (out channels, in channels / groups, kh, kw)."""
    c_in, h, w_in = pre_shape
    c_out, oh, ow = post_shape
    iy, ix, inside = windows((h, w_in), (oh, ow), weight.shape[2:], strides, pads, dilations)
    cin_g = c_in // groups
    oc = np.arange(c_out)[:, None]
    ic = (oc // (c_out // groups)) * cin_g + np.arange(cin_g)[None, :]  # (c_out, cin_g)
    oc6, ic6 = oc[:, :, None, None, None, None], ic[:, :, None, None, None, None]  # to (c_out, cin_g, oh, ow, kh, kw)
    pre = (ic6 * h + iy) * w_in + ix
    post = (oc6 * oh + np.arange(oh)[:, None, None, None]) * ow + np.arange(ow)[None, :, None, None]
    wts = weight.astype(np.float32)[:, :, None, None, :, :]
    pre, post, wts, keep = np.broadcast_arrays(pre, post, wts, inside[None, None])
    keep = keep & (wts != 0)
    return pre[keep].astype(np.int64), post[keep].astype(np.int64), wts[keep]


def pool_connections(
    pre_shape: tuple, post_shape: tuple, scale: float, kernel: tuple, strides: tuple, pads: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every synapse of a pool (channel c of the input feeds channel c of the output, each window
    element with weight ``scale``), as :func:`conv_connections` gives them."""
    c_in, h, w_in = pre_shape
    _, oh, ow = post_shape
    iy, ix, inside = windows((h, w_in), (oh, ow), kernel, strides, pads, (1, 1))
    c = np.arange(c_in)[:, None, None, None, None]
    pre = (c * h + iy) * w_in + ix
    post = (c * oh + np.arange(oh)[:, None, None, None]) * ow + np.arange(ow)[None, :, None, None]
    pre, post, wts, keep = np.broadcast_arrays(pre, post, np.float32(scale), inside[None])
    keep = keep & (wts != 0)
    return pre[keep].astype(np.int64), post[keep].astype(np.int64), wts[keep]


def stored_connections(arrays: dict, proj: dict, pre: dict, post: dict, where: str) -> np.ndarray:
    """A projection of a compact ``network.json`` spelled out as (pre, post, weight) float64 rows:
    ``kind`` "list" (``indices`` (n, 2) and ``weights`` (n,) arrays), "dense" (a (post, pre)
    ``weight`` matrix: its non-zero entries), "conv" (a ``kernel`` array and the window's
    geometry) or "pool" (``scale`` and the geometry); every index and the geometry checked
    against the two cells before anything is spelled out."""
    kind = choice(proj, "kind", where, ("list", "dense", "conv", "pool"))
    if kind == "list":
        return synapse_list(arrays, proj, pre, post, where)
    if kind == "dense":
        weight = array(arrays, proj, "weight", where, (post["size"], pre["size"]))
        rows, columns = np.nonzero(weight)
        return np.column_stack([columns, rows, weight[rows, columns].astype(np.float64)])
    pre_shape, post_shape = (_grid(proj, key, cell, where) for key, cell in (("pre_shape", pre), ("post_shape", post)))
    strides = _pair(proj, "strides", where, 1)
    pads = entries(proj, "pads", where, int, 4)
    if len(pads) != 4 or min(pads) < 0 or max(pads) > 1_000_000:
        raise Invalid(f"{where}.pads", "must be four whole numbers in [0, 1000000]")
    if kind == "conv":
        dilations = _pair(proj, "dilations", where, 1)
        groups = integer(proj, "groups", where, 1, pre_shape[0])
        if pre_shape[0] % groups or post_shape[0] % groups:
            channels = f"{pre_shape[0]} and {post_shape[0]} channels"
            raise Invalid(f"{where}.groups", f"{groups} groups do not divide {channels}")
        kernel = array(arrays, proj, "kernel", where, (post_shape[0], pre_shape[0] // groups, None, None))
        if 0 in kernel.shape:
            raise Invalid(f"{where}.kernel", "an empty kernel")
        size, window = kernel.shape[2:], dilations
    else:
        number(proj, "scale", where)
        size, window = _pair(proj, "kernel_size", where, 1), (1, 1)
    for axis in (0, 1):
        span = window[axis] * (size[axis] - 1) + 1
        padded = pre_shape[axis + 1] + pads[axis] + pads[axis + 2]
        if padded < span or (padded - span) // strides[axis] + 1 != post_shape[axis + 1]:
            raise Invalid(f"{where}.post_shape", f"{post_shape} is not what the window makes of {pre_shape}")
    per_out = (pre_shape[0] // groups if kind == "conv" else 1) * size[0] * size[1]
    if post["size"] * per_out > MAX_SYNAPSES:
        raise Invalid(where, f"{post['size'] * per_out:,} synapses to spell out (at most {MAX_SYNAPSES:,})")
    if kind == "conv":
        found = conv_connections(pre_shape, post_shape, kernel, strides, pads, dilations, groups)
    else:
        found = pool_connections(pre_shape, post_shape, proj["scale"], size, strides, pads)
    return np.column_stack([found[0], found[1], found[2].astype(np.float64)])


def _grid(proj: dict, key: str, cell: dict, where: str) -> tuple[int, int, int]:
    """``proj[key]``: a (C, H, W) shape holding the cell's neurons."""
    shape = entries(proj, key, where, int, 3)
    if len(shape) != 3 or min(shape) < 1 or math.prod(shape) != cell["size"]:
        raise Invalid(f"{where}.{key}", f"must be (C, H, W) of the cell's {cell['size']} neurons, got {shown(shape)}")
    return tuple(shape)


def _pair(proj: dict, key: str, where: str, low: int) -> tuple[int, int]:
    """``proj[key]``: two whole numbers in [low, 1000000]."""
    pair = entries(proj, key, where, int, 2)
    if len(pair) != 2 or min(pair) < low or max(pair) > 1_000_000:
        raise Invalid(f"{where}.{key}", f"must be two whole numbers in [{low}, 1000000]")
    return tuple(pair)


def cell_shape(cell: dict, where: str) -> list:
    """A cell's ``shape``: positive integers holding its ``size`` neurons."""
    shape = entries(cell, "shape", where, int, 1)
    if min(shape) < 1 or int(np.prod(shape)) != cell["size"]:
        raise Invalid(f"{where}.shape", f"{shape} does not hold {cell['size']} neurons")
    return shape


def check_cells(network: Any) -> list:
    """The fields every PyNN ``network.json`` has (time step, layout, cells: a source first, one
    read out); returns its cells. A target's run script checks its own fields after these."""
    top = "network.json"
    if not isinstance(network, dict):
        raise Invalid(top, "must hold a JSON object")
    number(network, "dt", top, 0.001, 1000.0)
    number(network, "presentation_time", top, 0.0, 1e7, low_open=True)
    choice(network, "input_layout", top, ("NCHW", "NHWC"))
    cells = entries(network, "cells", top, dict, 2)
    for i, cell in enumerate(cells):
        where = f"{top}: cells[{i}]"
        kind = choice(cell, "kind", where, ("source", "population"))
        if (kind == "source") != (i == 0):
            raise Invalid(where, "the first cell, and only it, must be the source")
        integer(cell, "size", where, 1, MAX_NEURONS)
        if kind == "source":
            shape = cell_shape(cell, where)
            if network["input_layout"] == "NHWC" and len(shape) != 3:
                raise Invalid(f"{where}.shape", "a channels-last input needs a (C, H, W) shape")
            number(cell, "gain", where)
            number(cell, "max_rate", where, 0.0, 1e6)
    if not any(isinstance(c.get("readout"), str) for c in cells):
        raise Invalid(top, "no cell is read out")
    return cells


def projection_ends(proj: dict, cells: list, where: str) -> tuple[dict, dict]:
    """The (pre, post) cells of a projection, whose indices and delay are checked."""
    pre = cells[integer(proj, "pre", where, 0, len(cells) - 1)]
    post = cells[integer(proj, "post", where, 1, len(cells) - 1)]
    number(proj, "delay", where, 0.0, 1e4)
    return pre, post


# --------------------------------------------------------------------------- spike trains


def regular_spike_times(
    rates: np.ndarray, starts: np.ndarray, steps: int, dt: float, first_step: int = 0, chunk: int = 16
) -> list[np.ndarray]:
    """Regular spike trains of n neurons over several samples, as snnc's simulator makes them.

    ``rates`` (samples, n): spikes per time step. In sample s, neuron j spikes at the steps
    k = 0 .. steps - 1 where floor((k + 1) * rates[s, j]) grows, at time
    ``starts[s] + (first_step + k) * dt``. Returns one sorted array of times per neuron.
    """
    n = rates.shape[1]
    neurons, times = [], []
    k = np.arange(1, steps + 1, dtype=np.float64)[None, :, None]
    for first in range(0, len(rates), chunk):
        p = rates[first : first + chunk, None, :].astype(np.float64)
        fired = np.diff(np.floor(p * k + 1e-9), axis=1, prepend=0.0) > 0  # (samples, steps, n)
        s, step, neuron = np.nonzero(fired)
        neurons.append(neuron)
        times.append(starts[first + s] + (first_step + step) * dt)
    neurons, times = np.concatenate(neurons), np.concatenate(times)
    order = np.lexsort((times, neurons))
    bounds = np.searchsorted(neurons[order], np.arange(n + 1))
    times = times[order]
    return [times[bounds[i] : bounds[i + 1]] for i in range(n)]


def over_time(x: np.ndarray, size: int) -> tuple[np.ndarray, Optional[int]]:
    """Samples as ``load_inputs`` returns them, (N, size) or (N, T * size) for samples over time:
    ``(x (N, T, size), T)`` for the latter, ``(x, None)`` for the former."""
    if x.shape[1] == size:
        return x, None
    return x.reshape(len(x), -1, size), x.shape[1] // size


def event_counts(x: np.ndarray, most: Optional[int] = None, why: str = "") -> np.ndarray:
    """The spike counts of ``events`` input, (N, T, n) samples over time, as int64: whole numbers
    >= 0, at most ``most`` per neuron and step where the machine takes no more (``why`` says why);
    exits with one line otherwise. The simulator emits ``x * gain``: a run script multiplies the
    weights out of the source by the source's gain (1 unless normalize scaled it)."""
    counts = x.astype(np.float32)
    bad = (counts < 0) | (counts != np.floor(counts))
    if bad.any():
        s, k, j = (int(i[0]) for i in np.nonzero(bad))
        raise Invalid(f"events: sample {s}, step {k}, input {j}", f"{counts[s, k, j]:g} is not a spike count (n >= 0)")
    if most is not None and counts.max(initial=0) > most:
        s, k, j = (int(i[0]) for i in np.nonzero(counts > most))
        raise Invalid(f"events: sample {s}, step {k}, input {j}", f"{counts[s, k, j]:g} spikes in a step; {why}")
    return counts.astype(np.int64)


def event_spike_times(counts: np.ndarray, starts: np.ndarray, dt: float, first_step: int = 0) -> list[np.ndarray]:
    """Spike times of ``events`` input per neuron: ``counts`` (samples, steps, n); in sample s a
    count c at step k is c spikes at ``starts[s] + (first_step + k) * dt`` (the time repeated c
    times). Returns one sorted array of times per neuron."""
    s, k, j = np.nonzero(counts)
    repeat = counts[s, k, j]
    s, k, j = np.repeat(s, repeat), np.repeat(k, repeat), np.repeat(j, repeat)
    times = starts[s] + (first_step + k) * dt
    order = np.lexsort((times, j))
    bounds = np.searchsorted(j[order], np.arange(counts.shape[2] + 1))
    times = times[order]
    return [times[bounds[i] : bounds[i + 1]] for i in range(counts.shape[2])]


def timed_spike_counts(
    x: np.ndarray, source: dict, dt: float, rng: np.random.Generator, most: Optional[int] = None, why: str = ""
) -> np.ndarray:
    """Spike counts (N, T, n) of a spiking source (network.json's cells[0]) fed samples over time
    ``x`` (N, T, n), as the simulator makes them: ``events`` as they are (:func:`event_counts`,
    ``most`` and ``why`` passed on; the gain is the caller's), ``regular`` a phase from 0 per
    sample fed each step's rate, ``poisson`` a draw per step (other random numbers than the
    simulator's)."""
    if source["encoding"] == "events":
        return event_counts(x, most, why)
    p = x.astype(np.float32) * np.float32(source["gain"]) * np.float32(source["max_rate"] / 1000.0 * dt)
    if source["encoding"] == "poisson":
        return (rng.random(p.shape, dtype=np.float32) < p).astype(np.int64)
    out = np.zeros(p.shape, np.int64)
    phase = np.zeros_like(p[:, 0])
    for k in range(p.shape[1]):
        phase += p[:, k]
        fired = phase >= 1.0
        phase -= fired
        out[:, k] = fired
    return out


def timed_inputs(network: dict, x: np.ndarray, presentation_time: Optional[float]) -> Optional[np.ndarray]:
    """Samples over time for a network's spike source as (N, T, inputs), or None for samples of one
    presentation; exits with one line where they cannot run (events without a time axis, current
    input over time, a presentation time given with samples over time)."""
    source = network["cells"][0]
    x3, steps = over_time(x, source["size"])
    if steps is None:
        if source["encoding"] == "events":
            raise Invalid("events input needs samples over time, x of shape (N, T, ...)")
        return None
    if source["encoding"] == "current":
        raise Invalid("samples over time feed spike sources here; compile with encoding=events or regular")
    if presentation_time is not None:
        raise Invalid("--presentation-time", f"samples over time run their {steps} steps")
    return x3


# --------------------------------------------------------------------------- arguments and results


def bounded(kind: type, low: float, high: float, low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) in [low, high] (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{shown(text)} is not {expected}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
        return value

    return parse


def absolute(text: str) -> Path:
    """A command-line path as an absolute one (run scripts may change their working directory)."""
    return Path(text).resolve()


def argument_parser(
    doc: Optional[str], folder: Path, seed: bool = False, presentation_time: bool = False, ann: bool = True
) -> argparse.ArgumentParser:
    """The arguments of every run script (--dir, --data, --samples), with --seed,
    --presentation-time and --no-ann where asked for; a script adds its own."""
    p = argparse.ArgumentParser(prog="run.py", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=absolute, default=folder, help="the compiled network's folder (default: the script's)")
    p.add_argument("--data", type=Path, help=".npz with x and y (default: recorded in snnc.json)")
    p.add_argument("--samples", type=bounded(int, 1, 2**62), help="number of samples (default: all)")
    if seed:
        p.add_argument("--seed", type=bounded(int, 0, 2**31 - 2), default=0, help="seed of the random numbers")
    if presentation_time:
        p.add_argument("--presentation-time", type=bounded(float, 0.0, 1e7, low_open=True), help="ms per sample")
    if ann:
        p.add_argument("--no-ann", action="store_true", help="skip the ANN reference accuracy")
    return p


def write_results(folder: Path, results: dict[str, Any]) -> None:
    """Write ``folder/results.json`` (sorted keys, two-space indent, one trailing newline)."""
    (folder / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def classification(
    target: str, args: argparse.Namespace, x: np.ndarray, y: np.ndarray, readout: np.ndarray, **run: Any
) -> tuple[dict[str, Any], np.ndarray]:
    """The results every simulating run script reports and the predictions (the readout's argmax);
    ``run``: simulated_time_ms, dt, build_time_s, run_time_s and data (the data file's path)."""
    predictions = readout.argmax(axis=1)
    results = {
        "target": target,
        "samples": len(x),
        "accuracy": float(np.mean(predictions == y)),
        "ann_accuracy": None if args.no_ann else ann_reference(args.dir, x, y),
        **run,
        "wall_time_s": run["build_time_s"] + run["run_time_s"],
        "samples_per_second": len(x) / run["run_time_s"] if run["run_time_s"] > 0 else None,
    }
    return results, predictions


def save_classification(
    folder: Path, results: dict[str, Any], readout: np.ndarray, predictions: np.ndarray, y: np.ndarray, **counts: Any
) -> None:
    """Write outputs.npz (readout, predictions, labels, spike counts per cell) and results.json."""
    np.savez(folder / "outputs.npz", readout=readout, predictions=predictions, labels=y, **counts)
    write_results(folder, results)


def summary(label: str, results: dict[str, Any], extra: str = "") -> str:
    """The line a run script prints: accuracy against the ANN, samples, times and speed."""
    ann = "n/a" if results["ann_accuracy"] is None else f"{results['ann_accuracy']:.4f}"
    return (
        f"{label}: accuracy {results['accuracy']:.4f} (ANN {ann}) on {results['samples']} samples; {extra}"
        f"build {results['build_time_s']:.1f} s, run {results['run_time_s']:.1f} s "
        f"({results['samples_per_second']:.1f} samples/s)"
    )
