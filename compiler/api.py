"""The library API: ``snnc.load`` and ``snnc.compile``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from snnc.ir import Graph, IRError, save
from snnc.passes import Diagnostic, Pass, PassContext
from snnc.pipeline import PassRecord, apply_settings, parse_pipeline, run_pipeline
from snnc.targets import Target, TargetSpec, get_target
from snnc.targets.datafiles import to_model_layout

__version__ = "0.1.0"
MANIFEST = "snnc.json"
ModelSource = Union[str, os.PathLike, Graph]


class CompileError(IRError):
    """Compilation cannot go on; the message is one line."""


def load(model: Any, input_shape: Optional[tuple[int, ...]] = None, module: Optional[str] = None) -> Graph:
    """An ann-dialect graph from a model file (.onnx, .snnir), a ``torch.nn.Module`` (with the
    per-sample ``input_shape``), or a Graph (returned as is)."""
    if isinstance(model, Graph):
        return model
    if type(model).__module__.startswith("nir."):
        from snnc.targets.nir.convert import from_nir

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

    def manifest(self) -> dict[str, Any]:
        """The deterministic description written to ``out/snnc.json``."""
        return {
            "snnc_version": __version__,
            "target": self.spec.name,
            **self.sources,
            "pipeline": [p.spelled() for p in self.passes],
            "spec": dataclasses.asdict(self.spec),
            "inputs": {n: list(self.graph.shape(n)) for n in self.graph.ops_of("snn.source")},
            "outputs": {n: list(self.graph.shape(n)) for n in self.graph.outputs},
            "diagnostics": [str(d) for d in self.diagnostics],
        }

    def emit(self, out: Union[str, os.PathLike], force: bool = False, dump: Optional[Path] = None) -> Path:
        """Write the output directory atomically: all of it appears, or nothing changes.

        An existing non-empty ``out`` is replaced only with ``force``. ``dump`` is a directory
        of IR dumps to move into ``out/ir``.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise CompileError(f"{out}: exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not force:
            raise CompileError(f"{out}: directory exists and is not empty (use --force to replace it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            save(self.graph, staging / "model.snnir")
            save(self.ann, staging / "ann.snnir")
            manifest = self.manifest()
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if dump is not None and dump.exists():
                shutil.move(str(dump), staging / "ir")
            self.target.emit(self.graph, staging, manifest)
            report = self.target.report(self.graph, self.calibration)
            if report is not None:
                (staging / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            staging.chmod(0o755)
            if out.exists():
                shutil.rmtree(out)
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return out


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
) -> Compiled:
    """Compile ``model`` for ``target``.

    ``calibration`` is (N, *input shape) float32 in the model's input layout; passes that
    normalize need it. ``settings`` are ``--set`` options (pass options and target fields).
    ``pipeline`` replaces the target's default pipeline string. ``input_shape`` (one sample)
    and ``module`` (``package.module:Class`` for a state_dict) are for PyTorch models.
    """
    ann = load(model, input_shape, module)
    tgt = get_target(target)
    passes = parse_pipeline(pipeline if pipeline is not None else tgt.spec.pipeline)
    if ann.dialect == "snn":  # a spiking network already (NIR, .snnir): only the snn passes apply
        passes = [p for p in passes if p.dialect == "snn"]
    passes, spec = apply_settings(passes, tgt.spec, dict(settings or {}))
    spec = tgt.configure(spec)
    tgt.spec = spec
    if stop_after is not None and stop_after not in [p.name for p in passes]:
        raise CompileError(f"pass {stop_after!r} is not in the {target} pipeline ({', '.join(p.name for p in passes)})")
    if calibration is not None:
        calibration = _fit_inputs(ann, np.asarray(calibration, dtype=np.float32), "calibration data")
    ctx = PassContext(target=spec, calibration=calibration, calibration_labels=calibration_labels, seed=seed)
    if ann.attrs.get("input_layout") == "NHWC":
        ctx.info("the model is channels-last: data and calibration files are read as NHWC, as the model takes "
                 "them, and transposed to the IR's NCHW")  # fmt: skip
    graph, records = run_pipeline(ann, passes, ctx, dump_dir=dump_dir, dump=dump, stop_after=stop_after)
    return Compiled(graph, ann, tgt, spec, passes, records, ctx.diagnostics, dict(sources or {}), calibration)


def _fit_inputs(ann: Graph, x: np.ndarray, what: str) -> np.ndarray:
    """``x`` reshaped to (N, *input shape) when its per-sample size fits the model's input."""
    inputs = ann.ops_of("ann.input")
    if len(inputs) != 1:
        raise CompileError(f"the model has {len(inputs)} inputs; calibration supports exactly one")
    shape = ann.shape(inputs[0])
    if x.ndim >= 1 and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
        return to_model_layout(x, shape, ann.attrs.get("input_layout"))
    raise CompileError(f"{what} has samples of shape {list(x.shape[1:])}, the model takes {list(shape)}")
