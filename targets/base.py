"""What every target provides: its limits (``TargetSpec``) and a ``Target`` that emits and runs."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from snnc.ir import Graph, IRError


class TargetError(IRError):
    """A graph a target cannot emit, or a run that failed; the message is one line."""


# The ANN-to-SNN conversion every target starts from; targets append their own passes.
CONVERSION_PIPELINE = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn,normalize,bias-to-current"


@dataclass(frozen=True)
class TargetSpec:
    """A target's constraints and defaults. Fields can be changed with ``--set name=value``."""

    name: str
    description: str
    pipeline: str  # the default pass pipeline, as a pipeline string
    dt: float = 1.0  # simulation time step, ms
    presentation_time: float = 100.0  # per sample, ms
    reset: Literal["subtract", "zero"] = "subtract"
    tau_m: float = math.inf  # membrane time constant, ms (inf: no leak)
    tau_refrac: float = 0.0  # smallest refractory period the platform allows, ms
    v_min: Optional[float] = None  # a floor of the membrane potential (None: none)
    pause: Optional[float] = None  # ms of silence between samples that run back to back; None: reset
    min_delay: float = 1.0  # ms; projections get this delay
    encoding: Literal["current", "poisson", "regular"] = "current"
    max_rate: float = 1000.0  # Hz, for spike encodings
    # Mapping limits, read by split-populations, replicate and quantize (None: no limit).
    neurons_per_core: Optional[int] = None
    source_neurons_per_core: Optional[int] = None  # spike sources; None: same as neurons_per_core
    max_neurons_per_core: Optional[int] = None  # the most the platform accepts on one core
    grid_populations: bool = False  # (C, H, W) populations become C two-dimensional grids
    max_fan_in: Optional[int] = None  # synapses into one neuron
    max_synapses_per_core: Optional[int] = None
    weight_bits: Optional[int] = None  # None: floating point
    weight_scheme: Literal["shift", "linear"] = "shift"  # see the quantize pass
    split_signs: bool = False  # excitatory and inhibitory weights in separate projections
    board: Optional[str] = None  # a named machine; the target fills chips from it
    chips: Optional[int] = None
    cores_per_chip: Optional[int] = None  # application cores per chip
    reserved_cores: int = 0  # application cores the system takes on the whole machine
    instances: str = "1"  # parallel copies of the network, or "auto" (as many as fit)
    time_scale_factor: int = 1  # slow-down of a real-time machine (2: half speed)
    # Energy model: per synaptic event and per neuron per ms of simulated time (nJ), with its source.
    energy_per_synaptic_event_nj: Optional[float] = None
    energy_per_neuron_ms_nj: Optional[float] = None
    energy_source: Optional[str] = None
    idle_watts: Optional[float] = None  # the whole machine, idle

    def application_cores(self) -> Optional[int]:
        """Cores the machine offers to networks: chips x cores per chip - reserved (None: unknown)."""
        if self.chips is None or self.cores_per_chip is None:
            return None
        return self.chips * self.cores_per_chip - self.reserved_cores

    def machine(self) -> str:
        """The machine in words, for messages: ``spinn5 (48 chips x 16 cores - 9 = 759 cores)``."""
        cores = self.application_cores()
        if cores is None:
            return f"{self.name} (machine size unknown)"
        minus = f" - {self.reserved_cores}" if self.reserved_cores else ""
        return f"{self.board or self.name} ({self.chips} chips x {self.cores_per_chip} cores{minus} = {cores} cores)"


@dataclass
class RunRequest:
    """What ``snnc run`` asks of a target: an emitted directory, data and a sample count."""

    out: Path
    data: Path
    samples: Optional[int] = None
    seed: int = 0
    presentation_time: Optional[float] = None


class Target:
    """Base of all targets. ``emit`` writes ``out``; ``run`` simulates it (where possible here)."""

    spec: TargetSpec

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        """Write the runnable network for ``graph`` (an snn graph after the pipeline) into ``out``."""
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


def run_script(out: Path, args: list[str]) -> dict[str, Any]:
    """Run an emitted ``out/run.py`` with ``args`` in a fresh interpreter (simulators keep global
    state); return its results.json plus the process time. Paths in ``args`` stay relative to the
    caller's directory (a script that needs its own folder changes into it itself)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(out / "run.py"), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise TargetError(f"{out / 'run.py'} failed: {tail}")
    results = json.loads((out / "results.json").read_text())
    results["process_time_s"] = time.perf_counter() - start
    return results


# Target name -> "module:Class"; imported only when the target is used (heavy dependencies).
TARGETS: dict[str, str] = {
    "sim": "snnc.targets.sim.target:SimTarget",
    "nest": "snnc.targets.nest.target:NestTarget",
    "nir": "snnc.targets.nir.target:NirTarget",
    "spinnaker": "snnc.targets.spinnaker.target:SpinnakerTarget",
}


def get_target(name: str) -> Target:
    """The target called ``name``; raises TargetError with the known names otherwise."""
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})")
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
