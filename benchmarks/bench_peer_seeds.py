"""snnc against SpikingJelly on several trained networks: is one more accurate beyond the luck of one?

    python benchmarks/bench_peer_seeds.py [--seeds 5] [--models mlp,cnn]   # after make peer-bench
    python benchmarks/bench_peer_seeds.py --models mlp --held-out 10000 --variants "v-init=0;v-init=0.25"

bench_peer compares the two converters on the two example networks; from T = 16 on, their
accuracies differ by a few dozen of the 10,000 test images, either way. This script trains each
architecture again with other seeds (examples/fashion_mnist/train.py: the same modules, recipe and
epochs; the first network is the example itself), converts every network with both tools as
bench_peer does (same calibration images, snnc's sim defaults, SpikingJelly's 99.9% mode) and
reports per architecture and T:

- every network's accuracy difference snnc - SpikingJelly (points) and the ANN's accuracy;
- their mean, and on how many networks snnc is at least as accurate;
- a two-sided t-test of the mean difference over the networks, and the images only one tool gets
  right summed over the networks with the exact McNemar (binomial) test of those sums.

``--held-out N`` trains every network (the first one too) on all but the last N training images
and evaluates on those N as well as on the test images: a place to choose settings that is not
the test set. ``--variants`` (settings, ``;`` between variants) adds snnc with other settings,
each reported as images gained or lost against snnc's defaults on the same images, summed over
the networks, with the standard deviation of that sum under pairing noise (the square root of
the images on which the two disagree).

Trained networks are kept in ``--work`` (ONNX) and reused by later runs. Results go to
benchmarks/results/peer_seeds.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from bench_peer import (
    ACCURACY_STEPS,
    DATA,
    EXAMPLES,
    ROOT,
    accuracy,
    machine_info,
    snnc_graph,
    torch_model,
    train_module,
)
from onnx import numpy_helper
from scipy.stats import binomtest, ttest_1samp

from snnc.ir.semantics.simulator import simulate

RESULTS = ROOT / "benchmarks" / "results" / "peer_seeds.json"


def trained(name: str, seed: int, work: Path, held_out: int) -> tuple[torch.nn.Module, Path]:
    """The network ``name`` trained with ``seed`` on all but the last ``held_out`` training
    images (seed 0 and none held out: the example) and its ONNX file."""
    if seed == 0 and not held_out:
        return torch_model(name), EXAMPLES / f"{name}.onnx"
    module = train_module()
    path = work / (f"{name}_seed{seed}.onnx" if not held_out else f"{name}_seed{seed}_heldout{held_out}.onnx")
    torch.manual_seed(seed)
    net = getattr(module, name)()
    if path.exists():
        weights = {i.name: torch.tensor(numpy_helper.to_array(i)) for i in onnx.load(path).graph.initializer}
        net.load_state_dict(weights)
        return net.eval(), path
    train_set = np.load(DATA / "train.npz")
    n = len(train_set["x"]) - held_out
    x, y = torch.tensor(train_set["x"][:n]), torch.tensor(train_set["y"][:n])
    start = time.perf_counter()
    module.train(net, x, y, module.EPOCHS[name], seed=seed)
    print(f"{name} seed {seed}: trained on {n} images in {time.perf_counter() - start:.0f} s", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    module.export(net, x[:1], path)
    return net.eval(), path


def summary(name: str, rows: list[dict], images: str) -> list[dict]:
    """Per T: the differences over the networks and the tests of them."""
    out = []
    for t in ACCURACY_STEPS:
        at = [r for r in rows if r["model"] == name and r["steps"] == t and r["images"] == images]
        diffs = [100 * (r["snnc"] - r["spikingjelly"]) for r in at]
        only_snnc, only_sj = sum(r["snnc_only"] for r in at), sum(r["spikingjelly_only"] for r in at)
        t_p = float(ttest_1samp(diffs, 0.0).pvalue) if len(set(diffs)) > 1 else 1.0
        row = {
            "model": name,
            "images": images,
            "steps": t,
            "networks": len(at),
            "difference_points": diffs,
            "mean_difference_points": statistics.mean(diffs),
            "snnc_at_least_spikingjelly": sum(d >= 0 for d in diffs),
            "t_test_p": t_p,
            "snnc_only": only_snnc,
            "spikingjelly_only": only_sj,
            "mcnemar_p": float(binomtest(only_snnc, only_snnc + only_sj, 0.5).pvalue) if only_snnc + only_sj else 1.0,
        }
        out.append(row)
        print(
            f"{name} {images} T={t:<3} snnc - SJ {row['mean_difference_points']:+.3f} points on average "
            f"({', '.join(f'{d:+.2f}' for d in diffs)}); snnc >= SJ on {row['snnc_at_least_spikingjelly']} of "
            f"{len(at)} (t-test p {t_p:.2f}); right only in snnc {only_snnc}, only in SJ {only_sj} "
            f"(McNemar p {row['mcnemar_p']:.2g})",
            flush=True,
        )
    return out


def variant_gains(path: Path, calib: np.ndarray, x: np.ndarray, y: np.ndarray, variants: list[dict]) -> list[dict]:
    """For each T and variant: images right with the variant minus right with the defaults, and
    the images on which the two disagree (nothing to simulate without variants)."""
    rows = []
    for t in ACCURACY_STEPS if variants else ():
        base = simulate(snnc_graph(path, calib, t), x).predictions == y
        for settings in variants:
            right = simulate(snnc_graph(path, calib, t, **settings), x).predictions == y
            gain, disagree = int(right.sum()) - int(base.sum()), int(np.sum(right != base))
            rows.append({"steps": t, "variant": settings, "gain": gain, "disagree": disagree})
    return rows


def variant_summary(name: str, rows: list[dict], images: str, variants: list[dict]) -> list[dict]:
    """Gains of each variant summed over the networks, with the sum's pairing standard deviation."""
    out = []
    for t in ACCURACY_STEPS:
        for settings in variants:
            at = [r for r in rows if r["model"] == name and r["images"] == images and r["steps"] == t]
            at = [r for r in at if r["variant"] == settings]
            gain, disagree = sum(r["gain"] for r in at), sum(r["disagree"] for r in at)
            out.append(
                {
                    "model": name,
                    "images": images,
                    "steps": t,
                    "variant": settings,
                    "gain": gain,
                    "disagree": disagree,
                    "sd": math.sqrt(disagree),
                    "networks": len(at),
                }
            )
            label = ",".join(f"{k}={v}" for k, v in settings.items())
            print(
                f"{name} {images} T={t:<3} {label}: {gain:+d} images against the defaults "
                f"(sd {math.sqrt(disagree):.0f}, {len(at)} networks)",
                flush=True,
            )
    return out


