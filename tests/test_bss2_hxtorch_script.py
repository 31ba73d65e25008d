"""run_hxtorch.py, the brainscales2 target's script for hxtorch, checked WITHOUT hxtorch.

hxtorch is not installable here, so the run tests below execute the script against a STAND-IN, not
hxtorch: a small package written by this file into a temporary folder put first on PYTHONPATH. It
offers only the few hxtorch calls the script makes, with the signatures of hxtorch's sources
(electronicvisions/hxtorch @ 3bfc7aad), computes hxtorch's mock arithmetic in torch (re-implemented
from detail/mac.cpp, relu.cpp, add.cpp and conv.cpp, independent of snnc's emulator) and records
every call. A pass shows that the script (a) imports only hxtorch's public modules and uses only
names its sources define (a static check against the list below), (b) passes the layers' num_sends,
mock=True with --mock and a CalibrationPath with --calibration, and (c) in mock mode computes what
run.py computes. It does not show that the script runs on the real hxtorch or on a chip.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_cnn_onnx, make_data, make_mlp_onnx

import snnc
from snnc.targets.brainscales2.target import HXTORCH_SCRIPT as SCRIPT

# The files snnc writes beside run_hxtorch.py in the output folder.
BESIDE = {"run", "snnc_runtime"}
THIRD_PARTY = {"numpy", "torch"}

# hxtorch's public API, as its sources at electronicvisions/hxtorch @ 3bfc7aadf33d795b5a184dfad03eedcf26243420
# define it (module -> names; a name that is itself a module appears as a key too):
PUBLIC_API: dict[str, set[str]] = {
    # src/pyhxtorch/hxtorch/__init__.py l.3-8 (logger, perceptron, spiking, ann, snn) and, through
    # `from _hxtorch_core import *`, src/hxtorch/hxtorch_core.cpp l.16-62 (m.def / pybind11::class_ names).
    "hxtorch": {
        "logger",
        "perceptron",
        "spiking",
        "ann",
        "snn",
        "init_hardware",
        "init_hardware_minimal",
        "get_unique_identifier",
        "release_hardware",
        "HWDBPath",
        "CalibrationPath",
        "extract_n_spikes",
        "weight_to_connection",
        "dense_spikes_to_list",
    },
    # src/pyhxtorch/hxtorch/perceptron/__init__.py l.1-2 (`from _hxtorch_perceptron import *`, nn) and
    # src/hxtorch/hxtorch_perceptron.cpp l.28-164 (m.def, pybind11::class_ and def_submodule names).
    "hxtorch.perceptron": {
        "nn",
        "get_mock_parameter",
        "set_mock_parameter",
        "mac",
        "measure_mock_parameter",
        "relu",
        "converting_relu",
        "inference_trace",
        "argmax",
        "add",
        "matmul",
        "conv1d",
        "expanded_conv1d",
        "conv2d",
        "MockParameter",
        "InferenceTracer",
        "constants",
    },
    # src/pyhxtorch/hxtorch/perceptron/nn.py: scale_input l.18, scale_weight l.31, clamp_weight_ l.44,
    # Layer l.55, MACLayer l.78, Linear l.148, ConvNd l.213, Conv1d l.259, ExpandedConv1d l.313,
    # Conv2d l.385, ReLU l.439, ConvertingReLU l.459.
    "hxtorch.perceptron.nn": {
        "scale_input",
        "scale_weight",
        "clamp_weight_",
        "Layer",
        "MACLayer",
        "Linear",
        "ConvNd",
        "Conv1d",
        "ExpandedConv1d",
        "Conv2d",
        "ReLU",
        "ConvertingReLU",
    },
}
SUBMODULES = {"hxtorch.perceptron": "hxtorch.perceptron", "hxtorch.ann": "hxtorch.perceptron"}


# --- the stand-in -----------------------------------------------------------------------------------------------

STANDIN_HXTORCH = '''"""A STAND-IN for hxtorch written by snnc's tests (tests/test_bss2_hxtorch_script.py), NOT hxtorch.

