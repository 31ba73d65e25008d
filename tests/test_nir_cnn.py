"""NIR graphs as SNN tools write them: a Sinabs CNN (strided, padded convolutions, SumPool2d into
Conv2d, no input_type on most nodes) compiles and spikes as Sinabs does; linear chains compose
exactly; Scale, Threshold and CubaLIF map where they are equivalent and are refused by name where not."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.ir.errors import SnncError
from snnc.ir.semantics.connectivity import projection_matrix
from snnc.ir.semantics.simulator import simulate

nir = pytest.importorskip("nir")

STEPS, SAMPLES = 100, 16


def _sinabs_cnn(seed: int) -> nn.Sequential:
    """Conv2d stride 2 pad 1 -> IAF -> SumPool2d -> Conv2d -> IAF -> Flatten -> Linear -> IAF, random weights.
    Spikes are single per step (SingleSpike), as NIR's IF and snnc's neurons fire; reset subtracts."""
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    torch.manual_seed(seed)
    iaf = {"num_timesteps": STEPS, "spike_fn": SingleSpike}
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),
        sl.IAFSqueeze(**iaf),
        sl.SumPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        sl.IAFSqueeze(**iaf),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
        sl.IAFSqueeze(**iaf),
    )


def _sinabs_counts(net: nn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Sinabs's own forward on ``x`` held constant for STEPS steps: spike counts per neuron of each IAF layer."""
    import sinabs.layers as sl

    layers = [m for m in net if isinstance(m, sl.IAFSqueeze)]
    for layer in layers:
        layer.reset_states()
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in layers]
    with torch.no_grad():
        net(torch.tensor(x).repeat_interleave(STEPS, 0))  # (N*T, C, H, W), batch-major as IAFSqueeze reads it
    for hook in hooks:
        hook.remove()
    return [s.reshape(len(x), STEPS, -1).sum(1).numpy() for s in seen]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sinabs_cnn_spikes_as_sinabs_does(seed: int, tmp_path: Path) -> None:
    sinabs = pytest.importorskip("sinabs")
    net = _sinabs_cnn(seed)
    graph = sinabs.to_nir(net, torch.rand(STEPS, 1, 16, 16))
    assert graph.nodes["2"].input_type["input"] is None  # SumPool2d, as Sinabs writes it: no input_type
    typed = copy.deepcopy(graph)
    typed.infer_types()  # nir.write cannot store a node without input_type; nir fills them from the edges
    nir.write(tmp_path / "cnn.nir", typed)
    x = np.random.default_rng(seed).random((SAMPLES, 1, 16, 16), dtype=np.float32)
    expected = _sinabs_counts(net, x)
    for model in (graph, tmp_path / "cnn.nir"):
        compiled = snnc.compile(model, "sim").graph
        projections = [compiled.op(n).connectivity for n in compiled.ops_of("snn.projection")]
        assert projections == ["conv", "conv", "dense"]  # the pool is inside the second convolution
        result = simulate(compiled, x, steps=STEPS, record_neurons=True)
        counts = [result.neuron_counts[p] for p in compiled.ops_of("snn.population")]
        assert expected[-1].sum() > 0
        for ours, theirs in zip(counts, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs)  # every neuron of every layer: equal counts


def _sinabs_counts_over_time(net: nn.Sequential, frames: np.ndarray) -> list[np.ndarray]:
    """Sinabs's forward on event frames (N, T, C, H, W): spike counts per neuron of each IAF layer."""
    import sinabs.layers as sl

    layers = [m for m in net if isinstance(m, sl.IAFSqueeze)]
    for layer in layers:
        layer.reset_states()
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in layers]
    with torch.no_grad():
        net(torch.tensor(frames).flatten(0, 1))  # (N*T, C, H, W), batch-major as IAFSqueeze reads it
    for hook in hooks:
        hook.remove()
    n, t = frames.shape[:2]
    return [out.reshape(n, t, -1).sum(1).numpy() for out in seen]


