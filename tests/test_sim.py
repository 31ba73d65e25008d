"""The reference simulator against docs/snn-semantics.md, on hand-built graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.rates import rates
from snnc.ir.semantics.simulator import simulate


def one_neuron(i_offset: float, steps: int, **params) -> Graph:
    """A silent source and one population driven by a constant current."""
    g = Graph({"dt": 1.0, "presentation_time": float(steps), "instances": 1})
    g.add("src", ir.Source(shape=(1,)))
    g.add(
        "p", ir.Projection(connectivity="dense", weight=g.add_tensor("p.weight", np.zeros((1, 1), np.float32))), ["src"]
    )
    i = g.add_tensor("n.i_offset", np.array([i_offset], np.float32))
    g.add("n", ir.Population(i_offset=i, **params), ["p"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    return g


def count(g: Graph, x: np.ndarray | None = None, **kw) -> np.ndarray:
    x = np.zeros((1, 1), np.float32) if x is None else x
    return simulate(g, x, **kw).counts["r"]


@pytest.mark.parametrize("current,threshold", [(0.3, 1.0), (0.25, 1.0), (0.7, 2.0), (1.0, 1.0)])
def test_constant_current_with_subtractive_reset(current: float, threshold: float) -> None:
    g = one_neuron(current, 100, v_threshold=threshold)
    assert count(g)[0, 0] == math.floor(current * 100 / threshold + 1e-6)


def test_reset_to_zero_and_refractory_period_lose_spikes() -> None:
    assert count(one_neuron(0.4, 100, reset="zero"))[0, 0] == 33  # v: .4 .8 1.2 -> 0, every 3rd step
    assert count(one_neuron(1.0, 100, reset="zero", tau_refrac=1.0))[0, 0] == 50  # blocked every other step
    assert count(one_neuron(1.0, 100, tau_refrac=2.0))[0, 0] == 34


def test_leak_slows_integration() -> None:
    assert count(one_neuron(0.3, 100, tau_m=5.0))[0, 0] < count(one_neuron(0.3, 100))[0, 0]


def chain(delay: float, steps: int = 20) -> Graph:
    g = one_neuron(1.0, steps)
    w = g.add_tensor("q.weight", np.ones((1, 1), np.float32))
    g.add("q", ir.Projection(connectivity="dense", weight=w, delay=delay), ["n"])
    g.add("m", ir.Population(), ["q"])
    g.outputs = [g.add("r2", ir.Readout(), ["m"])]
    return g


def test_delays_shift_spikes_exactly() -> None:
    for delay in (0.0, 1.0, 3.0):
        counts = simulate(chain(delay), np.zeros((1, 1), np.float32)).counts["r2"]
        assert counts[0, 0] == 20 - int(delay)


def test_poisson_input_rate_and_seed() -> None:
    g = Graph({"dt": 1.0, "presentation_time": 2000.0, "instances": 1})
    g.add("src", ir.Source(shape=(50,), encoding="poisson", max_rate=100.0))
    g.add("p", ir.Projection(connectivity="one_to_one", scale=1.0, post_shape=(50,), delay=1.0), ["src"])
    g.add("n", ir.Population(), ["p"])
    g.outputs = [g.add("r", ir.Readout(), ["n"])]
    x = np.full((2, 50), 0.5, np.float32)
    a, b = simulate(g, x, seed=3).counts["r"], simulate(g, x, seed=3).counts["r"]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, simulate(g, x, seed=4).counts["r"])
    assert a.mean() == pytest.approx(0.5 * 100 * 2.0, rel=0.05)  # 50 Hz for 2 s, minus the first step


def test_conv_and_pool_projections_match_torch() -> None:
    rng = np.random.default_rng(0)
    g = Graph({"dt": 1.0, "presentation_time": 1.0, "instances": 1})
    g.add("src", ir.Source(shape=(2, 6, 6)))
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    g.add(
        "c",
        ir.Projection(
            connectivity="conv", weight=g.add_tensor("c.weight", w), strides=(2, 1), pads=(1, 0, 0, 1), delay=0.0
        ),
        ["src"],
    )
    g.add("pc", ir.Population(), ["c"])
    g.add("pl", ir.Projection(connectivity="pool", kernel=(2, 2), strides=(2, 2), scale=0.25, delay=0.0), ["src"])
    g.add("pp", ir.Population(), ["pl"])
    g.outputs = [g.add("r1", ir.Readout(mode="membrane"), ["pc"]), g.add("r2", ir.Readout(mode="membrane"), ["pp"])]
    x = rng.random((4, 2, 6, 6), dtype=np.float32)
    result = simulate(g, x)
    xt = torch.nn.functional.pad(torch.tensor(x), (0, 1, 1, 0))
    conv = torch.nn.functional.conv2d(xt, torch.tensor(w), stride=(2, 1)).numpy().reshape(4, -1)
    pool = torch.nn.functional.avg_pool2d(torch.tensor(x), 2).numpy().reshape(4, -1)
    np.testing.assert_allclose(result.counts["r1"], conv, atol=1e-5)  # one step of membrane = input
    np.testing.assert_allclose(result.counts["r2"], pool, atol=1e-5)


def test_spike_rates_approach_relu_activations() -> None:
    rng = np.random.default_rng(2)
    g = Graph({"dt": 1.0, "presentation_time": 1000.0, "instances": 1})
    g.add("src", ir.Source(shape=(20,)))
    w1 = rng.normal(0, 0.3, (30, 20)).astype(np.float32)
    g.add("p1", ir.Projection(connectivity="dense", weight=g.add_tensor("p1.weight", w1), delay=0.0), ["src"])
    g.add("h", ir.Population(i_offset=g.add_tensor("h.i_offset", rng.normal(0, 0.1, 30).astype(np.float32))), ["p1"])
    w2 = rng.normal(0, 0.2, (10, 30)).astype(np.float32)
    g.add("p2", ir.Projection(connectivity="dense", weight=g.add_tensor("p2.weight", w2)), ["h"])
    g.add("o", ir.Population(), ["p2"])
    g.outputs = [g.add("r", ir.Readout(), ["o"])]
    x = rng.random((50, 20), dtype=np.float32) * 0.4
    expected = rates(g, x)
    assert expected["h"].max() <= 1.0 and expected["o"].max() <= 1.0
    result = simulate(g, x, batch_size=16)
    assert np.abs(result.counts["r"] / 1000.0 - expected["o"]).max() < 0.02
    assert np.allclose(result.spikes["h"] / 1000.0, expected["h"].sum(axis=1), atol=0.02 * 30)


def test_v_min_floors_the_membrane() -> None:
    """A neuron driven below its floor comes back from the floor, not from far below."""
    from snnc.ir import Graph
    from snnc.ir import ops as ir
    from snnc.ir.semantics.simulator import simulate

    def network(v_min):
        g = Graph({"dt": 1.0, "presentation_time": 20.0, "instances": 1})
        g.add("src", ir.Source(shape=(2,), encoding="regular", max_rate=1000.0))
        w = g.add_tensor("p.weight", np.array([[-3.0, 0.25]], np.float32))
        g.add("p", ir.Projection(connectivity="dense", weight=w, delay=1.0), ["src"])
        g.add("pop", ir.Population(reset="zero", v_min=v_min), ["p"])
        g.outputs = [g.add("r", ir.Readout(), ["pop"])]
        return g

    x = np.array([[1.0, 1.0], [0.0, 1.0]], np.float32)  # with, then without the inhibitory input
    runs = {}
    for v_min in (None, 0.0):
        g = network(v_min)
        g.attrs["pause"] = 0.0  # back to back: the second sample starts where the first left v
        runs[v_min] = simulate(g, x, chains=1).counts["r"][:, 0]
    assert runs[None][0] == runs[0.0][0] == 0  # net input -2.75 per step: never fires
    assert runs[None][1] == 0  # v came in near -52: 20 steps of 0.25 cannot reach the threshold
    assert runs[0.0][1] == 4  # from the floor: 0.25 per step fires every 4th step
