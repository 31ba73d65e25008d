"""snnc against a peer converter: SpikingJelly's ann2snn on the same trained ANN and data.

    make peer-bench        # installs SpikingJelly (no dependencies: its torchvision/torchaudio
                           # requirements would replace the CPU torch) and runs this script

The Fashion-MNIST example networks (examples/fashion_mnist, the PyTorch modules of train.py
with the weights of the ONNX files) are converted by SpikingJelly 2.0 (FXConverter with a
RateCodingRecipe, 99.9th-percentile scaling, IF neurons with reset by subtraction, analog input
every step) and by snnc (target sim with its defaults) with the same calibration images, on the
first test images. Side by side, in one run:

- accuracy at T = 8, 16, 32, 64, 100 (and the ANN's), with the images only one tool gets right
  and the exact McNemar test's p-value of the difference, and on how many images snnc given
  SpikingJelly's settings (its scales, neurons starting at 0) predicts what SpikingJelly does;
- throughput (samples/s) at T = 32 and 100, at each tool's default batch and at its best batch
  (the fastest of a small sweep), medians of ``--reps`` interleaved runs;
- the GEMM bound: this machine's float32 matrix-product rate (torch) against the network's
  synaptic multiply-adds per sample and step (snnc's graph) x T, and the share of it snnc reaches;
- the machine and its BLAS (numpy.show_config, torch.__config__).

Ratios snnc/SpikingJelly are printed and saved with the rest to benchmarks/results/peer.json.
``--nest`` adds snnc's network on NEST at 100 steps (slow: minutes for the CNN). ``--parts
accuracy`` or ``--parts throughput`` measures one part and keeps the other from the saved results
(accuracy does not depend on the machine's load; throughput wants a quiet machine).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

import snnc
from snnc.ir.semantics.connectivity import synapse_bound
from snnc.ir.semantics.simulator import simulate
from snnc.targets.base import CONVERSION_PIPELINE

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "fashion_mnist"
DATA = ROOT / "data" / "fashion-mnist"
RESULTS = ROOT / "benchmarks" / "results" / "peer.json"
STEPS = 100  # NEST
ACCURACY_STEPS = (8, 16, 32, 64, 100)
SPEED_STEPS = (32, 100)
SJ_BATCH, SNNC_BATCH = 250, 256  # the defaults: this script's for SpikingJelly, simulate's
BATCHES = (64, 256, 1000)  # the sweep for the best batch


def train_module():
    """examples/fashion_mnist/train.py as a module: the networks, their training and export."""
    spec = importlib.util.spec_from_file_location("fashion_mnist_train", EXAMPLES / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_model(name: str) -> torch.nn.Module:
    """The example network as PyTorch built it, with the exported weights (same parameter names)."""
    net = getattr(train_module(), name)()
    initializers = onnx.load(EXAMPLES / f"{name}.onnx").graph.initializer
    net.load_state_dict({i.name: torch.tensor(numpy_helper.to_array(i)) for i in initializers})
    return net.eval()


def sj_convert(net: torch.nn.Module, calib: np.ndarray) -> torch.nn.Module:
    """SpikingJelly's ann2snn of ``net`` with the calibration images, 99.9% mode."""
    from spikingjelly.activation_based import ann2snn

    loader = [torch.tensor(calib[i : i + 100]) for i in range(0, len(calib), 100)]
    recipe = ann2snn.RateCodingRecipe(dataloader=loader, mode="99.9%")
    return ann2snn.FXConverter(recipe=recipe, device="cpu").convert(net)


def sj_run(
    snn: torch.nn.Module, x: np.ndarray, steps: int, batch: int, at: tuple[int, ...] = (), device: str = "cpu"
) -> dict[int, np.ndarray]:
    """Predictions after each step count in ``at`` (outputs summed over the steps so far), with
    the network and the samples on ``device``."""
    from spikingjelly.activation_based import functional

    preds: dict[int, list] = {t: [] for t in at}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            functional.reset_net(snn)
            b = torch.from_numpy(x[i : i + batch]).to(device)
            out = None
            for t in range(1, steps + 1):
                y = snn(b)
                out = y if out is None else out + y
                if t in preds:
                    preds[t].append(out.argmax(1).cpu().numpy())
    return {t: np.concatenate(p) for t, p in preds.items()}


