"""Run this spiking network on Loihi through nengo-loihi; written by snnc (the same file for every network).

    python run.py --data test.npz --samples 300            # nengo-loihi's emulator of the chip
    python run.py --data test.npz --samples 300 --hardware # a Loihi board (NxSDK installed)

The network is described by network.json and weights.npz beside this file (README.md gives its
size, time step, presentation time and pause); both, and the data file, are checked
(snnc_runtime.py) before anything is built. Each population becomes an ensemble of nengo's
spiking ReLU neurons, split into Loihi cores (blocks) as snnc planned them; the samples become
one precomputed spike raster, shown back to back with the pause between them (a chip is not
reset). Samples over time, (N, T, ...), run T steps each: ``events`` input as its spikes (at most
one per input and step: an input axon carries one), regular and Poisson input at each step's
rate. Spikes of the readout population are counted in each sample's presentation window.
Prints the accuracy, the cores nengo-loihi used and the chips its allocator needs; writes
results.json and outputs.npz (readout, predictions, and with --record all the spike counts per
cell). Needs nengo and nengo-loihi 1.1.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

if __package__:  # imported from snnc (snnc.targets.loihi.run_loihi)
    from snnc.ir import runtime
else:  # run as out/run.py, with snnc_runtime.py beside it
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent
KINDS = ("dense", "conv", "sparse")
MAX_CORES_PER_CHIP = 128
MAX_COMPARTMENTS = 1024


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line: the common run-script arguments plus --hardware, --record and --chunk."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, presentation_time=True)
    p.add_argument("--hardware", action="store_true", help="run on a Loihi board (nengo-loihi's target 'loihi')")
    p.add_argument(
        "--record",
        choices=("readout", "all"),
        default="readout",
        help="probe the readout population only, or every population (memory: steps x neurons)",
    )
    p.add_argument(
        "--chunk",
        type=runtime.bounded(int, 1, 100_000),
        default=500,
        help="samples per build of the chip: they run back to back, each chunk from a reset chip (memory)",
    )
    return p.parse_args(argv)


def check_network(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the loihi target (see targets/loihi/target.py)."""
    cells = runtime.check_cells(network)
    runtime.number(network, "pause", "network.json", 0.0, 1e7)
    runtime.integer(network, "chips", "network.json", 1, 1_000_000)
    runtime.integer(network, "cores_per_chip", "network.json", 1, MAX_CORES_PER_CHIP)
    runtime.choice(cells[0], "encoding", "network.json: cells[0]", ("poisson", "regular", "events"))
    if runtime.number(cells[0], "max_rate", "network.json: cells[0]") * network["dt"] > 1000.0:
        raise runtime.Invalid("network.json: cells[0].max_rate", "is above one spike per time step")
    for i, cell in enumerate(cells[1:], start=1):
        where = f"network.json: cells[{i}]"
        runtime.array(arrays, cell, "i_offset", where, (cell["size"],))
        runtime.cell_shape(cell, where)
        runtime.number(cell, "v_thresh", where, 0.0, 1e30, low_open=True)
        runtime.integer(cell, "per_core", where, 1, MAX_COMPARTMENTS)
        runtime.choice(cell, "readout", where, (None, "spike_count"))
    for j, proj in enumerate(runtime.entries(network, "projections", "network.json", dict, 1)):
        where = f"network.json: projections[{j}]"
        pre, post = runtime.projection_ends(proj, cells, where)
        kind = runtime.choice(proj, "kind", where, KINDS)
        if kind == "dense":
            runtime.array(arrays, proj, "weights", where, (post["size"], pre["size"]))
        elif kind == "conv":
            check_conv(proj, pre, post, arrays, where)
        else:
            runtime.synapse_list(arrays, proj, pre, post, where)


