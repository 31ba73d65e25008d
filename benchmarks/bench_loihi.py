"""Loihi (nengo-loihi's emulator) against the ANN and the reference simulator on the Fashion-MNIST
example networks.

    python benchmarks/bench_loihi.py [--samples mlp=500,cnn=300] [--networks mlp,cnn]

For each network: the loihi target's compile with its defaults (spiking ReLU reset to zero, 8-bit
weights per core, 100 ms per sample and 20 ms pause, samples back to back), run by its emitted
run.py on the first test images on nengo-loihi's emulator: accuracy, samples per second, the
cores nengo-loihi used and snnc planned, the chips its allocator needs; the ANN on the same
images; the reference simulator on the compiled graph (Loihi's settings, samples back to back):
accuracy and how many predictions agree with the emulator. Where the loss comes from: the
simulator with the sim target's defaults (reset by subtraction, current input, no latency) and
with Loihi's neuron, regular input, one step per layer and the pause but float weights. Saves
benchmarks/results/loihi.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import snnc
from snnc.ir import load
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.simulator import simulate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "loihi.json"


# Loihi's neuron, input and timing on the sim target, with float weights: what the weights' bits add
LOIHI_ON_SIM = {"reset": "zero", "v-min": "0", "min-delay": "1", "encoding": "regular", "pause": "20"}


def sim_accuracy(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, settings: dict[str, str]) -> float:
    """The reference simulator on the sim target's compile with ``settings`` (back to back with a pause)."""
    graph = snnc.compile(model, "sim", calibration=calib["x"], calibration_labels=calib["y"], settings=settings).graph
    return float(np.mean(simulate(graph, x, chains=1).predictions == y))


def run_emulator(out: Path, data: Path, samples: int) -> dict:
    """The emitted run.py on nengo-loihi's emulator; its results.json."""
    cmd = [sys.executable, str(out / "run.py"), "--data", str(data), "--samples", str(samples), "--no-ann"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads((out / "results.json").read_text())


def speed(name: str, samples: int, folder: Path, repeats: int = 3) -> dict:
    """Samples per second of the emulator and of sim (back to back) on the same images, the two
    interleaved ``repeats`` times; medians and their ratio."""
    model = ROOT / "examples" / "fashion_mnist" / f"{name}.onnx"
    calib, test = np.load(DATA / "calib.npz"), np.load(DATA / "test.npz")
    np.savez(folder / "speed.npz", x=test["x"][:samples], y=test["y"][:samples])
    out = folder / f"{name}-speed"
    snnc.compile(model, "loihi", calibration=calib["x"], calibration_labels=calib["y"]).emit(out)
    graph, x = load(out / "model.snnir"), test["x"][:samples]
    runs: dict[str, list[float]] = {"emulator": [], "sim": []}
    for _ in range(repeats):
        runs["emulator"].append(run_emulator(out, folder / "speed.npz", samples)["samples_per_second"])
        start = time.perf_counter()
        simulate(graph, x, chains=1)
        runs["sim"].append(samples / (time.perf_counter() - start))
    median = {k: float(np.median(v)) for k, v in runs.items()}
    return {
        "samples": samples,
        "repeats": repeats,
        "runs": runs,
        **{f"{k}_samples_per_second_median": v for k, v in median.items()},
        "sim_over_emulator": median["sim"] / median["emulator"],
    }


def bench(name: str, samples: int, folder: Path) -> dict:
    model = ROOT / "examples" / "fashion_mnist" / f"{name}.onnx"
    calib, test = np.load(DATA / "calib.npz"), np.load(DATA / "test.npz")
    x, y = test["x"][:samples], test["y"][:samples]
    np.savez(folder / "test.npz", x=x, y=y)
    ann = float(np.mean(predict(snnc.load(model), x).argmax(axis=1) == y))
    out = folder / name
    start = time.perf_counter()
    snnc.compile(model, "loihi", calibration=calib["x"], calibration_labels=calib["y"]).emit(out)
    compile_s = time.perf_counter() - start
    emulator = run_emulator(out, folder / "test.npz", samples)
    predictions = np.load(out / "outputs.npz")["predictions"]
    start = time.perf_counter()
    reference = simulate(load(out / "model.snnir"), x, chains=1)
    sim_seconds = time.perf_counter() - start
    cells = json.loads((out / "network.json").read_text())["cells"]
    report = json.loads((out / "report.json").read_text())
    return {
        "network": name,
        "samples": samples,
        "presentation_time_ms": emulator["simulated_time_ms"],
        "pause_ms": emulator["pause_ms"],
        "ann_accuracy": ann,
        "loihi_emulator_accuracy": emulator["accuracy"],
        "loihi_minus_ann_points": 100 * (emulator["accuracy"] - ann),
        "loihi_emulator_samples_per_second": emulator["samples_per_second"],
        "loihi_build_time_s": emulator["build_time_s"],
        "compile_time_s": compile_s,
        "cores_nengo_loihi": emulator["cores"],
        "cores_snnc_plan": sum(-(-c["size"] // c["per_core"]) for c in cells if c["kind"] == "population"),
        "cores_report": report["cores"],
        "chips": emulator["chips"],
        "fullest_core": emulator["fullest_core"],
        "sim_accuracy": float(np.mean(reference.predictions == y)),
        "sim_samples_per_second": samples / sim_seconds,
        "predictions_equal_to_sim": float(np.mean(predictions == reference.predictions)),
        "sim_accuracy_subtract_current_no_latency": sim_accuracy(model, calib, x, y, {}),
        "sim_accuracy_loihi_neurons_float_weights": sim_accuracy(model, calib, x, y, LOIHI_ON_SIM),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="mlp=500,cnn=300", help="test images per network")
    parser.add_argument("--networks", default="mlp,cnn")
    parser.add_argument("--speed-samples", default="mlp=20,cnn=3", help="images per timed run (3 interleaved runs)")
    parser.add_argument(
        "--speed-only", action="store_true", help="only the timed runs, into the rows of the saved results"
    )
    args = parser.parse_args()
    counts = dict(item.split("=") for item in args.samples.split(","))
    speed_samples = dict(item.split("=") for item in args.speed_samples.split(","))
    saved = {r["network"]: r for r in json.loads(RESULTS.read_text())["rows"]} if args.speed_only else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            row = saved[name] if args.speed_only else bench(name, int(counts.get(name, 300)), Path(tmp))
            row["speed"] = speed(name, int(speed_samples.get(name, 3)), Path(tmp))
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": "nengo-loihi 1.1.0's emulator (target='sim') on the CPU; no Loihi board here",
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
