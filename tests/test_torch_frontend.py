"""The PyTorch frontend (torch.fx, no ONNX) against torch itself, and against the ONNX path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import snnc
from snnc.frontends import FrontendError
from snnc.ir import print_graph, verify
from snnc.ir.semantics.ann import predict


class Functional(nn.Module):
    """Residual block, concat branch and functional calls, flattened with view(size(0), -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn = nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.c3 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(12 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.c1(x)))
        h = h + torch.relu(self.c2(h))
        h = F.avg_pool2d(h, 2)
        h = torch.cat([h, F.relu6(self.c3(h))], dim=1)
        h = F.max_pool2d(h, 2, ceil_mode=True)
        return self.fc(h.view(h.size(0), -1) * 0.5)


MODELS = {
    "mlp": lambda: nn.Sequential(nn.Flatten(), nn.Linear(2 * 10 * 10, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5)),
    "cnn_bn": lambda: nn.Sequential(
        nn.Conv2d(2, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AvgPool2d(2, ceil_mode=True),
        nn.Conv2d(6, 8, 2),
        nn.Hardtanh(0, 4),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.BatchNorm1d(8),
        nn.Linear(8, 5),
    ),
    "depthwise": lambda: nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, groups=2),
        nn.ReLU6(),
        nn.Conv2d(8, 8, 3, groups=8, dilation=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Identity(),
        nn.Linear(8, 5),
    ),
    "functional": Functional,
}


def _net(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = MODELS[name]().eval()
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return net


@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_torch(name: str) -> None:
    net = _net(name)
    x = torch.rand(16, 2, 10, 10)
    g = snnc.load(net, input_shape=(2, 10, 10))
    verify(g)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(predict(g, x.numpy()), ref, rtol=1e-4, atol=1e-4)


def test_same_ir_as_onnx_up_to_names(tmp_path: Path) -> None:
    """PyTorch and ONNX of one network print identically once ids are renamed in order."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 3))
    torch.onnx.export(
        net.eval(),
        torch.rand(1, 1, 8, 8),
        tmp_path / "m.onnx",
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    texts = []
    for graph in (snnc.load(net, input_shape=(1, 8, 8)), snnc.load(tmp_path / "m.onnx")):
        compiled = snnc.compile(graph, "sim", pipeline="canonicalize")
        order = {node: f"v{i}" for i, node in enumerate(compiled.graph.topo())}
        rename = lambda m, order=order: m.group(1) + order[m.group(2)]  # noqa: E731
        texts.append(re.sub(r"([%@])(\w+)", rename, print_graph(compiled.graph)))
    assert texts[0] == texts[1]


def test_untraceable_and_unsupported_modules() -> None:
    class Gate(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(x) * torch.tanh(x)

    with pytest.raises(FrontendError) as err:
        snnc.load(nn.Sequential(nn.Linear(4, 4), nn.GELU(), Gate()), input_shape=(4,))
    assert "GELU" in str(err.value) and "sigmoid" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(snnc.CompileError, match="input_shape"):
        snnc.load(nn.Linear(3, 3))


class SmallNet(nn.Module):
    """Importable as test_torch_frontend:SmallNet for the state_dict test."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(torch.flatten(h, 1))


def _small() -> SmallNet:
    torch.manual_seed(1)
    net = SmallNet().eval()
    net.bn.running_mean.uniform_(-1, 1)
    net.bn.running_var.uniform_(0.5, 2)
    return net


def test_exported_program_and_state_dict_files(tmp_path: Path) -> None:
    from snnc.cli import main

    net = _small()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        ref = net(x).numpy()
    torch.export.save(torch.export.export(net, (x[:1],)), tmp_path / "m.pt2")
    torch.save(net.state_dict(), tmp_path / "m.pt")
    from_program = snnc.load(tmp_path / "m.pt2", input_shape=(1, 8, 8))
    from_state = snnc.load(tmp_path / "m.pt", input_shape=(1, 8, 8), module="test_torch_frontend:SmallNet")
    for graph in (from_program, from_state):
        np.testing.assert_allclose(predict(graph, x.numpy()), ref, rtol=1e-4, atol=1e-4)
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=ref.argmax(1))
    out = tmp_path / "out"
    args = ["--input-shape", "1,8,8", "-o", str(out), "--data", str(tmp_path / "d.npz")]
    assert main([str(tmp_path / "m.pt2"), *args]) == 0
    with pytest.raises(snnc.ir.IRError, match="--module"):
        snnc.load(tmp_path / "m.pt", input_shape=(1, 8, 8))
    with pytest.raises(snnc.ir.IRError, match="disagrees"):
        snnc.load(tmp_path / "m.pt2", input_shape=(1, 9, 9))
