"""Strided, dilated, non-square and residual convolutions on SpiNNaker: the synapses sPyNNaker makes
equal the ones snnc's IR means.

sPyNNaker 7.4.1's ConvolutionConnector has no Python method that lists its synapses: its kernel
loop runs on the cores (neural_modelling/src/neuron/local_only/local_only_conv_impl.c). So the
emitted run.py's projections are built here with the real connector classes and a recording
``sim``, and each ConvolutionConnector's own data (``get_local_only_data``, ``get_post_shape``,
``get_encoded_kernel_weights``: the words and weights the core receives) is run through a line by
line transcription of that loop (7.4.1's ``map_pre_to_post`` and ``do_convolution_operation``,
with its ``div_by_const``). Then run.py maps the network on a virtual board.
"""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from test_spinnaker import _compile, _run_virtual

from snnc.ir import load
from snnc.ir.semantics.connectivity import connections
from snnc.targets.spinnaker import run_spinnaker
from snnc.targets.spinnaker.placement import placed_cores, planned_cores, projection_calls

pytestmark = pytest.mark.spinnaker
spynnaker = pytest.importorskip("spynnaker", reason="install the [spinnaker] extra")


def _residual_onnx(folder: Path, samples: int) -> tuple[Path, Path]:
    """x (1x8x8) -> relu(conv3x3 stride 2) -> relu(conv3x3 + conv1x1 stride 2 of x) -> relu(conv(3x1) +
    identity) -> relu(conv3x3 dilation 2) -> relu(conv2x2 padded below and right) -> global average
    pooling -> dense(3): strided, non-square, dilated, even-sized and shortcut projections. The
    2x2 convolution's padding is written into the ONNX file (PyTorch pads both sides alike);
    labels are the network's own predictions (snnc's ANN interpreter)."""
    import onnx
    import torch
    from torch import nn

    import snnc
    from snnc.ir.semantics.ann import predict

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, stride=2, padding=1)
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.short = nn.Conv2d(1, 4, 1, stride=2)
            self.tall = nn.Conv2d(4, 4, (3, 1), padding=(1, 0))
            self.dilated = nn.Conv2d(4, 4, 3, dilation=2, padding=2)
            self.even = nn.Conv2d(4, 4, 2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.stem(x))
            b = torch.relu(self.conv(a) + self.short(x))
            c = torch.relu(self.tall(b) + b)
            d = torch.relu(self.even(torch.relu(self.dilated(c))))
            return self.fc(nn.functional.adaptive_avg_pool2d(d, 1).flatten(1))

    torch.manual_seed(0)
    model = folder / "res.onnx"
    torch.onnx.export(Net().eval(), torch.rand(1, 1, 8, 8), model, dynamo=False, input_names=["x"])
    proto = onnx.load(str(model))
    (even,) = (n for n in proto.graph.node if n.name.startswith("/even/"))
    even.attribute.append(onnx.helper.make_attribute("pads", [0, 0, 1, 1]))  # top, left, bottom, right
    del proto.graph.value_info[:]
    onnx.save(proto, str(model))
    x = np.random.default_rng(0).random((samples, 1, 8, 8), dtype=np.float32)
    np.savez(folder / "d.npz", x=x, y=predict(snnc.load(model), x).argmax(axis=1))
    return model, folder / "d.npz"


# ------------------------------------------------ sPyNNaker 7.4.1's convolution loop, transcribed


def _u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _i16(v: int) -> int:
    return ((v + 0x8000) & 0xFFFF) - 0x8000


def _div_by_const(i: int, d: int) -> int:
    """local_only_2d_common.h: div_by_const on uint32 with the div_const bit fields (m, sh1, sh2)."""
    m, sh1, sh2 = d & 0xFFFF, (d >> 16) & 0xFF, (d >> 24) & 0xFF
    i = _u32(i)
    t1 = _u32(i * m) >> 16
    return _u32(t1 + (_u32(i - t1) >> sh1)) >> sh2


class _Edge:
    """The ProjectionApplicationEdge parts the connector reads: receptor ids 0 and 1."""

    post_vertex = types.SimpleNamespace(get_synapse_id_by_target=lambda t: {"excitatory": 0, "inhibitory": 1}[t])


