"""What every frontend shares: a framework-neutral node, the graph builder and handler registries.

A frontend turns each framework layer or node into a ``FrontendNode`` and calls the handler
registered for its kind. All handlers of all frameworks have one signature::

    @ONNX.handler("Relu")
    def relu(b: GraphBuilder, node: FrontendNode) -> None: ...

Model names never reach the IR unsanitized: op ids come from ``Graph.unique_id``, and the
original names appear only in error messages, quoted with ``repr``.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, IRError, Op, TensorRef, limits
from snnc.ir.errors import BudgetError, SnncError


class FrontendError(IRError):
    """A model that snnc cannot read; the message is one line naming the file and nodes."""


def one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line, shortened (for wrapping library errors)."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


MAX_ARCHIVE_MEMBERS = 10_000


def check_zip(z: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    """The members of an archive after checking their names (relative, no ``..``, no links),
    their number and their uncompressed sizes against the byte budget; nothing is extracted."""
    members = z.infolist()
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise FrontendError(f"{source}: {len(members):,} archive members (at most {MAX_ARCHIVE_MEMBERS:,})")
    total = 0
    for info in members:
        name = info.filename
        parts = name.split("/")
        if posixpath.isabs(name) or "\\" in name or ".." in parts or ":" in parts[0] or "\x00" in name:
            raise FrontendError(f"{source}: archive member {name!r} has an unsafe path")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise FrontendError(f"{source}: archive member {name!r} is a symbolic link")
        limits.check("bytes", info.file_size, f"{source}: {name}")
        total += info.file_size
    limits.check("bytes", total, f"{source}: all archive members together")
    return members


@dataclass
class FrontendNode:
    name: str  # the framework's own name for it (for messages only)
    kind: str  # the framework's op / layer type
    inputs: list[str]  # value names
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["GraphBuilder", FrontendNode], None]


class HandlerRegistry:
    """Handlers of one framework, keyed by op kind."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.handlers: dict[str, Handler] = {}

    def handler(self, *kinds: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for kind in kinds:
                self.handlers[kind] = fn
            return fn

        return register

    def unsupported(self, nodes: Iterable[FrontendNode]) -> list[FrontendNode]:
        return [n for n in nodes if n.kind not in self.handlers]


class GraphBuilder:
    """Builds an ann-dialect graph while a frontend walks a model in topological order."""

    # what a handler raises on a node whose inputs or attributes it did not expect (a hostile or
    # broken file): turned into one line naming the node
    MALFORMED: tuple[type[BaseException], ...] = (LookupError, TypeError, ValueError, ArithmeticError, AttributeError)

    def __init__(self, source: str) -> None:
        self.source = source
        self.graph = Graph()
        self.values: dict[str, str] = {}  # framework value name -> op id
        self.constants: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ values
    def const(self, name: str) -> Optional[np.ndarray]:
        """The constant behind a value name, or None when it is computed at run time."""
        return self.constants.get(name) if name else None

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def value(self, name: str, node: FrontendNode) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise self.error(node, f"input {name!r} is not produced by any supported node") from None

    def alias(self, name: str, op_id: str) -> None:
        self.values[name] = op_id

    def shape(self, op_id: str) -> tuple[int, ...]:
        return self.graph.shape(op_id)

    # ------------------------------------------------------------------ building
    def add(
        self,
        node: FrontendNode,
        op_type: type[Op],
        inputs: list[str],
        tensors: Optional[dict[str, np.ndarray]] = None,
        output: Optional[str] = None,
        **attrs: Any,
    ) -> str:
        """Add ``op_type`` for ``node`` with op-id inputs; tensors become ``<id>.<field>``."""
        op_id = self.graph.unique_id(node.name or node.kind.lower())
        for key, array in (tensors or {}).items():
            if array is not None:
                attrs[key] = self.graph.add_tensor(f"{op_id}.{key}", np.asarray(array, dtype=np.float32))
        try:
            self.graph.add(op_id, op_type(**attrs), inputs)
        except BudgetError as exc:
            raise BudgetError(f"{self.source}: node {node.name!r} ({node.kind}): {exc}") from None
        except IRError as exc:
            raise self.error(node, str(exc)) from None
        self.alias(output if output is not None else node.outputs[0], op_id)
        return op_id

    def tensor(self, ref: TensorRef) -> np.ndarray:
        return self.graph.tensor(ref)

    def error(self, node: FrontendNode, message: str) -> FrontendError:
        return FrontendError(f"{self.source}: node {node.name!r} ({node.kind}): {message}")

    def run(self, registry: HandlerRegistry, nodes: list[FrontendNode]) -> None:
        """Dispatch every node, after checking that all kinds are supported (one error for all)."""
        missing = registry.unsupported(nodes)
        if missing:
            listed = ", ".join(f"{n.kind} ({n.name!r})" for n in missing)
            raise FrontendError(f"{self.source}: unsupported {registry.framework} ops: {listed}")
        for node in nodes:
            self.guarded(node, registry.handlers[node.kind])

    def guarded(self, node: FrontendNode, handler: Handler) -> None:
        """Run ``handler`` for ``node``; a node of the wrong form ends in one line naming it."""
        try:
            handler(self, node)
        except SnncError:
            raise
        except self.MALFORMED as exc:
            raise self.error(node, f"malformed node ({one_line(exc)})") from None
