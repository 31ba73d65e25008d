"""Run this spiking network on GeNN through PyGeNN; written by snnc (the same file for every network).

    python run.py --data test.npz --samples 500 [--backend cuda --batch 64] [--conv toeplitz]

The network is described by network.json and weights.npz beside this file (README.md gives its
size, time step and presentation time); both, and the data file, are checked (snnc_runtime.py)
before anything is built. GeNN generates and compiles C++ into genn_build/ inside the network's
folder once (again only when the network or batch size changes). A batch of samples runs at
once (GeNN's CPU backend takes one); between batches the state is reset through GeNN's
variables, without a rebuild. Convolutions run on GeNN's Conv2D connectivity or as synapse lists
(--conv); other projections print why they are synapse lists. Samples over time, (N, T, ...),
run T steps each: ``events`` input as spike counts (a source neuron spikes once in a step and
its synapses add g times its count), regular and Poisson input at each step's rate. Prints the
accuracy and writes
results.json and outputs.npz (readout, predictions, spike counts per cell). Needs PyGeNN 5.4
(GeNN's install instructions), g++ and make.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

if __package__:  # imported from snnc (snnc.targets.genn.run_genn)
    from snnc.ir import runtime
else:  # run as out/run.py, with snnc_runtime.py beside it
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent
MAX_BATCH = 100_000
MAX_DELAY_STEPS = 10_000
MATRICES = ("DENSE", "SPARSE", "TOEPLITZ")
BACKENDS = ("single_threaded_cpu", "cuda")
PRECISIONS = ("float", "double")

# Integrate-and-fire of docs/snn-semantics.md, one step: decay, constant input (i_offset * dt and
# W @ x * dt), synaptic input, floor, refractory clamp, threshold, reset. Active = 0 freezes it.
IF_SIM = """
if (Active != 0) {
    V = V * Decay + Ioffset + Isyn;
    if (Floor != 0) { V = fmax(V, Vmin); }
    if (RefracTime > 0) { V = Vreset; RefracTime -= 1; }
}
"""
IF_RESET = """
if (Subtract != 0) { V -= Vthresh; } else { V = Vreset; }
RefracTime = RefracSteps;
SpikeCount += 1;
"""


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line: the common run-script arguments plus --batch, --backend and --precision."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, presentation_time=True)
    p.add_argument(
        "--batch", type=runtime.bounded(int, 1, MAX_BATCH), help="samples at once (default: the compiled instances)"
    )
    p.add_argument("--backend", choices=BACKENDS, help="GeNN's code backend (default: the compiled one)")
    p.add_argument("--precision", choices=PRECISIONS, help="GeNN's scalar type (default: the compiled one)")
    p.add_argument(
        "--conv",
        choices=("auto", "toeplitz", "sparse"),
        default="auto",
        help="convolutions on GeNN's Conv2D (TOEPLITZ) or as synapse lists; auto: TOEPLITZ on cuda, lists on a CPU, "
        "where they ran 2.2 times faster on the Fashion-MNIST CNN",
    )
    return p.parse_args(argv)


def check_network(network: Any, arrays: dict) -> None:
    """network.json and weights.npz of the genn target (see targets/genn/target.py). Each
    projection other than a TOEPLITZ kernel is checked and spelled out into
    ``arrays["projections/J"]`` (no key of weights.npz holds a slash)."""
    cells = runtime.check_cells(network)
    runtime.integer(network, "batch_size", "network.json", 1, MAX_BATCH)
    runtime.choice(network, "backend", "network.json", BACKENDS)
    runtime.choice(network, "precision", "network.json", PRECISIONS)
    for i, cell in enumerate(cells[1:], start=1):
        where = f"network.json: cells[{i}]"
        runtime.array(arrays, cell, "i_offset", where, (cell["size"],))
        runtime.cell_shape(cell, where)
        if runtime.number(cell, "v_reset", where) >= runtime.number(cell, "v_thresh", where):
            raise runtime.Invalid(f"{where}.v_reset", "must be below v_thresh")
        runtime.choice(cell, "reset", where, ("zero", "subtract"))
        runtime.number(cell, "decay", where, 0.0, 1.0)
        runtime.integer(cell, "refrac_steps", where, 0, 10**6)
        runtime.integer(cell, "start", where, 0, MAX_DELAY_STEPS)
        runtime.number(cell, "v_min", where, optional=True)
        runtime.number(cell, "v_init", where, -1e30, 1e30, optional=True)
        runtime.choice(cell, "readout", where, (None, "spike_count", "membrane"))
    runtime.choice(cells[0], "encoding", "network.json: cells[0]", ("current", "poisson", "regular", "events"))
    for j, proj in enumerate(runtime.entries(network, "projections", "network.json", dict, 1)):
        where = f"network.json: projections[{j}]"
        pre, post = runtime.projection_ends(proj, cells, where)
        kind = runtime.choice(proj, "matrix", where, MATRICES)
        reason = proj.get("reason")
        if not isinstance(reason, str) or len(reason) > 200 or not reason.isprintable():
            raise runtime.Invalid(f"{where}.reason", "must be a line of at most 200 printable characters")
        current = pre["kind"] == "source" and pre["encoding"] == "current"
        runtime.integer(proj, "delay_steps", where, 0 if current else 1, MAX_DELAY_STEPS)
        if kind == "TOEPLITZ":
            check_conv2d(proj, pre, post, arrays, where)
            continue
        arrays[f"projections/{j}"] = runtime.stored_connections(arrays, proj, pre, post, where)


def check_conv2d(proj: dict, pre: dict, post: dict, arrays: dict, where: str) -> None:
    """A TOEPLITZ projection: a (kh, kw, in, out) kernel between two (C, H, W) cells whose sizes
    GeNN's Conv2D (stride 1, the same padding on both sides) turns into each other."""
    if len(pre["shape"]) != 3 or len(post["shape"]) != 3 or pre["kind"] == "source" and pre["encoding"] == "current":
        raise runtime.Invalid(where, "a TOEPLITZ projection joins two spiking (C, H, W) cells")
    kernel = runtime.array(arrays, proj, "kernel", where, (None, None, pre["shape"][0], post["shape"][0]))
    for size_in, k, size_out in zip(pre["shape"][1:], kernel.shape[:2], post["shape"][1:], strict=True):
        border = size_in + k - 1 - size_out  # twice GeNN's conv_bh; padding = k - 1 - border / 2
        if k < 1 or border < 0 or border % 2 or border // 2 > k - 1:
            raise runtime.Invalid(f"{where}.kernel", f"a kernel of {k} does not turn {size_in} into {size_out}")


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict, Path, np.ndarray, np.ndarray]:
    """(network, arrays, data path, x (N, inputs) in the network's C, H, W order, y), all checked."""
    return runtime.load_inputs(args.dir, args.data, args.samples, check_network)