def snnc_graph(model: str | Path, calib: np.ndarray, steps: int, **settings: str):
    """snnc's sim network of ``model`` (an example's name or an ONNX file) with its defaults (and
    ``settings``), presented for ``steps`` steps."""
    settings = {"presentation-time": str(steps), **settings}
    source = model if isinstance(model, Path) else EXAMPLES / f"{model}.onnx"
    return snnc.compile(source, "sim", calibration=calib, settings=settings).graph


def with_spikingjelly_settings(net: torch.nn.Module, snn: torch.nn.Module, calib: np.ndarray, steps: int, work: Path):
    """snnc's sim network with SpikingJelly's settings: each ReLU's scale read from ``snn`` (its
    converted network) folded into the weights of ``net`` (a copy), snnc's pipeline without its
    own normalize, neurons starting at 0. A cross-check of the two simulators: what is left
    between the two tools is their settings."""
    scales = [float(m.scale) for m in snn.modules() if type(m).__name__ == "VoltageScaler"][1::2]
    scaled = copy.deepcopy(net)
    weighted, carry = None, 1.0
    with torch.no_grad():
        for module in scaled:
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight *= carry
                weighted, carry = module, 1.0
            elif isinstance(module, torch.nn.ReLU):
                scale = scales.pop(0)
                weighted.weight /= scale
                weighted.bias /= scale
                carry = scale
    path = work / "spikingjelly_scaled.onnx"
    train_module().export(scaled, torch.from_numpy(calib[:1]), path)
    pipeline = CONVERSION_PIPELINE.replace(",normalize,", ",")
    settings = {"presentation-time": str(steps), "v-init": "0"}
    return snnc.compile(path, "sim", calibration=calib, settings=settings, pipeline=pipeline).graph


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def gemm_rate(size: int = 2048, reps: int = 5) -> dict:
    """float32 matrix products per second of this machine (torch, and numpy's BLAS): the best of ``reps``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    an, bn = a.numpy(), b.numpy()
    flops = 2.0 * size**3
    torch.mm(a, b)
    t_torch = min(timed(lambda: torch.mm(a, b)) for _ in range(reps))
    an @ bn
    t_numpy = min(timed(lambda: an @ bn) for _ in range(reps))
    return {"size": size, "torch_gflops": flops / t_torch / 1e9, "numpy_gflops": flops / t_numpy / 1e9}


def synaptic_macs(graph) -> int:
    """Multiply-adds of one step of one sample: every synapse of every projection once. Measured on
    the graph without folded pooling: a pool folded into the next convolution enlarges its kernel
    (3.6x the network's synapses on the example CNN), which would lower the bound."""
    return sum(synapse_bound(graph, p) for p in graph.ops_of("snn.projection"))


def executed_macs(graph, steps: int) -> float:
    """Multiply-adds per step that snnc's simulator performs: projections out of a current source
    once per sample (their input is constant), a convolution with a pooled (block-constant)
    kernel at its small kernel (block sums are additions)."""
    from snnc.ir.semantics.connectivity import from_current_source
    from snnc.ir.semantics.simulator import _pooled_kernel

    total = 0.0
    for p in graph.ops_of("snn.projection"):
        op, macs = graph.op(p), float(synapse_bound(graph, p))
        if op.connectivity == "conv" and _pooled_kernel(graph.tensor(op.weight), op.strides, op.dilations) is not None:
            macs /= op.strides[0] * op.strides[1]
        total += macs / steps if from_current_source(graph, p) else macs
    return total


def accuracy(
    name: str, net: torch.nn.Module, calib: np.ndarray, x: np.ndarray, y: np.ndarray, onnx_file: Path | None = None
) -> list[dict]:
    """Both tools' accuracy at every T of ACCURACY_STEPS on ``net`` (snnc reads it from
    ``onnx_file``, by default the example of that name), with the images only one gets right."""
    snn = sj_convert(net, calib)
    sj = sj_run(snn, x, max(ACCURACY_STEPS), SJ_BATCH, ACCURACY_STEPS)
    with torch.no_grad():
        ann = float(np.mean(net(torch.from_numpy(x)).argmax(1).numpy() == y))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in ACCURACY_STEPS:
            result = simulate(snnc_graph(onnx_file or name, calib, t), x)
            alike = simulate(with_spikingjelly_settings(net, snn, calib, t, Path(tmp)), x).predictions == sj[t]
            row = {
                "model": name,
                "steps": t,
                "ann": ann,
                "snnc": float(np.mean(result.predictions == y)),
                "spikingjelly": float(np.mean(sj[t] == y)),
                **paired(result.predictions == y, sj[t] == y),
                "same_predictions_with_spikingjelly_settings": int(alike.sum()),
            }
            rows.append(row)
            print(
                f"{name} T={t:<3} accuracy  ANN {ann:.4f}  snnc {row['snnc']:.4f}  SpikingJelly "
                f"{row['spikingjelly']:.4f}  (right only in snnc {row['snnc_only']}, only in SJ "
                f"{row['spikingjelly_only']}, McNemar p {row['mcnemar_p']:.2f}; with SJ's settings snnc predicts "
                f"as SJ on {int(alike.sum())} of {len(x)})",
                flush=True,
            )
    return rows


def paired(snnc_right: np.ndarray, sj_right: np.ndarray) -> dict:
    """The images only one tool classifies right, and the exact McNemar test's two-sided p-value
    of the difference (a binomial test on those images): how far the two accuracies are apart
    beyond the luck of which images sit on a decision boundary."""
    from scipy.stats import binomtest

    a, b = int(np.sum(snnc_right & ~sj_right)), int(np.sum(sj_right & ~snnc_right))
    p = binomtest(a, a + b, 0.5).pvalue if a + b else 1.0
    return {"snnc_only": a, "spikingjelly_only": b, "mcnemar_p": float(p)}


def throughput(name: str, net: torch.nn.Module, calib: np.ndarray, x: np.ndarray, reps: int, gemm: float) -> list[dict]:
    """Samples/s of both tools at their default and best batches, medians of interleaved runs; the
    GEMM rate is the median of ``gemm`` and one measurement between each round of runs."""
    snn = sj_convert(net, calib)
    rows = []
    for t in SPEED_STEPS:
        graph = snnc_graph(name, calib, t)
        runs = {
            "spikingjelly": lambda b, t=t: sj_run(snn, x, t, b),
            "snnc": lambda b, g=graph: simulate(g, x, batch_size=b),
        }
        sweep = {(tool, b): len(x) / timed(lambda f=f, b=b: f(b)) for tool, f in runs.items() for b in BATCHES}
        best = {tool: max(BATCHES, key=lambda b, tool=tool: sweep[tool, b]) for tool in runs}
        default = {"spikingjelly": SJ_BATCH, "snnc": SNNC_BATCH}
        samples: dict[tuple, list] = {}
        rates = []
        for _ in range(reps):
            measured = gemm_rate(size=1536, reps=3)  # the machine's rate now, between the runs
            rates.append(max(measured["torch_gflops"], measured["numpy_gflops"]) * 1e9)
            for kind, batches in (("default", default), ("best", best)):
                for tool, f in runs.items():
                    samples.setdefault((kind, tool), []).append(len(x) / timed(lambda f=f, b=batches[tool]: f(b)))
        gemm = statistics.median([gemm, *rates])
        macs = synaptic_macs(snnc_graph(name, calib, t, **{"fold-pooling": "false"}))
        bound = gemm / (2.0 * macs * t)
        executed = executed_macs(graph, t)
        for kind, batches in (("default", default), ("best", best)):
            sj = statistics.median(samples[kind, "spikingjelly"])
            sn = statistics.median(samples[kind, "snnc"])
            row = {
                "model": name,
                "steps": t,
                "batches": kind,
                "snnc_batch": batches["snnc"],
                "spikingjelly_batch": batches["spikingjelly"],
                "snnc_samples_per_second": sn,
                "spikingjelly_samples_per_second": sj,
                "runs": {tool: samples[kind, tool] for tool in runs},
                "gemm_flops_per_second": gemm,
                "snnc_over_spikingjelly": sn / sj,
                "synaptic_macs_per_step": macs,
                "gemm_bound_samples_per_second": bound,
                "snnc_share_of_gemm_bound": sn / bound,
                "executed_macs_per_step": executed,
                "snnc_share_of_executed_gemm_bound": sn * 2.0 * executed * t / gemm,
            }
            rows.append(row)
            print(
                f"{name} T={t:<3} {kind:<7} snnc {sn:9.1f}/s (batch {batches['snnc']})  SpikingJelly {sj:9.1f}/s "
                f"(batch {batches['spikingjelly']})  snnc/SJ {sn / sj:5.2f}x  GEMM bound {bound:9.1f}/s, "
                f"snnc at {100 * sn / bound:5.1f}% ({100 * sn * 2.0 * executed * t / gemm:5.1f}% of executed)",
                flush=True,
            )
    return rows


def machine_info() -> dict:
    import io
    from contextlib import redirect_stdout

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        np.show_config()
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "numpy_config": buffer.getvalue(),
        "torch_config": torch.__config__.show(),
        "load_average": list(os.getloadavg()),
    }


def snnc_nest(name: str, samples: int, work: Path) -> dict:
    """snnc's network on NEST with the nest target's defaults (reset by subtraction, T = 100)."""
    out = work / f"{name}-nest"
    cmd = [
        sys.executable,
        "-m",
        "snnc.cli",
        str(EXAMPLES / f"{name}.onnx"),
        "-t",
        "nest",
        "-o",
        str(out),
        "--calibration",
        str(DATA / "calib.npz"),
        "--data",
        str(DATA / "test.npz"),
        "--set",
        f"presentation-time={STEPS}",
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, str(out / "run.py"), "--samples", str(samples), "--no-ann"], check=True, capture_output=True
    )
    r = json.loads((out / "results.json").read_text())
    return {
        "tool": "snnc -> NEST 3 (eprop_iaf, reset by subtraction)",
        "accuracy": r["accuracy"],
        "samples": r["samples"],
        "samples_per_second": r["samples_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--samples", type=int, default=10000, help="test images for accuracy (on 1,000 a point is 10 images)"
    )
    parser.add_argument("--speed-samples", type=int, default=500, help="test images per throughput run")
    parser.add_argument("--reps", type=int, default=3, help="interleaved throughput runs (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (both tools)")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--nest", action="store_true", help="also run snnc's network on NEST at 100 steps")
    parser.add_argument("--nest-samples", default="mlp=1000,cnn=200")
    parser.add_argument(
        "--parts", default="accuracy,throughput", help="what to measure now; the rest is kept from the saved results"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    calib = np.load(DATA / "calib.npz")["x"]
    test = np.load(DATA / "test.npz")
    x, y = test["x"][: args.samples], test["y"][: args.samples]
    load_start = list(os.getloadavg())
    gemm = gemm_rate()
    print(f"GEMM: torch {gemm['torch_gflops']:.1f} GFLOP/s, numpy {gemm['numpy_gflops']:.1f} GFLOP/s", flush=True)
    rate = max(gemm["torch_gflops"], gemm["numpy_gflops"]) * 1e9
    out: dict = {"accuracy": [], "throughput": [], "nest": [], "machine_of": {}}
    if parts != {"accuracy", "throughput"} and RESULTS.exists():
        saved = json.loads(RESULTS.read_text())
        out |= {k: saved[k] for k in ("accuracy", "throughput", "machine_of") if k in saved}
    for part in parts & {"accuracy", "throughput"}:
        out[part] = []
        out["machine_of"][part] = {**machine_info(), "load_average_at_start": load_start}
    for name in args.models.split(","):
        net = torch_model(name)
        if "accuracy" in parts:
            out["accuracy"] += accuracy(name, net, calib, x, y)
        if "throughput" in parts:
            out["throughput"] += throughput(name, net, calib, x[: args.speed_samples], args.reps, rate)
    if args.nest:
        nest_samples = {k: int(v) for k, v in (item.split("=") for item in args.nest_samples.split(","))}
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models.split(","):
                row = snnc_nest(name, nest_samples[name], Path(tmp))
                row.update(model=name, steps=STEPS)
                out["nest"].append(row)
                print(
                    f"{name} NEST accuracy {row['accuracy']:.4f}, {row['samples_per_second']:.2f} samples/s", flush=True
                )
    out["machine"] = {**machine_info(), "load_average_at_start": load_start}
    out["gemm"] = gemm
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
