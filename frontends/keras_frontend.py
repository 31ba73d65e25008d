"""Keras frontend without TensorFlow: ``.keras`` (zip of config.json + model.weights.h5), legacy
``.h5`` (model_config + model_weights), or an in-memory ``keras.Model``.

Keras models are channels-last; the IR is channels-first. Inputs of rank 3 become (C, H, W)
and the graph records ``input_layout = "NHWC"``, so data given in the model's own layout is
transposed when it is read. A Flatten of a feature map yields H, W, C order in Keras, so the
Dense layer reading it gets its kernel rows permuted to the IR's C, H, W order.

Model files are untrusted: the HDF5 part is checked by :mod:`.hdf5_guard` before anything is
read (no other file, no plugin filter, sizes within the budget), archive members are checked
for their expanded size, and each layer's weights are read only after their shapes and types
match what its config declares. A malformed config ends in one FrontendError line naming the
file and the layer or key.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from snnc.ir import Graph, limits
from snnc.ir import ops as ir
from snnc.ir.errors import SnncError

from .builder import (
    FrontendError,
    FrontendNode,
    GraphBuilder,
    HandlerRegistry,
    NoSpikingForm,
    check_zip,
    no_spiking_form,
    one_line,
)
from .hdf5_guard import READ_ERRORS, open_hdf5, zip_member

KERAS = HandlerRegistry("Keras")
ACTIVATIONS = {"linear": None, "relu": ir.Relu, "softmax": ir.Softmax, "relu6": ir.Clip}


class KerasBuilder(GraphBuilder):
    """A graph builder that remembers which flattened values are in Keras' H, W, C order, checks
    each layer's size against the budget and turns a malformed layer into one line naming it."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.hwc_flattened: dict[str, tuple[int, int, int]] = {}  # op id -> (C, H, W) before flatten

    def add(self, node: FrontendNode, op_type: type, inputs: list[str], tensors=None, output=None, **attrs: Any) -> str:
        op_id = super().add(node, op_type, inputs, tensors, output, **attrs)
        limits.check("neurons", math.prod(self.shape(op_id)), f"{self.source}: layer {node.name!r}")
        return op_id

    # also what reading a lazily loaded weight may raise (h5py, zip and zlib errors)
    MALFORMED = (IndexError, AttributeError, ZeroDivisionError, OverflowError, RecursionError, *READ_ERRORS)


MAX_CONFIG_BYTES = 64 * 2**20  # config.json / model_config text read at most


def load_keras(model: Union[str, Path, Any]) -> Graph:
    """Read a Keras model file or in-memory model into an ann-dialect graph."""
    if isinstance(model, (str, Path)):
        with _open_file(Path(model)) as (config, weights):
            return _build(config, weights, str(model))
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers}
    return _build(config, weights, f"<keras model {model.name!r}>")


