"""NIR (the Neuromorphic Intermediate Representation) as an output format: limits and defaults."""

from snnc.targets.base import CONVERSION_PIPELINE, TargetSpec

SPEC = TargetSpec(
    name="nir",
    description="a NIR graph file (network.nir) that NIR tools (snnTorch, Norse, Sinabs, ...) read",
    pipeline=CONVERSION_PIPELINE,
    dt=1.0,
    presentation_time=100.0,
    reset="subtract",
    tau_refrac=0.0,
    min_delay=0.0,
    encoding="current",
)
