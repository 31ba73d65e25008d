"""NIR graphs (the ``nir`` package, ``.nir`` files) to snn-dialect graphs.

NIR leaves time step and reset mode open; graphs written by snnc (target ``nir``) carry them in
the metadata under ``snnc.*`` keys. Without them, dt is 1 ms and neurons reset as their NIR
version says: nir <= 1.0.4 IF/LIF/CubaLIF (no ``v_reset``) subtract the threshold, later ones
reset to ``v_reset``. Shapes flow from the Input node: other nodes need no ``input_type``.

Linear nodes (Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Scale, Flatten) between two
neuron nodes become one projection into the second: a bias becomes its population's
``i_offset``, pooling then a convolution (as Sinabs writes CNNs) one convolution with a larger,
strided kernel where that is exact, other chains the dense product of their matrices. Neurons:
IF, LIF (no leak potential), CubaLIF where its synaptic current carries nothing into the next
step (``tau_syn`` = dt, or <= dt/13.8), and Threshold after synapses (a stateless neuron: a
population whose membrane forgets everything each step). Anything else is named in one line.

Reading is for untrusted files: :func:`read_nir_file` checks the HDF5 file before nir reads it,
and :func:`from_nir` checks edges, node parameters (numbers, finite, positive where NIR means
sizes, times, resistances or thresholds) and the ``snnc.*`` metadata, naming the node or key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Union

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
POSITIVE = ("r", "v_threshold", "tau", "tau_mem", "tau_syn", "stride", "kernel_size", "dilation", "groups")  # > 0
NON_NEGATIVE = ("padding",)
RESETS = ("zero", "subtract", "mixed")
SPEC_KEYS = ("connectivity", "strides", "pads", "dilations", "groups", "kernel", "scale", "post_shape")
CARRY_LOG = math.log(1e6)  # a CubaLIF maps when exp(-dt / tau_syn) <= 1e-6 of its current outlives a step
THRESHOLD_TAU = 1e-3  # tau_m of a Threshold node's population, in dt: exp(-1000) == 0, nothing carries over


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
    Scale, Flatten, IF, LIF, CubaLIF, Threshold, Output). Its weights are taken as they are: no normalization.
    Structure, parameters and ``snnc.*`` metadata are checked; a bad one is named in one line."""
    import networkx as nx
    import nir

    if not isinstance(nir_graph, nir.NIRGraph) or not isinstance(nir_graph.nodes, dict):
        raise IRError(f"{source}: not a NIR graph ({type(nir_graph).__name__})")
    limits.check("nodes", len(nir_graph.nodes), source)
    known = (nir.Input, nir.Output, nir.Flatten, nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)
    known += (nir.Scale, *_neuron_types())
    unknown = [f"{type(n).__name__} ({k!r})" for k, n in nir_graph.nodes.items() if not isinstance(n, known)]
    if unknown:
        names = ", ".join(t.__name__ for t in known)
        raise IRError(f"{source}: unsupported NIR nodes: {', '.join(unknown)} (snnc maps {names})")
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


def _neuron_types() -> tuple[type, ...]:
    """The NIR node classes that become populations."""
    import nir

    return (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)


