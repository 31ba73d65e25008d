"""fold-batchnorm: merge each batch normalization exactly into a dense or conv2d layer next to it.

A batch-norm is the per-channel affine y = k x + s (k = gamma / sqrt(var + eps), s = beta - mean k).
In order of preference it is

1. folded *backward* into the dense/conv right before it (no activation between): W' = k W, b' = k b + s;
2. carried *forward* through ops that commute with an affine map, into the next dense or conv. The
   map is tracked per element (scale K, shift S of the current value's shape): dropout, identity,
   flatten, reshape and constant factors keep it exact; zero padding and average pooling (any
   padding, count_include_pad and ceil_mode: the pool is linear) act on S alone and need K constant
   per channel; max pooling needs K constant per channel, k >= 0 (for k < 0 max becomes min) and S
   constant per channel; another batch-norm composes. A dense layer takes K per input element; a
   conv takes K per input channel, and S becomes conv(S) added to its bias, which is per output
   position (out, OH, OW) where the conv pads or S varies (border outputs see fewer shifted inputs);
3. otherwise (it feeds a ReLU, an add, a concatenation or is an output) kept as an explicit layer: a
   1x1 depthwise conv (C, H, W values) or a diagonal dense layer (vectors) that lower-to-snn handles.

Max pooling after a negative scale stops the pass with an error naming both ops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from snnc.ir import Graph, limits
from snnc.ir import ops as ir
from snnc.ir.semantics import ann

from .base import Pass, PassContext, PassError

# Ops an affine map passes through unchanged (on their input's elements).
_RESHAPING = (ir.Dropout, ir.Identity, ir.Flatten, ir.Reshape)
# Linear spatial ops: K must be constant per channel, S goes through the op itself.
_SPATIAL = (ir.AvgPool2d, ir.GlobalAvgPool, ir.Pad)


@dataclass
class _Affine:
    """y = scale * x + shift, both of the value's shape (float64)."""

    scale: np.ndarray
    shift: np.ndarray

    def channel_scale(self) -> Optional[np.ndarray]:
        """The scale per channel (axis 0), or None when it varies within a channel."""
        return _per_channel(self.scale)

    def channel_shift(self) -> Optional[np.ndarray]:
        return _per_channel(self.shift)


def _per_channel(a: np.ndarray) -> Optional[np.ndarray]:
    flat = a.reshape(a.shape[0], -1)
    return flat[:, 0].copy() if np.all(flat == flat[:, :1]) else None


