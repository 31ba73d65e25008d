"""GeNN against the ANN and the reference simulator on the Fashion-MNIST example networks.

    python benchmarks/bench_genn.py [--samples 1000] [--networks mlp,cnn] [--backend single_threaded_cpu]

For each network: the ANN's accuracy, then the genn target's compile with the default settings
(reset by subtraction, dt 1 ms, the default presentation time), run by its emitted run.py on
the first ``--samples`` test images: accuracy, samples per second (batch 1: GeNN's CPU backend
runs one sample at a time) and build time; the reference simulator on the same compiled graph:
accuracy, samples per second, and how many predictions and spike counts agree with GeNN; NEST
(the nest target's defaults, 2 threads) on the first ``--nest-samples`` images. For the CNN also
the samples per second with convolutions on GeNN's Conv2D (``--conv toeplitz``). Speed: GeNN,
sim and NEST on the same ``--speed-samples`` images, three interleaved runs, medians and their
ratios (``--speed-only`` redoes just these into the saved results).
Saves benchmarks/results/genn.json.
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
RESULTS = ROOT / "benchmarks" / "results" / "genn.json"


def run_script(out: Path, data: Path, samples: int, *options: str) -> dict:
    """The emitted run.py on ``samples`` images; its results.json."""
    cmd = [sys.executable, str(out / "run.py"), "--data", str(data), "--samples", str(samples), "--no-ann"]
    proc = subprocess.run([*cmd, *options], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads((out / "results.json").read_text())


def compiled(model: Path, target: str, calib: dict, folder: Path) -> Path:
    """``model`` compiled for ``target`` with its defaults into ``folder``."""
    out = folder / f"{model.stem}-{target}"
    snnc.compile(model, target, calibration=calib["x"], calibration_labels=calib["y"]).emit(out)
    return out


def run_nest(model: Path, calib: dict, data: Path, samples: int, folder: Path) -> dict:
    """The nest target with its defaults (hard reset, PyNN's IF_curr_delta cells) on ``samples`` images."""
    return run_script(compiled(model, "nest", calib, folder), data, samples, "--threads", "2")


def speed(name: str, samples: int, backend: str, folder: Path, repeats: int = 3) -> dict:
    """Samples per second of GeNN, sim and NEST on the same ``samples`` images, the three runs
    interleaved ``repeats`` times; medians and the ratios of the medians."""
    model = ROOT / "examples" / "fashion_mnist" / f"{name}.onnx"
    calib, test = np.load(DATA / "calib.npz"), np.load(DATA / "test.npz")
    np.savez(folder / "speed.npz", x=test["x"][:samples], y=test["y"][:samples])
    genn, nest = compiled(model, "genn", calib, folder), compiled(model, "nest", calib, folder)
    graph, x = load(genn / "model.snnir"), test["x"][:samples]
    runs: dict[str, list[float]] = {"genn": [], "sim": [], "nest": []}
    for _ in range(repeats):
        runs["genn"].append(run_script(genn, folder / "speed.npz", samples, "--backend", backend)["samples_per_second"])
        start = time.perf_counter()
        simulate(graph, x)
        runs["sim"].append(samples / (time.perf_counter() - start))
        runs["nest"].append(run_script(nest, folder / "speed.npz", samples, "--threads", "2")["samples_per_second"])
    median = {k: float(np.median(v)) for k, v in runs.items()}
    return {
        "samples": samples,
        "repeats": repeats,
        "runs": runs,
        **{f"{k}_samples_per_second_median": v for k, v in median.items()},
        "genn_over_sim": median["genn"] / median["sim"],
        "genn_over_nest": median["genn"] / median["nest"],
    }


def bench(name: str, samples: int, nest_samples: int, backend: str, folder: Path) -> dict:
    model = ROOT / "examples" / "fashion_mnist" / f"{name}.onnx"
    calib, test = np.load(DATA / "calib.npz"), np.load(DATA / "test.npz")
    x, y = test["x"][:samples], test["y"][:samples]
    np.savez(folder / "test.npz", x=x, y=y)
    correct = predict(snnc.load(model), x).argmax(axis=1) == y
    ann = float(np.mean(correct))
    out = folder / name
    compiled = snnc.compile(model, "genn", calibration=calib["x"], calibration_labels=calib["y"])
    compiled.emit(out)
    toeplitz = None
    if name == "cnn":  # GeNN's Conv2D instead of synapse lists, on at most 100 images (slower on a CPU)
        toeplitz = run_script(out, folder / "test.npz", min(samples, 100), "--backend", backend, "--conv", "toeplitz")
    genn = run_script(out, folder / "test.npz", samples, "--backend", backend)
    nest = run_nest(model, calib, folder / "test.npz", min(samples, nest_samples), folder)
    start = time.perf_counter()
    reference = simulate(load(out / "model.snnir"), x, record_neurons=True)
    sim_seconds = time.perf_counter() - start
    outputs = np.load(out / "outputs.npz")
    network = json.loads((out / "network.json").read_text())
    differing = total = 0
    for i, cell in enumerate(network["cells"]):
        if cell["kind"] == "population":
            counts = outputs[f"counts_cell{i}"]
            differing += int(np.sum(counts != reference.neuron_counts[cell["id"]].reshape(counts.shape)))
            total += counts.size
    return {
        "network": name,
        "samples": samples,
        "presentation_time_ms": network["presentation_time"],
        "dt_ms": network["dt"],
        "ann_accuracy": ann,
        "genn_accuracy": genn["accuracy"],
        "genn_minus_ann_points": 100 * (genn["accuracy"] - ann),
        "genn_samples_per_second": genn["samples_per_second"],
        "genn_conv2d_toeplitz_samples_per_second": toeplitz and toeplitz["samples_per_second"],
        "genn_batch_size": genn["batch_size"],
        "genn_backend": genn["backend"],
        "genn_build_time_s": genn["build_time_s"],
        "genn_spikes_per_sample": genn["spikes_per_sample"],
        "sim_accuracy": float(np.mean(reference.predictions == y)),
        "sim_samples_per_second": samples / sim_seconds,
        "predictions_equal_to_sim": float(np.mean(outputs["predictions"] == reference.predictions)),
        "neuron_counts_differing_from_sim": differing,
        "neuron_counts_compared": total,
        "nest_samples": nest["samples"],
        "nest_accuracy": nest["accuracy"],
        "ann_accuracy_on_nest_samples": float(np.mean(correct[: nest["samples"]])),
        "nest_samples_per_second": nest["samples_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--nest-samples", type=int, default=1000, help="images NEST runs (it is the slowest)")
    parser.add_argument("--networks", default="mlp,cnn")
    parser.add_argument("--speed-samples", default="mlp=200,cnn=10", help="images per timed run (3 interleaved runs)")
    parser.add_argument(
        "--speed-only", action="store_true", help="only the timed runs, into the rows of the saved results"
    )
    parser.add_argument("--backend", default="single_threaded_cpu", choices=("single_threaded_cpu", "cuda"))
    args = parser.parse_args()
    speed_samples = {k: int(v) for k, v in (item.split("=") for item in args.speed_samples.split(","))}
    saved = {r["network"]: r for r in json.loads(RESULTS.read_text())["rows"]} if args.speed_only else {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            folder = Path(tmp)
            row = saved[name] if args.speed_only else bench(name, args.samples, args.nest_samples, args.backend, folder)
            row["speed"] = speed(name, speed_samples.get(name, 10), args.backend, Path(tmp))
            rows.append(row)
            print(json.dumps(rows[-1]))
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": "GeNN's single_threaded_cpu backend runs batch size 1 only; larger batches need the CUDA backend",
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
