"""Passes on tiny graphs: exact structure and numbers; lowering reproduces the ANN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.ir import Graph
from snnc.ir import ops as ir
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.rates import membrane_populations, rates, readout_scores
from snnc.passes import PassContext, PassError
from snnc.pipeline import apply_settings, parse_pipeline, run_pipeline
from snnc.targets import get_target

ANN_PASSES = "canonicalize,fold-batchnorm,remove-softmax"
LOWERED = ANN_PASSES + ",lower-to-snn"


def _ctx(x: np.ndarray | None = None, y: np.ndarray | None = None) -> PassContext:
    return PassContext(target=get_target("sim").spec, calibration=x, calibration_labels=y)


def _run(graph: Graph, pipeline: str, x: np.ndarray | None = None) -> tuple[Graph, PassContext]:
    ctx = _ctx(x)
    out, _ = run_pipeline(graph, parse_pipeline(pipeline), ctx)
    return out, ctx


def _export(net: nn.Module, shape: tuple, path: Path) -> Graph:
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
    torch.onnx.export(
        net.eval(),
        torch.rand(1, *shape),
        path,
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
        do_constant_folding=False,
    )
    return snnc.load(path)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.c3 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 2, 1)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.c1(x)))
        h = torch.relu(h + self.c2(h))  # residual
        h = nn.functional.avg_pool2d(h, 2)
        h = torch.cat([h, torch.relu(self.c3(h))], 1)  # concat
        return torch.softmax(self.fc(h.flatten(1)), 1)


NETS = {
    "mlp": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 20), nn.ReLU(), nn.Linear(20, 5)), (1, 8, 8)),
    "cnn": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5)
        ),
        (1, 8, 8),
    ),
    "block": (Block, (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_lowering_reproduces_the_ann_and_normalization_keeps_predictions(name: str, tmp_path: Path) -> None:
    make, shape = NETS[name]
    ann = _export(make(), shape, tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((200, *shape), dtype=np.float32)
    logits = predict(_run(ann, ANN_PASSES)[0], x)
    lowered, _ = _run(ann, LOWERED, x)
    np.testing.assert_allclose(readout_scores(lowered, x), logits, atol=1e-5)  # sim reads the output membrane
    full, _ = _run(ann, LOWERED + ",normalize,bias-to-current,split-signs", x)
    assert np.array_equal(readout_scores(full, x).argmax(1), readout_scores(lowered, x).argmax(1))
    for pop, r in rates(full, x).items():
        if full.op(pop).OPNAME == "snn.population" and (r > 0).any():
            assert np.percentile(r[r > 0], 99.9) == pytest.approx(1.0, rel=1e-3), pop
    maxnorm, _ = _run(ann, LOWERED + ",normalize{statistic=max}", x)
    for pop, r in rates(maxnorm, x).items():
        if maxnorm.op(pop).OPNAME == "snn.population" and (r > 0).any():
            assert r.max() == pytest.approx(1.0, rel=1e-4), pop


def test_canonicalize_removes_noops_and_fuses_relu() -> None:
    g = Graph()
    x = g.add("in", ir.Input(shape=(2, 2)))
    x = g.add("drop", ir.Dropout(), [x])
    x = g.add("flat", ir.Flatten(), [x])
    x = g.add("re", ir.Reshape(shape=(4,)), [x])
    w = g.add_tensor("fc.weight", np.ones((3, 4), np.float32))
    x = g.add("fc", ir.Dense(weight=w), [x])
    x = g.add("relu", ir.Relu(), [x])
    x = g.add("clip", ir.Clip(min=0.0), [x])
    g.outputs = [g.add("id", ir.Identity(), [x])]
    out, _ = _run(g, "canonicalize")
    assert [out.op(n).OPNAME for n in out.topo()] == ["ann.input", "ann.dense"]
    assert out.op("fc").activation == "relu" and out.outputs == ["fc"]


def test_fold_batchnorm_before_and_after_a_layer() -> None:
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add("in", ir.Input(shape=(3, 5, 5)))
    tensors = {
        k: g.add_tensor(f"bn1.{k}", v)
        for k, v in {
            "scale": rng.random(3) + 0.5,
            "bias": rng.normal(size=3),
            "mean": rng.normal(size=3),
            "var": rng.random(3) + 0.5,
        }.items()
    }
    x = g.add("bn1", ir.BatchNorm(**{k: v for k, v in tensors.items()}), [x])  # before the conv
    w = g.add_tensor("c.weight", rng.normal(size=(2, 3, 3, 3)).astype(np.float32))
    x = g.add("c", ir.Conv2d(weight=w), [x])
    tensors = {
        k: g.add_tensor(f"bn2.{k}", v)
        for k, v in {
            "scale": rng.random(2) + 0.5,
            "bias": rng.normal(size=2),
            "mean": rng.normal(size=2),
            "var": rng.random(2) + 0.5,
        }.items()
    }
    g.outputs = [g.add("bn2", ir.BatchNorm(**tensors), [x])]  # after it
    data = rng.random((10, 3, 5, 5), dtype=np.float32)
    folded, _ = _run(g, "fold-batchnorm")
    assert [folded.op(n).OPNAME for n in folded.topo()] == ["ann.input", "ann.conv2d"]
    np.testing.assert_allclose(predict(folded, data), predict(g, data), atol=1e-5)


def test_softmax_inside_the_network_is_an_error() -> None:
    g = Graph()
    x = g.add("in", ir.Input(shape=(3,)))
    x = g.add("sm", ir.Softmax(), [x])
    g.outputs = [g.add("r", ir.Relu(), [x])]
    with pytest.raises(PassError, match="%sm"):
        _run(g, "remove-softmax")


def test_max_pool_lowers_to_a_relu_tree_that_equals_the_ann_in_rates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(32, 3))
    ann = _export(net.eval(), (1, 8, 8), tmp_path / "m.onnx")
    x = np.random.default_rng(2).random((50, 1, 8, 8), dtype=np.float32)
    lowered, _ = _run(ann, LOWERED)
    assert len(lowered.ops_of("snn.population")) == 1 + 4 + 1  # conv, three relus and the maxima, output
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(readout_scores(lowered, x), logits, atol=1e-5)  # sim reads the output membrane


def test_split_signs_and_bias_passes(tmp_path: Path) -> None:
    make, shape = NETS["mlp"]
    ann = _export(make(), shape, tmp_path / "m.onnx")
    x = np.random.default_rng(1).random((100, *shape), dtype=np.float32)
    base, _ = _run(ann, LOWERED + ",normalize,bias-to-current", x)
    split, _ = _run(ann, LOWERED + ",normalize,bias-to-current,split-signs", x)
    for p in split.ops_of("snn.projection"):
        w = split.tensor(split.op(p).weight)
        assert split.op(p).receptor == ("excitatory" if (w >= 0).all() else "inhibitory") and not (
            (w > 0).any() and (w < 0).any()
        )
    assert len(split.ops_of("snn.projection")) == 2 * len(base.ops_of("snn.projection"))
    np.testing.assert_allclose(readout_scores(split, x), readout_scores(base, x), atol=1e-5)
    assert all(base.op(p).bias is None and base.op(p).i_offset is not None for p in base.ops_of("snn.population"))
    ctx = _ctx(x, y=np.zeros(len(x), np.int64))
    nobias, _ = run_pipeline(ann, parse_pipeline(LOWERED + ",normalize,remove-bias"), ctx)
    assert all(nobias.op(p).bias is None and nobias.op(p).i_offset is None for p in nobias.ops_of("snn.population"))
    assert any("rate-model accuracy" in d.message for d in ctx.diagnostics if d.level == "warning")


def test_pipeline_strings_and_settings() -> None:
    passes = parse_pipeline("canonicalize, normalize{percentile=99.5,method=layer},lower-to-snn{reset=zero}")
    assert [p.spelled() for p in passes] == [
        "canonicalize",
        "normalize{percentile=99.5,statistic=percentile,method=layer,rate=1.0}",
        "lower-to-snn{reset=zero,maxpool=relu-tree}",
    ]
    passes, spec = apply_settings(passes, get_target("sim").spec, {"percentile": "99", "dt": "0.5"})
    assert passes[1].percentile == 99.0 and spec.options.dt == 0.5
    for bad in ("nosuch", "normalize{x=1}", "normalize{percentile=high}", "lower-to-snn{reset=sideways}"):
        with pytest.raises(PassError):
            parse_pipeline(bad)
    with pytest.raises(PassError, match="bogus"):
        apply_settings(passes, spec, {"bogus": "1"})


def test_normalize_rate_scales_every_population(mlp) -> None:
    model, data = mlp
    x = np.load(data)["x"]
    full, half = (snnc.compile(model, "sim", calibration=x, settings={"rate": r}).graph for r in ("1.0", "0.5"))
    r_full, r_half = rates(full, x), rates(half, x)
    for pop in full.ops_of("snn.population"):
        assert np.allclose(r_half[pop], 0.5 * r_full[pop], atol=1e-5)
    assert np.array_equal(readout_scores(full, x).argmax(1), readout_scores(half, x).argmax(1))


def test_average_pooling_folds_into_the_next_layer_exactly(tmp_path: Path) -> None:
    make, shape = NETS["cnn"]
    ann = _export(make(), shape, tmp_path / "m.onnx")
    x = np.random.default_rng(5).random((100, *shape), dtype=np.float32)
    folded, _ = _run(ann, LOWERED)
    kept, _ = _run(ann, "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn{fold-pooling=false}")
    assert len(folded.ops_of("snn.population")) < len(kept.ops_of("snn.population"))
    assert "pool" not in {folded.op(p).connectivity for p in folded.ops_of("snn.projection")}
    np.testing.assert_allclose(readout_scores(folded, x), readout_scores(kept, x), atol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        dict(kernel_size=(1, 4), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),  # found by tests/fuzz_targets.py
        dict(kernel_size=3, stride=1, padding=2, dilation=2),
        dict(kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(1, 3)),
    ],
)
def test_average_pooling_folds_into_a_dilated_strided_padded_convolution(tmp_path: Path, conv: dict) -> None:
    """Folded, a pooled convolution's taps are spread over their windows and, when dilated,
    spaced by dilation windows with zeros between (it was lowered with the wrong output shape)."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 2, **conv), nn.ReLU(),
                        nn.Flatten(), nn.LazyLinear(4))  # fmt: skip
    net(torch.zeros(1, 2, 12, 10))
    ann = _export(net, (2, 12, 10), tmp_path / "m.onnx")
    x = np.random.default_rng(7).random((50, 2, 12, 10), dtype=np.float32)
    folded, _ = _run(ann, LOWERED)
    kept, _ = _run(ann, "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn{fold-pooling=false}")
    assert "pool" not in {folded.op(p).connectivity for p in folded.ops_of("snn.projection")}
    np.testing.assert_allclose(readout_scores(folded, x), readout_scores(kept, x), atol=1e-5)


