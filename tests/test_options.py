"""Every setting takes effect (issue 10): for each target, each key that ``snnc targets`` and
``snnc passes`` list, set to another valid value, changes the emitted output or is refused with
one line naming the key. Nothing runs a simulator: nest and spinnaker are emitted only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_cnn_onnx, make_data, make_mlp_onnx

import snnc
from snnc.ir.errors import SnncError
from snnc.passes import PassError
from snnc.pipeline import apply_settings, parse_pipeline
from snnc.targets import TARGETS, get_target

# Two valid values per key: the test sets the first that differs from the target's own value.
CANDIDATES: dict[str, list[str]] = {
    "dt": ["0.5", "0.25"],
    "presentation-time": ["50", "60"],
    "reset": ["zero", "subtract"],
    "tau-m": ["20", "30"],
    "tau-refrac": ["2", "3"],
    "v-min": ["-1", "-2"],
    "pause": ["10", "20"],
    "min-delay": ["2", "3"],
    "encoding": ["poisson", "regular"],
    "max-rate": ["200", "300"],
    "neurons-per-core": ["5", "6"],
    "source-neurons-per-core": ["5", "6"],
    "instances": ["2", "3"],
    "board": ["spinn3", "spinn5"],
    "time-scale-factor": ["2", "3"],
    "backend": ["cuda", "single_threaded_cpu"],
    "precision": ["double", "float"],
    "max-input-axons-per-core": ["10", "11"],
    "max-output-axons-per-core": ["5", "6"],
    "synapse-bits-per-core": ["640", "1280"],
    "whole-channels": ["true", "false"],
    "sources-take-cores": ["false", "true"],
    "max-neurons-per-core": ["8", "9"],
    "grid-populations": ["false", "true"],
    "max-fan-in": ["10", "11"],
    "max-synapses-per-core": ["20", "21"],
    "weight-bits": ["4", "5"],
    "weight-scheme": ["linear", "shift"],
    "chips": ["2", "3"],
    "cores-per-chip": ["4", "5"],
    "reserved-cores": ["3", "4"],
    "split-signs": ["false", "true"],
    "readout": ["membrane", "spike_count"],
    "percentile": ["90", "95"],
    "samples": ["16", "24"],
    "chains": ["2", "3"],
    "max-reset": ["0.5", "0.6"],
    "max-work": ["1e3", "1e15"],
    "bias": ["false", "true"],
    "fit-reset": ["false", "true"],
    "statistic": ["max", "percentile"],
    "method": [],  # one value only ("layer"): there is no other value to try
    "rate": ["0.5", "0.25"],
    "shared-kernels": ["true", "false"],
    "bits": ["4", "5"],
    "scheme": ["linear", "shift"],
    "measure": ["none", "sim"],
    "measure-samples": ["5", "6"],
    "measure-budget": ["1e-9", "2"],
    "input-bits": ["4", "6"],
    "output-bits": ["6", "7"],
    "matrix-rows": ["64", "32"],
    "matrix-columns": ["64", "32"],
    "mac-gain": ["0.001", "0.003"],
    "max-sends": ["4", "5"],
    "round-offset": ["false", "true"],
    "maxpool": ["avg", "relu-tree"],
    "v-init": ["0.5", "0.25"],
    "fold-pooling": ["false", "true"],
    "boards": ["3", "2"],
}
# Keys whose effect only shows on convolutions (C, H, W populations); they use the small CNN.
CNN_KEYS = {
    "grid-populations",
    "split-signs.shared-kernels",
    "whole-channels",
    "fold-pooling",
    "lower-to-snn.fold-pooling",
}
# Keys that only act on max pooling; they use a CNN with max pooling.
POOLED_KEYS = {"maxpool", "lower-to-snn.maxpool"}
# The same for every compile of a target, to keep it fast: quantize measures with the rate model.
BASE = {"spinnaker": {"quantize.measure": "rates"}}


def _listed_keys(target: str) -> list[str]:
    """What ``snnc targets`` and ``snnc passes`` offer for ``target``: its settings (and the ones
    it fixes) unscoped, and the options of its pipeline's passes scoped to their pass."""
    spec = get_target(target).spec
    keys = [f.name for part in ("options", "machine") for f in dataclasses.fields(getattr(spec, part))]
    keys += [k for k in spec.accepts if k not in keys]
    keys = [k.replace("_", "-") for k in keys]
    return keys + [f"{p.name}.{o}" for p in parse_pipeline(spec.pipeline) for o in p.option_names()]


