"""Compile time per pass of a wide MLP, 784-4096-4096-10 (20 M synapses), for every target.

    python benchmarks/bench_compile.py [--reps 3]

Random He-scaled weights (seed 0), exported with torch to ONNX in a temporary folder, compiled
with 128 uniform random calibration images for each target, ``--reps`` times interleaved (target
after target, then again): every pass's median time, the compile's median, the error naming the
limit where a target refuses the network, and the diagnostics of quantize and calibrate-bias
(how much of their budgets they used). Issue 15 asks quantize to stay under 2 s on this network.
Prints a table and saves benchmarks/results/compile.json. ResNet-18's compile times per pass are in
bench_resnet.py (results/resnet.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_peer import machine_info
from bench_resnet import TARGETS, compile_timed
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "compile.json"
SIZES = (784, 4096, 4096, 10)


def export_wide_mlp(path: Path) -> None:
    """The 784-4096-4096-10 ReLU MLP with random weights as ONNX."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(SIZES[:-1], SIZES[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    net = nn.Sequential(*layers[:-1]).eval()
    torch.onnx.export(net, torch.rand(1, SIZES[0]), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})


def median_row(rows: list[dict]) -> dict:
    """The first run's row with the median compile time and the median time of every pass."""
    row = dict(rows[0])
    row["seconds"] = statistics.median(r["seconds"] for r in rows)
    row["runs_s"] = [r["seconds"] for r in rows]
    row["passes"] = [
        p | {"seconds": statistics.median(r["passes"][i]["seconds"] for r in rows)}
        for i, p in enumerate(rows[0]["passes"])
    ]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="interleaved compiles per target (median)")
    args = parser.parse_args()
    calib = {"x": np.random.default_rng(0).random((128, SIZES[0]), dtype=np.float32)}
    runs: dict[str, list[dict]] = {t: [] for t in TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "mlp_4096.onnx"
        export_wide_mlp(model)
        for _ in range(args.reps):
            for target in TARGETS:
                _, row = compile_timed(model, target, calib, {})
                runs[target].append(row)
    rows = [median_row(runs[t]) for t in TARGETS]
    print("| target | result | compile s (median) | slowest passes (s) |\n|---|---|---|---|")
    for row in rows:
        slow = sorted(row["passes"], key=lambda p: -p["seconds"])[:3]
        result = "compiles" if row["compiles"] else row["error"]
        cells = ", ".join(f"{p['pass']} {p['seconds']:.2f}" for p in slow)
        print(f"| {row['target']} | {result} | {row['seconds']:.2f} | {cells} |")
    out = {"model": "-".join(map(str, SIZES)), "reps": args.reps, "machine": machine_info(), "rows": rows}
    RESULTS.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
