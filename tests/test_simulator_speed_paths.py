"""The simulator's fast paths against its general ones: the time-batched path against stepping
every population (method="steps") and against a plain reference written here from
docs/snn-semantics.md with the projections' sparse matrices; pooling as strided sums against the
sparse matrix; a pooled (block-constant) convolution kernel against the direct convolution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import projection_matrix
from snnc.ir.semantics.simulator import SimulationError, _apply_function, _pooled_kernel, simulate


def reference(g: Graph, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """docs/snn-semantics.md step by step with dense matrices; every population's spikes per neuron
    (current source input, one source)."""
    (src,) = g.ops_of("snn.source")
    pops = g.ops_of("snn.population")
    n = len(x)
    s_in = x.reshape(n, -1) * np.float32(g.op(src).gain)
    v = {p: np.full((n, math.prod(g.shape(p))), g.op(p).v_init, np.float32) for p in pops}
    ref = {p: np.zeros(v[p].shape, np.int64) for p in pops}
    history = {p: [] for p in pops}
    counts = {p: np.zeros(v[p].shape, np.int64) for p in pops}
    for k in range(steps):
        for p in g.topo():
            if p not in pops:
                continue
            op, u = g.op(p), v[p]
            if not math.isinf(op.tau_m):
                u *= math.exp(-op_dt(g) / op.tau_m)
            for proj in g.inputs(p):
                (pre,) = g.inputs(proj)
                m = projection_matrix(g, proj).toarray()
                if pre == src:
                    u += (s_in @ m.T) * np.float32(op_dt(g))
                    continue
                d = int(round(g.op(proj).delay))
                if k >= d:
                    u += history[pre][k - d] @ m.T
            if op.v_min is not None:
                np.maximum(u, np.float32(op.v_min), out=u)
            blocked = ref[p] > 0
            u[blocked] = op.v_reset
            ref[p][blocked] -= 1
            fired = (u >= op.v_threshold) & ~blocked
            if op.reset == "subtract":
                u[fired] -= np.float32(op.v_threshold)
            else:
                u[fired] = op.v_reset
            ref[p][fired] = int(round(op.tau_refrac / op_dt(g)))
            history[p].append(fired.astype(np.float32))
            counts[p] += fired
    return counts


def op_dt(g: Graph) -> float:
    return float(g.attrs["dt"])


def mlp(delay: float, refrac: float = 0.0, reset: str = "subtract", tau_m: float = math.inf, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph({"dt": 1.0, "presentation_time": 24.0, "instances": 1})
    g.add("src", ir.Source(shape=(12,)))
    sizes, pre = [12, 20, 16, 5], "src"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = g.add_tensor(f"w{i}", rng.normal(0.0, 0.6, size=(b, a)).astype(np.float32))
        g.add(f"p{i}", ir.Projection(connectivity="dense", weight=w, delay=0.0 if i == 0 else delay), [pre])
        pre = g.add(
            f"n{i}",
            ir.Population(tau_refrac=refrac, reset=reset, tau_m=tau_m, v_init=0.5, v_min=-2.0, v_threshold=0.7),
            [f"p{i}"],
        )
    g.outputs = [g.add("r", ir.Readout(), [pre])]
    return g


def cnn(delay: float, seed: int = 0) -> Graph:
    """conv -> pool -> conv with a pooled (block-constant) kernel -> dense, membrane readout."""
    rng = np.random.default_rng(seed)
    g = Graph({"dt": 1.0, "presentation_time": 20.0, "instances": 1})
    g.add("src", ir.Source(shape=(1, 8, 8)))
    w1 = g.add_tensor("w1", rng.normal(0.0, 0.8, size=(4, 1, 3, 3)).astype(np.float32))
    g.add("c1", ir.Projection(connectivity="conv", weight=w1, pads=(1, 1, 1, 1), delay=0.0), ["src"])
    g.add("a", ir.Population(v_init=0.5), ["c1"])
    g.add("pool", ir.Projection(connectivity="pool", kernel=(2, 2), strides=(2, 2), scale=0.5, delay=delay), ["a"])
    g.add("b", ir.Population(), ["pool"])
    small = rng.normal(0.0, 0.4, size=(3, 4, 3, 3)).astype(np.float32)
    w2 = g.add_tensor("w2", np.kron(small, np.ones((2, 2), np.float32)) / 4)  # pooling folded into the conv
    g.add("c2", ir.Projection(connectivity="conv", weight=w2, strides=(2, 2), pads=(2, 2, 2, 2), delay=delay), ["a"])
    g.add("c", ir.Population(v_init=0.5), ["c2"])
    w3 = g.add_tensor("w3", rng.normal(0.0, 0.3, size=(6, 3 * 4 * 4)).astype(np.float32))
    g.add("d", ir.Projection(connectivity="dense", weight=w3, delay=delay), ["c"])
    g.add("out", ir.Population(), ["d"])
    g.outputs = [g.add("r", ir.Readout(mode="membrane"), ["out"]), g.add("rb", ir.Readout(), ["b"])]
    return g


def both(g: Graph, x: np.ndarray, **kw):
    return (simulate(g, x, method="layers", record_neurons=True, **kw), simulate(g, x, method="steps", **kw))


@pytest.mark.parametrize("delay", [0.0, 1.0, 3.0])
@pytest.mark.parametrize(
    "refrac,reset,tau_m", [(0.0, "subtract", math.inf), (2.0, "zero", 8.0), (1.0, "subtract", 5.0)]
)
def test_mlp_paths_equal_the_reference(delay: float, refrac: float, reset: str, tau_m: float) -> None:
    g = mlp(delay, refrac, reset, tau_m)
    x = np.random.default_rng(1).random((37, 12), dtype=np.float32)
    fast = simulate(g, x, method="layers", record_neurons=True, batch_size=16)
    slow = simulate(g, x, method="steps", record_neurons=True, batch_size=16)
    ref = reference(g, x, 24)
    for p in g.ops_of("snn.population"):
        assert np.array_equal(fast.neuron_counts[p], ref[p]), p
        assert np.array_equal(slow.neuron_counts[p], ref[p]), p
        assert np.array_equal(fast.spikes[p], ref[p].sum(axis=1)), p
    assert np.array_equal(fast.counts["r"], slow.counts["r"])
    assert ref["n2"].sum() > 0 and ref["n0"].sum() > 0  # something happened


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_cnn_time_batched_equals_step_by_step(delay: float) -> None:
    g = cnn(delay)
    x = np.random.default_rng(2).random((23, 1, 8, 8), dtype=np.float32)
    fast, slow = both(g, x, batch_size=10, record_over_time=True)  # the membrane readout's trace
    slow_neurons = simulate(g, x, method="steps", record_neurons=True, batch_size=10).neuron_counts
    for p in g.ops_of("snn.population"):
        assert np.array_equal(fast.neuron_counts[p], slow_neurons[p]), p
        assert fast.neuron_counts[p].sum() > 0 or p == "out", p
    assert np.array_equal(fast.counts["rb"], slow.counts["rb"])
    np.testing.assert_allclose(fast.counts["r"], slow.counts["r"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.counts_over_time, slow.counts_over_time, rtol=1e-5, atol=1e-5)
    assert np.array_equal(fast.counts_over_time[-1], fast.counts["r"])
    assert np.array_equal(fast.predictions, slow.predictions)


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_a_membrane_readout_integrates_spike_counts(delay: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a trace, a leak-free membrane readout whose input has no delay takes the spike counts
    in one product per batch: the same potentials as step by step, to float rounding."""
    from snnc.ir.semantics import simulator

    rows = []

    def spy(graph, proj_id, device=None):
        apply = _apply_function(graph, proj_id, device)
        return (lambda s: (rows.append(len(s)), apply(s))[1]) if proj_id == "d" else apply

    g = cnn(delay)
    x = np.random.default_rng(3).random((23, 1, 8, 8), dtype=np.float32)
    slow = simulate(g, x, method="steps", batch_size=10)
    monkeypatch.setattr(simulator, "_apply_function", spy)
    monkeypatch.setattr(simulator, "_BLOCK_VALUES", 400)  # several blocks
    fast = simulate(g, x, method="layers", batch_size=10)
    np.testing.assert_allclose(fast.counts["r"], slow.counts["r"], rtol=1e-5, atol=1e-5)
    assert np.array_equal(fast.predictions, slow.predictions)
    assert np.array_equal(fast.counts["rb"], slow.counts["rb"])
    assert (rows == [10, 10, 3]) == (delay == 0.0)  # one product per batch of samples


