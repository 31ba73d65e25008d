"""ONNX frontend: an ``.onnx`` file (or ModelProto) to an ann-dialect graph.

Tensors carry a leading batch dimension in ONNX and none in the IR: shapes, axes and pads are
translated per sample. Subgraphs that only compute constants (the Shape -> Gather -> Concat
chains exporters write before a Reshape) are folded here with numpy, with batch size 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from snnc.ir import Graph, limits
from snnc.ir import ops as ir
from snnc.ir.errors import SnncError

from .builder import FrontendError, FrontendNode, GraphBuilder, HandlerRegistry, one_line

ONNX = HandlerRegistry("ONNX")


def load_onnx(model: Union[str, Path, Any]) -> Graph:
    """Read an ONNX model (path or ``onnx.ModelProto``) into an ann-dialect graph."""
    import onnx

    source = str(model) if isinstance(model, (str, Path)) else "<onnx model>"
    if isinstance(model, (str, Path)):
        try:
            limits.check("bytes", os.stat(model).st_size, source)
            model = onnx.load(str(model), load_external_data=False)  # external tensors are refused below
        except FileNotFoundError:
            raise FrontendError(f"{source}: no such file") from None
        except SnncError:
            raise
        except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
            raise FrontendError(f"{source}: not a readable ONNX model ({type(exc).__name__})") from None
    opset = _opset(model, source)
    b = GraphBuilder(source)
    graph = model.graph
    _check_unique_names(graph, source)
    for init in graph.initializer:
        b.constants[init.name] = _to_array(init, f"{source}: initializer {init.name!r}")
    for inp in graph.input:
        if inp.name not in b.constants:
            _add_input(b, inp)
    nodes = [_frontend_node(n, i, source, opset) for i, n in enumerate(graph.node)]
    b.run(ONNX, nodes)
    outputs = []
    for out in graph.output:
        if out.name not in b.values:
            raise FrontendError(f"{source}: graph output {out.name!r} is a constant or not computed")
        outputs.append(b.values[out.name])
    b.graph.outputs = outputs
    b.graph.remove_dead()
    return b.graph


def _opset(model: Any, source: str) -> int:
    """The model's version of the default ONNX domain, refused when onnx does not know it."""
    import onnx

    latest = onnx.defs.onnx_opset_version()
    versions = [imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")]
    if len(versions) != 1 or not 1 <= versions[0] <= latest:
        raise FrontendError(f"{source}: ONNX opset {versions or 'missing'} is not one snnc knows (1 to {latest})")
    return versions[0]


def _check_unique_names(graph: Any, source: str) -> None:
    """Names are text, and every value is defined once: by a graph input, an initializer or one node output."""
    for value in (*graph.input, *graph.output, *graph.initializer):
        if not isinstance(value.name, str):
            raise FrontendError(f"{source}: graph value name {value.name[:60]!r} is not valid UTF-8")
    for i, node in enumerate(graph.node):
        texts = [node.name, node.op_type, node.domain, *node.input, *node.output, *(a.name for a in node.attribute)]
        if not all(isinstance(t, str) for t in texts):
            raise FrontendError(f"{source}: node #{i}: a name or op type is not valid UTF-8")
    seen: set[str] = set()
    initializers = [i.name for i in graph.initializer]
    if len(set(initializers)) != len(initializers):
        dup = next(n for n in initializers if initializers.count(n) > 1)
        raise FrontendError(f"{source}: initializer {dup!r} is defined twice")
    seen.update(initializers)
    seen.update(i.name for i in graph.input)
    for i, node in enumerate(graph.node):
        for name in node.output:
            if name and name in seen:
                where = f"{source}: node {node.name or f'{node.op_type}_{i}'!r} ({node.op_type})"
                raise FrontendError(f"{where}: value {name!r} is defined twice")
            seen.add(name)


# numpy dtypes of the ONNX tensor types snnc reads (no strings, complex or 4/8-bit floats)
_DTYPES = {
    1: np.float32,
    2: np.uint8,
    3: np.int8,
    4: np.uint16,
    5: np.int16,
    6: np.int32,
    7: np.int64,
    9: np.bool_,
    10: np.float16,
    11: np.float64,
    12: np.uint32,
    13: np.uint64,
}


def _to_array(tensor: Any, what: str) -> np.ndarray:
    """A TensorProto as a numpy array, after checking its type and declared size against the budget."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_location == TensorProto.EXTERNAL:
        raise FrontendError(f"{what}: external data is not read")
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None:
        raise FrontendError(f"{what}: tensor type {tensor.data_type} is not supported (only numbers)")
    limits.check_array(tuple(tensor.dims), np.dtype(dtype).itemsize, what)
    try:
        return numpy_helper.to_array(tensor)
    except Exception as exc:  # noqa: BLE001 - onnx raises several kinds for inconsistent tensors
        raise FrontendError(f"{what}: malformed tensor ({one_line(exc)})") from None


def _frontend_node(n: Any, index: int, source: str, opset: int) -> FrontendNode:
    """A node; ops of other domains keep their domain in the kind (they are unsupported, never
    mistaken for the standard op of the same name)."""
    name = n.name or f"{n.op_type}_{index}"
    kind = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
    attrs = _attrs(n, f"{source}: node {name!r} ({n.op_type})", opset if kind == n.op_type else None)
    return FrontendNode(name, kind, list(n.input), list(n.output), attrs)


def _attrs(node: Any, what: str, opset: Optional[int]) -> dict[str, Any]:
    """Attribute values, checked against the op's ONNX schema (names, types, no NaN) when it has one."""
    from onnx import AttributeProto, TensorProto, helper

    schema = _schema(node.op_type, opset)
    attrs = {}
    for a in node.attribute:
        if schema is not None and a.name not in schema.attributes:
            raise FrontendError(f"{what}: unknown attribute {a.name!r}")
        if schema is not None and a.type != schema.attributes[a.name].type:
            expected = AttributeProto.AttributeType.Name(schema.attributes[a.name].type)
            raise FrontendError(f"{what}: attribute {a.name!r} must be {expected}")
        try:
            value = helper.get_attribute_value(a)
            if isinstance(value, bytes):
                value = value.decode()
        except Exception as exc:  # noqa: BLE001 - unknown attribute types, non-UTF-8 strings
            raise FrontendError(f"{what}: attribute {a.name!r} is malformed ({one_line(exc)})") from None
        if isinstance(value, TensorProto):
            value = _to_array(value, f"{what}: attribute {a.name!r}")
        if isinstance(value, float) and math.isnan(value):
            raise FrontendError(f"{what}: attribute {a.name!r} is NaN")
        attrs[a.name] = value
    return attrs


def _schema(op_type: str, opset: Optional[int]) -> Any:
    """The ONNX schema of a default-domain op at ``opset``, or None (unknown ops are reported later)."""
    import onnx

    if opset is None:
        return None
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def _add_input(b: GraphBuilder, inp: Any) -> None:
    dims = inp.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    node = FrontendNode(inp.name, "input", [], [inp.name])
    if len(shape) < 2 or any(d is None or d < 1 for d in shape[1:]):
        raise b.error(node, f"input needs a batch dimension and fixed sizes, got {shape}")
    b.add(node, ir.Input, [], shape=tuple(shape[1:]))


# --------------------------------------------------------------------------- helpers


def _dynamic(b: GraphBuilder, node: FrontendNode) -> list[str]:
    return [i for i in node.inputs if i and not b.is_const(i)]


def _need_const(b: GraphBuilder, node: FrontendNode, index: int, what: str) -> np.ndarray:
    if index >= len(node.inputs) or not node.inputs[index]:
        raise b.error(node, f"missing {what}")
    value = b.const(node.inputs[index])
    if value is None:
        raise b.error(node, f"{what} must be a constant (initializer), not computed")
    return value


def _axis(b: GraphBuilder, node: FrontendNode, axis: int, rank: int) -> int:
    """An ONNX axis (with batch) as a per-sample axis."""
    if not -(rank + 1) <= axis <= rank:
        raise b.error(node, f"axis {axis} is out of range for a rank-{rank + 1} tensor")
    axis = axis + rank + 1 if axis < 0 else axis
    if axis == 0:
        raise b.error(node, "operations along the batch axis are not supported")
    return axis - 1


def _window_attrs(b: GraphBuilder, node: FrontendNode, in_shape: tuple[int, ...], kernel: list[int]) -> dict:
    a = node.attrs
    strides = list(a.get("strides", [1, 1]))
    dilations = list(a.get("dilations", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    auto_pad = a.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i in range(2):
            out = math.ceil(in_shape[1 + i] / strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_shape[1 + i], 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    if len(kernel) != 2:
        raise b.error(node, f"only 2-D windows are supported, got kernel {kernel}")
    return {"strides": strides, "pads": pads, "dilations": dilations}


# --------------------------------------------------------------------------- handlers


@ONNX.handler("Constant")
def constant(b: GraphBuilder, node: FrontendNode) -> None:
    a = node.attrs
    if "value" in a:
        value = np.asarray(a["value"])
    elif "value_float" in a or "value_int" in a:
        value = np.asarray(a.get("value_float", a.get("value_int")))
    elif "value_floats" in a or "value_ints" in a:
        value = np.asarray(a.get("value_floats", a.get("value_ints")))
    else:
        raise b.error(node, f"unsupported Constant attributes {sorted(a)}")
    b.constants[node.outputs[0]] = value


_FOLD = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Sum": lambda *xs: sum(xs),
    "Identity": lambda x: x,
    "Floor": np.floor,
    "Sqrt": np.sqrt,
}


def _fold(b: GraphBuilder, node: FrontendNode) -> bool:
    """Evaluate ``node`` with numpy when all its inputs are constants (result sizes are checked
    against the byte budget before numpy allocates them)."""
    if _dynamic(b, node):
        return False
    args = [b.const(i) for i in node.inputs if i]
    a, kind = node.attrs, node.kind
    if kind in _FOLD:
        _check_result(b, node, np.broadcast_shapes(*(x.shape for x in args)), max(x.itemsize for x in args))
        integer = all(np.issubdtype(x.dtype, np.integer) for x in args)
        if kind == "Div" and integer and not np.all(args[1]):
            raise b.error(node, "integer division by zero")
        with np.errstate(all="ignore"):  # float results follow IEEE (inf, nan)
            result = np.floor_divide(*args) if kind == "Div" and integer else _FOLD[kind](*args)
        result = np.asarray(result).astype(args[0].dtype)
    elif kind == "Gather":
        axis = int(a.get("axis", 0))
        axis = axis + args[0].ndim if axis < 0 else axis
        shape = (*args[0].shape[:axis], *args[1].shape, *args[0].shape[axis + 1 :])
        _check_result(b, node, shape, args[0].itemsize)
        result = np.take(args[0], args[1], axis=axis)
    elif kind == "Unsqueeze":
        axes = a.get("axes", args[1].tolist() if len(args) > 1 else None)
        result = args[0]
        for ax in sorted(int(x) + (result.ndim + len(axes) if x < 0 else 0) for x in axes):
            result = np.expand_dims(result, ax)
    elif kind == "Squeeze":
        axes = a.get("axes", args[1].tolist() if len(args) > 1 else None)
        result = np.squeeze(args[0], axis=tuple(axes) if axes is not None else None)
    elif kind == "Concat":
        _check_result(b, node, (sum(x.size for x in args),), max(x.itemsize for x in args))
        result = np.concatenate(args, axis=a["axis"])
    elif kind == "Cast":
        if a.get("to") not in _DTYPES:
            raise b.error(node, f"cast to tensor type {a.get('to')} is not supported (only numbers)")
        result = args[0].astype(_DTYPES[a["to"]])
    elif kind == "Reshape":
        _check_target(b, node, args[1].tolist())
        result = args[0].reshape([d if d != 0 else args[0].shape[i] for i, d in enumerate(args[1].tolist())])
    elif kind == "Slice":
        starts, ends = args[1], args[2]
        axes = args[3] if len(args) > 3 else np.arange(len(starts))
        steps = args[4] if len(args) > 4 else np.ones(len(starts), dtype=np.int64)
        index = [slice(None)] * args[0].ndim
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=False):
            index[int(ax)] = slice(int(s), int(e), int(st))
        result = args[0][tuple(index)]
    elif kind == "ConstantOfShape":
        fill = np.asarray(a.get("value", np.zeros(1, np.float32))).reshape(-1)
        if fill.size != 1:
            raise b.error(node, f"value must hold one element, got {fill.size}")
        dims = tuple(int(d) for d in args[0].reshape(-1))
        _check_result(b, node, dims, fill.itemsize)
        result = np.full(dims, fill[0])
    else:
        return False
    b.constants[node.outputs[0]] = np.asarray(result)
    return True


def _check_target(b: GraphBuilder, node: FrontendNode, target: list[int]) -> None:
    """A Reshape target: sizes, 0 (copy) and at most one -1 (inferred)."""
    if any(d < -1 for d in target) or target.count(-1) > 1:
        raise b.error(node, f"bad target shape {target}")


def _check_result(b: GraphBuilder, node: FrontendNode, shape: tuple[int, ...], itemsize: int) -> None:
    limits.check_array(tuple(shape), itemsize, f"{b.source}: node {node.name!r} ({node.kind})")


@ONNX.handler("Shape")
def shape(b: GraphBuilder, node: FrontendNode) -> None:
    src = node.inputs[0]
    full = b.const(src).shape if b.is_const(src) else (1, *b.shape(b.value(src, node)))
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    b.constants[node.outputs[0]] = np.asarray(full[start:end], dtype=np.int64)


@ONNX.handler("Gather", "Unsqueeze", "Squeeze", "Cast", "Slice", "ConstantOfShape", "Sub", "Floor", "Sqrt")
def constant_only(b: GraphBuilder, node: FrontendNode) -> None:
    if not _fold(b, node):
        raise b.error(node, "supported only on constants (shape computations)")


@ONNX.handler("Identity", "Dropout")
def identity(b: GraphBuilder, node: FrontendNode) -> None:
    if node.kind == "Identity" and _fold(b, node):
        return
    x = b.value(node.inputs[0], node)
    if node.kind == "Dropout":
        b.add(node, ir.Dropout, [x], ratio=float(node.attrs.get("ratio", 0.5)))
    else:
        b.add(node, ir.Identity, [x])


@ONNX.handler("Gemm")
def gemm(b: GraphBuilder, node: FrontendNode) -> None:
    a = node.attrs
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if b.is_const(node.inputs[0]):
        raise b.error(node, "Gemm needs the data as input A and constant weights as B")
    if a.get("transA", 0):
        raise b.error(node, "transA=1 on the data input would mix samples of a batch")
    w = _need_const(b, node, 1, "weight B")
    w = alpha * (w if a.get("transB", 0) else w.T)
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        c = _need_const(b, node, 2, "bias C")
        if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
            raise b.error(node, f"bias of shape {list(c.shape)} is not per output unit")
        bias = beta * np.broadcast_to(c.reshape(-1), (w.shape[0],))
    b.add(node, ir.Dense, [b.value(node.inputs[0], node)], tensors={"weight": w, "bias": bias})


@ONNX.handler("MatMul")
def matmul(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    w = _need_const(b, node, 1, "weight (second input)")
    x = b.value(node.inputs[0], node)
    if w.ndim != 2 or len(b.shape(x)) != 1:
        raise b.error(node, f"only (batch, n) @ (n, m) is supported, got {list(b.shape(x))} @ {list(w.shape)}")
    b.add(node, ir.Dense, [x], tensors={"weight": w.T})


def _fold_bias(b: GraphBuilder, node: FrontendNode, x: str, c: np.ndarray) -> bool:
    """Fold ``x + c`` into the bias of the dense/conv2d op that produces ``x`` alone."""
    op = b.graph.op(x)
    if not isinstance(op, (ir.Dense, ir.Conv2d)) or b.graph.users(x) or x in b.graph.outputs:
        return False
    n = b.shape(x)[0]
    per_channel = c.reshape(-1) if c.size in (1, n) else None
    if per_channel is None or (c.ndim > 1 and isinstance(op, ir.Conv2d) and c.shape[-2:] not in ((1, 1),)):
        return False
    if c.ndim >= 1 and isinstance(op, ir.Dense) and c.shape[-1] != n and c.size != 1:
        return False
    add = np.broadcast_to(per_channel, (n,)).astype(np.float32)
    old = b.tensor(op.bias) if op.bias is not None else 0.0
    ref = b.graph.add_tensor(f"{x}.bias", old + add)
    from dataclasses import replace

    b.graph.set_op(x, replace(op, bias=ref))
    b.alias(node.outputs[0], x)
    return True


@ONNX.handler("Add", "Sum")
def add(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    dyn = _dynamic(b, node)
    consts = [b.const(i) for i in node.inputs if i and b.is_const(i)]
    xs = [b.value(i, node) for i in dyn]
    if consts:
        if len(xs) != 1 or not _fold_bias(b, node, xs[0], sum(consts)):
            raise b.error(node, "adding a constant is supported only right after MatMul, Gemm or Conv")
        return
    b.add(node, ir.Add, xs)


@ONNX.handler("Mul", "Div")
def mul(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    dyn = _dynamic(b, node)
    if len(dyn) != 1 or (node.kind == "Div" and dyn[0] != node.inputs[0]):
        raise b.error(node, f"{node.kind} is supported only with one data input and a scalar constant")
    c = b.const(node.inputs[1] if dyn[0] == node.inputs[0] else node.inputs[0])
    if c.size != 1:
        raise b.error(node, f"{node.kind} by a non-scalar constant of shape {list(c.shape)}")
    factor = float(c.reshape(-1)[0])
    b.add(node, ir.Scale, [b.value(dyn[0], node)], factor=1.0 / factor if node.kind == "Div" else factor)


@ONNX.handler("Conv")
def conv(b: GraphBuilder, node: FrontendNode) -> None:
    x = b.value(node.inputs[0], node)
    w = _need_const(b, node, 1, "weight")
    bias = _need_const(b, node, 2, "bias") if len(node.inputs) > 2 and node.inputs[2] else None
    window = _window_attrs(b, node, b.shape(x), list(w.shape[2:]))
    b.add(node, ir.Conv2d, [x], tensors={"weight": w, "bias": bias}, groups=int(node.attrs.get("group", 1)), **window)


@ONNX.handler("Relu")
def relu(b: GraphBuilder, node: FrontendNode) -> None:
    b.add(node, ir.Relu, [b.value(node.inputs[0], node)])


@ONNX.handler("Clip")
def clip(b: GraphBuilder, node: FrontendNode) -> None:
    lo, hi = node.attrs.get("min", -math.inf), node.attrs.get("max", math.inf)
    if len(node.inputs) > 1 and node.inputs[1]:
        lo = float(_need_const(b, node, 1, "min"))
    if len(node.inputs) > 2 and node.inputs[2]:
        hi = float(_need_const(b, node, 2, "max"))
    b.add(node, ir.Clip, [b.value(node.inputs[0], node)], min=float(lo), max=float(hi))


@ONNX.handler("AveragePool", "MaxPool")
def pool(b: GraphBuilder, node: FrontendNode) -> None:
    x = b.value(node.inputs[0], node)
    kernel = list(node.attrs["kernel_shape"])
    window = _window_attrs(b, node, b.shape(x), kernel)
    if window.pop("dilations") != [1, 1]:
        raise b.error(node, "dilated pooling is not supported")
    if len(node.outputs) > 1 and node.outputs[1]:
        raise b.error(node, "MaxPool indices output is not supported")
    ceil = bool(node.attrs.get("ceil_mode", 0))
    if node.kind == "MaxPool":
        b.add(node, ir.MaxPool2d, [x], kernel=kernel, ceil_mode=ceil, **window)
    else:
        include = bool(node.attrs.get("count_include_pad", 0))
        b.add(node, ir.AvgPool2d, [x], kernel=kernel, ceil_mode=ceil, count_include_pad=include, **window)


@ONNX.handler("GlobalAveragePool")
def global_avgpool(b: GraphBuilder, node: FrontendNode) -> None:
    b.add(node, ir.GlobalAvgPool, [b.value(node.inputs[0], node)])


@ONNX.handler("BatchNormalization")
def batchnorm(b: GraphBuilder, node: FrontendNode) -> None:
    x = b.value(node.inputs[0], node)
    names = ("scale", "bias", "mean", "var")
    tensors = {k: _need_const(b, node, i + 1, k) for i, k in enumerate(names)}
    b.add(node, ir.BatchNorm, [x], tensors=tensors, epsilon=float(node.attrs.get("epsilon", 1e-5)))


@ONNX.handler("Flatten")
def flatten(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    x = b.value(node.inputs[0], node)
    if node.attrs.get("axis", 1) != 1:
        raise b.error(node, f"Flatten axis {node.attrs['axis']} mixes the batch; only axis 1 is supported")
    b.add(node, ir.Flatten, [x])


@ONNX.handler("Reshape")
def reshape(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    x = b.value(node.inputs[0], node)
    target = [int(d) for d in _need_const(b, node, 1, "shape").reshape(-1)]
    _check_target(b, node, target)
    full = (1, *b.shape(x))
    if not node.attrs.get("allowzero", 0):
        target = [full[i] if d == 0 else d for i, d in enumerate(target)]
    if target.count(-1) > 1 or not target:
        raise b.error(node, f"bad target shape {target}")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(full) // max(known, 1)
    if target[0] != 1:
        raise b.error(node, f"reshape to {target} changes the batch dimension")
    b.add(node, ir.Reshape, [x], shape=target[1:])


@ONNX.handler("Softmax")
def softmax(b: GraphBuilder, node: FrontendNode) -> None:
    x = b.value(node.inputs[0], node)
    axis = _axis(b, node, int(node.attrs.get("axis", -1)), len(b.shape(x)))
    b.add(node, ir.Softmax, [x], axis=axis)


@ONNX.handler("Concat")
def concat(b: GraphBuilder, node: FrontendNode) -> None:
    if _fold(b, node):
        return
    if len(_dynamic(b, node)) != len([i for i in node.inputs if i]):
        raise b.error(node, "concatenating data with constants is not supported")
    xs = [b.value(i, node) for i in node.inputs if i]
    axis = _axis(b, node, int(node.attrs["axis"]), len(b.shape(xs[0])))
    b.add(node, ir.Concat, xs, axis=axis)


@ONNX.handler("Pad")
def pad(b: GraphBuilder, node: FrontendNode) -> None:
    x = b.value(node.inputs[0], node)
    if node.attrs.get("mode", "constant") != "constant":
        raise b.error(node, f"pad mode {node.attrs['mode']!r} is not supported (only constant)")
    pads = node.attrs.get("pads")
    if pads is None:
        pads = _need_const(b, node, 1, "pads").tolist()
    value = node.attrs.get("value", 0.0)
    if len(node.inputs) > 2 and node.inputs[2]:
        value = float(_need_const(b, node, 2, "constant value").reshape(-1)[0])
    if len(node.inputs) > 3 and node.inputs[3]:
        raise b.error(node, "Pad with an axes input is not supported")
    rank = len(pads) // 2
    if pads[0] or pads[rank]:
        raise b.error(node, "padding the batch dimension is not supported")
    per_sample = [int(p) for p in pads[1:rank] + pads[rank + 1 :]]
    b.add(node, ir.Pad, [x], pads=per_sample, value=float(value))
