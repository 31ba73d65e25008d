"""The ``.snnir`` text form: printer, lark parser, and save/load with a sidecar ``.npz``.

    snnir 1
    graph {dt = 1.0}
    @fc1.weight : tensor<f32, 100x784>
    %in = ann.input() {shape = [1, 28, 28]} : [1, 28, 28]
    %fc1 = ann.dense(%in) {weight = @fc1.weight, activation = "relu"} : [100]
    return %fc1

Tensors of at most ``INLINE_LIMIT`` elements are written inline (``= [...]``); larger ones
live in the sidecar ``.npz`` that :func:`save` writes next to the text file.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import lark
import numpy as np

from .graph import Graph
from .npz import write_npz
from .ops import IRError, TensorRef, op_type

FORMAT_VERSION = 1
INLINE_LIMIT = 8
_DTYPES = {
    "f16": np.float16, "f32": np.float32, "f64": np.float64, "i8": np.int8, "i16": np.int16,
    "i32": np.int32, "i64": np.int64, "u8": np.uint8, "bool": np.bool_,
}  # fmt: skip
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


# --------------------------------------------------------------------------- printing


def format_value(value: Any) -> str:
    """One attribute value in text form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, TensorRef):
        return f"@{value.name}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise IRError(f"cannot print attribute value {value!r}")


def format_attrs(attrs: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in attrs.items()) + "}"


def _tensor_decl(name: str, array: np.ndarray) -> str:
    dtype = _DTYPE_NAMES.get(array.dtype)
    if dtype is None:
        raise IRError(f"tensor @{name} has unsupported dtype {array.dtype}")
    dims = f", {'x'.join(str(d) for d in array.shape)}" if array.ndim else ""
    line = f"@{name} : tensor<{dtype}{dims}>"
    if array.size <= INLINE_LIMIT:
        line += " = " + format_value(array.reshape(-1).tolist())
    return line


def print_graph(graph: Graph) -> str:
    """The text form of a graph (deterministic: same graph, same bytes)."""
    lines = [f"snnir {FORMAT_VERSION}"]
    if graph.attrs:
        lines.append("graph " + format_attrs(dict(sorted(graph.attrs.items()))))
    order = graph.topo()
    for name in _tensor_order(graph, order):
        lines.append(_tensor_decl(name, graph.tensors[name]))
    for node_id in order:
        op = graph.op(node_id)
        args = ", ".join(f"%{i}" for i in graph.inputs(node_id))
        attrs = op.attrs()
        text = f"%{node_id} = {op.OPNAME}({args})"
        if attrs:
            text += " " + format_attrs(attrs)
        lines.append(f"{text} : {format_value(graph.shape(node_id))}")
    lines.append("return " + ", ".join(f"%{o}" for o in graph.outputs))
    return "\n".join(lines) + "\n"


def _tensor_order(graph: Graph, order: list[str]) -> list[str]:
    """Referenced tensors first in op order, then any unreferenced ones by name."""
    seen: dict[str, None] = {}
    for node_id in order:
        for ref in graph.op(node_id).tensor_refs().values():
            seen.setdefault(ref.name)
    return list(seen) + sorted(set(graph.tensors) - set(seen))


# --------------------------------------------------------------------------- parsing


@functools.cache
def _parser() -> lark.Lark:
    grammar = (Path(__file__).parent / "snnir.lark").read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True)


class _Values(lark.Transformer):
    def number(self, items: list[lark.Token]) -> Any:
        text = str(items[0])
        if any(c in text for c in ".eEn"):  # float syntax, inf or nan
            return float(text)
        return int(text)

    def string(self, items: list[lark.Token]) -> str:
        return json.loads(str(items[0]))

    def true(self, _: list) -> bool:
        return True

    def false(self, _: list) -> bool:
        return False

    def tensor_ref(self, items: list[lark.Token]) -> TensorRef:
        return TensorRef(str(items[0])[1:])

    def list(self, items: list) -> list:
        return [] if items == [None] else list(items)

    def attr(self, items: list) -> tuple[str, Any]:
        return str(items[0]), items[1]

    def attrs(self, items: list) -> dict[str, Any]:
        return dict(i for i in items if i is not None)


