"""Hostile .nir files, built at test time with nir and h5py: no local file is read through HDF5
links or storage, sizes stay in the budget, and odd nodes, edges, parameters and ``snnc.*``
metadata end in one SnncError line naming the file and the node or key."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import load_mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")

import snnc  # noqa: E402
from snnc.frontends import FrontendError  # noqa: E402
from snnc.ir import limits  # noqa: E402
from snnc.ir.errors import BudgetError, SnncError  # noqa: E402

WEIGHT = "node/nodes/fc/weight"  # the (2, 3) Affine weight
SMALL = limits.Budget(bytes=2**20)


def _graph(**metadata) -> object:
    return nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([3])}),
            "fc": nir.Affine(weight=np.full((2, 3), 0.5, np.float32), bias=np.zeros(2, np.float32)),
            "lif": nir.IF(r=np.ones(2, np.float32), v_threshold=np.ones(2, np.float32)),
            "out": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
        metadata={"snnc.dt": 1.0, "snnc.presentation_time": 50.0, "snnc.reset": "subtract", **metadata},
    )


def _write(path: Path, edit: Callable[[h5py.File], None] | None = None, **metadata) -> Path:
    path.parent.mkdir(exist_ok=True)
    nir.write(path, _graph(**metadata))
    if edit is not None:
        with h5py.File(path, "a") as h5:
            edit(h5)
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the model's folder whose 24 bytes are a valid (2, 3) float32 weight."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.bin"
    path.write_bytes(np.arange(6, dtype=np.float32).tobytes())
    return path


def _one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


def test_a_valid_file_loads(tmp_path: Path) -> None:
    graph = snnc.load(_write(tmp_path / "model" / "ok.nir"))
    assert graph.attrs["presentation_time"] == 50.0
    assert sorted(graph.op(n).OPNAME for n in graph.topo())[-1] == "snn.source"


# --------------------------------------------------------------------------- local files


def _replace_weight(h5: h5py.File, make: Callable[[h5py.Group, str], None]) -> None:
    del h5[WEIGHT]
    make(h5[WEIGHT.rsplit("/", 1)[0]], WEIGHT.rsplit("/", 1)[1])


def _hostile(secret: Path) -> dict[str, tuple[Callable[[h5py.File], None], list[str]]]:
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as f:
        f["w"] = np.fromfile(secret, np.float32).reshape(2, 3)
    layout = h5py.VirtualLayout(shape=(2, 3), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(other), "w", shape=(2, 3))
    return {
        "external storage": (
            lambda h5: _replace_weight(
                h5, lambda g, n: g.create_dataset(n, shape=(2, 3), dtype="<f4", external=[(str(secret), 0, 24)])
            ),
            ["external file", "secret.bin"],
        ),
        "external link": (
            lambda h5: _replace_weight(h5, lambda g, n: g.__setitem__(n, h5py.ExternalLink(str(other), "/w"))),
            ["external link", "secret.h5"],
        ),
        "virtual dataset": (
            lambda h5: _replace_weight(h5, lambda g, n: g.create_virtual_dataset(n, layout)),
            ["virtual dataset"],
        ),
    }


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_nir_naming_other_files_is_refused(kind: str, secret: Path, tmp_path: Path) -> None:
    """Today's code reads the secret into the Affine weight and writes it to model.npz."""
    edit, parts = _hostile(secret)[kind]
    path = _write(tmp_path / "model" / "hostile.nir", edit)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), f"/{WEIGHT}", *parts)


def test_links_that_loop_are_refused(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        h5["node/nodes/fc/loop"] = h5["node"]  # a hard link back up: nir's reader would recurse forever

    path = _write(tmp_path / "model" / "loop.nir", edit)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "/node/nodes/fc/loop", "second link")


def test_a_corrupt_string_heap_is_refused_instead_of_hanging(tmp_path: Path) -> None:
    """libhdf5 loops forever loading a global heap (where strings live) with an empty free-space
    object; three flipped bytes in a fuzzed file did it. Run in a child so today's code times out."""
    path = _write(tmp_path / "model" / "heap.nir")
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")
    data[heap + 16 : heap + 32] = bytes(16)  # object index 0 (free space) of size 0
    path.write_bytes(bytes(data))
    code = "import sys, snnc\ntry:\n    snnc.load(sys.argv[1])\nexcept snnc.ir.errors.SnncError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{path}: global heap at byte {heap} is corrupt" in done.stdout


