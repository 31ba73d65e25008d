"""NIR graphs (the ``nir`` package, ``.nir`` files) to snn-dialect graphs.

NIR leaves time step and reset mode open; graphs written by snnc (target ``nir``) carry them in
the metadata under ``snnc.*`` keys. A bias of an Affine or Conv2d node becomes its population's
``i_offset``; SumPool2d and AvgPool2d (with an optional Scale after them) become pool
projections; a dense layer after another synapse node is composed into one dense projection.

Reading is for untrusted files: :func:`read_nir_file` checks the HDF5 file before nir reads it,
and :func:`from_nir` checks edges, node parameters (numbers, finite, positive where NIR means
sizes, times, resistances or thresholds) and the ``snnc.*`` metadata, naming the node or key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Union

import numpy as np

from snnc.ir import Graph, IRError, limits
from snnc.ir import ops as ir
from snnc.ir.errors import SnncError
from snnc.ir.graph import METADATA_PREFIX as META
from snnc.ir.graph import SNN_GRAPH_ATTRS
from snnc.ir.semantics.connectivity import projection_matrix

from .builder import FrontendError
from .hdf5_guard import one_line, open_hdf5

MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError, OverflowError)
POSITIVE = ("r", "v_threshold", "tau", "stride", "kernel_size", "dilation", "groups")  # NIR fields > 0
NON_NEGATIVE = ("padding",)
RESETS = ("zero", "subtract", "mixed")


def read_nir_file(path: Union[str, Path]) -> Graph:
    """The snn-dialect graph of a ``.nir`` file. The file is opened once and checked by
    :func:`snnc.frontends.hdf5_guard.check_hdf5` (no other file is read, sizes stay in the budget)
    before nir's own reader (``hdf2dict``, as ``nir.read`` uses) reads it."""
    import nir
    from nir.serialization import hdf2dict

    source = str(path)
    with open_hdf5(source, source) as h5:
        try:
            nir_graph = nir.dict2NIRNode(hdf2dict(h5["node"]))
        except Exception as exc:  # noqa: BLE001 - nir's reader and node classes raise many kinds
            raise FrontendError(f"{source}: not a readable NIR file ({one_line(exc)})") from None
    return from_nir(nir_graph, source)


def from_nir(nir_graph: Any, source: str = "<nir graph>") -> Graph:
    """An snn-dialect graph from a NIR graph (Input, Affine, Linear, Conv2d, SumPool2d, AvgPool2d,
    Scale, Flatten, IF, LIF, Output). Its weights are taken as they are: no normalization.
    Structure, parameters and ``snnc.*`` metadata are checked; a bad one is named in one line."""
    import networkx as nx
    import nir

    if not isinstance(nir_graph, nir.NIRGraph) or not isinstance(nir_graph.nodes, dict):
        raise IRError(f"{source}: not a NIR graph ({type(nir_graph).__name__})")
    limits.check("nodes", len(nir_graph.nodes), source)
    known = (
        nir.Input,
        nir.Output,
        nir.Flatten,
        nir.Affine,
        nir.Linear,
        nir.Conv2d,
        nir.SumPool2d,
        nir.AvgPool2d,
        nir.Scale,
        nir.IF,
        nir.LIF,
    )
    unknown = [f"{type(n).__name__} ({k!r})" for k, n in nir_graph.nodes.items() if not isinstance(n, known)]
    if unknown:
        raise IRError(f"{source}: unsupported NIR nodes: {', '.join(unknown)}")
    meta = _metadata(nir_graph.metadata, source)
    defaults = {key: meta.get(key, SNN_GRAPH_ATTRS[key]) for key in ("dt", "presentation_time")}
    graph = Graph({**defaults, "instances": 1, "normalized": True})
    order = nx.DiGraph(_edges(nir_graph, source))
    order.add_nodes_from(nir_graph.nodes)
    try:
        sequence = list(nx.lexicographical_topological_sort(order))
    except nx.NetworkXUnfeasible:
        raise IRError(f"{source}: the NIR edges form a cycle") from None
    state = {"ids": {}, "pending": {}, "meta": meta}  # NIR node -> snn op id / projection specs waiting
    for name in sequence:
        node = nir_graph.nodes[name]

        def fail(message: str, node=node, name=name) -> IRError:
            return IRError(f"{source}: NIR node {name!r} ({type(node).__name__}): {message}")

        try:
            _check_node(node, fail)
            _convert(graph, name, node, list(order.predecessors(name)), state, fail)
        except SnncError as exc:
            raise exc if str(exc).startswith(source) else fail(str(exc)) from None
        except MALFORMED as exc:
            raise fail(f"malformed ({one_line(exc)})") from None
    if not graph.outputs:
        raise IRError(f"{source}: the NIR graph has no Output node")
    return graph


