"""The reference simulator's core: docs/snn-semantics.md in numpy, vectorized over a batch of
samples. Target ``sim`` (snnc.targets.sim) emits and runs it; passes and reports simulate with it.

State arrays are (batch, neurons). Dense projections are matrix products; convolutions run
through torch's conv2d when torch is installed (ten times faster than the sparse matrix,
which is the fallback); other projections are sparse CSR matrices. Delays use a ring buffer
of each node's recent spikes. Input from ``current`` sources and ``i_offset`` are constant
for a sample, so they are summed once per batch, unless the inputs come with a time axis
(N, T, *source shape): then every step takes its own values (``events``: spike counts).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, IRError, graph_number, limits
from snnc.ir import ops as ir
from snnc.ir.graph import MAX_STEPS, SNN_GRAPH_ATTRS
from snnc.ir.semantics.connectivity import projection_matrix
from snnc.ir.verifier import verify


class SimulationError(IRError):
    """A graph the reference simulator cannot run as it is (a bias left, too many time steps)."""


@dataclass
class SimResult:
    counts: dict[str, np.ndarray]  # readout id -> (N, n) spike counts or final membrane potentials
    predictions: np.ndarray  # (N,) argmax of the first readout (first index on ties)
    spikes: dict[str, np.ndarray]  # population id -> (N,) total spikes per sample
    steps: int
    dt: float
    counts_over_time: Optional[np.ndarray] = None  # (steps, N, n) cumulative, first readout only
    neuron_counts: Optional[dict[str, np.ndarray]] = None  # population id -> (N, n) spikes per neuron
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Projection:
    pre: str
    apply: Callable[[np.ndarray], np.ndarray]  # (batch, pre) -> (batch, post) input
    delay: int  # steps


def _apply_function(graph: Graph, proj_id: str) -> Callable[[np.ndarray], np.ndarray]:
    op = graph.op(proj_id)
    if op.connectivity == "dense":
        w_t = np.ascontiguousarray(graph.tensor(op.weight).T, dtype=np.float32)
        return lambda s: s @ w_t
    if op.connectivity == "conv" and importlib.util.find_spec("torch") is not None:
        return _torch_conv(graph, proj_id)
    matrix = projection_matrix(graph, proj_id)
    return lambda s: np.asarray((matrix @ s.T).T)


def _torch_conv(graph: Graph, proj_id: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    op = graph.op(proj_id)
    (pre,) = graph.inputs(proj_id)
    shape = graph.shape(pre)
    weight = torch.from_numpy(np.ascontiguousarray(graph.tensor(op.weight), dtype=np.float32))
    top, left, bottom, right = op.pads

    def apply(s: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(s).reshape(len(s), *shape)
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
        y = torch.nn.functional.conv2d(x, weight, stride=op.strides, dilation=op.dilations, groups=op.groups)
        return y.reshape(len(s), -1).numpy()

    return apply


class _Network:
    """A graph compiled into matrices and index lists, ready to step."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.dt = float(graph_number(graph, "dt", 1.0))
        self.nodes = [n for n in graph.topo() if graph.op(n).OPNAME in ("snn.source", "snn.population")]
        self.size = {n: math.prod(graph.shape(n)) for n in self.nodes}
        for n, size in self.size.items():
            limits.check("neurons", size, f"%{n}")
        self.inputs: dict[str, list[_Projection]] = {}
        for pop in graph.ops_of("snn.population"):
            self.inputs[pop] = []
            for proj in graph.inputs(pop):
                (pre,) = graph.inputs(proj)
                delay = int(round(graph.op(proj).delay / self.dt))
                if delay > MAX_STEPS:
                    raise SimulationError(f"%{proj}: a delay of {delay:,} time steps exceeds {MAX_STEPS:,}")
                self.inputs[pop].append(_Projection(pre, _apply_function(graph, proj), delay))
        self.max_delay = max((p.delay for ps in self.inputs.values() for p in ps), default=0)
        self.membrane = {graph.inputs(r)[0] for r in graph.ops_of("snn.readout") if graph.op(r).mode == "membrane"}
        self.readouts = graph.outputs

    def is_current(self, node: str) -> bool:
        op = self.graph.op(node)
        return isinstance(op, ir.Source) and op.encoding == "current"


