"""The command line: compile, run, ir, passes, targets, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snnc.cli import main


def snnc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snnc.cli", *args], capture_output=True, text=True, timeout=300)


def test_compile_and_run_sim(mlp, tmp_path: Path, capsys) -> None:
    model, data = mlp
    out = tmp_path / "out"
    assert main([str(model), "--target", "sim", "-o", str(out), "--data", str(data)]) == 0
    assert {"model.snnir", "ann.snnir", "snnc.json", "run.py", "README.md"} <= {p.name for p in out.iterdir()}
    assert main(["run", str(out), "--samples", "32"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 32 and results["target"] == "sim"
    assert results["ann_accuracy"] == 1.0
    assert results["accuracy"] >= 0.8
    # the emitted script gives the same accuracy on its own
    proc = subprocess.run([sys.executable, str(out / "run.py"), "--samples", "32"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "results.json").read_text())["accuracy"] == results["accuracy"]


def test_run_chooses_the_simulators_device(mlp, tmp_path: Path) -> None:
    """--device host, a torch device (the CPU's here: CI has no GPU) or auto; a bad one is one line."""
    model, data = mlp
    out = tmp_path / "out"
    assert main([str(model), "--target", "sim", "-o", str(out), "--data", str(data)]) == 0
    accuracy = {}
    for device in ("host", "cpu"):
        assert main(["run", str(out), "--samples", "32", "--device", device]) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["device"] == device
        accuracy[device] = results["accuracy"]
    assert accuracy["host"] == accuracy["cpu"]
    proc = snnc("run", str(out), "--samples", "8", "--device", "nowhere")
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "device 'nowhere'" in proc.stderr


@pytest.mark.parametrize("target", ["sim", "nest", "spinnaker", "genn", "loihi"])
def test_compile_is_deterministic(target: str, mlp, tmp_path: Path) -> None:
    model, data = mlp
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main([str(model), "-t", target, "-o", str(out), "--calibration", str(data), "--dump-ir", "all"]) == 0
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f


def test_dump_ir_writes_every_pass(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "out"
    assert main([str(model), "-o", str(out), "--calibration", str(data), "--dump-ir", "all"]) == 0
    dumps = sorted(p.name for p in (out / "ir").iterdir() if p.suffix == ".snnir")
    manifest = json.loads((out / "snnc.json").read_text())
    assert dumps[0] == "00-input.snnir"
    assert [d.split("-", 1)[1][:-6] for d in dumps[1:]] == [p.split("{")[0] for p in manifest["pipeline"]]


def test_ir_after_pass(mlp, capsys) -> None:
    model, data = mlp
    assert main(["ir", str(model), "--after", "lower-to-snn"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("snnir 1") and "snn.population" in text and "ann." not in text


def test_errors_are_one_line(mlp, tmp_path: Path) -> None:
    model, data = mlp
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    cases = [
        ([str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o1")], "no such file"),
        ([str(bad), "-o", str(tmp_path / "o2")], "bad.onnx"),
        ([str(model), "-t", "loihi9", "-o", str(tmp_path / "o3"), "--calibration", str(data)], "unknown target"),
        ([str(model), "-o", str(tmp_path / "o4"), "--calibration", str(tmp_path / "nope.npz")], "nope.npz"),
        ([str(model), "-o", str(tmp_path / "o5")], "calibration"),
        ([str(model), "-o", str(tmp_path / "o6"), "--calibration", str(data), "--set", "bogus=1"], "bogus"),
        (["run", str(tmp_path)], "snnc.json"),
    ]
    for args, needle in cases:
        proc = snnc(*args)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, proc.stderr)
    assert not any(p.name.startswith(("o", ".o")) for p in tmp_path.iterdir())


def test_existing_output_is_not_overwritten(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("precious")
    proc = snnc(str(model), "-o", str(out), "--calibration", str(data))
    assert proc.returncode == 1 and "--force" in proc.stderr
    proc = snnc(str(model), "-o", str(out), "--calibration", str(data), "--force")
    assert proc.returncode == 1 and "not snnc output" in proc.stderr  # --force replaces only snnc's own output
    assert (out / "mine.txt").read_text() == "precious"
    (out / "mine.txt").unlink()
    assert snnc(str(model), "-o", str(out), "--calibration", str(data)).returncode == 0  # empty: written
    (out / "extra.txt").write_text("added later")
    assert snnc(str(model), "-o", str(out), "--calibration", str(data), "--force").returncode == 0
    assert not (out / "extra.txt").exists() and (out / "snnc.json").exists()


def test_passes_and_targets_list_everything(capsys) -> None:
    assert main(["passes"]) == 0
    text = capsys.readouterr().out
    for name in ("canonicalize", "fold-batchnorm", "normalize", "lower-to-snn", "split-signs", "bias-to-current"):
        assert name in text
    assert main(["targets"]) == 0
    text = capsys.readouterr().out
    assert "sim:" in text and "nest:" in text and "neurons-per-core" in text


def test_run_writes_a_report_with_plots(mlp, tmp_path: Path) -> None:
    from snnc.run_report import accuracy_over_time

    model, data = mlp
    out = tmp_path / "out"
    spikes = ["--set", "readout=spike_count"]  # the output layer spikes: its raster is plotted too
    assert main([str(model), "-o", str(out), "--data", str(data), *spikes]) == 0
    assert main(["run", str(out), "--samples", "40"]) == 0
    results = json.loads((out / "results.json").read_text())
    names = ("accuracy_over_time", "confusion", "output_raster", "rate_vs_ann", "spikes_per_layer")
    expected = sorted(f"{name}.png" for name in names)
    assert sorted(results["plots"]) == expected
    for name in expected:
        png = (out / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
    report = (out / "report.md").read_text()
    assert "![Confusion matrix](plots/confusion.png)" in report and "| accuracy |" in report
    outputs = np.load(out / "outputs.npz")
    curve = accuracy_over_time(outputs["over_time"], outputs["labels"])
    assert curve[0] <= curve[-1] <= results["accuracy"] + 1e-9 and abs(curve[-1] - results["accuracy"]) < 0.05
    layers = json.loads((out / "layers.json").read_text())
    assert [layer["neurons"] for layer in layers] == [12, 4] and all(layer["correlation"] > 0.9 for layer in layers)
