"""quantize-mac: dense and convolution layers to BrainScaleS-2 MAC layers (``ann.mac``).

The chip multiplies 5-bit unsigned inputs (0..31) by 6-bit signed weights (-63..63); a layer's
result ``floor(x_int @ W_int * gain * num_sends)`` is read by an 8-bit ADC (-128..127) and
brought back to the next layer's 0..31 by hxtorch's converting ReLU, ``min(max(y, 0) >> shift,
31)`` (snnc.ir.semantics.mac). With real activations ``x = x_int / s`` and weights ``W = W_int /
a``, a layer maps scale ``s`` to ``s * a * gain * num_sends / 2**shift``. Per layer, in order:

* ``s`` of the network input is ``31 / p``, ``p`` the ``percentile`` of the input on the
  calibration data (inputs must not be negative: the chip's are unsigned);
* ``a`` is at most ``63 / max|W|`` (all 6 bits), and the layer's output scale should be
  ``31 / p`` of its own calibrated activations (``127 / p`` of the per-sample largest output for
  the last layer, which has no ReLU and returns 8-bit results); the pass picks the largest
  ``shift`` (0..2: 31 << 2 still fits 8 bits) and the smallest ``num_sends`` (at most
  ``max-sends``) that reach that scale, then lowers ``a`` to hit it exactly;
* biases become int8 integers added by hxtorch's ``add``; with ``round-offset`` the bias also
  carries ``2**(shift-1) + (chunks-1)/2``, which turns the floors of the ADC (once per 128-row
  chunk) and of the shift into rounding to nearest on average.

The last layer is followed by ``ann.scale`` (1 / its output scale), so the graph's outputs
approximate the float network's. Pooling, flatten and reshape between layers run on the host (as
in an hxtorch model); any other op, and an activation other than ReLU inside the network, is
refused naming the layer. The effect is measured on calibration samples and reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.ann import evaluate

from .base import Pass, PassContext, PassError

HOST_OPS = (ir.Input, ir.Flatten, ir.Reshape, ir.AvgPool2d, ir.MaxPool2d)
MAX_USEFUL_SHIFT = 2  # 31 << 2 = 124 still fits the 8-bit result; a larger shift leaves input codes unused


@dataclass(frozen=True)
class MacScales:
    """One layer's mapping: weight factor ``a``, repeats of the input ``num_sends``, ``shift``
    and the scales of its input and output (real value x scale = integer on the chip)."""

    a: float
    num_sends: int
    shift: int
    scale_in: float
    scale_out: float


def mac_layers(graph: Graph) -> list[str]:
    """The dense and convolution layers of ``graph`` in order; PassError naming the first op
    BrainScaleS-2's MAC mode cannot run."""
    layers = [n for n in graph.topo() if isinstance(graph.op(n), (ir.Dense, ir.Conv2d))]
    if not layers:
        raise PassError("the model has no dense or convolution layer for BrainScaleS-2's MAC mode to run")
    for node_id in graph.topo():
        op = graph.op(node_id)
        if isinstance(op, ir.Relu):
            raise PassError(
                f"%{node_id}: a ReLU that is not the activation of the dense or convolution layer before it "
                "(BrainScaleS-2 applies ReLU only as a layer's converting ReLU)"
            )
        if not isinstance(op, (*HOST_OPS, ir.Dense, ir.Conv2d)):
            raise PassError(
                f"%{node_id}: {op.OPNAME} cannot be mapped to BrainScaleS-2's MAC mode (it runs dense and "
                "convolution layers with ReLU between them; pooling, flatten and reshape run on the host)"
            )
        if isinstance(op, ir.Conv2d) and (op.groups != 1 or op.dilations != (1, 1)):
            raise PassError(f"%{node_id}: hxtorch's Conv2d takes neither groups nor dilations above 1")
        if isinstance(op, ir.Conv2d) and op.bias is not None and len(graph.tensor_shape(op.bias)) != 1:
            raise PassError(
                f"%{node_id}: its bias varies over output positions (a batch-norm folded into a padded "
                "convolution); hxtorch's Conv2d takes one bias per channel"
            )
    for node_id in graph.topo():
        if len(graph.inputs(node_id)) > 1 or len(graph.users(node_id)) > 1:
            raise PassError(f"%{node_id}: BrainScaleS-2's MAC mode runs a chain of layers; this op branches")
    for node_id in layers[:-1]:
        if graph.op(node_id).activation != "relu":
            raise PassError(
                f"%{node_id}: a layer without ReLU inside the network; BrainScaleS-2's inputs are unsigned "
                "(0..31), so only ReLU (the converting ReLU) can stand between layers"
            )
    if graph.op(layers[-1]).activation != "none":
        raise PassError(
            f"%{layers[-1]}: the last layer has a ReLU; BrainScaleS-2 returns its 8-bit results unrectified "
            "(remove the ReLU from the output layer)"
        )
    return layers


