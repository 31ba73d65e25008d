"""NEST with the nest target's defaults against its earlier defaults, on the Fashion-MNIST examples.

    python benchmarks/bench_nest.py [--samples cnn=100,mlp=500] [--speed-samples cnn=10,mlp=100] [--reps 3]

Two compiles of examples/fashion_mnist/{cnn,mlp}.onnx (calibration: data/fashion-mnist/calib.npz),
each run by its emitted run.py on the same first test images:

- ``earlier``: the settings the nest target had before reset by subtraction (IF_curr_delta, hard
  reset, dt 0.1 ms, 200 ms per sample, tau_refrac 0.1 ms, one step per projection, spike counts),
  run with one thread, as issue 15 measured it (0.15 samples/s on the CNN);
- ``defaults``: today's defaults (eprop_iaf, reset by subtraction, dt 1 ms, 100 ms, each population
  started as late as its latency, membrane readout from half the threshold), threads from the machine;
- ``4 instances``: the defaults with four copies of the network in the kernel, each showing its
  own samples (``--set instances=4``).

Accuracy on ``--samples`` images, with the agreement of NEST's predictions and the reference
simulator's on the same compiled graph; speed on ``--speed-samples`` images, the two and the
simulator (on the defaults' graph) run interleaved ``--reps`` times: medians of run.py's own
samples/s (build apart), the ratios defaults/earlier and sim/NEST, the machine and its BLAS.
Saves benchmarks/results/nest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import snnc
from snnc.ir.semantics.simulator import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peer import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "fashion_mnist"
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "nest.json"

EARLIER = {
    "reset": "zero",
    "dt": "0.1",
    "presentation-time": "200",
    "tau-refrac": "0.1",
    "min-delay": "0.1",
    "v-init": "0",
    "readout": "spike_count",
}
# name -> (settings, threads; None: run.py's default)
SETTINGS = {"earlier": (EARLIER, 1), "defaults": ({}, None), "4 instances": ({"instances": "4"}, None)}


def counts(text: str) -> dict[str, int]:
    """``cnn=100,mlp=500`` as a dict."""
    return {k: int(v) for k, v in (item.split("=") for item in text.split(","))}


def run(out: Path, data: Path, samples: int, threads: int | None) -> dict:
    """The emitted run.py on the first ``samples`` images of ``data``; its results.json."""
    cmd = [sys.executable, str(out / "run.py"), "--data", str(data), "--samples", str(samples), "--no-ann"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{out.name}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads((out / "results.json").read_text())


def bench(name: str, calib: np.ndarray, x: np.ndarray, y: np.ndarray, args, folder: Path) -> dict:
    """Accuracy and speed of the two settings on one network."""
    data = folder / "test.npz"
    n, m = counts(args.samples)[name], counts(args.speed_samples)[name]
    np.savez(data, x=x[:n], y=y[:n])
    row: dict = {"network": name, "samples": n, "speed_samples": m, "settings": {}}
    outs, graphs = {}, {}
    for label, (settings, threads) in SETTINGS.items():
        compiled = snnc.compile(EXAMPLES / f"{name}.onnx", "nest", calibration=calib, settings=settings)
        outs[label], graphs[label] = folder / f"{name}-{label}", compiled.graph
        compiled.emit(outs[label])
        result = run(outs[label], data, n, threads)
        predicted = np.load(outs[label] / "outputs.npz")["predictions"]
        shape = compiled.graph.shape(compiled.graph.ops_of("snn.source")[0])
        reference = simulate(compiled.graph, x[:n].reshape(n, *shape)).predictions
        row["settings"][label] = {
            "settings": settings,
            "threads": result.get("threads", threads),
            "accuracy": result["accuracy"],
            "sim_accuracy": float(np.mean(reference == y[:n])),
            "predictions_equal_sim": float(np.mean(predicted == reference)),
            "steps_per_sample": int(round(compiled.graph.attrs["presentation_time"] / compiled.graph.attrs["dt"])),
        }
        print(f"{name} {label}: accuracy {result['accuracy']:.4f} on {n}", flush=True)
    speeds: dict[str, list[float]] = {label: [] for label in (*SETTINGS, "sim")}
    xs = x[:m].reshape(m, *shape)
    for _ in range(args.reps):  # interleaved
        for label, (_, threads) in SETTINGS.items():
            speeds[label].append(run(outs[label], data, m, threads)["samples_per_second"])
        start = time.perf_counter()
        simulate(graphs["defaults"], xs)
        speeds["sim"].append(m / (time.perf_counter() - start))
    for label in SETTINGS:
        row["settings"][label]["samples_per_second"] = speeds[label]
        row["settings"][label]["median_samples_per_second"] = statistics.median(speeds[label])
    row["sim_samples_per_second"] = statistics.median(speeds["sim"])
    earlier, today = (row["settings"][k]["median_samples_per_second"] for k in ("earlier", "defaults"))
    row["speedup"] = today / earlier
    row["sim_over_nest"] = row["sim_samples_per_second"] / today
    print(
        f"{name}: NEST {earlier:.3f} -> {today:.3f} samples/s ({row['speedup']:.1f}x); "
        f"sim {row['sim_samples_per_second']:.1f} samples/s ({row['sim_over_nest']:.0f}x NEST)",
        flush=True,
    )
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| network | settings | accuracy | sim, same graph | predictions = sim | steps | samples/s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, s in r["settings"].items():
            lines.append(
                f"| {r['network']} | {label} | {100 * s['accuracy']:.1f}% | {100 * s['sim_accuracy']:.1f}% "
                f"| {100 * s['predictions_equal_sim']:.0f}% | {s['steps_per_sample']} "
                f"| {s['median_samples_per_second']:.3f} |"
            )
        lines.append(f"| {r['network']} | defaults / earlier | | | | | {r['speedup']:.1f}x |")
        lines.append(
            f"| {r['network']} | sim on the defaults' graph | | | | | {r['sim_samples_per_second']:.1f} "
            f"({r['sim_over_nest']:.0f}x NEST) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="cnn=100,mlp=500", help="test images for accuracy, per network")
    parser.add_argument("--speed-samples", default="cnn=10,mlp=100", help="test images per speed run")
    parser.add_argument("--reps", type=int, default=3, help="interleaved speed runs (median)")
    parser.add_argument("--networks", default="cnn,mlp")
    args = parser.parse_args()
    calib = np.load(DATA / "calib.npz")["x"]
    test = np.load(DATA / "test.npz")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            rows.append(bench(name, calib, test["x"], test["y"], args, Path(tmp)))
    print(table(rows))
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['cpus']} CPUs, load {machine['load_average']}")
    results = {"machine": machine, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
