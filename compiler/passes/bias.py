"""Bias handling: ``bias-to-current`` (a constant input current) or ``remove-bias``."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph
from snnc.ir.semantics.rates import readout_scores

from .base import Pass, PassContext


@dataclass
class BiasToCurrent(Pass):
    name = "bias-to-current"
    dialect = "snn"
    summary = "turn each population's bias into a constant input current (PyNN i_offset)"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for pop in graph.ops_of("snn.population"):
            op = graph.op(pop)
            if op.bias is None:
                continue
            current = graph.tensor(op.bias) * np.float32(op.v_threshold)
            if op.i_offset is not None:
                current = current + graph.tensor(op.i_offset)
            ref = graph.add_tensor(f"{pop}.i_offset", current.astype(np.float32))
            graph.set_op(pop, replace(op, bias=None, i_offset=ref))
        graph.prune_tensors()
        return graph


@dataclass
class RemoveBias(Pass):
    name = "remove-bias"
    dialect = "snn"
    summary = "drop biases, warning with the accuracy change measured on calibration data"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        x = ctx.need_calibration()
        before = readout_scores(graph, x).argmax(axis=1)
        for pop in graph.ops_of("snn.population"):
            op = graph.op(pop)
            if op.bias is not None or op.i_offset is not None:
                graph.set_op(pop, replace(op, bias=None, i_offset=None))
        graph.prune_tensors()
        after = readout_scores(graph, x).argmax(axis=1)
        if ctx.calibration_labels is not None:
            y = ctx.calibration_labels[: len(x)]
            acc0, acc1 = np.mean(before == y), np.mean(after == y)
            ctx.warn(f"biases removed: rate-model accuracy {acc0:.4f} -> {acc1:.4f} on {len(x)} calibration samples")
        else:
            agree = np.mean(before == after)
            ctx.warn(f"biases removed: predictions agree with the biased network on {agree:.2%} of calibration samples")
        return graph
