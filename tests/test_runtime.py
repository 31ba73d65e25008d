"""The runtime that snnc and the emitted run scripts share (snnc.ir.runtime, copied as
snnc_runtime.py), and the run modules' arguments and checks without a simulator (issue 10)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_data, make_mlp_onnx

import snnc
from snnc.ir import limits, runtime
from snnc.ir.errors import BudgetError, SnncError
from snnc.targets.base import run_script_files
from snnc.targets.nest import run_nest
from snnc.targets.sim import run_sim
from snnc.targets.spinnaker import run_spinnaker

RUN_MODULES = {"nest": run_nest, "sim": run_sim, "spinnaker": run_spinnaker}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mlp")
    model = make_mlp_onnx(folder / "mlp.onnx")
    return model, make_data(folder / "data.npz", model)


def _emit(mlp: tuple[Path, Path], target: str, out: Path) -> Path:
    model, data = mlp
    extra = {"measure": "none"} if target == "spinnaker" else {}
    return snnc.compile(model, target, calibration=np.load(data)["x"], settings=extra).emit(out)


# --------------------------------------------------------------------------- data loading


def test_nhwc_data_is_read_in_the_model_layout(tmp_path: Path) -> None:
    nhwc = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)  # N, H, W, C
    np.savez(tmp_path / "d.npz", x=nhwc, y=np.array([0, 1]))
    x, y = runtime.load_samples(tmp_path / "d.npz", None, (3, 4, 5), 2, "NHWC")
    assert x.shape == (2, 3, 4, 5) and np.array_equal(x, nhwc.transpose(0, 3, 1, 2)) and list(y) == [0, 1]
    x, _ = runtime.load_samples(tmp_path / "d.npz", 1, (3, 4, 5), 2, "NCHW")  # NCHW: only reshaped
    assert np.array_equal(x, nhwc[:1].reshape(1, 3, 4, 5))
    assert x.flags.c_contiguous and x.dtype == np.float32


def test_load_samples_takes_at_most_the_samples_asked_for(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4), np.float32), y=np.zeros(3, np.int64))
    assert runtime.load_samples(tmp_path / "d.npz", 10, (4,), 2)[0].shape == (3, 4)
    with pytest.raises(runtime.DataError, match="3 samples asked for|10 samples asked for"):
        runtime.load_data(tmp_path / "d.npz", 10)  # exactly that many: snnc's own runs


def test_labels_are_checked_against_the_outputs(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4), np.float32), y=np.array([0, 1, 5]))
    with pytest.raises(SystemExit, match=r"run.py: .*d.npz: y holds the label 5, outside \[0, 3\)"):
        runtime.load_samples(tmp_path / "d.npz", None, (4,), 3)
    with pytest.raises(runtime.DataError, match="label 5"):
        runtime.load_data(tmp_path / "d.npz", classes=5)
    assert list(runtime.load_data(tmp_path / "d.npz", classes=6)[1]) == [0, 1, 5]


def test_the_byte_budget_applies_to_data_and_weights(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((100, 100), np.float32), y=np.zeros(100, np.int64))
    with limits.using(limits.Budget(bytes=1000)):
        with pytest.raises(BudgetError, match="d.npz: x: "):
            runtime.load_data(tmp_path / "d.npz")
        assert runtime.load_data(tmp_path / "d.npz", at_most=2)[0].shape == (2, 100)  # 800 bytes
        with pytest.raises(SystemExit, match="run.py: .*d.npz: x: .* bytes exceed the budget"):
            runtime.load_samples(tmp_path / "d.npz", None, (100,), 1)
        with pytest.raises(SystemExit, match="run.py: d.npz: x: .* bytes exceed the budget"):
            runtime.read_npz(tmp_path / "d.npz")


def _standalone_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """ir/runtime.py loaded as a run script loads it, with snnc not importable."""
    for name in ("snnc", "snnc.ir", "snnc.ir.errors", "snnc.ir.limits"):
        monkeypatch.setitem(sys.modules, name, None)
    spec = importlib.util.spec_from_file_location("snnc_runtime", run_script_files("nest")["snnc_runtime.py"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_snnc_errors_are_value_errors_and_the_budget_is_fixed(monkeypatch, tmp_path: Path) -> None:
    standalone = _standalone_runtime(monkeypatch, tmp_path)
    assert not issubclass(standalone.DataError, SnncError) and issubclass(standalone.DataError, ValueError)
    assert issubclass(runtime.DataError, SnncError)
    np.savez(tmp_path / "d.npz", x=np.zeros((100, 100), np.float32), y=np.zeros(100, np.int64))
    monkeypatch.setattr(standalone, "DEFAULT_MAX_ARRAY_BYTES", 1000)
    with pytest.raises(standalone.DataError, match="d.npz: x: shape \\[100, 100\\] exceeds 1000 bytes"):
        standalone.load_data(tmp_path / "d.npz")
    with pytest.raises(SystemExit, match="exceeds 1000 bytes"):
        standalone.load_samples(tmp_path / "d.npz", None, (100,), 1)
    assert standalone.load_data(tmp_path / "d.npz", at_most=2)[0].shape == (2, 100)


def test_data_path_comes_from_the_argument_or_snnc_json(tmp_path: Path) -> None:
    assert runtime.data_path(tmp_path, Path("given.npz")) == Path("given.npz")
    (tmp_path / "snnc.json").write_text(json.dumps({"data": "/data/test.npz", "tau_m": float("inf")}))
    assert runtime.data_path(tmp_path, None) == Path("/data/test.npz")
    (tmp_path / "snnc.json").write_text(json.dumps({"data": None}))
    with pytest.raises(SystemExit, match="no data recorded at compile time"):
        runtime.data_path(tmp_path, None)
    (tmp_path / "snnc.json").write_text(json.dumps({"data": "/etc/passwd"}))
    with pytest.raises(SystemExit, match="snnc.json: data: must be the path of an .npz file"):
        runtime.data_path(tmp_path, None)


# --------------------------------------------------------------------------- spike trains


def test_regular_spike_trains_follow_the_phase_rule() -> None:
    rates = np.array([[0.25, 0.5, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0]])  # spikes per step, two samples
    starts = np.array([0.0, 100.0])
    trains = runtime.regular_spike_times(rates, starts, steps=8, dt=0.5)
    # floor((k + 1) * r) grows at k = 3, 7 for r = 0.25; time = start + k * dt
    assert trains[0].tolist() == [1.5, 3.5, 100.5, 101.5, 102.5, 103.5]
    assert trains[1].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert trains[2].tolist() == [0.5 * k for k in range(8)]
    assert trains[3].tolist() == []
    shifted = runtime.regular_spike_times(rates[:1], starts[:1], steps=8, dt=0.5, first_step=1)
    assert shifted[0].tolist() == [2.0, 4.0]  # NEST's script: a step later


def test_regular_spike_counts_match_the_rate_over_many_chunks() -> None:
    rates = np.random.default_rng(0).random((40, 7))
    trains = runtime.regular_spike_times(rates, np.arange(40) * 1000.0, steps=100, dt=1.0, chunk=3)
    counts = np.array([[np.sum((t >= 1000 * s) & (t < 1000 * (s + 1))) for t in trains] for s in range(40)])
    assert np.array_equal(counts, np.floor(rates * 100 + 1e-9))
    assert all(np.all(np.diff(t) > 0) for t in trains)


# --------------------------------------------------------------------------- network checks


def _network() -> dict:
    return {
        "dt": 1.0,
        "presentation_time": 50.0,
        "input_layout": "NCHW",
        "cells": [
            {"kind": "source", "size": 4, "shape": [4], "gain": 1.0, "max_rate": 1000.0},
            {"kind": "population", "size": 2, "readout": "spike_count"},
        ],
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n: n["cells"].reverse(), r"cells\[0\]: the first cell, and only it, must be the source"),
        (lambda n: n["cells"][0].update(shape=[3]), r"cells\[0\].shape: \[3\] does not hold 4 neurons"),
        (lambda n: n.update(input_layout="NHWC"), "a channels-last input needs a \\(C, H, W\\) shape"),
        (lambda n: n["cells"][1].update(readout=None), "network.json: no cell is read out"),
        (lambda n: n.update(dt=True), "network.json.dt: must be a finite number"),
        (lambda n: n["cells"][0].update(max_rate=-1.0), r"cells\[0\].max_rate: -1.0 is outside"),
    ],
)
def test_check_cells_refuses(edit, message: str) -> None:
    network = _network()
    assert runtime.check_cells(network) == network["cells"]
    edit(network)
    with pytest.raises(SystemExit, match=message):
        runtime.check_cells(network)


def test_projection_ends_and_arrays() -> None:
    cells = _network()["cells"]
    assert runtime.projection_ends({"pre": 0, "post": 1, "delay": 1.0}, cells, "p") == (cells[0], cells[1])
    with pytest.raises(SystemExit, match=r"p.post: must be an integer in \[1, 1\]"):
        runtime.projection_ends({"pre": 0, "post": 0, "delay": 1.0}, cells, "p")
    arrays = {"w": np.array([[0, 1, 0.5]], np.float32)}
    conn = runtime.array(arrays, {"c": "w"}, "c", "p", (None, 3))
    assert conn.dtype == np.float64 and arrays["w"] is conn
    runtime.index_column(conn, 1, 2, "p")
    with pytest.raises(SystemExit, match=r"column 1 holds indices outside \[0, 1\)"):
        runtime.index_column(conn, 1, 1, "p")
    with pytest.raises(SystemExit, match="must name an array of weights.npz"):
        runtime.array(arrays, {"c": "../w"}, "c", "p", (None, 3))


def test_results_json(tmp_path: Path) -> None:
    runtime.write_results(tmp_path, {"samples": 2, "accuracy": 0.5})
    assert (tmp_path / "results.json").read_text() == '{\n  "accuracy": 0.5,\n  "samples": 2\n}\n'


# --------------------------------------------------------------------------- run modules


@pytest.mark.parametrize("target", sorted(RUN_MODULES))
def test_run_modules_parse_the_common_arguments(target: str, tmp_path: Path) -> None:
    module = RUN_MODULES[target]
    args = module.parse_args(["--dir", str(tmp_path), "--samples", "5"])
    assert args.dir == tmp_path.resolve() and args.samples == 5 and args.data is None
    assert module.parse_args([]).dir == Path(module.__file__).resolve().parent
    for bad in (["--samples", "0"], ["--samples", "x"], ["--unknown"]):
        with pytest.raises(SystemExit) as info:
            module.parse_args(bad)
        assert info.value.code == 2


def test_run_module_own_arguments(capsys) -> None:
    nest = run_nest.parse_args(["--seed", "3", "--presentation-time", "20", "--threads", "2", "--no-ann"])
    assert (nest.seed, nest.presentation_time, nest.threads, nest.no_ann) == (3, 20.0, 2, True)
    assert run_spinnaker.parse_args(["--time-scale-factor", "4"]).time_scale_factor == 4
    assert run_sim.parse_args(["--seed", "1"]).seed == 1
    refused = [
        (run_nest, ["--presentation-time", "nan"]),
        (run_nest, ["--presentation-time", "0"]),
        (run_nest, ["--presentation-time", "-5"]),
        (run_nest, ["--seed", "-1"]),
        (run_nest, ["--threads", "0"]),
        (run_spinnaker, ["--time-scale-factor", "0"]),
        (run_spinnaker, ["--seed", "1"]),
        (run_sim, ["--no-ann"]),
    ]
    for module, argv in refused:
        with pytest.raises(SystemExit):
            module.parse_args(argv)
    assert "--presentation-time: nan is outside (0, 1e+07]" in capsys.readouterr().err


def test_run_modules_import_no_simulator() -> None:
    code = (
        "import sys, snnc.targets.nest.run_nest, snnc.targets.spinnaker.run_spinnaker, snnc.targets.sim.run_sim; "
        "print(sorted(m for m in ('nest', 'pyNN', 'spynnaker') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]


@pytest.mark.parametrize("target", ["nest", "spinnaker"])
def test_run_modules_load_what_snnc_emitted(mlp, tmp_path: Path, target: str) -> None:
    out = _emit(mlp, target, tmp_path / "out")
    module = RUN_MODULES[target]
    network, arrays, path, x, y = module.load_inputs(module.parse_args(["--dir", str(out), "--data", str(mlp[1])]))
    data_x, data_y = np.load(mlp[1])["x"], np.load(mlp[1])["y"]
    assert path == mlp[1] and np.array_equal(x, data_x.reshape(len(data_x), -1)) and np.array_equal(y, data_y)
    # NEST spells out every projection, SpiNNaker its lists
    spelled = {"nest": lambda p: True, "spinnaker": lambda p: p["kind"] == "list"}.get(target, lambda p: False)
    spelled_out = {f"projections/{j}" for j, p in enumerate(network["projections"]) if spelled(p)}
    assert set(arrays) == set(np.load(out / "weights.npz").files) | spelled_out
    assert network["cells"][0]["kind"] == "source"
    assert (
        len(module.load_inputs(module.parse_args(["--dir", str(out), "--data", str(mlp[1]), "--samples", "3"]))[3]) == 3
    )


@pytest.mark.parametrize("target", sorted(RUN_MODULES))
def test_emitted_scripts_are_the_run_module_and_the_runtime(mlp, tmp_path: Path, target: str) -> None:
    out = _emit(mlp, target, tmp_path / "out")
    for name, source in run_script_files(target).items():
        assert (out / name).read_bytes() == source.read_bytes()
    assert not (out / "run_checks.py").exists()


def test_emitted_script_checks_everything_without_snnc(mlp, tmp_path: Path) -> None:
    """out/run.py with snnc hidden: it reads and checks the network and the data with its own
    snnc_runtime.py, and stops only at the missing sPyNNaker user config (HOME is empty)."""
    out = _emit(mlp, "spinnaker", tmp_path / "out")
    driver = (
        "import runpy, sys; sys.modules['snnc'] = None; sys.path.insert(0, sys.argv[1]); "
        "sys.argv = [sys.argv[1] + '/run.py', *sys.argv[2:]]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    command = [sys.executable, "-c", driver, str(out), "--data", str(mlp[1]), "--no-ann"]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("run.py: sPyNNaker needs a user config"), proc.stderr
    np.savez(tmp_path / "bad.npz", x=np.load(mlp[1])["x"], y=np.full(len(np.load(mlp[1])["y"]), 99))
    command[5] = str(tmp_path / "bad.npz")
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 1 and "bad.npz: y holds the label 99, outside [0, 4)" in proc.stderr


def test_snnc_run_uses_its_own_runtime_not_the_one_in_out(mlp, tmp_path: Path) -> None:
    pytest.importorskip("pyNN.nest", reason="install the [nest] extra")
    from snnc.runner import run_compiled

    out = _emit(mlp, "nest", tmp_path / "out")
    payload = f"import pathlib\npathlib.Path({str(tmp_path / 'PWNED')!r}).write_text('x')\n"
    (out / "snnc_runtime.py").write_text(payload + (out / "snnc_runtime.py").read_text())
    results = run_compiled(out, mlp[1], samples=2, report=False)
    assert results["samples"] == 2 and not (tmp_path / "PWNED").exists()
