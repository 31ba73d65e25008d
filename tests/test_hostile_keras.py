"""Hostile Keras files (.keras zip and legacy .h5), built at test time: no local file is read
through HDF5 links or storage, sizes stay in the budget, and every oddity ends in one SnncError line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import load_mutated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import snnc  # noqa: E402
from snnc.frontends import FrontendError  # noqa: E402
from snnc.ir import limits  # noqa: E402
from snnc.ir.errors import BudgetError, SnncError  # noqa: E402

KERNEL = "layers/dense/vars/0"  # the Dense kernel (4, 3) inside model.weights.h5
SMALL = limits.Budget(bytes=2**20)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small Sequential model (4 -> Dense 3) saved as .keras and as legacy .h5."""
    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.save(folder / "m.keras")
    model.save(folder / "m.h5")
    return {"keras": folder / "m.keras", "h5": folder / "m.h5"}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the model's folder whose 48 bytes are a valid (4, 3) float32 kernel."""
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "secret.bin"
    path.write_bytes(np.arange(12, dtype=np.float32).tobytes())
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _keras_with_weights(saved: dict[str, Path], folder: Path, edit: Callable[[h5py.File], None]) -> Path:
    """A copy of the .keras model whose model.weights.h5 was changed by ``edit``."""
    members = _members(saved["keras"])
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        edit(h5)
    members["model.weights.h5"] = buffer.getvalue()
    model = folder / "model"
    model.mkdir(exist_ok=True)
    return _zip(model / "hostile.keras", members)


def _keras_with_config(saved: dict[str, Path], path: Path, config: bytes) -> Path:
    return _zip(path, {**_members(saved["keras"]), "config.json": config})


def _config(saved: dict[str, Path]) -> dict:
    return json.loads(_members(saved["keras"])["config.json"])


def _one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    message = str(err.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)
    return message


# --------------------------------------------------------------------------- local files


def _external_storage(secret: Path) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        del h5[KERNEL]
        h5.create_dataset(KERNEL, shape=(4, 3), dtype="<f4", external=[(str(secret), 0, 48)])

    return edit


def _external_link(secret: Path) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        other = secret.with_suffix(".h5")
        with h5py.File(other, "w") as f:
            f["vars/0"] = np.fromfile(secret, np.float32).reshape(4, 3)
            f["vars/1"] = np.zeros(3, np.float32)
        del h5["layers/dense/vars"]
        h5["layers/dense/vars"] = h5py.ExternalLink(str(other), "/vars")

    return edit


def _soft_link_through_external(secret: Path) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        _external_link(secret)(h5)
        h5["ext"] = h5["layers/dense"].get("vars", getlink=True)
        del h5["layers/dense/vars"]
        h5["layers/dense/vars"] = h5py.SoftLink("/ext")

    return edit


def _virtual(secret: Path) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        other = secret.with_suffix(".vds.h5")
        with h5py.File(other, "w") as f:
            f["k"] = np.fromfile(secret, np.float32).reshape(4, 3)
        layout = h5py.VirtualLayout(shape=(4, 3), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(other), "k", shape=(4, 3))
        del h5[KERNEL]
        h5.create_virtual_dataset(KERNEL, layout)

    return edit


def _plugin_filter(secret: Path) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_chunk((4, 3))
        plist.set_filter(32001, h5py.h5z.FLAG_OPTIONAL)  # Blosc: loaded as a plugin, if one is on the path
        del h5[KERNEL]
        h5py.h5d.create(h5.id, KERNEL.encode(), h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple((4, 3)), dcpl=plist)
        h5[KERNEL][...] = np.ones((4, 3), np.float32)

    return edit


HOSTILE = {
    "external storage": (_external_storage, ["dataset /layers/dense/vars/0", "external file"]),
    "external link": (_external_link, ["/layers/dense/vars", "external link"]),
    "soft link through an external link": (_soft_link_through_external, ["external link"]),
    "virtual dataset": (_virtual, ["dataset /layers/dense/vars/0", "virtual dataset"]),
    "plugin filter": (_plugin_filter, ["dataset /layers/dense/vars/0", "filter 32001"]),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_keras_archive_naming_other_files_is_refused(kind: str, saved, secret: Path, tmp_path: Path) -> None:
    make, parts = HOSTILE[kind]
    path = _keras_with_weights(saved, tmp_path, make(secret))
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "model.weights.h5", *parts)


