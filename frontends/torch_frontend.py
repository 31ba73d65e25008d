"""PyTorch frontend: an ``nn.Module`` traced with torch.fx to an ann-dialect graph.

No ONNX round trip: ``torch.fx.symbolic_trace`` gives the module's calls, and each becomes a
``FrontendNode`` whose kind is the module class (``Linear``) or the function or method name
(``relu``, ``add``, ``view``). Shape computations (``x.size(0)``, ``x.shape[1]``) are folded
with batch size 1, as the ONNX frontend folds Shape chains.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snnc.ir import Graph
from snnc.ir import ops as ir

from .builder import FrontendError, FrontendNode, GraphBuilder, HandlerRegistry

TORCH = HandlerRegistry("PyTorch")


class TorchBuilder(GraphBuilder):
    """A graph builder that also knows the traced module's submodules."""

    def __init__(self, source: str, modules: dict[str, Any]) -> None:
        super().__init__(source)
        self.modules = modules


def load_torch(module: Any, input_shape: tuple[int, ...], source: str = "<torch module>") -> Graph:
    """Trace ``module`` (an ``nn.Module``, or the GraphModule of an ExportedProgram) for
    per-sample ``input_shape`` into an ann graph."""
    import torch.fx

    if isinstance(module, torch.fx.GraphModule):
        traced = module  # already a graph (torch.export's module() calls aten ops)
    else:
        module = module.eval()
        try:
            traced = torch.fx.symbolic_trace(module)
        except Exception as exc:  # noqa: BLE001 - fx raises many kinds for untraceable code
            raise FrontendError(f"{source}: torch.fx cannot trace the module ({type(exc).__name__}: {exc})") from None
    b = TorchBuilder(source, dict(traced.named_modules()))
    nodes, outputs = [], []
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise FrontendError(f"{source}: the module takes {len(placeholders)} inputs; snnc supports one")
    for n in traced.graph.nodes:
        if n.op == "get_attr":
            b.constants[n.name] = _fetch(traced, n.target)
        elif n.op == "call_module" and n.target.startswith("_guards"):
            continue  # torch.export's input checks
        elif n.op == "placeholder":
            b.add(FrontendNode(n.name, "input", [], [n.name]), ir.Input, [], shape=tuple(input_shape))
        elif n.op == "output":
            out = n.args[0]
            outs = out if isinstance(out, (tuple, list)) else [out]
            outputs = [o.name for o in outs]
        else:
            nodes.append(_frontend_node(n, b))
    b.run(TORCH, nodes)
    b.graph.outputs = [b.values[name] for name in outputs]
    b.graph.remove_dead()
    return b.graph


def _fetch(module: Any, target: str) -> np.ndarray:
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj.detach().cpu().numpy() if hasattr(obj, "detach") else np.asarray(obj)


def load_torch_file(path: Any, input_shape: tuple[int, ...], module_spec: Any = None) -> Graph:
    """A ``.pt2`` ExportedProgram, or a ``.pt``/``.pth`` state_dict loaded into ``module_spec``
    (``"package.module:Class"``, constructed without arguments). Nothing is unpickled: state
    dicts load with ``weights_only=True``."""
    import importlib

    import torch

    source = str(path)
    if str(path).endswith(".pt2"):
        try:
            program = torch.export.load(path)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for bad archives
            raise FrontendError(f"{source}: not a torch.export program ({type(exc).__name__})") from None
        return load_torch(program.module(), input_shape, source)
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise FrontendError(f"{source}: not a weights-only torch file ({type(exc).__name__}); "
                            "save a state_dict, or a torch.export program as .pt2") from None  # fmt: skip
    if not isinstance(state, dict):
        raise FrontendError(f"{source}: expected a state_dict, found {type(state).__name__}")
    if not module_spec:
        raise FrontendError(f"{source}: a state_dict needs its module class: --module package.module:Class")
    mod_name, _, cls_name = str(module_spec).partition(":")
    try:
        module = getattr(importlib.import_module(mod_name), cls_name)()
        module.load_state_dict(state)
    except (ImportError, AttributeError, TypeError, RuntimeError) as exc:
        raise FrontendError(f"{source}: cannot build {module_spec} from it ({type(exc).__name__}: {exc})") from None
    return load_torch(module, input_shape, source)


