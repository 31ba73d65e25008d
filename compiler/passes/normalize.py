"""normalize: data-based weight normalization (Diehl et al. 2015, Rueckauer et al. 2017).

Each source and population Q gets a scale ``λ_Q``: the ``percentile`` of its positive
activations on the calibration data (100 = the maximum, Diehl's max-norm; 99.9 = Rueckauer's
robust normalization). Projections are scaled by ``λ_pre / λ_post``, biases by ``1 / λ_post``,
and the source gain by ``1 / λ_src``, so normalized activations are mostly <= 1 spike per ms.
The raw activations are used for every layer: scaling by positive factors commutes with ReLU,
so this equals normalizing layer by layer on already-normalized predecessors.

``method=channel`` gives every channel of a (C, H, W) population (every neuron of a flat one)
its own scale, as Kim et al. 2020 (Spiking-YOLO, AAAI) do: weights are scaled per synapse by
``λ_pre[channel of pre] / λ_post[channel of post]``. Populations that a pooling or one-to-one
projection reads or feeds keep one scale (those projections have one factor for all synapses),
and so does the output layer (its classes are compared with each other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.rates import rates

from .base import Pass, PassContext, PassError


@dataclass
class Normalize(Pass):
    name = "normalize"
    dialect = "snn"
    summary = "scale weights and biases per layer by a percentile of calibration activations"
    percentile: float = 99.9
    statistic: Literal["percentile", "max"] = "percentile"  # max = Diehl et al.'s max-norm
    method: Literal["layer", "channel"] = "layer"
    # Spikes per ms that the scale activation λ produces in every population (1: one per ms).
    # Lower rates mean fewer spikes and synaptic events (energy, traffic) and coarser counts.
    rate: float = 1.0

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if not 0 < self.percentile <= 100:
            raise PassError(f"percentile must be in (0, 100], got {self.percentile}")
        if not self.rate > 0:
            raise PassError(f"rate must be positive, got {self.rate}")
        if graph.attrs.get("normalized"):
            ctx.info("the network came in spiking form (e.g. from NIR): its weights are kept as they are")
            return graph
        x = ctx.need_calibration()
        acts = rates(graph, x)
        whole = self._whole_layers(graph)
        lam = {node: self._scales(graph, node, a, ctx, node in whole) for node, a in acts.items()}
        ctx.info("scales λ: " + ", ".join(f"%{n}={float(np.max(v)):.4g}" for n, v in lam.items()))
        for node in graph.ops_of("snn.population"):
            lam[node] = lam[node] / self.rate
        for node_id in graph.topo():
            op = graph.op(node_id)
            if isinstance(op, ir.Source):
                graph.set_op(node_id, replace(op, gain=op.gain / float(lam[node_id].max())))
            elif isinstance(op, ir.Projection):
                (pre,) = graph.inputs(node_id)
                (post,) = graph.users(node_id)
                if op.weight is not None:
                    w = graph.tensor(op.weight)
                    factor = _synapse_factors(graph, op, w.shape, lam[pre], lam[post])
                    w = graph.add_tensor(op.weight.name, (w * factor).astype(np.float32))
                    graph.set_op(node_id, replace(op, weight=w))
                else:
                    graph.set_op(node_id, replace(op, scale=op.scale * float(lam[pre].max() / lam[post].max())))
            elif isinstance(op, ir.Population):
                per_neuron = _per_neuron(lam[node_id], graph.shape(node_id))
                for key in ("bias", "i_offset"):
                    ref = getattr(op, key)
                    if ref is not None:
                        scaled = graph.tensor(ref) / per_neuron
                        op = replace(op, **{key: graph.add_tensor(ref.name, scaled.astype(np.float32))})
                graph.set_op(node_id, op)
        return graph

    def _whole_layers(self, graph: Graph) -> set[str]:
        """Sources and populations with one scale: all for method=layer; for method=channel the
        source, the readouts' populations and the ends of pooling and one-to-one projections."""
        if self.method == "layer":
            return set(graph.ops_of("snn.source")) | set(graph.ops_of("snn.population"))
        whole = set(graph.ops_of("snn.source"))
        whole |= {graph.inputs(r)[0] for r in graph.ops_of("snn.readout")}  # classes compared with one scale
        for proj in graph.ops_of("snn.projection"):
            if graph.op(proj).connectivity in ("pool", "one_to_one"):
                whole |= {graph.inputs(proj)[0], graph.users(proj)[0]}
        return whole

    def _scales(self, graph: Graph, node: str, activations: np.ndarray, ctx: PassContext, whole: bool) -> np.ndarray:
        """The scale of each channel of ``node`` (one value when ``whole``)."""
        if whole:
            return np.array([self._scale(node, activations, ctx)])
        shape = graph.shape(node)
        channels = shape[0] if len(shape) == 3 else math.prod(shape)
        per_channel = activations.reshape(len(activations), channels, -1).transpose(1, 0, 2).reshape(channels, -1)
        overall = self._scale(node, activations, ctx)
        return np.array([self._scale(node, a, None) or overall for a in per_channel])

    def _scale(self, node: str, activations: np.ndarray, ctx: Optional[PassContext]) -> float:
        """The percentile (or max) of the positive activations; 1 (with a warning) for a layer
        never active, 0 for a channel never active without ``ctx`` (it takes the layer's)."""
        positive = activations[activations > 0]
        if positive.size == 0:
            if ctx is None:
                return 0.0
            ctx.warn(f"%{node} is never active on the calibration data; its scale is left at 1")
            return 1.0
        if self.statistic == "max":
            return float(positive.max())
        return float(np.percentile(positive, self.percentile))


def _per_neuron(scales: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One scale per neuron (C-major) from one per channel, one per neuron or one in all."""
    n = math.prod(shape)
    return np.repeat(scales, n // len(scales)).astype(np.float32)


def _synapse_factors(
    graph: Graph, op: ir.Projection, weight_shape: tuple[int, ...], pre: np.ndarray, post: np.ndarray
) -> np.ndarray:
    """λ_pre / λ_post for every weight of a dense (post, pre) or conv (out, in/groups, kh, kw) projection."""
    if op.connectivity == "dense":
        pre_n = _per_neuron(pre, (weight_shape[1],))
        post_n = _per_neuron(post, (weight_shape[0],))
        return pre_n[None, :] / post_n[:, None]
    out_c, in_g = weight_shape[:2]
    post_c = np.broadcast_to(post, (out_c,)) if len(post) == 1 else post
    in_channels = in_g * op.groups
    pre_c = np.broadcast_to(pre, (in_channels,)) if len(pre) == 1 else pre
    group = np.arange(out_c) // (out_c // op.groups)
    in_index = group[:, None] * in_g + np.arange(in_g)[None, :]
    return (pre_c[in_index] / post_c[:, None])[:, :, None, None].astype(np.float32)
