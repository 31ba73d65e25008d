"""One error path: every failure is one line `snnc: error: ...` (exit 1; 2 for usage; 130 for
Ctrl-C), options are validated on entry, and `snnc run`/`snnc report` treat OUT as untrusted:
tampered files give one-line errors and planted links never lead to reads or writes elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_data, make_mlp_onnx

import snnc
from snnc.cli import main
from snnc.ir import BudgetError


def one_error(capsys: pytest.CaptureFixture) -> str:
    """The single error line of the last command (no traceback, no internal error)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("snnc: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err and "internal error" not in errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model, its data, a compiled sim directory (with its data recorded) and a spinnaker
    directory (with a mapping report)."""
    root = tmp_path_factory.mktemp("compiled")
    model = make_mlp_onnx(root / "mlp.onnx")
    data = make_data(root / "data.npz", model, n=16)
    assert main([str(model), "-o", str(root / "sim"), "--data", str(data)]) == 0
    assert main([str(model), "-t", "spinnaker", "-o", str(root / "spinn"), "--calibration", str(data)]) == 0
    return {"model": model, "data": data, "sim": root / "sim", "spinn": root / "spinn"}


@pytest.fixture
def out(compiled, tmp_path: Path) -> Path:
    """A fresh copy of the compiled sim directory."""
    return Path(shutil.copytree(compiled["sim"], tmp_path / "out"))


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A user's file outside OUT that no command may change."""
    path = tmp_path / "victim.txt"
    path.write_text("do not touch")
    return path


# --------------------------------------------------------------------------- the error path


def test_unexpected_exceptions_are_one_line_and_debug_shows_the_traceback(compiled, capsys, monkeypatch) -> None:
    import snnc.cli

    def bug(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(snnc.cli._COMMANDS, "passes", bug)
    assert main(["passes"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "snnc: error: internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)\n"
    )
    assert main(["passes", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("snnc: error: internal error")


@pytest.mark.parametrize("error", [MemoryError(), RecursionError("maximum recursion depth exceeded")])
def test_memory_and_recursion_errors_are_one_line(capsys, monkeypatch, error: BaseException) -> None:
    import snnc.cli

    def boom(args):
        raise error

    monkeypatch.setitem(snnc.cli._COMMANDS, "targets", boom)
    assert main(["targets"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"snnc: error: internal error: {type(error).__name__}")


def test_keyboard_interrupt_is_one_line_exit_130(capsys, monkeypatch) -> None:
    import snnc.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(snnc.cli._COMMANDS, "passes", interrupted)
    assert main(["passes"]) == 130
    assert capsys.readouterr().err == "snnc: error: interrupted\n"


def test_messages_with_line_breaks_stay_one_line(compiled, tmp_path: Path, capsys) -> None:
    name = tmp_path / "evil\nname\u2028x.onnx"
    assert main([str(name), "-o", str(tmp_path / "o")]) == 1
    assert "no such file" in one_error(capsys)


def test_os_errors_name_the_file(compiled, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    args = [str(compiled["model"]), "--data", str(compiled["data"]), "--param", "percentile=99"]
    assert main(["sweep", *args, "-o", str(blocker / "sweep"), "--samples", "4"]) == 1
    assert "blocker" in one_error(capsys)


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["sweep"], ["ir"], ["passes"], ["targets"]])
def test_every_command_takes_debug(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0 and "--debug" in capsys.readouterr().out


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "OUT", "--samples", "-1"], "--samples"),
        (["run", "OUT", "--samples", "0"], "--samples"),
        (["run", "OUT", "--samples", "1e3"], "--samples"),
        (["run", "OUT", "--samples", "9" * 5000], "--samples"),
        (["run", "OUT", "--seed", "-3"], "--seed"),
        (["run", "OUT", "--seed", str(2**40)], "--seed"),
        (["run", "OUT", "--presentation-time", "-5"], "--presentation-time"),
        (["run", "OUT", "--presentation-time", "0"], "--presentation-time"),
        (["run", "OUT", "--presentation-time", "nan"], "--presentation-time"),
        (["run", "OUT", "--presentation-time", "inf"], "--presentation-time"),
        (["run", "OUT", "--presentation-time", "1e300"], "--presentation-time"),
        (["run", "OUT", "--budget", "neurons=-5"], "--budget"),
        (["run", "OUT", "--budget", "wombats=5"], "--budget"),
        (["MODEL", "-o", "O", "--input-shape", "0,-1"], "--input-shape"),
        (["MODEL", "-o", "O", "--input-shape", "1,x"], "--input-shape"),
        (["MODEL", "-o", "O", "--input-shape", ",".join(["2"] * 20)], "--input-shape"),
        (["MODEL", "-o", "O", "--seed", "-1"], "--seed"),
        (["MODEL", "-o", "O", "--budget", "bytes=nan"], "--budget"),
        (["ir", "MODEL", "--input-shape", str(10**12)], "--input-shape"),
        (["sweep", "M", "--data", "D", "--param", "a=1", "-o", "O", "--jobs", "0"], "--jobs"),
        (["sweep", "M", "--data", "D", "--param", "a=1", "-o", "O", "--jobs", "100000"], "--jobs"),
        (["sweep", "M", "--data", "D", "--param", "a=1", "-o", "O", "--samples", "-2"], "--samples"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(args: list[str], option: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert option in last and "Traceback" not in last, last


def test_budget_is_applied_to_compile_and_ir(compiled, tmp_path: Path, capsys) -> None:
    model, data = compiled["model"], compiled["data"]
    assert main(["ir", str(model), "--input-shape", "1000,1000", "--budget", "neurons=1000"]) == 1
    line = one_error(capsys)
    assert "--input-shape" in line and "budget" in line
    assert main([str(model), "-o", str(tmp_path / "o"), "--data", str(data), "--budget", "neurons=3"]) == 1
    assert "budget" in one_error(capsys) and not (tmp_path / "o").exists()
    with pytest.raises(BudgetError, match="budget"):
        snnc.compile(model, calibration=np.load(data)["x"], budget="nodes=1")
    with pytest.raises(BudgetError):
        snnc.compile(model, budget="nodes=0")
    assert snnc.compile(model, calibration=np.load(data)["x"], budget="nodes=100").graph is not None


def test_sweep_grid_too_large_is_one_line(compiled, tmp_path: Path, capsys) -> None:
    params = [item for k in "abcde" for item in ("--param", f"{k}=" + ",".join(map(str, range(10))))]
    assert (
        main(["sweep", str(compiled["model"]), "--data", str(compiled["data"]), *params, "-o", str(tmp_path / "s")])
        == 1
    )
    assert "grid" in one_error(capsys) and not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- snnc run on a tampered OUT


def run(out: Path, *extra: str) -> int:
    return main(["run", str(out), "--samples", "8", *extra])


def set_manifest(out: Path, **changes) -> None:
    manifest = json.loads((out / "snnc.json").read_text())
    manifest.update(changes)
    (out / "snnc.json").write_text(json.dumps(manifest))


def test_untampered_out_runs(out: Path, capsys) -> None:
    assert run(out) == 0
    assert json.loads((out / "results.json").read_text())["samples"] == 8


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"not json {", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"[1, 2, 3]", "JSON object"),
        (b'"sim"', "JSON object"),
        (b'{"target": 5}', "'target'"),
        (b'{"target": "loihi9"}', "'target'"),
        (b'{"target": "sim", "data": 17}', "'data'"),
        (b'{"target": "sim", "data": "/etc/passwd"}', "not an .npz file"),
        (b'{"target": "sim", "data": "/nonexistent/file.npz"}', "does not exist"),
        (b'{"target": "sim", "data": null}', "no data recorded"),
        (b'{"target": "sim", "data_is_calibration": "yes"}', "data_is_calibration"),
        (b'{"target": ' + b"9" * 5000 + b"}", "snnc.json"),
        (b"[" * 100_000 + b"]" * 100_000, "snnc.json"),
    ],
)
def test_tampered_manifest(out: Path, capsys, content: bytes, needle: str) -> None:
    (out / "snnc.json").write_bytes(content)
    assert main(["run", str(out)]) == 1
    assert needle in one_error(capsys)


def test_recorded_data_that_is_not_a_regular_file(out: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    set_manifest(out, data=str(folder))
    assert main(["run", str(out)]) == 1
    assert "not a regular .npz file" in one_error(capsys)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    set_manifest(out, data=str(fifo))
    assert main(["run", str(out)]) == 1  # refused without opening it (opening a FIFO would hang)
    assert "not a regular .npz file" in one_error(capsys)


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("model.snnir", None, "missing"),
        ("ann.snnir", None, "missing"),
        ("model.snnir", b"hello world\n", "model.snnir"),
        ("ann.snnir", b"snnir 1\n", "ann.snnir"),
        ("snnc.json", None, "no snnc.json"),
    ],
)
def test_tampered_or_missing_graphs(out: Path, capsys, name: str, content, needle: str) -> None:
    if content is None:
        (out / name).unlink()
    else:
        (out / name).write_bytes(content)
    assert run(out) == 1
    assert needle in one_error(capsys)


def test_swapped_graphs_are_refused(out: Path, capsys) -> None:
    for suffix in (".snnir", ".npz"):
        (out / f"model{suffix}").rename(out / f"tmp{suffix}")
        (out / f"ann{suffix}").rename(out / f"model{suffix}")
        (out / f"tmp{suffix}").rename(out / f"ann{suffix}")
    assert run(out) == 1
    assert "dialect" in one_error(capsys)


def test_data_with_labels_beyond_the_outputs(out: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.random.default_rng(0).random((8, 16), dtype=np.float32), y=np.full(8, 10**9))
    assert run(out, "--data", str(bad)) == 1
    assert "labels" in one_error(capsys)
    np.savez(bad, x=np.zeros((8, 5), np.float32), y=np.zeros(8, np.int64))
    assert run(out, "--data", str(bad)) == 1
    assert "shape" in one_error(capsys)


def test_missing_out_and_file_as_out(tmp_path: Path, victim: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "nope")]) == 1
    assert "not a directory" in one_error(capsys)
    assert main(["run", str(victim)]) == 1
    one_error(capsys)
    assert main(["report", str(victim)]) == 1
    one_error(capsys)