def _convert(graph: Graph, name: str, node: Any, inputs: list[str], state: dict, fail) -> None:
    """Add what the NIR node ``name`` becomes to ``graph``: a source, a population, a readout, or
    projection specs waiting in ``pending`` for the population they feed (linear nodes in a row,
    such as SumPool2d -> Conv2d, are composed into one projection)."""
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
    if isinstance(node, _neuron_types()):
        if isinstance(node, nir.Threshold) and any(i not in pending for i in inputs):
            raise fail("a Threshold maps only after synapse nodes (Affine, Linear, Conv2d, pooling, Scale)")
        specs = [s for i in inputs for s in pending.get(i, [])]
        specs += [_identity(graph, ids[i]) for i in inputs if i in ids]  # an edge straight from neurons or input
        ids[name] = _population(graph, op_id, node, specs, meta, fail)
        return
    if len(inputs) != 1:
        raise fail(f"expects one input, got {len(inputs)}")
    (pre,) = inputs
    if isinstance(node, nir.Output):
        if pre not in ids:
            raise fail("an Output must read a population or an input (the graph ends in synapses without neurons)")
        graph.outputs.append(graph.add(op_id, ir.Readout(), [ids[pre]]))
    elif isinstance(node, nir.Flatten):  # populations are flat; projections read them as they need
        if pre in ids:
            ids[name] = ids[pre]
        elif pre in pending:
            pending[name] = pending[pre]
        else:
            raise fail("a Flatten must read a population, an input or a synapse node")
    elif isinstance(node, nir.Scale):
        pending[name] = _scaled(graph, node, pre, ids, pending, fail)
    elif pre in ids:
        pending[name] = [{"pre": ids[pre], **_node_spec(node, graph.shape(ids[pre]), fail)}]
    elif pre in pending:
        pending[name] = [_then(graph, spec, node, fail) for spec in pending[pre]]
    else:
        raise fail("synapses must read a population, an input or another synapse node")


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


def _probe(pre_shape: tuple[int, ...], spec: dict) -> Graph:
    """A one-projection graph ``pre -> p`` holding ``spec``, to infer its shape and read its matrix."""
    probe = Graph({"dt": 1.0})
    probe.add("pre", ir.Source(shape=tuple(pre_shape)))
    fields = {k: spec[k] for k in SPEC_KEYS if k in spec}
    if "weight" in spec:
        fields["weight"] = probe.add_tensor("p.weight", spec["weight"])
    probe.add("p", ir.Projection(**fields), ["pre"])
    return probe


def _identity(graph: Graph, pre: str, scale: float = 1.0) -> dict:
    """A one-to-one projection spec from ``pre`` (each neuron to the same neuron, ``scale`` per spike or unit)."""
    return {"pre": pre, "connectivity": "one_to_one", "scale": scale, "post_shape": graph.shape(pre)}


def _bias(spec: dict, n: int) -> Optional[np.ndarray]:
    """The spec's bias, one value per post neuron (a conv's channel bias repeated), or None."""
    if spec.get("bias") is not None:
        return np.asarray(spec["bias"], np.float32).reshape(-1)
    if spec.get("channel_bias") is not None:
        return np.repeat(np.asarray(spec["channel_bias"], np.float32), n // len(spec["channel_bias"]))
    return None


def _node_spec(node: Any, in_shape: tuple[int, ...], fail) -> dict:
    """The projection spec (without ``pre``) of an Affine, Linear, Conv2d or pooling node reading ``in_shape``."""
    import nir

    if isinstance(node, (nir.Affine, nir.Linear)):
        bias = getattr(node, "bias", None)
        shape, n_pre = np.shape(node.weight), math.prod(in_shape)
        if len(shape) != 2 or shape[1] != n_pre or (bias is not None and np.shape(bias) != shape[:1]):
            raise fail(f"weight {list(shape)} and bias {list(np.shape(bias))} do not fit {n_pre} inputs")
        bias = None if bias is None else np.asarray(bias, np.float32)
        return {"connectivity": "dense", "weight": np.asarray(node.weight, np.float32), "bias": bias}
    if len(in_shape) != 3:
        raise fail(f"a 2-D window needs a (channels, height, width) input, got {list(in_shape)}")
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight, np.float32)
        if weight.ndim != 4 or (node.bias is not None and np.shape(node.bias) != weight.shape[:1]):
            raise fail(f"weight {list(weight.shape)} and bias {list(np.shape(node.bias))} are not a 2-D convolution's")
        dilations = tuple(int(d) for d in np.broadcast_to(node.dilation, 2))
        pads = _conv_pads(node.padding, weight.shape[2:], dilations, node.stride, fail)
        return {
            "connectivity": "conv",
            "weight": weight,
            "strides": tuple(int(s) for s in np.broadcast_to(node.stride, 2)),
            "pads": pads,
            "dilations": dilations,
            "groups": int(node.groups),
            "channel_bias": np.asarray(node.bias, np.float32) if node.bias is not None else None,
        }
    kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, 2))
    pad = tuple(int(p) for p in np.broadcast_to(node.padding, 2))
    return {
        "connectivity": "pool",
        "kernel": kernel,
        "scale": 1.0 / (kernel[0] * kernel[1]) if isinstance(node, nir.AvgPool2d) else 1.0,
        "strides": tuple(int(s) for s in np.broadcast_to(node.stride, 2)),
        "pads": (*pad, *pad),
    }


