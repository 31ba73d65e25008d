"""What SpiNNaker's hard reset costs, and what recovers it: the spinnaker target's compile (its
quantized graph, reset to v_reset, leak, pauses between samples run back to back) on snnc's
reference simulator, the "simulated model" of bench_networks.py and bench_resnet.py.

    python benchmarks/bench_spinnaker_reset.py [--samples 500] [--networks mlp,cnn,keras_cnn,resnet]

sPyNNaker's IF cells reset to ``v_reset`` (no prebuilt model resets by subtraction), so a spike
throws away the overshoot ``v - v_threshold`` that reset by subtraction keeps. Settings, each on
the first ``--samples`` Fashion-MNIST test images (``--chains`` parallel back-to-back sequences):

* ``subtract``: the old default compile with every population switched to reset by subtraction
  after compiling (not possible on the board): what the hard reset costs on the same graph;
* ``hard``: the old default (v_reset = 0, no calibration), at each ``--presentations`` time;
* ``rate=R``: normalize{rate=R} (fewer spikes per ms) at the longest presentation time;
* ``v_reset``: calibrate-bias{fit-reset=true,bias=false} (v_reset fitted to the mean overshoot);
* ``v_reset+bias``: calibrate-bias{fit-reset=true} (then Li et al. 2021's bias calibration): the new
  default, at each ``--presentations`` time.

Reported per network and setting: accuracy, loss in points against snnc's ANN interpreter (which
matches the framework to 1e-4, see networks.json / resnet.json), presentation and pause time,
compile and simulation seconds (medians of ``--repeats`` runs; the CPU is shared, so they vary).
Saves benchmarks/results/spinnaker_reset.json after each network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

import snnc  # noqa: E402
from snnc.datasets import load as load_dataset  # noqa: E402
from snnc.ir import Graph  # noqa: E402
from snnc.ir.semantics.ann import evaluate  # noqa: E402
from snnc.ir.semantics.simulator import simulate  # noqa: E402
from snnc.targets.spinnaker.spec import SPEC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "spinnaker_reset.json"
NETWORKS = {
    "mlp": ROOT / "examples" / "fashion_mnist" / "mlp.onnx",
    "cnn": ROOT / "examples" / "fashion_mnist" / "cnn.onnx",
    "keras_cnn": ROOT / "examples" / "networks" / "keras_cnn.keras",
    "resnet": ROOT / "examples" / "resnet" / "resnet.onnx",
}
REMEDY = SPEC.pipeline[SPEC.pipeline.index(",calibrate-bias{") :].partition("}")[0] + "}"
OLD_PIPELINE = SPEC.pipeline.replace(REMEDY, "")  # the spinnaker pipeline before the remedy


def settings_list(presentations: list[float], rate: float) -> list[tuple[str, float, str, str]]:
    """(name, presentation ms, pipeline, change made to the compiled graph) for every setting measured."""
    first, longest = presentations[0], max(presentations)
    slower = OLD_PIPELINE.replace(",normalize,", f",normalize{{rate={rate:g}}},")
    with_bias = OLD_PIPELINE.replace(
        "bias-to-current", "bias-to-current,calibrate-bias{fit-reset=true,samples=32,chains=32}"
    )
    return [
        ("subtract", first, OLD_PIPELINE, "subtract"),  # the hard-reset graph, reset by subtraction
        *[("hard", ms, OLD_PIPELINE, "") for ms in presentations],
        (f"rate={rate:g}", longest, slower, ""),
        ("readout=membrane", first, OLD_PIPELINE, "membrane"),
        *[("v_reset", ms, SPEC.pipeline, "") for ms in presentations],
        (f"v_reset+rate={rate:g}", longest, slower.replace(",split-populations", REMEDY + ",split-populations"), ""),
        ("v_reset+bias", first, with_bias, ""),
    ]


def calibration_of(model: Path) -> dict:
    """The calibration images beside ``model`` (N, 1, 28, 28), NHWC for a Keras model, and labels."""
    calib = dict(np.load(model.parent / "calibration.npz"))
    x = calib["x"].reshape(len(calib["x"]), 1, 28, 28)
    return {"x": x.transpose(0, 2, 3, 1) if model.suffix == ".keras" else x, "y": calib["y"]}


def ann_accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    """snnc's ANN interpreter on NCHW ``x`` (the logits' argmax)."""
    ann = snnc.load(model)
    out = ann.outputs[0]
    return float(np.mean(evaluate(ann, x, [out])[out].reshape(len(x), -1).argmax(1) == y))


def changed(graph: Graph, change: str) -> Graph:
    """``graph`` with every population resetting by subtraction (what SpiNNaker's cells cannot do),
    or with its output read as membrane potentials (which needs the board to record v), or as it is."""
    if change == "subtract":
        for pop in graph.ops_of("snn.population"):
            graph.set_op(pop, replace(graph.op(pop), reset="subtract"))
    elif change == "membrane":
        for readout in graph.ops_of("snn.readout"):
            graph.set_op(readout, replace(graph.op(readout), mode="membrane"))
    return graph


def measure(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, setting: tuple, args) -> dict:
    """One setting: compile (timed ``--repeats`` times), simulate, accuracy."""
    name, ms, pipeline, change = setting
    compile_times, compiled = [], None
    for _ in range(args.repeats):
        start = time.perf_counter()
        compiled = snnc.compile(
            model,
            "spinnaker",
            calibration=calib["x"],
            calibration_labels=calib["y"],
            settings={"presentation-time": str(ms)},
            pipeline=pipeline,
        )
        compile_times.append(time.perf_counter() - start)
    graph = changed(compiled.graph, change)
    start = time.perf_counter()
    accuracy = float(np.mean(simulate(graph, x, chains=args.chains).predictions == y))
    return {
        "setting": name,
        "presentation_ms": float(graph.attrs["presentation_time"]),
        "pause_ms": float(graph.attrs.get("pause", 0.0)),
        "accuracy": accuracy,
        "compile_s_median": statistics.median(compile_times),
        "simulate_s": time.perf_counter() - start,
        "calibration": [str(d) for d in compiled.diagnostics if d.source == "calibrate-bias"],
    }


def bench(name: str, x: np.ndarray, y: np.ndarray, args, done: list[dict]) -> dict:
    model = NETWORKS[name]
    calib = calibration_of(model)
    ann = ann_accuracy(model, x, y)
    row: dict = {"network": name, "file": str(model.relative_to(ROOT)), "samples": len(x), "ann_accuracy": ann}
    row["runs"] = []
    for setting in settings_list(args.presentations, args.rate):
        if args.settings and setting[0] not in args.settings:
            continue
        run = measure(model, calib, x, y, setting, args)
        run["loss_points"] = 100 * (ann - run["accuracy"])
        row["runs"].append(run)
        save(done + [row], args)  # after each run: a partial run keeps what it measured
        print(
            f"{name:10s} {run['setting']:14s} {run['presentation_ms']:5.0f} ms  accuracy {run['accuracy']:.3f}"
            f"  loss {run['loss_points']:5.1f}  compile {run['compile_s_median']:.1f} s  sim {run['simulate_s']:.0f} s",
            flush=True,
        )
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| network | ANN | setting | presentation (ms) | accuracy | loss (points) | compile (s) |",
        "|---" * 7 + "|",
    ]
    for row in rows:
        for run in row["runs"]:
            lines.append(
                f"| {row['network']} | {row['ann_accuracy']:.3f} | {run['setting']} | {run['presentation_ms']:g} | "
                f"{run['accuracy']:.3f} | {run['loss_points']:.1f} | {run['compile_s_median']:.1f} |"
            )
    return "\n".join(lines)


def merged(earlier: list[dict], rows: list[dict]) -> list[dict]:
    """``rows`` over the ``earlier`` ones: a network's runs replace the earlier runs of the same setting
    and presentation time and join the others (networks and settings can be run as separate processes)."""
    by_name = {row["network"]: row for row in earlier}
    for row in rows:
        old = by_name.get(row["network"])
        if old is not None and old["samples"] == row["samples"]:
            keys = {(r["setting"], r["presentation_ms"]) for r in row["runs"]}
            row = {
                **row,
                "runs": [r for r in old["runs"] if (r["setting"], r["presentation_ms"]) not in keys] + row["runs"],
            }
        by_name[row["network"]] = row
    order = list(NETWORKS)
    return sorted(by_name.values(), key=lambda r: order.index(r["network"]))


def save(rows: list[dict], args: argparse.Namespace) -> None:
    """Write RESULTS: these rows merged over what it held."""
    rows = merged(json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else [], rows)
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": (
            "the spinnaker target's quantized graph on snnc's reference simulator (the simulated model: reset to "
            "v_reset, tau_m and pauses as compiled, samples back to back in parallel chains); loss against snnc's "
            "ANN interpreter on the same images; 'subtract' is the hard-reset graph switched to reset by "
            "subtraction after compiling, which the board cannot run; timings are single runs on a shared CPU "
            "unless --repeats > 1 (medians)"
        ),
        "pipeline_default": SPEC.pipeline,
        "pipeline_old": OLD_PIPELINE,
        "chains": args.chains,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--presentations", default="200,400", help="presentation times (ms), comma-separated")
    parser.add_argument("--rate", type=float, default=0.5, help="normalize's rate for the rate= setting")
    parser.add_argument("--chains", type=int, default=100, help="parallel back-to-back sequences")
    parser.add_argument("--settings", default="", help="comma-separated names of the settings to run (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="compiles per setting for the median compile time")
    args = parser.parse_args()
    args.presentations = [float(v) for v in args.presentations.split(",")]
    args.settings = [v for v in args.settings.split(",") if v]
    x, y = load_dataset("fashion-mnist:test")
    x, y = x[: args.samples], y[: args.samples]
    rows: list[dict] = []
    for name in args.networks.split(","):
        rows.append(bench(name, x, y, args, rows))
    print(table(merged(json.loads(RESULTS.read_text())["rows"], rows)))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
