"""What every target writes for the Fashion-MNIST examples: emit time, file sizes, synapse forms.

    python benchmarks/bench_output_size.py [--reps 3]

Compiles examples/fashion_mnist/{mlp,cnn}.onnx for each target with the calibration images beside
them, emits ``--reps`` times interleaved (target after target, then again; the median emit time),
and records the bytes of weights.npz (the arrays the run script reads), of the IR copies
model.npz and ann.npz, and of the whole folder, with how network.json keeps each projection's
synapses (its ``kind``, or ``matrix`` for GeNN; a SpiNNaker list by its stored form). A target
that refuses a network gets its error. Prints a table and saves benchmarks/results/output_size.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from bench_peer import machine_info
from bench_resnet import TARGETS, compile_timed, emit_timed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "output_size.json"
EXAMPLES = ROOT / "examples" / "fashion_mnist"
IR_COPIES = ("model.npz", "ann.npz")


def synapse_forms(network: dict) -> dict[str, int]:
    """How many projections network.json keeps in each form ("dense", "conv", "list", ...)."""
    forms: Counter = Counter()
    for proj in network.get("projections", []):
        stored = proj.get("synapses", proj)  # SpiNNaker nests a list's stored form
        forms[stored.get("kind") or stored.get("matrix") or "?"] += 1
    return dict(sorted(forms.items()))


def sizes(out: Path) -> dict:
    """Bytes of weights.npz, of the IR copies and of the whole folder, and the synapse forms."""
    files = {f.name: f.stat().st_size for f in out.rglob("*") if f.is_file()}
    row = {"weights_npz_bytes": files.get("weights.npz"), "total_bytes": sum(files.values())}
    row["ir_copies_bytes"] = sum(files.get(name, 0) for name in IR_COPIES)
    network = out / "network.json"
    if network.exists():
        row["synapse_forms"] = synapse_forms(json.loads(network.read_text()))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="interleaved emits per target (median time)")
    args = parser.parse_args()
    with np.load(EXAMPLES / "calibration.npz") as data:
        calib = {"x": data["x"], "y": data["y"]}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("mlp", "cnn"):
            compiled = {}
            for target in TARGETS:
                compiled[target], row = compile_timed(EXAMPLES / f"{model}.onnx", target, calib, {})
                rows.append({"model": model, "target": target, "compiles": row["compiles"], "error": row.get("error")})
            emits: dict[str, list[float]] = {t: [] for t in TARGETS if compiled[t] is not None}
            for rep in range(args.reps):
                for target in emits:
                    out = Path(tmp) / f"{model}-{target}-{rep}"
                    emits[target].append(emit_timed(compiled[target], out)["seconds"])
            for row in rows[-len(TARGETS) :]:
                if row["target"] in emits:
                    row["emit_s"] = statistics.median(emits[row["target"]])
                    row |= sizes(Path(tmp) / f"{model}-{row['target']}-0")
    print("| model | target | weights.npz MB | IR copies MB | folder MB | emit s | synapses |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if not row["compiles"]:
            print(f"| {row['model']} | {row['target']} | refused: {row['error']} | | | | |")
            continue
        weights = "-" if row["weights_npz_bytes"] is None else f"{row['weights_npz_bytes'] / 1e6:.2f}"
        forms = ", ".join(f"{k} {v}" for k, v in row.get("synapse_forms", {}).items()) or "-"
        print(
            f"| {row['model']} | {row['target']} | {weights} | {row['ir_copies_bytes'] / 1e6:.2f} | "
            f"{row['total_bytes'] / 1e6:.2f} | {row['emit_s']:.2f} | {forms} |"
        )
    result = {"reps": args.reps, "machine": machine_info(), "calibration": "examples/fashion_mnist/calibration.npz"}
    RESULTS.write_text(json.dumps(result | {"rows": rows}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
