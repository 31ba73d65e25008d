"""Hostile PyTorch files: a `.pt2` archive or a state dict never runs code from the file, and every
odd file ends in a one-line SnncError (issue 9, part 1)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import snnc
from snnc.ir import limits
from snnc.ir.errors import BudgetError, SnncError

SHAPE = (1, 6, 6)


class _Payload:
    """Pickles to ``eval(code)``: unpickling it runs ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return (eval, (self.code,))


def _code(marker: Path, value: str) -> str:
    """Code that writes ``marker`` and then evaluates to ``value`` (a valid object: no error follows)."""
    return f"(__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), {value})[1]"


def _torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def benign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)).eval()
    path = tmp_path_factory.mktemp("pt2") / "m.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, *SHAPE),)), path)
    return path


Edit = Callable[[dict[str, bytes]], None]


def _rewrite(src: Path, dst: Path, edit: Edit, compression: int = zipfile.ZIP_STORED) -> Path:
    """Copy an archive, letting ``edit`` change its entries (names relative to the root folder)."""
    with zipfile.ZipFile(src) as z:
        root = z.namelist()[0].split("/")[0]
        entries = {n[len(root) + 1 :]: z.read(n) for n in z.namelist()}
    edit(entries)
    with zipfile.ZipFile(dst, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(f"{root}/{name}", data)
    return dst


def _pickled_weight(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(e: dict[str, bytes]) -> None:
        config = json.loads(e["data/weights/model_weights_config.json"])
        meta = config["config"]["0.weight"]
        meta["use_pickle"] = True
        e["data/weights/model_weights_config.json"] = json.dumps(config).encode()
        tensor = "__import__('torch').zeros(2, 1, 3, 3)"
        e[f"data/weights/{meta['path_name']}"] = _torch_bytes(_Payload(_code(marker, tensor)))

    return edit


def _opaque_constant(marker: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(e: dict[str, bytes]) -> None:
        e["data/constants/model_constants_config.json"] = json.dumps(
            {"config": {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}}}
        ).encode()
        import pickle

        e["data/constants/opaque_obj_0"] = pickle.dumps(_Payload(_code(marker, "1")))

    return edit


def _sample_inputs(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """weights_only fails on eval, torch retries without it, the payload returns valid inputs."""

    def edit(e: dict[str, bytes]) -> None:
        value = f"((__import__('torch').zeros(1, {', '.join(map(str, SHAPE))}),), {{}})"
        e["data/sample_inputs/model.pt"] = _torch_bytes(_Payload(_code(marker, value)))

    return edit


def _shape_expression(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """sympy.sympify evaluates shape expressions as Python."""

    def edit(e: dict[str, bytes]) -> None:
        text = e["models/model.json"].decode()
        expr = f"{_code(marker, '1')} and 1 or 1"
        sized = json.dumps({"as_expr": {"expr_str": expr, "hint": {"as_int": 1}}})
        e["models/model.json"] = text.replace('"sizes": [{"as_int": 1}', f'"sizes": [{sized}', 1).encode()

    return edit


def _guards_code(marker: Path) -> Callable[[dict[str, bytes]], None]:
    """ExportedProgram.module() execs the guard strings of the file inside a generated function; the
    comment hides the break-out from torch's parse of the message, the newlines end that function."""

    def edit(e: dict[str, bytes]) -> None:
        model = json.loads(e["models/model.json"])
        model["guards_code"] = [f"True#\n)\n{_code(marker, '1')}\ndef _g(*a):\n  (True"]
        e["models/model.json"] = json.dumps(model).encode()

    return edit


PAYLOADS = {
    "pickled_weight": _pickled_weight,
    "opaque_constant": _opaque_constant,
    "sample_inputs_fallback": _sample_inputs,
    "sympy_shape_expression": _shape_expression,
}


def _one_line_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(SnncError) as err:
        snnc.load(path, input_shape=SHAPE, **kwargs)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_pt2_payload_never_runs(name: str, benign: Path, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = _rewrite(benign, tmp_path / f"{name}.pt2", PAYLOADS[name](marker))
    _one_line_error(evil)
    assert not marker.exists()


def test_pt2_guard_code_is_never_executed(benign: Path, tmp_path: Path) -> None:
    """Guard strings are only exec'd by ExportedProgram.module(), which snnc never calls: the graph loads."""
    marker = tmp_path / "MARKER"
    evil = _rewrite(benign, tmp_path / "guards.pt2", _guards_code(marker))
    graph = snnc.load(evil, input_shape=SHAPE)
    assert graph.outputs and not marker.exists()


def test_benign_pt2_loads(benign: Path) -> None:
    assert len(snnc.load(benign, input_shape=SHAPE).outputs) == 1


def _add(name: str, data: bytes = b"x") -> Callable[[dict[str, bytes]], None]:
    return lambda e: e.__setitem__(name, data)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_add("data/aotinductor/model/model.so"), "AOTInductor"),
        (_add("data/weights/model.pt"), "legacy"),
        (_add("data/constants/custom_obj_0"), "TorchScript"),
        (_add("serialized_state_dict.pt"), "legacy"),
        (_add("notes.txt"), "not part of"),
        (lambda e: e.pop("models/model.json"), "no models/model.json"),
        (_add("models/model.json", b"[" * 100_000), "not valid JSON"),
        (_add("data/sample_inputs/model.pt", b"\x80\x02}q\x00."), "not a torch zip"),
        (_add("data/weights/model_weights_config.json", b'{"config": {"w": {"path_name": "../../x"}}}'), "refusing"),
    ],
)
def test_pt2_odd_entries_are_refused(edit: Callable, expected: str, benign: Path, tmp_path: Path) -> None:
    assert expected in _one_line_error(_rewrite(benign, tmp_path / "odd.pt2", edit))


def test_pt2_unsafe_member_names_and_counts(benign: Path, tmp_path: Path) -> None:
    for name in ("../evil", "/abs/evil", "m/a/../../evil", "m\\evil"):
        path = tmp_path / "names.pt2"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(name, b"x")
        assert "unsafe path" in _one_line_error(path)
    with zipfile.ZipFile(tmp_path / "many.pt2", "w") as z:
        for i in range(10_001):
            z.writestr(f"m/extra/{i}", b"")
    assert "archive members" in _one_line_error(tmp_path / "many.pt2")
    for data in (b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 40):
        (tmp_path / "junk.pt2").write_bytes(data)
        _one_line_error(tmp_path / "junk.pt2")


def test_pt2_sizes_are_checked_before_allocation(benign: Path, tmp_path: Path) -> None:
    bomb = _rewrite(benign, tmp_path / "bomb.pt2", _add("extra/pad", b"\x00" * 200_000), zipfile.ZIP_DEFLATED)
    huge = tmp_path / "huge.pt2"

    def declare_huge(e: dict[str, bytes]) -> None:  # an empty record: torch.zeros(declared size)
        config = json.loads(e["data/weights/model_weights_config.json"])
        meta = config["config"]["0.weight"]
        meta["tensor_meta"]["sizes"] = [{"as_int": 10**6}, {"as_int": 10**6}]
        e["data/weights/model_weights_config.json"] = json.dumps(config).encode()
        e[f"data/weights/{meta['path_name']}"] = b""

    _rewrite(benign, huge, declare_huge)
    with pytest.raises(BudgetError, match="0.weight"):
        snnc.load(huge, input_shape=SHAPE)
    with limits.using(limits.Budget(bytes=100_000)):
        with pytest.raises(BudgetError, match="extra/pad"):
            snnc.load(bomb, input_shape=SHAPE)


# --------------------------------------------------------------------------- state dicts


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_state_dict_payload_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    evil = _save(tmp_path / "evil.pt", {"weight": _Payload(_code(marker, "__import__('torch').zeros(2)"))})
    _one_line_error(evil, module="torch.nn:Identity")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("obj", "module", "expected"),
    [
        ([1, 2, 3], "torch.nn:Identity", "expected a state_dict"),
        ({"weight": 3}, "torch.nn:Identity", "not a tensor"),
        ({"weight": [torch.zeros(2)]}, "torch.nn:Identity", "not a tensor"),
        ({1: torch.zeros(2)}, "torch.nn:Identity", "not a tensor"),
        ({"weight": torch.zeros(2)}, "torch.nn:Identity", "does not fit"),
        ({"fc.weight": torch.zeros(7, 7)}, "test_torch_frontend:SmallNet", "does not fit"),
        ({"w": torch.zeros(1).expand(10**6, 10**6)}, "torch.nn:Identity", "budget"),
        ({}, ":Identity", "package.module:Class"),
        ({}, "torch.nn:", "package.module:Class"),
        ({}, "no_such_module_xyz:Net", "cannot build"),
        ({}, "collections:OrderedDict", "not a torch.nn.Module"),
    ],
)
def test_odd_state_dicts(obj: object, module: str, expected: str, tmp_path: Path) -> None:
    assert expected in _one_line_error(_save(tmp_path / "odd.pt", obj), module=module)


def _declare_huge_storage(path: Path) -> None:
    """A state dict whose pickle declares 2**31 - 1 floats over a record of 123,457."""
    import struct

    n, buf = 123_457, io.BytesIO()
    torch.save({"w": torch.zeros(n)}, buf)
    with zipfile.ZipFile(buf) as z, zipfile.ZipFile(path, "w") as out:
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"J" + struct.pack("<i", n), b"J" + struct.pack("<i", 2**31 - 1))
            out.writestr(info.filename, data)


def test_odd_state_dict_files(tmp_path: Path) -> None:
    import numpy as np

    cases = {
        "huge_storage.pt": _declare_huge_storage,
        "object_array.pt": lambda p: _save(p, {"w": np.array([object()], dtype=object)}),
        "legacy.pt": lambda p: torch.save({"w": torch.zeros(2)}, p, _use_new_zipfile_serialization=False),
        "junk.pth": lambda p: p.write_bytes(b"\x00junk"),
        "empty.pt": lambda p: p.write_bytes(b""),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        _one_line_error(path, module="torch.nn:Identity")
