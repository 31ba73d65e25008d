"""Target ``sim``: emit a run script for the reference simulator, and run it in-process."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from snnc.ir import Graph, graph_number, load
from snnc.ir.runtime import load_data, to_model_layout
from snnc.ir.semantics.simulator import resolve_device, simulate
from snnc.targets.base import RunRequest, Target
from snnc.targets.templates import copy_run_script, render

from .spec import SPEC

RASTER_SAMPLES = 4  # samples whose output spikes are kept with their times


class SimTarget(Target):
    spec = SPEC

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        context = {
            "version": manifest["snnc_version"],
            "pipeline": ",".join(manifest["pipeline"]),
            "dt": graph_number(graph, "dt"),
            "presentation_time": graph_number(graph, "presentation_time"),
        }
        copy_run_script("sim", out)
        render("sim", "README.md.j2", out / "README.md", context)

    def run(self, request: RunRequest) -> dict[str, Any]:
        graph = load(request.out / "model.snnir")
        classes = math.prod(graph.shape(graph.inputs(graph.outputs[0])[0]))
        x, y = load_data(request.data, request.samples, require_y=True, classes=classes)
        if request.presentation_time is not None:
            graph.attrs["presentation_time"] = request.presentation_time
        for key in ("dt", "presentation_time", "pause"):
            if key in graph.attrs:
                graph_number(graph, key)
        x = to_model_layout(x, graph.shape(graph.ops_of("snn.source")[0]), graph.attrs.get("input_layout"))
        device = resolve_device(request.device, "pause" in graph.attrs)
        start = time.perf_counter()
        result = simulate(
            graph, x, seed=request.seed, record_over_time=True, record_neurons=True, progress=True, device=device
        )
        wall = time.perf_counter() - start
        pops = sorted(result.neuron_counts)
        at = np.unique(np.linspace(0, result.steps - 1, min(result.steps, 100)).round().astype(int))
        cumulative = result.counts_over_time[:, :RASTER_SAMPLES]  # spike counts: (step, sample, neuron) of spikes
        spiking = graph.op(graph.outputs[0]).mode == "spike_count"
        raster = np.argwhere(np.diff(cumulative, axis=0, prepend=0) > 0) if spiking else np.zeros((0, 3))
        np.savez(
            request.out / "outputs.npz",
            readout=result.counts[graph.outputs[0]],
            predictions=result.predictions,
            labels=y,
            over_time=result.counts_over_time[at],
            over_time_ms=(at + 1) * result.dt,
            populations=np.array(pops),
            raster=raster.astype(np.int32),
            dt=result.dt,
            **{f"spikes_{i}": result.neuron_counts[p] for i, p in enumerate(pops)},
        )
        return {
            "target": "sim",
            "samples": len(x),
            "accuracy": float((result.predictions == y).mean()),
            "spikes_per_sample": float(sum(s.mean() for s in result.spikes.values())),
            "simulated_time_ms": result.steps * result.dt,
            "dt": result.dt,
            "wall_time_s": wall,
            "samples_per_second": len(x) / wall if wall > 0 else None,
            "device": result.extra["device"],
        }
