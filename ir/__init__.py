"""snnc's intermediate representation: ops, graph, verifier and the ``.snnir`` text form, and in
:mod:`snnc.ir.semantics` what an snn graph means when executed.

This package imports no frontend, pass or target (tests/test_layers.py checks it).
"""

from .errors import BudgetError, SnncError
from .graph import GRAPH_ATTR_SCHEMA, SNN_GRAPH_ATTRS, Graph, check_graph_attrs, graph_number, sanitize_id
from .npz import write_npz
from .ops import OP_TYPES, IRError, Op, Shape, TensorRef, op_type
from .text import FORMAT_VERSION, load, parse_graph, print_graph, save
from .verifier import verify

__all__ = [
    "FORMAT_VERSION",
    "GRAPH_ATTR_SCHEMA",
    "OP_TYPES",
    "SNN_GRAPH_ATTRS",
    "BudgetError",
    "Graph",
    "IRError",
    "SnncError",
    "Op",
    "Shape",
    "TensorRef",
    "check_graph_attrs",
    "graph_number",
    "load",
    "op_type",
    "parse_graph",
    "print_graph",
    "sanitize_id",
    "save",
    "verify",
    "write_npz",
]
