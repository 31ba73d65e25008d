"""fold-batchnorm wherever the batch-norm stands: after a ReLU, through pooling, padding, flatten and
dropout, before a padded conv (a bias per output position), or kept as a layer; checked against the
framework's own output (Keras 3 on torch, PyTorch through ONNX) to 1e-4 of the output scale."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.ir import Graph, IRError, text
from snnc.ir import ops as ir
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.rates import readout_scores
from snnc.passes import PassContext, PassError
from snnc.pipeline import parse_pipeline, run_pipeline
from snnc.targets import get_target

FOLD = "canonicalize,fold-batchnorm"


def _run(graph: Graph, pipeline: str, x: np.ndarray | None = None) -> Graph:
    ctx = PassContext(target=get_target("sim").spec, calibration=x)
    return run_pipeline(graph, parse_pipeline(pipeline), ctx)[0]


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Equal to 1e-4 of the output's scale."""
    ours, ref = ours.reshape(len(ref), -1), ref.reshape(len(ref), -1)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max(), np.abs(ours - ref).max()


def _opnames(graph: Graph) -> list[str]:
    return [graph.op(n).OPNAME for n in graph.topo()]


# --------------------------------------------------------------------------- Keras


@pytest.fixture(autouse=True)
def _fresh_keras_names() -> Iterator[None]:
    """Keras numbers its layer names globally: leave the counters as other test files expect them."""
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        keras.utils.clear_session()


def _keras_cnn(path: Path, gamma_signs: tuple[float, float, float], pool: str = "max") -> Path:
    """Conv(relu) -> BN -> pool -> Conv(same, relu) -> BN -> AvgPool(same) -> Flatten -> Dense(relu) -> BN
    -> Dropout -> Dense, with random batch-norm statistics; gamma_signs[i] multiplies BN i's gamma (pool="avg":
    average pooling throughout, without padding, as lower-to-snn takes it)."""
    import keras

    keras.utils.set_random_seed(0)
    pooling = keras.layers.MaxPooling2D(2) if pool == "max" else keras.layers.AveragePooling2D(2)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.BatchNormalization(name="bn1"),
            pooling,
            keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.AveragePooling2D(2, padding="same" if pool == "max" else "valid"),  # lowering needs valid
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu", name="fc1"),
            keras.layers.BatchNormalization(name="bn3"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3, name="fc2"),
        ]
    )
    rng = np.random.default_rng(1)
    for i, sign in enumerate(gamma_signs, 1):
        bn = model.get_layer(f"bn{i}")
        c = bn.gamma.shape[0]
        gamma = (rng.random(c) + 0.5) * np.where(np.arange(c) % 2, sign, 1.0)  # odd channels take the sign
        bn.set_weights([gamma, rng.normal(size=c), rng.normal(0, 0.5, c), rng.random(c) + 0.3])
    model.save(path)
    return path


def _keras_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.saving.load_model(path)(x, training=False).detach().cpu().numpy()


def test_keras_cnn_folds_every_batchnorm_exactly(tmp_path: Path) -> None:
    path = _keras_cnn(tmp_path / "m.keras", (1.0, -1.0, -1.0))
    x = np.random.default_rng(2).random((16, 12, 12, 2), dtype=np.float32)
    folded = snnc.compile(path, "sim", pipeline=FOLD).graph
    assert "ann.batchnorm" not in _opnames(folded)
    assert [n for n in _opnames(folded) if n in ("ann.dense", "ann.conv2d")] == ["ann.conv2d"] * 2 + ["ann.dense"] * 2
    c2 = next(n for n in folded.topo() if isinstance(folded.op(n), ir.Conv2d) and any(folded.op(n).pads))
    assert folded.tensor_shape(folded.op(c2).bias) == folded.shape(c2)  # the border sees fewer shifted inputs
    _close(predict(folded, x.transpose(0, 3, 1, 2)), _keras_outputs(path, x))


def test_keras_negative_scale_before_max_pooling_is_refused(tmp_path: Path) -> None:
    path = _keras_cnn(tmp_path / "m.keras", (-1.0, 1.0, 1.0))
    with pytest.raises(PassError, match=r"%bn1: .*negative scale .*channel\(s\) 1, 3 .*max pooling %"):
        snnc.compile(path, "sim", pipeline=FOLD)


def test_keras_cnn_with_average_pooling_compiles_for_sim(tmp_path: Path) -> None:
    path = _keras_cnn(tmp_path / "m.keras", (-1.0, -1.0, 1.0), pool="avg")
    x = np.random.default_rng(3).random((64, 12, 12, 2), dtype=np.float32)
    ref = _keras_outputs(path, x)
    ann = snnc.load(path)
    x_ir = x.transpose(0, 3, 1, 2)
    _close(predict(_run(ann, FOLD), x_ir), ref)
    lowered = _run(snnc.load(path), FOLD + ",remove-softmax,lower-to-snn", x_ir)
    _close(readout_scores(lowered, x_ir), ref)  # the rate model reproduces the ANN (sim reads the output membrane)
    compiled = snnc.compile(path, "sim", calibration=x)  # the default pipeline, end to end
    assert np.array_equal(readout_scores(compiled.graph, x_ir).argmax(1), readout_scores(lowered, x_ir).argmax(1))


# --------------------------------------------------------------------------- PyTorch via ONNX


