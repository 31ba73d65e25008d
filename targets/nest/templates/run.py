"""Run this spiking network on NEST through PyNN; written by snnc (the same file for every network).

    python run.py --data test.npz --samples 500

The network is described by network.json and weights.npz beside this file (README.md gives its
size, time step and presentation time); run_checks.py checks both, and the data file, before
anything is built. Membranes are reset between samples. Prints the accuracy and writes
results.json. Needs pyNN 0.13 and NEST 3 (pip install nest-simulator pyNN), and numpy.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import run_checks

HERE = Path(__file__).resolve().parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=HERE, help="the compiled network's folder (default: this script's)")
    p.add_argument("--data", type=Path, help=".npz with x and y (default: recorded in snnc.json)")
    p.add_argument("--samples", type=int, help="number of samples (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of NEST's random numbers (Poisson input)")
    p.add_argument("--presentation-time", type=float, help="ms per sample")
    p.add_argument("--threads", type=int, default=1, help="NEST threads (spike counts do not depend on it)")
    p.add_argument("--no-ann", action="store_true", help="skip the ANN reference accuracy")
    return p.parse_args()


def load_data(args, network):
    """(path, x (N, inputs), y) of the data file, checked against the network's input and output sizes."""
    path = run_checks.data_path(args.dir, args.data)
    readout = next(c for c in network["cells"] if c.get("readout"))
    x, y = run_checks.load_samples(path, args.samples, network["cells"][0]["size"], readout["size"])
    return path, x, y


class Network:
    """The PyNN populations and projections of network.json."""

    def __init__(self, sim, nest, network, arrays):
        self.sim = sim
        self.cells = network["cells"]
        self.pops = []
        self.current_inputs = []  # (source index, post index, connection array): drive W @ x
        for cell in self.cells:
            self.pops.append(self._population(cell, arrays))
        for proj in network["projections"]:
            conn = arrays[proj["connections"]]
            pre = self.cells[proj["pre"]]
            if pre["kind"] == "source" and pre["encoding"] == "current":
                self.current_inputs.append((proj["pre"], proj["post"], conn))
                continue
            if proj["receptor"] == "mixed":
                raise SystemExit("run.py: mixed-sign projection; compile with the split-signs pass")
            # nest.Connect with arrays builds millions of synapses in C++; PyNN's FromListConnector
            # loops in Python. A delta synapse has one receptor: inhibition is the negative weight.
            pre_ids = np.asarray(self.pops[proj["pre"]].all_cells, dtype=np.int64)[conn[:, 0].astype(np.int64)]
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

    def _population(self, cell, arrays):
        sim = self.sim
        if cell["kind"] == "source":
            if cell["encoding"] == "current":
                return None
            if cell["encoding"] == "poisson":
                return sim.Population(cell["size"], sim.SpikeSourcePoisson(rate=0.0))
            return sim.Population(cell["size"], sim.SpikeSourceArray(spike_times=[]))
        membrane = cell["readout"] == "membrane"
        params = {
            "v_rest": 0.0, "v_reset": cell["v_reset"], "cm": 1.0, "tau_m": cell["tau_m"],
            "v_thresh": 1e12 if membrane else cell["v_thresh"], "tau_refrac": cell["tau_refrac"],
            "i_offset": arrays[cell["i_offset"]],
        }
        if cell["reset"] != "zero":
            raise SystemExit("run.py: PyNN cells reset to v_reset; compile with reset=zero")
        pop = sim.Population(cell["size"], sim.IF_curr_delta(**params))
        if cell.get("v_min") is not None:  # a floor: iaf_psc_delta's V_min, which PyNN does not map
            pop.node_collection.set(V_min=cell["v_min"])
        return pop

    def present(self, sample, start, duration, dt):
        """Reset membranes and set this sample's input currents, rates or spike times."""
        current = self.base_current.copy()  # nA, in the order of self.neurons
        for src, post, conn in self.current_inputs:
            value = sample * self.cells[src]["gain"]
            first = self.offsets[self.neurons.index(post)]
            current[first : first + self.cells[post]["size"]] += np.bincount(
                conn[:, 1].astype(np.int64), conn[:, 2] * value[conn[:, 0].astype(np.int64)],
                minlength=self.cells[post]["size"])
        self.all_neurons.set(V_m=[0.0] * len(current), I_e=(current[self.order] * 1000.0).tolist())  # nA -> pA
        for i, cell in enumerate(self.cells):
            if cell["kind"] != "source" or cell["encoding"] == "current":
                continue
            rate = sample * cell["gain"] * cell["max_rate"]  # Hz
            if cell["encoding"] == "poisson":
                self.pops[i].set(rate=rate)
            else:
                self.pops[i].set(spike_times=regular_spike_times(rate, start, duration, dt))

    def silence(self):
        """No input at all: spikes still in flight arrive, nothing new starts."""
        self.all_neurons.set(I_e=0.0)
        for i, cell in enumerate(self.cells):
            if cell["kind"] == "source" and cell["encoding"] == "poisson":
                self.pops[i].set(rate=0.0)


