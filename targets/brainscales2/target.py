"""Target ``brainscales2``: BrainScaleS-2's MAC mode, as matrices for hxtorch plus snnc's emulator.

The graph stays in the ann dialect: quantize-mac turned its dense and convolution layers into
``ann.mac`` layers (integer weights, num_sends, shifts) and tile-mac cut them into partial
matrices. The output folder holds:

* ``config.json``: the steps in order: MAC layers (kind, geometry, num_sends, input scale,
  converting ReLU shift, bias, tiles with their row and column ranges and chip half, input
  vectors per sample) and the host operations between them (pooling, flatten, reshape), then
  the output scale;
* ``matrices.npz``: the int8 weight tiles (rows x columns, as the synapse array holds them) and
  the int8 biases;
* ``run.py``: evaluates the network with snnc's emulator of hxtorch's mock arithmetic
  (``snnc_mac.py``, a copy of ``snnc.ir.semantics.mac``), with optional noise and fixed-pattern
  gain; ``run_hxtorch.py``: the same network through hxtorch on a BrainScaleS-2 system (or in
  hxtorch's own mock mode). Neither carries a value of the model in its source.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics import mac as hx
from snnc.ir.semantics.mac_plan import LayerPlan, layer_plan, plan
from snnc.targets.base import RunRequest, Target, TargetError, run_script, write_network_json
from snnc.targets.templates import copy_run_script, render

from . import spec as chip
from .spec import SPEC

FORMAT = "snnc-brainscales2-mac"
HXTORCH_SCRIPT = Path(__file__).parent / "run_hxtorch.py"


def _pool_step(node: str, op: ir.AvgPool2d | ir.MaxPool2d) -> dict[str, Any]:
    if any(op.pads) or op.ceil_mode:
        raise TargetError(f"%{node}: pooling with padding or ceil mode does not run on the host side of this target")
    kind = "avgpool" if isinstance(op, ir.AvgPool2d) else "maxpool"
    return {"op": kind, "kernel": list(op.kernel), "strides": list(op.strides)}


def _mac_step(graph: Graph, node: str, index: int, arrays: dict[str, np.ndarray], halves: int) -> dict[str, Any]:
    op = graph.op(node)
    p = layer_plan(graph, node)
    weight = graph.tensor(op.weight)
    matrix = weight.reshape(len(weight), -1).T.astype(np.int8)
    tiles = []
    for t, tile in enumerate(hx.split_tiles(matrix, p.tile_rows, p.tile_cols)):
        key = f"layer{index}_tile{t}"
        arrays[key] = np.ascontiguousarray(tile.weights, dtype=np.int8)
        rows, cols = [tile.row_start, tile.row_stop], [tile.col_start, tile.col_stop]
        tiles.append({"weights": key, "rows": rows, "cols": cols, "half": t % halves})
    bias = None
    if op.bias is not None:
        bias = f"layer{index}_bias"
        arrays[bias] = graph.tensor(op.bias).astype(np.int8)
    return {
        "op": "mac",
        "node": node,
        "kind": op.kind,
        "weight_shape": list(weight.shape),
        "strides": list(op.strides),
        "pads": list(op.pads),
        "gain": op.gain,
        "num_sends": op.num_sends,
        "input_scale": op.input_scale,
        "activation": op.activation,
        "shift": op.shift,
        "bias": bias,
        "tile_rows": p.tile_rows,
        "tile_cols": p.tile_cols,
        "tiles": tiles,
        "vectors": p.vectors,
    }


def describe(graph: Graph, halves: int = hx.HALVES) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``config.json`` and the arrays of ``matrices.npz`` for an ann graph after tile-mac; tiles
    alternate between the chip's ``halves`` as grenade places them."""
    (entry,) = graph.ops_of("ann.input")
    steps: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for node in graph.topo():
        op = graph.op(node)
        if isinstance(op, ir.Mac):
            if op.tile_rows is None or op.tile_cols is None:
                raise TargetError(f"%{node}: no tile plan; run tile-mac before emitting")
            steps.append(_mac_step(graph, node, sum(s["op"] == "mac" for s in steps), arrays, halves))
        elif isinstance(op, (ir.AvgPool2d, ir.MaxPool2d)):
            steps.append(_pool_step(node, op))
        elif isinstance(op, ir.Flatten):
            steps.append({"op": "flatten"})
        elif isinstance(op, ir.Reshape):
            steps.append({"op": "reshape", "shape": list(op.shape)})
        elif isinstance(op, ir.Scale) and node in graph.outputs:
            steps.append({"op": "scale", "factor": op.factor})
        elif node != entry:
            raise TargetError(f"%{node}: {op.OPNAME} does not run on BrainScaleS-2 (run quantize-mac and tile-mac)")
    if not any(s["op"] == "mac" for s in steps):
        raise TargetError("the graph has no ann.mac layer: compile it with the brainscales2 pipeline")
    config = {
        "format": FORMAT,
        "version": 1,
        "input_shape": list(graph.shape(entry)),
        "input_layout": graph.attrs.get("input_layout", "NCHW"),
        "classes": math.prod(graph.shape(graph.outputs[0])),
        "steps": steps,
    }
    return config, arrays