def _current(target: str, key: str) -> Any:
    passes, spec = apply_settings(
        parse_pipeline(get_target(target).spec.pipeline), get_target(target).spec, dict(BASE.get(target, {}))
    )
    scope, _, short = key.rpartition(".")
    if scope:
        p = next(p for p in passes if p.name == scope)
        home = p.home(short.replace("-", "_"))
        value = p.options()[short]
        return spec.get(home) if value is None and home is not None else value
    return spec.get(short.replace("-", "_")) if spec.part_of(short.replace("-", "_")) else None


def _same(text: str, value: Any) -> bool:
    """Whether option text ``text`` means ``value``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == {True: "true", False: "false", None: "none"}.get(value, value)


def _other_value(target: str, key: str) -> str | None:
    current = _current(target, key)
    return next((v for v in CANDIDATES[key.rpartition(".")[2]] if not _same(v, current)), None)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    folder = tmp_path_factory.mktemp("models")
    mlp = make_mlp_onnx(folder / "mlp.onnx")
    mlp_x = np.load(make_data(folder / "mlp.npz", mlp, n=32))["x"]
    cnn, cnn_data = make_cnn_onnx(folder, 16)
    return {"mlp": (mlp, mlp_x), "cnn": (cnn, np.load(cnn_data)["x"]), "pooled": _pooled_cnn(folder / "pooled.onnx")}


def _pooled_cnn(path: Path) -> tuple[Path, np.ndarray]:
    """conv3x3(3, relu) -> max pooling 2x2 -> dense(3) on 6x6 inputs, and 16 random images."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(27, 3))
    torch.onnx.export(
        net.eval(), torch.rand(1, 1, 6, 6), path, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}}
    )
    return path, np.random.default_rng(0).random((16, 1, 6, 6), dtype=np.float32)


def _emitted(model: tuple[Path, np.ndarray], target: str, settings: dict[str, str], out: Path) -> dict[str, bytes]:
    """The emitted files, snnc.json without its records of the settings (the spelled pipeline and
    the spec) and README.md (which repeats them): what a setting changes when it takes effect."""
    path, x = model
    snnc.compile(path, target, calibration=x, settings={**BASE.get(target, {}), **settings}).emit(out)
    files = {f.name: f.read_bytes() for f in sorted(out.iterdir()) if f.is_file() and f.name != "README.md"}
    manifest = json.loads(files.pop("snnc.json"))
    files["snnc.json"] = json.dumps({k: v for k, v in manifest.items() if k not in ("pipeline", "spec")}).encode()
    return files


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_listed_key_takes_effect_or_is_refused(models, target: str, tmp_path: Path) -> None:
    keys = _listed_keys(target)
    assert set(k.rpartition(".")[2] for k in keys) <= set(CANDIDATES), "a new key needs candidate values here"
    baselines = {name: _emitted(models[name], target, {}, tmp_path / f"base-{name}") for name in ("mlp", "cnn")}
    try:  # the default max pooling may not map (sPyNNaker's 2-D populations): then a setting that maps it changes it
        baselines["pooled"] = _emitted(models["pooled"], target, {}, tmp_path / "base-pooled")
    except SnncError:
        baselines["pooled"] = None
    outcomes = {}
    for i, key in enumerate(keys):
        value = _other_value(target, key)
        if value is None:
            continue
        model = "cnn" if key in CNN_KEYS else "pooled" if key in POOLED_KEYS else "mlp"
        try:
            changed = _emitted(models[model], target, {key: value}, tmp_path / f"k{i}") != baselines[model]
        except SnncError as exc:
            message, short = str(exc), key.rpartition(".")[2]
            assert "\n" not in message and (short in message or short.replace("-", "_") in message), (key, message)
            outcomes[key] = "refused"
            continue
        assert changed, f"--set {key}={value} on {target} was accepted and changed nothing"
        outcomes[key] = "changed"
    assert "changed" in outcomes.values()


