"""The ``.snnir`` text form: printer, lark parser, and save/load with a sidecar ``.npz``.

    snnir 1
    graph {dt = 1.0}
    @fc1.weight : tensor<f32, 100x784>
    %in = ann.input() {shape = [1, 28, 28]} : [1, 28, 28]
    %fc1 = ann.dense(%in) {weight = @fc1.weight, activation = "relu"} : [100]
    return %fc1

Tensors of at most ``INLINE_LIMIT`` elements are written inline (``= [...]``); larger ones
live in the sidecar ``.npz`` that :func:`save` writes next to the text file.

A ``.snnir`` file is untrusted: every failure is an :class:`IRError` (or a
:class:`~snnc.ir.errors.BudgetError`) naming the file and line; declared sizes are checked
against the budget before anything is allocated; only the sidecar arrays the text declares are
read, each after its ``.npy`` header was checked against the declaration.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import lark
import numpy as np

from . import limits
from .errors import SnncError
from .graph import Graph, check_graph_attrs
from .npz import NpzReader, write_npz
from .ops import IRError, TensorRef, op_type

FORMAT_VERSION = 1
INLINE_LIMIT = 8
MAX_DEPTH = 16  # nesting of lists in attribute values (the printer writes at most 2)
MAX_DIGITS = 30  # digits of an integer literal (int64 needs 19)
_INT_RANGE = (-(2**63), 2**63 - 1)
_DTYPES = {
    "f16": np.float16,
    "f32": np.float32,
    "f64": np.float64,
    "i8": np.int8,
    "i16": np.int16,
    "i32": np.int32,
    "i64": np.int64,
    "u8": np.uint8,
    "bool": np.bool_,
}
_DTYPE_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
Tensors = Union[Mapping[str, np.ndarray], NpzReader]


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


class _LineError(Exception):
    """An error found while parsing a token, with the token's line (turned into an IRError)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _List(list):
    """A parsed list that knows how deeply it nests."""

    depth = 1


_TOKENS = re.compile(
    r"(?P<WS>[ \t\f\r\n]+)|(?P<COMMENT>#[^\n]*)"
    r"|(?P<VALUE>%[A-Za-z_][A-Za-z0-9_]*)|(?P<TENSOR>@[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<OPNAME>(?:ann|snn)\.[a-z_0-9]+)|(?P<WORD>[A-Za-z_][A-Za-z0-9_]*)|(?P<DIMS>[0-9]+(?:x[0-9]+)+)"
    r"|(?P<NUMBER>[+-](?:inf|nan)(?![A-Za-z0-9_])|[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r'|(?P<STRING>"(?:[^"\\\n]|\\.)*")|(?P<PUNCT>[\[\]{}(),=:<>])'
)
_WORDS = {
    "snnir": "SNNIR",
    "graph": "GRAPH",
    "return": "RETURN",
    "tensor": "TENSOR_KW",
    "true": "TRUE",
    "false": "FALSE",
    "inf": "NANINF",
    "nan": "NANINF",
}
_PUNCT = {
    "[": "LSQB",
    "]": "_RSQB",
    ",": "_COMMA",
    "=": "_EQ",
    ":": "_COLON",
    "<": "_LT",
    ">": "_GT",
    "(": "_LPAR",
    ")": "_RPAR",
    "{": "_LBRACE",
    "}": "_RBRACE",
}


class _Lexer(lark.lexer.Lexer):
    """All tokens of a text from one regular expression (lark's own lexers are slower by half)."""

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, text: str) -> Iterator[lark.Token]:
        line, line_start, pos, end = 1, 0, 0, len(text)
        match = _TOKENS.match
        while pos < end:
            m = match(text, pos)
            if m is None:
                raise _LineError(line, f"syntax error near {text[pos : pos + 30]!r}")
            kind, value = m.lastgroup, m.group()
            if kind == "WS":
                newlines = value.count("\n")
                if newlines:
                    line, line_start = line + newlines, pos + value.rindex("\n") + 1
            elif kind != "COMMENT":
                if kind == "WORD":
                    kind = _WORDS.get(value, "NAME")
                elif kind == "PUNCT":
                    kind = _PUNCT[value]
                yield lark.Token(kind, value, pos, line, pos - line_start + 1)
            pos = m.end()


@functools.cache
def _parser() -> lark.Lark:
    """The LALR parser; the transformer runs while parsing (no parse tree is built)."""
    grammar = (Path(__file__).parent / "snnir.lark").read_text()
    return lark.Lark(grammar, parser="lalr", lexer=_Lexer, transformer=_Values())


def _int(token: lark.Token, what: str = "integer") -> int:
    text = str(token)
    if len(text.lstrip("+-")) > MAX_DIGITS:
        raise _LineError(token.line, f"{what} {text[:20]}... has more than {MAX_DIGITS} digits")
    value = int(text)
    if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        raise _LineError(token.line, f"{what} {value} does not fit in 64 bits")
    return value


