"""Hostile `.snnir` files and sidecars: one-line IRErrors naming file and line, budgets checked before
allocation, graph attributes and op attributes range-checked, sidecar arrays read lazily and checked,
and graph queries that stay linear on long chains (issue 9)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from snnc.ir import BudgetError, Graph, IRError, SnncError, limits, load, parse_graph, print_graph, save, verify
from snnc.ir import ops as ir
from snnc.ir.npz import write_npz

OK = "snnir 1\n%in = ann.input() {shape = [3]} : [3]\nreturn %in\n"


def with_graph(attrs: str) -> str:
    return f"snnir 1\ngraph {{{attrs}}}\n%in = ann.input() {{shape = [3]}} : [3]\nreturn %in\n"


def assert_one_line(exc: BaseException, *needles: str) -> None:
    text = str(exc)
    assert "\n" not in text and all(n in text for n in needles), text


# --------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "m.snnir:1"),
        ("   \n\n", "m.snnir:3"),
        ("snnir 1\n%in = ann.input() {shape = [" + "9" * 5000 + "]} : [3]\nreturn %in\n", "m.snnir:2"),
        ("snnir " + "9" * 5000 + "\nreturn %x\n", "m.snnir:1"),
        ("snnir 1\n%in = ann.input() {shape = [99999999999999999999]} : [3]\nreturn %in\n", "64 bits"),
        ("snnir 1\n%in = ann.input() {shape = " + "[" * 20000 + "]" * 20000 + "} : [3]\nreturn %in\n", "m.snnir:2"),
        ("snnir 1\n@w : tensor<f32, 2> = " + "[" * 5000 + "]" * 5000 + "\n" + OK[8:], "nest deeper"),
        (with_graph("dt = 1.0, dt = 2.0"), "dt given twice"),
        ("snnir 1\n%in = ann.input() {shape = [3], shape = [3]} : [3]\nreturn %in\n", "shape given twice"),
        (with_graph('note = "\\q"'), "m.snnir:2"),
        ("snnir 1\n@w : tensor<f32, 0>\n" + OK[8:], "positive"),
        ("snnir 1\n@w : tensor<f32, 2> = [1.0]\n" + OK[8:], "inline values"),
        ('snnir 1\n@w : tensor<f32, 2> = [1.0, "a"]\n' + OK[8:], "numbers"),
        ("snnir 1\n@w : tensor<f32, 2> = [1.0, [2.0]]\n" + OK[8:], "numbers"),
        ("snnir 1\n@w : tensor<i8, 2> = [1, 1000]\n" + OK[8:], "integers in"),
        ("snnir 1\n@w : tensor<i32, 2> = [1, 2.5]\n" + OK[8:], "integers in"),
        ("snnir 1\n@w : tensor<f16, 2> = [1.0, 1e10]\n" + OK[8:], "range"),
        ("snnir 1\n@w : tensor<bool, 2> = [1, 0]\n" + OK[8:], "true or false"),
        ("snnir 1\n@w : tensor<f32> = [1.0]\n@w : tensor<f32> = [1.0]\n" + OK[8:], "declared twice"),
        ("snnir 1\n@w : tensor<f32, " + "9" * 40 + ">\n" + OK[8:], "digits"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3, [1]]\nreturn %in\n", "declared shape"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%in = ann.relu(%in) : [3]\nreturn %in\n", "duplicate"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%r = ann.relu(%in) {x = 1} : [3]\nreturn %r\n", "ann.relu"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%r = ann.relu(%in, %in) : [3]\nreturn %r\n", "input"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3]\nreturn %in, %zz\n", "undefined"),
        ("snnir 1\n%" + "a" * 300 + " = ann.input() {shape = [3]} : [3]\nreturn %in\n", "bad op id"),
        ('snnir 1\n%in = ann.input() {shape = "x"} : [3]\nreturn %in\n', "must be a list"),
        ("snnir 1\n%in = ann.input() {shape = [true]} : [3]\nreturn %in\n", "must be int"),
        ("snnir 1\n%in = ann.input() {shape = [3]} : [3]\n\x00\nreturn %in\n", "m.snnir:3"),
    ],
)
def test_bad_text_is_one_line_error(text: str, needle: str) -> None:
    with pytest.raises(IRError) as err:
        parse_graph(text, source="m.snnir")
    assert_one_line(err.value, "m.snnir", needle)


def test_non_utf8_and_empty_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.snnir"
    bad.write_bytes(OK.encode()[:20] + b"\n\xff\xfe\n" + OK.encode()[20:])
    with pytest.raises(IRError) as err:
        load(bad)
    assert_one_line(err.value, str(bad) + ":3", "UTF-8")
    empty = tmp_path / "empty.snnir"
    empty.write_text("")
    with pytest.raises(IRError) as err:
        load(empty)
    assert_one_line(err.value, str(empty) + ":1")


def test_an_attribute_named_like_a_keyword_still_parses() -> None:
    assert parse_graph(with_graph('graph = 1, return = "x"')).attrs == {"graph": 1, "return": "x"}


# --------------------------------------------------------------------------- graph attributes


@pytest.mark.parametrize(
    ("attrs", "key"),
    [
        ('presentation_time = "\\"\\"\\" + __import__(\\"os\\").system(\\"x\\")"', "presentation_time"),
        ("dt = 0", "dt"),
        ("dt = -1.0", "dt"),
        ("dt = nan", "dt"),
        ("dt = inf", "dt"),
        ("dt = 1e-9", "dt"),
        ('dt = "1.0"', "dt"),
        ("dt = true", "dt"),
        ("dt = [1.0]", "dt"),
        ("presentation_time = -5", "presentation_time"),
        ("presentation_time = inf", "presentation_time"),
        ("presentation_time = nan", "presentation_time"),
        ("presentation_time = 1e300", "presentation_time"),
        ("dt = 1.0, presentation_time = 0.5", "presentation_time"),
        ("instances = 0", "instances"),
        ("instances = 1.5", "instances"),
        ("instances = 10000000000", "instances"),
        ("pause = -1.0", "pause"),
        ("pause = nan", "pause"),
        ('input_layout = "NCWH"', "input_layout"),
        ("input_layout = 1", "input_layout"),
        ('normalized = "yes"', "normalized"),
        ("note = [1, 2]", "note"),
        ("note = nan", "note"),
        ('note = "' + "x" * 5000 + '"', "note"),
    ],
)
def test_graph_attributes_are_checked(attrs: str, key: str) -> None:
    with pytest.raises(IRError) as err:
        parse_graph(with_graph(attrs), source="m.snnir")
    assert_one_line(err.value, "m.snnir:2", f"graph attribute {key}")


def test_good_graph_attributes_pass() -> None:
    text = with_graph(
        'dt = 0.1, presentation_time = 50, pause = 0.0, instances = 4, input_layout = "NHWC", '
        'normalized = true, note = "any \\"text\\" }"'
    )
    g = parse_graph(text)
    assert g.attrs["instances"] == 4 and g.attrs["input_layout"] == "NHWC"
    assert parse_graph(print_graph(g)).attrs == g.attrs


@pytest.mark.parametrize(("key", "value"), [("dt", float("nan")), ("presentation_time", "100"), ("instances", -1)])
def test_verifier_checks_graph_attributes(key: str, value: object) -> None:
    g = parse_graph(OK)
    verify(g)
    g.attrs[key] = value
    with pytest.raises(IRError, match=f"graph attribute {key}"):
        verify(g)


# --------------------------------------------------------------------------- op attributes


@pytest.mark.parametrize(
    "make",
    [
        lambda: ir.Population(tau_m=float("nan")),
        lambda: ir.Population(v_threshold=float("inf")),
        lambda: ir.Population(v_reset=float("nan")),
        lambda: ir.Population(tau_refrac=float("inf")),
        lambda: ir.Population(v_min=float("-inf")),
        lambda: ir.Population(weight_shift=(10**6, 0)),
        lambda: ir.Source(shape=(3,), max_rate=float("nan")),
        lambda: ir.Source(shape=(3,), gain=float("inf")),
        lambda: ir.Projection(connectivity="pool", kernel=(1, 1), delay=float("nan")),
        lambda: ir.Projection(connectivity="pool", kernel=(1, 1), delay=1e12),
        lambda: ir.Projection(connectivity="pool", kernel=(1, 1), scale=float("nan")),
        lambda: ir.BatchNorm(
            scale=ir.TensorRef("a"),
            bias=ir.TensorRef("a"),
            mean=ir.TensorRef("a"),
            var=ir.TensorRef("a"),
            epsilon=float("nan"),
        ),
        lambda: ir.Dropout(ratio=2.0),
        lambda: ir.Dropout(ratio=float("nan")),
        lambda: ir.Scale(factor=float("inf")),
        lambda: ir.Pad(pads=(0, 0), value=float("nan")),
        lambda: ir.Clip(min=float("nan")),
        lambda: ir.Softmax(axis=[0]),
    ],
)
def test_op_attributes_are_finite_and_in_range(make) -> None:
    with pytest.raises(IRError):
        make()


def test_nan_op_attribute_in_text_names_the_line() -> None:
    text = "snnir 1\n%in = snn.source() {shape = [3], max_rate = nan} : [3]\nreturn %in\n"
    with pytest.raises(IRError) as err:
        parse_graph(text, source="m.snnir")
    assert_one_line(err.value, "m.snnir:2", "max_rate")


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("snnir 1\n%in = ann.input() {shape = [1000000, 1000000]} : [1000000, 1000000]\nreturn %in\n", "neurons"),
        ("snnir 1\n%in = snn.source() {shape = [1000000000000]} : [1000000000000]\nreturn %in\n", "neurons"),
        ("snnir 1\n@w : tensor<f32, 1000000x1000000>\n" + OK[8:], "bytes"),
        (
            "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%p = ann.pad(%in) {pads = [0, 999999999999]} : [3]\n"
            "return %p\n",
            "neurons",
        ),
    ],
)
def test_declared_sizes_are_checked_against_the_budget(text: str, needle: str) -> None:
    with pytest.raises(BudgetError) as err:
        parse_graph(text, source="m.snnir")
    assert_one_line(err.value, "m.snnir:", needle)


def test_node_budget() -> None:
    text = "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n"
    text += "".join(f"%r{i} = ann.relu(%{'in' if i == 0 else f'r{i - 1}'}) : [3]\n" for i in range(20))
    text += "return %r19\n"
    parse_graph(text)
    with limits.using(limits.Budget(nodes=10)), pytest.raises(BudgetError, match="nodes"):
        parse_graph(text, source="m.snnir")


# --------------------------------------------------------------------------- sidecars


def dense_model(tmp_path: Path) -> Path:
    g = Graph()
    x = g.add("in", ir.Input(shape=(4,)))
    w = g.add_tensor("fc.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    g.outputs = [g.add("fc", ir.Dense(weight=w), [x])]
    return save(g, tmp_path / "m.snnir")


def npy_bytes(array: np.ndarray, header_shape: tuple[int, ...] | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, **kw)
    data = buf.getvalue()
    if header_shape is not None:  # a header that lies about the shape, the data left as it is
        data = data.replace(repr(array.shape).encode(), repr(header_shape).encode().ljust(len(repr(array.shape))), 1)
    return data


def add_members(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "a") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_unreferenced_members_are_not_read(tmp_path: Path) -> None:
    model = dense_model(tmp_path)
    # a member whose header declares 80 GB; reading it would need that much memory
    add_members(model.with_suffix(".npz"), {"huge.npy": npy_bytes(np.zeros((10, 10)), header_shape=(100000, 100000))})
    g = load(model)
    assert set(g.tensors) == {"fc.weight"}
    np.testing.assert_array_equal(g.tensors["fc.weight"], np.arange(12).reshape(3, 4))


@pytest.mark.parametrize(
    ("member", "data", "needle"),
    [
        ("fc.weight.npy", npy_bytes(np.zeros((3, 5), np.float32)), "weights file has"),
        ("fc.weight.npy", npy_bytes(np.zeros((3, 4), np.float64)), "weights file has"),
        ("fc.weight.npy", npy_bytes(np.array([None] * 12, object).reshape(3, 4), allow_pickle=True), "object"),
        ("fc.weight.npy", npy_bytes(np.zeros((3, 4), np.float32))[:-8], "truncated"),
        ("fc.weight.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    ", "header"),
        ("fc.weight.npy", b"not an npy file at all", "fc.weight"),
        ("../evil.npy", npy_bytes(np.zeros(2)), "bad array name"),
        ("a b.npy", npy_bytes(np.zeros(2)), "bad array name"),
        ("notes.txt", b"hello", "odd member"),
        ("x" * 300 + ".npy", npy_bytes(np.zeros(2)), "bad array name"),
    ],
)
def test_bad_sidecar_members(tmp_path: Path, member: str, data: bytes, needle: str) -> None:
    model = dense_model(tmp_path)
    sidecar = model.with_suffix(".npz")
    if member == "fc.weight.npy":
        sidecar.unlink()
        with zipfile.ZipFile(sidecar, "w") as zf:
            zf.writestr(member, data)
    else:
        add_members(sidecar, {member: data})
    with pytest.raises(IRError) as err:
        load(model)
    assert_one_line(err.value, needle)


def test_a_huge_declared_sidecar_array_is_refused_before_reading(tmp_path: Path) -> None:
    model = tmp_path / "m.snnir"
    model.write_text("snnir 1\n@w : tensor<f64, 100000x100000>\n" + OK[8:])
    with zipfile.ZipFile(model.with_suffix(".npz"), "w") as zf:
        zf.writestr("w.npy", npy_bytes(np.zeros((10, 10)), header_shape=(100000, 100000)))
    with pytest.raises(BudgetError) as err:
        load(model)
    assert_one_line(err.value, f"{model}:2", "bytes")


def test_sidecar_that_is_not_a_zip(tmp_path: Path) -> None:
    model = dense_model(tmp_path)
    model.with_suffix(".npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(IRError, match="not a readable .npz"):
        load(model)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_sidecar_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    outside = dense_model(tmp_path).with_suffix(".npz")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "m.snnir").write_text((tmp_path / "m.snnir").read_text())
    (folder / "m.npz").symlink_to(outside)
    with pytest.raises(IRError, match="outside the model's folder"):
        load(folder / "m.snnir")
    (folder / "m.npz").unlink()
    (folder / "real.npz").write_bytes(outside.read_bytes())
    (folder / "m.npz").symlink_to(folder / "real.npz")  # a link inside the folder is fine
    assert "fc.weight" in load(folder / "m.snnir").tensors


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"x" * 1000: np.zeros(2)}, "bad array name"),
        ({"../up": np.zeros(2)}, "bad array name"),
        ({"a/b": np.zeros(2)}, "bad array name"),
        ({"": np.zeros(2)}, "bad array name"),
        ({"obj": np.array([None, 1], object)}, "obj"),
    ],
)
def test_npz_writer_refuses_odd_names_and_objects(tmp_path: Path, arrays: dict, needle: str) -> None:
    with pytest.raises(IRError) as err:
        write_npz(tmp_path / "w.npz", arrays)
    assert_one_line(err.value, needle)


# --------------------------------------------------------------------------- long graphs


class CountingDict(dict):
    """A dict that counts full iterations (what a rebuilt node order costs)."""

    iterations = 0

    def __iter__(self):
        CountingDict.iterations += 1
        return super().__iter__()

    def items(self):
        CountingDict.iterations += 1
        return super().items()

    def values(self):
        CountingDict.iterations += 1
        return super().values()


def test_graph_queries_stay_linear_on_a_20000_op_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    def counting_iter(self: nx.DiGraph):  # what a node order rebuilt from networkx costs
        CountingDict.iterations += 1
        return iter(self._node)

    monkeypatch.setattr(nx.DiGraph, "__iter__", counting_iter)
    g = Graph()
    g._nodes = CountingDict()
    prev = g.add("x", ir.Input(shape=(2,)))
    for _ in range(20_000):
        prev = g.add(g.unique_id("relu"), ir.Relu(), [prev])  # relu, relu_2, relu_3, ...
    g.outputs = [prev]
    assert prev == "relu_20000" and len(g) == 20_001
    CountingDict.iterations = 0
    for node_id in ["x", *(f"relu_{i}" for i in range(2, 20_001))]:
        assert len(g.users(node_id)) == (node_id != prev)
    assert g.unique_id("relu") == "relu_20001"
    assert CountingDict.iterations == 0  # no query walked the whole graph
    order = g.topo()
    assert order[0] == "x" and order[-1] == prev
    for _ in range(100):
        g.topo()
        g.ops_of("ann.relu")
    assert CountingDict.iterations <= 2  # the order is computed once and cached
    g.bypass("relu_500")
    g.remove_dead()
    assert g.unique_id("relu") == "relu_500"  # a freed id is handed out again, as before
    assert g.topo()[:3] == ["x", "relu", "relu_2"] and len(g.topo()) == 20_000
    copied = g.copy()
    copied.add("extra", ir.Relu(), [prev])
    assert "extra" not in g and len(copied) == len(g) + 1
    text = print_graph(g)
    assert print_graph(parse_graph(text)) == text


def test_verifier_finds_a_cycle() -> None:
    g = parse_graph(
        "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%a = ann.relu(%in) : [3]\n%b = ann.relu(%a) : [3]\nreturn %b\n"
    )
    g.set_inputs("a", ["b"])
    with pytest.raises(IRError, match="cycle through %[ab]"):
        verify(g)
    with pytest.raises(IRError, match="cycle"):
        g.topo()


def test_every_failure_is_an_snnc_error(tmp_path: Path) -> None:
    with pytest.raises(SnncError):
        load(tmp_path / "missing.snnir")
    with pytest.raises(SnncError):
        load(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.snnir"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer
    (tmp_path / "zero.snnir").symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(IRError, match="not a regular file"):
        load(fifo)
    with pytest.raises(IRError, match="not a regular file"):
        load(tmp_path / "zero.snnir")
    model = dense_model(tmp_path)
    model.with_suffix(".npz").unlink()
    os.mkfifo(model.with_suffix(".npz"))
    with pytest.raises(IRError, match="not a regular file"):
        load(model)
