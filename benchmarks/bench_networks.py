"""Networks as people write them: a Keras CNN (Conv2D(relu) -> BatchNormalization ->
MaxPooling2D), a TorchScript CNN with max pooling and, when examples/resnet/resnet.onnx exists,
the ResNet-style network, each compiled from its own file.

    python benchmarks/bench_networks.py [--samples 1000] [--nest-samples 200] [--quick]

For each network, on the first ``--samples`` Fashion-MNIST test images (``--quick``: 100, NEST
on 5, no virtual board):

* the framework's own accuracy (Keras ``model.predict``, ``torch.jit.load``, onnxruntime);
* snnc's ANN interpreter against the framework: the largest absolute difference of the outputs,
  relative to the largest absolute output (must be <= 1e-4). Compared are the logits (the Keras
  model's last Dense with its activation set to linear, against the input of snnc's softmax)
  and, for the Keras model, also the softmax probabilities both give;
* ``sim``: the sim target's compile (default settings, calibration.npz beside the model)
  simulated by the reference simulator: accuracy and loss against the framework, at the
  default presentation time and, where the loss is over 1 point, at ``--long`` ms as well;
* NEST: the nest target's compile, its emitted run.py on the first ``--nest-samples`` images (one
  thread, running while sim does), and the reference simulator on the same compiled graph and
  images (what the simulator predicts for NEST's settings);
* SpiNNaker as the simulated model: the spinnaker target's compile with ``quantize.measure=rates``,
  the quantized graph simulated by the reference simulator back to back with pauses (``--chains``
  parallel sequences, as bench_spinnaker.py), the diagnostics of lower-to-snn and quantize, the
  cores report.json plans, and whether sPyNNaker maps it on a virtual SpiNN-5 board.

Data layout: the Keras model is channels-last, so its data and calibration are given as NHWC
(snnc transposes to the IR's NCHW, see README "Data files"); the simulator takes the IR layout.
Saves benchmarks/results/networks.json.
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

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

import snnc  # noqa: E402
from snnc.datasets import load as load_dataset  # noqa: E402
from snnc.ir import Graph  # noqa: E402
from snnc.ir.semantics.ann import evaluate  # noqa: E402
from snnc.ir.semantics.simulator import simulate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "networks.json"
NETWORKS = {
    "keras_cnn": ROOT / "examples" / "networks" / "keras_cnn.keras",
    "torchscript_cnn": ROOT / "examples" / "networks" / "torchscript_cnn.pt",
    "resnet": ROOT / "examples" / "resnet" / "resnet.onnx",
}
SPINNAKER = {"quantize.measure": "rates"}


def model_layout(model: Path, x: np.ndarray) -> np.ndarray:
    """NCHW samples in the layout the model file takes (NHWC for Keras)."""
    return x.transpose(0, 2, 3, 1) if model.suffix == ".keras" else x


def framework_outputs(model: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """The framework's logits (and probabilities where the model ends in softmax) on NCHW ``x``."""
    if model.suffix == ".keras":
        import keras

        net = keras.saving.load_model(model)
        probabilities = net.predict(model_layout(model, x), batch_size=500, verbose=0)
        net.layers[-1].activation = keras.activations.linear
        logits = net.predict(model_layout(model, x), batch_size=500, verbose=0)
        return {"logits": logits, "probabilities": probabilities}
    if model.suffix == ".pt":
        import torch

        net = torch.jit.load(str(model)).eval()
        with torch.no_grad():
            return {"logits": np.concatenate([net(torch.tensor(b)).numpy() for b in np.array_split(x, 10)])}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return {"logits": np.concatenate([session.run(None, {name: b})[0] for b in np.array_split(x, 10)])}


