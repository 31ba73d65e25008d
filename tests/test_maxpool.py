"""Max pooling in spiking form: lower-to-snn's relu tree (exact in rates) and the measured avg substitute."""

from __future__ import annotations

import json

import numpy as np
import pytest

import snnc
from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.ann import evaluate
from snnc.ir.semantics.simulator import simulate


def pooled_net(pads: tuple[int, int, int, int] = (0, 0, 0, 0), seed: int = 0) -> Graph:
    """conv3x3(3 channels, relu) -> maxpool 2x2 -> dense 4 on 6x6 inputs."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add("x", ir.Input(shape=(1, 6, 6)))
    w = g.add_tensor("conv.weight", rng.normal(0, 0.6, (3, 1, 3, 3)).astype(np.float32))
    b = g.add_tensor("conv.bias", rng.normal(0.1, 0.1, 3).astype(np.float32))
    c = g.add("conv", ir.Conv2d(weight=w, bias=b, pads=(1, 1, 1, 1), activation="relu"), [x])
    p = g.add("pool", ir.MaxPool2d(kernel=(2, 2), strides=(2, 2), pads=pads), [c])
    size = 3 * int(np.prod(g.shape(p)[1:]))
    wd = g.add_tensor("fc.weight", rng.normal(0, 0.5, (4, size)).astype(np.float32))
    g.outputs = [g.add("fc", ir.Dense(weight=wd), [p])]
    return g


def labelled(graph: Graph, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(1).random((n, 1, 6, 6), dtype=np.float32)
    return x, evaluate(graph, x)[graph.outputs[0]].argmax(axis=1)


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1)])
def test_relu_tree_counts_are_the_window_maxima(pads) -> None:
    graph = pooled_net(pads)
    x, y = labelled(graph, 60)
    c = snnc.compile(graph, "sim", calibration=x, calibration_labels=y, settings={"presentation_time": "200"})
    result = simulate(c.graph, x, record_neurons=True)
    counts = result.neuron_counts
    conv_pop, pool_pop = "conv", "pool"  # the populations of the conv and of the pooled maxima (relus: pool_max*)
    conv = counts[conv_pop].astype(np.int64).reshape(len(x), 3, 6, 6)
    padded = np.pad(conv, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    h, w = c.graph.shape(pool_pop)[1:]
    windows = padded[:, :, : 2 * h, : 2 * w].reshape(len(x), 3, h, 2, w, 2).max(axis=(3, 5))
    lam = _scales(c)  # normalize gives each population its own rate scale
    expected = windows * lam[conv_pop] / lam[pool_pop]
    got = counts[pool_pop].astype(np.int64).reshape(windows.shape)
    error = np.abs(got - expected)  # three relu populations deep: about one count lost per level, and the
    assert np.mean(error <= 2.5) > 0.98  # few rates above a population's scale (99.9th percentile) saturate
    assert np.mean(result.predictions == y) >= 0.95
    assert any("relu trees" in d.message for d in c.diagnostics)


def _scales(c: snnc.api.Compiled) -> dict[str, float]:
    """The scales λ normalize reported, per population."""
    message = next(d.message for d in c.diagnostics if d.source == "normalize" and d.message.startswith("scales"))
    pairs = (item.strip().lstrip("%").split("=") for item in message.split(":", 1)[1].split(","))
    return {name: float(value) for name, value in pairs}


def test_avg_substitute_is_measured_and_warned() -> None:
    graph = pooled_net()
    x, y = labelled(graph)
    c = snnc.compile(graph, "sim", calibration=x, calibration_labels=y, settings={"maxpool": "avg"})
    warning = next(d for d in c.diagnostics if d.level == "warning" and "maxpool=avg" in d.message)
    assert "calibration samples the ANN's predictions change on" in warning.message
    assert "accuracy 100.00% ->" in warning.message
    assert not any(n.startswith("pool_max") for n in c.graph.ops_of("snn.population"))  # no relu tree


def test_nest_and_spinnaker_take_the_relu_tree(tmp_path) -> None:
    graph = pooled_net()
    x, _ = labelled(graph, 30)
    snnc.compile(graph, "nest", calibration=x).emit(tmp_path / "nest")
    assert (tmp_path / "nest" / "network.json").exists()
    snnc.compile(graph, "spinnaker", calibration=x, settings={"quantize.measure": "rates"}).emit(tmp_path / "sp")
    kinds = {p["kind"] for p in json.loads((tmp_path / "sp" / "network.json").read_text())["projections"]}
    assert "list" in kinds  # the stride-2 window selections
    snnc.compile(graph, "spinnaker", calibration=x, settings={"quantize.measure": "rates", "maxpool": "avg"})


def test_the_relu_tree_round_trips_through_nir(tmp_path) -> None:
    graph = pooled_net((1, 1, 1, 1))
    x, _ = labelled(graph, 30)
    c = snnc.compile(graph, "nir", calibration=x)
    c.emit(tmp_path / "out")
    again = snnc.compile(tmp_path / "out" / "network.nir", "sim").graph
    ours, theirs = simulate(c.graph, x), simulate(again, x)
    assert np.array_equal(ours.predictions, theirs.predictions)
    assert np.array_equal(next(iter(ours.counts.values())), next(iter(theirs.counts.values())))
