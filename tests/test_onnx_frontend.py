"""The ONNX frontend against onnxruntime: every model must match to 1e-4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import snnc
from snnc.frontends import FrontendError
from snnc.ir import parse_graph, print_graph, verify
from snnc.ir.semantics.ann import predict


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn = nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.c3 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(12 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.c1(x)))
        h = h + torch.relu(self.c2(h))
        h = nn.functional.avg_pool2d(h, 2)
        h = torch.cat([h, torch.relu(self.c3(h))], 1)
        h = nn.functional.max_pool2d(h, 2, ceil_mode=True)
        return torch.softmax(self.fc(h.view(h.size(0), -1)), 1)


TORCH_MODELS = {
    "mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(2 * 14 * 14, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5)),
    "cnn_bn_pools": lambda: nn.Sequential(
        nn.Conv2d(2, 6, 3, stride=2, padding=(1, 0)),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 8, 2),
        nn.ReLU6(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8, 5),
    ),
    "residual_concat": Residual,
    "depthwise": lambda: nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8, dilation=2),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ),
}


def _check(model_path: Path, x: np.ndarray) -> snnc.ir.Graph:
    g = snnc.load(model_path)
    verify(g)
    sess = ort.InferenceSession(str(model_path))
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    ours = predict(g, x)
    np.testing.assert_allclose(ours.reshape(ref.shape), ref, rtol=1e-4, atol=1e-4)
    text = print_graph(g)
    assert print_graph(parse_graph(text, g.tensors)) == text
    return g


@pytest.mark.parametrize("opset", [11, 13, 17, 20])
@pytest.mark.parametrize("name", sorted(TORCH_MODELS))
def test_torch_exports_match_onnxruntime(name: str, opset: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TORCH_MODELS[name]().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.rand(16, 2, 14, 14)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(
        net,
        x[:1],
        path,
        dynamo=False,
        opset_version=opset,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
        do_constant_folding=False,
    )
    _check(path, x.numpy())


def _model(nodes, inputs, outputs, inits, path: Path, opset: int = 17) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _io(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta,c_shape", [(1.0, 1.0, (4,)), (0.5, 2.0, (1, 4)), (1.5, 0.0, (1,))])
def test_gemm_forms(trans_b: int, alpha: float, beta: float, c_shape: tuple, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6) if trans_b else (6, 4)).astype(np.float32)
    c = rng.normal(size=c_shape).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=trans_b, alpha=alpha, beta=beta)
    path = _model([node], [_io("x", ["n", 6])], [_io("y", ["n", 4])], {"w": w, "c": c}, tmp_path / "g.onnx")
    _check(path, rng.random((8, 6), dtype=np.float32))


@pytest.mark.parametrize("opset", [11, 17, 21])
def test_matmul_add_clip_pad_and_reshape_chain(opset: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inits = {
        "w": rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
        "m": rng.normal(size=(24, 5)).astype(np.float32),
        "b": rng.normal(size=(5,)).astype(np.float32),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(0.5, np.float32),
        "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64),
        "zero": np.array([0], np.int64),
        "minus1": np.array([-1], np.int64),
        "two": np.array(2.0, np.float32),
    }
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Conv", ["p", "w"], ["c"], pads=[0, 1, 1, 0], strides=[2, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
        helper.make_node(
            "AveragePool", ["r"], ["a"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 0, 1], count_include_pad=1
        ),
        helper.make_node("Mul", ["a", "two"], ["s"]),
        helper.make_node("Shape", ["s"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Concat", ["batch", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["s", "target"], ["f"]),
        helper.make_node("MatMul", ["f", "m"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["y"]),
    ]
    path = _model(nodes, [_io("x", ["n", 2, 8, 7])], [_io("y", ["n", 5])], inits, tmp_path / "m.onnx", opset)
    g = _check(path, rng.random((4, 2, 8, 7), dtype=np.float32))
    assert [g.op(n).OPNAME for n in g.topo()].count("ann.dense") == 1


def test_unsupported_ops_are_listed_in_one_line(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["a"], name="gate"),
        helper.make_node("Relu", ["a"], ["b"], name="ok"),
        helper.make_node("LSTMish", ["b"], ["y"], name="weird\nname", domain="custom"),
    ]
    graph = helper.make_graph(nodes, "g", [_io("x", ["n", 4])], [_io("y", ["n", 4])])
    path = tmp_path / "u.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    message = str(err.value)
    assert "\n" not in message and "u.onnx" in message
    assert "%gate (Sigmoid: " in message and "%'weird\\nname' (custom.LSTMish: " in message and "Relu" not in message


def test_hostile_names_become_identifiers(tmp_path: Path) -> None:
    from conftest import make_mlp_onnx

    evil = {"input": 'x"; import os #', "fc1": "__import__('os').system('touch pwned')\n", "output": 'y\'\n"""'}
    g = snnc.load(make_mlp_onnx(tmp_path / "evil.onnx", evil))
    for node_id in g.topo():
        assert node_id.isidentifier(), node_id
    assert all(name.replace(".", "_").isidentifier() for name in g.tensors)


def test_bad_files_give_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    for path in (bad, tmp_path / "missing.onnx", tmp_path / "model.pb"):
        with pytest.raises(snnc.ir.IRError) as err:
            snnc.load(path)
        assert "\n" not in str(err.value) and path.name in str(err.value)
