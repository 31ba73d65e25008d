"""snnc against SpikingJelly on several trained networks: is one more accurate beyond the luck of one?

    python benchmarks/bench_peer_seeds.py [--seeds 5] [--models mlp,cnn]   # after make peer-bench

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

Trained networks are kept in ``--work`` (ONNX) and reused by later runs. Results go to
benchmarks/results/peer_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from bench_peer import ACCURACY_STEPS, DATA, EXAMPLES, ROOT, accuracy, machine_info, torch_model, train_module
from onnx import numpy_helper
from scipy.stats import binomtest, ttest_1samp

RESULTS = ROOT / "benchmarks" / "results" / "peer_seeds.json"


def trained(name: str, seed: int, work: Path) -> tuple[torch.nn.Module, Path]:
    """The network ``name`` trained with ``seed`` (0: the example) and its ONNX file."""
    if seed == 0:
        return torch_model(name), EXAMPLES / f"{name}.onnx"
    module = train_module()
    path = work / f"{name}_seed{seed}.onnx"
    torch.manual_seed(seed)
    net = getattr(module, name)()
    if path.exists():
        weights = {i.name: torch.tensor(numpy_helper.to_array(i)) for i in onnx.load(path).graph.initializer}
        net.load_state_dict(weights)
        return net.eval(), path
    train_set = np.load(DATA / "train.npz")
    x, y = torch.tensor(train_set["x"]), torch.tensor(train_set["y"])
    start = time.perf_counter()
    module.train(net, x, y, module.EPOCHS[name], seed=seed)
    print(f"{name} seed {seed}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    module.export(net, x[:1], path)
    return net.eval(), path


def summary(name: str, rows: list[dict]) -> list[dict]:
    """Per T: the differences over the networks and the tests of them."""
    out = []
    for t in ACCURACY_STEPS:
        at = [r for r in rows if r["model"] == name and r["steps"] == t]
        diffs = [100 * (r["snnc"] - r["spikingjelly"]) for r in at]
        only_snnc, only_sj = sum(r["snnc_only"] for r in at), sum(r["spikingjelly_only"] for r in at)
        t_p = float(ttest_1samp(diffs, 0.0).pvalue) if len(set(diffs)) > 1 else 1.0
        row = {
            "model": name,
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
            f"{name} T={t:<3} snnc - SJ {row['mean_difference_points']:+.3f} points on average "
            f"({', '.join(f'{d:+.2f}' for d in diffs)}); snnc >= SJ on {row['snnc_at_least_spikingjelly']} of "
            f"{len(at)} (t-test p {t_p:.2f}); right only in snnc {only_snnc}, only in SJ {only_sj} "
            f"(McNemar p {row['mcnemar_p']:.2g})",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="networks per architecture (the example and seeds 1..)")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--samples", type=int, default=10000, help="test images")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (training and SpikingJelly)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "peer_seeds", help="trained networks (kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    calib = np.load(DATA / "calib.npz")["x"]
    test = np.load(DATA / "test.npz")
    x, y = test["x"][: args.samples], test["y"][: args.samples]
    rows, summaries = [], []
    for name in args.models.split(","):
        for seed in range(args.seeds):
            net, path = trained(name, seed, args.work)
            rows += [{**r, "seed": seed} for r in accuracy(name, net, calib, x, y, onnx_file=path)]
        summaries += summary(name, rows)
    out = {"networks": rows, "summary": summaries, "samples": len(x), "machine": machine_info()}
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
