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
import re
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
Screen = Callable[["GraphBuilder", FrontendNode], Optional["NoSpikingForm"]]


class NoSpikingForm(FrontendError):
    """A layer that snnc cannot turn into rate-coded spiking neurons; ``GraphBuilder.run`` collects
    these and reports them all in one line."""

    def __init__(self, node: FrontendNode, kind: str, reason: str) -> None:
        kind = kind if _PLAIN.fullmatch(kind) else repr(kind[:80])  # op types come from the file too
        super().__init__(f"{_quote(node.name)} ({kind}: {reason})")
        self.node, self.kind, self.reason = node, kind, reason


_PLAIN = re.compile(r"[\w./:=()-]{1,80}", re.ASCII)  # names and kinds shown without quotes
MAX_LISTED = 20  # layers named in one error; the rest are counted

# Why a layer has no rate-coded form. A rate-coded integrate-and-fire neuron (reset by subtraction)
# fires at a rate proportional to max(0, input) up to its maximum rate: it computes a ReLU, or a
# clipped ReLU, of a weighted sum of the rates before it, with fixed weights. Keys: the kind in
# lower case without "_" (ONNX "LeakyRelu", Keras "leaky_relu", PyTorch "LeakyReLU" all match).
_NEGATIVE = "a spike rate cannot be negative"
_RECURRENT = (
    "a recurrent layer: its gates multiply two activations (sigmoid gate times tanh state) and its state "
    "runs over the sequence; synapses only multiply rates by fixed weights"
)
_ATTENTION = (
    "attention multiplies two computed tensors (queries times keys) and takes a softmax inside the "
    "network; synapses only multiply rates by fixed weights"
)
_SIMPLE_RNN = (
    f"a recurrent layer: its state runs over the sequence through tanh, which is negative for negative input, "
    f"and {_NEGATIVE}"
)
_EXP = "exp is positive for negative input and grows exponentially, while a spike rate is zero for negative input"
PRODUCT_REASON = (
    "a product of two computed tensors (as in attention or gating); synapses only multiply rates by fixed weights"
)
_NORM = "it divides by statistics of each sample computed at run time; synapses have fixed weights"
REASONS: dict[str, str] = {
    "sigmoid": "sigmoid is 0.5 at zero input and positive for negative input, while a spike rate is zero "
    "for input at or below zero",
    "hardsigmoid": "hard sigmoid is 0.5 at zero input, while a spike rate is zero for input at or below zero",
    "tanh": f"tanh is negative for negative input and {_NEGATIVE}",
    "softsign": f"softsign is negative for negative input and {_NEGATIVE}",
    "erf": f"erf is negative for negative input and {_NEGATIVE}",
    "leakyrelu": f"its negative side (slope alpha) needs negative outputs and {_NEGATIVE}",
    "prelu": f"its negative side (a learned slope) needs negative outputs and {_NEGATIVE}",
    "elu": f"ELU is negative for negative input (down to -alpha) and {_NEGATIVE}",
    "selu": f"SELU is negative for negative input (down to about -1.76) and {_NEGATIVE}",
    "celu": f"CELU is negative for negative input (down to -alpha) and {_NEGATIVE}",
    "gelu": f"GELU is negative for negative input (down to about -0.17) and {_NEGATIVE}",
    "silu": f"SiLU is negative for negative input (down to about -0.28) and {_NEGATIVE}",
    "swish": f"swish is negative for negative input (down to about -0.28) and {_NEGATIVE}",
    "hardswish": f"hard swish is negative for inputs between -3 and 0 and {_NEGATIVE}",
    "hardsilu": f"hard SiLU is negative for inputs between -3 and 0 and {_NEGATIVE}",
    "mish": f"mish is negative for negative input (down to about -0.31) and {_NEGATIVE}",
    "softplus": "softplus is positive for negative input (log 2 at zero), while a spike rate is zero for input "
    "at or below zero",
    "exponential": _EXP,
    "exp": _EXP,
    "thresholdedrelu": "it jumps from 0 to alpha at the threshold, but a spike rate grows continuously from zero",
    "threshold": "it jumps to the threshold value at the threshold, but a spike rate grows continuously from zero",
    "lstm": _RECURRENT,
    "gru": _RECURRENT,
    "rnn": _SIMPLE_RNN,
    "simplernn": _SIMPLE_RNN,
    "logsoftmax": "log-softmax subtracts the log of a sum over the layer computed per sample, and is negative",
    "convlstm2d": _RECURRENT,
    "bidirectional": _RECURRENT,
    "multiply": PRODUCT_REASON,
    "dot": PRODUCT_REASON,
    "attention": _ATTENTION,
    "multiheadattention": _ATTENTION,
    "additiveattention": _ATTENTION,
    "scaleddotproductattention": _ATTENTION,
    "matmul": "a product with fixed weights is read only as a Linear layer, and a product of two computed "
    "tensors (as in attention) has no spiking form: synapses only multiply rates by fixed weights",
    "bmm": "a batched product of two computed tensors (as in attention); synapses only multiply rates by fixed weights",
    "layernormalization": _NORM,
    "layernorm": _NORM,
    "groupnormalization": _NORM,
    "groupnorm": _NORM,
    "instancenormalization": _NORM,
    "unitnormalization": _NORM,
    "lpnormalization": _NORM,
    "lrn": _NORM,
}
# monotonic ops that keep the argmax: on the output they could be dropped like a softmax, but snnc has no op for them
_MONOTONIC = {"sigmoid", "hardsigmoid", "tanh", "softsign", "logsoftmax", "erf", "softplus"}
SOFTMAX_INSIDE = (
    "inside the network, softmax divides by a sum over the layer computed per sample; only an output "
    "softmax is dropped (the spike counts keep its argmax)"
)
PRODUCT = PRODUCT_REASON
QUOTIENT = "a quotient of two computed tensors; synapses only multiply rates by fixed weights"
# binary ops that some frontends read with one constant operand; with two computed operands they have no spiking form
PRODUCTS = {
    **dict.fromkeys(("matmul", "mul", "bmm", "mm", "multiply", "dot", "einsum"), PRODUCT),
    **dict.fromkeys(("div", "truediv", "divide"), QUOTIENT),
}
UNKNOWN = "not an op snnc converts"


