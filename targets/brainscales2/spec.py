"""BrainScaleS-2 in its analog multiply-accumulate (MAC, "hagen") mode, as hxtorch drives it.

The chip's numbers, each with its source (Weis et al. 2020, "Inference with Artificial Neural
Networks on Analog Neuromorphic Hardware", the text in ../shared/papers/002_*.txt; hxtorch @
3bfc7aad and grenade @ 6ac13f3a, electronicvisions on GitHub):

* inputs: 5-bit unsigned pulse lengths, 0..31 (paper: "we use 5 bit of this label to encode the
  pulse length"; grenade's UInt5 input, hxtorch constants.h input_activation_min/max);
* weights: 6 bits plus sign, -63..63, a signed weight taking two synapse rows (paper: "two rows
  of synapses can be combined to represent a single logical row ... reduces the number of
  available vector entries from 256 to 128"; grenade compute/mac.h Weight, hxtorch constants.h
  hardware_matrix_height = 256 / 2 = 128);
* results: the 8-bit CADC reading less its baseline, -128..127 (paper: "The resulting 8 bit
  values"; hxtorch constants.h output_activation_min/max);
* one partial matrix: 128 signed rows x 256 columns, two of them on a chip (paper: "512 analog
  neurons arranged in two blocks, each neuron receives input from 256 synapses"; halco chip.h
  HemisphereOnDLS 0..1); larger layers are cut into partials evaluated one after another and
  summed digitally (paper section 2; grenade compute/mac.cpp splits rows by 128 and columns by
  256, alternating the two halves);
* gain: the result per unit of input x weight in hxtorch's mock, 0.002 (hxtorch constants.h
  defaults::gain; a chip's own is measured by hxtorch.perceptron.measure_mock_parameter).

Times and power (for the report; not settings), all from the paper: writing all 256 x 512
weights takes about 5 ms; resetting the neurons about 1 us; 8 to 200 ns between input events;
2 us to settle and 1.5 us to convert; one vector-matrix multiplication takes 5 ms at about
0.3 W (1.5 mJ) on the current chip revision, which rewrites the synapse matrix for every input
vector (a bug); four multiplications run at once in signed mode (both halves, two label sets);
so the paper's convolutional MNIST model takes 40 ms and 12 mJ per image, the dense one 10 ms
and 3 mJ.
"""

from snnc.ir.options import CompileOptions, EnergyModel, Machine, TargetSpec

PAPER = "Weis et al. 2020, Inference with ANNs on Analog Neuromorphic Hardware (BrainScaleS-2)"
WEIGHT_WRITE_S = 5e-3  # all 256 x 512 synapses (paper, section 2.1 step 1)
RESET_S = 1e-6  # all neurons (section 2.1 step 2)
SETTLE_S = 2e-6  # before the ADC reads (section 2.1 step 4)
ADC_S = 1.5e-6  # one CADC conversion (section 2.1 step 4)
EVENT_WAIT_S = 40e-9  # between input events: hxtorch's default wait_between_events, 5 FPGA cycles of 8 ns
MULTIPLICATION_S = 5e-3  # one vector-matrix multiplication on the current chip revision (section 3)
PARALLEL_MULTIPLICATIONS = 4  # at once in signed mode: two halves x two label sets (section 3)
CHIP_WATTS = 0.3  # while multiplying (section 3, citing its ref. 12)

SPEC = TargetSpec(
    name="brainscales2",
    description="BrainScaleS-2's analog MAC mode through hxtorch: 5-bit inputs, 6-bit signed weights, 8-bit results",
    pipeline="canonicalize,fold-batchnorm,remove-softmax,quantize-mac,tile-mac",
    machine=Machine(
        weight_bits=7,  # 6 bits plus sign
        input_bits=5,
        output_bits=8,
        matrix_rows=128,
        matrix_columns=256,
        mac_gain=0.002,
        cores_per_chip=2,  # the two synapse blocks (halves) of a chip
    ),
    options=CompileOptions(),
    energy=EnergyModel(idle_watts=CHIP_WATTS, source=f"{PAPER}, section 3: about 0.3 W while multiplying"),
    reads=frozenset({"cores_per_chip"}),
    accepts={
        "weight_bits": ((7,), "BrainScaleS-2's synapses hold 6 bits plus the sign of their row pair"),
        "input_bits": ((5,), "BrainScaleS-2 encodes an input in 5 bits of an event's label"),
        "output_bits": ((8,), "BrainScaleS-2's CADC reads 8 bits"),
        "matrix_rows": (
            (128,),
            "a synapse block has 256 rows, two per signed input (hardware_matrix_height)",
        ),
        "matrix_columns": ((256,), "a synapse block has 256 columns (hxtorch's hardware_matrix_width)"),
        "cores_per_chip": ((2,), "a BrainScaleS-2 chip has two synapse blocks"),
    },
)
