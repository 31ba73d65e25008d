"""The passes. Each module holds one pass; ``ALL_PASSES`` lists them in pipeline order."""

from .base import Diagnostic, Pass, PassContext, PassError

ALL_PASSES: list[type[Pass]] = []
PASSES: dict[str, type[Pass]] = {p.name: p for p in ALL_PASSES}

__all__ = ["ALL_PASSES", "PASSES", "Diagnostic", "Pass", "PassContext", "PassError"]
