"""Output directories: `-o` never empties a user's folder, `--force` replaces only snnc's own
output, and the replacement is atomic (the old directory survives any failure or interrupt)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from conftest import make_data, make_mlp_onnx

import snnc
from snnc.api import CompileError
from snnc.cli import main


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A model in models/, a user's folder work/ (the current directory) with files and a folder,
    and an empty temporary directory for tempfile."""
    models = tmp_path / "models"
    models.mkdir()
    model = make_mlp_onnx(models / "mlp.onnx")
    data = make_data(models / "data.npz", model, n=16)
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "notes.txt").write_text("precious")
    (work / "sub" / "thesis.tex").write_text("chapter 1")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(work)
    return {"root": tmp_path, "model": model, "data": data, "work": work, "tmp": tmp}


def compile_to(setup: dict[str, Path], out: str | Path, *extra: str) -> int:
    return main([str(setup["model"]), "-o", str(out), "--calibration", str(setup["data"]), *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), links not followed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(capsys: pytest.CaptureFixture) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("snnc: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert "internal error" not in errors[0] and "Traceback" not in "\n".join(lines)
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Staging or set-aside directories snnc may have left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".snnc-" in p.name or p.name.startswith("snnc-"))


@pytest.mark.parametrize("out", [".", "..", "./", "../work", "sub/.."])
def test_current_directory_and_its_ancestors_are_refused(setup, capsys, out: str) -> None:
    before = snapshot(setup["root"])
    assert compile_to(setup, out, "--force") == 1
    message = error_line(capsys)
    assert "refusing" in message and "current directory" in message, message
    assert snapshot(setup["root"]) == before
    assert leftovers(setup["work"]) == leftovers(setup["root"]) == []


def test_root_is_refused(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked with the check alone: on code without it, `-o / --force` would empty the root."""
    from snnc.api import check_output_dir

    monkeypatch.chdir(setup["tmp"])
    with pytest.raises(CompileError, match="file system root"):
        check_output_dir("/", force=True)


def test_home_directory_is_refused(setup, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    home = setup["root"] / "home"
    home.mkdir()
    (home / ".bashrc").write_text("export A=1")
    (home / "snnc.json").write_text('{"snnc_version": "0.1.0"}')  # even one that looks like snnc's
    monkeypatch.setenv("HOME", str(home))
    assert compile_to(setup, "~", "--force") == 1
    assert "home directory" in error_line(capsys)
    assert compile_to(setup, home, "--force") == 1
    assert "home directory" in error_line(capsys)
    assert (home / ".bashrc").read_text() == "export A=1" and sorted(p.name for p in home.iterdir()) == [
        ".bashrc",
        "snnc.json",
    ]


@pytest.mark.parametrize("which", ["folder", "parent"])
def test_model_folder_and_its_ancestors_are_refused(setup, capsys, which: str) -> None:
    folder = setup["model"].parent if which == "folder" else setup["root"]
    before = snapshot(setup["root"])
    assert compile_to(setup, folder, "--force") == 1
    message = error_line(capsys)
    assert "refusing" in message, message
    assert snapshot(setup["root"]) == before


def test_library_emit_keeps_out_of_the_model_folder(setup) -> None:
    compiled = snnc.compile(setup["model"], calibration=snnc_data(setup))
    with pytest.raises(CompileError, match="model's folder"):
        compiled.emit(setup["model"].parent, force=True)
    assert setup["model"].is_file() and setup["data"].is_file()


def snnc_data(setup: dict[str, Path]):
    import numpy as np

    return np.load(setup["data"])["x"]


def test_force_refuses_a_directory_that_is_not_snnc_output(setup, capsys) -> None:
    out = setup["root"] / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    assert compile_to(setup, out) == 1
    assert "--force" in error_line(capsys)
    assert compile_to(setup, out, "--force") == 1
    assert "not snnc output" in error_line(capsys)
    assert snapshot(out) == {"cat.jpg": b"\xff\xd8 a cat"}


@pytest.mark.parametrize("manifest", [b"not json", b"[1, 2]", b'{"target": "sim"}', b"\xff\xfe"])
def test_force_refuses_a_directory_whose_manifest_is_not_snnc_s(setup, capsys, manifest: bytes) -> None:
    out = setup["root"] / "fake"
    out.mkdir()
    (out / "snnc.json").write_bytes(manifest)
    (out / "data.csv").write_text("1,2,3")
    assert compile_to(setup, out, "--force") == 1
    assert "not snnc output" in error_line(capsys)
    assert snapshot(out) == {"snnc.json": manifest, "data.csv": b"1,2,3"}


def test_force_refuses_a_manifest_that_is_a_link(setup, capsys) -> None:
    real = setup["root"] / "real"
    assert compile_to(setup, real) == 0
    out = setup["root"] / "victim"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / "snnc.json").symlink_to(real / "snnc.json")
    assert compile_to(setup, out, "--force") == 1
    assert "not snnc output" in error_line(capsys)
    assert (out / "keep.txt").read_text() == "mine"


def test_force_replaces_snnc_output_and_leaves_nothing_behind(setup, capsys) -> None:
    out = setup["root"] / "out"
    assert compile_to(setup, out) == 0
    first = snapshot(out)
    (out / "results.json").write_text("{}")
    assert compile_to(setup, out, "--force") == 0
    assert snapshot(out) == first
    assert leftovers(setup["root"]) == []


def test_new_directory_with_missing_parents(setup) -> None:
    out = setup["root"] / "a" / "b" / "out"
    assert compile_to(setup, out) == 0
    assert (out / "snnc.json").is_file() and leftovers(out.parent) == []


def test_output_that_is_a_file_is_refused(setup, capsys) -> None:
    target = setup["root"] / "file.txt"
    target.write_text("text")
    assert compile_to(setup, target, "--force") == 1
    assert "not a directory" in error_line(capsys)
    assert target.read_text() == "text"


def test_symlinked_output_follows_the_same_rules(setup, capsys) -> None:
    to_work = setup["root"] / "link-to-work"
    to_work.symlink_to(setup["work"])
    before = snapshot(setup["work"])
    assert compile_to(setup, to_work, "--force") == 1
    assert "current directory" in error_line(capsys)
    user = setup["root"] / "user"
    user.mkdir()
    (user / "a.txt").write_text("a")
    to_user = setup["root"] / "link-to-user"
    to_user.symlink_to(user)
    assert compile_to(setup, to_user, "--force") == 1
    assert "not snnc output" in error_line(capsys)
    assert snapshot(setup["work"]) == before and snapshot(user) == {"a.txt": b"a"}
    real = setup["root"] / "real"
    assert compile_to(setup, real) == 0
    to_real = setup["root"] / "link-to-real"
    to_real.symlink_to(real)
    assert compile_to(setup, to_real, "--force") == 0  # an snnc directory behind a link: replaced
    assert to_real.is_symlink() and (real / "snnc.json").is_file() and leftovers(setup["root"]) == []


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_while_writing_keeps_the_old_directory(setup, capsys, monkeypatch, error: BaseException) -> None:
    from snnc.targets.sim.target import SimTarget

    out = setup["root"] / "out"
    assert compile_to(setup, out) == 0
    (out / "results.json").write_text('{"mine": 1}')
    before = snapshot(out)

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(SimTarget, "emit", fail)
    status = compile_to(setup, out, "--force", "--dump-ir", "all")
    assert status == (130 if isinstance(error, KeyboardInterrupt) else 1)
    error_text = capsys.readouterr().err.strip().splitlines()[-1]
    assert error_text.startswith("snnc: error:")
    assert snapshot(out) == before
    assert leftovers(setup["root"]) == [] and list(setup["tmp"].iterdir()) == []


def test_interrupt_between_the_renames_puts_the_old_directory_back(setup, monkeypatch) -> None:
    out = setup["root"] / "out"
    assert compile_to(setup, out) == 0
    before = snapshot(out)
    rename = Path.rename

    def interrupted(self: Path, target):
        if ".snnc-new-" in self.name:
            raise KeyboardInterrupt
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", interrupted)
    assert compile_to(setup, out, "--force") == 130
    assert snapshot(out) == before and leftovers(setup["root"]) == []


def test_failure_into_a_new_directory_creates_nothing(setup, monkeypatch) -> None:
    from snnc.targets.sim.target import SimTarget

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SimTarget, "emit", fail)
    assert compile_to(setup, setup["root"] / "new" / "deeper" / "out", "--dump-ir", "all") == 130
    assert not (setup["root"] / "new").exists() and list(setup["tmp"].iterdir()) == []


def test_interrupt_during_compile_removes_the_ir_dump_folder(setup, monkeypatch) -> None:
    import snnc.api

    def interrupted(*args, **kwargs):
        assert any(p.name.startswith("snnc-ir-") for p in setup["tmp"].iterdir())  # it existed
        raise KeyboardInterrupt

    monkeypatch.setattr(snnc.api, "run_pipeline", interrupted)
    assert compile_to(setup, setup["root"] / "out", "--dump-ir", "all") == 130
    assert list(setup["tmp"].iterdir()) == [] and not (setup["root"] / "out").exists()


def test_emit_needs_no_current_directory_permission_beyond_out(setup) -> None:
    """An ordinary -o next to the current directory still works (not every sibling is refused)."""
    assert compile_to(setup, "../out") == 0
    assert (setup["root"] / "out" / "snnc.json").is_file()
    assert sorted(os.listdir(setup["work"])) == ["notes.txt", "sub"]
