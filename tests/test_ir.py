"""The IR: op checking, verifier, and the text form round trip on random graphs (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snnc.ir import Graph, IRError, load, parse_graph, print_graph, save, verify
from snnc.ir import ops as ir


@st.composite
def ann_graphs(draw) -> Graph:
    """Random valid ann graphs: conv/pool stacks, then dense layers, with add/concat branches."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    g = Graph()
    c, h = draw(st.integers(1, 3)), draw(st.integers(4, 9))
    x = g.add("in", ir.Input(shape=(c, h, h)))
    for i in range(draw(st.integers(0, 2))):
        k = draw(st.integers(1, min(3, *g.shape(x)[1:])))  # the window must fit the feature map
        out_c = draw(st.integers(1, 4))
        pads = tuple(draw(st.lists(st.integers(0, 1), min_size=4, max_size=4)))
        w = g.add_tensor(f"conv{i}.weight", rng.normal(size=(out_c, g.shape(x)[0], k, k)).astype(np.float32))
        act = draw(st.sampled_from(["none", "relu"]))
        y = g.add(f"conv{i}", ir.Conv2d(weight=w, pads=pads, activation=act), [x])
        kind = draw(st.sampled_from(["relu", "avg", "max", "add", "concat", "none"]))
        if kind == "relu":
            y = g.add(f"r{i}", ir.Relu(), [y])
        elif kind in ("avg", "max") and min(g.shape(y)[1:]) >= 2:
            cls = ir.AvgPool2d if kind == "avg" else ir.MaxPool2d
            y = g.add(f"p{i}", cls(kernel=(2, 2), strides=(2, 2)), [y])
        elif kind == "add":
            y = g.add(f"add{i}", ir.Add(), [y, g.add(f"s{i}", ir.Scale(factor=draw(st.floats(-2, 2))), [y])])
        elif kind == "concat":
            y = g.add(f"cat{i}", ir.Concat(axis=0), [y, y])
        x = y
    x = g.add("flat", ir.Flatten(), [x])
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 12))
        w = g.add_tensor(f"fc{i}.weight", rng.normal(size=(n, g.shape(x)[0])).astype(np.float32))
        b = g.add_tensor(f"fc{i}.bias", rng.normal(size=n).astype(np.float32)) if draw(st.booleans()) else None
        x = g.add(f"fc{i}", ir.Dense(weight=w, bias=b, activation=draw(st.sampled_from(["none", "relu"]))), [x])
    g.outputs = [g.add("sm", ir.Softmax(axis=0), [x])]
    g.attrs = {"note": draw(st.text(max_size=10)), "dt": draw(st.floats(0.01, 2.0))}
    return g


@st.composite
def snn_graphs(draw) -> Graph:
    """Random valid snn graphs: a source, then populations joined by every projection kind."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    g = Graph({"dt": 1.0, "presentation_time": float(draw(st.integers(1, 500))), "instances": 1})
    enc = draw(st.sampled_from(["current", "poisson", "regular"]))
    pre = g.add("src", ir.Source(shape=(2, 6, 6), encoding=enc, max_rate=draw(st.floats(1, 1000))))
    w = g.add_tensor("p1.weight", rng.normal(size=(3, 2, 3, 3)).astype(np.float32))
    g.add("p1", ir.Projection(connectivity="conv", weight=w, pads=(1, 1, 1, 1), delay=0.0), [pre])
    i_off = g.add_tensor("c1.i_offset", rng.normal(size=108).astype(np.float32)) if draw(st.booleans()) else None
    reset = draw(st.sampled_from(["subtract", "zero"]))
    pre = g.add("c1", ir.Population(reset=reset, i_offset=i_off, v_threshold=draw(st.floats(0.1, 5))), ["p1"])
    g.add("p2", ir.Projection(connectivity="pool", kernel=(2, 2), strides=(2, 2), scale=0.25), [pre])
    pre = g.add("pool", ir.Population(tau_refrac=draw(st.floats(0, 2))), ["p2"])
    n = draw(st.integers(1, 20))
    w = g.add_tensor("p3.weight", rng.normal(size=(n, 27)).astype(np.float32))
    g.add("p3", ir.Projection(connectivity="dense", weight=w, receptor="mixed"), [pre])
    g.add("p4", ir.Projection(connectivity="one_to_one", scale=0.5, post_shape=(n,)), [pre]) if n >= 27 else None
    inputs = ["p3"] + (["p4"] if n >= 27 else [])
    out = g.add("out", ir.Population(tau_m=draw(st.sampled_from([float("inf"), 20.0]))), inputs)
    g.outputs = [g.add("ro", ir.Readout(mode=draw(st.sampled_from(["spike_count", "membrane"]))), [out])]
    return g


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(graph=st.one_of(ann_graphs(), snn_graphs()))
def test_text_round_trip(graph: Graph, tmp_path: Path) -> None:
    verify(graph)
    text = print_graph(graph)
    assert print_graph(parse_graph(text, graph.tensors)) == text
    save(graph, tmp_path / "g.snnir")
    loaded = load(tmp_path / "g.snnir")
    assert print_graph(loaded) == text
    for name, array in graph.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], array)
        assert loaded.tensors[name].dtype == array.dtype


def test_ops_check_their_attributes() -> None:
    with pytest.raises(IRError, match="activation"):
        ir.Dense(weight=ir.TensorRef("w"), activation="tanh")
    with pytest.raises(IRError, match="strides"):
        ir.AvgPool2d(kernel=(2, 2), strides=(2,))
    with pytest.raises(IRError, match="needs weight"):
        ir.Projection(connectivity="dense")
    assert ir.Population(v_threshold=2).v_threshold == 2.0  # ints widen to floats


def test_verifier_finds_broken_graphs() -> None:
    g = Graph()
    g.add("in", ir.Input(shape=(4,)))
    w = g.add_tensor("fc.weight", np.ones((2, 4), np.float32))
    g.add("fc", ir.Dense(weight=w), ["in"])
    g.outputs = ["fc"]
    verify(g)
    g.tensors["fc.weight"] = np.ones((2, 5), np.float32)
    with pytest.raises(IRError, match="%fc"):
        verify(g)
    g.tensors["fc.weight"] = np.full((2, 4), np.nan, np.float32)
    with pytest.raises(IRError, match="non-finite"):
        verify(g)


def test_parse_errors_name_file_and_line() -> None:
    good = "snnir 1\n%in = ann.input() {shape = [3]} : [3]\nreturn %in\n"
    assert print_graph(parse_graph(good)) == good
    cases = {
        "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%r = ann.relu(%in : [3]\nreturn %r\n": "m.snnir:3",
        "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%r = ann.frob(%in) : [3]\nreturn %r\n": "m.snnir:3",
        "snnir 1\n%in = ann.input() {shape = [3]} : [4]\nreturn %in\n": "m.snnir:2",
        "snnir 9\n%in = ann.input() {shape = [3]} : [3]\nreturn %in\n": "version 9",
        "snnir 1\n%in = ann.input() {shape = [3]} : [3]\n%r = ann.relu(%x) : [3]\nreturn %r\n": "undefined",
    }
    for text, needle in cases.items():
        with pytest.raises(IRError) as err:
            parse_graph(text, source="m.snnir")
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_strings_are_escaped() -> None:
    g = Graph({"note": 'a "quote"\nand a newline } ]'})
    g.outputs = [g.add("in", ir.Input(shape=(1,)))]
    text = print_graph(g)
    assert parse_graph(text).attrs["note"] == g.attrs["note"]
    assert text.count("\n") == 4  # header, graph, op, return: the newline stays escaped