It offers the few calls snnc's run_hxtorch.py makes, with the signatures of hxtorch's sources, computes
hxtorch's mock arithmetic in torch, and appends one JSON line per call to $HXTORCH_STANDIN_LOG.
"""
import json
import os

STATE = {"hardware": False}


def record(call, **values):
    path = os.environ.get("HXTORCH_STANDIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"call": call, **values}) + "\\n")


def need_hardware(what):
    if not STATE["hardware"]:
        raise RuntimeError(f"{what}: No connection allocated.")


class HWDBPath:  # hxtorch_core.cpp l.36-40
    def __init__(self, path=None, version="stable/latest"):
        self.path, self.version = path, version


class CalibrationPath:  # hxtorch_core.cpp l.41-45
    def __init__(self, value):
        if not isinstance(value, str):
            raise TypeError("CalibrationPath(value: str)")
        self.value = value


def _default_overload(hwdb_path=None, ann=False):
    if hwdb_path is not None and not isinstance(hwdb_path, HWDBPath):
        raise TypeError("init_hardware(): incompatible function arguments")
    return hwdb_path, bool(ann)


def init_hardware(*args, **kwargs):
    """The two overloads of hxtorch_core.cpp l.16-25; the stand-in only records (its chip is the mock)."""
    if (args and isinstance(args[0], CalibrationPath)) or "calibration_path" in kwargs:
        values = list(args) + list(kwargs.values())
        if len(values) != 1 or set(kwargs) - {"calibration_path"}:
            raise TypeError("init_hardware(calibration_path: CalibrationPath)")
        record("init_hardware", calibration_path=values[0].value)
    else:
        hwdb, ann = _default_overload(*args, **kwargs)
        record("init_hardware", hwdb_path=None if hwdb is None else hwdb.path, ann=ann)
    STATE["hardware"] = True


def release_hardware():
    record("release_hardware")
    STATE["hardware"] = False


from hxtorch import perceptron  # noqa: E402  (as hxtorch/__init__.py l.5)
'''

STANDIN_PERCEPTRON = '''"""STAND-IN for hxtorch.perceptron (NOT hxtorch): hxtorch's mock arithmetic in torch."""
import torch

from hxtorch import need_hardware, record


class MockParameter:  # hxtorch_perceptron.cpp l.133-151
    def __init__(self, noise_std=2.0, gain=0.002):
        self.noise_std, self.gain = float(noise_std), float(gain)

    def __repr__(self):
        return f"MockParameter(noise_std={self.noise_std:f}, gain={self.gain:f})"

    def __eq__(self, other):
        return (self.gain, self.noise_std) == (other.gain, other.noise_std)


_PARAMETER = [MockParameter()]


def get_mock_parameter():
    return MockParameter(_PARAMETER[0].noise_std, _PARAMETER[0].gain)


def set_mock_parameter(parameter):  # mock.cpp l.17-25
    if not isinstance(parameter, MockParameter):
        raise TypeError("set_mock_parameter(parameter: MockParameter)")
    if parameter.gain <= 0 or parameter.gain > 1:
        raise OverflowError(f"Gain is expected to be in the interval (0, 1] but was {parameter.gain}")
    record("set_mock_parameter", noise_std=parameter.noise_std, gain=parameter.gain)
    _PARAMETER[0] = MockParameter(parameter.noise_std, parameter.gain)


def measure_mock_parameter():  # needs a chip; the stand-in's chip is the mock with the current parameters
    need_hardware("measure_mock_parameter")
    record("measure_mock_parameter")
    return get_mock_parameter()