def simulate(
    graph: Graph,
    x: np.ndarray,
    *,
    steps: Optional[int] = None,
    seed: int = 0,
    batch_size: int = 256,
    record_over_time: bool = False,
    record_neurons: bool = False,
    chains: Optional[int] = None,
    progress: bool = False,
) -> SimResult:
    """Simulate ``graph`` on inputs ``x`` (N, *source shape), one presentation per sample, or on
    inputs over time (N, T, *source shape), a value per step for T steps (see :func:`time_steps`).

    ``steps`` defaults to presentation_time / dt (T for inputs over time). Poisson input is drawn from a generator
    seeded with (seed, index of the batch's first sample): same seed and batch size, same run.
    ``record_over_time`` keeps the first readout's cumulative counts at every step,
    ``record_neurons`` every population's spike count per neuron (uint16); ``progress`` shows a
    tqdm bar on a terminal.

    Without a ``pause`` graph attribute every sample starts from a reset network. With one,
    samples run back to back as on hardware that cannot reset: the N samples are dealt to
    ``chains`` parallel instances in contiguous blocks (default: the graph's ``instances``),
    each instance shows its samples one after another with ``pause`` ms of silence between
    them, and nothing is reset. More chains run faster; the carried-over state is then that
    of another preceding sample than on the machine, statistically the same.
    """
    verify(graph, emitting=True)
    net = _Network(graph)
    x = np.asarray(x, dtype=np.float32)
    timed = time_steps(graph, x.shape)
    if timed is not None and steps is not None and steps != timed:
        raise SimulationError(f"the inputs have {timed} time steps, {steps} were asked for")
    if steps is None:
        steps = timed or int(
            round(graph_number(graph, "presentation_time", SNN_GRAPH_ATTRS["presentation_time"]) / net.dt)
        )
    if not 0 < steps <= MAX_STEPS:
        raise SimulationError(f"{steps:,} time steps per sample: must be in [1, {MAX_STEPS:,}]")
    _check_state(net, len(x), min(len(x), batch_size), steps if record_over_time else 0)
    if "pause" in graph.attrs:
        pause_steps = int(round(graph_number(graph, "pause") / net.dt))
        n_chains = min(len(x), chains or int(graph_number(graph, "instances", 1))) or 1
        bar = _Bar(progress, -(-len(x) // n_chains))
        parts = [_run_chains(net, x, steps, pause_steps, n_chains, seed, (record_over_time, timed is not None), bar)]
    else:
        starts = range(0, len(x), batch_size)
        bar = _Bar(progress, len(starts))
        flags = (record_over_time, timed is not None)
        parts = [_run_batch(net, x[i : i + batch_size], steps, seed, i, flags, bar) for i in starts]
    counts = {r: np.concatenate([p[0][r] for p in parts]) for r in net.readouts}
    spikes = {n: np.concatenate([p[1][n] for p in parts]) for n in graph.ops_of("snn.population")}
    over_time = np.concatenate([p[2] for p in parts], axis=1) if record_over_time and parts else None
    neurons = None
    if record_neurons and parts:
        neurons = {n: np.concatenate([p[3][n] for p in parts]) for n in graph.ops_of("snn.population")}
    first = counts[net.readouts[0]] if parts else np.zeros((0, 1))
    return SimResult(counts, first.argmax(axis=1), spikes, steps, net.dt, over_time, neurons)


def time_steps(graph: Graph, shape: tuple[int, ...]) -> Optional[int]:
    """T when inputs of ``shape`` come over time, (N, T, *source shape); None for (N, *source shape).
    A source with ``events`` encoding needs inputs over time (they are its spikes)."""
    (source,) = graph.ops_of("snn.source")
    per_sample = graph.shape(source)
    size = math.prod(per_sample)
    if math.prod(shape[1:]) == size:
        timed = None
    elif len(shape) >= 3 and math.prod(shape[2:]) == size:
        timed = int(shape[1])
    else:
        raise SimulationError(f"inputs of shape {list(shape)}: expected (N, {per_sample}) or (N, T, {per_sample})")
    if timed is None and graph.op(source).encoding == "events":
        raise SimulationError(f"%{source} takes events: the inputs need a time axis, (N, T, *{list(per_sample)})")
    if timed is not None and not 0 < timed <= MAX_STEPS:
        raise SimulationError(f"{timed:,} time steps per sample: must be in [1, {MAX_STEPS:,}]")
    return timed


def _check_state(net: _Network, samples: int, batch: int, record_steps: int) -> None:
    """Check the state the simulation allocates against the byte budget before allocating it."""
    batch = max(batch, 1)
    for n in net.nodes:
        limits.check_array((net.max_delay + 1, batch, net.size[n]), 4, f"%{n}: spike history")
        limits.check_array((samples, net.size[n]), 4, f"%{n}: spike counts")
    if record_steps and net.readouts:
        (pop,) = net.graph.inputs(net.readouts[0])
        limits.check_array((record_steps, samples, net.size[pop]), 4, f"%{pop}: counts over time")


class _Bar:
    """A tqdm progress bar on a terminal, nothing otherwise."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="batch", leave=False)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _run_batch(net: _Network, x: np.ndarray, steps: int, seed: int, start: int, flags: tuple, bar: _Bar):
    """A batch of samples, each from a reset network; ``flags``: (record over time, inputs over time)."""
    state = _State(net, len(x), np.random.default_rng([seed, start]))
    result = state.present(x, steps, *flags)
    bar.update()
    return result


def _run_chains(net: _Network, x: np.ndarray, steps: int, pause: int, chains: int, seed: int, flags: tuple, bar: _Bar):
    """Samples back to back: chain c shows samples c*m .. c*m + m - 1, with ``pause`` steps between;
    ``flags``: (record over time, inputs over time)."""
    record = flags[0]
    n = len(x)
    m = -(-n // chains)
    order = np.arange(chains * m).reshape(chains, m)  # order[c, j]: the j-th sample of chain c
    padded = np.concatenate([x, np.zeros((chains * m - n, *x.shape[1:]), x.dtype)])
    state = _State(net, chains, np.random.default_rng([seed, 0]))
    waves = []
    for j in range(m):
        if j:
            state.silence(pause)
        waves.append(state.present(padded[order[:, j]], steps, *flags))
        bar.update()
    inverse = np.argsort(order.T.reshape(-1), kind="stable")[:n]  # wave-major rows -> sample order
    counts = {r: np.concatenate([w[0][r] for w in waves])[inverse] for r in net.readouts}
    totals = {p: np.concatenate([w[1][p] for w in waves])[inverse] for p in waves[0][1]}
    over_time = np.concatenate([w[2] for w in waves], axis=1)[:, inverse] if record else None
    neurons = {p: np.concatenate([w[3][p] for w in waves])[inverse] for p in waves[0][3]}
    return counts, totals, over_time, neurons


class _State:
    """Membranes, refractory timers and delay buffers of ``batch`` parallel networks."""

    def __init__(self, net: _Network, batch: int, rng: np.random.Generator) -> None:
        self.net, self.batch, self.rng = net, batch, rng
        self.history = {n: np.zeros((net.max_delay + 1, batch, net.size[n]), np.float32) for n in net.nodes}
        self.pops = [n for n in net.nodes if isinstance(net.graph.op(n), ir.Population)]
        self.v = {n: np.full((batch, net.size[n]), net.graph.op(n).v_init, np.float32) for n in self.pops}
        self.refrac = {n: np.zeros((batch, net.size[n]), np.int32) for n in self.pops}
        self.k = 0  # steps simulated so far (ring-buffer position)

    def present(self, x: np.ndarray, steps: int, record: bool, timed: bool = False):
        """Show one sample per network for ``steps`` steps; spike counts of this window only.
        ``x`` is (batch, *shape), or (batch, steps, *shape) for inputs over time."""
        net, graph = self.net, self.net.graph
        values, const = self._inputs(x[:, 0] if timed else x)
        phase = {n: np.zeros_like(v) for n, v in values.items()}
        readout_pops = [graph.inputs(r)[0] for r in net.readouts]
        counts = {n: np.zeros((self.batch, net.size[n]), np.float32) for n in readout_pops}
        per_neuron = {n: np.zeros((self.batch, net.size[n]), np.uint16) for n in self.pops}
        over_time = np.zeros((steps, self.batch, net.size[readout_pops[0]]), np.float32) if record else None
        for k in range(steps):
            if timed and k:
                values, const = self._inputs(x[:, k])
            spikes = self._step(values, phase, const)
            for n in self.pops:
                per_neuron[n] += spikes[n].astype(np.uint16)
                if n in counts:
                    counts[n] += spikes[n]
            if record:
                src = readout_pops[0]
                over_time[k] = self.v[src] if src in net.membrane else counts[src]
        pairs = zip(net.readouts, readout_pops, strict=True)
        out = {r: (self.v[p] if p in net.membrane else counts[p]).copy() for r, p in pairs}
        total = {n: c.sum(axis=1, dtype=np.float32) for n, c in per_neuron.items()}
        return out, total, over_time, per_neuron

    def _inputs(self, x: np.ndarray) -> tuple[dict, dict]:
        """The sources' values for inputs ``x`` (batch, *shape), and per population the input that
        stays the same every step while ``x`` holds: i_offset and current sources' drive."""
        net, graph, dt = self.net, self.net.graph, self.net.dt
        values, const = {}, {}
        for node in net.nodes:
            op = graph.op(node)
            if isinstance(op, ir.Source):
                values[node] = x.reshape(self.batch, -1) * np.float32(op.gain)
                continue
            c = self._offset(node)
            for p in net.inputs[node]:
                if net.is_current(p.pre):
                    c = c + p.apply(values[p.pre]) * np.float32(dt)
            const[node] = c
        return values, const

    def silence(self, steps: int) -> None:
        """``steps`` steps without input (constant i_offset still flows): the pause between samples."""
        const = {n: self._offset(n) for n in self.pops}
        for _ in range(steps):
            self._step({}, {}, const)

    def _offset(self, node: str) -> np.ndarray:
        op = self.net.graph.op(node)
        c = np.zeros((self.batch, self.net.size[node]), np.float32)
        if op.i_offset is not None:
            c += self.net.graph.tensor(op.i_offset)[None, :] * np.float32(self.net.dt)
        return c

    def _step(self, values: dict, phase: dict, const: dict) -> dict[str, np.ndarray]:
        """One time step; ``values`` holds the sources' inputs (none: silent sources)."""
        net, graph, dt = self.net, self.net.graph, self.net.dt
        ring = net.max_delay + 1
        k, slot = self.k, self.k % ring
        fired_all = {}
        for node in net.nodes:
            op = graph.op(node)
            if isinstance(op, ir.Source):
                if node not in values or op.encoding == "current":
                    self.history[node][slot] = 0.0
                else:
                    self.history[node][slot] = _source_spikes(op, values[node], phase[node], dt, self.rng)
                continue
            u = self.v[node]
            if not math.isinf(op.tau_m):
                u *= math.exp(-dt / op.tau_m)
            u += const[node]
            for p in net.inputs[node]:
                if not net.is_current(p.pre) and k >= p.delay:
                    u += p.apply(self.history[p.pre][(k - p.delay) % ring])
            if op.v_min is not None:
                np.maximum(u, np.float32(op.v_min), out=u)
            if node in net.membrane:
                fired_all[node] = np.zeros_like(u)
                continue
            ref = self.refrac[node]
            blocked = ref > 0
            if op.tau_refrac > 0:
                u[blocked] = op.v_reset
                ref[blocked] -= 1
            fired = u >= op.v_threshold
            if op.tau_refrac > 0:
                fired &= ~blocked
            if op.reset == "subtract":
                u -= fired * np.float32(op.v_threshold)
            else:
                u[fired] = op.v_reset
            if op.tau_refrac > 0:
                ref[fired] = int(round(op.tau_refrac / dt))
            spikes = fired.astype(np.float32)
            self.history[node][slot] = spikes
            fired_all[node] = spikes
        self.k += 1
        return fired_all


def _source_spikes(op: ir.Source, value: np.ndarray, phase: np.ndarray, dt: float, rng) -> np.ndarray:
    if op.encoding == "events":
        return value  # spike counts of this step
    p = value * (op.rate_per_ms * dt)
    if op.encoding == "poisson":
        return (rng.random(value.shape, dtype=np.float32) < p).astype(np.float32)
    phase += p
    fired = phase >= 1.0
    phase -= fired
    return fired.astype(np.float32)
