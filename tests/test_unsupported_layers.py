"""Layers without a rate-coded spiking form: every frontend names all of them, with why, in one line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import snnc
from snnc.frontends import FrontendError

os.environ.setdefault("KERAS_BACKEND", "torch")


def _listed(message: str) -> list[tuple[str, str]]:
    """(name, kind) of each entry ``%name (Kind: reason)`` of the one-line error."""
    assert "\n" not in message
    return re.findall(r"%('[^']*'|[^\s(',]+) \(([^:]+): ", message)


# --------------------------------------------------------------------------- ONNX


def _onnx(path: Path, nodes: list, inits: dict[str, np.ndarray], x_shape: list, y_shape: list) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32)


def test_onnx_lists_sigmoid_leaky_relu_and_lstm(tmp_path: Path) -> None:
    """Gemm -> Sigmoid -> Gemm -> LeakyRelu -> LSTM: all three named, with reasons, in file order."""
    from onnx import helper

    nodes = [
        helper.make_node("Gemm", ["x", "w1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Sigmoid", ["h1"], ["a1"], name="gate"),
        helper.make_node("Gemm", ["a1", "w2"], ["h2"], name="fc2", transB=1),
        helper.make_node("LeakyRelu", ["h2"], ["a2"], name="leak", alpha=0.1),
        helper.make_node("Reshape", ["a2", "seq_shape"], ["seq"], name="to_seq"),
        helper.make_node("LSTM", ["seq", "W", "R"], ["", "y_h"], name="rnn", hidden_size=4),
        helper.make_node("Reshape", ["y_h", "out_shape"], ["y"], name="out"),
    ]
    inits = {
        "w1": _w(8, 8),
        "w2": _w(8, 8),
        "seq_shape": np.array([1, -1, 8], np.int64),
        "W": _w(1, 16, 8),
        "R": _w(1, 16, 4),
        "out_shape": np.array([-1, 4], np.int64),
    }
    path = _onnx(tmp_path / "model.onnx", nodes, inits, ["n", 8], ["n", 4])
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: 3 layers have no spiking form: ")
    assert _listed(message) == [("gate", "Sigmoid"), ("leak", "LeakyRelu"), ("rnn", "LSTM")]
    assert "positive for negative input" in message and "spike rate cannot be negative" in message
    assert "recurrent layer" in message
    assert "to_seq" not in message and "out" not in message.split(": ", 1)[1].replace("output", "")


def test_onnx_attention_product_and_softmax_inside(tmp_path: Path) -> None:
    """q * k of two computed tensors and a softmax that feeds a layer (attention's two ingredients)."""
    from onnx import helper

    nodes = [
        helper.make_node("Gemm", ["x", "wq"], ["q"], name="query", transB=1),
        helper.make_node("Gemm", ["x", "wk"], ["k"], name="key", transB=1),
        helper.make_node("Mul", ["q", "k"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["p"], name="attn", axis=-1),
        helper.make_node("Gemm", ["p", "wo"], ["o"], name="proj", transB=1),
        helper.make_node("Relu", ["o"], ["y"], name="act"),
    ]
    path = _onnx(tmp_path / "attn.onnx", nodes, {"wq": _w(8, 8), "wk": _w(8, 8), "wo": _w(4, 8)}, ["n", 8], ["n", 4])
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    assert _listed(str(err.value)) == [("scores", "Mul"), ("attn", "Softmax")]
    assert "product of two computed tensors" in str(err.value)
    assert "inside the network, softmax divides" in str(err.value)


def test_onnx_output_ops_and_hostile_names(tmp_path: Path) -> None:
    """A sigmoid on the output is named with a different reason; odd names and op types stay on one line."""
    from onnx import helper

    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
        helper.make_node("Elu", ["h"], ["e"], name="elu\nlayer"),
        helper.make_node("Weird\nOp", ["e"], ["z"], name="", domain="custom"),
        helper.make_node("Sigmoid", ["z"], ["y"], name="prob"),
    ]
    import onnx

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 8])],
        [onnx.numpy_helper.from_array(_w(8, 8), "w")],
    )
    path = tmp_path / "odd.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)])
    onnx.save(model, str(path))
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    message = str(err.value)
    assert "\n" not in message and message.count("%") == 3
    assert "%'elu\\nlayer' (Elu: ELU is negative" in message
    assert "'custom.Weird\\nOp': not an op snnc converts" in message
    assert "%prob (Sigmoid: on the output" in message


