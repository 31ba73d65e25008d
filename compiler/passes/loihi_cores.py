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

The counts are numpy over flat (axon, post neuron, weight id) entries, not loops over axons: a
core's entries are one ``searchsorted`` range of the entries sorted by post neuron, and its
distinct (weights, indices) per axon are told apart by a 64-bit hash of each axon's entries,
confirmed entry by entry (different keys that share a hash fall back to comparing bytes). A dense
projection's rows are all distinct where one of the core's columns holds no repeated weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
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
    on-chip convolution cannot express it, a synapse list costs less, or nengo-loihi 1.1 could not
    place it: a convolution that never reads its last input pixel ends its synapse with an axon
    without weights, and ``Core.add_synapse`` then fails on the core's next synapse (a list from
    the pixels up to the last one read has no such axon)."""
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
    (_, oh, ow), (post,) = graph.shape(proj), graph.users(proj)
    unread = (oh - 1) * strides[0] - top + kernel[0] < h or (ow - 1) * strides[1] - left + kernel[1] < w
    if unread and len(graph.inputs(post)) > 1:
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


def synapse_bits(weights: np.ndarray, index_bits: int = 0) -> np.ndarray:
    """Synapse memory of axons storing ``weights`` weights each: runs of 64, (n * (8 + index bits) + 10)
    bits rounded up to 64-bit words (SynapseConfig.bits_per_axon)."""
    full, rest = np.divmod(np.asarray(weights, np.int64), 64)

    def run(n: Any) -> Any:
        return -64 * (-(n * (8 + index_bits) + 10) // 64)

    return full * run(64) + np.where(rest > 0, run(rest), 0)


def bits_per_axon(weights: int, index_bits: int = 0) -> int:
    """Synapse memory of one axon's weights (see ``synapse_bits``)."""
    return int(synapse_bits(np.array([weights]), index_bits)[0])


def index_bits(largest: int) -> int:
    """The index width a synapse needs for local indices up to ``largest``."""
    need = int(np.ceil(np.log2(largest + 1))) if largest > 0 else 0
    return next((b for b in INDEX_BITS if b >= need), need)  # over 12: nengo-loihi fails, so do we


@dataclass
class Axons:
    """One projection seen from its input axons. A dense projection keeps its (pre, post) weights:
    every axon reaches every post neuron. Otherwise flat entries, axon by axon: axon ``a`` reaches
    post neurons ``post[ptr[a]:ptr[a + 1]]`` (ascending), each with ``atoms`` weights (a
    convolution's input channels) whose bytes ``weight_id`` names (equal bytes, equal ids)."""

    ptr: np.ndarray  # (axons + 1,) int64
    post: np.ndarray  # (entries,) int64
    weight_id: np.ndarray  # (entries,) int64
    atoms: int
    conv: bool
    whole_bits: int  # bits of the original synapse (post population on one core)
    pre_axon: np.ndarray  # the axon of each pre neuron (its pixel for a convolution)
    dense: Optional[np.ndarray] = None  # (pre, post) float32 weights of a dense projection
    _index: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default=None, repr=False)
    _distinct_column: dict[int, bool] = field(default_factory=dict, repr=False)

    @property
    def count(self) -> int:
        """The number of input axons."""
        return len(self.ptr) - 1

    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(axon of each entry, entries ordered by post neuron, their post neurons), worked out once."""
        if self._index is None:
            axon = np.repeat(np.arange(self.count), np.diff(self.ptr))
            by_post = np.argsort(self.post, kind="stable")
            self._index = (axon, by_post, self.post[by_post])
        return self._index


def _flat(targets: list[tuple[np.ndarray, np.ndarray]], n_axons: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ptr, post, weight ids) from per-axon (post neurons, weight ids)."""
    lengths = np.array([len(ids) for ids, _ in targets], np.int64)
    ptr = np.zeros(n_axons + 1, np.int64)
    np.cumsum(lengths, out=ptr[1:])
    post = np.concatenate([ids for ids, _ in targets]).astype(np.int64) if targets else np.zeros(0, np.int64)
    wid = np.concatenate([w for _, w in targets]).astype(np.int64) if targets else np.zeros(0, np.int64)
    return ptr, post, wid


