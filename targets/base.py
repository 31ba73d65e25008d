"""What every target provides: a ``TargetSpec`` (see ``snnc.ir.options``) and a ``Target`` that emits and runs."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, runtime
from snnc.ir.errors import SnncError
from snnc.ir.options import TargetSpec
from snnc.ir.semantics import mac


class TargetError(SnncError):
    """A graph a target cannot emit, or a run that failed; the message is one line."""


# The ANN-to-SNN conversion every target starts from; targets append their own passes.
CONVERSION_PIPELINE = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn,normalize,bias-to-current"


def write_network_json(path: Path, network: dict[str, Any]) -> None:
    """Write a run script's ``network.json``: plain JSON data (no NaN or Infinity), a known layout."""
    if network.get("input_layout") not in ("NCHW", "NHWC"):
        raise TargetError(f"graph attribute input_layout={network.get('input_layout')!r}: must be NCHW or NHWC")
    try:
        text = json.dumps(network, indent=1, sort_keys=True, allow_nan=False)
    except ValueError:
        raise TargetError(f"{path.name}: a network value is NaN or infinite; refusing to write it") from None
    except TypeError as exc:
        raise TargetError(f"{path.name}: a network value is not plain JSON data ({exc})") from None
    path.write_text(text + "\n")


@dataclass
class RunRequest:
    """What ``snnc run`` asks of a target: an emitted directory, data and a sample count."""

    out: Path
    data: Path
    samples: Optional[int] = None
    seed: int = 0
    presentation_time: Optional[float] = None
    device: str = "auto"  # target sim: "host", a torch device ("cuda"), or "auto" (a GPU where torch sees one)

    def script_args(self, seed: bool = True) -> list[str]:
        """The request as run-script arguments (see ``snnc.ir.runtime.argument_parser``); the ANN
        reference is left to ``snnc run``. ``seed``: the script takes ``--seed``."""
        args = ["--data", str(self.data), "--no-ann"] + (["--seed", str(self.seed)] if seed else [])
        if self.samples is not None:
            args += ["--samples", str(self.samples)]
        if self.presentation_time is not None:
            args += ["--presentation-time", str(self.presentation_time)]
        return args


class Target:
    """Base of all targets. ``emit`` writes ``out``; ``run`` simulates it (where possible here).
    ``dialect``: the dialect of the graphs the target takes (brainscales2 runs the ann dialect)."""

    spec: TargetSpec
    dialect: str = "snn"

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        """Write the runnable network for ``graph`` (the pipeline's result, of ``dialect``) into ``out``."""
        raise NotImplementedError

    def configure(self, spec: TargetSpec) -> TargetSpec:
        """The spec after ``--set`` settings, with fields that depend on others filled in."""
        return spec

    def report(self, graph: Graph, calibration: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
        """The mapping report written to ``out/report.json``; None where the target has none."""
        return None

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run an emitted network on its simulator; return the results dict (see README)."""
        raise NotImplementedError(f"target {self.spec.name} cannot run on this machine")


def run_script_files(target: str) -> dict[str, Path]:
    """The files of ``target``'s run script as they are named in an output folder, each with its
    source in snnc: ``run.py`` (the module ``targets/<target>/run_<target>.py``) and
    ``snnc_runtime.py`` (``ir/runtime.py``, which run.py imports), and what else it imports (EXTRA_RUN_FILES)."""
    files = {"run.py": Path(__file__).parent / target / f"run_{target}.py", "snnc_runtime.py": Path(runtime.__file__)}
    return {**files, **EXTRA_RUN_FILES.get(target, {})}


# Modules a target's run script imports besides snnc_runtime: name in the output folder -> source.
EXTRA_RUN_FILES: dict[str, dict[str, Path]] = {"brainscales2": {"snnc_mac.py": Path(mac.__file__)}}


def run_script(target: str, out: Path, args: list[str]) -> dict[str, Any]:
    """Run ``target``'s run script on the network in ``out`` in a fresh interpreter (simulators
    keep global state); return its results.json plus the process time.

    ``out`` is untrusted (DESIGN.md): the script that runs is snnc's own copy from this package
    (run_script_files), put into a fresh temporary folder, never the ``run.py`` or
    ``snnc_runtime.py`` found in ``out``. Paths in ``args`` stay relative to the caller's directory.
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snnc-run-") as tmp:
        for name, source in run_script_files(target).items():
            shutil.copyfile(source, Path(tmp) / name)
        command = [sys.executable, str(Path(tmp) / "run.py"), "--dir", str(Path(out).resolve()), *args]
        proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise TargetError(f"{target} run script on {out} failed: {tail}")
    results = json.loads((out / "results.json").read_text())
    results["process_time_s"] = time.perf_counter() - start
    return results


# Target name -> "module:Class"; imported only when the target is used (heavy dependencies).
TARGETS: dict[str, str] = {
    "sim": "snnc.targets.sim.target:SimTarget",
    "nest": "snnc.targets.nest.target:NestTarget",
    "nir": "snnc.targets.nir.target:NirTarget",
    "spinnaker": "snnc.targets.spinnaker.target:SpinnakerTarget",
    "genn": "snnc.targets.genn.target:GennTarget",
    "loihi": "snnc.targets.loihi.target:LoihiTarget",
    "brainscales2": "snnc.targets.brainscales2.target:BrainScaleS2Target",
}


def get_target(name: str) -> Target:
    """The target called ``name``; raises TargetError with the known names otherwise."""
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})")
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
