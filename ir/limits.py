"""Resource budgets: declared sizes are checked against them before anything is allocated.

A model file can declare a population of 10**12 neurons in a few bytes; snnc refuses it with a
one-line error naming the node instead of running out of memory. The budget is configurable
(``snnc --budget neurons=1e9,synapses=1e10,bytes=64e9`` or :func:`using` in Python); the
defaults fit the largest networks the targets here can run on a 24 GiB machine.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """Upper bounds for one compile or run."""

    neurons: int = 100_000_000  # neurons (or tensor elements per sample) in one op
    synapses: int = 2_000_000_000  # synapses (weights, connection triples) in one projection
    bytes: int = 8 * 2**30  # bytes of one array read from a file or allocated for one
    nodes: int = 1_000_000  # ops in one graph

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BudgetError(f"budget {f.name} must be a positive integer, got {value!r}")


_DEFAULT = Budget()
_CURRENT: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("snnc_budget", default=None)


def current() -> Budget:
    """The budget in force."""
    return _CURRENT.get() or _DEFAULT


@contextlib.contextmanager
def using(budget: Budget) -> Iterator[Budget]:
    """Run a block under ``budget``."""
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def parse_budget(text: str) -> Budget:
    """``"neurons=1e9,bytes=64e9"`` -> a Budget (other fields keep their defaults)."""
    values: dict[str, int] = {}
    names = {f.name for f in dataclasses.fields(Budget)}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in names:
            raise BudgetError(f"--budget {item!r}: expected KEY=N with KEY one of {', '.join(sorted(names))}")
        try:
            number = float(value)
        except ValueError:
            raise BudgetError(f"--budget {key}={value.strip()}: not a number") from None
        if not math.isfinite(number) or number < 1 or number != int(number):
            raise BudgetError(f"--budget {key}={value.strip()}: must be a positive whole number")
        values[key] = int(number)
    return Budget(**values)


def check(kind: str, amount: int, what: str) -> None:
    """Raise BudgetError when ``amount`` of ``kind`` (a Budget field) exceeds the budget.

    ``what`` names the node, file or array, e.g. ``"%fc1"`` or ``"model.npz: w"``.
    """
    limit = getattr(current(), kind)
    if amount > limit:
        raise BudgetError(f"{what}: {amount:,} {kind} exceed the budget of {limit:,} (raise it with --budget {kind}=N)")


def check_array(shape: tuple[int, ...], itemsize: int, what: str) -> None:
    """Check an array of ``shape`` and ``itemsize`` against the byte budget before allocating it."""
    if any(int(d) < 0 for d in shape):
        raise BudgetError(f"{what}: negative dimension in shape {list(shape)}")
    check("bytes", math.prod(int(d) for d in shape) * int(itemsize), what)
