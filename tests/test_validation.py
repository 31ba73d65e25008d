"""Validated values (issue 9): options, data files, calibration arrays and budgets in the targets."""

from __future__ import annotations

import dataclasses
import gzip
import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_data, make_mlp_onnx

import snnc
from snnc.ir import limits
from snnc.ir.errors import BudgetError, SnncError
from snnc.ir.options import OptionError
from snnc.ir.runtime import DataError, check_labels, load_data
from snnc.ir.semantics.connectivity import connections
from snnc.passes import PASSES, PassError
from snnc.pipeline import apply_settings, parse_pipeline, parse_value
from snnc.targets import get_target

# --------------------------------------------------------------------------- options


def _set(target: str, key: str, value: str):
    tgt = get_target(target)
    return apply_settings(parse_pipeline(tgt.spec.pipeline), tgt.spec, {key: value})


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("presentation-time", "-5", "--set presentation-time=-5: must be > 0"),
        ("dt", "0", "--set dt=0: must be >= 0.001"),
        ("dt", "nan", "--set dt=nan: must be a finite number"),
        ("dt", "1e-9", "--set dt=1e-9: must be >= 0.001"),
        ("dt", "300", "--set dt=300: presentation_time: must be >= dt"),  # 200 ms < dt
        ("max-rate", "inf", "--set max-rate=inf: must be a finite number"),
        ("neurons-per-core", "-4", "--set neurons-per-core=-4: must be >= 1"),
        ("instances", "abc", "--set instances=abc: must match"),
        ("tau-m", "-inf", "--set tau-m=-inf: must be a finite number or inf"),
        ("tau-m", "0", "--set tau-m=0: must be > 0"),
        ("tau-refrac", "nan", "--set tau-refrac=nan"),
        ("weight-bits", "1", "--set weight-bits=1: must be >= 2"),
        ("time-scale-factor", "1.5", "--set time-scale-factor=1.5: must be an integer"),
        ("chips", "9" * 5000, "--set chips=9999"),
        ("board", "a;b", "--set board=a;b: must match"),
        ("pause", "-1", "--set pause=-1: must be >= 0"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(key: str, value: str, message: str) -> None:
    with pytest.raises(PassError) as info:
        _set("spinnaker", key, value)
    assert str(info.value).startswith(message) and "\n" not in str(info.value) and len(str(info.value)) < 200


def test_good_settings_still_work() -> None:
    passes, spec = _set("sim", "tau-m", "inf")
    assert spec.options.tau_m == float("inf")
    _, spec = _set("sim", "dt", "0.5")
    assert spec.options.dt == 0.5
    _, spec = _set("spinnaker", "instances", "auto")
    assert spec.options.instances == "auto"


@pytest.mark.parametrize(
    "pipeline, message",
    [
        ("normalize{percentile=150}", "normalize.percentile=150: must be <= 100"),
        ("normalize{percentile=nan}", "normalize.percentile=nan: must be a finite number"),
        ("normalize{rate=0}", "normalize.rate=0: must be > 0"),
        ("quantize{measure-samples=-1}", "quantize.measure-samples=-1: must be >= 1"),
        ("quantize{bits=99}", "quantize.bits=99: must be <= 32"),
        ("lower-to-snn{dt=inf}", "lower-to-snn.dt=inf: must be a finite number"),
        ("replicate{instances=-2}", "replicate.instances=-2: must match"),
    ],
)
def test_bad_pass_options_are_refused(pipeline: str, message: str) -> None:
    with pytest.raises(PassError, match=message.replace("{", r"\{").replace(".", r"\.")):
        parse_pipeline(pipeline)


def test_option_checks_are_declarative_on_construction() -> None:
    spec = get_target("sim").spec.options
    with pytest.raises(OptionError, match="dt: must be a number"):
        dataclasses.replace(spec, dt="0.1")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="presentation_time: must be > 0"):
        dataclasses.replace(spec, presentation_time=-5.0)
    with pytest.raises(OptionError, match="reset: must be one of"):
        dataclasses.replace(spec, reset="none")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="percentile"):
        PASSES["normalize"](percentile=float("nan"))
    with pytest.raises(OptionError, match="grid_populations: must be true or false"):
        dataclasses.replace(get_target("sim").spec.machine, grid_populations=1)  # type: ignore[arg-type]
    for name in PASSES:  # every pass's defaults pass its own checks
        PASSES[name]()
    assert isinstance(OptionError("dt", "x"), SnncError)


def test_parse_value_refuses_nan_and_inf_unless_allowed() -> None:
    with pytest.raises(PassError, match="x=nan: must be a finite number"):
        parse_value("nan", float, "x")
    with pytest.raises(PassError, match="x=inf"):
        parse_value("inf", float, "x")
    assert parse_value("inf", float, "x", allow_inf=True) == float("inf")
    with pytest.raises(PassError, match="x=-inf"):
        parse_value("-inf", float, "x", allow_inf=True)


# --------------------------------------------------------------------------- data files


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


X = np.random.default_rng(0).random((20, 16), dtype=np.float32)
Y = np.arange(20) % 4