def neuron_models(genn: Any) -> dict[str, Any]:
    """snnc's GeNN neuron models: integrate-and-fire, and the regular and Poisson spike sources."""
    dup = genn.VarAccess.READ_ONLY_DUPLICATE
    integrate_and_fire = genn.create_neuron_model(
        "snnc_if",
        params=[
            "Vthresh",
            "Vreset",
            "Decay",
            "Vmin",
            ("RefracSteps", "int"),
            ("Subtract", "int"),
            ("Floor", "int"),
            ("Spiking", "int"),
            ("Active", "int"),
        ],
        vars=[("V", "scalar"), ("Ioffset", "scalar", dup), ("RefracTime", "int"), ("SpikeCount", "int")],
        sim_code=IF_SIM,
        threshold_condition_code="Spiking != 0 && Active != 0 && V >= Vthresh",
        reset_code=IF_RESET,
    )
    regular = genn.create_neuron_model(
        "snnc_regular",
        params=[("Active", "int")],
        vars=[("Phase", "scalar"), ("Rate", "scalar", dup)],
        sim_code="if (Active != 0) { Phase += Rate; }",
        threshold_condition_code="Active != 0 && Phase >= 1.0",
        reset_code="Phase -= 1.0;",
    )
    poisson = genn.create_neuron_model(
        "snnc_poisson",
        params=[("Active", "int")],
        vars=[("Fire", "int"), ("Rate", "scalar", dup)],
        sim_code="Fire = (Active != 0 && gennrand_uniform() < Rate) ? 1 : 0;",
        threshold_condition_code="Fire != 0",
    )
    events = genn.create_neuron_model(  # Sent keeps the step's count while its spikes are delivered
        "snnc_events",
        params=[("Active", "int")],
        vars=[("Count", "int", dup), ("Sent", "int")],
        sim_code="Sent = (Active != 0) ? Count : 0;",
        threshold_condition_code="Sent > 0",
    )
    return {"if": integrate_and_fire, "regular": regular, "poisson": poisson, "events": events}