def _mac(x, weights, num_sends):  # detail/mac.cpp mac_mock_forward l.17-84
    w, x = weights.round(), x.round()
    if w.min() < -63 or w.max() > 63:
        raise OverflowError(f"weights between -63 and 63, got {float(w.min())} (min), {float(w.max())} (max)")
    if x.min() < 0 or x.max() > 31:
        raise OverflowError(f"inputs between 0 and 31, got {float(x.min())} (min), {float(x.max())} (max)")
    p = _PARAMETER[0]
    results = torch.zeros(*x.shape[:-1], w.shape[1])
    for xs, ws in zip(x.split(128, x.dim() - 1), w.split(128, 0)):
        local = xs.matmul(ws)
        local.mul_(float(num_sends) * p.gain)
        if p.noise_std > 0:
            local.add_(torch.normal(0.0, p.noise_std, results.shape))
        results.add_(local.floor_().clamp_(-128.0, 127.0))
    return results.clamp_(-128.0, 127.0)


def matmul(input, other, num_sends=1, wait_between_events=5, mock=False, madc_recording_neuron_id=0,
           madc_recording_path=""):  # matmul.cpp l.15-69
    record("matmul", num_sends=num_sends, wait_between_events=wait_between_events, mock=mock,
           input_shape=list(input.shape), other_shape=list(other.shape))
    if not mock:
        need_hardware("matmul")
    if other.dim() != 2 or input.dim() == 0:
        raise RuntimeError("the stand-in's matmul takes a 2-D weight and an input of at least 1-D")
    t1 = input.unsqueeze(0) if input.dim() == 1 else input
    if t1.shape[-1] != other.shape[0]:
        raise RuntimeError(f"matmul: input {list(input.shape)} does not fit the weight {list(other.shape)}")
    res = _mac(t1.reshape(-1, t1.shape[-1]), other, num_sends).view(*t1.shape[:-1], other.shape[1])
    return res.squeeze(-2) if input.dim() == 1 else res


def add(input, other, alpha=1, mock=False):  # detail/add.cpp l.11-15
    record("add", mock=mock)
    if not mock:
        need_hardware("add")
    return torch.add(input.floor().clamp(-128.0, 127.0), alpha * other.floor().clamp(-128.0, 127.0)).clamp(-128, 127)


def converting_relu(input, shift=2, mock=False):  # detail/relu.cpp l.80-83
    record("converting_relu", shift=shift, mock=mock)
    if not mock:
        need_hardware("converting_relu")
    return torch.div(input.floor().clamp(0.0, 127.0), 2.0**shift).floor().clamp(0.0, 31.0)


def conv2d(input, weight, bias=None, stride=1, num_sends=1, wait_between_events=5, mock=False):  # detail/conv.cpp
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    kh, kw = weight.shape[2:]
    if input.dim() != 4 or kh > input.shape[2] or kw > input.shape[3]:
        raise RuntimeError("conv expects a (N, C, H, W) input at least as large as the kernel")
    patches = input.unfold(2, kh, sh).unfold(3, kw, sw)  # N, C, OH, OW, kh, kw
    vectors = patches.permute(0, 2, 3, 1, 4, 5).flatten(3)  # N, OH, OW, C * kh * kw (conv.cpp l.131-134)
    result = matmul(vectors, weight.flatten(1).t(), num_sends, wait_between_events, mock)
    result = result.permute(0, 3, 1, 2).contiguous()
    return result if bias is None else result + bias.view(-1, 1, 1)  # in float (conv.cpp l.141-145)


from hxtorch.perceptron import nn  # noqa: E402  (as perceptron/__init__.py l.2)
'''

STANDIN_NN = '''"""STAND-IN for hxtorch.perceptron.nn (NOT hxtorch): layers with the signatures of hxtorch's nn.py."""
import math

import torch

from hxtorch import perceptron as _hx
from hxtorch import record


def clamp_weight_(weight):  # nn.py l.44-52
    with torch.no_grad():
        torch.clamp(weight, -63, 63, out=weight)
    return weight


