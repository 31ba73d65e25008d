"""NIR export (target nir) and import (.nir files): a network survives the round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.ir import load
from snnc.ir.semantics.rates import rates as rate_model
from snnc.ir.semantics.simulator import simulate

nir = pytest.importorskip("nir")

NETS = {
    "mlp": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 12), nn.ReLU(), nn.Linear(12, 3)), (1, 6, 6)),
    "cnn": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(36, 3)
        ),
        (1, 6, 6),
    ),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_round_trip_through_nir(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    make, shape = NETS[name]
    x = np.random.default_rng(0).random((40, *shape), dtype=np.float32)
    compiled = snnc.compile(snnc.load(make(), input_shape=shape), "nir", calibration=x)
    out = compiled.emit(tmp_path / "out")
    exported = load(out / "model.snnir")
    assert isinstance(nir.read(out / "network.nir"), nir.NIRGraph)
    back = snnc.compile(out / "network.nir", "sim").graph
    kinds = [[g.op(n).OPNAME for n in g.topo()] for g in (exported, back)]
    assert kinds[0] == kinds[1]
    a, b = simulate(exported, x), simulate(back, x)
    np.testing.assert_array_equal(a.counts[exported.outputs[0]], b.counts[back.outputs[0]])


def test_unsupported_nir_nodes_are_named(tmp_path: Path) -> None:
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([3])}),
            "d": nir.Delay(delay=np.ones(3)),
            "out": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("in", "d"), ("d", "out")],
    )
    nir.write(tmp_path / "g.nir", graph)
    with pytest.raises(snnc.ir.IRError, match=r"unsupported NIR nodes: Delay \('d'\)"):
        snnc.load(tmp_path / "g.nir")


def test_a_graph_written_by_sinabs_compiles_and_simulates(tmp_path: Path) -> None:
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        sl.IAFSqueeze(batch_size=1),
        sl.SumPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 3),
        sl.IAFSqueeze(batch_size=1),
    )
    graph = sinabs.to_nir(net, torch.rand(1, 1, 8, 8))
    compiled = snnc.compile(graph, "sim")
    kinds = [compiled.graph.op(n).OPNAME for n in compiled.graph.topo()]
    assert kinds.count("snn.population") == 2 and kinds[-1] == "snn.readout"
    x = np.random.default_rng(0).random((6, 1, 8, 8), dtype=np.float32)
    result = simulate(compiled.graph, x, steps=50)
    assert result.spikes[compiled.graph.inputs(compiled.graph.outputs[0])[0]].sum() > 0
    # The composed SumPool2d -> Flatten -> Affine equals pooling then the dense layer.
    rates = rate_model(compiled.graph, x)
    first, last = [n for n in compiled.graph.topo() if compiled.graph.op(n).OPNAME == "snn.population"]
    pooled = torch.nn.functional.avg_pool2d(torch.tensor(rates[first]).reshape(6, 4, 8, 8), 2) * 4
    expected = torch.relu(net[4](pooled.flatten(1))).detach().numpy()
    np.testing.assert_allclose(rates[last], expected, atol=1e-5)
