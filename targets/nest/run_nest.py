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
import math
import os
import sys
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
MAX_INSTANCES = 4096
DENSE_DRIVE = 1 << 22  # weights from a current source held as a dense matrix up to this many entries


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line: the common run-script arguments plus --threads and --instances."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, presentation_time=True)
    p.add_argument(
        "--threads",
        type=runtime.bounded(int, 1, 1024),
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        help="NEST threads (default: the CPUs this process may use; spike counts do not depend on it)",
    )
    p.add_argument(
        "--instances",
        type=runtime.bounded(int, 1, MAX_INSTANCES),
        help="copies of the network in the kernel, each showing its own samples (default: network.json's)",
    )
    return p.parse_args(argv)


def check_network(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the nest target (see targets/nest/target.py). Each
    projection's synapses, checked and spelled out, go to ``arrays["projections/J"]`` (no key of
    weights.npz holds a slash)."""
    cells = runtime.check_cells(network)
    if "instances" in network:
        runtime.integer(network, "instances", "network.json", 1, MAX_INSTANCES)
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
        runtime.integer(cell, "start", where, 0, 1_000_000)
        runtime.choice(cell, "readout", where, (None, "spike_count", "membrane"))
        if cell["reset"] == "subtract" and cell["tau_refrac"] > 0:
            raise runtime.Invalid(where, "reset by subtraction (eprop_iaf) takes tau_refrac = 0")
    if cells[0]["encoding"] not in ("current", "poisson", "regular", "events"):
        raise runtime.Invalid("network.json: cells[0].encoding", "must be current, poisson, regular or events")
    for j, proj in enumerate(runtime.entries(network, "projections", "network.json", dict, 1)):
        where = f"network.json: projections[{j}]"
        pre, post = runtime.projection_ends(proj, cells, where)
        runtime.choice(proj, "receptor", where, ("excitatory", "inhibitory", "mixed"))
        arrays[f"projections/{j}"] = runtime.stored_connections(arrays, proj, pre, post, where)


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict, Path, np.ndarray, np.ndarray]:
    """(network, arrays, data path, x (N, inputs) in the network's C, H, W order, y), all checked."""
    return runtime.load_inputs(args.dir, args.data, args.samples, check_network)


def set_nodes(nodes: Any, values: Any) -> None:
    """Set ``values`` (one dict for every node, or a list of one dict per node) on NEST ``nodes``.
    NodeCollection.set first asks every node whether it is local (0.5 s for 75,000 nodes on NEST
    3.10, twice per sample); the kernel call it ends with takes the same dictionaries in 0.08 s.
    One process holds every node here (threads, no MPI), so that question has one answer."""
    from nest.lib import hl_api_types

    kernel = getattr(hl_api_types, "nestkernel", None)
    if kernel is None or not hasattr(kernel, "llapi_set_nc_status"):  # another NEST: its public call
        nodes.set(values)
        return
    kernel.llapi_set_nc_status(nodes._datum, values if isinstance(values, list) else [values])


def current_gain(tau_m: float, dt: float) -> float:
    """The factor that makes eprop_iaf's P_i * I and iaf_psc_delta's P30 * I equal I * dt / C_m:
    NEST computes both as tau_m / C_m * (1 - exp(-dt / tau_m))."""
    return dt / (tau_m * (1.0 - math.exp(-dt / tau_m)))


class Subtracting:
    """Neurons that reset by subtraction: NEST's ``eprop_iaf`` (Bellec et al. 2020), created with
    nest.Create (PyNN's native_cell_type passes a numpy bool NEST 3.10 refuses). Its update
    (models/eprop_iaf.cpp) is, per step: v = P_v * v + P_i * i_in + (sum of arriving weights);
    v -= V_th if it spiked last step; v = max(v, V_min); spike if v >= V_th. With tau_m = 1e9 ms
    (P_v = 1 - 1e-10) and weights in mV this is snnc's IF neuron with reset by subtraction (the
    subtraction moves to the next step, before the floor, which gives the same v). Two details
    are compensated here: ``i_in`` is the previous step's current (the first step of a sample
    gets its current through the start potential instead) and P_i = tau_m / C_m * (1 - P_v)
    differs from dt / C_m by ~1e-6 relative (currents are scaled by dt / (C_m * P_i))."""

    C_M = 1000.0  # pF: 1 nF, as PyNN's cm = 1 (1 nA / 1 nF = 1 mV/ms)

    def __init__(self, nest: Any, cell: dict) -> None:
        membrane = cell["readout"] == "membrane"
        floor = cell.get("v_min")
        self.node_collection = nest.Create(
            "eprop_iaf",
            cell["size"],
            {
                "C_m": self.C_M,
                "E_L": 0.0,
                "V_m": 0.0,
                "V_th": 1e12 if membrane else cell["v_thresh"],
                "V_min": -sys.float_info.max if floor is None else floor,
                "tau_m": cell["tau_m"],
                "t_ref": 0.0,
            },
        )
        self.all_cells = np.asarray(self.node_collection.tolist(), dtype=np.int64)


class Network:
    """The populations and projections of network.json on NEST, ``instances`` times over: each
    population holds the copies one after another (instance k's neuron j is node k * size + j)
    and each projection connects copy k to copy k, so the copies show ``instances`` samples at
    once in one kernel. Per population its window start (steps after the sample's start),
    nodes, start potentials and current (nA) without input."""

    def __init__(
        self, sim: Any, nest: Any, network: dict, arrays: dict, timed: bool = False, instances: int = 1
    ) -> None:
        self.sim = sim
        self.nest = nest
        self.timed = timed  # samples over time: spike sources hold precomputed spike times
        self.instances = instances
        self.cells = [{**cell, "size": cell["size"] * instances} for cell in network["cells"]]
        self.size = [cell["size"] for cell in network["cells"]]  # of one instance
        self.dt = network["dt"]
        self.pops = [self._population(cell) for cell in self.cells]
        self.current_inputs = []  # (source, post, connections, dense weights or None): drive W @ x
        for j, proj in enumerate(network["projections"]):
            conn = arrays[f"projections/{j}"]
            pre = self.cells[proj["pre"]]
            if pre["kind"] == "source" and pre["encoding"] == "events":  # a count of c adds c * gain * w
                conn = conn * np.array([1.0, 1.0, pre["gain"]])
            if pre["kind"] == "source" and pre["encoding"] == "current":
                self.current_inputs.append((proj["pre"], proj["post"], conn, self._dense(conn, proj)))
                continue
            if proj["receptor"] == "mixed":
                raise runtime.Invalid("mixed-sign projection; compile with the split-signs pass")
            if not len(conn):  # e.g. a sign half of a kernel whose weights of that sign all meet padding
                continue  # (nest.Connect fails on empty arrays)
            conn = self._copies(conn, self.size[proj["pre"]], self.size[proj["post"]])
            # nest.Connect with arrays builds millions of synapses in C++; PyNN's FromListConnector
            # loops in Python. A delta synapse has one receptor: inhibition is the negative weight.
            pre_ids = self._senders(proj["pre"])[conn[:, 0].astype(np.int64)]
            post_ids = np.asarray(self.pops[proj["post"]].all_cells, dtype=np.int64)[conn[:, 1].astype(np.int64)]
            syn = {"synapse_model": "static_synapse", "weight": conn[:, 2], "delay": np.full(len(conn), proj["delay"])}
            nest.Connect(pre_ids, post_ids, "one_to_one", syn)
        self.neurons = [i for i, c in enumerate(self.cells) if c["kind"] == "population"]
        self.start = {i: self.cells[i]["start"] for i in self.neurons}
        self.base_current = {
            i: np.tile(np.asarray(arrays[self.cells[i]["i_offset"]], dtype=np.float64), instances) for i in self.neurons
        }
        # currents scaled to dt / C_m exactly (eprop_iaf and iaf_psc_delta alike: with tau_m = 1e9 a
        # current at the threshold otherwise falls 3e-8 short of it, and a hard reset halves that
        # neuron's rate); eprop_iaf's first step's current goes into the start potential
        self.gain, self.first_step = {}, {}
        for i in self.neurons:
            sub = isinstance(self.pops[i], Subtracting)
            self.gain[i] = current_gain(self.cells[i]["tau_m"], self.dt)
            self.first_step[i] = self.dt if sub else 0.0

    def _dense(self, conn: np.ndarray, proj: dict) -> Optional[np.ndarray]:
        """A current source's weights as a dense (pre, post) matrix where it is small (one product
        for all instances' samples); None: its connection list is summed with bincount."""
        n_pre, n_post = self.size[proj["pre"]], self.size[proj["post"]]
        if n_pre * n_post > DENSE_DRIVE:
            return None
        weights = np.zeros((n_pre, n_post))
        np.add.at(weights, (conn[:, 0].astype(np.int64), conn[:, 1].astype(np.int64)), conn[:, 2])
        return weights

    def _copies(self, conn: np.ndarray, n_pre: int, n_post: int) -> np.ndarray:
        """A connection list (pre, post, weight) for every instance, instance k's neurons shifted
        by k times its populations' sizes."""
        k = np.repeat(np.arange(self.instances, dtype=np.float64), len(conn))
        copies = np.tile(conn, (self.instances, 1))
        copies[:, 0] += k * n_pre
        copies[:, 1] += k * n_post
        return copies

    def _senders(self, i: int) -> np.ndarray:
        """The NEST nodes whose spikes cell ``i``'s projections carry: a spike-time source's
        spike_generators themselves (a generator's spike stamped t reaches a neuron at t + delay,
        as a neuron's does; PyNN's parrots would add a step), else the cell's neurons or parrots."""
        pop = self.pops[i]
        if isinstance(getattr(pop, "celltype", None), self.sim.SpikeSourceArray):
            return np.asarray(pop.node_collection_source.tolist(), dtype=np.int64)
        return np.asarray(pop.all_cells, dtype=np.int64)

    def _population(self, cell: dict) -> Any:
        sim = self.sim
        if cell["kind"] == "source":
            if cell["encoding"] == "current":
                return None
            if cell["encoding"] == "poisson" and not self.timed:
                return sim.Population(cell["size"], sim.SpikeSourcePoisson(rate=0.0))
            return sim.Population(cell["size"], sim.SpikeSourceArray(spike_times=[]))
        if cell["reset"] == "subtract":
            return Subtracting(self.nest, cell)
        membrane = cell["readout"] == "membrane"
        params = {
            "v_rest": 0.0,
            "v_reset": cell["v_reset"],
            "cm": 1.0,
            "tau_m": cell["tau_m"],
            "v_thresh": 1e12 if membrane else cell["v_thresh"],
            "tau_refrac": cell["tau_refrac"],
            "i_offset": 0.0,  # set per sample, when the population's window starts
        }
        pop = sim.Population(cell["size"], sim.IF_curr_delta(**params))
        if cell.get("v_min") is not None:  # a floor: iaf_psc_delta's V_min, which PyNN does not map
            pop.node_collection.set(V_min=cell["v_min"])
        return pop

    def currents(self, samples: np.ndarray) -> dict[int, np.ndarray]:
        """Each population's current (nA) for these samples, one per instance: its offset plus
        W @ x of current input (each instance's sums in the order of one instance's)."""
        current = {i: c.copy() for i, c in self.base_current.items()}
        for src, post, conn, dense in self.current_inputs:
            value = samples.reshape(self.instances, -1) * self.cells[src]["gain"]
            current[post] += drive(value, conn, dense, self.size[post])
        return current

    def begin(self, i: int, current: np.ndarray) -> None:
        """Population ``i``'s window starts: membranes at v_init, its current on."""
        v_m = (self.cells[i].get("v_init") or 0.0) + self.first_step[i] * current  # mV: nA / 1 nF * ms
        pairs = zip(v_m.tolist(), (current * self.gain[i] * 1000.0).tolist(), strict=True)  # I_e in pA
        set_nodes(self.pops[i].node_collection, [{"V_m": v, "I_e": c} for v, c in pairs])

    def end(self, i: int) -> None:
        """Population ``i``'s window is over: no current and membranes far below threshold, so
        nothing it still receives makes it spike (an eprop_iaf that spiked in the window's last
        step subtracts its threshold now, not from the next sample's start)."""
        set_nodes(self.pops[i].node_collection, {"I_e": 0.0, "V_m": -1e12})

    def present_sources(self, samples: np.ndarray, start: float, steps: int) -> None:
        """The spike sources' rates or spike times for these samples' window of ``steps`` steps,
        one sample per instance; for samples over time each is the source's spike counts per
        step, (T, inputs)."""
        dt = self.dt
        for i, cell in enumerate(self.cells):
            if cell["kind"] != "source" or cell["encoding"] == "current":
                continue
            if self.timed:  # (instances, T, n) -> (1, T, instances * n): the copies side by side
                counts = samples.transpose(1, 0, 2).reshape(1, samples.shape[1], -1)
                self._spike_times(i, runtime.event_spike_times(counts, np.array([start]), dt, 1))
                continue
            rate = samples.reshape(-1) * cell["gain"] * cell["max_rate"]  # Hz
            if cell["encoding"] == "poisson":
                self.pops[i].set(rate=rate)
            else:
                trains = runtime.regular_spike_times((rate / 1000.0 * dt)[None], np.array([start]), steps, dt, 1)
                self._spike_times(i, trains)

    def _spike_times(self, i: int, trains: list) -> None:
        """Cell ``i``'s spike_generators emit ``trains`` (ms, on the grid; a time listed c times is
        c spikes): a spike at step k of a window from ``start`` is stamped start + (k + 1) * dt,
        as a neuron spiking in that step, and arrives at step k + delay."""
        generators = self.pops[i].node_collection_source
        set_nodes(generators, [{"spike_times": (np.round(t / self.dt) * self.dt).tolist()} for t in trains])

    def silence_sources(self) -> None:
        """Poisson sources stop at the end of the input's window (spike times end by themselves)."""
        for i, cell in enumerate(self.cells):
            if cell["kind"] == "source" and cell["encoding"] == "poisson" and not self.timed:
                self.pops[i].set(rate=0.0)

    def schedule(self, steps: int) -> list[tuple[int, list[int], list[int]]]:
        """(step, populations whose window ends, populations whose window starts) in time order;
        -1 stands for the spike sources, whose window is the first ``steps`` steps."""
        ends = {self.start[i] + steps: [] for i in self.neurons}
        begins: dict[int, list[int]] = {self.start[i]: [] for i in self.neurons}
        ends.setdefault(steps, []).append(-1)
        for i in self.neurons:
            ends[self.start[i] + steps].append(i)
            begins[self.start[i]].append(i)
        return [(k, ends.get(k, []), begins.get(k, [])) for k in sorted(set(ends) | set(begins))]


def drive(values: np.ndarray, conn: np.ndarray, dense: Optional[np.ndarray], n_post: int) -> np.ndarray:
    """W @ x for each row x of ``values`` (instances, pre), concatenated: (instances * n_post,).
    ``dense``: W as a (pre, post) matrix, multiplied with numpy's own loops (a BLAS's threads
    would spin against NEST's); None: the connection list (pre, post, weight) summed by bincount."""
    if dense is not None:
        return np.einsum("kp,pq->kq", values, dense).reshape(-1)
    shift = n_post * np.arange(len(values), dtype=np.int64)[:, None]
    return np.bincount(
        (conn[None, :, 1].astype(np.int64) + shift).ravel(),
        (conn[None, :, 2] * values[:, conn[:, 0].astype(np.int64)]).ravel(),
        minlength=len(values) * n_post,
    )


def count_spikes(recorder: Any, node_ids: np.ndarray, starts: np.ndarray, duration: float) -> np.ndarray:
    """(windows, neurons) spike counts in the windows (start, start + duration] (NEST stamps a
    spike with the end of its step); ``starts`` ascending, the windows apart."""
    events = recorder.get("events")
    senders, times = np.asarray(events["senders"]), np.asarray(events["times"])
    window = np.searchsorted(starts + 1e-9, times, side="left") - 1
    keep = (window >= 0) & (times <= starts[np.maximum(window, 0)] + duration + 1e-9)
    counts = np.zeros((len(starts), len(node_ids)), np.int64)
    np.add.at(counts, (window[keep], np.searchsorted(node_ids, senders[keep])), 1)
    return counts


BLOCK = 20  # samples between readings of the spike recorders (NEST clears them only outside Run)


def run_wave(net: Network, samples: np.ndarray, t: float, steps: int, plan: list, pause: float, membrane: dict) -> None:
    """One sample per instance from time ``t``: each population's window begins and ends as
    ``plan`` says (Network.schedule); the output membranes are read at the end of their window."""
    import nest

    current = net.currents(samples)
    net.present_sources(samples, t, steps)
    done = 0
    for step, ending, beginning in plan:
        if step > done:
            nest.Run((step - done) * net.dt)
            done = step
        for i in ending:
            if i < 0:
                net.silence_sources()
                continue
            if net.cells[i]["readout"] == "membrane":
                v_m = np.asarray(net.pops[i].node_collection.get("V_m"))
                membrane.setdefault(i, []).extend(v_m.reshape(net.instances, -1))
            net.end(i)
        for i in beginning:
            net.begin(i, current[i])
    if pause > 0:
        nest.Run(pause)


def simulate(
    network: dict, arrays: dict, x: np.ndarray, duration: float, seed: int, threads: int, instances: int = 1
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Show the samples ``x`` in waves of one sample per instance, one wave after another, each
    population for ``duration`` ms from its start (network.json's ``start``: the steps by which
    it follows the input, so that its inputs reach it at the steps of a simulator without
    latency); return (readout (samples, outputs), spikes per sample, build seconds, run
    seconds). Samples over time: the source's spike counts, (N, T, inputs)."""
    dt = network["dt"]
    steps = int(round(duration / dt))
    max_delay = max([p["delay"] for p in network["projections"]] + [dt])
    # between samples: spikes in flight arrive at ended populations, a refractory iaf_psc_delta counts down
    pause = max(max_delay, *(c.get("tau_refrac", 0.0) for c in network["cells"]))

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
    net = Network(sim, nest, network, arrays, timed=x.ndim == 3, instances=instances)
    for pop in net.pops:  # PyNN connects a spike source's generators to its parrots in run(), unused here
        if pop is not None and getattr(pop, "_deferred_parrot_connections", False):
            pop._connect_parrot_neurons()
    recorders = {}
    for i in net.neurons:
        net.end(i)  # silent until its first window
        rec = nest.Create("spike_recorder")
        nest.Connect(net.pops[i].node_collection, rec, syn_spec={"delay": dt})
        recorders[i] = rec
    build_time = time.perf_counter() - start_build

    ids = {i: np.asarray(net.pops[i].all_cells, dtype=np.int64) for i in net.neurons}
    waves = -(-len(x) // instances)
    padding = np.zeros((waves * instances - len(x), *x.shape[1:]), x.dtype)  # fills the last wave
    shown = np.concatenate([x, padding])
    shown = shown.reshape(waves, instances, *x.shape[1:])
    counts = {i: np.zeros((waves, instances, net.size[i]), np.int64) for i in net.neurons}
    membrane, t = {}, sim.get_current_time()
    plan = net.schedule(steps)
    span = plan[-1][0] * dt + pause
    per_block = max(1, BLOCK // instances)
    start_run = time.perf_counter()
    for first in range(0, waves, per_block):
        block = range(first, min(first + per_block, waves))
        t_block = t + span * np.arange(len(block))
        with nest.RunManager():  # one Prepare per block: Run between the windows' starts and ends
            for k, t_k in zip(block, t_block, strict=True):
                run_wave(net, shown[k], t_k, steps, plan, pause, membrane)
        for i in net.neurons:  # the block's spikes, then an empty recorder (memory stays flat)
            found = count_spikes(recorders[i], ids[i], t_block + net.start[i] * dt, duration)
            counts[i][block.start : block.stop] = found.reshape(len(block), instances, -1)
            recorders[i].n_events = 0
        t += span * len(block)
    run_time = time.perf_counter() - start_run

    totals = np.zeros(len(x))
    readout = None
    for i in net.neurons:
        per_sample = counts[i].reshape(waves * instances, -1)[: len(x)]
        totals += per_sample.sum(axis=1)
        if net.cells[i]["readout"] is not None and readout is None:
            readout = np.asarray(membrane[i])[: len(x)] if i in membrane else per_sample
    sim.end()
    return readout, totals, build_time, run_time


def copies(network: dict, arrays: dict, instances: int) -> int:
    """``instances``, once the neurons and synapses of that many copies are known to fit the
    run-time limits (checked before NEST builds anything)."""
    neurons = sum(cell["size"] for cell in network["cells"]) * instances
    synapses = sum(len(arrays[f"projections/{j}"]) for j in range(len(network["projections"]))) * instances
    if neurons > runtime.MAX_NEURONS or synapses > runtime.MAX_SYNAPSES:
        raise runtime.Invalid(
            "--instances",
            f"{instances} copies make {neurons:,} neurons and {synapses:,} synapses (at most "
            f"{runtime.MAX_NEURONS:,} and {runtime.MAX_SYNAPSES:,})",
        )
    return instances


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
    instances = copies(network, arrays, min(args.instances or network.get("instances", 1), len(x)))
    readout, totals, build_time, run_time = simulate(
        network, arrays, x if shown is None else shown, duration, args.seed, args.threads, instances
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
    results["threads"] = args.threads
    results["instances"] = instances
    runtime.save_classification(args.dir, results, readout, predictions, y)
    print(runtime.summary("nest", results))
    return results


if __name__ == "__main__":
    main()
