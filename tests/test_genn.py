"""The genn target (issue 11): the emitted run.py builds and simulates a GeNN model in a
subprocess, and its spike counts equal the reference simulator's, neuron by neuron.

Why exact: GeNN runs the same float32 operations in the same order as ``ir.semantics.simulator``
(decay, constant input, synaptic input, floor, refractory clamp, threshold, reset); each layer
starts as many steps after its inputs as GeNN's latency of one step per projection needs, and
shorter paths wait in axonal delays, so every layer sees its inputs at the simulator's steps
(no latency per layer, or the compiled delay); the input current W @ x is computed on the host
as the simulator does. Poisson input draws other random numbers,
so there only the totals are compared. Each network is built once per output folder.
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
from snnc.ir import load
from snnc.ir.errors import SnncError
from snnc.ir.semantics.simulator import simulate
from snnc.targets import RunRequest, TargetError, get_target

pytestmark = pytest.mark.genn
SKIP_REASON = "PyGeNN is not installed: pip install ../shared/wheels/pygenn-5.4.0-*.whl"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("genn-models")
    mlp = make_mlp_onnx(folder / "mlp.onnx")
    cnn, cnn_data = make_cnn_onnx(folder, 12)
    return {"mlp": (mlp, make_data(folder / "mlp.npz", mlp, n=24)), "cnn": (cnn, cnn_data)}


@pytest.fixture(scope="module")
def genn() -> None:
    pytest.importorskip("pygenn", reason=SKIP_REASON)


def _compile(models, name: str, out: Path, **settings: str) -> tuple[Path, Path]:
    model, data = models[name]
    settings = {"fold-pooling": "false", **settings}  # the CNN's pooling stays a layer: the mapping under test
    snnc.compile(model, "genn", calibration=np.load(data)["x"], settings=settings).emit(out)
    return out, data


def _run(out: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(out / "run.py"), "--data", str(data), "--no-ann", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _compare(out: Path, data: Path, exact: bool = True) -> dict[str, int]:
    """GeNN's spike counts (outputs.npz) against the reference simulator on model.snnir; the
    simulator's total spikes per population."""
    graph = load(out / "model.snnir")
    x = np.load(data)["x"]
    reference = simulate(graph, x, record_neurons=True)
    outputs = np.load(out / "outputs.npz")
    network = json.loads((out / "network.json").read_text())
    totals = {}
    for i, cell in enumerate(network["cells"]):
        if cell["kind"] != "population":
            continue
        counts = outputs[f"counts_cell{i}"]
        expected = reference.neuron_counts[cell["id"]].reshape(counts.shape).astype(np.int64)
        if exact:
            np.testing.assert_array_equal(counts, expected, err_msg=cell["id"])
        else:  # Poisson: other random numbers, the same rates (measured: within 1 % on 200 samples)
            assert abs(counts.sum() - expected.sum()) <= 0.05 * expected.sum(), cell["id"]
        totals[cell["id"]] = int(expected.sum())
    if exact:
        np.testing.assert_array_equal(outputs["predictions"], reference.predictions)
    return totals


