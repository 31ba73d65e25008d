"""Loihi's core fitting at scale (issue 15, part 3): refusals that named their limit after minutes of
per-axon loops come at once, and every plan and count is the one the per-axon definition gives.

``_Reference`` is the per-axon code that passes/loihi_cores.py held before it was vectorised (a
Python loop over every axon of every core of every tried size): the definition the fast code must
match, count for count, on random networks with strided and padded convolutions, pooling,
one-to-one shortcuts, zero and repeated weights.
"""

from __future__ import annotations

import math
import re
from typing import Optional

import numpy as np
import pytest

import snnc
import snnc.passes.loihi_cores as cores
from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.errors import SnncError
from snnc.ir.semantics.connectivity import connections, from_current_source
from snnc.passes.loihi_cores import bits_per_axon, index_bits, same_pads, slices


class _Reference:
    """The per-axon definition: per axon its post neurons and (atoms, targets) weights."""

    @staticmethod
    def targets(graph: Graph, proj: str) -> tuple[list, bool, int, np.ndarray]:
        """(per-axon targets or None, conv, bits of the unsplit synapse, axon of each pre neuron)."""
        (pre,) = graph.inputs(proj)
        n_pre, n_post = math.prod(graph.shape(pre)), math.prod(graph.shape(proj))
        kind = cores.form(graph, proj)
        if kind == "dense":
            w = graph.tensor(graph.op(proj).weight).astype(np.float32).T
            everyone = np.arange(n_post)
            return (
                [(everyone, w[j : j + 1]) for j in range(n_pre)],
                False,
                n_pre * bits_per_axon(n_post),
                np.arange(n_pre),
            )
        if kind == "sparse":  # an axon per pre neuron up to the last with a synapse
            c = connections(graph, proj)
            order = np.lexsort((c.post, c.pre))
            pre_ids, post, weight = c.pre[order], c.post[order], c.weight[order].astype(np.float32)
            n_axons = int(pre_ids.max()) + 1 if len(pre_ids) else 0
            bounds = np.searchsorted(pre_ids, np.arange(n_axons + 1))
            spans = list(zip(bounds[:-1], bounds[1:], strict=True))
            whole = sum(bits_per_axon(b - a) for a, b in spans)
            return [(post[a:b], weight[None, a:b]) for a, b in spans], False, whole, np.arange(n_axons)
        c, h, w = graph.shape(pre)
        f, out_h, out_w = graph.shape(proj)
        args = cores.convolution(graph, proj)
        (kh, kw), (sy, sx) = args["kernel_size"], args["strides"]
        flipped = cores.conv_kernel(graph, proj).astype(np.float32).transpose(2, 0, 1, 3)[:, ::-1, ::-1, :]
        pad_y = same_pads(h, kh, sy)[0] if args["padding"] == "same" else 0
        pad_x = same_pads(w, kw, sx)[0] if args["padding"] == "same" else 0
        targets: list = []
        entries: dict = {}
        for i in range(h):
            for j in range(w):
                ri, rj = np.arange(i + pad_y + 1 - kh, i + pad_y + 1), np.arange(j + pad_x + 1 - kw, j + pad_x + 1)
                mi = (ri >= 0) & (ri < (out_h - 1) * sy + 1) & (ri % sy == 0)
                mj = (rj >= 0) & (rj < (out_w - 1) * sx + 1) & (rj % sx == 0)
                if not mi.any() or not mj.any():
                    targets.append(None)
                    continue
                offset = ri[mi][0] // sy * out_w + rj[mj][0] // sx
                weights = flipped[:, mi[:, None] * mj, :].transpose(0, 2, 1).reshape(c, -1)
                ny, nx = int(mi.sum()), int(mj.sum())
                rel = (
                    np.arange(f)[:, None, None] * out_h * out_w + np.arange(ny)[:, None] * out_w + np.arange(nx)
                ).ravel()
                base = offset - offset % 256
                entries.setdefault((mi.tobytes(), mj.tobytes(), base), (weights.size, base + int(rel.max())))
                targets.append((offset + rel, weights))
        bits = index_bits(max(top for _, top in entries.values()))
        whole = sum(bits_per_axon(size, bits) for size, _ in entries.values())
        return targets, True, whole, np.tile(np.arange(h * w), c)

    @staticmethod
    def block_use(ax: tuple, n_post: int, lo: int, hi: int) -> tuple[int, int]:
        targets, conv, whole, _ = ax
        if lo == 0 and hi == n_post:
            return len(targets), whole
        stored: dict = {}
        count, largest = 0, -1
        for item in targets:
            if item is None:
                continue
            ids, weights = item
            inside = (ids >= lo) & (ids < hi)
            if not inside.any():
                continue
            count += 1
            local = ids[inside] - lo
            local = local - (local.min() % 256 if conv else 0)
            kept = np.ascontiguousarray(weights[:, inside])
            key = (kept.tobytes(), kept.shape, local.astype(np.int32).tobytes())
            if key not in stored:
                stored[key] = kept.size
                largest = max(largest, int(local.max()))
        bits = index_bits(largest) if conv else 0
        return count, sum(bits_per_axon(size, bits) for size in stored.values())

    @classmethod
    def core_use(cls, graph: Graph) -> dict:
        pops = graph.ops_of("snn.population")
        plan = {p: slices(math.prod(graph.shape(p)), graph.op(p).per_core) for p in pops}
        use = {p: {k: [0] * len(plan[p]) for k in ("in_axons", "synapse_bits", "out_axons")} for p in pops}
        for pop in pops:
            n_post = math.prod(graph.shape(pop))
            for proj in graph.inputs(pop):
                if from_current_source(graph, proj):
                    continue
                ax = cls.targets(graph, proj)
                for k, (lo, hi) in enumerate(plan[pop]):
                    n_in, bits = cls.block_use(ax, n_post, lo, hi)
                    use[pop]["in_axons"][k] += n_in
                    use[pop]["synapse_bits"][k] += bits
                (pre,) = graph.inputs(proj)
                if pre in use:
                    cls.out_axons(use[pre]["out_axons"], ax, plan[pre], plan[pop])
        return use

    @staticmethod
    def out_axons(out: list, ax: tuple, pre_cores: list, post_cores: list) -> None:
        targets, conv, _, pre_axon = ax
        slots = 2 if conv else 1
        for lo, hi in post_cores:
            used = np.array([t is not None and bool(((t[0] >= lo) & (t[0] < hi)).any()) for t in targets])
            for k, (plo, phi) in enumerate(pre_cores):
                ids = pre_axon[plo:phi]
                out[k] += slots * np.unique(ids if len(post_cores) == 1 else ids[used[ids]]).size

    @classmethod
    def fitting(cls, graph: Graph, pop: str, most: int, unit: int, in_axons: Optional[int], bits: Optional[int]) -> int:
        n = math.prod(graph.shape(pop))
        inputs = [cls.targets(graph, p) for p in graph.inputs(pop) if not from_current_source(graph, p)]
        count = -(-n // most)
        while True:
            per_core = min(most, unit * math.ceil(math.ceil(n / count) / unit))
            use = [[cls.block_use(ax, n, lo, hi) for ax in inputs] for lo, hi in slices(n, (per_core,))]
            fits = all(
                (in_axons is None or sum(a for a, _ in core) <= in_axons)
                and (bits is None or sum(b for _, b in core) <= bits)
                for core in use
            )
            if fits or per_core <= unit:
                return per_core
            count += 1


def _tensor(graph: Graph, name: str, value: np.ndarray) -> ir.TensorRef:
    return graph.add_tensor(name, value.astype(np.float32))


def _kernel(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random weights with the repeats a synapse stores once: zero, equal and mirrored slices."""
    w = rng.normal(size=shape)
    w[0] = 0.0
    if shape[0] > 2:
        w[1] = w[2]
    if len(shape) == 4:
        w[-1] = 0.5  # a constant kernel: every position the same weights
        w[:, 0] = w[:, 0, ::-1, ::-1]
    return w


def _network(seed: int) -> Graph:
    """source -> conv -> a -> {conv -> b, one_to_one -> b (a residual sum)} -> pool -> c -> dense -> d."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(6, 11))
    g = Graph({"dt": 1.0, "presentation_time": 20.0})
    x = g.add("x", ir.Source(shape=(2, size, size), encoding="regular"))
    conv = ir.Projection(connectivity="conv", weight=_tensor(g, "w0", _kernel(rng, (6, 2, 3, 3))), pads=(1, 1, 1, 1))
    a = g.add("a", ir.Population(reset="zero"), [g.add("p0", conv, [x])])
    kernel, stride = int(rng.choice([1, 3, 5])), int(rng.choice([1, 2]))
    same = same_pads(size, kernel, stride)
    pads = (same[0], same[0], same[1], same[1]) if rng.random() < 0.7 else (0, 0, 0, 0)
    w1 = _tensor(g, "w1", _kernel(rng, (5, 6, kernel, kernel)))
    side = g.add("p1", ir.Projection(connectivity="conv", weight=w1, strides=(stride, stride), pads=pads), [a])
    out_shape = g.shape(side)
    n_b = math.prod(out_shape)
    skip = ir.Projection(connectivity="one_to_one", scale=0.5, post_shape=out_shape, offset=0)
    inputs = [side] + ([g.add("p2", skip, [a])] if math.prod(g.shape(a)) <= n_b else [])
    b = g.add("b", ir.Population(reset="zero"), inputs)
    pool = ir.Projection(connectivity="pool", kernel=(2, 2), strides=(2, 2), scale=0.25)
    c = g.add("c", ir.Population(reset="zero"), [g.add("p3", pool, [b])])
    n_c = math.prod(g.shape(c))
    w = _kernel(rng, (7, n_c))
    w[:, 3] = w[:, 4]  # two axons with the same weights: no column holds distinct weights only
    d = g.add(
        "d",
        ir.Population(reset="zero"),
        [g.add("p4", ir.Projection(connectivity="dense", weight=_tensor(g, "w4", w)), [c])],
    )
    g.outputs = [g.add("out", ir.Readout(), [d])]
    return g


def _planned(graph: Graph, per_core: int) -> Graph:
    return snnc.compile(
        graph, "loihi", pipeline="split-populations", settings={"neurons-per-core": str(per_core)}
    ).graph


@pytest.mark.parametrize("seed", range(6))
def test_core_counts_are_the_per_axon_definitions(seed: int) -> None:
    """Input axons, synapse bits and output axons of every core, over plans on and off channel bounds."""
    graph = _network(seed)
    for per_core in (7, 16, 40, 97):
        planned = _planned(graph, per_core)
        assert cores.core_use(planned) == _Reference.core_use(planned), per_core


@pytest.mark.parametrize("seed", range(3))
def test_fitted_sizes_are_the_per_axon_searchs(seed: int) -> None:
    """fitting_per_core (it skips sizes it tried and sizes the input axons rule out) returns what
    trying every count of cores in turn returns, under tight and loose limits."""
    graph = _network(seed)
    for pop in ("a", "b", "c", "d"):
        n = math.prod(graph.shape(pop))
        unit = math.prod(graph.shape(pop)[1:]) if len(graph.shape(pop)) == 3 else 1
        for most in {n, max(unit, n // 3 // unit * unit)}:
            for in_axons, bits in [(None, None), (30, None), (None, 3000), (60, 20000), (4, None), (None, 64)]:
                got = cores.fitting_per_core(graph, pop, most, unit, in_axons, bits, {})
                assert got == _Reference.fitting(graph, pop, most, unit, in_axons, bits), (pop, most, in_axons, bits)


def test_hash_collisions_are_settled_by_the_weights_themselves(monkeypatch) -> None:
    """With every key hashed alike, distinct weights are still told apart: the same counts."""
    graph = _planned(_network(7), 16)
    expected = _Reference.core_use(graph)
    monkeypatch.setattr(cores, "_hash", lambda *columns: np.zeros(np.shape(columns[0]), np.uint64))
    assert cores.core_use(graph) == expected


def _dense_chain(sizes: tuple[int, ...]) -> Graph:
    """A source and dense layers of ``sizes`` (random weights)."""
    rng = np.random.default_rng(0)
    g = Graph({"dt": 1.0, "presentation_time": 20.0})
    prev = g.add("x", ir.Source(shape=(sizes[0],), encoding="regular"))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = _tensor(g, f"w{i}", rng.normal(size=(b, a)))
        proj = g.add(f"p{i}", ir.Projection(connectivity="dense", weight=w), [prev])
        prev = g.add(f"h{i}", ir.Population(reset="zero"), [proj])
    g.outputs = [g.add("out", ir.Readout(), [prev])]
    return g


def test_a_layer_too_wide_for_any_core_is_refused_with_its_input_axons() -> None:
    """5000 inputs reach every neuron of a dense layer: no split fits 4096 input axons. The plan
    used to try each of 600 core counts, every axon of every core (minutes); the bound says it at once."""
    with pytest.raises(SnncError) as info:
        snnc.compile(_dense_chain((5000, 600)), "loihi", pipeline="split-populations")
    message = str(info.value)
    assert "\n" not in message
    assert "%h0: core 0 would need 5000 input axons; loihi allows 4096 (max-input-axons-per-core)" in message


def test_output_axons_of_a_layer_feeding_many_cores_are_refused() -> None:
    """1024 neurons on one core each reach every core of a 5000-neuron dense layer, whose synapse
    memory allows ``p`` neurons a core: 1024 * ceil(5000 / p) output axons, named with the limit."""
    with pytest.raises(SnncError) as info:
        snnc.compile(_dense_chain((8, 1024, 5000)), "loihi", pipeline="split-populations")
    memory = 16384 * 64
    p = max(q for q in range(1, 1025) if 1024 * bits_per_axon(q) <= memory)
    match = re.search(
        r"%h0: core 0 would need (\d+) output axons; loihi allows 4096 \(max-output-axons-per-core\)", str(info.value)
    )
    assert match and int(match.group(1)) == 1024 * -(-5000 // p)