def regular_spike_times(rate_hz, start, duration, dt):
    """Evenly spaced spikes on the time grid, as snnc's reference simulator makes them."""
    sim_steps = int(round(duration / dt))
    phase = np.outer(np.arange(1, sim_steps + 1), rate_hz / 1000.0 * dt)  # (steps, n)
    counts = np.floor(phase + 1e-9)
    fired = np.diff(np.vstack([np.zeros((1, len(rate_hz))), counts]), axis=0) > 0
    import pyNN.parameters

    return [pyNN.parameters.Sequence(start + dt * (np.flatnonzero(fired[:, j]) + 1)) for j in range(len(rate_hz))]


def x_shape_nhwc(network):
    """(H, W, C) of the source, from its (C, H, W) shape."""
    c, h, w = next(cell["shape"] for cell in network["cells"] if cell["kind"] == "source")
    return h, w, c


def count_spikes(recorder, node_ids, starts, duration, n_samples):
    """(samples, neurons) spike counts in each presentation window (start, start + duration]."""
    events = recorder.get("events")
    senders, times = np.asarray(events["senders"]), np.asarray(events["times"])
    sample = np.searchsorted(starts, times, side="left") - 1
    keep = (sample >= 0) & (times <= starts[np.maximum(sample, 0)] + duration + 1e-9)
    index = np.searchsorted(node_ids, senders[keep])
    counts = np.zeros((n_samples, len(node_ids)), np.int64)
    np.add.at(counts, (sample[keep], index), 1)
    return counts


def main():
    args = parse_args()
    args.dir = args.dir.resolve()
    network = run_checks.read_json(args.dir / "network.json")
    arrays = run_checks.read_npz(args.dir / "weights.npz")
    run_checks.check_nest(network, arrays)
    if args.presentation_time is not None:
        run_checks.number(vars(args), "presentation_time", "--presentation-time", 0.0, 1e7, low_open=True)
    data_path, x, y = load_data(args, network)
    if network["input_layout"] == "NHWC":  # a channels-last model's data: the network is C, H, W
        x = x.reshape(len(x), *x_shape_nhwc(network)).transpose(0, 3, 1, 2).reshape(len(x), -1)
    dt = network["dt"]
    duration = args.presentation_time or network["presentation_time"]
    max_delay = max([p["delay"] for p in network["projections"]] + [dt])
    flush = (len(network["cells"]) + 1) * max_delay + max(c.get("tau_refrac", 0.0) for c in network["cells"])

    warnings.filterwarnings("ignore", module="nest")  # NEST 3.10 flags PyNN 0.13's older calls
    import nest
    import pyNN.nest as sim

    start_build = time.perf_counter()
    sim.setup(timestep=dt, min_delay=dt, max_delay=max(max_delay, dt), spike_precision="on_grid",
              rng_seed=args.seed + 1, threads=args.threads)
    net = Network(sim, nest, network, arrays)
    recorders = {}
    for i in net.neurons:
        rec = nest.Create("spike_recorder")
        nest.Connect(net.pops[i].node_collection, rec, syn_spec={"delay": dt})
        recorders[i] = rec
    build_time = time.perf_counter() - start_build

    starts, membrane, t = [], {}, sim.get_current_time()
    start_run = time.perf_counter()
    for k in range(len(x)):
        net.present(x[k], t, duration, dt)
        nest.Simulate(duration)  # NEST directly: PyNN's run() queries the kernel status each time
        starts.append(t)
        for i in net.neurons:
            if net.cells[i]["readout"] == "membrane":
                membrane.setdefault(i, []).append(np.asarray(net.pops[i].node_collection.get("V_m")))
        net.silence()
        nest.Simulate(flush)
        t += duration + flush
    run_time = time.perf_counter() - start_run
    starts = np.asarray(starts)

    totals = np.zeros(len(x))
    readout = None
    for i in net.neurons:
        ids = np.asarray(net.pops[i].node_collection.tolist())
        counts = count_spikes(recorders[i], ids, starts, duration, len(x))
        totals += counts.sum(axis=1)
        if net.cells[i]["readout"] is not None and readout is None:
            readout = np.asarray(membrane[i]) if i in membrane else counts
    sim.end()
    predictions = readout.argmax(axis=1)
    results = {
        "target": "nest", "samples": len(x), "accuracy": float(np.mean(predictions == y)),
        "ann_accuracy": None, "spikes_per_sample": float(totals.mean()),
        "simulated_time_ms": duration, "dt": dt, "wall_time_s": build_time + run_time,
        "build_time_s": build_time, "run_time_s": run_time,
        "samples_per_second": len(x) / run_time if run_time > 0 else None, "data": str(data_path),
    }
    if not args.no_ann:
        try:
            from snnc.runner import ann_accuracy
        except ImportError:
            print("run.py: snnc is not installed here, so no ANN reference accuracy")
        else:
            results["ann_accuracy"] = ann_accuracy(args.dir, x, y)
    np.savez(args.dir / "outputs.npz", readout=readout, predictions=predictions, labels=y)
    (args.dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    ann = results["ann_accuracy"]
    print(f"nest: accuracy {results['accuracy']:.4f} (ANN {'n/a' if ann is None else f'{ann:.4f}'}) on {len(x)} "
          f"samples; build {build_time:.1f} s, run {run_time:.1f} s ({results['samples_per_second']:.1f} samples/s)")


if __name__ == "__main__":
    main()
