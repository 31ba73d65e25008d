"""A numpy interpreter of the ann dialect, vectorized over a batch.

It is the ANN reference: calibration activations, ``ann_accuracy`` and the frontends'
equivalence tests all come from here. Values carry a leading batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.ops import spatial_out

from . import mac as hx


def _pad_hw(x: np.ndarray, pads: tuple[int, ...], extra: tuple[int, int] = (0, 0), value: float = 0.0) -> np.ndarray:
    top, left, bottom, right = pads
    width = ((0, 0), (0, 0), (top, bottom + extra[0]), (left, right + extra[1]))
    return np.pad(x, width, constant_values=value) if any(sum(w) for w in width) else x


def _windows(x: np.ndarray, kernel, strides, dilations, out_hw) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of the windows of a padded (N, C, H, W) input."""
    span = ((kernel[0] - 1) * dilations[0] + 1, (kernel[1] - 1) * dilations[1] + 1)
    view = sliding_window_view(x, span, axis=(2, 3))
    view = view[:, :, :: strides[0], :: strides[1], :: dilations[0], :: dilations[1]]
    return view[:, :, : out_hw[0], : out_hw[1]]


def _ceil_extra(in_shape, out_hw, kernel, strides, pads) -> tuple[int, int]:
    """Padding beyond ``pads`` that ceil-mode windows reach (it never counts in averages)."""
    return tuple(
        max((out_hw[i] - 1) * strides[i] + kernel[i] - (in_shape[1 + i] + pads[i] + pads[i + 2]), 0) for i in range(2)
    )


