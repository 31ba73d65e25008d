"""NEST through PyNN (pyNN.nest): its machine, options and defaults."""

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="nest",
    description="NEST 3 simulator through PyNN (pyNN.nest); eprop_iaf cells (reset by subtraction) or IF_curr_delta",
    pipeline=CONVERSION_PIPELINE + ",split-signs",
    machine=Machine(),
    # The simulator's defaults (targets/sim/spec.py): NEST's step per projection is hidden by
    # starting each population later (targets/latency.py), so NEST spikes as sim does.
    options=CompileOptions(min_delay=0.0, v_init=0.5, readout="membrane"),
    reads=frozenset({"instances"}),  # copies of the network in one NEST kernel, each showing its own samples
    accepts={
        "reset": (("subtract", "zero"), "NEST's eprop_iaf resets by subtraction, IF_curr_delta to v_reset"),
        "split_signs": ((), "PyNN projections have one receptor each: the pipeline's split-signs pass splits them"),
        "encoding": (("current", "poisson", "regular", "events"), "every snnc encoding runs on NEST"),
    },
)
