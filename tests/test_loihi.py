"""The loihi target (issue 12): the emitted run.py builds the network with nengo-loihi and runs
it on its emulator in a subprocess; nengo-loihi uses exactly the cores of snnc's split plan, the
chip's integers are what ``quantize`` predicted, and the reference simulator predicts the
emulator's spikes.

Why not exact: the graph holds the chip's weights and biases relative to its threshold, so the
reference simulator computes what the chip computes but for two things: Loihi carries 1/4096 of
each step's synaptic current into the next step, and it spikes when v exceeds the threshold (the
simulator: reaches it). Measured on these networks: per neuron at most 3 spikes apart, totals
within 0.5 %, the same predictions; the bounds tested are those.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cnn_onnx, make_data, make_mlp_onnx

import snnc
from snnc.ir import load, runtime
from snnc.ir.errors import SnncError
from snnc.ir.semantics.simulator import simulate
from snnc.targets import RunRequest, get_target

pytestmark = [
    pytest.mark.loihi,
    pytest.mark.filterwarnings("ignore:invalid value encountered in cast"),  # nengo-loihi's emulator, numpy 1.26
    pytest.mark.filterwarnings("ignore:This version of `nengo_loihi` has not been tested"),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    pytest.importorskip("nengo_loihi", reason="nengo-loihi is not installed: pip install nengo-loihi==1.1.0")
    folder = tmp_path_factory.mktemp("loihi-models")
    mlp = make_mlp_onnx(folder / "mlp.onnx")
    cnn, cnn_data = make_cnn_onnx(folder, 16)
    return {"mlp": (mlp, make_data(folder / "mlp.npz", mlp, n=30)), "cnn": (cnn, cnn_data)}


def _compile(models, name: str, out: Path, **settings: str) -> tuple[Path, Path]:
    model, data = models[name]
    settings = {"fold-pooling": "false", **settings}  # the CNN's pooling stays a layer: the mapping under test
    snnc.compile(model, "loihi", calibration=np.load(data)["x"], settings=settings).emit(out)
    return out, data


def _run(out: Path, data: Path, *args: str) -> dict:
    command = [sys.executable, str(out / "run.py"), "--data", str(data), "--no-ann", "--record", "all", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "results.json").read_text())


def _compare(out: Path, data: Path) -> None:
    """The emulator's spike counts (outputs.npz) against the simulator on model.snnir, samples
    back to back as on the chip."""
    graph = load(out / "model.snnir")
    reference = simulate(graph, np.load(data)["x"], record_neurons=True, chains=1)
    outputs = np.load(out / "outputs.npz")
    network = json.loads((out / "network.json").read_text())
    for i, cell in enumerate(network["cells"]):
        if cell["kind"] != "population":
            continue
        counts = outputs[f"counts_cell{i}"]
        expected = reference.neuron_counts[cell["id"]].reshape(counts.shape).astype(np.int64)
        assert expected.sum() > 0, cell["id"]  # every layer spikes: the comparison means something
        assert np.abs(counts - expected).max() <= 3, cell["id"]
        assert abs(counts.sum() - expected.sum()) <= 0.005 * expected.sum(), cell["id"]
    np.testing.assert_array_equal(outputs["predictions"], reference.predictions)


def _planned_cores(out: Path) -> int:
    cells = json.loads((out / "network.json").read_text())["cells"]
    return sum(-(-c["size"] // c["per_core"]) for c in cells if c["kind"] == "population")


def test_mlp_runs_on_the_emulator_as_the_simulator_predicts(models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out")
    results = _run(out, data)
    assert results["samples"] == 30 and results["backend"] == "emulator" and results["samples_per_second"] > 0
    assert results["cores"] == _planned_cores(out) == json.loads((out / "report.json").read_text())["cores"] == 2
    _compare(out, data)


def test_poisson_input_matches_the_simulator_in_total(models, tmp_path: Path) -> None:
    """Other random numbers than the simulator's, the same rates: totals within 5 %."""
    out, data = _compile(models, "mlp", tmp_path / "out", encoding="poisson")
    _run(out, data, "--seed", "3")
    graph = load(out / "model.snnir")
    reference = simulate(graph, np.load(data)["x"], record_neurons=True, chains=1)
    outputs = np.load(out / "outputs.npz")
    for i, cell in enumerate(json.loads((out / "network.json").read_text())["cells"][1:], start=1):
        expected = reference.neuron_counts[cell["id"]].sum()
        assert expected > 0 and abs(outputs[f"counts_cell{i}"].sum() - expected) <= 0.05 * expected, cell["id"]


