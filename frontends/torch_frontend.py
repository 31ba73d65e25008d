"""PyTorch frontend: an ``nn.Module`` traced with torch.fx (or a ``.pt2`` program's graph, or a
TorchScript module's graph) to an ann-dialect graph.

No ONNX round trip: ``torch.fx.symbolic_trace`` gives the module's calls, and each becomes a
``FrontendNode`` whose kind is the module class (``Linear``) or the function or method name
(``relu``, ``add``, ``view``). Shape computations (``x.size(0)``, ``x.shape[1]``) are folded
with batch size 1, as the ONNX frontend folds Shape chains.

Files are untrusted. What is read, and how:

* ``.pt``/``.pth`` state dicts: a zip archive (members checked: names, count, sizes) loaded with
  ``torch.load(weights_only=True)``, which unpickles only tensors and plain containers; every
  value must be a tensor within the byte budget. The module class comes from ``--module`` on
  the command line, never from the file; the pre-1.6 (non-zip) format is refused.
* ``.pt2`` programs: ``torch.export.load`` unpickles weights and constants stored with pickle
  (``use_pickle``, ``custom_obj_*``, ``opaque_obj_*``, legacy ``*.pt`` weights) with
  ``weights_only=False``, retries the sample inputs without ``weights_only`` when the safe load
  fails, loads AOTInductor shared libraries, and passes shape expressions to ``sympy.sympify``
  (which evaluates Python). snnc therefore checks the archive first and refuses all of these:
  only raw tensor payloads, JSON, and sample inputs that load weights-only (checked here) pass,
  and shape expressions must be symbols, integers and arithmetic. torch then unpickles nothing
  beyond that weights-only load. ``ExportedProgram.module()`` is never called (it execs guard
  strings from the file): the exported graph and its parameters are read directly. The input
  shape comes from the program (its input's recorded shape, batch dimension dropped).
* TorchScript archives (``torch.jit.save``; any suffix, told apart from a state dict by their
  layout: ``code/``, ``constants.pkl``) are checked before torch sees them: names, count, sizes,
  only the entries ``torch.jit.save`` writes, no legacy ``model.json`` format; ``code/`` parsed
  with Python's ``ast`` (runs nothing) and refused where it defines ``__setstate__`` (torch runs
  that TorchScript method while unpickling), calls operators outside ``aten``/``prim``, or nests
  deeper than 200 levels (torch's compiler recurses and crashes the process near 5,000); every
  pickle (``*.pkl``, ``*.debug_pkl``) read as data by ``_PickleScanner`` (tensors, containers,
  ``__torch__`` objects; nothing callable), each tensor's storage checked against the bytes of
  its record (torch's unpickler trusts the declared element count). ``torch.jit.load`` then
  compiles ``code/`` with torch's TorchScript compiler (no Python is run) and unpickles
  ``constants.pkl``/``data.pkl`` with TorchScript's unpickler (``unpickler.cpp`` ``readGlobal``),
  which rebuilds tensors, lists, dicts and primitives and resolves any other global only as a
  TorchScript class compiled from ``code/`` (``Unknown type name 'os.system'``), filling its
  attributes without running code where it has no ``__setstate__`` (``import.cpp``
  ``obj_loader``). snnc never runs the module, nor freezes it (freezing folds constants by
  running ops): the inlined graph is read node by node; ``prim::If`` on a constant condition
  picks its branch, shape arithmetic is evaluated here, and every tensor op goes to the same
  handlers as a torch.export graph. A traced module's input shape is read from
  ``traced_inputs.pkl`` (shapes only; torch writes its storage empty and does not restore it); a
  scripted module records none and needs ``--input-shape``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np

from snnc.ir import Graph, limits
from snnc.ir import ops as ir
from snnc.ir.errors import BudgetError, SnncError

from .builder import FrontendError, FrontendNode, GraphBuilder, HandlerRegistry, check_zip, one_line

TORCH = HandlerRegistry("PyTorch")


class TorchBuilder(GraphBuilder):
    """A graph builder that also knows the traced module's submodules."""

    def __init__(self, source: str, modules: dict[str, Any]) -> None:
        super().__init__(source)
        self.modules = modules


