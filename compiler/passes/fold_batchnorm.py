"""fold-batchnorm: merge batch normalization into the dense or conv2d layer next to it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir

from .base import Pass, PassContext, PassError


@dataclass
class FoldBatchnorm(Pass):
    name = "fold-batchnorm"
    dialect = "ann"
    summary = "fold batch-norm into the preceding (or following) dense/conv weights"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node_id in graph.ops_of("ann.batchnorm"):
            op = graph.op(node_id)
            t = graph.tensor
            k = (t(op.scale) / np.sqrt(t(op.var) + op.epsilon)).astype(np.float32)
            shift = (t(op.bias) - t(op.mean) * k).astype(np.float32)
            (src,) = graph.inputs(node_id)
            users = graph.users(node_id)
            prev = graph.op(src)
            if (
                isinstance(prev, (ir.Dense, ir.Conv2d))
                and prev.activation == "none"
                and graph.users(src) == [node_id]
                and src not in graph.outputs
            ):
                self._fold_before(graph, src, k, shift)
            elif len(users) == 1 and node_id not in graph.outputs and self._foldable_after(graph, users[0]):
                self._fold_after(graph, users[0], k, shift, graph.shape(node_id))
            else:
                raise PassError(f"%{node_id}: batch-norm is not next to a dense/conv layer it can be folded into")
            graph.bypass(node_id)
        graph.prune_tensors()
        return graph

    @staticmethod
    def _foldable_after(graph: Graph, user: str) -> bool:
        op = graph.op(user)
        return isinstance(op, ir.Dense) or (isinstance(op, ir.Conv2d) and not any(op.pads))

    @staticmethod
    def _fold_before(graph: Graph, layer: str, k: np.ndarray, shift: np.ndarray) -> None:
        """y = k * (W x + b) + shift."""
        op = graph.op(layer)
        w = graph.tensor(op.weight)
        b = graph.tensor(op.bias) if op.bias is not None else np.zeros(w.shape[0], np.float32)
        new_w = w * k.reshape(-1, *([1] * (w.ndim - 1)))
        graph.set_op(
            layer,
            replace(
                op,
                weight=graph.add_tensor(f"{layer}.weight", new_w.astype(np.float32)),
                bias=graph.add_tensor(f"{layer}.bias", (b * k + shift).astype(np.float32)),
            ),
        )

    @staticmethod
    def _fold_after(graph: Graph, layer: str, k: np.ndarray, shift: np.ndarray, in_shape: tuple) -> None:
        """W (k x + shift) + b, with k and shift per input channel."""
        op = graph.op(layer)
        w = graph.tensor(op.weight)
        b = graph.tensor(op.bias) if op.bias is not None else np.zeros(w.shape[0], np.float32)
        if isinstance(op, ir.Dense):
            per_in = math.prod(in_shape[1:])
            kk, ss = np.repeat(k, per_in), np.repeat(shift, per_in)
            new_w, new_b = w * kk[None, :], b + w @ ss
        else:
            cg = w.shape[1]
            group_of = np.arange(w.shape[0]) // (w.shape[0] // op.groups)
            idx = group_of[:, None] * cg + np.arange(cg)[None, :]  # input channel of each (out, in)
            new_w = w * k[idx][:, :, None, None]
            new_b = b + (w * shift[idx][:, :, None, None]).sum(axis=(1, 2, 3))
        graph.set_op(
            layer,
            replace(
                op,
                weight=graph.add_tensor(f"{layer}.weight", new_w.astype(np.float32)),
                bias=graph.add_tensor(f"{layer}.bias", new_b.astype(np.float32)),
            ),
        )
