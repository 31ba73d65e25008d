"""What every target provides: its limits (``TargetSpec``) and a ``Target`` that emits and runs."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np

from snnc.ir import Graph, IRError
from snnc.ir.errors import SnncError


class TargetError(IRError):
    """A graph a target cannot emit, or a run that failed; the message is one line."""


# The ANN-to-SNN conversion every target starts from; targets append their own passes.
CONVERSION_PIPELINE = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn,normalize,bias-to-current"
MAX_STEPS = 10_000_000  # time steps per sample (presentation_time / dt)


class OptionError(SnncError):
    """An option value outside its type or range: ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.problem = field, message


@dataclass(frozen=True)
class Rule:
    """What a number (or string) option may hold; the bounds apply to numbers."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # low itself is refused
    allow_inf: bool = False  # +inf is a meaningful value (tau_m: no leak)
    pattern: Optional[str] = None  # a string must match it in full

    def problem(self, value: Any) -> Optional[str]:
        """Why ``value`` breaks the rule (None: it does not)."""
        if isinstance(value, str):
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return f"must match {self.pattern}"
            return None
        infinite = isinstance(value, float) and not math.isfinite(value)
        if infinite and (math.isnan(value) or not (self.allow_inf and value > 0)):
            return "must be a finite number" + (" or inf" if self.allow_inf else "")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None and value > self.high and not infinite:
            return f"must be <= {self.high:g}"
        return None


_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
# Every option of a TargetSpec or a pass with the same name obeys the same rule; a float option
# without a rule must be finite, an int one has no bounds. One place, checked on construction.
OPTION_RULES: dict[str, Rule] = {
    "dt": Rule(0.001, 1000.0),  # NEST's finest resolution is 0.001 ms
    "presentation_time": Rule(0.0, 1e7, low_open=True),
    "tau_m": Rule(0.0, low_open=True, allow_inf=True),
    "tau_refrac": Rule(0.0, 1e6),
    "pause": Rule(0.0, 1e7),
    "min_delay": Rule(0.0, 1e4),
    "delay": Rule(0.0, 1e4),
    "max_rate": Rule(0.0, 1e6, low_open=True),
    "neurons_per_core": Rule(1, 2**31 - 1),
    "source_neurons_per_core": Rule(1, 2**31 - 1),
    "max_neurons_per_core": Rule(1, 2**31 - 1),
    "max_fan_in": Rule(1, 2**31 - 1),
    "max_synapses_per_core": Rule(1, 2**31 - 1),
    "weight_bits": Rule(2, 32),
    "bits": Rule(2, 32),
    "chips": Rule(1, 1_000_000),
    "cores_per_chip": Rule(1, 1024),
    "reserved_cores": Rule(0, 1_000_000),
    "instances": Rule(pattern=r"auto|[1-9][0-9]{0,5}"),
    "time_scale_factor": Rule(1, 10_000),
    "energy_per_synaptic_event_nj": Rule(0.0, 1e9),
    "energy_per_neuron_ms_nj": Rule(0.0, 1e9),
    "idle_watts": Rule(0.0, 1e9),
    "percentile": Rule(0.0, 100.0, low_open=True),
    "rate": Rule(0.0, 1e6, low_open=True),
    "measure_samples": Rule(1, 1_000_000),
    "board": Rule(pattern=_NAME),
    "name": Rule(pattern=_NAME),
    "energy_source": Rule(pattern=r"[^\x00-\x1f\x7f]{0,300}"),
}


def _type_problem(value: Any, hint: Any) -> Optional[str]:
    """Why ``value`` is not of the declared type ``hint`` (None: it is)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return None if value in args and type(value) is type(args[0]) else f"must be one of {', '.join(map(str, args))}"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if hint is float:
        ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def check_fields(obj: Any) -> None:
    """Check every field of dataclass ``obj`` against its type and ``OPTION_RULES``; raise
    OptionError naming the first bad field."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        problem = _type_problem(value, hints[f.name])
        if problem is None and value is not None and not isinstance(value, bool):
            rule = OPTION_RULES.get(f.name, Rule())
            if isinstance(value, (np.integer, np.floating)):
                value = value.item()
            if isinstance(value, (str, int, float)):
                problem = rule.problem(value)
        if problem is not None:
            raise OptionError(f.name, problem)


_GRAPH_RULES = {"instances": Rule(1, 1_000_000)}


def graph_number(graph: Graph, key: str, default: Optional[float] = None) -> float:
    """Graph attribute ``key`` (``dt``, ``presentation_time``, ``pause``, ``instances``) as a
    number checked against its rule; a string or other value is a TargetError naming the key."""
    value = graph.attrs.get(key, default)
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        problem = "must be a number"
    else:
        problem = _GRAPH_RULES.get(key, OPTION_RULES.get(key, Rule())).problem(value)
    if problem is not None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise TargetError(f"graph attribute {key}={shown}: {problem}")
    return value


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


def allows_inf(name: str) -> bool:
    """Whether option ``name`` takes inf as a value."""
    return OPTION_RULES.get(name, Rule()).allow_inf


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

    def __post_init__(self) -> None:
        check_fields(self)
        if self.presentation_time < self.dt:
            raise OptionError("presentation_time", f"must be >= dt ({self.dt:g} ms)")
        if self.presentation_time / self.dt > MAX_STEPS:
            raise OptionError("dt", f"presentation_time / dt exceeds {MAX_STEPS:,} time steps per sample")

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


def run_script(target: str, out: Path, args: list[str]) -> dict[str, Any]:
    """Run ``target``'s run script on the network in ``out`` in a fresh interpreter (simulators
    keep global state); return its results.json plus the process time.

    ``out`` is untrusted (DESIGN.md): the script that runs is snnc's own copy from this package,
    put with ``run_checks.py`` into a fresh temporary folder, never the ``run.py`` found in
    ``out``. Paths in ``args`` stay relative to the caller's directory.
    """
    start = time.perf_counter()
    package = Path(__file__).parent
    with tempfile.TemporaryDirectory(prefix="snnc-run-") as tmp:
        shutil.copyfile(package / target / "templates" / "run.py", Path(tmp) / "run.py")
        shutil.copyfile(package / "run_checks.py", Path(tmp) / "run_checks.py")
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
}


def get_target(name: str) -> Target:
    """The target called ``name``; raises TargetError with the known names otherwise."""
    if name not in TARGETS:
        raise TargetError(f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})")
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
