"""SpiNNaker's hard reset (IF cells reset to v_reset) and its remedy: calibrate-bias{fit-reset=true}
fits each population's v_reset to the charge its resets throw away."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.ir import Graph
from snnc.ir.semantics.rates import rates
from snnc.ir.semantics.simulator import simulate
from snnc.passes import PassError
from snnc.targets.spinnaker.spec import SPEC

SHAPE = (1, 8, 8)
REMEDY = ",calibrate-bias{"


def _model(path: Path) -> Path:
    """A tiny CNN with max pooling (lowered to relu trees whose weights exceed the threshold: a
    hard reset loses most of what each spike brings), random weights, exported to ONNX."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(96, 16),
        nn.ReLU(),
        nn.Linear(16, 4),
    )
    torch.onnx.export(
        net.eval(), torch.rand(1, *SHAPE), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}}
    )
    return path


def _compile(model: Path, x: np.ndarray, pipeline: str) -> snnc.Compiled:
    settings = {"presentation-time": "50", "pause": "30"}
    return snnc.compile(model, "spinnaker", calibration=x, settings=settings, pipeline=pipeline)


def _old_pipeline() -> str:
    head, _, tail = SPEC.pipeline.partition(REMEDY)
    return head + tail.partition("}")[2]


def _deficit(graph: Graph, x: np.ndarray, reference: Graph) -> dict[str, float]:
    """Per population: 1 - simulated spikes / the rate model's (normalized ANN) spikes, on ``x``."""
    counts = simulate(graph, x, chains=len(x), record_neurons=True).neuron_counts
    target = rates(reference, x)
    ms = float(graph.attrs["presentation_time"])
    return {p: 1 - float(counts[p].sum()) / ms / float(target[p].sum()) for p in counts if target[p].sum() > 0}


