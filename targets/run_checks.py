"""Checks the emitted run scripts make on what they read (copied beside them as ``run_checks.py``).

An output directory may have been tampered with, so ``run.py`` trusts nothing in it: every value
of ``network.json`` is checked for its type, finiteness and range, every array of
``weights.npz`` for its dtype, shape, finiteness and indices, and the data file's arrays for
their size (from the ``.npy`` headers, before reading), dtype, finiteness and labels. Arrays are
read with ``allow_pickle=False``; no file is opened by a name taken from ``network.json``
(arrays are looked up by key in ``weights.npz`` beside the script). A failure exits with one
line ``run.py: <file>: <where>: <why>``. Needs only the standard library and numpy.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
from numpy.lib import format as npformat

MAX_JSON_BYTES = 256 * 2**20
MAX_ARRAY_BYTES = 8 * 2**30  # one array, as snnc's default byte budget
MAX_NEURONS = 100_000_000
_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


class Invalid(SystemExit):
    """A value a run script refuses; exits with one line."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"run.py: {where}: {why}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(obj: dict, key: str, where: str, low: float = -math.inf, high: float = math.inf,
           low_open: bool = False, optional: bool = False) -> Optional[float]:
    """``obj[key]``: a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None and optional and isinstance(obj, dict):
        return None
    if not _is_number(value) or not math.isfinite(value):
        raise Invalid(f"{where}.{key}", f"must be a finite number, got {_shown(value)}")
    if value < low or value > high or (low_open and value == low):
        raise Invalid(f"{where}.{key}", f"{value} is outside {'(' if low_open else '['}{low:g}, {high:g}]")
    return float(value)


def integer(obj: dict, key: str, where: str, low: int, high: int) -> int:
    """``obj[key]``: an integer in [low, high]."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Invalid(f"{where}.{key}", f"must be an integer in [{low}, {high}], got {_shown(value)}")
    return value


def choice(obj: dict, key: str, where: str, options: tuple) -> Any:
    """``obj[key]``: one of ``options`` (None among them where it may be absent)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value not in options or type(value) not in {type(o) for o in options}:
        raise Invalid(f"{where}.{key}", f"must be one of {', '.join(map(str, options))}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def entries(obj: dict, key: str, where: str, kind: type, low: int = 0) -> list:
    """``obj[key]``: a list (at least ``low`` long) of ``kind`` items."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list) or len(value) < low or not all(isinstance(v, kind) for v in value):
        raise Invalid(f"{where}.{key}", f"must be a list of {kind.__name__} (at least {low})")
    return value


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


