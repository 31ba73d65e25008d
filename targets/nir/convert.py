"""snn-dialect graphs to and from NIR graphs (the ``nir`` package).

NIR leaves time step and reset mode open, so they travel in the graph metadata (``snnc.*``
keys). A population's ``i_offset`` becomes the bias of its first incoming Affine or Conv2d
node; pooling becomes SumPool2d followed by a Scale; a dense projection out of a feature map
gets a Flatten (over all per-sample dimensions) in front.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from snnc.ir import Graph, IRError
from snnc.ir import ops as ir

META = "snnc"


def to_nir(graph: Graph) -> Any:
    """The NIR graph of an snn-dialect ``graph``."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for node_id in graph.topo():
        op = graph.op(node_id)
        shape = np.array(graph.shape(node_id))
        if isinstance(op, ir.Source):
            nodes[node_id] = nir.Input(input_type={"input": shape})
        elif isinstance(op, ir.Population):
            if op.reset == "zero" and op.v_reset != 0.0 or not math.isinf(op.tau_m) or op.tau_refrac > 0:
                raise IRError(f"%{node_id}: only IF neurons without leak or refractoriness map to NIR IF")
            full = np.ones(graph.shape(node_id), np.float32)
            params = {"r": full, "v_threshold": full * op.v_threshold}
            if "v_reset" in inspect.signature(nir.IF).parameters:  # nir >= 1.0.5
                params["v_reset"] = full * op.v_reset
            elif op.v_reset != 0.0:
                raise IRError(f"%{node_id}: this nir version has no v_reset; only reset to 0 can be written")
            nodes[node_id] = nir.IF(**params)
        elif isinstance(op, ir.Projection):
            _projection(graph, node_id, op, nodes, edges)
        elif isinstance(op, ir.Readout):
            nodes[node_id] = nir.Output(output_type={"output": shape})
            edges.append((graph.inputs(node_id)[0], node_id))
    metadata = {f"{META}.{k}": v for k, v in graph.attrs.items() if isinstance(v, (int, float, str))}
    resets = {graph.op(p).reset for p in graph.ops_of("snn.population")}
    metadata[f"{META}.reset"] = resets.pop() if len(resets) == 1 else "mixed"
    projections = graph.ops_of("snn.projection")
    delays = {graph.op(p).delay for p in projections if graph.op(graph.inputs(p)[0]).OPNAME != "snn.source"}
    metadata[f"{META}.delay"] = max(delays, default=0.0)  # NIR synapses are instantaneous
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _projection(graph: Graph, proj: str, op: ir.Projection, nodes: dict, edges: list) -> None:
    import nir

    (pre,) = graph.inputs(proj)
    (post,) = graph.users(proj)
    post_op = graph.op(post)
    first = graph.inputs(post)[0] == proj
    n_post = math.prod(graph.shape(post))
    bias = graph.tensor(post_op.i_offset) if first and post_op.i_offset is not None else np.zeros(n_post, np.float32)
    pre_op = graph.op(pre)
    if isinstance(pre_op, ir.Source) and pre_op.encoding != "current":
        raise IRError(f"%{proj}: NIR inputs are values; spike-encoded input has no NIR form")
    gain = np.float32(pre_op.gain if isinstance(pre_op, ir.Source) else 1.0)  # folded into the synapses
    feed = pre  # the node whose output reaches this projection's node
    if op.connectivity == "dense":
        if len(graph.shape(pre)) > 1:
            feed = f"{proj}_flatten"
            nodes[feed] = nir.Flatten(input_type={"input": np.array(graph.shape(pre))}, start_dim=0, end_dim=-1)
            edges.append((pre, feed))
        nodes[proj] = nir.Affine(weight=graph.tensor(op.weight) * gain, bias=bias)
    elif op.connectivity == "conv":
        top, left, bottom, right = op.pads
        per_channel = bias.reshape(graph.shape(post)[0], -1)
        if (top, left) != (bottom, right) or not np.all(per_channel == per_channel[:, :1]):
            raise IRError(f"%{proj}: NIR Conv2d needs symmetric padding and one bias per channel")
        nodes[proj] = nir.Conv2d(input_shape=graph.shape(pre)[1:], weight=graph.tensor(op.weight) * gain,
                                 stride=op.strides, padding=(top, left), dilation=op.dilations, groups=op.groups,
                                 bias=per_channel[:, 0])  # fmt: skip
    elif op.connectivity == "pool":
        top, left, bottom, right = op.pads
        if (top, left) != (bottom, right) or np.any(bias):
            raise IRError(f"%{proj}: NIR pooling needs symmetric padding and no bias")
        feed = f"{proj}_sum"
        nodes[feed] = nir.SumPool2d(kernel_size=np.array(op.kernel), stride=np.array(op.strides),
                                    padding=np.array((top, left)))  # fmt: skip
        edges.append((pre, feed))
        nodes[proj] = nir.Scale(scale=np.full(graph.shape(post), op.scale * gain, np.float32))
    else:
        raise IRError(f"%{proj}: one_to_one projections have no NIR form yet")
    edges.append((feed, proj))
    edges.append((proj, post))