def parse_variants(text: str) -> list[dict]:
    """``"v-init=0;v-init=0.25,percentile=99.5"`` -> settings dicts."""
    items = [part.split(",") for part in text.split(";") if part]
    if any("=" not in item for part in items for item in part):
        raise SystemExit(f"--variants {text!r}: each setting is name=value, ',' between settings, ';' between variants")
    return [dict(item.split("=", 1) for item in part) for part in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="networks per architecture (seeds 0, 1, ...)")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--samples", type=int, default=10000, help="test images")
    parser.add_argument("--held-out", type=int, default=0, help="last training images kept out of training")
    parser.add_argument("--variants", default="", help="other snnc settings to compare with its defaults")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (training and SpikingJelly)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "peer_seeds", help="trained networks (kept)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = parse_variants(args.variants)
    calib = np.load(DATA / "calib.npz")["x"]
    test = np.load(DATA / "test.npz")
    images = {"test": (test["x"][: args.samples], test["y"][: args.samples])}
    if args.held_out:
        train_set = np.load(DATA / "train.npz")
        images["held-out"] = (train_set["x"][-args.held_out :], train_set["y"][-args.held_out :])
    rows, gains, summaries, variant_rows = [], [], [], []
    for name in args.models.split(","):
        for seed in range(args.seeds):
            net, path = trained(name, seed, args.work, args.held_out)
            for label, (x, y) in images.items():
                print(f"{name} seed {seed}, {label} images:", flush=True)
                rows += [{**r, "seed": seed, "images": label} for r in accuracy(name, net, calib, x, y, onnx_file=path)]
                found = variant_gains(path, calib, x, y, variants)
                gains += [{**r, "model": name, "seed": seed, "images": label} for r in found]
        for label in images:
            summaries += summary(name, rows, label)
            variant_rows += variant_summary(name, gains, label, variants)
    out = {
        "networks": rows,
        "summary": summaries,
        "variants": variant_rows,
        "variant_networks": gains,
        "samples": {label: len(x) for label, (x, _) in images.items()},
        "held_out": args.held_out,
        "machine": machine_info(),
    }
    args.out.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
