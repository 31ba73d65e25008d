"""``snnc run``: run an emitted directory on its target and add the ANN reference accuracy.

The directory is untrusted (it may come from someone else): its ``snnc.json`` is checked for
type and range, its graphs are verified, a symbolic link in it that leads outside it is refused,
and every file written into it replaces what is there instead of writing through a link. The
only file read outside it is the data file: the one passed, or the one recorded at compile time
when that is a regular ``.npz`` file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from snnc.api import MANIFEST, CompileError, _fit_inputs, entry_op
from snnc.ir import Graph, IRError, load, verify
from snnc.ir.graph import MAX_STEPS
from snnc.ir.runtime import DataError, load_data, steps_in, to_model_layout
from snnc.ir.semantics.ann import accuracy
from snnc.run_report import write_file, write_run_report
from snnc.targets import TARGETS, RunRequest, TargetError, get_target

MAX_JSON_BYTES = 64 * 2**20  # snnc.json and report.json are a few kB
MAX_ENTRIES = 100_000  # files and folders in an output directory
MAX_PRESENTATION_MS = 1e6
GRAPHS = ("model.snnir", "ann.snnir")
RUN_OUTPUTS = ("outputs.npz",)  # written by the target's run; a stale one must not reach the report


class OutputDirError(CompileError):
    """An output directory that ``snnc run`` or ``snnc report`` cannot trust; one line."""


def check_out_dir(out: Path) -> Path:
    """``out`` if it is a directory without a symbolic link leading outside it and without special
    files (FIFOs, devices); OutputDirError naming the entry otherwise."""
    out = Path(out)
    if not out.is_dir():
        raise OutputDirError(f"{out}: not a directory (expected one written by 'snnc MODEL -o OUT')")
    root = out.resolve()
    entries = 0

    def fail(exc: OSError) -> None:
        raise exc

    for folder, dirs, files in os.walk(out, onerror=fail):
        for name in dirs + files:
            entries += 1
            if entries > MAX_ENTRIES:
                raise OutputDirError(f"{out}: more than {MAX_ENTRIES:,} files; not an snnc output directory")
            _check_entry(Path(folder) / name, root)
    return out


def _check_entry(path: Path, root: Path) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        try:
            inside = path.resolve(strict=True).is_relative_to(root)
        except (OSError, RuntimeError):  # dangling, or a loop
            inside = False
        if not inside:
            raise OutputDirError(f"{path}: a symbolic link that leads outside {root}; snnc writes none, remove it")
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise OutputDirError(f"{path}: not a regular file or folder")


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path`` (a regular file of at most ``limit`` bytes); one-line errors."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise OutputDirError(f"{path}: missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise OutputDirError(f"{path}: not a regular file")
    if info.st_size > limit:
        raise OutputDirError(f"{path}: {info.st_size:,} bytes, more than {limit:,}; not a file snnc wrote")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise OutputDirError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise OutputDirError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # integers past Python's digit limit, deep nesting
        raise OutputDirError(f"{path}: not JSON snnc can read ({type(exc).__name__})") from None


def read_manifest(out: Path) -> dict[str, Any]:
    """``out/snnc.json``, checked: an object whose ``target`` is a known target, ``data`` a path
    or null, ``data_is_calibration`` a boolean."""
    path = Path(out) / MANIFEST
    if not os.path.lexists(path):
        raise OutputDirError(f"{out}: not an snnc output directory (no {MANIFEST})")
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise OutputDirError(f"{path}: expected a JSON object, found {type(manifest).__name__}")
    target = manifest.get("target")
    if not isinstance(target, str) or target not in TARGETS:
        raise OutputDirError(f"{path}: key 'target' is {_short(target)}, expected one of {', '.join(sorted(TARGETS))}")
    if manifest.get("data") is not None and not isinstance(manifest["data"], str):
        raise OutputDirError(f"{path}: key 'data' is {_short(manifest['data'])}, expected a file name or null")
    if not isinstance(manifest.get("data_is_calibration", False), bool):
        raise OutputDirError(
            f"{path}: key 'data_is_calibration' is {_short(manifest['data_is_calibration'])}, expected true or false"
        )
    return manifest


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def default_data(out: Path, manifest: dict[str, Any], data: Optional[Path]) -> Path:
    """The data file to run on: the one given, else the one recorded at compile time, which is
    read only when it is a regular ``.npz`` file."""
    if data is not None:
        return Path(data)
    recorded = manifest.get("data")
    if not recorded:
        raise OutputDirError(f"{out}: no data recorded at compile time; pass --data FILE.npz")
    where = f"{Path(out) / MANIFEST}: key 'data'"
    if "\0" in recorded or not recorded.endswith(".npz"):
        raise OutputDirError(f"{where} is {_short(recorded)}, not an .npz file; pass --data FILE.npz")
    try:
        is_file = stat.S_ISREG(Path(recorded).resolve(strict=True).stat().st_mode)
    except (OSError, RuntimeError):
        raise OutputDirError(f"{where}: {recorded} does not exist; pass --data FILE.npz") from None
    if not is_file:
        raise OutputDirError(f"{where}: {recorded} is not a regular .npz file; pass --data FILE.npz")
    if manifest.get("data_is_calibration"):
        print("snnc: no --data given; evaluating on the calibration file", file=sys.stderr)
    return Path(recorded)


def load_graphs(out: Path, dialect: str = "snn") -> tuple[Graph, Graph]:
    """``out/model.snnir`` (a graph of the target's ``dialect``: an snn graph with one source, or for
    brainscales2 an ann graph with one input) and ``out/ann.snnir`` (the graph as read: an ann graph
    with one input, or an snn graph where the model was spiking already), both verified."""
    graphs = []
    for name, dialects in zip(GRAPHS, ((dialect,), ("ann", "snn")), strict=True):
        path = Path(out) / name
        if not path.is_file():
            raise OutputDirError(f"{path}: missing; {out} is not a complete snnc output directory")
        graph = load(path)
        try:
            verify(graph)
        except IRError as exc:
            raise OutputDirError(f"{path}: {exc}") from None
        if graph.dialect not in dialects:
            raise OutputDirError(f"{path}: a graph of the {graph.dialect} dialect, expected {' or '.join(dialects)}")
        entry = entry_op(graph)
        if len(graph.ops_of(entry)) != 1:
            raise OutputDirError(f"{path}: {len(graph.ops_of(entry))} ops {entry}, expected exactly one")
        graphs.append(graph)
    model, ann = graphs
    for key in ("presentation_time", "dt") if dialect == "snn" else ():
        _positive(model.attrs.get(key), f"{Path(out) / GRAPHS[0]}: graph attribute {key}")
    return model, ann


def _check_steps(graph: Graph, presentation_time: Optional[float]) -> None:
    """At most MAX_STEPS time steps per sample (a graph that does not run in time steps passes)."""
    if graph.dialect != "snn":
        return
    duration = presentation_time if presentation_time is not None else graph.attrs["presentation_time"]
    steps = duration / graph.attrs["dt"]
    if steps > MAX_STEPS:
        raise OutputDirError(
            f"presentation time {duration:g} ms at dt {graph.attrs['dt']:g} ms is {steps:,.0f} "
            f"steps per sample, more than {MAX_STEPS:,}"
        )


def _positive(value: Any, what: str, high: float = MAX_PRESENTATION_MS) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and 0 < value <= high):
        raise OutputDirError(f"{what} is {_short(value)}, expected a number above 0 and at most {high:g}")
    return float(value)


def check_data(path: Path, x: np.ndarray, y: Optional[np.ndarray], graph: Graph) -> None:
    """Labels present and within the network's outputs; samples the size the network takes."""
    source = graph.ops_of(entry_op(graph))[0]
    size, outputs = math.prod(graph.shape(source)), math.prod(graph.shape(graph.outputs[0]))
    over_time = graph.dialect == "snn" and steps_in(x.shape, graph.shape(source)) is not None
    if x.ndim < 1 or (math.prod(x.shape[1:]) != size and not over_time):
        raise DataError(f"{path}: samples of shape {list(x.shape[1:])}, the network takes {list(graph.shape(source))}")
    if y is None:
        raise DataError(f"{path}: no labels 'y' to measure accuracy with")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= outputs):
        raise DataError(f"{path}: labels from {int(y.min())} to {int(y.max())}, the network has {outputs} outputs")


