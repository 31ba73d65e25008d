"""ResNet-18 (CIFAR-size input, random weights) on a virtual multi-board SpiNNaker machine.

    .venv/bin/python benchmarks/bench_spinnaker_resnet18.py [--boards 7] [--stages 4] [--timeout 900]

Compiles bench_resnet's ResNet-18 (``--stages`` < 4: the stem and the first stages only, then global
pooling and the 1000-way head) for ``spinnaker`` with ``boards`` SpiNN-5 boards, counts the PyNN
populations and Projections the emitted run.py asks sPyNNaker for, then maps it with run.py on one
sample under /usr/bin/time -v (wall time, peak memory) and compares sPyNNaker's placements
(placements.json) with snnc's plan (report.json): the cores of every population slice. Prints and
writes benchmarks/results/spinnaker_resnet18.json (or _stages<K>.json). The pipeline is the
target's without calibrate-bias (``mapping_pipeline``): the structure mapped is the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from bench_resnet import export_random_batchnorm, export_resnet18, resnet18
from torch import nn

import snnc
from snnc.targets.spinnaker import run_spinnaker
from snnc.targets.spinnaker.placement import placed_cores, planned_cores, projection_calls
from snnc.targets.spinnaker.spec import SPEC

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def export_truncated(path: Path, stages: int) -> None:
    """bench_resnet's ResNet-18 cut after ``stages`` stages (batch norm initialised as export_resnet18 does)."""
    torch.manual_seed(0)
    full = resnet18()
    channels = (64, 64, 128, 256, 512)[stages]
    net = nn.Sequential(*list(full)[: 4 + 2 * stages], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1000))
    export_random_batchnorm(net, path)


def mapping_pipeline() -> str:
    """The target's pipeline without calibrate-bias: it simulates the network on the calibration
    images (minutes for ResNet-18) and changes thresholds and resets, not the structure mapped here."""
    return re.sub(r",calibrate-bias(\{[^}]*\})?", "", SPEC.pipeline)


def map_virtual(out: Path, timeout: int) -> dict:
    """run.py on one sample on the virtual machine, under /usr/bin/time -v; wall s, peak MB, its results."""
    home = out.parent / "home"
    home.mkdir(exist_ok=True)
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    cmd = ["/usr/bin/time", "-v", "timeout", str(timeout), sys.executable, str(out / "run.py"),
           "--samples", "1", "--no-ann"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    row = {"returncode": proc.returncode, "wall_s": round(wall, 1)}
    row["peak_mb"] = int(peak.group(1)) // 1024 if peak else None
    if proc.returncode != 0:
        row["error"] = "timed out" if proc.returncode == 124 else proc.stderr[-1500:]
        return row
    results = json.loads((out / "results.json").read_text())
    row.update(build_s=round(results["build_time_s"], 1), run_s=round(results["run_time_s"], 1))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boards", type=int, default=7)
    p.add_argument("--stages", type=int, default=4, choices=range(5))
    p.add_argument("--timeout", type=int, default=900, help="seconds for the mapping")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="spinnaker_resnet18_"))
    model = folder / "resnet18.onnx"
    if args.stages == 4:
        export_resnet18(model)
    else:
        export_truncated(model, args.stages)
    calib = np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32)
    np.savez(folder / "data.npz", x=calib[:1], y=np.zeros(1, np.int64))
    start = time.perf_counter()
    compiled = snnc.compile(model, "spinnaker", calibration=calib, settings={"boards": str(args.boards)},
                            pipeline=mapping_pipeline(), sources={"data": str(folder / "data.npz")})  # fmt: skip
    compile_s = time.perf_counter() - start
    out = folder / "out"
    start = time.perf_counter()
    compiled.emit(out)
    emit_s = time.perf_counter() - start
    network = json.loads((out / "network.json").read_text())
    arrays = dict(np.load(out / "weights.npz"))
    run_spinnaker.check_network(network, arrays)
    report = json.loads((out / "report.json").read_text())
    made = Counter(call.projection["kind"] for call in projection_calls(network, arrays))
    cells = network["cells"]
    row = {
        "model": "ResNet-18" if args.stages == 4 else f"ResNet-18, stem and {args.stages} stage(s)",
        "boards": args.boards,
        "pipeline": mapping_pipeline(),
        "compile_s": round(compile_s, 2),
        "emit_s": round(emit_s, 2),
        "weights_mb": round((out / "weights.npz").stat().st_size / 2**20, 1),
        "planned_cores": report["cores"],
        "cells": len(cells),
        "pynn_populations": sum(run_spinnaker.populations(c) for c in cells),
        "channel_populations_if_all_split": sum(c["shape"][0] if c["grid"] else 1 for c in cells),
        "projections": dict(sorted(made.items())),
        "projections_total": sum(made.values()),
        "list_projections_in_ir": sum(p["kind"] == "list" for p in network["projections"]),
        "mapping": map_virtual(out, args.timeout),
    }
    if row["mapping"]["returncode"] == 0:
        placed = placed_cores(json.loads((out / "placements.json").read_text()))
        row["placed_cores"] = len(placed)
        row["placement_equals_plan"] = placed == planned_cores(report, 1)
    print(json.dumps(row, indent=1))
    name = "spinnaker_resnet18.json" if args.stages == 4 else f"spinnaker_resnet18_stages{args.stages}.json"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
