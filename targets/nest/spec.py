"""NEST through PyNN (pyNN.nest): its machine, options and defaults."""

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="nest",
    description="NEST 3 simulator through PyNN (pyNN.nest); IF_curr_delta cells, hard reset",
    pipeline=CONVERSION_PIPELINE + ",split-signs",
    machine=Machine(),
    options=CompileOptions(
        dt=0.1,
        presentation_time=200.0,
        reset="zero",
        tau_refrac=0.1,  # one step; on-grid iaf_psc_delta would also take 0 (not yet measured here)
        min_delay=0.1,
    ),
    accepts={
        "reset": (("zero",), "PyNN's standard cells reset to v_reset; NEST has no reset by subtraction"),
        "split_signs": ((), "PyNN projections have one receptor each: the pipeline's split-signs pass splits them"),
        "encoding": (("current", "poisson", "regular", "events"), "every snnc encoding runs on NEST"),
    },
)
