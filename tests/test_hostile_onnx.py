"""Hostile ONNX models: odd graphs end in a one-line SnncError naming the file and node, and constant
folding never allocates beyond the byte budget (issue 9, parts 4 and 6)."""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import snnc
from snnc.ir import limits
from snnc.ir.errors import SnncError

BUDGET = limits.Budget(bytes=16 * 2**20)  # every hostile model declares far more than this


def _t(name: str, values: Any, dtype: Any = np.float32) -> TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _model(nodes: list, inits: list | None = None, in_dims: list | None = None) -> onnx.ModelProto:
    """``nodes`` (helper.make_node) ahead of ``y = Relu(x)``, ``x`` of shape ``in_dims``."""
    graph = helper.make_graph(
        [*nodes, helper.make_node("Relu", ["x"], ["y"], name="out")],
        "hostile",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims or ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits or [],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _node(op: str, inputs: list[str], name: str = "evil", **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs)


def _shape(name: str, dims: list[int]) -> TensorProto:
    return _t(name, dims, np.int64)


def _raw(name: str, data_type: int, dims: list[int], raw: bytes) -> TensorProto:
    t = TensorProto(name=name, data_type=data_type, dims=dims)
    t.raw_data = raw
    return t


def _string_tensor() -> TensorProto:
    return helper.make_tensor("w", TensorProto.STRING, [4, 4], [b"a"] * 16)


def _deep_if(depth: int) -> onnx.NodeProto:
    leaf = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["z"])],
        "leaf",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    branch = leaf
    for i in range(depth):  # one nested branch per level (two would double the size per level)
        node = helper.make_node("If", ["cond"], ["z"], name=f"if{i}", then_branch=branch, else_branch=leaf)
        branch = helper.make_graph([node], f"g{i}", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    return node


C4 = _t("c", [1.0, 2.0, 3.0, 4.0])
ZERO = _t("v", [0], np.int64)
CASES: dict[str, tuple[list, list]] = {
    "reshape_one_input": ([_node("Reshape", ["c"])], [C4]),
    "reshape_negative_dims": ([_node("Reshape", ["c", "s"])], [C4, _shape("s", [-5, 2])]),
    "reshape_huge_target": ([_node("Reshape", ["c", "s"])], [C4, _shape("s", [10**6, 10**6])]),
    "constant_of_shape_huge": ([_node("ConstantOfShape", ["s"])], [_shape("s", [10**6, 10**6])]),
    "constant_of_shape_1e12": ([_node("ConstantOfShape", ["s"])], [_shape("s", [10**12])]),
    "constant_of_shape_negative": ([_node("ConstantOfShape", ["s"])], [_shape("s", [-3, 4])]),
    "constant_of_shape_empty_value": (
        [_node("ConstantOfShape", ["s"], value=helper.make_tensor("v", TensorProto.FLOAT, [0], []))],
        [_shape("s", [2])],
    ),
    "constant_of_shape_no_input": ([_node("ConstantOfShape", [])], []),
    "expand_huge": ([_node("Expand", ["c", "s"])], [C4, _shape("s", [10**6, 10**6])]),
    "gather_amplifies": (
        [
            _node("ConstantOfShape", ["s1"], "data"),
            _node("ConstantOfShape", ["s2"], "idx", value=ZERO),
            _node("Gather", ["data_out", "idx_out"]),
        ],
        [_shape("s1", [1000, 1000]), _shape("s2", [10**5])],
    ),
    "add_broadcast_amplifies": (
        [
            _node("ConstantOfShape", ["s1"], "a"),
            _node("ConstantOfShape", ["s2"], "b"),
            _node("Add", ["a_out", "b_out"]),
        ],
        [_shape("s1", [4000, 1]), _shape("s2", [1, 4000])],
    ),
    "concat_axis_out_of_range": ([_node("Concat", ["c", "c"], axis=5)], [C4]),
    "concat_no_axis": ([_node("Concat", ["c", "c"])], [C4]),
    "gather_index_out_of_range": ([_node("Gather", ["c", "i"])], [C4, _shape("i", [99])]),
    "slice_missing_inputs": ([_node("Slice", ["c"])], [C4]),
    "unsqueeze_without_axes": ([_node("Unsqueeze", ["c"])], [C4]),
    "unsqueeze_100_axes": ([_node("Unsqueeze", ["c", "a"])], [C4, _shape("a", list(range(100)))]),
    "cast_to_string": ([_node("Cast", ["c"], to=TensorProto.STRING)], [C4]),
    "cast_to_unknown": ([_node("Cast", ["c"], to=999)], [C4]),
    "integer_division_by_zero": ([_node("Div", ["i", "z"])], [_shape("i", [4]), _shape("z", [0])]),
    "sum_of_nothing": ([_node("Sub", [])], []),
    "string_initializer": ([helper.make_node("Gemm", ["x", "w"], ["g"], name="fc")], [_string_tensor()]),
    "raw_data_too_short": ([], [_raw("w", TensorProto.FLOAT, [1000], b"\x00" * 8)]),
    "initializer_declares_1e12": ([], [_raw("w", TensorProto.FLOAT, [10**6, 10**6], b"")]),
    "initializer_negative_dims": ([], [_raw("w", TensorProto.FLOAT, [-4], b"")]),
    "initializer_undefined_type": ([], [_raw("w", 0, [1], b"\x00")]),
    "initializer_defined_twice": ([], [C4, C4]),
    "missing_initializer": ([helper.make_node("Gemm", ["x", "nope", "nope2"], ["g"], name="fc")], []),
    "cycle": (
        [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2")],
        [],
    ),
    "output_defined_twice": ([helper.make_node("Relu", ["x"], ["y"], name="dup")], []),
    "output_shadows_initializer": ([helper.make_node("Relu", ["x"], ["c"], name="dup")], [C4]),
    "gemm_1d_weight": ([helper.make_node("Gemm", ["x", "w"], ["g"], name="fc")], [_t("w", [1.0, 2.0])]),
    "gemm_bias_mismatch": (
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], name="fc")],
        [_t("w", np.ones((3, 4))), _t("b", np.ones((2, 2)))],
    ),
    "maxpool_without_kernel": ([helper.make_node("MaxPool", ["x"], ["p"], name="pool")], []),
    "pad_odd_pads": ([helper.make_node("Pad", ["x"], ["p"], name="pad", pads=[0, 1, 0])], []),
    "softmax_axis_out_of_range": ([helper.make_node("Softmax", ["x"], ["s"], name="sm", axis=7)], []),
    "clip_vector_min": ([helper.make_node("Clip", ["x", "lo"], ["p"], name="clip")], [_t("lo", [1.0, 2.0])]),
    "mul_by_empty": ([helper.make_node("Mul", ["x", "e"], ["p"], name="mul")], [_t("e", np.zeros(0))]),
    "non_utf8_attribute": ([_node("Relu", ["x"], note=b"\xff\xfe")], []),
    "non_utf8_known_attribute": (
        [helper.make_node("Pad", ["x", "p"], ["q"], name="pad", mode=b"\xff")],
        [_shape("p", [0, 0, 0, 0])],
    ),
    "int_where_float_expected": (
        [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc", transB=1, alpha=10**18)],
        [_t("w", np.ones((3, 4)))],
    ),
    "nan_attribute": (
        [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc", transB=1, alpha=float("nan"))],
        [_t("w", np.ones((3, 4)))],
    ),
    "custom_domain_relu": ([helper.make_node("Relu", ["x"], ["p"], name="r", domain="evil.ops")], []),
    "empty_input_name": ([helper.make_node("Relu", [""], ["p"], name="r")], []),
    "nested_if": ([_deep_if(30)], []),
    "input_1e12_neurons": ([], []),
}


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_nesting_deeper_than_protobuf_allows(tmp_path: Path) -> None:
    """Graph attributes nested 5,000 deep, written byte by byte (protobuf itself refuses to build them)."""
    graph = b""
    for _ in range(5000):  # GraphProto.node(1) -> NodeProto.attribute(5) -> AttributeProto.g(6)
        attr = _field(1, b"then_branch") + _field(6, graph) + _varint(20 << 3) + _varint(5)
        graph = _field(1, _field(4, b"If") + _field(5, attr))
    path = tmp_path / "deep.onnx"
    path.write_bytes(_varint(1 << 3) + _varint(8) + _field(7, graph))
    with pytest.raises(SnncError) as err:
        snnc.load(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_graph_fails_in_one_line_within_budget(name: str, tmp_path: Path) -> None:
    nodes, inits = CASES[name]
    dims = ["batch", 10**6, 10**6] if name == "input_1e12_neurons" else None
    path = _save(_model(nodes, inits, dims), tmp_path / f"{name}.onnx")
    tracemalloc.start()
    try:
        with limits.using(BUDGET), pytest.raises(SnncError) as err:
            snnc.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    assert peak < BUDGET.bytes, f"{peak:,} bytes allocated"


@pytest.mark.parametrize("version", [0, 999])
def test_unknown_opset_is_refused(version: int, tmp_path: Path) -> None:
    model = _model([])
    model.opset_import[0].version = version
    with pytest.raises(SnncError, match="opset"):
        snnc.load(_save(model, tmp_path / "opset.onnx"))


def test_long_chain_loads_quickly(tmp_path: Path) -> None:
    n = 2000
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"r{i}") for i in range(n)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info(f"v{n}", TensorProto.FLOAT, None)],
    )
    path = _save(helper.make_model(graph), tmp_path / "chain.onnx")
    start = time.perf_counter()
    assert len(snnc.load(path)) > n
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------- fuzzing