@pytest.mark.parametrize(
    "name", ["results.json", "report.md", "layers.json", "outputs.npz", "snnc.json", "model.snnir", "plots"]
)
def test_links_leading_outside_out_are_refused(out: Path, victim: Path, capsys, name: str) -> None:
    target = out / name
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if name == "plots":
        target.symlink_to(victim.parent)
    else:
        target.symlink_to(victim)
    before = sorted(p.name for p in victim.parent.iterdir())
    assert run(out) == 1
    assert "symbolic link" in one_error(capsys)
    assert victim.read_text() == "do not touch"
    assert sorted(p.name for p in victim.parent.iterdir()) == before


def test_link_inside_plots_leading_outside_is_refused(out: Path, victim: Path, capsys) -> None:
    assert run(out) == 0
    (out / "plots" / "confusion.png").unlink()
    (out / "plots" / "confusion.png").symlink_to(victim)
    assert run(out) == 1
    assert "confusion.png" in one_error(capsys) and victim.read_text() == "do not touch"


def test_dangling_and_looping_links_are_refused(out: Path, tmp_path: Path, capsys) -> None:
    (out / "results.json").symlink_to(tmp_path / "created-by-snnc.json")
    assert run(out) == 1
    one_error(capsys)
    assert not (tmp_path / "created-by-snnc.json").exists()
    (out / "results.json").unlink()
    (out / "loop").symlink_to(out / "loop")
    assert run(out) == 1
    one_error(capsys)


