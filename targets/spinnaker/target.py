"""Target ``spinnaker``: a pyNN.spiNNaker script, its network description, weights and config.

``run.py`` is generic: it builds what ``network.json`` describes with the arrays of
``weights.npz`` (nothing from the model is written into code). How the IR maps onto sPyNNaker 7:

=====================  =====================================================================
snnc                   sPyNNaker
=====================  =====================================================================
population (C, H, W)   C populations with a Grid2D(W / H) structure, raster order x fastest
                       (numpy's C order of one channel); ``set_max_atoms_per_core((cols, rows))``
population (n,)        one population; ``set_max_atoms_per_core(per_core)``
IF neuron              IF_curr_delta, v_rest = 0, tau_m, cm = tau_m (1 - exp(-dt / tau_m)) so that
                       a weight w raises v by exactly w (sPyNNaker integrates the closed form
                       v' = e v + (1 - e) R I, R = tau_m / cm), i_offset = snnc i_offset * dt;
                       with v_min (a floor) and no leak: extra_models.IFTruncDelta, tau_m = cm = 1
weight_shift e         max_expected_summed_weight = 0.75 * 2^e per receptor: sPyNNaker then picks
                       the ring-buffer shift e (16-bit weights in steps of 2^(e - 15))
conv projection        one ConvolutionConnector per (out, in) channel pair with the kernel
                       flipped in both axes (sPyNNaker's local_only_conv_impl.c applies kernel
                       element K-1-k where ML frameworks use k); square odd kernels, stride 1,
                       equal padding on opposite sides; each sign goes to its receptor
pool projection        ConvolutionConnector 1x1 with pool_shape = pool_stride = the window
dense from (C, H, W)   one PoolDenseConnector per channel, weights shaped (W, H, post) as
                       sPyNNaker reshapes them (atoms_shape + post shape)
dense (n,) -> (n,)     FromListConnector, one projection per receptor (split-signs)
regular source         SpikeSourceArray; spike times computed per sample like the simulator
=====================  =====================================================================

Samples run back to back (a board cannot reset cheaply): sample j of an instance starts at
j * (presentation + pause) ms; membranes decay in the pause (tau_m) instead of being reset.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, graph_number, limits, write_npz
from snnc.ir import ops as ir
from snnc.ir.semantics.connectivity import connections
from snnc.targets.base import RunRequest, Target, TargetError, TargetSpec, run_script, write_network_json
from snnc.targets.mapping_report import mapping_report
from snnc.targets.templates import copy_run_script, render

from .spec import BOARDS, SPEC, machine_size


def _cm(tau_m: float, dt: float) -> float:
    """Capacitance (nF) that makes sPyNNaker's LIF step add the input unscaled."""
    return tau_m * -math.expm1(-dt / tau_m)


def _native_conv(op: ir.Projection, weight_shape: tuple[int, ...]) -> Optional[str]:
    """Why sPyNNaker's ConvolutionConnector cannot take this conv projection (None: it can)."""
    kh, kw = weight_shape[2:]
    top, left, bottom, right = op.pads
    if kh != kw or kh % 2 == 0:
        return f"kernel {kh}x{kw} (sPyNNaker handles square kernels of odd size)"
    if op.strides != (1, 1) or op.dilations != (1, 1):
        return f"strides {list(op.strides)} / dilations {list(op.dilations)} (only 1 is supported)"
    if top != bottom or left != right:
        return f"asymmetric padding {list(op.pads)}"
    return None


def _selects(op: ir.Projection, weight: np.ndarray) -> bool:
    """Whether a conv projection picks one element per window and channel (lower-to-snn's max pooling)."""
    depthwise = op.groups == weight.shape[0] and weight.shape[1] == 1
    return depthwise and bool(np.all(np.count_nonzero(weight.reshape(len(weight), -1), axis=1) == 1))