def choose_scales(
    scale_in: float, w_max: float, wanted_out: float, gain: float, max_sends: int, last: bool, weight_max: int = 63
) -> MacScales:
    """The layer's ``a``, ``num_sends`` and ``shift`` for an input scale and the output scale wanted."""
    a_max = weight_max / w_max if w_max > 0 else 1.0
    best: Optional[MacScales] = None
    for shift in [0] if last else range(MAX_USEFUL_SHIFT, -1, -1):
        c = wanted_out * 2**shift / (scale_in * gain)  # = a * num_sends
        sends = min(max(math.ceil(c / a_max - 1e-9), 1), max_sends)
        a = min(a_max, c / sends)
        option = MacScales(a, sends, shift, scale_in, scale_in * a * gain * sends / 2**shift)
        if option.scale_out >= wanted_out * (1 - 1e-6):
            return option  # the largest shift that reaches the wanted scale
        if best is None or option.scale_out > best.scale_out:
            best = option
    assert best is not None
    return best


def fake_quantized(graph: Graph, weight_max: int = 63) -> Graph:
    """A copy of ``graph`` whose dense and convolution weights are rounded to ``weight_max`` levels
    per sign, per layer (the "6-bit software" network: weights quantized, activations real)."""
    out = graph.copy()
    for node_id in graph.topo():
        op = graph.op(node_id)
        if isinstance(op, (ir.Dense, ir.Conv2d)):
            w = graph.tensor(op.weight)
            step = float(np.abs(w).max()) / weight_max or 1.0
            out.add_tensor(op.weight.name, (np.round(w / step) * step).astype(np.float32))
    return out


