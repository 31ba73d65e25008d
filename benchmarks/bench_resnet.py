"""Residual networks end to end: the Fashion-MNIST ResNet of examples/resnet compiled for sim, NEST and
SpiNNaker with its conversion loss measured, and a ResNet-18 compiled for every target.

    python benchmarks/bench_resnet.py [--samples 1000] [--nest-samples 100] [--spinnaker-samples 300] [--quick]

Part 1, examples/resnet/resnet.onnx (calibration.npz beside it), on the first ``--samples``
Fashion-MNIST test images (``--quick``: 100 images, NEST on 2, SpiNNaker on 50, no virtual
board, no ResNet-18 emit, no Loihi):

* onnxruntime's accuracy, and snnc's ANN interpreter against it: the largest absolute difference
  of the logits (and relative to the largest absolute logit; must be about 1e-4);
* ``sim``: compiled at 100 and 200 ms presentation time (``--presentations``), simulated by the
  reference simulator: accuracy and loss in points against onnxruntime;
* NEST: the nest target's compile (its defaults: sim's, reset by subtraction on eprop_iaf), its
  emitted run.py on the first ``--nest-samples`` images (one thread, running while sim does), and
  the reference simulator on the same compiled graph and images;
* SpiNNaker: the spinnaker target's compile on one SpiNN-5 board, the cores its plan needs, the
  quantized graph simulated by the reference simulator back to back with pauses on the first
  ``--spinnaker-samples`` images (``--chains`` parallel sequences, as bench_spinnaker.py: the
  "simulated model"), and whether the target emits it and sPyNNaker maps it on a virtual board
  (or the error naming what it cannot take);
* where SpiNNaker's loss comes from: sim at 200 ms with its reset to zero instead of reset by
  subtraction, on the same images as SpiNNaker.

Part 2, ResNet-18 as torchvision defines it (written out here; torchvision is not a dependency):
a 7x7 stride-2 stem with batch-norm, ReLU and 3x3 stride-2 max pooling, four stages of two basic
blocks (64, 128, 256, 512 channels; projection shortcuts where the stride or width changes),
global average pooling and a 1000-way dense layer: 11,689,512 parameters. Random weights (seed 0),
batch-norm in eval mode with random statistics, on CIFAR-size input (3x32x32), exported to ONNX
in a temporary folder (without constant folding: the file keeps its 20 BatchNormalization nodes
for snnc to fold) and compiled for every target with 16 random calibration images: the time of
every pass, or the error naming the limit. Where SpiNNaker needs more than one board, also the
compile with as many boards as it names. Then each compiled network is emitted (the time and
size of the output folder, or the target's error); ``--quick`` skips the emit.

Every compile time is the pipeline's own PassRecord times; the CPU is shared, so times vary.
Saves benchmarks/results/resnet.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_networks import finish_nest as networks_finish_nest
from bench_networks import relative_difference, results_of, script, snnc_outputs
from torch import nn

import snnc
from snnc.datasets import load as load_dataset
from snnc.ir.errors import SnncError
from snnc.ir.semantics.simulator import simulate
from snnc.pipeline import pass_records

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "resnet.json"
EXAMPLE = ROOT / "examples" / "resnet"
TARGETS = ("sim", "nest", "nir", "spinnaker", "genn", "loihi", "brainscales2")


def _example_module():
    """examples/resnet/train.py as a module: its BasicBlock (torchvision's, He et al. 2016) builds ResNet-18 too."""
    spec = importlib.util.spec_from_file_location("resnet_example_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BasicBlock = _example_module().BasicBlock


def resnet18(classes: int = 1000) -> nn.Module:
    """torchvision.models.resnet18's layers and parameter count (11,689,512 with 1000 classes)."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        layers += [BasicBlock(cin, cout, 1 if stage == 0 else 2), BasicBlock(cout, cout)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


def export_resnet18(path: Path) -> int:
    """ResNet-18 with random weights and batch-norm statistics, eval mode, as ONNX; its parameter count."""
    torch.manual_seed(0)
    net = resnet18()
    export_random_batchnorm(net, path)
    return sum(p.numel() for p in net.parameters())


def export_random_batchnorm(net: nn.Module, path: Path) -> None:
    """``net`` with random batch-norm statistics and affine parameters, eval mode, as ONNX on 3x32x32."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    torch.onnx.export(
        net.eval(),
        torch.rand(1, 3, 32, 32),
        path,
        dynamo=False,
        do_constant_folding=False,  # keep the BatchNormalization nodes: snnc folds them, not the exporter
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )


def passes_of(records: list) -> list[dict]:
    return [{"pass": r.name, "seconds": r.seconds, "ops": r.ops} for r in records]


def compile_timed(model: Path, target: str, calib: dict, settings: dict) -> tuple[snnc.Compiled | None, dict]:
    """``model`` compiled for ``target``: the result (None if refused) and a row with the pass times or the error."""
    start = time.perf_counter()
    try:
        compiled = snnc.compile(
            model, target, calibration=calib["x"], calibration_labels=calib.get("y"), settings=settings
        )
    except SnncError as exc:
        seconds = time.perf_counter() - start
        row = {"target": target, "settings": settings, "compiles": False, "error": f"{type(exc).__name__}: {exc}"}
        return None, row | {"seconds": seconds, "passes": passes_of(pass_records(exc))}
    row = {"target": target, "settings": settings, "compiles": True, "seconds": time.perf_counter() - start}
    row["ops"] = len(compiled.graph)
    row["passes"] = passes_of(compiled.records)
    noted = ("split-populations", "calibrate-bias", "quantize")
    row["notes"] = [str(d) for d in compiled.diagnostics if d.source in noted]
    return compiled, row


def emit_timed(compiled: snnc.Compiled, out: Path) -> dict:
    """Emit into ``out``: seconds and megabytes, or the target's error."""
    start = time.perf_counter()
    try:
        compiled.emit(out)
    except SnncError as exc:
        return {"emits": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - start}
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"emits": True, "seconds": time.perf_counter() - start, "megabytes": size / 1e6}


