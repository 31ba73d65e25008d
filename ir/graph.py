"""The graph: ops on a networkx DiGraph, ordered inputs, a tensor store and graph attributes."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any, Optional

import networkx as nx
import numpy as np

from .ops import IRError, Op, Shape, TensorRef

_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Graph attributes every snn graph carries, with their defaults (times in ms).
SNN_GRAPH_ATTRS: dict[str, Any] = {"dt": 1.0, "presentation_time": 100.0, "instances": 1}


def sanitize_id(name: str) -> str:
    """A valid op id (``[A-Za-z_][A-Za-z0-9_]*``) derived from an arbitrary model name."""
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not text or text[0].isdigit():
        text = "n" + (f"_{text}" if text else "")
    return text


class Graph:
    """A dataflow graph of ops.

    Nodes are op ids; each node holds its ``op``, its ordered ``inputs`` and its per-sample
    output ``shape``. Edges mirror the inputs (edge attribute ``ports``) so networkx
    algorithms apply. Tensors live in ``tensors`` keyed by name and are never mutated in
    place: passes store new arrays.
    """

    def __init__(self, attrs: Optional[dict[str, Any]] = None) -> None:
        self.nx = nx.DiGraph()
        self.tensors: dict[str, np.ndarray] = {}
        self.outputs: list[str] = []
        self.attrs: dict[str, Any] = dict(attrs or {})

    # ------------------------------------------------------------------ building
    def unique_id(self, base: str) -> str:
        base = sanitize_id(base)
        candidate, n = base, 2
        while candidate in self.nx:
            candidate, n = f"{base}_{n}", n + 1
        return candidate

    def add(self, node_id: str, op: Op, inputs: Iterable[str] = (), shape: Optional[Shape] = None) -> str:
        """Add an op; its shape is inferred when not given. Returns the id."""
        if not _ID.match(node_id):
            raise IRError(f"bad op id {node_id!r}")
        if node_id in self.nx:
            raise IRError(f"duplicate op id %{node_id}")
        inputs = list(inputs)
        for i in inputs:
            if i not in self.nx:
                raise IRError(f"%{node_id} uses undefined %{i}")
        if shape is None:
            shape = self.infer_shape(op, inputs)
        self.nx.add_node(node_id, op=op, inputs=inputs, shape=tuple(int(d) for d in shape))
        self._link(node_id)
        return node_id

    def _link(self, node_id: str) -> None:
        for port, src in enumerate(self.nx.nodes[node_id]["inputs"]):
            if self.nx.has_edge(src, node_id):
                self.nx.edges[src, node_id]["ports"].append(port)
            else:
                self.nx.add_edge(src, node_id, ports=[port])

    def _unlink(self, node_id: str) -> None:
        for src in set(self.nx.nodes[node_id]["inputs"]):
            self.nx.remove_edge(src, node_id)

    def set_inputs(self, node_id: str, inputs: Iterable[str]) -> None:
        self._unlink(node_id)
        self.nx.nodes[node_id]["inputs"] = list(inputs)
        self._link(node_id)

    def set_op(self, node_id: str, op: Op, shape: Optional[Shape] = None) -> None:
        """Replace a node's op (keeping its inputs) and re-infer its shape unless given."""
        node = self.nx.nodes[node_id]
        node["op"] = op
        node["shape"] = tuple(shape) if shape is not None else self.infer_shape(op, node["inputs"])

    def remove(self, node_id: str) -> None:
        if list(self.nx.successors(node_id)) or node_id in self.outputs:
            raise IRError(f"cannot remove %{node_id}: it is still used")
        self.nx.remove_node(node_id)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every user of ``old`` (and the graph outputs) use ``new`` instead."""
        for user in list(self.nx.successors(old)):
            self.set_inputs(user, [new if i == old else i for i in self.inputs(user)])
        self.outputs = [new if o == old else o for o in self.outputs]

    def bypass(self, node_id: str) -> None:
        """Remove a single-input op, connecting its users to its input."""
        (src,) = self.inputs(node_id)
        self.replace_uses(node_id, src)
        self.remove(node_id)

    def remove_dead(self) -> None:
        """Drop ops nothing depends on (outputs and inputs are kept)."""
        live = set(self.outputs)
        for o in self.outputs:
            live |= nx.ancestors(self.nx, o)
        for node_id in list(self.nx):
            if node_id not in live and self.op(node_id).OPNAME not in ("ann.input", "snn.source"):
                self.nx.remove_node(node_id)
        self.prune_tensors()

    def prune_tensors(self) -> None:
        used = {ref.name for n in self.nx for ref in self.op(n).tensor_refs().values()}
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    # ------------------------------------------------------------------ tensors
    def add_tensor(self, name: str, value: Any) -> TensorRef:
        """Store a tensor under ``name`` (replacing it) and return a reference."""
        if not re.match(r"[A-Za-z_][A-Za-z0-9_.]*\Z", name):
            raise IRError(f"bad tensor name {name!r}")
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
        return self.nx.nodes[node_id]["op"]

    def inputs(self, node_id: str) -> list[str]:
        return list(self.nx.nodes[node_id]["inputs"])

    def shape(self, node_id: str) -> Shape:
        return self.nx.nodes[node_id]["shape"]

    def users(self, node_id: str) -> list[str]:
        return sorted(self.nx.successors(node_id), key=self._order().__getitem__)

    def infer_shape(self, op: Op, inputs: list[str]) -> Shape:
        if op.ARITY is not None and len(inputs) != op.ARITY:
            op.fail(f"takes {op.ARITY} input(s), got {len(inputs)}")
        if op.ARITY is None and not inputs:
            op.fail("takes one or more inputs, got none")
        return tuple(op.infer([self.shape(i) for i in inputs], self.tensor_shape))

    def _order(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.nx)}

    def topo(self) -> list[str]:
        """Op ids in a deterministic topological order (ties broken by insertion order)."""
        order = self._order()
        return list(nx.lexicographical_topological_sort(self.nx, key=order.__getitem__))

    def ops_of(self, opname: str) -> list[str]:
        return [n for n in self.topo() if self.op(n).OPNAME == opname]

    @property
    def dialect(self) -> str:
        dialects = {self.op(n).dialect for n in self.nx}
        return dialects.pop() if len(dialects) == 1 else "+".join(sorted(dialects)) or "empty"

    def copy(self) -> Graph:
        """A copy whose structure and ops may be changed freely (tensor arrays are shared)."""
        g = Graph(copy.deepcopy(self.attrs))
        g.nx = self.nx.copy()
        for n in g.nx:
            node = g.nx.nodes[n]
            node["op"] = copy.copy(node["op"])
            node["inputs"] = list(node["inputs"])
        for _, _, data in g.nx.edges(data=True):
            data["ports"] = list(data["ports"])
        g.tensors = dict(self.tensors)
        g.outputs = list(self.outputs)
        return g

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.nx
