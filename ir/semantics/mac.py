"""A numpy emulator of BrainScaleS-2's analog multiply-accumulate (hagen) mode, as hxtorch's mock computes it.

Needs only the standard library and numpy: snnc copies this file beside the generated run.py (as snnc_mac.py),
and the ann interpreter evaluates the ``ann.mac`` op with it.

Reference (hxtorch @ 3bfc7aad, electronicvisions/hxtorch; abbreviated HX below):
- ``mac``: ``src/hxtorch/perceptron/detail/mac.cpp`` ``mac_mock_forward``, l.17-84;
- ``relu`` / ``converting_relu``: ``src/hxtorch/perceptron/detail/relu.cpp`` l.13-16 and l.80-83;
- ``add``: ``detail/add.cpp`` l.11-15; ``argmax``: ``detail/argmax.cpp`` l.11-15;
- ranges and defaults: ``include/hxtorch/perceptron/constants.h`` l.9-31.

The mock's arithmetic, for inputs ``x`` (batch, rows) and weights ``w`` (rows, cols):

1. round x and w half to even (torch ``round``), then refuse values outside 0..31 / -63..63 (no clamping);
2. split the rows into chunks of 128 (one synapse array height in signed mode, the last chunk may be shorter);
3. per chunk: ``p = (x_chunk @ w_chunk) * (num_sends * gain)`` in float32, plus N(0, noise_std) per element
   when noise_std > 0, then ``p = clip(floor(p), -128, 127)`` (the 8-bit ADC clamps EVERY partial);
4. sum the partials digitally and clamp the sum to -128..127 once more.

There is no column split in the mock (columns are independent, so splitting them changes nothing).
Two additions of snnc that the mock does not have: ``column_gain`` (fixed-pattern gain per synapse column, the
paper's calibration spread) and ``tiled_mac`` (the same arithmetic on an explicit tile plan, as grenade runs it
on the chip: rows split by 128, columns by 256).
Noise is drawn from a numpy Generator, so it matches hxtorch's (torch's global generator) only statistically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# --- the hardware's number ranges -------------------------------------------------------------------------------
# input: grenade UInt5 (haldls PADIEvent::HagenActivation, 5 bit unsigned); HX constants.h l.12-13
INPUT_MIN = 0
INPUT_MAX = 31
# weight: grenade compute::MAC::Weight = RantWrapper<int_fast8_t, 63, -63> (6 bit + sign); grenade
# include/grenade/vx/compute/mac.h l.45-46, HX constants.h l.9-10
WEIGHT_MIN = -63
WEIGHT_MAX = 63
# output: int8 (8-bit CADC readout minus baseline); HX constants.h l.15-18
OUTPUT_MIN = -128
OUTPUT_MAX = 127
# synapse array: 256 rows per synram, a signed weight takes two rows -> 128 signed inputs per tile
# (HX constants.h l.20-21 "signed weight needs two rows"; halco synapse.h l.47-48)
SIGNED_ROWS = 128
# 256 synapse columns (neurons) per synram; HX constants.h l.22-23, halco synapse.h l.452-453
COLUMNS = 256
# two synrams (hemispheres, top/bottom); halco chip.h l.20-29
HALVES = 2
# hxtorch MockParameter defaults; HX constants.h l.28-29 (namespace defaults), struct include/hxtorch/perceptron/mock.h
DEFAULT_GAIN = 0.002
DEFAULT_NOISE_STD = 2.0

RngLike = Union[np.random.Generator, int, None]


class RangeError(ValueError, OverflowError):
    """A value outside the hardware's range; hxtorch raises OverflowError here (HX mac.cpp l.35, l.46)."""