def load_torch(
    module: Any,
    input_shape: tuple[int, ...],
    source: str = "<torch module>",
    lifted: Optional[dict[str, np.ndarray]] = None,
    user_outputs: Optional[list[str]] = None,
) -> Graph:
    """Trace ``module`` (an ``nn.Module``, or the GraphModule of an ExportedProgram) for
    per-sample ``input_shape`` into an ann graph. ``lifted`` maps placeholders of an exported
    graph to their parameter values; ``user_outputs`` names the outputs that are not buffer updates."""
    import torch.fx

    if isinstance(module, torch.fx.GraphModule):
        traced = module  # already a graph (torch.export calls aten ops)
    else:
        module = module.eval()
        try:
            traced = torch.fx.symbolic_trace(module)
        except Exception as exc:  # noqa: BLE001 - fx raises many kinds for untraceable code
            raise FrontendError(f"{source}: torch.fx cannot trace the module ({one_line(exc)})") from None
    lifted = lifted or {}
    b = TorchBuilder(source, dict(traced.named_modules()))
    nodes, outputs = [], []
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder" and n.name not in lifted]
    if len(placeholders) != 1:
        raise FrontendError(f"{source}: the module takes {len(placeholders)} inputs; snnc supports one")
    for n in traced.graph.nodes:
        if n.op == "get_attr":
            b.constants[n.name] = _fetch(traced, n.target)
        elif n.op == "call_module" and n.target.startswith("_guards"):
            continue  # torch.export's input checks
        elif n.op == "placeholder" and n.name in lifted:
            b.constants[n.name] = lifted[n.name]
        elif n.op == "placeholder":
            b.add(FrontendNode(n.name, "input", [], [n.name]), ir.Input, [], shape=tuple(input_shape))
        elif n.op == "output":
            out = n.args[0]
            outs = out if isinstance(out, (tuple, list)) else [out]
            outputs = [o.name for o in outs if user_outputs is None or o.name in user_outputs]
        else:
            nodes.append(_frontend_node(n, b))
    b.run(TORCH, nodes)
    missing = [name for name in outputs if name not in b.values]
    if missing or not outputs:
        raise FrontendError(f"{source}: graph outputs {missing or outputs} are constants or not computed")
    b.graph.outputs = [b.values[name] for name in outputs]
    b.graph.remove_dead()
    return b.graph


def _fetch(module: Any, target: str) -> np.ndarray:
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return _to_numpy(obj) if hasattr(obj, "detach") else np.asarray(obj)


def _to_numpy(t: Any) -> np.ndarray:
    """A tensor as a numpy array (dtypes numpy lacks, like bfloat16, become float32)."""
    import torch

    t = t.detach().cpu()
    if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
        t = t.float()
    return t.numpy()


def load_torch_file(path: Any, input_shape: Optional[tuple[int, ...]] = None, module_spec: Any = None) -> Graph:
    """A ``.pt2`` ExportedProgram, a TorchScript archive, or a ``.pt``/``.pth`` state_dict loaded
    into ``module_spec`` (``"package.module:Class"`` from the command line, constructed without
    arguments). ``input_shape`` (one sample) is needed where the file does not record it. See the
    module docstring for what is checked and what torch unpickles."""
    source = str(path)
    data = _read_file(path, source)
    if source.endswith(".pt2"):
        return _load_pt2(data, input_shape, source)
    if _is_torchscript(data):
        return _load_torchscript(data, input_shape, source)
    if input_shape is None:
        raise FrontendError(f"{source}: a state_dict needs --input-shape (one sample, e.g. 1,28,28)")
    return _load_state_dict_file(data, input_shape, module_spec, source)


def _input_shape(given: Optional[tuple[int, ...]], recorded: Optional[tuple[int, ...]], source: str, why: str) -> tuple:
    """The per-sample input shape: the one the file records, checked against ``--input-shape``."""
    if recorded is None:
        if given is None:
            raise FrontendError(f"{source}: {why}; give --input-shape (one sample, e.g. 1,28,28)")
        return tuple(given)
    if given is not None and tuple(given) != tuple(recorded):
        raise FrontendError(
            f"{source}: --input-shape {','.join(map(str, given))} disagrees with the input the file records "
            f"({','.join(map(str, recorded))} per sample)"
        )
    return tuple(recorded)


def _read_file(path: Any, source: str) -> bytes:
    try:
        size = os.stat(path).st_size
        limits.check("bytes", size, source)
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise FrontendError(f"{source}: cannot read ({one_line(exc)})") from None


# --------------------------------------------------------------------------- .pt2 archives

_PT2_ENTRIES = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/sample_inputs/model\.pt|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+|extra/[\w.\-]+"
)
_PT2_NEEDED = (
    "archive_format",
    "models/model.json",
    "data/sample_inputs/model.pt",
    "data/weights/model_weights_config.json",
    "data/constants/model_constants_config.json",
)
_REFUSED_ENTRIES = {
    "data/aotinductor/": "compiled AOTInductor code, which would be loaded and run",
    "data/executorch/": "an ExecuTorch program",
    "data/mtia": "an MTIA program",
    "xl_model_weights/": "pickled external weights",
    "data/constants/custom_obj_": "a pickled TorchScript object",
    "data/constants/opaque_obj_": "a pickled Python object",
}
# sympy parses shape expressions with eval: only symbols (s0, u1), integers, + - * / , ( ) and these
_SYMPY_NAMES = {"FloorDiv", "ModularIndexing", "PythonMod", "Mod", "CleanDiv", "CeilDiv", "Max", "Min"}
_EXPR_TOKENS = re.compile(r"\s*(?:([A-Za-z_]\w*)|(\d{1,18})|([-+*/(),]))")
# torch.export writes a dynamic dimension as Symbol('s31', positive=True, integer=True)
_SYMBOL_CALL = re.compile(r"Symbol\('([a-z]{1,4}\d{1,9})'(?:, (?:positive|integer|nonnegative|finite)=True){0,4}\)")
_MAX_JSON_BYTES = 64 * 2**20


