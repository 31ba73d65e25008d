"""snnc's intermediate representation: ops, graph, verifier and the ``.snnir`` text form.

The data model only: this package imports no frontend, pass or target.
"""

from .errors import BudgetError, SnncError
from .graph import SNN_GRAPH_ATTRS, Graph, sanitize_id
from .npz import write_npz
from .ops import OP_TYPES, IRError, Op, Shape, TensorRef, op_type
from .text import FORMAT_VERSION, load, parse_graph, print_graph, save
from .verifier import verify

__all__ = [
    "FORMAT_VERSION", "OP_TYPES", "SNN_GRAPH_ATTRS", "BudgetError", "Graph", "IRError", "SnncError", "Op", "Shape",
    "TensorRef", "load", "op_type", "parse_graph", "print_graph", "sanitize_id", "save",
    "verify", "write_npz",
]  # fmt: skip
