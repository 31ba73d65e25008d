"""Hostile model names: the emitted scripts run and execute none of them."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import make_data, make_mlp_onnx

from snnc.cli import main

PAYLOAD = "__import__('pathlib').Path('PWNED').write_text('x')"
NAMES = {
    "input": f'img"); {PAYLOAD} #',
    "fc1": f"fc1'''\n{PAYLOAD}\n'''",
    "relu": "{{ 7*7 }}{% raw %}\\",
    "fc2": f'"""\n{PAYLOAD}\n"""',
    "output": "out\n# \u2028 \x00",
}


NO_GENN = pytest.mark.skipif(
    find_spec("pygenn") is None, reason="PyGeNN is not installed: pip install ../shared/wheels/pygenn-5.4.0-*.whl"
)
TARGETS = [
    "sim",
    pytest.param("nest", marks=pytest.mark.nest),
    pytest.param("spinnaker", marks=pytest.mark.spinnaker),
    pytest.param("genn", marks=[pytest.mark.genn, NO_GENN]),
    pytest.param("loihi", marks=[pytest.mark.loihi, pytest.mark.filterwarnings("ignore:invalid value encountered")]),
]


@pytest.mark.parametrize("target", TARGETS)
def test_hostile_names_are_never_executed(target: str, tmp_path: Path) -> None:
    model = make_mlp_onnx(tmp_path / "evil.onnx", NAMES)
    data = make_data(tmp_path / "data.npz", model, n=8)
    out = tmp_path / "out"
    assert main([str(model), "-t", target, "-o", str(out), "--data", str(data), "--dump-ir", "all"]) == 0
    for path in out.rglob("*"):
        if path.suffix in (".py", ".md", ".json", ".snnir"):
            text = path.read_text()
            assert PAYLOAD not in text, path  # ids are sanitized; strings are escaped data
            if path.suffix == ".py":  # code holds no model string at all, not even a sanitized one
                assert "PWNED" not in text and "49" not in text, path
    home = tmp_path / "home"  # sPyNNaker needs a user config (a virtual board here)
    home.mkdir()
    (home / ".spynnaker.cfg").write_text("[Machine]\nversion = 5\n")
    env = {**os.environ, "HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, str(out / "run.py"), "--samples", "4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "PWNED").exists() and not (out / "PWNED").exists()
