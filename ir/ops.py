"""Typed op definitions of the ``ann`` and ``snn`` dialects.

Every op is a dataclass. Its fields are its attributes; they are type-checked (and ints are
widened to floats where a float is declared) when the op is constructed. Attributes typed
``TensorRef`` name a tensor in the graph's tensor store. Each op infers its per-sample output
shape (no batch dimension) from its input shapes, which is what the verifier re-checks.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Optional

import numpy as np

from .errors import SnncError

Shape = tuple[int, ...]


class IRError(SnncError, ValueError):
    """An op, graph or text file that breaks an IR rule."""


@dataclass(frozen=True)
class TensorRef:
    """A reference to a tensor in the graph's store (``@name`` in text form)."""

    name: str


@dataclass
class Op:
    """Base of all ops: attribute checking and the declarations subclasses fill in."""

    OPNAME: ClassVar[str] = ""
    ARITY: ClassVar[Optional[int]] = 1  # number of inputs; None = one or more

    def __post_init__(self) -> None:
        for name, coerce in _coercers(type(self)):
            setattr(self, name, coerce(getattr(self, name)))
        self.check()

    def validate(self) -> None:
        """Re-run the construction checks (passes may have assigned attributes directly)."""
        for name, coerce in _coercers(type(self)):
            coerce(getattr(self, name))
        self.check()

    @property
    def dialect(self) -> str:
        return self.OPNAME.split(".")[0]

    def attrs(self) -> dict[str, Any]:
        """Attributes in declaration order, None (absent optional) ones left out."""
        values = ((name, getattr(self, name)) for name, _ in _coercers(type(self)))
        return {name: value for name, value in values if value is not None}

    def tensor_refs(self) -> dict[str, TensorRef]:
        values = ((name, getattr(self, name)) for name in _tensor_fields(type(self)))
        return {name: value for name, value in values if isinstance(value, TensorRef)}

    def clone(self) -> Op:
        """A shallow copy (faster than copy.copy, which graphs of 100,000 ops notice)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def check(self) -> None:
        """Cross-attribute rules; subclasses override."""

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        """Per-sample output shape; default keeps the single input's shape."""
        return in_shapes[0]

    def fail(self, message: str) -> typing.NoReturn:
        raise IRError(f"{self.OPNAME}: {message}")


TensorShapes = typing.Callable[[TensorRef], Shape]


Coercer = typing.Callable[[Any], Any]


