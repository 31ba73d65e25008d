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
simulator (the spiking network before and after rounding), or with the faster rate model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir.semantics.connectivity import from_current_source, projection_matrix
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


def round_to(values: np.ndarray, quantum: float, levels: int) -> np.ndarray:
    """Round to multiples of ``quantum`` (half to even, as numpy.rint), magnitudes <= levels."""
    q = np.clip(np.rint(np.asarray(values, np.float64) / quantum), -levels, levels)
    return (q * quantum).astype(np.float32)


@dataclass
class Quantize(Pass):
    name = "quantize"
    dialect = "snn"
    summary = "round weights to the target's fixed-point resolution and report the accuracy effect"
    bits: Optional[int] = None  # None: the machine's weight_bits (see Pass.setting)
    scheme: Optional[Literal["shift", "linear", "loihi"]] = None  # None: the machine's weight_scheme
    measure: Literal["sim", "rates", "none"] = "sim"
    measure_samples: int = 128
    reads = ("weight_bits", "weight_scheme")
    homes = {"bits": "weight_bits", "scheme": "weight_scheme"}

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        bits = self.setting(ctx, "weight_bits")
        if bits is None:
            raise PassError(f"target {ctx.target.name} has floating-point weights; give bits=N to quantize")
        scheme = self.setting(ctx, "weight_scheme")
        x = None if ctx.calibration is None or self.measure == "none" else ctx.calibration[: self.measure_samples]
        original = graph.copy()
        if scheme == "loihi":
            changed, what = self._loihi(graph, bits)
        else:
            changed = self._shift(graph, bits) if scheme == "shift" else self._linear(graph, bits)
            what = f"{bits}-bit weights ({scheme}); largest change {changed:.3g} of the weight range"
        graph.prune_tensors()
        if x is None:
            ctx.info(what + "; the accuracy effect is not measured (no calibration data or measure=none)")
            return graph
        before, after = (self._predict(g, x) for g in (original, graph))
        how = "simulated" if self.measure == "sim" else "rate-model"
        if ctx.calibration_labels is not None:
            y = ctx.calibration_labels[: len(x)]
            ctx.info(
                f"{what}; {how} accuracy {np.mean(before == y):.4f} -> {np.mean(after == y):.4f} "
                f"on {len(x)} calibration samples"
            )
        else:
            ctx.info(
                f"{what}; {how} predictions unchanged on {np.mean(before == after):.2%} of {len(x)} calibration samples"
            )
        return graph

    def _predict(self, graph: Graph, x: np.ndarray) -> np.ndarray:
        if self.measure == "rates":
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
                m = projection_matrix(graph, proj)
                exc += np.asarray(m.maximum(0).sum(axis=1)).ravel()
                inh -= np.asarray(m.minimum(0).sum(axis=1)).ravel()
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
        q = np.where(w >= 0, round_to(w, quanta[0], levels), round_to(w, quanta[1], levels))
        top = float(np.abs(w).max(initial=0))
        change = float(np.abs(q - w).max(initial=0)) / top if top > 0 else 0.0
        if op.weight is not None:
            graph.set_op(proj, replace(op, weight=graph.add_tensor(op.weight.name, q.astype(np.float32))))
        else:
            graph.set_op(proj, replace(op, scale=float(q[0])))
        return change