def test_channel_normalization_scales_each_channel_to_its_own_percentile(tmp_path: Path) -> None:
    make, shape = NETS["cnn"]  # its pooling folds into the dense layer: the conv population has channels
    ann = _export(make(), shape, tmp_path / "m.onnx")
    x = np.random.default_rng(6).random((200, *shape), dtype=np.float32)
    lowered, _ = _run(ann, LOWERED, x)
    per_channel, _ = _run(ann, LOWERED + ",normalize{method=channel,percentile=100}", x)
    before, after = rates(lowered, x), rates(per_channel, x)
    assert np.array_equal(readout_scores(per_channel, x).argmax(1), readout_scores(lowered, x).argmax(1))
    scaled = 0
    for pop in per_channel.ops_of("snn.population"):
        shape_ = per_channel.shape(pop)
        channels = shape_[0] if len(shape_) == 3 else int(np.prod(shape_))
        peak = after[pop].reshape(len(x), channels, -1).max(axis=(0, 2))
        raw = before[pop].reshape(len(x), channels, -1).max(axis=(0, 2))
        if not np.allclose(peak[raw > 0], peak[raw > 0][0]):
            continue  # a population kept whole (output, pooling or one-to-one ends): one scale
        np.testing.assert_allclose(peak[raw > 0], 1.0, rtol=1e-4)
        scaled += int(len(np.unique(np.round(raw[raw > 0], 5))) > 1)
    assert scaled >= 1  # at least one population had channels of different ranges, each now peaking at 1


def test_bias_calibration_shrinks_each_layers_mean_rate_error(tmp_path: Path) -> None:
    from snnc.ir.semantics.simulator import simulate

    make, shape = NETS["mlp"]
    ann = _export(make(), shape, tmp_path / "m.onnx")
    x = np.random.default_rng(7).random((128, *shape), dtype=np.float32)
    base = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn{presentation-time=8},normalize,bias-to-current"
    plain, _ = _run(ann, base, x)
    calibrated, ctx = _run(ann, base + ",calibrate-bias", x)
    assert any(d.source == "calibrate-bias" and "corrected" in d.message for d in ctx.diagnostics)
    hidden = next(p for p in plain.ops_of("snn.population") if p not in membrane_populations(plain))

    target = rates(plain, x)[hidden]  # the normalized ANN's activations

    def mean_error(graph: Graph) -> float:
        counts = simulate(graph, x, record_neurons=True).neuron_counts[hidden] / np.float32(8.0)
        return float(np.abs((target - counts).mean(axis=0)).mean())

    assert mean_error(calibrated) < 0.7 * mean_error(plain)
