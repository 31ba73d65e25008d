"""The Keras frontend (.keras, legacy .h5, in-memory) against Keras itself on the torch backend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import snnc  # noqa: E402
from snnc.api import _fit_inputs  # noqa: E402
from snnc.frontends import FrontendError  # noqa: E402
from snnc.ir.semantics.ann import predict  # noqa: E402

L = keras.layers


def _mlp() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((12,)),
            L.Dense(16, activation="relu"),
            L.Dropout(0.5),
            L.Reshape((16,)),
            L.Dense(4),
        ]
    )


def _cnn() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            L.Conv2D(6, 3, padding="same", activation="relu"),
            L.BatchNormalization(),
            L.AveragePooling2D(2),
            L.Conv2D(8, 3, strides=2, padding="same"),
            L.ReLU(max_value=6.0),
            L.MaxPooling2D(2, padding="same"),
            L.Flatten(),
            L.Dense(5, activation="softmax"),
        ]
    )


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


def test_keras_torch_and_onnx_give_the_same_ir(tmp_path: Path) -> None:
    """One network in three frameworks prints identically after canonicalize, once op ids are
    renamed in order. Weight layouts differ on the way in (Keras kernels are (kh, kw, in, out)
    and its Flatten is H, W, C) and are converted exactly."""
    import re

    import torch
    from torch import nn

    from snnc.ir import print_graph

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 3))
    torch.onnx.export(
        net.eval(),
        torch.rand(1, 1, 8, 8),
        tmp_path / "m.onnx",
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(4, 3, padding="same", activation="relu"),
            L.AveragePooling2D(2),
            L.Flatten(),
            L.Dense(3),
        ]
    )
    conv_w, conv_b = (p.detach().numpy() for p in net[0].parameters())
    fc_w, fc_b = (p.detach().numpy() for p in net[4].parameters())
    model.layers[0].set_weights([conv_w.transpose(2, 3, 1, 0), conv_b])
    model.layers[3].set_weights([fc_w.reshape(3, 4, 4, 4).transpose(2, 3, 1, 0).reshape(64, 3), fc_b])
    texts = []
    for source in (snnc.load(net, input_shape=(1, 8, 8)), snnc.load(tmp_path / "m.onnx"), snnc.load(model)):
        graph = snnc.compile(source, "sim", pipeline="canonicalize").graph
        graph.attrs.pop("input_layout", None)  # the one intended difference: how data files are laid out
        order = {node: f"v{i}" for i, node in enumerate(graph.topo())}
        rename = lambda m, order=order: m.group(1) + order[m.group(2)]  # noqa: E731
        texts.append(re.sub(r"([%@])(\w+)", rename, print_graph(graph)))
    assert texts[0] == texts[1] == texts[2]
