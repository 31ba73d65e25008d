"""The hostile-input corpus of issue 9, built at test time: every file is generated here.

``build(folder)`` writes one folder per case and returns the cases. Each case owns a root
``folder/<name>/`` holding ``work/`` (the case folder: the cwd of its commands, where its inputs
live), ``home/`` (HOME, with user files), ``secret/`` (a local file no output may contain) and
``tmp/`` (TMPDIR: must be empty afterwards). Payloads write ``<root>/PWNED-*`` when they run.

Categories: ``code`` (a file runs code), ``disclosure`` (a local file ends up in an output),
``destruction`` (user files removed), ``blowup`` (memory or time), ``traceback`` (anything but
one ``snnc: error:`` line), ``silent`` (a bad value accepted without a word), ``control`` (the valid
inputs each family mutates: they must compile).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("KERAS_BACKEND", "torch")

MARK = "PWNED"
PICKLE = r"pickl|weights.only|refus"
OUTSIDE = r"link|outside|external|virtual|refus"
BUDGET = r"budget|exceed|expands|at most|too (large|many|big)"
DESTROY = r"refus|not snnc|exists|not a directory|not empty"
SECRET = b"SNNC-SECRET-4f1d9b7e2a6c"  # 24 bytes: a multiple of 4 and 8, so float arrays carry it whole
SECRET_FILE = SECRET * 512  # 12 KiB


@dataclass
class Case:
    """One hostile input: the commands to run and what must hold afterwards."""

    name: str
    category: str
    root: Path
    argv: list[list[str]]  # snnc commands (without "snnc"), run in order until one fails
    expect: str = "refuse"  # "refuse": exit 1 or 2; "ok": exit 0; "any": 0, 1 or 2
    prep: list[list[str]] = field(default_factory=list)  # valid commands run first, must exit 0
    tamper: Optional[Callable[[Path], None]] = None  # applied to the case folder after prep
    isolate: bool = False  # run in a subprocess (payloads, memory, time)
    memory_mb: Optional[int] = 500  # peak RSS limit of an isolated run (None: not checked)
    protected: list[Path] = field(default_factory=list)  # user files that must survive unchanged
    reason: Optional[str] = None  # a refusal's error line must match this regex (case-insensitive)
    note: str = ""

    @property
    def folder(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def secret(self) -> Path:
        return self.root / "secret"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


# --------------------------------------------------------------------------- shared base artifacts


class Base:
    """Valid models and data built once per folder, copied into cases."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)

    def _once(self, name: str, make: Callable[[Path], Any]) -> Path:
        path = self.dir / name
        if not path.exists():
            tmp = self.dir / f"tmp-{name}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            make(tmp)
            os.replace(tmp, path)
        return path

    def mlp(self) -> Path:
        def make(d: Path) -> None:
            from conftest import make_data, make_mlp_onnx

            make_data(d / "data.npz", make_mlp_onnx(d / "mlp.onnx"), n=16)

        return self._once("mlp", make)

    def snn(self) -> Path:
        """``model.snnir`` + ``model.npz`` of the MLP compiled for sim (snn dialect), and its ann.snnir."""

        def make(d: Path) -> None:
            import snnc

            mlp = self.mlp()
            compiled = snnc.compile(str(mlp / "mlp.onnx"), "sim", calibration=np.load(mlp / "data.npz")["x"])
            snnc.ir.save(compiled.graph, d / "model.snnir")
            snnc.ir.save(compiled.ann, d / "ann.snnir")
            text = (d / "model.snnir").read_text()  # normalized already: recompiling needs no calibration
            (d / "model.snnir").write_text(text.replace("graph {", "graph {normalized = true, ", 1))

        return self._once("snn", make)

    def nir(self) -> Path:
        def make(d: Path) -> None:
            import nir

            import snnc
            from snnc.targets.nir.convert import to_nir

            mlp = self.mlp()
            compiled = snnc.compile(str(mlp / "mlp.onnx"), "nir", calibration=np.load(mlp / "data.npz")["x"])
            nir.write(d / "model.nir", to_nir(compiled.graph))

        return self._once("nir", make)

    def pt2(self) -> Path:
        def make(d: Path) -> None:
            import torch
            from torch import nn

            torch.manual_seed(0)
            net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
            torch.export.save(torch.export.export(net, (torch.rand(1, 16),)), d / "model.pt2")

        return self._once("pt2", make)

    def pt2_dynamic(self) -> Path:
        """The same MLP exported with a dynamic batch dimension: its model.json holds shape expressions."""

        def make(d: Path) -> None:
            import torch
            from torch import nn

            torch.manual_seed(0)
            net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
            batch = torch.export.Dim("batch", min=1, max=1024)
            program = torch.export.export(net, (torch.rand(2, 16),), dynamic_shapes={"input": {0: batch}})
            torch.export.save(program, d / "model.pt2")

        return self._once("pt2dyn", make)

    def big_zeros(self) -> Path:
        """A 2 GiB float32 zero array deflated into ~2 MB: ``zeros.npy`` in a zip, (2**27, 4)."""

        def make(d: Path) -> None:
            deflated_npy(d / "zeros.zip", "x.npy", (2**27, 4), np.float32)

        return self._once("bigzeros", make)

    def bomb(self, member: str, shape: tuple[int, ...]) -> Path:
        """A zip whose one member ``member`` is a deflated float32 zero array of ``shape``."""
        name = f"bomb-{member}-{'x'.join(map(str, shape))}"
        return self._once(name, lambda d: deflated_npy(d / "bomb.zip", member, shape, np.float32)) / "bomb.zip"


def deflated_npy(path: Path, member: str, shape: tuple[int, ...], dtype: Any, mode: str = "w") -> None:
    """Append an .npy member of zeros with ``shape`` to the zip ``path``, deflated as it is written."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )
    total = int(np.prod(shape)) * np.dtype(dtype).itemsize
    chunk = bytes(1 << 22)
    with zipfile.ZipFile(path, mode, zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=1) as zf:
        info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            f.write(header.getvalue())
            while total > 0:
                f.write(chunk[: min(total, len(chunk))])
                total -= len(chunk)


def lying_npy(shape: tuple[int, ...], dtype: Any = np.float32, payload: bytes = b"") -> bytes:
    """An .npy header declaring ``shape`` followed by only ``payload`` bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )
    return header.getvalue() + payload