def describe(graph: Graph, spec: TargetSpec) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network as JSON-able structure plus the arrays it refers to by key."""
    dt = float(graph_number(graph, "dt"))
    arrays: dict[str, np.ndarray] = {}
    nodes = [n for n in graph.topo() if isinstance(graph.op(n), (ir.Source, ir.Population))]
    index = {n: i for i, n in enumerate(nodes)}
    readouts = {graph.inputs(r)[0]: graph.op(r).mode for r in graph.outputs}
    cells, projections = [], []
    for n in nodes:
        op, shape = graph.op(n), graph.shape(n)
        limits.check("neurons", math.prod(shape), f"%{n}")
        if op.per_core is None:
            raise TargetError(f"%{n} has no core plan: the spinnaker pipeline needs split-populations")
        grid = len(op.per_core) == 3
        cell: dict[str, Any] = {
            "id": n,
            "shape": list(shape),
            "size": math.prod(shape),
            "grid": grid,
            # sPyNNaker's order: (cols, rows) for grids
            "per_core": [op.per_core[2], op.per_core[1]] if grid else [op.per_core[0]],
        }
        if isinstance(op, ir.Source):
            if op.encoding not in ("regular", "events"):
                raise TargetError(f"%{n}: SpiNNaker input is spike trains; compile with encoding=regular or events")
            cell.update(kind="source", gain=op.gain, max_rate=op.max_rate, encoding=op.encoding)
        else:
            if op.reset != "zero" or op.model != "if":
                raise TargetError(f"%{n}: sPyNNaker's IF cells reset to v_reset; compile with reset=zero")
            if op.v_min is not None:  # IF_trunc_delta: no leak, v held at or above v_reset
                if not math.isinf(op.tau_m) or op.v_min != op.v_reset:
                    raise TargetError(
                        f"%{n}: sPyNNaker's floored IF (IF_trunc_delta) has no leak and its floor at "
                        "v_reset; set tau-m=inf and v-min equal to v-reset"
                    )
                model = "IF_trunc_delta"
                params = {"tau_m": 1.0, "cm": 1.0}  # R = tau_m / cm = 1: v += input
            elif math.isinf(op.tau_m):
                raise TargetError(
                    f"%{n}: samples run back to back on SpiNNaker and need a leak (tau-m) or a "
                    "floor (tau-m=inf, v-min=0)"
                )
            else:
                model = "IF_curr_delta"
                params = {"tau_m": op.tau_m, "cm": _cm(op.tau_m, dt), "v_rest": 0.0}
            if readouts.get(n) == "membrane":
                raise TargetError(f"%{n}: a membrane readout cannot be read back from SpiNNaker; use spike_count")
            key = f"cell{index[n]}_i_offset"
            i_offset = graph.tensor(op.i_offset) if op.i_offset is not None else np.zeros(math.prod(shape))
            arrays[key] = (i_offset * dt).astype(np.float64)
            # Without quantize (a custom pipeline) sPyNNaker picks the shifts from its own statistics.
            summed = None if op.weight_shift is None else [0.75 * 2.0**e for e in op.weight_shift]
            cell.update(
                kind="population",
                i_offset=key,
                readout=readouts.get(n),
                model=model,
                params={**params, "v_reset": op.v_reset, "v_thresh": op.v_threshold, "tau_refrac": op.tau_refrac},
                max_expected_summed_weight=summed,
            )
        cells.append(cell)
        if isinstance(op, ir.Population):
            for proj in graph.inputs(n):
                projections.append(_projection(graph, proj, index, cells, arrays, len(projections)))
    network = {
        "dt": dt,
        "presentation_time": float(graph_number(graph, "presentation_time")),
        "pause": float(graph_number(graph, "pause", 0.0)),
        "instances": int(graph_number(graph, "instances", 1)),
        "time_scale_factor": spec.options.time_scale_factor,
        "board": spec.options.board,
        "cells": cells,
        "projections": projections,
        "input_layout": graph.attrs.get("input_layout", "NCHW"),
    }
    return network, arrays


def _projection(graph: Graph, proj: str, index: dict, cells: list, arrays: dict, k: int) -> dict[str, Any]:
    op = graph.op(proj)
    (pre,) = graph.inputs(proj)
    (post,) = graph.users(proj)
    pre_cell, post_cell = cells[index[pre]], cells[index[post]]
    entry: dict[str, Any] = {"id": proj, "pre": index[pre], "post": index[post], "delay": op.delay}
    key = f"proj{k}"
    if op.connectivity == "conv":
        weight = graph.tensor(op.weight)
        why = _native_conv(op, weight.shape)
        if why is not None and _selects(op, weight):
            raise TargetError(
                f"%{proj}: max pooling (lowered as window selections and relu populations) does not map to "
                f"sPyNNaker's 2-D populations ({why}); compile with --set maxpool=avg (average pooling, its "
                "change measured) or train with average pooling"
            )
        if why is not None:
            raise TargetError(f"%{proj}: sPyNNaker's ConvolutionConnector cannot take {why}")
        arrays[key] = np.flip(weight, axis=(2, 3)).astype(np.float64)  # see the module docstring
        entry.update(kind="conv", kernels=key, groups=op.groups, padding=op.pads[0])
    elif op.connectivity == "pool":
        if op.kernel != op.strides or any(op.pads):
            raise TargetError(f"%{proj}: sPyNNaker pools windows equal to their stride without padding")
        entry.update(kind="pool", pool=list(op.kernel), scale=op.scale)
    elif op.connectivity == "dense" and pre_cell["grid"]:
        c, h, w = pre_cell["shape"]
        weight = graph.tensor(op.weight).reshape(-1, c, h, w)
        arrays[key] = weight.transpose(1, 3, 2, 0).astype(np.float64)  # (C, W, H, post)
        entry.update(kind="pool_dense", weights=key)
    else:
        if pre_cell["grid"] or post_cell["grid"]:
            raise TargetError(
                f"%{proj}: {op.connectivity} connections between 2-D populations are not mapped "
                "to SpiNNaker (only convolution, pooling and dense)"
            )
        if op.receptor == "mixed":
            raise TargetError(f"%{proj}: mixed-sign projection; sPyNNaker needs split-signs first")
        c = connections(graph, proj)
        # Sorted by pre, then post: sPyNNaker 7.4's FromListConnector sizes its synaptic rows by
        # grouping the list without sorting it first, so an unsorted list overstates row lengths.
        order = np.lexsort((c.post, c.pre))
        arrays[key] = np.stack([c.pre[order], c.post[order], np.abs(c.weight[order].astype(np.float64))], axis=1)
        entry.update(kind="list", connections=key, receptor=op.receptor)
    return entry


class SpinnakerTarget(Target):
    spec = SPEC

    def configure(self, spec: TargetSpec) -> TargetSpec:
        board = BOARDS[spec.options.board]  # the pass manager accepts known boards only (spec.accepts)
        n = spec.options.boards
        if n > 1 and not board["joins"]:
            raise TargetError(f"boards={n}: {spec.options.board} boards do not join into larger machines (spinn5 do)")
        machine = dataclasses.replace(
            spec.machine, chips=board["chips"] * n, reserved_cores=board["reserved_cores"] * n
        )
        return dataclasses.replace(
            spec, machine=machine, energy=dataclasses.replace(spec.energy, idle_watts=board["idle_watts"] * n)
        )

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        network, arrays = describe(graph, self.spec)
        write_network_json(out / "network.json", network)
        write_npz(out / "weights.npz", arrays)
        context = {
            "version": manifest["snnc_version"],
            "pipeline": ",".join(manifest["pipeline"]),
            "board": self.spec.options.board,
            "machine_version": BOARDS[self.spec.options.board]["version"],
            "boards": self.spec.options.boards,
            "width": machine_size(self.spec.options.boards)[0],
            "height": machine_size(self.spec.options.boards)[1],
            "time_scale_factor": self.spec.options.time_scale_factor,
            "instances": network["instances"],
            "dt": network["dt"],
            "presentation_time": network["presentation_time"],
            "pause": network["pause"],
        }
        copy_run_script("spinnaker", out)
        render("spinnaker", "spynnaker.cfg.j2", out / "spynnaker.cfg", context)
        render("spinnaker", "README.md.j2", out / "README.md", context)

    def report(self, graph: Graph, calibration: Optional[np.ndarray]) -> Optional[dict[str, Any]]:
        return mapping_report(graph, self.spec, calibration)

    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run snnc's sPyNNaker script on ``out`` (mapping only on a virtual board)."""
        return run_script("spinnaker", request.out, request.script_args(seed=False))
