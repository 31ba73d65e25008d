"""Hiding a simulator's one step of latency per projection, for targets whose spikes reach the
next layer a step after they are emitted at the earliest (GeNN, NEST).

snnc's reference simulator delivers a spike in the step it is emitted (``min_delay`` 0). A target
that needs a step per projection starts each population ``start`` steps after the input and runs
it for the presentation's steps from there; a projection then waits ``delay_steps`` = its own
delay in steps + start(post) - start(pre) (>= 1), so every population sees each input at the step
the reference simulator gives it, and the shorter path into a residual add waits in delays.
"""

from __future__ import annotations

from snnc.ir import Graph, graph_number
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import from_current_source


def starts(graph: Graph) -> dict[str, int]:
    """The step at which each source and population begins its window: the latency of the
    earliest step at which every input of a population can reach it (one step per projection less
    the projection's own delay), so that no path arrives late."""
    dt = graph_number(graph, "dt")
    start: dict[str, int] = {}
    for node in graph.topo():
        op = graph.op(node)
        if isinstance(op, ir.Source):
            start[node] = 0
        elif isinstance(op, ir.Population):
            latest = [
                start[pre] + 1 - int(round(graph.op(proj).delay / dt))
                for proj in graph.inputs(node)
                if not from_current_source(graph, proj)
                for pre in graph.inputs(proj)
            ]
            start[node] = max([0, *latest])
    return start


def delay_steps(graph: Graph, proj: str, start: dict[str, int]) -> int:
    """Steps projection ``proj`` waits on the target: its delay plus the difference of the starts
    of its ends (0 for current input, which is no projection on the target)."""
    if from_current_source(graph, proj):
        return 0
    (source,) = graph.inputs(proj)
    (target,) = graph.users(proj)
    return int(round(graph.op(proj).delay / graph_number(graph, "dt"))) + start[target] - start[source]
