"""Targets: one folder each, with its spec, templates, emitter and runner."""

from .base import TARGETS, RunRequest, Target, TargetError, TargetSpec, get_target

__all__ = ["TARGETS", "RunRequest", "Target", "TargetError", "TargetSpec", "get_target"]
