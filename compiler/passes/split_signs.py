"""split-signs: separate excitatory (w >= 0) and inhibitory (w <= 0) projections."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph

from .base import Pass, PassContext


@dataclass
class SplitSigns(Pass):
    name = "split-signs"
    dialect = "snn"
    summary = "one excitatory and one inhibitory projection wherever weights have both signs"
    # Leave mixed what connectors that route each sign to its receptor themselves take whole:
    # conv and pool projections, and dense ones out of tiled populations (sPyNNaker's
    # ConvolutionConnector and PoolDenseConnector; tiles come from split-populations).
    shared_kernels: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for proj in graph.ops_of("snn.projection"):
            op = graph.op(proj)
            if self.shared_kernels and _kernel_mapped(graph, proj):
                continue
            if op.weight is None:
                graph.set_op(proj, replace(op, receptor="excitatory" if op.scale >= 0 else "inhibitory"))
                continue
            w = graph.tensor(op.weight)
            if not (w < 0).any() or not (w > 0).any():
                graph.set_op(proj, replace(op, receptor="inhibitory" if (w < 0).any() else "excitatory"))
                continue
            (post,) = graph.users(proj)
            exc = graph.add_tensor(op.weight.name, np.maximum(w, 0))
            graph.set_op(proj, replace(op, weight=exc, receptor="excitatory"))
            inh_id = graph.unique_id(f"{proj}_inh")
            inh = graph.add_tensor(f"{inh_id}.weight", np.minimum(w, 0))
            graph.add(inh_id, replace(op, weight=inh, receptor="inhibitory"), graph.inputs(proj))
            graph.set_inputs(post, [*graph.inputs(post), inh_id])
        return graph


def _kernel_mapped(graph: Graph, proj: str) -> bool:
    op = graph.op(proj)
    (pre,) = graph.inputs(proj)
    tiled = len(getattr(graph.op(pre), "per_core", None) or ()) > 1
    return op.connectivity in ("conv", "pool") or (op.connectivity == "dense" and tiled)
