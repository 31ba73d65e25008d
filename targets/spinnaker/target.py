"""Target ``spinnaker``: a pyNN.spiNNaker script, its network description, weights and config.

``run.py`` is generic: it builds what ``network.json`` describes with the arrays of
``weights.npz`` (nothing from the model is written into code). How the IR maps onto sPyNNaker 7:

=====================  =====================================================================
snnc                   sPyNNaker
=====================  =====================================================================
population (C, H, W)   split (an end of a native convolution, or the source of a synapse list that
                       keeps channels apart: ``_split_cells``): C populations with a Grid2D(W / H)
                       structure, raster order x fastest (numpy's C order of one channel);
                       otherwise one population with a Grid2D(W / (C H)) structure, the channels
                       stacked along y (its raster order is numpy's C order of the whole cell).
                       Both take ``set_max_atoms_per_core((cols, rows))``: snnc's tiles divide H,
                       so a stacked tile never straddles two channels and the cores are the same
population (n,)        one population; ``set_max_atoms_per_core(per_core)``
IF neuron              IF_curr_delta, v_rest = 0, tau_m, cm = tau_m (1 - exp(-dt / tau_m)) so that
                       a weight w raises v by exactly w (sPyNNaker integrates the closed form
                       v' = e v + (1 - e) R I, R = tau_m / cm), i_offset = snnc i_offset * dt;
                       with v_min (a floor) and no leak: extra_models.IFTruncDelta, tau_m = cm = 1
weight_shift e         max_expected_summed_weight = 0.75 * 2^e per receptor: sPyNNaker then picks
                       the ring-buffer shift e (16-bit weights in steps of 2^(e - 15))
conv projection        one ConvolutionConnector per (out, in) channel pair (7.4's connector and
                       populations are 2-D: one kernel between two channels), stride 1: the kernel
                       dilated, embedded in zeros to an odd size K' with equal padding p' on both
                       sides (any size and padding with K + pad_before + pad_after odd per axis)
                       and flipped in both axes (local_only_conv_impl.c applies element K'-1-k
                       where ML frameworks use k); reshaped to (kw', kh') and padding given as
                       (x, y), as sPyNNaker 7.4 reads shapes; each sign goes to its receptor. A
                       1 x 1 output applies each kernel once (nothing shared): a synapse list
pool projection        ConvolutionConnector 1x1 with pool_shape = pool_stride = the window (x, y);
                       windows equal to their stride, or one window over a whole axis, no padding;
                       one per channel, or one between stacked cells whose windows divide H and W
one_to_one 2-D         ConvolutionConnector 1x1 (kernel = scale) per channel, into channel
                       c + offset / (H W); one between stacked cells of one shape (offset 0)
dense from (C, H, W)   PoolDenseConnector, weights shaped (W, H, post) per channel, or (W, C H, post)
                       from a stacked cell, as sPyNNaker reshapes them (atoms_shape + post shape)
anything else          FromListConnector per (pre population, post population, sign): strided
                       convolutions (7.4's kernel loop centres on pre // stride and feeds every
                       post neuron of that window, not the ones the stride selects), other pools,
                       dense between 1-D populations; between stacked cells that is one or two
                       Projections. sPyNNaker gives a population one kind of synapse processing,
                       so when one projection into it is a list, all are (network.json says why
                       in ``list_because``). Lists are stored as NEST's are (a dense layer's
                       matrix, a convolution's kernel, a pool's window); run.py spells them out
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
from snnc.targets.network_json import stored
from snnc.targets.templates import copy_run_script, render

from .spec import BOARDS, SPEC, machine_size


def _cm(tau_m: float, dt: float) -> float:
    """Capacitance (nF) that makes sPyNNaker's LIF step add the input unscaled."""
    return tau_m * -math.expm1(-dt / tau_m)


def _native_conv(op: ir.Projection, weight_shape: tuple[int, ...], post_hw: list[int]) -> Optional[str]:
    """Why sPyNNaker 7.4's ConvolutionConnector cannot or should not make this conv projection (None: it can).

    Its kernel loop (local_only_conv_impl.c) centres an odd kernel of K' entries on
    ``(pre + p') // stride``: with stride 1 that is snnc's convolution for any kernel, dilation
    and padding once the (dilated) kernel is embedded in K' = K + d zeros with p' = pad_before + a
    (``_embedding``), which needs K + pad_before + pad_after odd per axis. With a stride above 1
    it feeds every post neuron of that window from every pre neuron, not the ones the stride
    selects, so strided convolutions go through a synapse list instead. A 1 x 1 output applies
    each kernel once: natively that is one Projection per channel pair for nothing shared.
    """
    if op.strides != (1, 1):
        return f"strides {list(op.strides)} (sPyNNaker 7.4 centres its kernel on pre // stride)"
    for axis, size in enumerate(_dilated(weight_shape[2:], op.dilations)):
        if (size + op.pads[axis] + op.pads[axis + 2]) % 2 == 0:
            return f"kernel {size} with pads {op.pads[axis]} and {op.pads[axis + 2]} on axis {axis} (even sum)"
    if math.prod(post_hw) == 1:
        return "a 1 x 1 output applies each kernel once (natively one Projection per channel pair, nothing shared)"
    return None


