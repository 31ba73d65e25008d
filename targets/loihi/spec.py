"""Intel Loihi through nengo-loihi 1.1: its chip's limits, options and defaults.

The limits are nengo-loihi's own (nengo_loihi 1.1.0): a core holds 1024 compartments, 4096
input and 4096 output axons and 16384 64-bit words of synapse memory (block.py:
MAX_COMPARTMENTS, MAX_IN_AXONS, MAX_OUT_AXONS, MAX_SYNAPSE_BITS); a chip has 128 cores
(hardware/allocators.py, Greedy's cores_per_chip); its hardware interface allocates 2 chips
unless told otherwise (hardware/interface.py, n_chips). Weights have 8 bits (mixed sign, so 7 of
magnitude) scaled per core (builder/discretize.py). nengo-loihi's spiking ReLU
(SpikingRectifiedLinear, built by builder/ensemble.py) does not leak, is floored at 0, spikes
when v exceeds its threshold and resets to zero (emulator/interface.py), at most once a step;
a spike reaches the next core one step later. The chip cannot reset between samples: they run
back to back with a pause. Input comes as a precomputed spike raster (regular, Poisson, or
``events`` from samples over time: at most one spike per input and step, of weight 1).
"""

from snnc.ir.options import CompileOptions, EnergyModel, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

_RELU = "nengo-loihi's spiking ReLU"

SPEC = TargetSpec(
    name="loihi",
    description="Intel Loihi through nengo-loihi 1.1 (its emulator here): spiking ReLU cores, 8-bit weights per core",
    pipeline=CONVERSION_PIPELINE + ",split-populations,quantize",
    machine=Machine(
        max_neurons_per_core=1024,
        max_input_axons_per_core=4096,
        max_output_axons_per_core=4096,
        synapse_bits_per_core=16384 * 64,
        whole_channels=True,  # nengo-loihi scales each core's weights by its own largest one
        sources_take_cores=False,  # the input raster is injected by the host (nengo-loihi's SpikeInput)
        weight_bits=8,
        weight_scheme="loihi",
        chips=2,
        cores_per_chip=128,
    ),
    options=CompileOptions(
        dt=1.0,
        reset="zero",
        v_min=0.0,
        pause=20.0,  # ms of silence between samples: the spikes of a sample leave the network
        min_delay=1.0,  # a spike reaches the next core one step later
        encoding="regular",
        max_rate=1000.0,  # one spike per step at most
    ),
    # Davies et al. 2018, "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", IEEE
    # Micro 38(1):82-99, Table 2 (pre-silicon figures at 0.75 V): 23.6 pJ per synaptic spike
    # operation (its minimum) and 81 pJ per active neuron update (one per step, dt = 1 ms). Spike
    # routing (1.7 pJ in a tile, 3-4 pJ per hop) and static power are left out.
    energy=EnergyModel(
        per_synaptic_event_nj=0.0236,
        per_neuron_ms_nj=0.081,
        source="Davies et al. 2018, IEEE Micro 38(1):82-99, Table 2 (pre-silicon): 23.6 pJ/synaptic op, "
        "81 pJ/neuron update",
    ),
    reads=frozenset({"chips", "cores_per_chip"}),
    accepts={
        "v_init": ((0.0,), "the chip is not reset between samples and nengo-loihi starts its neurons at 0"),
        "readout": (("spike_count",), "the loihi target counts the spikes of its readout"),
        "dt": ((1.0,), "nengo-loihi's Loihi step is 1 ms (its Simulator's dt)"),
        "reset": (("zero",), f"{_RELU} resets to zero"),
        "v_min": ((0.0,), f"{_RELU} is floored at 0"),
        "tau_m": ((float("inf"),), f"{_RELU} does not leak"),
        "tau_refrac": ((0.0,), f"{_RELU} has no refractory step"),
        "min_delay": ((1.0,), "a spike reaches the next Loihi core one step later"),
        "encoding": (("regular", "poisson", "events"), "a chip takes input as spikes"),
        "split_signs": ((), "Loihi synapses take weights of both signs"),
        "grid_populations": ((False,), "Loihi blocks are consecutive slices of compartments"),
        "whole_channels": ((), "each Loihi core scales its weights by its own largest one: cores hold whole channels"),
        "sources_take_cores": ((), "the input raster comes from the host (nengo-loihi's SpikeInput), on no core"),
        "source_neurons_per_core": ((), "the input raster comes from the host, on no core"),
        "weight_scheme": (("loihi",), "nengo-loihi discretizes the weights itself"),
        "weight_bits": ((8,), "Loihi's weights as nengo-loihi sets them have 8 bits"),
    },
)