def _seed_model() -> onnx.ModelProto:
    """A small valid model that exercises constant folding (Shape -> Gather -> Concat -> Reshape) and Gemm."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Shape", ["x"], ["sh"], name="shape"),
        helper.make_node("Gather", ["sh", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "w", "b"], ["h"], name="fc", transB=1),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    inits = [
        _t("zero", 0, np.int64),
        _t("axes", [0], np.int64),
        _t("minus1", [-1], np.int64),
        _t("w", rng.normal(size=(3, 8))),
        _t("b", rng.normal(size=3)),
    ]
    graph = helper.make_graph(
        nodes,
        "seed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


SEED = _seed_model().SerializeToString()


def _load_only_snnc_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.onnx"
        path.write_bytes(data)
        with limits.using(BUDGET):
            try:
                snnc.load(path)
            except SnncError as exc:
                assert "\n" not in str(exc), str(exc)


def test_seed_model_loads(tmp_path: Path) -> None:
    assert snnc.load(_save(_seed_model(), tmp_path / "seed.onnx")).outputs


EDIT = st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"]))
FUZZ = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(st.lists(EDIT, min_size=1, max_size=8))
def test_fuzzed_bytes_raise_only_snnc_errors(edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(SEED)
    for pos, value, how in edits:
        pos = min(pos, len(data) - 1)
        if how == "set":
            data[pos] = value
        elif how == "insert":
            data.insert(pos, value)
        else:
            del data[pos]
    _load_only_snnc_errors(bytes(data))


INTS = st.one_of(st.integers(-3, 8), st.sampled_from([0, -1, 10**6, 10**12, 2**62, -(2**62)]))


@st.composite
def _mutated_model(draw: st.DrawFn) -> bytes:
    """The seed model with a few protobuf fields changed: dims, data types, attributes, op types, names."""
    model = _seed_model()
    g = model.graph
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["dims", "dtype", "attr", "op", "input", "drop_node", "shape_value", "in_dim"]))
        if what == "dims":
            t = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            t.dims[:] = draw(st.lists(INTS, max_size=4))
        elif what == "dtype":
            g.initializer[draw(st.integers(0, len(g.initializer) - 1))].data_type = draw(st.integers(0, 20))
        elif what == "attr":
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            node.attribute.append(
                helper.make_attribute(draw(st.sampled_from(["axis", "transB", "to", "start"])), draw(INTS))
            )
        elif what == "op":
            g.node[draw(st.integers(0, len(g.node) - 1))].op_type = draw(
                st.sampled_from(
                    [
                        "ConstantOfShape",
                        "Gather",
                        "Slice",
                        "Squeeze",
                        "Cast",
                        "Concat",
                        "Add",
                        "Div",
                        "Reshape",
                        "Shape",
                        "Pad",
                        "Clip",
                        "MaxPool",
                        "Flatten",
                        "Conv",
                        "BatchNormalization",
                        "Softmax",
                    ]
                )
            )
        elif what == "input":
            node = g.node[draw(st.integers(0, len(g.node) - 1))]
            names = ["x", "sh", "n", "n1", "target", "flat", "h", "w", "b", "zero", "axes", "minus1", "", "nope"]
            node.input[:] = draw(st.lists(st.sampled_from(names), max_size=5))
        elif what == "drop_node":
            del g.node[draw(st.integers(0, len(g.node) - 1))]
        elif what == "shape_value":
            g.initializer[2].CopyFrom(_t("minus1", draw(st.lists(INTS, min_size=1, max_size=3)), np.int64))
        else:
            dim = g.input[0].type.tensor_type.shape.dim[draw(st.integers(0, 2))]
            dim.dim_value = draw(INTS)
    return model.SerializeToString()


@FUZZ
@given(_mutated_model())
def test_mutated_fields_raise_only_snnc_errors(data: bytes) -> None:
    _load_only_snnc_errors(data)


@pytest.mark.parametrize("location", ["w.bin", "../secret.bin"])
def test_external_data_is_never_read(tmp_path: Path, location: str) -> None:
    """A tensor stored outside the .onnx file (beside it, or in a file elsewhere) is refused by
    name, and the bytes of that file never reach the graph."""
    folder = tmp_path / "model"
    folder.mkdir()
    secret = np.full((4, 16), 7.0, np.float32)
    (tmp_path / "secret.bin").write_bytes(secret.tobytes())
    (folder / "w.bin").write_bytes(secret.tobytes())
    weight = _t("w", np.zeros((4, 16)))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(secret.nbytes))):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    path = folder / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(SnncError, match="initializer 'w': external data is not read"):
        snnc.load(path)
