"""The graph: ops on a networkx DiGraph, ordered inputs, a tensor store and graph attributes."""

from __future__ import annotations

import copy
import heapq
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional

import networkx as nx
import numpy as np

from . import limits
from .ops import IRError, Op, Shape, TensorRef

MAX_ID = 200  # characters of an op id or tensor name
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TENSOR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")

# Graph attributes every snn graph carries, with their defaults (times in ms).
SNN_GRAPH_ATTRS: dict[str, Any] = {"dt": 1.0, "presentation_time": 100.0, "instances": 1}

# The graph attributes snnc reads: kind and range. Times are in ms.
MIN_DT, MAX_TIME, MAX_INSTANCES, MAX_STRING = 1e-3, 1e7, 1_000_000, 4096
INPUT_LAYOUTS = ("NCHW", "NHWC")
GRAPH_ATTR_SCHEMA: dict[str, tuple[str, float, float]] = {
    # key: (kind, lowest, highest); "time" is a finite number, "count" a whole number
    "dt": ("time", MIN_DT, 1000.0),
    "presentation_time": ("time", MIN_DT, MAX_TIME),
    "pause": ("time", 0.0, MAX_TIME),
    "instances": ("count", 1, MAX_INSTANCES),
}
MAX_STEPS = 10_000_000  # time steps per sample (presentation_time / dt) and of one delay
# Formats without a field for a graph attribute (NIR's metadata) carry it as "snnc.<key>".
METADATA_PREFIX = "snnc"


def sanitize_id(name: str) -> str:
    """A valid op id (``[A-Za-z_][A-Za-z0-9_]*``, at most 128 characters) from an arbitrary model name."""
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:128]
    if not text or text[0].isdigit():
        text = "n" + (f"_{text}" if text else "")
    return text


def check_graph_attrs(attrs: Mapping[str, Any]) -> None:
    """Raise IRError naming the key when a graph attribute has the wrong type or range.

    ``dt``, ``presentation_time``, ``pause`` and ``instances`` follow GRAPH_ATTR_SCHEMA,
    ``input_layout`` is one of INPUT_LAYOUTS, ``normalized`` a boolean; other keys (notes
    kept with a graph) may hold a boolean, a 64-bit integer, a finite number or a short string.
    """
    for key, value in attrs.items():
        if not isinstance(key, str) or not _ID.match(key):
            raise IRError(f"graph attribute {key!r}: bad name")
        _check_graph_attr(key, value)
    dt, duration = attrs.get("dt"), attrs.get("presentation_time")
    if dt is not None and duration is not None and duration < dt:
        raise IRError(f"graph attribute presentation_time = {duration!r} is shorter than one step (dt = {dt!r})")


def _check_graph_attr(key: str, value: Any) -> None:
    def fail(why: str) -> IRError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return IRError(f"graph attribute {key} = {shown}: {why}")

    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if key in GRAPH_ATTR_SCHEMA:
        kind, low, high = GRAPH_ATTR_SCHEMA[key]
        if kind == "count" and (not isinstance(value, (int, np.integer)) or isinstance(value, bool)):
            raise fail("must be a whole number")
        if not number or not math.isfinite(value):
            raise fail("must be a finite number")
        if not low <= value <= high:
            raise fail(f"must lie in [{low:g}, {high:g}] {'ms' if kind == 'time' else ''}".rstrip())
    elif key == "input_layout":
        if not isinstance(value, str) or value not in INPUT_LAYOUTS:
            raise fail(f"must be one of {', '.join(INPUT_LAYOUTS)}")
    elif key == "normalized":
        if not isinstance(value, bool):
            raise fail("must be true or false")
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise fail(f"strings hold at most {MAX_STRING} characters")
    elif number:
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise fail("must be finite")
        if isinstance(value, (int, np.integer)) and not -(2**63) <= value < 2**63:
            raise fail("does not fit in 64 bits")
    elif not isinstance(value, bool):
        raise fail("must be a number, a string or a boolean")