def _convert(graph: Graph, name: str, node: Any, inputs: list[str], state: dict, fail) -> None:
    """Add what the NIR node ``name`` becomes to ``graph``."""
    import nir

    ids, pending, meta = state["ids"], state["pending"], state["meta"]
    op_id = graph.unique_id(name)
    if isinstance(node, nir.Input):
        if inputs:
            raise fail("an Input takes no incoming edges")
        shape = _shape(node.input_type, "input", fail)
        limits.check("neurons", math.prod(shape), "input shape")
        ids[name] = graph.add(op_id, ir.Source(shape=shape))
        return
    if isinstance(node, (nir.IF, nir.LIF)):
        specs = [s for i in inputs for s in pending.get(i, [])]
        ids[name] = _population(graph, op_id, node, specs, meta.get("reset", "zero"), meta.get("delay", 0.0), fail)
        return
    if len(inputs) != 1:
        raise fail(f"expects one input, got {len(inputs)}")
    (pre,) = inputs
    if isinstance(node, nir.Output):
        if pre not in ids:
            raise fail("an Output must read a population or an input")
        graph.outputs.append(graph.add(op_id, ir.Readout(), [ids[pre]]))
    elif isinstance(node, nir.Flatten):  # populations are flat; projections read them as they need
        if pre in ids:
            ids[name] = ids[pre]
        elif pre in pending:
            pending[name] = pending[pre]
        else:
            raise fail("a Flatten must read a population, an input or a synapse node")
    elif isinstance(node, (nir.Affine, nir.Linear)) and pre in pending:
        pending[name] = [_compose(graph, s, node) for s in pending[pre]]
    else:
        pending[name] = _incoming(graph, node, inputs, ids, pending, fail)


def _number(value: Any, what: str) -> float:
    """A finite real number (a Python or NumPy scalar or 0-d array), not a bool or a string."""
    array = np.asarray(value) if not isinstance(value, (str, bytes, bool)) else None
    if array is None or array.shape != () or array.dtype.kind not in "iuf":
        raise IRError(f"{what} must be a number, got {value!r}"[:300])
    number = float(array)
    if not math.isfinite(number):
        raise IRError(f"{what} must be finite, got {number}")
    return number


