"""The project's error classes at the root of the hierarchy: every failure a user can cause is an
``SnncError`` whose message is one line naming the file, node, line or key."""

from __future__ import annotations


class SnncError(Exception):
    """A failure caused by the input (a file, an option, a directory): printed as one line."""


class BudgetError(SnncError):
    """A declared size beyond the configured budget (see :mod:`snnc.ir.limits`)."""
