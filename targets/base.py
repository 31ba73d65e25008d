"""What every target provides: its limits (``TargetSpec``) and a ``Target`` that emits and runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

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
    tau_refrac: float = 0.0  # smallest refractory period the platform allows, ms
    min_delay: float = 1.0  # ms; projections get this delay
    encoding: Literal["current", "poisson", "regular"] = "current"
    max_rate: float = 1000.0  # Hz, for spike encodings
    neurons_per_core: Optional[int] = None
    max_fan_in: Optional[int] = None
    weight_bits: Optional[int] = None  # None: floating point
    split_signs: bool = False  # excitatory and inhibitory weights in separate projections
    cores_per_chip: Optional[int] = None
    chips: Optional[int] = None


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

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run an emitted network on its simulator; return the results dict (see README)."""
        raise NotImplementedError(f"target {self.spec.name} cannot run on this machine")


# Target name -> "module:Class"; imported only when the target is used (heavy dependencies).
TARGETS: dict[str, str] = {
    "sim": "snnc.targets.sim.target:SimTarget",
    "nest": "snnc.targets.nest.target:NestTarget",
    "nir": "snnc.targets.nir.target:NirTarget",
}


def get_target(name: str) -> Target:
    """The target called ``name``; raises TargetError with the known names otherwise."""
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})")
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
