"""Fuzzing the ``.snnir`` reader: mutated valid files may only fail with snnc's own errors.

    python tests/fuzz_snnir.py [--count 100000] [--seed 0] [--out fuzz-failures]

Each case takes a valid model (text plus sidecar ``.npz``), mutates it (byte flips, token
insertions and deletions, numbers replaced by huge, NaN or long values, deep nesting, spliced
lines, sometimes a damaged sidecar), then loads and verifies it. Anything but an
:class:`~snnc.ir.errors.SnncError` is a failure: the input is saved under ``--out`` and the
exit code is 1. ``make fuzz`` runs 100,000 cases; tests/test_fuzz_snnir.py runs a few hundred
through hypothesis.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from snnc.ir import Graph, SnncError, load, parse_graph, print_graph, save, verify
from snnc.ir import ops as ir

_TOKEN = re.compile(r"\s+|[%@][A-Za-z0-9_.]+|[A-Za-z_][A-Za-z0-9_.]*|[-+]?[0-9][0-9.eE+-]*|\"(?:\\.|[^\"\\])*\"|.")
_NUMBER = re.compile(r"(?<![A-Za-z_%@.])[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?")
NUMBERS = [
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0.0",
    "1e-9",
    "1e308",
    "1e999",
    "4294967297",
    "9" * 25,
    "9" * 5000,
    "1.5",
    "true",
    '"1"',
    "[]",
    "[1, 2]",
    "0x10",
    "2",
    "3",
    "0.5",
    "-5",
    "100",
    "1000000",
    "1e6",
]
TOKENS = [
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ",",
    "=",
    ":",
    "<",
    ">",
    "%in",
    "%x",
    "@w",
    "@fc.weight",
    "snnir",
    "graph",
    "return",
    "tensor",
    "f32",
    "i8",
    "bool",
    "ann.dense",
    "snn.population",
    "ann.frob",
    '"',
    '"\\"\\"\\""',
    '"\\u0000"',
    "\\",
    "#",
    "\n",
    "\x00",
    "\u00e9",
    "x" * 300,
    "dt",
    "shape",
    "weight",
    *NUMBERS,
]


def seed_graphs() -> list[Graph]:
    """Small valid graphs covering the ops, attributes and tensors of both dialects."""
    rng = np.random.default_rng(0)
    ann = Graph({"input_layout": "NCHW", "note": "seed"})
    x = ann.add("in", ir.Input(shape=(2, 6, 6)))
    w = ann.add_tensor("conv.weight", rng.normal(size=(3, 2, 3, 3)).astype(np.float32))
    b = ann.add_tensor("conv.bias", np.zeros(3, np.float32))
    y = ann.add("conv", ir.Conv2d(weight=w, bias=b, pads=(1, 1, 1, 1), activation="relu"), [x])
    y = ann.add("pool", ir.AvgPool2d(kernel=(2, 2), strides=(2, 2)), [y])
    y = ann.add("pad", ir.Pad(pads=(0, 1, 1, 0, 0, 0), value=0.5), [y])
    y = ann.add("flat", ir.Flatten(), [ann.add("clip", ir.Clip(min=0.0, max=6.0), [y])])
    w = ann.add_tensor("fc.weight", rng.normal(size=(4, 48)).astype(np.float32))
    y = ann.add("fc", ir.Dense(weight=w, activation="relu"), [y])
    y = ann.add("cat", ir.Concat(axis=0), [y, ann.add("s", ir.Scale(factor=0.5), [y])])
    ann.outputs = [ann.add("sm", ir.Softmax(axis=0), [ann.add("drop", ir.Dropout(ratio=0.1), [y])])]
    snn = Graph({"dt": 0.5, "presentation_time": 50.0, "instances": 2, "pause": 5.0})
    src = snn.add("src", ir.Source(shape=(4,), encoding="poisson", max_rate=200.0))
    w = snn.add_tensor("p.weight", rng.normal(size=(3, 4)).astype(np.float32))
    p = snn.add("p", ir.Projection(connectivity="dense", weight=w, delay=1.0), [src])
    bias = snn.add_tensor("pop.i_offset", np.ones(3, np.float32))
    pop = snn.add(
        "pop",
        ir.Population(v_threshold=1.0, tau_m=20.0, v_min=-1.0, i_offset=bias, per_core=(2,), weight_shift=(3, 2)),
        [p],
    )
    q = snn.add("q", ir.Projection(connectivity="one_to_one", scale=0.5, post_shape=(3,)), [pop])
    snn.outputs = [snn.add("out", ir.Readout(mode="membrane"), [snn.add("pop2", ir.Population(), [q])])]
    return [ann, snn]


def mutate(text: str, rng: random.Random) -> str | bytes:
    """One to three random mutations of ``text``; the result is bytes after a byte flip."""
    data: str | bytes = text
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(
            ["flip", "insert", "delete", "number", "number", "number", "number", "nest", "splice", "duplicate", "drop"]
        )
        if kind == "flip":
            raw = bytearray(data.encode() if isinstance(data, str) else data)
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            data = bytes(raw)
            continue
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        tokens = _TOKEN.findall(text)
        if kind == "insert":
            tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(TOKENS))
        elif kind == "delete" and tokens:
            start = rng.randrange(len(tokens))
            del tokens[start : start + rng.randint(1, 3)]
        elif kind == "number":
            spots = list(_NUMBER.finditer(text))
            if spots:
                m = rng.choice(spots)
                tokens = [text[: m.start()], rng.choice(NUMBERS), text[m.end() :]]
        elif kind == "nest":
            depth = rng.choice([2, 20, 1000, 5000])
            at = rng.randrange(len(tokens) + 1)
            tokens[at:at] = ["[" * depth, "1", "]" * rng.choice([0, depth])]
        elif kind == "splice":
            lines = "".join(tokens).splitlines(keepends=True)
            if rng.random() < 0.3:
                rng.shuffle(lines)
            elif lines:
                lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
            tokens = lines
        elif kind == "drop":  # one attribute left out (defaults and required attributes)
            joined = "".join(tokens)
            spots = list(re.finditer(r"(?:, |\{)[a-z_]+ = (?:\[[^\]]*\]|[^,{}\[]+)", joined))
            if spots:
                m = rng.choice(spots)
                tokens = [joined[: m.start()], "{" if m.group().startswith("{") else "", joined[m.end() :]]
        elif kind == "duplicate":  # an attribute block with every attribute twice
            joined = "".join(tokens)
            blocks = list(re.finditer(r"\{([^{}]+)\}", joined))
            if blocks:
                m = rng.choice(blocks)
                tokens = [joined[: m.start()], "{" + m.group(1) + ", " + m.group(1) + "}", joined[m.end() :]]
        data = "".join(tokens)
    return data


def check(data: str | bytes, folder: Path) -> None:
    """Load ``data`` (beside the seed's sidecar) and verify it; raises only what is not an SnncError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow, ...) means a value slipped through
        try:
            if isinstance(data, bytes):
                path = folder / "m.snnir"
                path.write_bytes(data)
                graph = load(path)
            else:
                graph = parse_graph(data, _sidecar_arrays(folder), source="m.snnir")
            verify(graph)
            print_graph(graph)
        except SnncError as exc:
            if "\n" in str(exc):
                raise AssertionError(f"an error message of several lines: {exc!r}") from None


_ARRAYS: dict[Path, dict[str, np.ndarray]] = {}


def _sidecar_arrays(folder: Path) -> dict[str, np.ndarray]:
    if folder not in _ARRAYS:
        _ARRAYS[folder] = load(folder / "seed.snnir").tensors
    return _ARRAYS[folder]


def prepare(root: Path) -> list[tuple[str, Path]]:
    """The seeds: (text, folder holding the text as seed.snnir and m.npz, its sidecar)."""
    seeds = []
    for i, graph in enumerate(seed_graphs()):
        folder = root / f"seed{i}"
        folder.mkdir()
        save(graph, folder / "seed.snnir")
        (folder / "m.npz").write_bytes((folder / "seed.npz").read_bytes())
        seeds.append(((folder / "seed.snnir").read_text(), folder))
    return seeds


def run(count: int, seed: int, out: Path, progress: bool = True) -> int:
    """Run ``count`` cases; returns the number of failures (saved under ``out``)."""
    rng = random.Random(seed)
    failures = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = prepare(Path(tmp))
        for i in range(count):
            text, folder = rng.choice(seeds)
            data = mutate(text, rng)
            try:
                check(data, folder)
            except Exception:  # noqa: BLE001 - a failure of the fuzzer's property, kept for a regression test
                failures += 1
                out.mkdir(parents=True, exist_ok=True)
                (out / f"case{i}.snnir").write_bytes(data if isinstance(data, bytes) else data.encode())
                (out / f"case{i}.txt").write_text(traceback.format_exc())
            if progress and (i + 1) % 10_000 == 0:
                print(f"{i + 1:,} cases, {failures} failures, {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{count:,} mutations in {time.perf_counter() - start:.1f} s: {failures} failures", flush=True)
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    args = parser.parse_args()
    sys.exit(1 if run(args.count, args.seed, args.out) else 0)


if __name__ == "__main__":
    main()
