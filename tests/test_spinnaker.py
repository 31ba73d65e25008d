"""The SpiNNaker target: mapping passes, and the emitted script on sPyNNaker's virtual board.

A virtual board runs sPyNNaker's whole mapping (partitioning, placement, routing, data
generation) but does not spike, so these tests check that sPyNNaker places exactly the slices
and instances snnc planned and uses snnc's weight exponents; accuracy comes from the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cnn_onnx

import snnc
from snnc.cli import main
from snnc.ir import load
from snnc.passes import PassError
from snnc.passes.quantize import ring_buffer_shift
from snnc.passes.split_populations import grid_tile
from snnc.targets.spinnaker.placement import placed_cores, planned_cores


def _compile(model: Path, data: Path, out: Path, *settings: str) -> dict:
    args = [str(model), "-t", "spinnaker", "-o", str(out), "--data", str(data)]
    for s in settings:
        args += ["--set", s]
    assert main(args) == 0
    return json.loads((out / "report.json").read_text())


def _run_virtual(out: Path, samples: int, tmp_path: Path) -> dict:
    """out/run.py on a virtual board, HOME pointing at a folder with its own .spynnaker.cfg."""
    pytest.importorskip("spynnaker", reason="install the [spinnaker] extra")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    proc = _run_script(out, samples, home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "placements.json").read_text())


def _run_script(out: Path, samples: int, home: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(out / "run.py"), "--samples", str(samples), "--no-ann"]
    return subprocess.run(cmd, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=600)


SMALL_CORES = ("neurons-per-core=5", "source-neurons-per-core=5")


# ------------------------------------------------------------------ passes, no sPyNNaker needed


def test_grid_tiles_divide_the_image() -> None:
    assert grid_tile((16, 28, 28), 256) == (1, 7, 28)
    assert grid_tile((32, 14, 14), 256) == (1, 14, 14)
    assert grid_tile((4, 8, 8), 16) == (1, 2, 8)
    assert grid_tile((1, 7, 7), 5) == (1, 1, 1) or grid_tile((1, 7, 7), 5)[1:] in ((1, 1),)


def test_ring_buffer_shift_follows_spynnaker() -> None:
    # PopulationVertex.get_ring_buffer_shifts: ceil(log2 M), one more when 2^e == M; never negative.
    assert [ring_buffer_shift(m) for m in (0.0, 0.3, 0.75, 1.0, 1.5, 3.0, 4.0, 100.0)] == [0, 0, 0, 1, 1, 2, 3, 7]


def test_split_replicate_and_quantize_on_an_mlp(mlp, tmp_path: Path) -> None:
    model, data = mlp
    report = _compile(model, data, tmp_path / "out", "board=spinn3", *SMALL_CORES, "instances=auto")
    cores = {p["id"]: p["cores"] for p in report["populations"]}
    assert list(cores.values()) == [4, 3, 1]  # 16 inputs, 12 hidden, 4 outputs at 5 per core
    assert report["cores_per_instance"] == 8 and report["application_cores"] == 4 * 16 - 1 == 63
    assert report["instances"] == 63 // 8 == 7
    assert "floor(63 / 8 cores per instance) = 7" in report["instances_arithmetic"]
    graph = load(tmp_path / "out" / "model.snnir")
    for pop in graph.ops_of("snn.population"):
        shifts = graph.op(pop).weight_shift
        assert shifts is not None
        for proj in graph.inputs(pop):
            w = graph.tensor(graph.op(proj).weight)
            quantum = 2.0 ** (shifts[0 if (w >= 0).all() else 1] - 15)
            assert np.allclose(w / quantum, np.rint(w / quantum), atol=1e-3)  # multiples of the step
            assert np.abs(w).max() / quantum < 2**16
    energy = report["energy"]
    assert energy["synaptic_events_per_inference"] > 0 and energy["mj_per_inference"] > 0
    loads = [p["synaptic_events_per_ms_per_core"] for p in report["populations"]]
    assert loads[0] == 0 and min(loads[1:]) > 0  # the source receives nothing
    assert "Sharp et al. 2012" in energy["source"]


def test_limits_fail_with_the_population_and_the_number(mlp, tmp_path: Path, capsys) -> None:
    model, data = mlp
    for setting, words in [
        ("neurons-per-core=300", "takes 1 to 256"),
        ("instances=8", "8 instances x 8 cores = 64 cores; spinn3"),
        ("max-fan-in=10", "a neuron has 16 input synapses; spinnaker allows 10"),
    ]:
        out = tmp_path / setting.split("=")[0]
        args = [
            str(model),
            "-t",
            "spinnaker",
            "-o",
            str(out),
            "--data",
            str(data),
            "--set",
            "board=spinn3",
            "--set",
            "source-neurons-per-core=5",
            "--set",
            "neurons-per-core=5",
            "--set",
            setting,
        ]
        assert main(args) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("snnc: error")]
        assert len(errors) == 1 and words in errors[0], errors
        assert not out.exists()
    with pytest.raises(PassError, match="run split-populations before replicate"):
        snnc.compile(model, "spinnaker", calibration=np.load(data)["x"], pipeline="canonicalize,lower-to-snn,replicate")


def test_back_to_back_samples_carry_state(mlp) -> None:
    """With a pause the simulator runs samples in chains without resets; one sample per chain
    is exactly the reset model, and a long pause with a leak forgets the previous sample."""
    from snnc.ir.semantics.simulator import simulate

    model, data = mlp
    x = np.load(data)["x"][:12]
    # i_offset would fire in pauses; a leak forgets a sample towards 0, so samples start from 0 (no v_init)
    pipeline = "canonicalize,lower-to-snn{reset=zero,tau-m=20,v-init=0,readout=spike_count},normalize,remove-bias"
    reset = snnc.compile(model, "sim", calibration=x, pipeline=pipeline).graph
    chained = reset.copy()
    chained.attrs["pause"] = 0.0
    base = simulate(reset, x).counts[reset.outputs[0]]
    assert np.array_equal(simulate(chained, x, chains=12).counts[reset.outputs[0]], base)
    carried = simulate(chained, x, chains=1).counts[reset.outputs[0]]
    assert not np.array_equal(carried, base)  # leftover membrane and delayed spikes change counts
    chained.attrs["pause"] = 2000.0  # 100 time constants
    assert np.array_equal(simulate(chained, x, chains=3).counts[reset.outputs[0]], base)


# ------------------------------------------------------------------ sPyNNaker, virtual board

spinnaker = pytest.mark.spinnaker


@spinnaker
def test_mlp_slices_and_weight_shifts_are_what_spynnaker_uses(mlp, tmp_path: Path, capsys, monkeypatch) -> None:
    model, data = mlp
    out = tmp_path / "out"
    report = _compile(model, data, out, *SMALL_CORES, "instances=2")
    mapping = _run_virtual(out, 6, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 2)
    results = json.loads((out / "results.json").read_text())
    assert results["virtual_board"] is True and results["accuracy"] is None and results["cores"] == 16
    graph = load(out / "model.snnir")
    pops = [n for n in graph.topo() if graph.op(n).OPNAME in ("snn.source", "snn.population")]
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "floor(759 / 8 cores per instance) = 94 instances fit; using 2 (16 cores)" in text and "mJ" in text
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert main(["run", str(out), "--samples", "4"]) == 0
    assert "mapped onto 16 cores" in capsys.readouterr().out
    for i, node in enumerate(pops):
        if graph.op(node).OPNAME == "snn.population":
            for inst in range(2):
                assert mapping["ring_buffer_shifts"][f"c{i}i{inst}"] == list(graph.op(node).weight_shift)


@spinnaker
def test_cnn_maps_onto_grid_populations_with_native_connectors(tmp_path: Path) -> None:
    model, data = make_cnn_onnx(tmp_path, 8)
    out = tmp_path / "out"
    report = _compile(model, data, out, "neurons-per-core=16", "source-neurons-per-core=16")
    per_core = {p["id"]: p["per_core"] for p in report["populations"]}
    assert list(per_core.values()) == [[1, 2, 8], [1, 2, 8], [1, 4, 4], [1, 2, 2], [16]]
    network = json.loads((out / "network.json").read_text())
    assert [p["kind"] for p in network["projections"]] == ["conv", "pool", "conv", "pool_dense"]
    kernels = np.load(out / "weights.npz")[network["projections"][0]["kernels"]]
    graph = load(out / "model.snnir")
    conv = graph.op(graph.inputs(graph.ops_of("snn.population")[0])[0])
    assert np.array_equal(kernels, np.flip(graph.tensor(conv.weight), axis=(2, 3)))  # sPyNNaker flips kernels
    mapping = _run_virtual(out, 4, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1)
    assert len(mapping["cores"]) == report["cores"] == 4 + 16 + 4 + 6 + 1


@spinnaker
@pytest.mark.slow
def test_auto_instances_fill_spinn3_and_no_more(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "out"
    report = _compile(model, data, out, "board=spinn3", *SMALL_CORES, "instances=auto")
    mapping = _run_virtual(out, 14, tmp_path)
    assert report["instances"] == 7 and len(mapping["cores"]) == 56
    assert len({(c["x"], c["y"]) for c in mapping["cores"]}) <= 4
    # One more instance than snnc allows: sPyNNaker cannot place it on a SpiNN3 board either.
    network = json.loads((out / "network.json").read_text())
    for extra in (8, 9):  # 64 and 72 cores: the first is one over, the second far over
        network["instances"] = extra
        (out / "network.json").write_text(json.dumps(network))
        proc = _run_script(out, 9, tmp_path / "home")
        placement_failed = "PacmanPlaceException" in proc.stderr or "does not support multiple boards" in proc.stderr
        assert proc.returncode != 0 and placement_failed, proc.stderr[-1000:]


@spinnaker
@pytest.mark.slow
def test_auto_instances_fill_spinn5(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "out"
    report = _compile(model, data, out, "instances=auto")  # 3 cores per instance
    assert report["application_cores"] == 48 * 16 - 8 - 1 and report["instances"] == 759 // 3 == 253
    mapping = _run_virtual(out, 253, tmp_path)
    assert len(mapping["cores"]) == 759 and len({(c["x"], c["y"]) for c in mapping["cores"]}) == 48
    network = json.loads((out / "network.json").read_text())
    network["instances"] = 254  # 762 cores: sPyNNaker cannot place one more instance either
    (out / "network.json").write_text(json.dumps(network))
    proc = _run_script(out, 254, tmp_path / "home")
    assert proc.returncode != 0 and "PacmanPlaceException" in proc.stderr


@spinnaker
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_fashion_mnist_examples_map_as_planned(name: str, tmp_path: Path) -> None:
    """The example networks (784-256-128-10; conv16-pool-conv32-pool-dense) at the defaults."""
    example = Path(__file__).parent.parent / "examples" / "fashion_mnist"
    out = tmp_path / "out"
    report = _compile(example / f"{name}.onnx", example / "calibration.npz", out)
    mapping = _run_virtual(out, 3, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1)
    assert len(mapping["cores"]) == report["cores"] == {"mlp": 4 + 1 + 1 + 1, "cnn": 149}[name]


@spinnaker
def test_floored_neurons_map_to_if_trunc_delta(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "out"
    _compile(model, data, out, "tau-m=inf", "v-min=0", "pause=20")
    network = json.loads((out / "network.json").read_text())
    models = {c["model"] for c in network["cells"] if c["kind"] == "population"}
    assert models == {"IF_trunc_delta"}
    mapping = _run_virtual(out, 2, tmp_path)
    assert len(mapping["cores"]) == 3
    assert (
        main([str(model), "-t", "spinnaker", "-o", str(tmp_path / "bad"), "--data", str(data), "--set", "tau-m=inf"])
        == 1
    )


@spinnaker
def test_dense_layers_wider_than_a_core_map(tmp_path: Path) -> None:
    """More than 256 targets per source neuron: the synapse list must be sorted for sPyNNaker 7.4."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 600), torch.nn.ReLU(), torch.nn.Linear(600, 4)).eval()
    model = tmp_path / "wide.onnx"
    torch.onnx.export(net, torch.rand(1, 16), model, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    x = torch.rand(8, 16)
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=net(x).argmax(1).numpy())
    out = tmp_path / "out"
    report = _compile(model, tmp_path / "d.npz", out)
    mapping = _run_virtual(out, 2, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1) and len(mapping["cores"]) == 1 + 3 + 1


@spinnaker
def test_a_machine_of_three_boards_places_what_one_board_cannot(mlp, tmp_path: Path) -> None:
    """--set boards=3: sPyNNaker's virtual machine of three SpiNN-5 boards (16 x 16 chips, as spalloc
    allocates a triad) places every core of snnc's plan, more than one board holds."""
    model, data = mlp
    assert main([str(model), "-t", "spinnaker", "-o", str(tmp_path / "one"), "--data", str(data), "--set",
                 "instances=100", *(a for s in SMALL_CORES for a in ("--set", s))]) == 1  # fmt: skip
    out = tmp_path / "out"
    report = _compile(model, data, out, *SMALL_CORES, "instances=auto", "boards=3")
    assert report["instances"] == 3 * 759 // 8 and report["cores"] == report["instances"] * 8 > 759
    assert "width = 16\nheight = 16" in (out / "spynnaker.cfg").read_text()
    mapping = _run_virtual(out, 4, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, report["instances"])
    assert any(c["x"] >= 8 or c["y"] >= 8 for c in mapping["cores"])  # chips beyond the first board's 8 x 8
