"""PyTorch files without the module's source (issue 14, part 3): TorchScript archives read through
``torch.jit.load`` into the torch handlers without running the module or unpickling Python objects,
and ``.pt2`` programs that give their own input shape."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import snnc
from snnc.frontends import FrontendError
from snnc.ir import verify
from snnc.ir.errors import SnncError
from snnc.ir.semantics.ann import predict
from snnc.ir.semantics.simulator import simulate

SHAPE = (1, 8, 8)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 3),
    ).eval()


class Functional(nn.Module):
    """Batch-norm (whose scripted forward branches on ``training``), a residual sum, concat,
    dropout and ``view(x.size(0), -1)`` (shape arithmetic in the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.c2, self.fc, self.drop = nn.Conv2d(4, 4, 1), nn.Linear(8 * 4 * 4, 3), nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.c1(x)))
        h = h + F.relu(self.c2(h))
        h = F.avg_pool2d(h, 2)
        h = torch.cat([h, h * 0.5], 1)
        return self.drop(self.fc(h.view(h.size(0), -1)))


def _functional() -> nn.Module:
    torch.manual_seed(1)
    net = Functional().eval()
    net.bn.running_mean.uniform_(-1, 1)
    net.bn.running_var.uniform_(0.5, 2)
    return net


class Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        out += x
        return F.relu(out)


