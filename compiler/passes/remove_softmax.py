"""remove-softmax: an output softmax does not change the argmax; spike counts replace it."""

from __future__ import annotations

from dataclasses import dataclass

from snnc.ir import Graph

from .base import Pass, PassContext, PassError


@dataclass
class RemoveSoftmax(Pass):
    name = "remove-softmax"
    dialect = "ann"
    summary = "drop a softmax on the output (the spike-count readout keeps its argmax)"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node_id in graph.ops_of("ann.softmax"):
            if graph.users(node_id) or node_id not in graph.outputs:
                raise PassError(f"%{node_id}: softmax inside the network has no spiking equivalent")
            graph.bypass(node_id)
        return graph
