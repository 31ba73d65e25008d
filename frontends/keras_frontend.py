"""Keras frontend without TensorFlow: ``.keras`` (zip of config.json + model.weights.h5), legacy
``.h5`` (model_config + model_weights), or an in-memory ``keras.Model``.

Keras models are channels-last; the IR is channels-first. Inputs of rank 3 become (C, H, W)
and the graph records ``input_layout = "NHWC"``, so data given in the model's own layout is
transposed when it is read. A Flatten of a feature map yields H, W, C order in Keras, so the
Dense layer reading it gets its kernel rows permuted to the IR's C, H, W order.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Union

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir

from .builder import FrontendError, FrontendNode, GraphBuilder, HandlerRegistry

KERAS = HandlerRegistry("Keras")
ACTIVATIONS = {"linear": None, "relu": ir.Relu, "softmax": ir.Softmax, "relu6": ir.Clip}


class KerasBuilder(GraphBuilder):
    """A graph builder that remembers which flattened values are in Keras' H, W, C order."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.hwc_flattened: dict[str, tuple[int, int, int]] = {}  # op id -> (C, H, W) before flatten


def load_keras(model: Union[str, Path, Any]) -> Graph:
    """Read a Keras model file or in-memory model into an ann-dialect graph."""
    if isinstance(model, (str, Path)):
        source = str(model)
        config, weights = _read_file(Path(model))
    else:
        source = f"<keras model {model.name!r}>"
        config = {"class_name": type(model).__name__, "config": model.get_config()}
        weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers}
    b = KerasBuilder(source)
    layers, outputs = _layers(config, b)
    nodes = []
    for layer in layers:
        kind = layer["class_name"]
        node = FrontendNode(layer["config"]["name"], kind, layer["inputs"], [layer["config"]["name"]],
                            {**layer["config"], "weights": weights.get(layer["config"]["name"], [])})  # fmt: skip
        if kind == "InputLayer":
            _input(b, node)
        else:
            nodes.append(node)
    b.run(KERAS, nodes)
    b.graph.outputs = [b.value(o, FrontendNode(o, "output", [], [])) for o in outputs]
    b.graph.remove_dead()
    return b.graph


# --------------------------------------------------------------------------- files


def _read_file(path: Path) -> tuple[dict, dict[str, list[np.ndarray]]]:
    import h5py

    if not path.exists():
        raise FrontendError(f"{path}: no such file")
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                with z.open("model.weights.h5") as f, h5py.File(f, "r") as h5:
                    return config, _keras_v3_weights(config, h5)
        with h5py.File(path, "r") as h5:
            raw = h5.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            group = h5["model_weights"] if "model_weights" in h5 else h5
            weights = {}
            for name in group.attrs.get("layer_names", []):
                name = name.decode() if isinstance(name, bytes) else name
                names = [n.decode() if isinstance(n, bytes) else n for n in group[name].attrs.get("weight_names", [])]
                weights[name] = [np.asarray(group[name][n]) for n in names]
            return config, weights
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FrontendError(f"{path}: not a readable Keras model ({type(exc).__name__}: {exc})") from None


