"""Run this network in BrainScaleS-2's MAC mode on snnc's emulator; written by snnc (the same file for every network).

    python run.py --data test.npz --samples 10000
    python run.py --data test.npz --noise-std 2 --fixed-pattern 0.07 --seed 1

The network is described by config.json and matrices.npz beside this file (README.md gives its
layers and tiles); both, and the data file, are checked before anything runs. Each MAC layer
multiplies 5-bit inputs (0..31) by its 6-bit signed weight tiles of at most 128 rows x 256
columns; every tile's result is floored and clamped to the 8-bit ADC range, the partials of a
column range are summed and clamped again, the int8 bias added, and the converting ReLU shifts the
result back to 0..31 (hxtorch's mock arithmetic; snnc_mac.py). Pooling, flatten and reshape run on
the host, as in an hxtorch model. --noise-std adds hxtorch's mock noise (N(0, std) per result,
default 0; hxtorch's default is 2), --fixed-pattern a per-column gain spread N(1, spread) drawn once
per layer (the paper calibrates synapse strengths to about 7 %). Prints the accuracy and writes
results.json and outputs.npz. Needs numpy only.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if __package__:  # imported from snnc (snnc.targets.brainscales2.run_brainscales2)
    from snnc.ir import runtime
    from snnc.ir.semantics import mac as hx
else:  # run as out/run.py, with snnc_runtime.py and snnc_mac.py beside it
    import snnc_mac as hx
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent
FORMAT = "snnc-brainscales2-mac"
CONFIG, MATRICES = "config.json", "matrices.npz"
MAX_DIM = 1_000_000


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The common run-script arguments plus the emulator's noise, fixed-pattern spread and batch size."""
    p = runtime.argument_parser(__doc__, HERE, seed=True)
    p.add_argument("--noise-std", type=runtime.bounded(float, 0.0, 128.0), default=0.0, help="mock noise (ADC units)")
    p.add_argument("--fixed-pattern", type=runtime.bounded(float, 0.0, 1.0), default=0.0, help="column gain spread")
    p.add_argument("--batch-size", type=runtime.bounded(int, 1, 100_000), default=256, help="samples per batch")
    return p.parse_args(argv)


def _ints(obj: dict, key: str, where: str, count: int, low: int) -> list[int]:
    values = runtime.entries(obj, key, where, int, count)
    if len(values) != count or any(isinstance(v, bool) or not low <= v <= MAX_DIM for v in values):
        raise runtime.Invalid(f"{where}.{key}", f"must be {count} integers in [{low}, {MAX_DIM}]")
    return values


