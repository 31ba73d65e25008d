"""The simulator's device path (torch tensors on a torch device, a GPU where there is one) against
the host path. CI has no GPU: these run it on torch's CPU device, the same code a GPU runs; the
GPU itself is measured in benchmarks/bench_gpu.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnc.ir.semantics.simulator import SimulationError, simulate
from tests.test_simulator_speed_paths import cnn, mlp, reference


@pytest.mark.parametrize("delay", [0.0, 3.0])
@pytest.mark.parametrize("refrac,reset,tau_m", [(0.0, "subtract", math.inf), (2.0, "zero", 8.0)])
def test_mlp_on_a_device_equals_the_reference(delay: float, refrac: float, reset: str, tau_m: float) -> None:
    g = mlp(delay, refrac, reset, tau_m)
    x = np.random.default_rng(1).random((37, 12), dtype=np.float32)
    on = simulate(g, x, device="cpu", record_neurons=True, batch_size=16)
    ref = reference(g, x, 24)
    for p in g.ops_of("snn.population"):
        assert np.array_equal(on.neuron_counts[p], ref[p]), p
        assert np.array_equal(on.spikes[p], ref[p].sum(axis=1)), p
    assert on.extra["device"] == "cpu" and ref["n2"].sum() > 0


@pytest.mark.parametrize("delay", [0.0, 1.0])
def test_cnn_on_a_device_equals_the_host(delay: float) -> None:
    """Convolutions, a pooled kernel, pooling and a membrane readout, recorded over time."""
    g = cnn(delay)
    x = np.random.default_rng(2).random((23, 1, 8, 8), dtype=np.float32)
    kw = {"batch_size": 10, "record_over_time": True, "record_neurons": True}
    host, on = simulate(g, x, **kw), simulate(g, x, device="cpu", **kw)
    for p in g.ops_of("snn.population"):
        assert np.array_equal(on.neuron_counts[p], host.neuron_counts[p]), p
    assert np.array_equal(on.counts["rb"], host.counts["rb"])
    np.testing.assert_allclose(on.counts["r"], host.counts["r"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(on.counts_over_time, host.counts_over_time, rtol=1e-5, atol=1e-5)
    assert np.array_equal(on.predictions, host.predictions)
    assert host.extra["device"] == "host"


@pytest.mark.parametrize("encoding", ["regular", "poisson"])
def test_spiking_sources_and_inputs_over_time_on_a_device(encoding: str) -> None:
    g = mlp(1.0)
    g.op("src").encoding = encoding
    x = np.random.default_rng(4).random((11, 12), dtype=np.float32)
    host, on = (simulate(g, x, seed=5, record_over_time=True, device=d) for d in (None, "cpu"))
    assert np.array_equal(on.counts["r"], host.counts["r"])  # the same Poisson draws
    assert np.array_equal(on.counts_over_time, host.counts_over_time)
    timed = np.random.default_rng(3).random((9, 24, 12), dtype=np.float32)
    host, on = (simulate(mlp(3.0), timed, record_neurons=True, device=d) for d in (None, "cpu"))
    for p in host.neuron_counts:
        assert np.array_equal(on.neuron_counts[p], host.neuron_counts[p]), p


def test_device_runs_repeat_byte_for_byte() -> None:
    g = cnn(0.0)
    x = np.random.default_rng(6).random((30, 1, 8, 8), dtype=np.float32)
    a, b = (simulate(g, x, device="cpu", batch_size=7) for _ in range(2))
    assert a.counts["r"].tobytes() == b.counts["r"].tobytes()


def test_device_choice() -> None:
    g = mlp(1.0)
    x = np.ones((3, 12), np.float32)
    expected = "cuda" if torch.cuda.is_available() else "host"
    assert simulate(g, x, device="auto").extra["device"] == expected
    if not torch.cuda.is_available():
        with pytest.raises(SimulationError, match="device 'cuda'"):
            simulate(g, x, device="cuda")
    with pytest.raises(SimulationError, match="device 'nowhere'"):
        simulate(g, x, device="nowhere")
    g.attrs["pause"] = 5.0  # back to back: host memory only, "auto" stays there
    with pytest.raises(SimulationError, match="back to back"):
        simulate(g, x, device="cpu")
    assert simulate(g, x, device="auto").extra["device"] == "host"


def test_the_default_batch_on_a_device_shrinks_for_large_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    from snnc.ir.semantics import simulator

    g = mlp(0.0)
    net = simulator._Network(g, "cpu")
    assert simulator._device_batch(net) == simulator._DEVICE_BATCH  # 53 neurons a sample, the source's too
    monkeypatch.setattr(simulator, "_DEVICE_NEURONS", 53 * 10)
    assert simulator._device_batch(net) == 10
    x = np.random.default_rng(0).random((25, 12), dtype=np.float32)
    assert np.array_equal(simulate(g, x, device="cpu").counts["r"], simulate(g, x).counts["r"])
