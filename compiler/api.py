"""The library API: ``snnc.load`` and ``snnc.compile``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from snnc.ir import Graph, limits, save, verify
from snnc.ir.errors import SnncError
from snnc.ir.runtime import check_labels, check_samples, to_model_layout
from snnc.passes import Diagnostic, Pass, PassContext
from snnc.pipeline import PassRecord, apply_settings, parse_pipeline, run_pipeline
from snnc.targets import Target, TargetSpec, get_target

__version__ = "0.1.0"
MANIFEST = "snnc.json"
MAX_MANIFEST_BYTES = 16 * 2**20  # a manifest is a few kB; a larger one is not snnc's
ModelSource = Union[str, os.PathLike, Graph]


class CompileError(SnncError):
    """Compilation cannot go on; the message is one line."""


def load(model: Any, input_shape: Optional[tuple[int, ...]] = None, module: Optional[str] = None) -> Graph:
    """An ann-dialect graph from a model file (.onnx, .snnir), a ``torch.nn.Module`` (with the
    per-sample ``input_shape``), or a Graph (returned as is)."""
    if isinstance(model, Graph):
        return model
    if type(model).__module__.startswith("nir."):
        from snnc.frontends.nir_frontend import from_nir

        return from_nir(model)
    if type(model).__module__.startswith("keras"):
        from snnc.frontends.keras_frontend import load_keras

        return load_keras(model)
    if hasattr(model, "named_modules") and hasattr(model, "forward"):
        from snnc.frontends.torch_frontend import load_torch

        if input_shape is None:
            raise CompileError("a torch module needs input_shape, the shape of one sample, e.g. (1, 28, 28)")
        return load_torch(model, tuple(input_shape))
    from snnc.frontends import load_model

    return load_model(Path(model), input_shape, module)


@dataclass
class Compiled:
    """The result of :func:`compile`: the snn graph and everything needed to emit it."""

    graph: Graph
    ann: Graph
    target: Target
    spec: TargetSpec
    passes: list[Pass]
    records: list[PassRecord]
    diagnostics: list[Diagnostic]
    sources: dict[str, Any] = field(default_factory=dict)  # model/calibration/data paths
    calibration: Optional[np.ndarray] = None  # for the target's mapping report (activity estimates)
    origin: Optional[Path] = None  # the model file, when compiled from one (emit keeps out of its folder)

    def manifest(self) -> dict[str, Any]:
        """The deterministic description written to ``out/snnc.json``."""
        return {
            "snnc_version": __version__,
            "target": self.spec.name,
            **self.sources,
            "pipeline": [p.spelled() for p in self.passes],
            "spec": self.spec.manifest(),
            "inputs": {n: list(self.graph.shape(n)) for n in self.graph.ops_of(entry_op(self.graph))},
            "outputs": {n: list(self.graph.shape(n)) for n in self.graph.outputs},
            "diagnostics": [str(d) for d in self.diagnostics],
        }

    def emit(self, out: Union[str, os.PathLike], force: bool = False, dump: Optional[Path] = None) -> Path:
        """Write the output directory atomically: all of it appears, or nothing changes.

        ``out`` (symbolic links resolved) must not be ``/``, the home directory, the current
        directory or one of its ancestors, or the model's folder or one of its ancestors. An
        existing non-empty ``out`` is replaced only with ``force``, and only when it is snnc's
        own output (it holds an ``snnc.json`` written by snnc); the whole directory is replaced,
        files added to it since included. The new directory is written beside ``out`` and
        renamed into place; on any failure or interrupt the old one is left as it was and no
        staging directory remains. ``dump`` is a directory of IR dumps to move into ``out/ir``.
        """
        target = check_output_dir(out, force, self.origin or self.sources.get("model"))
        created = _make_parents(target.parent)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.snnc-new-", dir=target.parent))
        except BaseException:
            _remove_created(created)
            raise
        try:
            self._write(staging, dump)
            staging.chmod(0o755)
            _swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_created(created)
            raise
        return Path(out)

    def _write(self, staging: Path, dump: Optional[Path]) -> None:
        save(self.graph, staging / "model.snnir")
        save(self.ann, staging / "ann.snnir")
        manifest = self.manifest()
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if dump is not None and dump.exists():
            shutil.move(str(dump), staging / "ir")
        verify(self.graph, emitting=True, dialect=self.target.dialect)
        self.target.emit(self.graph, staging, manifest)
        report = self.target.report(self.graph, self.calibration)
        if report is not None:
            (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def entry_op(graph: Graph) -> str:
    """The op that takes a graph's samples: ``snn.source`` or, in an ann graph, ``ann.input``."""
    return "ann.input" if graph.dialect == "ann" else "snn.source"


