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
simulation per level of populations (populations at the same depth from the source, such as the
core-sized parts split-populations makes of one layer, cannot affect each other: one simulation
serves them all, with the result of one per population), of the part of the network that
level depends on (what lies downstream cannot reach back); with labelled calibration data the
pass reports the calibration accuracy before and after (two more simulations).

``fit-reset=true`` first fits, for each population that resets to ``v_reset`` (reset=zero, as
SpiNNaker's IF cells), the charge lost at each reset: a hard reset throws away the overshoot
``v - v_threshold`` that reset by subtraction keeps (Rueckauer et al. 2017, Sec. 2.2), so such a
neuron fires about ``Q / (v_threshold - v_reset + overshoot)`` times for an input charge ``Q``
instead of ``Q / v_threshold``. Measured on the calibration data, the mean overshoot is
``v_threshold * (sum of target rates / sum of observed rates - 1) + v_reset``; resetting to it
(at most ``max-reset`` of the threshold) makes the reset lose on average what subtraction would.
It costs one more simulation per level; ``bias=false`` fits ``v_reset`` alone. ``chains``:
parallel back-to-back sequences for graphs whose samples run back to back (``pause``); 0 takes
the graph's ``instances``.

The simulations' cost is bounded before any runs: ``max-work`` synaptic operations (every
synapse of every projection once per step, per sample, per simulation, counted as if each
simulated the whole network; the default 2e11 takes
the example networks' 16 samples at 200 steps, 2 to 15 s of `sim` on two cores, and one sample
of ResNet-18 on CIFAR-size input). Fewer samples are used where the budget needs it (the pass
says how many); where a single sample exceeds it, the pass changes nothing and warns with the
figures and the option to raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import synapse_bound
from snnc.ir.semantics.rates import membrane_populations, rates
from snnc.ir.semantics.simulator import simulate

from .base import Pass, PassContext, PassError


