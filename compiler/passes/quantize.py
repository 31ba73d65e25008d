"""quantize: round weights to the target's fixed-point resolution, as its software will.

Three schemes, chosen by the target's machine (``weight_scheme``, ``weight_bits``):

* ``shift`` (SpiNNaker): per population and receptor, weights are unsigned ``bits``-bit
  integers times 2^(e + 1 - bits). sPyNNaker picks the exponent e (the ring-buffer left
  shift) as ceil(log2 M), plus one when 2^e <= M, where M is the largest input one time step
  can bring; snnc takes M as the worst case (every input synapse of a neuron active at once),
  so the 16-bit ring buffers never saturate, and writes e into ``weight_shift`` so the
  emitted script makes sPyNNaker use the same e (``max_expected_summed_weight``).
* ``linear``: per projection, signed ``bits``-bit integers times max|w| / (2^(bits-1) - 1).
* ``loihi``: per core of the ``per_core`` plan (split-populations runs first), nengo-loihi's
  discretization: 8-bit weights scaled by the core's largest weight, biases on the chip's
  mantissa and exponent (``loihi_weights.py``).

The effect is measured on calibration samples and reported: by default with the reference
simulator (the spiking network before and after rounding), or with the faster rate model. The
measurement has a budget (``measure-budget``, estimated seconds): its cost is estimated from the
synapses, neurons and time steps before anything runs (``measure_cost``), and the pass simulates
fewer samples, falls back to the rate model, or skips the measurement to stay within it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir.graph import SNN_GRAPH_ATTRS
from snnc.ir.options import OptionError
from snnc.ir.runtime import windows
from snnc.ir.semantics.connectivity import from_current_source, synapse_bound
from snnc.ir.semantics.rates import readout_scores
from snnc.ir.semantics.simulator import simulate

from .base import Pass, PassContext, PassError
from .loihi_weights import quantize_graph


def ring_buffer_shift(max_summed_weight: float) -> int:
    """sPyNNaker's exponent for a largest per-step input M (PopulationVertex.get_ring_buffer_shifts)."""
    if max_summed_weight <= 0:
        return 0
    e = int(math.ceil(max(0.0, math.log2(max_summed_weight))))
    return e + 1 if 2.0**e <= max_summed_weight else e


# Throughputs of the measurement on a 2-core machine (numpy/torch, float32), kept low on purpose:
# dense synaptic operations (BLAS; 4e10/s measured), kernel ones (convolutions, pooling, sparse
# matrices; 2e9-5e9/s), neuron updates per step, and synapses a sparse matrix is built from.
DENSE_PER_S = 2e10
KERNEL_PER_S = 1e9
NEURONS_PER_S = 5e8
BUILD_PER_S = 1.5e7
MIN_SIM_SAMPLES = 16  # fewer simulated samples say too little: the rate model measures instead


def measure_cost(graph: Graph, how: Literal["sim", "rates"]) -> tuple[float, float]:
    """Estimated seconds to predict with ``graph`` (``how``): (once, per sample). The rate model
    builds a sparse matrix for every non-dense projection and does one pass; the simulator does
    ``presentation_time / dt`` steps of synaptic input and neuron updates."""
    once, per_step = 0.0, 0.0
    for proj in graph.ops_of("snn.projection"):
        op = graph.op(proj)
        if op.connectivity == "dense":
            per_step += graph.tensor(op.weight).size / DENSE_PER_S
        else:
            synapses = synapse_bound(graph, proj)
            once += synapses / BUILD_PER_S
            per_step += synapses / KERNEL_PER_S
    if how == "rates":
        return once, per_step
    neurons = sum(math.prod(graph.shape(p)) for p in graph.ops_of("snn.population"))
    dt = float(graph_number(graph, "dt", 1.0))
    steps = max(1, round(graph_number(graph, "presentation_time", SNN_GRAPH_ATTRS["presentation_time"]) / dt))
    return once, steps * (per_step + neurons / NEURONS_PER_S)


