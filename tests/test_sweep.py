"""``snnc sweep``: a grid of settings compiled and run in worker processes or on Dask."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from snnc.cli import main
from snnc.sweep import grid


def test_grid_is_the_product_in_order() -> None:
    assert grid({"a": ["1", "2"], "b": ["x", "y", "z"]})[:4] == [
        {"a": "1", "b": "x"},
        {"a": "1", "b": "y"},
        {"a": "1", "b": "z"},
        {"a": "2", "b": "x"},
    ]


def test_sweep_in_two_processes_writes_table_and_heat_map(mlp, tmp_path: Path, capsys) -> None:
    model, data = mlp
    out = tmp_path / "sweep"
    args = [
        str(model),
        "--data",
        str(data),
        "--param",
        "presentation-time=5,100",
        "--param",
        "reset=zero,subtract",
        "--jobs",
        "2",
        "-o",
        str(out),
    ]
    assert main(["sweep", *args]) == 0
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["presentation-time"], r["reset"]) for r in rows] == [
        ("5", "zero"),
        ("5", "subtract"),
        ("100", "zero"),
        ("100", "subtract"),
    ]
    acc = {(r["presentation-time"], r["reset"]): float(r["accuracy"]) for r in rows}
    assert acc[("100", "subtract")] > acc[("5", "subtract")]  # 5 steps are too few spikes
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "sweep.json").read_text())["parameters"] == ["presentation-time", "reset"]
    assert "presentation-time=100  reset=subtract" in capsys.readouterr().out


def test_bad_points_become_rows_with_the_error(mlp, tmp_path: Path) -> None:
    model, data = mlp
    out = tmp_path / "sweep"
    assert main(["sweep", str(model), "--data", str(data), "--param", "percentile=50,0", "-o", str(out)]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert "accuracy" in rows[0] and "--set percentile=0: must be > 0" in rows[1]["error"]


def test_sweep_on_a_dask_cluster(mlp, tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed", reason="install the [distributed] extra")
    model, data = mlp
    out = tmp_path / "sweep"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        args = [
            str(model),
            "--data",
            str(data),
            "--param",
            "presentation-time=20,60",
            "--scheduler",
            cluster.scheduler_address,
            "-o",
            str(out),
        ]
        assert main(["sweep", *args]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert [r["presentation-time"] for r in rows] == ["20", "60"] and all(r["accuracy"] > 0.5 for r in rows)