def test_settings_have_one_home_and_nothing_reads_the_rest() -> None:
    tgt = get_target("sim")
    passes, spec = apply_settings(parse_pipeline(tgt.spec.pipeline), tgt.spec, {"tau-m": "20"})
    lower = next(p for p in passes if p.name == "lower-to-snn")
    assert spec.options.tau_m == 20.0 and lower.tau_m == 20.0  # the option and its pass override agree
    with pytest.raises(
        PassError,
        match=r"^--set instances=2: nothing in the sim pipeline or target reads it "
        r"\(read by replicate, not in the pipeline\)$",
    ):
        apply_settings(parse_pipeline(tgt.spec.pipeline), tgt.spec, {"instances": "2"})
    for target in ("nest", "spinnaker"):
        with pytest.raises(PassError, match=f"^--set split-signs=false: {target} fixes split-signs: "):
            apply_settings(
                parse_pipeline(get_target(target).spec.pipeline), get_target(target).spec, {"split-signs": "false"}
            )
    with pytest.raises(PassError, match="^--set lower-to-snn.reset=subtract: spinnaker takes zero only"):
        apply_settings(
            parse_pipeline(get_target("spinnaker").spec.pipeline),
            get_target("spinnaker").spec,
            {"lower-to-snn.reset": "subtract"},
        )


@pytest.mark.parametrize("target", ["spinnaker"])
def test_an_option_written_in_the_pipeline_is_held_to_the_target(target: str) -> None:
    """lower-to-snn{reset=subtract} in --pipeline is refused as --set reset=subtract is."""
    pipeline = get_target(target).spec.pipeline.replace("lower-to-snn", "lower-to-snn{reset=subtract}", 1)
    with pytest.raises(PassError, match=rf"^lower-to-snn{{reset=subtract}}: {target} takes zero only"):
        apply_settings(parse_pipeline(pipeline), get_target(target).spec, {})
    accepted = get_target(target).spec.pipeline.replace("lower-to-snn", "lower-to-snn{reset=zero}", 1)
    apply_settings(parse_pipeline(accepted), get_target(target).spec, {})


def test_spinnaker_run_passes_the_presentation_time_to_its_script(monkeypatch, tmp_path: Path) -> None:
    from snnc.targets import RunRequest
    from snnc.targets.spinnaker import run_spinnaker
    from snnc.targets.spinnaker import target as spinnaker

    calls = []
    monkeypatch.setattr(spinnaker, "run_script", lambda name, out, args: calls.append(args) or {})
    get_target("spinnaker").run(RunRequest(tmp_path, tmp_path / "d.npz", presentation_time=50.0))
    args = calls[0]
    assert args[args.index("--presentation-time") + 1] == "50.0"
    assert run_spinnaker.parse_args(["--dir", str(tmp_path), *args]).presentation_time == 50.0


def test_a_bias_left_on_a_population_stops_emission_in_the_verifier(tmp_path: Path) -> None:
    from snnc.ir import IRError, verify

    model = make_mlp_onnx(tmp_path / "mlp.onnx")
    x = np.load(make_data(tmp_path / "d.npz", model, n=8))["x"]
    pipeline = "canonicalize,lower-to-snn,normalize"  # no bias-to-current
    compiled = snnc.compile(model, "sim", calibration=x, pipeline=pipeline)
    verify(compiled.graph)  # a valid snn graph between passes
    with pytest.raises(IRError, match=r"^%fc1 still has a bias: run bias-to-current or remove-bias"):
        verify(compiled.graph, emitting=True)
    for target in ("sim", "nest", "spinnaker"):
        with pytest.raises(IRError, match="still has a bias"):
            snnc.compile(model, target, calibration=x, pipeline=pipeline).emit(tmp_path / target)
        assert not (tmp_path / target).exists()
