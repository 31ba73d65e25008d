"""What a Loihi core (a nengo-loihi ``LoihiBlock``) of a split plan uses: input axons, synapse
memory bits, output axons, as nengo-loihi 1.1's ``LoihiBlock.utilization()`` counts them.

Read from nengo_loihi/block.py (``SynapseConfig.bits_per_axon``, ``Synapse.bits``,
``Axon.axon_slots``), builder/connection.py, conv.py (``conv2d_loihi_weights``) and
builder/split_blocks.py; checked block by block against nengo-loihi on dense, sparse, strided and
padded convolution, pooling and split plans on and off channel boundaries. The rules:

* A population on one core keeps nengo-loihi's original synapse: every pre neuron (every input
  pixel of a convolution) is an input axon, each stores its weights once.
* A population over several cores gets one synapse per core with the axons that reach it and
  every distinct (weights, indices) entry stored once (a pool's axons share one entry).
* Weights are 8-bit and stored in runs of 64 (``n * (8 + index bits) + 10`` bits, rounded up to
  64-bit words); dense synapses need no indices, convolutions 0 to 12 index bits.
* A pre core spends one output axon per (neuron, post core it reaches), two per pixel of a
  convolution (nengo-loihi's 32-bit population axons).

``form`` also decides how the loihi emitter writes each projection (dense, conv or sparse).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import connections, from_current_source

INDEX_BITS = (0, 6, 7, 8, 9, 10, 11, 12)  # the index widths a synapse format offers (block.py)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The (before, after) padding of nengo's ``padding="same"`` (TensorFlow's rule)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def convolution(graph: Graph, proj: str) -> Optional[dict[str, Any]]:
    """A conv projection as nengo.Convolution arguments (kernel apart), or None where nengo-loihi's
    on-chip convolution cannot express it or a synapse list costs less."""
    p = graph.op(proj)
    (pre,) = graph.inputs(proj)
    if p.connectivity != "conv" or isinstance(graph.op(pre), ir.Source):
        return None  # a pool: each neuron reaches one output (as a convolution every pixel would
        # reach every channel's core); the input raster: nengo-loihi convolves neurons' spikes only
    if p.groups != 1 or tuple(p.dilations) != (1, 1):
        return None
    _, h, w = graph.shape(pre)
    kernel = tuple(graph.tensor(p.weight).shape[2:])
    (top, left, bottom, right), strides = p.pads, tuple(p.strides)
    if (top, left, bottom, right) == (0, 0, 0, 0):
        padding = "valid"
    elif (top, bottom) == same_pads(h, kernel[0], strides[0]) and (left, right) == same_pads(w, kernel[1], strides[1]):
        padding = "same"
    else:
        return None
    return {"kernel_size": list(kernel), "strides": list(strides), "padding": padding}


def conv_kernel(graph: Graph, proj: str) -> np.ndarray:
    """The (kh, kw, in, out) kernel of a conv projection, as nengo.Convolution takes it."""
    return graph.tensor(graph.op(proj).weight).transpose(2, 3, 1, 0)


def form(graph: Graph, proj: str) -> str:
    """How the loihi target writes a projection: ``dense``, ``conv`` or ``sparse``."""
    if graph.op(proj).connectivity == "dense":
        return "dense"
    return "conv" if convolution(graph, proj) is not None else "sparse"


def bits_per_axon(weights: int, index_bits: int = 0) -> int:
    """Synapse memory of one axon's weights: runs of 64, (n * (8 + index bits) + 10) bits rounded
    up to 64-bit words (SynapseConfig.bits_per_axon)."""
    full, rest = divmod(int(weights), 64)

    def run(n: int) -> int:
        return -64 * (-(n * (8 + index_bits) + 10) // 64)

    return full * run(64) + (run(rest) if rest else 0)


def index_bits(largest: int) -> int:
    """The index width a synapse needs for local indices up to ``largest``."""
    need = int(np.ceil(np.log2(largest + 1))) if largest > 0 else 0
    return next((b for b in INDEX_BITS if b >= need), need)  # over 12: nengo-loihi fails, so do we


@dataclass
class Axons:
    """One projection seen from its input axons: per axon the post neurons it reaches and the
    weights it stores ((atoms, targets) float32), plus what an unsplit synapse costs."""

    targets: list[Optional[tuple[np.ndarray, np.ndarray]]]  # None: an input pixel that reaches nothing
    conv: bool
    whole_bits: int  # bits of the original synapse (post population on one core)
    pre_axon: np.ndarray  # the axon of each pre neuron (its pixel for a convolution)


def axons(graph: Graph, proj: str) -> Axons:
    """The input axons of a projection as nengo-loihi builds it."""
    (pre,) = graph.inputs(proj)
    n_pre, n_post = math.prod(graph.shape(pre)), math.prod(graph.shape(proj))
    kind = form(graph, proj)
    if kind == "dense":
        w = graph.tensor(graph.op(proj).weight).astype(np.float32).T  # (pre, post)
        everyone = np.arange(n_post)
        return Axons(
            [(everyone, w[j : j + 1]) for j in range(n_pre)], False, n_pre * bits_per_axon(n_post), np.arange(n_pre)
        )
    if kind == "sparse":
        c = connections(graph, proj)
        order = np.lexsort((c.post, c.pre))
        pre, post, weight = c.pre[order], c.post[order], c.weight[order].astype(np.float32)
        bounds = np.searchsorted(pre, np.arange(n_pre + 1))
        targets = [(post[a:b], weight[None, a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        whole = sum(bits_per_axon(b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        return Axons(targets, False, int(whole), np.arange(n_pre))
    return conv_axons(graph, proj)


def conv_axons(graph: Graph, proj: str) -> Axons:
    """A convolution's axons: one per input pixel, with its weights for every input channel
    (conv.py conv2d_loihi_weights, channels first, the kernel flipped)."""
    (pre,) = graph.inputs(proj)
    c, h, w = graph.shape(pre)
    f, out_h, out_w = graph.shape(proj)
    args = convolution(graph, proj)
    assert args is not None
    (kh, kw), (sy, sx) = args["kernel_size"], args["strides"]
    flipped = conv_kernel(graph, proj).astype(np.float32).transpose(2, 0, 1, 3)[:, ::-1, ::-1, :]  # (C, kh, kw, F)
    pad_y = same_pads(h, kh, sy)[0] if args["padding"] == "same" else 0
    pad_x = same_pads(w, kw, sx)[0] if args["padding"] == "same" else 0
    targets: list[Optional[tuple[np.ndarray, np.ndarray]]] = []
    entries: dict[tuple, tuple[int, int]] = {}
    for i in range(h):
        for j in range(w):
            ri, rj = np.arange(i + pad_y + 1 - kh, i + pad_y + 1), np.arange(j + pad_x + 1 - kw, j + pad_x + 1)
            mi = (ri >= 0) & (ri < (out_h - 1) * sy + 1) & (ri % sy == 0)
            mj = (rj >= 0) & (rj < (out_w - 1) * sx + 1) & (rj % sx == 0)
            if not mi.any() or not mj.any():
                targets.append(None)
                continue
            offset = ri[mi][0] // sy * out_w + rj[mj][0] // sx
            weights = flipped[:, mi[:, None] * mj, :].transpose(0, 2, 1).reshape(c, -1)  # (C, F * positions)
            ny, nx = int(mi.sum()), int(mj.sum())
            rel = (
                np.arange(f)[:, None, None] * out_h * out_w + np.arange(ny)[None, :, None] * out_w + np.arange(nx)
            ).ravel()
            base = offset - offset % 256
            entries.setdefault((mi.tobytes(), mj.tobytes(), base), (weights.size, base + int(rel.max())))
            targets.append((offset + rel, weights))
    bits = index_bits(max(top for _, top in entries.values()))
    whole = sum(bits_per_axon(size, bits) for size, _ in entries.values())
    return Axons(targets, True, int(whole), np.tile(np.arange(h * w), c))


def block_use(ax: Axons, n_post: int, lo: int, hi: int) -> tuple[int, int]:
    """(input axons, synapse bits) one projection costs the core holding post neurons [lo, hi)."""
    if lo == 0 and hi == n_post:  # on one core: nengo-loihi keeps the original synapse
        return len(ax.targets), ax.whole_bits
    stored: dict[tuple, int] = {}
    count, largest = 0, -1
    for item in ax.targets:
        if item is None:
            continue
        ids, weights = item
        inside = (ids >= lo) & (ids < hi)
        if not inside.any():
            continue
        count += 1
        local = ids[inside] - lo
        local = local - (local.min() % 256 if ax.conv else 0)
        kept = np.ascontiguousarray(weights[:, inside])
        key = (kept.tobytes(), kept.shape, local.astype(np.int32).tobytes())
        if key not in stored:
            stored[key] = kept.size
            largest = max(largest, int(local.max()))
    bits = index_bits(largest) if ax.conv else 0
    return count, sum(bits_per_axon(size, bits) for size in stored.values())


def reached(ax: Axons, lo: int, hi: int) -> np.ndarray:
    """Per input axon whether it reaches post neurons [lo, hi)."""
    return np.array([item is not None and bool(((item[0] >= lo) & (item[0] < hi)).any()) for item in ax.targets])


def slices(n: int, per_core: Optional[tuple[int, ...]]) -> list[tuple[int, int]]:
    """The cores' consecutive slices [lo, hi) of ``n`` neurons (a Loihi block is one such slice)."""
    if per_core is not None and len(per_core) != 1:
        raise ValueError(f"per_core {list(per_core)}: Loihi blocks are consecutive slices (one number)")
    step = per_core[0] if per_core else n
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def core_use(graph: Graph, known: Optional[dict[str, Axons]] = None) -> dict[str, dict[str, list[int]]]:
    """Per population, per core of its plan: ``in_axons``, ``synapse_bits`` and ``out_axons``;
    ``known``: projections' axons already worked out (filled in as they are)."""
    known = {} if known is None else known
    use: dict[str, dict[str, list[int]]] = {}
    pops = graph.ops_of("snn.population")
    cores = {p: slices(math.prod(graph.shape(p)), graph.op(p).per_core) for p in pops}
    for pop in pops:
        use[pop] = {
            "in_axons": [0] * len(cores[pop]),
            "synapse_bits": [0] * len(cores[pop]),
            "out_axons": [0] * len(cores[pop]),
        }
    for pop in pops:
        n_post = math.prod(graph.shape(pop))
        for proj in graph.inputs(pop):
            if from_current_source(graph, proj):
                continue
            ax = known[proj] = known.get(proj) or axons(graph, proj)
            for k, (lo, hi) in enumerate(cores[pop]):
                n_in, bits = block_use(ax, n_post, lo, hi)
                use[pop]["in_axons"][k] += n_in
                use[pop]["synapse_bits"][k] += bits
            (pre,) = graph.inputs(proj)
            if pre in use:
                _add_out_axons(use[pre]["out_axons"], ax, cores[pre], cores[pop], n_post)
    return use