@functools.cache
def _coercers(cls: type) -> tuple[tuple[str, Coercer], ...]:
    """(field name, checking function) per attribute of an op class, built once per class."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _coercer(cls.OPNAME, f.name, hints[f.name])) for f in fields(cls))


@functools.cache
def _tensor_fields(cls: type) -> tuple[str, ...]:
    """The attributes of an op class that may hold a TensorRef."""
    hints = typing.get_type_hints(cls)
    return tuple(f.name for f in fields(cls) if TensorRef in (hints[f.name], *typing.get_args(hints[f.name])))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _coercer(opname: str, name: str, hint: Any) -> Coercer:
    """A function that checks a value against a field type hint, widening int to float and list to tuple."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def fail(value: Any, what: str) -> typing.NoReturn:
        raise IRError(f"{opname}: attribute {name} must be {what}, got {_shown(value)}")

    if origin is typing.Union:
        (inner_hint,) = [a for a in args if a is not type(None)]
        inner = _coercer(opname, name, inner_hint)
        return lambda value: None if value is None else inner(value)
    if origin is Literal:
        allowed, names = frozenset(args), f"one of {list(args)}"
        return lambda value: value if isinstance(value, str) and value in allowed else fail(value, names)
    if origin is tuple:
        item = _coercer(opname, name, args[0])
        return lambda value: tuple(map(item, value)) if isinstance(value, (tuple, list)) else fail(value, "a list")
    if hint is float:
        return lambda value: (
            value if type(value) is float else float(value) if _is_number(value) else fail(value, "float")
        )
    if hint is int:
        return lambda value: value if type(value) is int else int(value) if _is_integer(value) else fail(value, "int")
    if hint in (bool, str, TensorRef):
        return lambda value: value if isinstance(value, hint) else fail(value, hint.__name__)
    raise TypeError(f"{opname}: attribute {name} has a type the IR does not support: {hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


OP_TYPES: dict[str, type[Op]] = {}


def register(cls: type[Op]) -> type[Op]:
    OP_TYPES[cls.OPNAME] = cls
    return cls


def op_type(opname: str) -> type[Op]:
    try:
        return OP_TYPES[opname]
    except KeyError:
        raise IRError(f"unknown op {opname!r}") from None


# --------------------------------------------------------------------------- shape helpers


def _pool_out(size: int, k: int, s: int, pad: int, ceil: bool = False, dil: int = 1) -> int:
    span = dil * (k - 1) + 1
    n = (size + pad - span) / s
    out = (math.ceil(n) if ceil else math.floor(n)) + 1
    if ceil and (out - 1) * s >= size + pad - span + 1 and (out - 1) * s >= size:
        out -= 1  # the last window must start inside the (left-padded) input
    if out < 1:
        raise IRError(f"window {k} (stride {s}, pad {pad}) does not fit input size {size}")
    return out


def spatial_out(
    in_shape: Shape,
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    pads: tuple[int, ...],
    dilations: tuple[int, ...] = (1, 1),
    ceil: bool = False,
) -> tuple[int, int]:
    """Output (H, W) of a 2-D window op on a (C, H, W) input; pads are (top, left, bottom, right)."""
    if len(in_shape) != 3:
        raise IRError(f"expects a (C, H, W) input, got {list(in_shape)}")
    h = _pool_out(in_shape[1], kernel[0], strides[0], pads[0] + pads[2], ceil, dilations[0])
    w = _pool_out(in_shape[2], kernel[1], strides[1], pads[1] + pads[3], ceil, dilations[1])
    return h, w


MAX_TIME = 1e7  # ms: the longest delay or time constant that means something (about 3 hours)
MAX_SHIFT = 64  # the largest weight exponent (SpiNNaker's shifts are below 32)


def _check_finite(op: Op, **values: Optional[float]) -> None:
    """Fail naming the attribute when a value (None = absent) is NaN or infinite."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            op.fail(f"attribute {name} must be finite, got {value}")


def _check_window(op: Op, kernel: tuple[int, ...], strides: tuple[int, ...], pads: tuple[int, ...]) -> None:
    if len(kernel) != 2 or len(strides) != 2 or len(pads) != 4:
        op.fail("kernel and strides need 2 values, pads 4 (top, left, bottom, right)")
    if min(kernel) < 1 or min(strides) < 1 or min(pads) < 0:
        op.fail(f"bad window kernel={list(kernel)} strides={list(strides)} pads={list(pads)}")


# --------------------------------------------------------------------------- ann dialect

Activation = Literal["none", "relu"]


@register
@dataclass
class Input(Op):
    """A network input; ``shape`` is per sample (no batch dimension)."""

    OPNAME: ClassVar[str] = "ann.input"
    ARITY: ClassVar[Optional[int]] = 0
    shape: tuple[int, ...]

    def check(self) -> None:
        if not self.shape or min(self.shape) < 1:
            self.fail(f"shape must be positive, got {list(self.shape)}")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        return self.shape


@register
@dataclass
class Dense(Op):
    """y = W x + b with W of shape (out, in); the input is flattened first."""

    OPNAME: ClassVar[str] = "ann.dense"
    weight: TensorRef
    bias: Optional[TensorRef] = None
    activation: Activation = "none"

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        w = tensor_shape(self.weight)
        if len(w) != 2 or w[1] != math.prod(in_shapes[0]):
            self.fail(f"weight {list(w)} does not fit input {list(in_shapes[0])}")
        if self.bias is not None and tensor_shape(self.bias) != (w[0],):
            self.fail(f"bias {list(tensor_shape(self.bias))} does not fit {w[0]} outputs")
        return (w[0],)


@register
@dataclass
class Conv2d(Op):
    """2-D convolution, weight (out, in/groups, kh, kw), pads (top, left, bottom, right); bias (out,)
    or (out, OH, OW), one value per output (what folding a batch-norm into a padded conv gives)."""

    OPNAME: ClassVar[str] = "ann.conv2d"
    weight: TensorRef
    bias: Optional[TensorRef] = None
    strides: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    dilations: tuple[int, ...] = (1, 1)
    groups: int = 1
    activation: Activation = "none"

    def check(self) -> None:
        _check_window(self, (1, 1), self.strides, self.pads)
        if self.groups < 1 or len(self.dilations) != 2 or min(self.dilations) < 1:
            self.fail("groups and dilations must be positive")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        w = tensor_shape(self.weight)
        x = in_shapes[0]
        if len(w) != 4 or len(x) != 3 or w[1] * self.groups != x[0] or w[0] % self.groups:
            self.fail(f"weight {list(w)} (groups {self.groups}) does not fit input {list(x)}")
        out = (w[0], *spatial_out(x, w[2:], self.strides, self.pads, self.dilations))
        if self.bias is not None and tensor_shape(self.bias) not in ((w[0],), out):  # per channel or per output
            self.fail(f"bias {list(tensor_shape(self.bias))} fits neither {w[0]} channels nor the output {list(out)}")
        return out


@register
@dataclass
class AvgPool2d(Op):
    OPNAME: ClassVar[str] = "ann.avgpool2d"
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...] = (0, 0, 0, 0)
    count_include_pad: bool = True
    ceil_mode: bool = False

    def check(self) -> None:
        _check_window(self, self.kernel, self.strides, self.pads)

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        x = in_shapes[0]
        return (x[0], *spatial_out(x, self.kernel, self.strides, self.pads, ceil=self.ceil_mode))


@register
@dataclass
class MaxPool2d(Op):
    OPNAME: ClassVar[str] = "ann.maxpool2d"
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...] = (0, 0, 0, 0)
    ceil_mode: bool = False

    def check(self) -> None:
        _check_window(self, self.kernel, self.strides, self.pads)

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        x = in_shapes[0]
        return (x[0], *spatial_out(x, self.kernel, self.strides, self.pads, ceil=self.ceil_mode))


@register
@dataclass
class GlobalAvgPool(Op):
    """Mean over H and W; keeps (C, 1, 1) as ONNX does."""

    OPNAME: ClassVar[str] = "ann.global_avgpool"

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        if len(in_shapes[0]) != 3:
            self.fail(f"expects a (C, H, W) input, got {list(in_shapes[0])}")
        return (in_shapes[0][0], 1, 1)


@register
@dataclass
class BatchNorm(Op):
    """Per-channel (axis 0) y = scale * (x - mean) / sqrt(var + epsilon) + bias."""

    OPNAME: ClassVar[str] = "ann.batchnorm"
    scale: TensorRef
    bias: TensorRef
    mean: TensorRef
    var: TensorRef
    epsilon: float = 1e-5

    def check(self) -> None:
        _check_finite(self, epsilon=self.epsilon)
        if self.epsilon < 0:
            self.fail(f"epsilon must be non-negative, got {self.epsilon}")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        c = in_shapes[0][0]
        for ref in (self.scale, self.bias, self.mean, self.var):
            if tensor_shape(ref) != (c,):
                self.fail(f"{ref.name} has shape {list(tensor_shape(ref))}, expected [{c}]")
        return in_shapes[0]


@register
@dataclass
class Relu(Op):
    OPNAME: ClassVar[str] = "ann.relu"


@register
@dataclass
class Clip(Op):
    OPNAME: ClassVar[str] = "ann.clip"
    min: float = -math.inf
    max: float = math.inf

    def check(self) -> None:
        if not self.min <= self.max:
            self.fail(f"min {self.min} > max {self.max}")


@register
@dataclass
class Add(Op):
    """Elementwise sum of two or more inputs of the same shape."""

    OPNAME: ClassVar[str] = "ann.add"
    ARITY: ClassVar[Optional[int]] = None

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        if len(in_shapes) < 2 or len(set(in_shapes)) != 1:
            self.fail(f"needs two or more inputs of one shape, got {[list(s) for s in in_shapes]}")
        return in_shapes[0]


@register
@dataclass
class Concat(Op):
    """Concatenation along per-sample ``axis`` (0 = channels)."""

    OPNAME: ClassVar[str] = "ann.concat"
    ARITY: ClassVar[Optional[int]] = None
    axis: int = 0

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        rank = len(in_shapes[0])
        if not 0 <= self.axis < rank:
            self.fail(f"axis {self.axis} out of range for rank {rank}")
        rest = {s[: self.axis] + s[self.axis + 1 :] for s in in_shapes}
        if len(rest) != 1 or any(len(s) != rank for s in in_shapes):
            self.fail(f"inputs differ off the concat axis: {[list(s) for s in in_shapes]}")
        return (*in_shapes[0][: self.axis], sum(s[self.axis] for s in in_shapes), *in_shapes[0][self.axis + 1 :])


@register
@dataclass
class Flatten(Op):
    """Flattens each sample to one dimension (ONNX Flatten with axis 1)."""

    OPNAME: ClassVar[str] = "ann.flatten"

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        return (math.prod(in_shapes[0]),)


@register
@dataclass
class Reshape(Op):
    OPNAME: ClassVar[str] = "ann.reshape"
    shape: tuple[int, ...]

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        if min(self.shape, default=1) < 1 or math.prod(self.shape) != math.prod(in_shapes[0]):
            self.fail(f"cannot reshape {list(in_shapes[0])} to {list(self.shape)}")
        return self.shape


@register
@dataclass
class Pad(Op):
    """Constant padding; ``pads`` = begins of every per-sample axis, then ends."""

    OPNAME: ClassVar[str] = "ann.pad"
    pads: tuple[int, ...]
    value: float = 0.0

    def check(self) -> None:
        _check_finite(self, value=self.value)

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        x = in_shapes[0]
        if len(self.pads) != 2 * len(x) or min(self.pads) < 0:
            self.fail(f"pads {list(self.pads)} do not fit input {list(x)}")
        return tuple(n + self.pads[i] + self.pads[i + len(x)] for i, n in enumerate(x))


@register
@dataclass
class Softmax(Op):
    OPNAME: ClassVar[str] = "ann.softmax"
    axis: int = 0


@register
@dataclass
class Dropout(Op):
    OPNAME: ClassVar[str] = "ann.dropout"
    ratio: float = 0.5

    def check(self) -> None:
        if not 0 <= self.ratio < 1:
            self.fail(f"ratio must lie in [0, 1), got {self.ratio}")


@register
@dataclass
class Identity(Op):
    OPNAME: ClassVar[str] = "ann.identity"


@register
@dataclass
class Scale(Op):
    """Multiplication by a constant factor."""

    OPNAME: ClassVar[str] = "ann.scale"
    factor: float = 1.0

    def check(self) -> None:
        _check_finite(self, factor=self.factor)


MacActivation = Literal["none", "converting_relu"]
MAC_MAX_SHIFT = 7  # an 8-bit result shifted by more than 7 is always 0


@register
@dataclass
class Mac(Op):
    """A layer of BrainScaleS-2's analog multiply-accumulate mode, in hxtorch's mock arithmetic
    (``snnc.ir.semantics.mac``; docs/brainscales2.md states it). Inputs are integers 0..31; with
    ``input_scale`` the layer first quantizes real inputs: ``clip(round(x * input_scale), 0, 31)``.

    ``weight`` holds integers -63..63: (out, in) for ``dense`` (the input is flattened), (out, in,
    kh, kw) for ``conv`` (unrolled: a matrix of in*kh*kw rows, one input vector per output
    position). The result is ``mac(x, W^T, gain, num_sends)`` in -128..127, plus ``bias`` (int8
    integers, hxtorch's ``add``); ``converting_relu`` then gives ``min(max(y, 0) >> shift, 31)``,
    the next layer's input. ``tile_rows`` x ``tile_cols``: the largest partial matrix the layer is
    cut into (set by tile-mac; None: the mock's 128-row chunks, columns uncut).
    """

    OPNAME: ClassVar[str] = "ann.mac"
    weight: TensorRef
    bias: Optional[TensorRef] = None
    kind: Literal["dense", "conv"] = "dense"
    strides: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    gain: float = 0.002
    num_sends: int = 1
    input_scale: Optional[float] = None
    activation: MacActivation = "none"
    shift: int = 0
    tile_rows: Optional[int] = None
    tile_cols: Optional[int] = None

    def check(self) -> None:
        _check_window(self, (1, 1), self.strides, self.pads)
        _check_finite(self, gain=self.gain, input_scale=self.input_scale)
        if not 0 < self.gain <= 1:
            self.fail(f"gain must lie in (0, 1] (hxtorch's mock parameter), got {self.gain}")
        if self.num_sends < 1 or (self.input_scale is not None and self.input_scale <= 0):
            self.fail("num_sends and input_scale must be positive")
        if not 0 <= self.shift <= MAC_MAX_SHIFT or (self.shift and self.activation != "converting_relu"):
            self.fail(f"shift ({self.shift}) lies in 0..{MAC_MAX_SHIFT} and belongs to a converting_relu")
        if min(self.tile_rows or 1, self.tile_cols or 1) < 1:
            self.fail("tile_rows and tile_cols must be positive")
        if self.kind == "dense" and (self.strides != (1, 1) or any(self.pads)):
            self.fail("a dense mac takes no strides or pads")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        w, x = tensor_shape(self.weight), in_shapes[0]
        if self.bias is not None and tensor_shape(self.bias) != (w[0],):
            self.fail(f"bias {list(tensor_shape(self.bias))} does not fit {w[0]} outputs")
        if self.kind == "dense":
            if len(w) != 2 or w[1] != math.prod(x):
                self.fail(f"weight {list(w)} does not fit input {list(x)}")
            return (w[0],)
        if len(w) != 4 or len(x) != 3 or w[1] != x[0]:
            self.fail(f"weight {list(w)} does not fit input {list(x)}")
        return (w[0], *spatial_out(x, w[2:], self.strides, self.pads))

    def matrix_shape(self, tensor_shape: TensorShapes) -> tuple[int, int]:
        """(rows, columns) of the layer's matrix on the chip: inputs (in*kh*kw for conv) x outputs."""
        w = tensor_shape(self.weight)
        return math.prod(w[1:]), w[0]


# --------------------------------------------------------------------------- snn dialect

Encoding = Literal["current", "poisson", "regular", "events"]
Connectivity = Literal["dense", "conv", "pool", "one_to_one"]
Receptor = Literal["excitatory", "inhibitory", "mixed"]


@register
@dataclass
class Source(Op):
    """Input layer. A sample value x becomes v = x * gain; ``current`` drives the next layer with
    v per ms, ``poisson`` / ``regular`` emit spikes at v * max_rate Hz. ``events``: the samples
    come over time, (N, T, *shape), and each step's values are spike counts, emitted as they are
    (event frames; gain and max_rate unused). Any encoding takes inputs over time, a value per step."""

    OPNAME: ClassVar[str] = "snn.source"
    ARITY: ClassVar[Optional[int]] = 0
    shape: tuple[int, ...]
    encoding: Encoding = "current"
    max_rate: float = 1000.0
    gain: float = 1.0
    per_core: Optional[tuple[int, ...]] = None  # core slices, see Population

    def check(self) -> None:
        if not self.shape or min(self.shape) < 1:
            self.fail(f"shape must be positive, got {list(self.shape)}")
        _check_finite(self, max_rate=self.max_rate, gain=self.gain)
        if self.max_rate <= 0 or self.gain <= 0:
            self.fail("max_rate and gain must be positive")
        _check_per_core(self, self.per_core, self.shape)

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        return self.shape

    @property
    def rate_per_ms(self) -> float:
        """Drive (current) or spike rate (per ms) that a value of 1 after ``gain`` produces (events:
        one spike per step, per ms at dt = 1 ms; lower-to-snn takes events only at dt = 1 ms)."""
        return 1.0 if self.encoding in ("current", "events") else self.max_rate / 1000.0


@register
@dataclass
class Projection(Op):
    """Synapses from one population or source into the population that consumes this op.

    Output shape is the shape of the post population. ``dense``: weight (post, pre);
    ``conv``: weight (out, in/groups, kh, kw); ``pool``: every pre neuron in a window adds
    ``scale`` per spike; ``one_to_one``: pre neuron i adds ``scale`` to post neuron i + offset,
    where ``post_shape`` gives the post population's shape. ``delay`` is in ms.
    """

    OPNAME: ClassVar[str] = "snn.projection"
    connectivity: Connectivity
    weight: Optional[TensorRef] = None
    scale: float = 1.0
    kernel: tuple[int, ...] = (1, 1)
    strides: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    dilations: tuple[int, ...] = (1, 1)
    groups: int = 1
    offset: int = 0
    post_shape: Optional[tuple[int, ...]] = None
    receptor: Receptor = "mixed"
    delay: float = 1.0

    _SHOWN: ClassVar[dict[str, tuple[str, ...]]] = {
        "dense": ("connectivity", "weight"),
        "conv": ("connectivity", "weight", "strides", "pads", "dilations", "groups"),
        "pool": ("connectivity", "scale", "kernel", "strides", "pads"),
        "one_to_one": ("connectivity", "scale", "offset", "post_shape"),
    }

    def attrs(self) -> dict[str, Any]:
        """Only the attributes that mean something for this connectivity (the rest are defaults)."""
        shown = self._SHOWN[self.connectivity] + ("receptor", "delay")
        return {k: v for k, v in super().attrs().items() if k in shown}

    def check(self) -> None:
        _check_window(self, self.kernel, self.strides, self.pads)
        needs_weight = self.connectivity in ("dense", "conv")
        if needs_weight != (self.weight is not None):
            self.fail(f"{self.connectivity} connectivity {'needs' if needs_weight else 'takes no'} weight")
        _check_finite(self, scale=self.scale, delay=self.delay)
        if not 0 <= self.delay <= MAX_TIME or self.offset < 0 or self.groups < 1:
            self.fail(f"delay (at most {MAX_TIME:g} ms), offset and groups must be non-negative")
        if (self.connectivity == "one_to_one") != (self.post_shape is not None):
            self.fail("post_shape is given exactly for one_to_one connectivity")
        unused = {f.name for f in fields(self)} - set(self._SHOWN[self.connectivity]) - {"receptor", "delay"}
        defaults = Projection.__dataclass_fields__
        if any(getattr(self, k) != defaults[k].default for k in unused if k != "post_shape"):
            self.fail(f"{self.connectivity} connectivity takes none of {sorted(unused)}")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        x = in_shapes[0]
        if self.connectivity == "dense":
            w = tensor_shape(self.weight)
            if len(w) != 2 or w[1] != math.prod(x):
                self.fail(f"weight {list(w)} does not fit pre shape {list(x)}")
            return (w[0],)
        if self.connectivity == "conv":
            w = tensor_shape(self.weight)
            if len(w) != 4 or len(x) != 3 or w[1] * self.groups != x[0]:
                self.fail(f"weight {list(w)} does not fit pre shape {list(x)}")
            return (w[0], *spatial_out(x, w[2:], self.strides, self.pads, self.dilations))
        if self.connectivity == "pool":
            return (x[0], *spatial_out(x, self.kernel, self.strides, self.pads))
        assert self.post_shape is not None
        if self.offset + math.prod(x) > math.prod(self.post_shape):
            self.fail(f"{math.prod(x)} neurons at offset {self.offset} overflow {list(self.post_shape)}")
        return self.post_shape


@register
@dataclass
class Population(Op):
    """Integrate-and-fire neurons; inputs are the projections into them.

    Per time step v += sum of arriving spikes * weights + (bias or i_offset) * dt; a neuron
    spikes when v >= v_threshold and then resets by subtracting the threshold or to v_reset.
    ``bias`` is in ANN activation units (before ``bias-to-current``), ``i_offset`` in v per ms.
    ``tau_m`` inf means no leak. ``v_min`` (optional) is a floor: after each step's input v is
    raised to it (sPyNNaker's IF_trunc_delta, NEST's V_min). Every sample starts from
    v = ``v_init`` (0, or part of the way to the threshold). Times are in ms.

    Mapping (set by split-populations and quantize): ``per_core`` is the most neurons one core
    holds, either one number (consecutive slices of the C-order neuron list) or one number per
    dimension (tiles; ``[1, 7, 28]`` puts one channel's 7 rows of 28 on each core).
    ``weight_shift`` gives, per receptor (excitatory, inhibitory), the exponent e of the
    fixed-point weights: they are multiples of 2^(e + 1 - bits) (SpiNNaker's ring-buffer shift).
    ``core_scale`` gives, per core of the plan, how much the chip's weights (and, times
    loihi_weights.S_SCALE, biases) relative to its rounded threshold exceed the values nengo-loihi
    is given: the weights hold the chip's values, the loihi emitter divides by the factor.
    """

    OPNAME: ClassVar[str] = "snn.population"
    ARITY: ClassVar[Optional[int]] = None
    model: Literal["if"] = "if"
    v_threshold: float = 1.0
    v_reset: float = 0.0
    reset: Literal["subtract", "zero"] = "subtract"
    tau_m: float = math.inf
    tau_refrac: float = 0.0
    v_min: Optional[float] = None
    v_init: float = 0.0
    bias: Optional[TensorRef] = None
    i_offset: Optional[TensorRef] = None
    per_core: Optional[tuple[int, ...]] = None
    weight_shift: Optional[tuple[int, ...]] = None
    core_scale: Optional[tuple[float, ...]] = None

    def check(self) -> None:
        if self.core_scale is not None and not all(math.isfinite(c) and c > 0 for c in self.core_scale):
            self.fail(f"core_scale factors must be positive and finite, got {list(self.core_scale)}")
        _check_finite(
            self,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            tau_refrac=self.tau_refrac,
            v_min=self.v_min,
            v_init=self.v_init,
        )
        if not self.v_threshold > 0 or not self.tau_m > 0 or not 0 <= self.tau_refrac <= MAX_TIME:
            self.fail(f"v_threshold and tau_m must be positive, tau_refrac in [0, {MAX_TIME:g}] ms")
        if self.v_min is not None and self.v_min > self.v_reset:
            self.fail(f"v_min {self.v_min} lies above v_reset {self.v_reset}")
        if self.weight_shift is not None and len(self.weight_shift) != 2:
            self.fail(f"weight_shift has one exponent per receptor (excitatory, inhibitory), got {self.weight_shift}")
        if self.weight_shift is not None and max(abs(e) for e in self.weight_shift) > MAX_SHIFT:
            self.fail(f"weight_shift exponents lie in [-{MAX_SHIFT}, {MAX_SHIFT}], got {list(self.weight_shift)}")

    def infer(self, in_shapes: list[Shape], tensor_shape: TensorShapes) -> Shape:
        sizes = {math.prod(s) for s in in_shapes}
        if len(set(in_shapes)) != 1:
            self.fail(f"projections deliver different shapes {[list(s) for s in in_shapes]}")
        (n,) = sizes
        for ref in (self.bias, self.i_offset):
            if ref is not None and tensor_shape(ref) != (n,):
                self.fail(f"{ref.name} has shape {list(tensor_shape(ref))}, expected [{n}]")
        _check_per_core(self, self.per_core, in_shapes[0])
        if self.core_scale is not None and len(self.core_scale) != cores_of(self, in_shapes[0]):
            self.fail(f"core_scale has {len(self.core_scale)} factors for {cores_of(self, in_shapes[0])} cores")
        return in_shapes[0]


def _check_per_core(op: Op, per_core: Optional[tuple[int, ...]], shape: Shape) -> None:
    if per_core is None:
        return
    if len(per_core) not in (1, len(shape)) or min(per_core) < 1:
        op.fail(f"per_core {list(per_core)} must be one positive number or one per dimension of {list(shape)}")
    if len(per_core) == len(shape) > 1 and any(d % t for d, t in zip(shape, per_core, strict=False)):
        op.fail(f"per_core tiles {list(per_core)} must divide the shape {list(shape)}")


def cores_of(op: Op, shape: Shape) -> int:
    """Cores a source or population takes under its ``per_core`` plan (1 without a plan)."""
    per_core = getattr(op, "per_core", None)
    if per_core is None:
        return 1
    if len(per_core) == 1:
        return -(-math.prod(shape) // per_core[0])
    return math.prod(-(-d // t) for d, t in zip(shape, per_core, strict=False))


@register
@dataclass
class Readout(Op):
    """Network output: spike counts (or final membrane potentials) of a population."""

    OPNAME: ClassVar[str] = "snn.readout"
    mode: Literal["spike_count", "membrane"] = "spike_count"
