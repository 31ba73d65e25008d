"""The built-in reference simulator: its machine (no limits), options and defaults."""

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="sim",
    description="snnc's numpy reference simulator (IF neurons, reset by subtraction, exact semantics)",
    pipeline=CONVERSION_PIPELINE,
    machine=Machine(),
    options=CompileOptions(min_delay=0.0),  # spikes reach the next layer in the same step (no latency per layer)
    accepts={"split_signs": ((), "the simulator takes both signs on one synapse; add split-signs to --pipeline")},
)
