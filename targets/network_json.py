"""The walk over an snn graph that ``network.json`` targets share: spike sources and IF
populations become cells, a population's projections are listed after it, arrays go by key.

A target supplies what differs: the fields of a population cell (its unit mapping) and of a
projection entry (its synapse form). Cells are numbered in graph order; projections reference
cells by that number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from snnc.ir import Graph, graph_number, limits, write_npz
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import connections
from snnc.targets.base import TargetError, write_network_json

# (node id, op, size, readout mode or None) -> the target's fields of a population cell
PopulationFields = Callable[[str, ir.Population, int, Any], dict[str, Any]]
# (projection id, pre cell, post cell, array key, arrays to add to) -> the projection entry
ProjectionEntry = Callable[[str, int, int, str, dict[str, np.ndarray]], dict[str, Any]]


def describe_network(
    graph: Graph, target: str, population: PopulationFields, projection: ProjectionEntry, offset_dtype: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(network, arrays)``: ``network`` holds dt, presentation_time, input_layout, cells and
    projections; each population's ``i_offset`` is stored as ``offset_dtype`` under its key."""
    arrays: dict[str, np.ndarray] = {}
    nodes = [n for n in graph.topo() if isinstance(graph.op(n), (ir.Source, ir.Population))]
    index = {n: i for i, n in enumerate(nodes)}
    readouts = {graph.inputs(r)[0]: graph.op(r).mode for r in graph.outputs}
    cells: list[dict[str, Any]] = []
    projections: list[dict[str, Any]] = []
    for n in nodes:
        op = graph.op(n)
        size = math.prod(graph.shape(n))
        limits.check("neurons", size, f"%{n}")
        if isinstance(op, ir.Source):
            cells.append(source_cell(n, op, size))
            continue
        if op.model != "if":
            raise TargetError(f"%{n}: neuron model {op.model!r} has no {target} mapping")
        key = f"cell{index[n]}_i_offset"
        arrays[key] = (graph.tensor(op.i_offset) if op.i_offset is not None else np.zeros(size)).astype(offset_dtype)
        cells.append(
            {"id": n, "kind": "population", "size": size, "i_offset": key, **population(n, op, size, readouts.get(n))}
        )
        for proj in graph.inputs(n):
            (pre,) = graph.inputs(proj)
            projections.append(projection(proj, index[pre], index[n], f"proj{len(projections)}", arrays))
    network = {
        "dt": graph_number(graph, "dt"),
        "presentation_time": graph_number(graph, "presentation_time"),
        "cells": cells,
        "projections": projections,
        "input_layout": graph.attrs.get("input_layout", "NCHW"),
    }
    return network, arrays


def source_cell(node: str, op: ir.Source, size: int) -> dict[str, Any]:
    """The cell of a spike source or current input."""
    return {
        "id": node,
        "kind": "source",
        "size": size,
        "shape": list(op.shape),
        "encoding": op.encoding,
        "gain": op.gain,
        "max_rate": op.max_rate,
    }


def write_network(out: Path, network: dict[str, Any], arrays: dict[str, np.ndarray], manifest: dict) -> dict[str, Any]:
    """Write ``network.json`` and ``weights.npz`` into ``out``; return what every target's README
    shows of them (snnc's version, the pipeline, dt, presentation time, neurons)."""
    write_network_json(out / "network.json", network)
    write_npz(out / "weights.npz", arrays)
    return {
        "version": manifest["snnc_version"],
        "pipeline": ",".join(manifest["pipeline"]),
        "dt": network["dt"],
        "presentation_time": network["presentation_time"],
        "neurons": sum(c["size"] for c in network["cells"] if c["kind"] == "population"),
    }


def stored(graph: Graph, proj: str, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """How network.json keeps a projection's synapses (``snnc_runtime.stored_connections`` spells
    them out): a dense layer as its float32 (post, pre) matrix, a convolution as its float32
    kernel and window, a pool as its scale and window, anything else as an int32 (pre, post)
    list with float32 weights."""
    op = graph.op(proj)
    if op.connectivity == "dense":
        arrays[key] = graph.tensor(op.weight).astype(np.float32)
        return {"kind": "dense", "weight": key}
    (pre,) = graph.inputs(proj)
    window = {"pre_shape": list(graph.shape(pre)), "post_shape": list(graph.shape(proj))}
    window |= {"strides": list(op.strides), "pads": list(op.pads)}
    if op.connectivity == "conv":
        arrays[key] = graph.tensor(op.weight).astype(np.float32)
        return {"kind": "conv", "kernel": key, "dilations": list(op.dilations), "groups": op.groups, **window}
    if op.connectivity == "pool":
        return {"kind": "pool", "scale": op.scale, "kernel_size": list(op.kernel), **window}
    c = connections(graph, proj)
    arrays[f"{key}_indices"] = np.stack([c.pre, c.post], axis=1).astype(np.int32)
    arrays[f"{key}_weights"] = c.weight
    return {"kind": "list", "indices": f"{key}_indices", "weights": f"{key}_weights"}