def test_mlp_spike_counts_equal_the_simulator(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out")
    network = json.loads((out / "network.json").read_text())  # each layer starts a step after the one before
    assert [c["start"] for c in network["cells"][1:]] == list(range(len(network["cells"]) - 1))
    assert [p["delay_steps"] for p in network["projections"]] == [0] + [1] * (len(network["projections"]) - 1)
    results = get_target("genn").run(RunRequest(out, data))  # snnc's own copy of the script
    assert results["samples"] == 24 and results["samples_per_second"] > 0 and results["batch_size"] == 1
    assert min(_compare(out, data).values()) > 0  # every layer spikes: the comparison means something
    generated = [p.read_text(errors="replace") for p in (out / "genn_build").rglob("*.cc")]
    assert generated and not any("fc1" in text or "fc2" in text for text in generated)  # no model name in code


def test_cnn_spike_counts_equal_the_simulator_with_conv2d_and_with_synapse_lists(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "cnn", tmp_path / "out")
    network = json.loads((out / "network.json").read_text())
    assert [p["matrix"] for p in network["projections"]] == ["DENSE", "SPARSE", "TOEPLITZ", "DENSE"]
    assert "AvgPoolConv2D" in network["projections"][1]["reason"]  # why the pool is a synapse list
    for conv in ("toeplitz", "sparse"):
        proc = _run(out, data, "--conv", conv)
        assert ("projection 2 as a SPARSE synapse list" in proc.stdout) == (conv == "sparse")
        assert min(_compare(out, data).values()) > 0
    assert (out / "genn_build").is_dir()


def test_hard_reset_leak_refractoriness_floor_and_regular_input_equal_the_simulator(
    genn, models, tmp_path: Path
) -> None:
    settings = {"reset": "zero", "tau-m": "20", "tau-refrac": "2", "v-min": "-0.2", "encoding": "regular"}
    out, data = _compile(models, "cnn", tmp_path / "out", **settings, **{"dt": "0.5", "min-delay": "1.5"})
    network = json.loads((out / "network.json").read_text())
    assert {p["delay_steps"] for p in network["projections"]} == {3}  # spike input: every projection delays
    assert {c["start"] for c in network["cells"][1:]} == {0}  # the delays hide GeNN's step: no later starts
    assert {c["refrac_steps"] for c in network["cells"][1:]} == {4}
    _run(out, data, "--conv", "toeplitz")
    assert min(_compare(out, data).values()) > 0


def test_membrane_readout_equals_the_simulator(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out", **{"lower-to-snn.readout": "membrane"})
    _run(out, data)
    graph = load(out / "model.snnir")
    reference = simulate(graph, np.load(data)["x"])
    # float32 sums in another order: GeNN adds every step's input, sim the spike counts' product
    readout = np.load(out / "outputs.npz")["readout"]
    np.testing.assert_allclose(readout, reference.counts[graph.outputs[0]], rtol=1e-5, atol=1e-5)


def test_poisson_input_matches_the_simulator_in_total(genn, models, tmp_path: Path) -> None:
    out, _ = _compile(models, "mlp", tmp_path / "out", encoding="poisson")
    data = make_data(tmp_path / "more.npz", models["mlp"][0], n=200)  # enough spikes for a 5 % bound
    _run(out, data, "--seed", "3")
    _compare(out, data, exact=False)


def test_instances_become_the_batch_size_which_the_cpu_backend_runs_one_at_a_time(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out", instances="4")
    assert json.loads((out / "network.json").read_text())["batch_size"] == 4
    proc = _run(out, data)
    assert "a batch of 4 needs --backend cuda" in proc.stdout
    assert json.loads((out / "results.json").read_text())["batch_size"] == 1
    _compare(out, data)


def test_a_tampered_network_is_refused_before_building(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out")
    network = json.loads((out / "network.json").read_text())
    network["cells"][1]["v_reset"] = network["cells"][1]["v_thresh"]
    (out / "network.json").write_text(json.dumps(network))
    proc = subprocess.run([sys.executable, str(out / "run.py"), "--data", str(data)], capture_output=True, text=True)
    assert proc.returncode != 0 and "cells[1].v_reset: must be below v_thresh" in proc.stderr
    assert not (out / "genn_build").exists()


def test_settings_genn_cannot_take_are_refused_at_compile_time(models, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"^instances=auto: GeNN's batch size needs a number$"):
        _compile(models, "mlp", tmp_path / "auto", instances="auto")
    with pytest.raises(SnncError, match="genn fixes pause: GeNN resets"):
        _compile(models, "mlp", tmp_path / "pause", pause="10")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n: n.update(batch_size="2; rm -rf"), r"batch_size: must be an integer"),
        (lambda n: n["projections"][1].update(delay_steps=0), r"projections\[1\].delay_steps"),
        (lambda n: n["projections"][1].update(matrix="PROCEDURAL"), r"matrix: must be one of"),
        (lambda n: n["projections"][1].update(reason="x\n" * 3), r"reason: must be a line"),
        (lambda n: n["projections"][1].update(kind="pickle"), r"projections\[1\].kind: must be one of"),
        (lambda n: n["cells"][1].update(decay=2.0), r"cells\[1\].decay: 2.0 is outside"),
        (lambda n: n["cells"][2].update(refrac_steps=-1), r"cells\[2\].refrac_steps"),
        (lambda n: n["cells"][0].update(encoding="spikes"), r"encoding: must be one of"),
    ],
)
def test_run_checks_refuse_a_tampered_network(models, tmp_path: Path, edit, message: str) -> None:
    from snnc.ir import runtime
    from snnc.targets.genn import run_genn

    out, _ = _compile(models, "mlp", tmp_path / "out")
    network, arrays = runtime.read_json(out / "network.json"), runtime.read_npz(out / "weights.npz")
    run_genn.check_network(network, arrays)  # the emitted files pass
    edit(network)
    with pytest.raises(SystemExit, match=message):
        run_genn.check_network(network, arrays)


def test_residual_add_and_concatenation_on_conv2d_equal_the_simulator(genn, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    class Residual(nn.Module):  # same-padded and 1x1 convolutions on several channels, an add, a concat
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2, self.c3 = nn.Conv2d(2, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
            self.fc = nn.Linear(12 * 3 * 3, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.c1(x))
            h = nn.functional.avg_pool2d(h + torch.relu(self.c2(h)), 2)
            h = nn.functional.avg_pool2d(torch.cat([h, torch.relu(self.c3(h))], 1), 2)
            return self.fc(h.reshape(h.size(0), -1))

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((8, 2, 14, 14), dtype=np.float32)
    torch.onnx.export(Residual().eval(), torch.from_numpy(x[:1]), str(tmp_path / "res.onnx"), dynamo=False)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(8, np.int64))
    models = {"res": (tmp_path / "res.onnx", tmp_path / "d.npz")}
    out, data = _compile(models, "res", tmp_path / "out")
    projections = json.loads((out / "network.json").read_text())["projections"]
    matrices = [p["matrix"] for p in projections]
    assert matrices.count("TOEPLITZ") == 2 and len(matrices) == 11  # adds and concatenations: several projections
    assert max(p["delay_steps"] for p in projections) > 1  # the shorter path of an add waits for the longer
    _run(out, data, "--conv", "toeplitz")
    assert min(_compare(out, data).values()) > 0


def test_a_convolution_padded_beyond_its_kernel_is_a_synapse_list(genn, tmp_path: Path) -> None:
    """GeNN's Conv2D pads each side by at most the kernel size - 1: a 1 x 1 convolution padded by
    one (output larger than input) was emitted as TOEPLITZ and refused by run.py's check (found by
    tests/fuzz_targets.py); it is a synapse list, and the counts equal the simulator's."""
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    convs = [nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 2, 1, padding=1)]
    net = nn.Sequential(*[m for c in convs for m in (c, nn.ReLU())], nn.Flatten(), nn.Linear(2 * 8 * 8, 4)).eval()
    x = np.random.default_rng(0).random((6, 1, 6, 6), dtype=np.float32)
    torch.onnx.export(net, torch.from_numpy(x[:1]), str(tmp_path / "pad.onnx"), dynamo=False)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(6, np.int64))
    out, data = _compile({"pad": (tmp_path / "pad.onnx", tmp_path / "d.npz")}, "pad", tmp_path / "out")
    projections = json.loads((out / "network.json").read_text())["projections"]
    assert [p["matrix"] for p in projections] == ["DENSE", "TOEPLITZ", "SPARSE", "DENSE"]
    assert "at most the kernel size - 1" in projections[2]["reason"]
    _run(out, data, "--conv", "toeplitz")
    assert min(_compare(out, data).values()) > 0


def test_compiled_precision_and_backend_are_what_snnc_run_uses(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out", precision="double")
    network = json.loads((out / "network.json").read_text())
    assert (network["precision"], network["backend"]) == ("double", "single_threaded_cpu")
    results = get_target("genn").run(RunRequest(out, data))
    assert (results["precision"], results["backend"]) == ("double", "single_threaded_cpu")
    assert "double* V" in (out / "genn_build" / "snnc_CODE" / "definitions.h").read_text()  # GeNN's scalar type


def test_a_start_part_of_the_way_and_a_membrane_readout_equal_the_simulator(genn, models, tmp_path: Path) -> None:
    out, data = _compile(models, "mlp", tmp_path / "out", **{"v-init": "0.5", "readout": "membrane"})
    _run(out, data)
    assert max(_compare(out, data).values()) > 0  # the hidden layer spikes as in sim, from v = 0.5
    graph = load(out / "model.snnir")
    reference = simulate(graph, np.load(data)["x"])
    # float32 sums in another order: GeNN adds every step's input, sim the spike counts' product
    readout = np.load(out / "outputs.npz")["readout"]
    np.testing.assert_allclose(readout, reference.counts[graph.outputs[0]], rtol=1e-5, atol=1e-5)
