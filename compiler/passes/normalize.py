"""normalize: data-based weight normalization (Diehl et al. 2015, Rueckauer et al. 2017).

Each source and population Q gets a scale ``λ_Q``: the ``percentile`` of its positive
activations on the calibration data (100 = the maximum, Diehl's max-norm; 99.9 = Rueckauer's
robust normalization). Projections are scaled by ``λ_pre / λ_post``, biases by ``1 / λ_post``,
and the source gain by ``1 / λ_src``, so normalized activations are mostly <= 1 spike per ms.
The raw activations are used for every layer: scaling by positive factors commutes with ReLU,
so this equals normalizing layer by layer on already-normalized predecessors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

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
    method: Literal["layer"] = "layer"
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
        lam = {node: self._scale(node, a, ctx) for node, a in acts.items()}
        ctx.info("scales λ: " + ", ".join(f"%{n}={v:.4g}" for n, v in lam.items()))
        for node in graph.ops_of("snn.population"):
            lam[node] /= self.rate
        for node_id in graph.topo():
            op = graph.op(node_id)
            if isinstance(op, ir.Source):
                graph.set_op(node_id, replace(op, gain=op.gain / lam[node_id]))
            elif isinstance(op, ir.Projection):
                (pre,) = graph.inputs(node_id)
                (post,) = graph.users(node_id)
                factor = lam[pre] / lam[post]
                if op.weight is not None:
                    w = graph.add_tensor(op.weight.name, graph.tensor(op.weight) * np.float32(factor))
                    graph.set_op(node_id, replace(op, weight=w))
                else:
                    graph.set_op(node_id, replace(op, scale=op.scale * factor))
            elif isinstance(op, ir.Population):
                for key in ("bias", "i_offset"):
                    ref = getattr(op, key)
                    if ref is not None:
                        scaled = graph.tensor(ref) / np.float32(lam[node_id])
                        op = replace(op, **{key: graph.add_tensor(ref.name, scaled)})
                graph.set_op(node_id, op)
        return graph

    def _scale(self, node: str, activations: np.ndarray, ctx: PassContext) -> float:
        positive = activations[activations > 0]
        if positive.size == 0:
            ctx.warn(f"%{node} is never active on the calibration data; its scale is left at 1")
            return 1.0
        if self.statistic == "max":
            return float(positive.max())
        return float(np.percentile(positive, self.percentile))
