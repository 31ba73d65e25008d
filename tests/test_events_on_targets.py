"""Inputs over time (issue 14, part 5) on every target that feeds spike trains: data of shape
(N, T, ...) run T steps per sample, ``events`` input emits each step's count as that many
spikes, and each target's emitted run.py gives the reference simulator's output spike counts.

Measured on this MLP (8 samples, 30 steps): NEST, GeNN and nengo-loihi's emulator equal the
simulator neuron by neuron (Loihi's test keeps test_loihi.py's bound, which its 1/4096 carry of
current and its strict threshold force); SpiNNaker's virtual board maps but does not run, so its
spike sources are checked against the counts, repeated times included.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_mlp_onnx

import snnc
from snnc.ir import load
from snnc.ir.semantics.simulator import simulate

pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered in cast"),  # nengo-loihi's emulator
    pytest.mark.filterwarnings("ignore:This version of `nengo_loihi` has not been tested"),
]
N, T = 8, 30


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The MLP and event data: counts 0/1 (``ones``) and 0/1/2 (``twos``), (N, T, 16)."""
    folder = tmp_path_factory.mktemp("events")
    rng = np.random.default_rng(0)
    files = {"model": make_mlp_onnx(folder / "mlp.onnx")}
    for name, p in (("ones", [0.6, 0.4, 0.0]), ("twos", [0.6, 0.3, 0.1])):
        x = rng.choice([0, 1, 2], p=p, size=(N, T, 16)).astype(np.float32)
        files[name] = folder / f"{name}.npz"
        np.savez(files[name], x=x, y=np.arange(N) % 4)
    return files


def _compile(inputs: dict, target: str, out: Path, calibration: str = "ones", **settings: str) -> Path:
    """Compile for ``target`` with events; calibration: the frames of a data file (each step a sample)."""
    frames = np.load(inputs[calibration])["x"].reshape(-1, 16)
    snnc.compile(inputs["model"], target, calibration=frames, settings={"encoding": "events", **settings}).emit(out)
    return out


