"""Run this spiking network on SpiNNaker with sPyNNaker 7; written by snnc (the same file for every network).

    python run.py --samples 100 [--data test.npz] [--time-scale-factor 2]

The network is described by network.json and weights.npz beside this file (both, and the data
file, are checked (snnc_runtime.py) before anything is built); spynnaker.cfg selects the machine
(virtual until you point it at a real board). The network's parallel instances each take a
contiguous block of the samples and show them one after another, each sample followed by a pause
of silence (README.md gives the times). Samples over time, (N, T, ...), run T steps each:
``events`` input as that many spikes per step (a time listed c times in a SpikeSourceArray is
c packets, c spikes), regular input at each step's rate. Writes results.json (accuracy, when the network really
ran) and placements.json (every core sPyNNaker used, with the population, instance and slice it
holds; a core of a grid whose channels share one population is named by its channel, as snnc's
report.json plans it). Needs sPyNNaker 7 and numpy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

if __package__:  # imported from snnc (snnc.targets.spinnaker.run_spinnaker)
    from snnc.ir import runtime
else:  # run as out/run.py, with snnc_runtime.py beside it
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent
PARAMS = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_refrac")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line: the common run-script arguments, --presentation-time and --time-scale-factor."""
    p = runtime.argument_parser(__doc__, HERE, presentation_time=True)
    p.add_argument(
        "--time-scale-factor",
        type=runtime.bounded(int, 1, 10_000),
        help="slow-down against real time (default: spynnaker.cfg)",
    )
    return p.parse_args(argv)