def _byte_ids(rows: np.ndarray) -> np.ndarray:
    """Per row of a 2-d array an id, equal for rows of equal bytes."""
    rows = np.ascontiguousarray(rows)
    width = rows.dtype.itemsize * rows.shape[1]
    whole = {4: np.uint32, 8: np.uint64}.get(width, np.dtype((np.void, width)))  # integers sort faster
    return np.unique(rows.view(whole).ravel(), return_inverse=True)[1].astype(np.int64).ravel()


def axons(graph: Graph, proj: str) -> Axons:
    """The input axons of a projection as nengo-loihi builds it."""
    (pre,) = graph.inputs(proj)
    n_pre, n_post = math.prod(graph.shape(pre)), math.prod(graph.shape(proj))
    kind = form(graph, proj)
    if kind == "dense":
        w = np.ascontiguousarray(graph.tensor(graph.op(proj).weight).astype(np.float32).T)  # (pre, post)
        empty = np.zeros(0, np.int64)
        whole = n_pre * bits_per_axon(n_post)
        return Axons(np.arange(n_pre + 1), empty, empty, 1, False, whole, np.arange(n_pre), dense=w)
    if kind == "sparse":  # one axon per pre neuron up to the last with a synapse (senders)
        c = connections(graph, proj)
        order = np.lexsort((c.post, c.pre))
        pre, post, weight = c.pre[order], c.post[order], c.weight[order].astype(np.float32)
        n_axons = senders(pre)
        ptr = np.searchsorted(pre, np.arange(n_axons + 1)).astype(np.int64)
        whole = int(synapse_bits(np.diff(ptr)).sum())
        return Axons(ptr, post, _byte_ids(weight[:, None]), 1, False, whole, np.arange(n_axons))
    return conv_axons(graph, proj)


