"""Shared fixtures: small ONNX models built with onnx.helper and data files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 test models need no TensorFlow


def make_mlp_onnx(path: Path, names: dict[str, str] | None = None, seed: int = 0) -> Path:
    """A 2-layer ReLU MLP 16-12-4 as ONNX; ``names`` overrides node/value names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = {"input": "x", "fc1": "fc1", "relu": "relu1", "fc2": "fc2", "output": "y", **(names or {})}
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (12, 16)).astype(np.float32)
    w2 = rng.normal(0, 0.5, (4, 12)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 12).astype(np.float32), "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", [n["input"], "w1", "b1"], ["h1"], name=n["fc1"], transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name=n["relu"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], [n["output"]], name=n["fc2"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(n["input"], TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info(n["output"], TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_data(path: Path, model: Path, n: int = 64, seed: int = 1) -> Path:
    """Inputs in [0, 1] labelled by the ANN's own predictions (so the ANN scores 100%)."""
    import snnc
    from snnc.ir.semantics.ann import predict

    x = np.random.default_rng(seed).random((n, 16), dtype=np.float32)
    y = predict(snnc.load(model), x).argmax(axis=1)
    np.savez(path, x=x, y=y.astype(np.int64))
    return path


def make_cnn_onnx(folder: Path, samples: int) -> tuple[Path, Path]:
    """conv3x3(4, pad 1)-relu-avgpool2-conv3x3(6)-relu-dense(3) on 8x8 inputs, and a data file
    of ``samples`` random images labelled by the network."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 3),
    ).eval()
    model = folder / "cnn.onnx"
    torch.onnx.export(net, torch.rand(1, 1, 8, 8), model, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    x = torch.rand(samples, 1, 8, 8)
    np.savez(folder / "d.npz", x=x.numpy(), y=net(x).argmax(1).numpy())
    return model, folder / "d.npz"


@pytest.fixture
def mlp(tmp_path: Path) -> tuple[Path, Path]:
    model = make_mlp_onnx(tmp_path / "mlp.onnx")
    return model, make_data(tmp_path / "data.npz", model)


def load_mutated(data: bytes, edits: list[tuple[int, int]], path: Path, budget) -> None:
    """Write ``data`` with ``edits`` (offset modulo the length, new byte) to ``path`` and load it
    under ``budget``: only snnc's own one-line errors may come out."""
    import snnc
    from snnc.ir import limits
    from snnc.ir.errors import SnncError

    mutated = bytearray(data)
    for at, value in edits:
        mutated[at % len(mutated)] = value
    path.write_bytes(bytes(mutated))
    with limits.using(budget):
        try:
            snnc.load(path)
        except SnncError as exc:
            assert "\n" not in str(exc)
