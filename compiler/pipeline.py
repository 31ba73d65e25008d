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
from snnc.ir.errors import SnncError
from snnc.ir.options import OptionError, TargetSpec, allows_inf
from snnc.passes import PASSES, Pass, PassContext, PassError

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


def _parse_setting(obj: Any, key: str, text: str, what: str) -> tuple[str, Any]:
    """Field ``key`` (kebab or snake case) of dataclass ``obj`` and ``text`` parsed to its type."""
    name = key.replace("-", "_")
    hints = typing.get_type_hints(type(obj))
    return name, parse_value(text, hints[name], what, allows_inf(name))


def _checked(make: Callable[..., Any], args: tuple, name: str, text: str, what: str) -> Any:
    """``make(*args)``, an OptionError from its checks turned into a PassError naming ``what``;
    the problem alone where it is about field ``name`` itself."""
    try:
        return make(*args)
    except OptionError as exc:
        raise PassError(f"{what}={_shown(text)}: {exc.problem if exc.field == name else exc}") from None


def _set_field(obj: Any, key: str, text: str, what: str) -> Any:
    """A copy of dataclass ``obj`` with field ``key`` set from ``text``; the copy checks its
    fields (type, finiteness, range), and a bad value names ``what``."""
    name, value = _parse_setting(obj, key, text, what)
    return _checked(_replaced, (obj, name, value), name, text, what)


def _replaced(obj: Any, name: str, value: Any) -> Any:
    return dataclasses.replace(obj, **{name: value})


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
            raise PassError(f"bad pipeline syntax at {text[pos : pos + 30]!r}")
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


def apply_settings(passes: list[Pass], spec: TargetSpec, settings: Mapping[str, str]) -> tuple[list[Pass], TargetSpec]:
    """Apply ``--set key=value`` to the target's setting (compile option or machine fact) and every
    pass option named ``key``; ``pass.key=value`` sets one pass's option only.

    Every setting must take effect: a key nothing has, a target setting that no pass in the
    pipeline and not the target reads, and a value the target does not accept are errors.
    """
    for key, value in settings.items():
        scope, _, short = key.rpartition(".")
        name = short.replace("-", "_")
        what = f"--set {key}"
        hit = False
        for i, p in enumerate(passes):
            if (not scope or scope == p.name) and _has_field(p, short):
                passes[i] = _set_field(p, short, value, what)
                _check_accepted(spec, p.home(name), passes[i].options()[short.replace("_", "-")], f"--set {key}", value)
                hit = True
        if not scope and spec.part_of(name) is not None:
            _, parsed = _parse_setting(getattr(spec, spec.part_of(name)), name, value, what)
            spec = _checked(spec.with_setting, (name, parsed), name, value, what)
            _check_accepted(spec, name, parsed, f"--set {key}", value)
            _check_read(passes, spec, name, key, value)
            hit = True
        if not hit:
            if not scope and name in spec.accepts:
                _check_accepted(spec, name, None, f"--set {key}", value)
            raise PassError(f"{what}: no pass in the pipeline and no target setting has that option")
    for p in passes:  # options written in the pipeline string itself (lower-to-snn{reset=subtract})
        for option, value in p.options().items():
            if value is not None:
                _check_accepted(spec, p.home(option.replace("-", "_")), value, f"{p.name}{{{option}", str(value))
    return passes, spec


def _check_accepted(spec: TargetSpec, name: Optional[str], parsed: Any, what: str, text: str) -> None:
    """Refuse a value of target setting ``name`` that target ``spec`` does not accept, with its
    reason; ``what`` (``--set key`` or ``pass{option``) and ``text`` name it in the message."""
    if name is None or name not in spec.accepts:
        return
    values, reason = spec.accepts[name]
    closing = "}" if "{" in what else ""
    if not values:
        raise PassError(f"{what}={_shown(text)}{closing}: {spec.name} fixes {name.replace('_', '-')}: {reason}")
    if parsed not in values:
        shown = " or ".join(map(str, values))
        raise PassError(f"{what}={_shown(text)}{closing}: {spec.name} takes {shown} only: {reason}")


def _check_read(passes: list[Pass], spec: TargetSpec, name: str, key: str, text: str) -> None:
    """Refuse target setting ``name`` when neither a pass in the pipeline nor the target reads it."""
    if name in spec.reads or any(name in p.reads for p in passes):
        return
    readers = sorted(p.name for p in PASSES.values() if name in p.reads)
    hint = f" (read by {', '.join(readers)}, not in the pipeline)" if readers else ""
    raise PassError(f"--set {key}={_shown(text)}: nothing in the {spec.name} pipeline or target reads it{hint}")


@dataclass
class PassRecord:
    index: int
    name: str
    seconds: float
    ops: int  # ops in the graph after the pass (-1: the pass failed)

    def row(self) -> str:
        """The pass as the CLI's table shows it."""
        size = "failed" if self.ops < 0 else f"{self.ops:4d} ops"
        return f"  {self.index:2d} {self.name:<18} {self.seconds * 1000:8.1f} ms  {size}"


def pass_records(exc: BaseException) -> list[PassRecord]:
    """The passes that ran before ``exc`` stopped a pipeline, the failing one last (``ops`` -1)."""
    return list(getattr(exc, "pass_records", []))


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
        except (IRError, PassError) as exc:  # the pass's own errors and the verifier's name the pass
            raise _with_records(type(exc)(f"{p.name}: {exc}"), records, index, p, start) from None
        except SnncError as exc:  # a budget or data error: its own message, the times still shown
            _with_records(exc, records, index, p, start)
            raise
        records.append(PassRecord(index, p.name, time.perf_counter() - start, len(graph)))
        if dump_dir is not None and dump is not None and ("all" in dump or p.name in dump):
            save(graph, dump_dir / f"{index:02d}-{p.name}.snnir")
        if on_pass is not None:
            on_pass(index, p, graph)
        if stop_after == p.name:
            break
    ctx.current_pass = "compile"
    return graph, records


def _with_records(exc: SnncError, records: list[PassRecord], index: int, p: Pass, start: float) -> SnncError:
    """``exc`` carrying the records of the passes that ran and of pass ``p``, which failed."""
    exc.pass_records = [*records, PassRecord(index, p.name, time.perf_counter() - start, -1)]
    return exc