# --------------------------------------------------------------------------- output directories


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def is_snnc_output(folder: Path) -> bool:
    """Whether ``folder`` holds snnc's manifest: a regular ``snnc.json`` (not a link) with an
    object that has ``snnc_version``."""
    manifest = folder / MANIFEST
    try:
        info = manifest.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
            return False
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("snnc_version"), str)


def _resolved(path: PathLike) -> Path:
    """``path`` with ``~`` expanded and symbolic links resolved; CompileError when it cannot be."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, no home, a NUL byte
        raise CompileError(f"{path!s}: cannot resolve the path ({exc})") from None


PathLike = Union[str, os.PathLike]


def check_output_dir(out: PathLike, force: bool, model: Optional[PathLike] = None) -> Path:
    """The resolved directory to write ``out`` into, or CompileError when it may not be written.

    Refused always: a dangling symbolic link, ``/``, the home directory, the current directory and its ancestors, the
    model's folder and its ancestors, and anything that is not a directory. Refused without
    ``force``: a non-empty directory. Refused even with ``force``: a non-empty directory that is
    not snnc's output (see :func:`is_snnc_output`).
    """
    if Path(out).is_symlink() and not Path(out).exists():
        raise CompileError(f"{out}: refusing a symbolic link to nothing (snnc makes no directory through a link)")
    target, cwd = _resolved(out), _resolved(Path.cwd())
    protected = {Path(target.anchor): "the file system root"}
    with contextlib.suppress(OSError, RuntimeError, KeyError):  # no home directory: nothing to protect
        protected.setdefault(Path.home().resolve(), "your home directory")
    if target in protected:
        raise CompileError(f"{out}: refusing to write into {protected[target]}; name a new subdirectory")
    if _is_within(cwd, target):
        raise CompileError(
            f"{out}: refusing to write into the current directory or one of its ancestors; name a new subdirectory"
        )
    if model is not None:
        folder = _resolved(model).parent
        if _is_within(folder, target):
            raise CompileError(
                f"{out}: refusing to write into the model's folder {folder} or one of its ancestors; "
                "name a new subdirectory"
            )
    if target.exists() and not target.is_dir():
        raise CompileError(f"{out}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise CompileError(f"{out}: directory exists and is not empty (use --force to replace it)")
        if not is_snnc_output(target):
            raise CompileError(
                f"{out}: directory exists and is not snnc output (no {MANIFEST} written by snnc); "
                "--force replaces only snnc's own output directories"
            )
    return target


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing ancestors; return those created, deepest last."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_created(created: list[Path]) -> None:
    for p in reversed(created):
        with contextlib.suppress(OSError):
            p.rmdir()


def _swap_in(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is renamed aside first and
    removed only once the new one is in place (put back on any failure)."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.parent / f".{target.name}.snnc-old-{secrets.token_hex(6)}"
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if not target.exists():
            old.rename(target)
        raise
    try:
        shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        raise


def compile(  # noqa: A001 - the public name the design card asks for
    model: ModelSource,
    target: str = "sim",
    *,
    calibration: Optional[np.ndarray] = None,
    calibration_labels: Optional[np.ndarray] = None,
    settings: Optional[Mapping[str, str]] = None,
    pipeline: Optional[str] = None,
    seed: int = 0,
    dump_dir: Optional[Path] = None,
    dump: Optional[set[str]] = None,
    stop_after: Optional[str] = None,
    sources: Optional[dict[str, Any]] = None,
    input_shape: Optional[tuple[int, ...]] = None,
    module: Optional[str] = None,
    budget: Optional[Union[limits.Budget, str]] = None,
    calibration_source: str = "calibration data",
) -> Compiled:
    """Compile ``model`` for ``target``.

    ``calibration`` is (N, *input shape) float32 in the model's input layout; passes that
    normalize need it. ``settings`` are ``--set`` options (pass options and target fields).
    ``pipeline`` replaces the target's default pipeline string. ``input_shape`` (one sample)
    and ``module`` (``package.module:Class`` for a state_dict) are for PyTorch models.
    ``budget`` (a :class:`snnc.ir.limits.Budget` or ``"neurons=N,synapses=N,bytes=N"``) bounds
    the sizes the model may declare; default: the budget in force. ``calibration_source`` names
    the calibration data in error messages (the CLI passes the file).
    """
    with _budget_scope(budget):
        ann = load(model, input_shape, module)
        tgt = get_target(target)
        passes = parse_pipeline(pipeline if pipeline is not None else tgt.spec.pipeline)
        if ann.dialect == "snn" and tgt.dialect == "ann":
            raise CompileError(f"target {target} runs ANNs; the model is a spiking network already")
        if ann.dialect == "snn":  # a spiking network already (NIR, .snnir): only the snn passes apply
            passes = [p for p in passes if p.dialect == "snn"]
        passes, spec = apply_settings(passes, tgt.spec, dict(settings or {}))
        spec = tgt.configure(spec)
        tgt.spec = spec
        if stop_after is not None and stop_after not in [p.name for p in passes]:
            names = ", ".join(p.name for p in passes)
            raise CompileError(f"pass {stop_after!r} is not in the {target} pipeline ({names})")
        if calibration is not None:
            if calibration_labels is not None:
                calibration, calibration_labels = check_samples(calibration, calibration_labels, calibration_source)
            calibration = _fit_inputs(ann, np.asarray(calibration), calibration_source)
            if calibration_labels is not None:
                check_labels(calibration_labels, _output_size(ann), calibration_source)
        ctx = PassContext(target=spec, calibration=calibration, calibration_labels=calibration_labels, seed=seed)
        if ann.attrs.get("input_layout") == "NHWC":
            ctx.info(
                "the model is channels-last: data and calibration files are read as NHWC, as the model takes "
                "them, and transposed to the IR's NCHW"
            )
        graph, records = run_pipeline(ann, passes, ctx, dump_dir=dump_dir, dump=dump, stop_after=stop_after)
    origin = Path(model) if isinstance(model, (str, os.PathLike)) else None
    return Compiled(graph, ann, tgt, spec, passes, records, ctx.diagnostics, dict(sources or {}), calibration, origin)


def _budget_scope(budget: Optional[Union[limits.Budget, str]]) -> contextlib.AbstractContextManager:
    """``limits.using(budget)``, or nothing (the budget in force) for None."""
    if budget is None:
        return contextlib.nullcontext()
    return limits.using(limits.parse_budget(budget) if isinstance(budget, str) else budget)


def _output_size(graph: Graph) -> int:
    """The number of values the graph's (first) output has per sample: the classes of a classifier."""
    return math.prod(graph.shape(graph.outputs[0]))


def _fit_inputs(ann: Graph, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` reshaped to (N, *input shape) when its per-sample size fits the model's input; its
    values checked first (numbers, at least one sample, all finite: see ``check_samples``)."""
    inputs = ann.ops_of("ann.input")
    if len(inputs) != 1:
        raise CompileError(f"the model has {len(inputs)} inputs; calibration supports exactly one")
    shape = ann.shape(inputs[0])
    x, _ = check_samples(x, None, what)
    if int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return to_model_layout(x, shape, ann.attrs.get("input_layout"))
    raise CompileError(f"{what} has samples of shape {list(x.shape[1:])}, the model takes {list(shape)}")
