"""The tile plan of a graph's ``ann.mac`` layers: how BrainScaleS-2 runs each layer's matrix.

A layer's matrix has ``rows`` inputs (in*kh*kw for a convolution) and ``cols`` outputs; it is
cut into partial matrices of at most ``tile_rows`` x ``tile_cols`` (128 x 256 on the chip),
``ceil(rows / tile_rows) x ceil(cols / tile_cols)`` tiles, columns outer and rows inner as
grenade places them, alternating the chip's two halves (grenade compute/mac.cpp). Each input
vector (one per sample for a dense layer, one per output position for a convolution) is
multiplied by every tile: ``multiplications = tiles x vectors`` per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from snnc.ir import Graph
from snnc.ir import ops as ir

from . import mac as hx


@dataclass(frozen=True)
class LayerPlan:
    """How one ``ann.mac`` layer runs on the chip."""

    node: str
    rows: int
    cols: int
    tile_rows: int
    tile_cols: int
    vectors: int  # input vectors per sample

    @property
    def row_tiles(self) -> int:
        return math.ceil(self.rows / self.tile_rows)

    @property
    def col_tiles(self) -> int:
        return math.ceil(self.cols / self.tile_cols)

    @property
    def tiles(self) -> int:
        return self.row_tiles * self.col_tiles

    @property
    def multiplications(self) -> int:
        """Vector-matrix multiplications per sample: every tile times every input vector."""
        return self.tiles * self.vectors


def layer_plan(graph: Graph, node_id: str) -> LayerPlan:
    """The plan of ``ann.mac`` layer ``node_id`` (unset tile sizes: the mock's 128 rows, 256 columns)."""
    op = graph.op(node_id)
    assert isinstance(op, ir.Mac)
    rows, cols = op.matrix_shape(graph.tensor_shape)
    vectors = math.prod(graph.shape(node_id)[1:]) if op.kind == "conv" else 1
    return LayerPlan(node_id, rows, cols, op.tile_rows or hx.SIGNED_ROWS, op.tile_cols or hx.COLUMNS, vectors)


def plan(graph: Graph) -> list[LayerPlan]:
    """The plans of every ``ann.mac`` layer, in execution order."""
    return [layer_plan(graph, n) for n in graph.topo() if isinstance(graph.op(n), ir.Mac)]