def graph_number(graph: Graph, key: str, default: Optional[float] = None) -> float:
    """Graph attribute ``key`` (``dt``, ``presentation_time``, ``pause``, ``instances``) as a plain
    number checked against GRAPH_ATTR_SCHEMA; a missing one (without ``default``), a string or
    another value is an IRError naming the key. Graphs can change after the verifier ran: readers
    of these attributes (the simulator, the targets) take them through here."""
    if key not in GRAPH_ATTR_SCHEMA:
        raise KeyError(f"{key!r} is not a numeric graph attribute (see GRAPH_ATTR_SCHEMA)")
    value = graph.attrs.get(key, default)
    _check_graph_attr(key, value)
    return value.item() if isinstance(value, (np.integer, np.floating)) else value


def check_shape(shape: Shape, what: str) -> None:
    """An op's per-sample output shape: positive dimensions, within the neuron budget."""
    if any(d < 1 for d in shape):
        raise IRError(f"{what}: shape {list(shape)} has a dimension below 1")
    limits.check("neurons", math.prod(shape), what)


class _Node:
    """One op of a graph: the op, its ordered inputs, its per-sample shape, its insertion number."""

    __slots__ = ("op", "inputs", "shape", "index")

    def __init__(self, op: Op, inputs: list[str], shape: Shape, index: int) -> None:
        self.op, self.inputs, self.shape, self.index = op, inputs, shape, index