def _quantize(values: np.ndarray, low: int, high: int, what: str) -> np.ndarray:
    """Round half to even (torch ``round``) and refuse values outside ``low..high`` after rounding, as the mock."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what}: numeric values expected, got dtype {arr.dtype}")
    rounded = np.round(arr.astype(np.float64))
    if not np.all(np.isfinite(rounded)):
        raise RangeError(f"{what}: values must be finite (NaN or infinity found)")
    if rounded.size and (rounded.min() < low or rounded.max() > high):
        raise RangeError(
            f"{what}: BrainScaleS-2 supports values between {low} and {high} after rounding, "
            f"got {rounded.min():g} (min), {rounded.max():g} (max)"
        )
    return rounded  # float64 holding integers: the products below are exact and use BLAS


def _check_settings(gain: float, num_sends: int, noise_std: float) -> None:
    """Refuse settings hxtorch refuses (gain outside (0, 1], HX mock.cpp l.17-25) or that make no sense."""
    if not (isinstance(gain, (int, float, np.floating)) and 0.0 < float(gain) <= 1.0):
        raise ValueError(f"gain must be in (0, 1] (as hxtorch's set_mock_parameter), got {gain!r}")
    if isinstance(num_sends, bool) or not isinstance(num_sends, (int, np.integer)) or num_sends < 1:
        raise ValueError(f"num_sends must be an integer >= 1, got {num_sends!r}")
    if not (isinstance(noise_std, (int, float, np.floating)) and math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")


def _factor(gain: float, num_sends: int, column_gain: Optional[np.ndarray], cols: int) -> np.ndarray:
    """The float32 multiplier per column: num_sends * gain (HX mac.cpp l.68), times the column gain if any."""
    base = float(num_sends) * float(gain)  # double in hxtorch; torch casts the scalar to float32 for a float tensor
    if column_gain is None:
        return np.full(cols, base, dtype=np.float32)
    cg = np.asarray(column_gain, dtype=np.float64)
    if cg.shape != (cols,):
        raise ValueError(f"column_gain must have shape ({cols},), got {cg.shape}")
    if not np.all(np.isfinite(cg)):
        raise ValueError("column_gain must be finite")
    return (base * cg).astype(np.float32)


def _as_rng(rng: RngLike, noise_std: float) -> Optional[np.random.Generator]:
    """The generator for the noise; an explicit one (or an int seed) is required when noise is on."""
    if noise_std <= 0:
        return None
    if rng is None:
        raise ValueError("noise_std > 0 needs rng (a numpy Generator or an int seed) so that runs are reproducible")
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _partial(
    x: np.ndarray, w: np.ndarray, factor: np.ndarray, noise_std: float, rng: Optional[np.random.Generator]
) -> np.ndarray:
    """One partial matrix: float32 (x @ w) * factor, + noise, floor, clamp to the ADC range (HX mac.cpp l.66-77)."""
    acc = (x @ w).astype(np.float32)  # exact: every partial sum is an integer, |.| <= 31 * 63 * 128 < 2**24
    part = acc * factor
    if noise_std > 0:
        part = part + rng.normal(0.0, noise_std, part.shape).astype(np.float32)
    return np.clip(np.floor(part), OUTPUT_MIN, OUTPUT_MAX).astype(np.float32)


def _as_2d(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """x as (batch, rows) and whether it was 1-D; hxtorch's mac takes 1-D or 2-D input (HX mac.cpp l.23-25)."""
    if x.ndim == 1:
        return x[None, :], True
    if x.ndim == 2:
        return x, False
    raise ValueError(f"x must be 1-D or 2-D (batch, rows), got shape {x.shape}")


def mac(
    x: np.ndarray,
    w: np.ndarray,
    gain: float = DEFAULT_GAIN,
    num_sends: int = 1,
    noise_std: float = 0.0,
    rng: RngLike = None,
    column_gain: Optional[np.ndarray] = None,
) -> np.ndarray:
    """hxtorch's mock MAC (HX mac.cpp l.17-84): ``x`` (batch, rows) or (rows,) in 0..31, ``w`` (rows, cols) in -63..63.

    Returns float32 integer values in -128..127, shape (batch, cols) or (cols,). Noise is off by default (hxtorch's
    default is 2.0, ``DEFAULT_NOISE_STD``); with ``noise_std > 0`` pass ``rng`` (a Generator or a seed).
    ``column_gain`` (cols,) multiplies the gain per column (not in the mock; None = ideal).
    """
    _check_settings(gain, num_sends, noise_std)
    xq, was_1d = _as_2d(_quantize(x, INPUT_MIN, INPUT_MAX, "input"))
    wq = _quantize(w, WEIGHT_MIN, WEIGHT_MAX, "weight")
    if wq.ndim != 2:
        raise ValueError(f"weights must be 2-D (rows, cols), got shape {wq.shape}")
    if xq.shape[1] != wq.shape[0]:
        raise ValueError(f"input has {xq.shape[1]} rows but the weight matrix has {wq.shape[0]}")
    factor = _factor(gain, num_sends, column_gain, wq.shape[1])
    gen = _as_rng(rng, noise_std)
    out = np.zeros((xq.shape[0], wq.shape[1]), dtype=np.float32)
    for r0 in range(0, wq.shape[0], SIGNED_ROWS):  # torch split by hardware_matrix_height (HX mac.cpp l.55-58)
        out += _partial(xq[:, r0 : r0 + SIGNED_ROWS], wq[r0 : r0 + SIGNED_ROWS], factor, noise_std, gen)
    out = np.clip(out, OUTPUT_MIN, OUTPUT_MAX)  # HX mac.cpp l.82
    return out[0] if was_1d else out


