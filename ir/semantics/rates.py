"""Rate ("analog") evaluation of an snn graph: what the spike rates approximate.

A source's value is ``x * gain`` and projections read it times the encoding's rate factor
(1 per ms for current input). A population's rate (spikes per ms) is
``relu(sum of W @ rate_pre + drive) / v_threshold`` with drive = ``i_offset``, or
``bias * v_threshold`` before ``bias-to-current``. A membrane readout's population is linear.
On a freshly lowered graph this reproduces the ANN's activations exactly.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import projection_matrix


def _matrices(graph: Graph) -> dict[str, Any]:
    mats = {}
    for proj_id in graph.ops_of("snn.projection"):
        op = graph.op(proj_id)
        dense = op.connectivity == "dense"
        mats[proj_id] = graph.tensor(op.weight) if dense else projection_matrix(graph, proj_id)  # (post, pre)
    return mats


def membrane_populations(graph: Graph) -> set[str]:
    """Populations read out as membrane potentials (they never spike)."""
    return {graph.inputs(r)[0] for r in graph.ops_of("snn.readout") if graph.op(r).mode == "membrane"}


def drive(graph: Graph, pop_id: str) -> Optional[np.ndarray]:
    """Constant input per ms of a population (i_offset, or bias in threshold units)."""
    op = graph.op(pop_id)
    if op.i_offset is not None:
        return graph.tensor(op.i_offset)
    if op.bias is not None:
        return graph.tensor(op.bias) * op.v_threshold
    return None


def rates(graph: Graph, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """(N, n) rate of every source and population for inputs ``x`` (N, *source shape)."""
    mats = _matrices(graph)
    linear = membrane_populations(graph)
    (src_id,) = graph.ops_of("snn.source")
    order = [n for n in graph.topo() if graph.op(n).OPNAME in ("snn.source", "snn.population")]
    out: dict[str, list[np.ndarray]] = {n: [] for n in order}
    x = np.asarray(x, dtype=np.float32)
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        values: dict[str, np.ndarray] = {}
        for node_id in order:
            op = graph.op(node_id)
            if isinstance(op, ir.Source):
                values[node_id] = chunk.reshape(len(chunk), -1) * op.gain
                continue
            u = np.zeros((len(chunk), math.prod(graph.shape(node_id))), np.float32)
            for proj_id in graph.inputs(node_id):
                (pre,) = graph.inputs(proj_id)
                pre_value = values[pre]
                pre_op = graph.op(pre)
                if isinstance(pre_op, ir.Source):
                    pre_value = pre_value * pre_op.rate_per_ms
                u += np.asarray(mats[proj_id] @ pre_value.T).T
            d = drive(graph, node_id)
            if d is not None:
                u += d
            values[node_id] = (u if node_id in linear else np.maximum(u, 0)) / op.v_threshold
        for n in order:
            out[n].append(values[n].astype(np.float32, copy=False))
    return {n: np.concatenate(v) for n, v in out.items()}


def readout_scores(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Rates of the first readout's population: its argmax is the rate model's prediction."""
    pop = graph.inputs(graph.outputs[0])[0]
    return rates(graph, x)[pop]
