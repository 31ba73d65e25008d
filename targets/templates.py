"""Files a target writes beside its network: static scripts, copied verbatim, and READMEs
rendered from jinja2 templates (``targets/<name>/templates``).

Run scripts carry no value from the IR or the model: they are the same bytes for every
network and read everything from ``network.json`` and ``weights.npz``, which ``run_checks.py``
(copied beside them) checks. README templates get only plain numbers and a few names checked
here, with autoescaping on.
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

from snnc.targets.base import TargetError

_HERE = Path(__file__).parent
# Names a template may show, and what they may hold (pipeline: pass names and validated options).
TEXT_KEYS = {"version": r"[0-9][0-9a-z.+-]{0,31}", "pipeline": r"[a-z0-9_{}=.,+-]{1,4000}", "board": r"[a-z0-9]{1,16}"}


@functools.cache
def _environment(target: str) -> jinja2.Environment:
    folder = _HERE / target / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
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


def copy_script(target: str, name: str, path: Path) -> None:
    """Copy the static file ``name`` of ``target``'s templates to ``path`` (byte for byte)."""
    shutil.copyfile(_HERE / target / "templates" / name, path)


def copy_run_checks(out: Path) -> None:
    """Put ``run_checks.py`` (the checks run scripts make on what they read) into ``out``."""
    shutil.copyfile(_HERE / "run_checks.py", out / "run_checks.py")