def affordable(graph: Graph, how: Literal["sim", "rates"], budget: float, wanted: int) -> int:
    """How many of ``wanted`` samples predicting twice (before and after rounding) with ``how``
    costs within ``budget`` seconds (0: not even one)."""
    once, per_sample = measure_cost(graph, how)
    left = budget - 2 * once
    if left <= 0:
        return 0
    return wanted if per_sample <= 0 else int(min(wanted, left // (2 * per_sample)))


def positive_negative_sums(graph: Graph, proj: str) -> tuple[np.ndarray, np.ndarray]:
    """(n_post,) sums of the positive weights into each post neuron and of the negative ones'
    magnitudes, without building the projection's matrix: a convolution's sum is its kernel's
    over the positions of the window inside the image (padding brings nothing)."""
    op = graph.op(proj)
    (pre,) = graph.inputs(proj)
    pre_shape, post_shape = graph.shape(pre), graph.shape(proj)
    if op.connectivity == "dense":
        w = graph.tensor(op.weight)
        return np.maximum(w, 0).sum(axis=1, dtype=np.float64), -np.minimum(w, 0).sum(axis=1, dtype=np.float64)
    n_post = math.prod(post_shape)
    if op.connectivity == "one_to_one":
        hit = np.zeros(n_post)
        hit[op.offset : op.offset + math.prod(pre_shape)] = 1.0
        return hit * max(op.scale, 0.0), hit * max(-op.scale, 0.0)
    kernel = graph.tensor(op.weight).shape[2:] if op.connectivity == "conv" else tuple(op.kernel)
    dilations = op.dilations if op.connectivity == "conv" else (1, 1)
    _, _, inside = windows(pre_shape[1:], post_shape[1:], kernel, op.strides, op.pads, dilations)
    inside = inside.astype(np.float64)  # (oh, ow, kh, kw)
    if op.connectivity == "pool":
        count = np.broadcast_to(inside.sum(axis=(2, 3)), post_shape).reshape(-1)
        return count * max(op.scale, 0.0), count * max(-op.scale, 0.0)
    w = graph.tensor(op.weight).astype(np.float64)  # (c_out, c_in/groups, kh, kw)
    exc = np.einsum("okl,yxkl->oyx", np.maximum(w, 0).sum(axis=1), inside)
    inh = np.einsum("okl,yxkl->oyx", -np.minimum(w, 0).sum(axis=1), inside)
    return exc.reshape(-1), inh.reshape(-1)


def round_to(values: np.ndarray, quantum: float, levels: int) -> np.ndarray:
    """Round to multiples of ``quantum`` (half to even, as numpy.rint), magnitudes <= levels."""
    q = np.clip(np.rint(np.asarray(values, np.float64) / quantum), -levels, levels)
    return (q * quantum).astype(np.float32)


def round_by_sign(w: np.ndarray, quanta: list[float], levels: int) -> np.ndarray:
    """``round_to`` with quanta[0] for weights >= 0 and quanta[1] for the others. Powers of two
    (the shift scheme) scale float32 exactly, so one float32 pass gives round_to's values."""
    if all(q > 0 and math.frexp(q)[0] == 0.5 for q in quanta):
        inv = np.where(w >= 0, np.float32(1 / quanta[0]), np.float32(1 / quanta[1]))
        with np.errstate(over="ignore"):  # a weight near float32's largest: clipped to levels below
            q = np.multiply(w, inv, dtype=np.float32)
        np.rint(q, out=q)
        np.clip(q, -levels, levels, out=q)
        q /= inv
        return q
    return np.where(w >= 0, round_to(w, quanta[0], levels), round_to(w, quanta[1], levels))


@dataclass
class Quantize(Pass):
    name = "quantize"
    dialect = "snn"
    summary = "round weights to the target's fixed-point resolution and report the accuracy effect"
    bits: Optional[int] = None  # None: the machine's weight_bits (see Pass.setting)
    scheme: Optional[Literal["shift", "linear", "loihi"]] = None  # None: the machine's weight_scheme
    measure: Literal["sim", "rates", "none"] = "sim"
    measure_samples: int = 128
    measure_budget: float = 1.0  # estimated seconds the measurement may take (see measure_cost)
    reads = ("weight_bits", "weight_scheme")
    homes = {"bits": "weight_bits", "scheme": "weight_scheme"}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.measure_budget <= 0:
            raise OptionError("measure_budget", "must be > 0")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        bits = self.setting(ctx, "weight_bits")
        if bits is None:
            raise PassError(f"target {ctx.target.name} has floating-point weights; give bits=N to quantize")
        scheme = self.setting(ctx, "weight_scheme")
        x = None if ctx.calibration is None or self.measure == "none" else ctx.calibration[: self.measure_samples]
        how, n, why = ("none", 0, "") if x is None else self._plan(graph, len(x))  # before anything costly
        original = graph.copy() if n else graph
        if scheme == "loihi":
            changed, what = self._loihi(graph, bits)
        else:
            changed = self._shift(graph, bits) if scheme == "shift" else self._linear(graph, bits)
            what = f"{bits}-bit weights ({scheme}); largest change {changed:.3g} of the weight range"
        graph.prune_tensors()
        if x is None:
            ctx.info(what + "; the accuracy effect is not measured (no calibration data or measure=none)")
            return graph
        if n == 0:
            ctx.info(f"{what}; the accuracy effect is not measured: {why}")
            return graph
        wanted, x = len(x), x[:n]
        before, after = (self._predict(g, x, how) for g in (original, graph))
        done = f"{'simulated' if how == 'sim' else 'rate-model'} on {n} of {wanted} calibration samples{why}"
        if ctx.calibration_labels is not None:
            y = ctx.calibration_labels[:n]
            ctx.info(f"{what}; {done}: accuracy {np.mean(before == y):.4f} -> {np.mean(after == y):.4f}")
        else:
            ctx.info(f"{what}; {done}: predictions unchanged on {np.mean(before == after):.2%}")
        return graph

    def _plan(self, graph: Graph, wanted: int) -> tuple[str, int, str]:
        """How to measure within the budget: (``sim`` | ``rates``, samples (0: not at all), why)."""
        budget = self.measure_budget
        limit = f"measure-budget={budget:g} s"
        if self.measure == "sim":
            n = affordable(graph, "sim", budget, wanted)
            if n >= min(wanted, MIN_SIM_SAMPLES):
                return "sim", n, "" if n == wanted else f" (more would exceed {limit})"
        n = affordable(graph, "rates", budget, wanted)
        if n == 0:
            once, per_sample = measure_cost(graph, "rates")
            return "rates", 0, f"even the rate model would take about {2 * (once + per_sample):.2g} s, over {limit}"
        if self.measure == "rates":
            return "rates", n, "" if n == wanted else f" (more would exceed {limit})"
        return "rates", n, f" (simulating {min(wanted, MIN_SIM_SAMPLES)} would exceed {limit})"

    @staticmethod
    def _predict(graph: Graph, x: np.ndarray, how: str) -> np.ndarray:
        if how == "rates":
            return readout_scores(graph, x).argmax(axis=1)
        return simulate(graph, x, chains=len(x)).predictions  # one sample per chain: no carried-over state

    @staticmethod
    def _loihi(graph: Graph, bits: int) -> tuple[float, str]:
        if bits != 8:
            raise PassError(f"bits={bits}: Loihi's weights as nengo-loihi sets them have 8 bits")
        try:
            changed, blocks, approximated = quantize_graph(graph)
        except ValueError as exc:
            raise PassError(str(exc)) from None
        what = f"Loihi's 8-bit weights per core (nengo-loihi's discretization of {blocks} blocks)"
        if approximated:
            what += f"; {approximated} shared weights differ between the blocks that use them (sim approximates those)"
        return changed, f"{what}; largest change {changed:.3g} of a block's largest weight"

    def _shift(self, graph: Graph, bits: int) -> float:
        levels = 2**bits - 1
        worst = 0.0
        for pop in graph.ops_of("snn.population"):
            projs = [p for p in graph.inputs(pop) if not from_current_source(graph, p)]
            n = math.prod(graph.shape(pop))
            exc, inh = np.zeros(n), np.zeros(n)
            for proj in projs:
                pos, neg = positive_negative_sums(graph, proj)
                exc += pos
                inh += neg
            shifts = (ring_buffer_shift(float(exc.max(initial=0))), ring_buffer_shift(float(inh.max(initial=0))))
            quanta = [2.0 ** (e + 1 - bits) for e in shifts]
            for proj in projs:
                worst = max(worst, self._round_projection(graph, proj, quanta, levels))
            graph.set_op(pop, replace(graph.op(pop), weight_shift=shifts))
        return worst

    def _linear(self, graph: Graph, bits: int) -> float:
        levels = 2 ** (bits - 1) - 1
        worst = 0.0
        for proj in graph.ops_of("snn.projection"):
            if from_current_source(graph, proj):
                continue
            op = graph.op(proj)
            w = graph.tensor(op.weight) if op.weight is not None else np.array([op.scale])
            top = float(np.abs(w).max(initial=0))
            if top > 0:
                worst = max(worst, self._round_projection(graph, proj, [top / levels] * 2, levels))
        return worst

    @staticmethod
    def _round_projection(graph: Graph, proj: str, quanta: list[float], levels: int) -> float:
        """Round one projection's weights: positive ones with quanta[0], negative with quanta[1].
        Returns the largest change relative to the largest weight."""
        op = graph.op(proj)
        w = graph.tensor(op.weight) if op.weight is not None else np.array([op.scale], np.float32)
        q = round_by_sign(w, quanta, levels)
        top = float(np.abs(w).max(initial=0))
        change = float(np.abs(q - w).max(initial=0)) / top if top > 0 else 0.0
        if op.weight is not None:
            graph.set_op(proj, replace(op, weight=graph.add_tensor(op.weight.name, q.astype(np.float32))))
        else:
            graph.set_op(proj, replace(op, scale=float(q[0])))
        return change
