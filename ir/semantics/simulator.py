"""The reference simulator's core: docs/snn-semantics.md in numpy, vectorized over a batch of
samples. Target ``sim`` (snnc.targets.sim) emits and runs it; passes and reports simulate with it.

State arrays are (batch, neurons). Dense projections are matrix products; convolutions run
through torch's conv2d when torch is installed (the sparse matrix is the fallback), a kernel that
is constant on stride x stride blocks (average pooling folded into it) as block sums and the
small kernel; pool projections are strided sums in the sparse matrix's order (same floats);
other projections are sparse CSR matrices. Input from ``current`` sources and ``i_offset`` are
constant for a sample, so they are summed once per batch, unless the inputs come with a time
axis (N, T, *source shape): then every step takes its own values (``events``: spike counts).

Two paths run the same per-neuron float operations (:class:`_Neurons`):
- time-batched (:func:`_run_layers`, the default when every sample starts from a reset network):
  graphs are acyclic, so for a block of time steps each population's synaptic input for all
  the block's steps is one matrix product or convolution over (steps x samples) rows of its
  presynaptic spikes (delays shift the step index); the neurons then step through the block in
  cache-sized slices, large populations in torch's threads where torch is installed (the same
  float operations). Spike counts equal the step path's (tested); a membrane readout can differ
  in the last bits where the BLAS sums rows of a larger product in another order.
- step by step (:class:`_State`): every population one step at a time with a ring buffer of
  spikes per delay; samples shown back to back (``pause``) need it.
Work nobody asked for is skipped: refractory timers without a refractory period, spike
histories of populations no projection reads, counts per neuron without ``record_neurons``.

On a torch device (``device="cuda"``) the time-batched path keeps a batch's arrays there
(:class:`_OnDevice`; :class:`_Host` is the same interface in host memory): the projections are
torch products and convolutions on the device, the neurons :meth:`_Neurons.update_torch`.
"""

from __future__ import annotations

import contextlib
import functools
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
from snnc.ir.runtime import steps_in
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
    apply: Callable[[np.ndarray], np.ndarray]  # (rows, pre) -> (rows, post) input; rows: samples (x steps)
    delay: int  # steps


def _apply_function(graph: Graph, proj_id: str, device: Any = None) -> Callable:
    """The projection as a function of a (rows, pre) array; rows are independent (samples, or
    samples x steps in the time-batched path). With a torch ``device`` it takes and returns torch
    tensors on it (:func:`_on_device`)."""
    if device is not None:
        return _on_device(graph, proj_id, device)
    op = graph.op(proj_id)
    if op.connectivity == "dense":
        return _dense(graph, proj_id)
    if op.connectivity == "conv" and _torch() is not None:
        conv = _torch_conv(graph, proj_id)
        return lambda rows: conv(_torch().from_numpy(np.ascontiguousarray(rows))).numpy()
    if op.connectivity == "pool":
        return _pool(graph, proj_id, np.pad, np.zeros)
    if op.connectivity == "one_to_one":
        return _one_to_one(graph, proj_id, np.zeros)
    matrix = projection_matrix(graph, proj_id)
    return lambda s: np.asarray((matrix @ s.T).T)


def _on_device(graph: Graph, proj_id: str, device: Any) -> Callable:
    """The projection on torch tensors on ``device``: the dense product, convolution, pool or
    one-to-one copy of the host path there."""
    import torch

    op = graph.op(proj_id)
    if op.connectivity == "dense":
        w_t = torch.from_numpy(np.ascontiguousarray(graph.tensor(op.weight).T, dtype=np.float32)).to(device)
        return lambda s: s @ w_t
    if op.connectivity == "conv":
        return _torch_conv(graph, proj_id, device)
    if op.connectivity == "pool":
        return _pool(graph, proj_id, lambda x, w: torch.nn.functional.pad(x, (*w[3], *w[2])), _zeros_on(device))
    return _one_to_one(graph, proj_id, _zeros_on(device))


def _zeros_on(device: Any) -> Callable:
    """``np.zeros(shape, np.float32)`` for torch tensors on ``device``."""
    import torch

    return lambda shape, dtype=None: torch.zeros(shape, dtype=torch.float32, device=device)


def _dense(graph: Graph, proj_id: str) -> Callable[[np.ndarray], np.ndarray]:
    """A dense projection as a matrix product: torch's where torch is installed and the
    presynaptic layer is as large as those that step in torch's threads (numpy's BLAS threads,
    busy-waiting after each product, slowed those steps 2x on the CNN recording over time),
    numpy's otherwise (the other way round, torch's threads slowed numpy's steps of small layers)."""
    (pre,) = graph.inputs(proj_id)
    w_t = np.ascontiguousarray(graph.tensor(graph.op(proj_id).weight).T, dtype=np.float32)
    torch = _torch() if math.prod(graph.shape(pre)) >= _TORCH_LAYER else None
    if torch is None:
        return lambda s: s @ w_t
    w_torch = torch.from_numpy(w_t)
    return lambda s: (torch.from_numpy(np.ascontiguousarray(s)) @ w_torch).numpy()


