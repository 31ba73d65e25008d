"""The run report: ``out/report.md`` and PNG plots under ``out/plots/`` after ``snnc run``.

Reads ``out/outputs.npz`` (what the target's run recorded) and ``out/model.snnir``. The
reference simulator records everything: readout counts over simulated time, output spikes of a
few samples, spike counts of every neuron. NEST and SpiNNaker record the readout counts, so
their reports have the confusion matrix; a virtual SpiNNaker board records nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Optional, Union

import numpy as np

from snnc.ir import load

CORRELATION_SAMPLES = 200  # samples for the spike-rate vs ANN-activation plot


def write_file(path: Path, content: Union[str, bytes, Callable[[IO[bytes]], None]]) -> Path:
    """Write ``path`` by writing a new file beside it and renaming it over the old name, so that
    a symbolic or hard link planted at ``path`` is replaced, never written through. ``content`` is
    text (UTF-8), bytes, or a function that writes to a binary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:  # x: never an existing file, nor through a link
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_over_time(over_time: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Accuracy at each recorded time; a sample whose readout is still all zero counts as wrong."""
    answered = over_time.max(axis=2) > 0
    return ((over_time.argmax(axis=2) == labels[None, :]) & answered).mean(axis=1)


def layer_rates(out: Path, outputs: Any, x: Optional[np.ndarray]) -> list[dict[str, Any]]:
    """Per population: neurons, spikes per sample, mean rate (Hz), and the correlation of each
    neuron's spike rate with its normalized ANN activation (the rate model) on a few samples."""
    if "populations" not in outputs.files:
        return []
    from snnc.ir.semantics.rates import rates

    graph = load(out / "model.snnir")
    duration, dt = float(graph.attrs["presentation_time"]), float(graph.attrs["dt"])
    n = min(CORRELATION_SAMPLES, len(outputs["labels"]))
    expected = rates(graph, x[:n]) if x is not None else {}
    layers = []
    for i, pop in enumerate(outputs["populations"]):
        counts = outputs[f"spikes_{i}"].astype(np.float64)
        entry = {
            "id": str(pop),
            "neurons": counts.shape[1],
            "spikes_per_sample": float(counts.sum(axis=1).mean()),
            "rate_hz": float(counts.mean() / duration * 1000.0),
        }
        if str(pop) in expected:
            snn = counts[:n] / duration  # spikes per ms
            ann = np.minimum(expected[str(pop)], 1.0 / dt)
            ok = np.std(snn) > 0 and np.std(ann) > 0
            entry["correlation"] = float(np.corrcoef(snn.ravel(), ann.ravel())[0, 1]) if ok else None
            entry["_pairs"] = (ann.ravel(), snn.ravel())
        layers.append(entry)
    return layers


def _save(fig: Any, path: Path) -> None:
    write_file(path, lambda f: fig.savefig(f, dpi=100, format="png"))


def _plot_accuracy(plt, outputs, results, path: Path) -> None:
    acc = accuracy_over_time(outputs["over_time"], outputs["labels"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(outputs["over_time_ms"], 100 * acc, label="SNN")
    if results.get("ann_accuracy") is not None:
        ax.axhline(100 * results["ann_accuracy"], color="k", linestyle="--", label="ANN")
    ax.set(
        xlabel="simulated time (ms)",
        ylabel="accuracy (%)",
        ylim=(0, 100),
        title=f"Accuracy over simulated time ({len(outputs['labels'])} samples)",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_raster(plt, outputs, path: Path) -> None:
    raster, dt = outputs["raster"], float(outputs["dt"])
    k = min(int(raster[:, 1].max(initial=-1)) + 1, len(outputs["labels"])) if len(raster) else 0
    k = max(k, 1)
    fig, axes = plt.subplots(1, k, figsize=(3 * k, 3), sharey=True, squeeze=False)
    n_out = outputs["readout"].shape[1]
    for s, ax in enumerate(axes[0]):
        rows = raster[raster[:, 1] == s]
        ax.scatter((rows[:, 0] + 1) * dt, rows[:, 2], marker="|", s=30)
        ax.set(
            xlabel="time (ms)",
            ylim=(-0.5, n_out - 0.5),
            title=f"sample {s}: label {outputs['labels'][s]}, says {outputs['predictions'][s]}",
        )
    axes[0][0].set_ylabel("output neuron")
    fig.suptitle("Output-layer spike raster")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_confusion(plt, outputs, path: Path) -> None:
    labels, predictions = outputs["labels"], outputs["predictions"]
    n = int(max(labels.max(), predictions.max())) + 1
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    image = ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(
                j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > matrix.max() / 2 else "black"
            )
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix", xticks=range(n), yticks=range(n))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_rates(plt, layers, path: Path) -> None:
    shown = [layer for layer in layers if "_pairs" in layer][:6]
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.5 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, layer in zip(axes.ravel(), shown, strict=False):
        ann, snn = layer["_pairs"]
        pick = rng.choice(len(ann), min(len(ann), 5000), replace=False)
        ax.scatter(ann[pick], snn[pick], s=3, alpha=0.3)
        top = max(float(ann.max(initial=0)), float(snn.max(initial=0)), 1e-3)
        ax.plot([0, top], [0, top], "k--", linewidth=0.8)
        r = layer.get("correlation")
        ax.set(
            xlabel="ANN activation (normalized, per ms)",
            ylabel="SNN spike rate (per ms)",
            title=f"{layer['id'][:28]}  r = {r:.3f}" if r is not None else layer["id"][:28],
        )
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    fig.suptitle("Spike rate against ANN activation, per layer")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_spikes(plt, layers, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(len(layers)), [layer["spikes_per_sample"] for layer in layers])
    ax.set_xticks(range(len(layers)), [layer["id"][:16] for layer in layers], rotation=30, ha="right")
    ax.set(ylabel="spikes per sample", title="Spikes per layer (mean over samples)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def write_run_report(out: Path, results: dict[str, Any], x: Optional[np.ndarray] = None) -> list[str]:
    """Write ``out/report.md`` and the plots the recorded outputs allow; returns the plot files."""
    out = Path(out)
    plots_dir = out / "plots"
    lines = [f"# Run report: {results['target']}", "", "| | |", "|---|---|"]
    for key in (
        "samples",
        "accuracy",
        "ann_accuracy",
        "spikes_per_sample",
        "simulated_time_ms",
        "dt",
        "wall_time_s",
        "samples_per_second",
        "data",
    ):
        if results.get(key) is not None:
            value = results[key]
            lines.append(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")
    outputs_path = out / "outputs.npz"
    if not outputs_path.is_file():
        lines += ["", "The run recorded no spikes (a virtual board maps but does not run), so there are no plots."]
        write_file(out / "report.md", "\n".join(lines) + "\n")
        return []
    try:
        plt = _plt()
    except ImportError:
        lines += ["", "Plots need matplotlib (pip install matplotlib)."]
        write_file(out / "report.md", "\n".join(lines) + "\n")
        return []
    plots_dir.mkdir(exist_ok=True)
    made = []
    with np.load(outputs_path, allow_pickle=False) as outputs:
        layers = layer_rates(out, outputs, x)
        jobs = [("confusion.png", "Confusion matrix", lambda p: _plot_confusion(plt, outputs, p))]
        if "over_time" in outputs.files:
            jobs.insert(
                0,
                (
                    "accuracy_over_time.png",
                    "Accuracy over simulated time",
                    lambda p: _plot_accuracy(plt, outputs, results, p),
                ),
            )
        if "raster" in outputs.files and len(outputs["raster"]):
            jobs.append(("output_raster.png", "Output-layer spike raster", lambda p: _plot_raster(plt, outputs, p)))
        if any("_pairs" in layer for layer in layers):
            jobs.append(("rate_vs_ann.png", "Spike rate against ANN activation", lambda p: _plot_rates(plt, layers, p)))
        if layers:
            jobs.append(("spikes_per_layer.png", "Spikes per layer", lambda p: _plot_spikes(plt, layers, p)))
        for name, title, draw in jobs:
            draw(plots_dir / name)
            made.append(name)
            lines += ["", f"## {title}", "", f"![{title}](plots/{name})"]
    if layers:
        header = "| population | neurons | spikes per sample | mean rate (Hz) | r (rate vs ANN) |"
        lines += ["", "## Layers", "", header, "|---|---|---|---|---|"]
        for layer in layers:
            r = layer.get("correlation")
            lines.append(
                f"| {layer['id']} | {layer['neurons']} | {layer['spikes_per_sample']:.1f} | "
                f"{layer['rate_hz']:.1f} | {'' if r is None else f'{r:.3f}'} |"
            )
        summary = [{k: v for k, v in layer.items() if not k.startswith("_")} for layer in layers]
        write_file(out / "layers.json", json.dumps(summary, indent=2) + "\n")
    write_file(out / "report.md", "\n".join(lines) + "\n")
    return made