def _broadcast(per_channel: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(per_channel.reshape(-1, *([1] * (len(shape) - 1))), shape).astype(np.float64)


@dataclass
class _Plan:
    """Where the forward walk from a batch-norm ended."""

    consumer: Optional[str]  # the dense/conv that absorbs the map, None: the map cannot go forward
    affine: _Affine  # the map at the consumer's input
    absorbed: list[str]  # further batch-norms composed on the way
    why: str = ""  # why the walk stopped (when consumer is None)


@dataclass
class FoldBatchnorm(Pass):
    name = "fold-batchnorm"
    dialect = "ann"
    summary = "fold batch-norm exactly into the dense/conv before or after it (through pooling, padding, flatten)"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node_id in [n for n in graph.topo() if isinstance(graph.op(n), ir.BatchNorm)]:
            if node_id in graph:  # not composed into an earlier one
                self._fold(graph, node_id, ctx)
        graph.prune_tensors()
        return graph

    def _fold(self, graph: Graph, bn: str, ctx: PassContext) -> None:
        k, shift = _bn_affine(graph, bn)
        (src,) = graph.inputs(bn)
        prev = graph.op(src)
        if (
            isinstance(prev, (ir.Dense, ir.Conv2d))
            and prev.activation == "none"
            and graph.users(src) == [bn]
            and src not in graph.outputs
        ):
            _fold_before(graph, src, k, shift)
            graph.bypass(bn)
            return
        shape = graph.shape(bn)
        plan = _walk(graph, bn, _Affine(_broadcast(k, shape), _broadcast(shift, shape)))
        if plan.consumer is None:
            _keep_as_layer(graph, bn, k, shift)
            ctx.info(f"%{bn}: batch-norm kept as a per-channel affine layer ({plan.why})")
            return
        _fold_after(graph, plan.consumer, plan.affine)
        for node_id in [bn, *plan.absorbed]:
            graph.bypass(node_id)


def _bn_affine(graph: Graph, bn: str) -> tuple[np.ndarray, np.ndarray]:
    op = graph.op(bn)
    t = graph.tensor
    k = t(op.scale).astype(np.float64) / np.sqrt(t(op.var).astype(np.float64) + op.epsilon)
    return k, t(op.bias).astype(np.float64) - t(op.mean).astype(np.float64) * k


def _walk(graph: Graph, bn: str, affine: _Affine) -> _Plan:
    """Follow the batch-norm's chain of sole users through ops that commute with ``affine``."""
    node, absorbed = bn, []
    while True:
        users = graph.users(node)
        if node in graph.outputs or len(users) != 1:
            what = "a graph output" if node in graph.outputs else f"read by {len(users)} ops"
            return _Plan(None, affine, [], f"%{node} is {what}")
        user = users[0]
        op = graph.op(user)
        if isinstance(op, ir.Dense):
            return _Plan(user, affine, absorbed)
        if isinstance(op, ir.Conv2d):
            if affine.channel_scale() is None:
                return _Plan(None, affine, [], f"its scale varies within a channel of conv %{user}'s input")
            return _Plan(user, affine, absorbed)
        if isinstance(op, ir.MaxPool2d):
            _check_max_pool(graph, bn, user, affine)
        moved = _through(graph, user, op, affine)
        if moved is None:
            return _Plan(None, affine, [], f"{op.OPNAME} %{user} does not commute with it")
        if isinstance(op, ir.BatchNorm):
            absorbed.append(user)
        node, affine = user, moved


def _through(graph: Graph, node_id: str, op: ir.Op, affine: _Affine) -> Optional[_Affine]:
    """The map after ``op`` such that op(K x + S) = K' op(x) + S'; None where there is none."""
    shape = graph.shape(node_id)
    if isinstance(op, _RESHAPING):
        return _Affine(affine.scale.reshape(shape), affine.shift.reshape(shape))
    if isinstance(op, ir.Scale):
        return _Affine(affine.scale * op.factor, affine.shift * op.factor)
    if isinstance(op, ir.BatchNorm):
        k, s = _bn_affine(graph, node_id)
        return _Affine(affine.scale * _broadcast(k, shape), affine.shift * _broadcast(k, shape) + _broadcast(s, shape))
    k = affine.channel_scale()
    if k is None:
        return None
    if isinstance(op, ir.MaxPool2d):  # checked: k >= 0 and S constant per channel
        return _Affine(_broadcast(k, shape), _broadcast(affine.channel_shift(), shape))
    if isinstance(op, _SPATIAL) and not (isinstance(op, ir.Pad) and op.value != 0.0):
        if isinstance(op, ir.Pad) and op.pads[0] + op.pads[len(op.pads) // 2]:
            k = np.pad(k, (op.pads[0], op.pads[len(op.pads) // 2]), mode="edge")  # new channels hold zeros
        return _Affine(_broadcast(k, shape), _apply(op, affine.shift))
    return None


def _check_max_pool(graph: Graph, bn: str, pool: str, affine: _Affine) -> None:
    """Refuse a max pooling the map cannot pass: max(k x + s) = k max(x) + s needs k >= 0, s constant."""
    k, s = affine.channel_scale(), affine.channel_shift()
    if k is not None and np.any(k < 0):
        channels = [int(c) for c in np.flatnonzero(k < 0)]
        shown = ", ".join(map(str, channels[:8])) + (", ..." if len(channels) > 8 else "")
        raise PassError(
            f"%{bn}: batch-norm with a negative scale (gamma / sqrt(var + eps)) in channel(s) {shown} cannot pass "
            f"max pooling %{pool} (the max of negated values is a min) nor fold into the layer before it"
        )
    if k is None or s is None:
        raise PassError(
            f"%{bn}: batch-norm cannot pass max pooling %{pool}: its scale or shift varies within a channel there"
        )


def _apply(op: ir.Op, value: np.ndarray) -> np.ndarray:
    """``op`` (a single-input op without tensors) applied to one value, with the ANN's own semantics."""
    g = Graph()
    g.add("x", ir.Input(shape=value.shape))
    g.outputs = [g.add("op", op.clone(), ["x"])]
    return ann.predict(g, value[None].astype(np.float32))[0].astype(np.float64)


def _fold_before(graph: Graph, layer: str, k: np.ndarray, shift: np.ndarray) -> None:
    """y = k * (W x + b) + shift."""
    op = graph.op(layer)
    w = graph.tensor(op.weight)
    b = graph.tensor(op.bias) if op.bias is not None else np.zeros(w.shape[0], np.float32)
    per_out = (-1, *([1] * (b.ndim - 1)))  # a conv's bias may be per output position
    new_w = w * k.reshape(-1, *([1] * (w.ndim - 1)))
    new_b = b * k.reshape(per_out) + shift.reshape(per_out)
    _set_layer(graph, layer, new_w, new_b)


def _fold_after(graph: Graph, layer: str, affine: _Affine) -> None:
    """W (K x + S) + b."""
    op = graph.op(layer)
    w = graph.tensor(op.weight).astype(np.float64)
    b = graph.tensor(op.bias).astype(np.float64) if op.bias is not None else np.zeros(w.shape[0])
    if isinstance(op, ir.Dense):
        new_w, added = w * affine.scale.reshape(1, -1), w @ affine.shift.reshape(-1)
    else:
        k = affine.channel_scale()
        cg = w.shape[1]
        group_of = np.arange(w.shape[0]) // (w.shape[0] // op.groups)
        idx = group_of[:, None] * cg + np.arange(cg)[None, :]  # input channel of each (out, in)
        new_w = w * k[idx][:, :, None, None]
        added = _conv_shift(w, op, affine.shift, idx)
    if added.ndim > b.ndim:
        b = b.reshape(-1, 1, 1)
    elif b.ndim > added.ndim:
        added = added.reshape(-1, 1, 1)
    _set_layer(graph, layer, new_w, b + added)


def _conv_shift(w: np.ndarray, op: ir.Conv2d, shift: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """conv(S) without bias: per output channel where S is constant per channel and the conv does not pad,
    else per output position (out, OH, OW), reduced to per channel when it is constant after all."""
    s = _per_channel(shift)
    if s is not None and not any(op.pads):
        return (w * s[idx][:, :, None, None]).sum(axis=(1, 2, 3))
    full = ann.conv2d(shift[None], w, op, None)[0]
    return _per_channel(full) if _per_channel(full) is not None else full


def _set_layer(graph: Graph, layer: str, weight: np.ndarray, bias: np.ndarray) -> None:
    op = graph.op(layer)
    refs = {"weight": op.weight, "bias": op.bias}
    new = {}
    for kind, value in (("weight", weight), ("bias", bias)):
        name = f"{layer}.{kind}"
        old = refs[kind]
        if name in graph.tensors and (old is None or old.name != name):
            name = graph.unique_tensor_name(name)
        new[kind] = graph.add_tensor(name, value.astype(np.float32))
    graph.set_op(layer, replace(op, **new))


def _keep_as_layer(graph: Graph, bn: str, k: np.ndarray, shift: np.ndarray) -> None:
    """Replace the batch-norm by the same affine map as a layer lowering knows: a 1x1 depthwise conv
    for (C, H, W) values, a diagonal dense layer for vectors."""
    shape = graph.shape(bn)
    c = shape[0]
    if len(shape) == 3:
        weight, extra = k.reshape(c, 1, 1, 1), {"groups": c}
        cls = ir.Conv2d
    elif len(shape) == 1:
        limits.check_array((c, c), 4, f"%{bn}: diagonal layer for the batch-norm")
        weight, extra, cls = np.diag(k), {}, ir.Dense
    else:
        raise PassError(f"%{bn}: batch-norm of a {list(shape)} value can be neither folded nor kept as a layer")
    w = graph.add_tensor(graph.unique_tensor_name(f"{bn}.weight"), weight.astype(np.float32))
    b = graph.add_tensor(graph.unique_tensor_name(f"{bn}.bias"), shift.astype(np.float32))
    graph.set_op(bn, cls(weight=w, bias=b, **extra))
