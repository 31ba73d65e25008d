"""The mapping report shared by hardware targets: cores, slices, synapses, instances, energy.

Everything here is computed from the compiled graph and the TargetSpec; activity (spikes and
synaptic events per inference) is estimated with the rate model on the calibration data.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import projection_matrix
from snnc.ir.semantics.rates import rates
from snnc.targets.base import TargetSpec


def slices(shape: tuple[int, ...], per_core: tuple[int, ...]) -> list[dict[str, Any]]:
    """Every core's part of a population, in the order sPyNNaker numbers its machine vertices."""
    if len(per_core) == 1:
        n, k = math.prod(shape), per_core[0]
        return [{"atoms": [lo, min(lo + k, n)]} for lo in range(0, n, k)]
    c, h, w = shape
    _, th, tw = per_core
    return [
        {"channel": ch, "rows": [r, r + th], "cols": [col, col + tw]}
        for ch in range(c)
        for r in range(0, h, th)
        for col in range(0, w, tw)
    ]


def activity(
    graph: Graph, calibration: np.ndarray, samples: int = 1000, matrices: Optional[dict[str, Any]] = None
) -> dict[str, dict[str, float]]:
    """Per node: spikes per inference, and per projection synaptic events per inference,
    from the rate model (rates capped at one spike per step) on calibration samples.
    ``matrices`` are the projections' (post, pre) sparse matrices when the caller has them."""
    x = calibration[:samples]
    dt, duration = float(graph_number(graph, "dt")), float(graph_number(graph, "presentation_time"))
    per_node = {}
    for node, r in rates(graph, x).items():
        op = graph.op(node)
        if isinstance(op, ir.Source):
            r = r * op.rate_per_ms if op.encoding != "current" else np.zeros_like(r)
        per_node[node] = np.minimum(r, 1.0 / dt) * duration  # (N, n) spikes per presentation
    spikes = {n: float(v.sum(axis=1).mean()) for n, v in per_node.items()}
    events = {}
    for proj in graph.ops_of("snn.projection"):
        (pre,) = graph.inputs(proj)
        matrix = matrices[proj] if matrices is not None else projection_matrix(graph, proj)
        fan_out = np.diff(matrix.tocsc().indptr)  # synapses per pre neuron
        events[proj] = float((per_node[pre] @ fan_out).mean())
    return {"spikes": spikes, "synaptic_events": events}


def mapping_report(graph: Graph, spec: TargetSpec, calibration: Optional[np.ndarray]) -> dict[str, Any]:
    """The report as a JSON-able dict (see the target's README for the fields)."""
    matrices = {p: projection_matrix(graph, p) for p in graph.ops_of("snn.projection")}
    populations = []
    for node in graph.topo():
        op = graph.op(node)
        if not isinstance(op, (ir.Source, ir.Population)):
            continue
        shape = graph.shape(node)
        source = isinstance(op, ir.Source)
        synapses = sum(matrices[p].nnz for p in graph.inputs(node))
        per_core = op.per_core or (math.prod(shape),)
        populations.append(
            {
                "id": node,
                "kind": "source" if source else "population",
                "shape": list(shape),
                "neurons": math.prod(shape),
                "per_core": list(per_core),
                "cores": ir.cores_of(op, shape) if spec.machine.sources_take_cores or not source else 0,
                "synapses_in": int(synapses),
                "slices": slices(shape, per_core),
                **({"weight_shift": list(op.weight_shift)} if getattr(op, "weight_shift", None) else {}),
            }
        )
    instances = int(graph_number(graph, "instances", 1))
    per_instance = sum(p["cores"] for p in populations)
    capacity = spec.machine.application_cores()
    neurons = sum(p["neurons"] for p in populations if p["kind"] == "population")
    cores_per_chip = spec.machine.cores_per_chip
    chips = math.ceil(per_instance * instances / cores_per_chip) if cores_per_chip else None
    window = float(graph_number(graph, "presentation_time")) + float(graph_number(graph, "pause", 0.0))
    report: dict[str, Any] = {
        "target": spec.name,
        "board": spec.options.board,
        "chips": spec.machine.chips,
        "cores_per_chip": cores_per_chip,
        "application_cores": capacity,
        "cores_per_instance": per_instance,
        "instances": instances,
        "cores": per_instance * instances,
        "chips_used_at_least": chips,
        "neurons_per_instance": neurons,
        "synapses_per_instance": sum(p["synapses_in"] for p in populations),
        "instances_arithmetic": _arithmetic(spec, per_instance, instances),
        "presentation_ms": float(graph_number(graph, "presentation_time")),
        "pause_ms": float(graph_number(graph, "pause", 0.0)),
        "time_scale_factor": spec.options.time_scale_factor,
        "wall_ms_per_inference": window * spec.options.time_scale_factor / instances,
        "populations": populations,
    }
    energy = spec.energy
    if calibration is not None and energy.per_synaptic_event_nj is not None:
        act = activity(graph, calibration, matrices=matrices)
        events = sum(act["synaptic_events"].values())
        presentation = float(graph_number(graph, "presentation_time"))
        for pop in populations:  # the load a core carries while a sample is shown (inputs on no core: none)
            into = sum(act["synaptic_events"][p] for p in graph.inputs(pop["id"]))
            if pop["cores"]:
                pop["synaptic_events_per_ms_per_core"] = into / presentation / pop["cores"]
        e_syn = events * energy.per_synaptic_event_nj * 1e-6  # mJ
        e_neuron = neurons * window * (energy.per_neuron_ms_nj or 0.0) * 1e-6
        e_idle = (energy.idle_watts or 0.0) * report["wall_ms_per_inference"]  # W x ms = mJ
        report["energy"] = {
            "synaptic_events_per_inference": events,
            "spikes_per_inference": sum(v for k, v in act["spikes"].items() if isinstance(graph.op(k), ir.Population)),
            "synaptic_mj": e_syn,
            "neuron_mj": e_neuron,
            "idle_mj": e_idle,
            "mj_per_inference": e_syn + e_neuron,
            "mj_per_inference_with_idle": e_syn + e_neuron + e_idle,
            "model": f"{energy.per_synaptic_event_nj} nJ per synaptic event + {energy.per_neuron_ms_nj} nJ "
            f"per neuron per ms of presentation and pause; activity from the rate model on "
            f"{min(len(calibration), 1000)} calibration samples; idle: {energy.idle_watts} W for the whole "
            "machine times the wall time of one inference (shared by the instances)",
            "source": energy.source,
        }
    return report


def _arithmetic(spec: TargetSpec, per_instance: int, instances: int) -> str:
    capacity = spec.machine.application_cores()
    if capacity is None:
        return f"{instances} instance(s) x {per_instance} cores; machine size unknown"
    most = capacity // per_instance
    return (
        f"{spec.machine_text()}: floor({capacity} / {per_instance} cores per instance) = {most} instances fit; "
        f"using {instances} ({instances * per_instance} cores)"
    )
