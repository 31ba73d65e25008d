"""``snnc run``: run an emitted directory on its target and add the ANN reference accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.api import MANIFEST, CompileError, _fit_inputs
from snnc.ir import load
from snnc.run_report import write_run_report
from snnc.targets import RunRequest, get_target
from snnc.targets.datafiles import load_data, to_model_layout


def read_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.exists():
        raise CompileError(f"{out}: not an snnc output directory (no {MANIFEST})")
    return json.loads(path.read_text())


def default_data(out: Path, manifest: dict[str, Any], data: Optional[Path]) -> Path:
    """The data file to run on: the one given, else the one recorded at compile time."""
    if data is not None:
        return Path(data)
    if manifest.get("data"):
        if manifest.get("data_is_calibration"):
            print("snnc: no --data given; evaluating on the calibration file", file=sys.stderr)
        return Path(manifest["data"])
    raise CompileError(f"{out}: no data recorded at compile time; pass --data FILE.npz")


def ann_accuracy(out: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the original ANN (out/ann.snnir) on the same samples."""
    from snnc.ann_interpreter import predict

    ann = load(Path(out) / "ann.snnir")
    scores = predict(ann, _fit_inputs(ann, x, "data"))
    return float(np.mean(scores.reshape(len(x), -1).argmax(axis=1) == y))


def run_compiled(
    out: Path,
    data: Optional[Path] = None,
    samples: Optional[int] = None,
    seed: int = 0,
    presentation_time: Optional[float] = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run ``out`` on its target, write ``out/results.json`` (and with ``report`` out/report.md
    and the plots) and return the results."""
    out = Path(out)
    manifest = read_manifest(out)
    data_path = default_data(out, manifest, data)
    target = get_target(manifest["target"])
    request = RunRequest(out, data_path, samples, seed, presentation_time)
    results = target.run(request)
    x, y = load_data(data_path, samples=results["samples"])
    results["ann_accuracy"] = ann_accuracy(out, x, y)
    results["data"] = str(data_path)
    if report:
        graph = load(out / "model.snnir")
        source = graph.ops_of("snn.source")[0]
        model_x = to_model_layout(x, graph.shape(source), graph.attrs.get("input_layout"))
        results["plots"] = write_run_report(out, results, model_x)
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results