def _snake(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_v3_weights(config: dict, h5: Any) -> dict[str, list[np.ndarray]]:
    """Keras 3 stores a layer's variables under layers/<snake class name>[_N], in layer order."""
    layers = config["config"]["layers"]
    if config["class_name"] == "Sequential":
        layers = [la for la in layers if la["class_name"] != "InputLayer"]
    used: dict[str, int] = {}
    weights = {}
    for layer in layers:
        base = _snake(layer["class_name"])
        key = base if base not in used else f"{base}_{used[base]}"
        used[base] = used.get(base, 0) + 1
        group = h5.get(f"layers/{key}/vars")
        if group is not None:
            weights[layer["config"]["name"]] = [np.asarray(group[str(i)]) for i in range(len(group))]
    return weights


def _layers(config: dict, b: GraphBuilder) -> tuple[list[dict], list[str]]:
    """Layers in order, each with the names of the layers it reads, and the output layer names."""
    kind, cfg = config["class_name"], config["config"]
    layers = cfg["layers"] if isinstance(cfg, dict) else cfg
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
    out = [{**layer, "inputs": _inbound(layer)} for layer in layers]
    outputs = cfg["output_layers"]
    outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
    return out, [o[0] for o in outputs]


def _inbound(layer: dict) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 3 and Keras 2 config formats)."""
    names: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict) and "keras_history" in item.get("config", {}):
            names.append(item["config"]["keras_history"][0])
        elif isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
            names.append(item[0])  # Keras 2: [layer, node, tensor, kwargs]
        elif isinstance(item, (list, tuple)):
            for x in item:
                walk(x)
        elif isinstance(item, dict):
            for x in item.values():
                walk(x)

    for node in layer.get("inbound_nodes", []):
        walk(node.get("args", node) if isinstance(node, dict) else node)
    return names


# --------------------------------------------------------------------------- handlers


def _input(b: GraphBuilder, node: FrontendNode) -> None:
    shape = node.attrs.get("batch_shape") or node.attrs.get("batch_input_shape")
    dims = list(shape[1:])
    if any(d is None for d in dims):
        raise b.error(node, f"input shape {dims} must be fixed")
    if len(dims) == 3:
        b.graph.attrs["input_layout"] = "NHWC"
        dims = [dims[2], dims[0], dims[1]]
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


def _activate(b: GraphBuilder, node: FrontendNode, op_id: str) -> None:
    """Apply the layer's ``activation`` after ``op_id`` and make it the layer's output."""
    name = node.attrs.get("activation", "linear")
    name = name if isinstance(name, str) else name.get("config", {}).get("name", name.get("class_name"))
    if name not in ACTIVATIONS:
        raise b.error(node, f"activation {name!r} is not supported")
    if ACTIVATIONS[name] is None:
        return
    act = FrontendNode(f"{node.name}_{name}", name, [], node.outputs)
    attrs = {"min": 0.0, "max": 6.0} if name == "relu6" else {"axis": 0} if name == "softmax" else {}
    if name == "softmax" and len(b.shape(op_id)) != 1:
        raise b.error(node, "softmax of a feature map is not supported")
    b.add(act, ACTIVATIONS[name], [op_id], **attrs)


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
    kernel, *rest = node.attrs["weights"]
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
    kernel, *rest = node.attrs["weights"]
    strides, dilation = tuple(node.attrs["strides"]), tuple(node.attrs["dilation_rate"])
    if node.kind == "DepthwiseConv2D":  # (kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw)
        kh, kw, c_in, mult = kernel.shape
        w, groups = kernel.transpose(2, 3, 0, 1).reshape(c_in * mult, 1, kh, kw), c_in
    else:  # (kh, kw, in / groups, out) -> (out, in / groups, kh, kw)
        w, groups = kernel.transpose(3, 2, 0, 1), int(node.attrs.get("groups", 1))
    pads = _same_pads(b, node, x, w.shape[2:], strides, dilation)
    op_id = b.add(node, ir.Conv2d, [x], tensors={"weight": w, "bias": rest[0] if rest else None},
                  strides=strides, pads=pads, dilations=dilation, groups=groups)  # fmt: skip
    _activate(b, node, op_id)


@KERAS.handler("AveragePooling2D", "MaxPooling2D")
def pool(b: GraphBuilder, node: FrontendNode) -> None:
    _channels_last(b, node)
    x = _x(b, node)
    kernel = tuple(node.attrs["pool_size"])
    strides = tuple(node.attrs.get("strides") or kernel)
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
    weights = list(node.attrs["weights"])
    c = b.shape(x)[0]
    scale = weights.pop(0) if node.attrs.get("scale", True) else np.ones(c, np.float32)
    shift = weights.pop(0) if node.attrs.get("center", True) else np.zeros(c, np.float32)
    mean, var = weights
    b.add(node, ir.BatchNorm, [x], tensors={"scale": scale, "bias": shift, "mean": mean, "var": var},
          epsilon=float(node.attrs.get("epsilon", 1e-3)))  # fmt: skip


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
    if a.get("negative_slope", 0.0) or a.get("threshold", 0.0):
        raise b.error(node, "leaky or thresholded ReLU is not supported")
    hi = a.get("max_value")
    if hi is None:
        b.add(node, ir.Relu, [_x(b, node)])
    else:
        b.add(node, ir.Clip, [_x(b, node)], min=0.0, max=float(hi))


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
    (top, bottom), (left, right) = ((p, p), (p, p)) if isinstance(p, int) else [
        (q, q) if isinstance(q, int) else tuple(q) for q in p
    ]
    b.add(node, ir.Pad, [_x(b, node)], pads=[0, top, left, 0, bottom, right], value=0.0)
