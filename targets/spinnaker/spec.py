"""SpiNNaker through sPyNNaker 7 (pyNN.spiNNaker): limits, boards and defaults.

A chip has 18 ARM cores: one runs the monitor (SCAMP) and one sPyNNaker's extra monitor,
leaving 16 for networks; the Ethernet chip of a board gives one more to the data gatherer.
So SpiNN3 (4 chips) offers 63 application cores and SpiNN5 (48 chips) 767 (as the virtual
board maps them; a real board may have a few cores fewer). sPyNNaker puts at most 256
neurons of a standard model on a core (its default).
"""

from snnc.targets.base import CONVERSION_PIPELINE, TargetSpec

# board name -> (sPyNNaker machine version, chips)
BOARDS = {"spinn3": (3, 4), "spinn5": (5, 48)}

SPEC = TargetSpec(
    name="spinnaker",
    description="SpiNNaker (SpiNN3/SpiNN5) through sPyNNaker 7; IF_curr_delta, 16-bit weights, core slicing, instances",
    pipeline=CONVERSION_PIPELINE + ",split-signs{shared-kernels=true},quantize,split-populations,replicate",
    dt=1.0,  # real time: 1 ms of model time per ms
    presentation_time=200.0,  # as Ostrau et al.
    reset="zero",  # PyNN cells reset to v_reset
    tau_m=50.0,  # a leak lets membranes settle in the pause (a board cannot reset between samples)
    tau_refrac=0.0,
    pause=100.0,  # ms of silence after each sample: two membrane time constants
    min_delay=1.0,
    encoding="regular",  # SpikeSourceArray spike trains; a board cannot change currents per sample
    max_rate=1000.0,
    neurons_per_core=256,
    source_neurons_per_core=256,
    max_neurons_per_core=256,
    grid_populations=True,  # convolutions use sPyNNaker's ConvolutionConnector on Grid2D populations
    weight_bits=16,
    weight_scheme="shift",
    split_signs=True,
    board="spinn5",
    cores_per_chip=16,
    reserved_cores=1,
    # Sharp et al. 2012, J. Neurosci. Methods 210:110-118, measured on SpiNNaker chips: 100 nJ per
    # neuron per ms and 43 nJ per postsynaptic potential (synaptic event); idle power excluded.
    energy_per_synaptic_event_nj=43.0,
    energy_per_neuron_ms_nj=100.0,
    energy_source="Sharp et al. 2012, J. Neurosci. Methods 210:110-118 (100 nJ/neuron/ms, 43 nJ/synaptic event)",
)