def _add_out_axons(out: list[int], ax: Axons, pre_cores: list, post_cores: list, n_post: int) -> None:
    """The output axons a projection costs each pre core."""
    slots = 2 if ax.conv else 1
    if len(post_cores) == 1:
        for k, (lo, hi) in enumerate(pre_cores):
            out[k] += slots * np.unique(ax.pre_axon[lo:hi]).size
        return
    for lo, hi in post_cores:
        used = reached(ax, lo, hi)
        for k, (plo, phi) in enumerate(pre_cores):
            ids = ax.pre_axon[plo:phi]
            out[k] += slots * np.unique(ids[used[ids]]).size


def fitting_per_core(
    graph: Graph, pop: str, most: int, unit: int, in_axons: Optional[int], bits: Optional[int], known: dict[str, Axons]
) -> int:
    """The largest per-core size, at most ``most`` and a multiple of ``unit`` (whole channels),
    that cuts population ``pop`` into equal cores whose input axons and synapse memory fit
    (nengo-loihi's own split takes equal parts too). Returns the smallest size tried when none fits.
    The axons of ``pop``'s input projections are worked out once, into ``known``."""
    n = math.prod(graph.shape(pop))
    projs = [p for p in graph.inputs(pop) if not from_current_source(graph, p)]
    for p in projs:
        known[p] = known.get(p) or axons(graph, p)
    inputs = [known[p] for p in projs]
    cores = -(-n // most)
    while True:
        per_core = min(most, unit * math.ceil(math.ceil(n / cores) / unit))
        use = [[block_use(ax, n, lo, hi) for ax in inputs] for lo, hi in slices(n, (per_core,))]
        fits = all(
            (in_axons is None or sum(a for a, _ in core) <= in_axons)
            and (bits is None or sum(b for _, b in core) <= bits)
            for core in use
        )
        if fits or per_core <= unit:
            return per_core
        cores += 1