def test_hard_links_are_replaced_not_written_through(out: Path, tmp_path: Path) -> None:
    assert run(out) == 0
    names = ["results.json", "report.md", "layers.json", "outputs.npz", "plots/confusion.png"]
    victims = []
    for i, name in enumerate(names):
        victims.append(tmp_path / f"victim{i}.txt")
        victims[-1].write_text("do not touch")
        (out / name).unlink()
        os.link(victims[-1], out / name)
    assert run(out) == 0
    for name, path in zip(names, victims, strict=True):
        assert path.read_text() == "do not touch", name
        assert (out / name).read_bytes() != b"do not touch", name


def test_special_files_in_out_are_refused(out: Path, capsys) -> None:
    os.mkfifo(out / "results.json")
    reader = os.open(out / "results.json", os.O_RDONLY | os.O_NONBLOCK)  # a writer that opens it does not hang
    try:
        assert run(out) == 1
    finally:
        os.close(reader)
    assert "not a regular file" in one_error(capsys)


def test_stale_outputs_do_not_reach_the_report(out: Path, capsys) -> None:
    """outputs.npz is the run's own: a planted one is removed before the target runs."""
    np.savez(out / "outputs.npz", labels=np.array([10**9]), predictions=np.array([0]), readout=np.zeros((1, 4)))
    assert run(out) == 0
    with np.load(out / "outputs.npz") as outputs:
        assert outputs["labels"].max() < 4


