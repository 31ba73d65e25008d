"""The ``snnc`` command line.

    snnc MODEL --target T -o OUT [--calibration F] [--data F] [--set k=v] [--dump-ir all]
    snnc run OUT --data F --samples N
    snnc report OUT
    snnc sweep MODEL -t T --data F --param KEY=V1,V2 [--param ...] [--jobs N] -o OUT
    snnc ir MODEL --after PASS [--target T]
    snnc passes
    snnc targets

Every command takes --debug (the traceback of an error); compile, ir, run and sweep take
--budget neurons=N,synapses=N,bytes=N. Errors are one line ``snnc: error: ...`` (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from snnc.ir.errors import SnncError

COMMANDS = ("run", "report", "sweep", "ir", "passes", "targets")
CALIBRATION_SAMPLES = 1000
CALIBRATION_BESIDE_MODEL = "calibration.npz"
MAX_SEED = 2**31 - 1  # every target's random generator takes it
MAX_JOBS = 256
MAX_PRESENTATION_MS = 1e6  # 1000 s of simulated time per sample
MAX_SHAPE_DIMS = 8
MAX_GRID_POINTS = 10_000
EXIT_ERROR, EXIT_INTERRUPTED = 1, 130
# Characters str.splitlines() breaks at: a message must stay one line whatever a file name holds.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class CliError(SnncError):
    """A user error: printed as one line, exit status 1."""


def main(argv: Optional[list[str]] = None) -> int:
    """Run one command; every failure is one line ``snnc: error: ...`` on stderr (exit 1, 130 on
    Ctrl-C, 2 for usage errors), with the traceback only under ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        command, argv = argv[0], argv[1:]
    else:
        command = "compile"
    debug = "--debug" in argv
    try:
        args = _parser(command).parse_args(argv)
        with _budget(args):
            return _COMMANDS[command](args)
    except KeyboardInterrupt:
        return _fail("interrupted", debug, EXIT_INTERRUPTED)
    except BrokenPipeError:  # the reader stopped early (snnc passes | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except SnncError as exc:
        return _fail(str(exc) or type(exc).__name__, debug)
    except OSError as exc:
        return _fail(_os_message(exc), debug)
    except Exception as exc:  # noqa: BLE001 - a bug (or MemoryError, RecursionError): still one line
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _fail(f"internal error: {text} (run with --debug for the traceback)", debug)


def _fail(message: str, debug: bool, status: int = EXIT_ERROR) -> int:
    if debug:
        traceback.print_exc()
    print(f"snnc: error: {one_line(message)}", file=sys.stderr)
    return status


def one_line(text: str) -> str:
    """``text`` with line breaks escaped (``\\n``), so that a message is one line."""
    return _LINE_BREAKS.sub(lambda m: ascii(m.group())[1:-1], text)


