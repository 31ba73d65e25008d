"""BrainScaleS-2's MAC mode (snnc's emulator of hxtorch's mock arithmetic) against the float and the
6-bit software networks, beside Weis et al.'s Table 1.

    python benchmarks/bench_brainscales2.py [--networks conv,dense,mlp,cnn] [--samples N]
        [--noise-samples cnn=2000] [--seeds 5] [--noise-std 2] [--fixed-pattern 0.07]

Networks: the paper's two MNIST models (examples/brainscales2/{conv,dense}.onnx, calibration
examples/brainscales2/calibration.npz, tested on snnc's ``mnist:test``, 2,004 digits) and the
Fashion-MNIST examples (examples/fashion_mnist/{mlp,cnn}.onnx, calibration and test data from
data/fashion-mnist as the other benchmarks use them, 10,000 test images). ``--samples`` cuts the
test set (first N images).

For each network: the brainscales2 target's compile with its defaults (timed), then on the test
images the accuracy of the float network, of the "6-bit software" network (weights rounded to 63
levels per sign per layer, activations real: snnc.passes.quantize_mac.fake_quantized), of the
compiled MAC network in snnc's ann semantics (emulated, no noise) and of the emitted run.py
without noise (the two must predict the same); then the emitted run.py, in a subprocess, with
hxtorch's default mock noise (``--noise-std``) and with that noise plus a per-column fixed-pattern
gain spread (``--fixed-pattern``, the paper's calibration spread of about 7 %), each over
``--seeds`` seeds (mean and standard deviation), on the first ``--noise-samples`` images (all by
default; the CNN's 1,581 multiplications per image make its noisy runs the slow part). Every loss
is in points against the float network on the same images. From the target's report: tiles,
passes over the chip, multiplications per image, ms and mJ per image (the paper's time model) and
the estimate for a chip without the reconfiguration bug. Prints two markdown tables and saves
benchmarks/results/brainscales2.json.
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
from typing import Any, Optional

import numpy as np

import snnc
from snnc.datasets import load as load_dataset
from snnc.ir import Graph
from snnc.ir.semantics import mac as hx
from snnc.ir.semantics.ann import predict
from snnc.passes.quantize_mac import fake_quantized

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "examples" / "brainscales2"
FASHION = ROOT / "examples" / "fashion_mnist"
FASHION_DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "brainscales2.json"
NETWORKS = {"conv": MNIST, "dense": MNIST, "mlp": FASHION, "cnn": FASHION}

# Weis et al. 2020, Table 1 (percent) and section 3 (time and energy per image)
PAPER = {
    "conv": {"float": 98.29, "six_bit": 98.10, "hardware": 92.13, "hardware_in_the_loop": 98.01, "ms": 40, "mj": 12},
    "dense": {"float": 97.43, "six_bit": 97.36, "hardware": 92.46, "hardware_in_the_loop": 96.30, "ms": 10, "mj": 3},
}


def data(name: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, str]:
    """Calibration, test images and labels of network ``name``, and where they come from."""
    if NETWORKS[name] is MNIST:
        x, y = load_dataset("mnist:test")
        return dict(np.load(MNIST / "calibration.npz")), x, y, "calibration.npz of examples/brainscales2, mnist:test"
    calib_path = FASHION_DATA / "calib.npz"
    if not calib_path.is_file():
        calib_path = FASHION / "calibration.npz"
    if (FASHION_DATA / "test.npz").is_file():
        test = np.load(FASHION_DATA / "test.npz")
        x, y, source = test["x"], test["y"], "data/fashion-mnist/test.npz"
    else:
        (x, y), source = load_dataset("fashion-mnist:test"), "fashion-mnist:test"
    return dict(np.load(calib_path)), x, y, f"{calib_path.relative_to(ROOT)}, {source}"


def classes(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The predicted class of every image (snnc's ann semantics; ann.mac layers emulated, no noise)."""
    return predict(graph, x).reshape(len(x), -1).argmax(axis=1)