# --------------------------------------------------------------------------- snnc report on a tampered OUT


def test_report_prints_the_mapping(compiled, capsys) -> None:
    assert main(["report", str(compiled["spinn"])]) == 0
    assert "per instance" in capsys.readouterr().out


def tampered_reports(report: dict) -> list[tuple[object, str]]:
    no_target = {k: v for k, v in report.items() if k != "target"}
    bad_pop = {**report, "populations": [{**report["populations"][0], "neurons": "many"}]}
    no_slices = {**report, "populations": [{**report["populations"][0], "slices": []}]}
    bad_energy = {**report, "energy": {**report["energy"], "mj_per_inference": "lots"}}
    return [
        (no_target, "'target'"),
        ({**report, "cores": 1.5}, "'cores'"),
        ({**report, "populations": 3}, "populations"),
        (bad_pop, "populations[0]: key 'neurons'"),
        (no_slices, "slices"),
        (bad_energy, "mj_per_inference"),
        ([report], "expected an object"),
        ({**report, "presentation_ms": True}, "presentation_ms"),
    ]


def test_tampered_report_json(compiled, tmp_path: Path, capsys) -> None:
    out = Path(shutil.copytree(compiled["spinn"], tmp_path / "spinn"))
    report = json.loads((out / "report.json").read_text())
    for value, needle in tampered_reports(report):
        (out / "report.json").write_text(json.dumps(value))
        assert main(["report", str(out)]) == 1, needle
        assert needle in one_error(capsys)
    for content, needle in [(b"{", "not valid JSON"), (b"\x80", "UTF-8"), (b"[" * 100_000, "report.json")]:
        (out / "report.json").write_bytes(content)
        assert main(["report", str(out)]) == 1
        assert needle in one_error(capsys)


def test_report_strings_cannot_drive_the_terminal(compiled, tmp_path: Path, capsys) -> None:
    out = Path(shutil.copytree(compiled["spinn"], tmp_path / "spinn"))
    report = json.loads((out / "report.json").read_text())
    report["target"] = "x\x1b[2J\nfake line"
    (out / "report.json").write_text(json.dumps(report))
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\\x1b[2J\\nfake line" in text


def test_report_json_linked_outside_is_refused(compiled, tmp_path: Path, victim: Path, capsys) -> None:
    out = Path(shutil.copytree(compiled["spinn"], tmp_path / "spinn"))
    (out / "report.json").unlink()
    (out / "report.json").symlink_to(victim)
    assert main(["report", str(out)]) == 1
    assert "symbolic link" in one_error(capsys)


def test_cli_errors_in_a_subprocess_are_one_line(tmp_path: Path) -> None:
    """The same through the real entry point: stderr is exactly one line, exit 1."""
    (tmp_path / "snnc.json").write_text("[")
    proc = subprocess.run(
        [sys.executable, "-m", "snnc.cli", "run", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("snnc: error:") and "snnc.json" in proc.stderr


def test_sweep_applies_the_budget_in_every_point_and_replaces_links(compiled, tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.csv").symlink_to(victim)
    args = ["sweep", str(compiled["model"]), "--data", str(compiled["data"]), "--param", "percentile=99,98"]
    assert main([*args, "-o", str(out), "--budget", "neurons=3", "--samples", "4"]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert len(rows) == 2 and all("exceed the budget" in row["error"] for row in rows)
    assert victim.read_text() == "do not touch" and not (out / "sweep.csv").is_symlink()


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    """`snnc targets | head -1`: the closed pipe ends the listing quietly, exit 0, no error line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "snnc.cli", "targets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "error" not in stderr, stderr
