"""The brainscales2 target: quantize-mac, tile-mac, the ann.mac op, the emitted files and run.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cnn_onnx

import snnc
from snnc.ir import Graph, IRError, load, save, verify
from snnc.ir import ops as ir
from snnc.ir.semantics import mac as hx
from snnc.ir.semantics.ann import accuracy, evaluate
from snnc.passes import PassError
from snnc.passes.quantize_mac import choose_scales
from snnc.targets.brainscales2.target import mac_report


def dense_net(sizes: list[int], seed: int = 0, bias: bool = False) -> Graph:
    """An ann graph of ReLU dense layers (the last without ReLU) with random weights."""
    rng = np.random.default_rng(seed)
    g = Graph()
    prev = g.add("x", ir.Input(shape=(sizes[0],)))
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = g.add_tensor(f"fc{i}.weight", rng.normal(0, 1 / math.sqrt(a), (b, a)).astype(np.float32))
        bias_ref = g.add_tensor(f"fc{i}.bias", rng.normal(0, 0.1, b).astype(np.float32)) if bias else None
        act = "relu" if i < len(sizes) - 2 else "none"
        prev = g.add(f"fc{i}", ir.Dense(weight=w, bias=bias_ref, activation=act), [prev])
    g.outputs = [prev]
    return g


def conv_net(seed: int = 0) -> Graph:
    """The paper's convolutional MNIST model: 28x28 padded to 30x30, 20 filters 10x10 stride 5, 128, 10."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add("x", ir.Input(shape=(1, 28, 28)))
    w = g.add_tensor("conv.weight", rng.normal(0, 0.1, (20, 1, 10, 10)).astype(np.float32))
    c = g.add("conv", ir.Conv2d(weight=w, strides=(5, 5), pads=(1, 1, 1, 1), activation="relu"), [x])
    f = g.add("flat", ir.Flatten(), [c])
    w1 = g.add_tensor("fc1.weight", rng.normal(0, 0.05, (128, 500)).astype(np.float32))
    h = g.add("fc1", ir.Dense(weight=w1, activation="relu"), [f])
    w2 = g.add_tensor("fc2.weight", rng.normal(0, 0.1, (10, 128)).astype(np.float32))
    g.outputs = [g.add("fc2", ir.Dense(weight=w2), [h])]
    return g


