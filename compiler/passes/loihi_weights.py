"""nengo-loihi 1.1's discretization of one core (a ``LoihiBlock``), in numpy: what ``quantize``
does with ``weight_scheme = "loihi"``.

nengo-loihi (``builder/discretize.py``: ``discretize_compartment``, ``discretize_synapse``,
``discretize_weights``, ``bias_to_manexp``) discretizes each block after splitting: the largest
weight w_max of all synapses into the block sets the weight scale 255 / w_max; an exponent
w_exp in 0..-7 is the largest for which the threshold and biases fit their mantissas; each
synapse keeps 8-bit mixed-sign weights (7 bits of magnitude, steps of 2 w_max / 255), with an
extra exponent dw when its own largest weight is far below w_max; biases keep a 12-bit
mantissa and a 3-bit exponent. The units are nengo-loihi's: the threshold of a
SpikingRectifiedLinear compartment is 1 / dt (dt in seconds) and a spike through a
transform t adds t / dt, so a transform of w / v_threshold adds w in snnc's units.

``discretize_block`` returns the weights and biases on those grids, as floats in the same
units: what nengo-loihi turns into exactly the chip's integers again. The chip computes with
them relative to its threshold rounded to a multiple of 64, i.e. scaled by the block's
``scale`` (biases by S_SCALE times it); ``quantize_graph`` gives the graph those chip values,
which the reference simulator then runs (all but the 1/4096 of each step's synaptic current
that Loihi carries into the next), and records the scales as the population's ``core_scale``.
Every block's largest weight comes out at 127/127.5 of w_max: the emitter divides by the scale
and multiplies by ``EMIT_FACTOR`` so that nengo-loihi finds the same w_max (targets/loihi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir.semantics.connectivity import from_current_source

from .loihi_cores import slices

VTH_MAX = (2**17 - 1) * 2**6  # mantissa bits and the fixed exponent 6 (discretize.py VTH_MAX)
BIAS_MAN_MAX = 2**12 - 1
BIAS_MAX = BIAS_MAN_MAX * 2 ** (2**3 - 1)  # 12-bit mantissa, 3-bit exponent (discretize.py BIAS_MAX)
WEIGHT_LEVELS = 127  # 8-bit mixed-sign weights: shift_bits 1, so 2**7 - 1 magnitudes (block.py)
MIN_WEIGHT_EXP = -6
EMIT_FACTOR = 255.0 / 254.0  # 127 steps of 2 w_max / 254 end at w_max
U_DECAY = 2**12 - 1 - 1  # synapse=None: decay_u = round(1 * 4095 - 1)


def decay_magnitude(decay: float, x0: float = 2**21, bits: int = 12, offset: int = 0) -> float:
    """nengo-loihi's estimate of the summed integer decays of x0 (discretize.py decay_magnitude)."""
    q = 0.494
    r = (2**bits - offset - decay) / 2**bits
    n = -(math.log1p(x0 * (1 - r) / q)) / math.log(r)
    principal = (1 - r ** (n + 1)) / (1 - r)
    return principal - q / ((1 - r) * x0) * (n + 1 - (1 - r ** (n + 1)) / (1 - r))


S_SCALE = decay_magnitude(U_DECAY, offset=1)  # 1 / u_infactor: the current's carry into later steps


@dataclass
class Block:
    """A block's discretization: its largest weight, weight exponent and threshold (nengo-loihi's
    integers), ``scale`` (how much the chip's weights relative to its threshold exceed the grid
    values: 2^w_exp 64 w_scale / (vth dt); its biases exceed theirs by S_SCALE times that) and how
    many synapses nengo-loihi clamps at weight_exp -6 (where the chip's weights differ more)."""

    w_max: float
    w_exp: int
    vth: int
    scale: float
    clamped: int


def bias_grid(bias: np.ndarray, b_scale: float) -> np.ndarray:
    """Biases as nengo-loihi rounds them: mantissa and exponent (discretize.py bias_to_manexp)."""
    b = np.round(bias * b_scale)
    exp = np.ceil(np.log2(np.maximum(np.abs(b) / BIAS_MAN_MAX, 1)))
    return np.round(b / 2**exp) * 2**exp / b_scale


def discretize_block(
    weights: list[np.ndarray], bias: np.ndarray, dt: float
) -> tuple[list[np.ndarray], np.ndarray, Block]:
    """``weights``: one float array per synapse into the block (transforms / dt), ``bias`` per
    compartment, ``dt`` in seconds. Returns the weights and biases on Loihi's grids and the block."""
    w_max = max((float(np.abs(w).max(initial=0)) for w in weights), default=0.0)
    vth = 1.0 / dt
    if w_max <= 1e-8:  # no weights: nengo-loihi scales for the biases alone
        b_max = float(np.abs(bias).max(initial=0))
        b_scale = BIAS_MAX / b_max if b_max > 1e-8 else (2**21 - 1) / (vth + 1)
        while b_max > 1e-8 and np.round(vth * b_scale) > VTH_MAX:
            b_scale /= 2.0
        vth_int = int(round(float(np.round(vth * b_scale)) / 64)) * 64
        return [np.zeros_like(w) for w in weights], bias_grid(bias, b_scale), Block(0.0, 0, vth_int, 1.0, 0)
    w_scale = 255.0 / w_max
    for w_exp in range(0, -8, -1):
        v_scale = S_SCALE * w_scale * 2.0 ** (6 + w_exp)
        if np.round(vth * v_scale) <= VTH_MAX and np.abs(np.round(bias * v_scale)).max(initial=0) <= BIAS_MAX:
            break
    else:
        raise ValueError("no weight exponent fits the threshold and biases (nengo-loihi cannot build it)")
    out, clamped = [], 0
    for w in weights:
        top = float(np.abs(w).max(initial=0))
        dw = int(math.floor(math.log2(w_max / top))) if top > 1e-16 else w_exp - MIN_WEIGHT_EXP
        exp2 = max(w_exp - dw, MIN_WEIGHT_EXP)
        clamped += int(exp2 != w_exp - dw and top > 1e-16)
        m = np.clip(np.round(w * w_scale * 2.0**dw / 2), -WEIGHT_LEVELS, WEIGHT_LEVELS)
        s2 = 1 + exp2
        if s2 < 0:  # the chip's two-part shift loses low bits (discretize_weights, lossy_shift)
            m = np.clip(np.round(m * 2.0**s2) / 2.0**s2, -WEIGHT_LEVELS, WEIGHT_LEVELS)
        out.append(m * 2 / (w_scale * 2.0**dw))
    vth_int = int(round(float(np.round(vth * v_scale)) / 64)) * 64
    scale = 2.0**w_exp * 64 * w_scale / (vth_int * dt)
    return out, bias_grid(bias, v_scale), Block(w_max, w_exp, vth_int, scale, clamped)


