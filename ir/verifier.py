"""The verifier: structural and type rules every graph must satisfy after every pass."""

from __future__ import annotations

import numpy as np

from . import limits
from .graph import Graph, check_graph_attrs, check_shape
from .ops import IRError, Mac

# snn ops and the op kinds each may take as inputs.
_SNN_INPUTS = {
    "snn.projection": {"snn.population", "snn.source"},
    "snn.population": {"snn.projection"},
    "snn.readout": {"snn.population"},
    "snn.source": set(),
}


def verify(graph: Graph, emitting: bool = False, dialect: str = "snn") -> None:
    """Raise IRError with a message naming the op if ``graph`` breaks a rule. ``emitting``: the
    graph is about to reach a target (emitted, run or simulated), so it must be a complete graph
    of the target's ``dialect`` that it takes as it is: in an snn graph no population keeps a
    bias (targets take currents); an ann graph (brainscales2) has its layers as ``ann.mac``."""
    check_graph_attrs(graph.attrs)
    limits.check("nodes", len(graph), "graph")
    if not graph.is_acyclic():
        raise IRError(f"graph has a cycle through %{graph.cycle_node()}")
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
    if emitting:
        _verify_emittable(graph, dialect)


def _verify_emittable(graph: Graph, dialect: str) -> None:
    if dialect == "ann":
        if graph.dialect != "ann" or not graph.ops_of("ann.mac"):
            raise IRError(
                f"the target takes an ann graph with ann.mac layers (quantize-mac), not an {graph.dialect} graph"
            )
        for node_id in graph.ops_of("ann.dense") + graph.ops_of("ann.conv2d"):
            raise IRError(f"%{node_id} is still a float layer: run quantize-mac before this target takes the graph")
        return
    if graph.dialect != "snn":
        raise IRError(f"a target takes an snn graph, not an {graph.dialect} graph: lower it first (lower-to-snn)")
    for node_id in graph.ops_of("snn.population"):
        if graph.op(node_id).bias is not None:
            raise IRError(f"%{node_id} still has a bias: run bias-to-current or remove-bias before a target takes it")


def _verify_node(graph: Graph, node_id: str) -> None:
    op = graph.op(node_id)
    op.validate()  # passes may have assigned attributes directly
    inputs = graph.inputs(node_id)
    if any(node_id not in graph._users.get(i, ()) for i in inputs):
        raise IRError("edges do not match the op's inputs")
    for ref in op.tensor_refs().values():
        array = graph.tensor(ref)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise IRError(f"tensor @{ref.name} holds non-finite values")
    if op.OPNAME == "ann.mac":
        _verify_mac_tensors(graph, op)
    inferred = graph.infer_shape(op, inputs)
    check_shape(inferred, f"%{node_id}")
    if inferred != graph.shape(node_id):
        raise IRError(f"shape {list(graph.shape(node_id))} but inputs give {list(inferred)}")


# The chip's integer ranges (snnc.ir.semantics.mac: weights 6 bit + sign, results and biases int8).
_MAC_RANGES = {"weight": (-63, 63), "bias": (-128, 127)}


def _verify_mac_tensors(graph: Graph, op: Mac) -> None:
    """An ``ann.mac``'s weight and bias hold integers in the chip's ranges."""
    for name, ref in op.tensor_refs().items():
        array, (low, high) = graph.tensor(ref), _MAC_RANGES[name]
        if array.size and (np.any(array != np.round(array)) or array.min() < low or array.max() > high):
            raise IRError(f"{name} @{ref.name} must hold integers {low}..{high} (the chip's range)")


def _verify_snn(graph: Graph) -> None:
    for node_id in graph.topo():
        kind = graph.op(node_id).OPNAME
        for i in graph.inputs(node_id):
            if graph.op(i).OPNAME not in _SNN_INPUTS[kind]:
                raise IRError(f"%{node_id}: {kind} cannot take %{i} ({graph.op(i).OPNAME}) as input")
        if kind == "snn.projection":
            users = graph.users(node_id)
            if len(users) != 1:
                raise IRError(f"%{node_id}: a projection feeds exactly one population, not {len(users)}")
