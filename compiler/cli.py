"""The ``snnc`` command line.

    snnc MODEL --target T -o OUT [--calibration F] [--data F] [--set k=v] [--dump-ir all]
    snnc run OUT --data F --samples N
    snnc report OUT
    snnc sweep MODEL -t T --data F --param KEY=V1,V2 [--param ...] [--jobs N] -o OUT
    snnc ir MODEL --after PASS [--target T]
    snnc passes
    snnc targets
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

COMMANDS = ("run", "report", "sweep", "ir", "passes", "targets")
CALIBRATION_SAMPLES = 1000
CALIBRATION_BESIDE_MODEL = "calibration.npz"


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        command, argv = argv[0], argv[1:]
    else:
        command = "compile"
    args = _parser(command).parse_args(argv)
    try:
        return _COMMANDS[command](args)
    except CliError as exc:
        print(f"snnc: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"snnc: error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - known user errors are one line, exit 1
        from snnc.ir import IRError

        if isinstance(exc, IRError):
            print(f"snnc: error: {exc}", file=sys.stderr)
            return 1
        raise


# --------------------------------------------------------------------------- argument parsing


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "compile":
        p = argparse.ArgumentParser(
            prog="snnc",
            description="Compile a trained ANN into a spiking network for a simulator or "
            "neuromorphic system. Other commands: " + ", ".join(COMMANDS) + " (snnc COMMAND --help).",
        )
        p.add_argument("model", help="model file (.onnx, .keras, .h5, .nir, .pt2, .pt, .snnir)")
        p.add_argument("-o", "--out", required=True, type=Path, help="output directory")
        p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
        p.add_argument(
            "--dump-ir", metavar="PASSES", help="write out/ir/NN-<pass>.snnir for 'all' or these passes (comma list)"
        )
        _compile_options(p)
    elif command == "run":
        p = argparse.ArgumentParser(prog="snnc run", description="Run a compiled network on its simulator.")
        p.add_argument("out", type=Path, help="directory written by 'snnc MODEL -o OUT'")
        p.add_argument("--data", type=_data_file, help=".npz with x and y, or NAME:SPLIT such as mnist:test "
                       "(default: the data given at compile time)")
        p.add_argument("--samples", type=int, help="number of samples (default: all)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--presentation-time", type=float, help="ms per sample (default: compiled value)")
    elif command == "report":
        p = argparse.ArgumentParser(prog="snnc report", description="Print the mapping report of a compiled network.")
        p.add_argument("out", type=Path, help="directory written by 'snnc MODEL -o OUT'")
    elif command == "sweep":
        p = argparse.ArgumentParser(prog="snnc sweep", description="Compile and run a model over a grid of settings.")
        p.add_argument("model", help="model file")
        p.add_argument("-t", "--target", default="sim", help="target (default sim)")
        p.add_argument("--data", type=_data_file, required=True, help=".npz or NAME:SPLIT to evaluate on")
        p.add_argument("--calibration", type=_data_file, help="calibration data (default: the first 1000 of --data)")
        p.add_argument("--param", action="append", required=True, metavar="KEY=V1,V2,...",
                       help="a setting and its values; several --param span a grid")  # fmt: skip
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a fixed setting")
        p.add_argument("--samples", type=int, help="samples per point (default: all)")
        p.add_argument("--jobs", type=int, default=1, help="worker processes")
        p.add_argument("--scheduler", help="address of a Dask scheduler to run the points on (tcp://host:port)")
        p.add_argument("-o", "--out", type=Path, required=True, help="folder for sweep.csv, sweep.json, sweep.png")
        p.add_argument("--seed", type=int, default=0)
    elif command == "ir":
        p = argparse.ArgumentParser(prog="snnc ir", description="Print the IR of a model after a pass.")
        p.add_argument("model", help="model file (.onnx, .keras, .h5, .nir, .pt2, .pt, .snnir)")
        p.add_argument("--after", metavar="PASS", help="stop after this pass (default: the input graph)")
        _compile_options(p)
    else:
        p = argparse.ArgumentParser(prog=f"snnc {command}", description=_COMMAND_HELP[command])
    return p


def _compile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--target", default="sim", help="target (see 'snnc targets'; default sim)")
    p.add_argument("--calibration", type=_data_file, help=".npz with x (and y) for normalization, or NAME:SPLIT")
    p.add_argument("--data", type=_data_file, help=".npz evaluation data (or NAME:SPLIT: fashion-mnist, mnist, "
                   "digits; train or test) that out/run.py uses by default")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a pass option or target setting"
    )
    p.add_argument("--pipeline", help="replace the target's pass pipeline (see 'snnc passes')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-shape", help="PyTorch models: the shape of one sample, e.g. 1,28,28")
    p.add_argument("--module", help="PyTorch state_dict files: the module class, package.module:Class")


def _data_file(text: str) -> Path:
    """A data file argument: a path, or a named data set (``fashion-mnist:test``) materialized."""
    from snnc.datasets import resolve

    try:
        return resolve(text)
    except Exception as exc:  # argparse turns ValueError/TypeError only into a usage error
        raise argparse.ArgumentTypeError(str(exc)) from None


def _input_shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise CliError(f"--input-shape {text!r}: expected integers separated by commas, e.g. 1,28,28") from None


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


def _calibration(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """Calibration (x, y, description) from --calibration, --data, or a file beside the model."""
    from snnc.targets.datafiles import load_data

    beside = Path(args.model).parent / CALIBRATION_BESIDE_MODEL
    if args.calibration is not None:
        path, note = args.calibration, str(args.calibration)
    elif args.data is not None:
        path = args.data
        note = f"first (up to) {CALIBRATION_SAMPLES} samples of {args.data}"
        print(f"snnc: calibrating on the {note} (no --calibration given)", file=sys.stderr)
    elif beside.exists():
        path, note = beside, str(beside)
        print(f"snnc: calibrating on {beside}, found beside the model", file=sys.stderr)
    else:
        return None, None, "none"
    x, y = load_data(path)
    return x[:CALIBRATION_SAMPLES], None if y is None else y[:CALIBRATION_SAMPLES], note


def _compile(args: argparse.Namespace, stop_after: Optional[str] = None, dump: Optional[set[str]] = None,
             dump_dir: Optional[Path] = None) -> Any:
    import snnc

    x, y, note = _calibration(args)
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
        args.model, args.target, calibration=x, calibration_labels=y, settings=_settings(args.set),
        pipeline=args.pipeline, seed=args.seed, dump_dir=dump_dir, dump=dump, stop_after=stop_after,
        sources=sources, input_shape=_input_shape(args.input_shape), module=args.module,
    )  # fmt: skip


def _cmd_compile(args: argparse.Namespace) -> int:
    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    dump = {d.strip() for d in args.dump_ir.split(",")} if args.dump_ir else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snnc-ir-") as tmp:
        dump_dir = Path(tmp) / "ir"
        if dump is not None:
            dump_dir.mkdir()
        compiled = _compile(args, dump=dump, dump_dir=dump_dir if dump is not None else None)
        out = compiled.emit(args.out, force=args.force, dump=dump_dir if dump is not None else None)
    for d in compiled.diagnostics:
        print(str(d), file=sys.stderr)
    for r in compiled.records:
        print(f"  {r.index:2d} {r.name:<18} {r.seconds * 1000:8.1f} ms  {r.ops:4d} ops")
    print(f"snnc: wrote {out}/ for target {compiled.spec.name} in {time.perf_counter() - start:.2f} s")
    return 0


def _cmd_ir(args: argparse.Namespace) -> int:
    from snnc.ir import print_graph

    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    if args.after is None:
        import snnc

        sys.stdout.write(print_graph(snnc.load(args.model, _input_shape(args.input_shape), args.module)))
        return 0
    compiled = _compile(args, stop_after=args.after)
    for d in compiled.diagnostics:
        print(str(d), file=sys.stderr)
    sys.stdout.write(print_graph(compiled.graph))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from snnc.runner import run_compiled

    results = run_compiled(args.out, data=args.data, samples=args.samples, seed=args.seed,
                           presentation_time=args.presentation_time)  # fmt: skip
    ann = results.get("ann_accuracy")
    ann_text = f"{ann:.4f}" if ann is not None else "n/a"
    if results.get("accuracy") is None:
        print(f"{results['target']}: mapped onto {results.get('cores')} cores; the machine did not run the network "
              f"(virtual board), so no accuracy; wrote {args.out / 'results.json'}")  # fmt: skip
        return 0
    print(
        f"{results['target']}: accuracy {results['accuracy']:.4f} (ANN {ann_text}) on "
        f"{results['samples']} samples, {results['wall_time_s']:.1f} s; wrote {args.out / 'results.json'}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from snnc.report_text import format_report

    path = args.out / "report.json"
    if not path.is_file():
        raise CliError(f"{path}: no mapping report (targets with hardware limits write one)")
    print(format_report(json.loads(path.read_text())))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from snnc.sweep import SweepPoint, grid, plot, run_sweep, write_tables

    if not Path(args.model).exists():
        raise CliError(f"{args.model}: no such file")
    params: dict[str, list[str]] = {}
    for item in args.param:
        key, sep, values = item.partition("=")
        if not sep or not values.strip():
            raise CliError(f"--param {item!r}: expected KEY=V1,V2,...")
        params[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    # absolute paths: Dask workers need not share this working directory (the files must be there)
    common = {"model": str(Path(args.model).resolve()), "target": args.target, "data": str(args.data.resolve()),
              "calibration": str(args.calibration.resolve()) if args.calibration else None,
              "settings": _settings(args.set),
              "samples": args.samples, "seed": args.seed}  # fmt: skip
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
        result = f"error: {row['error']}" if "error" in row else f"accuracy {row['accuracy']:.4f}"
        print(f"{label}  {result}  ({row['seconds']:.1f} s)")
    print(f"snnc: wrote {args.out / 'sweep.csv'}, sweep.json" + (f", {picture.name}" if picture else ""))
    return 0


def _cmd_passes(args: argparse.Namespace) -> int:
    from snnc.passes import ALL_PASSES
    from snnc.targets import TARGETS, get_target

    print("Passes (options in braces, e.g. normalize{percentile=99.9}):")
    for p in ALL_PASSES:
        defaults = p()
        opts = ", ".join(f"{k}={v}" for k, v in defaults.options().items())
        print(f"  {p.name:<18} [{p.dialect}] {p.summary}" + (f"  {{{opts}}}" if opts else ""))
    print("\nPipelines:")
    for name in TARGETS:
        print(f"  {name:<12} {get_target(name).spec.pipeline}")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from snnc.targets import TARGETS, get_target

    for name in TARGETS:
        spec = get_target(name).spec
        print(f"{name}: {spec.description}")
        for f in dataclasses.fields(spec):
            if f.name not in ("name", "description", "pipeline"):
                print(f"    {f.name.replace('_', '-'):<18} {json.dumps(getattr(spec, f.name))}")
    return 0


_COMMANDS = {
    "compile": _cmd_compile, "run": _cmd_run, "report": _cmd_report, "sweep": _cmd_sweep, "ir": _cmd_ir,
    "passes": _cmd_passes,
    "targets": _cmd_targets,
}  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