def _load_pt2(data: bytes, input_shape: Optional[tuple[int, ...]], source: str) -> Graph:
    """Check the archive, let torch deserialize it from the checked bytes, read the graph."""
    import torch

    _check_pt2(data, source)
    try:
        with _quiet("torch.export", "torch._export"):
            program = torch.export.load(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for bad archives
        raise FrontendError(f"{source}: not a torch.export program ({one_line(exc)})") from None
    lifted, user_outputs = _lifted_inputs(program, source)
    shape = _input_shape(input_shape, _pt2_input_shape(program), source, "the program's input has symbolic sizes")
    return load_torch(program.graph_module, shape, source, lifted, user_outputs)


def _pt2_input_shape(program: Any) -> Optional[tuple[int, ...]]:
    """The recorded per-sample shape of the program's one user input (its fake tensor in
    ``meta["val"]``, batch dimension dropped, which may be dynamic), or None when unknown."""
    users = set(program.graph_signature.user_inputs)
    vals = [n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder" and n.name in users]
    shape = getattr(vals[0], "shape", None) if len(vals) == 1 else None
    if shape is None or len(shape) < 1 or not all(type(d) is int for d in shape[1:]):
        return None
    return tuple(int(d) for d in shape[1:])


def _check_pt2(data: bytes, source: str) -> None:
    """Refuse archive entries that torch would unpickle (or load as code) before torch sees them."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FrontendError(f"{source}: not a torch.export archive ({one_line(exc)})") from None
    with z:
        names = [info.filename for info in check_zip(z, source)]
        root = names[0].split("/")[0] if names else ""
        if not root or not all(n.startswith(root + "/") for n in names):
            raise FrontendError(f"{source}: not a torch.export archive (its entries share no root folder)")
        entries = {n[len(root) + 1 :]: n for n in names}
        for entry in entries:
            _check_entry_name(entry, source)
        for needed in _PT2_NEEDED:
            if needed not in entries:
                raise FrontendError(f"{source}: not a torch.export archive (no {needed})")
        for config, pattern in (
            ("data/weights/model_weights_config.json", r"weight_\d+"),
            ("data/constants/model_constants_config.json", r"tensor_\d+"),
        ):
            _check_payload_config(_json(z, entries[config], source), config, pattern, source)
        _check_expressions(_json(z, entries["models/model.json"], source), source)
        _check_sample_inputs(z.read(entries["data/sample_inputs/model.pt"]), source)


def _check_entry_name(entry: str, source: str) -> None:
    for prefix, what in _REFUSED_ENTRIES.items():
        if entry.startswith(prefix):
            raise FrontendError(f"{source}: refusing archive entry {entry!r}: it holds {what}")
    if entry.endswith(".pt") and entry != "data/sample_inputs/model.pt":
        raise FrontendError(f"{source}: refusing archive entry {entry!r}: legacy pickled weights (re-save it)")
    if not _PT2_ENTRIES.fullmatch(entry):
        raise FrontendError(f"{source}: refusing archive entry {entry!r}: not part of a torch.export program")


def _json(z: zipfile.ZipFile, name: str, source: str) -> Any:
    if z.getinfo(name).file_size > _MAX_JSON_BYTES:
        raise FrontendError(f"{source}: {name} is larger than {_MAX_JSON_BYTES:,} bytes")
    try:
        return json.loads(z.read(name))
    except (ValueError, RecursionError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise FrontendError(f"{source}: {name} is not valid JSON ({one_line(exc)})") from None


def _check_payload_config(config: Any, name: str, path_pattern: str, source: str) -> None:
    """Every weight or constant must be raw tensor bytes (``use_pickle`` false) of a declared size
    within the budget; torch would unpickle the others with ``weights_only=False``."""
    from torch._export.serde import serialize

    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise FrontendError(f"{source}: {name} has no 'config' table")
    dtypes = getattr(serialize, "_SERIALIZE_TO_TORCH_DTYPE", {})  # serialized dtype code -> torch dtype
    for key, meta in entries.items():
        what = f"{source}: {name}: {key!r}"
        if not isinstance(meta, dict) or meta.get("use_pickle", False) is not False:
            raise FrontendError(f"{what} is stored with pickle, which can run code; snnc reads raw tensors only")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or not re.fullmatch(path_pattern, path_name):
            raise FrontendError(f"{what}: refusing payload {path_name!r} (only raw tensors are read)")
        tensor = meta.get("tensor_meta")
        sizes = tensor.get("sizes") if isinstance(tensor, dict) else None
        if not isinstance(sizes, list) or not all(isinstance(d, dict) and type(d.get("as_int")) is int for d in sizes):
            raise FrontendError(f"{what}: tensor sizes must be a list of integers")
        dtype = dtypes.get(tensor.get("dtype"))
        limits.check_array(tuple(d["as_int"] for d in sizes), dtype.itemsize if dtype else 16, what)


def _check_expressions(model: Any, source: str) -> None:
    """Shape expressions (``expr_str``) go to ``sympy.sympify``, which evaluates Python: allow only
    symbols, integers and arithmetic."""
    stack = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            expr = item.get("expr_str")
            if expr is not None and not _safe_expression(expr):
                raise FrontendError(f"{source}: models/model.json: refusing shape expression {str(expr)[:60]!r}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _safe_expression(expr: Any) -> bool:
    if not isinstance(expr, str) or len(expr) > 200 or "**" in expr or "//" in expr:
        return False
    expr = _SYMBOL_CALL.sub(r"\1", expr)  # a dynamic dimension, as torch.export writes it
    pos = 0
    while pos < len(expr.rstrip()):
        m = _EXPR_TOKENS.match(expr, pos)
        if not m or m.end() == pos:
            return False
        name = m.group(1)
        if name is not None and name not in _SYMPY_NAMES and not re.fullmatch(r"[a-z]{1,4}\d{1,9}", name):
            return False
        pos = m.end()
    return True


def _check_sample_inputs(raw: bytes, source: str) -> None:
    """torch loads sample inputs with ``weights_only=True`` and, when that fails, again without it:
    load them here first, weights-only, and refuse the archive when that fails."""
    import torch

    what = f"{source}: data/sample_inputs/model.pt"
    if not raw:
        return
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise FrontendError(f"{what}: not a torch zip file; refusing it (torch would unpickle it unsafely)")
    with zipfile.ZipFile(io.BytesIO(raw)) as inner:
        check_zip(inner, what)
    try:
        value = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler raises many kinds
        raise FrontendError(f"{what}: needs more than weights-only unpickling; refusing it ({one_line(exc)})") from None
    if not isinstance(value, (tuple, dict)):
        raise FrontendError(f"{what}: expected a tuple or dict, found {type(value).__name__}")


def _lifted_inputs(program: Any, source: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Parameter, buffer and constant placeholders of an exported graph -> their values, and
    the names of its user outputs (the graph is read directly: ``ExportedProgram.module()``
    would generate and exec guard code from strings in the file)."""
    import torch
    from torch.export.graph_signature import InputKind, OutputKind

    lifted = {}
    sig = program.graph_signature
    for spec in sig.input_specs:
        name = getattr(spec.arg, "name", None)
        if spec.kind == InputKind.USER_INPUT:
            continue
        table = program.state_dict if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) else program.constants
        value = table.get(spec.target, program.constants.get(spec.target))
        if spec.kind not in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR) or not isinstance(
            value, torch.Tensor
        ):
            raise FrontendError(f"{source}: graph input {name!r} ({spec.kind.name}) is not a plain tensor")
        lifted[name] = _to_numpy(value)
    outputs = [getattr(s.arg, "name", None) for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]
    return lifted, outputs


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence torch's loggers (they print tracebacks for archives they retry)."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