def conv2d(x: np.ndarray, w: np.ndarray, op: ir.Conv2d, bias: Optional[np.ndarray]) -> np.ndarray:
    out_hw = spatial_out(x.shape[1:], w.shape[2:], op.strides, op.pads, op.dilations)
    win = _windows(_pad_hw(x, op.pads), w.shape[2:], op.strides, op.dilations, out_hw)
    n, c = x.shape[:2]
    cg, og = c // op.groups, w.shape[0] // op.groups
    parts = []
    for g in range(op.groups):  # im2col: one matrix product per group
        cols = win[:, g * cg : (g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * out_hw[0] * out_hw[1], -1)
        parts.append(cols @ w[g * og : (g + 1) * og].reshape(og, -1).T)
    y = np.concatenate(parts, axis=1).reshape(n, *out_hw, w.shape[0]).transpose(0, 3, 1, 2)
    if bias is None:
        return y
    return y + (bias[None] if bias.ndim == 3 else bias[None, :, None, None])  # per output or per channel


def _pool(x: np.ndarray, op: ir.AvgPool2d | ir.MaxPool2d) -> np.ndarray:
    out_hw = spatial_out(x.shape[1:], op.kernel, op.strides, op.pads, ceil=op.ceil_mode)
    extra = _ceil_extra(x.shape[1:], out_hw, op.kernel, op.strides, op.pads)
    if isinstance(op, ir.MaxPool2d):
        padded = _pad_hw(x, op.pads, extra, -np.inf)
        return _windows(padded, op.kernel, op.strides, (1, 1), out_hw).max(axis=(-2, -1))
    total = _windows(_pad_hw(x, op.pads, extra), op.kernel, op.strides, (1, 1), out_hw).sum(axis=(-2, -1))
    ones = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if op.count_include_pad:
        counted = np.pad(ones, ((0, 0), (0, 0), (op.pads[0], op.pads[2]), (op.pads[1], op.pads[3])), constant_values=1)
        counted = _pad_hw(counted, (0, 0, 0, 0), extra)
    else:
        counted = _pad_hw(ones, op.pads, extra)
    count = _windows(counted, op.kernel, op.strides, (1, 1), out_hw).sum(axis=(-2, -1))
    return total / count


def _eval_op(graph: Graph, node_id: str, args: list[np.ndarray]) -> np.ndarray:
    op = graph.op(node_id)
    t = graph.tensor
    x = args[0] if args else None
    if isinstance(op, ir.Dense):
        y = x.reshape(len(x), -1) @ t(op.weight).T
        y = y + t(op.bias) if op.bias is not None else y
    elif isinstance(op, ir.Conv2d):
        y = conv2d(x, t(op.weight), op, t(op.bias) if op.bias is not None else None)
    elif isinstance(op, ir.Mac):
        settings = {k: v for k, v in op.attrs().items() if k not in ("weight", "bias")}
        return hx.layer(x, t(op.weight), t(op.bias) if op.bias is not None else None, **settings)
    else:
        return _SIMPLE[type(op)](op, graph, x, args)
    return np.maximum(y, 0) if op.activation == "relu" else y


def _batchnorm(op: ir.BatchNorm, graph: Graph, x: np.ndarray) -> np.ndarray:
    t = graph.tensor
    k = t(op.scale) / np.sqrt(t(op.var) + op.epsilon)
    shift = t(op.bias) - t(op.mean) * k
    extra = (1,) * (x.ndim - 2)
    return x * k.reshape(-1, *extra) + shift.reshape(-1, *extra)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


_SIMPLE: dict[type, Callable] = {
    ir.AvgPool2d: lambda op, g, x, a: _pool(x, op),
    ir.MaxPool2d: lambda op, g, x, a: _pool(x, op),
    ir.GlobalAvgPool: lambda op, g, x, a: x.mean(axis=(2, 3), keepdims=True),
    ir.BatchNorm: lambda op, g, x, a: _batchnorm(op, g, x),
    ir.Relu: lambda op, g, x, a: np.maximum(x, 0),
    ir.Clip: lambda op, g, x, a: np.clip(x, op.min, op.max),
    ir.Add: lambda op, g, x, a: sum(a[1:], a[0]),
    ir.Concat: lambda op, g, x, a: np.concatenate(a, axis=op.axis + 1),
    ir.Flatten: lambda op, g, x, a: x.reshape(len(x), -1),
    ir.Reshape: lambda op, g, x, a: x.reshape(len(x), *op.shape),
    ir.Pad: lambda op, g, x, a: np.pad(
        x, [(0, 0)] + list(zip(op.pads[: x.ndim - 1], op.pads[x.ndim - 1 :], strict=False)), constant_values=op.value
    ),
    ir.Softmax: lambda op, g, x, a: _softmax(x, op.axis + 1),
    ir.Dropout: lambda op, g, x, a: x,
    ir.Identity: lambda op, g, x, a: x,
    ir.Scale: lambda op, g, x, a: x * np.float32(op.factor),
}


def evaluate(
    graph: Graph, x: np.ndarray, outputs: Optional[list[str]] = None, batch_size: int = 128
) -> dict[str, np.ndarray]:
    """Values of ``outputs`` (default: the graph outputs) for inputs ``x`` (N, *input shape)."""
    wanted = list(outputs if outputs is not None else graph.outputs)
    (input_id,) = graph.ops_of("ann.input")
    order = graph.topo()
    last_use = {i: pos for pos, n in enumerate(order) for i in graph.inputs(n)}
    chunks: dict[str, list[np.ndarray]] = {w: [] for w in wanted}
    x = np.asarray(x, dtype=np.float32)
    for start in range(0, len(x), batch_size):
        values = {input_id: x[start : start + batch_size]}
        for pos, node_id in enumerate(order):
            if node_id != input_id:
                values[node_id] = _eval_op(graph, node_id, [values[i] for i in graph.inputs(node_id)])
                values[node_id] = values[node_id].astype(np.float32, copy=False)
            for i in graph.inputs(node_id):
                if last_use[i] == pos and i not in chunks:
                    del values[i]
        for w in wanted:
            chunks[w].append(values[w])
    return {w: np.concatenate(c) if c else np.zeros((0, *graph.shape(w)), np.float32) for w, c in chunks.items()}


def predict(graph: Graph, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The first graph output for inputs ``x``."""
    return evaluate(graph, x, [graph.outputs[0]], batch_size)[graph.outputs[0]]


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Top-1 accuracy of an ann graph on samples ``x`` (in the IR's channel-first order, any
    per-sample shape of the input's size) against labels ``y``; None for a graph of another
    dialect (a model that was spiking already has no ANN reference)."""
    if graph.dialect != "ann":
        return None
    (entry,) = graph.ops_of("ann.input")
    x = np.asarray(x, np.float32).reshape((len(x), *graph.shape(entry)))
    scores = predict(graph, x)
    return float(np.mean(scores.reshape(len(x), -1).argmax(axis=1) == np.asarray(y)))
