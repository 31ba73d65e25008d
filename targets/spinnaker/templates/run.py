"""Run this spiking network on SpiNNaker with sPyNNaker 7; written by snnc (the same file for every network).

    python run.py --samples 100 [--data test.npz] [--time-scale-factor 2]

The network is described by network.json and weights.npz beside this file (run_checks.py checks
both, and the data file, before anything is built); spynnaker.cfg selects the machine (virtual
until you point it at a real board). The network's parallel instances each take a contiguous
block of the samples and show them one after another, each sample followed by a pause of
silence (README.md gives the times). Writes results.json (accuracy, when the network really ran)
and placements.json (every core sPyNNaker used, with the population, instance and slice it
holds). Needs sPyNNaker 7 and numpy.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import run_checks

HERE = Path(__file__).resolve().parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=HERE, help="the compiled network's folder (default: this script's)")
    p.add_argument("--data", type=Path, help=".npz with x and y (default: recorded in snnc.json)")
    p.add_argument("--samples", type=int, help="number of samples (default: all)")
    p.add_argument("--time-scale-factor", type=int, help="slow-down against real time (default: spynnaker.cfg)")
    p.add_argument("--no-ann", action="store_true", help="skip the ANN reference accuracy")
    return p.parse_args()


def load_data(args, network):
    """(path, x (N, inputs) in the network's C, H, W order, y), checked against the network."""
    path = run_checks.data_path(args.dir, args.data)
    source = network["cells"][0]
    readout = next(c for c in network["cells"] if c.get("readout"))
    x, y = run_checks.load_samples(path, args.samples, source["size"], readout["size"])
    if network["input_layout"] == "NHWC":  # a channels-last model's data: the network is C, H, W
        c, h, w = source["shape"]
        x = x.reshape(len(x), h, w, c).transpose(0, 3, 1, 2)
    return path, x.reshape(len(x), -1), y


def spike_times(values, rate_per_step, starts, steps, dt, chunk=16):
    """Regular spike trains, as snnc's simulator makes them: a neuron with value v spikes at the
    steps where floor(k * v * rate_per_step) grows (k = 1 .. steps), from each sample's start."""
    n = values.shape[1]
    neurons, times = [], []
    k = np.arange(1, steps + 1, dtype=np.float64)[None, :, None]
    for first in range(0, len(values), chunk):
        p = values[first : first + chunk, None, :].astype(np.float64) * rate_per_step
        fired = np.diff(np.floor(p * k + 1e-9), axis=1, prepend=0.0) > 0  # (samples, steps, n)
        s, step, neuron = np.nonzero(fired)
        neurons.append(neuron)
        times.append(starts[first + s] + step * dt)
    neurons, times = np.concatenate(neurons), np.concatenate(times)
    order = np.lexsort((times, neurons))
    bounds = np.searchsorted(neurons[order], np.arange(n + 1))
    times = times[order]
    return [times[bounds[i] : bounds[i + 1]].tolist() for i in range(n)]


class Instance:
    """One copy of the network: a list of PyNN populations per cell (one per channel for grids)."""

    def __init__(self, sim, grid2d, network, arrays, number, x, starts):
        self.sim, self.grid2d, self.network, self.arrays, self.number = sim, grid2d, network, arrays, number
        self.pops = []
        for i, cell in enumerate(network["cells"]):
            self.pops.append(self._populations(i, cell, x, starts))
        for proj in network["projections"]:
            self._connect(proj)

    def label(self, cell, channel=None):
        """Labels are data, not model names: cell index, channel, instance."""
        return f"c{cell}" + ("" if channel is None else f"ch{channel}") + f"i{self.number}"

    def _populations(self, i, cell, x, starts):
        sim, net = self.sim, self.network
        channels = cell["shape"][0] if cell["grid"] else 1
        per_channel = cell["size"] // channels
        if cell["kind"] == "source":
            steps = int(round(net["presentation_time"] / net["dt"]))
            rate = cell["max_rate"] / 1000.0 * net["dt"]
            trains = spike_times(x * cell["gain"], rate, starts, steps, net["dt"])
        else:
            i_offset = self.arrays[cell["i_offset"]]
        pops = []
        for c in range(channels):
            part = slice(c * per_channel, (c + 1) * per_channel)
            kwargs = {"label": self.label(i, c if cell["grid"] else None)}
            if cell["grid"]:
                h, w = cell["shape"][1:]
                kwargs["structure"] = self.grid2d(aspect_ratio=w / h)  # atoms_shape (w, h): x fastest
            if cell["kind"] == "source":
                part_trains = trains[part] if any(trains[part]) else []  # sPyNNaker 7 fails on all-empty lists
                pop = sim.Population(per_channel, sim.SpikeSourceArray(spike_times=part_trains), **kwargs)
            else:
                model = sim.IF_curr_delta if cell["model"] == "IF_curr_delta" else sim.extra_models.IFTruncDelta
                cells = model(i_offset=i_offset[part], **cell["params"])
                summed = cell["max_expected_summed_weight"]  # makes sPyNNaker use snnc's weight shifts
                extra = {"max_expected_summed_weight": summed} if summed is not None else None
                pop = sim.Population(per_channel, cells, additional_parameters=extra, **kwargs)
                pop.initialize(v=0.0)
            pop.set_max_atoms_per_core(tuple(cell["per_core"]) if cell["grid"] else cell["per_core"][0])
            pops.append(pop)
        return pops

    def _connect(self, proj):
        sim, arrays = self.sim, self.arrays
        pre, post = self.pops[proj["pre"]], self.pops[proj["post"]]
        delay = proj["delay"]
        if proj["kind"] == "list":
            conn = arrays[proj["connections"]]
            rows = np.column_stack([conn, np.full(len(conn), delay)])
            sim.Projection(pre[0], post[0], sim.FromListConnector(rows), synapse_type=sim.StaticSynapse(),
                           receptor_type=proj["receptor"])
        elif proj["kind"] == "conv":
            kernels = arrays[proj["kernels"]]  # (out, in / groups, k, k), already flipped
            out_channels, in_per_group = kernels.shape[:2]
            per_group = out_channels // proj["groups"]
            pad = (proj["padding"], proj["padding"])
            for o in range(out_channels):
                for j in range(in_per_group):
                    if kernels[o, j].any():
                        i = (o // per_group) * in_per_group + j
                        sim.Projection(pre[i], post[o], sim.ConvolutionConnector(kernels[o, j], padding=pad),
                                       sim.Convolution(delay=delay))
        elif proj["kind"] == "pool":
            k = tuple(proj["pool"])
            kernel = np.array([[proj["scale"] * k[0] * k[1]]])  # sPyNNaker divides by the pool area
            for c in range(len(pre)):
                sim.Projection(pre[c], post[c], sim.ConvolutionConnector(kernel, pool_shape=k, pool_stride=k),
                               sim.Convolution(delay=delay))
        else:  # pool_dense: each channel of a grid into a 1-D population
            weights = arrays[proj["weights"]]  # (C, W, H, post)
            for c in range(len(pre)):
                sim.Projection(pre[c], post[0], sim.PoolDenseConnector(weights[c]), sim.PoolDense(delay=delay))


def placements():
    """Every core sPyNNaker placed (chip, core, population label, slice per dimension) and the
    ring-buffer shifts it chose per population (snnc's weight_shift, when the mapping holds)."""
    from spynnaker.pyNN.data import SpynnakerDataView
    from spynnaker.pyNN.models.neuron import PopulationVertex

    shifts = {v.label: [int(e) for e in v.get_ring_buffer_shifts()]
              for v in SpynnakerDataView.iterate_vertices() if isinstance(v, PopulationVertex)}  # fmt: skip
    cores = []
    for p in SpynnakerDataView.iterate_placemements():
        app = p.vertex.app_vertex
        if app is None:
            continue  # system cores (monitors, gatherers)
        ranges = [[s.start, s.stop] for s in p.vertex.vertex_slice.dimension]
        cores.append({"x": p.x, "y": p.y, "p": p.p, "label": app.label, "slice": ranges})
    return {"cores": sorted(cores, key=lambda c: (c["label"], c["slice"])), "ring_buffer_shifts": shifts}


def count_spikes(pops, starts, duration):
    """(samples, neurons) spike counts in each presentation window, over a cell's populations."""
    counts = []
    for pop in pops:
        trains = pop.get_data("spikes").segments[0].spiketrains
        c = np.zeros((len(starts), pop.size), np.int64)
        for train in trains:
            t = np.asarray(train.magnitude)
            window = np.searchsorted(starts, t, side="right") - 1
            keep = (window >= 0) & (t < starts[np.maximum(window, 0)] + duration - 1e-9)
            np.add.at(c[:, int(train.annotations["source_index"])], window[keep], 1)
        counts.append(c)
    return np.concatenate(counts, axis=1)


def main():
    args = parse_args()
    args.dir = args.dir.resolve()
    network = run_checks.read_json(args.dir / "network.json")
    arrays = run_checks.read_npz(args.dir / "weights.npz")
    run_checks.check_spinnaker(network, arrays)
    if args.time_scale_factor is not None:
        run_checks.integer(vars(args), "time_scale_factor", "--time-scale-factor", 1, 10_000)
    data_path, x, y = load_data(args, network)
    dt, duration, pause = network["dt"], network["presentation_time"], network["pause"]
    instances = network["instances"]
    per_instance = math.ceil(len(x) / instances)
    starts = np.arange(per_instance) * (duration + pause)

    if not (Path.home() / ".spynnaker.cfg").is_file():  # else sPyNNaker writes a template there and stops
        raise SystemExit(f"run.py: sPyNNaker needs a user config {Path.home() / '.spynnaker.cfg'}; create it with "
                         "'[Machine]' and 'version = 5' (this folder's spynnaker.cfg sets the rest)")
    os.chdir(args.dir)  # sPyNNaker reads ./spynnaker.cfg and writes reports/ here
    import pyNN.spiNNaker as sim
    from pyNN.space import Grid2D

    start_build = time.perf_counter()
    setup = {"timestep": dt}
    if args.time_scale_factor is not None:
        setup["time_scale_factor"] = args.time_scale_factor
    sim.setup(**setup)
    copies = []
    for i in range(instances):
        block = x[i * per_instance : (i + 1) * per_instance]
        block = np.concatenate([block, np.zeros((per_instance - len(block), x.shape[1]), x.dtype)])
        copies.append(Instance(sim, Grid2D, network, arrays, i, block, starts))
    readout = next(i for i, c in enumerate(network["cells"]) if c.get("readout"))
    for copy in copies:
        for pop in copy.pops[readout]:
            pop.record("spikes")
    build_time = time.perf_counter() - start_build
    start_run = time.perf_counter()
    sim.run(per_instance * (duration + pause))
    run_time = time.perf_counter() - start_run

    from spinn_utilities.config_holder import get_config_bool

    virtual = get_config_bool("Machine", "virtual_board")
    mapping = placements()
    counts = None
    if not virtual:
        counts = np.concatenate([count_spikes(c.pops[readout], starts, duration) for c in copies])[: len(x)]
    sim.end()
    (args.dir / "placements.json").write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")
    results = {
        "target": "spinnaker", "board": network["board"], "virtual_board": virtual, "samples": len(x),
        "instances": instances, "cores": len(mapping["cores"]), "simulated_time_ms": duration, "dt": dt,
        "build_time_s": build_time, "run_time_s": run_time, "wall_time_s": build_time + run_time,
        "data": str(data_path),
        "accuracy": None, "ann_accuracy": None,
    }  # fmt: skip
    if counts is not None:
        predictions = counts.argmax(axis=1)
        results["accuracy"] = float(np.mean(predictions == y))
        np.savez(args.dir / "outputs.npz", readout=counts, predictions=predictions, labels=y)
    if not args.no_ann:
        try:
            from snnc.runner import ann_accuracy
        except ImportError:
            print("run.py: snnc is not installed here, so no ANN reference accuracy")
        else:
            results["ann_accuracy"] = ann_accuracy(args.dir, x, y)
    (args.dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if virtual:
        print(f"spinnaker: mapped {instances} instance(s) onto {len(mapping['cores'])} cores of a virtual "
              f"{network['board']}; a virtual board does not spike, so no accuracy (see placements.json)")
    else:
        print(f"spinnaker: accuracy {results['accuracy']:.4f} on {len(x)} samples; run {run_time:.1f} s")


if __name__ == "__main__":
    main()
