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
        backend="single_threaded_cpu",  # cuda where a GPU and CUDA are
        min_delay=0.0,  # as sim: GeNN's one step per layer is hidden by starting each layer later
    ),
    reads=frozenset({"instances", "backend", "precision"}),  # instances: GeNN's batch size, no replication
    accepts={
        "pause": ((), "GeNN resets the network between samples through its variables"),
        "split_signs": ((), "GeNN synapses take weights of both signs; add split-signs to --pipeline"),
        "encoding": (("current", "poisson", "regular", "events"), "every snnc encoding runs on GeNN"),
    },
)
