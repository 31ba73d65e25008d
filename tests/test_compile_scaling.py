"""Compiles that scale (issue 15, part 3): fit checks before anything costly, quantize's measurement
on a budget, its weight sums without connection matrices, and pass times when a compile fails."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cnn_onnx

import snnc
from snnc.cli import main
from snnc.ir import Graph
from snnc.ir.errors import SnncError
from snnc.ir.semantics.connectivity import from_current_source, projection_matrix
from snnc.passes import PassContext
from snnc.passes.quantize import (
    MIN_SIM_SAMPLES,
    Quantize,
    affordable,
    positive_negative_sums,
    ring_buffer_shift,
    round_by_sign,
    round_to,
)
from snnc.pipeline import pass_records
from snnc.targets import get_target


def make_mlp(path: Path, sizes: tuple[int, ...], seed: int = 0) -> Path:
    """A ReLU MLP with random weights (He-scaled) and zero biases as ONNX."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes, prev = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = (rng.standard_normal((b, a), dtype=np.float32) * np.float32(math.sqrt(2 / a))).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out], transB=1))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"a{i}"]))
            prev = f"a{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", sizes[-1]])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _quantize_message(compiled: snnc.Compiled) -> str:
    return next(d.message for d in compiled.diagnostics if d.source == "quantize")


def _quantize_seconds(compiled: snnc.Compiled) -> float:
    return next(r.seconds for r in compiled.records if r.name == "quantize")


# ------------------------------------------------------------------ the measurement's budget


def test_quantize_measures_a_784_4096_4096_10_mlp_with_the_rate_model(tmp_path: Path) -> None:
    # Simulating 128 samples of this MLP for 200 steps (twice) took 25 s: the budget picks the rate model.
    model = make_mlp(tmp_path / "mlp.onnx", (784, 4096, 4096, 10))
    x = np.random.default_rng(1).random((128, 784), dtype=np.float32)
    compiled = snnc.compile(model, "spinnaker", calibration=x)
    message = _quantize_message(compiled)
    assert "rate-model on 128 of 128 calibration samples" in message
    assert f"simulating {MIN_SIM_SAMPLES} would exceed measure-budget=1 s" in message
    print(f"quantize on the 784-4096-4096-10 MLP: {_quantize_seconds(compiled):.2f} s")


def test_quantize_simulates_as_many_samples_as_the_budget_allows(mlp) -> None:
    model, data = mlp
    x = np.load(data)["x"]
    x = np.concatenate([x] * 4)  # 256 samples
    settings = {"quantize.measure-budget": "0.002", "quantize.measure-samples": "200"}
    compiled = snnc.compile(model, "spinnaker", calibration=x, settings=settings)
    before = snnc.compile(model, "spinnaker", calibration=x, stop_after="bias-to-current").graph
    n = affordable(before, "sim", 0.002, 200)
    assert MIN_SIM_SAMPLES <= n < 200
    assert f"simulated on {n} of 200 calibration samples (more would exceed measure-budget=0.002 s)" in (
        _quantize_message(compiled)
    )


def test_quantize_skips_a_measurement_it_cannot_afford(mlp) -> None:
    model, data = mlp
    x = np.load(data)["x"]
    compiled = snnc.compile(model, "spinnaker", calibration=x, settings={"quantize.measure-budget": "1e-9"})
    message = _quantize_message(compiled)
    assert "the accuracy effect is not measured: even the rate model would take about" in message
    assert "over measure-budget=1e-09 s" in message


def test_quantize_budget_must_be_positive(mlp) -> None:
    model, data = mlp
    with pytest.raises(SnncError, match=r"quantize\.measure-budget=0: must be > 0"):
        snnc.compile(model, "spinnaker", calibration=np.load(data)["x"], settings={"quantize.measure-budget": "0"})


# ------------------------------------------------------------------ weight sums without matrices


def _matrix_sums(graph: Graph, proj: str) -> tuple[np.ndarray, np.ndarray]:
    """The old way: per-neuron sums of positive and negative weights from the sparse matrix."""
    m = projection_matrix(graph, proj)
    return np.asarray(m.maximum(0).sum(axis=1)).ravel(), -np.asarray(m.minimum(0).sum(axis=1)).ravel()


def _matrix_shifts(graph: Graph) -> dict[str, tuple[int, int]]:
    shifts = {}
    for pop in graph.ops_of("snn.population"):
        sums = [_matrix_sums(graph, p) for p in graph.inputs(pop) if not from_current_source(graph, p)]
        exc = sum((s[0] for s in sums), np.zeros(math.prod(graph.shape(pop))))
        inh = sum((s[1] for s in sums), np.zeros(math.prod(graph.shape(pop))))
        shifts[pop] = (ring_buffer_shift(float(exc.max(initial=0))), ring_buffer_shift(float(inh.max(initial=0))))
    return shifts