def spynnaker_synapses(connector, pre_hw: tuple[int, int], shifts: tuple[int, int]) -> list[tuple]:
    """(pre raster id, post raster id, weight) of every synapse a core running 7.4.1's
    local_only_conv_impl.c makes for ``connector`` between populations of ``pre_hw`` (rows, cols);
    weights decoded with the ring-buffer shifts ``shifts`` (sPyNNaker's weight scale 2^(15 - e))."""
    h, w = pre_hw
    post_w, post_h = connector.get_post_shape((w, h))  # sPyNNaker's shapes are (x, y)
    scales = np.array([2.0 ** (15 - e) for e in shifts])
    words = connector.get_local_only_data(_Edge(), 0, 0, 0)
    shorts = words[:5].view(np.uint16)  # kernel, padding (height, width), receptors, delay, index
    k_height, k_width, pad_h, pad_w = (int(v) for v in shorts[:4])
    stride_h, stride_w, pool_h, pool_w = (int(v) for v in words[5:9])
    weights = connector.get_encoded_kernel_weights(_Edge(), scales)
    half_kh, half_kw = k_height // 2, k_width // 2
    out = []
    for row in range(h):
        for col in range(w):
            # map_pre_to_post
            post_row = _i16(_div_by_const(row, pool_h))
            post_col = _i16(_div_by_const(col, pool_w))
            post_row = _i16(post_row - half_kh + pad_h)
            post_col = _i16(post_col - half_kw + pad_w)
            post_row = _i16(_div_by_const(post_row, stride_h))
            post_col = _i16(_div_by_const(post_col, stride_w))
            # do_convolution_operation (one core holding the whole post population)
            for kr, r in enumerate(range(-half_kh, half_kh + 1)):
                tmp_row = post_row + r
                if not 0 <= tmp_row < post_h:
                    continue
                for kc, c in enumerate(range(-half_kw, half_kw + 1)):
                    tmp_col = post_col + c
                    if not 0 <= tmp_col < post_w:
                        continue
                    weight = int(weights[kr * k_width + kc])
                    if weight:
                        scale = scales[0] if weight > 0 else -scales[1]
                        out.append((row * w + col, tmp_row * post_w + tmp_col, abs(weight) / scale))
    return out


# ------------------------------------------------ run.py's projections, recorded


