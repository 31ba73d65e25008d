"""lower-to-snn: rewrite an ann graph as sources, projections, populations and a readout.

Every ANN value becomes one of two things while walking the graph in order:

* ``Spiking`` — the output of a source or population (non-negative rates), possibly viewed
  with another shape (flatten/reshape), with pending zero padding or a constant factor;
* ``Linear`` — projections from spiking values plus a bias, not yet a population.

A ReLU (or a clip at 0) turns a linear value into a population; dense, conv and pooling turn
a spiking value into a linear one. The graph output becomes a population with a readout.
Weights out of spike-encoded sources are divided by their rate factor, so that the un-
normalized graph's rates reproduce the ANN activations exactly (see ``snnc.ir.semantics.rates``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Optional, Union

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.ann import evaluate

from .base import Pass, PassContext, PassError


@dataclass
class Spiking:
    node: str  # snn op id of a source or population
    shape: tuple[int, ...]  # the ANN's view of it
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # pending zero padding (top, left, bottom, right)
    factor: float = 1.0  # pending constant factor on everything read from it


@dataclass
class Term:
    pre: str
    fields: dict  # Projection attributes except weight
    weight: Optional[np.ndarray] = None


@dataclass
class Linear:
    origin: str  # the ANN op that produced it (names the population)
    shape: tuple[int, ...]
    terms: list[Term] = field(default_factory=list)
    bias: Optional[np.ndarray] = None
    nonnegative: bool = False  # e.g. pooling of spikes: a population loses nothing


Value = Union[Spiking, Linear]


@dataclass
class LowerToSnn(Pass):
    name = "lower-to-snn"
    dialect = "ann"
    summary = "ann -> snn: sources, projections, IF populations and a readout"
    # Overrides of the target's compile options (None: the target's value; see Pass.setting).
    reset: Optional[Literal["subtract", "zero"]] = None
    encoding: Optional[Literal["current", "poisson", "regular", "events"]] = None
    max_rate: Optional[float] = None
    readout: Optional[Literal["spike_count", "membrane"]] = None
    # Max pooling: "relu-tree" is exact in rates on every target (max(a, b) = b + relu(a - b));
    # "avg" replaces it by average pooling, a different network whose effect is measured.
    maxpool: Literal["relu-tree", "avg"] = "relu-tree"
    dt: Optional[float] = None
    presentation_time: Optional[float] = None
    tau_refrac: Optional[float] = None
    tau_m: Optional[float] = None
    v_min: Optional[float] = None
    v_init: Optional[float] = None
    fold_pooling: Optional[bool] = None
    pause: Optional[float] = None
    min_delay: Optional[float] = None
    reads = (
        "reset",
        "encoding",
        "max_rate",
        "dt",
        "presentation_time",
        "tau_refrac",
        "tau_m",
        "v_min",
        "v_init",
        "fold_pooling",
        "readout",
        "pause",
        "min_delay",
    )

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        self._cfg = {key: self.setting(ctx, key) for key in self.reads}
        if self._cfg["encoding"] == "events" and self._cfg["dt"] != 1.0:
            raise PassError("encoding=events (a spike count per step) needs dt = 1 ms to equal the ANN's rates")
        self._ctx = ctx
        self._ann = graph
        attrs = {"dt": self._cfg["dt"], "presentation_time": self._cfg["presentation_time"], "instances": 1}
        self._snn = Graph(attrs)
        if self._cfg["pause"] is not None:  # samples run back to back, membranes are not reset (see snn-semantics)
            self._snn.attrs["pause"] = float(self._cfg["pause"])
        if "input_layout" in graph.attrs:  # the layout data files come in (see frontends)
            self._snn.attrs["input_layout"] = graph.attrs["input_layout"]
        if graph.ops_of("ann.maxpool2d"):
            self._report_maxpool(graph, ctx)
        values: dict[str, Value] = {}
        for node_id in graph.topo():
            try:
                values[node_id] = self._lower(node_id, [values[i] for i in graph.inputs(node_id)])
            except PassError as exc:
                raise PassError(f"%{node_id}: {exc}") from None
        outputs = []
        for out in graph.outputs:
            value = values[out]
            if isinstance(value, Spiking) and self._snn.op(value.node).OPNAME == "snn.source":
                raise PassError(f"%{out}: the output is the input; nothing to lower")
            pop = self._population(value) if isinstance(value, Linear) or value.factor != 1.0 else value.node
            outputs.append(
                self._snn.add(self._snn.unique_id(f"{pop}_readout"), ir.Readout(mode=self._cfg["readout"]), [pop])
            )
        self._snn.outputs = outputs
        return self._snn

    # ------------------------------------------------------------------ per op
    def _lower(self, node_id: str, args: list[Value]) -> Value:
        op = self._ann.op(node_id)
        shape = self._ann.shape(node_id)
        x = args[0] if args else None
        if isinstance(op, ir.Input):
            cfg = self._cfg
            src = ir.Source(shape=op.shape, encoding=cfg["encoding"], max_rate=cfg["max_rate"])
            return Spiking(self._snn.add(self._snn.unique_id(node_id), src), shape)
        if isinstance(op, (ir.Dropout, ir.Identity)):
            return x
        if isinstance(op, (ir.Dense, ir.Conv2d)) and self._cfg["fold_pooling"] and self._pooled(x):
            pooled, weight, op = self._through_pool(op, x)
            linear = self._project(node_id, op, pooled, shape, weight)
            return self._fire(node_id, linear) if op.activation == "relu" else linear
        if isinstance(op, (ir.Dense, ir.Conv2d, ir.AvgPool2d, ir.GlobalAvgPool)):
            linear = self._project(node_id, op, self._spiking(x, op.OPNAME), shape)
            return self._fire(node_id, linear) if getattr(op, "activation", "none") == "relu" else linear
        if isinstance(op, ir.Relu) or (isinstance(op, ir.Clip) and op.min == 0.0):
            if isinstance(op, ir.Clip) and math.isfinite(op.max):
                self._ctx.warn(f"%{node_id}: the upper bound {op.max} of the clip is not modelled")
            return self._fire(node_id, x) if isinstance(x, Linear) else x
        if isinstance(op, (ir.Flatten, ir.Reshape)):
            if isinstance(x, Spiking) and any(x.pads):
                raise PassError("reshape of a padded value")
            if isinstance(x, Spiking):
                return Spiking(x.node, shape, factor=x.factor)
            return Linear(x.origin, shape, x.terms, x.bias, x.nonnegative)
        if isinstance(op, ir.Pad):
            return self._pad(op, self._spiking(x, "ann.pad"), shape)
        if isinstance(op, ir.Scale):
            if isinstance(x, Spiking):
                return Spiking(x.node, x.shape, x.pads, x.factor * op.factor)
            terms = [_scaled(t, op.factor) for t in x.terms]
            bias = None if x.bias is None else x.bias * op.factor
            return Linear(x.origin, shape, terms, bias, x.nonnegative and op.factor >= 0)
        if isinstance(op, ir.Add):
            return self._add(node_id, args, shape)
        if isinstance(op, ir.Concat):
            return self._concat(node_id, op, args, shape)
        if isinstance(op, ir.MaxPool2d):
            return self._maxpool(node_id, op, self._spiking(x, op.OPNAME), shape)
        raise PassError(f"{op.OPNAME} cannot be lowered (run canonicalize, fold-batchnorm and remove-softmax first)")

    def _spiking(self, x: Value, what: str) -> Spiking:
        if isinstance(x, Spiking):
            return x
        if x.nonnegative:
            return Spiking(self._population(x), x.shape)
        self._ctx.warn(f"{what} reads %{x.origin}, which has no ReLU: its negative values are lost in spikes")
        return Spiking(self._population(x), x.shape)

    def _pooled(self, x: Optional[Value]) -> bool:
        """Whether ``x`` is average pooling of one population that a following dense or conv layer
        can read directly: non-overlapping windows (kernel = strides), no padding, covering the map."""
        if not isinstance(x, Linear) or x.bias is not None or len(x.terms) != 1:
            return False
        fields = x.terms[0].fields
        if fields.get("connectivity") != "pool" or any(fields["pads"]) or fields["kernel"] != fields["strides"]:
            return False
        pre_shape = self._snn.shape(x.terms[0].pre)
        covered = (x.shape[0], x.shape[1] * fields["kernel"][0], x.shape[2] * fields["kernel"][1])
        return len(x.shape) == 3 and pre_shape == covered

    def _through_pool(self, op: ir.Dense | ir.Conv2d, x: Linear) -> tuple[Spiking, np.ndarray, ir.Op]:
        """A dense or conv layer reading average pooling (windows = strides, no padding, covering
        the map) as one projection from the pooled population: each weight spread over its
        window. Exact, and one population (and a step of latency) fewer."""
        (term,) = x.terms
        (k0, k1), scale = term.fields["kernel"], term.fields["scale"]
        pre_shape = self._snn.shape(term.pre)
        w = self._ann.tensor(op.weight)
        if isinstance(op, ir.Dense):
            grid = w.reshape(len(w), *x.shape)
            spread = np.repeat(np.repeat(grid, k0, axis=2), k1, axis=3) * np.float32(scale)
            return Spiking(term.pre, pre_shape), spread.reshape(len(w), -1), op
        spread = _spread(w, (k0, k1), op.dilations) * np.float32(scale)
        top, left, bottom, right = op.pads
        conv = replace(
            op,
            strides=(op.strides[0] * k0, op.strides[1] * k1),
            pads=(top * k0, left * k1, bottom * k0, right * k1),
            dilations=(1, 1),
        )
        return Spiking(term.pre, pre_shape), spread, conv

    def _project(
        self, node_id: str, op: ir.Op, x: Spiking, shape: tuple[int, ...], weight: Optional[np.ndarray] = None
    ) -> Linear:
        """``op``'s synapses from ``x`` (``weight``: instead of the op's own, e.g. through pooling)."""
        pre_shape = self._snn.shape(x.node)
        t = self._ann.tensor
        bias = t(op.bias) if getattr(op, "bias", None) is not None else None
        weight = t(op.weight) if weight is None and getattr(op, "weight", None) is not None else weight
        if isinstance(op, ir.Dense):
            if any(x.pads):
                raise PassError("dense layer after padding")
            term = Term(x.node, {"connectivity": "dense"}, weight * x.factor)
            return Linear(node_id, shape, [term], bias)
        if pre_shape != x.shape:
            raise PassError(f"a {op.OPNAME} needs its input as {list(x.shape)}, the population is {list(pre_shape)}")
        pads = tuple(a + b for a, b in zip(x.pads, getattr(op, "pads", (0, 0, 0, 0)), strict=False))
        if isinstance(op, ir.Conv2d):
            window = {"strides": op.strides, "dilations": op.dilations, "groups": op.groups, "pads": pads}
            term = Term(x.node, {"connectivity": "conv", **window}, weight * x.factor)
            return Linear(node_id, shape, [term], bias)
        if isinstance(op, ir.GlobalAvgPool):
            kernel, strides = pre_shape[1:], (1, 1)
        else:
            kernel, strides = op.kernel, op.strides
            if any(op.pads) and not op.count_include_pad:
                raise PassError("average pooling with count_include_pad=0 and padding is not uniform")
        fields = {"connectivity": "pool", "kernel": kernel, "strides": strides, "pads": pads}
        fields["scale"] = x.factor / (kernel[0] * kernel[1])
        linear = Linear(node_id, shape, [Term(x.node, fields)], nonnegative=x.factor >= 0)
        if ir.spatial_out(pre_shape, kernel, strides, pads) != shape[1:]:
            raise PassError("ceil_mode pooling that adds windows is not supported")
        return linear

    def _maxpool(self, node_id: str, op: ir.MaxPool2d, x: Spiking, shape: tuple[int, ...]) -> Linear:
        """Max pooling of spike rates. ``relu-tree``: each window element is selected by a depthwise
        one-hot convolution, and pairs are merged with max(a, b) = b + relu(a - b), one population
        per relu; the rates (non-negative) make zero padding equal to the ANN's -inf padding.
        ``avg``: average pooling over the same windows (counting the padding, as a pool projection)."""
        pads = tuple(a + b for a, b in zip(x.pads, op.pads, strict=False))
        if ir.spatial_out(x.shape, op.kernel, op.strides, pads) != shape[1:]:
            raise PassError("ceil_mode pooling that adds windows is not supported")
        if self.maxpool == "avg":
            avg = ir.AvgPool2d(kernel=op.kernel, strides=op.strides, pads=op.pads)
            return self._project(node_id, avg, x, shape)
        channels, (kh, kw) = x.shape[0], op.kernel
        window = {"connectivity": "conv", "strides": op.strides, "pads": pads, "groups": channels}
        values = []
        for i in range(kh):
            for j in range(kw):
                pick = np.zeros((channels, 1, kh, kw), np.float32)
                pick[:, 0, i, j] = x.factor
                values.append(Linear(node_id, shape, [Term(x.node, dict(window), pick)], nonnegative=True))
        while len(values) > 1:
            merged = [self._max_of(node_id, a, b, shape) for a, b in zip(values[::2], values[1::2], strict=False)]
            values = merged + values[len(merged) * 2 :]
        return values[0]

    def _max_of(self, node_id: str, a: Linear, b: Linear, shape: tuple[int, ...]) -> Linear:
        """max(a, b) = b + relu(a - b): a population for the relu, read one to one."""
        difference = Linear(f"{node_id}_max", shape, a.terms + [_scaled(t, -1.0) for t in b.terms])
        relu = self._population(difference)
        one = {"connectivity": "one_to_one", "scale": 1.0, "post_shape": shape}
        return Linear(node_id, shape, b.terms + [Term(relu, one)], nonnegative=True)

    def _report_maxpool(self, graph: Graph, ctx: PassContext) -> None:
        """Say how max pooling is lowered; for ``avg``, measure the change on calibration data."""
        pools = graph.ops_of("ann.maxpool2d")
        if self.maxpool == "relu-tree":
            ctx.info(
                f"{len(pools)} max pooling layer(s) as relu trees (max(a, b) = b + relu(a - b)): exact in rates, "
                "k*k - 1 extra populations per layer of window k*k and that many more steps of latency"
            )
            return
        message = f"maxpool=avg: {len(pools)} max pooling layer(s) replaced by average pooling"
        if ctx.calibration is not None:
            avg = graph.copy()
            for node in pools:
                op = graph.op(node)
                avg.set_op(
                    node, ir.AvgPool2d(kernel=op.kernel, strides=op.strides, pads=op.pads, ceil_mode=op.ceil_mode)
                )
            x = ctx.calibration[:1000]
            scores = [evaluate(g, x, [g.outputs[0]])[g.outputs[0]].reshape(len(x), -1) for g in (graph, avg)]
            labels = [s.argmax(axis=1) for s in scores]
            changed = float(np.mean(labels[0] != labels[1]))
            message += f"; on {len(x)} calibration samples the ANN's predictions change on {changed:.1%}"
            if ctx.calibration_labels is not None:
                y = ctx.calibration_labels[: len(x)]
                message += f", accuracy {np.mean(labels[0] == y):.2%} -> {np.mean(labels[1] == y):.2%}"
        ctx.warn(message)

    def _pad(self, op: ir.Pad, x: Spiking, shape: tuple[int, ...]) -> Spiking:
        p = op.pads
        if len(p) != 6 or p[0] or p[3] or op.value != 0.0:
            raise PassError("only zero padding of height and width is supported")
        pads = (x.pads[0] + p[1], x.pads[1] + p[2], x.pads[2] + p[4], x.pads[3] + p[5])
        return Spiking(x.node, x.shape, pads, x.factor)

    def _add(self, node_id: str, args: list[Value], shape: tuple[int, ...]) -> Linear:
        terms: list[Term] = []
        bias = None
        nonnegative = True
        for a in args:
            nonnegative &= a.factor >= 0 if isinstance(a, Spiking) else a.nonnegative
            if isinstance(a, Spiking):
                if any(a.pads):
                    raise PassError("add of a padded value")
                one = {"connectivity": "one_to_one", "scale": a.factor, "post_shape": shape}
                terms.append(Term(a.node, one))
            else:
                terms.extend(a.terms)
                if a.bias is not None:  # per channel (C,) or per neuron (C, H, W): line channels up
                    b = a.bias.reshape(-1, *([1] * (len(shape) - 1))) if a.bias.ndim < len(shape) else a.bias
                    bias = b if bias is None else bias + b
        return Linear(node_id, shape, terms, bias, nonnegative and (bias is None or not (bias < 0).any()))

    def _concat(self, node_id: str, op: ir.Concat, args: list[Value], shape: tuple[int, ...]) -> Spiking:
        if op.axis != 0:
            raise PassError("only concatenation along channels (axis 1 with batch) is supported")
        terms, offset = [], 0
        for a in args:
            s = self._spiking(a, "concat")
            if any(s.pads):
                raise PassError("concat of a padded value")
            one = {"connectivity": "one_to_one", "scale": s.factor, "offset": offset, "post_shape": shape}
            terms.append(Term(s.node, one))
            offset += math.prod(s.shape)
        return Spiking(self._population(Linear(node_id, shape, terms)), shape)

    # ------------------------------------------------------------------ building snn ops
    def _fire(self, node_id: str, x: Linear) -> Spiking:
        return Spiking(self._population(x), x.shape)

    def _population(self, x: Linear | Spiking) -> str:
        if isinstance(x, Spiking):  # a pending factor needs its own population
            x = self._add(x.node, [x], x.shape)
        snn = self._snn
        pop_id = snn.unique_id(x.origin)
        proj_ids = []
        for term in x.terms:
            fields = dict(term.fields)
            pre_op = snn.op(term.pre)
            current = isinstance(pre_op, ir.Source) and pre_op.encoding == "current"
            fields["delay"] = 0.0 if current else self._cfg["min_delay"]
            weight = term.weight
            if isinstance(pre_op, ir.Source) and not current:  # spikes arrive at rate x * R
                rate = pre_op.rate_per_ms
                if weight is None:
                    fields["scale"] = fields.get("scale", 1.0) / rate
                else:
                    weight = weight / rate
            proj_id = snn.unique_id(f"{pop_id[:96]}_from_{term.pre}")  # ids stop at 128 characters: keep "_from_"
            if weight is not None:
                fields["weight"] = snn.add_tensor(f"{proj_id}.weight", weight.astype(np.float32))
            snn.add(proj_id, ir.Projection(**fields), [term.pre])
            proj_ids.append(proj_id)
        shapes = {snn.shape(p) for p in proj_ids}
        if len(shapes) != 1:
            raise PassError(f"inputs of %{x.origin} arrive with different shapes {sorted(shapes)}")
        params = {
            "reset": self._cfg["reset"],
            "tau_refrac": self._cfg["tau_refrac"],
            "tau_m": self._cfg["tau_m"],
            "v_min": self._cfg["v_min"],
            "v_init": self._cfg["v_init"],  # the threshold is 1 here: a fraction of it
        }
        if x.bias is not None and np.any(x.bias):
            n = math.prod(shapes.pop())
            per_neuron = np.repeat(x.bias, n // x.bias.size)  # per channel -> per neuron (C-major)
            params["bias"] = snn.add_tensor(f"{pop_id}.bias", per_neuron.astype(np.float32))
        snn.add(pop_id, ir.Population(**params), proj_ids)
        return pop_id


def _scaled(term: Term, factor: float) -> Term:
    fields = dict(term.fields)
    if term.weight is None:
        fields["scale"] = fields.get("scale", 1.0) * factor
        return Term(term.pre, fields)
    return Term(term.pre, fields, term.weight * factor)


def _spread(weight: np.ndarray, window: tuple[int, int], dilations: tuple[int, ...]) -> np.ndarray:
    """A convolution kernel read through average pooling of ``window`` (windows = strides): each tap
    spread over its window, taps ``dilations`` windows apart with zeros between, so the kernel
    applies with dilation 1 to the population before the pooling."""
    (k0, k1), (d0, d1) = window, dilations
    kh, kw = weight.shape[2:]
    out = np.zeros((*weight.shape[:2], k0 * (d0 * (kh - 1) + 1), k1 * (d1 * (kw - 1) + 1)), weight.dtype)
    for i in range(kh):
        for j in range(kw):
            y, x = k0 * d0 * i, k1 * d1 * j
            out[:, :, y : y + k0, x : x + k1] = weight[:, :, i : i + 1, j : j + 1]
    return out
