"""Run this spiking network on NEST through PyNN; written by snnc (the same file for every network).

    python run.py --data test.npz --samples 500

The network is described by network.json and weights.npz beside this file (README.md gives its
size, time step and presentation time); both, and the data file, are checked (snnc_runtime.py)
before anything is built. Membranes are reset between samples. Samples over time, (N, T, ...),
run T steps each: ``events`` input as that many spikes per step (repeated spike times: NEST's
spike_generator emits a spike per listed time), regular and Poisson input at each step's rate.
Prints the accuracy and writes results.json. Needs pyNN 0.13 and NEST 3 (pip install nest-simulator pyNN), and numpy.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

if __package__:  # imported from snnc (snnc.targets.nest.run_nest)
    from snnc.ir import runtime
else:  # run as out/run.py, with snnc_runtime.py beside it
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line: the common run-script arguments plus --threads."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, presentation_time=True)
    p.add_argument(
        "--threads",
        type=runtime.bounded(int, 1, 1024),
        default=1,
        help="NEST threads (spike counts do not depend on it)",
    )
    return p.parse_args(argv)


def check_network(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the nest target (see targets/nest/target.py)."""
    cells = runtime.check_cells(network)
    for i, cell in enumerate(cells[1:], start=1):
        where = f"network.json: cells[{i}]"
        runtime.array(arrays, cell, "i_offset", where, (cell["size"],))
        runtime.number(cell, "v_thresh", where)
        runtime.number(cell, "v_reset", where)
        runtime.choice(cell, "reset", where, ("zero", "subtract"))
        runtime.number(cell, "tau_m", where, 0.0, 1e12, low_open=True)
        runtime.number(cell, "tau_refrac", where, 0.0, 1e6)
        runtime.number(cell, "v_min", where, optional=True)
        runtime.number(cell, "v_init", where, -1e30, 1e30, optional=True)
        runtime.choice(cell, "readout", where, (None, "spike_count", "membrane"))
    if cells[0]["encoding"] not in ("current", "poisson", "regular", "events"):
        raise runtime.Invalid("network.json: cells[0].encoding", "must be current, poisson, regular or events")
    for j, proj in enumerate(runtime.entries(network, "projections", "network.json", dict, 1)):
        where = f"network.json: projections[{j}]"
        pre, post = runtime.projection_ends(proj, cells, where)
        runtime.choice(proj, "receptor", where, ("excitatory", "inhibitory", "mixed"))
        runtime.connection_list(arrays, proj, pre, post, where)


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict, Path, np.ndarray, np.ndarray]:
    """(network, arrays, data path, x (N, inputs) in the network's C, H, W order, y), all checked."""
    return runtime.load_inputs(args.dir, args.data, args.samples, check_network)


