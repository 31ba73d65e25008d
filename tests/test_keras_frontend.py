"""The Keras frontend (.keras, legacy .h5, in-memory) against Keras itself on the torch backend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import snnc  # noqa: E402
from snnc.ann_interpreter import predict  # noqa: E402
from snnc.api import _fit_inputs  # noqa: E402
from snnc.frontends import FrontendError  # noqa: E402

L = keras.layers


def _mlp() -> keras.Model:
    return keras.Sequential([keras.Input((12,)), L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(4)])


def _cnn() -> keras.Model:
    return keras.Sequential([
        keras.Input((10, 10, 2)), L.Conv2D(6, 3, padding="same", activation="relu"), L.BatchNormalization(),
        L.AveragePooling2D(2), L.Conv2D(8, 3, strides=2, padding="same"), L.ReLU(max_value=6.0),
        L.MaxPooling2D(2, padding="same"), L.Flatten(), L.Dense(5, activation="softmax"),
    ])  # fmt: skip


def _residual() -> keras.Model:
    inp = keras.Input((8, 8, 3))
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    h = L.Conv2D(4, 2, activation="relu")(h)
    h = L.Add()([h, L.Activation("relu")(L.Conv2D(4, 3, padding="same")(h))])
    return keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(h)))


def _concat_depthwise() -> keras.Model:
    inp = keras.Input((8, 8, 2))
    a = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(inp)
    b = L.Conv2D(3, 1, activation="relu")(inp)
    h = L.Concatenate()([a, b])
    h = L.AveragePooling2D(2, padding="same")(h)
    return keras.Model(inp, L.Dense(4)(L.Flatten()(h)))


MODELS = {"mlp": _mlp, "cnn": _cnn, "residual": _residual, "concat_depthwise": _concat_depthwise}


def _randomize(model: keras.Model) -> None:
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.5, b + 0.1, rng.normal(0, 0.5, m.shape), rng.uniform(0.5, 2, v.shape)])


@pytest.mark.parametrize("form", ["keras", "h5", "memory"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_matches_keras(name: str, form: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = MODELS[name]()
    _randomize(model)
    shape = model.inputs[0].shape[1:]
    x = np.random.default_rng(1).random((8, *shape), dtype=np.float32)
    ref = np.asarray(model.predict(x, verbose=0))
    if form == "memory":
        graph = snnc.load(model)
    else:
        path = tmp_path / f"m.{form}"
        model.save(path)
        graph = snnc.load(path)
    ours = predict(graph, _fit_inputs(graph, x, "test data"))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_unsupported_layers_listed(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4,)), L.Dense(4), L.LayerNormalization(), L.Dense(2, name="last")])
    model.add(L.GaussianNoise(0.1))
    path = tmp_path / "u.keras"
    model.save(path)
    with pytest.raises(FrontendError) as err:
        snnc.load(path)
    assert "LayerNormalization" in str(err.value) and "GaussianNoise" in str(err.value)
    assert "\n" not in str(err.value)