def _metadata(metadata: Any, source: str) -> dict[str, Any]:
    """The ``snnc.*`` metadata NIR graphs written by snnc carry: dt and presentation_time (> 0),
    delay (>= 0), reset (zero, subtract or mixed); others are ignored."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise IRError(f"{source}: NIR metadata must be a mapping, got {type(metadata).__name__}")
    meta: dict[str, Any] = {}
    for key in ("dt", "presentation_time", "delay"):
        if f"{META}.{key}" in metadata:
            meta[key] = _number(metadata[f"{META}.{key}"], f"{source}: metadata {META}.{key}")
            if meta[key] < 0 or (meta[key] == 0 and key != "delay"):
                raise IRError(
                    f"{source}: metadata {META}.{key} must be {'>= 0' if key == 'delay' else '> 0'}, got {meta[key]}"
                )
    if f"{META}.reset" in metadata:
        reset = metadata[f"{META}.reset"]
        if not isinstance(reset, str) or reset not in RESETS:
            raise IRError(f"{source}: metadata {META}.reset must be one of {list(RESETS)}, got {reset!r}"[:300])
        meta["reset"] = reset
    return meta


def _edges(nir_graph: Any, source: str) -> list[tuple[str, str]]:
    """The edges as (str, str) pairs between nodes of the graph."""
    edges = nir_graph.edges
    if not isinstance(edges, (list, tuple)):
        raise IRError(f"{source}: NIR edges must be a list of pairs")
    out = []
    for edge in edges:
        if not isinstance(edge, (list, tuple)) or len(edge) != 2 or not all(isinstance(e, str) for e in edge):
            raise IRError(f"{source}: NIR edge {edge!r} is not a pair of node names"[:300])
        missing = [e for e in edge if e not in nir_graph.nodes]
        if missing:
            raise IRError(f"{source}: NIR edge {tuple(edge)!r} names no node {missing[0]!r}"[:300])
        out.append((edge[0], edge[1]))
    return out


def _check_node(node: Any, fail) -> None:
    """Every numeric parameter of ``node`` holds finite numbers; sizes, times and thresholds are positive."""
    import dataclasses

    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name in ("metadata", "input_type", "output_type") or value is None or isinstance(value, str):
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise fail(f"{f.name} must hold numbers, got {array.dtype}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise fail(f"{f.name} holds NaN or infinite values")
        if f.name in POSITIVE and not np.all(array > 0):
            raise fail(f"{f.name} must be positive")
        if f.name in NON_NEGATIVE and not np.all(array >= 0):
            raise fail(f"{f.name} must not be negative")


def _shape(types: Any, key: str, fail) -> tuple[int, ...]:
    """A positive integer shape from a NIR ``input_type``/``output_type`` mapping."""
    shape = np.asarray(types.get(key) if isinstance(types, dict) else None)
    if shape.ndim != 1 or shape.size == 0 or shape.dtype.kind not in "iu" or not np.all(shape >= 1):
        raise fail(f"{key} shape must be positive integers, got {shape.tolist()!r}"[:300])
    return tuple(int(d) for d in shape)


def _compose(graph: Graph, spec: dict, node: Any) -> dict:
    """A dense layer after another synapse node (e.g. SumPool2d -> Flatten -> Affine, as Sinabs
    writes) as one dense projection: W @ (the first node's connection matrix)."""
    probe = Graph({"dt": 1.0})
    probe.add("pre", ir.Source(shape=graph.shape(spec["pre"])))
    fields = {
        k: spec[k] for k in ("connectivity", "strides", "pads", "dilations", "groups", "kernel", "scale") if k in spec
    }
    if "weight" in spec:
        fields["weight"] = probe.add_tensor("p.weight", spec["weight"])
    probe.add("p", ir.Projection(**fields), ["pre"])
    limits.check_array((math.prod(probe.shape("p")), math.prod(probe.shape("pre"))), 4, "the composed dense matrix")
    weight = np.asarray(node.weight, np.float32) @ projection_matrix(probe, "p").toarray()
    bias = np.asarray(getattr(node, "bias", np.zeros(len(weight))), np.float32)
    if spec.get("bias") is not None or spec.get("channel_bias") is not None:
        inner = spec.get("bias")
        if inner is None:
            inner = np.repeat(spec["channel_bias"], weight.shape[1] // len(spec["channel_bias"]))
        bias = bias + np.asarray(node.weight, np.float32) @ np.asarray(inner, np.float32)
    return {"pre": spec["pre"], "connectivity": "dense", "weight": weight.astype(np.float32), "bias": bias}


def _incoming(graph: Graph, node: Any, inputs: list[str], ids: dict, pending: dict, fail) -> list[dict]:
    """Projection specs a synapse-like NIR node contributes to the population it feeds."""
    import nir

    if len(inputs) != 1:
        raise fail(f"expects one input, got {len(inputs)}")
    (pre,) = inputs
    if isinstance(node, nir.Scale):
        specs = pending.get(pre)
        if not specs:
            raise fail("Scale is supported only after a pooling or synapse node")
        factor = np.asarray(node.scale, np.float32).reshape(-1)
        scaled = []
        for s in specs:
            if "weight" in s:  # one factor per output unit or channel
                n_out = s["weight"].shape[0]
                per_out = factor if factor.size in (1, n_out) else factor[:: factor.size // n_out]
                shape = (-1,) + (1,) * (s["weight"].ndim - 1)
                scaled.append({**s, "weight": s["weight"] * per_out.reshape(shape)})
            elif np.all(factor == factor[0]):
                scaled.append({**s, "scale": s["scale"] * float(factor[0])})
            else:
                raise fail("a Scale that differs between neurons after pooling is not supported")
        return scaled
    if pre not in ids:
        raise fail("synapses must read a population or an input")
    if isinstance(node, (nir.Affine, nir.Linear)):
        bias = getattr(node, "bias", None)
        shape, n_pre = np.shape(node.weight), math.prod(graph.shape(ids[pre]))
        if len(shape) != 2 or shape[1] != n_pre or (bias is not None and np.shape(bias) != shape[:1]):
            raise fail(f"weight {list(shape)} and bias {list(np.shape(bias))} do not fit {n_pre} inputs")
        return [{"pre": ids[pre], "connectivity": "dense", "weight": np.asarray(node.weight, np.float32), "bias": bias}]
    if isinstance(node, nir.Conv2d):
        pad = (node.padding, node.padding) if isinstance(node.padding, (int, np.integer)) else tuple(node.padding)
        if isinstance(node.padding, str):
            raise fail(f"padding {node.padding!r}: give numbers")
        pads = (int(pad[0]), int(pad[1]), int(pad[0]), int(pad[1]))
        return [
            {
                "pre": ids[pre],
                "connectivity": "conv",
                "weight": np.asarray(node.weight, np.float32),
                "strides": tuple(np.broadcast_to(node.stride, 2).tolist()),
                "pads": pads,
                "dilations": tuple(np.broadcast_to(node.dilation, 2).tolist()),
                "groups": int(node.groups),
                "channel_bias": np.asarray(node.bias, np.float32),
            }
        ]
    kernel = tuple(np.broadcast_to(node.kernel_size, 2).tolist())
    pad = tuple(np.broadcast_to(node.padding, 2).tolist())
    scale = 1.0 / (kernel[0] * kernel[1]) if isinstance(node, nir.AvgPool2d) else 1.0
    return [
        {
            "pre": ids[pre],
            "connectivity": "pool",
            "kernel": kernel,
            "scale": scale,
            "strides": tuple(np.broadcast_to(node.stride, 2).tolist()),
            "pads": (*pad, *pad),
        }
    ]


def _population(graph: Graph, op_id: str, node: Any, specs: list[dict], reset: str, delay: float, fail) -> str:
    import nir

    if not specs:
        raise fail("a population needs incoming synapses")
    threshold = np.unique(np.asarray(node.v_threshold)) / np.unique(np.asarray(node.r))
    if threshold.size != 1:
        raise fail("thresholds and resistances must be the same for all neurons")
    tau_m = math.inf
    if isinstance(node, nir.LIF):
        if np.any(np.asarray(node.v_leak) != 0):
            raise fail("a non-zero leak potential is not supported")
        tau_m = float(np.mean(node.tau))
    v_reset = getattr(node, "v_reset", None)  # absent before nir 1.0.5
    v_reset = float(np.asarray(v_reset if v_reset is not None else 0.0).reshape(-1)[0])
    proj_ids, drive = [], None
    for i, spec in enumerate(specs):
        proj_id = graph.unique_id(f"{op_id}_in{i}")
        fields = {
            k: spec[k]
            for k in ("connectivity", "strides", "pads", "dilations", "groups", "kernel", "scale")
            if k in spec
        }
        if "weight" in spec:
            fields["weight"] = graph.add_tensor(f"{proj_id}.weight", spec["weight"])
        fields["delay"] = 0.0 if graph.op(spec["pre"]).OPNAME == "snn.source" else delay
        graph.add(proj_id, ir.Projection(**fields), [spec["pre"]])
        proj_ids.append(proj_id)
        n = math.prod(graph.shape(proj_id))
        bias = spec.get("bias")
        if spec.get("channel_bias") is not None:
            bias = np.repeat(spec["channel_bias"], n // len(spec["channel_bias"]))
        if bias is not None and np.any(bias):
            drive = (0 if drive is None else drive) + np.asarray(bias, np.float32).reshape(-1)
    params = {
        "v_threshold": float(threshold[0]),
        "v_reset": float(v_reset),
        "tau_m": tau_m,
        "reset": "subtract" if reset == "subtract" else "zero",
    }
    if drive is not None:
        params["i_offset"] = graph.add_tensor(f"{op_id}.i_offset", drive.astype(np.float32))
    return graph.add(op_id, ir.Population(**params), proj_ids)