def _window_out(shape: tuple, kernel: list, strides: list, pads: list, where: str) -> tuple[int, int]:
    if len(shape) != 3:
        raise runtime.Invalid(where, f"takes a (C, H, W) input, gets {list(shape)}")
    out = tuple((shape[1 + i] + pads[i] + pads[i + 2] - kernel[i]) // strides[i] + 1 for i in range(2))
    if min(out) < 1:
        raise runtime.Invalid(where, f"window {kernel} does not fit the input {list(shape)}")
    return out


def _matrix(step: dict, arrays: dict, rows: int, cols: int, where: str) -> np.ndarray:
    """The layer's (rows, cols) integer matrix from its tiles, which must cover it exactly once."""
    matrix, covered = np.zeros((rows, cols)), np.zeros((rows, cols), np.int64)
    tile_rows = runtime.integer(step, "tile_rows", where, 1, hx.SIGNED_ROWS)
    tile_cols = runtime.integer(step, "tile_cols", where, 1, hx.COLUMNS)
    for t, tile in enumerate(runtime.entries(step, "tiles", where, dict, 1)):
        at = f"{where}.tiles[{t}]"
        r0, r1 = _ints(tile, "rows", at, 2, 0)
        c0, c1 = _ints(tile, "cols", at, 2, 0)
        if not (r0 < r1 <= rows and c0 < c1 <= cols and r1 - r0 <= tile_rows and c1 - c0 <= tile_cols):
            raise runtime.Invalid(at, f"rows {r0}:{r1} x cols {c0}:{c1} do not fit the {rows} x {cols} matrix's tiles")
        runtime.integer(tile, "half", at, 0, hx.HALVES - 1)
        w = runtime.array(arrays, tile, "weights", at, (r1 - r0, c1 - c0), MATRICES)
        if np.any(w != np.round(w)) or (w.size and (w.min() < hx.WEIGHT_MIN or w.max() > hx.WEIGHT_MAX)):
            raise runtime.Invalid(f"{MATRICES}: {tile['weights']}", "weights must be integers -63..63")
        matrix[r0:r1, c0:c1] = w
        covered[r0:r1, c0:c1] += 1
    if np.any(covered != 1):
        raise runtime.Invalid(f"{where}.tiles", "do not cover the layer's matrix exactly once")
    return matrix


def _mac(step: dict, arrays: dict, shape: tuple, where: str, first: bool) -> tuple[dict, tuple]:
    """A checked MAC layer (its weight assembled from the tiles) and its output shape."""
    kind = runtime.choice(step, "kind", where, ("dense", "conv"))
    wshape = _ints(step, "weight_shape", where, 2 if kind == "dense" else 4, 1)
    strides = _ints(step, "strides", where, 2, 1)
    pads = _ints(step, "pads", where, 4, 0)
    if kind == "dense":
        if wshape[1] != math.prod(shape) or strides != [1, 1] or any(pads):
            raise runtime.Invalid(f"{where}.weight_shape", f"{wshape} does not fit the input {list(shape)}")
        out: tuple = (wshape[0],)
    else:
        if len(shape) != 3 or wshape[1] != shape[0]:
            raise runtime.Invalid(f"{where}.weight_shape", f"{wshape} does not fit the input {list(shape)}")
        out = (wshape[0], *_window_out(shape, wshape[2:], strides, pads, where))
    rows, cols = math.prod(wshape[1:]), wshape[0]
    matrix = _matrix(step, arrays, rows, cols, where)
    layer = {
        "weight": matrix.T.reshape(wshape),
        "bias": None,
        "kind": kind,
        "strides": strides,
        "pads": pads,
        "gain": runtime.number(step, "gain", where, 0.0, 1.0, low_open=True),
        "num_sends": runtime.integer(step, "num_sends", where, 1, 1_000_000),
        "input_scale": runtime.number(step, "input_scale", where, 0.0, 1e30, low_open=True, optional=not first),
        "activation": runtime.choice(step, "activation", where, ("none", "converting_relu")),
        "shift": runtime.integer(step, "shift", where, 0, 7),
        "tile_rows": step["tile_rows"],
        "tile_cols": step["tile_cols"],
    }
    if first and layer["input_scale"] is None:
        raise runtime.Invalid(f"{where}.input_scale", "the first layer quantizes the input: a positive number")
    if step.get("bias") is not None:
        bias = runtime.array(arrays, step, "bias", where, (cols,), MATRICES)
        if np.any(bias != np.round(bias)) or bias.min() < hx.OUTPUT_MIN or bias.max() > hx.OUTPUT_MAX:
            raise runtime.Invalid(f"{MATRICES}: {step['bias']}", "biases must be integers -128..127")
        layer["bias"] = bias
    return layer, out


def check_config(config: Any, arrays: dict) -> tuple[list[dict], tuple, int]:
    """config.json and matrices.npz checked: the steps to run, the input shape and the classes."""
    if config.get("format") != FORMAT or config.get("version") != 1:
        raise runtime.Invalid(CONFIG, f"not a {FORMAT} version 1 file")
    shape = tuple(runtime.entries(config, "input_shape", CONFIG, int, 1))
    if min(shape) < 1 or max(shape) > MAX_DIM or any(isinstance(d, bool) for d in shape):
        raise runtime.Invalid(f"{CONFIG}.input_shape", "must be positive integers")
    runtime.choice(config, "input_layout", CONFIG, ("NCHW", "NHWC"))
    classes = runtime.integer(config, "classes", CONFIG, 1, MAX_DIM)
    input_shape, steps, macs = shape, [], 0
    raw = runtime.entries(config, "steps", CONFIG, dict, 1)
    for i, step in enumerate(raw):
        where = f"{CONFIG}: steps[{i}]"
        op = runtime.choice(step, "op", where, ("mac", "avgpool", "maxpool", "flatten", "reshape", "scale"))
        if op == "mac":
            layer, shape = _mac(step, arrays, shape, where, macs == 0)
            steps.append({"op": op, **layer})
            macs += 1
        elif op in ("avgpool", "maxpool"):
            kernel, strides = _ints(step, "kernel", where, 2, 1), _ints(step, "strides", where, 2, 1)
            shape = (shape[0], *_window_out(shape, kernel, strides, [0, 0, 0, 0], where))
            steps.append({"op": op, "kernel": kernel, "strides": strides})
        elif op == "flatten":
            shape = (math.prod(shape),)
            steps.append({"op": op})
        elif op == "reshape":
            new = tuple(_ints(step, "shape", where, len(step.get("shape") or [0]), 1))
            if math.prod(new) != math.prod(shape):
                raise runtime.Invalid(f"{where}.shape", f"cannot reshape {list(shape)} to {list(new)}")
            shape = new
            steps.append({"op": op, "shape": new})
        else:
            if i != len(raw) - 1:
                raise runtime.Invalid(where, "the output scale is the last step")
            steps.append({"op": op, "factor": runtime.number(step, "factor", where, 0.0, 1e30, low_open=True)})
    if macs == 0 or math.prod(shape) != classes:
        raise runtime.Invalid(CONFIG, f"{macs} MAC layers and {math.prod(shape)} outputs for {classes} classes")
    return steps, input_shape, classes


def _pool(x: np.ndarray, step: dict) -> np.ndarray:
    (kh, kw), (sh, sw) = step["kernel"], step["strides"]
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.mean(axis=(-2, -1), dtype=np.float32) if step["op"] == "avgpool" else win.max(axis=(-2, -1))


def forward(steps: list[dict], x: np.ndarray, noise_std: float, rng: np.random.Generator, gains: list) -> np.ndarray:
    """The network's outputs for a batch ``x`` (N, *input shape); ``gains``: per MAC layer the
    column gains (None: ideal)."""
    layer = 0
    for step in steps:
        op = step["op"]
        if op == "mac":
            settings = {k: v for k, v in step.items() if k not in ("op", "weight", "bias")}
            noise = {"noise_std": noise_std, "rng": rng if noise_std > 0 else None, "column_gain": gains[layer]}
            x = hx.layer(x, step["weight"], step["bias"], **settings, **noise)
            layer += 1
        elif op in ("avgpool", "maxpool"):
            x = _pool(x, step)
        elif op in ("flatten", "reshape"):
            x = x.reshape(len(x), *step.get("shape", (-1,)))
        else:
            x = x * np.float32(step["factor"])
    return x.reshape(len(x), -1)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Evaluate the network in --dir on the data, write results.json and outputs.npz."""
    args = parse_args(argv)
    start = time.perf_counter()
    config = runtime.read_json(args.dir / CONFIG)
    steps, shape, classes = check_config(config, runtime.read_npz(args.dir / MATRICES))
    path = runtime.data_path(args.dir, args.data)
    x, y = runtime.load_samples(path, args.samples, shape, classes, config["input_layout"])
    rng = np.random.default_rng(args.seed)
    gains = [
        hx.fixed_pattern_gain(len(s["weight"]), args.fixed_pattern, rng) if args.fixed_pattern > 0 else None
        for s in steps
        if s["op"] == "mac"
    ]
    build = time.perf_counter() - start
    start = time.perf_counter()
    readout = np.concatenate(
        [
            forward(steps, x[i : i + args.batch_size], args.noise_std, rng, gains)
            for i in range(0, len(x), args.batch_size)
        ]
    )
    run = time.perf_counter() - start
    results, predictions = runtime.classification(
        "brainscales2",
        args,
        x,
        y,
        readout,
        build_time_s=build,
        run_time_s=run,
        data=str(path),
        noise_std=args.noise_std,
        fixed_pattern=args.fixed_pattern,
        seed=args.seed,
    )
    runtime.save_classification(args.dir, results, readout, predictions, y)
    print(runtime.summary("brainscales2 (emulated MAC mode)", results))
    return results


if __name__ == "__main__":
    main()
