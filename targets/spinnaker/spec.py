"""SpiNNaker through sPyNNaker 7 (pyNN.spiNNaker): its machine, boards, options and energy model.

A chip has 18 ARM cores: one runs the monitor (SCAMP) and one sPyNNaker's extra monitor,
leaving 16 for networks; the Ethernet chip of a board gives one more to the data gatherer.
sPyNNaker models a SpiNN-5 board with 8 of its 48 chips at 17 working cores (spinn_machine's
Version5.CHIPS_PER_BOARD), so SpiNN5 offers 48 x 16 - 8 - 1 = 759 application cores and
SpiNN3 (4 chips of 18 cores) 4 x 16 - 1 = 63; the virtual boards place exactly that many. A
real board may have lost a few more cores. sPyNNaker puts at most 256 neurons of a standard
model on a core (its default). Idle power per board is the figure spinn_machine uses
(Version3/Version5, from "Optimising the overall power usage on the SpiNNaker neuromimetic
platform").
"""

import math

from snnc.ir.options import CompileOptions, EnergyModel, Machine, TargetSpec
from snnc.targets.base import CONVERSION_PIPELINE

# board name -> sPyNNaker machine version, chips, application cores lost (17-core chips and the
# gatherer), idle watts, whether boards of the kind join into larger machines
BOARDS = {
    "spinn3": {"version": 3, "chips": 4, "reserved_cores": 1, "idle_watts": 3.56, "joins": False},
    "spinn5": {"version": 5, "chips": 48, "reserved_cores": 8 + 1, "idle_watts": 26.84, "joins": True},
}


def machine_size(boards: int) -> tuple[int, int]:
    """Width and height in chips of sPyNNaker's virtual machine of ``boards`` SpiNN-5 boards: one
    board is 8 x 8; more are a rectangle of triads (three boards, 12 x 12 chips) plus 4, as spalloc
    allocates them (spinn_machine Version48Chips.size_from_n_boards); it holds 3 boards per triad."""
    if boards <= 1:
        return 8, 8
    triads = math.ceil(boards / 3)
    width = math.ceil(math.sqrt(triads))
    return width * 12 + 4, math.ceil(triads / width) * 12 + 4


DEFAULT_BOARD = "spinn5"
_BOARD_FACT = "comes from the board; choose one with --set board=" + "|".join(BOARDS)

SPEC = TargetSpec(
    name="spinnaker",
    description="SpiNNaker (SpiNN3/SpiNN5) through sPyNNaker 7; IF_curr_delta, 16-bit weights, core slicing, instances",
    # calibrate-bias{fit-reset=true}: sPyNNaker's cells reset to v_reset, which throws away the overshoot
    # that reset by subtraction keeps; each population's v_reset is fitted to the mean charge lost at
    # a reset, on calibration data in this target's own semantics (a parameter the board takes as is).
    # Measured (benchmarks/bench_spinnaker_reset.py -> results/spinnaker_reset.json; simulated model,
    # 200 ms + 100 ms pause, loss in points against the ANN): resnet (200 images) 56.0 with v_reset = 0,
    # 3.5 with the fitted v_reset (reset by subtraction 3.0); mlp (500) 0.8 -> 0.2 (subtraction 0.6);
    # keras_cnn (200) 35.0 with v_reset = 0. Compile time: one simulation of 16 samples per level of
    # populations (one scalar per population is fitted: 16 samples of thousands of neurons determine
    # it), bounded by calibrate-bias's max-work (ResNet-18: one sample). A uniform
    # v_reset of 0.3 threshold alone took keras_cnn from 60.3% to 88.3% (subtraction 90.3%, 300
    # images). normalize{rate=0.5} at 400 ms changes nothing (mlp 0.6): the weights between
    # populations, hence the overshoot per reset, do not depend on the rate.
    # after split-populations: a network that cannot fit is refused before the simulations
    pipeline=CONVERSION_PIPELINE
    + ",split-populations,calibrate-bias{fit-reset=true,bias=false,samples=16,chains=16}"
    + ",quantize,split-signs{shared-kernels=true},replicate",
    machine=Machine(
        max_neurons_per_core=256,
        grid_populations=True,  # convolutions use sPyNNaker's ConvolutionConnector on Grid2D populations
        weight_bits=16,
        weight_scheme="shift",
        chips=BOARDS[DEFAULT_BOARD]["chips"],
        cores_per_chip=16,
        reserved_cores=BOARDS[DEFAULT_BOARD]["reserved_cores"],
    ),
    options=CompileOptions(
        fold_pooling=False,
        dt=1.0,  # real time: 1 ms of model time per ms
        presentation_time=200.0,  # as Ostrau et al.
        reset="zero",  # PyNN cells reset to v_reset
        tau_m=50.0,  # a leak lets membranes settle in the pause (a board cannot reset between samples)
        pause=100.0,  # ms of silence after each sample: two membrane time constants
        min_delay=1.0,
        encoding="regular",  # SpikeSourceArray spike trains; a board cannot change currents per sample
        board=DEFAULT_BOARD,
    ),
    # Sharp et al. 2012, J. Neurosci. Methods 210:110-118, measured on SpiNNaker chips: 100 nJ per
    # neuron per ms and 43 nJ per postsynaptic potential (synaptic event); idle power excluded.
    energy=EnergyModel(
        per_synaptic_event_nj=43.0,
        per_neuron_ms_nj=100.0,
        idle_watts=BOARDS[DEFAULT_BOARD]["idle_watts"],
        source="Sharp et al. 2012, J. Neurosci. Methods 210:110-118 (100 nJ/neuron/ms, 43 nJ/synaptic event)",
    ),
    reads=frozenset({"board", "boards", "time_scale_factor", "chips", "cores_per_chip", "reserved_cores"}),
    accepts={
        "v_init": ((0.0,), "samples run back to back on a board that cannot set membranes between them"),
        "readout": (("spike_count",), "a membrane cannot be read back from SpiNNaker"),
        "fold_pooling": ((False,), "sPyNNaker convolves natively with stride 1 (strided ones are synapse lists)"),
        "board": (tuple(BOARDS), "the boards sPyNNaker models"),
        "chips": ((), _BOARD_FACT),
        "reserved_cores": ((), _BOARD_FACT),
        "reset": (("zero",), "sPyNNaker's IF cells reset to v_reset"),
        "encoding": (("regular", "events"), "a board takes input as spike trains (SpikeSourceArray), not currents"),
        "whole_channels": ((), "sPyNNaker's convolutions take Grid2D tiles (grid-populations)"),
        "sources_take_cores": ((), "SpikeSourceArray populations occupy cores like any other"),
        "split_signs": ((), "sPyNNaker's synapse lists have one receptor each: the pipeline's split-signs splits them"),
    },
)