def _frontend_node(n: Any, b: TorchBuilder) -> FrontendNode:
    if n.op == "call_module":
        kind = type(b.modules[n.target]).__name__
    elif n.op == "call_function":
        kind = getattr(n.target, "__name__", str(n.target))
    elif n.op == "call_method":
        kind = n.target
    else:  # get_attr
        kind = "get_attr"
    inputs = [a.name for a in n.all_input_nodes]
    attrs = {"args": n.args, "kwargs": dict(n.kwargs), "target": n.target}
    return FrontendNode(n.name, kind, inputs, [n.name], attrs)


# --------------------------------------------------------------------------- helpers


def _module(b: TorchBuilder, node: FrontendNode) -> Any:
    return b.modules[node.attrs["target"]]


def _arg(b: GraphBuilder, node: FrontendNode, index: int, name: str, default: Any = None) -> Any:
    """A call argument by position or keyword, with fx nodes resolved to constants when folded."""
    args, kwargs = node.attrs["args"], node.attrs["kwargs"]
    value = args[index] if index < len(args) else kwargs.get(name, default)
    return _resolve(b, value)


def _resolve(b: GraphBuilder, value: Any) -> Any:
    if hasattr(value, "op") and hasattr(value, "name"):  # an fx Node
        if value.name not in b.constants:
            return value
        const = b.constants[value.name]
        return const.item() if const.size == 1 and const.ndim == 0 else const
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(b, v) for v in value)
    return value


def _x(b: GraphBuilder, node: FrontendNode, index: int = 0) -> str:
    value = node.attrs["args"][index] if index < len(node.attrs["args"]) else node.attrs["kwargs"]["input"]
    return b.value(value.name, node)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _pads(padding: Any) -> list[int]:
    ph, pw = _pair(padding)
    return [ph, pw, ph, pw]


# --------------------------------------------------------------------------- modules


@TORCH.handler("Linear")
def linear(b: GraphBuilder, node: FrontendNode) -> None:
    m = _module(b, node)
    bias = _np(m.bias) if m.bias is not None else None
    b.add(node, ir.Dense, [_x(b, node)], tensors={"weight": _np(m.weight), "bias": bias})


@TORCH.handler("Conv2d")
def conv2d(b: GraphBuilder, node: FrontendNode) -> None:
    m = _module(b, node)
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        raise b.error(node, f"padding {m.padding!r} / mode {m.padding_mode!r}: only numeric zero padding")
    bias = _np(m.bias) if m.bias is not None else None
    b.add(node, ir.Conv2d, [_x(b, node)], tensors={"weight": _np(m.weight), "bias": bias},
          strides=_pair(m.stride), pads=_pads(m.padding), dilations=_pair(m.dilation), groups=m.groups)  # fmt: skip


@TORCH.handler("linear.default")
def aten_linear(b: GraphBuilder, node: FrontendNode) -> None:
    w, bias = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    b.add(node, ir.Dense, [_x(b, node)], tensors={"weight": w, "bias": bias})


@TORCH.handler("conv2d.default")
def aten_conv2d(b: GraphBuilder, node: FrontendNode) -> None:
    w, bias = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    b.add(node, ir.Conv2d, [_x(b, node)], tensors={"weight": w, "bias": bias},
          strides=_pair(_arg(b, node, 3, "stride", 1)), pads=_pads(_arg(b, node, 4, "padding", 0)),
          dilations=_pair(_arg(b, node, 5, "dilation", 1)), groups=int(_arg(b, node, 6, "groups", 1)))  # fmt: skip