# --------------------------------------------------------------------------- Keras


def test_keras_lists_lstm_activation_and_leaky_relu(tmp_path: Path) -> None:
    import keras
    from keras import layers as L

    model = keras.Sequential(
        [
            keras.Input((6, 4), name="frames"),
            L.LSTM(8, name="rnn"),
            L.Dense(8, activation="tanh", name="squash"),
            L.LeakyReLU(negative_slope=0.2, name="leak"),
            L.Dense(8, name="fc"),
            L.ReLU(negative_slope=0.1, name="leak2"),
            L.Dense(3, activation="softmax", name="out"),
        ]
    )
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: 5 layers have no spiking form: ")
    assert _listed(message) == [
        ("frames", "InputLayer"),
        ("rnn", "LSTM"),
        ("squash", "Dense(tanh)"),
        ("leak", "LeakyReLU"),
        ("leak2", "ReLU(negative_slope=0.1)"),
    ]
    assert "a sequence input" in message and "recurrent layer" in message and "tanh is negative" in message


def test_keras_in_memory_model_and_output_sigmoid() -> None:
    import keras
    from keras import layers as L

    x = keras.Input((8,))
    h = L.Dense(8, activation="gelu", name="a")(x)
    g = L.Dense(8, activation="sigmoid", name="g")(x)
    m = L.Multiply(name="gated")([h, g])
    y = L.Activation("sigmoid", name="prob")(L.Dense(2, name="logits")(m))
    with pytest.raises(FrontendError) as err:
        snnc.load(keras.Model(x, y))
    message = str(err.value)
    assert _listed(message) == [
        ("a", "Dense(gelu)"),
        ("g", "Dense(sigmoid)"),
        ("gated", "Multiply"),
        ("prob", "Activation(sigmoid)"),
    ]
    assert "GELU is negative" in message and "product of two computed tensors" in message
    assert (
        "(Dense(sigmoid): inside the network, sigmoid" in message and "(Activation(sigmoid): on the output" in message
    )


def test_keras_softmax_inside_the_network_is_listed() -> None:
    import keras
    from keras import layers as L

    model = keras.Sequential(
        [keras.Input((4,)), L.Dense(3, activation="softmax", name="attn"), L.Dense(3, activation="elu", name="fc")]
    )
    with pytest.raises(FrontendError) as err:
        snnc.load(model)
    assert _listed(str(err.value)) == [("attn", "Dense(softmax)"), ("fc", "Dense(elu)")]
    assert "inside the network, softmax divides" in str(err.value)


def test_keras_softmax_layer_on_the_output_is_read() -> None:
    import keras
    from keras import layers as L

    model = keras.Sequential([keras.Input((4,)), L.Dense(3, name="fc"), L.Softmax(name="sm")])
    graph = snnc.load(model)
    assert [graph.op(n).OPNAME for n in graph.topo()][-1] == "ann.softmax"


# --------------------------------------------------------------------------- PyTorch


def test_torch_module_lists_every_layer() -> None:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 3)
            self.gate, self.act = nn.Sigmoid(), nn.GELU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.gate(self.fc1(x))
            h = torch.nn.functional.leaky_relu(self.fc2(h), 0.1)
            return self.fc3(self.act(h) * h)

    with pytest.raises(FrontendError) as err:
        snnc.load(Net(), input_shape=(4,))
    message = str(err.value)
    assert message.startswith("<torch module>: 4 layers have no spiking form: ")
    assert _listed(message) == [("gate", "Sigmoid"), ("leaky_relu", "leaky_relu"), ("act", "GELU"), ("mul", "mul")]
