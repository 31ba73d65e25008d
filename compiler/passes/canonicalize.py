"""canonicalize: drop no-ops, merge reshapes, fuse activations into the layer before them."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from snnc.ir import Graph
from snnc.ir import ops as ir

from .base import Pass, PassContext


@dataclass
class Canonicalize(Pass):
    name = "canonicalize"
    dialect = "ann"
    summary = "remove dropout/identity, fold reshapes, fuse ReLU into dense/conv"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node_id in graph.topo():
            op = graph.op(node_id)
            if isinstance(op, (ir.Dropout, ir.Identity)) or (isinstance(op, ir.Scale) and op.factor == 1.0):
                graph.bypass(node_id)
            elif isinstance(op, ir.Clip) and op.min == 0.0 and math.isinf(op.max):
                graph.set_op(node_id, ir.Relu())
            elif isinstance(op, ir.AvgPool2d) and not any(op.pads) and not op.count_include_pad:
                graph.set_op(node_id, replace(op, count_include_pad=True))  # the same without padding
        for node_id in graph.topo():
            if node_id in graph:
                self._simplify(graph, node_id)
        graph.remove_dead()
        return graph

    def _simplify(self, graph: Graph, node_id: str) -> None:
        op = graph.op(node_id)
        inputs = graph.inputs(node_id)
        producer = graph.op(inputs[0]) if inputs else None
        sole_user = len(inputs) == 1 and graph.users(inputs[0]) == [node_id] and inputs[0] not in graph.outputs
        if isinstance(op, (ir.Reshape, ir.Flatten)):
            if isinstance(producer, (ir.Reshape, ir.Flatten)) and sole_user:
                graph.set_inputs(node_id, graph.inputs(inputs[0]))  # reshape of a reshape
                graph.remove(inputs[0])
            if graph.shape(node_id) == graph.shape(graph.inputs(node_id)[0]):
                graph.bypass(node_id)
        elif isinstance(op, ir.Dense) and isinstance(producer, (ir.Reshape, ir.Flatten)):
            graph.set_inputs(node_id, graph.inputs(inputs[0]))  # dense flattens its input itself
        elif isinstance(op, ir.Relu) and sole_user:
            if isinstance(producer, (ir.Dense, ir.Conv2d)):
                graph.set_op(inputs[0], replace(producer, activation="relu"))
                graph.bypass(node_id)
            elif isinstance(producer, ir.Relu):
                graph.bypass(node_id)