@dataclass(frozen=True)
class Tile:
    """One partial weight matrix on the chip: rows ``row_start:row_stop`` and columns ``col_start:col_stop``."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    weights: np.ndarray  # (row_stop - row_start, col_stop - col_start), integers in -63..63

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the tile."""
        return self.row_stop - self.row_start, self.col_stop - self.col_start


def split_tiles(w: np.ndarray, tile_rows: int = SIGNED_ROWS, tile_cols: int = COLUMNS) -> list[Tile]:
    """Cut ``w`` (rows, cols) into tiles of at most ``tile_rows`` x ``tile_cols``.

    Order as grenade places them (grenade src/grenade/vx/compute/mac.cpp l.328-329): column ranges outer, row
    ranges inner. Count = ceil(rows / tile_rows) * ceil(cols / tile_cols).
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (rows, cols), got shape {w.shape}")
    if not (1 <= tile_rows <= SIGNED_ROWS and 1 <= tile_cols <= COLUMNS):
        raise ValueError(f"a tile has at most {SIGNED_ROWS} rows and {COLUMNS} columns, got {tile_rows}x{tile_cols}")
    rows, cols = w.shape
    return [
        Tile(r0, min(r0 + tile_rows, rows), c0, min(c0 + tile_cols, cols), w[r0 : r0 + tile_rows, c0 : c0 + tile_cols])
        for c0 in range(0, cols, tile_cols)
        for r0 in range(0, rows, tile_rows)
    ]


def _check_plan(tiles: Sequence[Tile], rows: int) -> int:
    """Check that the tiles cover the (rows, cols) matrix exactly once; return cols."""
    if not tiles:
        raise ValueError("tiled_mac needs at least one tile")
    by_cols: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, t in enumerate(tiles):
        r, c = t.shape
        if not (0 < r <= SIGNED_ROWS and 0 < c <= COLUMNS):
            raise ValueError(f"tile {i}: {r}x{c} does not fit {SIGNED_ROWS} signed rows x {COLUMNS} columns")
        if np.shape(t.weights) != (r, c):
            raise ValueError(f"tile {i}: weights have shape {np.shape(t.weights)}, its ranges say {(r, c)}")
        by_cols.setdefault((t.col_start, t.col_stop), []).append((t.row_start, t.row_stop))
    cols = 0
    for c0, c1 in sorted(by_cols):
        if c0 != cols:
            raise ValueError(f"column ranges must cover the columns once: gap or overlap at column {min(c0, cols)}")
        cols = c1
        end = 0
        for r0, r1 in sorted(by_cols[(c0, c1)]):
            if r0 != end:
                raise ValueError(f"columns {c0}:{c1}: row ranges must cover rows 0:{rows} once (break at row {r0})")
            end = r1
        if end != rows:
            raise ValueError(f"columns {c0}:{c1}: tiles cover rows 0:{end}, the input has {rows}")
    return cols


def tiled_mac(
    x: np.ndarray,
    tiles: Sequence[Tile],
    gain: float = DEFAULT_GAIN,
    num_sends: int = 1,
    noise_std: float = 0.0,
    rng: RngLike = None,
    column_gain: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Evaluate a layer given as tiles (at most 128 rows x 256 columns), one partial matrix per tile.

    Each tile's partial is floored and clamped to -128..127 (the ADC reads each tile, exactly like the mock's
    per-128-row chunk); partials are summed digitally per output column and the sum is clamped once
    (grenade transformation/addition.cpp l.47-63). Column ranges are independent. So, with noise off, this equals
    ``mac`` on the unsplit matrix whenever the row ranges are the mock's 128-row chunks (0:128, 128:256, ...) —
    as ``split_tiles`` makes them — even when partials clamp; other row cuts agree only when nothing clamps.
    With noise on, each tile draws its own N(0, noise_std) per element (same statistics as the mock; the
    draw order differs from ``mac``).
    """
    _check_settings(gain, num_sends, noise_std)
    xq, was_1d = _as_2d(_quantize(x, INPUT_MIN, INPUT_MAX, "input"))
    cols = _check_plan(tiles, xq.shape[1])
    factor = _factor(gain, num_sends, column_gain, cols)
    gen = _as_rng(rng, noise_std)
    out = np.zeros((xq.shape[0], cols), dtype=np.float32)
    for i, t in enumerate(tiles):
        wq = _quantize(t.weights, WEIGHT_MIN, WEIGHT_MAX, f"tile {i} weight")
        part = _partial(xq[:, t.row_start : t.row_stop], wq, factor[t.col_start : t.col_stop], noise_std, gen)
        out[:, t.col_start : t.col_stop] += part
    out = np.clip(out, OUTPUT_MIN, OUTPUT_MAX)
    return out[0] if was_1d else out