class Network:
    """The PyNN populations and projections of network.json."""

    def __init__(self, sim: Any, nest: Any, network: dict, arrays: dict, timed: bool = False) -> None:
        self.sim = sim
        self.timed = timed  # samples over time: spike sources hold precomputed spike times
        self.cells = network["cells"]
        self.pops = []
        self.current_inputs = []  # (source index, post index, connection array): drive W @ x
        for cell in self.cells:
            self.pops.append(self._population(cell, arrays))
        for proj in network["projections"]:
            conn = arrays[proj["connections"]]
            pre = self.cells[proj["pre"]]
            if pre["kind"] == "source" and pre["encoding"] == "events":  # a count of c adds c * gain * w
                conn = conn * np.array([1.0, 1.0, pre["gain"]])
            if pre["kind"] == "source" and pre["encoding"] == "current":
                self.current_inputs.append((proj["pre"], proj["post"], conn))
                continue
            if proj["receptor"] == "mixed":
                raise runtime.Invalid("mixed-sign projection; compile with the split-signs pass")
            # nest.Connect with arrays builds millions of synapses in C++; PyNN's FromListConnector
            # loops in Python. A delta synapse has one receptor: inhibition is the negative weight.
            pre_ids = self._senders(proj["pre"])[conn[:, 0].astype(np.int64)]
            post_ids = np.asarray(self.pops[proj["post"]].all_cells, dtype=np.int64)[conn[:, 1].astype(np.int64)]
            syn = {"synapse_model": "static_synapse", "weight": conn[:, 2], "delay": np.full(len(conn), proj["delay"])}
            nest.Connect(pre_ids, post_ids, "one_to_one", syn)
        self.neurons = [i for i, c in enumerate(self.cells) if c["kind"] == "population"]
        # All neurons in one NodeCollection, so a sample costs one SetStatus call: NEST's
        # per-call overhead grows with the recorded spikes, and PyNN's set() makes several.
        ids = np.concatenate([np.asarray(self.pops[i].all_cells, dtype=np.int64) for i in self.neurons])
        self.order = np.argsort(ids)
        self.all_neurons = nest.NodeCollection(ids[self.order].tolist())
        self.offsets = np.cumsum([0] + [self.cells[i]["size"] for i in self.neurons])
        self.base_current = np.concatenate([arrays[self.cells[i]["i_offset"]] for i in self.neurons])
        starts = [np.full(self.cells[i]["size"], self.cells[i].get("v_init") or 0.0) for i in self.neurons]
        self.v_start = np.concatenate(starts)  # every sample starts from v_init (mV), in the order of self.neurons

    def _senders(self, i: int) -> np.ndarray:
        """The NEST nodes whose spikes cell ``i``'s projections carry: a spike-time source's
        spike_generators themselves (a generator's spike stamped t reaches a neuron at t + delay,
        as a neuron's does; PyNN's parrots would add a step), else the cell's neurons or parrots."""
        pop = self.pops[i]
        if isinstance(pop.celltype, self.sim.SpikeSourceArray):
            return np.asarray(pop.node_collection_source.tolist(), dtype=np.int64)
        return np.asarray(pop.all_cells, dtype=np.int64)

    def _population(self, cell: dict, arrays: dict) -> Any:
        sim = self.sim
        if cell["kind"] == "source":
            if cell["encoding"] == "current":
                return None
            if cell["encoding"] == "poisson" and not self.timed:
                return sim.Population(cell["size"], sim.SpikeSourcePoisson(rate=0.0))
            return sim.Population(cell["size"], sim.SpikeSourceArray(spike_times=[]))
        membrane = cell["readout"] == "membrane"
        params = {
            "v_rest": 0.0,
            "v_reset": cell["v_reset"],
            "cm": 1.0,
            "tau_m": cell["tau_m"],
            "v_thresh": 1e12 if membrane else cell["v_thresh"],
            "tau_refrac": cell["tau_refrac"],
            "i_offset": arrays[cell["i_offset"]],
        }
        if cell["reset"] != "zero":
            raise runtime.Invalid("PyNN cells reset to v_reset; compile with reset=zero")
        pop = sim.Population(cell["size"], sim.IF_curr_delta(**params))
        if cell.get("v_min") is not None:  # a floor: iaf_psc_delta's V_min, which PyNN does not map
            pop.node_collection.set(V_min=cell["v_min"])
        return pop

    def present(self, sample: np.ndarray, start: float, duration: float, dt: float) -> None:
        """Reset membranes and set this sample's input currents, rates or spike times; for samples
        over time ``sample`` is the source's spike counts per step, (T, inputs)."""
        current = self.base_current.copy()  # nA, in the order of self.neurons
        for src, post, conn in self.current_inputs:
            value = sample * self.cells[src]["gain"]
            first = self.offsets[self.neurons.index(post)]
            current[first : first + self.cells[post]["size"]] += np.bincount(
                conn[:, 1].astype(np.int64),
                conn[:, 2] * value[conn[:, 0].astype(np.int64)],
                minlength=self.cells[post]["size"],
            )
        self.all_neurons.set(V_m=self.v_start[self.order].tolist(), I_e=(current[self.order] * 1000.0).tolist())  # pA
        for i, cell in enumerate(self.cells):
            if cell["kind"] != "source" or cell["encoding"] == "current":
                continue
            if self.timed:
                self._spike_times(i, runtime.event_spike_times(sample[None], np.array([start]), dt, 1), dt)
                continue
            rate = sample * cell["gain"] * cell["max_rate"]  # Hz
            if cell["encoding"] == "poisson":
                self.pops[i].set(rate=rate)
            else:
                steps = int(round(duration / dt))
                trains = runtime.regular_spike_times((rate / 1000.0 * dt)[None], np.array([start]), steps, dt, 1)
                self._spike_times(i, trains, dt)

    def _spike_times(self, i: int, trains: list, dt: float) -> None:
        """Cell ``i``'s spike_generators emit ``trains`` (ms, on the grid; a time listed c times is
        c spikes): a spike at step k of a window from ``start`` is stamped start + (k + 1) * dt,
        as a neuron spiking in that step, and arrives at step k + delay."""
        generators = self.pops[i].node_collection_source
        generators.set([{"spike_times": (np.round(t / dt) * dt).tolist()} for t in trains])

    def silence(self) -> None:
        """No input at all: spikes still in flight arrive, nothing new starts."""
        self.all_neurons.set(I_e=0.0)
        for i, cell in enumerate(self.cells):
            if cell["kind"] == "source" and cell["encoding"] == "poisson" and not self.timed:
                self.pops[i].set(rate=0.0)