def test_small_blocks_and_inputs_over_time_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of time steps shorter than a delay, inputs over time, records over time."""
    from snnc.ir.semantics import simulator

    g = mlp(3.0)
    x = np.random.default_rng(3).random((9, 24, 12), dtype=np.float32)
    slow = simulate(g, x, method="steps", record_over_time=True, record_neurons=True)
    monkeypatch.setattr(simulator, "_BLOCK_VALUES", 1)  # one step per block
    monkeypatch.setattr(simulator, "_CHUNK", 7)  # slices that cut through samples
    fast = simulate(g, x, method="layers", record_over_time=True, record_neurons=True)
    assert np.array_equal(fast.counts_over_time, slow.counts_over_time)
    for p in g.ops_of("snn.population"):
        assert np.array_equal(fast.neuron_counts[p], slow.neuron_counts[p]), p


def test_poisson_source_draws_the_same_spikes() -> None:
    g = mlp(1.0)
    g.op("src").encoding = "poisson"
    x = np.random.default_rng(4).random((11, 12), dtype=np.float32)
    fast, slow = both(g, x, seed=5, record_over_time=True)
    assert np.array_equal(fast.counts["r"], slow.counts["r"])
    assert np.array_equal(fast.counts_over_time, slow.counts_over_time)


def test_counts_per_neuron_only_when_asked() -> None:
    g = mlp(0.0)
    x = np.ones((3, 12), np.float32)
    for method in ("layers", "steps"):
        result = simulate(g, x, method=method)
        assert result.neuron_counts is None and result.counts_over_time is None


def test_back_to_back_samples_need_the_step_path() -> None:
    g = mlp(1.0)
    g.attrs["pause"] = 5.0
    with pytest.raises(SimulationError, match="steps"):
        simulate(g, np.ones((2, 12), np.float32), method="layers")
    assert simulate(g, np.ones((2, 12), np.float32)).counts["r"].shape == (2, 5)


@pytest.mark.parametrize("encoding", ["current", "poisson"])
def test_one_sample_per_chain_runs_time_batched(encoding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With as many chains as samples nothing carries over: the time-batched path gives the chains'
    spike counts (and their Poisson draws)."""
    from snnc.ir.semantics import simulator

    g = mlp(1.0, reset="zero", tau_m=7.0)
    g.attrs["pause"] = 5.0
    g.op("src").encoding = encoding
    x = np.random.default_rng(8).random((9, 12), dtype=np.float32)
    chained = simulate(g, x, chains=9, method="steps", record_neurons=True, seed=3)
    layered, original = [], simulator._run_layered
    monkeypatch.setattr(simulator, "_run_layered", lambda *args: (layered.append(1), original(*args))[1])
    fast = simulate(g, x, chains=9, record_neurons=True, seed=3, batch_size=4)
    assert layered == [1]  # one batch
    for p in g.ops_of("snn.population"):
        assert np.array_equal(fast.neuron_counts[p], chained.neuron_counts[p]), p
    assert chained.spikes["n0"].sum() > 0