def recorded_synapses(network: dict, arrays: dict, proj: dict, shifts: tuple[int, int]) -> set[tuple]:
    """Every synapse run.py asks sPyNNaker for in projection ``proj``, as (pre, post, weight) in
    the cells' C-order numbering (a split grid cell is one population per channel, a stacked one
    a single (W, C H) population); ``shifts``: the post population's ring-buffer shifts."""
    from pyNN.spiNNaker import ConvolutionConnector

    keep = {"PoolDenseConnector": lambda weights: weights, "FromListConnector": lambda rows: rows}
    calls = projection_calls(network, arrays, [proj], ConvolutionConnector=ConvolutionConnector, **keep)
    pre_cell = network["cells"][proj["pre"]]
    synapses = set()
    for _, pre, post, conn, receptor in calls:
        i, o = pre.index * pre.size, post.index * post.size
        w = pre_cell["shape"][-1]
        if isinstance(conn, ConvolutionConnector):  # a population of (rows, w): a channel or a stacked cell
            rows = spynnaker_synapses(conn, (pre.size // w, w), shifts)
        elif proj["kind"] == "pool_dense":  # weights (W, H, post) of one channel, (W, C H, post) when stacked
            rows = [(y * w + x, j, float(conn[x, y, j])) for x, y, j in zip(*np.nonzero(conn), strict=True)]
        else:
            assert proj["kind"] == "list", proj
            sign = -1.0 if receptor == "inhibitory" else 1.0
            rows = [(int(a), int(b), sign * float(wt)) for a, b, wt in conn[:, :3]]
        synapses.update((i + a, o + b, wt) for a, b, wt in rows)
    return synapses


def ir_synapses(graph, proj: str) -> set[tuple]:
    c = connections(graph, proj)
    return {(int(a), int(b), float(w)) for a, b, w in zip(c.pre, c.post, c.weight, strict=True)}


# ------------------------------------------------ the tests


def test_transcribed_loop_shows_why_strides_take_lists() -> None:
    """The transcription reproduces snnc's stride-1 convolution with sPyNNaker's own flip, and shows
    7.4.1's strided connector is another network (so strided projections become synapse lists)."""
    from pyNN.spiNNaker import ConvolutionConnector

    kernel = np.arange(1, 10, dtype=np.float64).reshape(3, 3) / 16
    same = spynnaker_synapses(ConvolutionConnector(kernel, padding=(1, 1)), (5, 5), (0, 0))
    # ML convolution, post q reads pre q - 1 + k with weight W[k]: sPyNNaker applies W[2 - k]
    flipped = {
        (py * 5 + px, qy * 5 + qx, kernel[2 - ky, 2 - kx])
        for qy in range(5) for qx in range(5) for ky in range(3) for kx in range(3)
        if 0 <= (py := qy - 1 + ky) < 5 and 0 <= (px := qx - 1 + kx) < 5
    }  # fmt: skip
    assert sorted(same) == sorted(flipped) and len(same) == 13 * 13
    strided = spynnaker_synapses(ConvolutionConnector(kernel, padding=(1, 1), strides=(2, 2)), (6, 6), (0, 0))
    # A stride-2 3x3 convolution of 6x6 into 3x3 has at most 9 synapses per post neuron (81); 7.4.1 makes more.
    assert len(strided) > 81


@pytest.mark.parametrize("split", [True, False])
def test_run_script_pools_a_window_over_a_whole_oblong_image(split: bool) -> None:
    """Global average pooling of 4 x 6 images (window = image, stride 1 as ONNX writes it): every
    pixel of a channel adds the scale to that channel's one neuron (sPyNNaker takes (x, y) shapes),
    per channel or with one connector over the channels stacked in y (windows divide the image)."""
    cells = [
        {"grid": True, "split": split, "shape": [2, 4, 6], "size": 48},
        {"grid": True, "split": split, "shape": [2, 1, 1], "size": 2},
    ]
    proj = {"kind": "pool", "pool": [4, 6], "scale": 0.25, "pre": 0, "post": 1, "delay": 1.0}
    synapses = recorded_synapses({"cells": cells}, {}, proj, (0, 0))
    assert synapses == {(c * 24 + i, c, 0.25) for c in range(2) for i in range(24)}


def test_strided_and_residual_convolutions_map_exactly(tmp_path: Path) -> None:
    model, data = _residual_onnx(tmp_path, 6)
    out = tmp_path / "out"
    report = _compile(model, data, out, "neurons-per-core=8", "source-neurons-per-core=16", "quantize.measure=none")
    network = json.loads((out / "network.json").read_text())
    arrays = dict(np.load(out / "weights.npz"))
    run_spinnaker.check_network(network, arrays)
    graph = load(out / "model.snnir")
    kinds = {}
    for proj in network["projections"]:
        op = graph.op(proj["id"])
        kinds[(op.connectivity, tuple(op.strides), proj["kind"])] = proj.get("list_because", "")
        shifts = tuple(graph.op(network["cells"][proj["post"]]["id"]).weight_shift)
        assert recorded_synapses(network, arrays, proj, shifts) == ir_synapses(graph, proj["id"]), proj["id"]
    # stem and shortcut (stride 2) are lists, and so is the 3x1 convolution that shares their post
    # population; the dilated convolution and the identity shortcut stay native ConvolutionConnectors.
    assert "strides [2, 2]" in kinds[("conv", (2, 2), "list")]
    assert "also takes %" in kinds[("conv", (1, 1), "list")]
    assert ("conv", (1, 1), "conv") in kinds and ("one_to_one", (1, 1), "conv") in kinds
    _refuses_tampered_windows(network, arrays)
    mapping = _run_virtual(out, 2, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1)


def _refuses_tampered_windows(network: dict, arrays: dict) -> None:
    """The convolutions' lists are stored as kernel and window; run.py refuses a window that does
    not fit its cells, an unknown form, an array of another shape and a form that is no object."""
    projections = network["projections"]
    j = next(j for j, p in enumerate(projections) if p["kind"] == "list" and p["synapses"]["kind"] == "conv")
    assert projections[j]["synapses"]["kernel"] in arrays
    for value, message in [
        ({"strides": [1, 1]}, "is not what the window makes"),
        ({"kind": "pairs"}, "kind"),
        ({"kernel": "cell1_i_offset"}, r"cell1_i_offset: shape \[\d+\], expected"),
        ("conv", "synapses: must be an object"),
    ]:
        bad = json.loads(json.dumps(network))
        if isinstance(value, dict):
            bad["projections"][j]["synapses"].update(value)
        else:
            bad["projections"][j]["synapses"] = value
        with pytest.raises(SystemExit, match=message):
            run_spinnaker.check_network(bad, dict(arrays))


def test_max_pooling_relu_tree_maps_exactly(tmp_path: Path) -> None:
    """lower-to-snn's max pooling (stride-2 window selections, relu populations, one-to-one merges)
    used to be refused on SpiNNaker; its strided selections are now synapse lists."""
    from test_maxpool import labelled, pooled_net

    import snnc

    graph = pooled_net()
    x, y = labelled(graph, 30)
    out = tmp_path / "out"
    np.savez(tmp_path / "d.npz", x=x, y=y)
    settings = {"quantize.measure": "none"}
    data = {"data": str(tmp_path / "d.npz")}
    compiled = snnc.compile(graph, "spinnaker", calibration=x, calibration_labels=y, settings=settings, sources=data)
    compiled.emit(out)
    network = json.loads((out / "network.json").read_text())
    arrays = dict(np.load(out / "weights.npz"))
    run_spinnaker.check_network(network, arrays)
    kinds = [p["kind"] for p in network["projections"]]
    assert "list" in kinds and "conv" in kinds
    for proj in network["projections"]:
        shifts = tuple(compiled.graph.op(network["cells"][proj["post"]]["id"]).weight_shift)
        assert recorded_synapses(network, arrays, proj, shifts) == ir_synapses(compiled.graph, proj["id"]), proj["id"]
    mapping = _run_virtual(out, 2, tmp_path)
    assert placed_cores(mapping) == planned_cores(json.loads((out / "report.json").read_text()), 1)


@pytest.mark.slow
def test_resnet_example_maps_as_planned(tmp_path: Path) -> None:
    """examples/resnet (stride-2 stem, a stride-2 block with a projection shortcut) was refused; its
    strided projections and the one beside them become lists, the rest stays native, and
    sPyNNaker places every core of snnc's plan."""
    example = Path(__file__).parent.parent / "examples" / "resnet"
    out = tmp_path / "out"
    report = _compile(example / "resnet.onnx", example / "calibration.npz", out, "quantize.measure=none")
    network = json.loads((out / "network.json").read_text())
    listed = {p["id"]: p.get("list_because", "") for p in network["projections"] if p["kind"] == "list"}
    assert sorted(listed) == [
        "n_0_Conv_from_image",
        "n_4_Add_from_n_3_Add",
        "n_4_Add_from_n_4_conv1_Conv",
        "n_4_conv1_Conv_from_n_3_Add",
    ]
    assert listed["n_4_Add_from_n_4_conv1_Conv"].startswith("%n_4_Add also takes %n_4_Add_from_n_3_Add: strides [2, 2]")
    mapping = _run_virtual(out, 1, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1) and len(mapping["cores"]) == report["cores"]


def test_a_population_fed_by_a_grid_and_a_vector_takes_lists(tmp_path: Path) -> None:
    """out = dense(flatten(conv(x))) + dense(relu(dense(x))): sPyNNaker runs a population with one
    kind of synapse processing (PoolDense or synapse rows), so both projections into it are lists."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.hidden = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(16, 5)
            self.a, self.b = nn.Linear(32, 3), nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(torch.relu(self.conv(x)).flatten(1)) + self.b(torch.relu(self.hidden(x.flatten(1))))

    torch.manual_seed(0)
    net = Net().eval()
    model = tmp_path / "two.onnx"
    torch.onnx.export(net, torch.rand(1, 1, 4, 4), model, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    x = torch.rand(6, 1, 4, 4)
    with torch.no_grad():
        np.savez(tmp_path / "d.npz", x=x.numpy(), y=net(x).argmax(1).numpy())
    out = tmp_path / "out"
    report = _compile(model, tmp_path / "d.npz", out, "quantize.measure=none")
    network = json.loads((out / "network.json").read_text())
    arrays = dict(np.load(out / "weights.npz"))
    run_spinnaker.check_network(network, arrays)
    graph = load(out / "model.snnir")
    readout = next(i for i, c in enumerate(network["cells"]) if c.get("readout"))
    into = [p for p in network["projections"] if p["post"] == readout]
    assert len(into) >= 2 and {p["kind"] for p in into} == {"list"}
    assert any("pool_dense" in p.get("list_because", "") for p in into)
    for proj in network["projections"]:
        shifts = tuple(graph.op(network["cells"][proj["post"]]["id"]).weight_shift)
        assert recorded_synapses(network, arrays, proj, shifts) == ir_synapses(graph, proj["id"]), proj["id"]
    mapping = _run_virtual(out, 1, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1)
