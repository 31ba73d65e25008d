"""snnc against a peer converter: SpikingJelly's ann2snn on the same trained ANN and data.

    make peer-bench        # installs SpikingJelly (no dependencies: its torchvision/torchaudio
                           # requirements would replace the CPU torch) and runs this script

The Fashion-MNIST example networks (examples/fashion_mnist, the PyTorch modules of train.py
with the weights of the ONNX files) are converted by SpikingJelly 2.0 (FXConverter with a
RateCodingRecipe, 99.9th-percentile scaling, IF neurons with reset by subtraction, analog input
every step) and by snnc (normalize at the 99.9th percentile, reset by subtraction, current
input) with the same calibration images, and both run 100 time steps on the first test images;
NEST runs snnc's network at the same 100 steps of 1 ms (hard reset, the PyNN cell's). Prints
accuracy and samples per second and saves benchmarks/results/peer.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

import snnc
from snnc.ir.semantics.simulator import simulate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "fashion_mnist"
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "peer.json"
STEPS = 100


def torch_model(name: str) -> torch.nn.Module:
    """The example network as PyTorch built it, with the exported weights (same parameter names)."""
    spec = importlib.util.spec_from_file_location("fashion_mnist_train", EXAMPLES / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, name)()
    initializers = onnx.load(EXAMPLES / f"{name}.onnx").graph.initializer
    net.load_state_dict({i.name: torch.tensor(numpy_helper.to_array(i)) for i in initializers})
    return net.eval()


def spikingjelly(net: torch.nn.Module, calib: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    from spikingjelly.activation_based import ann2snn, functional

    loader = [(torch.tensor(calib[i : i + 100]), None) for i in range(0, len(calib), 100)]
    start = time.perf_counter()
    recipe = ann2snn.RateCodingRecipe(dataloader=[b for b, _ in loader], mode="99.9%")
    snn = ann2snn.FXConverter(recipe=recipe, device="cpu").convert(net)
    convert_s = time.perf_counter() - start
    correct, start = 0, time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 250):
            batch = torch.tensor(x[i : i + 250])
            functional.reset_net(snn)
            out = sum(snn(batch) for _ in range(STEPS))
            correct += int((out.argmax(1).numpy() == y[i : i + 250]).sum())
    wall = time.perf_counter() - start
    return {
        "tool": "SpikingJelly 2.0 ann2snn (99.9%, IF, subtract)",
        "accuracy": correct / len(x),
        "samples": len(x),
        "samples_per_second": len(x) / wall,
        "convert_s": convert_s,
    }


def snnc_sim(name: str, calib: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    start = time.perf_counter()
    graph = snnc.compile(EXAMPLES / f"{name}.onnx", "sim", calibration=calib).graph
    convert_s = time.perf_counter() - start
    start = time.perf_counter()
    result = simulate(graph, x, steps=STEPS)
    wall = time.perf_counter() - start
    return {
        "tool": "snnc sim (99.9%, IF, subtract)",
        "accuracy": float(np.mean(result.predictions == y)),
        "samples": len(x),
        "samples_per_second": len(x) / wall,
        "convert_s": convert_s,
    }


def snnc_nest(name: str, samples: int, work: Path) -> dict:
    out = work / f"{name}-nest"
    settings = ["dt=1", f"presentation-time={STEPS}", "tau-refrac=0", "min-delay=1"]
    cmd = [
        sys.executable,
        "-m",
        "snnc.cli",
        str(EXAMPLES / f"{name}.onnx"),
        "-t",
        "nest",
        "-o",
        str(out),
        "--calibration",
        str(DATA / "calib.npz"),
        "--data",
        str(DATA / "test.npz"),
    ]
    for s in settings:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, str(out / "run.py"), "--samples", str(samples), "--threads", "2", "--no-ann"],
        check=True,
        capture_output=True,
    )
    r = json.loads((out / "results.json").read_text())
    return {
        "tool": "snnc -> NEST 3 (99.9%, iaf_psc_delta, hard reset)",
        "accuracy": r["accuracy"],
        "samples": r["samples"],
        "samples_per_second": r["samples_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--nest-samples", default="mlp=1000,cnn=200")
    args = parser.parse_args()
    nest_samples = {k: int(v) for k, v in (item.split("=") for item in args.nest_samples.split(","))}
    torch.set_num_threads(2)
    calib = np.load(DATA / "calib.npz")["x"]
    test = np.load(DATA / "test.npz")
    x, y = test["x"][: args.samples], test["y"][: args.samples]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mlp", "cnn"):
            net = torch_model(name)
            with torch.no_grad():
                correct = net(torch.tensor(x)).argmax(1).numpy() == y
            for row in (
                spikingjelly(net, calib, x, y),
                snnc_sim(name, calib, x, y),
                snnc_nest(name, nest_samples[name], Path(tmp)),
            ):
                ann = float(correct[: row["samples"]].mean())  # the ANN on the same samples
                row.update(model=name, steps=STEPS, ann_accuracy=ann)
                rows.append(row)
                print(
                    f"{name}  {row['tool']:<52} accuracy {row['accuracy']:.4f} (ANN {ann:.4f}) on "
                    f"{row['samples']} samples, {row['samples_per_second']:.1f} samples/s",
                    flush=True,
                )
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