class Graph:
    """A dataflow graph of ops.

    Nodes are op ids; each node holds its ``op``, its ordered ``inputs`` and its per-sample
    output ``shape``. Every op knows its users, so queries cost O(1) or O(degree), and the
    topological order is computed once per structural change: graphs of 100,000 ops stay fast.
    ``nx`` gives a networkx view for analysis. Tensors live in ``tensors`` keyed by name and
    are never mutated in place: passes store new arrays.
    """

    def __init__(self, attrs: Optional[dict[str, Any]] = None) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._nodes: dict[str, _Node] = {}  # in insertion order
        self._users: dict[str, dict[str, int]] = {}  # op -> {user: number of ports it feeds}
        self._counter = 0  # the next insertion number
        self._suffix: dict[str, int] = {}  # base id -> the first suffix unique_id may hand out
        self._topo: Optional[list[str]] = None  # cached topological order

    # ------------------------------------------------------------------ building
    def unique_id(self, base: str) -> str:
        """``base`` (sanitized) if free, else the first free ``base_2``, ``base_3``, ...

        ``_suffix[base]`` = n means ``base_2`` .. ``base_{n-1}`` are all taken, so probing starts at n.
        """
        base = sanitize_id(base)
        if base not in self._nodes:
            return base
        n = self._suffix.get(base, 2)
        while f"{base}_{n}" in self._nodes:
            n += 1
        self._suffix[base] = n
        return f"{base}_{n}"

    def add(self, node_id: str, op: Op, inputs: Iterable[str] = (), shape: Optional[Shape] = None) -> str:
        """Add an op; its shape is inferred when not given. Returns the id."""
        if not isinstance(node_id, str) or len(node_id) > MAX_ID or not _ID.match(node_id):
            shown = repr(node_id) if len(repr(node_id)) <= 60 else repr(node_id)[:57] + "..."
            raise IRError(f"bad op id {shown} (letters, digits and _, at most {MAX_ID} characters)")
        if node_id in self._nodes:
            raise IRError(f"duplicate op id %{node_id}")
        limits.check("nodes", len(self._nodes) + 1, f"%{node_id}")
        inputs = list(inputs)
        for i in inputs:
            if i not in self._nodes:
                raise IRError(f"%{node_id} uses undefined %{i}")
        if shape is None:
            shape = self.infer_shape(op, inputs)
        shape = tuple(int(d) for d in shape)
        check_shape(shape, f"%{node_id}")
        self._nodes[node_id] = _Node(op, inputs, shape, self._counter)
        self._users[node_id] = {}
        self._counter += 1
        self._link(node_id)
        self._topo = None
        return node_id

    def _link(self, node_id: str) -> None:
        for src in self._nodes[node_id].inputs:
            users = self._users[src]
            users[node_id] = users.get(node_id, 0) + 1

    def _unlink(self, node_id: str) -> None:
        for src in set(self._nodes[node_id].inputs):
            del self._users[src][node_id]

    def _drop(self, node_id: str) -> None:
        """Remove a node and its edges."""
        self._unlink(node_id)
        for user in self._users.pop(node_id):
            node = self._nodes[user]
            node.inputs = [i for i in node.inputs if i != node_id]
        del self._nodes[node_id]
        self._topo = None
        base, sep, k = node_id.rpartition("_")
        if sep and k.isdigit() and k == str(int(k)) and int(k) < self._suffix.get(base, 2):
            self._suffix[base] = int(k)  # base_k is free again: unique_id hands it out first

    def set_inputs(self, node_id: str, inputs: Iterable[str]) -> None:
        inputs = list(inputs)
        for i in inputs:
            if i not in self._nodes:
                raise IRError(f"%{node_id} uses undefined %{i}")
        self._unlink(node_id)
        self._nodes[node_id].inputs = inputs
        self._link(node_id)
        self._topo = None

    def set_op(self, node_id: str, op: Op, shape: Optional[Shape] = None) -> None:
        """Replace a node's op (keeping its inputs) and re-infer its shape unless given."""
        node = self._nodes[node_id]
        node.op = op
        shape = tuple(shape) if shape is not None else self.infer_shape(op, node.inputs)
        check_shape(shape, f"%{node_id}")
        node.shape = shape

    def remove(self, node_id: str) -> None:
        if self._users[node_id] or node_id in self.outputs:
            raise IRError(f"cannot remove %{node_id}: it is still used")
        self._drop(node_id)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every user of ``old`` (and the graph outputs) use ``new`` instead."""
        for user in list(self._users[old]):
            self.set_inputs(user, [new if i == old else i for i in self._nodes[user].inputs])
        self.outputs = [new if o == old else o for o in self.outputs]

    def bypass(self, node_id: str) -> None:
        """Remove a single-input op, connecting its users to its input."""
        (src,) = self.inputs(node_id)
        self.replace_uses(node_id, src)
        self.remove(node_id)

    def ancestors(self, node_ids: Iterable[str]) -> set[str]:
        """``node_ids`` and every op they depend on."""
        seen = set(node_ids)
        stack = list(seen)
        while stack:
            for i in self._nodes[stack.pop()].inputs:
                if i not in seen:
                    seen.add(i)
                    stack.append(i)
        return seen

    def remove_dead(self) -> None:
        """Drop ops nothing depends on (outputs and inputs are kept)."""
        live = self.ancestors(o for o in self.outputs if o in self._nodes)
        for node_id in reversed(list(self._nodes)):  # users before the ops they use
            if node_id not in live and self.op(node_id).OPNAME not in ("ann.input", "snn.source"):
                self._drop(node_id)
        self.prune_tensors()

    def prune_tensors(self) -> None:
        used = {ref.name for node in self._nodes.values() for ref in node.op.tensor_refs().values()}
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    # ------------------------------------------------------------------ tensors
    def unique_tensor_name(self, name: str) -> str:
        """``name``, or ``name_1``, ``name_2``... the first that names no tensor yet."""
        if name not in self.tensors:
            return name
        i = 1
        while f"{name}_{i}" in self.tensors:
            i += 1
        return f"{name}_{i}"

    def add_tensor(self, name: str, value: Any) -> TensorRef:
        """Store a tensor under ``name`` (replacing it) and return a reference."""
        if not isinstance(name, str) or len(name) > MAX_ID or not _TENSOR_NAME.match(name):
            shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
            raise IRError(f"bad tensor name {shown}")
        self.tensors[name] = np.asarray(value)
        return TensorRef(name)

    def tensor(self, ref: TensorRef) -> np.ndarray:
        try:
            return self.tensors[ref.name]
        except KeyError:
            raise IRError(f"missing tensor @{ref.name}") from None

    def tensor_shape(self, ref: TensorRef) -> Shape:
        return tuple(self.tensor(ref).shape)

    # ------------------------------------------------------------------ queries
    def op(self, node_id: str) -> Op:
        return self._nodes[node_id].op

    def inputs(self, node_id: str) -> list[str]:
        return list(self._nodes[node_id].inputs)

    def shape(self, node_id: str) -> Shape:
        return self._nodes[node_id].shape

    def users(self, node_id: str) -> list[str]:
        """The ops that take ``node_id`` as an input, in insertion order (O(degree))."""
        nodes = self._nodes
        return sorted(self._users[node_id], key=lambda n: nodes[n].index)

    def infer_shape(self, op: Op, inputs: list[str]) -> Shape:
        if op.ARITY is not None and len(inputs) != op.ARITY:
            op.fail(f"takes {op.ARITY} input(s), got {len(inputs)}")
        if op.ARITY is None and not inputs:
            op.fail("takes one or more inputs, got none")
        nodes = self._nodes
        return tuple(op.infer([nodes[i].shape for i in inputs], self.tensor_shape))

    def topo(self) -> list[str]:
        """Op ids in a deterministic topological order (ties broken by insertion order).

        Computed once per change of the structure (O(n log n)) and cached; callers get a copy.
        """
        if self._topo is None:
            order = self._kahn()
            if len(order) != len(self._nodes):
                raise IRError(f"graph has a cycle through %{self.cycle_node(order)}")
            self._topo = order
        return list(self._topo)

    def _kahn(self) -> list[str]:
        """Kahn's algorithm taking the ready op inserted first: the order as far as it goes."""
        nodes = self._nodes
        missing = {n: len(set(node.inputs)) for n, node in nodes.items()}
        ready = [(node.index, n) for n, node in nodes.items() if not missing[n]]
        order: list[str] = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for user in self._users[n]:
                missing[user] -= 1
                if not missing[user]:
                    heapq.heappush(ready, (nodes[user].index, user))
        return order

    def is_acyclic(self) -> bool:
        return self._topo is not None or len(self._kahn()) == len(self._nodes)

    def cycle_node(self, order: Optional[list[str]] = None) -> str:
        """An op on a cycle (the graph must have one)."""
        done = set(self._kahn() if order is None else order)
        node = next(n for n in self._nodes if n not in done)
        seen: set[str] = set()
        while node not in seen:  # every op left over has an input that is left over too
            seen.add(node)
            node = next(i for i in self._nodes[node].inputs if i not in done)
        return node

    def ops_of(self, opname: str) -> list[str]:
        return [n for n in self.topo() if self.op(n).OPNAME == opname]

    def __iter__(self) -> Iterator[str]:
        """Op ids in insertion order."""
        return iter(list(self._nodes))

    @property
    def nx(self) -> nx.DiGraph:
        """A networkx copy of the structure (edge attribute ``ports``), for analysis."""
        g = nx.DiGraph()
        for n, node in self._nodes.items():
            g.add_node(n, op=node.op, inputs=list(node.inputs), shape=node.shape)
        for n, node in self._nodes.items():
            for port, src in enumerate(node.inputs):
                if g.has_edge(src, n):
                    g.edges[src, n]["ports"].append(port)
                else:
                    g.add_edge(src, n, ports=[port])
        return g

    @property
    def dialect(self) -> str:
        dialects = {node.op.dialect for node in self._nodes.values()}
        return dialects.pop() if len(dialects) == 1 else "+".join(sorted(dialects)) or "empty"

    def copy(self) -> Graph:
        """A copy whose structure and ops may be changed freely (tensor arrays are shared)."""
        g = Graph(copy.deepcopy(self.attrs))
        g._nodes = {n: _Node(v.op.clone(), list(v.inputs), v.shape, v.index) for n, v in self._nodes.items()}
        g._users = {n: dict(u) for n, u in self._users.items()}
        g._counter, g._suffix, g._topo = self._counter, dict(self._suffix), self._topo
        g.tensors = dict(self.tensors)
        g.outputs = list(self.outputs)
        return g

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes
