"""snnc's simulator on a GPU (``simulate(device="cuda")``) against its host path on the same
machine and against SpikingJelly's converted network on the same GPU.

    python benchmarks/bench_gpu.py prepare DIR   # here: compile the graphs, copy the images
    python benchmarks/bench_gpu.py run DIR       # on a machine with a GPU: writes DIR/gpu.json

``prepare`` compiles the Fashion-MNIST example networks for target sim (T = 32 and 100, the
calibration images of bench_peer) and writes them with the test images to DIR, so the GPU
machine only loads and simulates them (the compile is the host's, byte for byte). ``run`` measures,
side by side on that machine (medians of ``--reps`` interleaved runs after one warm-up):

- samples/s of snnc on the GPU at several batches, of snnc's host path (its default batch, the
  machine's CPU threads) and of SpikingJelly 2.0's ann2snn network on the GPU (same calibration
  images, 99.9% scaling) at several batches;
- the GPU's float32 GEMM rate (TF32 off, as snnc runs) and the share of that bound snnc reaches;
- accuracy on all test images on the GPU and in host memory, and how many predictions differ.

The results land in benchmarks/results/gpu.json (copied from DIR by hand: the GPU machine is
another machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from bench_peer import DATA, machine_info, sj_convert, sj_run, snnc_graph, synaptic_macs, timed, torch_model

from snnc.ir import load, save
from snnc.ir.semantics.simulator import simulate

MODELS, STEPS = ("mlp", "cnn"), (32, 100)
GPU_BATCHES, SJ_BATCHES = (1024, 4096, 8192), (250, 1024, 4096)
HOST_SAMPLES = 2048


def prepare(folder: Path) -> None:
    """The compiled graphs (``{model}_T{steps}.snnir``), the calibration and the test images."""
    folder.mkdir(parents=True, exist_ok=True)
    calib = np.load(DATA / "calib.npz")["x"]
    for name in MODELS:
        for t in STEPS:
            save(snnc_graph(name, calib, t), folder / f"{name}_T{t}.snnir")
            save(snnc_graph(name, calib, t, **{"fold-pooling": "false"}), folder / f"{name}_T{t}_unfolded.snnir")
    shutil.copy(DATA / "calib.npz", folder / "calib.npz")
    test = np.load(DATA / "test.npz")
    np.savez_compressed(folder / "test.npz", x=test["x"], y=test["y"])
    print(f"wrote {folder}")


def sj_predict(snn: torch.nn.Module, x: np.ndarray, steps: int, batch: int, device: str) -> np.ndarray:
    """SpikingJelly's predictions after ``steps`` steps on ``device`` (bench_peer's run; reading
    them back waits for the GPU, so a timed call covers its work)."""
    return sj_run(snn, x, steps, batch, (steps,), device)[steps]


def gemm_on(device: str, size: int = 8192, reps: int = 10) -> float:
    """float32 FLOP/s of one matrix product on ``device`` without TF32 (how snnc runs)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)

    def product() -> None:
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    product()

    return 2.0 * size**3 / min(timed(product) for _ in range(reps))


def sj_exact(snn, x: np.ndarray, steps: int, batch: int, device: str) -> np.ndarray:
    """:func:`sj_predict` with float32 convolutions (cuDNN's TF32 off, as snnc runs)."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        return sj_predict(snn, x, steps, batch, device)


def speeds(graph, snn, x: np.ndarray, steps: int, reps: int, device: str) -> tuple[dict, dict]:
    """Samples/s (median) and the seconds of each run, per (tool, where, batch). SpikingJelly runs
    with PyTorch's defaults (TF32 convolutions on a GPU) and with float32 convolutions
    ("spikingjelly-fp32"); snnc's host path on the first HOST_SAMPLES images (it is slower)."""
    runs = {("snnc", "host", 256): (lambda: simulate(graph, x[:HOST_SAMPLES]), min(len(x), HOST_SAMPLES))}
    for b in GPU_BATCHES:
        runs["snnc", "gpu", b] = (lambda b=b: simulate(graph, x, device=device, batch_size=b), len(x))
    for b in SJ_BATCHES:
        runs["spikingjelly", "gpu", b] = (lambda b=b: sj_predict(snn, x, steps, b, device), len(x))
        runs["spikingjelly-fp32", "gpu", b] = (lambda b=b: sj_exact(snn, x, steps, b, device), len(x))
    for f, _ in runs.values():  # warm-up: cuDNN's plans, the allocator
        f()
    seconds: dict = {k: [] for k in runs}
    for _ in range(reps):
        for k, (f, _) in runs.items():
            seconds[k].append(timed(f))
    return {k: runs[k][1] / statistics.median(v) for k, v in seconds.items()}, seconds


def measure(folder: Path, name: str, t: int, snn, test, reps: int, speed_samples: int, device: str, gemm: float):
    """One network at ``t`` steps: the speeds side by side and the accuracies on all test images."""
    graph = load(folder / f"{name}_T{t}.snnir")
    x = test["x"].reshape(len(test["x"]), *graph.shape(graph.ops_of("snn.source")[0])).astype(np.float32)
    rate, seconds = speeds(graph, snn, x[:speed_samples], t, reps, device)
    best = {
        tool: max((k for k in rate if k[0] == tool and k[1] == "gpu"), key=rate.get)
        for tool in ("snnc", "spikingjelly", "spikingjelly-fp32")
    }
    on_gpu = simulate(graph, x, device=device, batch_size=best["snnc"][2])
    on_host = simulate(graph, x)
    sj = sj_predict(snn, x, t, best["spikingjelly"][2], device)
    bound = gemm / (2.0 * synaptic_macs(load(folder / f"{name}_T{t}_unfolded.snnir")) * t)
    label = {k: f"{k[0]} {k[1]} batch {k[2]}" for k in rate}
    return {
        "model": name,
        "steps": t,
        "speed_samples": min(speed_samples, len(x)),
        "samples_per_second": {label[k]: v for k, v in rate.items()},
        "runs_seconds": {label[k]: v for k, v in seconds.items()},
        "snnc_gpu_best_batch": best["snnc"][2],
        "spikingjelly_gpu_best_batch": best["spikingjelly"][2],
        "spikingjelly_fp32_gpu_best_batch": best["spikingjelly-fp32"][2],
        "snnc_gpu_over_spikingjelly_gpu": rate[best["snnc"]] / rate[best["spikingjelly"]],
        "snnc_gpu_over_spikingjelly_fp32_gpu": rate[best["snnc"]] / rate[best["spikingjelly-fp32"]],
        "snnc_gpu_over_snnc_host": rate[best["snnc"]] / rate["snnc", "host", 256],
        "gpu_gemm_bound_samples_per_second": bound,
        "snnc_gpu_share_of_gemm_bound": rate[best["snnc"]] / bound,
        "accuracy_samples": len(x),
        "accuracy_snnc_gpu": float(np.mean(on_gpu.predictions == test["y"])),
        "accuracy_snnc_host": float(np.mean(on_host.predictions == test["y"])),
        "accuracy_spikingjelly_gpu": float(np.mean(sj == test["y"])),
        "predictions_differing_gpu_host": int(np.sum(on_gpu.predictions != on_host.predictions)),
    }


def profile(folder: Path, name: str, steps: int, test, batch: int, device: str) -> None:
    """Print where snnc's simulation of one batch spends the device's time (torch.profiler)."""
    from torch.profiler import ProfilerActivity

    graph = load(folder / f"{name}_T{steps}.snnir")
    x = test["x"][:batch].reshape(batch, *graph.shape(graph.ops_of("snn.source")[0])).astype(np.float32)
    simulate(graph, x, device=device, batch_size=batch)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof:
        simulate(graph, x, device=device, batch_size=batch)
    key = "cuda_time_total" if device == "cuda" else "cpu_time_total"
    print(f"{name} T={steps} batch {batch}:\n{prof.key_averages().table(sort_by=key, row_limit=14)}", flush=True)


def run(folder: Path, reps: int, speed_samples: int, device: str) -> dict:
    """The measurements above, with ``device`` as the GPU (``cpu``: a dry run of this script)."""
    calib = np.load(folder / "calib.npz")["x"]
    test = dict(np.load(folder / "test.npz"))
    gemm = gemm_on(device, 8192 if device == "cuda" else 1024)
    gpu = torch.cuda.get_device_name() if device == "cuda" else device
    print(f"{gpu}: float32 GEMM {gemm / 1e12:.1f} TFLOP/s (TF32 off)", flush=True)
    out: dict = {"gpu": gpu, "gpu_gemm_flops_per_second": gemm, "rows": []}
    for name in MODELS:
        snn = sj_convert(torch_model(name), calib).to(device)
        for t in STEPS:
            row = measure(folder, name, t, snn, test, reps, speed_samples, device, gemm)
            out["rows"].append(row)
            rate = row["samples_per_second"]
            snnc_gpu = rate["snnc gpu batch {}".format(row["snnc_gpu_best_batch"])]
            sj_gpu = rate["spikingjelly gpu batch {}".format(row["spikingjelly_gpu_best_batch"])]
            sj_fp32 = rate["spikingjelly-fp32 gpu batch {}".format(row["spikingjelly_fp32_gpu_best_batch"])]
            print(
                f"{name} T={t:<3} samples/s: snnc GPU {snnc_gpu:.0f}, SJ GPU {sj_gpu:.0f} (fp32 {sj_fp32:.0f}), "
                f"snnc host {rate['snnc host batch 256']:.0f}; snnc/SJ {row['snnc_gpu_over_spikingjelly_gpu']:.2f}x, "
                f"{100 * row['snnc_gpu_share_of_gemm_bound']:.1f}% of the GEMM bound; accuracy snnc GPU "
                f"{row['accuracy_snnc_gpu']:.4f}, host {row['accuracy_snnc_host']:.4f}, SJ "
                f"{row['accuracy_spikingjelly_gpu']:.4f} ({row['predictions_differing_gpu_host']} predictions differ)",
                flush=True,
            )
    out["machine"] = machine_info()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("prepare", "run"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--reps", type=int, default=3, help="interleaved runs (median)")
    parser.add_argument("--speed-samples", type=int, default=8192, help="test images per throughput run")
    parser.add_argument("--device", default="cuda", help="the GPU (cpu: a dry run of the script)")
    parser.add_argument("--profile", type=int, metavar="BATCH", help="also profile snnc's T = 32 runs at this batch")
    args = parser.parse_args()
    if args.stage == "prepare":
        prepare(args.folder)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu.py run: torch sees no GPU here")
    torch.set_num_threads(os.cpu_count())
    if args.profile:
        for name in MODELS:
            profile(args.folder, name, 32, dict(np.load(args.folder / "test.npz")), args.profile, args.device)
    result = run(args.folder, args.reps, args.speed_samples, args.device)
    (args.folder / "gpu.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"saved {args.folder / 'gpu.json'}")


if __name__ == "__main__":
    main()
