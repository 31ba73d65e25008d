"""Target ``loihi``: a standalone nengo-loihi script plus its network description and weights.

The script (``run.py``) is generic: it builds whatever ``network.json`` describes as a
``nengo.Network`` and runs it on nengo-loihi's emulator (or a board with ``--hardware``).
Nothing from the model is written into code; op ids appear only as JSON data.

==================  =========================================================
snnc                nengo / nengo-loihi
==================  =========================================================
population          Ensemble of SpikingRectifiedLinear neurons (gain 1), one LoihiBlock
                    (core) per ``per_core`` slice through BlockShape
v_threshold         the ReLU's threshold 1 / dt: run.py divides weights and biases by it
weight              ``transform`` = weight / v_threshold: a spike adds that much of the threshold
i_offset            ``bias`` = i_offset * dt / v_threshold / dt_s (dt_s: dt in seconds)
dense               a dense transform
conv                nengo.Convolution (channels first) where nengo-loihi takes the shape, else
                    a Sparse transform (and always from the input raster, which it cannot convolve)
pool, one_to_one    a Sparse transform (a pool's neuron reaches one output: as a convolution
                    every pixel would reach every channel's core)
source              a precomputed spike raster injected into the chip (regular or Poisson)
delay               one step per core-to-core hop (the chip's own latency)
pause               the silence between samples shown back to back (the chip is not reset)
==================  =========================================================

After ``quantize`` (scheme ``loihi``) the graph holds the chip's weights and biases relative to
its threshold; the emitted values are those divided by their core's ``core_scale`` (biases by
S_SCALE times it) and, for weights, times ``EMIT_FACTOR`` (255/254): nengo-loihi then finds
each block's largest weight where it was and rounds every value to the chip's integers again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import connections
from snnc.passes.loihi_cores import conv_kernel, convolution, core_use
from snnc.passes.loihi_weights import EMIT_FACTOR, S_SCALE, neuron_scales
from snnc.targets.base import RunRequest, Target, TargetError, run_script
from snnc.targets.mapping_report import mapping_report
from snnc.targets.network_json import describe_network, write_network
from snnc.targets.templates import copy_run_script, render

from .spec import SPEC


def emit_factors(graph: Graph, pop: str) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron, what its input weights and its bias are multiplied by for nengo-loihi: where
    quantize put them on Loihi's grid, ``EMIT_FACTOR`` over its core's ``core_scale`` and one over
    S_SCALE times it; else 1."""
    if graph.op(pop).core_scale is None:
        ones = np.ones(math.prod(graph.shape(pop)))
        return ones, ones
    scales = neuron_scales(graph, pop)
    return EMIT_FACTOR / scales, 1.0 / (S_SCALE * scales)


def describe(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network as JSON-able structure plus the arrays it refers to by key: the values
    nengo-loihi is given (see the module docstring)."""
    dt = graph_number(graph, "dt")
    factors = {pop: emit_factors(graph, pop) for pop in graph.ops_of("snn.population")}

    def population(node: str, op: ir.Population, size: int, readout: Any) -> dict[str, Any]:
        if op.reset != "zero" or op.v_reset != 0.0 or op.v_min != 0.0 or not math.isinf(op.tau_m) or op.tau_refrac:
            raise TargetError(
                f"%{node}: Loihi's spiking ReLU resets to 0, is floored at 0 and has no leak or refractory time"
            )
        per_core = op.per_core or (size,)
        if len(per_core) != 1:
            raise TargetError(f"%{node}: per_core {list(per_core)}: Loihi blocks are consecutive slices")
        if readout == "membrane":
            raise TargetError(f"%{node}: readout=membrane: the loihi target counts the spikes of its readout")
        shape = list(graph.shape(node))
        return {"shape": shape, "v_thresh": op.v_threshold, "per_core": per_core[0], "readout": readout}

    def projection(proj: str, pre: int, post: int, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        p = graph.op(proj)
        if int(round(p.delay / dt)) != 1:
            raise TargetError(f"%{proj}: a delay of {p.delay:g} ms; Loihi's cores pass spikes on in one step")
        entry: dict[str, Any] = {"id": proj, "pre": pre, "post": post, "delay": p.delay}
        conv = convolution(graph, proj)
        per_neuron = factors[graph.users(proj)[0]][0]
        if p.connectivity == "dense":
            arrays[key] = (graph.tensor(p.weight) * per_neuron[:, None]).astype(np.float32)
            return {**entry, "kind": "dense", "weights": key}
        if conv is not None:
            per_channel = per_neuron[:: math.prod(graph.shape(proj)[1:])]  # whole channels share a core
            arrays[key] = (conv_kernel(graph, proj) * per_channel).astype(np.float32)
            return {**entry, "kind": "conv", "kernel": key, **conv}
        c = connections(graph, proj)
        arrays[f"{key}_indices"] = np.stack([c.pre, c.post], axis=1).astype(np.int32)
        arrays[f"{key}_weights"] = (c.weight * per_neuron[c.post]).astype(np.float32)
        return {**entry, "kind": "sparse", "indices": f"{key}_indices", "weights": f"{key}_weights"}

    network, arrays = describe_network(graph, "Loihi", population, projection, np.float32)
    for cell in network["cells"]:
        if cell["kind"] == "population":
            arrays[cell["i_offset"]] = (arrays[cell["i_offset"]] * factors[cell["id"]][1]).astype(np.float32)
    network["pause"] = graph_number(graph, "pause", 0.0)
    return network, arrays


class LoihiTarget(Target):
    spec = SPEC

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        network, arrays = describe(graph)
        network["chips"], network["cores_per_chip"] = self.spec.machine.chips, self.spec.machine.cores_per_chip
        context = write_network(out, network, arrays, manifest)
        context["pause"] = network["pause"]
        context["cores"] = sum(-(-c["size"] // c["per_core"]) for c in network["cells"] if c["kind"] == "population")
        copy_run_script("loihi", out)
        render("loihi", "README.md.j2", out / "README.md", context)

    def report(self, graph: Graph, calibration: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
        """The shared mapping report plus, per population and core, nengo-loihi's input axons,
        output axons and synapse memory (passes/loihi_cores.py) against the core's limits."""
        report = mapping_report(graph, self.spec, calibration)
        use = core_use(graph)
        for pop in report["populations"]:
            if pop["id"] in use:
                pop["core_use"] = use[pop["id"]]
        m = self.spec.machine
        report["core_limits"] = {
            "in_axons": m.max_input_axons_per_core,
            "out_axons": m.max_output_axons_per_core,
            "synapse_bits": m.synapse_bits_per_core,
        }
        return report

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run snnc's nengo-loihi script on ``out`` (the emulator)."""
        return run_script("loihi", request.out, request.script_args())