class MACLayer:
    def _mac_init(self, num_sends, wait_between_events, mock, input_transform, weight_transform):
        self.num_sends, self.wait_between_events, self.mock = num_sends, wait_between_events, mock
        self.input_transform, self.weight_transform = input_transform, weight_transform

    def reset_parameters(self, weight_mean=0.0, relu_shift=1):  # nn.py l.109-145
        std = 2**relu_shift * math.sqrt(2) / _hx.get_mock_parameter().gain / math.sqrt(self.weight[0].numel())
        if self.num_sends is None:
            self.num_sends = int(math.ceil(std / (63 / 3)))
        torch.nn.init.trunc_normal_(self.weight, mean=weight_mean, std=std / self.num_sends, a=-63, b=63)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.zero_()

    def _record(self, kind, **shape):
        record(kind, **shape, num_sends=self.num_sends, wait_between_events=self.wait_between_events,
               mock=self.mock, input_transform=getattr(self.input_transform, "__name__", None),
               weight_transform=getattr(self.weight_transform, "__name__", None), bias=self.bias is not None,
               gain_at_init=_hx.get_mock_parameter().gain)


class Linear(MACLayer, torch.nn.Linear):  # nn.py l.148-210
    def __init__(self, in_features, out_features, bias=True, num_sends=None, wait_between_events=5, mock=False,
                 *, avg=1, input_transform=None, weight_transform=clamp_weight_):
        self._mac_init(num_sends, wait_between_events, mock, input_transform, weight_transform)
        torch.nn.Linear.__init__(self, in_features, out_features, bias)
        self.avg = avg
        self._record("Linear", in_features=in_features, out_features=out_features)

    def forward(self, input):
        weight, bias = self.weight, self.bias
        if self.weight_transform is not None:
            weight = self.weight_transform(weight)
        if self.input_transform is not None:
            input = self.input_transform(input)
        output = _hx.matmul(input, weight.t().repeat_interleave(self.avg, -1), num_sends=self.num_sends,
                            wait_between_events=self.wait_between_events, mock=self.mock)
        if self.avg > 1:
            output = torch.nn.functional.avg_pool1d(output.unsqueeze(-2), self.avg).squeeze(-2)
        if bias is not None:
            output = _hx.add(output, bias, mock=self.mock)
        return output


class Conv2d(MACLayer, torch.nn.Conv2d):  # nn.py l.385-436, forward ConvNd l.228-256
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", num_sends=None, wait_between_events=5, mock=False, *,
                 input_transform=None, weight_transform=clamp_weight_):
        self._mac_init(num_sends, wait_between_events, mock, input_transform, weight_transform)
        torch.nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                 bias, padding_mode)
        self._record("Conv2d", in_channels=in_channels, out_channels=out_channels, stride=list(self.stride),
                     padding=list(self.padding))

    def forward(self, input):
        if self.dilation not in ((1,), (1, 1)):
            raise ValueError("Dilations greater than 1 are currently not supported.")
        if self.groups > 1:
            raise ValueError("More than 1 group is currently not supported.")
        if any(self.padding):
            pads = tuple(p for p in self.padding[::-1] for _ in range(2))
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            input = torch.nn.functional.pad(input, pads, mode)
        weight = self.weight if self.weight_transform is None else self.weight_transform(self.weight)
        if self.input_transform is not None:
            input = self.input_transform(input)
        return _hx.conv2d(input, weight, self.bias, self.stride, num_sends=self.num_sends,
                          wait_between_events=self.wait_between_events, mock=self.mock)


class ConvertingReLU(torch.nn.ReLU):  # nn.py l.459-477
    def __init__(self, shift=2, mock=False):
        torch.nn.ReLU.__init__(self)
        self.shift, self.mock = shift, mock

    def forward(self, input):
        return _hx.converting_relu(input, shift=self.shift, mock=self.mock)