def _os_message(exc: OSError) -> str:
    """``FILE: reason`` for an OSError (both files for a rename)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f"{' -> '.join(files)}: {reason}" if files else reason


def _budget(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    from snnc.ir import limits

    budget = getattr(args, "budget", None)
    return limits.using(budget) if budget is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------- argument parsing


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "compile":
        p = argparse.ArgumentParser(
            prog="snnc",
            description="Compile a trained ANN into a spiking network for a simulator or "
            "neuromorphic system. Other commands: " + ", ".join(COMMANDS) + " (snnc COMMAND --help).",
        )
        p.add_argument("model", help="model file (.onnx, .keras, .h5, .nir, .pt2, .pt, .snnir)")
        p.add_argument("-o", "--out", required=True, type=Path, help="new output directory")
        p.add_argument(
            "--force",
            action="store_true",
            help="replace an existing output directory of snnc's (one holding its snnc.json)",
        )
        p.add_argument(
            "--dump-ir", metavar="PASSES", help="write out/ir/NN-<pass>.snnir for 'all' or these passes (comma list)"
        )
        _compile_options(p)
    elif command == "run":
        p = argparse.ArgumentParser(prog="snnc run", description="Run a compiled network on its simulator.")
        p.add_argument("out", type=Path, help="directory written by 'snnc MODEL -o OUT'")
        p.add_argument(
            "--data",
            type=_data_file,
            help=".npz with x and y, or NAME:SPLIT such as mnist:test (default: the data given at compile time)",
        )
        p.add_argument("--samples", type=_count, help="number of samples (default: all)")
        p.add_argument("--seed", type=_seed, default=0, help=f"random seed, 0 to {MAX_SEED}")
        p.add_argument("--presentation-time", type=_presentation_time, help="ms per sample (default: compiled value)")
        p.add_argument(
            "--device", default="auto", help="target sim: host, a torch device (cuda) or auto (a GPU if torch sees one)"
        )
        _budget_option(p)
    elif command == "report":
        p = argparse.ArgumentParser(prog="snnc report", description="Print the mapping report of a compiled network.")
        p.add_argument("out", type=Path, help="directory written by 'snnc MODEL -o OUT'")
    elif command == "sweep":
        p = argparse.ArgumentParser(prog="snnc sweep", description="Compile and run a model over a grid of settings.")
        p.add_argument("model", help="model file")
        p.add_argument("-t", "--target", default="sim", help="target (default sim)")
        p.add_argument("--data", type=_data_file, required=True, help=".npz or NAME:SPLIT to evaluate on")
        p.add_argument("--calibration", type=_data_file, help="calibration data (default: the first 1000 of --data)")
        p.add_argument(
            "--param",
            action="append",
            required=True,
            metavar="KEY=V1,V2,...",
            help="a setting and its values; several --param span a grid",
        )
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed setting")
        p.add_argument("--samples", type=_count, help="samples per point (default: all)")
        p.add_argument("--jobs", type=_jobs, default=1, help=f"worker processes, 1 to {MAX_JOBS}")
        p.add_argument("--scheduler", help="address of a Dask scheduler to run the points on (tcp://host:port)")
        p.add_argument("-o", "--out", type=Path, required=True, help="folder for sweep.csv, sweep.json, sweep.png")
        p.add_argument("--seed", type=_seed, default=0, help=f"random seed, 0 to {MAX_SEED}")
        _budget_option(p)
    elif command == "ir":
        p = argparse.ArgumentParser(prog="snnc ir", description="Print the IR of a model after a pass.")
        p.add_argument("model", help="model file (.onnx, .keras, .h5, .nir, .pt2, .pt, .snnir)")
        p.add_argument("--after", metavar="PASS", help="stop after this pass (default: the input graph)")
        _compile_options(p)
    else:
        p = argparse.ArgumentParser(prog=f"snnc {command}", description=_COMMAND_HELP[command])
    p.add_argument("--debug", action="store_true", help="print the Python traceback of an error")
    return p


def _compile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--target", default="sim", help="target (see 'snnc targets'; default sim)")
    p.add_argument("--calibration", type=_data_file, help=".npz with x (and y) for normalization, or NAME:SPLIT")
    p.add_argument(
        "--data",
        type=_data_file,
        help=".npz evaluation data (or NAME:SPLIT: fashion-mnist, mnist, "
        "digits; train or test) that out/run.py uses by default",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a pass option or target setting")
    p.add_argument("--pipeline", help="replace the target's pass pipeline (see 'snnc passes')")
    p.add_argument("--seed", type=_seed, default=0, help=f"random seed, 0 to {MAX_SEED}")
    p.add_argument(
        "--input-shape",
        type=_shape,
        help="PyTorch state dicts and scripted TorchScript: the shape of one sample, e.g. 1,28,28 "
        "(.pt2 programs and traced TorchScript record it; if given, it must agree)",
    )
    p.add_argument("--module", help="PyTorch state_dict files: the module class, package.module:Class")
    _budget_option(p)


def _budget_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--budget",
        type=_budget_spec,
        metavar="KIND=N,...",
        help="size limits: neurons=N,synapses=N,bytes=N,nodes=N (default: see snnc.ir.limits)",
    )


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from ``parse``: its ValueError or SnncError becomes a usage error naming the value."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, SnncError) as exc:
            raise argparse.ArgumentTypeError(one_line(str(exc))) from None

    convert.__name__ = parse.__name__.strip("_")
    return convert


def _integer(text: str, low: int, high: int, what: str) -> int:
    stripped = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,20}", stripped):
        raise ValueError(f"{text!r}: expected {what}")
    value = int(stripped)
    if not low <= value <= high:
        raise ValueError(f"{text!r}: expected {what}")
    return value


@_checked
def _count(text: str) -> int:
    return _integer(text, 1, 10**12, "a positive whole number")


@_checked
def _seed(text: str) -> int:
    return _integer(text, 0, MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


@_checked
def _jobs(text: str) -> int:
    return _integer(text, 1, MAX_JOBS, f"a whole number from 1 to {MAX_JOBS}")


@_checked
def _presentation_time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected a number of milliseconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_PRESENTATION_MS):
        raise ValueError(f"{text!r}: expected milliseconds above 0 and at most {MAX_PRESENTATION_MS:g}")
    return value


@_checked
def _shape(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not 1 <= len(parts) <= MAX_SHAPE_DIMS:
        raise ValueError(f"{text!r}: expected 1 to {MAX_SHAPE_DIMS} sizes separated by commas, e.g. 1,28,28")
    return tuple(_integer(d, 1, 2**31 - 1, "positive sizes separated by commas, e.g. 1,28,28") for d in parts)


@_checked
def _budget_spec(text: str) -> Any:
    from snnc.ir import limits

    return limits.parse_budget(text)


def _data_file(text: str) -> Path:
    """A data file argument: a path, or a named data set (``fashion-mnist:test``) materialized."""
    from snnc.datasets import resolve

    try:
        return resolve(text)
    except Exception as exc:  # noqa: BLE001 - argparse turns ValueError/TypeError only into a usage error
        raise argparse.ArgumentTypeError(one_line(str(exc))) from None


def _input_shape(args: argparse.Namespace) -> Optional[tuple[int, ...]]:
    """``--input-shape``, its element count checked against the budget."""
    from snnc.ir import limits

    if args.input_shape is not None:
        limits.check("neurons", math.prod(args.input_shape), "--input-shape")
    return args.input_shape


_COMMAND_HELP = {
    "passes": "List the passes and each target's pipeline.",
    "targets": "List the targets and their limits.",
}


def _settings(items: list[str]) -> dict[str, str]:
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value.strip()
    return settings


# --------------------------------------------------------------------------- commands


def _calibration(args: argparse.Namespace) -> tuple[Any, Any, str, str]:
    """Calibration (x, y, description, file) from --calibration, --data, or a file beside the model."""
    from snnc.ir.runtime import load_data

    beside = Path(args.model).parent / CALIBRATION_BESIDE_MODEL
    if args.calibration is not None:
        path, note = args.calibration, str(args.calibration)
    elif args.data is not None:
        path = args.data
        note = f"first (up to) {CALIBRATION_SAMPLES} samples of {args.data}"
        print(f"snnc: calibrating on the {note} (no --calibration given)", file=sys.stderr)
    elif beside.is_symlink():
        raise CliError(
            f"{beside}: a symbolic link; snnc does not follow links it finds beside the model (pass --calibration FILE)"
        )
    elif beside.is_file():
        path, note = beside, str(beside)
        print(f"snnc: calibrating on {beside}, found beside the model", file=sys.stderr)
    else:
        return None, None, "none", "calibration data"
    # --data is what out/run.py evaluates on by default: it needs labels
    x, y = load_data(path, at_most=CALIBRATION_SAMPLES, require_y=path == args.data)
    if args.data is not None and path != args.data:
        load_data(args.data, at_most=1, require_y=True)
    return x, y, note, str(path)


def _compile(
    args: argparse.Namespace,
    stop_after: Optional[str] = None,
    dump: Optional[set[str]] = None,
    dump_dir: Optional[Path] = None,
) -> Any:
    import snnc

    x, y, note, calibration_file = _calibration(args)
    sources = {
        "model": str(Path(args.model)),
        "calibration": note,
        "data": str(args.data.resolve()) if args.data else None,
        "seed": args.seed,
    }
    if sources["data"] is None and args.calibration is not None:
        sources["data"] = str(args.calibration.resolve())
        sources["data_is_calibration"] = True
    return snnc.compile(
        args.model,
        args.target,
        calibration=x,
        calibration_labels=y,
        settings=_settings(args.set),
        pipeline=args.pipeline,
        seed=args.seed,
        dump_dir=dump_dir,
        dump=dump,
        stop_after=stop_after,
        sources=sources,
        input_shape=_input_shape(args),
        module=args.module,
        calibration_source=calibration_file,
    )


def _cmd_compile(args: argparse.Namespace) -> int:
    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    dump = {d.strip() for d in args.dump_ir.split(",")} if args.dump_ir else None
    start = time.perf_counter()
    with _dump_folder(dump is not None) as dump_dir:
        try:
            compiled = _compile(args, dump=dump, dump_dir=dump_dir)
        except SnncError as exc:  # the passes that ran, with their times, before the one-line error
            from snnc.pipeline import pass_records

            _print_records(pass_records(exc))
            raise
        try:
            out = compiled.emit(args.out, force=args.force, dump=dump_dir)
        except SnncError:
            _print_records(compiled.records)
            raise
    for d in compiled.diagnostics:
        print(str(d), file=sys.stderr)
    _print_records(compiled.records)
    print(f"snnc: wrote {out}/ for target {compiled.spec.name} in {time.perf_counter() - start:.2f} s")
    return 0


def _print_records(records: list) -> None:
    """The pass table: index, name, time and ops after each pass (flushed, so it precedes an error)."""
    for r in records:
        print(r.row())
    sys.stdout.flush()


@contextlib.contextmanager
def _dump_folder(wanted: bool) -> Any:
    """A temporary ``ir`` folder for --dump-ir (None when not wanted), removed on any exit."""
    if not wanted:
        yield None
        return
    tmp = tempfile.mkdtemp(prefix="snnc-ir-")
    try:
        dump_dir = Path(tmp) / "ir"
        dump_dir.mkdir()
        yield dump_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cmd_ir(args: argparse.Namespace) -> int:
    from snnc.ir import print_graph

    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    if args.after is None:
        import snnc

        sys.stdout.write(print_graph(snnc.load(args.model, _input_shape(args), args.module)))
        return 0
    compiled = _compile(args, stop_after=args.after)
    for d in compiled.diagnostics:
        print(str(d), file=sys.stderr)
    sys.stdout.write(print_graph(compiled.graph))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from snnc.runner import run_compiled

    results = run_compiled(
        args.out,
        data=args.data,
        samples=args.samples,
        seed=args.seed,
        presentation_time=args.presentation_time,
        device=args.device,
    )
    ann = results.get("ann_accuracy")
    ann_text = f"{ann:.4f}" if ann is not None else "n/a"
    if results.get("accuracy") is None:
        print(
            f"{results['target']}: mapped onto {results.get('cores')} cores; the machine did not run the network "
            f"(virtual board), so no accuracy; wrote {args.out / 'results.json'}"
        )
        return 0
    print(
        f"{results['target']}: accuracy {results['accuracy']:.4f} (ANN {ann_text}) on "
        f"{results['samples']} samples, {results['wall_time_s']:.1f} s; wrote {args.out / 'results.json'}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from snnc.report_text import format_report
    from snnc.runner import check_out_dir, read_json

    out = check_out_dir(args.out)
    path = out / "report.json"
    if not path.is_file():
        raise CliError(f"{path}: no mapping report (targets with hardware limits write one)")
    print(format_report(read_json(path), str(path)))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from snnc.sweep import SweepPoint, grid, plot, run_sweep, write_tables

    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    params = _grid_params(args.param)
    # absolute paths: Dask workers need not share this working directory (the files must be there)
    common = {
        "model": str(Path(args.model).resolve()),
        "target": args.target,
        "data": str(args.data.resolve()),
        "calibration": str(args.calibration.resolve()) if args.calibration else None,
        "settings": _settings(args.set),
        "samples": args.samples,
        "seed": args.seed,
        "budget": args.budget,
    }
    points = [SweepPoint(point=point, **common) for point in grid(params)]
    print(f"snnc: sweeping {len(points)} points of {', '.join(params)} on {args.target}", file=sys.stderr)
    try:
        rows = run_sweep(points, jobs=args.jobs, scheduler=args.scheduler)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    write_tables(rows, list(params), args.out)
    picture = plot(rows, params, args.out)
    widths = {k: max(len(v) for v in values) for k, values in params.items()}
    for row in rows:
        label = "  ".join(f"{k}={row[k]:<{widths[k]}}" for k in params)
        accuracy = "n/a" if row.get("accuracy") is None else f"{row['accuracy']:.4f}"
        result = f"error: {one_line(row['error'])}" if "error" in row else f"accuracy {accuracy}"
        print(f"{label}  {result}  ({row['seconds']:.1f} s)")
    print(f"snnc: wrote {args.out / 'sweep.csv'}, sweep.json" + (f", {picture.name}" if picture else ""))
    return 0


def _grid_params(items: list[str]) -> dict[str, list[str]]:
    """``--param KEY=V1,V2`` options as {key: values}; the grid they span is at most MAX_GRID_POINTS."""
    params: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        params[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not params[key.strip()]:
            raise CliError(f"--param {item!r}: expected KEY=V1,V2,...")
    points = math.prod(len(v) for v in params.values())
    if points > MAX_GRID_POINTS:
        raise CliError(f"--param: the grid has {points:,} points, more than {MAX_GRID_POINTS:,}")
    return params


def _cmd_passes(args: argparse.Namespace) -> int:
    from snnc.passes import ALL_PASSES
    from snnc.targets import TARGETS, get_target

    print("Passes (options in braces, e.g. normalize{percentile=99.9}; 'target' = the target's setting of that name):")
    for p in ALL_PASSES:
        defaults = p()
        opts = ", ".join(f"{k}={_pass_default(p, k, v)}" for k, v in defaults.options().items())
        print(f"  {p.name:<18} [{p.dialect}] {p.summary}" + (f"  {{{opts}}}" if opts else ""))
    print("\nPipelines:")
    for name in TARGETS:
        print(f"  {name:<12} {get_target(name).spec.pipeline}")
    return 0


def _pass_default(p: Any, option: str, value: Any) -> str:
    """A pass option's default as ``snnc passes`` shows it: ``target.weight-bits`` for a target setting."""
    home = p.home(option.replace("-", "_"))
    if value is None and home is not None:
        return "target" if home == option.replace("-", "_") else f"target.{home.replace('_', '-')}"
    return value if isinstance(value, str) else _shown_value(value)