def npz_members(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


# --------------------------------------------------------------------------- case context


class Ctx:
    """What a case builder works with: its root folders and the shared base artifacts."""

    def __init__(self, name: str, category: str, root: Path, base: Base) -> None:
        self.name, self.category, self.root, self.base = name, category, root, base
        for sub in ("work", "home", "secret", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.work = root / "work"
        (root / "secret" / "secret.txt").write_bytes(SECRET_FILE)
        np.savez(root / "secret" / "secret.npz", **self.secret_arrays())
        (root / "home" / ".bashrc").write_text("# user settings\n")
        (root / "home" / "notes").mkdir(exist_ok=True)
        (root / "home" / "notes" / "todo.txt").write_text("keep me\n")
        self.protected = [
            root / "home" / ".bashrc",
            root / "home" / "notes" / "todo.txt",
            root / "secret" / "secret.txt",
        ]

    @staticmethod
    def secret_floats(n: int) -> np.ndarray:
        raw = (SECRET_FILE * (1 + 4 * n // len(SECRET_FILE)))[: 4 * n]
        return np.frombuffer(raw, dtype=np.float32).copy()

    def secret_arrays(self) -> dict[str, np.ndarray]:
        """Arrays named like the MLP's sidecar tensors whose bytes are the secret."""
        return {
            "fc1_from_x.weight": self.secret_floats(192).reshape(12, 16),
            "fc2_from_fc1.weight": self.secret_floats(48).reshape(4, 12),
            "fc1.weight": self.secret_floats(192).reshape(12, 16),
            "x": self.secret_floats(64).reshape(4, 16),
        }

    @property
    def payload(self) -> str:
        """Python source that leaves the marker file when it runs."""
        return f"__import__('pathlib').Path({str(self.root / (MARK + '-' + self.name))!r}).write_text('x')"

    def copy(self, src: Path, name: Optional[str] = None) -> Path:
        dst = self.work / (name or src.name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def mlp(self) -> tuple[str, str]:
        """mlp.onnx and data.npz in the case folder (relative names)."""
        base = self.base.mlp()
        self.copy(base / "mlp.onnx")
        self.copy(base / "data.npz")
        return "mlp.onnx", "data.npz"

    def data(self) -> list[str]:
        """``--data data.npz`` (16 features, 4 classes): ANN models need calibration to compile."""
        self.copy(self.base.mlp() / "data.npz")
        return ["--data", "data.npz"]

    def write(self, name: str, data: bytes | str) -> str:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return name

    def user_file(self, rel: str, text: str = "precious user data\n") -> Path:
        path = self.work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.protected.append(path)
        return path

    def case(self, argv: list[list[str]], **kw: Any) -> Case:
        protected = self.protected + kw.pop("protected", [])
        return Case(self.name, self.category, self.root, argv, protected=protected, **kw)


Builder = Callable[[Ctx], Case]
REGISTRY: dict[str, tuple[str, Builder]] = {}


def case(name: str, category: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        assert name not in REGISTRY, name
        REGISTRY[name] = (category, fn)
        return fn

    return register


def names() -> list[str]:
    """Every case name, without building anything (for pytest parametrization)."""
    return list(REGISTRY)


def build_case(name: str, folder: Path, base: Optional[Base] = None) -> Case:
    """Build one case under ``folder/name``."""
    category, fn = REGISTRY[name]
    base = base or Base(folder / "_base")
    root = folder / name
    shutil.rmtree(root, ignore_errors=True)
    return fn(Ctx(name, category, root, base))


def build(folder: str | Path) -> list[Case]:
    """Build every case under ``folder``."""
    folder = Path(folder)
    base = Base(folder / "_base")
    return [build_case(name, folder, base) for name in REGISTRY]


# =========================================================================== code execution


class _Reduce:
    """Pickles as a call of ``fn(*args)``."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return self.fn, self.args


def _payload_pickle(ctx: Ctx, value_src: str, torch_format: bool = True) -> bytes:
    """A pickle that runs the payload and evaluates to ``value_src`` (so loading succeeds)."""
    obj = _Reduce(eval, f"({ctx.payload}, {value_src})[1]")
    if not torch_format:
        return pickle.dumps(obj, protocol=2)
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _edit_pt2(ctx: Ctx, edit: Callable[[dict[str, bytes]], None]) -> str:
    with zipfile.ZipFile(ctx.base.pt2() / "model.pt2") as z:
        members = {n: z.read(n) for n in z.namelist()}
    edit(members)
    with zipfile.ZipFile(ctx.work / "model.pt2", "w", zipfile.ZIP_STORED) as z:
        for n, data in members.items():
            z.writestr(n, data)
    ctx.data()
    return "model.pt2"


def _pt2_argv(model: str = "model.pt2") -> list[list[str]]:
    return [[model, "--input-shape", "16", "-o", "out", "--data", "data.npz"]]


def _pt2_config(members: dict[str, bytes], key: str) -> tuple[str, dict]:
    name = next(n for n in members if n.endswith(key))
    return name, json.loads(members[name])


def _pt2_weight(ctx: Ctx, torch_format: bool) -> Case:
    def edit(m: dict[str, bytes]) -> None:
        name, cfg = _pt2_config(m, "model_weights_config.json")
        entry = cfg["config"]["0.weight"]
        entry["use_pickle"] = True
        m[name] = json.dumps(cfg).encode()
        prefix = name.rsplit("/", 1)[0]
        m[f"{prefix}/{entry['path_name']}"] = _payload_pickle(ctx, "__import__('torch').zeros(12, 16)", torch_format)

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


case("pt2-weight-pickle-torch-save", "code")(lambda ctx: _pt2_weight(ctx, True))
case("pt2-weight-pickle-raw", "code")(lambda ctx: _pt2_weight(ctx, False))


def _pt2_constant(ctx: Ctx, prefix: str, torch_format: bool) -> Case:
    def edit(m: dict[str, bytes]) -> None:
        name, cfg = _pt2_config(m, "model_constants_config.json")
        path_name = f"{prefix}0"
        cfg["config"]["c"] = {"path_name": path_name, "is_param": False, "use_pickle": True, "tensor_meta": None}
        m[name] = json.dumps(cfg).encode()
        m[f"{name.rsplit('/', 1)[0]}/{path_name}"] = _payload_pickle(ctx, "__import__('torch').ones(3)", torch_format)

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


case("pt2-constant-tensor-pickle", "code")(lambda ctx: _pt2_constant(ctx, "tensor_", True))
case("pt2-constant-custom-obj", "code")(lambda ctx: _pt2_constant(ctx, "custom_obj_", False))
case("pt2-constant-opaque-obj", "code")(lambda ctx: _pt2_constant(ctx, "opaque_obj_", False))


@case("pt2-sample-inputs-fallback", "code")
def _(ctx: Ctx) -> Case:
    """torch retries sample_inputs without weights_only when the safe load fails."""

    def edit(m: dict[str, bytes]) -> None:
        name = next(n for n in m if "sample_inputs/" in n)
        m[name] = _payload_pickle(ctx, "((__import__('torch').rand(1, 16),), {})")

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


@case("pt2-sample-inputs-raw-pickle", "code")
def _(ctx: Ctx) -> Case:
    def edit(m: dict[str, bytes]) -> None:
        name = next(n for n in m if "sample_inputs/" in n)
        m[name] = _payload_pickle(ctx, "((), {})", torch_format=False)

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


def _pt2_legacy(ctx: Ctx, kind: str) -> Case:
    """Legacy ``data/weights/<model>.pt`` / ``data/constants/<model>.pt`` go through the fallback loader."""

    def edit(m: dict[str, bytes]) -> None:
        cfg_name, _ = _pt2_config(m, f"model_{kind}_config.json")
        prefix = cfg_name.rsplit("/", 1)[0]
        nn = "__import__('torch').nn"
        weights = f"dict({nn}.Sequential({nn}.Linear(16, 12), {nn}.ReLU(), {nn}.Linear(12, 4)).state_dict())"
        value = "{}" if kind == "constants" else weights
        m[f"{prefix}/model.pt"] = _payload_pickle(ctx, value)

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


case("pt2-legacy-weights-file", "code")(lambda ctx: _pt2_legacy(ctx, "weights"))
case("pt2-legacy-constants-file", "code")(lambda ctx: _pt2_legacy(ctx, "constants"))


@case("pt2-every-pickle-entry", "code")
def _(ctx: Ctx) -> Case:
    def edit(m: dict[str, bytes]) -> None:
        name, cfg = _pt2_config(m, "model_weights_config.json")
        prefix = name.rsplit("/", 1)[0]
        for fqn, entry in cfg["config"].items():
            entry["use_pickle"] = True
            shape = {"0.weight": "12, 16", "0.bias": "12", "2.weight": "4, 12", "2.bias": "4"}[fqn]
            m[f"{prefix}/{entry['path_name']}"] = _payload_pickle(ctx, f"__import__('torch').zeros({shape})")
        m[name] = json.dumps(cfg).encode()
        sample = next(n for n in m if "sample_inputs/" in n)
        m[sample] = _payload_pickle(ctx, "((__import__('torch').rand(1, 16),), {})")

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True, reason=PICKLE)


def _pt2_other_command(ctx: Ctx, command: str) -> Case:
    """The weight-pickle payload through ``snnc ir``, or a pickled data file through a two-worker sweep."""
    _pt2_weight(ctx, True)
    argv = {
        "ir": ["ir", "model.pt2", "--input-shape", "16"],
        "ir-after": ["ir", "model.pt2", "--input-shape", "16", "--after", "normalize", "--data", "data.npz"],
        "sweep": [
            "sweep",
            "mlp.onnx",
            "--data",
            "evil.npz",
            "--param",
            "presentation-time=20,30",
            "--jobs",
            "2",
            "-o",
            "sw",
        ],
    }[command]
    if command == "sweep":  # sweep takes no --input-shape: the payload rides in the data file instead
        ctx.mlp()
        obj = np.empty(1, dtype=object)
        obj[0] = _Reduce(eval, ctx.payload)
        npz_members(ctx.work / "evil.npz", {"x.npy": npy_bytes(obj, allow_pickle=True)})
    # a sweep reports a failing point as a row (exit 0); the payload must still not run
    return ctx.case([argv], isolate=True, expect="any" if command == "sweep" else "refuse")


for _command in ("ir", "ir-after", "sweep"):
    case(f"pt2-weight-pickle-via-{_command}", "code")(lambda ctx, c=_command: _pt2_other_command(ctx, c))


@case("pt2-sympy-shape-expression", "code")
def _(ctx: Ctx) -> Case:
    """torch.export.load parses shape expressions with sympy.sympify, which evaluates Python."""
    import re

    with zipfile.ZipFile(ctx.base.pt2_dynamic() / "model.pt2") as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in members if n.endswith("models/model.json"))
    text = members[name].decode()
    found = re.search(r'"expr_str": "([^"]*)"', text)
    assert found, "no shape expression in a dynamic export"
    evil = json.dumps(f"{ctx.payload} and {found.group(1)}")[1:-1]
    members[name] = (text[: found.start(1)] + evil + text[found.end(1) :]).encode()
    with zipfile.ZipFile(ctx.work / "model.pt2", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    ctx.data()
    return ctx.case(_pt2_argv(), isolate=True, note="the payload runs inside torch.export.load")


@case("pt-state-dict-pickle", "code")
def _(ctx: Ctx) -> Case:
    ctx.write("model.pt", _payload_pickle(ctx, "{}"))
    argv = ["model.pt", "--input-shape", "16", "--module", "torch.nn:Identity", "-o", "out", *ctx.data()]
    return ctx.case([argv], isolate=True)


@case("npz-data-pickled-object", "code")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    obj = np.empty(1, dtype=object)
    obj[0] = _Reduce(eval, ctx.payload)
    npz_members(ctx.work / "evil.npz", {"x.npy": npy_bytes(obj, allow_pickle=True)})
    return ctx.case([[model, "-o", "out", "--data", "evil.npz"]], isolate=True)


def _snnir_graph_attr(ctx: Ctx, key: str, target: str, dialect: str) -> Case:
    """A string graph attribute carrying code, compiled for ``target`` and then run."""
    base = ctx.base.snn()
    src = base / ("model.snnir" if dialect == "snn" else "ann.snnir")
    text = src.read_text()
    code = f'"""\n{ctx.payload}\n"""'
    value = json.dumps(code)
    lines = text.splitlines()
    if lines[1].startswith("graph {"):
        attrs = lines[1][len("graph {") : -1]
        parts = [p for p in attrs.split(", ") if not p.startswith(f"{key} =")]
        lines[1] = "graph {" + ", ".join([*parts, f"{key} = {value}"]) + "}"
    else:
        lines.insert(1, f"graph {{{key} = {value}}}")
    ctx.write("model.snnir", "\n".join(lines) + "\n")
    if src.with_suffix(".npz").exists():
        ctx.copy(src.with_suffix(".npz"), "model.npz")
    ctx.copy(ctx.base.mlp() / "data.npz")
    compile_data = ["--data", "data.npz"] if dialect == "ann" else []  # an snn graph takes no calibration
    return ctx.case(
        [
            ["model.snnir", "-t", target, "-o", "out", *compile_data],
            ["run", "out", "--samples", "2", "--data", "data.npz"],
        ],
        isolate=True,
    )


for _key in ("presentation_time", "dt", "input_layout", "instances"):
    for _target in ("nest", "sim"):
        for _dialect in ("snn", "ann"):
            case(f"snnir-code-in-{_key}-{_target}-{_dialect}", "code")(
                lambda ctx, k=_key, t=_target, d=_dialect: _snnir_graph_attr(ctx, k, t, d)
            )


def _snnir_node_attr(ctx: Ctx, attr: str, target: str) -> Case:
    text = (ctx.base.snn() / "model.snnir").read_text()
    value = json.dumps(f'"""\n{ctx.payload}\n"""')
    import re

    text, n = re.subn(rf'{attr} = "[^"]*"', lambda _: f"{attr} = {value}", text, count=1)
    assert n == 1, attr
    ctx.write("model.snnir", text)
    ctx.copy(ctx.base.snn() / "model.npz")
    ctx.copy(ctx.base.mlp() / "data.npz")
    return ctx.case(
        [["model.snnir", "-t", target, "-o", "out"], ["run", "out", "--samples", "2", "--data", "data.npz"]],
        isolate=True,
    )


for _attr in ("encoding", "connectivity", "receptor"):
    case(f"snnir-code-in-node-{_attr}-nest", "code")(lambda ctx, a=_attr: _snnir_node_attr(ctx, a, "nest"))


def _tampered_run_py(ctx: Ctx, target: str) -> Case:
    model, data = ctx.mlp()

    def tamper(work: Path) -> None:
        run = work / "out" / "run.py"
        run.write_text(f"{ctx.payload}\n" + (run.read_text() if run.exists() else ""))

    return ctx.case(
        [["run", "out", "--samples", "2"]],
        expect="any",
        isolate=True,
        tamper=tamper,
        prep=[[model, "-t", target, "-o", "out", "--data", data]],
        note="snnc run must not execute code found in an output directory",
    )


case("run-tampered-run-py-sim", "code")(lambda ctx: _tampered_run_py(ctx, "sim"))
case("run-tampered-run-py-nest", "code")(lambda ctx: _tampered_run_py(ctx, "nest"))


@case("onnx-names-with-code-nest-run", "code")
def _(ctx: Ctx) -> Case:
    from conftest import make_data, make_mlp_onnx

    names = {"input": f'x"); {ctx.payload} #', "fc1": f'"""\n{ctx.payload}\n"""', "output": f"y'''\n{ctx.payload}"}
    model = make_mlp_onnx(ctx.work / "evil.onnx", names)
    make_data(ctx.work / "data.npz", model, n=8)
    return ctx.case(
        [["evil.onnx", "-t", "nest", "-o", "out", "--data", "data.npz"], ["run", "out", "--samples", "2"]],
        expect="ok",
        isolate=True,
    )


# =========================================================================== local file disclosure


def _keras_config(units: int = 4, name: str = "dense", inputs: int = 16) -> dict:
    return {
        "class_name": "Sequential",
        "config": {
            "name": "seq",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "input", "batch_shape": [None, inputs]}},
                {
                    "class_name": "Dense",
                    "config": {"name": name, "units": units, "activation": "linear", "use_bias": True},
                },
            ],
        },
    }


def _h5_weights(h5: Any, ctx: Ctx, group: str, mode: str, kernel_shape: tuple[int, int] = (16, 4)) -> None:
    """Write kernel '0' and bias '1' into ``group``; the kernel per ``mode``: plain, external
    storage (absolute or relative), external link, virtual dataset, or chunked and never written."""
    import h5py

    g = h5.require_group(group)
    secret = ctx.root / "secret" / "secret.txt"
    nbytes = int(np.prod(kernel_shape)) * 4
    if mode == "plain":
        g["0"] = np.full(kernel_shape, 0.1, np.float32)
    elif mode == "external-abs":
        g.create_dataset("0", kernel_shape, np.float32, external=[(str(secret), 0, nbytes)])
    elif mode == "external-rel":
        g.create_dataset("0", kernel_shape, np.float32, external=[("../secret/secret.txt", 0, nbytes)])
    elif mode == "external-link":
        with h5py.File(ctx.root / "secret" / "secret.h5", "w") as s:
            s["k"] = ctx.secret_floats(int(np.prod(kernel_shape))).reshape(kernel_shape)
        g["0"] = h5py.ExternalLink(str(ctx.root / "secret" / "secret.h5"), "/k")
    elif mode == "virtual":
        with h5py.File(ctx.root / "secret" / "secret.h5", "w") as s:
            s["k"] = ctx.secret_floats(int(np.prod(kernel_shape))).reshape(kernel_shape)
        layout = h5py.VirtualLayout(kernel_shape, np.float32)
        layout[:] = h5py.VirtualSource(str(ctx.root / "secret" / "secret.h5"), "k", kernel_shape)
        g.create_virtual_dataset("0", layout)
    elif mode == "unwritten":
        g.create_dataset("0", kernel_shape, np.float32, chunks=(1, min(kernel_shape[1], 1 << 16)), compression="gzip")
    else:
        raise ValueError(mode)
    if mode == "unwritten":
        g.create_dataset("1", (kernel_shape[1],), np.float32, chunks=(min(kernel_shape[1], 1 << 16),))
    else:
        g["1"] = np.zeros(kernel_shape[1], np.float32)


def _keras_file(
    ctx: Ctx, suffix: str, mode: str, config: Optional[dict] = None, kernel_shape: tuple[int, int] = (16, 4)
) -> str:
    import h5py

    config = config or _keras_config()
    if suffix == ".keras":
        h5_path = ctx.root / "tmp-weights.h5"
        with h5py.File(h5_path, "w") as h5:
            _h5_weights(h5, ctx, "layers/dense/vars", mode, kernel_shape)
        with zipfile.ZipFile(ctx.work / "model.keras", "w") as z:
            z.writestr("config.json", json.dumps(config))
            z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
            z.write(h5_path, "model.weights.h5")
        h5_path.unlink()
        return "model.keras"
    with h5py.File(ctx.work / "model.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        mw = h5.create_group("model_weights")
        mw.attrs["layer_names"] = [b"dense"]
        _h5_weights(mw, ctx, "dense", mode, kernel_shape)
        mw["dense"].attrs["weight_names"] = [b"0", b"1"]
    return "model.h5"


def _disclosure_keras(ctx: Ctx, suffix: str, mode: str) -> Case:
    model = _keras_file(ctx, suffix, mode)
    return ctx.case([[model, "-o", "out", *ctx.data()]], reason=OUTSIDE)


for _suffix in (".keras", ".h5"):
    for _mode in ("external-abs", "external-rel", "external-link", "virtual"):
        case(f"keras{_suffix.replace('.', '-')}-{_mode}", "disclosure")(
            lambda ctx, s=_suffix, m=_mode: _disclosure_keras(ctx, s, m)
        )


def _nir_edit(ctx: Ctx, edit: Callable[[Any, Ctx], None]) -> str:
    import h5py

    ctx.copy(ctx.base.nir() / "model.nir")
    with h5py.File(ctx.work / "model.nir", "r+") as h5:
        edit(h5, ctx)
    return "model.nir"


def _nir_weight(ctx: Ctx, mode: str) -> Case:
    import h5py

    def edit(h5: Any, ctx: Ctx) -> None:
        path = "node/nodes/fc1_from_x/weight"
        del h5[path]
        secret = ctx.root / "secret" / "secret.txt"
        if mode == "external-abs":
            h5.create_dataset(path, (12, 16), np.float32, external=[(str(secret), 0, 768)])
        elif mode == "external-rel":
            h5.create_dataset(path, (12, 16), np.float32, external=[("../secret/secret.txt", 0, 768)])
        else:
            with h5py.File(ctx.root / "secret" / "secret.h5", "w") as s:
                s["k"] = ctx.secret_floats(192).reshape(12, 16)
            if mode == "external-link":
                h5[path] = h5py.ExternalLink(str(ctx.root / "secret" / "secret.h5"), "/k")
            else:
                layout = h5py.VirtualLayout((12, 16), np.float32)
                layout[:] = h5py.VirtualSource(str(ctx.root / "secret" / "secret.h5"), "k", (12, 16))
                h5.create_virtual_dataset(path, layout)

    return ctx.case([[_nir_edit(ctx, edit), "-t", "nir", "-o", "out"]], reason=OUTSIDE)


for _mode in ("external-abs", "external-rel", "external-link", "virtual"):
    case(f"nir-weight-{_mode}", "disclosure")(lambda ctx, m=_mode: _nir_weight(ctx, m))


@case("nir-group-external-link", "disclosure")
def _(ctx: Ctx) -> Case:
    """The whole node group is a link into a file outside the model's folder."""
    import h5py

    def edit(h5: Any, ctx: Ctx) -> None:
        with h5py.File(ctx.root / "secret" / "secret.h5", "w") as s:
            h5.copy(h5["node/nodes/fc1_from_x"], s, "grp")
            del s["grp/weight"]
            s["grp/weight"] = ctx.secret_floats(192).reshape(12, 16)
        del h5["node/nodes/fc1_from_x"]
        h5["node/nodes/fc1_from_x"] = h5py.ExternalLink(str(ctx.root / "secret" / "secret.h5"), "/grp")

    return ctx.case([[_nir_edit(ctx, edit), "-t", "nir", "-o", "out"]], reason=OUTSIDE)


@case("snnir-sidecar-symlink-outside", "disclosure")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.snn() / "model.snnir")
    (ctx.work / "model.npz").symlink_to(ctx.root / "secret" / "secret.npz")
    return ctx.case([["model.snnir", "-t", "nir", "-o", "out"]], reason=OUTSIDE)


@case("snnir-sidecar-symlink-relative", "disclosure")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.snn() / "model.snnir")
    (ctx.work / "model.npz").symlink_to("../secret/secret.npz")
    return ctx.case([["model.snnir", "-t", "sim", "-o", "out"]], reason=OUTSIDE)


@case("snnir-ann-sidecar-symlink", "disclosure")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.snn() / "ann.snnir", "model.snnir")
    (ctx.work / "model.npz").symlink_to(ctx.root / "secret" / "secret.npz")
    return ctx.case([["model.snnir", "-o", "out", *ctx.data()]], reason=OUTSIDE)


def _onnx_external(ctx: Ctx, location: str, link: bool = False) -> Case:
    import onnx

    ctx.mlp()
    model = onnx.load(str(ctx.work / "mlp.onnx"))
    w1 = next(t for t in model.graph.initializer if t.name == "w1")
    w1.ClearField("raw_data")
    w1.ClearField("float_data")
    w1.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "768")):
        w1.external_data.add(key=k, value=v)
    if link:
        (ctx.work / location).symlink_to(ctx.root / "secret" / "secret.txt")
    onnx.save(model, str(ctx.work / "ext.onnx"))
    return ctx.case([["ext.onnx", "-o", "out", "--data", "data.npz"]])


case("onnx-external-data-absolute", "disclosure")(
    lambda ctx: _onnx_external(ctx, str(ctx.root / "secret" / "secret.txt"))
)
case("onnx-external-data-dotdot", "disclosure")(lambda ctx: _onnx_external(ctx, "../secret/secret.txt"))
case("onnx-external-data-symlink", "disclosure")(lambda ctx: _onnx_external(ctx, "w1.bin", link=True))


@case("calibration-beside-model-symlink", "disclosure")
def _(ctx: Ctx) -> Case:
    """calibration.npz found beside the model is a symlink to a file elsewhere."""
    ctx.mlp()
    (ctx.work / "calibration.npz").symlink_to(ctx.root / "secret" / "secret.npz")
    return ctx.case(
        [["mlp.onnx", "-o", "out"]],
        reason=OUTSIDE,
        note="a calibration file found beside the model that is a symlink out of the folder",
    )


# =========================================================================== destruction


def _destroy(
    ctx: Ctx,
    out: str,
    force: bool = True,
    model_at: str = "mlp.onnx",
    expect: str = "refuse",
    extra: Optional[Callable[[Ctx], None]] = None,
) -> Case:
    base = ctx.base.mlp()
    ctx.copy(base / "mlp.onnx", model_at)
    ctx.copy(base / "data.npz")
    ctx.protected.append(ctx.work / model_at)
    ctx.protected.append(ctx.work / "data.npz")
    ctx.user_file("thesis.tex")
    ctx.user_file("results/table.csv", "a,b\n1,2\n")
    (ctx.root / "sibling.txt").write_text("beside the case folder\n")
    ctx.protected.append(ctx.root / "sibling.txt")
    if extra:
        extra(ctx)
    out = out.replace("$HOME", str(ctx.root / "home")).replace("$ROOT", str(ctx.root))
    argv = [model_at, "-o", out, "--data", "data.npz", *(["--force"] if force else [])]
    return ctx.case([argv], expect=expect, reason=DESTROY)


for _name, _out in (
    (".", "."),
    ("dotdot", ".."),
    ("home", "$HOME"),
    ("root-of-case", "$ROOT"),
    ("dot-slash", "./"),
    ("dot-dot-slash", "../work"),
    ("results-dir", "results"),
):
    case(f"out-{_name}-force", "destruction")(lambda ctx, o=_out: _destroy(ctx, o))
    case(f"out-{_name}-noforce", "destruction")(lambda ctx, o=_out: _destroy(ctx, o, force=False))


case("out-ancestor-of-model-force", "destruction")(lambda ctx: _destroy(ctx, "proj", model_at="proj/models/mlp.onnx"))
case("out-parent-of-model-force", "destruction")(
    lambda ctx: _destroy(ctx, "proj/models", model_at="proj/models/mlp.onnx")
)
case("out-is-model-file-force", "destruction")(lambda ctx: _destroy(ctx, "mlp.onnx"))
case("out-is-user-file-force", "destruction")(lambda ctx: _destroy(ctx, "thesis.tex"))


def _fake_snnc_dir(ctx: Ctx) -> None:
    """The model's own folder holds a planted snnc.json: still its ancestor."""
    (ctx.work / "proj" / "snnc.json").write_text("{}")


case("out-ancestor-with-planted-manifest-force", "destruction")(
    lambda ctx: _destroy(ctx, "proj", model_at="proj/mlp.onnx", extra=_fake_snnc_dir)
)
case("out-dot-with-planted-manifest-force", "destruction")(
    lambda ctx: _destroy(ctx, ".", extra=lambda c: (c.work / "snnc.json").write_text("{}"))
)
case("out-home-with-planted-manifest-force", "destruction")(
    lambda ctx: _destroy(ctx, "$HOME", extra=lambda c: (c.root / "home" / "snnc.json").write_text("{}"))
)


def _symlink_out(ctx: Ctx) -> None:
    (ctx.work / "link").symlink_to(ctx.work / "results")


case("out-symlink-to-user-dir-force", "destruction")(lambda ctx: _destroy(ctx, "link", extra=_symlink_out))


def _previous_output(ctx: Ctx) -> None:
    """A real previous snnc output with a user's note inside: --force may replace it."""
    (ctx.work / "prev").mkdir()
    (ctx.work / "prev" / "snnc.json").write_text('{"snnc_version": "0.1.0", "target": "sim"}')
    (ctx.work / "prev" / "my-notes.txt").write_text("written by the user into the output folder\n")


case("out-previous-output-force", "destruction")(lambda ctx: _destroy(ctx, "prev", expect="ok", extra=_previous_output))
case("out-previous-output-noforce", "destruction")(
    lambda ctx: _destroy(ctx, "prev", force=False, extra=_previous_output)
)


@case("out-force-fails-midway-keeps-old", "destruction")
def _(ctx: Ctx) -> Case:
    """--force onto a previous output, compile fails: the previous output stays as it was."""
    model, data = ctx.mlp()
    ctx.write("bad.onnx", b"not an onnx file")

    def tamper(work: Path) -> None:
        for path in sorted((work / "out").rglob("*")):
            if path.is_file():
                ctx.protected.append(path)

    c = ctx.case([["bad.onnx", "-o", "out", "--force"]], prep=[[model, "-o", "out", "--data", data]], tamper=tamper)
    return c


@case("out-dangling-symlink-outside", "destruction")
def _(ctx: Ctx) -> Case:
    """``out`` is a dangling symlink to a folder outside the case: nothing may be created there."""
    (ctx.work / "out").symlink_to(ctx.root / "victim")
    return _destroy(ctx, "out", force=False, expect="any")


@case("out-force-previous-output-with-link-home", "destruction")
def _(ctx: Ctx) -> Case:
    """Replacing a previous output that holds a symlink to the home folder removes the link only."""
    model, data = ctx.mlp()

    def tamper(work: Path) -> None:
        (work / "out" / "notes").symlink_to(ctx.root / "home" / "notes")
        (work / "out" / "bashrc").symlink_to(ctx.root / "home" / ".bashrc")

    return ctx.case(
        [[model, "-o", "out", "--force", "--data", data]],
        prep=[[model, "-o", "out", "--data", data]],
        tamper=tamper,
        expect="ok",
    )


def _run_through_links(ctx: Ctx, names: tuple[str, ...], target: str = "sim") -> Case:
    """An output directory whose result files are symlinks to user files: ``snnc run`` must not
    write through them."""
    model, data = ctx.mlp()

    def tamper(work: Path) -> None:
        for name in names:
            path = work / "out" / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            path.symlink_to(ctx.root / "home" / (".bashrc" if "." in name else "notes"))

    return ctx.case(
        [["run", "out", "--samples", "2"]],
        prep=[[model, "-t", target, "-o", "out", "--data", data]],
        tamper=tamper,
        expect="any",
    )


case("run-results-json-symlink-to-home", "destruction")(lambda ctx: _run_through_links(ctx, ("results.json",)))
case("run-report-md-symlink-to-home", "destruction")(lambda ctx: _run_through_links(ctx, ("report.md",)))
case("run-plots-dir-symlink-to-home", "destruction")(lambda ctx: _run_through_links(ctx, ("plots",)))


@case("sweep-out-dot", "destruction")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    ctx.user_file("thesis.tex")
    return ctx.case(
        [["sweep", model, "--data", data, "--param", "presentation-time=20", "-o", "."]],
        protected=[ctx.work / model],
        expect="any",
    )


@case("dump-ir-into-dot", "destruction")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    ctx.user_file("ir/keep.snnir", "mine\n")
    return ctx.case([[model, "-o", ".", "--force", "--dump-ir", "all", "--data", data]])


# =========================================================================== blow-ups


@case("keras-declared-12GB-kernel", "blowup")
def _(ctx: Ctx) -> Case:
    model = _keras_file(ctx, ".keras", "unwritten", _keras_config(units=200_000_000), (16, 200_000_000))
    return ctx.case([[model, "-o", "out", *ctx.data()]], isolate=True, reason=BUDGET)


@case("h5-declared-12GB-kernel", "blowup")
def _(ctx: Ctx) -> Case:
    model = _keras_file(ctx, ".h5", "unwritten", _keras_config(units=200_000_000), (16, 200_000_000))
    return ctx.case([[model, "-o", "out", *ctx.data()]], isolate=True, reason=BUDGET)


@case("keras-zip-bomb-config", "blowup")
def _(ctx: Ctx) -> Case:
    """A ~1 MB .keras whose config.json inflates to 1 GiB."""
    path = ctx.work / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("config.json", "w", force_zip64=True) as f:
            f.write(b'{"class_name": "Sequential", "pad": "')
            block = b" " * (1 << 22)
            for _ in range(256):
                f.write(block)
            f.write(b'"}')
        z.writestr("model.weights.h5", b"")
    return ctx.case([["model.keras", "-o", "out", *ctx.data()]], isolate=True, reason=BUDGET)


@case("keras-zip-bomb-weights", "blowup")
def _(ctx: Ctx) -> Case:
    shutil.copyfile(ctx.base.bomb("model.weights.h5", (2**29,)), ctx.work / "model.keras")
    with zipfile.ZipFile(ctx.work / "model.keras", "a") as z:
        z.writestr("config.json", json.dumps(_keras_config()))
    return ctx.case(
        [["model.keras", "-o", "out", *ctx.data()]],
        isolate=True,
        reason=BUDGET + "|hdf5|h5",
        note="model.weights.h5 is 2 GiB inflated",
    )


def _bomb_npz(ctx: Ctx, name: str) -> str:
    shutil.copyfile(ctx.base.big_zeros() / "zeros.zip", ctx.work / name)
    with zipfile.ZipFile(ctx.work / name) as z:
        assert z.namelist() == ["x.npy"]
    return name


@case("calibration-npz-2GiB-inflated", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.mlp()
    # x is (2**27, 4): the wrong feature count too, but only after reading it would anyone know
    return ctx.case([["mlp.onnx", "-o", "out", "--calibration", _bomb_npz(ctx, "calib.npz")]], isolate=True)


@case("calibration-npz-2GiB-inflated-right-shape", "blowup")
def _(ctx: Ctx) -> Case:
    """x is (2**25, 16): valid samples, but only the first 1000 are used for calibration."""
    ctx.mlp()
    shutil.copyfile(ctx.base.bomb("x.npy", (2**25, 16)), ctx.work / "calib.npz")
    return ctx.case([["mlp.onnx", "-o", "out", "--calibration", "calib.npz"]], expect="any", isolate=True)


@case("data-npz-2GiB-inflated-run", "blowup")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    return ctx.case(
        [["run", "out", "--data", _bomb_npz(ctx, "big.npz"), "--samples", "2"]],
        isolate=True,
        prep=[[model, "-o", "out", "--data", data]],
    )


@case("calibration-npz-declared-128GiB", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.mlp()
    npz_members(ctx.work / "calib.npz", {"x.npy": lying_npy((2**31, 16))})
    return ctx.case(
        [["mlp.onnx", "-o", "out", "--calibration", "calib.npz"]],
        isolate=True,
        reason=BUDGET + "|truncated|ends before|declared",
    )


@case("data-npz-declared-huge-y", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.mlp()
    x = npy_bytes(np.zeros((4, 16), np.float32))
    npz_members(ctx.work / "d.npz", {"x.npy": x, "y.npy": lying_npy((2**40,), np.int64)})
    return ctx.case([["mlp.onnx", "-o", "out", "--data", "d.npz"]], isolate=True)


def _snnir_with_sidecar(ctx: Ctx, extra: dict[str, bytes]) -> None:
    ctx.copy(ctx.base.snn() / "model.snnir")
    with zipfile.ZipFile(ctx.base.snn() / "model.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    npz_members(ctx.work / "model.npz", {**members, **extra})


@case("snnir-sidecar-unreferenced-2GiB", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.snn() / "model.snnir")
    shutil.copyfile(ctx.base.big_zeros() / "zeros.zip", ctx.work / "model.npz")
    with zipfile.ZipFile(ctx.base.snn() / "model.npz") as src, zipfile.ZipFile(ctx.work / "model.npz", "a") as dst:
        for n in src.namelist():
            dst.writestr(n, src.read(n))
    return ctx.case(
        [["model.snnir", "-t", "nir", "-o", "out"]],
        expect="ok",
        isolate=True,
        note="an unreferenced array must not be read",
    )


@case("snnir-sidecar-unreferenced-declared-128GiB", "blowup")
def _(ctx: Ctx) -> Case:
    _snnir_with_sidecar(ctx, {"junk.npy": lying_npy((2**35,))})
    return ctx.case([["model.snnir", "-t", "nir", "-o", "out"]], expect="any", isolate=True)


@case("snnir-sidecar-referenced-declared-huge", "blowup")
def _(ctx: Ctx) -> Case:
    _snnir_with_sidecar(ctx, {"fc1_from_x.weight.npy": lying_npy((2**20, 2**20))})
    return ctx.case([["model.snnir", "-t", "nir", "-o", "out"]], isolate=True)


SNNIR_MLP = """snnir 1
@w : tensor<f32, {rows}x{cols}>{init}
%x = ann.input() {{shape = [{cols}]}} : [{cols}]
%fc = ann.dense(%x) {{weight = @w, activation = "none"}} : [{rows}]
return %fc
"""


def _snnir_text(rows: int = 4, cols: int = 16, init: Optional[str] = None) -> str:
    if init is None:
        init = " = [" + ", ".join(["0.5"] * (rows * cols)) + "]"
    return SNNIR_MLP.format(rows=rows, cols=cols, init=init)


@case("snnir-declared-10e12-neurons-input", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.write(
        "model.snnir",
        "snnir 1\n%x = ann.input() {shape = [1000000000000]} : [1000000000000]\n"
        "%r = ann.relu(%x) : [1000000000000]\nreturn %r\n",
    )
    return ctx.case([["model.snnir", "-o", "out"]], isolate=True)


@case("snnir-declared-10e12-weight-no-data", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.write("model.snnir", _snnir_text(1_000_000, 1_000_000, init=""))
    return ctx.case([["model.snnir", "-o", "out"]], isolate=True)


@case("snnir-snn-population-10e12", "blowup")
def _(ctx: Ctx) -> Case:
    import re

    text = (ctx.base.snn() / "model.snnir").read_text()
    text = re.sub(r"(%fc1 = snn\.population\([^)]*\).*): \[12\]", r"\1: [1000000000000]", text)
    ctx.write("model.snnir", text)
    ctx.copy(ctx.base.snn() / "model.npz")
    return ctx.case([["model.snnir", "-t", "nest", "-o", "out"]], isolate=True)


@case("onnx-declared-10e12-input", "blowup")
def _(ctx: Ctx) -> Case:
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10**12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10**12])],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(ctx.work / "m.onnx"))
    return ctx.case([["m.onnx", "-o", "out"]], isolate=True)


@case("onnx-declared-10e12-weight-no-data", "blowup")
def _(ctx: Ctx) -> Case:
    from onnx import TensorProto, helper, save

    w = helper.make_tensor("w", TensorProto.FLOAT, [1], vals=[0.0])
    w.dims[:] = [1_000_000, 16]  # declared dims, no data
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1_000_000])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(ctx.work / "m.onnx"))
    return ctx.case([["m.onnx", "-o", "out"]], isolate=True)