def read_npz(path: Path, rows: Optional[int] = None, only: Optional[set] = None) -> dict[str, np.ndarray]:
    """The numeric arrays of an .npz file (the first ``rows`` rows of each, where given; only the
    names in ``only``), each header checked against MAX_ARRAY_BYTES before its data is read."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                name = member[:-4]
                if member.endswith(".npy") and (only is None or name in only):
                    arrays[name] = _read_member(zf, member, rows, f"{path.name}: {name}")
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, ValueError) as exc:
        raise Invalid(str(path), f"not a readable .npz file ({str(exc)[:100]})") from None
    return arrays


def _read_member(zf: zipfile.ZipFile, member: str, rows: Optional[int], what: str) -> np.ndarray:
    with zf.open(member) as f:
        version = npformat.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise Invalid(what, f".npy version {version} is not supported")
        read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if dtype.hasobject or dtype.names is not None or dtype.kind not in "biuf" or not shape:
            raise Invalid(what, f"dtype {dtype} with shape {list(shape)} is not a numeric array")
        take = shape[0] if rows is None or fortran else min(rows, shape[0])
        count = take * math.prod(shape[1:])
        if count * max(dtype.itemsize, 8) > MAX_ARRAY_BYTES:
            raise Invalid(what, f"shape {list(shape)} exceeds {MAX_ARRAY_BYTES} bytes")
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise Invalid(what, "the member ends before its declared shape")
    if fortran:
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")[:rows]
    return np.frombuffer(raw, dtype=dtype).reshape((take, *shape[1:]))


def array(arrays: dict, obj: dict, key: str, where: str, shape: tuple) -> np.ndarray:
    """The float64 array ``obj[key]`` names in ``arrays``: finite, of ``shape`` (None: any size)."""
    name = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(name, str) or not _KEY.fullmatch(name) or name not in arrays:
        raise Invalid(f"{where}.{key}", f"must name an array of weights.npz, got {_shown(name)}")
    value = arrays[name]
    if value.ndim != len(shape) or any(s is not None and s != value.shape[k] for k, s in enumerate(shape)):
        raise Invalid(f"weights.npz: {name}", f"shape {list(value.shape)}, expected {list(shape)}")
    value = value.astype(np.float64)
    if not np.isfinite(value).all():
        raise Invalid(f"weights.npz: {name}", "holds NaN or infinite values")
    arrays[name] = value
    return value


def index_column(conn: np.ndarray, column: int, size: int, what: str) -> None:
    """Column ``column`` of a connection list holds whole numbers in [0, size)."""
    values = conn[:, column]
    if len(values) and (values.min() < 0 or values.max() >= size or (values != np.floor(values)).any()):
        raise Invalid(what, f"column {column} holds indices outside [0, {size})")


def load_samples(path: Path, samples: Optional[int], n_inputs: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, n_inputs) float32, y (N,) int64) of the first (up to) ``samples`` of a data file,
    checked: x finite with ``n_inputs`` values per sample, y labels in [0, classes)."""
    if samples is not None and samples < 1:
        raise Invalid("--samples", f"{samples}: must be >= 1")
    if not Path(path).is_file():
        raise Invalid(str(path), "no such data file")
    arrays = read_npz(Path(path), rows=samples, only={"x", "y"})
    if "x" not in arrays or "y" not in arrays:
        raise Invalid(str(path), "needs arrays x (samples) and y (labels)")
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or len(x) == 0 or math.prod(x.shape[1:]) != n_inputs:
        raise Invalid(f"{path}: x", f"shape {list(x.shape)}; the network takes samples of {n_inputs} values")
    x = x.reshape(len(x), -1).astype(np.float32)
    if not np.isfinite(x).all():
        raise Invalid(f"{path}: x", "holds NaN or infinite values")
    if y.shape != (len(x),) or y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= classes)):
        raise Invalid(f"{path}: y", f"must be {len(x)} integer labels in [0, {classes})")
    return x, y.astype(np.int64)


def data_path(here: Path, given: Optional[Path]) -> Path:
    """The data file: ``--data``, else the one snnc.json recorded at compile time."""
    if given is not None:
        return Path(given)
    manifest = read_json(here / "snnc.json", finite=False)
    recorded = manifest.get("data")
    if not recorded:
        raise SystemExit("run.py: no data recorded at compile time; pass --data FILE.npz")
    if not isinstance(recorded, str) or not recorded.endswith(".npz"):
        raise Invalid("snnc.json: data", "must be the path of an .npz file")
    return Path(recorded)


def _common(network: Any) -> list:
    """The fields every PyNN network.json has; returns its cells."""
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
            shape = entries(cell, "shape", where, int, 1)
            if min(shape) < 1 or math.prod(shape) != cell["size"]:
                raise Invalid(f"{where}.shape", f"{shape} does not hold {cell['size']} neurons")
            if network["input_layout"] == "NHWC" and len(shape) != 3:
                raise Invalid(f"{where}.shape", "a channels-last input needs a (C, H, W) shape")
            number(cell, "gain", where)
            number(cell, "max_rate", where, 0.0, 1e6)
    if not any(isinstance(c.get("readout"), str) for c in cells):
        raise Invalid(top, "no cell is read out")
    return cells


def _ends(proj: dict, cells: list, where: str) -> tuple[dict, dict]:
    pre = cells[integer(proj, "pre", where, 0, len(cells) - 1)]
    post = cells[integer(proj, "post", where, 1, len(cells) - 1)]
    number(proj, "delay", where, 0.0, 1e4)
    return pre, post