class _Values(lark.Transformer):
    """Turns each statement into a tuple ``(kind, line, ...)``; values become Python values."""

    def start(self, items: list) -> list:
        return items

    def header(self, items: list[lark.Token]) -> tuple:
        number = items[1]
        if not str(number).isdigit():
            raise _LineError(number.line, f"format version {str(number)[:20]!r} is not a whole number")
        return ("header", number.line, _int(number, "format version"))

    def graph_attrs(self, items: list) -> tuple:
        return ("graph", items[0].line, items[1])

    def tensor_decl(self, items: list) -> tuple:
        name, _, dtype, *rest = items
        if str(dtype) not in _DTYPES:
            raise _LineError(dtype.line, f"unknown dtype {str(dtype)[:30]!r} (one of {', '.join(_DTYPES)})")
        dims = next((r for r in rest if isinstance(r, tuple)), ())
        inline = next((r for r in rest if isinstance(r, list)), None)
        return ("tensor", name.line, str(name)[1:], str(dtype), dims, inline)

    def dims(self, items: list[lark.Token]) -> tuple[int, ...]:
        token = items[0]
        parts = str(token).split("x")
        if not all(p.isdigit() for p in parts):
            raise _LineError(token.line, f"tensor dimensions {str(token)[:30]!r} are not whole numbers")
        if any(len(p) > MAX_DIGITS for p in parts):
            raise _LineError(token.line, f"tensor dimension with more than {MAX_DIGITS} digits")
        return tuple(int(p) for p in parts)

    def node(self, items: list) -> tuple:
        value, opname, *rest = items
        args = [str(t)[1:] for t in rest if isinstance(t, lark.Token) and t.type == "VALUE"]
        attrs = next((r for r in rest if isinstance(r, dict)), {})
        return ("node", value.line, str(value)[1:], str(opname), args, attrs, rest[-1])

    def returns(self, items: list[lark.Token]) -> tuple:
        return ("returns", items[0].line, [str(t)[1:] for t in items[1:]])

    def number(self, items: list[lark.Token]) -> Any:
        token = items[0]
        text = str(token)
        if any(c in text for c in ".eEn"):  # float syntax, inf or nan
            return float(text)
        return _int(token)

    def string(self, items: list[lark.Token]) -> str:
        try:
            return json.loads(str(items[0]))
        except ValueError as exc:
            raise _LineError(items[0].line, f"bad string {str(items[0])[:30]!r}: {exc}") from None

    def true(self, _: list) -> bool:
        return True

    def false(self, _: list) -> bool:
        return False

    def tensor_ref(self, items: list[lark.Token]) -> TensorRef:
        return TensorRef(str(items[0])[1:])

    def list(self, items: list) -> _List:
        bracket, *values = items
        result = _List([] if values == [None] else values)
        result.depth = 1 + max((v.depth for v in result if isinstance(v, _List)), default=0)
        if result.depth > MAX_DEPTH:
            raise _LineError(bracket.line, f"lists nest deeper than {MAX_DEPTH} levels")
        return result

    def attr(self, items: list) -> tuple[lark.Token, Any]:
        return items[0], items[1]

    def attrs(self, items: list) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for item in items:
            if item is None:
                continue
            name, value = item
            if str(name) in result:
                raise _LineError(name.line, f"attribute {name} given twice")
            result[str(name)] = value
        return result


def parse_graph(text: str, tensors: Optional[Tensors] = None, source: str = "<text>") -> Graph:
    """Parse the text form; ``tensors`` supplies the arrays that are not written inline.

    Errors are one line naming ``source`` and the line number.
    """
    statements = _parse(text, source)
    tensors = tensors if tensors is not None else {}
    _, _, version = statements[0]
    if not 1 <= version <= FORMAT_VERSION:
        raise IRError(f"{source}:1: unsupported snnir format version {version} (this snnc reads 1..{FORMAT_VERSION})")
    graph = Graph()
    for kind, line, *payload in statements[1:]:
        try:
            _BUILDERS[kind](graph, payload, tensors)
        except SnncError as exc:
            raise type(exc)(f"{source}:{line}: {exc}") from None
    return graph


def _parse(text: str, source: str) -> list[tuple]:
    """The statements of ``text`` as tuples, or an IRError naming the line."""
    try:
        return _parser().parse(text)
    except _LineError as exc:
        raise IRError(f"{source}:{exc.line}: {exc}") from None
    except lark.exceptions.UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        if isinstance(exc, lark.exceptions.UnexpectedEOF) or getattr(token, "type", None) == "$END" or exc.line < 1:
            raise IRError(f"{source}:{text.count(chr(10)) + 1}: unexpected end of file") from None
        raise IRError(f"{source}:{exc.line}: syntax error near {_context(text, exc)}") from None
    except (IRError, lark.exceptions.LarkError) as exc:
        raise IRError(f"{source}: {exc}") from None


