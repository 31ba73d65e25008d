"""Differential fuzzing of the simulator targets: random small CNNs, each target's run.py against `sim`.

    python tests/fuzz_targets.py [--targets nest,genn,loihi] [--count 20] [--seed 0] [--out fuzz-targets]
                                 [--set reset=zero --set readout=spike_count ...]

Each case is a random PyTorch CNN (1 to 3 convolutions with random kernels, strides, padding,
dilation and groups, batch-norm, average or max pooling, residual blocks, a two-layer head),
exported to ONNX, compiled for each target with its default pipeline (50 ms per sample) and run by
the emitted run.py on 8 random images. The reference is snnc's simulator on the same compiled graph
(model.snnir), samples back to back where the target runs them so. A case fails where run.py
fails, or where its readout leaves what the target promises: NEST's membranes within 1e-3 of
their range and its spike counts within one spike (double against float32 precision), GeNN's
counts within one spike, Loihi's counts within three spikes or its predictions equal (its
emulator spikes above, not at, the threshold and carries 1/4096 of a step's current; a bias
exactly at the threshold halves a neuron's rate there; so can a max-pooling selection that
reaches it exactly: seed 63 differs by 17 spikes). A network a target's cores cannot hold is
refused with the limit named, which is not a failure. Failing cases are kept
under ``--out``; the exit code is 1 if any failed. ``make fuzz-targets`` runs 20 cases per target.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

import snnc
from snnc.ir import load
from snnc.ir.errors import SnncError
from snnc.ir.semantics.simulator import simulate

SAMPLES = 8
LIMITS = "split-populations:"  # a network that does not fit a target's cores is refused, not a failure
REFUSED = "refused:"


class RandomCNN(nn.Module):
    """Convolution blocks drawn from ``rng`` for (c, h, w) inputs, then Linear-ReLU-Linear to 5 classes."""

    def __init__(self, rng: np.random.Generator, c: int, h: int, w: int) -> None:
        super().__init__()
        self.blocks, self.residual = nn.ModuleList(), []
        for _ in range(int(rng.integers(1, 4))):
            kernel = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
            stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            pad = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
            dilation, groups = (int(rng.integers(1, 3)), 1), int(rng.choice([g for g in (1, 2) if c % g == 0]))
            out = int(rng.integers(1, 4)) * (groups if groups > 1 else 2)
            span = ((kernel[0] - 1) * dilation[0] + 1, kernel[1])
            oh, ow = (h + 2 * pad[0] - span[0]) // stride[0] + 1, (w + 2 * pad[1] - span[1]) // stride[1] + 1
            if min(oh, ow) < 2:
                continue
            layers: list[nn.Module] = [nn.Conv2d(c, out, kernel, stride, pad, dilation, groups)]
            if rng.random() < 0.3:
                norm = nn.BatchNorm2d(out)
                norm.running_mean.uniform_(-0.2, 0.2)
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.data.uniform_(0.5, 1.5)
                layers.append(norm)
            layers.append(nn.ReLU())
            pool = rng.random()
            if pool < 0.4:
                layers.append(nn.AvgPool2d(2) if pool < 0.25 else nn.MaxPool2d(2))
                oh, ow = oh // 2, ow // 2
            self.blocks.append(nn.Sequential(*layers))
            self.residual.append(False)
            c, h, w = out, oh, ow
            if rng.random() < 0.3:
                self.blocks.append(nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU()))
                self.residual.append(True)
        hidden = int(rng.integers(4, 20))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, residual in zip(self.blocks, self.residual, strict=True):
            x = x + block(x) if residual else block(x)
        return self.head(x)


def make_case(seed: int, folder: Path) -> None:
    """``folder``/m.onnx (the random CNN of ``seed``) and d.npz (random images, its predictions)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    net = RandomCNN(rng, c, h, w).eval()
    x = torch.rand(24, c, h, w)
    torch.onnx.export(net, x[:1], folder / "m.onnx", dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    with torch.no_grad():
        np.savez(folder / "d.npz", x=x.numpy(), y=net(x).argmax(1).numpy())


def failure(target: str, folder: Path, settings: dict[str, str]) -> Optional[str]:
    """Why ``target``'s run.py disagrees with the simulator on the case in ``folder``, or None
    (or why the target refused the network, after ``REFUSED``)."""
    out, data = folder / target, folder / "d.npz"
    try:
        compiled = snnc.compile(folder / "m.onnx", target, calibration=np.load(data)["x"],
                                settings={"presentation-time": "50", **settings})  # fmt: skip
    except SnncError as exc:
        if str(exc).startswith(LIMITS):
            return f"{REFUSED} {exc}"  # the network does not fit the machine, and the error names the limit
        return f"compile failed: {exc}"
    compiled.emit(out, force=True)
    command = [sys.executable, str(out / "run.py"), "--samples", str(SAMPLES), "--data", str(data), "--no-ann"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return "run.py failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    graph = load(out / "model.snnir")
    x = np.load(data)["x"][:SAMPLES]
    chains = {"chains": 1} if target == "loihi" else {}  # samples back to back, as on the chip
    expected = simulate(graph, x, **chains).counts[graph.outputs[0]]
    got = np.load(out / "outputs.npz")["readout"]
    if target == "loihi":
        worst, same = np.abs(got - expected).max(), np.array_equal(got.argmax(1), expected.argmax(1))
        return None if worst <= 3 or same else f"counts differ by {worst:g} and so do predictions"
    if graph.op(graph.outputs[0]).mode == "membrane":
        worst = np.abs(got - expected).max() / (np.abs(expected).max() or 1.0)
        return None if worst < 1e-3 else f"membranes differ by {worst:.2g} of their range"
    worst = np.abs(got - expected).max()
    return None if worst <= 1 else f"spike counts differ by {worst:g}"


def run(targets: list[str], count: int, seed: int, out: Path, settings: dict[str, str]) -> int:
    """Run ``count`` cases from ``seed`` on ``targets`` (compiled with ``settings`` too); keep
    failing ones under ``out``; return the failures."""
    failures = 0
    for case in range(seed, seed + count):
        folder = out / f"case{case}"
        folder.mkdir(parents=True, exist_ok=True)
        make_case(case, folder)
        kept = False
        for target in targets:
            why = failure(target, folder, settings)
            print(f"case {case} {target}: {why or 'agrees'}", flush=True)
            failed = why is not None and not why.startswith(REFUSED)
            failures += failed
            kept |= failed
        if not kept:
            shutil.rmtree(folder)
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="nest,genn,loihi")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-targets"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a compile setting")
    args = parser.parse_args()
    settings = dict(kv.split("=", 1) for kv in args.set)
    failures = run(args.targets.split(","), args.count, args.seed, args.out, settings)
    print(f"{failures} failing case(s); kept under {args.out}" if failures else "every case agrees")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
