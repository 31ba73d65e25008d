"""A ResNet-18 in miniature (stride-2 stem, max pooling, three stages of torchvision's BasicBlock down
to 1 x 1, global average pooling, a dense head) on SpiNNaker: how run.py groups the network into
PyNN populations and Projections, that every synapse is still the IR's, and sPyNNaker's placement
on a virtual machine of two SpiNN-5 boards against snnc's core plan.

Cells that no native convolution touches stack their channels into one Grid2D population, so a
synapse list between two of them is one Projection per sign, not one per channel pair; a
convolution into a 1 x 1 image (each kernel applied once) is a list. Full ResNet-18:
benchmarks/bench_spinnaker_resnet18.py.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from test_spinnaker import _compile, _run_virtual
from test_spinnaker_strides import ir_synapses, recorded_synapses

from snnc.ir import load
from snnc.targets.spinnaker import run_spinnaker
from snnc.targets.spinnaker.placement import placed_cores, planned_cores, projection_calls

pytestmark = pytest.mark.spinnaker
pytest.importorskip("spynnaker", reason="install the [spinnaker] extra")
torch = pytest.importorskip("torch")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet"


def _mini_resnet(folder: Path) -> tuple[Path, Path]:
    """ONNX of a 16 x 16 ResNet-18 in miniature (8-16-32 channels; stages at 4 x 4, 2 x 2, 1 x 1)
    and 8 calibration images."""
    from torch import nn

    spec = importlib.util.spec_from_file_location("resnet_example_train", EXAMPLE / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    block = module.BasicBlock
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        block(8, 8, 1),
        block(8, 16, 2),
        block(16, 32, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()
    model = folder / "mini_resnet.onnx"
    x = torch.rand(8, 3, 16, 16)
    torch.onnx.export(net, x[:1], model, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    with torch.no_grad():
        np.savez(folder / "d.npz", x=x.numpy(), y=net(x).argmax(1).numpy())
    return model, folder / "d.npz"


def test_mini_resnet_groups_projections_and_maps_on_two_boards(tmp_path: Path) -> None:
    model, data = _mini_resnet(tmp_path)
    out = tmp_path / "out"
    report = _compile(model, data, out, "boards=2", "quantize.measure=none")
    network = json.loads((out / "network.json").read_text())
    arrays = dict(np.load(out / "weights.npz"))
    run_spinnaker.check_network(network, arrays)
    graph = load(out / "model.snnir")
    cells = network["cells"]
    stacked = {i for i, c in enumerate(cells) if c["grid"] and not c["split"]}
    split = {i for i, c in enumerate(cells) if c["split"]}
    assert stacked and split
    # every synapse run.py asks for is the IR's, whatever the grouping
    for proj in network["projections"]:
        shifts = tuple(graph.op(cells[proj["post"]]["id"]).weight_shift)
        assert recorded_synapses(network, arrays, proj, shifts) == ir_synapses(graph, proj["id"]), proj["id"]
    by_id = {p["id"]: p for p in network["projections"]}
    made = projection_calls(network, arrays)
    per_proj = {pid: sum(1 for m in made if m.projection["id"] == pid) for pid in by_id}
    # a list between two stacked cells: one Projection per sign (was one per channel pair and sign)
    between = [p for p in network["projections"] if p["kind"] == "list" and {p["pre"], p["post"]} <= stacked]
    assert between and all(per_proj[p["id"]] <= 2 for p in between)
    # a list from or into a split cell: one Projection per population pair and sign
    for p in network["projections"]:
        if p["kind"] == "list":
            pairs = run_spinnaker.populations(cells[p["pre"]]) * run_spinnaker.populations(cells[p["post"]])
            assert per_proj[p["id"]] <= 2 * pairs
    # convolutions into the 1 x 1 stage are lists; the global pooling and the head join stacked cells once
    one_by_one = [p for p in network["projections"] if cells[p["post"]]["shape"][1:] == [1, 1] and p["kind"] == "list"]
    assert any("1 x 1 output" in p.get("list_because", "") for p in one_by_one)
    pool = next(p for p in network["projections"] if p["kind"] == "pool")
    head = next(p for p in network["projections"] if p["kind"] == "pool_dense")
    assert pool["pre"] in stacked and per_proj[pool["id"]] == per_proj[head["id"]] == 1
    # native convolutions stay one ConvolutionConnector per channel pair between split cells
    convs = [p for p in network["projections"] if p["kind"] == "conv" and graph.op(p["id"]).connectivity == "conv"]
    assert convs and all({p["pre"], p["post"]} <= split for p in convs)
    assert len(made) < 0.1 * sum(c["shape"][0] for c in cells if c["grid"]) ** 2  # far below channel pairs
    # sPyNNaker places every core of snnc's plan (stacked populations reported per channel)
    assert "width = 16\nheight = 16" in (out / "spynnaker.cfg").read_text()
    mapping = _run_virtual(out, 1, tmp_path)
    assert placed_cores(mapping) == planned_cores(report, 1) and len(mapping["cores"]) == report["cores"]
    assert not any(c.get("straddles_channels") for c in mapping["cores"])
    assert {c["population"] for c in mapping["cores"] if "population" in c} == {f"c{i}i0" for i in stacked}