def test_samples_run_in_chunks_from_a_reset_chip(models, tmp_path: Path) -> None:
    """--chunk bounds memory: the first chunk is the same run, later chunks start from rest."""
    out, data = _compile(models, "mlp", tmp_path / "out")
    _run(out, data)
    whole = np.load(out / "outputs.npz")["counts_cell2"]
    _run(out, data, "--chunk", "7")
    chunked = np.load(out / "outputs.npz")["counts_cell2"]
    np.testing.assert_array_equal(chunked[:7], whole[:7])
    differing = set(np.nonzero((chunked != whole).any(axis=1))[0].tolist())
    assert differing <= {7, 8, 14, 15, 21, 22, 28, 29}  # the state carried over from the chunk before


def test_split_plan_is_the_cores_nengo_loihi_uses_over_chips(models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out", **{"neurons-per-core": "5", "cores-per-chip": "3"})
    assert [c.get("per_core") for c in json.loads((out / "network.json").read_text())["cells"]] == [None, 5, 5]
    results = _run(out, data)
    assert results["cores"] == _planned_cores(out) == 3 + 1  # 12 hidden neurons on 3 cores, 4 outputs on 1
    assert results["chips"] == 2  # nengo-loihi's allocator spreads 4 cores over chips of 3
    _compare(out, data)  # each core scales its own weights: the simulator follows


def test_cnn_with_convolution_pooling_and_sparse_input(models, tmp_path: Path) -> None:
    out, data = _compile(models, "cnn", tmp_path / "out", **{"neurons-per-core": "100"})
    network = json.loads((out / "network.json").read_text())
    assert [p["kind"] for p in network["projections"]] == ["sparse", "sparse", "conv", "dense"]
    grids = [c for c in network["cells"][1:] if len(c["shape"]) == 3]
    assert [c["per_core"] for c in grids] == [64, 96, 100]  # whole channels of 8x8, 4x4 and 2x2
    results = get_target("loihi").run(RunRequest(out, data))  # snnc's own copy of the script
    assert results["cores"] == _planned_cores(out) == 4 + 1 + 1 + 1
    _run(out, data)
    _compare(out, data)


def _tail_networks() -> dict:
    """Networks whose last pre neurons send nothing into a population that another projection
    also feeds: 7 x 7 pooled by 2 (last row and column unread) folded into a residual add, and two
    strided convolutions (3 x 3 by 2 and 1 x 1 by 3 on 8 x 8: the last row unread) added."""
    import torch
    from torch import nn

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.pool = nn.Conv2d(1, 2, 3, padding=1), nn.AvgPool2d(2)
            self.conv2, self.fc = nn.Conv2d(2, 2, 3, padding=1), nn.Linear(2 * 3 * 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.pool(torch.relu(self.conv(x)))
            return self.fc(torch.flatten(torch.relu(a + torch.relu(self.conv2(a))), 1))

    class Strided(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, 2), nn.Conv2d(2, 2, 1, 3)
            self.fc = nn.Linear(2 * 3 * 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))
            return self.fc(torch.flatten(torch.relu(self.a(h) + self.b(h)), 1))

    return {"pooled": (Pooled, 7), "strided": (Strided, 8)}


@pytest.mark.parametrize("name", ["pooled", "strided"])
def test_last_senders_without_synapses_into_a_shared_population(tmp_path: Path, name: str) -> None:
    """nengo-loihi 1.1 could not place a core whose synapse ends with an axon without weights
    followed by another synapse (``Core.add_synapse``): run.py connects a synapse list from its
    pre neurons up to the last that sends, and such a convolution is written as a list. The
    emulator runs as the simulator predicts, on the cores snnc counts."""
    pytest.importorskip("nengo_loihi", reason="nengo-loihi is not installed: pip install nengo-loihi==1.1.0")
    import torch

    module, size = _tail_networks()[name]
    torch.manual_seed(0)
    net, model, data = module().eval(), tmp_path / "m.onnx", tmp_path / "d.npz"
    x = torch.rand(12, 1, size, size)
    torch.onnx.export(net, x[:1], model, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    with torch.no_grad():
        np.savez(data, x=x.numpy(), y=net(x).argmax(1).numpy())
    out = tmp_path / "out"
    snnc.compile(model, "loihi", calibration=x.numpy()).emit(out)
    network = json.loads((out / "network.json").read_text())
    arrays, cells = dict(np.load(out / "weights.npz")), network["cells"]
    tails = [
        p
        for p in network["projections"]
        if p["kind"] == "sparse" and arrays[p["indices"]][:, 0].max() < cells[p["pre"]]["size"] - 1
    ]
    assert any(sum(q["post"] == p["post"] for q in network["projections"]) > 1 for p in tails)
    _run(out, data)
    _compare(out, data)
    predicted, built = _core_use(out, data)
    assert predicted == built


def _core_use(out: Path, data: Path) -> tuple[list, list]:
    """(in axons, out axons, synapse bits) of every core: as snnc counts them, as nengo-loihi does."""
    from snnc.passes.loihi_cores import core_use

    use = core_use(load(out / "model.snnir"))
    predicted = [
        (u["in_axons"][k], u["out_axons"][k], u["synapse_bits"][k])
        for u in use.values()
        for k in range(len(u["in_axons"]))
    ]
    built = [
        tuple(b.utilization()[key][0] for key in ("in-axons", "out-axons", "synapses")) for b in _blocks(out, data)
    ]
    return predicted, built


def _blocks(out: Path, data: Path) -> list:
    """nengo-loihi's blocks (cores) of the emitted network, built in this process."""
    import nengo_loihi

    from snnc.targets.loihi import run_loihi

    network, arrays = runtime.read_json(out / "network.json"), runtime.read_npz(out / "weights.npz")
    x = np.load(data)["x"][:1].reshape(1, -1)
    spikes = run_loihi.raster(x, network["cells"][0], 1.0, 5, 0, np.random.default_rng(0))
    net, _ = run_loihi.build(network, arrays, spikes, "readout")
    with nengo_loihi.Simulator(net, dt=0.001, target="sim", progress_bar=False) as sim:
        return list(sim.model.blocks)


@pytest.mark.parametrize("name, per_core", [("mlp", "5"), ("cnn", "100"), ("cnn", "40")])
def test_core_use_is_what_nengo_loihi_counts(models, tmp_path: Path, name: str, per_core: str) -> None:
    """Input axons, output axons and synapse memory of every core, as LoihiBlock.utilization();
    40 neurons per core cuts the 8x8 channels of the first convolution (no whole channels fit)."""
    out, data = _compile(models, name, tmp_path / "out", **{"neurons-per-core": per_core})
    predicted, built = _core_use(out, data)
    assert predicted == built and len(built) == _planned_cores(out)


def test_populations_are_cut_to_fit_a_cores_synapse_memory(models, tmp_path: Path) -> None:
    """Without neurons-per-core the plan takes the largest equal cores that fit (as nengo-loihi's
    own split): 16 inputs x 64 bits fit 1280 bits of synapse memory with at most 6 of 12 neurons."""
    out, data = _compile(models, "mlp", tmp_path / "out", **{"synapse-bits-per-core": "1280"})
    assert [c.get("per_core") for c in json.loads((out / "network.json").read_text())["cells"]] == [None, 6, 4]
    blocks = _blocks(out, data)
    assert len(blocks) == _planned_cores(out) == 3
    assert max(b.utilization()["synapses"][0] for b in blocks) <= 1280


def test_quantize_predicts_the_chips_integers(models, tmp_path: Path) -> None:
    """nengo-loihi's own discretization of every block: weight over threshold as the graph holds it."""
    out, data = _compile(models, "mlp", tmp_path / "out", **{"neurons-per-core": "5"})
    graph = load(out / "model.snnir")
    blocks = _blocks(out, data)
    chip = []
    for block in blocks:
        (synapse,) = block.synapses
        weights = np.stack(synapse.weights).reshape(synapse.n_axons, -1).T  # (post, pre) integers
        chip.append(weights / block.compartment.vth[:, None])
    expected = [graph.tensor(graph.op(p).weight) for p in ("fc1_from_x", "fc2_from_fc1")]
    np.testing.assert_allclose(np.concatenate(chip[:3]), expected[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(chip[3], expected[1], rtol=1e-6, atol=1e-7)
    assert len({float(b.compartment.vth[0]) for b in blocks[:3]}) > 1  # each core its own scale


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"synapse-bits-per-core": "640"}, r"%fc1: core 0 would need 1024 bits of synapse memory; loihi allows 640"),
        ({"max-input-axons-per-core": "15"}, r"%fc1: core 0 would need 16 input axons; loihi allows 15"),
        ({"reset": "subtract"}, "loihi takes zero only: nengo-loihi's spiking ReLU resets to zero"),
        ({"encoding": "current"}, "loihi takes regular or poisson or events only: a chip takes input as spikes"),
        ({"tau-m": "20"}, "loihi takes inf only: nengo-loihi's spiking ReLU does not leak"),
        ({"chips": "1", "cores-per-chip": "1"}, "the network needs 2 cores; loihi"),
    ],
)
def test_what_loihi_cannot_do_is_refused_at_compile_time(models, tmp_path: Path, setting, message: str) -> None:
    with pytest.raises(SnncError, match=message):
        _compile(models, "mlp", tmp_path / "out", **setting)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n: n["cells"][1].update(per_core=2000), r"cells\[1\].per_core"),
        (lambda n: n["cells"][0].update(encoding="current"), r"encoding: must be one of"),
        (lambda n: n["projections"][0].update(kind="conv"), r"projections\[0\]: a conv projection joins"),
        (lambda n: n.update(pause=-1), r"pause"),
    ],
)
def test_run_checks_refuse_a_tampered_network(models, tmp_path: Path, edit, message: str) -> None:
    from snnc.targets.loihi import run_loihi

    out, _ = _compile(models, "mlp", tmp_path / "out")
    network, arrays = runtime.read_json(out / "network.json"), runtime.read_npz(out / "weights.npz")
    run_loihi.check_network(network, arrays)  # the emitted files pass
    edit(network)
    with pytest.raises(SystemExit, match=message):
        run_loihi.check_network(network, arrays)


def test_report_shows_each_cores_axons_synapse_memory_and_energy(models, tmp_path: Path) -> None:
    from snnc.report_text import ReportError, format_report

    model, data = models["mlp"]
    out = tmp_path / "out"
    snnc.compile(model, "loihi", calibration=np.load(data)["x"], settings={"neurons-per-core": "5"}).emit(out)
    report = json.loads((out / "report.json").read_text())
    hidden = next(p for p in report["populations"] if p["id"] == "fc1")
    assert hidden["cores"] == 3 and hidden["core_use"]["in_axons"] == [16, 16, 16]  # every input, on every core
    assert report["energy"]["mj_per_inference"] > 0 and "Davies et al. 2018" in report["energy"]["source"]
    text = format_report(report)
    assert "fullest core of each population" in text and "16 (0%)" in text
    hidden["core_use"]["synapse_bits"] = ["1024; rm -rf /"]
    with pytest.raises(ReportError, match=r"populations\[1\]: key 'core_use'"):
        format_report(report)
