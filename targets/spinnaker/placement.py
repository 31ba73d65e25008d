"""What run.py asks sPyNNaker for, and where sPyNNaker put it, in the terms of snnc's plan: the
checks of a mapping (tests, benchmarks/bench_spinnaker_resnet18.py). Not part of run.py."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from snnc.targets.spinnaker import run_spinnaker


def planned_cores(report: dict, instances: int) -> list[tuple[str, list]]:
    """snnc's slice plan (report.json) in placements.json's terms, sorted: (population label,
    [[x0, x1], [y0, y1]] for a grid's channel or [[lo, hi]])."""
    planned = []
    for i, pop in enumerate(report["populations"]):
        for instance in range(instances):
            for s in pop["slices"]:
                if "atoms" in s:
                    planned.append((run_spinnaker.population_label(i, None, instance), [s["atoms"]]))
                else:  # grids: one core name per channel, dimensions (x = cols, y = rows)
                    label = run_spinnaker.population_label(i, s["channel"], instance)
                    planned.append((label, [s["cols"], s["rows"]]))
    return sorted(planned)


def placed_cores(placements: dict) -> list[tuple[str, list]]:
    """The cores of run.py's placements.json, sorted as :func:`planned_cores`."""
    return sorted((c["label"], c["slice"]) for c in placements["cores"])


@dataclass(eq=False)
class StandIn:
    """A PyNN population's stand-in: its size and its place among its cell's populations."""

    size: int
    index: int


class Call(NamedTuple):
    """One sim.Projection call: network.json's projection, the pre and post stand-ins, the
    connector (as the stand-in for its class made it) and the receptor type."""

    projection: dict
    pre: StandIn
    post: StandIn
    connector: Any
    receptor: Optional[str]


_DROPPED = (
    "ConvolutionConnector",
    "Convolution",
    "PoolDenseConnector",
    "PoolDense",
    "StaticSynapse",
    "FromListConnector",
)


def projection_calls(network: dict, arrays: dict, projections: Optional[list] = None, **stand_ins: Any) -> list[Call]:
    """Every sim.Projection call one instance of run.py makes for ``projections`` (default: all of
    network.json's), without a simulator; ``arrays`` as :func:`run_spinnaker.check_network` leaves
    them. The connectors and synapse types are None unless
    ``stand_ins`` gives a callable for their sim name (``FromListConnector=lambda rows: rows``)."""
    calls: list[Call] = []
    current: list[dict] = [{}]

    def projection(pre: StandIn, post: StandIn, connector: Any, *args: Any, receptor_type=None, **kw: Any) -> None:
        calls.append(Call(current[0], pre, post, connector, receptor_type))

    dropped = {name: (lambda *a, **k: None) for name in _DROPPED}
    sim = types.SimpleNamespace(**{**dropped, **stand_ins, "Projection": projection})
    instance = object.__new__(run_spinnaker.Instance)
    instance.sim, instance.arrays = sim, arrays
    instance.pops = []
    for cell in network["cells"]:
        n = run_spinnaker.populations(cell)
        instance.pops.append([StandIn(cell["size"] // n, c) for c in range(n)])
    listed = network.get("projections", [])
    rows = {id(p): arrays.get(f"projections/{j}") for j, p in enumerate(listed)}
    for proj in listed if projections is None else projections:
        current[0] = proj
        instance._connect(proj, rows.get(id(proj)))
    return calls
