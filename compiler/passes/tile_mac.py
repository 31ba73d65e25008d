"""tile-mac: cut every BrainScaleS-2 MAC layer into the chip's partial matrices.

A synapse block takes ``matrix_rows`` signed inputs (128: two synapse rows per signed weight)
and has ``matrix_columns`` outputs (256); a chip has ``cores_per_chip`` blocks (2 halves). The
pass records each layer's tile size in its ``ann.mac`` op (``tile_rows``, ``tile_cols``; the
IR dump shows them) and reports the plan: ``ceil(rows / 128) x ceil(cols / 256)`` tiles per
layer, the input vectors per sample, and the multiplications per sample. Partials of one
column range are summed digitally, each clamped by the ADC first (snnc.ir.semantics.mac).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from snnc.ir import Graph
from snnc.ir.semantics.mac_plan import layer_plan

from .base import Pass, PassContext, PassError


@dataclass
class TileMac(Pass):
    name = "tile-mac"
    dialect = "ann"
    summary = "cut BrainScaleS-2 MAC layers into partial matrices of 128 signed rows x 256 columns"
    reads = ("matrix_rows", "matrix_columns")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        rows, cols = self.setting(ctx, "matrix_rows"), self.setting(ctx, "matrix_columns")
        layers = graph.ops_of("ann.mac")
        if not layers:
            raise PassError("tile-mac needs ann.mac layers: run quantize-mac first")
        total = 0
        for node_id in layers:
            graph.set_op(node_id, replace(graph.op(node_id), tile_rows=rows, tile_cols=cols))
            p = layer_plan(graph, node_id)
            total += p.multiplications
            ctx.info(
                f"%{node_id}: {p.rows} x {p.cols} matrix in {p.row_tiles} x {p.col_tiles} = {p.tiles} tiles, "
                f"input vectors per sample: {p.vectors}, multiplications: {p.multiplications}"
            )
        ctx.info(f"{len(layers)} layers, {total} vector-matrix multiplications per sample")
        return graph