@TORCH.handler("batch_norm.default", "_native_batch_norm_legit_no_training.default")
def aten_batch_norm(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    c = b.shape(x)[0]
    scale, shift = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    scale = np.ones(c, np.float32) if scale is None else scale
    shift = np.zeros(c, np.float32) if shift is None else shift
    eps_index = 7 if node.kind == "batch_norm.default" else 6
    tensors = {"scale": scale, "bias": shift, "mean": _arg(b, node, 3, "running_mean"),
               "var": _arg(b, node, 4, "running_var")}  # fmt: skip
    b.add(node, ir.BatchNorm, [x], tensors=tensors, epsilon=float(_arg(b, node, eps_index, "eps", 1e-5)))


@TORCH.handler("ReLU", "relu", "relu_", "relu.default", "relu_.default")
def relu(b: GraphBuilder, node: FrontendNode) -> None:
    b.add(node, ir.Relu, [_x(b, node)])


@TORCH.handler("ReLU6", "relu6", "Hardtanh", "hardtanh", "clamp", "clip", "hardtanh.default", "clamp.default")
def clip(b: GraphBuilder, node: FrontendNode) -> None:
    if node.kind in ("ReLU6", "relu6"):
        lo, hi = 0.0, 6.0
    elif node.kind == "Hardtanh":
        m = _module(b, node)
        lo, hi = m.min_val, m.max_val
    elif node.kind in ("hardtanh", "hardtanh.default"):
        lo, hi = _arg(b, node, 1, "min_val", -1.0), _arg(b, node, 2, "max_val", 1.0)
    else:
        lo, hi = _arg(b, node, 1, "min", None), _arg(b, node, 2, "max", None)
    lo = -math.inf if lo is None else float(lo)
    hi = math.inf if hi is None else float(hi)
    b.add(node, ir.Clip, [_x(b, node)], min=lo, max=hi)


def _pool_attrs(b: GraphBuilder, node: FrontendNode, m: Any, ceil_index: int) -> dict[str, Any]:
    if m is not None:
        kernel, stride, padding, ceil = m.kernel_size, m.stride, m.padding, m.ceil_mode
    else:
        kernel = _arg(b, node, 1, "kernel_size")
        stride = _arg(b, node, 2, "stride", None) or kernel
        padding, ceil = _arg(b, node, 3, "padding", 0), _arg(b, node, ceil_index, "ceil_mode", False)
    strides = _pair(stride or kernel)
    return {"kernel": _pair(kernel), "strides": strides, "pads": _pads(padding), "ceil_mode": bool(ceil)}


@TORCH.handler("AvgPool2d", "avg_pool2d", "avg_pool2d.default")
def avg_pool(b: GraphBuilder, node: FrontendNode) -> None:
    m = _module(b, node) if node.kind == "AvgPool2d" else None
    include = m.count_include_pad if m is not None else _arg(b, node, 5, "count_include_pad", True)
    if (m.divisor_override if m is not None else _arg(b, node, 6, "divisor_override", None)) is not None:
        raise b.error(node, "divisor_override is not supported")
    b.add(node, ir.AvgPool2d, [_x(b, node)], count_include_pad=bool(include), **_pool_attrs(b, node, m, 4))


@TORCH.handler("MaxPool2d", "max_pool2d", "max_pool2d.default")
def max_pool(b: GraphBuilder, node: FrontendNode) -> None:
    m = _module(b, node) if node.kind == "MaxPool2d" else None
    dilation = m.dilation if m is not None else _arg(b, node, 4, "dilation", 1)
    if _pair(dilation) != (1, 1):
        raise b.error(node, "dilated max pooling is not supported")
    b.add(node, ir.MaxPool2d, [_x(b, node)], **_pool_attrs(b, node, m, 5))


@TORCH.handler("AdaptiveAvgPool2d", "adaptive_avg_pool2d", "adaptive_avg_pool2d.default")
def adaptive_avg_pool(b: GraphBuilder, node: FrontendNode) -> None:
    size = _module(b, node).output_size if node.kind == "AdaptiveAvgPool2d" else _arg(b, node, 1, "output_size")
    if _pair(size) != (1, 1):
        raise b.error(node, f"adaptive pooling to {size}: only output size 1 is supported")
    b.add(node, ir.GlobalAvgPool, [_x(b, node)])


@TORCH.handler("BatchNorm1d", "BatchNorm2d")
def batchnorm(b: GraphBuilder, node: FrontendNode) -> None:
    m = _module(b, node)
    c = m.num_features
    scale = _np(m.weight) if m.weight is not None else np.ones(c, np.float32)
    shift = _np(m.bias) if m.bias is not None else np.zeros(c, np.float32)
    tensors = {"scale": scale, "bias": shift, "mean": _np(m.running_mean), "var": _np(m.running_var)}
    b.add(node, ir.BatchNorm, [_x(b, node)], tensors=tensors, epsilon=float(m.eps))


@TORCH.handler("Dropout", "dropout", "Identity", "dropout.default", "clone.default")
def passthrough(b: GraphBuilder, node: FrontendNode) -> None:
    b.alias(node.outputs[0], _x(b, node))


@TORCH.handler("Flatten", "flatten", "flatten.using_ints")
def flatten(b: GraphBuilder, node: FrontendNode) -> None:
    if node.kind == "Flatten" and node.attrs["target"] in b.modules:
        m = _module(b, node)
        start, end = m.start_dim, m.end_dim
    else:
        start, end = _arg(b, node, 1, "start_dim", 0), _arg(b, node, 2, "end_dim", -1)
    if start != 1 or end != -1:
        raise b.error(node, f"flatten from dim {start} to {end}: only start_dim=1, end_dim=-1 keeps samples apart")
    b.add(node, ir.Flatten, [_x(b, node)])


@TORCH.handler("view", "reshape", "view.default", "reshape.default")
def reshape(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    dims = [_resolve(b, a) for a in node.attrs["args"][1:]]
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = list(dims[0])
    if not all(isinstance(d, int) for d in dims):
        raise b.error(node, f"target shape {dims} is not constant")
    full = math.prod(b.shape(x))
    if -1 in dims:
        dims[dims.index(-1)] = full // max(math.prod(d for d in dims if d != -1), 1)
    if not dims or dims[0] != 1:
        raise b.error(node, f"reshape to {dims} changes the batch dimension")
    b.add(node, ir.Reshape, [x], shape=dims[1:])


@TORCH.handler("size")
def size(b: GraphBuilder, node: FrontendNode) -> None:
    full = (1, *b.shape(_x(b, node)))
    dim = _arg(b, node, 1, "dim", None)
    b.constants[node.outputs[0]] = np.asarray(full if dim is None else full[dim])


@TORCH.handler("getattr")
def get_attribute(b: GraphBuilder, node: FrontendNode) -> None:
    if node.attrs["args"][1] != "shape":
        raise b.error(node, f"attribute {node.attrs['args'][1]!r} of a tensor is not supported")
    b.constants[node.outputs[0]] = np.asarray((1, *b.shape(_x(b, node))))


@TORCH.handler("getitem")
def getitem(b: GraphBuilder, node: FrontendNode) -> None:
    src = node.attrs["args"][0].name
    if src not in b.constants:
        raise b.error(node, "indexing a tensor is not supported")
    b.constants[node.outputs[0]] = np.asarray(b.constants[src][node.attrs["args"][1]])


@TORCH.handler("add", "iadd", "add.Tensor")
def add(b: GraphBuilder, node: FrontendNode) -> None:
    args = [a for a in node.attrs["args"] if hasattr(a, "name")]
    if len(args) != 2 or len(node.attrs["args"]) != 2:
        raise b.error(node, "only the sum of two tensors is supported")
    b.add(node, ir.Add, [b.value(a.name, node) for a in args])


@TORCH.handler("mul", "truediv", "mul.Tensor", "div.Tensor")
def scale(b: GraphBuilder, node: FrontendNode) -> None:
    x, c = node.attrs["args"]
    divide = node.kind in ("truediv", "div.Tensor")
    if not divide and not hasattr(x, "name"):
        x, c = c, x
    if hasattr(c, "name") or not hasattr(x, "name"):
        raise b.error(node, f"{node.kind} is supported only by a constant number")
    factor = 1.0 / float(c) if divide else float(c)
    b.add(node, ir.Scale, [b.value(x.name, node)], factor=factor)


@TORCH.handler("cat", "concat", "cat.default")
def cat(b: GraphBuilder, node: FrontendNode) -> None:
    tensors = node.attrs["args"][0]
    dim = _arg(b, node, 1, "dim", 0)
    xs = [b.value(t.name, node) for t in tensors]
    rank = len(b.shape(xs[0])) + 1
    dim = dim + rank if dim < 0 else dim
    if dim == 0:
        raise b.error(node, "concatenating along the batch dimension is not supported")
    b.add(node, ir.Concat, xs, axis=dim - 1)


@TORCH.handler("softmax", "Softmax", "softmax.int", "_softmax.default")
def softmax(b: GraphBuilder, node: FrontendNode) -> None:
    dim = _module(b, node).dim if node.kind == "Softmax" else _arg(b, node, 1, "dim")
    x = _x(b, node)
    rank = len(b.shape(x)) + 1
    dim = dim + rank if dim < 0 else dim
    if dim in (None, 0):
        raise b.error(node, "softmax over the batch dimension")
    b.add(node, ir.Softmax, [x], axis=dim - 1)