def count_spikes(
    recorder: Any, node_ids: np.ndarray, starts: np.ndarray, duration: float, n_samples: int
) -> np.ndarray:
    """(samples, neurons) spike counts in each presentation window (start, start + duration]."""
    events = recorder.get("events")
    senders, times = np.asarray(events["senders"]), np.asarray(events["times"])
    sample = np.searchsorted(starts, times, side="left") - 1
    keep = (sample >= 0) & (times <= starts[np.maximum(sample, 0)] + duration + 1e-9)
    index = np.searchsorted(node_ids, senders[keep])
    counts = np.zeros((n_samples, len(node_ids)), np.int64)
    np.add.at(counts, (sample[keep], index), 1)
    return counts


def simulate(
    network: dict, arrays: dict, x: np.ndarray, duration: float, seed: int, threads: int
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Show the samples ``x`` one after another for ``duration`` ms each, membranes reset between
    them (samples over time: the source's spike counts, (N, T, inputs)); return (readout
    (samples, outputs), spikes per sample, build seconds, run seconds)."""
    dt = network["dt"]
    max_delay = max([p["delay"] for p in network["projections"]] + [dt])
    flush = (len(network["cells"]) + 1) * max_delay + max(c.get("tau_refrac", 0.0) for c in network["cells"])

    warnings.filterwarnings("ignore", module="nest")  # NEST 3.10 flags PyNN 0.13's older calls
    import nest
    import pyNN.nest as sim

    start_build = time.perf_counter()
    sim.setup(
        timestep=dt,
        min_delay=dt,
        max_delay=max(max_delay, dt),
        spike_precision="on_grid",
        rng_seed=seed + 1,
        threads=threads,
    )
    net = Network(sim, nest, network, arrays, timed=x.ndim == 3)
    for pop in net.pops:  # PyNN connects a spike source's generators to its parrots in run(), unused here
        if pop is not None and getattr(pop, "_deferred_parrot_connections", False):
            pop._connect_parrot_neurons()
    recorders = {}
    for i in net.neurons:
        rec = nest.Create("spike_recorder")
        nest.Connect(net.pops[i].node_collection, rec, syn_spec={"delay": dt})
        recorders[i] = rec
    build_time = time.perf_counter() - start_build

    ids = {i: np.asarray(net.pops[i].node_collection.tolist()) for i in net.neurons}
    counts = {i: np.zeros((len(x), len(ids[i])), np.int64) for i in net.neurons}
    membrane, t = {}, sim.get_current_time()
    start_run = time.perf_counter()
    for k in range(len(x)):
        net.present(x[k], t, duration, dt)
        nest.Simulate(duration)  # NEST directly: PyNN's run() queries the kernel status each time
        for i in net.neurons:
            if net.cells[i]["readout"] == "membrane":
                membrane.setdefault(i, []).append(np.asarray(net.pops[i].node_collection.get("V_m")))
        net.silence()
        nest.Simulate(flush)
        for i in net.neurons:  # this sample's spikes, then an empty recorder (memory stays flat)
            counts[i][k] = count_spikes(recorders[i], ids[i], np.array([t]), duration, 1)[0]
            recorders[i].n_events = 0
        t += duration + flush
    run_time = time.perf_counter() - start_run

    totals = np.zeros(len(x))
    readout = None
    for i in net.neurons:
        totals += counts[i].sum(axis=1)
        if net.cells[i]["readout"] is not None and readout is None:
            readout = np.asarray(membrane[i]) if i in membrane else counts[i]
    sim.end()
    return readout, totals, build_time, run_time


def inputs_over_time(network: dict, x: np.ndarray, args: argparse.Namespace) -> Optional[np.ndarray]:
    """For samples over time, the source's spike counts (N, T, inputs), which set the window (T
    steps); None for samples of one presentation. Exits with one line where they cannot run."""
    x3 = runtime.timed_inputs(network, x, args.presentation_time)
    if x3 is None:
        return None
    return runtime.timed_spike_counts(x3, network["cells"][0], network["dt"], np.random.default_rng(args.seed))


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Run the network on NEST; write outputs.npz and results.json into --dir and return the results."""
    args = parse_args(argv)
    network, arrays, data_path, x, y = load_inputs(args)
    duration = args.presentation_time or network["presentation_time"]
    shown = inputs_over_time(network, x, args)
    if shown is not None:
        duration = shown.shape[1] * network["dt"]
    readout, totals, build_time, run_time = simulate(
        network, arrays, x if shown is None else shown, duration, args.seed, args.threads
    )
    results, predictions = runtime.classification(
        "nest",
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
    results["spikes_per_sample"] = float(totals.mean())
    runtime.save_classification(args.dir, results, readout, predictions, y)
    print(runtime.summary("nest", results))
    return results


if __name__ == "__main__":
    main()
