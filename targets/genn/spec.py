"""GeNN through PyGeNN 5: its machine (no per-core limits), options and defaults."""

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="genn",
    description="GeNN 5 through PyGeNN (CPU or CUDA backend); custom IF cells with reset by subtraction, batches",
    pipeline=CONVERSION_PIPELINE,
    machine=Machine(),
    options=CompileOptions(
        dt=1.0,
        min_delay=1.0,  # GeNN delivers a spike one step after it is emitted at the earliest
    ),
    reads=frozenset({"instances"}),  # GeNN's batch size: the network is not replicated
    accepts={
        "pause": ((), "GeNN resets the network between samples through its variables"),
        "split_signs": ((), "GeNN synapses take weights of both signs; add split-signs to --pipeline"),
    },
)