def snnc_outputs(ann: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """snnc's ANN interpreter: the logits (the softmax's input where the graph ends in one) and the output."""
    out = ann.outputs[0]
    node = ann.op(out)
    logits_id = ann.inputs(out)[0] if node.OPNAME == "ann.softmax" else out
    values = evaluate(ann, x, list(dict.fromkeys([logits_id, out])))
    result = {"logits": values[logits_id].reshape(len(x), -1)}
    if logits_id != out:
        result["probabilities"] = values[out].reshape(len(x), -1)
    return result


def relative_difference(a: np.ndarray, b: np.ndarray) -> dict:
    diff = float(np.max(np.abs(a - b)))
    return {"max_abs": diff, "relative": diff / float(np.max(np.abs(a)))}


def compile_for(model: Path, target: str, calib: dict, settings: dict) -> snnc.Compiled:
    """``model`` compiled for ``target`` with the calibration images and ``settings``."""
    return snnc.compile(model, target, calibration=calib["x"], calibration_labels=calib["y"], settings=settings)


def sim_row(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, framework: float, long_ms: float) -> dict:
    """sim at the default presentation time, and at ``long_ms`` where the loss is over a point."""
    rows = []
    for settings in ({}, {"presentation-time": str(long_ms)}):
        start = time.perf_counter()
        graph = compile_for(model, "sim", calib, settings).graph
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        result = simulate(graph, x)
        accuracy = float(np.mean(result.predictions == y))
        rows.append(
            {
                "presentation_ms": float(graph.attrs["presentation_time"]),
                "accuracy": accuracy,
                "loss_points": 100 * (framework - accuracy),
                "compile_s": compile_s,
                "simulate_s": time.perf_counter() - start,
            }
        )
        if rows[0]["loss_points"] <= 1.0:
            break
    return {"runs": rows}


def script(out: Path, data: Path, samples: int, *options: str) -> list[str]:
    """The command line of the emitted run.py on ``samples`` images."""
    return [sys.executable, str(out / "run.py"), "--data", str(data), "--samples", str(samples), "--no-ann", *options]


def results_of(proc: subprocess.Popen, out: Path) -> dict:
    """results.json of a finished run.py; RuntimeError with its last line of stderr if it failed."""
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        lines = stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")
    return json.loads((out / "results.json").read_text())


def start_nest(model: Path, calib: dict, data: Path, samples: int, folder: Path) -> dict:
    """The nest target's defaults, its run.py started on ``data`` (one thread: sim runs beside it)."""
    out = folder / f"{model.stem}-nest"
    start = time.perf_counter()
    compiled = compile_for(model, "nest", calib, {})
    compiled.emit(out)
    compile_s = time.perf_counter() - start
    proc = subprocess.Popen(
        script(out, data, samples, "--threads", "1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return {"proc": proc, "out": out, "graph": compiled.graph, "compile_s": compile_s, "start": time.perf_counter()}


def finish_nest(run: dict, x: np.ndarray, y: np.ndarray, framework: float) -> dict:
    """NEST's accuracy and loss on its images, and the reference simulator on the same compiled graph."""
    sim = float(np.mean(simulate(run["graph"], x).predictions == y))
    row = {"samples": len(y), "framework_accuracy": framework, "sim_on_nest_graph_accuracy": sim}
    try:
        results = results_of(run["proc"], run["out"])
    except RuntimeError as exc:
        return row | {"error": str(exc)}
    return row | {
        "accuracy": results["accuracy"],
        "loss_points": 100 * (framework - results["accuracy"]),
        "presentation_ms": results["simulated_time_ms"],
        "compile_s": run["compile_s"],
        "build_s": results["build_time_s"],
        "run_s": time.perf_counter() - run["start"],
    }


def spinnaker_row(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, framework: float, args, folder: Path) -> dict:
    """The quantized spinnaker graph on the reference simulator, its diagnostics, the mapping."""
    start = time.perf_counter()
    compiled = compile_for(model, "spinnaker", calib, SPINNAKER)
    row: dict = {"settings": SPINNAKER, "compile_s": time.perf_counter() - start}
    row["diagnostics"] = [str(d) for d in compiled.diagnostics if d.source in ("lower-to-snn", "quantize")]
    start = time.perf_counter()
    result = simulate(compiled.graph, x, chains=args.chains)
    row |= {
        "presentation_ms": float(compiled.graph.attrs["presentation_time"]),
        "pause_ms": float(compiled.graph.attrs.get("pause", 0.0)),
        "accuracy": float(np.mean(result.predictions == y)),
        "simulate_s": time.perf_counter() - start,
    }
    row["loss_points"] = 100 * (framework - row["accuracy"])
    out = folder / f"{model.stem}-spinnaker"
    compiled.emit(out)
    report = json.loads((out / "report.json").read_text())
    row |= {k: report[k] for k in ("cores", "application_cores", "instances") if k in report}
    if args.quick:
        return row
    home = folder / "home"
    home.mkdir(exist_ok=True)
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    start = time.perf_counter()
    try:
        cmd = script(out, folder / f"{model.stem}-test.npz", 2)
        env = {**os.environ, "HOME": str(home)}
        results_of(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env), out)
        placements = json.loads((out / "placements.json").read_text())
        row["virtual_board"] = {"maps": True, "placed_cores": len(placements.get("cores", placements))}
    except (RuntimeError, OSError, ValueError) as exc:
        row["virtual_board"] = {"maps": False, "why": str(exc)}
    row["virtual_board"]["seconds"] = time.perf_counter() - start
    return row


def bench(name: str, model: Path, x: np.ndarray, y: np.ndarray, calib: dict, args, folder: Path) -> dict:
    row: dict = {"network": name, "file": str(model.relative_to(ROOT)), "samples": len(x)}
    start = time.perf_counter()
    ann = snnc.load(model)
    row["load_s"] = time.perf_counter() - start
    ours, theirs = snnc_outputs(ann, x), framework_outputs(model, x)
    framework = float(np.mean(theirs["logits"].argmax(1) == y))
    row["framework_accuracy"] = framework
    row["snnc_ann_accuracy"] = float(np.mean(ours["logits"].argmax(1) == y))
    row["ann_vs_framework"] = {k: relative_difference(theirs[k], ours[k]) for k in ours if k in theirs}
    cal = {"x": model_layout(model, calib["x"]), "y": calib["y"]}
    n = args.nest_samples
    np.savez(folder / f"{model.stem}-test.npz", x=model_layout(model, x[:n]), y=y[:n])
    nest = start_nest(model, cal, folder / f"{model.stem}-test.npz", n, folder)
    row["sim"] = sim_row(model, cal, x, y, framework, args.long)
    row["spinnaker"] = spinnaker_row(model, cal, x, y, framework, args, folder)
    subset = float(np.mean(theirs["logits"][:n].argmax(1) == y[:n]))
    row["nest"] = finish_nest(nest, x[:n], y[:n], subset)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| network | framework | ANN rel. diff | sim (ms) | sim loss | NEST (n) | NEST loss "
        "| SpiNNaker model | loss | cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = max(d["relative"] for d in r["ann_vs_framework"].values())
        sims = r["sim"]["runs"]
        sim = ", ".join(f"{s['accuracy']:.2%} ({s['presentation_ms']:g})" for s in sims)
        loss = ", ".join(f"{s['loss_points']:+.1f}" for s in sims)
        nest, spin = r["nest"], r["spinnaker"]
        nest_cells = (
            f"{nest['accuracy']:.0%} ({nest['samples']}) | {nest['loss_points']:+.1f}"
            if "accuracy" in nest
            else f"failed ({nest['samples']}) | -"
        )
        board = spin.get("virtual_board", {})
        cores = f"{spin.get('cores', '?')}" + ("" if not board else (" maps" if board["maps"] else " does not map"))
        lines.append(
            f"| {r['network']} | {r['framework_accuracy']:.2%} | {diff:.1e} | {sim} | {loss} | {nest_cells} "
            f"| {spin['accuracy']:.2%} | {spin['loss_points']:+.1f} | {cores} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="test images for the framework, ANN, sim, SpiNNaker")
    parser.add_argument("--nest-samples", type=int, default=200, help="test images NEST runs")
    parser.add_argument("--long", type=float, default=300.0, help="the longer presentation time (ms) for sim")
    parser.add_argument("--chains", type=int, default=100, help="parallel back-to-back sequences for SpiNNaker")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--quick", action="store_true", help="100 images, NEST on 5, no virtual board")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.nest_samples = min(args.samples, 100), min(args.nest_samples, 5)
    x, y = load_dataset("fashion-mnist:test")
    x, y = x[: args.samples], y[: args.samples]
    calib = dict(np.load(ROOT / "examples" / "networks" / "calibration.npz"))
    calib["x"] = calib["x"].reshape(len(calib["x"]), 1, 28, 28)
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            if not NETWORKS[name].is_file():
                print(f"{name}: {NETWORKS[name].relative_to(ROOT)} does not exist; skipped", flush=True)
                continue
            start = time.perf_counter()
            rows.append(bench(name, NETWORKS[name], x, y, calib, args, Path(tmp)))
            rows[-1]["seconds"] = time.perf_counter() - start
            print(json.dumps(rows[-1]), flush=True)
            save(rows, args, time.perf_counter() - started)  # after each network: a partial run keeps its rows
    print(table(rows))
    print(f"wrote {RESULTS}")


def save(rows: list[dict], args: argparse.Namespace, seconds: float) -> None:
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": (
            "ANN rel. diff: max |framework - snnc ANN| / max |framework| over logits (Keras: last Dense with a "
            "linear activation vs snnc's softmax input) and, for Keras, softmax probabilities. SpiNNaker: the "
            "quantized spinnaker graph on snnc's reference simulator (a virtual board maps but does not spike)"
        ),
        "samples": args.samples,
        "nest_samples": args.nest_samples,
        "quick": args.quick,
        "total_s": seconds,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
