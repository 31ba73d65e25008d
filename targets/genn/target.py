"""Target ``genn``: a standalone PyGeNN script plus its network description and weights.

The script (``run.py``) is generic: it builds whatever ``network.json`` describes, with the
arrays of ``weights.npz``, as a GeNN model with snnc's own neuron models (integrate-and-fire
with reset by subtraction or to v_reset, an optional leak, refractoriness and a floor, and a
spike counter). Nothing from the model is written into code; op ids appear only as JSON data.

==================  =========================================================
snnc                GeNN
==================  =========================================================
v, weight           V and g of StaticPulse synapses into DeltaCurr (a jump of g per spike)
dense, conv, pool   DENSE weight matrices, TOEPLITZ Conv2D kernels (stride 1), SPARSE synapse lists
(C, H, W) neurons   numbered H, W, C in GeNN (Conv2D's layout); run.py permutes arrays to and fro
i_offset * dt       Ioffset, a per-batch variable added to V each step (with W @ x for current input)
tau_m               Decay = exp(-dt / tau_m) per step (1 for tau_m = inf)
tau_refrac          RefracTime steps during which V stays at v_reset
delay               GeNN delivers a spike one step after it is emitted, at the earliest; a layer
                    therefore runs ``start`` steps later than the input (its latency), and a
                    projection waits delay_steps = round(delay / dt) + start(post) - start(pre)
                    (GeNN's step plus axonal delay steps), so that every layer sees its input as
                    the simulator's does with no latency per layer; each cell runs its own window
                    of presentation-time steps from its ``start``
instances           GeNN's batch size: that many samples run at once
poisson, regular    spike-source populations with a per-batch rate variable (set every step for
                    samples over time, (N, T, ...): T steps per sample)
events              a spike-source population with a per-batch Count set every step; it spikes
                    where Count > 0 and its synapses add g * Count (the source's gain is in g)
==================  =========================================================
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.options import TargetSpec
from snnc.ir.semantics.connectivity import from_current_source, synapse_count
from snnc.targets.base import RunRequest, Target, TargetError, run_script
from snnc.targets.latency import delay_steps, starts
from snnc.targets.network_json import describe_network, stored, write_network
from snnc.targets.templates import copy_run_script, render

from .spec import SPEC


def matrix(graph: Graph, proj: str) -> tuple[str, str]:
    """How GeNN holds projection ``proj``: ``DENSE`` (a dense layer), ``TOEPLITZ`` (a convolution
    GeNN's Conv2D connectivity computes from its kernel) or ``SPARSE`` (a synapse list), with why."""
    p = graph.op(proj)
    if p.connectivity == "dense":
        return "DENSE", "a dense layer"
    if p.connectivity == "conv":
        if tuple(p.strides) != (1, 1) or tuple(p.dilations) != (1, 1) or p.groups != 1:
            return "SPARSE", "GeNN's Conv2D takes stride 1, dilation 1 and one group only"
        if p.pads[0] != p.pads[2] or p.pads[1] != p.pads[3]:
            return "SPARSE", "GeNN's Conv2D pads both sides alike"
        if any(pad > k - 1 for pad, k in zip(p.pads[:2], graph.tensor_shape(p.weight)[2:], strict=True)):
            return "SPARSE", "GeNN's Conv2D pads at most the kernel size - 1"
        return "TOEPLITZ", "a convolution (GeNN's Conv2D)"
    if p.connectivity == "pool":
        return "SPARSE", "a pool has its own neurons here; GeNN's AvgPoolConv2D fuses a pool into a convolution"
    return "SPARSE", f"{p.connectivity} connectivity has no procedural form in GeNN"


def describe(graph: Graph, spec: TargetSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network as JSON-able structure plus the arrays it refers to by key."""
    dt = graph_number(graph, "dt")
    start = starts(graph)

    def population(node: str, op: ir.Population, size: int, readout: Any) -> dict[str, Any]:
        return {
            "start": start[node],
            "shape": list(graph.shape(node)),
            "v_thresh": op.v_threshold,
            "v_reset": op.v_reset,
            "v_init": op.v_init,
            "reset": op.reset,
            "decay": 1.0 if math.isinf(op.tau_m) else math.exp(-dt / op.tau_m),
            "refrac_steps": int(round(op.tau_refrac / dt)),
            "v_min": op.v_min,
            "readout": readout,
        }

    def projection(proj: str, pre: int, post: int, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        p = graph.op(proj)
        current = from_current_source(graph, proj)
        kind, reason = ("DENSE", "current input") if current else matrix(graph, proj)
        entry = {"id": proj, "pre": pre, "post": post, "matrix": kind, "reason": reason}
        if kind == "TOEPLITZ":  # the kernel as GeNN indexes it: (kh, kw, in channels, out channels)
            arrays[key] = graph.tensor(p.weight).astype(np.float32).transpose(2, 3, 1, 0)
            entry["kernel"] = key
        else:  # run.py spells it out (a dense matrix, a list, a strided convolution's or a pool's window)
            entry |= stored(graph, proj, key, arrays)
        return {**entry, "delay_steps": delay_steps(graph, proj, start), "delay": p.delay}

    network, arrays = describe_network(graph, "GeNN", population, projection, np.float32)
    o = spec.options
    return {**network, "batch_size": int(o.instances), "backend": o.backend, "precision": o.precision}, arrays


class GennTarget(Target):
    spec = SPEC

    def configure(self, spec: TargetSpec) -> TargetSpec:
        """Refuse instances=auto: a GeNN batch has no machine limit to fill."""
        if not spec.options.instances.isdigit():
            raise TargetError(f"instances={spec.options.instances}: GeNN's batch size needs a number")
        return spec

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        network, arrays = describe(graph, self.spec)
        context = write_network(out, network, arrays, manifest)
        context.update({k: network[k] for k in ("batch_size", "backend", "precision")})
        toeplitz = {p["id"] for p in network["projections"] if p["matrix"] == "TOEPLITZ"}
        context["synapses"] = sum(synapse_count(graph, p) for p in graph.ops_of("snn.projection") if p not in toeplitz)
        copy_run_script("genn", out)
        render("genn", "README.md.j2", out / "README.md", context)

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run snnc's GeNN script on ``out`` in a fresh interpreter (it builds into ``out/genn_build``)."""
        return run_script("genn", request.out, request.script_args())