def _run(out: Path, data: Path, *args: str, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(out / "run.py"), "--data", str(data), "--no-ann", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert (proc.returncode == 0) == ok, proc.stderr[-2000:]
    return proc


def _reference(out: Path, data: Path, **kwargs):
    return simulate(load(out / "model.snnir"), np.load(data)["x"], record_neurons=True, **kwargs)


def _per_cell(out: Path, reference) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(target's counts, simulator's counts) per population, from outputs.npz's counts_cell<i>."""
    outputs = np.load(out / "outputs.npz")
    cells = json.loads((out / "network.json").read_text())["cells"]
    pairs = {}
    for i, cell in enumerate(cells):
        if f"counts_cell{i}" in outputs:
            counts = outputs[f"counts_cell{i}"]
            pairs[cell["id"]] = counts, reference.neuron_counts[cell["id"]].reshape(counts.shape).astype(np.int64)
    return pairs


def test_nest_runs_event_counts_of_two_as_the_simulator(inputs, tmp_path: Path) -> None:
    pytest.importorskip("pyNN.nest", reason="pyNN and NEST are not installed")
    settings = {"min-delay": "1", "tau-refrac": "0", "readout": "spike_count"}
    out = _compile(inputs, "nest", tmp_path / "out", "twos", dt="1", **settings)
    assert json.loads((out / "network.json").read_text())["cells"][0]["gain"] != 1.0  # normalize scaled it
    _run(out, inputs["twos"])
    results = json.loads((out / "results.json").read_text())
    assert results["simulated_time_ms"] == T * 1.0
    reference = _reference(out, inputs["twos"])
    readout = np.load(out / "outputs.npz")["readout"]
    np.testing.assert_array_equal(readout, reference.counts[load(out / "model.snnir").outputs[0]])
    assert readout.sum() > 0
    flat = tmp_path / "flat.npz"  # events without a time axis: one line, before NEST starts
    np.savez(flat, x=np.ones((2, 16), np.float32), y=np.zeros(2, np.int64))
    assert "events input needs samples over time" in _run(out, flat, ok=False).stderr


def test_nest_takes_regular_input_at_each_steps_rate(inputs, tmp_path: Path) -> None:
    pytest.importorskip("pyNN.nest", reason="pyNN and NEST are not installed")
    rates = tmp_path / "rates.npz"
    x = np.random.default_rng(2).random((N, T, 16), dtype=np.float32)
    np.savez(rates, x=x, y=np.zeros(N, np.int64))
    settings = {"encoding": "regular", "dt": "1", "min-delay": "1", "tau-refrac": "0", "readout": "spike_count"}
    snnc.compile(inputs["model"], "nest", calibration=x.reshape(-1, 16), settings=settings).emit(tmp_path / "out")
    _run(tmp_path / "out", rates)
    reference = _reference(tmp_path / "out", rates)
    readout = np.load(tmp_path / "out" / "outputs.npz")["readout"]
    assert readout.sum() > 0
    np.testing.assert_array_equal(readout, reference.counts[load(tmp_path / "out" / "model.snnir").outputs[0]])


def test_genn_runs_event_counts_of_two_as_the_simulator(inputs, tmp_path: Path) -> None:
    pytest.importorskip("pygenn", reason="PyGeNN is not installed: pip install ../shared/wheels/pygenn-5.4.0-*.whl")
    out = _compile(inputs, "genn", tmp_path / "out", "twos")
    _run(out, inputs["twos"])
    for cell, (counts, expected) in _per_cell(out, _reference(out, inputs["twos"])).items():
        assert expected.sum() > 0, cell
        np.testing.assert_array_equal(counts, expected, err_msg=cell)


def test_genn_takes_regular_input_at_each_steps_rate(inputs, tmp_path: Path) -> None:
    pytest.importorskip("pygenn", reason="PyGeNN is not installed: pip install ../shared/wheels/pygenn-5.4.0-*.whl")
    rates = tmp_path / "rates.npz"
    x = np.random.default_rng(3).random((N, T, 16), dtype=np.float32)
    np.savez(rates, x=x, y=np.zeros(N, np.int64))
    snnc.compile(inputs["model"], "genn", calibration=x.reshape(-1, 16), settings={"encoding": "regular"}).emit(
        tmp_path / "out"
    )
    _run(tmp_path / "out", rates)
    for cell, (counts, expected) in _per_cell(tmp_path / "out", _reference(tmp_path / "out", rates)).items():
        assert expected.sum() > 0, cell
        np.testing.assert_array_equal(counts, expected, err_msg=cell)


def test_loihi_emulator_runs_events_and_refuses_two_spikes_in_a_step(inputs, tmp_path: Path) -> None:
    pytest.importorskip("nengo_loihi", reason="nengo-loihi is not installed: pip install nengo-loihi==1.1.0")
    # quantize.measure=none: the pass would simulate its calibration frames, which have no time axis
    out = _compile(inputs, "loihi", tmp_path / "out", **{"quantize.measure": "none"})
    _run(out, inputs["ones"], "--record", "all")
    reference = _reference(out, inputs["ones"], chains=1)  # back to back with the pause, as on the chip
    for cell, (counts, expected) in _per_cell(out, reference).items():
        assert expected.sum() > 0, cell
        assert np.abs(counts - expected).max() <= 3, cell  # test_loihi.py's bound; measured here: equal
        assert abs(counts.sum() - expected.sum()) <= 0.005 * expected.sum(), cell
    np.testing.assert_array_equal(np.load(out / "outputs.npz")["predictions"], reference.predictions)
    proc = _run(out, inputs["twos"], ok=False)
    assert "spikes in a step; a Loihi input axon carries one spike per step" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_spinnaker_maps_events_and_its_sources_hold_every_count(inputs, tmp_path: Path) -> None:
    pytest.importorskip("spynnaker", reason="install the [spinnaker] extra")
    from spynnaker.pyNN.models.spike_source.spike_source_array_vertex import _send_buffer_times

    out = _compile(inputs, "spinnaker", tmp_path / "out", **{"quantize.measure": "none"})
    network = json.loads((out / "network.json").read_text())
    assert network["cells"][0]["encoding"] == "events" and network["cells"][0]["gain"] == 1.0
    home = tmp_path / "home"
    home.mkdir()
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    _run(out, inputs["twos"], env={**os.environ, "HOME": str(home)})
    placed = json.loads((out / "placements.json").read_text())["cores"]
    assert {c["label"] for c in placed} == {"c0i0", "c1i0", "c2i0"}
    results = json.loads((out / "results.json").read_text())
    assert results["simulated_time_ms"] == T * network["dt"] and results["virtual_board"] is True

    spec = importlib.util.spec_from_file_location("emitted_run", out / "run.py")
    run = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(out))  # its snnc_runtime.py
    try:
        spec.loader.exec_module(run)
    finally:
        sys.path.remove(str(out))
    x = np.load(inputs["twos"])["x"]
    starts = np.arange(N) * (T * network["dt"] + network["pause"])
    trains = run.source_trains(network["cells"][0], network, x, starts)
    for j in range(16):
        expected = [starts[s] + k * network["dt"] for s in range(N) for k in range(T) for _ in range(int(x[s, k, j]))]
        assert trains[j] == expected, j
    ticks = _send_buffer_times(trains, network["dt"] * 1000.0)  # sPyNNaker's time steps: a key per listed time
    assert sum(len(t) for t in ticks) == int(x.sum()) and any(len(set(t)) < len(t) for t in ticks)