def relu(y: np.ndarray) -> np.ndarray:
    """hxtorch's mock ReLU: clip(floor(y), 0, 127) (HX relu.cpp l.13-16)."""
    return np.clip(np.floor(np.asarray(y, dtype=np.float32)), 0, OUTPUT_MAX)


def converting_relu(y: np.ndarray, shift: int = 2) -> np.ndarray:
    """hxtorch's mock converting ReLU, 8-bit output to 5-bit input (HX relu.cpp l.80-83):

    ``clip(floor(clip(floor(y), 0, 127) / 2**shift), 0, 31)`` == ``min(max(floor(y), 0) >> shift, 31)``.
    hxtorch's default shift is 2 (HX nn.py ConvertingReLU); the hardware path refuses shift < 0 (relu.cpp l.87-89),
    and so does this function.
    """
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
        raise ValueError(f"shift must be an integer >= 0, got {shift!r}")
    clipped = np.clip(np.floor(np.asarray(y, dtype=np.float32)), 0, OUTPUT_MAX)
    return np.clip(np.floor(clipped / np.float32(2.0**shift)), INPUT_MIN, INPUT_MAX).astype(np.float32)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """hxtorch's mock int8 addition (used for biases): clip(clip(floor a) + clip(floor b)) (HX add.cpp l.11-15)."""

    def to_int8(v: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(np.asarray(v, dtype=np.float32)), OUTPUT_MIN, OUTPUT_MAX)

    return np.clip(to_int8(a) + to_int8(b), OUTPUT_MIN, OUTPUT_MAX)


def argmax(y: np.ndarray, axis: Optional[int] = None) -> np.ndarray:
    """hxtorch's mock argmax: argmax of clip(floor(y), -128, 127) (HX argmax.cpp l.11-15); ties give the first index."""
    return np.argmax(np.clip(np.floor(np.asarray(y, dtype=np.float32)), OUTPUT_MIN, OUTPUT_MAX), axis=axis)


def fixed_pattern_gain(cols: int, spread: float, rng: RngLike) -> np.ndarray:
    """Per-column gain factors ~ N(1, spread), a model of the calibration spread (the paper: synaptic strength
    calibrated to about 7 %); pass the result as ``column_gain``. spread 0 gives ones."""
    if isinstance(cols, bool) or not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"cols must be an integer >= 1, got {cols!r}")
    if not (isinstance(spread, (int, float, np.floating)) and math.isfinite(spread) and spread >= 0):
        raise ValueError(f"spread must be a finite number >= 0, got {spread!r}")
    if spread == 0:
        return np.ones(cols, dtype=np.float64)
    if rng is None:
        raise ValueError("spread > 0 needs rng (a numpy Generator or an int seed) so that runs are reproducible")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return gen.normal(1.0, spread, cols)