def _build(config: Any, weights: dict[str, list[Any]], source: str) -> Graph:
    """The graph of a Keras config; ``weights`` holds each layer's arrays (h5py datasets are read
    only when a layer's handler has checked their shapes)."""
    b = KerasBuilder(source)
    layers, outputs = _layers(config, b)
    nodes: list[FrontendNode] = []
    inputs: list[NoSpikingForm] = []  # input layers without a spiking form
    for layer in layers:
        kind, name = layer["class_name"], layer["config"]["name"]
        node = FrontendNode(name, kind, layer["inputs"], [name], {**layer["config"], "weights": weights.get(name, [])})
        if kind != "InputLayer":
            nodes.append(node)
            continue
        try:
            b.guarded(node, _input)
        except NoSpikingForm as exc:
            inputs.append(exc)
    b.run(KERAS, nodes, inputs)
    b.graph.outputs = [b.value(o, FrontendNode(o, "output", [], [])) for o in outputs]
    b.graph.remove_dead()
    return b.graph


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def _open_file(path: Path) -> Iterator[tuple[Any, dict[str, list[Any]]]]:
    """(config, weights) of a ``.keras`` or ``.h5`` file, with its HDF5 part checked and still open."""
    if not path.exists():
        raise FrontendError(f"{path}: no such file")
    source = str(path)
    if path.suffix != ".keras":
        with open_hdf5(str(path), source) as h5:
            with _unreadable(source):
                config = _json(h5.attrs.get("model_config"), f"{source}: model_config")
                weights = _legacy_weights(h5, source)
            yield config, weights
        return
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise FrontendError(f"{source}: not a readable Keras archive ({one_line(exc)})") from None
    with z:
        try:
            check_zip(z, source)
            zip_member(z, "config.json", source, MAX_CONFIG_BYTES)
            zip_member(z, "model.weights.h5", source)
            config = _json(z.read("config.json"), f"{source}: config.json")
            f = z.open("model.weights.h5")
        except SnncError:
            raise
        except (OSError, zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as exc:
            raise FrontendError(f"{source}: not a readable Keras archive ({one_line(exc)})") from None
        with f, open_hdf5(f, f"{source}: model.weights.h5") as h5:
            with _unreadable(source):
                weights = _keras_v3_weights(config, h5, source)
            yield config, weights


@contextlib.contextmanager
def _unreadable(source: str) -> Iterator[None]:
    """Errors of h5py on a damaged file (beyond what :func:`open_hdf5` checked) as one line."""
    try:
        yield
    except SnncError:
        raise
    except READ_ERRORS as exc:
        raise FrontendError(f"{source}: not a readable Keras model ({one_line(exc)})") from None


def _json(raw: Any, what: str) -> dict:
    """A JSON object from text or UTF-8 bytes."""
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw[()]
    if not isinstance(raw, (str, bytes)):
        raise FrontendError(f"{what}: expected JSON text, got {type(raw).__name__}")
    if len(raw) > MAX_CONFIG_BYTES:
        raise FrontendError(f"{what}: {len(raw):,} bytes of JSON (at most {MAX_CONFIG_BYTES:,} are read)")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise FrontendError(f"{what}: not UTF-8 text (byte {exc.start})") from None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrontendError(f"{what}: not valid JSON ({one_line(exc)})") from None
    if not isinstance(config, dict):
        raise FrontendError(f"{what}: expected a JSON object, got {type(config).__name__}")
    return config


def _names(value: Any, what: str) -> list[str]:
    """An HDF5 attribute holding a list of names (str or bytes)."""
    if value is None:
        return []
    items = np.asarray(value).reshape(-1).tolist() if not isinstance(value, (str, bytes)) else None
    if items is None or not all(isinstance(n, (str, bytes)) for n in items):
        raise FrontendError(f"{what}: expected a list of names")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in items]
    except UnicodeDecodeError:
        raise FrontendError(f"{what}: a name is not UTF-8") from None


def _legacy_weights(h5: Any, source: str) -> dict[str, list[Any]]:
    """Keras 2 ``.h5``: model_weights/<layer> with a ``weight_names`` attribute; datasets stay lazy."""
    import h5py

    group = h5["model_weights"] if "model_weights" in h5 else h5
    weights = {}
    for name in _names(group.attrs.get("layer_names"), f"{source}: layer_names"):
        layer = group.get(name)
        if not isinstance(layer, h5py.Group):
            raise FrontendError(f"{source}: layer_names lists {name!r}, which is not a group of weights")
        arrays = []
        for n in _names(layer.attrs.get("weight_names"), f"{source}: {name}/weight_names"):
            arrays.append(layer.get(n))
            if not isinstance(arrays[-1], h5py.Dataset):
                raise FrontendError(f"{source}: weight {name}/{n} is missing or not a dataset")
        weights[name] = arrays
    return weights


def _snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_v3_weights(config: dict, h5: Any, source: str) -> dict[str, list[Any]]:
    """Keras 3 stores a layer's variables under layers/<snake class name>[_N], in layer order."""
    import h5py

    layers = _layer_list(config, source)
    if config["class_name"] == "Sequential":
        layers = [la for la in layers if la["class_name"] != "InputLayer"]
    used: dict[str, int] = {}
    weights = {}
    for layer in layers:
        base = _snake(layer["class_name"])
        key = base if base not in used else f"{base}_{used[base]}"
        used[base] = used.get(base, 0) + 1
        group = h5.get(f"layers/{key}/vars")
        if not isinstance(group, h5py.Group):
            continue
        arrays = [group.get(str(i)) for i in range(len(group))]
        if not all(isinstance(a, h5py.Dataset) for a in arrays):
            raise FrontendError(f"{source}: layers/{key}/vars: variables must be datasets named 0, 1, ...")
        weights[layer["config"]["name"]] = arrays
    return weights