@case("onnx-constant-of-shape-10e12", "blowup")
def _(ctx: Ctx) -> Case:
    from onnx import TensorProto, helper, numpy_helper, save

    shape = numpy_helper.from_array(np.array([1_000_000, 1_000_000], np.int64), "shape")
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["w"], name="cos"),
        helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1_000_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1_000_000])],
        [shape],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(ctx.work / "m.onnx"))
    return ctx.case([["m.onnx", "-o", "out"]], isolate=True)


@case("nir-declared-10e12-input", "blowup")
def _(ctx: Ctx) -> Case:
    def edit(h5: Any, ctx: Ctx) -> None:
        del h5["node/nodes/x/shape"]
        h5["node/nodes/x/shape"] = np.array([10**12], np.int64)

    return ctx.case([[_nir_edit(ctx, edit), "-t", "nir", "-o", "out"]], isolate=True)


def _chain_weights(i: int) -> str:
    return "[" + ", ".join("0.5" if r == c else "0.0" for r in range(4) for c in range(4)) + "]"


@case("snnir-chain-30000", "blowup")
def _(ctx: Ctx) -> Case:
    """15,000 dense + relu pairs: a valid 30,000-node chain."""
    eye = _chain_weights(0)
    lines = ["snnir 1", "@w : tensor<f32, 4x4> = " + eye, "%v0 = ann.input() {shape = [4]} : [4]"]
    for i in range(1, 15_001):
        lines.append(f'%d{i} = ann.dense(%v{i - 1}) {{weight = @w, activation = "none"}} : [4]')
        lines.append(f"%v{i} = ann.relu(%d{i}) : [4]")
    ctx.write("model.snnir", "\n".join([*lines, "return %v15000", ""]))
    np.savez(ctx.work / "data.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 4)
    return ctx.case(
        [["model.snnir", "-o", "out", "--data", "data.npz"]],
        expect="ok",
        isolate=True,
        memory_mb=1000,
        note="a valid 30,000-node chain must compile well within the timeout",
    )


@case("onnx-chain-30000", "blowup")
def _(ctx: Ctx) -> Case:
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 0.5, "w")
    nodes = []
    for i in range(15_000):
        nodes.append(helper.make_node("Gemm", [f"v{i}", "w"], [f"d{i}"], name=f"fc{i}", transB=1))
        nodes.append(helper.make_node("Relu", [f"d{i}"], [f"v{i + 1}"], name=f"r{i}"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("v15000", TensorProto.FLOAT, ["n", 4])],
        [w],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(ctx.work / "m.onnx"))
    np.savez(ctx.work / "data.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 4)
    return ctx.case([["m.onnx", "-o", "out", "--data", "data.npz"]], expect="ok", isolate=True, memory_mb=1000)


@case("snnir-ids-colliding-unique", "blowup")
def _(ctx: Ctx) -> Case:
    """Many ids of one stem (fc, fc_1, fc_2, ...) make a one-by-one unique-id probe quadratic."""
    lines = ["snnir 1", "@w : tensor<f32, 4x4> = " + _chain_weights(0), "%fc = ann.input() {shape = [4]} : [4]"]
    prev = "%fc"
    for i in range(1, 20_000):
        op = f'ann.dense({prev}) {{weight = @w, activation = "none"}}' if i % 2 else f"ann.relu({prev})"
        lines.append(f"%fc_{i} = {op} : [4]")
        prev = f"%fc_{i}"
    ctx.write("model.snnir", "\n".join([*lines, f"return {prev}", ""]))
    np.savez(ctx.work / "data.npz", x=np.random.default_rng(0).random((8, 4), dtype=np.float32), y=np.arange(8) % 4)
    return ctx.case(
        [["model.snnir", "-t", "nir", "-o", "out", "--data", "data.npz"]], expect="ok", isolate=True, memory_mb=1000
    )


@case("snnir-deep-nesting", "blowup")
def _(ctx: Ctx) -> Case:
    ctx.write(
        "model.snnir",
        "snnir 1\ngraph {a = " + "[" * 100_000 + "]" * 100_000 + "}\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    )
    return ctx.case([["model.snnir", "-o", "out"]], isolate=True)


@case("snnir-10MB-name", "blowup")
def _(ctx: Ctx) -> Case:
    name = "n" * 1_000_000
    ctx.write("model.snnir", f"snnir 1\n%{name} = ann.input() {{shape = [4]}} : [4]\nreturn %{name}\n")
    return ctx.case([["model.snnir", "-o", "out"]], expect="any", isolate=True)


# =========================================================================== tracebacks: .snnir


SNNIR_BAD: dict[str, bytes | str] = {
    "empty": b"",
    "whitespace": b"  \n\t\n",
    "non-utf8": b"snnir 1\n%x = ann.input() {shape = [4]} : [4]\n# \xff\xfe\x80\nreturn %x\n",
    "utf16-bom": "snnir 1\nreturn %x\n".encode("utf-16"),
    "nul-bytes": b"snnir 1\x00\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "header-only": "snnir 1\n",
    "version-999": "snnir 999\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "version-huge": "snnir " + "9" * 5000 + "\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "huge-int-attr": "snnir 1\ngraph {instances = " + "9" * 5000 + "}\n"
    "%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "huge-int-shape": "snnir 1\n%x = ann.input() {shape = [" + "9" * 5000 + "]} : [4]\nreturn %x\n",
    "huge-dims": "snnir 1\n@w : tensor<f32, " + "9" * 5000 + ">\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "float-shape": "snnir 1\n%x = ann.input() {shape = [4.5]} : [4]\nreturn %x\n",
    "inf-shape": "snnir 1\n%x = ann.input() {shape = [inf]} : [4]\nreturn %x\n",
    "negative-shape": "snnir 1\n%x = ann.input() {shape = [-4]} : [4]\nreturn %x\n",
    "zero-shape": "snnir 1\n%x = ann.input() {shape = [0]} : [0]\n%r = ann.relu(%x) : [0]\nreturn %r\n",
    "string-shape": 'snnir 1\n%x = ann.input() {shape = "abc"} : [4]\nreturn %x\n',
    "nested-shape": "snnir 1\n%x = ann.input() {shape = [[4]]} : [4]\nreturn %x\n",
    "bool-shape": "snnir 1\n%x = ann.input() {shape = [true]} : [4]\nreturn %x\n",
    "shape-mismatch": "snnir 1\n%x = ann.input() {shape = [4]} : [5]\nreturn %x\n",
    "duplicate-id": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%x = ann.relu(%x) : [4]\nreturn %x\n",
    "undefined-operand": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%r = ann.relu(%nope) : [4]\nreturn %r\n",
    "cycle": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%a = ann.add(%x, %b) : [4]\n"
    "%b = ann.relu(%a) : [4]\nreturn %b\n",
    "self-loop": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%a = ann.add(%x, %a) : [4]\nreturn %a\n",
    "return-undefined": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\nreturn %y\n",
    "no-return": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n",
    "unknown-op": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%r = ann.frobnicate(%x) : [4]\nreturn %r\n",
    "unknown-attr": "snnir 1\n%x = ann.input() {shape = [4], evil = 1} : [4]\nreturn %x\n",
    "missing-attr": "snnir 1\n%x = ann.input() : [4]\nreturn %x\n",
    "too-many-operands": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%r = ann.relu(%x, %x, %x) : [4]\nreturn %r\n",
    "no-operands": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%r = ann.relu() : [4]\nreturn %r\n",
    "undefined-tensor": "snnir 1\n%x = ann.input() {shape = [16]} : [16]\n"
    '%fc = ann.dense(%x) {weight = @nope, activation = "none"} : [4]\nreturn %fc\n',
    "tensor-value-count": "snnir 1\n@w : tensor<f32, 4x16> = [1.0, 2.0]\n%x = ann.input() {shape = [16]} : [16]\n"
    '%fc = ann.dense(%x) {weight = @w, activation = "none"} : [4]\nreturn %fc\n',
    "tensor-wrong-shape": _snnir_text(3, 16).replace("[4]", "[3]").replace("x16>", "x15>"),
    "tensor-nested-values": "snnir 1\n@w : tensor<f32, 2> = [[1.0], [2.0]]\n%x = ann.input() {shape = [2]} : [2]\n"
    "%s = ann.mul(%x, @w) : [2]\nreturn %s\n",
    "tensor-string-values": 'snnir 1\n@w : tensor<f32, 2> = ["a", "b"]\n%x = ann.input() {shape = [2]} : [2]\n'
    "return %x\n",
    "tensor-bool-dtype-dense": _snnir_text().replace("tensor<f32", "tensor<bool"),
    "tensor-i8-overflow": _snnir_text().replace("tensor<f32", "tensor<i8").replace("0.5", "300"),
    "tensor-zero-dims": "snnir 1\n@w : tensor<f32, 0x0>\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "activation-unknown": _snnir_text().replace('"none"', '"evil"'),
    "activation-number": _snnir_text().replace('"none"', "3"),
    "dense-weight-not-tensor": _snnir_text().replace("weight = @w", "weight = 3"),
    "dense-shape-inconsistent": _snnir_text().replace(": [4]\nreturn", ": [7]\nreturn"),
    "attr-unterminated-string": 'snnir 1\ngraph {a = "abc}\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n',
    "attr-bad-escape": 'snnir 1\ngraph {a = "\\ud800"}\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n',
    "lone-surrogate-id": 'snnir 1\ngraph {a = "\\udfff\\ud800"}\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n',
    "graph-attr-list-dt": "snnir 1\ngraph {dt = [1, 2]}\n%x = ann.input() {shape = [4]} : [4]\nreturn %x\n",
    "garbage": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "snn-op-in-ann": "snnir 1\n%x = ann.input() {shape = [4]} : [4]\n%p = snn.population(%x) : [4]\nreturn %p\n",
    "deep-list-5000": "snnir 1\ngraph {a = " + "[" * 5000 + "]" * 5000 + "}\n%x = ann.input() {shape = [4]} : [4]\n"
    "return %x\n",
    "long-tensor-name": "snnir 1\n@" + "t" * 60_000 + " : tensor<f32, 64x64>\n%x = ann.input() {shape = [64]} : [64]\n"
    "%fc = ann.dense(%x) {weight = @" + "t" * 60_000 + ', activation = "none"} : [64]\n'
    "return %fc\n",
}


def _snnir_bad(ctx: Ctx, key: str, command: str) -> Case:
    data = SNNIR_BAD[key]
    ctx.write("model.snnir", data)
    if key == "long-tensor-name":  # the tensor exists in a sidecar whose member name is 60,000 characters
        npz_members(ctx.work / "model.npz", {"t" * 60_000 + ".npy": npy_bytes(np.zeros((64, 64), np.float32))})
    argv = ["model.snnir", "-o", "out"] if command == "compile" else ["ir", "model.snnir"]
    expect = "any" if key in ("unknown-attr", "long-tensor-name", "tensor-zero-dims") else "refuse"
    return ctx.case([argv], expect=expect)


for _key in SNNIR_BAD:
    case(f"snnir-{_key}", "traceback")(lambda ctx, k=_key: _snnir_bad(ctx, k, "compile"))
for _key in ("empty", "non-utf8", "huge-int-attr", "cycle", "garbage", "deep-list-5000"):
    case(f"snnir-ir-{_key}", "traceback")(lambda ctx, k=_key: _snnir_bad(ctx, k, "ir"))


def _sidecar_bad(ctx: Ctx, kind: str) -> Case:
    ctx.copy(ctx.base.snn() / "model.snnir")
    weight = "fc1_from_x.weight.npy"
    with zipfile.ZipFile(ctx.base.snn() / "model.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    if kind == "not-a-zip":
        ctx.write("model.npz", b"PK\x03\x04 this is not a zip")
    elif kind == "directory":
        (ctx.work / "model.npz").mkdir()
    elif kind == "empty":
        ctx.write("model.npz", b"")
    else:
        members[weight] = {
            "object-array": npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True),
            "wrong-shape": npy_bytes(np.zeros((3, 3), np.float32)),
            "complex": npy_bytes(np.zeros((12, 16), np.complex64)),
            "strings": npy_bytes(np.full((12, 16), "x")),
            "truncated": npy_bytes(np.zeros((12, 16), np.float32))[:-100],
            "bad-header": b"\x93NUMPY\x01\x00\x10\x00{'descr': evil}   \n",
            "nan-weights": npy_bytes(np.full((12, 16), np.nan, np.float32)),
            "missing": b"",
            "structured": npy_bytes(np.zeros((12, 16), dtype=[("a", "<f4")])),
            "fortran-f64": npy_bytes(np.asfortranarray(np.zeros((12, 16)))),
        }[kind]
        if kind == "missing":
            del members[weight]
        npz_members(ctx.work / "model.npz", members)
    expect = "any" if kind == "fortran-f64" else "refuse"
    return ctx.case([["model.snnir", "-t", "nir", "-o", "out"]], expect=expect)


for _kind in (
    "not-a-zip",
    "directory",
    "empty",
    "object-array",
    "wrong-shape",
    "complex",
    "strings",
    "truncated",
    "bad-header",
    "nan-weights",
    "missing",
    "structured",
    "fortran-f64",
):
    case(f"snnir-sidecar-{_kind}", "traceback")(lambda ctx, k=_kind: _sidecar_bad(ctx, k))


# =========================================================================== tracebacks: other frontends


def _model_bytes(ctx: Ctx, name: str, data: bytes | str, argv_extra: Optional[list[str]] = None) -> Case:
    ctx.write(name, data)
    return ctx.case([[name, "-o", "out", *(argv_extra or []), *ctx.data()]])


for _suffix, _extra in (
    (".onnx", []),
    (".keras", []),
    (".h5", []),
    (".nir", []),
    (".pt2", ["--input-shape", "16"]),
    (".pt", ["--input-shape", "16"]),
    (".snnir", []),
):
    for _kind, _data in (("empty", b""), ("garbage", b"\x00\xff" * 300), ("text", "hello\n")):
        case(f"model{_suffix.replace('.', '-')}-{_kind}", "traceback")(
            lambda ctx, s=_suffix, d=_data, e=_extra: _model_bytes(ctx, "model" + s, d, e)
        )

case("model-unknown-suffix", "traceback")(lambda ctx: _model_bytes(ctx, "model.txt", "x"))
case("model-no-suffix", "traceback")(lambda ctx: _model_bytes(ctx, "model", "x"))


@case("model-is-directory", "traceback")
def _(ctx: Ctx) -> Case:
    (ctx.work / "m.onnx").mkdir()
    return ctx.case([["m.onnx", "-o", "out"]])


@case("model-unreadable", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.write("m.onnx", "x")
    (ctx.work / "m.onnx").chmod(0)
    return ctx.case(
        [["m.onnx", "-o", "out"]],
        expect="refuse",
        note="as root the file stays readable; then it is simply not an ONNX file",
    )


@case("model-pt2-truncated", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.write("m.pt2", (ctx.base.pt2() / "model.pt2").read_bytes()[:3000])
    return ctx.case([["m.pt2", "--input-shape", "16", "-o", "out", *ctx.data()]])


@case("model-pt2-no-model-json", "traceback")
def _(ctx: Ctx) -> Case:
    def edit(m: dict[str, bytes]) -> None:
        for n in [n for n in m if "models/" in n]:
            del m[n]

    return ctx.case(_pt2_argv(_edit_pt2(ctx, edit)), isolate=True)


@case("model-pt2-bad-input-shape", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.pt2() / "model.pt2")
    return ctx.case([["model.pt2", "--input-shape", "3,x", "-o", "out", *ctx.data()]])


@case("model-pt2-wrong-input-shape", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.pt2() / "model.pt2")
    return ctx.case([["model.pt2", "--input-shape", "5,7", "-o", "out", *ctx.data()]])


@case("model-pt2-negative-input-shape", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.pt2() / "model.pt2")
    return ctx.case([["model.pt2", "--input-shape", "-16", "-o", "out", *ctx.data()]])


@case("model-pt-state-dict-no-module", "traceback")
def _(ctx: Ctx) -> Case:
    import torch

    torch.save({"w": torch.zeros(2)}, ctx.work / "m.pt")
    return ctx.case([["m.pt", "--input-shape", "16", "-o", "out", *ctx.data()]])


@case("model-pt-list-not-dict", "traceback")
def _(ctx: Ctx) -> Case:
    import torch

    torch.save([1, 2, 3], ctx.work / "m.pt")
    return ctx.case([["m.pt", "--input-shape", "16", "--module", "torch.nn:Identity", "-o", "out", *ctx.data()]])


def _onnx_mutation(ctx: Ctx, kind: str) -> Case:
    import onnx
    from onnx import TensorProto, helper

    ctx.mlp()
    m = onnx.load(str(ctx.work / "mlp.onnx"))
    g = m.graph
    if kind == "opset-999":
        m.opset_import[0].version = 999
    elif kind == "unknown-op":
        g.node[1].op_type = "Frobnicate"
    elif kind == "missing-initializer":
        del g.initializer[0]
    elif kind == "raw-data-size":
        g.initializer[0].raw_data = b"\x00" * 10
    elif kind == "cycle":
        g.node[0].input[0] = "a1"
    elif kind == "output-not-produced":
        g.output[0].name = "nowhere"
    elif kind == "gemm-no-inputs":
        del g.node[0].input[:]
    elif kind == "duplicate-node-output":
        g.node[2].output[0] = "h1"
    elif kind == "input-rank-0":
        g.input[0].type.tensor_type.shape.ClearField("dim")
    elif kind == "input-negative-dim":
        g.input[0].type.tensor_type.shape.dim[1].dim_value = -16
    elif kind == "string-initializer":
        g.initializer[0].CopyFrom(helper.make_tensor("w1", TensorProto.STRING, [1], [b"x"]))
    elif kind == "attr-huge-int":
        g.node[0].attribute.append(helper.make_attribute("alpha", 10**18))
    elif kind == "attr-nan-alpha":
        g.node[0].attribute.append(helper.make_attribute("alpha", float("nan")))
    elif kind == "nan-weights":
        g.initializer[0].raw_data = np.full((12, 16), np.nan, np.float32).tobytes()
    elif kind == "inf-bias":
        g.initializer[1].raw_data = np.full(12, np.inf, np.float32).tobytes()
    elif kind == "subgraph-if":
        then = helper.make_graph([], "then", [], [])
        g.node.append(helper.make_node("If", ["a1"], ["z"], then_branch=then, else_branch=then))
    elif kind == "no-nodes":
        del g.node[:]
    elif kind == "long-names":
        for n in g.node:
            n.name = "n" * 100_000 + n.name
    else:
        raise ValueError(kind)
    onnx.save(m, str(ctx.work / "m.onnx"))
    return ctx.case([["m.onnx", "-o", "out", "--data", "data.npz"]], expect="any" if kind == "long-names" else "refuse")


for _kind in (
    "opset-999",
    "unknown-op",
    "missing-initializer",
    "raw-data-size",
    "cycle",
    "output-not-produced",
    "gemm-no-inputs",
    "duplicate-node-output",
    "input-rank-0",
    "input-negative-dim",
    "string-initializer",
    "attr-huge-int",
    "attr-nan-alpha",
    "nan-weights",
    "inf-bias",
    "subgraph-if",
    "no-nodes",
    "long-names",
):
    case(f"onnx-{_kind}", "traceback")(lambda ctx, k=_kind: _onnx_mutation(ctx, k))


def _keras_mutation(ctx: Ctx, kind: str) -> Case:
    cfg: Any = _keras_config()
    mode, suffix = "plain", ".keras"
    if kind == "config-list":
        cfg = [1, 2]
    elif kind == "no-layers":
        cfg["config"]["layers"] = []
    elif kind == "layers-not-list":
        cfg["config"]["layers"] = "abc"
    elif kind == "unknown-class":
        cfg["class_name"] = "EvilModel"
    elif kind == "unknown-layer":
        cfg["config"]["layers"][1]["class_name"] = "Lambda"
        cfg["config"]["layers"][1]["config"]["function"] = "eval"
    elif kind == "units-string":
        cfg["config"]["layers"][1]["config"]["units"] = "4"
    elif kind == "units-negative":
        cfg["config"]["layers"][1]["config"]["units"] = -4
    elif kind == "units-mismatch":
        cfg["config"]["layers"][1]["config"]["units"] = 5
    elif kind == "activation-unknown":
        cfg["config"]["layers"][1]["config"]["activation"] = "os.system"
    elif kind == "name-missing":
        del cfg["config"]["layers"][1]["config"]["name"]
    elif kind == "batch-shape-null":
        cfg["config"]["layers"][0]["config"]["batch_shape"] = None
    elif kind == "batch-shape-huge":
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**30]
    elif kind == "h5-no-model-config":
        suffix = ".h5"
    elif kind == "functional-bad-inbound":
        cfg["class_name"] = "Functional"
        cfg["config"]["layers"][1]["inbound_nodes"] = [[["nowhere", 0, 0, {}]]]
        cfg["config"]["output_layers"] = [["dense", 0, 0]]
        cfg["config"]["input_layers"] = [["input", 0, 0]]
    elif kind == "functional-cycle":
        cfg["class_name"] = "Functional"
        cfg["config"]["layers"][0]["inbound_nodes"] = [[["dense", 0, 0, {}]]]
        cfg["config"]["layers"][1]["inbound_nodes"] = [[["input", 0, 0, {}]]]
        cfg["config"]["output_layers"] = [["dense", 0, 0]]
    elif kind == "deep-json":
        cfg["config"]["pad"] = json.loads("[" * 50 + "]" * 50)
        cfg = json.dumps(cfg)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    else:
        raise ValueError(kind)
    if kind == "h5-no-model-config":
        import h5py

        with h5py.File(ctx.work / "model.h5", "w") as h5:
            h5["x"] = np.zeros(3)
        model = "model.h5"
    elif isinstance(cfg, str):
        with zipfile.ZipFile(ctx.work / "model.keras", "w") as z:
            z.writestr("config.json", cfg)
            z.writestr("model.weights.h5", b"")
        model = "model.keras"
    else:
        model = _keras_file(ctx, suffix, mode, cfg)
    # an InputLayer's inbound nodes mean nothing to Keras either: that "cycle" is a valid model
    return ctx.case([[model, "-o", "out", *ctx.data()]], expect="any" if kind == "functional-cycle" else "refuse")


for _kind in (
    "config-list",
    "no-layers",
    "layers-not-list",
    "unknown-class",
    "unknown-layer",
    "units-string",
    "units-negative",
    "units-mismatch",
    "activation-unknown",
    "name-missing",
    "batch-shape-null",
    "batch-shape-huge",
    "h5-no-model-config",
    "functional-bad-inbound",
    "functional-cycle",
    "deep-json",
):
    case(f"keras-{_kind}", "traceback")(lambda ctx, k=_kind: _keras_mutation(ctx, k))


@case("keras-no-weights-member", "traceback")
def _(ctx: Ctx) -> Case:
    with zipfile.ZipFile(ctx.work / "model.keras", "w") as z:
        z.writestr("config.json", json.dumps(_keras_config()))
    return ctx.case([["model.keras", "-o", "out", *ctx.data()]])


@case("keras-config-non-utf8", "traceback")
def _(ctx: Ctx) -> Case:
    with zipfile.ZipFile(ctx.work / "model.keras", "w") as z:
        z.writestr("config.json", b'{"class_name": "\xff\xfe"}')
        z.writestr("model.weights.h5", b"")
    return ctx.case([["model.keras", "-o", "out", *ctx.data()]])


def _nir_mutation(ctx: Ctx, kind: str) -> Case:
    def edit(h5: Any, ctx: Ctx) -> None:
        if kind == "edge-to-nowhere":
            edges = h5["node/edges"][()]
            del h5["node/edges"]
            h5["node/edges"] = np.array([*edges.tolist(), [b"x", b"nowhere"]], dtype=object).astype("S")
        elif kind == "weight-wrong-shape":
            del h5["node/nodes/fc1_from_x/weight"]
            h5["node/nodes/fc1_from_x/weight"] = np.zeros((3, 3), np.float32)
        elif kind == "weight-strings":
            del h5["node/nodes/fc1_from_x/weight"]
            h5["node/nodes/fc1_from_x/weight"] = np.array([b"a", b"b"])
        elif kind == "type-unknown":
            del h5["node/nodes/fc1/type"]
            h5["node/nodes/fc1/type"] = b"Evil"
        elif kind == "threshold-nan":
            del h5["node/nodes/fc1/v_threshold"]
            h5["node/nodes/fc1/v_threshold"] = np.full(12, np.nan, np.float32)
        elif kind == "threshold-negative":
            del h5["node/nodes/fc1/v_threshold"]
            h5["node/nodes/fc1/v_threshold"] = np.full(12, -1.0, np.float32)
        elif kind == "no-nodes":
            del h5["node/nodes"]
        elif kind == "cycle":
            edges = h5["node/edges"][()]
            del h5["node/edges"]
            h5["node/edges"] = np.array([*edges.tolist(), [b"fc2", b"fc1_from_x"]], dtype=object).astype("S")
        elif kind.startswith("meta-"):
            key, value = {
                "meta-presentation-nan": ("presentation_time", np.nan),
                "meta-presentation-negative": ("presentation_time", -5.0),
                "meta-presentation-string": ("presentation_time", b"abc"),
                "meta-dt-zero": ("dt", 0.0),
                "meta-dt-nan": ("dt", np.nan),
                "meta-dt-inf": ("dt", np.inf),
                "meta-delay-negative": ("delay", -1.0),
                "meta-reset-code": ("reset", f'"""\n{ctx.payload}\n"""'.encode()),
                "meta-instances-huge": ("instances", 10**15),
            }[kind]
            del h5[f"node/metadata/snnc.{key}"]
            h5[f"node/metadata/snnc.{key}"] = value
        else:
            raise ValueError(kind)

    category = "silent" if kind.startswith(("meta-", "threshold-")) else "traceback"
    ctx.copy(ctx.base.mlp() / "data.npz")
    target = "nest" if kind == "meta-reset-code" else "sim"
    argv = [[_nir_edit(ctx, edit), "-t", target, "-o", "out"]]  # a NIR graph is normalized: no calibration
    if kind in ("meta-reset-code",):
        argv.append(["run", "out", "--samples", "2", "--data", "data.npz"])
    return Case(
        ctx.name,
        category,
        ctx.root,
        argv,
        protected=ctx.protected,
        isolate=kind == "meta-reset-code",
        expect="any" if kind == "meta-instances-huge" else "refuse",
    )


for _kind in (
    "edge-to-nowhere",
    "weight-wrong-shape",
    "weight-strings",
    "type-unknown",
    "no-nodes",
    "cycle",
    "threshold-nan",
    "threshold-negative",
    "meta-presentation-nan",
    "meta-presentation-negative",
    "meta-presentation-string",
    "meta-dt-zero",
    "meta-dt-nan",
    "meta-dt-inf",
    "meta-delay-negative",
    "meta-reset-code",
    "meta-instances-huge",
):
    _cat = "silent" if _kind.startswith(("meta-", "threshold-")) else "traceback"
    case(f"nir-{_kind}", _cat)(lambda ctx, k=_kind: _nir_mutation(ctx, k))


# =========================================================================== tracebacks: tampered output directories


def _tampered(
    ctx: Ctx, command: str, tamper: Callable[[Path], None], target: str = "sim", expect: str = "refuse"
) -> Case:
    model, data = ctx.mlp()
    argv = ["run", "out", "--samples", "2"] if command == "run" else ["report", "out"]
    return ctx.case([argv], prep=[[model, "-t", target, "-o", "out", "--data", data]], tamper=tamper, expect=expect)


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def tamper(work: Path) -> None:
        path = work / "out" / rel
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return tamper


def _delete(rel: str) -> Callable[[Path], None]:
    def tamper(work: Path) -> None:
        (work / "out" / rel).unlink()

    return tamper


def _manifest(**changes: Any) -> Callable[[Path], None]:
    def tamper(work: Path) -> None:
        path = work / "out" / "snnc.json"
        m = json.loads(path.read_text())
        for k, v in changes.items():
            if v is _DROP:
                m.pop(k, None)
            else:
                m[k] = v
        path.write_text(json.dumps(m))

    return tamper


_DROP = object()
TAMPER_RUN: dict[str, Callable[[Path], None]] = {
    "manifest-garbage": _write("snnc.json", b"\xff\x00{"),
    "manifest-empty": _write("snnc.json", ""),
    "manifest-list": _write("snnc.json", "[1, 2]"),
    "manifest-deep": _write("snnc.json", "[" * 100_000 + "]" * 100_000),
    "manifest-no-target": _manifest(target=_DROP),
    "manifest-target-unknown": _manifest(target="../../evil"),
    "manifest-target-number": _manifest(target=3),
    "manifest-data-missing-file": _manifest(data="/nonexistent/data.npz"),
    "manifest-data-number": _manifest(data=42),
    "manifest-pipeline-code": _manifest(pipeline=["__import__('os')"]),
    "manifest-spec-garbage": _manifest(spec="x"),
    "manifest-inputs-garbage": _manifest(inputs={"x": [-1]}),
    "model-snnir-deleted": _delete("model.snnir"),
    "model-snnir-garbage": _write("model.snnir", b"\xff\xfe garbage"),
    "model-npz-deleted": _delete("model.npz"),
    "model-npz-garbage": _write("model.npz", b"PK\x03\x04junk"),
    "ann-snnir-deleted": _delete("ann.snnir"),
    "ann-snnir-empty": _write("ann.snnir", ""),
    "ann-npz-object": _write("ann.npz", npy_bytes(np.array([1], dtype=object), allow_pickle=True)),
    "model-snnir-is-dir": lambda work: (
        (work / "out" / "model.snnir").unlink(),
        (work / "out" / "model.snnir").mkdir(),
    ),
    "results-json-is-dir": lambda work: (work / "out" / "results.json").mkdir(),
}


UNUSED_BY_RUN = ("manifest-pipeline-code", "manifest-spec-garbage", "manifest-inputs-garbage")
for _key, _fn in TAMPER_RUN.items():
    case(f"run-tampered-{_key}", "traceback")(
        lambda ctx, f=_fn, k=_key: _tampered(ctx, "run", f, expect="any" if k in UNUSED_BY_RUN else "refuse")
    )

TAMPER_REPORT: dict[str, Callable[[Path], None]] = {
    "report-garbage": _write("report.json", b"\xff{"),
    "report-list": _write("report.json", "[]"),
    "report-empty-object": _write("report.json", "{}"),
    "report-wrong-types": _write("report.json", json.dumps({"cores": "x", "chips": [None], "populations": 3})),
    "report-deep": _write("report.json", "[" * 100_000 + "]" * 100_000),
    "report-is-dir": lambda work: (work / "out" / "report.json").mkdir(),
}
for _key, _fn in TAMPER_REPORT.items():
    case(f"report-tampered-{_key}", "traceback")(lambda ctx, f=_fn: _tampered(ctx, "report", f))


@case("report-not-an-output-dir", "traceback")
def _(ctx: Ctx) -> Case:
    return ctx.case([["report", "."]])


@case("run-not-an-output-dir", "traceback")
def _(ctx: Ctx) -> Case:
    return ctx.case([["run", ".", "--samples", "2"]])


@case("run-out-is-file", "traceback")
def _(ctx: Ctx) -> Case:
    ctx.write("out", "x")
    return ctx.case([["run", "out"]])


# =========================================================================== values accepted silently


def _compile_with(
    ctx: Ctx,
    extra: list[str],
    data: Optional[dict[str, Any]] = None,
    flag: str = "--data",
    target: str = "sim",
    expect: str = "refuse",
) -> Case:
    model, good = ctx.mlp()
    argv = [model, "-t", target, "-o", "out", *extra]
    if data is not None:
        np.savez(ctx.work / "bad.npz", **data)
        argv += [flag, "bad.npz"]
    else:
        argv += ["--data", good]
    return ctx.case([argv], expect=expect)


def _x(n: int = 16, features: int = 16) -> np.ndarray:
    return np.random.default_rng(0).random((n, features), dtype=np.float32)


def _y(n: int = 16) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % 4


SET_BAD = [
    "presentation-time=-5",
    "presentation-time=0",
    "presentation-time=nan",
    "presentation-time=inf",
    "presentation-time=abc",
    "presentation-time=1e400",
    "presentation-time=",
    "dt=0",
    "dt=-1",
    "dt=nan",
    "dt=inf",
    "dt=1e-9",
    "dt=1e9",
    "instances=-1",
    "instances=0",
    "instances=1.5",
    "instances=1e12",
    "no-such-setting=3",
    "normalize.percentile=200",
    "percentile=-1",
    "percentile=nan",
    "seed=abc",
    "max-rate=-1",
    "max-rate=nan",
    "=5",
    "dt",
]

for _s in SET_BAD:
    _slug = _s.replace("=", "-").replace(".", "_") or "empty"
    case(f"set-{_slug}", "silent")(lambda ctx, s=_s: _compile_with(ctx, ["--set", s]))

for _s in ("dt=0", "presentation-time=-5", "dt=1e-9"):
    case(f"set-nest-{_s.replace('=', '-')}", "silent")(
        lambda ctx, s=_s: _compile_with(ctx, ["--set", s], target="nest")
    )

DATA_BAD: dict[str, tuple[dict[str, Any], str]] = {
    "calibration-nan": ({"x": np.where(_x() > 0.5, np.nan, _x()).astype(np.float32)}, "--calibration"),
    "calibration-all-nan": ({"x": np.full((16, 16), np.nan, np.float32)}, "--calibration"),
    "calibration-inf": ({"x": np.where(_x() > 0.5, np.inf, _x()).astype(np.float32)}, "--calibration"),
    "calibration-empty": ({"x": np.zeros((0, 16), np.float32)}, "--calibration"),
    "calibration-wrong-features": ({"x": _x(16, 17)}, "--calibration"),
    "calibration-strings": ({"x": np.full((16, 16), "a")}, "--calibration"),
    "calibration-complex": ({"x": _x().astype(np.complex64) * 1j}, "--calibration"),
    "calibration-scalar": ({"x": np.float32(3.0)}, "--calibration"),
    "calibration-no-x": ({"a": _x()}, "--calibration"),
    "data-labels-999": ({"x": _x(), "y": np.full(16, 999, np.int64)}, "--data"),
    "data-labels-negative": ({"x": _x(), "y": np.full(16, -1, np.int64)}, "--data"),
    "data-labels-float": ({"x": _x(), "y": np.linspace(0, 3, 16)}, "--data"),
    "data-labels-nan": ({"x": _x(), "y": np.full(16, np.nan)}, "--data"),
    "data-labels-2d": ({"x": _x(), "y": np.zeros((16, 4), np.int64)}, "--data"),
    "data-labels-short": ({"x": _x(), "y": _y(3)}, "--data"),
    "data-labels-strings": ({"x": _x(), "y": np.array(["a"] * 16)}, "--data"),
    "data-labels-huge": ({"x": _x(), "y": np.full(16, 2**62, np.int64)}, "--data"),
    "data-without-y": ({"x": _x()}, "--data"),
    "data-x-nan": ({"x": np.full((16, 16), np.nan, np.float32), "y": _y()}, "--data"),
    "data-x-inf": ({"x": np.full((16, 16), -np.inf, np.float32), "y": _y()}, "--data"),
    "data-x-wrong-features": ({"x": _x(16, 5), "y": _y()}, "--data"),
    "data-x-empty": ({"x": np.zeros((0, 16), np.float32), "y": np.zeros(0, np.int64)}, "--data"),
    "data-x-bool": ({"x": _x() > 0.5, "y": _y()}, "--data"),
    "data-x-f64-huge": ({"x": np.full((16, 16), 1e300), "y": _y()}, "--data"),
}

for _key, (_arrays, _flag) in DATA_BAD.items():
    _expect = "any" if _key in ("data-x-bool",) else "refuse"
    case(f"{_key}", "silent")(lambda ctx, a=_arrays, f=_flag, e=_expect: _compile_with(ctx, [], a, f, expect=e))


@case("data-not-npz", "traceback")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    ctx.write("bad.npz", b"PK\x05\x06" + bytes(18))
    return ctx.case([[model, "-o", "out", "--data", "bad.npz"]])


@case("data-npz-is-directory", "traceback")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    (ctx.work / "bad.npz").mkdir()
    return ctx.case([[model, "-o", "out", "--data", "bad.npz"]])


@case("data-npz-object-array", "traceback")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    npz_members(ctx.work / "bad.npz", {"x.npy": npy_bytes(np.array([[1.0]], dtype=object), allow_pickle=True)})
    return ctx.case([[model, "-o", "out", "--data", "bad.npz"]])


@case("data-named-unknown", "traceback")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    return ctx.case([[model, "-o", "out", "--data", "mnist:evil"]])


@case("data-named-path-like", "traceback")
def _(ctx: Ctx) -> Case:
    model, _ = ctx.mlp()
    return ctx.case([[model, "-o", "out", "--data", "digits:../../etc/passwd"]])


RUN_BAD = [
    ["--samples", "-1"],
    ["--samples", "0"],
    ["--samples", "1000000000000000000000"],
    ["--samples", "x"],
    ["--presentation-time", "-5"],
    ["--presentation-time", "nan"],
    ["--presentation-time", "0"],
    ["--presentation-time", "inf"],
    ["--seed", "-1"],
    ["--seed", "99999999999999999999999"],
]


def _run_with(ctx: Ctx, extra: list[str], data: Optional[dict[str, Any]] = None, expect: str = "refuse") -> Case:
    model, good = ctx.mlp()
    argv = ["run", "out", *extra]
    if data is not None:
        np.savez(ctx.work / "bad.npz", **data)
        argv += ["--data", "bad.npz"]
    if "--samples" not in extra:
        argv += ["--samples", "4"]
    return ctx.case([argv], prep=[[model, "-o", "out", "--data", good]], expect=expect)


for _extra in RUN_BAD:
    _expect = "any" if _extra == ["--seed", "-1"] else "refuse"
    case(f"run{'-'.join(['', *_extra]).replace('--', '-')}", "silent")(
        lambda ctx, e=_extra, x=_expect: _run_with(ctx, e, expect=x)
    )

for _key in (
    "data-labels-999",
    "data-labels-negative",
    "data-without-y",
    "data-x-nan",
    "data-x-wrong-features",
    "data-labels-float",
):
    case(f"run-{_key}", "silent")(lambda ctx, k=_key: _run_with(ctx, [], DATA_BAD[k][0]))


@case("sweep-param-bad-values", "silent")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    return ctx.case(
        [["sweep", model, "--data", data, "--param", "dt=0,nan", "-o", "sw"]],
        expect="any",
        note="a sweep reports each failing point as a row; it must not crash",
    )


@case("sweep-jobs-negative", "silent")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    return ctx.case([["sweep", model, "--data", data, "--param", "presentation-time=20", "--jobs", "-3", "-o", "sw"]])


# =========================================================================== controls: the valid inputs


@case("valid-mlp-onnx", "control")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    return ctx.case([[model, "-o", "out", "--data", data], ["run", "out", "--samples", "4"]], expect="ok")


@case("valid-ann-snnir-nest-run", "control")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.snn() / "ann.snnir", "model.snnir")
    ctx.copy(ctx.base.snn() / "ann.npz", "model.npz")
    ctx.copy(ctx.base.mlp() / "data.npz")
    return ctx.case(
        [["model.snnir", "-t", "nest", "-o", "out", "--data", "data.npz"], ["run", "out", "--samples", "2"]],
        expect="ok",
        isolate=True,
    )


for _target in ("sim", "nir", "nest"):
    case(f"valid-snn-snnir-{_target}", "control")(
        lambda ctx, t=_target: (
            ctx.copy(ctx.base.snn() / "model.snnir"),
            ctx.copy(ctx.base.snn() / "model.npz"),
            ctx.case([["model.snnir", "-t", t, "-o", "out"]], expect="ok"),
        )[-1]
    )


@case("valid-snn-snnir-sim-run", "control")
def _(ctx: Ctx) -> Case:
    """snnc run on the output of an snn-dialect input (as for NIR files)."""
    ctx.copy(ctx.base.snn() / "model.snnir")
    ctx.copy(ctx.base.snn() / "model.npz")
    ctx.copy(ctx.base.mlp() / "data.npz")
    return ctx.case([["model.snnir", "-o", "out"], ["run", "out", "--samples", "2", "--data", "data.npz"]], expect="ok")


@case("valid-nir-sim-run", "control")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.nir() / "model.nir")
    ctx.copy(ctx.base.mlp() / "data.npz")
    return ctx.case([["model.nir", "-o", "out"], ["run", "out", "--samples", "2", "--data", "data.npz"]], expect="ok")


for _suffix in (".keras", ".h5"):
    case(f"valid-keras{_suffix.replace('.', '-')}", "control")(
        lambda ctx, s=_suffix: ctx.case([[_keras_file(ctx, s, "plain"), "-o", "out", *ctx.data()]], expect="ok")
    )


@case("valid-pt2", "control")
def _(ctx: Ctx) -> Case:
    ctx.copy(ctx.base.pt2() / "model.pt2")
    ctx.data()
    return ctx.case(_pt2_argv(), expect="ok", isolate=True)


@case("valid-pt2-dynamic-batch", "control")
def _(ctx: Ctx) -> Case:
    """A .pt2 exported with a dynamic batch dimension (the usual way) compiles."""
    ctx.copy(ctx.base.pt2_dynamic() / "model.pt2")
    ctx.data()
    return ctx.case(_pt2_argv(), expect="ok", isolate=True)


@case("valid-out-force-replaces-previous-output", "control")
def _(ctx: Ctx) -> Case:
    model, data = ctx.mlp()
    return ctx.case(
        [[model, "-o", "out", "--force", "--data", data]], prep=[[model, "-o", "out", "--data", data]], expect="ok"
    )


if __name__ == "__main__":  # pragma: no cover - `python tests/hostile_corpus.py DIR` builds the corpus
    built = build(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for c in built:
        print(f"{c.category:<12} {c.name}")
    print(f"{len(built)} cases")