def _bn(c: int, seed: int, negative: bool = True) -> nn.BatchNorm2d | nn.BatchNorm1d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        sign = torch.where(torch.arange(c) % 2 == 1, -1.0 if negative else 1.0, 1.0)
        bn.weight.copy_((torch.rand(c, generator=g) + 0.5) * sign)
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.3)
    return bn


class Residual(nn.Module):
    """A batch-norm after a ReLU feeding an add, and one as the graph output: kept as layers."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 3, 1)
        self.bn1, self.bn2 = _bn(3, 5), _bn(3, 6)
        self.c3 = nn.Conv2d(3, 3, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(torch.relu(self.c1(x))) + self.c2(x)
        return self.bn2(torch.relu(self.c3(torch.relu(y))))


NETS = {
    # BN on the input and after ReLUs, each before a padded (strided) conv; BN -> AvgPool(pad, count_include_pad)
    "padded": lambda: nn.Sequential(
        _bn(2, 0),
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        _bn(4, 1),
        nn.Conv2d(4, 4, 3, stride=2, padding=(1, 2)),
        nn.ReLU(),
        _bn(4, 2),
        nn.AvgPool2d(2, padding=1, count_include_pad=True),
        nn.Conv2d(4, 3, 2, padding=1, groups=1),
        nn.ReLU(),
        _bn(3, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 4),
    ),
    "residual": Residual,
}


def _onnx(name: str, path: Path) -> tuple[Graph, nn.Module]:
    net = NETS[name]().eval()
    torch.onnx.export(net, torch.rand(1, 2, 9, 9), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return snnc.load(path), net


@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_batchnorm_folds_or_stays_exact_and_lowers(name: str, tmp_path: Path) -> None:
    ann, net = _onnx(name, tmp_path / "m.onnx")
    x = np.random.default_rng(4).random((32, 2, 9, 9), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    folded = _run(ann.copy(), FOLD)
    assert "ann.batchnorm" not in _opnames(folded)
    _close(predict(folded, x), ref)
    lowered = _run(ann, FOLD + ",remove-softmax,lower-to-snn", x)
    _close(readout_scores(lowered, x), ref.reshape(len(x), -1))  # sim reads the output membrane


def test_padded_conv_bias_per_output_round_trips(tmp_path: Path) -> None:
    ann, _ = _onnx("padded", tmp_path / "m.onnx")
    folded = _run(ann, FOLD)
    convs = [n for n in folded.topo() if folded.op(n).OPNAME == "ann.conv2d"]
    full = [n for n in convs if folded.tensor(folded.op(n).bias).ndim == 3]
    assert full  # a position-dependent bias
    again = text.load(text.save(folded, tmp_path / "m.snnir"))
    x = np.random.default_rng(5).random((4, 2, 9, 9), dtype=np.float32)
    np.testing.assert_array_equal(predict(again, x), predict(folded, x))
    conv = folded.op(full[0])
    wrong = folded.add_tensor("wrong", np.zeros((1, *folded.shape(full[0])[1:]), np.float32))
    with pytest.raises(IRError, match="fits neither"):
        folded.set_op(full[0], ir.Conv2d(weight=conv.weight, bias=wrong, pads=conv.pads, strides=conv.strides))


# --------------------------------------------------------------------------- IR graphs


def _ir_bn(g: Graph, name: str, x: str, c: int, rng: np.random.Generator) -> str:
    values = {
        "scale": (rng.random(c) + 0.5) * np.where(np.arange(c) % 2, -1, 1),
        "bias": rng.normal(size=c),
        "mean": rng.normal(size=c),
        "var": rng.random(c) + 0.5,
    }
    refs = {k: g.add_tensor(f"{name}.{k}", v.astype(np.float32)) for k, v in values.items()}
    return g.add(name, ir.BatchNorm(**refs), [x])


WINDOWS = {
    "avg-pad-exclude-ceil": ir.AvgPool2d(
        kernel=(3, 3), strides=(2, 2), pads=(1, 0, 1, 1), count_include_pad=False, ceil_mode=True
    ),
    "avg-pad-include": ir.AvgPool2d(kernel=(2, 2), strides=(2, 2), pads=(1, 1, 0, 0)),
    "zero-pad": ir.Pad(pads=(0, 2, 0, 0, 1, 1)),
    "batchnorm": None,  # a second batch-norm, composed
}


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_batchnorm_passes_linear_window_ops_into_a_padded_conv(window: str) -> None:
    rng = np.random.default_rng(6)
    g = Graph()
    x = g.add("in", ir.Input(shape=(3, 7, 7)))
    x = _ir_bn(g, "bn", x, 3, rng)
    x = g.add("win", WINDOWS[window], [x]) if WINDOWS[window] else _ir_bn(g, "bn2", x, 3, rng)
    w = g.add_tensor("c.weight", rng.normal(size=(4, 3, 3, 3)).astype(np.float32))
    b = g.add_tensor("c.bias", rng.normal(size=4).astype(np.float32))
    g.outputs = [g.add("c", ir.Conv2d(weight=w, bias=b, pads=(1, 1, 1, 1), activation="relu"), [x])]
    data = rng.random((8, 3, 7, 7), dtype=np.float32)
    folded = _run(g.copy(), "fold-batchnorm")
    assert "ann.batchnorm" not in _opnames(folded) and len(folded) == len(g) - 1 - (window == "batchnorm")
    _close(predict(folded, data), predict(g, data))
