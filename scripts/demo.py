"""`make demo`: compile the example networks for sim and NEST, run them, print a table.

Uses the README's commands through the `snnc` CLI. The CNN runs on fewer samples on NEST
(4 to 7 s a sample on 2 cores: 23,500 neurons and 480,000 spikes a sample).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "fashion-mnist"
OUT = ROOT / "out" / "demo"
CASES = [("mlp", "sim", 500), ("mlp", "nest", 500), ("cnn", "sim", 500), ("cnn", "nest", 20)]


def snnc(*args: str) -> None:
    cmd = [str(Path(sys.executable).parent / "snnc"), *args]
    print("$ snnc", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    rows = []
    for model, target, samples in CASES:
        out = OUT / f"{model}-{target}"
        shutil.rmtree(out, ignore_errors=True)
        snnc(
            str(ROOT / "examples" / "fashion_mnist" / f"{model}.onnx"),
            "--target",
            target,
            "-o",
            str(out),
            "--calibration",
            str(DATA / "calib.npz"),
            "--data",
            str(DATA / "test.npz"),
        )
        snnc("run", str(out), "--samples", str(samples))
        rows.append((model, target, json.loads((out / "results.json").read_text())))
    print(
        f"\n{'network':8} {'target':7} {'samples':>7} {'SNN acc':>8} {'ANN acc':>8} {'loss (pt)':>9} "
        f"{'spikes/sample':>13} {'samples/s':>9}"
    )
    for model, target, r in rows:
        loss = 100 * (r["ann_accuracy"] - r["accuracy"])
        print(
            f"{model:8} {target:7} {r['samples']:7d} {r['accuracy']:8.4f} {r['ann_accuracy']:8.4f} {loss:9.2f} "
            f"{r['spikes_per_sample']:13.0f} {r['samples'] / r['wall_time_s']:9.2f}"
        )
    print(f"\nOutputs are under {OUT}; run any of them again with python <dir>/run.py --samples N")


if __name__ == "__main__":
    main()
