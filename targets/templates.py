"""Files a target writes beside its network: its run script, copied verbatim, and READMEs (and
configuration files) rendered from jinja2 templates (``targets/<name>/templates``).

Run scripts are modules of the package (``targets/<name>/run_<name>.py``, copied as ``run.py``
beside ``snnc_runtime.py``, a copy of ``snnc.ir.runtime``). They carry no value from the IR or the
model: they are the same bytes for every network and read everything from ``network.json`` and
``weights.npz``, which they check. Templates get only plain numbers and a few names checked here,
with autoescaping on.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from snnc.targets.base import TargetError, run_script_files

_HERE = Path(__file__).parent
# Names a template may show, and what they may hold (pipeline: pass names and validated options).
TEXT_KEYS = {
    "version": r"[0-9][0-9a-z.+-]{0,31}",
    "pipeline": r"[a-z0-9_{}=.,+-]{1,4000}",
    "board": r"[a-z0-9]{1,16}",
    "backend": r"[a-z_]{1,32}",
    "precision": r"float|double",
}


@functools.cache
def _environment(target: str) -> jinja2.Environment:
    folder = _HERE / target / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=True,
    )


def safe_value(key: str, value: Any) -> Any:
    """``value`` as a template may show it: a finite int or float, or (for TEXT_KEYS) a name
    matching its pattern; anything else is a TargetError naming the key."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and key in TEXT_KEYS and re.fullmatch(TEXT_KEYS[key], value):
        return value
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    raise TargetError(f"{key}={shown}: not a plain number or name; it is not written into an emitted file")


def render(target: str, template: str, path: Path, context: dict[str, Any]) -> None:
    """Write ``template`` of ``target`` rendered with ``context`` (checked by safe_value) to ``path``."""
    values = {key: safe_value(key, value) for key, value in context.items()}
    path.write_text(_environment(target).get_template(template).render(**values))


def copy_run_script(target: str, out: Path) -> None:
    """Copy ``target``'s run script into ``out`` byte for byte: ``run.py`` and the
    ``snnc_runtime.py`` it imports (see run_script_files)."""
    for name, source in run_script_files(target).items():
        shutil.copyfile(source, out / name)
