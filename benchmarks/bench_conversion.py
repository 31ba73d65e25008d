"""Conversion accuracy and speed of the example networks on `sim` and NEST (issue acceptance).

    python benchmarks/bench_conversion.py [--samples 1000] [--nest-samples mlp=1000,cnn=100]

Compiles examples/fashion_mnist/{mlp,cnn}.onnx for each target with the calibration file of
data/fashion-mnist, runs them on the first test images and prints and saves
benchmarks/results/conversion.json: accuracy next to the ANN's on the same samples, spikes per
sample, simulated time, wall time and samples per second.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "conversion.json"


def run_case(model: str, target: str, samples: int, threads: int, workdir: Path) -> dict:
    out = workdir / f"{model}-{target}"
    shutil.rmtree(out, ignore_errors=True)
    compile_cmd = [
        sys.executable,
        "-m",
        "snnc.cli",
        str(ROOT / "examples" / "fashion_mnist" / f"{model}.onnx"),
        "-t",
        target,
        "-o",
        str(out),
        "--calibration",
        str(DATA / "calib.npz"),
        "--data",
        str(DATA / "test.npz"),
    ]
    start = time.perf_counter()
    subprocess.run(compile_cmd, check=True, capture_output=True)
    compile_s = time.perf_counter() - start
    run_cmd = [sys.executable, str(out / "run.py"), "--samples", str(samples)]
    if target == "nest":
        run_cmd += ["--threads", str(threads)]
    subprocess.run(run_cmd, check=True, capture_output=True)
    results = json.loads((out / "results.json").read_text())
    results["compile_time_s"] = compile_s
    results["model"] = model
    results["conversion_loss_points"] = 100 * (results["ann_accuracy"] - results["accuracy"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="test images for sim")
    parser.add_argument("--nest-samples", default="mlp=1000,cnn=100", help="test images for NEST per model")
    parser.add_argument("--threads", type=int, default=2, help="NEST threads")
    args = parser.parse_args()
    nest_samples = {k: int(v) for k, v in (item.split("=") for item in args.nest_samples.split(","))}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("mlp", "cnn"):
            for target, samples in (("sim", args.samples), ("nest", nest_samples[model])):
                row = run_case(model, target, samples, args.threads, Path(tmp))
                rows.append(row)
                print(
                    f"{model:4} {target:5} {row['samples']:5d} samples  accuracy {row['accuracy']:.4f}  "
                    f"ANN {row['ann_accuracy']:.4f}  loss {row['conversion_loss_points']:+.2f} pt  "
                    f"{row['simulated_time_ms']:.0f} ms/sample  {row['samples_per_second']:.2f} samples/s",
                    flush=True,
                )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": __import__("os").cpu_count()}
    RESULTS.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
