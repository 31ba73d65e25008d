"""snnc's intermediate representation: ops, graph, verifier and the ``.snnir`` text form.

The data model only: this package imports no frontend, pass or target.
"""

from .errors import BudgetError, SnncError
from .graph import GRAPH_ATTR_SCHEMA, SNN_GRAPH_ATTRS, Graph, check_graph_attrs, sanitize_id
from .npz import write_npz
from .ops import OP_TYPES, IRError, Op, Shape, TensorRef, op_type
from .text import FORMAT_VERSION, load, parse_graph, print_graph, save
from .verifier import verify

__all__ = [
    "FORMAT_VERSION", "GRAPH_ATTR_SCHEMA", "OP_TYPES", "SNN_GRAPH_ATTRS", "BudgetError", "Graph", "IRError",
    "SnncError", "Op", "Shape", "TensorRef", "check_graph_attrs", "load", "op_type", "parse_graph", "print_graph",
    "sanitize_id", "save", "verify", "write_npz",
]  # fmt: skip
