"""Pass base class, pass context and diagnostics.

A pass is a small dataclass: its fields are its options (``normalize{percentile=99.9}`` on
the command line, kebab-case there, snake_case here) and ``run(graph, ctx)`` returns a new
graph. The pass manager hands every pass its own copy of the graph, so passes may edit it.

A pass reads a target setting (a compile option or a machine fact) only through
``Pass.setting``, and lists it in ``reads``; see ``snnc.ir.options`` for the rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir.errors import SnncError
from snnc.ir.options import TargetSpec, check_fields


class PassError(SnncError):
    """A pass cannot transform this graph, or an option is wrong (message names the op or key)."""


@dataclass
class Diagnostic:
    level: str  # "info" | "warning"
    source: str  # the pass name, or "compile"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: [{self.source}] {self.message}"


@dataclass
class PassContext:
    """What passes may consult besides the graph."""

    target: TargetSpec
    calibration: Optional[np.ndarray] = None  # (N, *input shape) float32, in the model's layout
    calibration_labels: Optional[np.ndarray] = None  # (N,) int, when the file has them
    seed: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    current_pass: str = "compile"

    def warn(self, message: str) -> None:
        self.diagnostics.append(Diagnostic("warning", self.current_pass, message))

    def info(self, message: str) -> None:
        self.diagnostics.append(Diagnostic("info", self.current_pass, message))

    def need_calibration(self) -> np.ndarray:
        if self.calibration is None:
            raise PassError(f"{self.current_pass} needs calibration data (--calibration FILE.npz)")
        return self.calibration


@dataclass
class Pass:
    """Base of all passes. Subclasses set ``name`` and ``dialect`` and implement ``run``."""

    name: ClassVar[str] = ""
    dialect: ClassVar[str] = "ann"  # the dialect the pass takes
    summary: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()  # the target settings run() reads (through setting())
    homes: ClassVar[dict[str, str]] = {}  # option -> the target setting it overrides, where names differ

    def __post_init__(self) -> None:
        """Options are checked on construction (type, finiteness, range): see ``OPTION_RULES``."""
        check_fields(self)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        raise NotImplementedError

    def setting(self, ctx: PassContext, key: str) -> Any:
        """Target setting ``key`` as this pass sees it: the pass's own option for it (the field
        ``key``, or the one ``homes`` maps to it) where given, else the target's value. The one
        place a pass option and a target setting meet."""
        own = next((name for name, home in self.homes.items() if home == key), key)
        value = getattr(self, own, None)
        return ctx.target.get(key) if value is None else value

    @classmethod
    def home(cls, option: str) -> Optional[str]:
        """The target setting that option ``option`` (snake case) overrides (None: its own)."""
        home = cls.homes.get(option, option)
        return home if home in cls.reads else None

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in dataclasses.fields(cls)]

    def options(self) -> dict[str, Any]:
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in dataclasses.fields(self)}

    def spelled(self) -> str:
        """The pass as it is written in a pipeline string, options included."""
        opts = ",".join(f"{k}={_fmt(v)}" for k, v in self.options().items() if v is not None)
        return f"{self.name}{{{opts}}}" if opts else self.name


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
