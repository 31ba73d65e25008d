"""The verifier: structural and type rules every graph must satisfy after every pass."""

from __future__ import annotations

from dataclasses import fields

import networkx as nx
import numpy as np

from .graph import Graph
from .ops import IRError

# snn ops and the op kinds each may take as inputs.
_SNN_INPUTS = {
    "snn.projection": {"snn.population", "snn.source"},
    "snn.population": {"snn.projection"},
    "snn.readout": {"snn.population"},
    "snn.source": set(),
}


def verify(graph: Graph) -> None:
    """Raise IRError with a message naming the op if ``graph`` breaks a rule."""
    if not nx.is_directed_acyclic_graph(graph.nx):
        raise IRError(f"graph has a cycle through %{nx.find_cycle(graph.nx)[0][0]}")
    if graph.dialect not in ("ann", "snn"):
        raise IRError(f"graph mixes dialects ({graph.dialect})")
    if not graph.outputs:
        raise IRError("graph has no outputs")
    for o in graph.outputs:
        if o not in graph:
            raise IRError(f"output %{o} is not an op of the graph")
    for node_id in graph.topo():
        try:
            _verify_node(graph, node_id)
        except IRError as exc:
            raise IRError(f"%{node_id}: {exc}") from None
    if graph.dialect == "snn":
        _verify_snn(graph)


def _verify_node(graph: Graph, node_id: str) -> None:
    op = graph.op(node_id)
    # Re-run construction checks: passes may have assigned attributes directly.
    type(op)(**{f.name: getattr(op, f.name) for f in fields(op)})
    inputs = graph.inputs(node_id)
    preds = set(graph.nx.predecessors(node_id))
    if preds != set(inputs):
        raise IRError("edges do not match the op's inputs")
    for ref in op.tensor_refs().values():
        array = graph.tensor(ref)
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise IRError(f"tensor @{ref.name} holds non-finite values")
    inferred = graph.infer_shape(op, inputs)
    if inferred != graph.shape(node_id):
        raise IRError(f"shape {list(graph.shape(node_id))} but inputs give {list(inferred)}")


def _verify_snn(graph: Graph) -> None:
    for node_id in graph.topo():
        kind = graph.op(node_id).OPNAME
        for i in graph.inputs(node_id):
            if graph.op(i).OPNAME not in _SNN_INPUTS[kind]:
                raise IRError(f"%{node_id}: {kind} cannot take %{i} ({graph.op(i).OPNAME}) as input")
        if kind == "snn.projection":
            users = list(graph.nx.successors(node_id))
            if len(users) != 1:
                raise IRError(f"%{node_id}: a projection feeds exactly one population, not {len(users)}")