@dataclass
class QuantizeMac(Pass):
    name = "quantize-mac"
    dialect = "ann"
    summary = "dense/conv layers to BrainScaleS-2 MAC layers: 5-bit inputs, 6-bit weights, shifts from calibration"
    reads = ("input_bits", "weight_bits", "output_bits", "matrix_rows", "mac_gain")
    percentile: float = 99.99
    max_sends: int = 16  # hxtorch's own MNIST test uses 3 to 6
    round_offset: bool = True
    measure_samples: int = 1000

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if not 0 < self.percentile <= 100 or self.max_sends < 1:
            raise PassError("percentile must lie in (0, 100] and max-sends be at least 1")
        layers = mac_layers(graph)
        x = ctx.need_calibration()
        (entry,) = graph.ops_of("ann.input")
        acts = evaluate(graph, x, [entry, *layers])
        if float(acts[entry].min()) < 0:
            raise PassError(
                f"%{entry}: the calibration inputs reach {float(acts[entry].min()):.3g}; BrainScaleS-2's inputs are "
                "unsigned, so the model must take inputs >= 0"
            )
        in_max, out_max = 2 ** self.setting(ctx, "input_bits") - 1, 2 ** (self.setting(ctx, "output_bits") - 1) - 1
        weight_max, gain = 2 ** (self.setting(ctx, "weight_bits") - 1) - 1, self.setting(ctx, "mac_gain")
        rows = self.setting(ctx, "matrix_rows")
        original = graph.copy()
        scale = in_max / self._level(acts[entry], entry, ctx)
        for node_id in layers:
            op, last = graph.op(node_id), node_id == layers[-1]
            wanted = (out_max if last else in_max) / self._level(acts[node_id], node_id, ctx, last)
            w_max = float(np.abs(graph.tensor(op.weight)).max())
            m = choose_scales(scale, w_max, wanted, gain, self.max_sends, last, weight_max)
            if m.scale_out < wanted * 0.99:
                ctx.info(
                    f"%{node_id}: {self.max_sends} sends reach {m.scale_out / wanted:.0%} of the wanted output "
                    "scale; its results use fewer levels (raise max-sends)"
                )
            first = scale if node_id == layers[0] else None
            graph.set_op(node_id, self._mac(graph, node_id, m, gain, rows, first, ctx))
            ctx.info(
                f"%{node_id}: weights x {m.a:.4g}, num_sends {m.num_sends}, shift {m.shift}, "
                f"scale {m.scale_in:.4g} -> {m.scale_out:.4g}"
            )
            scale = m.scale_out
        self._rescale_output(graph, layers[-1], scale)
        self._measure(original, graph, weight_max, ctx)
        return graph

    def _level(self, values: np.ndarray, node_id: str, ctx: PassContext, last: bool = False) -> float:
        """The activation that maps to the top code: the percentile of the positive values (of
        the per-sample largest magnitude, for the last layer)."""
        values = np.abs(values.reshape(len(values), -1)).max(axis=1) if last else values[values > 0]
        if values.size == 0 or float(values.max()) <= 0:
            ctx.warn(f"%{node_id} is never active on the calibration data; its scale is left at 1")
            return 1.0
        return float(np.percentile(values, self.percentile))

    def _mac(
        self, graph: Graph, node_id: str, m: MacScales, gain: float, rows: int, first: Optional[float], ctx: PassContext
    ) -> ir.Mac:
        """The ``ann.mac`` op for layer ``node_id``, its weight tensor replaced by integers;
        ``rows``: signed rows of a partial matrix; ``first``: the input scale of the first layer."""
        op = graph.op(node_id)
        weight = np.round(graph.tensor(op.weight) * np.float32(m.a)).astype(np.float32)
        graph.add_tensor(op.weight.name, weight)
        conv = isinstance(op, ir.Conv2d)
        chunks = math.ceil(math.prod(weight.shape[1:]) / rows)
        return ir.Mac(
            weight=op.weight,
            bias=self._bias(graph, node_id, m, chunks, ctx),
            kind="conv" if conv else "dense",
            strides=op.strides if conv else (1, 1),
            pads=op.pads if conv else (0, 0, 0, 0),
            gain=gain,
            num_sends=m.num_sends,
            input_scale=first,
            activation="converting_relu" if op.activation == "relu" else "none",
            shift=m.shift,
        )

    def _bias(self, graph: Graph, node_id: str, m: MacScales, chunks: int, ctx: PassContext) -> Optional[ir.TensorRef]:
        """The layer's int8 bias: the real bias in result units, plus the rounding offset."""
        op = graph.op(node_id)
        offset = 0
        if self.round_offset and op.activation == "relu":
            offset = (2 ** (m.shift - 1) if m.shift else 0) + (chunks - 1) // 2
        if op.bias is None and not offset:
            return None
        units_per_real = m.scale_out * 2**m.shift  # the layer's result (before the shift) per unit of real output
        real = graph.tensor(op.bias) if op.bias is not None else np.zeros(graph.shape(node_id)[0], np.float32)
        units = np.round(real * units_per_real) + offset
        clipped = np.clip(units, -128, 127)
        if np.any(clipped != units):
            ctx.warn(f"%{node_id}: {int(np.sum(clipped != units))} biases exceed the int8 range and are clipped")
        name = op.bias.name if op.bias is not None else graph.unique_tensor_name(f"{node_id}.bias")
        return graph.add_tensor(name, clipped.astype(np.float32))

    def _rescale_output(self, graph: Graph, last: str, scale: float) -> None:
        """An ``ann.scale`` after the last layer: its results back in the float network's units."""
        scaled = graph.add(graph.unique_id(f"{last}_real"), ir.Scale(factor=1.0 / scale), [last])
        graph.replace_uses(last, scaled)  # every reader of the layer, the new scale included, then:
        graph.set_inputs(scaled, [last])

    def _measure(self, original: Graph, graph: Graph, weight_max: int, ctx: PassContext) -> None:
        """Report accuracy (or agreement) of the float, 6-bit-weight and emulated networks."""
        x = ctx.need_calibration()[: self.measure_samples]
        nets = {"float": original, "weights only": fake_quantized(original, weight_max), "emulated": graph}
        labels = {name: _classes(g, x) for name, g in nets.items()}
        agree = float(np.mean(labels["emulated"] == labels["float"]))
        text = f"on {len(x)} calibration samples the emulated MAC network agrees with the float one on {agree:.1%}"
        y = ctx.calibration_labels
        if y is not None:
            acc = {name: float(np.mean(lab == y[: len(x)])) for name, lab in labels.items()}
            text += "; accuracy " + ", ".join(f"{name} {a:.2%}" for name, a in acc.items())
        ctx.info(text)


def _classes(graph: Graph, x: np.ndarray) -> np.ndarray:
    out = evaluate(graph, x, [graph.outputs[0]])[graph.outputs[0]]
    return out.reshape(len(x), -1).argmax(axis=1)