@pytest.mark.parametrize("kind", ["storage", "link"])
def test_legacy_h5_naming_other_files_is_refused(kind: str, saved, secret: Path, tmp_path: Path) -> None:
    """Today's code reads the secret into the Dense kernel (and so into ann.npz)."""
    path = tmp_path / "m.h5"
    path.write_bytes(saved["h5"].read_bytes())
    name = "model_weights/dense/sequential/dense/kernel"
    with h5py.File(path, "a") as h5:
        del h5[name]
        if kind == "storage":
            h5.create_dataset(name, shape=(4, 3), dtype="<f4", external=[(str(secret), 0, 48)])
        else:
            other = secret.with_suffix(".h5")
            with h5py.File(other, "w") as f:
                f["k"] = np.fromfile(secret, np.float32).reshape(4, 3)
            h5[name] = h5py.ExternalLink(str(other), "/k")
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), f"/{name}", "secret")


def test_symlinked_archive_member_is_refused(saved, tmp_path: Path) -> None:
    members = _members(saved["keras"])
    path = tmp_path / "link.keras"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name == "config.json":
                info.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd, as unzip would make
                data = b"/etc/passwd"
            z.writestr(info, data)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "config.json", "symbolic link")


def test_a_corrupt_attribute_type_is_refused_instead_of_crashing(saved, tmp_path: Path) -> None:
    """One byte of model_config's datatype, found by fuzzing, makes libhdf5 crash (SIGSEGV) reading
    it; attribute types are checked first. Run in a child so today's code fails instead of crashing."""
    data = bytearray(saved["h5"].read_bytes())
    at = data.find(b"model_config\x00") + 16  # the name is padded to 16 bytes; the datatype follows
    assert data[at] == 0x19  # version 1, class 9: variable-length (a string)
    data[at + 1] = 205  # the class bits: now a sequence of odd flags
    path = tmp_path / "crash.h5"
    path.write_bytes(bytes(data))
    code = "import sys, snnc\ntry:\n    snnc.load(sys.argv[1])\nexcept snnc.ir.errors.SnncError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{path}: / attribute 'model_config': data of HDF5 type class 9" in done.stdout


# --------------------------------------------------------------------------- sizes


def test_declared_dataset_sizes_are_checked_before_reading(saved, tmp_path: Path) -> None:
    """A chunked, compressed dataset with no stored chunks takes a few bytes and reads as 16 MB."""

    def edit(h5: h5py.File) -> None:
        del h5[KERNEL]
        h5.create_dataset(KERNEL, shape=(4, 1_000_000), dtype="<f4", chunks=(4, 4096), compression="gzip")

    path = _keras_with_weights(saved, tmp_path, edit)
    assert path.stat().st_size < 100_000
    with limits.using(SMALL), pytest.raises(BudgetError) as err:
        snnc.load(path)
    _one_line(err, str(path), "dataset /layers/dense/vars/0", "bytes")


def test_weights_must_match_the_declared_layer(saved, tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5[KERNEL]
        h5.create_dataset(KERNEL, data=np.ones((4, 300), np.float32))

    path = _keras_with_weights(saved, tmp_path, edit)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "'dense'", "[4, 300]", "[4, 3]")


def test_zip_members_are_checked_for_their_expanded_size(saved, tmp_path: Path) -> None:
    config = json.dumps(_config(saved)).encode()
    path = _keras_with_config(saved, tmp_path / "big.keras", config + b" " * 2_000_000)
    assert path.stat().st_size < 100_000
    with limits.using(SMALL), pytest.raises(BudgetError) as err:
        snnc.load(path)
    _one_line(err, str(path), "config.json")

    def pad(h5: h5py.File) -> None:
        h5.create_dataset("padding", data=np.zeros(2**19, np.float32))  # 2 MiB unreferenced, compresses away

    path = _keras_with_weights(saved, tmp_path, pad)
    with limits.using(SMALL), pytest.raises(BudgetError) as err:
        snnc.load(path)
    _one_line(err, str(path), "model.weights.h5")


def test_declared_layer_sizes_are_checked(saved, tmp_path: Path) -> None:
    config = _config(saved)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**7, 10**7, 3]
    path = _keras_with_config(saved, tmp_path / "huge.keras", json.dumps(config).encode())
    with pytest.raises(BudgetError) as err:
        snnc.load(path)
    _one_line(err, str(path), "'input_layer'", "neurons")


# --------------------------------------------------------------------------- one-line errors


def _set(path: list, value) -> Callable[[dict], dict]:
    def mutate(config: dict) -> dict:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return config

    return mutate


def _dense(key: str, value) -> Callable[[dict], dict]:
    return _set(["config", "layers", 1, "config", key], value)


