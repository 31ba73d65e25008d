"""Compile time of a long chain: graph operations must be linear in the node count (issue 9).

    python benchmarks/bench_chain.py [--nodes 100000] [--repeats 3] [--profile]

Writes a ``.snnir`` chain of ``dense 4x4`` + ``relu`` ops (``--nodes`` ops in all, the input
included), compiles it for ``sim`` with calibration data (``snnc.compile`` then ``.emit``) and
prints and saves benchmarks/results/chain.json: the median of ``--repeats`` runs for loading,
compiling and emitting. ``--profile`` prints the 25 most expensive functions of one run instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import snnc
from snnc import ir
from snnc.ir import ops

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "chain.json"
WIDTH = 4


def build_chain(nodes: int, seed: int = 0) -> ir.Graph:
    """An ann graph: the input, then alternating ``dense 4x4`` and ``relu`` ops, ``nodes`` ops in all."""
    rng = np.random.default_rng(seed)
    g = ir.Graph()
    prev = g.add("x", ops.Input(shape=(WIDTH,)))
    for i in range(1, nodes):
        if i % 2:
            w = rng.dirichlet(np.ones(WIDTH), WIDTH).astype(np.float32)  # rows sum to 1: activity stays bounded
            prev = g.add(f"fc{i}", ops.Dense(weight=g.add_tensor(f"fc{i}.weight", w)), [prev])
        else:
            prev = g.add(f"relu{i}", ops.Relu(), [prev])
    g.outputs = [prev]
    return g


def run_once(model: Path, calibration: np.ndarray, out: Path) -> dict[str, Any]:
    """Seconds for loading the .snnir file alone, compiling it (per pass too) and emitting the output."""
    start = time.perf_counter()
    ir.load(model)
    loaded = time.perf_counter()
    compiled = snnc.compile(model, "sim", calibration=calibration)
    compiled_at = time.perf_counter()
    compiled.emit(out, force=True)
    done = time.perf_counter()
    return {
        "load_s": loaded - start,
        "compile_s": compiled_at - loaded,
        "emit_s": done - compiled_at,
        "compile_and_emit_s": done - loaded,
        "passes_s": {r.name: r.seconds for r in compiled.records},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=100_000, help="ops in the chain, the input included")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of one run")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/chain.json")
    args = parser.parse_args()
    calibration = np.random.default_rng(1).uniform(0, 1, (16, WIDTH)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model = ir.save(build_chain(args.nodes), Path(tmp) / "chain.snnir")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run_once, model, calibration, Path(tmp) / "out")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return
        runs = [run_once(model, calibration, Path(tmp) / "out") for _ in range(args.repeats)]
    result: dict[str, Any] = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key != "passes_s"}
    result.update(
        nodes=args.nodes,
        repeats=args.repeats,
        runs=runs,
        python=platform.python_version(),
        machine=platform.machine(),
        processor=platform.processor() or platform.machine(),
    )
    result["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