def _one_to_one(graph: Graph, proj_id: str, zeros: Callable) -> Callable:
    """A one-to-one projection as the scaled input placed at its offset in the postsynaptic
    population (zeros elsewhere): the sparse matrix's one product per row. ``zeros`` makes the
    output array (numpy's, or torch tensors on a device)."""
    op = graph.op(proj_id)
    (pre,) = graph.inputs(proj_id)
    n_pre, n_post = math.prod(graph.shape(pre)), math.prod(graph.shape(proj_id))
    scale, start = np.float32(op.scale), op.offset

    def apply(s):
        out = zeros((len(s), n_post), np.float32)
        out[:, start : start + n_pre] = s * scale
        return out

    return apply


def _pool(graph: Graph, proj_id: str, pad: Callable, zeros: Callable) -> Callable:
    """A pool projection as strided slices of the (zero-padded) input added window element by
    window element: the CSR matrix's products and summation order (kernel row, then column), so
    the same floats as ``projection_matrix`` without building it. ``pad`` and ``zeros`` are
    numpy's (or the same for torch tensors on a device)."""
    op = graph.op(proj_id)
    (pre,) = graph.inputs(proj_id)
    c, h, w = graph.shape(pre)
    _, oh, ow = graph.shape(proj_id)
    top, left, bottom, right = op.pads
    (kh, kw), (sh, sw) = op.kernel, op.strides
    scale = np.float32(op.scale)

    def apply(s):
        x = s.reshape(len(s), c, h, w)
        if any(op.pads):
            x = pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        out = zeros((len(s), c, oh, ow), np.float32)
        for ky in range(kh):
            for kx in range(kw):
                out += x[:, :, ky : ky + sh * (oh - 1) + 1 : sh, kx : kx + sw * (ow - 1) + 1 : sw] * scale
        return out.reshape(len(s), -1)

    return apply


