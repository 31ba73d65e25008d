"""Acceptance harness of issue 9: every case of the hostile corpus through the CLI.

Per case: exit status 1 or 2 (0 where the input is valid), no traceback and a last stderr line
``snnc: error: ...``, no payload marker, no secret bytes in any output, user files unchanged,
nothing outside the case folder changed, no temp or staging directory left, and for isolated
runs peak memory under the case's limit. Cases that need isolation (payloads, memory, time) run
in a subprocess; the others call ``snnc.cli.main`` in this process. Marked ``hostile``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_corpus as hc  # noqa: E402

pytestmark = pytest.mark.hostile
TIMEOUT_S = 60
ERROR_LINE = re.compile(r"^snnc(?: [a-z]+)?: error: \S.{3,}")  # argparse usage errors name the command
ADDRESS_SPACE = 12 * 2**30  # a runaway allocation fails in the child instead of taking the machine


@dataclass
class Outcome:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    rss_mb: float | None = None
    seconds: float = 0.0


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="session")
def base(corpus_dir: Path) -> hc.Base:
    return hc.Base(corpus_dir / "_base")


def _env(case: hc.Case) -> dict[str, str]:
    env = {
        **os.environ,
        "HOME": str(case.home),
        "TMPDIR": str(case.tmp),
        "KERAS_BACKEND": "torch",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLCONFIGDIR": str(case.root / "mplconfig"),
    }
    env.pop("SNNC_DATA", None)
    return env


def _child(case_root: str, folder: str, env: dict[str, str], argv: list[str]) -> None:
    """In a forked child of the forkserver (snnc and torch already imported): run the CLI with
    stdout/stderr on files, record the peak RSS, exit with the CLI's status."""
    import traceback

    root = Path(case_root)
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
        f = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(folder)
    tempfile.tempdir = env["TMPDIR"]
    from snnc.cli import main

    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - what the CLI lets escape is the finding
        traceback.print_exc()
        rc = 255
    import atexit

    atexit._run_exitfuncs()  # what a normal interpreter exit runs (multiprocessing removes its pymp-* dirs)
    sys.stdout.flush()
    sys.stderr.flush()
    usage = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    peak = max(usage)
    (root / "rss.txt").write_text(str(peak))
    os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 255)


_CONTEXT = None


def _context():  # noqa: ANN202
    """A forkserver that imported snnc and torch once: each isolated run is a fresh fork of it."""
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["snnc.cli", "snnc.api", "torch", "onnx", "h5py", "nir", "snnc.frontends"])
    return _CONTEXT


def run_isolated(case: hc.Case, argv: list[str]) -> Outcome:
    """Run ``snnc argv`` in a separate process: timeout, memory, and payloads stay out of here."""
    for name in ("rss.txt", "stdout.txt", "stderr.txt"):
        (case.root / name).unlink(missing_ok=True)
    start = time.perf_counter()
    proc = _context().Process(target=_child, args=(str(case.root), str(case.folder), _env(case), list(argv)))
    proc.start()
    proc.join(TIMEOUT_S)
    timed_out = proc.is_alive()
    if timed_out:
        proc.kill()
        proc.join()
    seconds = time.perf_counter() - start
    read = lambda n: (case.root / n).read_text(errors="replace") if (case.root / n).exists() else ""  # noqa: E731
    rss = int(read("rss.txt")) / 1024 if read("rss.txt") else None
    out, err = read("stdout.txt"), read("stderr.txt")
    for name in ("rss.txt", "stdout.txt", "stderr.txt"):
        (case.root / name).unlink(missing_ok=True)
    if timed_out:
        return Outcome(argv, -9, out, err + f"\n[harness] TIMEOUT after {TIMEOUT_S} s", None, seconds)
    rc = proc.exitcode if proc.exitcode is not None and proc.exitcode >= 0 else 128 - (proc.exitcode or 0)
    return Outcome(argv, rc, out, err, rss, seconds)


class _Timeout(BaseException):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Timeout()


