"""Run this network on snnc's reference simulator (target sim); written by snnc (the same file for every network).

    python run.py --data test.npz --samples 500

Prints the accuracy and writes results.json beside this file.
"""

import argparse
from pathlib import Path

from snnc.runner import run_compiled

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", type=Path, help=".npz with x and y (default: recorded in snnc.json)")
parser.add_argument("--samples", type=int, help="number of samples (default: all)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--presentation-time", type=float, help="ms per sample")
args = parser.parse_args()

results = run_compiled(HERE, args.data, args.samples, args.seed, args.presentation_time)
print(
    f"sim: accuracy {results['accuracy']:.4f} (ANN {results['ann_accuracy']:.4f}) "
    f"on {results['samples']} samples in {results['wall_time_s']:.2f} s; wrote results.json"
)
