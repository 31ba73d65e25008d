"""NIR (the Neuromorphic Intermediate Representation) as an output format: its options and defaults."""

import math

from snnc.ir.options import CompileOptions, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

SPEC = TargetSpec(
    name="nir",
    description="a NIR graph file (network.nir) that NIR tools (snnTorch, Norse, Sinabs, ...) read",
    pipeline=CONVERSION_PIPELINE,
    machine=Machine(),
    options=CompileOptions(min_delay=0.0),
    accepts={
        "v_init": ((0.0,), "NIR's IF nodes have no initial membrane potential"),
        "readout": (("spike_count",), "a NIR Output carries the spikes of the layer before it"),
        "tau_m": ((math.inf,), "snnc writes NIR IF nodes, which have no leak"),
        "tau_refrac": ((0.0,), "NIR IF nodes have no refractory period"),
        "encoding": (("current",), "NIR inputs are values; spike-encoded input has no NIR form"),
        "split_signs": ((), "a NIR Affine node takes weights of both signs; add split-signs to --pipeline"),
    },
)
