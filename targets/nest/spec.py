"""NEST through PyNN (pyNN.nest): limits and defaults."""

from snnc.targets.base import CONVERSION_PIPELINE, TargetSpec

SPEC = TargetSpec(
    name="nest",
    description="NEST 3 simulator through PyNN (pyNN.nest); IF_curr_delta cells, hard reset",
    pipeline=CONVERSION_PIPELINE + ",split-signs",
    dt=0.1,
    presentation_time=200.0,
    reset="zero",  # PyNN standard cells reset to v_reset; NEST has no reset by subtraction
    tau_refrac=0.1,  # one step; on-grid iaf_psc_delta would also take 0 (not yet measured here)
    min_delay=0.1,
    encoding="current",
    split_signs=True,
)
