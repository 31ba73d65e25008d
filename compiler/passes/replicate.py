"""replicate: run N parallel instances of the network, each classifying its own samples.

The graph stays one network; its ``instances`` attribute tells targets how many copies to
build. ``instances=auto`` takes as many as the machine holds: application cores (chips x
cores per chip - reserved) divided by the cores of one instance (the split plan), rounded down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from snnc.ir import Graph
from snnc.ir import ops as ir

from .base import Pass, PassContext, PassError


def instance_cores(graph: Graph) -> int:
    """Cores one instance takes under the split plan."""
    total = 0
    for node in graph.topo():
        op = graph.op(node)
        if isinstance(op, (ir.Source, ir.Population)):
            if op.per_core is None:
                raise PassError(f"%{node} has no core plan: run split-populations before replicate")
            total += ir.cores_of(op, graph.shape(node))
    return total


@dataclass
class Replicate(Pass):
    name = "replicate"
    dialect = "snn"
    summary = "N parallel copies of the network on one machine ('auto': as many as fit)"
    instances: Optional[str] = None  # None: the target's value (see Pass.setting)
    reads = ("instances", "chips", "cores_per_chip", "reserved_cores")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        spec = ctx.target
        wanted = self.setting(ctx, "instances").strip().lower()
        per_instance = instance_cores(graph)
        capacity = spec.machine.application_cores()
        if wanted == "auto":
            if capacity is None:
                raise PassError(f"instances=auto needs the machine size, which target {spec.name} does not give")
            n = capacity // per_instance
            if n < 1:
                raise PassError(f"one instance needs {per_instance} cores; {spec.machine_text()} has fewer")
        else:
            try:
                n = int(wanted)
            except ValueError:
                raise PassError(f"instances={wanted}: give a positive number or 'auto'") from None
            if n < 1:
                raise PassError(f"instances={n}: give a positive number or 'auto'")
            if capacity is not None and n * per_instance > capacity:
                most = capacity // per_instance
                used = f"{n} instances x {per_instance} cores = {n * per_instance} cores"
                raise PassError(f"{used}; {spec.machine_text()} holds at most {most}")
        graph.attrs["instances"] = n
        used = f"{n} x {per_instance} = {n * per_instance} cores"
        ctx.info(f"{n} instances: {used}" + (f" of {spec.machine_text()}" if capacity is not None else ""))
        return graph