def conv_output(size: int, kernel: int, stride: int, padding: str) -> int:
    """nengo's output size of a convolution along one axis."""
    return -(-size // stride) if padding == "same" else (size - kernel) // stride + 1


def check_conv(proj: dict, pre: dict, post: dict, arrays: dict, where: str) -> None:
    """A conv projection: a (kh, kw, in, out) kernel between two population (C, H, W) cells that
    nengo's Convolution with these strides and padding turns into each other."""
    if pre["kind"] != "population" or len(pre["shape"]) != 3 or len(post["shape"]) != 3:
        raise runtime.Invalid(where, "a conv projection joins two (C, H, W) populations")
    kernel_size = runtime.entries(proj, "kernel_size", where, int, 2)
    strides = runtime.entries(proj, "strides", where, int, 2)
    padding = runtime.choice(proj, "padding", where, ("valid", "same"))
    if len(kernel_size) != 2 or len(strides) != 2 or min(kernel_size + strides) < 1:
        raise runtime.Invalid(f"{where}.kernel_size", "kernel_size and strides are two positive integers")
    runtime.array(arrays, proj, "kernel", where, (*kernel_size, pre["shape"][0], post["shape"][0]))
    out = [conv_output(n, k, s, padding) for n, k, s in zip(pre["shape"][1:], kernel_size, strides, strict=True)]
    if out != post["shape"][1:]:
        raise runtime.Invalid(where, f"the convolution makes {out}, the population is {post['shape'][1:]}")


def raster(x: np.ndarray, source: dict, dt: float, steps: int, pause: int, rng: np.random.Generator) -> np.ndarray:
    """The input spikes of every sample back to back, (samples * (steps + pause), inputs) booleans:
    snnc's regular code (a phase from 0 per sample, as the reference simulator) or Poisson."""
    p = x.astype(np.float32) * np.float32(source["gain"]) * np.float32(source["max_rate"] / 1000.0 * dt)
    out = np.zeros((len(x), steps + pause, x.shape[1]), bool)
    if source["encoding"] == "poisson":
        out[:, :steps] = rng.random((len(x), steps, x.shape[1]), dtype=np.float32) < p[:, None, :]
        return out.reshape(-1, x.shape[1])
    phase = np.zeros_like(p)
    for k in range(steps):
        phase += p
        fired = phase >= 1.0
        phase -= fired
        out[:, k] = fired
    return out.reshape(-1, x.shape[1])


def timed_raster(x: np.ndarray, source: dict, dt: float, pause: int, rng: np.random.Generator) -> np.ndarray:
    """The input spikes of samples over time ``x`` (samples, T, inputs) back to back,
    (samples * (T + pause), inputs) booleans: ``events`` as they are, regular and Poisson at
    each step's rate (:func:`runtime.timed_spike_counts`)."""
    if source["encoding"] == "events" and source["gain"] != 1.0:
        raise runtime.Invalid(
            "network.json: cells[0].gain",
            f"{source['gain']:g}: an input spike on Loihi has weight 1; compile with calibration data whose "
            "largest count is 1 (normalize then leaves the gain at 1)",
        )
    why = "a Loihi input axon carries one spike per step"
    counts = runtime.timed_spike_counts(x, source, dt, rng, most=1, why=why)
    out = np.zeros((len(x), x.shape[1] + pause, x.shape[2]), bool)
    out[:, : x.shape[1]] = counts > 0
    return out.reshape(-1, x.shape[2])


@functools.cache
def spike_raster() -> type:
    """A nengo process of precomputed input spikes injected into the chip, built as nengo-loihi
    builds its DVS file input (a SpikeInput with every spike added in advance)."""
    from nengo_loihi.builder import Builder
    from nengo_loihi.inputs import ChipProcess, SpikeInput

    class SpikeRaster(ChipProcess):
        def __init__(self, rows: np.ndarray) -> None:
            self.rows = rows
            super().__init__(default_size_in=0, default_size_out=rows.shape[1])

        def make_step(self, shape_in: Any, shape_out: Any, dt: float, rng: Any, state: Any) -> Any:
            return lambda t: np.zeros(shape_out)

    @Builder.register(SpikeRaster)
    def build_raster(model: Any, process: SpikeRaster, node: Any = None) -> Any:
        source = SpikeInput(process.rows.shape[1], label="raster")
        for step, row in enumerate(process.rows, start=1):
            source.add_spikes(step, row.nonzero()[0], permanent=True)
        model.add_input(source)
        return source

    return SpikeRaster


def build(network: dict, arrays: dict, spikes: np.ndarray, record: str) -> tuple[Any, dict[int, Any]]:
    """The nengo network of network.json fed by ``spikes``; its probes by cell."""
    import nengo
    import nengo_loihi

    dt_s = network["dt"] / 1000.0
    cells = network["cells"]
    objects: dict[int, Any] = {}
    probes: dict[int, Any] = {}
    with nengo.Network(seed=0) as net:
        nengo_loihi.add_params(net)
        objects[0] = nengo.Node(spike_raster()(spikes), label="input")
        for i, cell in enumerate(cells[1:], start=1):
            bias = arrays[cell["i_offset"]].astype(np.float64) * network["dt"] / cell["v_thresh"] / dt_s
            relu = nengo.SpikingRectifiedLinear(initial_state={"voltage": nengo.dists.Choice([0])})
            ens = nengo.Ensemble(
                cell["size"], 1, neuron_type=relu, gain=np.ones(cell["size"]), bias=bias, label=f"cell{i}"
            )
            net.config[ens].block_shape = nengo_loihi.BlockShape((cell["per_core"],), (cell["size"],))
            objects[i] = ens.neurons
            if record == "all" or cell["readout"]:
                probes[i] = nengo.Probe(ens.neurons)
        for proj in network["projections"]:
            pre, post = proj["pre"], proj["post"]
            scale = 1.0 / cells[post]["v_thresh"]
            used = senders(proj, cells, arrays)
            if used == 0:  # a synapse list without synapses
                continue
            source = objects[pre] if used == cells[pre]["size"] else objects[pre][:used]
            nengo.Connection(source, objects[post], transform=transform(proj, cells, arrays, scale, used), synapse=None)
    return net, probes


def senders(proj: dict, cells: list, arrays: dict) -> int:
    """How many of the pre cell's neurons a projection connects from: a synapse list's leading
    ones up to the last with a synapse (nengo-loihi 1.1's ``Core.add_synapse`` fails on a core's
    next synapse after one whose last axon has no weights; snnc's loihi_cores counts the same
    axons), else all."""
    if proj["kind"] != "sparse":
        return cells[proj["pre"]]["size"]
    indices = arrays[proj["indices"]]
    return int(indices[:, 0].max()) + 1 if len(indices) else 0


def transform(proj: dict, cells: list, arrays: dict, scale: float, senders: int) -> Any:
    """The nengo transform of a projection, in units of the post population's threshold, from the
    first ``senders`` neurons of its pre cell."""
    import nengo

    pre, post = cells[proj["pre"]], cells[proj["post"]]
    if proj["kind"] == "dense":
        return arrays[proj["weights"]].astype(np.float64) * scale
    if proj["kind"] == "conv":
        kernel = arrays[proj["kernel"]].astype(np.float64) * scale
        return nengo.Convolution(
            kernel.shape[3],
            tuple(pre["shape"]),
            kernel_size=tuple(proj["kernel_size"]),
            strides=tuple(proj["strides"]),
            padding=proj["padding"],
            channels_last=False,
            init=kernel,
        )
    indices = arrays[proj["indices"]][:, ::-1].astype(np.int64)  # (post, pre)
    weights = arrays[proj["weights"]].astype(np.float64) * scale
    return nengo.transforms.Sparse((post["size"], senders), indices=indices, init=weights)


def simulate(
    network: dict, arrays: dict, x: np.ndarray, duration: float, args: argparse.Namespace
) -> tuple[dict[int, np.ndarray], dict[str, Any], float, float]:
    """Show ``x`` back to back on nengo-loihi, ``--chunk`` samples per build of the chip (each
    chunk starts from a reset chip, so memory stays bounded); return per probed cell the spike
    counts (samples, neurons) in each presentation window, what nengo-loihi built (cores, chips,
    utilization), and the build and run seconds."""
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")  # its emulator, numpy >= 1.24
    warnings.filterwarnings("ignore", message="This version of `nengo_loihi` has not been tested")
    import nengo_loihi

    dt = network["dt"]
    steps, pause = int(round(duration / dt)), int(round(network["pause"] / dt))
    if x.ndim == 3:  # samples over time: T steps each
        steps = x.shape[1]
    rng = np.random.default_rng(args.seed)
    target = "loihi" if args.hardware else "sim"
    parts: dict[int, list[np.ndarray]] = {}
    build_time = run_time = 0.0
    built: dict[str, Any] = {}
    for first in range(0, len(x), args.chunk):
        chunk = x[first : first + args.chunk]
        start = time.perf_counter()
        source = network["cells"][0]
        if x.ndim == 3:
            spikes = timed_raster(chunk, source, dt, pause, rng)
        else:
            spikes = raster(chunk, source, dt, steps, pause, rng)
        net, probes = build(network, arrays, spikes, args.record)
        with nengo_loihi.Simulator(net, dt=dt / 1000.0, target=target, precompute=True, progress_bar=False) as sim:
            build_time += time.perf_counter() - start
            start = time.perf_counter()
            sim.run_steps(len(chunk) * (steps + pause))
            run_time += time.perf_counter() - start
            for i, probe in probes.items():
                per_step = np.rint(sim.data[probe] * (dt / 1000.0)).astype(np.int64)
                parts.setdefault(i, []).append(per_step.reshape(len(chunk), steps + pause, -1)[:, :steps].sum(axis=1))
            built = built or built_model(sim.model, network)
    return {i: np.concatenate(p) for i, p in parts.items()}, built, build_time, run_time


def built_model(model: Any, network: dict) -> dict[str, Any]:
    """Cores (nengo-loihi's blocks), the chips its Greedy allocator needs, and the fullest core."""
    from nengo_loihi.hardware.allocators import Greedy

    use = [block.utilization() for block in model.blocks]
    fullest = {k: max(u[k][0] / u[k][1] for u in use) for k in use[0]} if use else {}
    chips = math.ceil(len(model.blocks) / network["cores_per_chip"])
    try:
        chips = Greedy(cores_per_chip=network["cores_per_chip"])(model, n_chips=max(chips, 1)).n_chips
    except AssertionError:  # more chips than that: the estimate stands
        pass
    return {"cores": len(model.blocks), "chips": chips, "fullest_core": fullest}


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Run the network on nengo-loihi; write outputs.npz and results.json into --dir and return the results."""
    args = parse_args(argv)
    network, arrays, data_path, x, y = runtime.load_inputs(args.dir, args.data, args.samples, check_network)
    duration = args.presentation_time or network["presentation_time"]
    x3 = runtime.timed_inputs(network, x, args.presentation_time)
    if x3 is not None:
        duration = x3.shape[1] * network["dt"]
    counts, built, build_time, run_time = simulate(network, arrays, x if x3 is None else x3, duration, args)
    readout_cell = next(i for i, c in enumerate(network["cells"]) if c.get("readout"))
    readout = counts[readout_cell]
    results, predictions = runtime.classification(
        "loihi",
        args,
        x,
        y,
        readout,
        simulated_time_ms=duration,
        dt=network["dt"],
        build_time_s=build_time,
        run_time_s=run_time,
        data=str(data_path),
    )
    spikes = float(sum(c.sum() for c in counts.values()) / len(x)) if args.record == "all" else None
    results.update(
        backend="loihi" if args.hardware else "emulator", spikes_per_sample=spikes, pause_ms=network["pause"], **built
    )
    per_cell = {f"counts_cell{i}": c for i, c in counts.items()}
    runtime.save_classification(args.dir, results, readout, predictions, y, **per_cell)
    cores = f"{built['cores']} cores on {built['chips']} chip(s); "
    print(runtime.summary(f"loihi ({results['backend']})", results, cores))
    return results


if __name__ == "__main__":
    main()
