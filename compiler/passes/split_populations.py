"""split-populations: assign every source's and population's neurons to core-sized slices.

The plan is the ``per_core`` attribute of each op (see ``snn.population``): one number for
consecutive slices, or, where the target lays out (C, H, W) populations that convolutions or
pooling connect as C two-dimensional grids (``grid_populations``), a tile ``[1, rows, cols]``
whose rows and columns divide H and W, as sPyNNaker requires; or, where a core scales the weights
of its own channels (``whole_channels``, Loihi), slices of whole channels. Limits come from the
target's machine and compile options; a network that cannot fit fails here, naming the population and the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.options import Machine, TargetSpec
from snnc.ir.semantics.connectivity import from_current_source, projection_matrix

from .base import Pass, PassContext, PassError
from .loihi_cores import Axons, core_use, fitting_per_core


def grid_tile(shape: tuple[int, ...], limit: int) -> tuple[int, ...]:
    """The largest [1, rows, cols] tile of a (C, H, W) shape with rows | H, cols | W and
    rows * cols <= limit; among equal areas the widest (whole rows where possible)."""
    _, h, w = shape
    best = (0, 0, 0)
    for cols in (d for d in range(1, w + 1) if w % d == 0):
        rows = max((d for d in range(1, h + 1) if h % d == 0 and d * cols <= limit), default=0)
        best = max(best, (rows * cols, cols, rows))
    if best[0] == 0:
        raise PassError(f"no tile of {list(shape)} fits {limit} neurons per core")
    return (1, best[2], best[1])


def fan_in(graph: Graph, pop: str) -> np.ndarray:
    """(n,) synapses into each neuron of ``pop`` (current-source inputs are not synapses)."""
    total = np.zeros(math.prod(graph.shape(pop)), np.int64)
    for proj in graph.inputs(pop):
        if not from_current_source(graph, proj):
            total += np.diff(projection_matrix(graph, proj).tocsr().indptr)
    return total


def per_core_sums(values: np.ndarray, shape: tuple[int, ...], per_core: tuple[int, ...]) -> np.ndarray:
    """Sum of a per-neuron quantity over each core's slice or tile."""
    if len(per_core) == 1:
        pad = -len(values) % per_core[0]
        return np.concatenate([values, np.zeros(pad, values.dtype)]).reshape(-1, per_core[0]).sum(axis=1)
    grid = values.reshape(shape)
    split = [d // t for d, t in zip(shape, per_core, strict=False)]
    blocks = grid.reshape([x for pair in zip(split, per_core, strict=False) for x in pair])
    return blocks.sum(axis=tuple(range(1, 2 * len(shape), 2))).reshape(-1)


def _kernel_connected(graph: Graph, node: str) -> bool:
    """Whether a convolution or pooling projection enters or leaves ``node``."""
    neighbours = [*graph.inputs(node), *graph.users(node)]  # projections, and a readout perhaps
    return any(getattr(graph.op(n), "connectivity", None) in ("conv", "pool") for n in neighbours)


@dataclass
class SplitPopulations(Pass):
    name = "split-populations"
    dialect = "snn"
    summary = "slice every population into cores from the target's limits; fail if it cannot fit"
    neurons_per_core: Optional[int] = None  # None: the target's value (see Pass.setting)
    source_neurons_per_core: Optional[int] = None
    reads = (
        "neurons_per_core",
        "source_neurons_per_core",
        "max_neurons_per_core",
        "grid_populations",
        "whole_channels",
        "sources_take_cores",
        "max_input_axons_per_core",
        "max_output_axons_per_core",
        "synapse_bits_per_core",
        "max_fan_in",
        "max_synapses_per_core",
        "chips",
        "cores_per_chip",
        "reserved_cores",
    )

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        spec, machine = ctx.target, ctx.target.machine
        most = machine.max_neurons_per_core
        explicit = self.setting(ctx, "neurons_per_core")
        limit = explicit or most
        if limit is None:
            raise PassError(f"target {spec.name} has no neurons-per-core limit; give one (--set neurons-per-core=N)")
        if most is not None and limit > most:
            raise PassError(f"neurons-per-core={limit}: {spec.name} takes 1 to {most}")
        source_limit = self.setting(ctx, "source_neurons_per_core") or limit
        total = 0
        known: dict[str, Axons] = {}  # Loihi: each projection's axons, worked out once
        for node in graph.topo():
            op = graph.op(node)
            if not isinstance(op, (ir.Source, ir.Population)):
                continue
            if isinstance(op, ir.Source) and not machine.sources_take_cores:
                continue  # the input comes from outside the cores
            shape = graph.shape(node)
            n_max = source_limit if isinstance(op, ir.Source) else limit
            kernel = len(shape) == 3 and _kernel_connected(graph, node)
            unit = math.prod(shape[1:]) if machine.whole_channels and kernel and math.prod(shape[1:]) <= n_max else 1
            if machine.grid_populations and kernel:
                per_core = grid_tile(shape, n_max)
            else:
                per_core = (n_max - n_max % unit,)  # whole channels on each core where the machine wants them
            if isinstance(op, ir.Population) and explicit is None and self._core_limits(machine):
                bits, axons = machine.synapse_bits_per_core, machine.max_input_axons_per_core
                per_core = (fitting_per_core(graph, node, per_core[0], unit, axons, bits, known),)  # fewer fit
            op = replace(op, per_core=per_core)
            graph.set_op(node, op)
            total += ir.cores_of(op, shape)
            if isinstance(op, ir.Population):
                self._check_synapses(graph, node, shape, per_core, spec)
        self._check_axons(graph, spec, known)
        capacity = machine.application_cores()
        if capacity is not None and total > capacity:
            raise PassError(
                f"the network needs {total} cores; {spec.machine_text()} has too few "
                "(fewer neurons per core cannot help; choose a larger board)"
            )
        ctx.info(
            f"{total} cores for one instance of the network at {'' if explicit else 'most '}{limit} neurons per core"
        )
        return graph

    @staticmethod
    def _core_limits(machine: Machine) -> bool:
        """Whether the machine counts axons or synapse memory per core (Loihi)."""
        limits = (machine.max_input_axons_per_core, machine.max_output_axons_per_core, machine.synapse_bits_per_core)
        return any(limit is not None for limit in limits)

    @staticmethod
    def _check_axons(graph: Graph, spec: TargetSpec, known: dict[str, Axons]) -> None:
        """Loihi's limits per core: input axons, output axons and synapse memory (loihi_cores.py)."""
        m = spec.machine
        limits = {
            "in_axons": (m.max_input_axons_per_core, "input axons", "max-input-axons-per-core"),
            "out_axons": (m.max_output_axons_per_core, "output axons", "max-output-axons-per-core"),
            "synapse_bits": (m.synapse_bits_per_core, "bits of synapse memory", "synapse-bits-per-core"),
        }
        if all(limit is None for limit, _, _ in limits.values()):
            return
        for pop, use in core_use(graph, known).items():
            for key, (limit, what, option) in limits.items():
                worst = max(use[key], default=0)
                if limit is not None and worst > limit:
                    core = use[key].index(worst)
                    raise PassError(
                        f"%{pop}: core {core} would need {worst} {what}; {spec.name} allows {limit} ({option}); "
                        "set fewer neurons-per-core (input axons of a dense layer do not shrink with it)"
                    )

    @staticmethod
    def _check_synapses(
        graph: Graph, pop: str, shape: tuple[int, ...], per_core: tuple[int, ...], spec: TargetSpec
    ) -> None:
        machine = spec.machine
        if machine.max_fan_in is None and machine.max_synapses_per_core is None:
            return
        counts = fan_in(graph, pop)
        if machine.max_fan_in is not None and counts.max(initial=0) > machine.max_fan_in:
            most = f"{spec.name} allows {machine.max_fan_in} (max-fan-in)"
            raise PassError(f"%{pop}: a neuron has {counts.max()} input synapses; {most}")
        if machine.max_synapses_per_core is not None:
            worst = per_core_sums(counts, shape, per_core).max(initial=0)
            if worst > machine.max_synapses_per_core:
                most = f"{spec.name} allows {machine.max_synapses_per_core} (max-synapses-per-core)"
                raise PassError(f"%{pop}: a core would hold {worst} synapses; {most}; set fewer neurons-per-core")