def count_pulse(genn: Any) -> Any:
    """StaticPulse that adds g times the count an ``events`` source neuron sent (its Sent)."""
    return genn.create_weight_update_model(
        "snnc_count_pulse",
        vars=[("g", "scalar", genn.VarAccess.READ_ONLY)],
        pre_neuron_var_refs=[("Sent", "int", genn.VarAccessMode.READ_ONLY)],
        pre_spike_syn_code="addToPost(g * Sent);",
    )


class Network:
    """The GeNN model of network.json: one neuron population per cell (none for a current source)
    and one synapse population per projection out of a spiking cell."""

    def __init__(self, genn: Any, network: dict, arrays: dict, batch: int, args: argparse.Namespace) -> None:
        self.cells = network["cells"]
        self.dt = network["dt"]
        self.batch = batch
        self.model = genn.GeNNModel(args.precision, "snnc", backend=args.backend)
        toeplitz = args.conv == "toeplitz" or (args.conv == "auto" and args.backend == "cuda")
        self.model.dt = self.dt
        self.model.batch_size = batch
        models = neuron_models(genn)
        events = self.cells[0]["encoding"] == "events"
        self.count_pulse = count_pulse(genn) if events else None  # kept alive: GeNN refers to it
        self.pops: dict[int, Any] = {}
        self.order = [genn_order(cell["shape"]) for cell in self.cells]  # GeNN index of each snnc neuron
        for i, cell in enumerate(self.cells):
            if cell["kind"] == "population":
                self.pops[i] = self._population(models["if"], i, cell)
            elif cell["encoding"] != "current":
                vars_ = {"regular": {"Phase": 0.0, "Rate": 0.0}, "poisson": {"Fire": 0, "Rate": 0.0}}
                vars_["events"] = {"Count": 0, "Sent": 0}
                self.pops[i] = self.model.add_neuron_population(
                    f"n{i}", cell["size"], models[cell["encoding"]], {"Active": 0}, vars_[cell["encoding"]]
                )
                self.pops[i].set_param_dynamic("Active")
        self.current_inputs: list[tuple[int, np.ndarray]] = []  # (post cell, W (post, pre) float32)
        self.flush_steps = 1
        self.start = {i: cell["start"] if cell["kind"] == "population" else 0 for i, cell in enumerate(self.cells)}
        for j, proj in enumerate(network["projections"]):
            self.flush_steps = max(self.flush_steps, proj["delay_steps"])
            pre, post = proj["pre"], proj["post"]
            gain = self.cells[pre]["gain"] if self.cells[pre].get("encoding") == "events" else None  # c * gain * w
            if proj["matrix"] == "TOEPLITZ" and toeplitz:
                kernel = arrays[proj["kernel"]].astype(np.float32)
                self._conv2d(genn, j, proj, kernel if gain is None else kernel * np.float32(gain))
                continue
            if proj["matrix"] == "TOEPLITZ":
                conn = conv2d_synapses(arrays[proj["kernel"]], self.cells[pre]["shape"], self.cells[post]["shape"])
                proj = {**proj, "matrix": "SPARSE", "reason": f"--conv {args.conv} on {args.backend}"}
            else:
                conn = arrays[f"projections/{j}"]
            pre_idx, weight = conn[:, 0].astype(np.int64), conn[:, 2].astype(np.float32)
            if gain is not None:
                weight = weight * np.float32(gain)
            post_idx = self.order[post][conn[:, 1].astype(np.int64)]
            if pre not in self.pops:  # current input: W @ x joins the post population's Ioffset
                w = np.zeros((self.cells[post]["size"], self.cells[pre]["size"]), np.float32)
                np.add.at(w, (post_idx, pre_idx), weight)
                self.current_inputs.append((post, w))
                continue
            self._synapses(genn, j, proj, self.order[pre][pre_idx], post_idx, weight)
        self.base = {}
        for i, cell in self._neurons():
            self.base[i] = np.empty(cell["size"], np.float32)
            self.base[i][self.order[i]] = arrays[cell["i_offset"]].astype(np.float32) * np.float32(self.dt)

    def _neurons(self) -> list[tuple[int, dict]]:
        return [(i, c) for i, c in enumerate(self.cells) if c["kind"] == "population"]

    def _population(self, model: Any, i: int, cell: dict) -> Any:
        params = {
            "Vthresh": cell["v_thresh"],
            "Vreset": cell["v_reset"],
            "Decay": cell["decay"],
            "Vmin": cell["v_min"] if cell["v_min"] is not None else 0.0,
            "RefracSteps": cell["refrac_steps"],
            "Subtract": int(cell["reset"] == "subtract"),
            "Floor": int(cell["v_min"] is not None),
            "Spiking": int(cell["readout"] != "membrane"),
            "Active": 0,
        }
        state = {"V": cell.get("v_init") or 0.0, "Ioffset": 0.0, "RefracTime": 0, "SpikeCount": 0}
        pop = self.model.add_neuron_population(f"n{i}", cell["size"], model, params, state)
        pop.set_param_dynamic("Active")
        return pop

    def _synapses(self, genn: Any, j: int, proj: dict, pre: np.ndarray, post: np.ndarray, weight: np.ndarray) -> None:
        """A DENSE weight matrix or a SPARSE synapse list (GeNN's neuron indices)."""
        n_pre, n_post = self.cells[proj["pre"]]["size"], self.cells[proj["post"]]["size"]
        if proj["matrix"] == "DENSE":
            g = np.zeros(n_pre * n_post, np.float32)
            np.add.at(g, pre * n_post + post, weight)
        else:
            g = weight
            print(f"run.py: projection {j} as a SPARSE synapse list: {proj['reason']}")
        syn = self._add(genn, j, proj, proj["matrix"], g)
        if proj["matrix"] == "SPARSE":
            syn.set_sparse_connections(pre, post)

    def _conv2d(self, genn: Any, j: int, proj: dict, kernel: np.ndarray) -> None:
        """A convolution on GeNN's Conv2D Toeplitz connectivity: the kernel, never a synapse list."""
        (ic, ih, iw), (oc, oh, ow) = self.cells[proj["pre"]]["shape"], self.cells[proj["post"]]["shape"]
        kh, kw = kernel.shape[:2]
        params = {"conv_kh": kh, "conv_kw": kw, "conv_ih": ih, "conv_iw": iw, "conv_ic": ic}
        params.update({"conv_oh": oh, "conv_ow": ow, "conv_oc": oc})
        self._add(genn, j, proj, "TOEPLITZ", kernel.ravel(), genn.init_toeplitz_connectivity("Conv2D", params))

    def _add(self, genn: Any, j: int, proj: dict, matrix: str, g: np.ndarray, connectivity: Any = None) -> Any:
        pre = self.pops[proj["pre"]]
        if self.cells[proj["pre"]].get("encoding") == "events":
            update = genn.init_weight_update(self.count_pulse, {}, {"g": g}, pre_var_refs={"Sent": "Sent"})
        else:
            update = genn.init_weight_update("StaticPulse", {}, {"g": g})
        syn = self.model.add_synapse_population(
            f"s{j}",
            matrix,
            pre,
            self.pops[proj["post"]],
            update,
            genn.init_postsynaptic("DeltaCurr"),
            connectivity,
        )
        syn.axonal_delay_steps = proj["delay_steps"] - 1  # GeNN adds one step of its own
        return syn

    def build(self, folder: Path) -> None:
        """Generate and compile the model's code into ``folder`` (reused when unchanged) and load it."""
        folder.mkdir(exist_ok=True)
        self.model.build(str(folder))
        self.model.load()

    def _set(self, pop: Any, name: str, values: np.ndarray) -> None:
        var = pop.vars[name]
        var.view[...] = np.asarray(values).reshape(var.view.shape)
        var.push_to_device()

    def _active(self, value: int) -> None:
        for pop in self.pops.values():
            pop.set_dynamic_param_value("Active", value)

    def _schedule(self, steps: int) -> dict[int, list[tuple[int, int]]]:
        """Where each cell's window of ``steps`` steps opens and closes: {step: [(cell, Active)]}."""
        changes: dict[int, list[tuple[int, int]]] = {}
        for i in self.pops:
            for step, value in ((self.start[i], 1), (self.start[i] + steps, 0)):
                changes.setdefault(step, []).append((i, value))
        return changes

    def _feed(self, x: np.ndarray) -> None:
        """Set the spike source's input for the steps that follow: ``x`` (batch, inputs) is a spike
        count per neuron (``events``) or a value whose rate per step the source takes."""
        source = self.cells[0]
        if source["encoding"] == "events":
            count = np.empty(x.shape, np.int32)
            count[:, self.order[0]] = x
            self._set(self.pops[0], "Count", count)
            return
        value = x.astype(np.float32) * np.float32(source["gain"])
        rate = np.empty_like(value)
        rate[:, self.order[0]] = value * np.float32(source["max_rate"] / 1000.0 * self.dt)  # per step
        self._set(self.pops[0], "Rate", rate)

    def present(self, x: np.ndarray, steps: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Run one batch ``x`` (batch, inputs), or samples over time (batch, steps, inputs), from a
        reset state, each cell for ``steps`` steps from its start; return the spike counts and final
        membranes (batch, neurons) of every population."""
        source = self.cells[0]
        timed = x.ndim == 3
        value = x.astype(np.float32) * np.float32(source["gain"])
        offsets = {i: np.broadcast_to(self.base[i], (self.batch, c["size"])) for i, c in self._neurons()}
        for post, w in self.current_inputs:
            offsets[post] = offsets[post] + (value @ w.T) * np.float32(self.dt)
        for i, cell in self._neurons():
            pop = self.pops[i]
            self._set(pop, "V", np.full((self.batch, cell["size"]), cell.get("v_init") or 0.0, np.float32))
            self._set(pop, "RefracTime", np.zeros((self.batch, cell["size"]), np.int32))
            self._set(pop, "SpikeCount", np.zeros((self.batch, cell["size"]), np.int32))
            self._set(pop, "Ioffset", offsets[i])
        if 0 in self.pops:
            self._feed(x[:, 0] if timed else x)
            if source["encoding"] == "regular":
                self._set(self.pops[0], "Phase", np.zeros((self.batch, source["size"]), np.float32))
        changes = self._schedule(steps)
        for k in range(steps + max(self.start[i] for i in self.pops)):
            for i, active in changes.get(k, ()):
                self.pops[i].set_dynamic_param_value("Active", active)
            if timed and 0 < k < steps:
                self._feed(x[:, k])
            self.model.step_time()
        counts, membranes = {}, {}
        for i, _cell in self._neurons():
            for name, into in (("SpikeCount", counts), ("V", membranes)):
                var = self.pops[i].vars[name]
                var.pull_from_device()
                into[i] = var.view.reshape(self.batch, -1)[:, self.order[i]]
        self._active(0)  # frozen steps deliver the spikes still in flight and drop them
        for _ in range(self.flush_steps):
            self.model.step_time()
        return counts, membranes


def batch_size(network: dict, args: argparse.Namespace, samples: int) -> int:
    """Samples run at once: --batch or the compiled instances on CUDA; GeNN's CPU backend takes one."""
    wanted = min(args.batch or network["batch_size"], samples)
    if args.backend == "cuda" or wanted == 1:
        return wanted
    print(f"run.py: GeNN's {args.backend} backend runs one sample at a time; a batch of {wanted} needs --backend cuda")
    return 1


def conv2d_synapses(kernel: np.ndarray, pre_shape: list[int], post_shape: list[int]) -> np.ndarray:
    """The (pre, post, weight) rows, in snnc's neuron order, of the convolution that GeNN's Conv2D
    makes of a (kh, kw, in, out) kernel (stride 1, the same padding on both sides)."""
    (_, ih, iw), (_, oh, ow) = pre_shape, post_shape
    kh, kw = kernel.shape[:2]
    pad_h, pad_w = kh - 1 - (ih + kh - 1 - oh) // 2, kw - 1 - (iw + kw - 1 - ow) // 2
    pads = (pad_h, pad_w, pad_h, pad_w)
    found = runtime.conv_connections(pre_shape, post_shape, kernel.transpose(3, 2, 0, 1), (1, 1), pads, (1, 1), 1)
    return np.column_stack([found[0], found[1], found[2].astype(np.float64)])


def genn_order(shape: list[int]) -> np.ndarray:
    """For each neuron of a cell in snnc's C, H, W order its index in GeNN, where (C, H, W) cells
    are numbered H, W, C as GeNN's Conv2D connectivity numbers them."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)))
    c, h, w = shape
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).ravel()


def simulate(
    network: dict, arrays: dict, x: np.ndarray, duration: float, args: argparse.Namespace, batch: int
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray], float, float]:
    """Show the samples ``x`` for ``duration`` ms each, ``batch`` at once, from a reset network;
    return (readout (samples, outputs), spikes per sample, counts per population (samples,
    neurons), build seconds, run seconds)."""
    import pygenn

    steps = x.shape[1] if x.ndim == 3 else int(round(duration / network["dt"]))
    start_build = time.perf_counter()
    net = Network(pygenn, network, arrays, batch, args)
    net.model.seed = args.seed + 1
    net.build(args.dir / "genn_build")
    build_time = time.perf_counter() - start_build

    readout_cell = next(i for i, c in enumerate(net.cells) if c.get("readout"))
    membrane = net.cells[readout_cell]["readout"] == "membrane"
    counts = {i: [] for i, _ in net._neurons()}
    readout = []
    start_run = time.perf_counter()
    for first in range(0, len(x), batch):
        chunk = x[first : first + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *x.shape[1:]), x.dtype)])
        spikes, v = net.present(padded, steps)
        for i in counts:
            counts[i].append(spikes[i][: len(chunk)])
        readout.append((v if membrane else spikes)[readout_cell][: len(chunk)])
    run_time = time.perf_counter() - start_run
    per_population = {i: np.concatenate(c) for i, c in counts.items()}
    totals = sum(c.sum(axis=1) for c in per_population.values())
    return np.concatenate(readout), totals, per_population, build_time, run_time


def inputs_over_time(network: dict, x: np.ndarray, args: argparse.Namespace) -> Optional[np.ndarray]:
    """For samples over time, what the source takes at each step, (N, T, inputs): spike counts
    (``events``) or values (regular, Poisson: each step's rate); their T steps set the window.
    None for samples of one presentation; exits with one line where they cannot run."""
    x3 = runtime.timed_inputs(network, x, args.presentation_time)
    if x3 is None:
        return None
    return runtime.event_counts(x3) if network["cells"][0]["encoding"] == "events" else x3


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Run the network on GeNN; write outputs.npz and results.json into --dir and return the results."""
    args = parse_args(argv)
    network, arrays, data_path, x, y = load_inputs(args)
    args.backend = args.backend or network["backend"]
    args.precision = args.precision or network["precision"]
    duration = args.presentation_time or network["presentation_time"]
    shown = inputs_over_time(network, x, args)
    if shown is not None:
        duration = shown.shape[1] * network["dt"]
    batch = batch_size(network, args, len(x))
    readout, totals, per_population, build_time, run_time = simulate(
        network, arrays, x if shown is None else shown, duration, args, batch
    )
    results, predictions = runtime.classification(
        "genn",
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
    results.update(
        spikes_per_sample=float(totals.mean()), batch_size=batch, backend=args.backend, precision=args.precision
    )
    counts = {f"counts_cell{i}": c for i, c in per_population.items()}
    runtime.save_classification(args.dir, results, readout, predictions, y, **counts)
    print(runtime.summary("genn", results))
    return results


if __name__ == "__main__":
    main()
