"""``snnc sweep``: compile and run a model over a grid of settings, in parallel.

Every point of the grid (the product of the ``--param`` value lists) is a ``--set`` setting of a
pass option, a target field or a simulation parameter (presentation-time, dt, max-rate, ...).
Each point compiles the model for the target, runs it on the data and records accuracy, spikes
and time. Points run in worker processes (``jobs``), or on an existing Dask cluster when a
scheduler address is given (``tcp://host:port``; needs ``dask[distributed]``). The table goes to
``sweep.csv`` and ``sweep.json``, and a heat map (two parameters) or a curve (one) of the
accuracy to ``sweep.png``.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.ir.limits import Budget
from snnc.run_report import write_file


@dataclass(frozen=True)
class SweepPoint:
    """One compile-and-run: the model, target and data files and the settings of this point."""

    model: str
    target: str
    data: str
    calibration: Optional[str]
    settings: dict[str, str]
    point: dict[str, str]
    samples: Optional[int] = None
    seed: int = 0
    budget: Optional[Budget] = None  # size limits (default: snnc.ir.limits' defaults)


def grid(params: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of the parameter values, the first parameter varying slowest."""
    keys = list(params)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(params[k] for k in keys))]


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Compile and run one point (in a worker process); failures a user can cause (an SnncError, a
    file that cannot be read) become a row with the error."""
    from snnc.ir import SnncError, limits

    row: dict[str, Any] = dict(point.point)
    start = time.perf_counter()
    try:
        with limits.using(point.budget or Budget()):
            results = _compile_and_run(point)
    except (SnncError, OSError) as exc:
        row.update(error=str(exc), seconds=time.perf_counter() - start)
        return row
    for key in ("accuracy", "ann_accuracy", "spikes_per_sample", "samples", "simulated_time_ms", "samples_per_second"):
        row[key] = results.get(key)
    row["seconds"] = time.perf_counter() - start
    return row


def _compile_and_run(point: SweepPoint) -> dict[str, Any]:
    import snnc
    from snnc.ir.runtime import load_data
    from snnc.runner import run_compiled

    x, y = load_data(point.calibration or point.data, at_most=1000)
    compiled = snnc.compile(
        point.model,
        point.target,
        calibration=x,
        calibration_labels=y,
        settings={**point.settings, **point.point},
        seed=point.seed,
    )
    with tempfile.TemporaryDirectory(prefix="snnc-sweep-") as tmp:
        out = compiled.emit(Path(tmp) / "out")
        return run_compiled(out, data=Path(point.data), samples=point.samples, seed=point.seed, report=False)


def run_sweep(points: Sequence[SweepPoint], jobs: int = 1, scheduler: Optional[str] = None) -> list[dict[str, Any]]:
    """Rows in the order of ``points``: on a Dask scheduler, in ``jobs`` processes, or here."""
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise RuntimeError("a scheduler address needs Dask: pip install 'dask[distributed]'") from None
        with Client(scheduler) as client:
            return client.gather(client.map(run_point, list(points), pure=False))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(run_point, points))
    return [run_point(p) for p in points]


def write_tables(rows: list[dict[str, Any]], params: Sequence[str], out: Path) -> None:
    """``sweep.csv`` and ``sweep.json`` with one row per point (each file replaced, never written
    through a link)."""
    out.mkdir(parents=True, exist_ok=True)
    columns = list(params) + sorted({k for row in rows for k in row} - set(params))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_file(out / "sweep.csv", table.getvalue())
    write_file(out / "sweep.json", json.dumps({"parameters": list(params), "rows": rows}, indent=2) + "\n")


def plot(rows: list[dict[str, Any]], params: Mapping[str, Sequence[str]], out: Path) -> Optional[Path]:
    """Accuracy as a heat map over two parameters, or a curve over one; None for more."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(params)
    acc = [np.nan if row.get("accuracy") is None else 100 * row["accuracy"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    if len(keys) == 1:
        ax.plot(range(len(rows)), acc, marker="o")
        ax.set_xticks(range(len(rows)), params[keys[0]])
        ax.set(xlabel=keys[0], ylabel="accuracy (%)", title=f"Accuracy over {keys[0]}")
    elif len(keys) == 2:
        a, b = keys
        matrix = np.array(acc, dtype=float).reshape(len(params[a]), len(params[b]))
        image = ax.imshow(matrix, cmap="viridis", origin="lower", aspect="auto")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(params[b])), params[b])
        ax.set_yticks(range(len(params[a])), params[a])
        ann = next((row["ann_accuracy"] for row in rows if row.get("ann_accuracy") is not None), None)
        ax.set(xlabel=b, ylabel=a, title="Accuracy (%)" + (f", ANN {100 * ann:.1f}%" if ann is not None else ""))
        fig.colorbar(image, ax=ax)
    else:
        plt.close(fig)
        return None
    fig.tight_layout()
    path = out / "sweep.png"
    write_file(path, lambda f: fig.savefig(f, dpi=100, format="png"))
    plt.close(fig)
    return path