def quantize_input(x: np.ndarray, scale: float) -> np.ndarray:
    """Real inputs to the chip's 5-bit range: ``clip(round(x * scale), 0, 31)`` in float32 (the first layer's
    ``input_scale``)."""
    return np.clip(np.round(np.asarray(x, np.float32) * np.float32(scale)), INPUT_MIN, INPUT_MAX)


def conv_patches(
    x: np.ndarray, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The input vectors of a convolution on the chip, (N * OH * OW, C * kh * kw), and (OH, OW): one patch per
    output position, flattened in (channel, row, column) order against ``weight.reshape(out, -1).T``, as hxtorch's
    im2col (HX detail/conv.cpp l.35-147). ``x`` is (N, C, H, W); ``pads`` (top, left, bottom, right) are zeros."""
    top, left, bottom, right = pads
    x = np.pad(np.asarray(x), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_hw = ((x.shape[2] - kernel[0]) // strides[0] + 1, (x.shape[3] - kernel[1]) // strides[1] + 1)
    if min(out_hw) < 1:
        raise ValueError(f"kernel {list(kernel)} does not fit the padded input {list(x.shape[2:])}")
    win = sliding_window_view(x, tuple(kernel), axis=(2, 3))[:, :, :: strides[0], :: strides[1]]
    win = win[:, :, : out_hw[0], : out_hw[1]]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(len(x) * out_hw[0] * out_hw[1], -1), out_hw


def layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: Optional[np.ndarray] = None,
    *,
    kind: str = "dense",
    strides: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    gain: float = DEFAULT_GAIN,
    num_sends: int = 1,
    input_scale: Optional[float] = None,
    activation: str = "none",
    shift: int = 0,
    tile_rows: Optional[int] = None,
    tile_cols: Optional[int] = None,
    noise_std: float = 0.0,
    rng: RngLike = None,
    column_gain: Optional[np.ndarray] = None,
) -> np.ndarray:
    """One layer as hxtorch's ``nn.Linear`` / ``nn.Conv2d`` (+ ``ConvertingReLU``) computes it on a batch ``x``.

    ``weight`` (out, in) or (out, in, kh, kw) holds integers -63..63; the layer's matrix ``weight.reshape(out,
    -1).T`` runs as tiles of ``tile_rows`` x ``tile_cols`` (None: 128 rows, 256 columns); ``bias`` (out,) is
    added as hxtorch's layers add it (Linear: the int8 ``add``; Conv2d: in float, unclamped);
    ``converting_relu`` brings the result to the next layer's 0..31.
    """
    x = np.asarray(x, np.float32)
    if input_scale is not None:
        x = quantize_input(x, input_scale)
    weight = np.asarray(weight)
    if kind == "dense":
        vectors, out_hw = x.reshape(len(x), -1), None
    elif kind == "conv":
        vectors, out_hw = conv_patches(x, weight.shape[2:], strides, pads)
    else:
        raise ValueError(f"kind must be dense or conv, got {kind!r}")
    matrix = weight.reshape(len(weight), -1).T
    tiles = split_tiles(matrix, tile_rows or SIGNED_ROWS, tile_cols or COLUMNS)
    y = tiled_mac(vectors, tiles, gain, num_sends, noise_std, rng, column_gain)
    if bias is not None and kind == "dense":
        y = add(y, np.asarray(bias)[None, :])  # nn.Linear: hxtorch's int8 add (HX nn.py Linear.forward)
    elif bias is not None:
        y = y + np.asarray(bias, np.float32)[None, :]  # conv2d adds its bias in float (HX detail/conv.cpp l.141-145)
    if activation == "converting_relu":
        y = converting_relu(y, shift)
    elif activation != "none":
        raise ValueError(f"activation must be none or converting_relu, got {activation!r}")
    if out_hw is None:
        return y
    return y.reshape(len(x), out_hw[0], out_hw[1], len(weight)).transpose(0, 3, 1, 2)