def check_nest(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the nest target (see targets/nest/target.py)."""
    cells = _common(network)
    for i, cell in enumerate(cells[1:], start=1):
        where = f"network.json: cells[{i}]"
        array(arrays, cell, "i_offset", where, (cell["size"],))
        number(cell, "v_thresh", where)
        number(cell, "v_reset", where)
        choice(cell, "reset", where, ("zero", "subtract"))
        number(cell, "tau_m", where, 0.0, 1e12, low_open=True)
        number(cell, "tau_refrac", where, 0.0, 1e6)
        number(cell, "v_min", where, optional=True)
        choice(cell, "readout", where, (None, "spike_count", "membrane"))
    if cells[0]["encoding"] not in ("current", "poisson", "regular"):
        raise Invalid("network.json: cells[0].encoding", "must be current, poisson or regular")
    for j, proj in enumerate(entries(network, "projections", "network.json", dict, 1)):
        where = f"network.json: projections[{j}]"
        pre, post = _ends(proj, cells, where)
        choice(proj, "receptor", where, ("excitatory", "inhibitory", "mixed"))
        conn = array(arrays, proj, "connections", where, (None, 3))
        index_column(conn, 0, pre["size"], f"{where}.connections")
        index_column(conn, 1, post["size"], f"{where}.connections")


def check_spinnaker(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the spinnaker target (see targets/spinnaker/target.py)."""
    cells = _common(network)
    top = "network.json"
    number(network, "pause", top, 0.0, 1e7)
    integer(network, "instances", top, 1, 1_000_000)
    integer(network, "time_scale_factor", top, 1, 10_000)
    choice(network, "board", top, ("spinn3", "spinn5"))
    if cells[0].get("encoding", "regular") != "regular":
        raise Invalid(f"{top}: cells[0].encoding", "must be regular")
    for i, cell in enumerate(cells):
        where = f"{top}: cells[{i}]"
        grid = choice(cell, "grid", where, (True, False))
        per_core = entries(cell, "per_core", where, int, 1)
        if len(per_core) != (2 if grid else 1) or min(per_core) < 1 or (grid and len(cell["shape"]) != 3):
            raise Invalid(f"{where}.per_core", f"{per_core} does not fit shape {cell['shape']}")
        if i:
            _spinnaker_population(cell, arrays, where)
    for j, proj in enumerate(entries(network, "projections", top, dict, 1)):
        _spinnaker_projection(proj, cells, arrays, f"{top}: projections[{j}]")


_PARAMS = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_refrac")


def _spinnaker_population(cell: dict, arrays: dict, where: str) -> None:
    entries(cell, "shape", where, int, 1)
    array(arrays, cell, "i_offset", where, (cell["size"],))
    choice(cell, "readout", where, (None, "spike_count"))
    choice(cell, "model", where, ("IF_curr_delta", "IF_trunc_delta"))
    params = cell.get("params")
    if not isinstance(params, dict) or not set(params) <= set(_PARAMS):
        raise Invalid(f"{where}.params", f"must be an object with keys among {', '.join(_PARAMS)}")
    for key in params:
        positive = key in ("tau_m", "cm")
        number(params, key, f"{where}.params", 0.0, 1e12 if positive else math.inf, low_open=positive)
    summed = cell.get("max_expected_summed_weight")
    if summed is not None:
        ok = isinstance(summed, list) and len(summed) == 2 and all(_is_number(v) and 0 < v < 1e30 for v in summed)
        if not ok:
            raise Invalid(f"{where}.max_expected_summed_weight", "must be null or two positive numbers")


def _spinnaker_projection(proj: dict, cells: list, arrays: dict, where: str) -> None:
    pre, post = _ends(proj, cells, where)
    kind = choice(proj, "kind", where, ("list", "conv", "pool", "pool_dense"))
    if kind != "list" and not pre["grid"]:
        raise Invalid(where, f"a {kind} projection needs a grid population before it")
    if kind == "list":
        choice(proj, "receptor", where, ("excitatory", "inhibitory"))
        conn = array(arrays, proj, "connections", where, (None, 3))
        index_column(conn, 0, pre["size"], f"{where}.connections")
        index_column(conn, 1, post["size"], f"{where}.connections")
    elif kind == "conv":
        groups = integer(proj, "groups", where, 1, 1_000_000)
        integer(proj, "padding", where, 0, 10_000)
        kernels = array(arrays, proj, "kernels", where, (None, None, None, None))
        out_c, in_per_group = kernels.shape[:2]
        if not post["grid"] or out_c != post["shape"][0] or out_c % groups or in_per_group * groups != pre["shape"][0]:
            raise Invalid(f"{where}.kernels", f"shape {list(kernels.shape)} does not fit {pre['shape']} -> "
                          f"{post['shape']} in {groups} group(s)")  # fmt: skip
    elif kind == "pool":
        pool = entries(proj, "pool", where, int, 2)
        if len(pool) != 2 or min(pool) < 1 or not post["grid"] or post["shape"][0] != pre["shape"][0]:
            raise Invalid(f"{where}.pool", f"{pool} does not fit {pre['shape']} -> {post['shape']}")
        number(proj, "scale", where)
    else:
        c, h, w = pre["shape"]
        array(arrays, proj, "weights", where, (c, w, h, post["size"]))