def check_network(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the spinnaker target (see targets/spinnaker/target.py).
    Each list projection's synapses, checked, spelled out and sorted by pre, then post, go to
    ``arrays["projections/J"]`` as (pre, post, weight) rows (no key of weights.npz holds a slash)."""
    cells = runtime.check_cells(network)
    top = "network.json"
    runtime.number(network, "pause", top, 0.0, 1e7)
    runtime.integer(network, "instances", top, 1, 1_000_000)
    runtime.integer(network, "time_scale_factor", top, 1, 10_000)
    runtime.choice(network, "board", top, ("spinn3", "spinn5"))
    if cells[0].get("encoding", "regular") not in ("regular", "events"):
        raise runtime.Invalid(f"{top}: cells[0].encoding", "must be regular or events")
    for i, cell in enumerate(cells):
        where = f"{top}: cells[{i}]"
        grid = runtime.choice(cell, "grid", where, (True, False))
        runtime.choice(cell, "split", where, (True, False) if grid else (False,))
        per_core = runtime.entries(cell, "per_core", where, int, 1)
        if len(per_core) != (2 if grid else 1) or min(per_core) < 1 or (grid and len(cell["shape"]) != 3):
            raise runtime.Invalid(f"{where}.per_core", f"{per_core} does not fit shape {cell['shape']}")
        if i:
            _check_population(cell, arrays, where)
    for j, proj in enumerate(runtime.entries(network, "projections", top, dict, 1)):
        _check_projection(proj, cells, arrays, f"{top}: projections[{j}]", f"projections/{j}")


def _check_population(cell: dict, arrays: dict, where: str) -> None:
    runtime.entries(cell, "shape", where, int, 1)
    runtime.array(arrays, cell, "i_offset", where, (cell["size"],))
    runtime.choice(cell, "readout", where, (None, "spike_count"))
    runtime.choice(cell, "model", where, ("IF_curr_delta", "IF_trunc_delta"))
    params = cell.get("params")
    if not isinstance(params, dict) or not set(params) <= set(PARAMS):
        raise runtime.Invalid(f"{where}.params", f"must be an object with keys among {', '.join(PARAMS)}")
    for key in params:
        positive = key in ("tau_m", "cm")
        runtime.number(params, key, f"{where}.params", 0.0, 1e12 if positive else math.inf, low_open=positive)
    summed = cell.get("max_expected_summed_weight")
    if summed is not None:
        ok = (
            isinstance(summed, list)
            and len(summed) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e30 for v in summed)
        )
        if not ok:
            raise runtime.Invalid(f"{where}.max_expected_summed_weight", "must be null or two positive numbers")


def populations(cell: dict) -> int:
    """How many PyNN populations make a cell: one per channel for a split grid, else one."""
    return cell["shape"][0] if cell["split"] else 1


def _check_projection(proj: dict, cells: list, arrays: dict, where: str, key: str) -> None:
    pre, post = runtime.projection_ends(proj, cells, where)
    kind = runtime.choice(proj, "kind", where, ("list", "conv", "pool", "pool_dense"))
    if kind != "list" and not pre["grid"]:
        raise runtime.Invalid(where, f"a {kind} projection needs a grid population before it")
    if kind in ("conv", "pool") and (not post["grid"] or pre["split"] != post["split"]):
        raise runtime.Invalid(where, f"a {kind} projection joins two grids both split or both stacked")
    if kind == "list":
        receptor = runtime.choice(proj, "receptor", where, ("excitatory", "inhibitory", "mixed"))
        if not isinstance(proj.get("synapses"), dict):
            raise runtime.Invalid(f"{where}.synapses", "must be an object")
        rows = runtime.stored_connections(arrays, proj["synapses"], pre, post, f"{where}.synapses")
        wrong = {"excitatory": ("negative", rows[:, 2] < 0), "inhibitory": ("positive", rows[:, 2] > 0)}
        if receptor in wrong and wrong[receptor][1].any():
            raise runtime.Invalid(f"{where}.synapses", f"{wrong[receptor][0]} weights in an {receptor} list")
        # sPyNNaker 7.4's FromListConnector sizes its synaptic rows by grouping the list without
        # sorting it first, so an unsorted list overstates row lengths.
        arrays[key] = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    elif kind == "conv":
        groups = runtime.integer(proj, "groups", where, 1, 1_000_000)
        padding = runtime.entries(proj, "padding", where, int, 2)
        offset = runtime.integer(proj, "channel_offset", where, 0, 1_000_000) if "channel_offset" in proj else 0
        kernels = runtime.array(arrays, proj, "kernels", where, (None, None, None, None))
        out_c, in_per_group = kernels.shape[:2]
        odd = all(k % 2 == 1 for k in kernels.shape[2:])
        if len(padding) != 2 or not 0 <= min(padding) <= max(padding) <= 10_000 or not odd:
            raise runtime.Invalid(f"{where}.padding", f"{padding} with kernels {list(kernels.shape[2:])}")
        same = pre["split"] or (out_c == 1 and offset == 0 and pre["shape"] == post["shape"])
        fits = same and out_c + offset <= populations(post)
        if not fits or out_c % groups or in_per_group * groups != populations(pre):
            raise runtime.Invalid(
                f"{where}.kernels",
                f"shape {list(kernels.shape)} does not fit {pre['shape']} -> {post['shape']} in {groups} group(s)",
            )
    elif kind == "pool":
        pool = runtime.entries(proj, "pool", where, int, 2)
        _, h, w = pre["shape"]
        stacked = pre["split"] or (h % pool[0] == 0 and w % pool[1] == 0)  # no window across two channels
        if len(pool) != 2 or min(pool) < 1 or post["shape"][0] != pre["shape"][0] or not stacked:
            raise runtime.Invalid(f"{where}.pool", f"{pool} does not fit {pre['shape']} -> {post['shape']}")
        runtime.number(proj, "scale", where)
    else:
        c, h, w = pre["shape"]
        n = populations(pre)
        runtime.array(arrays, proj, "weights", where, (n, w, h * c // n, post["size"]))


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict, Path, np.ndarray, np.ndarray]:
    """(network, arrays, data path, x (N, inputs) in the network's C, H, W order, y), all checked."""
    return runtime.load_inputs(args.dir, args.data, args.samples, check_network)


def population_label(cell: int, channel: Optional[int], instance: int) -> str:
    """A PyNN population's label. Labels are data, not model names: cell index, channel, instance."""
    return f"c{cell}" + ("" if channel is None else f"ch{channel}") + f"i{instance}"


class Instance:
    """One copy of the network: a list of PyNN populations per cell (one per channel for split
    grids); ``stacked`` maps the label of each stacked grid population to (cell index, instance,
    the cell's (C, H, W))."""

    def __init__(
        self, sim: Any, grid2d: Any, network: dict, arrays: dict, number: int, x: np.ndarray, starts: np.ndarray
    ) -> None:
        self.sim, self.grid2d, self.network, self.arrays, self.number = sim, grid2d, network, arrays, number
        self.pops, self.stacked = [], {}
        for i, cell in enumerate(network["cells"]):
            self.pops.append(self._populations(i, cell, x, starts))
        for j, proj in enumerate(network["projections"]):
            self._connect(proj, arrays.get(f"projections/{j}"))

    def label(self, cell: int, channel: Optional[int] = None) -> str:
        return population_label(cell, channel, self.number)

    def _populations(self, i: int, cell: dict, x: np.ndarray, starts: np.ndarray) -> list:
        sim, net = self.sim, self.network
        channels = populations(cell)
        per_channel = cell["size"] // channels
        if cell["kind"] == "source":
            trains = source_trains(cell, net, x, starts)
        else:
            i_offset = self.arrays[cell["i_offset"]]
        pops = []
        for c in range(channels):
            part = slice(c * per_channel, (c + 1) * per_channel)
            kwargs = {"label": self.label(i, c if cell["split"] else None)}
            if cell["grid"]:  # atoms_shape (w, h): x fastest; a stacked cell's channels follow one another in y
                w = cell["shape"][2]
                kwargs["structure"] = self.grid2d(aspect_ratio=w / (per_channel // w))
                if not cell["split"]:
                    self.stacked[kwargs["label"]] = (i, self.number, tuple(cell["shape"]))
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

    def _connect(self, proj: dict, rows: Optional[np.ndarray]) -> None:
        """One projection of network.json; ``rows``: a list's synapses as :func:`check_network` spelled them out."""
        sim, arrays = self.sim, self.arrays
        pre, post = self.pops[proj["pre"]], self.pops[proj["post"]]
        delay = proj["delay"]
        if proj["kind"] == "list":
            for (i, o, receptor), part in synapse_lists(rows, proj["receptor"], pre, post):
                part = np.column_stack([part, np.full(len(part), delay)])
                sim.Projection(
                    pre[i],
                    post[o],
                    sim.FromListConnector(part),
                    synapse_type=sim.StaticSynapse(),
                    receptor_type=receptor,
                )
        elif proj["kind"] == "conv":
            kernels = arrays[proj["kernels"]]  # (out, in / groups, kh, kw): flipped, odd, rows first; per population
            out_channels, in_per_group, kh, kw = kernels.shape
            per_group = out_channels // proj["groups"]
            offset = proj.get("channel_offset", 0)
            for o in range(out_channels):
                for j in range(in_per_group):
                    if kernels[o, j].any():
                        i = (o // per_group) * in_per_group + j
                        # sPyNNaker 7.4 reads a kernel's flat weights kw at a time (kernel_shape[0] = x)
                        # and takes shapes and padding as (x, y).
                        kernel = kernels[o, j].reshape(kw, kh)
                        connector = sim.ConvolutionConnector(kernel, padding=tuple(proj["padding"]))
                        sim.Projection(pre[i], post[o + offset], connector, sim.Convolution(delay=delay))
        elif proj["kind"] == "pool":
            ky, kx = proj["pool"]
            kernel = np.array([[proj["scale"] * kx * ky]])  # sPyNNaker divides by the pool area
            for c in range(len(pre)):
                sim.Projection(
                    pre[c],
                    post[c],
                    sim.ConvolutionConnector(kernel, pool_shape=(kx, ky), pool_stride=(kx, ky)),
                    sim.Convolution(delay=delay),
                )
        else:  # pool_dense: each population of a grid into a 1-D population
            weights = arrays[proj["weights"]]  # (C, W, H, post), or (1, W, C H, post) from a stacked cell
            for c in range(len(pre)):
                sim.Projection(pre[c], post[0], sim.PoolDenseConnector(weights[c]), sim.PoolDense(delay=delay))


def synapse_lists(rows: np.ndarray, receptor: str, pre: list, post: list) -> list[tuple[tuple, np.ndarray]]:
    """A list projection's (pre index, post index, weight) rows over whole cells, split into one
    list per (pre population, post population, receptor) with indices within those populations
    (a split grid cell is one population per channel, each numbered in raster order; a stacked one
    a single population in the cell's order) and weights >= 0. The rows keep their order (sorted
    by pre, then post, as :func:`check_network` leaves them)."""
    pre_size, post_size = pre[0].size, post[0].size
    i, o, weights = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]
    inhibitory = weights < 0 if receptor == "mixed" else np.full(len(weights), receptor == "inhibitory")
    group = (i // pre_size * len(post) + o // post_size) * 2 + inhibitory
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    out = []
    for part in np.split(order, bounds) if len(order) else []:
        g = int(group[part[0]])
        split = np.column_stack([i[part] % pre_size, o[part] % post_size, np.abs(weights[part])])
        out.append(((g // 2 // len(post), g // 2 % len(post), ("excitatory", "inhibitory")[g % 2]), split))
    return out


def source_trains(cell: dict, network: dict, x: np.ndarray, starts: np.ndarray) -> list[list[float]]:
    """The source's spike times per neuron (ms) for samples ``x`` shown from ``starts``: regular
    trains of (samples, inputs) values, or of samples over time (samples, T, inputs) their
    ``events`` (a count of c at step k: the time starts + k * dt listed c times) or regular
    spikes at each step's rate."""
    dt = network["dt"]
    if x.ndim == 3:
        if cell["encoding"] == "events" and cell["gain"] != 1.0:
            raise runtime.Invalid(
                "network.json: cells[0].gain",
                f"{cell['gain']:g}: an input spike on SpiNNaker adds its weight once; compile with calibration data "
                "whose largest count is 1 (normalize then leaves the gain at 1)",
            )
        counts = runtime.timed_spike_counts(x, cell, dt, np.random.default_rng(0))
        return [t.tolist() for t in runtime.event_spike_times(counts, starts, dt)]
    steps = int(round(network["presentation_time"] / dt))
    rates = (x * cell["gain"]).astype(np.float64) * (cell["max_rate"] / 1000.0 * dt)
    return [t.tolist() for t in runtime.regular_spike_times(rates, starts, steps, dt)]


def placements(stacked: dict[str, tuple[int, int, tuple[int, int, int]]]) -> dict[str, Any]:
    """Every core sPyNNaker placed (chip, core, population label, slice per dimension) and the
    ring-buffer shifts it chose per population (snnc's weight_shift, when the mapping holds).
    A core of a stacked grid population (``stacked``: label -> (cell, instance, (C, H, W))) is given in snnc's terms,
    the channel's label and the rows within it (``channel_tile``); sPyNNaker's own in
    ``population`` and ``stacked_slice``."""
    from spynnaker.pyNN.data import SpynnakerDataView
    from spynnaker.pyNN.models.neuron import PopulationVertex

    shifts = {
        v.label: [int(e) for e in v.get_ring_buffer_shifts()]
        for v in SpynnakerDataView.iterate_vertices()
        if isinstance(v, PopulationVertex)
    }
    cores = []
    for p in SpynnakerDataView.iterate_placemements():
        app = p.vertex.app_vertex
        if app is None:
            continue  # system cores (monitors, gatherers)
        ranges = [[s.start, s.stop] for s in p.vertex.vertex_slice.dimension]
        core = {"x": p.x, "y": p.y, "p": p.p, "label": app.label, "slice": ranges}
        if app.label in stacked:
            core.update(channel_tile(app.label, ranges, *stacked[app.label]))
        cores.append(core)
    return {"cores": sorted(cores, key=lambda c: (c["label"], c["slice"])), "ring_buffer_shifts": shifts}


def channel_tile(label: str, ranges: list, cell: int, instance: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    """A core's (x, y) tile of the stacked population ``label`` (cell ``cell`` of ``instance``) as
    snnc plans it: the channel's label and its rows within that channel. A tile that straddles
    two channels cannot happen with snnc's tiles (their rows divide H): it is reported, unchanged."""
    h = shape[1]
    (x0, x1), (y0, y1) = ranges
    c = y0 // h
    if (y1 - 1) // h != c:
        return {"straddles_channels": True}
    return {
        "label": population_label(cell, c, instance),
        "slice": [[x0, x1], [y0 - c * h, y1 - c * h]],
        "population": label,
        "stacked_slice": ranges,
    }


def count_spikes(pops: list, starts: np.ndarray, duration: float) -> np.ndarray:
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


def simulate(
    network: dict, arrays: dict, x: np.ndarray, time_scale_factor: Optional[int]
) -> tuple[Optional[np.ndarray], dict[str, Any], float, float]:
    """Show the samples ``x`` on the machine spynnaker.cfg selects (the current folder's), each
    instance a block of them; return (readout spike counts (samples, outputs), None on a virtual
    board; the placements; build seconds; run seconds)."""
    dt, duration, pause = network["dt"], network["presentation_time"], network["pause"]
    instances = network["instances"]
    per_instance = math.ceil(len(x) / instances)
    starts = np.arange(per_instance) * (duration + pause)
    import pyNN.spiNNaker as sim
    from pyNN.space import Grid2D
    from spinn_utilities.config_holder import get_config_bool

    start_build = time.perf_counter()
    setup = {"timestep": dt}
    if time_scale_factor is not None:
        setup["time_scale_factor"] = time_scale_factor
    sim.setup(**setup)
    copies = []
    for i in range(instances):
        block = x[i * per_instance : (i + 1) * per_instance]
        block = np.concatenate([block, np.zeros((per_instance - len(block), *x.shape[1:]), x.dtype)])
        copies.append(Instance(sim, Grid2D, network, arrays, i, block, starts))
    readout = next(i for i, c in enumerate(network["cells"]) if c.get("readout"))
    for copy in copies:
        for pop in copy.pops[readout]:
            pop.record("spikes")
    build_time = time.perf_counter() - start_build
    start_run = time.perf_counter()
    sim.run(per_instance * (duration + pause))
    run_time = time.perf_counter() - start_run

    mapping = placements({k: v for c in copies for k, v in c.stacked.items()})
    counts = None
    if not get_config_bool("Machine", "virtual_board"):
        counts = np.concatenate([count_spikes(c.pops[readout], starts, duration) for c in copies])[: len(x)]
    sim.end()
    return counts, mapping, build_time, run_time


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Map (and on a real board run) the network; write placements.json and results.json into --dir."""
    args = parse_args(argv)
    network, arrays, data_path, x, y = load_inputs(args)
    if args.presentation_time is not None:  # spike trains and counting windows follow it
        network["presentation_time"] = args.presentation_time
    timed = runtime.timed_inputs(network, x, args.presentation_time)
    if timed is not None:  # samples over time: T steps each
        network["presentation_time"] = timed.shape[1] * network["dt"]
    shown = x if timed is None else timed
    if not (Path.home() / ".spynnaker.cfg").is_file():  # else sPyNNaker writes a template there and stops
        raise runtime.Invalid(
            f"sPyNNaker needs a user config {Path.home() / '.spynnaker.cfg'}; create it with "
            "'[Machine]' and 'version = 5' (this folder's spynnaker.cfg sets the rest)"
        )
    os.chdir(args.dir)  # sPyNNaker reads ./spynnaker.cfg and writes reports/ here
    counts, mapping, build_time, run_time = simulate(network, arrays, shown, args.time_scale_factor)
    (args.dir / "placements.json").write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")
    results = {
        "target": "spinnaker",
        "board": network["board"],
        "virtual_board": counts is None,
        "samples": len(x),
        "instances": network["instances"],
        "cores": len(mapping["cores"]),
        "simulated_time_ms": network["presentation_time"],
        "dt": network["dt"],
        "build_time_s": build_time,
        "run_time_s": run_time,
        "wall_time_s": build_time + run_time,
        "data": str(data_path),
        "accuracy": None,
    }
    if counts is not None:
        predictions = counts.argmax(axis=1)
        results["accuracy"] = float(np.mean(predictions == y))
        np.savez(args.dir / "outputs.npz", readout=counts, predictions=predictions, labels=y)
    results["ann_accuracy"] = None if args.no_ann else runtime.ann_reference(args.dir, x, y)
    runtime.write_results(args.dir, results)
    if counts is None:
        print(
            f"spinnaker: mapped {network['instances']} instance(s) onto {len(mapping['cores'])} cores of a virtual "
            f"{network['board']}; a virtual board does not spike, so no accuracy (see placements.json)"
        )
    else:
        print(f"spinnaker: accuracy {results['accuracy']:.4f} on {len(x)} samples; run {run_time:.1f} s")
    return results


if __name__ == "__main__":
    main()