# --------------------------------------------------------------------------- TorchScript archives

_TS_ENTRIES = re.compile(
    r"data\.pkl|constants\.pkl|version|byteorder|\.data/version|\.data/serialization_id|\.format_version"
    r"|\.storage_alignment|data/\d+|constants/\d+|traced_inputs\.pkl|traced_inputs/\d+|extra/[\w.\-]+"
    r"|code/(?:[\w\-]+/){0,32}[\w\-.]+\.py(?:\.debug_pkl)?"
)
_TS_NEEDED = ("data.pkl", "constants.pkl", "version")
# torch's TorchScript parser and unpickler recurse per level and crash (SIGSEGV) near 5,000 levels
_MAX_NESTING = 200
# aten op -> the handler (a torch.export kind) that reads the same arguments
_TS_TENSOR_OPS = {
    "aten::conv2d": "conv2d.default",
    "aten::_convolution": "conv2d.default",
    "aten::linear": "linear.default",
    "aten::relu": "relu.default",
    "aten::relu_": "relu.default",
    "aten::relu6": "relu6",
    "aten::hardtanh": "hardtanh.default",
    "aten::hardtanh_": "hardtanh.default",
    "aten::clamp": "clamp.default",
    "aten::max_pool2d": "max_pool2d.default",
    "aten::avg_pool2d": "avg_pool2d.default",
    "aten::adaptive_avg_pool2d": "adaptive_avg_pool2d.default",
    "aten::batch_norm": "batch_norm.default",
    "aten::flatten": "flatten.using_ints",
    "aten::view": "view.default",
    "aten::reshape": "view.default",
    "aten::add": "add.Tensor",
    "aten::add_": "add.Tensor",
    "aten::mul": "mul.Tensor",
    "aten::div": "div.Tensor",
    "aten::cat": "cat.default",
    "aten::softmax": "softmax.int",
    "aten::dropout": "dropout.default",
    "aten::feature_dropout": "dropout.default",
    "aten::contiguous": "clone.default",
    "aten::detach": "clone.default",
}


def _scalar_ops() -> dict[str, Any]:
    """Integer, boolean and string arithmetic on constants (shape checks, size folding)."""
    import operator

    def size(s: tuple, dim: Any = None) -> Any:
        return list(s) if dim is None else s[dim]

    return {
        "aten::dim": len,
        "aten::size": size,
        "aten::len": len,
        "aten::__getitem__": operator.getitem,
        "aten::eq": operator.eq,
        "aten::ne": operator.ne,
        "aten::lt": operator.lt,
        "aten::gt": operator.gt,
        "aten::le": operator.le,
        "aten::ge": operator.ge,
        "aten::add": operator.add,
        "aten::sub": operator.sub,
        "aten::mul": operator.mul,
        "aten::floordiv": operator.floordiv,
        "aten::neg": operator.neg,
        "aten::__not__": operator.not_,
        "aten::__is__": operator.is_,
        "aten::__isnot__": operator.is_not,
        "aten::Int": int,
        "aten::Float": float,
        "aten::ScalarImplicit": lambda v: v,
        "prim::NumToTensor": lambda v: v,
        "prim::unchecked_cast": lambda v: v,
        "aten::format": lambda fmt, *args: "<message>",
        "aten::warn": lambda *args: None,
    }