def _key(kind: str) -> Optional[str]:
    """The REASONS key of a layer kind: the whole kind, then its first or last dotted part
    (PyTorch ``sigmoid.default``, ONNX ``com.microsoft.Gelu``)."""
    parts = kind.split(".")
    for candidate in (kind, parts[0], parts[-1]):
        key = candidate.lower().replace("_", "")
        if key in REASONS or key in _MONOTONIC:
            return key
    return None


def no_spiking_form(kind: str, inside: bool = True) -> str:
    """Why a layer of ``kind`` has no rate-coded form (``inside``: something reads its output)."""
    key = _key(kind)
    if key in _MONOTONIC and not inside:
        return (
            "on the output, snnc has no op for it; it keeps the order of its input, "
            "so export the network without it (the spike counts give the argmax)"
        )
    if key is None:
        return UNKNOWN
    return f"inside the network, {REASONS[key]}" if key in _MONOTONIC else REASONS[key]


def _quote(name: str) -> str:
    """A framework name for a message: ``%name`` when plain, else ``%`` and its repr (one line)."""
    return f"%{name}" if _PLAIN.fullmatch(name) else f"%{name[:80]!r}"


class HandlerRegistry:
    """Handlers of one framework, keyed by op kind."""

    def __init__(self, framework: str) -> None:
        self.framework = framework
        self.handlers: dict[str, Handler] = {}
        self.screens: list[Screen] = []

    def screen(self, fn: Screen) -> Screen:
        """Register a check run on every handled node, even one skipped because it reads a refused
        layer: it returns the node's NoSpikingForm (from its kind and attributes alone) or None."""
        self.screens.append(fn)
        return fn

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
        self.origin: dict[str, FrontendNode] = {}  # op id -> the node it was built for
        self.read: set[str] = set()  # value names some node reads (set by run)

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
        self.origin[op_id] = node
        self.alias(output if output is not None else node.outputs[0], op_id)
        return op_id

    def tensor(self, ref: TensorRef) -> np.ndarray:
        return self.graph.tensor(ref)

    def error(self, node: FrontendNode, message: str) -> FrontendError:
        return FrontendError(f"{self.source}: node {node.name!r} ({node.kind}): {message}")

    def run(
        self, registry: HandlerRegistry, nodes: list[FrontendNode], refused_inputs: Iterable[NoSpikingForm] = ()
    ) -> None:
        """Dispatch every node. Nodes without a spiking form (no handler, refused by a screen or by
        their handler) are collected, with what reads them skipped, and reported in one line at the
        end; ``refused_inputs`` are inputs already refused (listed first)."""
        self.read = {name for n in nodes for name in n.inputs if name}
        refused = [(-1, exc) for exc in refused_inputs]
        refused += [(i, self.refuse(n, None)) for i, n in enumerate(nodes) if n.kind not in registry.handlers]
        poisoned = {out for _, exc in refused for out in exc.node.outputs}
        for index, node in enumerate(nodes):
            if node.kind not in registry.handlers:
                continue
            refusal = self._product(node, poisoned) or self._softmax(node) or self._screened(registry, node)
            if refusal is not None:
                refused.append((index, refusal))
            if refusal is not None or any(name in poisoned for name in node.inputs):
                poisoned.update(node.outputs)  # reads a refused layer: its own error would only follow from that
                continue
            try:
                self.guarded(node, registry.handlers[node.kind])
            except NoSpikingForm as exc:
                refused.append((index, exc))
                poisoned.update(node.outputs)
            except SnncError:
                if not refused:
                    raise
                poisoned.update(node.outputs)  # reported once the layers above are fixed
        listed = {exc.node.name for _, exc in refused}
        refused += [r for r in self._softmax_inside(poisoned, nodes) if r[1].node.name not in listed]
        if refused:
            raise self.unconvertible([exc for _, exc in sorted(refused, key=lambda r: r[0])])

    def _product(self, node: FrontendNode, poisoned: set[str]) -> Optional[NoSpikingForm]:
        """A product or quotient of two or more computed tensors (not constants), or None."""
        reason = PRODUCTS.get(node.kind.split(".")[0].lower().replace("_", ""))
        computed = [i for i in node.inputs if i in self.values or i in poisoned]
        if reason is None or len(computed) < 2 or len(computed) != len([i for i in node.inputs if i]):
            return None
        return self.refuse(node, reason)

    def _screened(self, registry: HandlerRegistry, node: FrontendNode) -> Optional[NoSpikingForm]:
        """The first refusal of the registry's screens; a malformed node is left to its handler."""
        for screen in registry.screens:
            try:
                refused = screen(self, node)
            except (SnncError, *self.MALFORMED):
                return None
            if refused is not None:
                return refused
        return None

    def _softmax(self, node: FrontendNode) -> Optional[NoSpikingForm]:
        """A softmax layer that another node reads (its output activations are checked in ``run``)."""
        if node.kind.split(".")[0].lower().replace("_", "") == "softmax" and self.inside(node):
            return self.refuse(node, SOFTMAX_INSIDE)
        return None

    def refuse(self, node: FrontendNode, reason: Optional[str], kind: Optional[str] = None) -> NoSpikingForm:
        """The error a handler raises for a layer without a spiking form (``reason`` None: the
        shared reason for its kind, worded for its place: inside the network or on its output)."""
        return NoSpikingForm(node, kind or node.kind, reason or no_spiking_form(kind or node.kind, self.inside(node)))

    def inside(self, node: FrontendNode) -> bool:
        """Whether another node reads ``node``'s output (during ``run``)."""
        return any(out in self.read for out in node.outputs)

    def _softmax_inside(self, poisoned: set[str], nodes: list[FrontendNode]) -> list[tuple[int, NoSpikingForm]]:
        """Softmax ops that something reads (only an output softmax is dropped by remove-softmax)."""
        skipped_reads = {name for n in nodes if set(n.outputs) & poisoned for name in n.inputs}
        order = {n.name: i for i, n in enumerate(nodes)}
        found = []
        for op_id in self.graph.ops_of("ann.softmax"):
            node = self.origin.get(op_id)
            read_by_skipped = node is not None and any(out in skipped_reads for out in node.outputs)
            if node is not None and (self.graph.users(op_id) or read_by_skipped):
                found.append((order.get(node.name, len(nodes)), self.refuse(node, SOFTMAX_INSIDE, node.kind)))
        return found

    def unconvertible(self, refused: list[NoSpikingForm]) -> FrontendError:
        """One line listing every layer without a spiking form, each with its name and why."""
        shown = ", ".join(f"{_quote(e.node.name)} ({e.kind}: {e.reason})" for e in refused[:MAX_LISTED])
        more = f", and {len(refused) - MAX_LISTED} more" if len(refused) > MAX_LISTED else ""
        count = "1 layer has" if len(refused) == 1 else f"{len(refused)} layers have"
        return FrontendError(f"{self.source}: {count} no spiking form: {shown}{more}")

    def guarded(self, node: FrontendNode, handler: Handler) -> None:
        """Run ``handler`` for ``node``; a node of the wrong form ends in one line naming it."""
        try:
            handler(self, node)
        except SnncError:
            raise
        except self.MALFORMED as exc:
            raise self.error(node, f"malformed node ({one_line(exc)})") from None