def from_nir(nir_graph: Any, source: str = "<nir graph>") -> Graph:
    """An snn-dialect graph from a NIR graph (Input, Affine, Linear, Conv2d, SumPool2d, AvgPool2d,
    Scale, Flatten, IF, LIF, Output). Its weights are taken as they are: no normalization."""
    import networkx as nx
    import nir

    known = (nir.Input, nir.Output, nir.Flatten, nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d,
             nir.Scale, nir.IF, nir.LIF)  # fmt: skip
    unknown = [f"{type(n).__name__} ({k!r})" for k, n in nir_graph.nodes.items() if not isinstance(n, known)]
    if unknown:
        raise IRError(f"{source}: unsupported NIR nodes: {', '.join(unknown)}")
    meta = {k[len(META) + 1 :]: v for k, v in nir_graph.metadata.items() if k.startswith(f"{META}.")}
    graph = Graph({"dt": float(meta.get("dt", 1.0)), "presentation_time": float(meta.get("presentation_time", 100.0)),
                   "instances": 1, "normalized": True})  # fmt: skip
    reset = meta.get("reset", "zero")
    order = nx.DiGraph(list(nir_graph.edges))
    order.add_nodes_from(nir_graph.nodes)
    preds = {n: list(order.predecessors(n)) for n in order}
    ids = {}  # NIR node name -> snn op id of the spiking value it carries
    pending: dict[str, list] = {}  # NIR node -> projection specs waiting for their population
    for name in nx.lexicographical_topological_sort(order):
        node = nir_graph.nodes[name]
        op_id = graph.unique_id(name)

        def fail(message: str, node=node, name=name) -> IRError:
            return IRError(f"{source}: NIR node {name!r} ({type(node).__name__}): {message}")

        inputs = [p for p in preds[name]]
        if isinstance(node, nir.Input):
            ids[name] = graph.add(op_id, ir.Source(shape=tuple(int(d) for d in node.input_type["input"])))
        elif isinstance(node, nir.Flatten):  # populations are flat; projections read them as they need
            if inputs[0] in ids:
                ids[name] = ids[inputs[0]]
            else:
                pending[name] = pending[inputs[0]]
        elif isinstance(node, (nir.Affine, nir.Linear)) and inputs and inputs[0] in pending:
            pending[name] = [_compose(graph, s, node) for s in pending[inputs[0]]]
        elif isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Scale)):
            pending[name] = _incoming(node, inputs, ids, pending, fail)
        elif isinstance(node, (nir.IF, nir.LIF)):
            specs = [s for i in inputs for s in pending.get(i, [])]
            ids[name] = _population(graph, op_id, node, specs, reset, float(meta.get("delay", 0.0)), fail)
        elif isinstance(node, nir.Output):
            graph.outputs.append(graph.add(op_id, ir.Readout(), [ids[inputs[0]]]))
        else:
            raise fail("this NIR node type is not supported")
    return graph