def _weights(graph: Graph, proj: str) -> np.ndarray:
    """A projection's weights as one array whose first axis the blocks slice: a dense matrix's
    rows, a kernel's output channels, or the one scale of a pool or one-to-one projection."""
    op = graph.op(proj)
    if op.connectivity in ("dense", "conv"):
        return graph.tensor(op.weight).astype(np.float32)
    return np.array([op.scale], np.float32)  # pool, one_to_one


def _rows(graph: Graph, proj: str, lo: int, hi: int) -> slice:
    """The part of ``_weights(proj)`` that neurons [lo, hi) of its population use."""
    op = graph.op(proj)
    if op.connectivity == "dense":
        return slice(lo, hi)
    if op.connectivity == "conv":
        per_channel = math.prod(graph.shape(proj)[1:])
        return slice(lo // per_channel, (hi - 1) // per_channel + 1)
    return slice(0, 1)


def _store(graph: Graph, proj: str, values: np.ndarray) -> None:
    op = graph.op(proj)
    if op.connectivity in ("dense", "conv"):
        graph.set_op(proj, replace(op, weight=graph.add_tensor(op.weight.name, values)))
    else:
        graph.set_op(proj, replace(op, scale=float(values[0])))


def quantize_graph(graph: Graph) -> tuple[float, int, int]:
    """Give every projection the weights, and every population the i_offset, that the chip
    computes with for each block of the population's ``per_core`` plan (relative to the
    population's threshold), and each population its ``core_scale``. Returns (largest change
    relative to a block's w_max, blocks, weights whose value differs between the blocks that
    share it: a kernel channel or a pool over several blocks, or a clamped weight exponent)."""
    dt_ms = graph_number(graph, "dt")
    dt = dt_ms / 1000.0
    worst, blocks, approximated = 0.0, 0, 0
    for pop in graph.ops_of("snn.population"):
        op = graph.op(pop)
        n = math.prod(graph.shape(pop))
        projs = [p for p in graph.inputs(pop) if not from_current_source(graph, p)]
        old = {p: _weights(graph, p) for p in projs}
        new = {p: w.copy() for p, w in old.items()}
        done = {p: np.zeros(len(w), bool) for p, w in old.items()}  # first-axis entries already written
        offset = graph.tensor(op.i_offset).astype(np.float64) if op.i_offset is not None else np.zeros(n)
        new_offset = offset.copy()
        to_nengo = 1.0 / (op.v_threshold * dt)  # a weight w adds w / v_threshold of the threshold 1 / dt
        scales = []
        for lo, hi in slices(n, op.per_core):
            rows = [_rows(graph, p, lo, hi) for p in projs]
            bias = offset[lo:hi] * dt_ms / op.v_threshold / dt  # i_offset * dt of v_threshold per step
            parts = [old[p][r].astype(np.float64) * to_nengo for p, r in zip(projs, rows, strict=True)]
            grids, grid_bias, block = discretize_block(parts, bias, dt)
            blocks += 1
            approximated += block.clamped
            scales.append(block.scale)
            new_offset[lo:hi] = grid_bias * S_SCALE * block.scale * op.v_threshold * dt / dt_ms
            for p, r, part, grid in zip(projs, rows, parts, grids, strict=True):
                chip = grid * block.scale
                if block.w_max > 0:
                    worst = max(worst, float(np.abs(chip - part).max(initial=0)) / block.w_max)
                value = (chip / to_nengo).astype(np.float32)
                seen = done[p][r]
                approximated += int(np.count_nonzero(new[p][r][seen] != value[seen]))
                new[p][r][~seen] = value[~seen]
                done[p][r] = True
        for p in projs:
            _store(graph, p, new[p])
        if op.i_offset is not None:
            op = replace(op, i_offset=graph.add_tensor(op.i_offset.name, new_offset.astype(np.float32)))
        graph.set_op(pop, replace(op, core_scale=tuple(scales)))
    return worst, blocks, approximated


def neuron_scales(graph: Graph, pop: str) -> np.ndarray:
    """Each neuron's ``core_scale`` factor (ones where the population has none)."""
    op = graph.op(pop)
    n = math.prod(graph.shape(pop))
    if op.core_scale is None:
        return np.ones(n)
    return np.concatenate(
        [np.full(hi - lo, c) for (lo, hi), c in zip(slices(n, op.per_core), op.core_scale, strict=True)]
    )