def _context(text: str, exc: lark.exceptions.UnexpectedInput) -> str:
    lines = text.splitlines()
    if not 0 < exc.line <= len(lines):
        return "end of file"
    snippet = lines[exc.line - 1][max(exc.column - 1, 0) :][:30]
    return repr(snippet) if snippet else "end of line"


def _build_graph_attrs(graph: Graph, payload: list, tensors: Tensors) -> None:
    (attrs,) = payload
    check_graph_attrs(attrs)
    graph.attrs.update(attrs)


def _build_node(graph: Graph, payload: list, tensors: Tensors) -> None:
    node_id, opname, args, attrs, shape = payload
    try:
        op = op_type(opname)(**attrs)
    except TypeError as exc:
        raise IRError(f"{opname}: {exc}") from None
    graph.add(node_id, op, args)
    if not isinstance(shape, list) or tuple(shape) != graph.shape(node_id):
        raise IRError(f"%{node_id}: declared shape {format_value(shape)} but inferred {list(graph.shape(node_id))}")


def _build_returns(graph: Graph, payload: list, tensors: Tensors) -> None:
    (outputs,) = payload
    for o in outputs:
        if o not in graph:
            raise IRError(f"return of undefined %{o}")
    graph.outputs = outputs


def _build_tensor(graph: Graph, payload: list, tensors: Tensors) -> None:
    name, dtype_name, shape, inline = payload
    dtype = np.dtype(_DTYPES[dtype_name])
    if name in graph.tensors:
        raise IRError(f"@{name} declared twice")
    if any(d < 1 for d in shape):
        raise IRError(f"@{name}: dimensions must be positive, got {list(shape)}")
    limits.check_array(shape, dtype.itemsize, f"@{name}")
    if inline is not None:
        if len(inline) != math.prod(shape):
            raise IRError(f"@{name}: {len(inline)} inline values for shape {list(shape)}")
        array = _inline_array(name, inline, dtype).reshape(shape)
    elif isinstance(tensors, NpzReader):
        array = tensors.read(name, dtype, shape)
    elif name in tensors:
        array = np.asarray(tensors[name])
        if array.shape != shape or array.dtype != dtype:
            found, declared = f"{array.dtype} {list(array.shape)}", f"{dtype} {list(shape)}"
            raise IRError(f"@{name}: weights file has {found}, text declares {declared}")
    else:
        raise IRError(f"@{name}: tensor not inline and not in the weights file")
    graph.add_tensor(name, array)


def _inline_array(name: str, values: list, dtype: np.dtype) -> np.ndarray:
    """Inline values as an array of ``dtype``: each must be a value of that kind, within its range."""
    if dtype.kind == "b":
        if not all(isinstance(v, bool) for v in values):
            raise IRError(f"@{name}: bool tensors take true or false")
        return np.array(values, dtype=dtype)
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise IRError(f"@{name}: inline values must be numbers")
    if dtype.kind == "f":
        big = float(np.finfo(dtype).max)
        if any(math.isfinite(v) and abs(v) > big for v in values):
            raise IRError(f"@{name}: a value exceeds the range of {dtype}")
        return np.array(values, dtype=np.float64).astype(dtype)
    info = np.iinfo(dtype)
    if any(not isinstance(v, int) or not info.min <= v <= info.max for v in values):
        raise IRError(f"@{name}: {dtype} tensors take integers in [{info.min}, {info.max}]")
    return np.array(values, dtype=dtype)


_BUILDERS = {"graph": _build_graph_attrs, "tensor": _build_tensor, "node": _build_node, "returns": _build_returns}


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
    """Read a .snnir file and the arrays it declares from its sidecar .npz (if any)."""
    path = Path(path)
    text = _read_text(path)
    sidecar = path.with_suffix(".npz")
    if not sidecar.exists() and not sidecar.is_symlink():
        return parse_graph(text, {}, source=str(path))
    with NpzReader(sidecar, folder=path.parent) as reader:
        return parse_graph(text, reader, source=str(path))


def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (a regular file), its size checked against the budget first."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # before opening: a named pipe would block the open
            raise IRError(f"{path}: not a regular file")
        with path.open("rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise IRError(f"{path}: not a regular file")
            limits.check("bytes", info.st_size, str(path))
            data = f.read(limits.current().bytes + 1)
    except OSError as exc:
        raise IRError(f"{path}: cannot read ({exc.strerror or exc})") from None
    limits.check("bytes", len(data), str(path))  # a file that grew while it was read
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise IRError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
