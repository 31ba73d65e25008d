"""Run this network on snnc's reference simulator (target sim); written by snnc (the same file for every network).

    python run.py --data test.npz --samples 500

Prints the accuracy and writes results.json (and outputs.npz) beside this file; `snnc run` adds the
report and plots. Needs snnc (it is snnc's simulator).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

if __package__:  # imported from snnc (snnc.targets.sim.run_sim)
    from snnc.ir import runtime
else:  # run as out/run.py, with snnc_runtime.py beside it
    import snnc_runtime as runtime

HERE = Path(__file__).resolve().parent


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The common run-script arguments with --seed and --presentation-time."""
    p = runtime.argument_parser(__doc__, HERE, seed=True, presentation_time=True, ann=False)
    p.add_argument("--device", default="auto", help="host, a torch device (cuda) or auto (default: a GPU if any)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """Simulate the network in --dir on the data, add the ANN's accuracy, write results.json."""
    args = parse_args(argv)
    from snnc.ir import load
    from snnc.ir.semantics.ann import accuracy
    from snnc.targets.base import RunRequest
    from snnc.targets.sim.target import SimTarget

    data = runtime.data_path(args.dir, args.data)
    results = SimTarget().run(RunRequest(args.dir, data, args.samples, args.seed, args.presentation_time, args.device))
    ann = load(args.dir / "ann.snnir")
    x, y = runtime.load_data(data, results["samples"])
    reference = None
    if ann.dialect == "ann":
        shape = ann.shape(ann.ops_of("ann.input")[0])
        if runtime.steps_in(x.shape, shape) is None:  # an ANN has no reference for inputs over time
            reference = accuracy(ann, runtime.to_model_layout(x, shape, ann.attrs.get("input_layout")), y)
    results.update(ann_accuracy=reference, data=str(data))
    runtime.write_results(args.dir, results)
    ann_text = "n/a" if results["ann_accuracy"] is None else f"{results['ann_accuracy']:.4f}"
    print(
        f"sim: accuracy {results['accuracy']:.4f} (ANN {ann_text}) "
        f"on {results['samples']} samples in {results['wall_time_s']:.2f} s; wrote results.json"
    )
    return results


if __name__ == "__main__":
    main()
