"""calibrate-bias: layer-wise bias calibration of the converted network (Li et al. 2021).

Li, Deng, Dong, Gong, Gu, "A Free Lunch From ANN: Towards Efficient, Accurate Spiking Neural
Networks Calibration", ICML 2021: after conversion, the expected spike rate of each layer differs
from the ANN's activation by a systematic error (spikes that do not fit in the presentation, the
floor of the count, clipping at one spike per step); shifting each layer's bias by the mean error
of its channels, layer after layer on calibration data, removes most of it ("light" calibration).

Here, on up to ``samples`` calibration inputs and the graph's own presentation: for each
population in order, simulate, compare its spike rate with the rate model's (the normalized ANN
activation, ``snnc.ir.semantics.rates``), and add the mean difference of each channel (neuron
of a flat layer), times the threshold, to its ``i_offset``. A membrane readout does not spike and
is left alone. It needs the graph as a target runs it (after bias-to-current), and costs one
simulation per population; the pass reports the calibration accuracy before and after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir.semantics.rates import membrane_populations, rates
from snnc.ir.semantics.simulator import simulate

from .base import Pass, PassContext, PassError


@dataclass
class CalibrateBias(Pass):
    name = "calibrate-bias"
    dialect = "snn"
    summary = "shift each layer's bias by its mean rate error on calibration data (Li et al. 2021)"
    samples: int = 256

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.samples < 1:
            raise PassError(f"samples must be at least 1, got {self.samples}")
        if any(graph.op(p).bias is not None for p in graph.ops_of("snn.population")):
            raise PassError("run bias-to-current first: calibration shifts the populations' i_offset")
        x = ctx.need_calibration()[: self.samples]
        target = rates(graph, x)
        duration = graph_number(graph, "presentation_time")
        before = simulate(graph, x).predictions
        skip = membrane_populations(graph)
        shifted = []
        for pop in (p for p in graph.ops_of("snn.population") if p not in skip):
            observed = simulate(graph, x, record_neurons=True).neuron_counts[pop] / np.float32(duration)
            error = _channel_means(target[pop] - observed, graph.shape(pop))
            op = graph.op(pop)
            current = graph.tensor(op.i_offset) if op.i_offset is not None else np.zeros(error.shape, np.float32)
            ref = graph.add_tensor(f"{pop}.i_offset", (current + error * op.v_threshold).astype(np.float32))
            graph.set_op(pop, replace(op, i_offset=ref))
            shifted.append(f"%{pop} {float(np.abs(error).mean()):.3g}")
        after = simulate(graph, x).predictions
        message = f"mean |rate error| per ms corrected: {', '.join(shifted)}"
        if ctx.calibration_labels is not None:
            y = ctx.calibration_labels[: len(x)]
            message += f"; accuracy {np.mean(before == y):.2%} -> {np.mean(after == y):.2%} on {len(x)} samples"
        ctx.info(message)
        return graph


def _channel_means(error: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The mean over samples (and positions, for a (C, H, W) population) per channel, repeated per neuron."""
    channels = shape[0] if len(shape) == 3 else math.prod(shape)
    means = error.reshape(len(error), channels, -1).mean(axis=(0, 2))
    return np.repeat(means, math.prod(shape) // channels).astype(np.float32)