def parse_graph(text: str, tensors: Optional[Mapping[str, np.ndarray]] = None, source: str = "<text>") -> Graph:
    """Parse the text form; ``tensors`` supplies the arrays that are not written inline.

    Errors are one line naming ``source`` and the line number.
    """
    try:
        tree = _Values().transform(_parser().parse(text))
    except lark.exceptions.UnexpectedInput as exc:
        raise IRError(f"{source}:{exc.line}: syntax error near {_context(text, exc)}") from None
    except lark.exceptions.VisitError as exc:
        raise IRError(f"{source}: {exc.orig_exc}") from None
    tensors = tensors or {}
    header, *items = tree.children
    version = int(header.children[0])
    if not 1 <= version <= FORMAT_VERSION:
        raise IRError(f"{source}:1: unsupported snnir format version {version} (this snnc reads 1..{FORMAT_VERSION})")
    graph = Graph()
    for item in items:
        line = item.meta.line if not item.meta.empty else 0
        try:
            _build(graph, item, tensors)
        except IRError as exc:
            raise IRError(f"{source}:{line}: {exc}") from None
    return graph


def _context(text: str, exc: lark.exceptions.UnexpectedInput) -> str:
    snippet = text.splitlines()[exc.line - 1][max(exc.column - 1, 0):][:30] if exc.line > 0 else ""
    return repr(snippet) if snippet else "end of file"


def _build(graph: Graph, item: lark.Tree, tensors: Mapping[str, np.ndarray]) -> None:
    kind = item.data
    if kind == "graph_attrs":
        graph.attrs.update(item.children[0])
    elif kind == "tensor_decl":
        _build_tensor(graph, item, tensors)
    elif kind == "node":
        value, opname, *rest = item.children
        args = [str(t)[1:] for t in rest if isinstance(t, lark.Token) and t.type == "VALUE"]
        attrs = next((r for r in rest if isinstance(r, dict)), {})
        shape = rest[-1]
        try:
            op = op_type(str(opname))(**attrs)
        except TypeError as exc:
            raise IRError(f"{opname}: {exc}") from None
        graph.add(str(value)[1:], op, args)
        if tuple(shape) != graph.shape(str(value)[1:]):
            raise IRError(f"%{str(value)[1:]}: declared shape {shape} but inferred {list(graph.shape(str(value)[1:]))}")
    elif kind == "returns":
        graph.outputs = [str(t)[1:] for t in item.children]
        for o in graph.outputs:
            if o not in graph:
                raise IRError(f"return of undefined %{o}")


def _build_tensor(graph: Graph, item: lark.Tree, tensors: Mapping[str, np.ndarray]) -> None:
    name = str(item.children[0])[1:]
    dtype = np.dtype(_DTYPES[str(item.children[1])])
    dims_tree = next((c for c in item.children[2:] if isinstance(c, lark.Tree) and c.data == "dims"), None)
    shape = tuple(int(d) for d in str(dims_tree.children[0]).split("x")) if dims_tree else ()
    inline = next((c for c in item.children[2:] if isinstance(c, list)), None)
    if inline is not None:
        if len(inline) != math.prod(shape):
            raise IRError(f"@{name}: {len(inline)} inline values for shape {list(shape)}")
        array = np.array(inline, dtype=dtype).reshape(shape)
    elif name in tensors:
        array = np.asarray(tensors[name])
        if array.shape != shape or array.dtype != dtype:
            found, declared = f"{array.dtype} {list(array.shape)}", f"{dtype} {list(shape)}"
            raise IRError(f"@{name}: weights file has {found}, text declares {declared}")
    else:
        raise IRError(f"@{name}: tensor not inline and not in the weights file")
    graph.add_tensor(name, array)


# --------------------------------------------------------------------------- files


def save(graph: Graph, path: str | Path) -> Path:
    """Write ``path`` (.snnir) and, when large tensors exist, its sidecar ``.npz``."""
    path = Path(path)
    path.write_text(print_graph(graph))
    big = {k: v for k, v in graph.tensors.items() if v.size > INLINE_LIMIT}
    sidecar = path.with_suffix(".npz")
    if big:
        write_npz(sidecar, big)
    return path


def load(path: str | Path) -> Graph:
    """Read a .snnir file and its sidecar .npz (if any)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise IRError(f"{path}: cannot read ({exc.strerror})") from None
    sidecar = path.with_suffix(".npz")
    tensors: dict[str, np.ndarray] = {}
    if sidecar.exists():
        with np.load(sidecar, allow_pickle=False) as data:
            tensors = {k: data[k] for k in data.files}
    return parse_graph(text, tensors, source=str(path))