@pytest.mark.parametrize(
    "kernel,strides,pads",
    [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)), ((2, 3), (1, 2), (0, 1, 1, 0))],
)
def test_pooling_as_strided_sums_equals_the_sparse_matrix(kernel, strides, pads) -> None:
    g = Graph({"dt": 1.0, "presentation_time": 1.0, "instances": 1})
    g.add("src", ir.Source(shape=(3, 7, 8)))
    g.add("p", ir.Projection(connectivity="pool", kernel=kernel, strides=strides, pads=pads, scale=0.37), ["src"])
    g.add("n", ir.Population(), ["p"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    rng = np.random.default_rng(6)
    for s in ((rng.random((5, 3 * 7 * 8)) < 0.4).astype(np.float32), rng.random((5, 168), dtype=np.float32)):
        fast = _apply_function(g, "p")(s)
        slow = np.asarray((projection_matrix(g, "p") @ s.T).T)
        assert np.array_equal(fast, slow)  # same products, same order


@pytest.mark.parametrize("offset,post", [(0, 24), (5, 40)])
def test_one_to_one_as_a_scaled_copy_equals_the_sparse_matrix(offset: int, post: int) -> None:
    g = Graph({"dt": 1.0, "presentation_time": 1.0, "instances": 1})
    g.add("src", ir.Source(shape=(24,)))
    g.add("p", ir.Projection(connectivity="one_to_one", scale=-0.61, offset=offset, post_shape=(post,)), ["src"])
    g.add("n", ir.Population(), ["p"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    s = np.random.default_rng(9).random((6, 24), dtype=np.float32)
    fast = _apply_function(g, "p")(s)
    assert fast.shape == (6, post) and np.count_nonzero(fast) == s.size
    assert np.array_equal(fast, np.asarray((projection_matrix(g, "p") @ s.T).T))


def test_pooled_kernel_is_found_and_applied_exactly_enough() -> None:
    rng = np.random.default_rng(7)
    small = rng.normal(size=(5, 3, 2, 3)).astype(np.float32)
    big = np.kron(small, np.ones((2, 2), np.float32))
    assert np.array_equal(_pooled_kernel(big, (2, 2), (1, 1)), small)
    assert _pooled_kernel(big, (1, 1), (1, 1)) is None
    noisy = big.copy()
    noisy[0, 0, 0, 1] += 1e-3
    assert _pooled_kernel(noisy, (2, 2), (1, 1)) is None
    g = Graph({"dt": 1.0, "presentation_time": 1.0, "instances": 1})
    g.add("src", ir.Source(shape=(3, 8, 10)))
    w = g.add_tensor("w", big)
    g.add("c", ir.Projection(connectivity="conv", weight=w, strides=(2, 2), pads=(2, 0, 2, 4)), ["src"])
    g.add("n", ir.Population(), ["c"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    s = (rng.random((4, 240)) < 0.5).astype(np.float32)
    xt = torch.nn.functional.pad(torch.tensor(s).reshape(4, 3, 8, 10), (0, 4, 2, 2))
    direct = torch.nn.functional.conv2d(xt, torch.tensor(big), stride=2).numpy().reshape(4, -1)
    np.testing.assert_allclose(_apply_function(g, "c")(s), direct, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "reset,tau_m,v_min,membrane",
    [("subtract", math.inf, None, False), ("zero", 8.0, -0.5, False), ("subtract", 5.0, -1.0, True)],
)
def test_torch_neuron_step_equals_numpys_bit_for_bit(reset: str, tau_m: float, v_min, membrane: bool) -> None:
    """update_torch does the float operations of update: potentials and spikes equal over many steps."""
    from snnc.ir.semantics.simulator import _Network, _Neurons

    g = mlp(0.0, reset=reset, tau_m=tau_m)
    g.op("n1").v_min = v_min
    if membrane:
        g.op("r").mode = "membrane"
        cell = _Neurons(_Network(g), "n2")
    else:
        cell = _Neurons(_Network(g), "n1")
    rng = np.random.default_rng(6)
    u = rng.normal(0.0, 1.0, 5000).astype(np.float32)
    u_t = torch.from_numpy(u.copy())
    const = rng.normal(0.05, 0.1, 5000).astype(np.float32)
    out, out_t = np.empty(5000, np.float32), torch.empty(5000)
    fired = 0.0
    for _ in range(40):
        inputs = rng.normal(0.0, 0.5, (2, 5000)).astype(np.float32)
        cell.update(u, const, list(inputs), None, out)
        cell.update_torch(u_t, torch.from_numpy(const), [torch.from_numpy(i) for i in inputs], out_t)
        assert np.array_equal(u, u_t.numpy()) and np.array_equal(out, out_t.numpy())
        fired += out.sum()
    assert fired > 0 or membrane


@pytest.mark.parametrize("delay,timed", [(0.0, False), (2.0, False), (1.0, True)])
def test_torch_steps_large_populations_with_the_same_spikes(
    delay: float, timed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With torch's threshold lowered to a few neurons, the time-batched path steps in torch (slices
    cutting through samples, several blocks; inputs over time) and counts the spikes of the numpy
    step path."""
    from snnc.ir.semantics import simulator

    g = mlp(delay, reset="zero", tau_m=6.0)
    x = np.random.default_rng(7).random((13, 24, 12) if timed else (13, 12), dtype=np.float32)
    slow = simulate(g, x, method="steps", record_neurons=True, record_over_time=True)
    torch_steps, original = [], simulator._Neurons.update_torch
    spy = lambda self, *a: (torch_steps.append(1), original(self, *a))  # noqa: E731
    monkeypatch.setattr(simulator._Neurons, "update_torch", spy)
    monkeypatch.setattr(simulator, "_TORCH_CHUNK", 37)
    monkeypatch.setattr(simulator, "_BLOCK_VALUES", 500)
    fast = simulate(g, x, method="layers", record_neurons=True, record_over_time=True)
    assert torch_steps
    assert np.array_equal(fast.counts_over_time, slow.counts_over_time)
    for p in g.ops_of("snn.population"):
        assert np.array_equal(fast.neuron_counts[p], slow.neuron_counts[p]), p
        assert np.array_equal(fast.spikes[p], slow.spikes[p]), p


@pytest.mark.parametrize("pre", [300, 2000])
def test_dense_products_of_small_layers_stay_in_numpy(pre: int) -> None:
    """A small layer's product is numpy's, bit for bit; a large one's is torch's (the layers that
    step in torch's threads), equal to float rounding, whatever the number of rows."""
    from snnc.ir.semantics import simulator

    g = Graph({"dt": 1.0, "presentation_time": 1.0, "instances": 1})
    g.add("src", ir.Source(shape=(pre,)))
    w = np.random.default_rng(10).normal(0.0, 0.1, (7, pre)).astype(np.float32)
    g.add("p", ir.Projection(connectivity="dense", weight=g.add_tensor("w", w)), ["src"])
    g.add("n", ir.Population(), ["p"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    s = (np.random.default_rng(11).random((50, pre)) < 0.3).astype(np.float32)
    apply = _apply_function(g, "p")
    np.testing.assert_allclose(apply(s), s @ w.T, rtol=1e-5, atol=1e-5)
    assert np.array_equal(apply(s[:3]), apply(s)[:3])
    if pre < simulator._TORCH_LAYER:
        assert np.array_equal(apply(s), s @ np.ascontiguousarray(w.T))