@pytest.mark.parametrize("encoding", ["current", "events"])
def test_a_sinabs_cnn_on_event_frames_spikes_as_sinabs_does(encoding: str, tmp_path: Path) -> None:
    """Inputs over time: (N, T, C, H, W) event counts; snnc's sim and Sinabs give every neuron the same count.
    ``current`` feeds each frame to the first layer in its step, ``events`` sends the counts as spikes (one
    step later: the input projection's delay), so the latter runs one frame behind and is compared on T - 1."""
    sinabs = pytest.importorskip("sinabs")
    net = _sinabs_cnn(3)
    frames = (np.random.default_rng(3).random((SAMPLES, STEPS, 1, 16, 16)) < 0.2).astype(np.float32) * 2
    compiled = snnc.compile(sinabs.to_nir(net, torch.rand(STEPS, 1, 16, 16)), "sim").graph
    (source,) = compiled.ops_of("snn.source")
    compiled.set_op(source, type(compiled.op(source))(**{**compiled.op(source).attrs(), "encoding": encoding}))
    delayed = encoding == "events" and any(compiled.op(p).delay > 0 for p in compiled.users(source))
    sent = np.concatenate([frames[:, 1:], np.zeros_like(frames[:, :1])], axis=1) if delayed else frames
    result = simulate(compiled, sent, record_neurons=True)
    assert result.steps == STEPS
    expected = _sinabs_counts_over_time(net, frames[:, : STEPS - 1] if delayed else frames)
    counts = [result.neuron_counts[p] for p in compiled.ops_of("snn.population")]
    assert expected[-1].sum() > 0
    for ours, theirs in zip(counts, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _window_graph(pool: dict, conv: dict, size: int) -> tuple[object, torch.nn.Module]:
    """Input -> SumPool2d -> Conv2d -> IF in NIR, and the same two linear layers in torch."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, size, size])}),
        "pool": nir.SumPool2d(kernel_size=np.array(pool["k"]), stride=np.array(pool["s"]), padding=np.array(pool["p"])),
        "conv": nir.Conv2d(None, weight, conv["s"], conv["p"], conv["d"], 1, bias),
        "if": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
        "out": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("in", "pool"), ("pool", "conv"), ("conv", "if"), ("if", "out")]

    def torch_net(x: torch.Tensor) -> torch.Tensor:
        k0, k1 = pool["k"]
        pooled = nn.functional.avg_pool2d(x, pool["k"], pool["s"], pool["p"], count_include_pad=True) * (k0 * k1)
        return nn.functional.conv2d(pooled, torch.tensor(weight), None, conv["s"], conv["p"], conv["d"])

    return nir.NIRGraph(nodes=nodes, edges=edges), torch_net


WINDOWS = {  # pooling then convolution: the composed projection is exact in every case
    "sinabs (2/2, conv pad 1)": ({"k": (2, 2), "s": (2, 2), "p": (0, 0)}, {"s": 1, "p": 1, "d": 1}, 8, "conv"),
    "strided conv": ({"k": (2, 2), "s": (2, 2), "p": (0, 0)}, {"s": 2, "p": 1, "d": 1}, 12, "conv"),
    "dilated conv": ({"k": (2, 2), "s": (2, 2), "p": (0, 0)}, {"s": 1, "p": 2, "d": 2}, 12, "conv"),
    "odd size, rows left over": ({"k": (2, 2), "s": (2, 2), "p": (0, 0)}, {"s": 1, "p": 1, "d": 1}, 9, "dense"),
    "overlapping pool": ({"k": (3, 3), "s": (2, 2), "p": (0, 0)}, {"s": 1, "p": 1, "d": 1}, 9, "dense"),
    "padded pool": ({"k": (2, 2), "s": (2, 2), "p": (1, 1)}, {"s": 1, "p": 0, "d": 1}, 6, "conv"),
    "unpadded conv": ({"k": (3, 2), "s": (3, 2), "p": (0, 0)}, {"s": 1, "p": 0, "d": 1}, 11, "conv"),
}


@pytest.mark.parametrize("case", sorted(WINDOWS))
def test_pooling_into_a_convolution_is_one_exact_projection(case: str) -> None:
    pool, conv, size, connectivity = WINDOWS[case]
    graph, torch_net = _window_graph(pool, conv, size)
    compiled = snnc.compile(graph, "sim").graph
    (proj,) = compiled.ops_of("snn.projection")
    assert compiled.op(proj).connectivity == connectivity  # a convolution where one is exact
    x = np.random.default_rng(1).random((2, size, size), dtype=np.float32)
    expected = torch_net(torch.tensor(x)[None]).numpy().reshape(-1)
    np.testing.assert_allclose(projection_matrix(compiled, proj) @ x.reshape(-1), expected, rtol=1e-5, atol=1e-5)
    (pop,) = compiled.ops_of("snn.population")
    np.testing.assert_allclose(
        compiled.tensor(compiled.op(pop).i_offset), np.repeat(graph.nodes["conv"].bias, len(expected) // 3)
    )


def _dense_graph(neuron: object, *between: tuple[str, object]) -> object:
    """Input(4) -> Affine(3) [-> between...] -> neuron -> Output."""
    rng = np.random.default_rng(2)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([4])}),
        "fc": nir.Affine(
            weight=rng.normal(size=(3, 4)).astype(np.float32), bias=np.array([0.5, -0.2, 0.1], np.float32)
        ),
        **dict(between),
        "n": neuron,
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    chain = ["in", "fc", *[name for name, _ in between], "n", "out"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:], strict=False)))


def test_a_threshold_after_synapses_fires_each_step_its_input_crosses() -> None:
    graph = _dense_graph(nir.Threshold(threshold=np.full(3, 0.3, np.float32)))
    compiled = snnc.compile(graph, "sim").graph
    x = np.random.default_rng(3).random((20, 4), dtype=np.float32)
    drive = x @ graph.nodes["fc"].weight.T + graph.nodes["fc"].bias  # the same every step: no memory
    counts = simulate(compiled, x, steps=7).counts[compiled.outputs[0]]
    np.testing.assert_array_equal(counts, 7 * (drive >= 0.3))


def test_a_scale_multiplies_weights_and_bias() -> None:
    graph = _dense_graph(nir.IF(r=np.ones(3), v_threshold=np.ones(3)), ("s", nir.Scale(scale=np.full(3, 2.0))))
    compiled = snnc.compile(graph, "sim").graph
    (pop,) = compiled.ops_of("snn.population")
    (proj,) = compiled.ops_of("snn.projection")
    np.testing.assert_allclose(compiled.tensor(compiled.op(proj).weight), 2 * graph.nodes["fc"].weight)
    np.testing.assert_allclose(compiled.tensor(compiled.op(pop).i_offset), 2 * graph.nodes["fc"].bias)


def _scaled_chain(scale: float) -> object:
    """Input(4) [-> Scale] -> IF -> Scale(0.5) -> Affine(3 I) -> IF -> Output: Scales on an input and on spikes."""
    ones = np.ones(4, np.float32)
    nodes = {"in": nir.Input(input_type={"input": np.array([4])})}
    if scale != 1:
        nodes["s"] = nir.Scale(scale=scale * ones)
    nodes |= {
        "a": nir.IF(r=ones, v_threshold=ones),
        "half": nir.Scale(scale=0.5 * ones),
        "fc": nir.Affine(weight=3 * np.eye(4, dtype=np.float32), bias=0 * ones),
        "b": nir.IF(r=ones, v_threshold=ones),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }
    chain = ["in", "s", "a", "half", "fc", "b", "out"] if scale != 1 else ["in", "a", "half", "fc", "b", "out"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:], strict=False)))


def test_scales_on_an_input_or_on_spikes_and_edges_straight_into_neurons() -> None:
    x = np.random.default_rng(7).random((5, 4), dtype=np.float32) * 0.4
    scaled, plain = (snnc.compile(_scaled_chain(s), "sim").graph for s in (2.0, 1.0))
    assert [scaled.op(p).connectivity for p in scaled.ops_of("snn.projection")] == ["one_to_one", "dense"]
    np.testing.assert_allclose(scaled.tensor(scaled.op(scaled.ops_of("snn.projection")[1]).weight), 1.5 * np.eye(4))
    counts = simulate(scaled, x, steps=50).counts["out"]
    assert counts.sum() > 0
    np.testing.assert_array_equal(counts, simulate(plain, 2 * x, steps=50).counts["out"])


def _cuba(tau_syn: float) -> object:
    ones = np.ones(3, np.float32)
    return nir.CubaLIF(tau_syn=tau_syn * ones, tau_mem=20 * ones, r=ones, v_leak=0 * ones, v_threshold=ones)


def test_a_cuba_lif_whose_current_lasts_one_step_is_a_lif() -> None:
    graph = _dense_graph(_cuba(1.0))  # dt 1 ms: tau_syn = dt, forward Euler keeps no current
    lif = _dense_graph(nir.LIF(tau=np.full(3, 20.0), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)))
    a, b = (snnc.compile(g, "sim").graph for g in (graph, lif))
    x = np.random.default_rng(4).random((10, 4), dtype=np.float32) * 3
    np.testing.assert_array_equal(simulate(a, x, steps=30).counts["out"], simulate(b, x, steps=30).counts["out"])


def test_a_cuba_lif_with_a_lasting_synaptic_current_is_refused_by_name() -> None:
    with pytest.raises(SnncError, match=r"NIR node 'n' \(CubaLIF\): tau_syn 5 ms carries synaptic current") as err:
        snnc.compile(_dense_graph(_cuba(5.0)), "sim")
    assert "\n" not in str(err.value)


def test_nodes_without_a_spiking_form_are_named_in_one_line() -> None:
    li = nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3))
    with pytest.raises(SnncError, match=r"unsupported NIR nodes: LI \('n'\) \(snnc maps Input, .*CubaLIF"):
        snnc.compile(_dense_graph(li), "sim")
    ending_in_synapses = _dense_graph(nir.Affine(weight=np.eye(3), bias=np.zeros(3)))
    with pytest.raises(SnncError, match=r"NIR node 'out' \(Output\): an Output must read a population"):
        snnc.compile(ending_in_synapses, "sim")


def test_same_padding_is_read_as_torch_pads() -> None:
    weight = np.random.default_rng(5).normal(size=(2, 1, 4, 4)).astype(np.float32)
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
            "conv": nir.Conv2d(None, weight, 1, "same", 1, 1, np.zeros(2, np.float32)),
            "n": nir.IF(r=np.ones(1), v_threshold=np.ones(1)),
            "out": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("in", "conv"), ("conv", "n"), ("n", "out")],
    )
    compiled = snnc.compile(graph, "sim").graph
    (proj,) = compiled.ops_of("snn.projection")
    x = np.random.default_rng(6).random((1, 6, 6), dtype=np.float32)
    expected = nn.functional.conv2d(torch.tensor(x)[None], torch.tensor(weight), padding="same").numpy().reshape(-1)
    np.testing.assert_allclose(projection_matrix(compiled, proj) @ x.reshape(-1), expected, rtol=1e-5, atol=1e-5)