def run_inprocess(case: hc.Case, argv: list[str]) -> Outcome:
    """Run ``snnc.cli.main(argv)`` here, with the case's cwd, HOME and TMPDIR, under a 60 s alarm."""
    import traceback

    from snnc.cli import main

    saved_env, saved_cwd, saved_tmp = dict(os.environ), os.getcwd(), tempfile.tempdir
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        os.environ.update(_env(case))
        os.environ.pop("SNNC_DATA", None)
        os.chdir(case.folder)
        tempfile.tempdir = str(case.tmp)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(argv))
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except _Timeout:
                rc = -9
                print(f"[harness] TIMEOUT after {TIMEOUT_S} s", file=sys.stderr)
            except Exception:  # noqa: BLE001 - what the CLI lets escape is the finding
                rc = -1
                traceback.print_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        tempfile.tempdir = saved_tmp
    return Outcome(argv, rc, out.getvalue(), err.getvalue(), None, time.perf_counter() - start)


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if path.is_dir():
        return "dir"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _snapshot(root: Path, skip: set[Path]) -> dict[str, str]:
    """path -> digest of everything under ``root`` except the ``skip`` folders."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n not in skip]
        for n in [*dirnames, *filenames]:
            p = d / n
            try:
                state[str(p.relative_to(root))] = _digest(p)
            except OSError as exc:
                state[str(p.relative_to(root))] = f"unreadable {exc.errno}"
    return state


def _hidden_dirs(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_dir()} if folder.exists() else set()


def _scan_for_secret(folder: Path, outcomes: list[Outcome]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if hc.SECRET in data or hc.SECRET[:12] in data:
                found.append(str(path.relative_to(folder)))
    for o in outcomes:
        if hc.SECRET.decode() in o.stdout + o.stderr:
            found.append(f"<output of snnc {' '.join(o.argv)}>")
    return found


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_case(case: hc.Case) -> tuple[list[Outcome], list[str]]:
    """Run a case and return its outcomes and the list of broken promises (empty: it passed)."""
    run = run_isolated if case.isolate else run_inprocess
    problems: list[str] = []
    for argv in case.prep:
        o = run_inprocess(case, argv) if not case.isolate else run_isolated(case, argv)
        if o.rc != 0:
            return [o], [f"prep `snnc {' '.join(argv)}` (a valid command) failed, rc {o.rc}:\n{_tail(o.stderr)}"]
    if case.tamper:
        case.tamper(case.folder)
    protected = {p: _digest(p) for p in case.protected if p.exists() or p.is_symlink()}
    skip = {case.folder, case.tmp, case.root / "mplconfig"}
    outside = _snapshot(case.root, skip)
    hidden = _hidden_dirs(case.folder)
    outcomes: list[Outcome] = []
    for argv in case.argv:
        outcomes.append(run(case, argv))
        if outcomes[-1].rc != 0:
            break
    last = outcomes[-1]
    cmd = f"snnc {' '.join(last.argv)}"[:300]
    if last.rc == -9:
        problems.append(f"hang: {cmd} ran over {TIMEOUT_S} s")
    elif last.rc == 0:
        if case.expect == "refuse":
            problems.append(f"accepted: every command exited 0, last `{cmd}`")
    elif last.rc not in (1, 2):
        problems.append(f"exit status {last.rc} (want 1, or 2 for usage) from `{cmd}`")
    elif case.expect == "ok":
        problems.append(f"refused a valid input, rc {last.rc}: {_tail(last.stderr, 2)}")
    for o in outcomes:
        if "Traceback" in o.stderr:
            problems.append(f"traceback from `snnc {' '.join(o.argv)}`"[:300])
    if last.rc not in (0, -9):
        lines = [line for line in last.stderr.splitlines() if line.strip()]
        final = lines[-1] if lines else ""
        if not ERROR_LINE.match(final):
            problems.append(f"last stderr line is not `snnc: error: ...`: {final[:300]!r}")
        elif case.reason and not re.search(case.reason, final, re.IGNORECASE):
            problems.append(f"refused for another reason than expected (/{case.reason}/): {final[:300]!r}")
        elif "internal error" in final:
            problems.append(f"unexpected exception (an 'internal error', not a checked one): {final[:300]!r}")
    markers = [str(p) for p in case.root.rglob(f"{hc.MARK}*")]
    if markers:
        problems.append(f"PAYLOAD EXECUTED: {markers}")
    leaked = _scan_for_secret(case.folder, outcomes)
    if leaked:
        problems.append(f"SECRET DISCLOSED in {leaked}")
    for p, digest in protected.items():
        if not (p.exists() or p.is_symlink()):
            problems.append(f"USER FILE REMOVED: {p.relative_to(case.root)}")
        elif _digest(p) != digest:
            problems.append(f"USER FILE CHANGED: {p.relative_to(case.root)}")
    after = _snapshot(case.root, skip)
    changed = sorted(k for k in set(outside) | set(after) if outside.get(k) != after.get(k))
    if changed:
        problems.append(f"changed outside the case folder: {changed[:8]}")
    left = sorted(_hidden_dirs(case.folder) - hidden)
    if left:
        problems.append(f"hidden staging directories left: {left[:5]}")
    tmp_left = sorted(p.name for p in case.tmp.iterdir()) if case.tmp.exists() else []
    if tmp_left:
        problems.append(f"temporary files left: {tmp_left[:5]}")
    for o in outcomes:
        if case.memory_mb and o.rss_mb is not None and o.rss_mb > case.memory_mb:
            problems.append(f"peak memory {o.rss_mb:.0f} MB > {case.memory_mb} MB: `snnc {' '.join(o.argv)}`"[:300])
    return outcomes, problems


def _report(case: hc.Case, outcomes: list[Outcome], problems: list[str]) -> str:
    last = outcomes[-1]
    head = f"[{case.category}] {case.name}: " + "; ".join(problems)
    rss = f", peak {last.rss_mb:.0f} MB" if last.rss_mb is not None else ""
    return f"{head}\n  rc {last.rc}{rss}, {last.seconds:.1f} s; stderr tail:\n{_tail(last.stderr, 8)}"


@pytest.mark.parametrize("name", hc.names())
def test_hostile_case(name: str, corpus_dir: Path, base: hc.Base) -> None:
    case = hc.build_case(name, corpus_dir, base)
    outcomes, problems = run_case(case)
    if os.environ.get("SNNC_HOSTILE_LOG"):  # one JSON line per case for the summary script
        with open(os.environ["SNNC_HOSTILE_LOG"], "a") as log:
            log.write(
                json.dumps(
                    {
                        "name": name,
                        "category": case.category,
                        "problems": problems,
                        "rc": outcomes[-1].rc,
                        "rss_mb": outcomes[-1].rss_mb,
                        "seconds": sum(o.seconds for o in outcomes),
                        "stderr": _tail(outcomes[-1].stderr, 12),
                    }
                )
                + "\n"
            )
    assert not problems, _report(case, outcomes, problems)


def test_corpus_covers_every_category() -> None:
    categories = {hc.REGISTRY[n][0] for n in hc.names()}
    assert categories == {"code", "disclosure", "destruction", "blowup", "traceback", "silent", "control"}
    assert len(hc.names()) >= 150