def _windows(size: int, pad: int, kernel: int, stride: int, out: int) -> list[Optional[tuple[np.ndarray, int]]]:
    """Per input row (or column) of a convolution: the kernel positions (of the flipped kernel) that
    reach an output, and the first output reached; None where none does."""
    result: list[Optional[tuple[np.ndarray, int]]] = []
    for i in range(size):
        r = np.arange(i + pad + 1 - kernel, i + pad + 1)
        m = (r >= 0) & (r < (out - 1) * stride + 1) & (r % stride == 0)
        result.append((np.flatnonzero(m), int(r[m][0] // stride)) if m.any() else None)
    return result


def conv_axons(graph: Graph, proj: str) -> Axons:
    """A convolution's axons: one per input pixel, with its weights for every input channel
    (conv.py conv2d_loihi_weights, channels first, the kernel flipped): per output channel f, then
    per reached output row and column, the flipped kernel's (C,) weights at that position."""
    (pre,) = graph.inputs(proj)
    c, h, w = graph.shape(pre)
    f, out_h, out_w = graph.shape(proj)
    args = convolution(graph, proj)
    assert args is not None
    (kh, kw), (sy, sx) = args["kernel_size"], args["strides"]
    flipped = conv_kernel(graph, proj).astype(np.float32).transpose(2, 0, 1, 3)[:, ::-1, ::-1, :]  # (C, kh, kw, F)
    column = _byte_ids(flipped.transpose(1, 2, 3, 0).reshape(kh * kw * f, c)).reshape(kh, kw, f)
    pad_y = same_pads(h, kh, sy)[0] if args["padding"] == "same" else 0
    pad_x = same_pads(w, kw, sx)[0] if args["padding"] == "same" else 0
    rows, cols = _windows(h, pad_y, kh, sy, out_h), _windows(w, pad_x, kw, sx, out_w)
    channel = np.arange(f)[:, None, None] * out_h * out_w
    targets: list[tuple[np.ndarray, np.ndarray]] = []
    entries: dict[tuple, tuple[int, int]] = {}
    for row in rows:
        for col in cols:
            if row is None or col is None:
                targets.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            (ky, oy), (kx, ox) = row, col
            offset = oy * out_w + ox
            rel = (channel + np.arange(ky.size)[None, :, None] * out_w + np.arange(kx.size)).ravel()
            base = offset - offset % 256
            entries.setdefault((ky.tobytes(), kx.tobytes(), base), (c * rel.size, base + int(rel[-1])))
            targets.append((offset + rel, column[ky][:, kx].transpose(2, 0, 1).ravel()))
    bits = index_bits(max(top for _, top in entries.values()))
    whole = sum(bits_per_axon(size, bits) for size, _ in entries.values())
    ptr, post, wid = _flat(targets, h * w)
    return Axons(ptr, post, wid, c, True, int(whole), np.tile(np.arange(h * w), c))


_SALT = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element by element."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(*columns: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each element's tuple of integers."""
    h = np.zeros(np.shape(columns[0]), np.uint64)
    for col in columns:
        h = _mix((h + _SALT) ^ np.asarray(col).astype(np.uint64))
    return h


def _distinct(
    h: np.ndarray, same: Callable[[np.ndarray, np.ndarray], np.ndarray], key: Callable[[int], bytes]
) -> np.ndarray:
    """The first item of each distinct key, in order. ``h``: a hash of each item's key (equal keys,
    equal hashes); ``same(a, b)``: whether items a[i] and b[i] have equal keys; ``key(i)``: item
    i's key as bytes, read only where different keys share a hash."""
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    rep = first[inverse.ravel()]
    later = np.flatnonzero(rep != np.arange(h.size))
    if same(later, rep[later]).all():
        return np.sort(first)
    seen: dict[bytes, int] = {}
    for i in range(h.size):
        seen.setdefault(key(i), i)
    return np.array(sorted(seen.values()), np.int64)


def _runs(ax: Axons, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries reaching post neurons [lo, hi), axon by axon in ascending post order (flat
    indices), where each axon's run starts among them and its length."""
    axon_of, by_post, sorted_post = ax.index()
    a, b = np.searchsorted(sorted_post, (lo, hi))
    idx = np.sort(by_post[a:b])
    axon = axon_of[idx]
    start = np.flatnonzero(np.diff(axon, prepend=-1))
    return idx, start, np.diff(start, append=idx.size)


def _flat_use(ax: Axons, lo: int, hi: int) -> tuple[int, int]:
    """(input axons, synapse bits) of a flat projection on the core holding [lo, hi) of its several
    cores: each distinct (weights, local indices) of an axon stored once."""
    idx, start, lengths = _runs(ax, lo, hi)
    if idx.size == 0:
        return 0, 0
    local = ax.post[idx] - lo
    if ax.conv:
        local -= np.repeat(local[start] % 256, lengths)
    wid = ax.weight_id[idx]
    rank = np.arange(idx.size) - np.repeat(start, lengths)
    h = _hash(np.add.reduceat(_hash(wid, local, rank), start), lengths)

    def same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        result = lengths[x] == lengths[y]
        x, y = x[result], y[result]
        n = lengths[x]
        pair = np.repeat(np.arange(x.size), n)
        off = np.arange(pair.size) - np.repeat(np.cumsum(n) - n, n)
        i, j = start[x][pair] + off, start[y][pair] + off
        differs = (wid[i] != wid[j]) | (local[i] != local[j])
        result[np.flatnonzero(result)[np.bincount(pair[differs], minlength=x.size) > 0]] = False
        return result

    def key(r: int) -> bytes:
        run = slice(start[r], start[r] + lengths[r])
        return bytes(str(lengths[r]), "ascii") + b":" + wid[run].tobytes() + local[run].tobytes()

    first = _distinct(h, same, key)
    bits = index_bits(int(local.max())) if ax.conv else 0
    return start.size, int(synapse_bits(lengths[first] * ax.atoms, bits).sum())


def _dense_bits(ax: Axons, lo: int, hi: int) -> int:
    """Synapse bits of a dense projection on the core holding [lo, hi): each distinct row of
    weights stored once. A column whose weights differ on every axon proves all rows distinct."""
    assert ax.dense is not None
    n_pre = ax.dense.shape[0]
    for col in range(lo, min(hi, lo + 4)):
        if col not in ax._distinct_column:
            ax._distinct_column[col] = np.unique(ax.dense[:, col].view(np.uint32)).size == n_pre
        if ax._distinct_column[col]:
            return n_pre * bits_per_axon(hi - lo)
    rows = np.ascontiguousarray(ax.dense[:, lo:hi]).view(np.uint32)
    h = _hash(rows, np.arange(hi - lo)).sum(axis=1, dtype=np.uint64)
    first = _distinct(h, lambda x, y: (rows[x] == rows[y]).all(axis=1), lambda r: rows[r].tobytes())
    return first.size * bits_per_axon(hi - lo)


def senders(pre: np.ndarray) -> int:
    """The pre neurons a synapse list is connected from (as the loihi run script connects it): those
    up to the last that has a synapse, none for an empty list."""
    return int(pre.max()) + 1 if len(pre) else 0


def block_use(ax: Axons, n_post: int, lo: int, hi: int) -> tuple[int, int]:
    """(input axons, synapse bits) one projection costs the core holding post neurons [lo, hi)."""
    if lo == 0 and hi == n_post:  # on one core: nengo-loihi keeps the original synapse
        return ax.count, ax.whole_bits
    if ax.dense is not None:
        return ax.count, _dense_bits(ax, lo, hi)  # a dense axon reaches every post neuron
    return _flat_use(ax, lo, hi)


def _changes(ax: Axons, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (axon, post core) pairs of a flat projection whose post population has cores of
    ``step`` neurons: an axon's post neurons ascend, so a pair starts where axon or core changes."""
    axon = ax.index()[0]
    core = ax.post // step
    new = np.ones(axon.size, bool)
    new[1:] = (axon[1:] != axon[:-1]) | (core[1:] != core[:-1])
    return axon[new], core[new]


def _step(cores: list[tuple[int, int]]) -> int:
    """The size of consecutive equal slices (``slices``) but perhaps the last."""
    step = cores[0][1] - cores[0][0]
    if any(lo != k * step for k, (lo, _) in enumerate(cores)):
        raise ValueError("cores must be consecutive slices of equal size from neuron 0")
    return step


def in_axon_counts(ax: Axons, n_post: int, cores: list[tuple[int, int]]) -> np.ndarray:
    """Per core of the post population (``slices``), the input axons this projection gives it."""
    if ax.dense is not None or len(cores) == 1:
        return np.full(len(cores), ax.count, np.int64)  # a dense axon reaches every core; one core keeps every axon
    _, core = _changes(ax, _step(cores))
    return np.bincount(core, minlength=len(cores))


def _reach(ax: Axons, cores: list[tuple[int, int]]) -> np.ndarray:
    """Per input axon the number of cores (``slices`` of the post population) it reaches."""
    if ax.dense is not None:
        return np.full(ax.count, len(cores), np.int64)
    axon, _ = _changes(ax, _step(cores))
    return np.bincount(axon, minlength=ax.count)


def slices(n: int, per_core: Optional[tuple[int, ...]]) -> list[tuple[int, int]]:
    """The cores' consecutive slices [lo, hi) of ``n`` neurons (a Loihi block is one such slice)."""
    if per_core is not None and len(per_core) != 1:
        raise ValueError(f"per_core {list(per_core)}: Loihi blocks are consecutive slices (one number)")
    step = per_core[0] if per_core else n
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def _input_axons(graph: Graph, pop: str, known: dict[str, Axons]) -> list[Axons]:
    """The axons of ``pop``'s input projections (current sources apart), worked out once into ``known``."""
    projs = [p for p in graph.inputs(pop) if not from_current_source(graph, p)]
    for p in projs:
        if p not in known:
            known[p] = axons(graph, p)
    return [known[p] for p in projs]


def core_use(graph: Graph, known: Optional[dict[str, Axons]] = None) -> dict[str, dict[str, list[int]]]:
    """Per population, per core of its plan: ``in_axons``, ``synapse_bits`` and ``out_axons``;
    ``known``: projections' axons already worked out (filled in as they are)."""
    known = {} if known is None else known
    pops = graph.ops_of("snn.population")
    cores = {p: slices(math.prod(graph.shape(p)), graph.op(p).per_core) for p in pops}
    totals = {
        p: {key: np.zeros(len(cores[p]), np.int64) for key in ("in_axons", "synapse_bits", "out_axons")} for p in pops
    }
    for pop in pops:
        n_post = math.prod(graph.shape(pop))
        for proj in graph.inputs(pop):
            if from_current_source(graph, proj):
                continue
            if proj not in known:
                known[proj] = axons(graph, proj)
            ax = known[proj]
            totals[pop]["in_axons"] += in_axon_counts(ax, n_post, cores[pop])
            totals[pop]["synapse_bits"] += [block_use(ax, n_post, lo, hi)[1] for lo, hi in cores[pop]]
            (pre,) = graph.inputs(proj)
            if pre in totals:
                totals[pre]["out_axons"] += _out_axons(ax, cores[pre], cores[pop])
    return {p: {key: [int(x) for x in values] for key, values in use.items()} for p, use in totals.items()}


def _out_axons(ax: Axons, pre_cores: list[tuple[int, int]], post_cores: list[tuple[int, int]]) -> np.ndarray:
    """The output axons a projection costs each pre core: per distinct axon of its neurons, one per
    post core the axon reaches (any axon where the post population has one core), two for a
    convolution's."""
    slots = 2 if ax.conv else 1
    if ax.count == 0:
        return np.zeros(len(pre_cores), np.int64)
    pairs = np.unique(np.arange(len(ax.pre_axon)) // _step(pre_cores) * ax.count + ax.pre_axon)
    core, axon = pairs // ax.count, pairs % ax.count
    reach = np.ones(ax.count, np.int64) if len(post_cores) == 1 else _reach(ax, post_cores)
    return slots * np.bincount(core, weights=reach[axon], minlength=len(pre_cores)).astype(np.int64)


def fitting_per_core(
    graph: Graph, pop: str, most: int, unit: int, in_axons: Optional[int], bits: Optional[int], known: dict[str, Axons]
) -> int:
    """The largest per-core size, at most ``most`` and a multiple of ``unit`` (whole channels),
    that cuts population ``pop`` into equal cores whose input axons and synapse memory fit
    (nengo-loihi's own split takes equal parts too). Returns the smallest size tried when none fits.
    The axons of ``pop``'s input projections are worked out once, into ``known``."""
    n = math.prod(graph.shape(pop))
    inputs = _input_axons(graph, pop, known)

    def axons_fit(per_core: int) -> bool:
        cores = slices(n, (per_core,))
        used = sum((in_axon_counts(ax, n, cores) for ax in inputs), np.zeros(len(cores), np.int64))
        return in_axons is None or int(used.max(initial=0)) <= in_axons

    def fits(per_core: int) -> bool:
        if not axons_fit(per_core):
            return False
        return bits is None or all(
            sum(block_use(ax, n, lo, hi)[1] for ax in inputs) <= bits for lo, hi in slices(n, (per_core,))
        )

    if inputs and not axons_fit(min(unit, n)):
        return unit  # a core's input axons include those of each whole unit on it: no size fits
    cores = -(-n // most)
    while True:
        per_core = min(most, unit * math.ceil(math.ceil(n / cores) / unit))
        if per_core <= unit or fits(per_core):
            return per_core
        cores = max(cores + 1, -(-n // (per_core - unit)))  # the next count that gives smaller cores