@dataclass
class CalibrateBias(Pass):
    name = "calibrate-bias"
    dialect = "snn"
    summary = "shift each layer's bias by its mean rate error on calibration data (Li et al. 2021)"
    samples: int = 256
    fit_reset: bool = False
    bias: bool = True
    max_reset: float = 0.9
    chains: int = 0
    max_work: float = 2e11

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.samples < 1:
            raise PassError(f"samples must be at least 1, got {self.samples}")
        if not 0 <= self.max_reset < 1:
            raise PassError(f"max-reset must be in [0, 1), got {self.max_reset}")
        if self.chains < 0:
            raise PassError(f"chains must be at least 0, got {self.chains}")
        if any(graph.op(p).bias is not None for p in graph.ops_of("snn.population")):
            raise PassError("run bias-to-current first: calibration shifts the populations' i_offset")
        if not self.max_work > 0:
            raise PassError(f"max-work must be positive, got {self.max_work}")
        x = ctx.need_calibration()[: self.samples]
        (source,) = graph.ops_of("snn.source")
        if graph.op(source).encoding == "events":  # its calibration samples are no spike trains
            ctx.warn(f"skipped: %{source} takes events, which calibration samples without a time axis cannot drive")
            return graph
        levels = self._levels(graph)
        per_sample = self._work_per_sample(graph, levels, len(x))
        affordable = int(self.max_work // per_sample)
        if affordable < 1:
            ctx.warn(
                f"skipped: one calibration sample costs {per_sample:.3g} synaptic operations in its simulations, "
                f"above max-work={self.max_work:.3g}; raise max-work to calibrate"
            )
            return graph
        if affordable < len(x):
            ctx.info(f"{affordable} of {len(x)} calibration samples: max-work={self.max_work:.3g}")
            x = x[:affordable]
        target = rates(graph, x)
        duration = graph_number(graph, "presentation_time")
        labelled = ctx.calibration_labels is not None  # then the accuracy before and after is reported
        before = self._simulate(graph, x).predictions if labelled else None
        shifted, resets = [], []
        for level in levels:
            fitted = [p for p in level if self._fits(graph, p)]
            if fitted:
                observed = self._rates(_upstream(graph, level), x, duration)
                for pop in fitted:
                    op = graph.op(pop)
                    v_reset = _fitted_reset(target[pop], observed[pop], op, self.max_reset)
                    graph.set_op(pop, replace(op, v_reset=v_reset))
                    resets.append(f"%{pop} {v_reset / op.v_threshold:.3g}")
            if not self.bias:
                continue
            observed = self._rates(_upstream(graph, level), x, duration)
            for pop in level:
                error = _channel_means(target[pop] - observed[pop], graph.shape(pop))
                op = graph.op(pop)
                current = graph.tensor(op.i_offset) if op.i_offset is not None else np.zeros(error.shape, np.float32)
                ref = graph.add_tensor(f"{pop}.i_offset", (current + error * op.v_threshold).astype(np.float32))
                graph.set_op(pop, replace(op, i_offset=ref))
                shifted.append(f"%{pop} {float(np.abs(error).mean()):.3g}")
        message = "; ".join(
            text
            for text in (
                f"v_reset fitted (fraction of the threshold): {', '.join(resets)}" if resets else "",
                f"mean |rate error| per ms corrected: {', '.join(shifted)}" if shifted else "",
            )
            if text
        )
        if labelled:
            y, after = ctx.calibration_labels[: len(x)], self._simulate(graph, x).predictions
            message += f"; accuracy {np.mean(before == y):.2%} -> {np.mean(after == y):.2%} on {len(x)} samples"
        ctx.info(message or "nothing to calibrate")
        return graph

    def _fits(self, graph: Graph, pop: str) -> bool:
        """Whether ``pop``'s v_reset is fitted."""
        op = graph.op(pop)
        return self.fit_reset and op.reset == "zero" and op.v_min is None

    @staticmethod
    def _levels(graph: Graph) -> list[list[str]]:
        """The spiking populations grouped by depth (populations on the longest path from the
        source), in order. No population is upstream of another of its level, so a level's
        populations are calibrated from one simulation with what they would see one by one."""
        skip = membrane_populations(graph)
        depth: dict[str, int] = {}
        for node in graph.topo():
            if graph.op(node).OPNAME == "snn.population":
                before = [depth.get(graph.inputs(proj)[0], 0) for proj in graph.inputs(node)]
                depth[node] = 1 + max(before, default=0)
        levels: dict[int, list[str]] = {}
        for pop in graph.ops_of("snn.population"):
            if pop not in skip:
                levels.setdefault(depth[pop], []).append(pop)
        return [levels[d] for d in sorted(levels)]

    def _work_per_sample(self, graph: Graph, levels: list[list[str]], samples: int) -> float:
        """Synaptic operations of all the pass's simulations for one of ``samples`` samples:
        synapses x steps (presentation, and the pause where fewer chains than samples run them back
        to back) x simulations (before, after, per level of ``levels`` one to fit, one to shift)."""
        fits = sum(any(self._fits(graph, p) for p in level) for level in levels)
        simulations = 2 + fits + (len(levels) if self.bias else 0)  # at most: a level simulates what it reads
        chains = self.chains or int(graph_number(graph, "instances", 1))
        pause = graph_number(graph, "pause", 0.0) if chains < samples else 0.0
        time = graph_number(graph, "presentation_time") + pause
        steps = max(1.0, time / graph_number(graph, "dt", 1.0))
        synapses = sum(synapse_bound(graph, p) for p in graph.ops_of("snn.projection"))
        return float(max(synapses, 1)) * steps * simulations

    def _simulate(self, graph: Graph, x: np.ndarray, **kw):
        """The graph's simulation on ``x``, with ``chains`` where samples run back to back."""
        return simulate(graph, x, chains=self.chains or None, **kw)

    def _rates(self, graph: Graph, x: np.ndarray, duration: float) -> dict[str, np.ndarray]:
        """Spikes per ms of every neuron of every population on every sample of ``x``."""
        counts = self._simulate(graph, x, record_neurons=True).neuron_counts
        return {pop: c / np.float32(duration) for pop, c in counts.items()}


def _upstream(graph: Graph, level: list[str]) -> Graph:
    """The part of ``graph`` that ``level``'s populations depend on, each of them read out: it
    spikes as in the whole graph (nothing downstream reaches back), at a fraction of its work."""
    part = graph.copy()
    part.outputs = [part.add(part.unique_id(f"{pop}_counted"), ir.Readout(), [pop]) for pop in level]
    part.remove_dead()
    return part


def _fitted_reset(target: np.ndarray, observed: np.ndarray, op, max_reset: float) -> float:
    """The v_reset at which ``op`` loses at a reset what reset by subtraction loses on average: the
    mean overshoot, from the total target and observed rates (``op.v_reset`` where none fired)."""
    fired = float(observed.sum(dtype=np.float64))
    if fired <= 0:
        return float(op.v_reset)
    overshoot = op.v_threshold * (float(target.sum(dtype=np.float64)) / fired - 1.0) + op.v_reset
    return float(np.clip(overshoot, 0.0, max_reset * op.v_threshold))


def _channel_means(error: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The mean over samples (and positions, for a (C, H, W) population) per channel, repeated per neuron."""
    channels = shape[0] if len(shape) == 3 else math.prod(shape)
    means = error.reshape(len(error), channels, -1).mean(axis=(0, 2))
    return np.repeat(means, math.prod(shape) // channels).astype(np.float32)