def data_for(graph: Graph, n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs in [0, 1] labelled by the float network."""
    shape = graph.shape(graph.ops_of("ann.input")[0])
    x = np.random.default_rng(seed).random((n, *shape), dtype=np.float32)
    return x, evaluate(graph, x)[graph.outputs[0]].reshape(n, -1).argmax(axis=1)


def compiled(graph: Graph, n: int = 200, **settings: str) -> snnc.api.Compiled:
    x, y = data_for(graph, n)
    return snnc.compile(graph, "brainscales2", calibration=x, calibration_labels=y, settings=settings)


@pytest.mark.parametrize("sizes", [[300, 600, 10], [784, 64, 10], [128, 256, 257, 5], [1, 1]])
def test_tiles_are_ceil_rows_over_128_times_ceil_cols_over_256(sizes: list[int]) -> None:
    c = compiled(dense_net(sizes), n=50)
    report = mac_report(c.graph)
    expected = [[math.ceil(a / 128), math.ceil(b / 256)] for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    assert [layer["tiles"] for layer in report["layers"]] == expected
    assert report["tiles"] == sum(r * k for r, k in expected)
    for node in c.graph.ops_of("ann.mac"):
        op = c.graph.op(node)
        assert (op.tile_rows, op.tile_cols) == (128, 256)
    info = [d.message for d in c.diagnostics if d.source == "tile-mac"]
    assert any(f"{sizes[0]} x {sizes[1]} matrix in {expected[0][0]} x {expected[0][1]} =" in m for m in info)


def test_the_papers_networks_give_the_papers_time_and_energy_per_image() -> None:
    """Weis et al.: 40 ms / 12 mJ per image (conv), 10 ms / 3 mJ (dense), from 4 multiplications at once."""
    conv = mac_report(compiled(conv_net(), n=40).graph)
    assert [layer["multiplications_per_sample"] for layer in conv["layers"]] == [25, 4, 1]
    assert (conv["ms_per_sample"], conv["mj_per_sample"]) == pytest.approx((40.0, 12.0))
    dense = mac_report(compiled(dense_net([784, 64, 10]), n=40).graph)
    assert (dense["ms_per_sample"], dense["mj_per_sample"]) == pytest.approx((10.0, 3.0))


def test_layers_hold_the_chips_integers_and_use_the_weight_range() -> None:
    c = compiled(dense_net([40, 30, 20, 5], bias=True))
    macs = c.graph.ops_of("ann.mac")
    x = data_for(dense_net([40]), 200)[0]
    assert c.graph.op(macs[0]).input_scale == pytest.approx(31 / np.percentile(x, 99.99))
    for node in macs:
        op = c.graph.op(node)
        w = c.graph.tensor(op.weight)
        assert np.all(w == np.round(w)) and 32 <= np.abs(w).max() <= 63  # at least 6 of the 7 bits used
        b = c.graph.tensor(op.bias)
        assert np.all(b == np.round(b)) and np.abs(b).max() <= 128
        assert op.input_scale is None or node == macs[0]
        last = node == macs[-1]
        assert (op.activation, op.shift <= 2) == ("none" if last else "converting_relu", True)
    assert c.graph.op(c.graph.outputs[0]).OPNAME == "ann.scale"


def test_emulated_accuracy_is_close_to_float_and_reported() -> None:
    graph = dense_net([64, 48, 10], seed=3)
    c = compiled(graph, n=400)
    x, y = data_for(graph, 400, seed=7)
    assert accuracy(c.graph, x, y) >= 0.9  # labels are the float network's own predictions
    messages = [d.message for d in c.diagnostics if d.source == "quantize-mac"]
    message = next(m for m in messages if "calibration samples" in m)
    assert "emulated" in message and "weights only" in message


def test_choose_scales_reaches_the_wanted_scale_with_the_largest_shift() -> None:
    m = choose_scales(scale_in=31.0, w_max=0.5, wanted_out=10.0, gain=0.002, max_sends=16, last=False)
    assert m.shift == 2 and m.a <= 63 / 0.5 and m.scale_out == pytest.approx(10.0)
    assert m.scale_out == pytest.approx(m.scale_in * m.a * 0.002 * m.num_sends / 4)
    capped = choose_scales(scale_in=1.0, w_max=1.0, wanted_out=1000.0, gain=0.002, max_sends=2, last=False)
    assert capped.a == pytest.approx(63) and capped.num_sends == 2 and capped.scale_out < 1000.0
    assert choose_scales(31.0, 0.5, 10.0, 0.002, 16, last=True).shift == 0


def test_rounding_offset_makes_the_shift_round_to_nearest() -> None:
    graph = dense_net([200, 100, 10], seed=5)
    on, off = compiled(graph, n=300), compiled(graph, n=300, round_offset="false")
    first = on.graph.ops_of("ann.mac")[0]
    chunks = math.ceil(200 / 128)
    offset = 2 ** (on.graph.op(first).shift - 1) + (chunks - 1) // 2
    assert np.all(on.graph.tensor(on.graph.op(first).bias) == offset)  # no real bias: only the offset
    assert off.graph.op(off.graph.ops_of("ann.mac")[0]).bias is None
    x = data_for(graph, 300, seed=9)[0]
    hidden = {name: evaluate(c.graph, x, [c.graph.ops_of("ann.mac")[0]]) for name, c in (("on", on), ("off", off))}
    real = np.maximum(evaluate(graph, x, ["fc0"])["fc0"], 0)
    errors = {}
    for name, c in (("on", on), ("off", off)):
        codes = hidden[name][c.graph.ops_of("ann.mac")[0]]
        s = _scale_out(c, c.graph.ops_of("ann.mac")[0])
        errors[name] = float(np.mean(codes[real * s < 30] - (real * s)[real * s < 30]))
    assert abs(errors["on"]) < 0.25 < abs(errors["off"])  # floors lose half a code on average


def _scale_out(c: snnc.api.Compiled, node: str) -> float:
    """The output scale quantize-mac reported for ``node``."""
    message = next(d.message for d in c.diagnostics if d.message.startswith(f"%{node}: weights x"))
    return float(message.rsplit("-> ", 1)[1])


@pytest.mark.parametrize(
    "edit, message",
    [
        ("add", r"%join: ann.add cannot be mapped to BrainScaleS-2's MAC mode"),
        ("no_relu", r"%fc0: a layer without ReLU inside the network; BrainScaleS-2's inputs are unsigned"),
        ("last_relu", r"%fc1: the last layer has a ReLU"),
        ("clip", r"%six: ann.clip cannot be mapped"),
    ],
)
def test_a_network_the_chip_cannot_run_is_refused_naming_the_layer(edit: str, message: str) -> None:
    g = dense_net([8, 8, 4])
    if edit == "add":
        w = g.add_tensor("side.weight", np.ones((8, 8), np.float32))
        side = g.add("side", ir.Dense(weight=w, activation="relu"), ["x"])
        join = g.add("join", ir.Add(), ["fc0", side])
        g.set_inputs("fc1", [join])
    elif edit == "no_relu":
        g.set_op("fc0", ir.Dense(weight=g.op("fc0").weight))
    elif edit == "last_relu":
        g.set_op("fc1", ir.Dense(weight=g.op("fc1").weight, activation="relu"))
    else:
        g.set_op("fc0", ir.Dense(weight=g.op("fc0").weight))
        six = g.add("six", ir.Clip(min=0.0, max=6.0), ["fc0"])
        g.set_inputs("fc1", [six])
    with pytest.raises(PassError, match=message) as exc:
        compiled(g, n=20)
    assert "\n" not in str(exc.value)


def test_negative_inputs_are_refused() -> None:
    g = dense_net([8, 4])
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    with pytest.raises(PassError, match=r"^quantize-mac: %x: the calibration inputs reach -[0-9.]+; BrainScaleS-2's"):
        snnc.compile(g, "brainscales2", calibration=x)


def test_a_spiking_model_is_refused(tmp_path: Path) -> None:
    sim = snnc.compile(dense_net([8, 4]), "sim", calibration=data_for(dense_net([8, 4]), 20)[0])
    save(sim.graph, tmp_path / "snn.snnir")
    with pytest.raises(snnc.api.CompileError, match="^target brainscales2 runs ANNs; the model is a spiking"):
        snnc.compile(tmp_path / "snn.snnir", "brainscales2")


def test_mac_layers_round_trip_through_the_text_form_and_verify(tmp_path: Path) -> None:
    c = compiled(conv_net(), n=30)
    save(c.graph, tmp_path / "m.snnir")
    text = (tmp_path / "m.snnir").read_text()
    assert "ann.mac(%x) {" in text and "tile_rows = 128, tile_cols = 256" in text
    again = load(tmp_path / "m.snnir")
    verify(again, emitting=True, dialect="ann")
    x = data_for(conv_net(), 20, seed=4)[0]
    out = c.graph.outputs[0]
    assert np.array_equal(evaluate(again, x)[out], evaluate(c.graph, x)[out])
    bad = again.copy()
    op = bad.op("fc1")
    bad.add_tensor(op.weight.name, bad.tensor(op.weight) * 1.5)
    with pytest.raises(IRError, match=r"^%fc1: weight @fc1.weight must hold integers -63..63"):
        verify(bad)


def test_an_snn_target_does_not_take_mac_layers_nor_brainscales2_a_float_graph() -> None:
    c = compiled(dense_net([8, 4]), n=20)
    with pytest.raises(IRError, match="a target takes an snn graph, not an ann graph"):
        verify(c.graph, emitting=True)
    with pytest.raises(IRError, match="ann.mac layers"):
        verify(dense_net([8, 4]), emitting=True, dialect="ann")


@pytest.fixture(scope="module")
def cnn_out(tmp_path_factory) -> tuple[Path, Path, snnc.api.Compiled]:
    folder = tmp_path_factory.mktemp("bss2")
    model, data = make_cnn_onnx(folder, 64)
    x = np.load(data)["x"]
    c = snnc.compile(model, "brainscales2", calibration=x)
    c.emit(folder / "out")
    return folder / "out", data, c


def run_script(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(out / "run.py"), *args], capture_output=True, text=True)


def test_emitted_run_py_equals_the_interpreter_and_pooling_runs_on_the_host(cnn_out) -> None:
    out, data, c = cnn_out
    config = json.loads((out / "config.json").read_text())
    assert [s["op"] for s in config["steps"]] == ["mac", "avgpool", "mac", "mac", "scale"]
    matrices = np.load(out / "matrices.npz")
    assert all(matrices[t["weights"]].dtype == np.int8 for s in config["steps"] if s["op"] == "mac" for t in s["tiles"])
    proc = run_script(out, "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    x, y = np.load(data)["x"], np.load(data)["y"]
    expected = evaluate(c.graph, x)[c.graph.outputs[0]].reshape(len(x), -1)
    got = np.load(out / "outputs.npz")
    assert np.array_equal(got["readout"], expected)
    assert json.loads((out / "results.json").read_text())["accuracy"] == pytest.approx(np.mean(expected.argmax(1) == y))
    report = json.loads((out / "report.json").read_text())
    assert (
        report["kind"] == "mac" and report["multiplications_per_sample"] == 64 + 4 + 1
    )  # 8x8, 2x2 positions and one vector


def test_noise_is_seeded_and_fixed_pattern_changes_results(cnn_out) -> None:
    out, data, _ = cnn_out
    readouts = []
    for args in (["--noise-std", "2", "--seed", "1"], ["--noise-std", "2", "--seed", "1"], ["--noise-std", "2"]):
        assert run_script(out, "--data", str(data), *args).returncode == 0
        readouts.append(np.load(out / "outputs.npz")["readout"])
    assert np.array_equal(readouts[0], readouts[1]) and not np.array_equal(readouts[0], readouts[2])
    assert run_script(out, "--data", str(data), "--fixed-pattern", "0.07", "--seed", "3").returncode == 0
    noiseless = run_script(out, "--data", str(data))
    assert noiseless.returncode == 0
    assert not np.array_equal(np.load(out / "outputs.npz")["readout"], readouts[0])


def test_compiles_are_byte_identical(cnn_out, tmp_path: Path) -> None:
    out, data, c = cnn_out
    again = snnc.compile(c.origin, "brainscales2", calibration=np.load(data)["x"])
    again.emit(tmp_path / "again")
    for name in ("config.json", "matrices.npz", "model.snnir", "report.json", "run.py", "run_hxtorch.py"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(format="other"), "config.json: not a snnc-brainscales2-mac version 1 file"),
        (lambda c: c["steps"][0]["tiles"].append(c["steps"][0]["tiles"][0]), "steps[0].tiles: do not cover the"),
        (lambda c: c["steps"][0]["tiles"][0].update(rows=[0, 129]), "steps[0].tiles[0]: rows 0:129"),
        (lambda c: c["steps"][0].update(weight_shape=[4, 2, 3, 3]), "steps[0].weight_shape: [4, 2, 3, 3] does not fit"),
        (lambda c: c["steps"].insert(1, {"op": "exec"}), "steps[1].op: must be one of mac"),
        (lambda c: c["steps"][0].update(shift=9), "steps[0].shift: must be an integer in [0, 7]"),
        (lambda c: c["steps"][0]["tiles"][0].update(weights="../x"), "tiles[0].weights: must name an array"),
        (lambda c: c.update(classes=7), "MAC layers and 3 outputs for 7 classes"),
    ],
)
def test_run_py_refuses_a_tampered_config_in_one_line(cnn_out, tmp_path: Path, edit, message: str) -> None:
    import shutil

    out, data, _ = cnn_out
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    proc = run_script(copy, "--data", str(data))
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_out_of_range_weights_in_matrices_npz_are_refused(cnn_out, tmp_path: Path) -> None:
    import shutil

    out, data, _ = cnn_out
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    arrays = dict(np.load(copy / "matrices.npz"))
    arrays["layer0_tile0"] = np.full_like(arrays["layer0_tile0"], 100)
    np.savez(copy / "matrices.npz", **arrays)
    proc = run_script(copy, "--data", str(data))
    assert proc.returncode != 0 and "matrices.npz: layer0_tile0: weights must be integers -63..63" in proc.stderr


def test_snnc_run_and_report_take_the_output(cnn_out, capsys) -> None:
    from snnc.cli import main

    out, data, _ = cnn_out
    assert main(["run", str(out), "--data", str(data), "--samples", "20"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["samples"] == 20 and results["ann_accuracy"] is not None
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vector-matrix multiplications per sample" in text and "ms and" in text


def test_hx_layer_equals_the_mock_formula_on_a_conv_with_bias() -> None:
    """A conv layer by hand: im2col patches (channel, row, column), 128-row partials, float bias, shift."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 32, (2, 3, 9, 9)).astype(np.float32)
    w = rng.integers(-63, 64, (5, 3, 8, 8)).astype(np.float32)  # 192 rows: two partials
    b = rng.integers(-20, 20, 5).astype(np.float32)
    got = hx.layer(x, w, b, kind="conv", strides=(2, 2), pads=(1, 1, 1, 1), gain=0.002, num_sends=3,
                   activation="converting_relu", shift=2)  # fmt: skip
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 5, 2, 2), np.float32)
    for i in range(2):
        for j in range(2):
            patch = xp[:, :, 2 * i : 2 * i + 8, 2 * j : 2 * j + 8].reshape(2, -1)
            flat = w.reshape(5, -1).T
            total = sum(
                np.clip(np.floor((patch[:, r : r + 128] @ flat[r : r + 128]).astype(np.float32) * np.float32(0.006)),
                        -128, 127) for r in (0, 128)
            )  # fmt: skip
            y = np.clip(total, -128, 127) + b
            expected[:, :, i, j] = np.minimum(np.floor(np.maximum(np.floor(y), 0)) // 4, 31)
    assert np.array_equal(got, expected)