def _shown_value(value: Any) -> str:
    """A setting's value as ``snnc targets`` prints it (``inf`` for no leak)."""
    return "inf" if value == math.inf else json.dumps(value)


def _cmd_targets(args: argparse.Namespace) -> int:
    from snnc.pipeline import parse_pipeline
    from snnc.targets import TARGETS, get_target

    print("Targets: settings (--set KEY=VALUE) with their defaults and what reads them; a setting nothing reads,")
    print("or a value the target does not take, is refused.")
    for name in TARGETS:
        spec = get_target(name).spec
        passes = parse_pipeline(spec.pipeline)
        print(f"\n{name}: {spec.description}")
        refused = []
        for part in ("options", "machine"):
            print(f"  {part}:")  # the facts of a machine without limits are all refused: see the last line
            for f in dataclasses.fields(getattr(spec, part)):
                key, value = f.name.replace("_", "-"), getattr(getattr(spec, part), f.name)
                readers = [p.name for p in passes if f.name in p.reads] + (["target"] * (f.name in spec.reads))
                values, reason = spec.accepts.get(f.name, (None, ""))
                if not readers or values == ():
                    refused.append(key)
                    continue
                only = f"; takes {' or '.join(map(str, values))} only ({reason})" if values else ""
                print(f"    {key:<24} {_shown_value(value):<10} {', '.join(readers)}{only}")
        for key, (values, reason) in spec.accepts.items():
            if not values:
                print(f"  {key.replace('_', '-')} is fixed: {reason}")
        print(f"  not read by the {name} pipeline or target (refused): {', '.join(sorted(refused)) or 'none'}")
        energy = {k: v for k, v in dataclasses.asdict(spec.energy).items() if v is not None}
        print(f"  energy model: {json.dumps(energy) if energy else 'none'}")
    return 0


_COMMANDS = {
    "compile": _cmd_compile,
    "run": _cmd_run,
    "report": _cmd_report,
    "sweep": _cmd_sweep,
    "ir": _cmd_ir,
    "passes": _cmd_passes,
    "targets": _cmd_targets,
}

if __name__ == "__main__":
    sys.exit(main())