@pytest.mark.parametrize(
    "arrays, kwargs, message",
    [
        ({"x": np.where(X > 0.9, np.nan, X), "y": Y}, {}, "x holds NaN or infinite values"),
        ({"x": np.where(X > 0.9, np.inf, X)}, {}, "x holds NaN or infinite values"),
        ({"x": X, "y": Y + 995}, {"classes": 4}, "y holds the label 998, outside"),
        ({"x": X, "y": Y - 1}, {}, "y holds the label -1"),
        ({"x": X}, {"require_y": True}, "no labels 'y'"),
        ({"x": X.astype(str), "y": Y}, {}, "x: dtype <U"),
        ({"x": X, "y": Y.astype(complex)}, {}, "y: dtype complex"),
        ({"x": X[:, 0], "y": Y}, {}, "rank >= 2"),
        ({"x": X[:0], "y": Y[:0]}, {}, "x holds no samples"),
        ({"x": X, "y": Y + 0.5}, {}, "not whole numbers"),
        ({"x": X, "y": Y[:5]}, {}, "y has shape"),
        ({"x": X, "y": Y}, {"samples": -1}, "samples=-1: must be a positive integer"),
        ({"x": X, "y": Y}, {"samples": 99}, "99 samples asked for"),
        ({"w": X}, {}, "no array 'x'"),
    ],
)
def test_bad_data_files_are_refused(tmp_path: Path, arrays: dict, kwargs: dict, message: str) -> None:
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message) as info:
        load_data(path, **kwargs)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_object_arrays_and_non_npz_files(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, x=np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a plain numeric type"):
        load_data(path)
    raw = tmp_path / "raw.npz"
    np.save(raw.with_suffix(".npy"), X)
    raw.write_bytes(raw.with_suffix(".npy").read_bytes())
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(raw)
    fortran = _npz(tmp_path / "f.npz", x=np.asfortranarray(X), y=Y)
    x, y = load_data(fortran, 5)
    assert np.array_equal(x, X[:5]) and np.array_equal(y, Y[:5])


def _bomb(path: Path, rows: int) -> Path:
    """A compressed .npz whose x declares (rows, 1, 28, 28) float32 of zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, 1, 28, 28)})
        block = bytes(2**20)
        for _ in range(rows * 28 * 28 * 4 // len(block)):
            f.write(block)
    return path


def test_compressed_data_bomb_reads_only_what_is_needed(tmp_path: Path) -> None:
    path = _bomb(tmp_path / "bomb.npz", 100_000)  # 313 MB of zeros in about 300 kB
    assert path.stat().st_size < 1_000_000
    tracemalloc.start()
    x, _ = load_data(path, at_most=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert x.shape == (1000, 1, 28, 28) and peak < 40e6
    with limits.using(limits.Budget(bytes=100_000_000)), pytest.raises(BudgetError, match="bomb.npz: x: "):
        load_data(path)


def test_truncated_member_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    with zipfile.ZipFile(path, "w") as zf:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (50, 16)})
        zf.writestr("x.npy", buf.getvalue() + bytes(100))
    with pytest.raises(DataError, match="ends before its declared shape"):
        load_data(path)


def test_check_labels() -> None:
    check_labels(np.array([0, 3]), 4, "f.npz")
    with pytest.raises(DataError, match="f.npz: y holds the label 4, outside \\[0, 4\\)"):
        check_labels(np.array([0, 4]), 4, "f.npz")


def test_idx_file_declaring_a_huge_size_is_refused(tmp_path: Path) -> None:
    from snnc.datasets import read_idx

    path = tmp_path / "images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([10**6, 10**4, 10**4], ">u4").tobytes())
    with pytest.raises(BudgetError, match="images-idx3-ubyte.gz"):
        read_idx(path)


# --------------------------------------------------------------------------- calibration, labels, budgets


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mlp")
    model = make_mlp_onnx(folder / "mlp.onnx")
    return model, make_data(folder / "data.npz", model)


@pytest.mark.parametrize(
    "calibration, message",
    [
        (np.where(X > 0.5, np.nan, X), "calibration data: x holds NaN"),
        (X[:0], "calibration data: x holds no samples"),
        (X[:, 0], "rank >= 2"),
    ],
)
def test_in_memory_calibration_is_checked(mlp, calibration: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        snnc.compile(mlp[0], "sim", calibration=calibration)


def test_sim_run_refuses_labels_outside_the_outputs(mlp, tmp_path: Path) -> None:
    from snnc.targets.base import RunRequest

    out = snnc.compile(mlp[0], "sim", calibration=X).emit(tmp_path / "out")
    bad = _npz(tmp_path / "bad.npz", x=X, y=np.full(20, 999))
    with pytest.raises(DataError, match="label 999, outside \\[0, 4\\)"):
        get_target("sim").run(RunRequest(out, bad))
    with pytest.raises(DataError, match="no labels 'y'"):
        get_target("sim").run(RunRequest(out, _npz(tmp_path / "nolabels.npz", x=X)))


def test_connections_and_simulator_check_budgets(mlp) -> None:
    from snnc.ir.semantics.simulator import simulate

    graph = snnc.compile(mlp[0], "sim", calibration=X).graph
    proj = graph.ops_of("snn.projection")[0]
    with limits.using(limits.Budget(synapses=10)), pytest.raises(BudgetError, match=f"%{proj}: .* synapses exceed"):
        connections(graph, proj)
    with limits.using(limits.Budget(neurons=5)), pytest.raises(BudgetError, match="neurons exceed"):
        simulate(graph, X)
    with limits.using(limits.Budget(bytes=1000)), pytest.raises(BudgetError, match="bytes exceed"):
        simulate(graph, X)
