"""snn-dialect graphs to NIR graphs (the ``nir`` package); reading NIR is a frontend
(:mod:`snnc.frontends.nir_frontend`).

NIR leaves time step and reset mode open, so they travel in the graph metadata (``snnc.*``
keys). A population's ``i_offset`` becomes the bias of its first incoming Affine or Conv2d
node; pooling becomes SumPool2d followed by a Scale, a one-to-one projection a Scale; a dense
projection out of a feature map gets a Flatten (over all per-sample dimensions) in front.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from snnc.ir import Graph, IRError
from snnc.ir import ops as ir
from snnc.ir.graph import METADATA_PREFIX as META


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
        nodes[proj] = nir.Conv2d(
            input_shape=graph.shape(pre)[1:],
            weight=graph.tensor(op.weight) * gain,
            stride=op.strides,
            padding=(top, left),
            dilation=op.dilations,
            groups=op.groups,
            bias=per_channel[:, 0],
        )
    elif op.connectivity == "pool":
        top, left, bottom, right = op.pads
        if (top, left) != (bottom, right) or np.any(bias):
            raise IRError(f"%{proj}: NIR pooling needs symmetric padding and no bias")
        feed = f"{proj}_sum"
        nodes[feed] = nir.SumPool2d(
            kernel_size=np.array(op.kernel), stride=np.array(op.strides), padding=np.array((top, left))
        )
        edges.append((pre, feed))
        nodes[proj] = nir.Scale(scale=np.full(graph.shape(post), op.scale * gain, np.float32))
    else:  # one_to_one: an elementwise Scale, when it covers the whole post population in its shape
        if op.offset or graph.shape(pre) != graph.shape(post) or np.any(bias):
            raise IRError(f"%{proj}: a one_to_one projection with an offset, a reshape or a bias has no NIR form")
        nodes[proj] = nir.Scale(scale=np.full(graph.shape(post), op.scale * gain, np.float32))
    edges.append((feed, proj))
    edges.append((proj, post))
