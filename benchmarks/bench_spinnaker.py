"""What the SpiNNaker mapping costs in accuracy, and how the example networks fill the boards.

    python benchmarks/bench_spinnaker.py [--samples 1000] [--chains 100]

A virtual board maps but does not spike, so the accuracy a SpiNNaker board would reach comes
from the reference simulator running the compiled graph with SpiNNaker's neuron model (leaky
IF, hard reset), 16-bit weights and samples back to back with pauses (``--chains`` parallel
sequences; the board itself runs one sequence per instance, which changes only which sample
precedes which). Steps are separated: float weights with per-sample reset, then quantized
weights, then back to back. For SpiNN3 and SpiNN5 with ``instances=auto`` it records cores,
instances, wall time and the energy estimate from report.json, and times sPyNNaker's mapping
of the network on a virtual board. Saves benchmarks/results/spinnaker.json.
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

import numpy as np

import snnc
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.simulator import simulate
from snnc.passes import PassError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "spinnaker.json"
NO_QUANTIZE = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn,normalize,bias-to-current"


def accuracy(graph, x, y, chains=None) -> tuple[float, float]:
    start = time.perf_counter()
    result = simulate(graph, x, chains=chains)
    return float(np.mean(result.predictions == y)), len(x) / (time.perf_counter() - start)


def map_on_virtual_board(out: Path, home: Path) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, str(out / "run.py"), "--samples", "10", "--no-ann", "--data", str(DATA / "test.npz")]
    proc = subprocess.run(cmd, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=100)
    args = parser.parse_args()
    calib = np.load(DATA / "calib.npz")
    test = np.load(DATA / "test.npz")
    x, y = test["x"][: args.samples], test["y"][: args.samples]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
        for name in ("mlp", "cnn"):
            model = ROOT / "examples" / "fashion_mnist" / f"{name}.onnx"
            ann = float(np.mean(predict(snnc.load(model), x).argmax(axis=1) == y))
            settings = {"instances": "auto"}
            compiled = snnc.compile(
                model, "spinnaker", calibration=calib["x"], calibration_labels=calib["y"], settings=settings
            )
            graph = compiled.graph
            unquantized = snnc.compile(model, "spinnaker", calibration=calib["x"], pipeline=NO_QUANTIZE).graph
            reset = graph.copy()
            for g in (unquantized, reset):  # every sample from a reset network
                del g.attrs["pause"]
            row = {
                "model": name,
                "samples": len(x),
                "ann_accuracy": ann,
                "presentation_ms": graph.attrs["presentation_time"],
                "pause_ms": graph.attrs["pause"],
            }
            row["sim_float_reset"], _ = accuracy(unquantized, x, y)
            row["sim_16bit_reset"], _ = accuracy(reset, x, y)
            row["sim_16bit_back_to_back"], row["sim_samples_per_s"] = accuracy(graph, x, y, chains=args.chains)
            row["conversion_loss_points"] = 100 * (ann - row["sim_16bit_back_to_back"])
            for board in ("spinn3", "spinn5"):
                out = Path(tmp) / f"{name}-{board}"
                try:
                    snnc.compile(
                        model,
                        "spinnaker",
                        calibration=calib["x"],
                        calibration_labels=calib["y"],
                        settings={**settings, "board": board},
                    ).emit(out)
                except PassError as exc:
                    row[board] = {"fits": False, "why": str(exc)}
                    continue
                report = json.loads((out / "report.json").read_text())
                keys = ("cores_per_instance", "instances", "cores", "application_cores", "wall_ms_per_inference")
                row[board] = {"fits": True} | {k: report[k] for k in keys}
                row[board]["energy_mj_per_inference"] = report["energy"]["mj_per_inference"]
                row[board]["energy_mj_with_idle"] = report["energy"]["mj_per_inference_with_idle"]
                row[board]["virtual_board_mapping_s"] = map_on_virtual_board(out, home)
            rows.append(row)
            print(
                f"{name}: ANN {ann:.4f} | sim float+reset {row['sim_float_reset']:.4f} | 16-bit+reset "
                f"{row['sim_16bit_reset']:.4f} | 16-bit back to back {row['sim_16bit_back_to_back']:.4f} "
                f"(loss {row['conversion_loss_points']:+.2f} pt)",
                flush=True,
            )
            for board in ("spinn3", "spinn5"):
                b = row[board]
                if not b["fits"]:
                    print(f"    {board}: does not fit: {b['why']}")
                    continue
                print(
                    f"    {board}: {b['instances']} instances x {b['cores_per_instance']} cores = {b['cores']} of "
                    f"{b['application_cores']}; {b['wall_ms_per_inference']:.1f} ms/inference; "
                    f"{b['energy_mj_per_inference']:.3g} mJ ({b['energy_mj_with_idle']:.3g} with idle); "
                    f"virtual mapping {b['virtual_board_mapping_s']:.1f} s",
                    flush=True,
                )
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