def _dilated(kernel: tuple[int, ...], dilations: tuple[int, ...]) -> tuple[int, int]:
    return (kernel[0] - 1) * dilations[0] + 1, (kernel[1] - 1) * dilations[1] + 1


def _embedding(size: int, before: int, after: int) -> tuple[int, int, int]:
    """(zeros before, zeros after, padding) that put a kernel of ``size`` with these pads into an
    odd kernel with equal padding on both sides: the same synapses and output size."""
    a = max(0, after - before)
    d = before - after + 2 * a
    return a, d - a, before + a


def _native_kernels(op: ir.Projection, weight: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Kernels (out, in / groups, kh', kw') as sPyNNaker applies them (dilated, zero-embedded to
    an odd size, flipped in both axes: it applies element K'-1-k where ML frameworks use k) and
    its padding in its (x, y) order."""
    kh, kw = _dilated(weight.shape[2:], op.dilations)
    (ta, tb, py), (la, lb, px) = _embedding(kh, op.pads[0], op.pads[2]), _embedding(kw, op.pads[1], op.pads[3])
    out = np.zeros((*weight.shape[:2], ta + kh + tb, la + kw + lb), np.float64)
    dy, dx = op.dilations
    out[:, :, ta : ta + kh : dy, la : la + kw : dx] = weight
    return np.flip(out, axis=(2, 3)), [px, py]


def _native_pool(op: ir.Projection, pre_shape: list[int]) -> Optional[str]:
    """Why sPyNNaker's pooling (windows equal to their stride, no padding) cannot take this pool projection."""
    # per axis a window equal to its stride, or one window over the whole axis (its stride does not matter)
    fits = all(k in (s, n) for k, s, n in zip(op.kernel, op.strides, pre_shape[1:], strict=True))
    if any(op.pads) or not fits:
        return f"pool window {list(op.kernel)} with strides {list(op.strides)} and pads {list(op.pads)}"
    return None


def _family(graph: Graph, proj: str, pre_cell: dict, post_cell: dict) -> tuple[str, Optional[str]]:
    """How sPyNNaker takes a projection natively: ("conv" (ConvolutionConnector, Convolution
    dynamics), "pool_dense" or "list", and why not natively (None where it can)."""
    op = graph.op(proj)
    if not (pre_cell["grid"] and post_cell["grid"]):
        if op.connectivity == "dense" and pre_cell["grid"]:
            return "pool_dense", None
        return "list", None
    if op.connectivity == "conv":
        return "conv", _native_conv(op, graph.tensor_shape(op.weight), post_cell["shape"][1:])
    if op.connectivity == "pool":
        return "conv", _native_pool(op, pre_cell["shape"])
    if op.connectivity == "one_to_one":
        per = math.prod(pre_cell["shape"][1:])
        same = pre_cell["shape"][1:] == post_cell["shape"][1:] and op.offset % per == 0
        return "conv", None if same else f"one-to-one offset {op.offset} across channels of other sizes"
    return "list", f"{op.connectivity} connections between 2-D populations"


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
    plans = [_plan(graph, n, index, cells) for n in nodes if isinstance(graph.op(n), ir.Population)]
    split = _split_cells(graph, cells, plans)
    for i, cell in enumerate(cells):
        cell["split"] = i in split
    for plan in plans:
        projections += _projections(graph, plan, cells, arrays, len(projections))
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


Plan = list[tuple[str, int, int, str, Optional[str], Optional[str]]]


def _plan(graph: Graph, post: str, index: dict, cells: list) -> Plan:
    """(projection, pre cell, post cell, family, why not natively, list_because) of every projection
    into ``post``; list_because is None for native ones. sPyNNaker gives a population one kind of
    synapse processing (a Convolution or PoolDense population takes nothing else), so if one
    projection cannot be native, or two native kinds meet, all of them become synapse lists."""
    ends = {}
    for proj in graph.inputs(post):
        (pre,) = graph.inputs(proj)
        ends[proj] = (index[pre], *_family(graph, proj, cells[index[pre]], cells[index[post]]))
    families = {family for _, family, _ in ends.values()}
    refused = [f"%{p}: {why}" for p, (_, _, why) in ends.items() if why is not None]
    if refused:
        shared = f"%{post} also takes " + "; ".join(refused)
    else:
        shared = f"%{post} takes {' and '.join(sorted(families))} projections (sPyNNaker: one kind per population)"
    plan = []
    for proj, (pre, family, why) in ends.items():
        listed = bool(refused) or len(families) > 1 or family == "list"
        because = (why or shared) if listed and (family != "list" or len(families) > 1) else None
        plan.append((proj, pre, index[post], "list" if listed else family, why, because))
    return plan


def _split_cells(graph: Graph, cells: list, plans: list[Plan]) -> set[int]:
    """The grid cells that take one population per channel: the ends of native convolutions
    (sPyNNaker's kernels join two 2-D populations), the sources of channel-wise synapse lists, and
    the ends of native pools and one-to-one projections that join a split cell or cannot run on
    stacked channels. The rest stack theirs.

    sPyNNaker 7.4.1 builds a list's synaptic rows on the host for every atom of the pre population
    and every post core (one Python step per row): a list that keeps channels apart (max pooling's
    selections, strided shortcuts of one channel) costs C times more rows from a stacked cell than
    from its C channels, while a list that mixes channels reads every pre channel either way."""
    native = [(graph.op(p), pre, post) for plan in plans for p, pre, post, family, _, _ in plan if family == "conv"]
    split = {end for op, pre, post in native if op.connectivity == "conv" for end in (pre, post)}
    for plan in plans:
        for proj, pre, post, family, _, _ in plan:
            if family == "list" and cells[pre]["grid"] and _channel_wise(graph, proj, cells[pre], cells[post]):
                split.add(pre)
    for op, pre, post in native:
        if op.connectivity != "conv" and not _stackable(op, cells[pre]["shape"], cells[post]["shape"]):
            split |= {pre, post}
    grown = True
    while grown:  # a native pool or one-to-one joins cells of one layout
        grown = False
        for _, pre, post in native:
            if (pre in split) != (post in split):
                split |= {pre, post}
                grown = True
    return split


def _channel_wise(graph: Graph, proj: str, pre: dict, post: dict) -> bool:
    """Whether a list projection joins no more (pre channel, post channel) pairs than either cell has channels."""
    c = connections(graph, proj)
    per_pre = pre["size"] // pre["shape"][0]
    per_post = post["size"] // post["shape"][0] if post["grid"] else post["size"]
    pairs = np.unique(c.pre // per_pre * (post["size"] // per_post) + c.post // per_post)
    return len(pairs) <= max(pre["shape"][0], post["size"] // per_post)


def _stackable(op: ir.Projection, pre: list[int], post: list[int]) -> bool:
    """Whether one connector between the stacked (W, C H) populations makes this pool or one-to-one:
    pool windows that never straddle two channels, one-to-one between cells of one shape."""
    if op.connectivity == "pool":
        return pre[1] % op.kernel[0] == 0 and pre[2] % op.kernel[1] == 0
    return pre == post and op.offset == 0


def _projections(graph: Graph, plan: Plan, cells: list, arrays: dict, k: int) -> list[dict[str, Any]]:
    """The network.json entries of ``plan``'s projections, their arrays added to ``arrays``."""
    entries = []
    for proj, pre, post, family, _, because in plan:
        entry = {"id": proj, "pre": pre, "post": post, "delay": graph.op(proj).delay}
        key = f"proj{k + len(entries)}"
        if family == "list":
            entry.update(_list(graph, proj, arrays, key))
            if because is not None:  # why not natively: recorded, the list costs SDRAM
                entry["list_because"] = because
        else:
            entry.update(_native(graph, proj, cells[pre], arrays, key))
        entries.append(entry)
    return entries


def _native(graph: Graph, proj: str, pre_cell: dict, arrays: dict, key: str) -> dict[str, Any]:
    """A projection sPyNNaker makes with its own connectors (see the module docstring)."""
    op = graph.op(proj)
    if op.connectivity == "conv":
        kernels, padding = _native_kernels(op, graph.tensor(op.weight))
        arrays[key] = kernels
        return {"kind": "conv", "kernels": key, "groups": op.groups, "padding": padding}
    if op.connectivity == "one_to_one":  # a 1x1 kernel per channel: channel c into c + offset / (H W)
        c = pre_cell["shape"][0] if pre_cell["split"] else 1  # stacked: one kernel for the whole cell
        arrays[key] = np.full((c, 1, 1, 1), op.scale, np.float64)
        return {"kind": "conv", "kernels": key, "groups": c, "padding": [0, 0],
                "channel_offset": op.offset // math.prod(pre_cell["shape"][1:])}  # fmt: skip
    if op.connectivity == "pool":
        return {"kind": "pool", "pool": list(op.kernel), "scale": op.scale}
    c, h, w = pre_cell["shape"]
    weight = graph.tensor(op.weight).reshape(-1, c, h, w)
    if pre_cell["split"]:
        arrays[key] = weight.transpose(1, 3, 2, 0).astype(np.float64)  # (C, W, H, post)
    else:  # one population, channels stacked along y: (1, W, C H, post)
        arrays[key] = weight.transpose(3, 1, 2, 0).reshape(1, w, c * h, -1).astype(np.float64)
    return {"kind": "pool_dense", "weights": key}


def _list(graph: Graph, proj: str, arrays: dict, key: str) -> dict[str, Any]:
    """A projection run.py gives sPyNNaker as synapse lists (a FromListConnector per population pair
    and sign), its ``synapses`` stored as NEST's are (``network_json.stored``: a dense layer's
    matrix, a convolution's kernel and window, a pool's scale and window, int32 (pre, post) pairs
    with float32 weights otherwise) and spelled out by run.py."""
    return {"kind": "list", "receptor": graph.op(proj).receptor, "synapses": stored(graph, proj, key, arrays)}


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
