"""The built-in reference simulator: limits and defaults."""

from snnc.targets.base import CONVERSION_PIPELINE, TargetSpec

SPEC = TargetSpec(
    name="sim",
    description="snnc's numpy reference simulator (IF neurons, reset by subtraction, exact semantics)",
    pipeline=CONVERSION_PIPELINE,
    dt=1.0,
    presentation_time=100.0,
    reset="subtract",
    tau_refrac=0.0,
    min_delay=0.0,  # spikes reach the next layer in the same step (no latency per layer)
    encoding="current",
)