def ann_accuracy(ann: Union[Graph, Path], x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Accuracy of the original ANN (a graph, or an output directory's ann.snnir) on the same
    samples; None where the model was a spiking network already (NIR, snn .snnir)."""
    if not isinstance(ann, Graph):
        ann = load_graphs(Path(ann))[1]
    if ann.dialect != "ann":
        return None
    return accuracy(ann, _fit_inputs(ann, x, "data"), y)


def _check_results(results: Any, out: Path, available: int) -> dict[str, Any]:
    """The results a target's run returned: a dict with a sample count within the data."""
    if not isinstance(results, dict):
        raise TargetError(f"{out}: the run returned {type(results).__name__}, expected a JSON object of results")
    samples = results.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 0 <= samples <= available:
        raise TargetError(f"{out}: the run reports {_short(samples)} samples, expected 0 to {available}")
    accuracy = results.get("accuracy")
    if accuracy is not None and (
        isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1
    ):
        raise TargetError(f"{out}: the run reports accuracy {_short(accuracy)}, expected a number from 0 to 1")
    return results


def _clear_run_outputs(out: Path) -> None:
    """Remove what an earlier run left for the report, and break any link at results.json (the
    target writes them anew; they must not be written through a link)."""
    for name in RUN_OUTPUTS:
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    results = out / "results.json"
    with contextlib.suppress(FileNotFoundError):
        info = results.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_nlink > 1:
            results.unlink()


def run_compiled(
    out: Path,
    data: Optional[Path] = None,
    samples: Optional[int] = None,
    seed: int = 0,
    presentation_time: Optional[float] = None,
    report: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Run ``out`` on its target, write ``out/results.json`` (and with ``report`` out/report.md
    and the plots) and return the results. ``device``: where target sim simulates ("host", a
    torch device such as "cuda", or "auto": a GPU where torch sees one)."""
    out = Path(out)
    if not os.path.lexists(out / MANIFEST) and out.is_dir():
        raise OutputDirError(f"{out}: not an snnc output directory (no {MANIFEST})")
    check_out_dir(out)
    _check_request(samples, seed, presentation_time)
    manifest = read_manifest(out)
    data_path = default_data(out, manifest, data)
    target = get_target(manifest["target"])
    if device != "auto" and manifest["target"] != "sim":
        raise CompileError(f"device {_short(device)}: only target sim takes a device, not {manifest['target']}")
    graph, ann = load_graphs(out, target.dialect)
    _check_steps(graph, presentation_time)
    x, y = load_data(data_path, samples=samples)
    check_data(data_path, x, y, graph)
    _clear_run_outputs(out)
    try:
        results = target.run(RunRequest(out, data_path, samples, seed, presentation_time, device))
    except json.JSONDecodeError as exc:  # the run script's results.json
        raise TargetError(f"{out / 'results.json'}: not valid JSON ({exc.msg})") from None
    results = _check_results(results, out, len(x))
    x, y = x[: results["samples"]], y[: results["samples"]]
    shape = graph.shape(graph.ops_of(entry_op(graph))[0])
    over_time = steps_in(x.shape, shape) is not None  # an ANN has no reference for inputs over time
    results["ann_accuracy"] = None if over_time else ann_accuracy(ann, x, y)
    results["data"] = str(data_path)
    if report:
        model_x = None if over_time else to_model_layout(x, shape, graph.attrs.get("input_layout"))
        results["plots"] = write_run_report(out, results, model_x)
    write_file(out / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _check_request(samples: Optional[int], seed: int, presentation_time: Optional[float]) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise CompileError(f"samples {_short(samples)}: expected a positive whole number")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CompileError(f"seed {_short(seed)}: expected a whole number of at least 0")
    if presentation_time is not None:
        _positive(presentation_time, "presentation time")
