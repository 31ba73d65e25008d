"""The settings of one compile, each with one home: a target's ``TargetSpec`` and its rules.

It lives in ``ir/`` because passes and targets both read it and neither may import the other.
A ``TargetSpec`` has three parts:

* ``Machine``: what the platform is (neurons and synapses a core holds, weight bits, chips and
  cores). ``--set`` may change a fact to model another machine, unless the target fixes it.
* ``CompileOptions``: the choices of one compile. Their defaults are written once, in the class
  below; a target's ``spec.py`` overrides the ones its platform needs.
* ``EnergyModel``: figures with their source, for the mapping report; not a setting.

The rule for reading a setting: a setting lives in the spec. A pass option of the same name
(``lower-to-snn{dt=0.5}``; ``quantize{bits=8}`` overrides ``weight_bits``, see ``Pass.homes``)
defaults to None, meaning "the target's value", and ``Pass.setting`` alone resolves the two.
``--set KEY=VALUE`` sets the spec's value and every pass option of that name; ``--set
pass.key=value`` one pass's option. A setting takes effect only where something reads it: each
pass lists the settings it reads (``Pass.reads``), each target what its emit, run and report
read (``TargetSpec.reads``); the pass manager refuses a key that nothing in the pipeline or the
target reads, and a value the target does not accept (``TargetSpec.accepts``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

from .errors import SnncError
from .graph import MAX_STEPS, SNN_GRAPH_ATTRS


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
# Every option of a spec part or a pass with the same name obeys the same rule; a float option
# without a rule must be finite, an int one has no bounds. One place, checked on construction.
OPTION_RULES: dict[str, Rule] = {
    "dt": Rule(0.001, 1000.0),  # NEST's finest resolution is 0.001 ms
    "presentation_time": Rule(0.0, 1e7, low_open=True),
    "tau_m": Rule(0.0, low_open=True, allow_inf=True),
    "tau_refrac": Rule(0.0, 1e6),
    "v_init": Rule(0.0, 1.0),
    "pause": Rule(0.0, 1e7),
    "min_delay": Rule(0.0, 1e4),
    "max_rate": Rule(0.0, 1e6, low_open=True),
    "neurons_per_core": Rule(1, 2**31 - 1),
    "source_neurons_per_core": Rule(1, 2**31 - 1),
    "max_neurons_per_core": Rule(1, 2**31 - 1),
    "max_fan_in": Rule(1, 2**31 - 1),
    "max_synapses_per_core": Rule(1, 2**31 - 1),
    "max_input_axons_per_core": Rule(1, 2**31 - 1),
    "max_output_axons_per_core": Rule(1, 2**31 - 1),
    "synapse_bits_per_core": Rule(1, 2**40),
    "weight_bits": Rule(2, 32),
    "input_bits": Rule(1, 16),
    "output_bits": Rule(2, 32),
    "matrix_rows": Rule(1, 2**20),
    "matrix_columns": Rule(1, 2**20),
    "mac_gain": Rule(0.0, 1.0, low_open=True),
    "bits": Rule(2, 32),
    "chips": Rule(1, 1_000_000),
    "boards": Rule(1, 10_000),
    "cores_per_chip": Rule(1, 1024),
    "reserved_cores": Rule(0, 1_000_000),
    "instances": Rule(pattern=r"auto|[1-9][0-9]{0,5}"),
    "time_scale_factor": Rule(1, 10_000),
    "per_synaptic_event_nj": Rule(0.0, 1e9),
    "per_neuron_ms_nj": Rule(0.0, 1e9),
    "idle_watts": Rule(0.0, 1e9),
    "percentile": Rule(0.0, 100.0, low_open=True),
    "rate": Rule(0.0, 1e6, low_open=True),
    "measure_samples": Rule(1, 1_000_000),
    "board": Rule(pattern=_NAME),
    "source": Rule(pattern=r"[^\x00-\x1f\x7f]{0,300}"),
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


def allows_inf(name: str) -> bool:
    """Whether option ``name`` takes inf as a value."""
    return OPTION_RULES.get(name, Rule()).allow_inf


@dataclass(frozen=True)
class Machine:
    """What the platform is. None: no such limit (or the size is unknown)."""

    max_neurons_per_core: Optional[int] = None  # the most the platform puts on one core
    grid_populations: bool = False  # (C, H, W) populations become C two-dimensional grids
    max_fan_in: Optional[int] = None  # synapses into one neuron
    max_synapses_per_core: Optional[int] = None
    max_input_axons_per_core: Optional[int] = None  # Loihi: distinct inputs a core receives
    max_output_axons_per_core: Optional[int] = None  # Loihi: (neuron, target core) routes out of a core
    synapse_bits_per_core: Optional[int] = None  # Loihi: synapse memory in bits (see passes/loihi_cores.py)
    whole_channels: bool = False  # slice (C, H, W) populations at channel boundaries (per-core weight scales)
    sources_take_cores: bool = True  # input neurons occupy cores (SpiNNaker) or come from outside (Loihi)
    weight_bits: Optional[int] = None  # None: floating point
    input_bits: Optional[int] = None  # BrainScaleS-2: unsigned bits of a MAC input (None: real inputs)
    output_bits: Optional[int] = None  # BrainScaleS-2: signed bits of a MAC result (the ADC's)
    matrix_rows: Optional[int] = None  # BrainScaleS-2: signed inputs of one partial matrix (synapse block)
    matrix_columns: Optional[int] = None  # BrainScaleS-2: outputs of one partial matrix
    mac_gain: Optional[float] = None  # BrainScaleS-2: the MAC result per unit input x weight (hxtorch's gain)
    weight_scheme: Literal["shift", "linear", "loihi"] = "shift"  # see the quantize pass
    chips: Optional[int] = None
    cores_per_chip: Optional[int] = None  # application cores per chip
    reserved_cores: int = 0  # application cores the system takes on the whole machine

    def __post_init__(self) -> None:
        check_fields(self)

    def application_cores(self) -> Optional[int]:
        """Cores the machine offers to networks: chips x cores per chip - reserved (None: unknown)."""
        if self.chips is None or self.cores_per_chip is None:
            return None
        return self.chips * self.cores_per_chip - self.reserved_cores


@dataclass(frozen=True)
class CompileOptions:
    """The choices of one compile and their defaults: the only place the defaults are written."""

    dt: float = SNN_GRAPH_ATTRS["dt"]  # simulation time step, ms
    presentation_time: float = SNN_GRAPH_ATTRS["presentation_time"]  # per sample, ms
    reset: Literal["subtract", "zero"] = "subtract"
    tau_m: float = math.inf  # membrane time constant, ms (inf: no leak)
    tau_refrac: float = 0.0  # refractory period, ms
    v_min: Optional[float] = None  # a floor of the membrane potential (None: none)
    v_init: float = 0.0  # membrane potential at the start of every sample, as a fraction of the threshold
    readout: Literal["spike_count", "membrane"] = "spike_count"  # the output layer's spikes, or its final membrane
    fold_pooling: bool = True  # a dense/conv layer reads average pooling's input directly (no pooling layer)
    pause: Optional[float] = None  # ms of silence between samples that run back to back; None: reset
    min_delay: float = 1.0  # ms; projections between populations get this delay
    encoding: Literal["current", "poisson", "regular", "events"] = "current"
    max_rate: float = 1000.0  # Hz, for spike encodings
    neurons_per_core: Optional[int] = None  # None: the machine's max_neurons_per_core
    source_neurons_per_core: Optional[int] = None  # spike sources; None: same as neurons_per_core
    instances: str = "1"  # parallel copies of the network, or "auto" (as many as fit)
    board: Optional[str] = None  # a named machine; the target fills its facts from it
    boards: int = 1  # boards of that kind joined into one machine (SpiNNaker: SpiNN-5 boards)
    time_scale_factor: int = 1  # slow-down of a real-time machine (2: half speed)
    backend: Optional[Literal["single_threaded_cpu", "cuda"]] = None  # a simulator's code backend (GeNN)
    precision: Literal["float", "double"] = "float"  # a simulator's floating-point type (GeNN's scalar)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.presentation_time < self.dt:
            raise OptionError("presentation_time", f"must be >= dt ({self.dt:g} ms)")
        if self.presentation_time / self.dt > MAX_STEPS:
            raise OptionError("dt", f"presentation_time / dt exceeds {MAX_STEPS:,} time steps per sample")


@dataclass(frozen=True)
class EnergyModel:
    """Energy per synaptic event and per neuron per ms of simulated time (nJ), idle power of the
    whole machine, and where the figures come from. None: not known."""

    per_synaptic_event_nj: Optional[float] = None
    per_neuron_ms_nj: Optional[float] = None
    idle_watts: Optional[float] = None
    source: Optional[str] = None

    def __post_init__(self) -> None:
        check_fields(self)


# A setting's accepted values on a target, and why; no values: the target fixes the setting.
Accepts = tuple[tuple[Any, ...], str]
SETTABLE_PARTS = ("options", "machine")


@dataclass(frozen=True)
class TargetSpec:
    """A target: its machine, its compile options (with the target's defaults) and energy model.
    ``reads`` names the settings the target's emit, run and report read; ``accepts`` limits a
    setting's values on this target (see the module docstring)."""

    name: str
    description: str
    pipeline: str  # the default pass pipeline, as a pipeline string
    machine: Machine = Machine()
    options: CompileOptions = CompileOptions()
    energy: EnergyModel = EnergyModel()
    reads: frozenset[str] = frozenset()
    accepts: Mapping[str, Accepts] = field(default_factory=dict)

    def part_of(self, key: str) -> Optional[str]:
        """The settable part (``options`` or ``machine``) with a field ``key`` (None: neither)."""
        return next((p for p in SETTABLE_PARTS if key in {f.name for f in dataclasses.fields(getattr(self, p))}), None)

    def get(self, key: str) -> Any:
        """The value of setting ``key``, from whichever part holds it."""
        part = self.part_of(key)
        if part is None:
            raise KeyError(key)
        return getattr(getattr(self, part), key)

    def with_setting(self, key: str, value: Any) -> TargetSpec:
        """A copy with setting ``key`` replaced (checked by the part's constructor)."""
        part = self.part_of(key)
        if part is None:
            raise KeyError(key)
        return dataclasses.replace(self, **{part: dataclasses.replace(getattr(self, part), **{key: value})})

    def machine_text(self) -> str:
        """The machine in words, for messages: ``spinn5 (48 chips x 16 cores - 9 = 759 cores)``."""
        m = self.machine
        cores = m.application_cores()
        if cores is None:
            return f"{self.name} (machine size unknown)"
        minus = f" - {m.reserved_cores}" if m.reserved_cores else ""
        name = self.options.board or self.name
        name = f"{self.options.boards} x {name}" if self.options.boards > 1 else name
        return f"{name} ({m.chips} chips x {m.cores_per_chip} cores{minus} = {cores} cores)"

    def manifest(self) -> dict[str, Any]:
        """The spec as ``snnc.json`` records it: the effective machine, options and energy model."""
        return {part: dataclasses.asdict(getattr(self, part)) for part in ("machine", "options", "energy")}