# --------------------------------------------------------------------------- sizes


def test_declared_dataset_sizes_are_checked_before_reading(tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        _replace_weight(
            h5, lambda g, n: g.create_dataset(n, shape=(2, 10**6), dtype="<f4", chunks=(2, 4096), compression="gzip")
        )

    path = _write(tmp_path / "model" / "big.nir", edit)
    assert path.stat().st_size < 100_000
    with limits.using(SMALL), pytest.raises(BudgetError) as err:
        snnc.load(path)
    _one_line(err, str(path), f"dataset /{WEIGHT}")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "key, value, part",
    [
        ("snnc.presentation_time", float("nan"), "finite"),
        ("snnc.presentation_time", -5.0, "> 0"),
        ("snnc.dt", 0.0, "> 0"),
        ("snnc.dt", "abc", "number"),
        ("snnc.delay", float("inf"), "finite"),
        ("snnc.delay", -1.0, ">= 0"),
        ("snnc.reset", "sideways", "one of"),
    ],
)
def test_metadata_is_validated(key: str, value, part: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "model" / "meta.nir", **{key: value})
    with pytest.raises(SnncError) as err:
        snnc.load(path)
    _one_line(err, str(path), key, part)


def _dataset(name: str, value) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        del h5[name]
        h5[name] = value

    return edit


def _edges(edges: list[tuple[str, str]]) -> Callable[[h5py.File], None]:
    return _dataset("node/edges", np.array(edges, dtype=object).astype("S"))


ODD = {
    "nan weight": (_dataset(WEIGHT, np.full((2, 3), np.nan, np.float32)), ["'fc'", "weight", "NaN"]),
    "string weight": (_dataset(WEIGHT, np.array([b"ab"] * 6).reshape(2, 3)), ["'fc'", "weight", "numbers"]),
    "negative r": (_dataset("node/nodes/lif/r", -np.ones(2, np.float32)), ["'lif'", "r", "positive"]),
    "zero threshold": (_dataset("node/nodes/lif/v_threshold", np.zeros(2, np.float32)), ["'lif'", "v_threshold"]),
    "input shape zero": (_dataset("node/nodes/in/shape", np.array([0])), ["'in'", "shape"]),
    "edge to a missing node": (_edges([("in", "fc"), ("fc", "lif"), ("lif", "ghost")]), ["'ghost'"]),
    "cycle": (_edges([("in", "fc"), ("fc", "lif"), ("lif", "fc"), ("lif", "out")]), ["cycle"]),
    "output without input": (_edges([("in", "fc"), ("fc", "lif")]), ["'out'", "Output"]),
    "population without synapses": (_edges([("in", "fc"), ("lif", "out")]), ["'lif'", "synapses"]),
    "wrong weight shape": (_dataset(WEIGHT, np.ones((2, 5), np.float32)), ["'fc'", "[2, 5]"]),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_odd_nodes_and_edges_end_in_one_line(case: str, tmp_path: Path) -> None:
    edit, parts = ODD[case]
    path = _write(tmp_path / "model" / "odd.nir", edit)
    with pytest.raises(SnncError) as err:
        snnc.load(path)
    _one_line(err, str(path), *parts)


def test_in_memory_graphs_are_validated_too() -> None:
    graph = _graph(**{"snnc.presentation_time": float("nan")})
    with pytest.raises(SnncError, match="presentation_time must be finite"):
        snnc.load(graph)


# --------------------------------------------------------------------------- fuzzing


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_nir_bytes_raise_only_snnc_errors(edits: list[tuple[int, int]], tmp_path: Path) -> None:
    base = tmp_path / "base.nir"
    if not base.exists():
        _write(base)
    load_mutated(base.read_bytes(), edits, tmp_path / "fuzz.nir", SMALL)