CONFIGS: dict[str, tuple[Callable[[dict], object], list[str]]] = {
    "deep nesting": (lambda c: "[" * 100_000 + "]" * 100_000, ["config.json", "JSON"]),
    "layer config a list": (_set(["config", "layers", 1, "config"], [1, 2]), ["layer 1", "Dense"]),
    "layer name a number": (_dense("name", 7), ["layer 1", "name"]),
    "input shape a number": (_set(["config", "layers", 0, "config", "batch_shape"], 5), ["'input_layer'", "batch"]),
    "input shape of strings": (_set(["config", "layers", 0, "config", "batch_shape"], [None, "4"]), ["'input_layer'"]),
    "units a string": (_dense("units", "3"), ["'dense'", "units"]),
    "activation a list": (_dense("activation", [1]), ["'dense'"]),
    "functional without outputs": (
        lambda c: {**_set(["class_name"], "Functional")(c), "config": {**c["config"], "output_layers": None}},
        ["output_layers"],
    ),
    "inbound nodes a dict of junk": (
        lambda c: _set(["class_name"], "Functional")(_dense("inbound_nodes", {"args": [{"config": 5}]})(c)),
        ["output_layers"],
    ),
    "layers a dict": (_set(["config", "layers"], {"a": 1}), ["list of layers"]),
    "class name a list": (_set(["class_name"], ["Sequential"]), ["class_name"]),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_odd_configs_end_in_one_line(case: str, saved, tmp_path: Path) -> None:
    mutate, parts = CONFIGS[case]
    config = mutate(_config(saved))
    text = config if isinstance(config, str) else json.dumps(config)
    path = _keras_with_config(saved, tmp_path / "odd.keras", text.encode())
    with pytest.raises(SnncError) as err:
        snnc.load(path)
    _one_line(err, str(path), *parts)


def test_config_bytes_must_be_a_utf8_json_object(saved, tmp_path: Path) -> None:
    for data, part in ((b"\xff\xfe{}", "UTF-8"), (b"[1, 2]", "JSON object"), (b"{nope", "JSON")):
        path = _keras_with_config(saved, tmp_path / "bytes.keras", data)
        with pytest.raises(FrontendError) as err:
            snnc.load(path)
        _one_line(err, str(path), "config.json", part)
    members = _members(saved["keras"])
    del members["model.weights.h5"]
    path = _zip(tmp_path / "missing.keras", members)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "model.weights.h5")


def test_a_damaged_archive_member_ends_in_one_line(saved, tmp_path: Path) -> None:
    """Weights are read lazily from the archive, so a CRC error can surface while HDF5 reads."""
    members = _members(saved["keras"])
    path = tmp_path / "crc.keras"
    with zipfile.ZipFile(path, "w") as z:  # stored, so the member's bytes can be found and damaged
        for name, data in members.items():
            z.writestr(name, data)
    data = bytearray(path.read_bytes())
    data[data.find(b"\x89HDF\r\n\x1a\n") + len(members["model.weights.h5"]) - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "model.weights.h5", "CRC")


@pytest.mark.parametrize(
    "data, part",
    [
        (np.array([b"abc"] * 12, dtype="S3").reshape(4, 3), "not numbers"),
        (np.full((4, 3), np.nan, np.float32), "NaN"),
        (np.ones((3, 4), np.float32), "expected [4, 3]"),
    ],
    ids=["strings", "nan", "transposed"],
)
def test_bad_weights_are_named(data: np.ndarray, part: str, saved, tmp_path: Path) -> None:
    def edit(h5: h5py.File) -> None:
        del h5[KERNEL]
        h5[KERNEL] = data

    path = _keras_with_weights(saved, tmp_path, edit)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    _one_line(err, str(path), "'dense'", part)


# --------------------------------------------------------------------------- fuzzing


def _paths(node, prefix=()) -> list[tuple]:
    """Every key path inside a JSON value."""
    out = [prefix]
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in items:
        out.extend(_paths(child, (*prefix, key)))
    return out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_configs_raise_only_snnc_errors(data: st.DataObject, saved, tmp_path: Path) -> None:
    config = _config(saved)
    paths = _paths(config)[1:]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = config
        try:
            for key in path[:-1]:
                node = node[key]
            if data.draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced the path
    path = _keras_with_config(saved, tmp_path / "fuzz.keras", json.dumps(config).encode())
    with limits.using(SMALL):
        try:
            snnc.load(path)
        except SnncError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_h5_bytes_raise_only_snnc_errors(edits: list[tuple[int, int]], saved, tmp_path: Path) -> None:
    load_mutated(saved["h5"].read_bytes(), edits, tmp_path / "fuzz.h5", SMALL)
