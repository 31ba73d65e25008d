"""What a projection connects: explicit (pre, post, weight) lists and sparse matrices.

The definition of a synapse (docs/snn-semantics.md): shared by the reference simulator, the
rate model, the mapping passes and every target that spells synapses out (PyNN scripts).
Neurons are numbered in C-major (NCHW per sample) order, exactly as ``numpy.reshape`` flattens
a (C, H, W) array. Everything is vectorized with numpy index arithmetic; there is no Python
loop per synapse.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from snnc.ir import Graph, limits
from snnc.ir.ops import Projection, Source
from snnc.ir.runtime import conv_connections, pool_connections, windows

_BYTES_PER_SYNAPSE = 8 + 8 + 8  # pre and post (int64) and the weight, with the index arithmetic's temporaries


class Connections(NamedTuple):
    pre: np.ndarray  # int64 indices into the flattened pre population
    post: np.ndarray  # int64 indices into the flattened post population
    weight: np.ndarray  # float32


def _check_budget(count: int, proj_id: str) -> None:
    """``count`` synapses (before dropping zero weights) against the synapse and byte budgets."""
    limits.check("synapses", count, f"%{proj_id}")
    limits.check_array((count,), _BYTES_PER_SYNAPSE, f"%{proj_id}: connection list")


def synapse_bound(graph: Graph, proj_id: str) -> int:
    """The synapses ``connections`` enumerates for ``proj_id`` before dropping zero weights."""
    op = graph.op(proj_id)
    (pre_id,) = graph.inputs(proj_id)
    pre_shape, post_shape = graph.shape(pre_id), graph.shape(proj_id)
    if op.connectivity == "dense":
        return int(np.count_nonzero(graph.tensor(op.weight)))
    if op.connectivity == "one_to_one":
        return math.prod(pre_shape)
    c_in, c_out = pre_shape[0], post_shape[0]
    kernel = graph.tensor(op.weight).shape[2:] if op.connectivity == "conv" else tuple(op.kernel)
    per_out = (c_in // op.groups if op.connectivity == "conv" else 1) * math.prod(kernel)
    return c_out * math.prod(post_shape[1:]) * per_out


def connections(graph: Graph, proj_id: str) -> Connections:
    """Every synapse of projection ``proj_id`` with a non-zero weight; the count is checked
    against the budget (:mod:`snnc.ir.limits`) before the lists are built."""
    op = graph.op(proj_id)
    if not isinstance(op, Projection):
        raise TypeError(f"%{proj_id} is not a projection")
    _check_budget(synapse_bound(graph, proj_id), proj_id)
    (pre_id,) = graph.inputs(proj_id)
    pre_shape, post_shape = graph.shape(pre_id), graph.shape(proj_id)
    if op.connectivity == "dense":
        w = graph.tensor(op.weight)
        post, pre = np.nonzero(w)
        return Connections(pre.astype(np.int64), post.astype(np.int64), w[post, pre].astype(np.float32))
    if op.connectivity == "one_to_one":
        pre = np.arange(math.prod(pre_shape), dtype=np.int64)
        return Connections(pre, pre + op.offset, np.full(pre.size, op.scale, np.float32))
    if op.connectivity == "conv":
        weight = graph.tensor(op.weight)
        found = conv_connections(pre_shape, post_shape, weight, op.strides, op.pads, op.dilations, op.groups)
    else:  # pool: channel c of the input feeds channel c of the output
        found = pool_connections(pre_shape, post_shape, op.scale, op.kernel, op.strides, op.pads)
    return Connections(*found)


def synapse_count(graph: Graph, proj_id: str) -> int:
    """How many synapses :func:`connections` gives for ``proj_id``, without building them."""
    op = graph.op(proj_id)
    if op.connectivity in ("dense", "one_to_one"):
        return synapse_bound(graph, proj_id)
    (pre_id,) = graph.inputs(proj_id)
    (_, h, w), (_, oh, ow) = graph.shape(pre_id), graph.shape(proj_id)
    if op.connectivity == "pool":
        _, _, inside = windows((h, w), (oh, ow), op.kernel, op.strides, op.pads, (1, 1))
        return int(inside.sum()) * graph.shape(pre_id)[0] * int(op.scale != 0)
    weight = graph.tensor(op.weight)
    _, _, inside = windows((h, w), (oh, ow), weight.shape[2:], op.strides, op.pads, op.dilations)
    return int(((weight != 0) * inside.sum(axis=(0, 1))).sum())


def from_current_source(graph: Graph, proj_id: str) -> bool:
    """Whether a projection leaves a ``current`` source: its weights carry an input current, not
    spikes, so it has no synapses to count, slice or quantize."""
    (pre_id,) = graph.inputs(proj_id)
    op = graph.op(pre_id)
    return isinstance(op, Source) and op.encoding == "current"


def projection_matrix(graph: Graph, proj_id: str) -> sp.csr_matrix:
    """The projection as a sparse (post neurons, pre neurons) matrix (duplicates summed)."""
    (pre_id,) = graph.inputs(proj_id)
    n_pre, n_post = math.prod(graph.shape(pre_id)), math.prod(graph.shape(proj_id))
    c = connections(graph, proj_id)
    return sp.csr_matrix((c.weight, (c.post, c.pre)), shape=(n_post, n_pre), dtype=np.float32)