def _scores(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The output layer's spike counts per sample."""
    result = simulate(graph, x, chains=len(x))
    return next(iter(result.counts.values()))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model(tmp_path_factory.mktemp("reset") / "maxpool.onnx")


def test_the_spinnaker_default_fits_v_reset_and_keeps_quantize() -> None:
    assert REMEDY + "fit-reset=true" in SPEC.pipeline
    assert SPEC.pipeline.index("calibrate-bias") < SPEC.pipeline.index("quantize")
    assert SPEC.options.reset == "zero"


def test_fitted_v_reset_recovers_the_spikes_a_hard_reset_loses(model: Path) -> None:
    x = np.random.default_rng(3).random((32, *SHAPE), dtype=np.float32)
    hard = _compile(model, x, _old_pipeline()).graph
    fitted = _compile(model, x, SPEC.pipeline).graph
    subtract = hard.copy()
    for pop in subtract.ops_of("snn.population"):
        subtract.set_op(pop, replace(subtract.op(pop), reset="subtract"))
    resets = [fitted.op(p).v_reset / fitted.op(p).v_threshold for p in fitted.ops_of("snn.population")]
    assert all(0 <= r <= 0.9 for r in resets) and max(resets) > 0.05
    assert all(hard.op(p).v_reset == 0 for p in hard.ops_of("snn.population"))
    lost, kept, exact = _deficit(hard, x, hard), _deficit(fitted, x, hard), _deficit(subtract, x, hard)
    worst = max(lost, key=lost.get)
    assert lost[worst] > max(0.2, exact[worst] + 0.1)  # the hard reset loses spikes that subtraction keeps
    assert abs(kept[worst]) < 0.5 * lost[worst]
    assert sum(abs(v) for v in kept.values()) < 0.5 * sum(abs(v) for v in lost.values())
    scores = {k: _scores(g, x) for k, g in (("hard", hard), ("fitted", fitted), ("subtract", subtract))}
    # the output spike counts come closer to those of reset by subtraction
    assert (
        np.abs(scores["fitted"] - scores["subtract"]).mean() < 0.5 * np.abs(scores["hard"] - scores["subtract"]).mean()
    )


def test_reset_fit_leaves_populations_that_reset_by_subtraction_alone(model: Path) -> None:
    x = np.random.default_rng(4).random((16, *SHAPE), dtype=np.float32)
    pipeline = "canonicalize,fold-batchnorm,remove-softmax,lower-to-snn,normalize,bias-to-current"
    remedy = ",calibrate-bias{fit-reset=true,bias=false,samples=16}"
    plain = snnc.compile(model, "sim", calibration=x, pipeline=pipeline).graph
    graph = snnc.compile(model, "sim", calibration=x, pipeline=pipeline + remedy).graph
    for pop in graph.ops_of("snn.population"):
        assert graph.op(pop) == plain.op(pop)


@pytest.mark.parametrize("option", ["max-reset=1", "max-reset=-0.1", "chains=-1", "max-work=0"])
def test_bad_calibration_options_are_refused(model: Path, option: str) -> None:
    x = np.random.default_rng(5).random((4, *SHAPE), dtype=np.float32)
    with pytest.raises(PassError, match=option.split("=")[0].replace("-", "[-_]")):
        _compile(model, x, _old_pipeline().replace("bias-to-current", "bias-to-current,calibrate-bias{" + option + "}"))


def _calibrated(model: Path, x: np.ndarray, remedy: str, monkeypatch: pytest.MonkeyPatch, one_by_one: bool):
    """The spinnaker compile with ``remedy`` in place of the default calibration, and how many
    simulations calibrate-bias ran; ``one_by_one``: every population a level of its own."""
    from snnc.passes import calibrate

    runs = []
    monkeypatch.setattr(calibrate, "simulate", lambda *a, **k: (runs.append(1), simulate(*a, **k))[1])
    if one_by_one:
        levels = calibrate.CalibrateBias._levels
        split = staticmethod(lambda g: [[p] for level in levels(g) for p in level])
        monkeypatch.setattr(calibrate.CalibrateBias, "_levels", split)
    head, _, tail = SPEC.pipeline.partition(REMEDY)
    compiled = _compile(model, x, head + remedy + tail.partition("}")[2])
    monkeypatch.undo()
    return compiled, len(runs)


@pytest.mark.parametrize(
    "remedy",
    [
        ",calibrate-bias{fit-reset=true,bias=false,samples=8,chains=8}",
        ",calibrate-bias{fit-reset=true,samples=8,chains=8}",
    ],
)
def test_a_level_of_populations_is_calibrated_from_one_simulation(
    model: Path, remedy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parts of one layer cannot affect each other: calibrated together from one simulation,
    they get the values of calibrating them one after another, in fewer simulations."""
    x = np.random.default_rng(6).random((8, *SHAPE), dtype=np.float32)
    together, fewer = _calibrated(model, x, remedy, monkeypatch, one_by_one=False)
    alone, more = _calibrated(model, x, remedy, monkeypatch, one_by_one=True)
    assert fewer < more
    for pop in together.graph.ops_of("snn.population"):
        a, b = together.graph.op(pop), alone.graph.op(pop)
        assert a.v_reset == b.v_reset, pop
        if a.i_offset is not None:
            assert np.array_equal(together.graph.tensor(a.i_offset), alone.graph.tensor(b.i_offset)), pop


def test_calibration_keeps_to_its_work_budget(model: Path) -> None:
    x = np.random.default_rng(7).random((16, *SHAPE), dtype=np.float32)
    head, _, tail = SPEC.pipeline.partition(REMEDY)
    rest = tail.partition("}")[2]
    plain = _compile(model, x, _old_pipeline())
    starved = _compile(model, x, head + REMEDY + "fit-reset=true,bias=false,samples=16,max-work=1e3}" + rest)
    assert any("skipped" in d.message and "max-work" in d.message for d in starved.diagnostics)
    for pop in plain.graph.ops_of("snn.population"):
        assert starved.graph.op(pop).v_reset == plain.graph.op(pop).v_reset
    from snnc.passes.calibrate import CalibrateBias

    calibrate = CalibrateBias(fit_reset=True, bias=False)
    per_sample = calibrate._work_per_sample(plain.graph, calibrate._levels(plain.graph), 16)
    budget = f"{5.5 * per_sample:.6g}"
    some = _compile(model, x, head + REMEDY + f"fit-reset=true,bias=false,samples=16,max-work={budget}}}" + rest)
    assert any("5 of 16 calibration samples" in d.message for d in some.diagnostics)


def test_a_level_is_calibrated_on_the_part_it_reads(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each level simulates only what it depends on (nothing downstream reaches back): the values
    of simulating the whole network every time, with fewer populations simulated."""
    from snnc.passes import calibrate

    x = np.random.default_rng(8).random((8, *SHAPE), dtype=np.float32)
    remedy = ",calibrate-bias{fit-reset=true,samples=8,chains=8}"
    head, _, tail = SPEC.pipeline.partition(REMEDY)
    pipeline = head + remedy + tail.partition("}")[2]
    sizes = []
    monkeypatch.setattr(calibrate, "simulate", lambda g, *a, **k: (sizes.append(len(g)), simulate(g, *a, **k))[1])
    part = _compile(model, x, pipeline)
    monkeypatch.setattr(calibrate, "_upstream", lambda graph, level: graph)
    whole = _compile(model, x, pipeline)
    monkeypatch.undo()
    assert min(sizes[: len(sizes) // 2]) < max(sizes)  # the first levels simulated a part
    for pop in part.graph.ops_of("snn.population"):
        a, b = part.graph.op(pop), whole.graph.op(pop)
        assert a.v_reset == b.v_reset, pop
        if a.i_offset is not None:
            assert np.array_equal(part.graph.tensor(a.i_offset), whole.graph.tensor(b.i_offset)), pop