def _layer_list(config: Any, source: str) -> list[dict]:
    """The ``layers`` of a model config, each checked to be {"class_name": str, "config": {"name": str}}."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise FrontendError(f"{source}: the model config needs a string class_name")
    cfg = config.get("config")
    layers = cfg.get("layers") if isinstance(cfg, dict) else cfg
    if not isinstance(layers, (list, tuple)) or not layers:
        raise FrontendError(f"{source}: the model config needs a non-empty list of layers")
    names = set()
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("class_name"), str):
            raise FrontendError(f"{source}: layer {i} needs a string class_name")
        if not isinstance(layer.get("config"), dict) or not isinstance(layer["config"].get("name"), str):
            raise FrontendError(f"{source}: layer {i} ({layer['class_name']}) needs a config with a string name")
        if layer["config"]["name"] in names:
            raise FrontendError(f"{source}: two layers are named {layer['config']['name']!r}")
        names.add(layer["config"]["name"])
    return layers


def _layers(config: dict, b: GraphBuilder) -> tuple[list[dict], list[str]]:
    """Layers in order, each with the names of the layers it reads, and the output layer names."""
    layers = _layer_list(config, b.source)
    kind = config["class_name"]
    if kind == "Sequential":
        out, previous = [], None
        if layers[0]["class_name"] != "InputLayer":
            shape = layers[0]["config"].get("batch_input_shape") or layers[0]["config"].get("batch_shape")
            layers = [{"class_name": "InputLayer", "config": {"name": "input", "batch_shape": shape}}, *layers]
        for layer in layers:
            out.append({**layer, "inputs": [previous] if previous else []})
            previous = layer["config"]["name"]
        return out, [previous]
    if kind not in ("Functional", "Model"):
        raise FrontendError(f"{b.source}: model class {kind!r} is not supported (Sequential or Functional)")
    out = [{**layer, "inputs": _inbound(layer, b.source)} for layer in layers]
    outputs = config["config"].get("output_layers") if isinstance(config["config"], dict) else None
    if isinstance(outputs, (list, tuple)) and outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    if (
        not isinstance(outputs, (list, tuple))
        or not outputs
        or not all(isinstance(o, (list, tuple)) and o and isinstance(o[0], str) for o in outputs)
    ):
        raise FrontendError(f"{b.source}: output_layers must be a non-empty list of [layer name, node, tensor]")
    return out, [o[0] for o in outputs]


def _inbound(layer: dict, source: str) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 and Keras 2 config formats)."""
    names: list[str] = []
    nodes = layer.get("inbound_nodes", [])
    if not isinstance(nodes, (list, tuple)):
        raise FrontendError(f"{source}: layer {layer['config']['name']!r}: inbound_nodes must be a list")
    stack = [n.get("args", n) if isinstance(n, dict) else n for n in reversed(nodes)]
    while stack:  # depth-first, left to right, without recursion (configs may nest deeply)
        item = stack.pop()
        history = item.get("config") if isinstance(item, dict) else None
        if isinstance(history, dict) and "keras_history" in history:
            entry = history["keras_history"]
            if not isinstance(entry, (list, tuple)) or not entry or not isinstance(entry[0], str):
                raise FrontendError(f"{source}: layer {layer['config']['name']!r}: malformed keras_history")
            names.append(entry[0])
        elif isinstance(item, (list, tuple)) and len(item) >= 3 and isinstance(item[0], str) and type(item[1]) is int:
            names.append(item[0])  # Keras 2: [layer, node, tensor, kwargs]
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return names


def _weights(b: GraphBuilder, node: FrontendNode, count: int, shapes: list[Any]) -> list[np.ndarray]:
    """The layer's first ``count`` arrays (at least ``count``; the rest optional up to ``len(shapes)``),
    all checked against their expected shapes (None: any size in that place) before any is read."""
    stored = node.attrs["weights"]
    if not isinstance(stored, list) or not count <= len(stored) <= len(shapes):
        n = len(stored) if isinstance(stored, list) else 0
        raise b.error(node, f"expects {count}..{len(shapes)} weight arrays, found {n}")
    for i, (w, expected) in enumerate(zip(stored, shapes, strict=False)):
        _check_weight(b, node, i, w, expected)
    arrays = [np.asarray(w, dtype=np.float32) for w in stored]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise b.error(node, "weights hold NaN or infinite values")
    return arrays