def onnxruntime_logits(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: b})[0] for b in np.array_split(x, max(1, len(x) // 100))])


def start_nest(model: Path, calib: dict, data: Path, samples: int, folder: Path) -> dict:
    """The nest target's defaults, emitted, its run.py started on ``data`` with one thread."""
    compiled, row = compile_timed(model, "nest", calib, {})
    out = folder / "resnet-nest"
    compiled.emit(out)
    cmd = script(out, data, samples, "--threads", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return {"proc": proc, "out": out, "graph": compiled.graph, "compile": row, "start": time.perf_counter()}


def finish_nest(run: dict, x: np.ndarray, y: np.ndarray, framework: float) -> dict:
    """NEST's accuracy and loss, and the reference simulator on the same compiled graph and images
    (bench_networks' row, with this compile's pass times)."""
    return {"compile": run["compile"], **networks_finish_nest({**run, "compile_s": None}, x, y, framework)}


def sim_runs(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, framework: float, args) -> list[dict]:
    """sim at each presentation time: the compile and the reference simulator's accuracy and loss."""
    runs = []
    for ms in args.presentations:
        compiled, row = compile_timed(model, "sim", calib, {"presentation-time": str(ms)})
        start = time.perf_counter()
        accuracy = float(np.mean(simulate(compiled.graph, x).predictions == y))
        row |= {"presentation_ms": ms, "dt_ms": float(compiled.graph.attrs["dt"]), "accuracy": accuracy}
        runs.append(row | {"loss_points": 100 * (framework - accuracy), "simulate_s": time.perf_counter() - start})
    return runs


def reset_zero(model: Path, calib: dict, x: np.ndarray, y: np.ndarray, logits: np.ndarray) -> dict:
    """sim at 200 ms with SpiNNaker's reset to zero instead of by subtraction: what the hard reset costs."""
    settings = {"presentation-time": "200", "reset": "zero"}
    compiled, row = compile_timed(model, "sim", calib, settings)
    start = time.perf_counter()
    accuracy = float(np.mean(simulate(compiled.graph, x).predictions == y))
    framework = float(np.mean(logits[: len(y)].argmax(1) == y))
    row |= {"samples": len(y), "framework_accuracy": framework, "accuracy": accuracy}
    return row | {"loss_points": 100 * (framework - accuracy), "simulate_s": time.perf_counter() - start}


def virtual_board(out: Path, data: Path, folder: Path) -> dict:
    """sPyNNaker's mapping of the emitted network on a virtual SpiNN-5 board (HOME with its own .spynnaker.cfg)."""
    home = folder / "home"
    home.mkdir(exist_ok=True)
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    start = time.perf_counter()
    proc = subprocess.Popen(
        script(out, data, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(home)},
    )
    try:
        results_of(proc, out)
        placements = json.loads((out / "placements.json").read_text())
        row = {"maps": True, "placed_cores": len(placements["cores"])}
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        row = {"maps": False, "why": str(exc)}
    return row | {"seconds": time.perf_counter() - start}


def spinnaker_row(
    model: Path, calib: dict, x: np.ndarray, y: np.ndarray, logits: np.ndarray, args, folder: Path
) -> dict:
    """The spinnaker compile, its core plan, the quantized graph on the reference simulator (first
    ``--spinnaker-samples`` images), emit and mapping."""
    compiled, row = compile_timed(model, "spinnaker", calib, {})
    if compiled is None:
        return row
    report = compiled.target.report(compiled.graph, compiled.calibration) or {}
    row |= {k: report[k] for k in ("cores", "application_cores", "instances") if k in report}
    x, y = x[: args.spinnaker_samples], y[: args.spinnaker_samples]
    framework = float(np.mean(logits[: len(y)].argmax(1) == y))
    start = time.perf_counter()
    accuracy = float(np.mean(simulate(compiled.graph, x, chains=args.chains).predictions == y))
    row |= {
        "samples": len(y),
        "framework_accuracy": framework,
        "presentation_ms": float(compiled.graph.attrs["presentation_time"]),
        "pause_ms": float(compiled.graph.attrs.get("pause", 0.0)),
        "accuracy": accuracy,
        "loss_points": 100 * (framework - accuracy),
        "simulate_s": time.perf_counter() - start,
    }
    out = folder / "resnet-spinnaker"
    row["emit"] = emit_timed(compiled, out)
    if row["emit"]["emits"] and not args.quick:
        row["virtual_board"] = virtual_board(out, folder / "resnet-test.npz", folder)
    return row


def fashion(args, folder: Path) -> dict:
    """Part 1: the Fashion-MNIST ResNet."""
    model = EXAMPLE / "resnet.onnx"
    x, y = load_dataset("fashion-mnist:test")
    x, y = x[: args.samples], y[: args.samples]
    calib = dict(np.load(EXAMPLE / "calibration.npz"))
    theirs = onnxruntime_logits(model, x)
    ours = snnc_outputs(snnc.load(model), x)["logits"]
    framework = float(np.mean(theirs.argmax(1) == y))
    row: dict = {"model": str(model.relative_to(ROOT)), "samples": len(x), "onnxruntime_accuracy": framework}
    row["torch_test_accuracy_10k"] = json.loads((EXAMPLE / "metrics.json").read_text())["resnet"]["test_accuracy"]
    row["snnc_ann_accuracy"] = float(np.mean(ours.argmax(1) == y))
    row["ann_vs_onnxruntime"] = relative_difference(theirs, ours)
    n = args.nest_samples
    np.savez(folder / "resnet-test.npz", x=x[:n], y=y[:n])
    nest = start_nest(model, calib, folder / "resnet-test.npz", n, folder)
    row["sim"] = sim_runs(model, calib, x, y, framework, args)
    row["spinnaker"] = spinnaker_row(model, calib, x, y, theirs, args, folder)
    row["sim_reset_zero"] = reset_zero(model, calib, x[: args.spinnaker_samples], y[: args.spinnaker_samples], theirs)
    row["nest"] = finish_nest(nest, x[:n], y[:n], float(np.mean(theirs[:n].argmax(1) == y[:n])))
    return row


def boards_needed(error: str) -> int | None:
    """The SpiNN-5 boards a 'needs N cores; ... = M cores) has too few' refusal asks for."""
    need, have = re.search(r"needs (\d+) cores", error), re.search(r"= (\d+) cores\)", error)
    return math.ceil(int(need[1]) / int(have[1])) if need and have else None


def resnet18_rows(args, folder: Path) -> dict:
    """Part 2: ResNet-18 compiled (and emitted) for every target."""
    model = folder / "resnet18.onnx"
    start = time.perf_counter()
    parameters = export_resnet18(model)
    result: dict = {"parameters": parameters, "input_shape": [3, 32, 32], "export_s": time.perf_counter() - start}
    calib = {"x": np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32)}
    rows = []
    for target in args.targets:
        compiled, row = compile_timed(model, target, calib, {})
        boards = boards_needed(row.get("error", "")) if target == "spinnaker" else None
        if boards:
            rows.append(row)
            compiled, row = compile_timed(model, target, calib, {"boards": str(boards)})
        if compiled is not None:
            report = compiled.target.report(compiled.graph, compiled.calibration) or {}
            row |= {k: report[k] for k in ("cores", "application_cores", "instances") if k in report}
            if not args.quick:
                row["emit"] = emit_timed(compiled, folder / f"resnet18-{target}-{len(rows)}")
        rows.append(row)
        print(
            f"resnet18 {target}: {'compiled' if row['compiles'] else row['error']} ({row['seconds']:.1f} s)", flush=True
        )
    return result | {"calibration": "16 uniform random images in [0, 1) (seed 0)", "rows": rows}


def pass_cell(passes: list[dict]) -> str:
    return ", ".join(f"{p['pass']} {p['seconds']:.2f}" + (" (failed)" if p["ops"] < 0 else "") for p in passes)


def accuracy_table(row: dict) -> str:
    """The Fashion-MNIST ResNet: accuracy and loss per target."""
    diff = row["ann_vs_onnxruntime"]
    lines = [
        "| run | images | accuracy | loss (points) | compile s | run s |",
        "|---|---|---|---|---|---|",
        f"| onnxruntime | {row['samples']} | {row['onnxruntime_accuracy']:.2%} | - | - | - |",
        f"| snnc ANN (max abs diff {diff['max_abs']:.1e}, rel. {diff['relative']:.1e}) | {row['samples']} "
        f"| {row['snnc_ann_accuracy']:.2%} | {100 * (row['onnxruntime_accuracy'] - row['snnc_ann_accuracy']):+.1f} "
        "| - | - |",
    ]
    for s in row["sim"]:
        lines.append(
            f"| sim {s['presentation_ms']:g} ms, dt {s['dt_ms']:g} | {row['samples']} | {s['accuracy']:.2%} "
            f"| {s['loss_points']:+.1f} | {s['seconds']:.1f} | {s['simulate_s']:.1f} |"
        )
    zero = row["sim_reset_zero"]
    lines.append(
        f"| sim 200 ms, reset to zero (as SpiNNaker's cells, v_reset 0) | {zero['samples']} | {zero['accuracy']:.2%} "
        f"| {zero['loss_points']:+.1f} | {zero['seconds']:.1f} | {zero['simulate_s']:.1f} |"
    )
    nest = row["nest"]
    if "accuracy" in nest:
        lines.append(
            f"| NEST {nest['presentation_ms']:g} ms (sim on its graph {nest['sim_on_nest_graph_accuracy']:.0%}) "
            f"| {nest['samples']} | {nest['accuracy']:.0%} | {nest['loss_points']:+.1f} "
            f"| {nest['compile']['seconds']:.1f} | {nest['run_s']:.1f} |"
        )
    else:
        lines.append(f"| NEST: {nest['error']} | {nest['samples']} | - | - | {nest['compile']['seconds']:.1f} | - |")
    spin = row["spinnaker"]
    if spin["compiles"]:
        emit = spin["emit"]
        where = f"{spin.get('cores', '?')} cores; " + ("emits" if emit["emits"] else emit["error"])
        if "virtual_board" in spin:
            board = spin["virtual_board"]
            where += "; maps on a virtual board" if board["maps"] else f"; does not map: {board['why']}"
        lines.append(
            f"| SpiNNaker simulated model, {spin['presentation_ms']:g} ms + {spin['pause_ms']:g} ms pause ({where}) "
            f"| {spin['samples']} | {spin['accuracy']:.2%} | {spin['loss_points']:+.1f} | {spin['seconds']:.1f} "
            f"| {spin['simulate_s']:.1f} |"
        )
    else:
        lines.append(f"| SpiNNaker: {spin['error']} | - | - | - | {spin['seconds']:.1f} | - |")
    return "\n".join(lines)


def compile_table(rows: list[dict]) -> str:
    """One row per compile: the result, the total and each pass's seconds."""
    lines = ["| model | target | result | compile s | passes (s) | emit |", "|---|---|---|---|---|---|"]
    for model, row in rows:
        settings = "".join(f" --set {k}={v}" for k, v in row["settings"].items())
        result = row.get("error", "")
        if row["compiles"]:
            result = f"{row['ops']} ops" + (f", {row['cores']} cores" if "cores" in row else "")
        emit = row.get("emit")
        emitted = (
            "-"
            if emit is None
            else (f"{emit['seconds']:.1f} s, {emit['megabytes']:.0f} MB" if emit["emits"] else emit["error"])
        )
        lines.append(
            f"| {model} | {row['target']}{settings} | {result} | {row['seconds']:.1f} | {pass_cell(row['passes'])} "
            f"| {emitted} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--samples", type=int, default=1000, help="test images for onnxruntime, the ANN, sim, SpiNNaker"
    )
    parser.add_argument("--nest-samples", type=int, default=100, help="test images NEST runs (seconds each)")
    parser.add_argument(
        "--spinnaker-samples",
        type=int,
        default=300,
        help="test images for the SpiNNaker model and sim with reset to zero",
    )
    parser.add_argument("--presentations", default="100,200", help="sim presentation times (ms)")
    parser.add_argument("--chains", type=int, default=100, help="parallel back-to-back sequences for SpiNNaker")
    parser.add_argument("--targets", default=None, help=f"ResNet-18's targets (default {','.join(TARGETS)})")
    parser.add_argument(
        "--quick", action="store_true", help="100 images, NEST on 5, no virtual board or ResNet-18 emit"
    )
    args = parser.parse_args()
    if args.quick:
        args.samples, args.nest_samples = min(args.samples, 100), min(args.nest_samples, 2)
        args.spinnaker_samples = min(args.spinnaker_samples, 50)
    args.presentations = [float(ms) for ms in args.presentations.split(",")]
    args.targets = args.targets.split(",") if args.targets else list(TARGETS)
    torch.set_num_threads(2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        resnet = fashion(args, Path(tmp))
        print(json.dumps(resnet), flush=True)
        big = resnet18_rows(args, Path(tmp))
    parts = (*resnet["sim"], resnet["sim_reset_zero"], resnet["nest"]["compile"], resnet["spinnaker"])
    compiles = [("resnet", r) for r in parts]
    compiles += [("resnet18", r) for r in big["rows"]]
    print(accuracy_table(resnet))
    print()
    print(compile_table(compiles))
    results = {
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "note": (
            "loss: points below onnxruntime on the same images. SpiNNaker accuracy: the quantized spinnaker graph on "
            "snnc's reference simulator (a virtual board maps but does not spike). Compile times from the pipeline's "
            "PassRecords on a shared CPU"
        ),
        "quick": args.quick,
        "total_s": time.perf_counter() - started,
        "resnet": resnet,
        "resnet18": big,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