def _compose(graph: Graph, spec: dict, node: Any) -> dict:
    """A dense layer after another synapse node (e.g. SumPool2d -> Flatten -> Affine, as Sinabs
    writes) as one dense projection: W @ (the first node's connection matrix)."""
    from snnc.targets.connectivity import projection_matrix

    probe = Graph({"dt": 1.0})
    probe.add("pre", ir.Source(shape=graph.shape(spec["pre"])))
    fields = {k: spec[k] for k in ("connectivity", "strides", "pads", "dilations", "groups", "kernel", "scale")
              if k in spec}  # fmt: skip
    if "weight" in spec:
        fields["weight"] = probe.add_tensor("p.weight", spec["weight"])
    probe.add("p", ir.Projection(**fields), ["pre"])
    weight = np.asarray(node.weight, np.float32) @ projection_matrix(probe, "p").toarray()
    bias = np.asarray(getattr(node, "bias", np.zeros(len(weight))), np.float32)
    if spec.get("bias") is not None or spec.get("channel_bias") is not None:
        inner = spec.get("bias")
        if inner is None:
            inner = np.repeat(spec["channel_bias"], weight.shape[1] // len(spec["channel_bias"]))
        bias = bias + np.asarray(node.weight, np.float32) @ np.asarray(inner, np.float32)
    return {"pre": spec["pre"], "connectivity": "dense", "weight": weight.astype(np.float32), "bias": bias}


def _incoming(node: Any, inputs: list[str], ids: dict, pending: dict, fail) -> list[dict]:
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
        return [{"pre": ids[pre], "connectivity": "dense", "weight": np.asarray(node.weight, np.float32), "bias": bias}]
    if isinstance(node, nir.Conv2d):
        pad = (node.padding, node.padding) if isinstance(node.padding, (int, np.integer)) else tuple(node.padding)
        if isinstance(node.padding, str):
            raise fail(f"padding {node.padding!r}: give numbers")
        pads = (int(pad[0]), int(pad[1]), int(pad[0]), int(pad[1]))
        return [{"pre": ids[pre], "connectivity": "conv", "weight": np.asarray(node.weight, np.float32),
                 "strides": tuple(np.broadcast_to(node.stride, 2).tolist()), "pads": pads,
                 "dilations": tuple(np.broadcast_to(node.dilation, 2).tolist()), "groups": int(node.groups),
                 "channel_bias": np.asarray(node.bias, np.float32)}]  # fmt: skip
    kernel = tuple(np.broadcast_to(node.kernel_size, 2).tolist())
    pad = tuple(np.broadcast_to(node.padding, 2).tolist())
    scale = 1.0 / (kernel[0] * kernel[1]) if isinstance(node, nir.AvgPool2d) else 1.0
    return [{"pre": ids[pre], "connectivity": "pool", "kernel": kernel, "scale": scale,
             "strides": tuple(np.broadcast_to(node.stride, 2).tolist()), "pads": (*pad, *pad)}]  # fmt: skip


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
        fields = {k: spec[k] for k in ("connectivity", "strides", "pads", "dilations", "groups", "kernel", "scale")
                  if k in spec}  # fmt: skip
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
    params = {"v_threshold": float(threshold[0]), "v_reset": float(v_reset), "tau_m": tau_m,
              "reset": "subtract" if reset == "subtract" else "zero"}  # fmt: skip
    if drive is not None:
        params["i_offset"] = graph.add_tensor(f"{op_id}.i_offset", drive.astype(np.float32))
    return graph.add(op_id, ir.Population(**params), proj_ids)
