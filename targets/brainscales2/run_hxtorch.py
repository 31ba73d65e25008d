"""Run this network on BrainScaleS-2 through hxtorch; written by snnc (the same file for every network).

    python run_hxtorch.py --data test.npz --samples 1000 --mock                  # hxtorch's mock mode
    python run_hxtorch.py --data test.npz --calibration hagen_cocolist.pbin      # on a chip
    python run_hxtorch.py --data test.npz                                         # the nightly calibration

snnc cannot run this script (hxtorch is not a public package); its tests run it against a stand-in
of the hxtorch calls below. It reads config.json and matrices.npz, checked by run.py's own check,
and builds each MAC layer with hxtorch's public API (hxtorch.perceptron.nn.Linear / Conv2d with the
layer's num_sends and integer bias, and no input or weight transform: the weights are the chip's
integers already), applies hxtorch.perceptron.nn.ConvertingReLU
with the layer's shift, and runs pooling, flatten and reshape in torch. Prints the accuracy and writes
results_hxtorch.json and outputs_hxtorch.npz (readout, predictions, labels; as run.py's outputs.npz).

On hardware the chip's gain is not the mock's gain that snnc chose num_sends for: measure it with
--measure (hxtorch.perceptron.measure_mock_parameter) and recompile with --set mac_gain=VALUE.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Optional

import hxtorch
import hxtorch.perceptron
import hxtorch.perceptron.nn as hxnn
import numpy as np
import run as emulator  # run.py beside this file: the checks of config.json and matrices.npz
import snnc_runtime as runtime
import torch

HERE = Path(__file__).resolve().parent


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The common run-script arguments plus hxtorch's mode, calibration and mock parameters."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, ann=False)
    p.add_argument("--mock", action="store_true", help="hxtorch's mock mode instead of a chip")
    p.add_argument("--calibration", type=runtime.absolute, help="a hagen-mode calibration (.pbin) for the chip")
    p.add_argument("--measure", action="store_true", help="measure the chip's gain and noise before running")
    p.add_argument("--mock-noise-std", type=runtime.bounded(float, 0.0, 128.0), default=0.0, help="mock noise")
    p.add_argument(
        "--mock-gain", type=runtime.bounded(float, 0.0, 1.0, low_open=True), help="default: the gain compiled for"
    )
    p.add_argument("--wait-between-events", type=runtime.bounded(int, 1, 1000), default=5, help="FPGA cycles")
    p.add_argument("--batch-size", type=runtime.bounded(int, 1, 100_000), default=256)
    return p.parse_args(argv)


class Network(torch.nn.Module):
    """The checked steps of config.json as hxtorch layers and torch operations."""

    def __init__(self, steps: list[dict], mock: bool, wait: int) -> None:
        super().__init__()
        self.steps, self.mock = steps, mock
        self.layers = torch.nn.ModuleList()
        for step in (s for s in steps if s["op"] == "mac"):
            self.layers.append(self._layer(step, wait))

    def _layer(self, step: dict, wait: int) -> torch.nn.Module:
        weight = torch.tensor(step["weight"], dtype=torch.float32)
        biased = step["bias"] is not None
        common = {"bias": biased, "num_sends": step["num_sends"], "wait_between_events": wait, "mock": self.mock}
        transforms = {"input_transform": None, "weight_transform": None}
        if step["kind"] == "dense":
            layer = hxnn.Linear(weight.shape[1], weight.shape[0], **common, **transforms)
        else:  # padding is applied in forward (config.json's pads may differ per side)
            out, channels, kh, kw = weight.shape
            layer = hxnn.Conv2d(channels, out, (kh, kw), stride=tuple(step["strides"]), **common, **transforms)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if biased:
                layer.bias.copy_(torch.tensor(step["bias"], dtype=torch.float32))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = iter(self.layers)
        for step in self.steps:
            if step["op"] == "mac":
                if step["input_scale"] is not None:
                    x = torch.clamp(torch.round(x * step["input_scale"]), 0, 31)
                if step["kind"] == "dense":  # hxtorch's matmul folds a >2-D input along its last axis
                    x = torch.flatten(x, 1)
                elif any(step["pads"]):
                    top, left, bottom, right = step["pads"]
                    x = torch.nn.functional.pad(x, (left, right, top, bottom))
                x = next(layers)(x)  # with its bias: Linear adds it with hxtorch's int8 add, Conv2d in float
                if step["activation"] == "converting_relu":
                    x = hxnn.ConvertingReLU(shift=step["shift"], mock=self.mock)(x)
            elif step["op"] == "avgpool":
                x = torch.nn.functional.avg_pool2d(x, step["kernel"], step["strides"])
            elif step["op"] == "maxpool":
                x = torch.nn.functional.max_pool2d(x, step["kernel"], step["strides"])
            elif step["op"] == "flatten":
                x = torch.flatten(x, 1)
            elif step["op"] == "reshape":
                x = x.reshape(len(x), *step["shape"])
            else:
                x = x * step["factor"]
        return torch.flatten(x, 1)


def connect(args: argparse.Namespace, gain: float) -> None:
    """Mock parameters (the gain config.json was compiled for unless --mock-gain), or a chip with its
    calibration (and, with --measure, its measured gain)."""
    if args.mock:
        gain = gain if args.mock_gain is None else args.mock_gain
        hxtorch.perceptron.set_mock_parameter(
            hxtorch.perceptron.MockParameter(noise_std=args.mock_noise_std, gain=gain)
        )
        return
    if args.calibration is not None:
        hxtorch.init_hardware(hxtorch.CalibrationPath(str(args.calibration)))
    else:
        hxtorch.init_hardware(ann=True)  # the nightly hagen-mode calibration of the allocated chip
    if args.measure:
        parameter = hxtorch.perceptron.measure_mock_parameter()
        hxtorch.perceptron.set_mock_parameter(parameter)
        print(f"run_hxtorch.py: measured {parameter}; recompile with --set mac_gain=<gain> if it is not {gain}")


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Classify the samples with hxtorch, write results_hxtorch.json and outputs_hxtorch.npz."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    config = runtime.read_json(args.dir / emulator.CONFIG)
    steps, shape, classes = emulator.check_config(config, runtime.read_npz(args.dir / emulator.MATRICES))
    path = runtime.data_path(args.dir, args.data)
    x, y = runtime.load_samples(path, args.samples, shape, classes, config["input_layout"])
    connect(args, next(s["gain"] for s in steps if s["op"] == "mac"))
    try:
        net = Network(steps, args.mock, args.wait_between_events)
        start = time.perf_counter()
        with torch.no_grad():
            batches = [net(torch.from_numpy(x[i : i + args.batch_size])) for i in range(0, len(x), args.batch_size)]
        run_time = time.perf_counter() - start
    finally:
        hxtorch.release_hardware()
    readout = torch.cat(batches).numpy()
    predictions = readout.argmax(axis=1)
    results = {
        "target": "brainscales2",
        "backend": "hxtorch mock" if args.mock else "hxtorch on BrainScaleS-2",
        "samples": len(x),
        "accuracy": float(np.mean(predictions == y)),
        "run_time_s": run_time,
        "data": str(path),
    }
    np.savez(args.dir / "outputs_hxtorch.npz", readout=readout, predictions=predictions, labels=y)
    (args.dir / "results_hxtorch.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"hxtorch: accuracy {results['accuracy']:.4f} on {len(x)} samples in {run_time:.1f} s")
    return results


if __name__ == "__main__":
    main()
