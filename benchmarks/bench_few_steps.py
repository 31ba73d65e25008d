"""Accuracy at few time steps: each method on its own, against the old defaults and the new ones.

    python benchmarks/bench_few_steps.py                 # about 4 minutes on 2 cores
    python benchmarks/bench_few_steps.py --samples 500   # quicker

The Fashion-MNIST example networks (examples/fashion_mnist, calibration data/fashion-mnist/calib.npz)
on the first test images in `sim`, at T = 8, 16, 32, 64 and 100 steps of 1 ms. One simulation of
100 steps per configuration gives every T: the readout at step T does not depend on later steps
(cumulative counts or the membrane at that step). Methods, each measured alone on the old
baseline (spike counts, v = 0 at the start, pooling as a layer, one scale per layer) and on top
of the defaults:

- readout=membrane: the output layer does not spike and its final membrane is read (never
  abstains; Rueckauer et al. 2017 read the output membrane too);
- v_init=0.5: every sample starts half way to the threshold (Bu et al. 2022, QCFS: halves the
  expected rate error of reset by subtraction);
- fold_pooling: average pooling read by the next layer directly, exact, one layer fewer;
- normalize{method=channel}: a scale per channel (Kim et al. 2020, Spiking-YOLO);
- calibrate-bias: layer-wise bias calibration on calibration data (Li et al. 2021; compiled
  for each T, since it calibrates for the presentation).

Prints a table and saves benchmarks/results/few_steps.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import snnc
from snnc.ir.semantics.ann import accuracy
from snnc.ir.semantics.simulator import simulate
from snnc.targets.base import CONVERSION_PIPELINE

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "fashion_mnist"
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "few_steps.json"
STEPS = (8, 16, 32, 64, 100)
OLD = {"readout": "spike_count", "v_init": "0", "fold_pooling": "false"}
CONFIGS: dict[str, tuple[dict[str, str], str]] = {
    "old defaults": (OLD, ""),
    "old + readout=membrane": ({**OLD, "readout": "membrane"}, ""),
    "old + v_init=0.5": ({**OLD, "v_init": "0.5"}, ""),
    "old + fold_pooling": ({**OLD, "fold_pooling": "true"}, ""),
    "old + method=channel": ({**OLD, "method": "channel"}, ""),
    "old + calibrate-bias": (OLD, ",calibrate-bias"),
    "defaults": ({}, ""),
    "defaults + method=channel": ({"method": "channel"}, ""),
    "defaults + calibrate-bias": ({}, ",calibrate-bias"),
}


def accuracies(name: str, settings: dict, extra: str, calib: dict, x: np.ndarray, y: np.ndarray) -> list[float]:
    """Accuracy at each T of STEPS for one configuration."""
    model = EXAMPLES / f"{name}.onnx"
    compile_kw = {"calibration": calib["x"], "calibration_labels": calib["y"], "pipeline": CONVERSION_PIPELINE + extra}
    if extra:  # calibration depends on the presentation: one compile per T
        out = []
        for steps in STEPS:
            graph = snnc.compile(
                model, "sim", settings={**settings, "presentation_time": str(steps)}, **compile_kw
            ).graph
            out.append(float(np.mean(simulate(graph, x).predictions == y)))
        return out
    graph = snnc.compile(model, "sim", settings={**settings, "presentation_time": str(max(STEPS))}, **compile_kw).graph
    over_time = simulate(graph, x, record_over_time=True).counts_over_time  # (steps, N, classes)
    return [float(np.mean(over_time[steps - 1].argmax(axis=1) == y)) for steps in STEPS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    calib = dict(np.load(DATA / "calib.npz"))
    test = np.load(DATA / "test.npz")
    x, y = test["x"][: args.samples], test["y"][: args.samples]
    rows, start = [], time.perf_counter()
    header = "| network | configuration | ANN | " + " | ".join(f"T={t}" for t in STEPS) + " |"
    lines = [header, "|" + "---|" * (3 + len(STEPS))]
    for name in ("mlp", "cnn"):
        ann = accuracy(snnc.load(EXAMPLES / f"{name}.onnx"), x, y)
        for label, (settings, extra) in CONFIGS.items():
            acc = accuracies(name, settings, extra, calib, x, y)
            rows.append({"network": name, "configuration": label, "ann": ann, "steps": list(STEPS), "accuracy": acc})
            line = f"| {name} | {label} | {ann:.2%} | " + " | ".join(f"{a:.2%}" for a in acc) + " |"
            lines.append(line)
            print(line, flush=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    result = {
        "machine": machine,
        "samples": len(x),
        "rows": rows,
        "table": "\n".join(lines),
        "seconds": time.perf_counter() - start,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