class Residual(nn.Module):
    """Nested modules, in-place sums, a strided stem, global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.layer, self.pool = nn.Sequential(Block(4), Block(4)), nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer(self.stem(x))), 1))


def _residual() -> nn.Module:
    torch.manual_seed(4)
    net = Residual().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return net


def _save(net: nn.Module, how: str, path: Path) -> Path:
    x = torch.rand(1, *SHAPE)
    module = torch.jit.script(net) if how == "script" else torch.jit.trace(net, x)
    torch.jit.save(module, path)
    return path


def _one_line(path: Path, **kwargs: object) -> str:
    with pytest.raises(SnncError) as err:
        snnc.load(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("make", [_cnn, _functional, _residual], ids=["cnn_maxpool", "functional", "residual"])
def test_torchscript_matches_torch(make, how: str, tmp_path: Path) -> None:
    net = make()
    path = _save(net.train() if how == "script" else net, how, tmp_path / "m.pt")  # saved in training mode
    net.eval()
    # a traced archive records its example input; a scripted one needs the shape
    g = snnc.load(path, input_shape=SHAPE if how == "script" else None)
    verify(g)
    x = torch.rand(16, *SHAPE)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(predict(g, x.numpy()), ref, rtol=1e-5, atol=1e-5)


def test_input_shape_rules(tmp_path: Path) -> None:
    scripted = _save(_cnn(), "script", tmp_path / "s.torchscript")
    traced = _save(_cnn(), "trace", tmp_path / "t.ts")
    assert "--input-shape" in _one_line(scripted) and "does not record" in _one_line(scripted)
    assert "disagrees" in _one_line(traced, input_shape=(1, 9, 9))
    assert snnc.load(traced, input_shape=SHAPE).shape(snnc.load(traced).outputs[0]) == (3,)


def test_torchscript_mlp_compiles_and_simulates(tmp_path: Path) -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    path = _save(net, "trace", tmp_path / "mlp.pt")
    x = torch.rand(64, *SHAPE)
    with torch.no_grad():
        labels = net(x).argmax(1).numpy()
    compiled = snnc.compile(path, "sim", calibration=x.numpy())
    result = simulate(compiled.graph, x.numpy())
    assert (result.predictions == labels).mean() >= 0.8


def _archive(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001 - a small helper
    with zipfile.ZipFile(src) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    root = next(iter(entries)).split("/")[0]
    edit(entries, root)
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return dst


def _system_pickle(command: str) -> bytes:
    """Protocol-2 pickle: GLOBAL os.system, the command as a 1-tuple, REDUCE."""
    arg = command.encode()
    return b"\x80\x02cos\nsystem\nX" + len(arg).to_bytes(4, "little") + arg + b"\x85R."


def test_pickle_payload_never_runs(tmp_path: Path) -> None:
    """data.pkl holding GLOBAL os.system + REDUCE: Python's pickle would run the command; the
    TorchScript unpickler resolves the global only as a class compiled from code/ and fails."""
    live, marker = tmp_path / "live", tmp_path / "pwned"
    pickle.loads(_system_pickle(f"touch {live}"))
    assert live.exists()  # the payload is live under Python's pickle
    payload = _system_pickle(f"touch {marker}")
    src = _save(_cnn(), "script", tmp_path / "m.pt")

    def edit(entries: dict[str, bytes], root: str) -> None:
        entries[f"{root}/data.pkl"] = payload

    hostile = _archive(src, tmp_path / "hostile.pt", edit)
    message = _one_line(hostile, input_shape=SHAPE)
    assert "os.system" in message and not marker.exists()  # snnc's own scan refuses the global
    with pytest.raises(RuntimeError, match="Unknown type name 'os.system'"):
        torch.jit.load(hostile)  # and torch's unpickler, had it seen the file, resolves it only as TorchScript
    assert not marker.exists()


def test_storages_are_checked_against_the_archive(tmp_path: Path) -> None:
    """torch's unpickler takes a storage's declared element count on trust (a 1 GiB storage over
    144 bytes loads): snnc compares every storage and tensor with the bytes in the archive first."""
    src = _save(_cnn(), "script", tmp_path / "m.pt")

    def grow(entries: dict[str, bytes], root: str) -> None:
        pkl = entries[f"{root}/data.pkl"]
        at = pkl.index(b"cpu") + 5  # after the device string and its memo: the element count, BININT1 36
        assert pkl[at : at + 2] == b"K$"
        entries[f"{root}/data.pkl"] = pkl[:at] + b"J\x00\x00\x00\x10" + pkl[at + 2 :]

    message = _one_line(_archive(src, tmp_path / "big.pt", grow), input_shape=SHAPE)
    assert "declares 1,073,741,824 bytes" in message and "holds 144" in message


def test_setstate_and_odd_entries_are_refused(tmp_path: Path) -> None:
    class Stateful(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
            return (self.fc.weight, self.fc.bias, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, torch.Tensor, bool]) -> None:
            self.training = state[2]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    torch.jit.save(torch.jit.script(Stateful()), tmp_path / "st.pt")
    assert "__setstate__" in _one_line(tmp_path / "st.pt", input_shape=(4,))
    src = _save(_cnn(), "script", tmp_path / "m.pt")

    def extra(entries: dict[str, bytes], root: str) -> None:
        entries[f"{root}/model.json"] = b"{}"

    assert "model.json" in _one_line(_archive(src, tmp_path / "legacy.pt", extra), input_shape=SHAPE)

    def outside(entries: dict[str, bytes], root: str) -> None:
        entries[f"{root}/../evil.py"] = b""

    assert "unsafe path" in _one_line(_archive(src, tmp_path / "dots.pt", outside), input_shape=SHAPE)

    def foreign_op(entries: dict[str, bytes], root: str) -> None:
        name = next(n for n in entries if "/container" in n and n.endswith(".py"))
        entries[name] = entries[name].replace(b"return (_6)", b"return ops.mylib.leak(_6)")

    assert "namespace 'mylib'" in _one_line(_archive(src, tmp_path / "op.pt", foreign_op), input_shape=SHAPE)


def test_unmappable_ops_are_named(tmp_path: Path) -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.fc(x)
            if h.sum() > 0:
                h = torch.sigmoid(h)
            return torch.tanh(h)

    torch.jit.save(torch.jit.script(Gate()), tmp_path / "g.pt")
    message = _one_line(tmp_path / "g.pt", input_shape=(4,))
    assert "aten::sigmoid" in message and "aten::tanh" in message and "aten::sum" in message


def test_pt2_records_its_input_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.cli import main

    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(36, 3)).eval()
    x = torch.rand(8, *SHAPE)
    dim = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: dim},)), tmp_path / "m.pt2")
    np.savez(tmp_path / "c.npz", x=x.numpy())
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(predict(snnc.load(tmp_path / "m.pt2"), x.numpy()), ref, rtol=1e-5, atol=1e-5)
    args = [str(tmp_path / "m.pt2"), "--target", "sim", "--calibration"]
    assert main([*args, str(tmp_path / "c.npz"), "-o", str(tmp_path / "out")]) == 0
    assert main([*args, str(tmp_path / "c.npz"), "-o", str(tmp_path / "o2"), "--input-shape", "1,9,9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "disagrees" in err and "1,9,9" in err and "1,8,8" in err
    with pytest.raises(FrontendError, match="disagrees"):
        snnc.load(tmp_path / "m.pt2", input_shape=(8, 1, 8))


@pytest.mark.parametrize(("depth", "expected"), [(300, "nested deeper than 200"), (5000, "RecursionError")])
def test_deeply_nested_code_is_refused_before_torch_parses_it(depth: int, expected: str, tmp_path: Path) -> None:
    """torch's TorchScript compiler recurses per nesting level: 5,000 unary minuses crash the
    process (SIGSEGV) inside torch.jit.load. snnc parses code/ with Python's parser first."""
    src = _save(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), "script", tmp_path / "m.pt")

    def nest(entries: dict[str, bytes], root: str) -> None:
        name = next(n for n in entries if "/container" in n and n.endswith(".py"))
        code = entries[name].decode()
        assert "return (_1).forward(input0, )" in code
        entries[name] = code.replace("(input0, )", "(" + "- " * depth + "input0, )").encode()

    assert expected in _one_line(_archive(src, tmp_path / "deep.pt", nest), input_shape=(4,))


def test_deeply_nested_pickles_are_refused(tmp_path: Path) -> None:
    """torch's unpickler builds and frees nested values recursively: snnc bounds the nesting first."""
    src = _save(_cnn(), "script", tmp_path / "m.pt")
    nested: list = []
    for _ in range(300):
        nested = [nested]

    def deep(entries: dict[str, bytes], root: str) -> None:
        entries[f"{root}/constants.pkl"] = pickle.dumps(tuple(nested), protocol=2)

    assert "nested deeper than 200" in _one_line(_archive(src, tmp_path / "deep.pt", deep), input_shape=SHAPE)
