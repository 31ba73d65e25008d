"""Target ``nest``: a standalone pyNN.nest script plus its network description and weights.

The script (``run.py``) is generic: it builds whatever ``network.json`` describes, with the
arrays of ``weights.npz``. Nothing from the model is written into code; op ids appear only as
JSON data. Cells that reset by subtraction (the default) are NEST's ``eprop_iaf``, whose update subtracts
the threshold after a spike (run_nest.Subtracting says how it equals snnc's IF neuron); cells
compiled with ``reset=zero`` are PyNN's IF_curr_delta (NEST's iaf_psc_delta). Unit mapping
(docs/snn-semantics.md -> PyNN IF_curr_delta, the same units for eprop_iaf):

==================  =========================================================
snnc                PyNN / NEST
==================  =========================================================
v (unitless)        mV; v_rest = v_reset = 0 mV, v_thresh = v_threshold mV (eprop_iaf: E_L = 0, V_th)
weight              mV jump per spike (delta synapse); inhibitory weights < 0
i_offset (v/ms)     nA with cm = 1 nF (1 nA / 1 nF = 1 mV/ms)
tau_m = inf         tau_m = 1e9 ms (no leak within a presentation)
tau_refrac          ms (0 or >= dt: on-grid iaf_psc_delta counts whole steps; 0 for eprop_iaf, whose
                    t_ref blocks spikes but not input)
delay               NEST delivers a spike a step after it is emitted at the earliest: as on GeNN
                    (targets/latency.py) each population runs its window ``start`` steps after the
                    input and a projection waits its delay + start(post) - start(pre) steps, so
                    every population sees its input at the steps of the simulator without latency
v_min               V_min of iaf_psc_delta (set through NEST; PyNN has no name for it)
current source      i_offset of the first population = its bias + W @ x, per sample
poisson source      SpikeSourcePoisson, rate = x * gain * max_rate Hz
events source       SpikeSourceArray: a count of c at step k is c spikes at time k + 1 steps (repeated
                    times: NEST's spike_generator emits one spike per listed time)
inputs over time    (N, T, ...) data: T steps per sample; regular/poisson sources then get
                    precomputed spike times at each step's rate (SpikeSourceArray)
==================  =========================================================

Samples run one after another in one simulation, ``instances`` at a time (setting
``instances``: that many copies of the network in the kernel, each showing its own samples;
``run.py --instances`` overrides it). Before each sample every membrane is set to
its start (v_init; NEST's V_m, which PyNN's initialize cannot set on NEST 3) and the input
currents are changed; after it the membranes are pushed far below threshold and a short flush
lets spikes in flight arrive outside the counting window.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.options import TargetSpec
from snnc.ir.semantics.connectivity import synapse_count
from snnc.targets.base import RunRequest, Target, TargetError, run_script
from snnc.targets.latency import delay_steps, starts
from snnc.targets.network_json import describe_network, stored, write_network
from snnc.targets.templates import copy_run_script, render

from .spec import SPEC

NO_LEAK_TAU_M = 1e9  # ms


def describe(graph: Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network as JSON-able structure plus the arrays it refers to by key."""
    dt = graph_number(graph, "dt")
    start = starts(graph)

    def population(node: str, op: ir.Population, size: int, readout: Any) -> dict[str, Any]:
        return {
            "start": start[node],
            "v_thresh": op.v_threshold,
            "v_reset": op.v_reset,
            "v_init": op.v_init,
            "reset": op.reset,
            "tau_m": NO_LEAK_TAU_M if math.isinf(op.tau_m) else op.tau_m,
            "tau_refrac": op.tau_refrac,
            "v_min": op.v_min,
            "readout": readout,
        }

    def projection(proj: str, pre: int, post: int, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        p = graph.op(proj)
        delay = delay_steps(graph, proj, start) * dt  # NEST's delay: at least one step
        entry = {"id": proj, "pre": pre, "post": post, "receptor": p.receptor, "delay": delay}
        return entry | stored(graph, proj, key, arrays)

    return describe_network(graph, "NEST", population, projection, np.float64)


class NestTarget(Target):
    spec = SPEC

    def configure(self, spec: TargetSpec) -> TargetSpec:
        """Refuse instances=auto: a NEST kernel has no machine limit to fill."""
        if not spec.options.instances.isdigit():
            raise TargetError(f"instances={spec.options.instances}: NEST's parallel instances need a number")
        return spec

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        dt = graph_number(graph, "dt")
        refractory = {graph.op(p).tau_refrac for p in graph.ops_of("snn.population")}
        if dt <= 0 or any(0 < t < dt for t in refractory):  # on-grid iaf_psc_delta takes 0 or whole steps
            raise TargetError(f"NEST needs tau_refrac = 0 or >= dt ({dt} ms)")
        for node in graph.ops_of("snn.population"):
            op = graph.op(node)
            if op.reset == "subtract" and op.tau_refrac > 0:  # eprop_iaf's t_ref blocks spikes, not input
                raise TargetError(f"%{node}: reset by subtraction on NEST (eprop_iaf) takes tau_refrac = 0")
        network, arrays = describe(graph)
        network["instances"] = int(self.spec.options.instances)
        context = write_network(out, network, arrays, manifest)
        context["synapses"] = sum(synapse_count(graph, p) for p in graph.ops_of("snn.projection"))
        copy_run_script("nest", out)
        render("nest", "README.md.j2", out / "README.md", context)

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run snnc's NEST script on ``out`` in a fresh interpreter (NEST cannot be reset inside one process)."""
        return run_script("nest", request.out, request.script_args())