def _conv_pads(padding: Any, kernel: tuple[int, ...], dilations: tuple[int, ...], stride: Any, fail) -> tuple:
    """(top, left, bottom, right) of a NIR Conv2d padding: numbers per axis, ``valid`` or ``same`` (stride 1,
    as PyTorch pads it: the odd extra row or column at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same" or np.any(np.asarray(stride) != 1):
            raise fail(f"padding {padding!r} (stride {np.asarray(stride).tolist()}): give numbers")
        total = [d * (k - 1) for d, k in zip(dilations, kernel, strict=True)]
        return (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
    pad = tuple(int(p) for p in np.broadcast_to(padding, 2))
    return (*pad, *pad)


def _then(graph: Graph, first: dict, node: Any, fail) -> dict:
    """The linear node ``node`` after the projection spec ``first`` (no neurons between): one spec.

    A uniform Scale folds into the next layer's weights; pooling then a convolution becomes one
    convolution when that is exact (checked against the product of their matrices); anything else
    becomes the dense product of the two connection matrices (within the budget)."""
    pre_shape = graph.shape(first["pre"])
    mid_shape = _probe(pre_shape, first).shape("p")
    second = _node_spec(node, mid_shape, fail)
    if first["connectivity"] == "one_to_one":  # a uniform Scale on a population or input
        factor = np.float32(first["scale"])
        if "weight" in second:
            return {"pre": first["pre"], **second, "weight": second["weight"] * factor}
        return {"pre": first["pre"], **second, "scale": second["scale"] * float(factor)}
    if first["connectivity"] == "pool" and second["connectivity"] == "conv":
        conv = _pool_then_conv(pre_shape, first, second)
        if conv is not None:
            return {"pre": first["pre"], **conv}
    return {"pre": first["pre"], **_dense_product(pre_shape, first, second)}


def _dense_product(pre_shape: tuple[int, ...], first: dict, second: dict) -> dict:
    """``second`` after ``first`` as one dense projection: W2 @ W1, bias W2 @ b1 + b2."""
    inner, outer = _probe(pre_shape, first), None
    mid_shape = inner.shape("p")
    outer = _probe(mid_shape, second)
    n_pre, n_mid, n_post = (math.prod(s) for s in (pre_shape, mid_shape, outer.shape("p")))
    limits.check_array((n_post, n_pre), 4, "the composed dense matrix")
    m2 = projection_matrix(outer, "p")
    weight = (m2 @ projection_matrix(inner, "p")).toarray().astype(np.float32)
    bias, inner_bias = _bias(second, n_post), _bias(first, n_mid)
    if inner_bias is not None:
        bias = (np.zeros(n_post, np.float32) if bias is None else bias) + m2 @ inner_bias
    return {"connectivity": "dense", "weight": weight, "bias": bias}


def _pool_then_conv(pre_shape: tuple[int, ...], pool: dict, conv: dict) -> Optional[dict]:
    """Pooling (kernel k, stride s) then a convolution (kernel K, stride t, dilation d) as one convolution
    with kernel s*d*(K-1)+k and stride s*t, or None where that is not exact (a pooled row the
    convolution reads from its zero padding would be real input rows of the composed one)."""
    weight = conv["weight"]
    (k0, k1), (s0, s1), (d0, d1) = pool["kernel"], pool["strides"], conv["dilations"]
    out, inn, kh, kw = weight.shape
    size = (out, inn, s0 * d0 * (kh - 1) + k0, s1 * d1 * (kw - 1) + k1)
    limits.check_array(size, 4, "the composed convolution kernel")
    kernel = np.zeros(size, np.float32)
    for m in range(kh):
        for n in range(kw):
            rows, cols = slice(s0 * d0 * m, s0 * d0 * m + k0), slice(s1 * d1 * n, s1 * d1 * n + k1)
            kernel[:, :, rows, cols] += weight[:, :, m, n, None, None]
    kernel *= np.float32(pool["scale"])
    pooled = _probe(pre_shape, pool)
    target = _probe(pooled.shape("p"), conv)
    strides = (s0 * conv["strides"][0], s1 * conv["strides"][1])
    begin = (s0 * conv["pads"][0] + pool["pads"][0], s1 * conv["pads"][1] + pool["pads"][1])
    end = tuple(
        max(0, st * (u - 1) + k - n - b)
        for st, u, k, n, b in zip(strides, target.shape("p")[1:], size[2:], pre_shape[1:], begin, strict=True)
    )
    spec = {
        "connectivity": "conv",
        "weight": kernel,
        "strides": strides,
        "pads": (*begin, *end),
        "dilations": (1, 1),
        "groups": conv["groups"],
        "channel_bias": conv.get("channel_bias"),
    }
    composed = _probe(pre_shape, spec)
    if composed.shape("p") != target.shape("p"):
        return None
    exact = projection_matrix(target, "p") @ projection_matrix(pooled, "p")
    diff = abs(projection_matrix(composed, "p") - exact)
    tolerance = 1e-6 * max(1.0, float(np.abs(kernel).max()) * k0 * k1)
    return spec if diff.nnz == 0 or diff.max() <= tolerance else None


def _scaled(graph: Graph, node: Any, pre: str, ids: dict, pending: dict, fail) -> list[dict]:
    """What a Scale node becomes: its factors folded into the projection specs before it (per output
    unit or channel), or, on a population or an input, a one-to-one projection (one factor for all)."""
    factor = np.asarray(node.scale, np.float32).reshape(-1)
    uniform = bool(np.all(factor == factor[0])) if factor.size else False
    if not factor.size:
        raise fail("Scale has no factors")
    if pre in ids:
        shape = graph.shape(ids[pre])
        if not uniform or factor.size not in (1, math.prod(shape)):
            raise fail("a Scale that differs between neurons maps only after synapse nodes, not on a population")
        return [_identity(graph, ids[pre], float(factor[0]))]
    if pre not in pending:
        raise fail("a Scale must read a population, an input or a synapse node")
    return [_scale_spec(graph, spec, factor, uniform, fail) for spec in pending[pre]]


def _scale_spec(graph: Graph, spec: dict, factor: np.ndarray, uniform: bool, fail) -> dict:
    """``spec`` with its output multiplied by ``factor`` (weights, scale and bias)."""
    shape = _probe(graph.shape(spec["pre"]), spec).shape("p")
    n = math.prod(shape)
    if factor.size not in (1, n):
        raise fail(f"{factor.size} factors for {n} neurons")
    if uniform:
        f = np.float32(factor[0])
        out = {**spec, **({"weight": spec["weight"] * f} if "weight" in spec else {"scale": spec["scale"] * float(f)})}
        for key in ("bias", "channel_bias"):
            if spec.get(key) is not None:
                out[key] = np.asarray(spec[key], np.float32) * f
        return out
    if spec["connectivity"] == "dense":
        bias = _bias(spec, n)
        return {**spec, "weight": spec["weight"] * factor[:, None], "bias": None if bias is None else bias * factor}
    per_channel = factor.reshape(shape[0], -1)
    if spec["connectivity"] != "conv" or np.any(per_channel != per_channel[:, :1]):
        raise fail(f"a Scale that differs within a channel is not supported after {spec['connectivity']}")
    channel = per_channel[:, 0]
    bias = spec.get("channel_bias")
    return {
        **spec,
        "weight": spec["weight"] * channel[:, None, None, None],
        "channel_bias": None if bias is None else np.asarray(bias, np.float32) * channel,
    }


def _neuron_params(node: Any, meta: dict, fail) -> tuple[np.ndarray, float, str]:
    """(input gain, tau_m, reset) of a NIR neuron node; a node that has no snnc form is refused."""
    import nir

    dt = meta.get("dt", SNN_GRAPH_ATTRS["dt"])
    if isinstance(node, nir.Threshold):  # stateless: v is this step's input (exp(-1000) == 0), reset to 0
        return np.ones(1, np.float32), dt * THRESHOLD_TAU, "zero"
    # NIR <= 1.0.4 neurons (no v_reset field) subtract the threshold; later ones reset to v_reset
    default = "subtract" if getattr(node, "v_reset", None) is None else "zero"
    reset = "subtract" if meta.get("reset", default) == "subtract" else "zero"
    if isinstance(node, nir.IF):
        return np.asarray(node.r, np.float32), math.inf, reset
    if np.any(np.asarray(node.v_leak) != 0):
        raise fail("a non-zero leak potential is not supported")
    tau = np.unique(np.asarray(node.tau if isinstance(node, nir.LIF) else node.tau_mem))
    if tau.size != 1:
        raise fail("the membrane time constant must be the same for all neurons")
    if isinstance(node, nir.LIF):
        return np.asarray(node.r, np.float32), float(tau[0]), reset
    tau_syn = np.unique(np.asarray(node.tau_syn))
    euler = tau_syn.size == 1 and math.isclose(float(tau_syn[0]), dt, rel_tol=1e-6)  # I[k+1] = w_in S[k]
    if not (euler or np.all(tau_syn * CARRY_LOG <= dt)):
        raise fail(
            f"tau_syn {float(tau_syn.max()):g} ms carries synaptic current into later steps (dt {dt:g} ms) and "
            f"snnc's neurons have none: only tau_syn = dt or tau_syn <= dt/{CARRY_LOG:.1f} map"
        )
    return np.asarray(node.r, np.float32) * np.asarray(node.w_in, np.float32), float(tau[0]), reset


def _population(graph: Graph, op_id: str, node: Any, specs: list[dict], meta: dict, fail) -> str:
    """The population an IF, LIF, CubaLIF or Threshold node becomes, with its projections from ``specs``."""
    if not specs:
        raise fail("a population needs incoming synapses")
    gain, tau_m, reset = _neuron_params(node, meta, fail)
    if np.any(gain <= 0):
        raise fail("the input gain (r, times w_in for CubaLIF) must be positive")
    raw = node.threshold if hasattr(node, "threshold") else node.v_threshold
    threshold = np.unique(np.asarray(raw, np.float32) / gain)
    if threshold.size != 1:
        raise fail("thresholds (divided by r) must be the same for all neurons")
    if not threshold[0] > 0:
        raise fail(f"the threshold must be positive, got {float(threshold[0])}")
    v_reset = getattr(node, "v_reset", None)  # absent before nir 1.0.5
    v_reset = float(np.asarray(v_reset if v_reset is not None else 0.0).reshape(-1)[0])
    delay = meta.get("delay", 0.0)
    proj_ids, drive = [], None
    for i, spec in enumerate(specs):
        proj_id = graph.unique_id(f"{op_id}_in{i}")
        fields = {k: spec[k] for k in SPEC_KEYS if k in spec}
        if "weight" in spec:
            fields["weight"] = graph.add_tensor(f"{proj_id}.weight", spec["weight"])
        fields["delay"] = 0.0 if graph.op(spec["pre"]).OPNAME == "snn.source" else delay
        graph.add(proj_id, ir.Projection(**fields), [spec["pre"]])
        proj_ids.append(proj_id)
        bias = _bias(spec, math.prod(graph.shape(proj_id)))
        if bias is not None and np.any(bias):
            drive = (0 if drive is None else drive) + bias
    params = {"v_threshold": float(threshold[0]), "v_reset": v_reset, "tau_m": tau_m, "reset": reset}
    if drive is not None:
        params["i_offset"] = graph.add_tensor(f"{op_id}.i_offset", np.asarray(drive, np.float32))
    return graph.add(op_id, ir.Population(**params), proj_ids)
