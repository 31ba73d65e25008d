"""The pass manager: pipeline strings, option settings, and running passes with verify/dump."""

from __future__ import annotations

import dataclasses
import math
import re
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from snnc.ir import Graph, IRError, save, verify
from snnc.passes import PASSES, Pass, PassContext, PassError
from snnc.targets.base import OptionError, allows_inf

_ITEM = re.compile(r"\s*([a-z0-9-]+)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


def parse_value(text: str, hint: Any, what: str, allow_inf: bool = False) -> Any:
    """Convert an option string to the type a dataclass field declares. NaN is refused, and
    infinity unless ``allow_inf`` (``tau_m=inf``: no leak)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if text.lower() in ("none", "null"):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin is typing.Literal:
            if text not in args:
                raise ValueError(f"must be one of {', '.join(map(str, args))}")
            return text
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("must be true or false")
            return text.lower() in ("true", "1", "yes")
        if hint is float:
            try:
                value = float(text)
            except ValueError:
                raise ValueError("must be a number") from None
            if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
                raise ValueError("must be a finite number" + (" or inf" if allow_inf else ""))
            return value
        if hint is int:
            if not re.fullmatch(r"[+-]?[0-9]{1,18}", text.strip()):
                raise ValueError("must be an integer")
            return int(text)
        if hint is str:
            return text
    except ValueError as exc:
        raise PassError(f"{what}={_shown(text)}: {exc}") from None
    raise PassError(f"{what}: option type {hint} cannot be set from text")


def _shown(text: str) -> str:
    """An option value as messages quote it: at most 40 characters."""
    return text if len(text) <= 40 else text[:37] + "..."


def _set_field(obj: Any, key: str, text: str, what: str) -> Any:
    """A copy of dataclass ``obj`` with field ``key`` (kebab or snake case) set from ``text``;
    the copy checks its fields (type, finiteness, range), and a bad value names ``what``."""
    name = key.replace("-", "_")
    hints = typing.get_type_hints(type(obj))
    value = parse_value(text, hints[name], what, allows_inf(name))
    try:
        return dataclasses.replace(obj, **{name: value})
    except OptionError as exc:
        if exc.field == name:
            raise PassError(f"{what}={_shown(text)}: {exc.problem}") from None
        raise PassError(f"{what}={_shown(text)}: {exc}") from None


def _has_field(obj: Any, key: str) -> bool:
    return key.replace("-", "_") in {f.name for f in dataclasses.fields(obj)}


def parse_pipeline(text: str) -> list[Pass]:
    """``"canonicalize,normalize{percentile=99.9},lower-to-snn"`` -> pass instances."""
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PassError(f"bad pipeline syntax at {text[pos:pos + 30]!r}")
        name, opts = m.group(1), m.group(2)
        if name not in PASSES:
            raise PassError(f"unknown pass {name!r} (see 'snnc passes')")
        p: Pass = PASSES[name]()
        for item in filter(None, (o.strip() for o in (opts or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep or not _has_field(p, key.strip()):
                raise PassError(f"{name}: unknown option {key.strip()!r} (has {', '.join(p.option_names()) or 'none'})")
            p = _set_field(p, key.strip(), value.strip(), f"{name}.{key.strip()}")
        passes.append(p)
        pos = m.end()
    return passes


def apply_settings(passes: list[Pass], spec: Any, settings: Mapping[str, str]) -> tuple[list[Pass], Any]:
    """Apply ``--set key=value`` to every pass option and target-spec field named ``key``.

    ``pass.key=value`` restricts a setting to one pass. A key nothing has is an error.
    """
    for key, value in settings.items():
        scope, _, short = key.rpartition(".")
        hit = False
        for i, p in enumerate(passes):
            if (not scope or scope == p.name) and _has_field(p, short):
                passes[i] = _set_field(p, short, value, f"--set {key}")
                hit = True
        if not scope and _has_field(spec, short) and short not in ("name", "description", "pipeline"):
            spec = _set_field(spec, short, value, f"--set {key}")
            hit = True
        if not hit:
            raise PassError(f"--set {key}: no pass in the pipeline and no target setting has that option")
    return passes, spec


@dataclass
class PassRecord:
    index: int
    name: str
    seconds: float
    ops: int


def run_pipeline(
    graph: Graph,
    passes: Iterable[Pass],
    ctx: PassContext,
    dump_dir: Optional[Path] = None,
    dump: Optional[set[str]] = None,
    stop_after: Optional[str] = None,
    on_pass: Optional[Callable[[int, Pass, Graph], None]] = None,
) -> tuple[Graph, list[PassRecord]]:
    """Run passes in order, verifying after each; dump ``NN-<pass>.snnir`` for names in ``dump``
    (or every pass when it holds ``"all"``); stop after the pass named ``stop_after``."""
    verify(graph)
    records = []
    if dump_dir is not None and dump is not None and ("all" in dump or "input" in dump):
        save(graph, dump_dir / "00-input.snnir")
    for index, p in enumerate(passes, start=1):
        if graph.dialect != p.dialect:
            raise PassError(f"pass {p.name} works on the {p.dialect} dialect, but the graph is {graph.dialect} here")
        ctx.current_pass = p.name
        start = time.perf_counter()
        try:
            graph = p.run(graph.copy(), ctx)
            verify(graph)
        except IRError as exc:
            raise type(exc)(f"{p.name}: {exc}") from None
        records.append(PassRecord(index, p.name, time.perf_counter() - start, len(graph)))
        if dump_dir is not None and dump is not None and ("all" in dump or p.name in dump):
            save(graph, dump_dir / f"{index:02d}-{p.name}.snnir")
        if on_pass is not None:
            on_pass(index, p, graph)
        if stop_after == p.name:
            break
    ctx.current_pass = "compile"
    return graph, records
