"""Emitted run scripts carry no value from the IR, and check everything they read (issue 9)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_data, make_mlp_onnx

import snnc
from snnc.ir import IRError, SnncError, runtime
from snnc.targets.base import TargetError
from snnc.targets.nest import run_nest
from snnc.targets.spinnaker import run_spinnaker

PAYLOAD = '"""\nimport pathlib; pathlib.Path("PWNED").write_text("x")\n"""'
TARGETS = ["sim", "nest", "spinnaker", "genn", "loihi"]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mlp")
    model = make_mlp_onnx(folder / "mlp.onnx")
    return model, make_data(folder / "data.npz", model)


def _compile(mlp: tuple[Path, Path], target: str, **settings: str) -> snnc.Compiled:
    model, data = mlp
    x = np.load(data)["x"]
    extra = {"measure": "none"} if target == "spinnaker" else {}
    return snnc.compile(model, target, calibration=x, settings={**settings, **extra})


def _scripts(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.py"))}


@pytest.mark.parametrize("target", TARGETS)
def test_run_scripts_are_the_same_bytes_for_any_timing(mlp, tmp_path: Path, target: str) -> None:
    dt = ("1", "1") if target == "loihi" else ("0.1", "0.25")  # Loihi's step is fixed at 1 ms
    a = _compile(mlp, target, dt=dt[0], **{"presentation-time": "40", "tau-refrac": "0"}).emit(tmp_path / "a")
    b = _compile(mlp, target, dt=dt[1], **{"presentation-time": "64", "tau-refrac": "0"}).emit(tmp_path / "b")
    assert _scripts(a) and _scripts(a) == _scripts(b)
    spec = [json.loads((d / "snnc.json").read_text())["spec"]["options"] for d in (a, b)]
    assert [(o["dt"], o["presentation_time"]) for o in spec] == [(float(dt[0]), 40.0), (float(dt[1]), 64.0)]
    for script in a.glob("*.py"):
        assert "{{ " not in script.read_text()


@pytest.mark.parametrize("target", [*TARGETS, "nir"])
@pytest.mark.parametrize("key", ["presentation_time", "dt"])
def test_string_graph_attribute_is_refused_at_emit(mlp, tmp_path: Path, target: str, key: str) -> None:
    compiled = _compile(mlp, target)
    compiled.graph.attrs[key] = PAYLOAD
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IRError, match=f"graph attribute {key} = "):
        compiled.target.emit(compiled.graph, out, compiled.manifest())
    assert not (out / "run.py").exists() or PAYLOAD not in (out / "run.py").read_text()


def test_nan_and_hostile_layout_are_refused_at_emit(mlp, tmp_path: Path) -> None:
    compiled = _compile(mlp, "nest")
    compiled.graph.attrs["presentation_time"] = float("nan")
    with pytest.raises(IRError, match="presentation_time = nan: must be a finite number"):
        compiled.target.emit(compiled.graph, tmp_path, compiled.manifest())
    compiled = _compile(mlp, "nest")
    compiled.graph.attrs["input_layout"] = PAYLOAD
    with pytest.raises(TargetError, match="input_layout"):
        compiled.target.emit(compiled.graph, tmp_path, compiled.manifest())


def test_readme_refuses_text_that_is_not_a_pipeline(mlp, tmp_path: Path) -> None:
    compiled = _compile(mlp, "sim")
    manifest = {**compiled.manifest(), "pipeline": ["canonicalize", "<script>alert(1)</script>"]}
    with pytest.raises(TargetError, match="pipeline="):
        compiled.target.emit(compiled.graph, tmp_path, manifest)


def _nest_out(mlp, tmp_path: Path) -> Path:
    return _compile(mlp, "nest").emit(tmp_path / "nest")


def _tamper(out: Path, edit) -> None:
    network = json.loads((out / "network.json").read_text())
    edit(network)
    (out / "network.json").write_text(json.dumps(network))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda n: n.update(dt=PAYLOAD), "network.json.dt: must be a finite number"),
        (lambda n: n.update(presentation_time=-5), "presentation_time: -5 is outside"),
        (lambda n: n["cells"][1].update(size=10**13), r"cells\[1\].size"),
        (lambda n: n["cells"][1].update(i_offset="../../etc/passwd"), r"i_offset: must name an array"),
        (lambda n: n["projections"][0].update(pre=7), r"projections\[0\].pre"),
        (lambda n: n["cells"][2].update(readout="eval"), r"readout: must be one of"),
        (lambda n: n.update(input_layout="NHWC;"), "input_layout"),
    ],
)
def test_nest_run_checks_refuse_tampered_network(mlp, tmp_path: Path, edit, message: str) -> None:
    out = _nest_out(mlp, tmp_path)
    _tamper(out, edit)
    network = runtime.read_json(out / "network.json")
    with pytest.raises(SystemExit, match=message):
        run_nest.check_network(network, runtime.read_npz(out / "weights.npz"))


def test_nest_run_checks_refuse_bad_arrays_and_nan_json(mlp, tmp_path: Path) -> None:
    out = _nest_out(mlp, tmp_path)
    network = runtime.read_json(out / "network.json")
    arrays = runtime.read_npz(out / "weights.npz")
    run_nest.check_network(network, dict(arrays))  # the emitted files pass
    bad = dict(arrays, proj1=arrays["proj1"][:, 1:])
    with pytest.raises(SystemExit, match=r"proj1: shape \[\d+, \d+\], expected"):
        run_nest.check_network(network, bad)
    bad = dict(arrays, cell1_i_offset=np.full_like(arrays["cell1_i_offset"], np.inf))
    with pytest.raises(SystemExit, match="NaN or infinite"):
        run_nest.check_network(network, bad)
    (out / "network.json").write_text('{"dt": NaN}')
    with pytest.raises(SystemExit, match="NaN is not a valid value"):
        runtime.read_json(out / "network.json")
    np.save(out / "w.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with __import__("zipfile").ZipFile(out / "weights.npz", "w") as zf:
        zf.write(out / "w.npy", "proj0.npy")
    with pytest.raises(SystemExit, match="not a plain numeric type"):
        runtime.read_npz(out / "weights.npz")


def test_spinnaker_run_checks(mlp, tmp_path: Path) -> None:
    out = _compile(mlp, "spinnaker").emit(tmp_path / "spin")
    network = runtime.read_json(out / "network.json")
    arrays = runtime.read_npz(out / "weights.npz")
    run_spinnaker.check_network(network, dict(arrays))
    for key, value, message in [
        ("instances", "2; rm -rf", "instances"),
        ("board", "../x", "board"),
        ("time_scale_factor", 0, "time_scale_factor"),
        ("pause", float("inf"), "pause"),
    ]:
        with pytest.raises(SystemExit, match=message):
            run_spinnaker.check_network({**network, key: value}, dict(arrays))
    # lists keep the IR's signs: an inhibitory list holds negative weights, and run.py refuses
    # it as an excitatory one
    j = next(j for j, p in enumerate(network["projections"]) if p["receptor"] == "inhibitory")
    bad = {**network, "projections": [dict(p) for p in network["projections"]]}
    bad["projections"][j]["receptor"] = "excitatory"
    with pytest.raises(SystemExit, match="negative weights in an excitatory list"):
        run_spinnaker.check_network(bad, dict(arrays))
    cfg = (out / "spynnaker.cfg").read_text()
    assert "version = 5" in cfg and "time_scale_factor = 1" in cfg


def test_run_checks_refuse_bad_data(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((8, 16), dtype=np.float32)
    cases = [
        ({"x": x, "y": np.full(8, 4)}, r"label 4, outside \[0, 4\)"),
        ({"x": x, "y": np.full(8, -1)}, "label -1"),
        ({"x": x}, "no labels 'y'"),
        ({"x": np.where(x > 0.5, np.nan, x), "y": np.zeros(8, int)}, "NaN"),
        ({"x": x[:, :3], "y": np.zeros(8, int)}, r"the network takes \[16\]"),
    ]
    for arrays, message in cases:
        np.savez(path, **arrays)
        with pytest.raises(SystemExit, match=message):
            runtime.load_samples(path, None, (16,), 4)
    np.savez(path, x=x, y=np.zeros(8, int))
    assert runtime.load_samples(path, 3, (16,), 4)[0].shape == (3, 16)
    with pytest.raises(SystemExit, match="must be a positive integer"):
        runtime.load_samples(path, -1, (16,), 4)


def test_nest_run_py_refuses_tampered_dir_before_importing_nest(mlp, tmp_path: Path) -> None:
    out = _nest_out(mlp, tmp_path)
    shutil.copy(mlp[1], out / "data.npz")
    _tamper(out, lambda n: n.update(presentation_time=PAYLOAD))
    proc = subprocess.run(
        [sys.executable, str(out / "run.py"), "--data", str(out / "data.npz"), "--no-ann"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("run.py: network.json.presentation_time: must be")
    assert not (tmp_path / "PWNED").exists() and not (out / "PWNED").exists()


def test_target_error_is_an_snnc_error() -> None:
    assert issubclass(TargetError, SnncError)


def _windowed_graph():
    """A grouped, strided, dilated, asymmetrically padded convolution, a pool, a dense layer and a
    one-to-one projection."""
    from snnc.ir import Graph
    from snnc.ir import ops as ir

    rng = np.random.default_rng(0)
    g = Graph({"dt": 1.0, "presentation_time": 10.0, "instances": 1})
    g.add("src", ir.Source(shape=(4, 9, 8)))
    w = rng.normal(size=(6, 2, 3, 2)).astype(np.float32)
    w[0, 0, 1, 1] = 0.0  # a zero weight is no synapse
    conv = ir.Projection(
        connectivity="conv", weight=g.add_tensor("w", w), strides=(2, 1), pads=(1, 0, 2, 1), dilations=(2, 1), groups=2
    )
    g.add("c", conv, ["src"])
    g.add("a", ir.Population(), ["c"])
    g.add("p", ir.Projection(connectivity="pool", kernel=(2, 3), strides=(2, 2), pads=(0, 1, 1, 0), scale=0.25), ["a"])
    g.add("b", ir.Population(), ["p"])
    size = int(np.prod(g.shape("b")))
    g.add("d", ir.Projection(connectivity="dense", weight=g.add_tensor("wd", rng.normal(size=(3, size)))), ["b"])
    g.add("o", ir.Population(), ["d"])
    g.add("e", ir.Projection(connectivity="one_to_one", scale=0.5, offset=0, post_shape=(3,)), ["o"])
    g.add("q", ir.Population(), ["e"])
    g.outputs = [g.add("r", ir.Readout(), ["q"])]
    return g


def test_nest_keeps_kernels_and_its_script_spells_out_what_snnc_would() -> None:
    """network.json holds a dense layer as its matrix, a convolution as its kernel and a pool as
    its window (float32 and int32 arrays otherwise); the run script's spelled-out synapses equal
    snnc's connection lists."""
    from snnc.ir.semantics.connectivity import connections, synapse_count
    from snnc.targets.network_json import stored

    g = _windowed_graph()
    size = {n: int(np.prod(g.shape(n))) for n in ("src", "a", "b", "o", "q")}
    ends = {"c": ("src", "a"), "p": ("a", "b"), "d": ("b", "o"), "e": ("o", "q")}
    for proj, kind in (("c", "conv"), ("p", "pool"), ("d", "dense"), ("e", "list")):
        pre, post = ends[proj]
        arrays: dict = {}
        entry = stored(g, proj, "proj0", arrays)
        assert entry["kind"] == kind
        assert all(a.dtype in (np.float32, np.int32) for a in arrays.values())
        spelled = runtime.stored_connections(arrays, entry, {"size": size[pre]}, {"size": size[post]}, proj)
        expected = connections(g, proj)
        assert len(spelled) == synapse_count(g, proj) == len(expected.pre) > 0
        assert np.array_equal(spelled[:, 0], expected.pre) and np.array_equal(spelled[:, 1], expected.post)
        assert np.array_equal(spelled[:, 2], expected.weight.astype(np.float64))
    arrays = {}
    entry = stored(g, "e", "proj0", arrays)
    arrays["proj0_indices"] = arrays["proj0_indices"] + np.array([0, 1000], np.int32)
    with pytest.raises(SystemExit, match="column 1 holds indices outside"):
        runtime.stored_connections(arrays, entry, {"size": 3}, {"size": 3}, "e")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e: e.update(post_shape=[6, 5, 7]), "post_shape"),
        (lambda e: e.update(groups=4), "groups"),
        (lambda e: e.update(pads=[1, 0, 2]), "pads"),
        (lambda e: e.update(strides=[0, 1]), "strides"),
        (lambda e: e.update(pre_shape=[4, 9, 8, 1]), "pre_shape"),
        (lambda e: e.update(kind="exec"), "kind"),
    ],
)
def test_nest_run_checks_refuse_a_tampered_window(edit, message: str) -> None:
    from snnc.targets.network_json import stored

    arrays: dict = {}
    entry = stored(_windowed_graph(), "c", "proj0", arrays)
    edit(entry)
    with pytest.raises(SystemExit, match=message):
        runtime.stored_connections(arrays, entry, {"size": 288}, {"size": 192}, "projections[0]")


def test_nest_run_refuses_more_copies_than_the_limits_hold(mlp, tmp_path: Path, monkeypatch) -> None:
    """--instances multiplies neurons and synapses: checked before NEST builds anything."""
    out = _nest_out(mlp, tmp_path)
    network = runtime.read_json(out / "network.json")
    arrays = runtime.read_npz(out / "weights.npz")
    run_nest.check_network(network, arrays)
    synapses = sum(len(arrays[f"projections/{j}"]) for j in range(len(network["projections"])))
    monkeypatch.setattr(runtime, "MAX_SYNAPSES", 3 * synapses)
    assert run_nest.copies(network, arrays, 3) == 3
    with pytest.raises(SystemExit, match="--instances: 4 copies make"):
        run_nest.copies(network, arrays, 4)