def _strided_cnn(folder: Path) -> Path:
    """Convolutions with padding, stride, dilation and groups, average pooling and a residual sum."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
            self.c = nn.Conv2d(4, 6, 3, stride=2, padding=1)
            self.pool = nn.AvgPool2d(2, padding=1, count_include_pad=True)
            self.fc = nn.Linear(6 * 2 * 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.a(x))
            b = torch.relu(self.b(a) + a)
            return self.fc(self.pool(torch.relu(self.c(b))).flatten(1))

    torch.manual_seed(0)
    path = folder / "strided.onnx"
    torch.onnx.export(Net().eval(), torch.rand(1, 2, 5, 5), path, dynamo=False, input_names=["x"])
    return path


@pytest.mark.parametrize("which", ["cnn", "strided"])
def test_weight_sums_equal_the_matrix_ones(which: str, tmp_path: Path) -> None:
    if which == "cnn":
        model, data = make_cnn_onnx(tmp_path, 16)
        x = np.load(data)["x"]
    else:
        model, x = _strided_cnn(tmp_path), np.random.default_rng(0).random((16, 2, 5, 5), dtype=np.float32)
    graph = snnc.compile(model, "spinnaker", calibration=x, stop_after="bias-to-current").graph
    kinds = set()
    for proj in graph.ops_of("snn.projection"):
        kinds.add(graph.op(proj).connectivity)
        for new, old in zip(positive_negative_sums(graph, proj), _matrix_sums(graph, proj), strict=True):
            np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-6)
    assert {"conv", "pool", "dense"} <= kinds
    quantized = Quantize(measure="none").run(graph.copy(), PassContext(target=get_target("spinnaker").spec))
    expected = _matrix_shifts(graph)
    assert {pop: quantized.op(pop).weight_shift for pop in expected} == expected


@pytest.mark.parametrize("exponents", [(0, 0), (3, 5), (12, 2), (40, 40)])
def test_rounding_by_sign_in_float32_equals_rounding_in_float64(exponents: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    special = [0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 3e38, -3e38, 1e-45, -1e-45]
    w = np.concatenate([rng.normal(0, 1, 5000), rng.normal(0, 1e-4, 500), special]).astype(np.float32)
    quanta, levels = [2.0 ** (e + 1 - 16) for e in exponents], 2**16 - 1
    expected = np.where(w >= 0, round_to(w, quanta[0], levels), round_to(w, quanta[1], levels))
    assert round_by_sign(w, quanta, levels).tobytes() == expected.tobytes()


# ------------------------------------------------------------------ fit checks first, times on failure


def test_a_compile_that_does_not_fit_fails_before_quantize_and_shows_pass_times(tmp_path: Path, capsys) -> None:
    model, data = make_cnn_onnx(tmp_path, 16)
    args = [str(model), "-t", "spinnaker", "-o", str(tmp_path / "out"), "--calibration", str(data)]
    code = main([*args, "--set", "board=spinn3", "--set", "neurons-per-core=1"])
    captured = capsys.readouterr()
    assert code != 0
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("snnc: error: split-populations: the network needs")
    rows = captured.out.splitlines()
    assert [r.split()[1] for r in rows][:2] == ["canonicalize", "fold-batchnorm"]
    assert all(" ms " in r for r in rows)
    assert rows[-1].split()[1] == "split-populations" and rows[-1].endswith("failed")
    assert "quantize" not in captured.out  # the fit check ran before the costly pass


def test_resnet18_is_refused_for_spinnaker_with_the_limit_named(tmp_path: Path) -> None:
    model = tmp_path / "resnet18.onnx"
    _export_resnet18(model)
    x = np.random.default_rng(0).random((32, 3, 32, 32), dtype=np.float32)
    start = time.perf_counter()
    with pytest.raises(
        SnncError, match=r"^split-populations: the network needs \d+ cores; spinn5 .* has too few"
    ) as exc:
        snnc.compile(model, "spinnaker", calibration=x)
    seconds = time.perf_counter() - start
    names = [r.name for r in pass_records(exc.value)]
    assert names[-1] == "split-populations" and "quantize" not in names
    print(f"ResNet-18 refused for spinnaker in {seconds:.2f} s")


def _export_resnet18(path: Path) -> None:
    """ResNet-18 (torchvision's layout: 7x7 stem, max pooling, 4 stages of 2 basic blocks; 11.2 M
    parameters) with random weights for 3x32x32 inputs, as ONNX."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)).eval()
    assert sum(p.numel() for p in net.parameters()) > 11_000_000
    torch.onnx.export(net, torch.rand(1, 3, 32, 32), path, dynamo=False, input_names=["x"])