def run_script(out: Path, test: Path, samples: int, *options: str) -> tuple[dict, np.ndarray]:
    """The emitted run.py on the first ``samples`` images: its results.json and predictions."""
    cmd = [sys.executable, str(out / "run.py"), "--data", str(test), "--samples", str(samples), "--no-ann"]
    proc = subprocess.run([*cmd, *options], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads((out / "results.json").read_text()), np.load(out / "outputs.npz")["predictions"]


def noisy(out: Path, test: Path, samples: int, seeds: int, options: list[str], float_acc: float) -> dict[str, Any]:
    """run.py with ``options`` for seeds 1..``seeds``: accuracies, mean, std and loss against float."""
    runs = [run_script(out, test, samples, *options, "--seed", str(seed))[0] for seed in range(1, seeds + 1)]
    acc = [r["accuracy"] for r in runs]
    return {
        "options": options,
        "seeds": list(range(1, seeds + 1)),
        "accuracies": acc,
        "mean": float(np.mean(acc)),
        "std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
        "loss_points": 100 * (float_acc - float(np.mean(acc))),
        "samples_per_second_median": float(np.median([r["samples_per_second"] for r in runs])),
    }


def bench(name: str, samples: Optional[int], noise_samples: Optional[int], args: argparse.Namespace, tmp: Path) -> dict:
    model = NETWORKS[name] / f"{name}.onnx"
    calib, x, y, source = data(name)
    x, y = x[:samples], y[:samples]
    test = tmp / f"{name}-test.npz"
    np.savez(test, x=x, y=y)
    start = time.perf_counter()
    compiled = snnc.compile(model, "brainscales2", calibration=calib["x"], calibration_labels=calib["y"])
    compile_s = time.perf_counter() - start
    out = tmp / name
    start = time.perf_counter()
    compiled.emit(out)
    emit_s = time.perf_counter() - start
    predicted = {
        "float": classes(compiled.ann, x),
        "six_bit": classes(fake_quantized(compiled.ann), x),
        "emulated": classes(compiled.graph, x),
    }
    acc = {k: float(np.mean(v == y)) for k, v in predicted.items()}
    script, script_predictions = run_script(out, test, len(x))
    n = min(noise_samples or len(x), len(x))
    float_n = float(np.mean(predicted["float"][:n] == y[:n]))
    noise = ["--noise-std", str(args.noise_std)]
    fixed = [*noise, "--fixed-pattern", str(args.fixed_pattern)]
    report = compiled.target.report(compiled.graph, None)
    return {
        "network": name,
        "model": str(model.relative_to(ROOT)),
        "data": source,
        "samples": len(x),
        "float_accuracy": acc["float"],
        "six_bit_software_accuracy": acc["six_bit"],
        "emulated_accuracy": acc["emulated"],
        "six_bit_loss_points": 100 * (acc["float"] - acc["six_bit"]),
        "emulated_loss_points": 100 * (acc["float"] - acc["emulated"]),
        "run_py_accuracy": script["accuracy"],
        "run_py_predictions_equal_to_emulated": float(np.mean(script_predictions == predicted["emulated"])),
        "run_py_samples_per_second": script["samples_per_second"],
        "noise_samples": n,
        "float_accuracy_on_noise_samples": float_n,
        "noise": noisy(out, test, n, args.seeds, noise, float_n),
        "noise_fixed_pattern": noisy(out, test, n, args.seeds, fixed, float_n),
        "compile_time_s": compile_s,
        "emit_time_s": emit_s,
        "tiles": report["tiles"],
        "chip_passes": report["chip_passes"],
        "multiplications_per_sample": report["multiplications_per_sample"],
        "ms_per_sample": report["ms_per_sample"],
        "mj_per_sample": report["mj_per_sample"],
        "ms_per_sample_fixed_chip": report["ms_per_sample_fixed_chip"],
        "layers": report["layers"],
        "paper": PAPER.get(name),
    }


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _paper(row: dict, key: str) -> str:
    return f" ({row['paper'][key]:.2f})" if row["paper"] else ""


def tables(rows: list[dict], args: argparse.Namespace) -> str:
    """Two markdown tables: accuracy (the paper's in parentheses) and cost per image."""
    lines = [
        f"| network | images | float % | 6-bit software % | emulated % | noise {args.noise_std:g} % (n, {args.seeds} "
        f"seeds) | + fixed pattern {args.fixed_pattern:g} % | loss points (6-bit / emulated / noise / +fixed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        nz, fp = r["noise"], r["noise_fixed_pattern"]
        hw = f" (paper on chip: {r['paper']['hardware']:.2f})" if r["paper"] else ""
        lines.append(
            f"| {r['network']} | {r['samples']} | {_pct(r['float_accuracy'])}{_paper(r, 'float')} "
            f"| {_pct(r['six_bit_software_accuracy'])}{_paper(r, 'six_bit')} | {_pct(r['emulated_accuracy'])} "
            f"| {_pct(nz['mean'])} ± {_pct(nz['std'])} ({r['noise_samples']}) "
            f"| {_pct(fp['mean'])} ± {_pct(fp['std'])}{hw} "
            f"| {r['six_bit_loss_points']:.2f} / {r['emulated_loss_points']:.2f} / {nz['loss_points']:.2f} "
            f"/ {fp['loss_points']:.2f} |"
        )
    lines += [
        "",
        "| network | tiles | passes | multiplications / image | ms / image | mJ / image | ms / image, fixed chip "
        "| compile s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms, mj = (f" ({r['paper']['ms']})", f" ({r['paper']['mj']})") if r["paper"] else ("", "")
        lines.append(
            f"| {r['network']} | {r['tiles']} | {r['chip_passes']} | {r['multiplications_per_sample']} "
            f"| {r['ms_per_sample']:g}{ms} | {r['mj_per_sample']:g}{mj} | {r['ms_per_sample_fixed_chip']:.3g} "
            f"| {r['compile_time_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default="conv,dense,mlp,cnn")
    parser.add_argument("--samples", type=int, help="test images per network (default: all)")
    parser.add_argument("--noise-samples", default="cnn=2000", help="images per noisy run (default: all)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per noisy setting")
    parser.add_argument("--noise-std", type=float, default=hx.DEFAULT_NOISE_STD, help="hxtorch's mock noise")
    parser.add_argument("--fixed-pattern", type=float, default=0.07, help="per-column gain spread")
    args = parser.parse_args()
    noise_samples = {k: int(v) for k, v in (item.split("=") for item in args.noise_samples.split(",") if item)}
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            rows.append(bench(name, args.samples, noise_samples.get(name), args, Path(tmp)))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "layers"}), flush=True)
    total = time.perf_counter() - start
    table = tables(rows, args)
    print(table)
    print(f"total {total:.1f} s")
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": (
            "snnc's numpy emulator of hxtorch's mock arithmetic on the CPU; no BrainScaleS-2 system here. Noise-free "
            "accuracies come from snnc's ann semantics in this process (and the emitted run.py, which must agree); "
            "every noisy run is the emitted run.py in a subprocess (--noise-std, --fixed-pattern, --seed 1..seeds). "
            "The paper's hardware column is the chip with its calibration only, not a noise model"
        ),
        "settings": {
            "noise_std": args.noise_std,
            "fixed_pattern": args.fixed_pattern,
            "seeds": args.seeds,
            "samples": args.samples,
            "noise_samples": noise_samples,
        },
        "paper": {"source": "Weis et al. 2020, Table 1 and section 3", **PAPER},
        "rows": rows,
        "table": table,
        "total_time_s": total,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