'''


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    """The stand-in package (NOT hxtorch) in a fresh folder, to be put first on PYTHONPATH."""
    root = tmp_path_factory.mktemp("hxtorch_standin")
    (root / "hxtorch" / "perceptron").mkdir(parents=True)
    (root / "hxtorch" / "__init__.py").write_text(STANDIN_HXTORCH)
    (root / "hxtorch" / "perceptron" / "__init__.py").write_text(STANDIN_PERCEPTRON)
    (root / "hxtorch" / "perceptron" / "nn.py").write_text(STANDIN_NN)
    return root


# --- static checks ----------------------------------------------------------------------------------------------


def _tree() -> ast.Module:
    return ast.parse(SCRIPT.read_text(), filename=str(SCRIPT))


def _imported_modules(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            names.append(node.module or "")
    return names


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the hxtorch module it is bound to."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hxtorch":
                    bound[alias.asname or "hxtorch"] = alias.name if alias.asname else "hxtorch"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hxtorch":
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """(root name, [attr, ...]) of ``a.b.c``; None when the root is not a plain name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id, attrs[::-1]) if isinstance(node, ast.Name) else None


def _check_name(dotted: str) -> None:
    """Every step of ``hxtorch.x.y...`` must be public, as far as it goes through modules."""
    parts = dotted.split(".")
    module = parts[0]
    assert module == "hxtorch", dotted
    for part in parts[1:]:
        module = SUBMODULES.get(module, module)
        assert part in PUBLIC_API[module], f"{dotted}: {part!r} is not in {module}'s public API"
        if f"{module}.{part}" not in PUBLIC_API and f"{module}.{part}" not in SUBMODULES:
            return  # a function or class: its own attributes are not a module's API
        module = f"{module}.{part}"


def test_run_hxtorch_is_python_and_imports_only_hxtorchs_public_modules() -> None:
    compile(SCRIPT.read_text(), str(SCRIPT), "exec")
    modules = _imported_modules(_tree())
    for name in modules:
        top = name.split(".")[0]
        allowed = top in sys.stdlib_module_names or top in THIRD_PARTY or name in BESIDE or name in PUBLIC_API
        assert allowed or name == "__future__", f"run_hxtorch.py imports {name}"
    assert {"hxtorch", "hxtorch.perceptron.nn"} <= set(modules)


def test_every_hxtorch_name_the_script_uses_is_in_hxtorchs_public_api() -> None:
    tree = _tree()
    bound = _aliases(tree)
    for module in bound.values():
        _check_name(module)
    used = set()
    for node in ast.walk(tree):
        chain = _chain(node) if isinstance(node, ast.Attribute) else None
        if chain and chain[0] in bound:
            used.add(".".join([bound[chain[0]], *chain[1]]))
    for dotted in used:
        _check_name(dotted)
    # the calls the stand-in below provides are exactly the ones the script makes
    assert used >= {
        "hxtorch.init_hardware",
        "hxtorch.release_hardware",
        "hxtorch.CalibrationPath",
        "hxtorch.perceptron.MockParameter",
        "hxtorch.perceptron.set_mock_parameter",
        "hxtorch.perceptron.nn.Linear",
        "hxtorch.perceptron.nn.Conv2d",
        "hxtorch.perceptron.nn.ConvertingReLU",
    }
    with pytest.raises(AssertionError, match="not in hxtorch.perceptron's public API"):
        _check_name("hxtorch.perceptron.Linear")  # the check itself refuses a name hxtorch does not define


# --- runs against the stand-in ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Compiled: an MLP (dense with biases), the same MLP for another MAC gain than hxtorch's default 0.002,
    and a CNN (padded conv, avgpool, conv, dense, with biases); name -> (output folder, data file)."""
    folder = tmp_path_factory.mktemp("bss2_hx")
    mlp = make_mlp_onnx(folder / "mlp.onnx")
    mlp_data = make_data(folder / "mlp.npz", mlp, n=48)
    cnn, cnn_data = make_cnn_onnx(folder, 48)
    made = {}
    for name, model, data, settings in (
        ("mlp", mlp, mlp_data, {}),
        ("mlp_gain", mlp, mlp_data, {"mac_gain": "0.0031"}),
        ("cnn", cnn, cnn_data, {}),
    ):
        c = snnc.compile(model, "brainscales2", calibration=np.load(data)["x"], settings=settings)
        c.emit(folder / name)
        made[name] = (folder / name, data)
    return made


def _run(script: Path, *args: str, standin: Path | None = None, log: Path | None = None) -> None:
    env = dict(os.environ)
    if standin is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(standin), *filter(None, [env.get("PYTHONPATH")])])
        env["HXTORCH_STANDIN_LOG"] = str(log)
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _mac_steps(out: Path) -> list[dict]:
    return [s for s in json.loads((out / "config.json").read_text())["steps"] if s["op"] == "mac"]


@pytest.mark.parametrize("name", ["mlp", "mlp_gain", "cnn"])
def test_mock_run_against_the_standin_gives_run_pys_predictions(outputs, standin: Path, name: str) -> None:
    out, data = outputs[name]
    steps = json.loads((out / "config.json").read_text())["steps"]
    if name == "cnn":  # host pooling and a padded convolution are exercised
        assert "avgpool" in [s["op"] for s in steps] and any(any(s.get("pads", [])) for s in steps)
    _run(out / "run.py", "--data", str(data), "--no-ann")
    log = out / "standin.log"
    _run(out / "run_hxtorch.py", "--mock", "--data", str(data), standin=standin, log=log)
    emulated, hx = np.load(out / "outputs.npz"), np.load(out / "outputs_hxtorch.npz")
    np.testing.assert_array_equal(hx["predictions"], emulated["predictions"])
    np.testing.assert_array_equal(hx["readout"], emulated["readout"])
    assert len(np.unique(emulated["readout"], axis=0)) > len(emulated["readout"]) // 2  # not a constant network
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "results_hxtorch.json").read_text())["accuracy"] == results["accuracy"]
    calls = _calls(log)
    macs = _mac_steps(out)
    gain = 0.0031 if name == "mlp_gain" else 0.002
    assert {s["gain"] for s in macs} == {gain}
    setup = [c for c in calls if c["call"] in ("init_hardware", "set_mock_parameter")]
    assert setup == [{"call": "set_mock_parameter", "noise_std": 0.0, "gain": gain}]  # the compiled gain, no noise
    assert calls[-1]["call"] == "release_hardware"
    layers = [c for c in calls if c["call"] in ("Linear", "Conv2d")]
    assert [c["call"] for c in layers] == ["Linear" if s["kind"] == "dense" else "Conv2d" for s in macs]
    for layer, step in zip(layers, macs, strict=True):
        assert (layer["num_sends"], layer["mock"], layer["bias"]) == (step["num_sends"], True, step["bias"] is not None)
        assert layer["input_transform"] is None and layer["weight_transform"] is None
        assert layer["gain_at_init"] == gain  # mock parameters were set before the layers were built
    assert {c["mock"] for c in calls if "mock" in c} == {True}
    assert {c["num_sends"] for c in calls if c["call"] == "matmul"} == {s["num_sends"] for s in macs}


def test_calibration_run_initialises_the_chip_with_a_calibration_path(outputs, standin: Path, tmp_path: Path) -> None:
    out, data = outputs["mlp"]
    calibration = tmp_path / "hagen_cocolist.pbin"
    calibration.write_bytes(b"stand-in calibration")
    log = tmp_path / "standin.log"
    _run(out / "run_hxtorch.py", "--calibration", str(calibration), "--measure", "--data", str(data),
         standin=standin, log=log)  # fmt: skip
    calls = _calls(log)
    assert calls[0] == {"call": "init_hardware", "calibration_path": str(calibration)}
    assert [c["call"] for c in calls[1:3]] == ["measure_mock_parameter", "set_mock_parameter"]
    assert calls[-1]["call"] == "release_hardware"
    assert {c["mock"] for c in calls if "mock" in c} == {False}
    log.unlink()
    _run(out / "run_hxtorch.py", "--data", str(data), standin=standin, log=log)
    assert _calls(log)[0] == {"call": "init_hardware", "hwdb_path": None, "ann": True}