def _seconds(p: LayerPlan, num_sends: int) -> float:
    """One layer's time per sample on a chip without the reconfiguration bug, from the paper's
    figures: per multiplication a reset, settling and the ADC, and one event per input row and send."""
    fixed = p.tiles * (chip.RESET_S + chip.SETTLE_S + chip.ADC_S)
    events = p.rows * p.col_tiles * num_sends * chip.EVENT_WAIT_S
    return p.vectors * (fixed + events)


def mac_report(graph: Graph, halves: int = hx.HALVES) -> dict[str, Any]:
    """Tiles, multiplications, weight writes, time and energy per image (report.json)."""
    plans = plan(graph)
    layers = []
    for p in plans:
        op = graph.op(p.node)
        layers.append(
            {
                "id": p.node,
                "kind": op.kind,
                "matrix": [p.rows, p.cols],
                "tiles": [p.row_tiles, p.col_tiles],
                "vectors_per_sample": p.vectors,
                "multiplications_per_sample": p.multiplications,
                "num_sends": op.num_sends,
                "shift": op.shift,
            }
        )
    multiplications = sum(layer["multiplications_per_sample"] for layer in layers)
    tiles = sum(layer["tiles"][0] * layer["tiles"][1] for layer in layers)
    slots = math.ceil(multiplications / chip.PARALLEL_MULTIPLICATIONS)
    seconds = slots * chip.MULTIPLICATION_S
    return {
        "target": "brainscales2",
        "kind": "mac",
        "layers": layers,
        "tiles": tiles,
        "multiplications_per_sample": multiplications,
        "chip_passes": math.ceil(tiles / halves),
        "weight_write_ms": chip.WEIGHT_WRITE_S * 1e3,
        "ms_per_sample": seconds * 1e3,
        "mj_per_sample": seconds * chip.CHIP_WATTS * 1e3,
        "time_model": (
            f"{chip.PARALLEL_MULTIPLICATIONS} multiplications at once, {chip.MULTIPLICATION_S * 1e3:g} ms each "
            f"(the current chip rewrites its weights for every input vector), {chip.CHIP_WATTS:g} W"
        ),
        "ms_per_sample_fixed_chip": sum(_seconds(p, graph.op(p.node).num_sends) for p in plans) * 1e3,
        "fixed_chip_model": (
            "per multiplication: reset 1 us + 40 ns per input row and send + settle 2 us + ADC 1.5 us, weights "
            "written once (the paper's figures for a chip without the reconfiguration bug; an estimate)"
        ),
        "source": chip.PAPER,
    }


class BrainScaleS2Target(Target):
    spec = SPEC
    dialect = "ann"

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        config, arrays = describe(graph, self.spec.machine.cores_per_chip)
        write_network_json(out / "config.json", config)
        np.savez(out / "matrices.npz", **arrays)
        copy_run_script("brainscales2", out)
        shutil.copyfile(HXTORCH_SCRIPT, out / "run_hxtorch.py")
        report = mac_report(graph, self.spec.machine.cores_per_chip)
        context = {
            "version": manifest["snnc_version"],
            "pipeline": ",".join(manifest["pipeline"]),
            "layers": len(report["layers"]),
            "tiles": report["tiles"],
            "multiplications": report["multiplications_per_sample"],
            "ms_per_sample": report["ms_per_sample"],
            "mj_per_sample": report["mj_per_sample"],
            "gain": self.spec.machine.mac_gain,
        }
        render("brainscales2", "README.md.j2", out / "README.md", context)

    def report(self, graph: Graph, calibration: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
        return mac_report(graph, self.spec.machine.cores_per_chip)

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run snnc's emulator script on ``out``."""
        return run_script("brainscales2", request.out, request.script_args())