def _pooled_kernel(weight: np.ndarray, strides: tuple, dilations: tuple) -> Optional[np.ndarray]:
    """For a kernel that is constant on stride x stride blocks (average pooling folded into the
    convolution after it), the kernel of one value per block; None otherwise."""
    s = strides[0]
    o, i, kh, kw = weight.shape
    if s < 2 or tuple(strides) != (s, s) or tuple(dilations) != (1, 1) or kh % s or kw % s:
        return None
    blocks = weight.reshape(o, i, kh // s, s, kw // s, s)
    if not np.array_equal(np.broadcast_to(blocks[:, :, :, :1, :, :1], blocks.shape), blocks):
        return None
    return np.ascontiguousarray(blocks[:, :, :, 0, :, 0])


def _block_sums(x, s: int):
    """Sums over the non-overlapping s x s windows of a torch tensor (rows, C, H, W), H and W
    multiples of s: the columns of each window first, then its rows."""
    columns = x[..., 0::s]
    for dx in range(1, s):
        columns = columns + x[..., dx::s]
    out = columns[:, :, 0::s]
    for dy in range(1, s):
        out = out + columns[:, :, dy::s]
    return out


def _torch_conv(graph: Graph, proj_id: str, device: Any = None) -> Callable:
    """A convolution through torch, on torch tensors (rows, pre) on ``device`` (the host's by
    default). A kernel constant on stride x stride blocks with pads that are multiples of the
    stride is applied as a sum over each block (non-overlapping windows) followed by the small
    kernel at stride 1: the same sums (up to float rounding) at 1/stride^2 of the multiply-adds."""
    import torch

    op = graph.op(proj_id)
    (pre,) = graph.inputs(proj_id)
    c, h, w = graph.shape(pre)
    weight = np.ascontiguousarray(graph.tensor(op.weight), dtype=np.float32)
    top, left, bottom, right = op.pads
    s = op.strides[0]
    small = _pooled_kernel(weight, op.strides, op.dilations)
    if small is not None and (any(p % s for p in op.pads) or h % s or w % s):
        small = None
    kernel = torch.from_numpy(weight if small is None else small).to(device)
    pads = (left, right, top, bottom) if small is None else (left // s, right // s, top // s, bottom // s)
    symmetric = pads[0] == pads[1] and pads[2] == pads[3]

    def apply(rows):
        x = rows.reshape(len(rows), c, h, w)
        if small is not None:
            x = _block_sums(x, s)
        with torch.no_grad():
            if symmetric:
                padding = (pads[2], pads[0])
            else:
                x, padding = torch.nn.functional.pad(x, pads), (0, 0)
            if small is None:
                y = torch.nn.functional.conv2d(
                    x, kernel, stride=op.strides, padding=padding, dilation=op.dilations, groups=op.groups
                )
            else:
                y = torch.nn.functional.conv2d(x, kernel, padding=padding, groups=op.groups)
        return y.reshape(len(rows), -1)

    return apply


class _Network:
    """A graph compiled into matrices and index lists, ready to step."""

    def __init__(self, graph: Graph, device: Any = None) -> None:
        self.graph = graph
        self.arrays = _HOST if device is None else _OnDevice(device)
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
                self.inputs[pop].append(_Projection(pre, _apply_function(graph, proj, device), delay))
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
    batch_size: Optional[int] = None,
    record_over_time: bool = False,
    record_neurons: bool = False,
    chains: Optional[int] = None,
    progress: bool = False,
    method: str = "auto",
    device: Optional[str] = None,
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

    ``method``: "layers" runs the time-batched path (:func:`_run_layers`), "steps" steps every
    population one step at a time (:class:`_State`), "auto" takes "layers" unless samples run
    back to back (``pause`` and fewer chains than samples: with as many chains as samples, each
    shows one sample from the reset network, which "layers" runs in one batch). Both do the
    same float operations per neuron; only the matrix products and convolutions see more rows
    at once in "layers".

    ``device``: None (or "host") runs in host memory (numpy, large populations in torch's threads); a torch
    device ("cuda", "cuda:1", "cpu") runs the time-batched path in torch tensors there (float32,
    TF32 off, cuDNN deterministic); "auto" takes "cuda" when torch sees a GPU and the samples do
    not run back to back, None otherwise. ``batch_size`` defaults to 256 in host memory and
    4096 on a device (fewer where 4096 samples would hold over 2**28 neurons). ``extra["device"]``
    says where it ran.
    """
    if method not in ("auto", "layers", "steps"):
        raise SimulationError(f"method {method!r}: expected auto, layers or steps")
    verify(graph, emitting=True)
    x = np.asarray(x, dtype=np.float32)
    timed = time_steps(graph, x.shape)
    if timed is not None and steps is not None and steps != timed:
        raise SimulationError(f"the inputs have {timed} time steps, {steps} were asked for")
    dt = float(graph_number(graph, "dt", 1.0))
    if steps is None:
        steps = timed or int(round(graph_number(graph, "presentation_time", SNN_GRAPH_ATTRS["presentation_time"]) / dt))
    if not 0 < steps <= MAX_STEPS:
        raise SimulationError(f"{steps:,} time steps per sample: must be in [1, {MAX_STEPS:,}]")
    flags = (record_over_time, timed is not None, record_neurons)
    n_chains = min(len(x), chains or int(graph_number(graph, "instances", 1))) or 1
    back_to_back = "pause" in graph.attrs and (n_chains < len(x) or method == "steps")
    device = resolve_device(device, back_to_back or method == "steps")
    net = _Network(graph, device)
    batch_size = batch_size or (256 if device is None else _device_batch(net))
    _check_state(net, len(x), min(len(x), batch_size), steps if record_over_time else 0)
    if "pause" in graph.attrs and not back_to_back:  # every chain shows one sample, from the reset network
        batch_size = max(len(x), 1)  # one batch: the same draws as one wave of the chains
    if back_to_back:
        if method == "layers":
            raise SimulationError("samples run back to back (pause): only method='steps' carries the state over")
        pause_steps = int(round(graph_number(graph, "pause") / net.dt))
        bar = _Bar(progress, -(-len(x) // n_chains))
        parts = [_run_chains(net, x, steps, pause_steps, n_chains, seed, flags, bar)]
    else:
        starts = range(0, len(x), batch_size)
        bar = _Bar(progress, len(starts))
        run = _run_batch if method == "steps" else _run_layered
        with _exact_floats(device):
            parts = [run(net, x[i : i + batch_size], steps, seed, i, flags, bar) for i in starts]
    counts = {r: np.concatenate([p[0][r] for p in parts]) for r in net.readouts}
    spikes = {n: np.concatenate([p[1][n] for p in parts]) for n in graph.ops_of("snn.population")}
    over_time = np.concatenate([p[2] for p in parts], axis=1) if record_over_time and parts else None
    neurons = None
    if record_neurons and parts:
        neurons = {n: np.concatenate([p[3][n] for p in parts]) for n in graph.ops_of("snn.population")}
    first = counts[net.readouts[0]] if parts else np.zeros((0, 1))
    where = {"device": "host" if device is None else str(device)}
    return SimResult(counts, first.argmax(axis=1), spikes, steps, net.dt, over_time, neurons, where)


_DEVICE_BATCH = 4096  # samples per batch on a device (a GPU wants many rows per product)...
_DEVICE_NEURONS = 1 << 28  # ...unless their neurons would pass this (1 GB of each per-neuron array)


def _device_batch(net: _Network) -> int:
    """The default batch on a device: ``_DEVICE_BATCH`` samples, fewer for large networks."""
    per_sample = sum(net.size[n] for n in net.nodes)
    return max(1, min(_DEVICE_BATCH, _DEVICE_NEURONS // per_sample))


def resolve_device(device: Optional[str], stepwise: bool = False) -> Optional[str]:
    """The torch device ``simulate`` runs on for its ``device`` argument; None: host memory
    (also for "host"). ``stepwise``: the samples run back to back or step by step (host memory
    only). Resolving it first keeps torch's import (~1 s) and CUDA's start out of a timed
    simulation."""
    if device is None or device == "host":
        return None
    torch = _torch()
    if device == "auto":
        if torch is None or stepwise or not torch.cuda.is_available():
            return None
        device = "cuda"
    if torch is None:
        raise SimulationError(f"device {device!r}: torch is not installed (pip install torch)")
    if stepwise:
        raise SimulationError(f"device {device!r}: samples back to back (pause) step only in host memory")
    try:
        where = torch.device(device)
        torch.empty(0, device=where)
    except (RuntimeError, AssertionError) as e:
        raise SimulationError(f"device {device!r}: {str(e).splitlines()[0] if str(e) else 'not available'}") from None
    return device  # its context started (torch.empty) before anything is timed


@contextlib.contextmanager
def _exact_floats(device: Optional[str]):
    """float32 products and convolutions without TF32 and deterministic cuDNN algorithms on a
    CUDA device (the same run gives the same floats), and its memory running out said in one
    line; nothing to set elsewhere."""
    torch = _torch() if device is not None else None
    if torch is None or torch.device(device).type != "cuda":
        yield
        return
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
            yield
    except torch.cuda.OutOfMemoryError:
        raise SimulationError(
            f"device {device!r} ran out of memory: simulate fewer samples at once (batch_size), or in host memory"
        ) from None
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def time_steps(graph: Graph, shape: tuple[int, ...]) -> Optional[int]:
    """T when inputs of ``shape`` come over time, (N, T, *source shape); None for (N, *source shape).
    A source with ``events`` encoding needs inputs over time (they are its spikes)."""
    (source,) = graph.ops_of("snn.source")
    per_sample = graph.shape(source)
    timed = steps_in(shape, per_sample)
    if timed is None and math.prod(shape[1:]) != math.prod(per_sample):
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


def _run_layered(net: _Network, x: np.ndarray, steps: int, seed: int, start: int, flags: tuple, bar: _Bar):
    """A batch of samples through the time-batched path; as :func:`_run_batch`."""
    result = _run_layers(net, x, steps, np.random.default_rng([seed, start]), *flags)
    bar.update()
    return result


def _run_batch(net: _Network, x: np.ndarray, steps: int, seed: int, start: int, flags: tuple, bar: _Bar):
    """A batch of samples, each from a reset network; ``flags``: (record over time, inputs over
    time, counts per neuron)."""
    state = _State(net, len(x), np.random.default_rng([seed, start]))
    result = state.present(x, steps, *flags)
    bar.update()
    return result


def _run_chains(net: _Network, x: np.ndarray, steps: int, pause: int, chains: int, seed: int, flags: tuple, bar: _Bar):
    """Samples back to back: chain c shows samples c*m .. c*m + m - 1, with ``pause`` steps between;
    ``flags``: (record over time, inputs over time, counts per neuron)."""
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
    neurons = {p: np.concatenate([w[3][p] for w in waves])[inverse] for p in waves[0][3]} if flags[2] else {}
    return counts, totals, over_time, neurons


class _Neurons:
    """One population's constants for the update of docs/snn-semantics.md, step 1 to 3."""

    def __init__(self, net: _Network, node: str) -> None:
        op = net.graph.op(node)
        self.op = op
        self.decay = None if math.isinf(op.tau_m) else math.exp(-net.dt / op.tau_m)
        self.membrane = node in net.membrane
        self.refrac_steps = int(round(op.tau_refrac / net.dt)) if op.tau_refrac > 0 else 0
        self.refractory = op.tau_refrac > 0

    def update(self, u: np.ndarray, const: Optional[np.ndarray], inputs: list, ref: Optional[np.ndarray], out) -> None:
        """One step, in place on ``u`` (and the refractory timers ``ref``); the spikes (0 or 1) go
        to ``out`` (float32, u's shape). Works on any slice of a population's state: every neuron
        is updated on its own."""
        op = self.op
        if self.decay is not None:
            u *= self.decay
        if const is not None:
            u += const
        for i in inputs:
            u += i
        if op.v_min is not None:
            np.maximum(u, np.float32(op.v_min), out=u)
        if self.membrane:
            out[...] = 0.0
            return
        if self.refractory:
            blocked = ref > 0
            u[blocked] = op.v_reset
            ref[blocked] -= 1
            fired = u >= op.v_threshold
            fired &= ~blocked
            out[...] = fired
        else:
            np.greater_equal(u, op.v_threshold, out=out)  # the comparison of ``u >= v_threshold``, as 0/1
            fired = None
        if op.reset == "subtract":
            u -= out * np.float32(op.v_threshold)  # u - 0 is u: the same as subtracting where fired
        else:
            u[out != 0] = op.v_reset
        if self.refractory:
            ref[fired] = self.refrac_steps

    def update_torch(self, u, const, inputs: list, out, ref=None) -> None:
        """:meth:`update` on torch tensors (on any device): the same float operations (float32
        scalars; ``u - v_threshold * out`` with out 0 or 1 is exact in one rounding)."""
        import torch

        op = self.op
        if self.decay is not None:
            u.mul_(self.decay)
        if const is not None:
            u.add_(const)
        for i in inputs:
            u.add_(i)
        if op.v_min is not None:
            u.clamp_(min=op.v_min)
        if self.membrane:
            out.zero_()
            return
        if self.refractory:
            blocked = ref > 0
            u.masked_fill_(blocked, op.v_reset)
            ref.sub_(blocked.to(ref.dtype))
            fired = (u >= op.v_threshold) & ~blocked
            out.copy_(fired)
        else:
            torch.ge(u, op.v_threshold, out=out)
        if op.reset == "subtract":
            u.sub_(out, alpha=op.v_threshold)
        else:
            u.masked_fill_(out.bool(), op.v_reset)
        if self.refractory:
            ref.masked_fill_(fired, self.refrac_steps)


class _State:
    """Membranes, refractory timers and delay buffers of ``batch`` parallel networks, stepped one
    time step at a time through every population (the general path: any delays, state carried
    from sample to sample)."""

    def __init__(self, net: _Network, batch: int, rng: np.random.Generator) -> None:
        self.net, self.batch, self.rng = net, batch, rng
        self.ring = net.max_delay + 1
        spiking = {p.pre for ps in net.inputs.values() for p in ps if not net.is_current(p.pre)}
        self.history = {n: np.zeros((self.ring, batch, net.size[n]), np.float32) for n in net.nodes if n in spiking}
        self.pops = [n for n in net.nodes if isinstance(net.graph.op(n), ir.Population)]
        self.neurons = {n: _Neurons(net, n) for n in self.pops}
        self.v = {n: np.full((batch, net.size[n]), net.graph.op(n).v_init, np.float32) for n in self.pops}
        self.refrac = {n: np.zeros((batch, net.size[n]), np.int32) for n in self.pops if self.neurons[n].refractory}
        self.k = 0  # steps simulated so far (ring-buffer position)

    def present(self, x: np.ndarray, steps: int, record: bool, timed: bool = False, neurons: bool = True):
        """Show one sample per network for ``steps`` steps; spike counts of this window only.
        ``x`` is (batch, *shape), or (batch, steps, *shape) for inputs over time; ``neurons``:
        count every population's spikes per neuron."""
        net, graph = self.net, self.net.graph
        values, const = self._inputs(x[:, 0] if timed else x)
        phase = {n: np.zeros_like(v) for n, v in values.items()}
        readout_pops = [graph.inputs(r)[0] for r in net.readouts]
        counts = {n: np.zeros((self.batch, net.size[n]), np.float32) for n in readout_pops}
        per_neuron = {n: np.zeros((self.batch, net.size[n]), np.uint16) for n in self.pops} if neurons else {}
        total = {n: np.zeros(self.batch, np.float64) for n in self.pops}
        over_time = np.zeros((steps, self.batch, net.size[readout_pops[0]]), np.float32) if record else None
        for k in range(steps):
            if timed and k:
                values, const = self._inputs(x[:, k])
            spikes = self._step(values, phase, const)
            for n in self.pops:
                total[n] += np.count_nonzero(spikes[n], axis=1)
                if neurons:
                    np.add(per_neuron[n], spikes[n], out=per_neuron[n], casting="unsafe")
                if n in counts:
                    counts[n] += spikes[n]
            if record:
                src = readout_pops[0]
                over_time[k] = self.v[src] if src in net.membrane else counts[src]
        pairs = zip(net.readouts, readout_pops, strict=True)
        out = {r: (self.v[p] if p in net.membrane else counts[p]).copy() for r, p in pairs}
        return out, {n: t.astype(np.float32) for n, t in total.items()}, over_time, per_neuron

    def _inputs(self, x: np.ndarray) -> tuple[dict, dict]:
        """The sources' values for inputs ``x`` (batch, *shape), and per population the input that
        stays the same every step while ``x`` holds: i_offset and current sources' drive (None: none)."""
        net, graph = self.net, self.net.graph
        values, const = {}, {}
        for node in net.nodes:
            op = graph.op(node)
            if isinstance(op, ir.Source):
                values[node] = x.reshape(self.batch, -1) * np.float32(op.gain)
                continue
            const[node] = _constant(net, node, values, self.batch)
        return values, const

    def silence(self, steps: int) -> None:
        """``steps`` steps without input (constant i_offset still flows): the pause between samples."""
        const = {n: _offset(self.net, n, self.batch) for n in self.pops}
        for _ in range(steps):
            self._step({}, {}, const)

    def _step(self, values: dict, phase: dict, const: dict) -> dict[str, np.ndarray]:
        """One time step; ``values`` holds the sources' inputs (none: silent sources). Returns
        every population's spikes (0 or 1)."""
        net, graph, dt = self.net, self.net.graph, self.net.dt
        ring = self.ring
        k, slot = self.k, self.k % ring
        fired_all = {}
        for node in net.nodes:
            op = graph.op(node)
            if isinstance(op, ir.Source):
                if node in self.history:
                    if node not in values or op.encoding == "current":
                        self.history[node][slot] = 0.0
                    else:
                        self.history[node][slot] = _source_spikes(op, values[node], phase[node], dt, self.rng)
                continue
            inputs = [
                p.apply(self.history[p.pre][(k - p.delay) % ring])
                for p in net.inputs[node]
                if not net.is_current(p.pre) and k >= p.delay
            ]
            out = self.history[node][slot] if node in self.history else np.empty_like(self.v[node])
            self.neurons[node].update(self.v[node], const[node], inputs, self.refrac.get(node), out)
            fired_all[node] = out
        self.k += 1
        return fired_all


def _offset(net: _Network, node: str, batch: int):
    """``i_offset * dt`` for ``batch`` networks, where ``net.arrays`` keeps arrays; None without
    an i_offset."""
    op = net.graph.op(node)
    if op.i_offset is None:
        return None
    return net.arrays.rows(net.graph.tensor(op.i_offset) * np.float32(net.dt), batch)


def _constant(net: _Network, node: str, values: dict, rows: int):
    """The input of ``node`` that does not come from spikes: i_offset and current sources' drive
    for the sources' ``values`` (``rows`` rows); None when there is none (adding it would add 0)."""
    c = _offset(net, node, rows)
    for p in net.inputs[node]:
        if net.is_current(p.pre):
            drive = p.apply(values[p.pre]) * np.float32(net.dt)
            c = drive if c is None else c + drive
    return c


_BLOCK_VALUES = 1 << 22  # floats per array of one block of time steps (16 MB)
_DEVICE_BLOCK_VALUES = 1 << 28  # the same on a device (1 GB): fewer, larger products
_CHUNK = 1 << 15  # neurons x samples updated together for all steps of a block (fits the caches)
_TORCH_LAYER = 1 << 10  # neurons per sample from which a layer steps in torch at the default batch
_TORCH_CHUNK = 1 << 18  # the same in torch, whose threads share a slice: from this size on, torch steps


class _Host:
    """The time-batched path's arrays in host memory: numpy, large populations stepped in
    torch's threads (:func:`_update_block`)."""

    @property
    def block_values(self) -> int:
        return _BLOCK_VALUES

    def put(self, a: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return a

    def get(self, a: np.ndarray) -> np.ndarray:
        return a

    def rows(self, row: np.ndarray, n: int) -> np.ndarray:
        """``n`` copies of ``row``, (n, len(row))."""
        c = np.zeros((n, len(row)), np.float32)
        c += row[None, :]
        return c

    def row_sums(self, a: np.ndarray) -> np.ndarray:
        """Sums along axis 1 in float64, as float32."""
        return a.sum(axis=1, dtype=np.float64).astype(np.float32)

    def full(self, n: int, value: float) -> np.ndarray:
        return np.full(n, value, np.float32)

    def zeros(self, shape: tuple, dtype: Any = np.float32) -> np.ndarray:
        return np.zeros(shape, dtype)

    def empty(self, shape: tuple) -> np.ndarray:
        return np.empty(shape, np.float32)

    def concat(self, parts: list) -> np.ndarray:
        return np.concatenate(parts)

    def cumsum(self, s: np.ndarray) -> np.ndarray:
        """Cumulative sums over the steps (axis 0), exact for spike counts."""
        return np.cumsum(s, axis=0, dtype=np.float64).astype(np.float32)

    def add_to(self, total: np.ndarray, counts: np.ndarray) -> None:
        """``total += counts``, in torch's threads for large arrays where torch is installed."""
        torch = _torch() if len(total) >= _TORCH_CHUNK else None
        if torch is None:
            total += counts
        else:
            torch.from_numpy(total).add_(torch.from_numpy(counts))

    def as_float(self, a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)


_HOST = _Host()  # stateless: one for every network in host memory


class _OnDevice:
    """The same arrays as torch tensors on a torch device (a GPU): they stay there for a whole
    batch. Poisson draws come from the host's generator (the same spikes as on the host)."""

    @property
    def block_values(self) -> int:
        return _DEVICE_BLOCK_VALUES

    def __init__(self, device: Any) -> None:
        import torch

        self.torch, self.device = torch, torch.device(device)

    def put(self, a: Optional[np.ndarray]):
        return None if a is None else self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def get(self, a) -> np.ndarray:
        return a.cpu().numpy()

    def rows(self, row: np.ndarray, n: int):
        return self.put(row).expand(n, -1)

    def row_sums(self, a):
        return a.sum(dim=1, dtype=self.torch.float64).float()

    def full(self, n: int, value: float):
        return self.torch.full((n,), value, dtype=self.torch.float32, device=self.device)

    def zeros(self, shape: tuple, dtype: Any = np.float32):
        kind = self.torch.int32 if dtype == np.int32 else self.torch.float32
        return self.torch.zeros(shape, dtype=kind, device=self.device)

    def empty(self, shape: tuple):
        return self.torch.empty(shape, dtype=self.torch.float32, device=self.device)

    def concat(self, parts: list):
        return self.torch.cat(parts)

    def cumsum(self, s):
        return self.torch.cumsum(s, 0, dtype=self.torch.float64).float()

    def add_to(self, total, counts) -> None:
        total.add_(counts)

    def as_float(self, a):
        return a.float()


def _run_layers(net: _Network, x: np.ndarray, steps: int, rng, record: bool, timed: bool, neurons: bool):
    """The time-batched path of a feed-forward graph from a reset network: for a block of time
    steps, population after population (topological order), the synaptic input of all the
    block's steps is one matrix product or convolution over (steps x samples) rows of the
    presynaptic spikes, then the neurons are updated step by step on it (in cache-sized slices).
    Delays shift the step index (input computed past the block waits for the next one). Same
    operations per neuron as :class:`_State`; returns what ``_State.present`` returns. The
    arrays live where ``net.arrays`` keeps them (host memory, or a device)."""
    graph, batch, arrays = net.graph, len(x), net.arrays
    pops = [n for n in net.nodes if isinstance(graph.op(n), ir.Population)]
    cells = {n: _Neurons(net, n) for n in pops}
    v = {n: arrays.full(batch * net.size[n], graph.op(n).v_init) for n in pops}
    refrac = {n: arrays.zeros(batch * net.size[n], np.int32) for n in pops if cells[n].refractory}
    readout_pops = [graph.inputs(r)[0] for r in net.readouts]
    first = readout_pops[0]
    over_time = arrays.zeros((steps, batch * net.size[first])) if record else None
    (source,) = graph.ops_of("snn.source")
    src_op = graph.op(source)
    gain = np.float32(src_op.gain)
    values = None if timed else arrays.put(x.reshape(batch, -1)) * gain
    phase = arrays.zeros((batch, net.size[source]))
    const = {} if timed else {n: _constant(net, n, {source: values}, batch) for n in pops}
    const = {n: None if c is None else c.reshape(-1) for n, c in const.items()}
    pending: dict[int, Any] = {}  # id(projection) -> input computed for steps past the block
    linear = {n for n in pops if _linear_in_counts(cells[n], net.inputs[n]) and not (record and n == first)}
    # spikes per neuron so far (exact in float32: whole numbers up to MAX_STEPS): the counts
    # readouts and totals report, and the input of the populations linear in counts
    counted = [*([] if src_op.encoding == "current" else [source]), *pops]
    fired = {n: arrays.zeros(batch * net.size[n]) for n in counted}
    block = max(1, min(steps, arrays.block_values // max(batch * max(net.size.values()), 1)))
    for t0 in range(0, steps, block):
        t1 = min(steps, t0 + block)
        if timed:
            values = arrays.put(x[:, t0:t1].swapaxes(0, 1).reshape((t1 - t0) * batch, -1)) * gain
            const = {n: _constant(net, n, {source: values}, (t1 - t0) * batch) for n in pops}
            const = {n: None if c is None else c.reshape(t1 - t0, -1) for n, c in const.items()}
        spikes = {source: _source_block(net, source, values, phase, t0, t1, batch, timed, rng)}
        if spikes[source] is not None:
            fired[source] += spikes[source].sum(axis=0)
        for node in pops:
            if node in linear:  # its spike input is applied to the counts after the last block
                if const[node] is not None:
                    v[node] += const[node].sum(axis=0) if timed else const[node] * np.float32(t1 - t0)
                continue
            inputs = []
            for p in net.inputs[node]:
                if net.is_current(p.pre):
                    continue
                rows = spikes[p.pre].reshape((t1 - t0) * batch, -1)
                now = p.apply(rows).reshape(t1 - t0, -1)
                if p.delay:
                    before = pending.get(id(p))
                    if before is None:
                        before = arrays.zeros((p.delay, now.shape[1]))
                    now = arrays.concat([before, now])
                    pending[id(p)] = now[t1 - t0 :]
                inputs.append((p.delay, now))
            s = arrays.empty((t1 - t0, batch * net.size[node]))
            trace = over_time[t0:t1] if record and node == first and node in net.membrane else None
            counts = _update_block(cells[node], v[node], const[node], inputs, refrac.get(node), s, t0, timed, trace)
            if trace is None and record and node == first:
                over_time[t0:t1] = fired[node] + arrays.cumsum(s)
            spikes[node] = s
            arrays.add_to(fired[node], counts)
    for node in linear:  # one product per projection for all steps
        for p in net.inputs[node]:
            if not net.is_current(p.pre):
                v[node] += p.apply(fired[p.pre].reshape(batch, -1)).reshape(-1)
    pairs = zip(net.readouts, readout_pops, strict=True)
    out = {r: arrays.get(v[p] if p in net.membrane else fired[p]).reshape(batch, -1).copy() for r, p in pairs}
    over = arrays.get(over_time).reshape(steps, batch, -1) if record else None
    total = {n: arrays.get(arrays.row_sums(fired[n].reshape(batch, -1))) for n in pops}
    per_neuron = {n: arrays.get(fired[n]).reshape(batch, -1).astype(np.uint16) for n in pops} if neurons else {}
    return out, total, over, per_neuron


def _linear_in_counts(cell: _Neurons, projections: list) -> bool:
    """A membrane readout without leak, floor or refractoriness whose spikes arrive without delay
    is linear in them: its final potential needs only each input's spike counts, not every step
    (one product per sample instead of one per step and sample, the same sum up to float rounding)."""
    op = cell.op
    return (
        cell.membrane
        and cell.decay is None
        and op.v_min is None
        and not cell.refractory
        and all(p.delay == 0 for p in projections)
    )


def _source_block(net: _Network, source: str, values, phase, t0: int, t1: int, batch: int, timed: bool, rng):
    """The source's spikes of steps t0..t1-1, (steps, batch * neurons); None for a current source."""
    op = net.graph.op(source)
    if op.encoding == "current":
        return None  # its projections are constant input (``_constant``)
    out = net.arrays.empty((t1 - t0, batch * net.size[source]))
    for k in range(t1 - t0):
        value = values[k * batch : (k + 1) * batch] if timed else values
        out[k] = _source_spikes(op, value, phase, net.dt, rng, net.arrays).reshape(-1)
    return out


def _update_block(cell: _Neurons, u, const, inputs: list, ref, out, t0: int, timed: bool, trace=None):
    """Steps t0.. of one population for the block's precomputed ``inputs`` ((delay, (steps, n))
    pairs), slice by slice of ``_CHUNK`` neurons; the spikes go to ``out`` (steps, n), the
    potentials after every step to ``trace`` (steps, n) when given. Returns the block's spike
    count per neuron (n,). Large populations without a refractory period step in torch (its
    threads) when it is installed: :meth:`_Neurons.update_torch`, the same float operations.
    Torch tensors on a device step there, the whole population at once."""
    host = isinstance(u, np.ndarray)
    torch = _torch() if not host or (ref is None and len(u) >= _TORCH_CHUNK) else None
    width = len(u) if not host else _CHUNK if torch is None else _TORCH_CHUNK
    counts = out[0] if len(out) == 1 else np.empty(len(u), np.float32) if host else out.new_empty(len(u))
    if host and torch is not None:  # numpy arrays stepped in torch's threads
        arrays = (u, const, out, trace, counts, *(i for _, i in inputs))
        u, const, out, trace, counts, *rest = (None if a is None else torch.from_numpy(a) for a in arrays)
        inputs = [(d, i) for (d, _), i in zip(inputs, rest, strict=True)]
    for a in range(0, len(u), width):
        b = a + width
        uc, rc = u[a:b], None if ref is None else ref[a:b]
        cc = None if const is None or timed else const[a:b]
        for k in range(len(out)):
            if timed and const is not None:
                cc = const[k, a:b]
            arriving = [i[k, a:b] for d, i in inputs if t0 + k >= d]
            if torch is None:
                cell.update(uc, cc, arriving, rc, out[k, a:b])
            else:
                cell.update_torch(uc, cc, arriving, out[k, a:b], rc)
            if trace is not None:
                trace[k, a:b] = uc
        if len(out) == 1:
            continue
        if torch is None:
            np.add.reduce(out[:, a:b], axis=0, out=counts[a:b])  # exact: whole numbers
        else:
            torch.sum(out[:, a:b], dim=0, out=counts[a:b])
    return counts.numpy() if host and torch is not None else counts


@functools.cache
def _torch():
    """torch, when installed (imported on first use); None otherwise."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _source_spikes(op: ir.Source, value, phase, dt: float, rng, arrays: Any = None):
    """One step's spikes of a spike source from its input ``value``: event counts as given,
    Poisson draws (from the host's generator, wherever the arrays live) or regular spikes
    (``phase`` accumulates). ``arrays``: where the arrays live (default host memory)."""
    arrays = arrays or _HOST
    if op.encoding == "events":
        return value  # spike counts of this step
    p = value * (op.rate_per_ms * dt)
    if op.encoding == "poisson":
        return arrays.as_float(arrays.put(rng.random(tuple(value.shape), dtype=np.float32)) < p)
    phase += p
    fired = arrays.as_float(phase >= 1.0)
    phase -= fired
    return fired
