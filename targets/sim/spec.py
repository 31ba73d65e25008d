"""The built-in reference simulator: its machine (no limits), options and defaults."""

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="sim",
    description="snnc's numpy reference simulator (IF neurons, reset by subtraction, exact semantics)",
    pipeline=CONVERSION_PIPELINE,
    machine=Machine(),
    # Spikes reach the next layer in the same step (no latency per layer). Every sample starts half
    # way to the threshold and is read from the output layer's membrane: measured best at every
    # number of steps (benchmarks/bench_peer.py), as in Bu et al. 2022 (ICLR, QCFS: an initial
    # membrane of half the threshold halves the expected rate error) and Rueckauer et al. 2017.
    options=CompileOptions(min_delay=0.0, v_init=0.5, readout="membrane"),
    accepts={"split_signs": ((), "the simulator takes both signs on one synapse; add split-signs to --pipeline")},
)