def _check_weight(b: GraphBuilder, node: FrontendNode, i: int, w: Any, expected: tuple) -> None:
    """Weight ``i`` (an array or a not yet read h5py dataset) holds numbers of the expected shape
    within the byte budget."""
    dtype, shape = getattr(w, "dtype", None), tuple(getattr(w, "shape", None) or ())
    if dtype is None or dtype.kind not in "biuf":
        raise b.error(node, f"weight {i} holds {dtype} data, not numbers")
    if len(shape) != len(expected) or any(e is not None and d != e for d, e in zip(shape, expected, strict=True)):
        want = [e if e is not None else "?" for e in expected]
        raise b.error(node, f"weight {i} has shape {list(shape)}, expected {want}")
    limits.check_array(shape, max(dtype.itemsize, 4), f"{b.source}: layer {node.name!r} weight {i}")


def _ints(b: GraphBuilder, node: FrontendNode, key: str, n: int, default: Any = None) -> tuple[int, ...]:
    """Attribute ``key`` as ``n`` positive integers (one integer is repeated)."""
    value = node.attrs.get(key, default)
    value = [value] * n if isinstance(value, int) else value
    if (
        not isinstance(value, (list, tuple))
        or len(value) != n
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise b.error(node, f"{key} must be {n} positive integers, got {value!r}")
    return tuple(value)


def _number(b: GraphBuilder, node: FrontendNode, key: str, default: float) -> float:
    """Attribute ``key`` as a finite number."""
    value = node.attrs.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise b.error(node, f"{key} must be a finite number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- handlers


def _input(b: GraphBuilder, node: FrontendNode) -> None:
    shape = node.attrs.get("batch_shape") or node.attrs.get("batch_input_shape")
    if not isinstance(shape, (list, tuple)) or len(shape) < 2:
        raise b.error(node, f"batch_shape must be a list [batch, ...], got {shape!r}")
    dims = list(shape[1:])
    if any(d is None for d in dims):
        raise b.error(node, f"input shape {dims} must be fixed")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise b.error(node, f"input shape {dims} must be positive integers")
    limits.check("neurons", math.prod(dims), f"{b.source}: layer {node.name!r}")
    if len(dims) == 3:
        b.graph.attrs["input_layout"] = "NHWC"
        dims = [dims[2], dims[0], dims[1]]
    elif len(dims) == 2:
        raise b.refuse(node, "a sequence input (time steps, features): snnc feeds one vector or image per sample")
    elif len(dims) != 1:
        raise b.error(node, f"inputs of rank {len(dims)} are not supported (use (n,) or (H, W, C))")
    b.add(node, ir.Input, [], shape=dims)


def _x(b: GraphBuilder, node: FrontendNode) -> str:
    if len(node.inputs) != 1:
        raise b.error(node, f"expects one input, got {len(node.inputs)}")
    return b.value(node.inputs[0], node)


def _channels_last(b: GraphBuilder, node: FrontendNode) -> None:
    if node.attrs.get("data_format", "channels_last") != "channels_last":
        raise b.error(node, "only channels_last layouts are supported")


@KERAS.screen
def _screen(b: GraphBuilder, node: FrontendNode) -> Optional[NoSpikingForm]:
    """A layer whose activation, or whose ReLU's slope or threshold, has no spiking form."""
    if node.kind == "ReLU":
        slope, threshold = _number(b, node, "negative_slope", 0.0), _number(b, node, "threshold", 0.0)
        if slope:
            return b.refuse(node, no_spiking_form("leakyrelu"), f"ReLU(negative_slope={slope:g})")
        if threshold:
            return b.refuse(node, no_spiking_form("threshold"), f"ReLU(threshold={threshold:g})")
    if "activation" not in node.attrs:
        return None
    name = _activation_name(node)
    if name in ACTIVATIONS:
        return None
    kind = f"{node.kind}({name})" if isinstance(name, str) else node.kind
    return b.refuse(node, no_spiking_form(name if isinstance(name, str) else "", b.inside(node)), kind)


def _activation_name(node: FrontendNode) -> Any:
    name = node.attrs.get("activation", "linear")
    return name if isinstance(name, str) else name.get("config", {}).get("name", name.get("class_name"))


def _activate(b: GraphBuilder, node: FrontendNode, op_id: str) -> None:
    """Apply the layer's ``activation`` after ``op_id`` and make it the layer's output."""
    refused = _screen(b, node)
    if refused is not None:
        raise refused
    name = _activation_name(node)
    if ACTIVATIONS[name] is None:
        return
    act = FrontendNode(f"{node.name}_{name}", name, [], node.outputs)
    attrs = {"min": 0.0, "max": 6.0} if name == "relu6" else {"axis": 0} if name == "softmax" else {}
    if name == "softmax" and len(b.shape(op_id)) != 1:
        raise b.error(node, "softmax of a feature map is not supported")
    act_id = b.add(act, ACTIVATIONS[name], [op_id], **attrs)
    b.origin[act_id] = FrontendNode(node.name, f"{node.kind}({name})", node.inputs, node.outputs)  # for messages


def _same_pads(b: GraphBuilder, node: FrontendNode, x: str, kernel, strides, dilation=(1, 1)) -> list[int]:
    if node.attrs.get("padding", "valid") == "valid":
        return [0, 0, 0, 0]
    if node.attrs["padding"] != "same":
        raise b.error(node, f"padding {node.attrs['padding']!r} is not supported")
    pads = [0, 0, 0, 0]
    for i in range(2):
        size = b.shape(x)[1 + i]
        out = math.ceil(size / strides[i])
        total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilation[i] + 1 - size, 0)
        pads[i], pads[i + 2] = total // 2, total - total // 2
    return pads


@KERAS.handler("Dense")
def dense(b: KerasBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    (units,) = _ints(b, node, "units", 1)
    limits.check("neurons", units, f"{b.source}: layer {node.name!r}")
    kernel, *rest = _weights(b, node, 1, [(math.prod(b.shape(x)), units), (units,)])
    w = kernel.T  # Keras (in, out) -> IR (out, in)
    if x in b.hwc_flattened:  # rows in H, W, C order -> C, H, W
        c, h, wd = b.hwc_flattened[x]
        w = w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
    op_id = b.add(node, ir.Dense, [x], tensors={"weight": w, "bias": rest[0] if rest else None})
    _activate(b, node, op_id)


@KERAS.handler("Conv2D", "DepthwiseConv2D")
def conv(b: GraphBuilder, node: FrontendNode) -> None:
    _channels_last(b, node)
    x = _x(b, node)
    if len(b.shape(x)) != 3:
        raise b.error(node, f"expects an (H, W, C) input, got {list(b.shape(x))}")
    kh, kw = _ints(b, node, "kernel_size", 2)
    c_in = b.shape(x)[0]
    if node.kind == "DepthwiseConv2D":
        (mult,) = _ints(b, node, "depth_multiplier", 1, 1)
        shapes = [(kh, kw, c_in, mult), (c_in * mult,)]
    else:
        (filters,) = _ints(b, node, "filters", 1)
        (groups,) = _ints(b, node, "groups", 1, 1)
        if c_in % groups or filters % groups:
            raise b.error(node, f"groups {groups} must divide {c_in} input and {filters} output channels")
        shapes = [(kh, kw, c_in // groups, filters), (filters,)]
    kernel, *rest = _weights(b, node, 1, shapes)
    strides, dilation = _ints(b, node, "strides", 2, 1), _ints(b, node, "dilation_rate", 2, 1)
    if node.kind == "DepthwiseConv2D":  # (kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw)
        kh, kw, c_in, mult = kernel.shape
        w, groups = kernel.transpose(2, 3, 0, 1).reshape(c_in * mult, 1, kh, kw), c_in
    else:  # (kh, kw, in / groups, out) -> (out, in / groups, kh, kw)
        w = kernel.transpose(3, 2, 0, 1)
    pads = _same_pads(b, node, x, w.shape[2:], strides, dilation)
    op_id = b.add(
        node,
        ir.Conv2d,
        [x],
        tensors={"weight": w, "bias": rest[0] if rest else None},
        strides=strides,
        pads=pads,
        dilations=dilation,
        groups=groups,
    )
    _activate(b, node, op_id)


@KERAS.handler("AveragePooling2D", "MaxPooling2D")
def pool(b: GraphBuilder, node: FrontendNode) -> None:
    _channels_last(b, node)
    x = _x(b, node)
    kernel = _ints(b, node, "pool_size", 2)
    strides = _ints(b, node, "strides", 2, kernel) if node.attrs.get("strides") is not None else kernel
    pads = _same_pads(b, node, x, kernel, strides)
    if node.kind == "MaxPooling2D":
        b.add(node, ir.MaxPool2d, [x], kernel=kernel, strides=strides, pads=pads)
    else:  # Keras averages over the valid part of a "same" window
        b.add(node, ir.AvgPool2d, [x], kernel=kernel, strides=strides, pads=pads, count_include_pad=False)


@KERAS.handler("GlobalAveragePooling2D")
def global_pool(b: GraphBuilder, node: FrontendNode) -> None:
    _channels_last(b, node)
    pooled = b.add(node, ir.GlobalAvgPool, [_x(b, node)])
    if not node.attrs.get("keepdims", False):
        b.add(FrontendNode(f"{node.name}_flatten", "Flatten", [], node.outputs), ir.Flatten, [pooled])


@KERAS.handler("BatchNormalization")
def batchnorm(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    axis = node.attrs.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    if axis not in (-1, len(b.shape(x))):
        raise b.error(node, f"batch normalization over axis {axis}: only the channel axis is supported")
    c = b.shape(x)[0]
    has_scale, has_center = bool(node.attrs.get("scale", True)), bool(node.attrs.get("center", True))
    n = 2 + has_scale + has_center
    weights = _weights(b, node, n, [(c,)] * n)
    scale = weights.pop(0) if has_scale else np.ones(c, np.float32)
    shift = weights.pop(0) if has_center else np.zeros(c, np.float32)
    mean, var = weights
    if np.any(var < 0):
        raise b.error(node, "moving_variance holds negative values")
    b.add(
        node,
        ir.BatchNorm,
        [x],
        tensors={"scale": scale, "bias": shift, "mean": mean, "var": var},
        epsilon=_number(b, node, "epsilon", 1e-3),
    )


@KERAS.handler("Activation")
def activation(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    name = node.attrs["activation"]
    if ACTIVATIONS.get(name, ir.Relu) is None:
        b.alias(node.outputs[0], x)
        return
    fake = FrontendNode(node.name, node.kind, node.inputs, node.outputs, {"activation": name})
    _activate(b, fake, x)


@KERAS.handler("ReLU")
def relu(b: GraphBuilder, node: FrontendNode) -> None:
    a = node.attrs
    refused = _screen(b, node)
    if refused is not None:
        raise refused
    if a.get("max_value") is None:
        b.add(node, ir.Relu, [_x(b, node)])
    else:
        b.add(node, ir.Clip, [_x(b, node)], min=0.0, max=_number(b, node, "max_value", 0.0))


@KERAS.handler("Softmax")
def softmax(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    if node.attrs.get("axis", -1) not in (-1, 1) or len(b.shape(x)) != 1:
        raise b.error(node, "only a softmax over the features of a vector is supported")
    b.add(node, ir.Softmax, [x], axis=0)


@KERAS.handler("Flatten")
def flatten(b: KerasBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    op_id = b.add(node, ir.Flatten, [x])
    if len(b.shape(x)) == 3 and math.prod(b.shape(x)[1:]) > 1:
        b.hwc_flattened[op_id] = b.shape(x)


@KERAS.handler("Reshape")
def reshape(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    target = list(node.attrs["target_shape"])
    if len(target) != 1 or (len(b.shape(x)) == 3 and math.prod(b.shape(x)[1:]) > 1):
        raise b.error(node, f"reshape of {list(b.shape(x))} to {target}: only 1-D vectors can be reshaped")
    b.add(node, ir.Reshape, [x], shape=[math.prod(b.shape(x))] if target[0] == -1 else target)


@KERAS.handler("Dropout", "InputLayer")
def passthrough(b: GraphBuilder, node: FrontendNode) -> None:
    b.alias(node.outputs[0], _x(b, node))


@KERAS.handler("Add")
def add(b: GraphBuilder, node: FrontendNode) -> None:
    b.add(node, ir.Add, [b.value(i, node) for i in node.inputs])


@KERAS.handler("Concatenate")
def concatenate(b: GraphBuilder, node: FrontendNode) -> None:
    xs = [b.value(i, node) for i in node.inputs]
    rank = len(b.shape(xs[0]))
    axis = node.attrs.get("axis", -1)
    axis = axis + rank + 1 if axis < 0 else axis
    if axis != rank:  # the last Keras axis: channels (rank 3) or features (rank 1)
        raise b.error(node, f"concatenation along axis {node.attrs.get('axis')}: only the channel axis is supported")
    b.add(node, ir.Concat, xs, axis=0)


@KERAS.handler("ZeroPadding2D")
def zero_padding(b: GraphBuilder, node: FrontendNode) -> None:
    _channels_last(b, node)
    p = node.attrs["padding"]
    (top, bottom), (left, right) = (
        ((p, p), (p, p)) if isinstance(p, int) else [(q, q) if isinstance(q, int) else tuple(q) for q in p]
    )
    b.add(node, ir.Pad, [_x(b, node)], pads=[0, top, left, 0, bottom, right], value=0.0)