_TS_SCALAR = _scalar_ops()
_TS_SHAPE_OPS = ("aten::dim", "aten::size")  # the only scalar ops that read a tensor (its shape)
_TS_STRUCTURE = {"prim::Constant", "prim::GetAttr", "prim::If", "prim::ListConstruct", "prim::TupleConstruct"}
_TS_STRUCTURE |= {"prim::ListUnpack", "prim::TupleUnpack", "prim::Uninitialized"}
# refused when reached; in the branches that eval mode skips (batch-norm statistics, input checks) they are fine
_TS_DEAD_ONLY = {"prim::RaiseException": "raises an exception", "prim::Loop": "a loop is not supported"}


def _is_torchscript(data: bytes) -> bool:
    """A zip whose entries under its root folder include ``constants.pkl`` or ``code/`` (what
    ``torch.jit.save`` writes; a state dict has ``data.pkl`` and ``data/N`` only)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError):
        return False
    rest = [n.split("/", 1)[1] for n in names if "/" in n]
    return any(r == "constants.pkl" or r.startswith("code/") for r in rest)


def _load_torchscript(data: bytes, input_shape: Optional[tuple[int, ...]], source: str) -> Graph:
    """Check the archive, let ``torch.jit.load`` compile and unpickle it, read its graph."""
    import torch

    recorded = _check_torchscript(data, source)
    try:
        with _quiet("torch.jit"):
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for bad archives
        raise FrontendError(f"{source}: not a loadable TorchScript archive ({one_line(exc)})") from None
    shape = _input_shape(input_shape, recorded, source, "a scripted TorchScript module does not record its input shape")
    try:
        module.eval()
        graph = module.inlined_graph
    except Exception as exc:  # noqa: BLE001 - a module without forward, or one torch cannot inline
        raise FrontendError(f"{source}: cannot read the module's forward graph ({one_line(exc)})") from None
    return _TorchScriptReader(source).read(module, graph, shape)


def _check_torchscript(data: bytes, source: str) -> Optional[tuple[int, ...]]:
    """Refuse what ``torch.jit.load`` would run or should not see; return the traced input's
    per-sample shape when the archive records one."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = [info.filename for info in check_zip(z, source)]
        root = names[0].split("/")[0] if names else ""
        if not root or not all(n.startswith(root + "/") for n in names):
            raise FrontendError(f"{source}: not a TorchScript archive (its entries share no root folder)")
        entries = {n[len(root) + 1 :]: n for n in names}
        if "model.json" in entries:
            raise FrontendError(f"{source}: refusing a pre-1.4 TorchScript archive (model.json); re-save it")
        for entry in entries:
            if not _TS_ENTRIES.fullmatch(entry):
                raise FrontendError(f"{source}: refusing archive entry {entry!r}: not part of a TorchScript archive")
        for needed in _TS_NEEDED:
            if needed not in entries:
                raise FrontendError(f"{source}: not a TorchScript archive (no {needed})")
        for entry, name in entries.items():
            if entry.endswith(".py"):
                _check_code(z.read(name), f"{source}: {entry}")
            elif entry.endswith(".debug_pkl"):
                _scan_pickle(z, entries, entry, source, None)
        _scan_pickle(z, entries, "constants.pkl", source, "constants/")
        _scan_pickle(z, entries, "data.pkl", source, "data/")
        if "traced_inputs.pkl" not in entries:
            return None
        # torch.jit.save writes the traced input's storage empty (torch.jit.load does not restore it): shapes only
        traced = _scan_pickle(z, entries, "traced_inputs.pkl", source, None)
        return _traced_input_shape(traced, f"{source}: traced_inputs.pkl")


_ITEMSIZE = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1}
_ITEMSIZE |= {"Byte": 1, "Bool": 1}


class _TensorShape:
    def __init__(self, size: tuple[int, ...]) -> None:
        self.shape = size


