"""Rendering the jinja2 templates of a target (``targets/<name>/templates``)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2


@functools.cache
def _environment(target: str) -> jinja2.Environment:
    folder = Path(__file__).parent / target / "templates"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )


def render(target: str, template: str, path: Path, context: dict[str, Any]) -> None:
    """Write ``template`` of ``target`` rendered with ``context`` to ``path``."""
    path.write_text(_environment(target).get_template(template).render(**context))