class _Object:
    """A TorchScript object, as data (its class is never looked up)."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PickleScanner(pickle.Unpickler):
    """Reads a TorchScript pickle as data before torch does, to check every tensor against the
    bytes the archive holds for it (torch's unpickler takes the declared element count on trust).
    Its only globals are the harmless functions below; no torch or other code is reachable."""

    def __init__(self, raw: bytes, records: Optional[dict[str, int]], what: str) -> None:
        super().__init__(io.BytesIO(raw))
        self.records, self.what = records, what  # storage key -> bytes in the archive (None: not checked)

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, _type: value
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist"):
            return lambda value: value
        if module == "torch.jit._pickle" and name == "build_tensorlist":
            return lambda value: value
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("torch", "device"):
            return str
        if module == "torch" and name.endswith("Storage") and name[: -len("Storage")] in _ITEMSIZE:
            return _ITEMSIZE[name[: -len("Storage")]]
        if (module == "__torch__" or module.startswith("__torch__.")) and len(module) < 500:
            return _Object
        raise pickle.UnpicklingError(f"global {module[:80]}.{name[:80]} is not read by snnc")

    def persistent_load(self, pid: Any) -> tuple[int, int]:
        """('storage', itemsize, key, device, numel) -> (itemsize, numel), checked against the record."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and type(pid[1]) is int):
            raise pickle.UnpicklingError(f"persistent id {str(pid)[:80]} is not a storage")
        itemsize, key, numel = pid[1], pid[2], pid[4]
        if type(numel) is not int or numel < 0 or not isinstance(key, str):
            raise pickle.UnpicklingError(f"storage {str(key)[:40]!r}: bad element count")
        have = None if self.records is None else self.records.get(key)
        if numel and self.records is not None and (have is None or numel * itemsize > have):
            raise FrontendError(
                f"{self.what}: storage {key[:40]!r} declares {numel * itemsize:,} bytes, "
                f"the archive holds {have or 0:,}"
            )
        return itemsize, numel

    def tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> _TensorShape:
        itemsize, numel = storage
        if not all(type(v) is int and v >= 0 for v in (offset, *size, *stride)) or len(size) != len(stride):
            raise pickle.UnpicklingError(f"tensor of size {str(size)[:60]} has bad strides or offset")
        limits.check_array(tuple(size), itemsize, self.what)
        if all(size) and size and offset + sum((d - 1) * s for d, s in zip(size, stride, strict=True)) >= numel:
            raise FrontendError(f"{self.what}: a tensor of size {tuple(size)} reaches past its storage")
        return _TensorShape(tuple(size))


def _scan_pickle(z: zipfile.ZipFile, entries: dict[str, str], pkl: str, source: str, tensors: Optional[str]) -> Any:
    """The pickle ``pkl`` read as data, its tensors checked against the ``<tensors><key>`` records
    (not checked where ``tensors`` is None)."""
    what = f"{source}: {pkl}"
    records = None
    if tensors is not None:
        records = {e[len(tensors) :]: z.getinfo(n).file_size for e, n in entries.items() if e.startswith(tensors)}
    try:
        value = _PickleScanner(z.read(entries[pkl]), records, what).load()
    except (FrontendError, BudgetError):
        raise
    except Exception as exc:  # noqa: BLE001 - a broken pickle raises many kinds
        raise FrontendError(f"{what}: not a TorchScript pickle ({one_line(exc)})") from None
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise FrontendError(f"{what}: values nested deeper than {_MAX_NESTING} levels")
        item = item.__dict__.get("state") if isinstance(item, _Object) else item
        if isinstance(item, dict):
            item = [*item.keys(), *item.values()]
        if isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
    return value


def _namespace_of(node: Any) -> bool:
    """Whether ``node`` is ``ops`` or ``torch.ops`` (whose attribute names an operator namespace)."""
    import ast

    if isinstance(node, ast.Name):
        return node.id == "ops"
    return isinstance(node, ast.Attribute) and node.attr == "ops" and isinstance(node.value, ast.Name)


def _check_code(raw: bytes, what: str) -> None:
    """TorchScript code is Python syntax: parse it with Python's parser (which runs nothing) and
    refuse ``__setstate__`` (torch.jit.load runs it while unpickling), operators outside aten and
    prim (extension or Python-registered ops, which torch's compiler might fold on constants), and
    deep nesting (torch's compiler recurses per level and crashes the process on a few thousand)."""
    import ast

    try:
        tree = ast.parse(raw.decode("utf-8"))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FrontendError(f"{what}: not TorchScript code snnc reads ({one_line(exc)})") from None
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise FrontendError(f"{what}: code nested deeper than {_MAX_NESTING} levels")
        if isinstance(node, ast.FunctionDef) and node.name == "__setstate__":
            raise FrontendError(f"{what}: defines __setstate__, which torch.jit.load would run; snnc refuses it")
        if isinstance(node, ast.Attribute) and _namespace_of(node.value) and node.attr not in ("aten", "prim"):
            raise FrontendError(f"{what}: calls operators of namespace {node.attr[:40]!r}; snnc reads aten, prim only")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _traced_input_shape(value: Any, what: str) -> Optional[tuple[int, ...]]:
    """``{"forward": [tensor, ...]}`` -> the per-sample shape of the one traced input."""
    inputs = value.get("forward") if isinstance(value, dict) else None
    if not inputs:
        return None
    if len(inputs) != 1 or not isinstance(inputs[0], _TensorShape) or len(inputs[0].shape) < 1:
        raise FrontendError(f"{what}: the module was traced with {len(inputs)} inputs; snnc supports one tensor")
    return inputs[0].shape[1:]


class _Ref:
    """A tensor computed at run time (what a handler sees where an fx graph has a Node)."""

    op = "torchscript"

    def __init__(self, name: str) -> None:
        self.name = name


class _TorchScriptReader:
    """Walks a ScriptModule's inlined graph: constants and attributes are read, branches on
    constant conditions are taken, shape arithmetic is evaluated here, and tensor ops become
    FrontendNodes for the torch handlers. Nothing of the module is run."""

    def __init__(self, source: str) -> None:
        self.b = TorchBuilder(source, {})
        self.env: dict[str, Any] = {}  # value name -> constant, submodule or _Ref

    def read(self, module: Any, graph: Any, shape: tuple[int, ...]) -> Graph:
        self._check_kinds(graph.block())
        inputs = list(graph.inputs())
        if len(inputs) != 2:
            raise FrontendError(f"{self.b.source}: forward takes {len(inputs) - 1} inputs; snnc supports one")
        self.env[inputs[0].debugName()] = module
        x = inputs[1].debugName()
        self.b.add(FrontendNode(x, "input", [], [x]), ir.Input, [], shape=shape)
        self.env[x] = _Ref(x)
        outputs = self._block(graph.block())
        flat = outputs[0] if len(outputs) == 1 and isinstance(outputs[0], (list, tuple)) else outputs
        if not flat or not all(isinstance(o, _Ref) for o in flat):
            raise FrontendError(f"{self.b.source}: the module's outputs are not all computed tensors")
        self.b.graph.outputs = [self.b.values[o.name] for o in flat]
        self.b.graph.remove_dead()
        return self.b.graph

    def _check_kinds(self, block: Any) -> None:
        """One error naming every op snnc cannot map, in any branch."""
        known = set(_TS_TENSOR_OPS) | set(_TS_SCALAR) | _TS_STRUCTURE | set(_TS_DEAD_ONLY)
        missing: dict[str, str] = {}
        stack = [block]
        while stack:
            for n in stack.pop().nodes():
                if n.kind() not in known:
                    missing.setdefault(n.kind(), _name(n))
                stack.extend(n.blocks())
        if missing:
            listed = ", ".join(f"{kind} ({name!r})" for kind, name in missing.items())
            raise FrontendError(f"{self.b.source}: unsupported TorchScript ops: {listed}")

    def _block(self, block: Any) -> list[Any]:
        for n in block.nodes():
            try:
                self._node(n)
            except SnncError:
                raise
            except Exception as exc:  # noqa: BLE001 - attribute lookups and torch's IValue conversions
                raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({n.kind()}): {one_line(exc)}") from None
        return [self._value(v, None) for v in block.outputs()]

    def _value(self, v: Any, n: Any) -> Any:
        try:
            return self.env[v.debugName()]
        except KeyError:
            raise FrontendError(f"{self.b.source}: node {_name(n)!r}: input %{v.debugName()} is not computed") from None

    def _node(self, n: Any) -> None:
        kind, outs = n.kind(), list(n.outputs())
        args = [self._value(v, n) for v in n.inputs()]
        if kind in _TS_DEAD_ONLY:
            raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({kind}): {_TS_DEAD_ONLY[kind]}")
        if kind == "prim::If":
            if not isinstance(args[0], bool):
                raise FrontendError(f"{self.b.source}: node {_name(n)!r} (prim::If): branches on the input's values")
            results = self._block(list(n.blocks())[0 if args[0] else 1])
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            results = list(args[0])
        elif kind in _TS_TENSOR_OPS and any(isinstance(a, _Ref) or _has_ref(a) for a in args):
            results = [self._tensor_op(n, kind, args)]
        else:
            results = [self._constant(n, kind, args)]
        if len(results) != len(outs):
            raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({kind}): {len(results)} values for {len(outs)}")
        for v, r in zip(outs, results, strict=True):
            self.env[v.debugName()] = r

    def _constant(self, n: Any, kind: str, args: list[Any]) -> Any:
        """A value known without running the module: constants, attributes, shape arithmetic."""
        if kind == "prim::Constant":
            value = n.output().toIValue()
            return _to_numpy(value) if hasattr(value, "detach") else value
        if kind == "prim::GetAttr":
            value = getattr(args[0], n.s("name"))
            return _to_numpy(value) if hasattr(value, "detach") else value
        if kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            return list(args) if kind == "prim::ListConstruct" else tuple(args)
        if kind == "prim::Uninitialized":
            return None
        if kind not in _TS_SCALAR:
            raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({kind}): computes on constants only")
        if kind in _TS_SHAPE_OPS and args and isinstance(args[0], _Ref):
            args[0] = (1, *self.b.shape(self.b.values[args[0].name]))
        if any(isinstance(a, (_Ref, np.ndarray)) for a in args):
            raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({kind}): depends on tensor values")
        try:
            return _TS_SCALAR[kind](*args)
        except (TypeError, ValueError, IndexError, ArithmeticError) as exc:
            raise FrontendError(f"{self.b.source}: node {_name(n)!r} ({kind}): {one_line(exc)}") from None

    def _tensor_op(self, n: Any, kind: str, args: list[Any]) -> _Ref:
        handler_kind = _TS_TENSOR_OPS[kind]
        name = _name(n)
        if kind == "aten::_convolution":
            if args[6] or len(np.shape(args[1])) != 4:
                raise FrontendError(f"{self.b.source}: node {name!r} ({kind}): only 2-d, not transposed, convolution")
            args = [*args[:6], args[8]]
        elif kind in ("aten::add", "aten::add_") and len(args) == 3:
            if args[2] != 1:
                raise FrontendError(f"{self.b.source}: node {name!r} ({kind}): alpha={args[2]} is not supported")
            args = args[:2]
        elif kind in ("aten::dropout", "aten::feature_dropout") and args[2]:
            raise FrontendError(f"{self.b.source}: node {name!r} ({kind}): dropout in training mode")
        elif kind == "aten::batch_norm" and args[5]:
            raise FrontendError(f"{self.b.source}: node {name!r} ({kind}): batch-norm in training mode")
        elif kind == "aten::softmax":
            args = args[:2]
        inputs = [a.name for a in _refs(args)]
        node = FrontendNode(name, handler_kind, inputs, [name], {"args": tuple(args), "kwargs": {}, "target": kind})
        self.b.guarded(node, TORCH.handlers[handler_kind])
        return _Ref(name)


def _name(n: Any) -> str:
    outs = list(n.outputs()) if n is not None else []
    return outs[0].debugName() if outs else (n.kind() if n is not None else "?")


def _has_ref(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and any(isinstance(v, _Ref) for v in value)


def _refs(args: list[Any]) -> list[_Ref]:
    out = []
    for a in args:
        out.extend(v for v in (a if isinstance(a, (list, tuple)) else [a]) if isinstance(v, _Ref))
    return out


# --------------------------------------------------------------------------- .pt / .pth state dicts


def _load_state_dict_file(data: bytes, input_shape: tuple[int, ...], module_spec: Any, source: str) -> Graph:
    import torch

    state = _read_state_dict(data, source)
    if not module_spec:
        raise FrontendError(f"{source}: a state_dict needs its module class: --module package.module:Class")
    mod_name, _, cls_name = str(module_spec).partition(":")
    if not mod_name or not cls_name:
        raise FrontendError(f"{source}: --module {module_spec!r}: expected package.module:Class")
    try:
        module = getattr(importlib.import_module(mod_name), cls_name)()
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything
        raise FrontendError(f"{source}: cannot build {module_spec} ({one_line(exc)})") from None
    if not isinstance(module, torch.nn.Module):
        raise FrontendError(f"{source}: {module_spec} is a {type(module).__name__}, not a torch.nn.Module")
    try:
        module.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - missing keys, size mismatches, dtypes
        raise FrontendError(f"{source}: does not fit {module_spec} ({one_line(exc)})") from None
    return load_torch(module, input_shape, source)


def _read_state_dict(data: bytes, source: str) -> dict[str, Any]:
    """A weights-only state_dict: str keys, tensor values, declared sizes within the budget."""
    import torch

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise FrontendError(
            f"{source}: not a torch zip file (the pre-1.6 format is not read); "
            "save a state_dict with torch.save, or a torch.export program as .pt2"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        check_zip(z, source)
    try:
        with _quiet("torch.serialization"):
            state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler raises many kinds
        raise FrontendError(
            f"{source}: not a weights-only torch file ({one_line(exc)}); "
            "save a state_dict, or a torch.export program as .pt2"
        ) from None
    if not isinstance(state, dict):
        raise FrontendError(f"{source}: expected a state_dict, found {type(state).__name__}")
    total = 0
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise FrontendError(
                f"{source}: state_dict entry {str(key)[:80]!r} is a {type(value).__name__}, not a tensor"
            )
        limits.check_array(tuple(value.shape), value.element_size(), f"{source}: {key}")
        total += value.numel() * value.element_size()
    limits.check("bytes", total, f"{source}: all tensors together")
    return state


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
    b.add(
        node,
        ir.Conv2d,
        [_x(b, node)],
        tensors={"weight": _np(m.weight), "bias": bias},
        strides=_pair(m.stride),
        pads=_pads(m.padding),
        dilations=_pair(m.dilation),
        groups=m.groups,
    )


@TORCH.handler("linear.default")
def aten_linear(b: GraphBuilder, node: FrontendNode) -> None:
    w, bias = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    b.add(node, ir.Dense, [_x(b, node)], tensors={"weight": w, "bias": bias})


@TORCH.handler("conv2d.default")
def aten_conv2d(b: GraphBuilder, node: FrontendNode) -> None:
    w, bias = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    b.add(
        node,
        ir.Conv2d,
        [_x(b, node)],
        tensors={"weight": w, "bias": bias},
        strides=_pair(_arg(b, node, 3, "stride", 1)),
        pads=_pads(_arg(b, node, 4, "padding", 0)),
        dilations=_pair(_arg(b, node, 5, "dilation", 1)),
        groups=int(_arg(b, node, 6, "groups", 1)),
    )


@TORCH.handler("batch_norm.default", "_native_batch_norm_legit_no_training.default")
def aten_batch_norm(b: GraphBuilder, node: FrontendNode) -> None:
    x = _x(b, node)
    c = b.shape(x)[0]
    scale, shift = _arg(b, node, 1, "weight"), _arg(b, node, 2, "bias")
    scale = np.ones(c, np.float32) if scale is None else scale
    shift = np.zeros(c, np.float32) if shift is None else shift
    eps_index = 7 if node.kind == "batch_norm.default" else 6
    tensors = {
        "scale": scale,
        "bias": shift,
        "mean": _arg(b, node, 3, "running_mean"),
        "var": _arg(b, node, 4, "running_var"),
    }
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
