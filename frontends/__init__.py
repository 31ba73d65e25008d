"""Frontends: model files and in-memory models to ann-dialect graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from snnc.ir import Graph

from .builder import FrontendError, FrontendNode, GraphBuilder, HandlerRegistry

SUFFIXES = (".onnx", ".keras", ".h5", ".nir", ".pt2", ".pt", ".pth", ".ts", ".torchscript", ".snnir")


def load_model(path: Path, input_shape: Optional[tuple[int, ...]] = None, module: Optional[str] = None) -> Graph:
    """Read a model file, choosing the frontend by its suffix. PyTorch files that do not record
    their input (state dicts, scripted TorchScript) need the per-sample ``input_shape``; a
    state_dict also needs ``module`` (``package.module:Class``)."""
    path = Path(path)
    if not path.exists():
        raise FrontendError(f"{path}: no such file")
    if path.suffix in (".pt2", ".pt", ".pth", ".ts", ".torchscript"):
        from .torch_frontend import load_torch_file

        return load_torch_file(path, None if input_shape is None else tuple(input_shape), module)
    if path.suffix == ".onnx":
        from .onnx_frontend import load_onnx

        return load_onnx(path)
    if path.suffix in (".keras", ".h5"):
        from .keras_frontend import load_keras

        return load_keras(path)
    if path.suffix == ".nir":
        from .nir_frontend import read_nir_file

        return read_nir_file(path)
    if path.suffix == ".snnir":
        from snnc.ir import load

        return load(path)
    raise FrontendError(f"{path}: unknown model format {path.suffix!r} (snnc reads {', '.join(SUFFIXES)})")


__all__ = ["FrontendError", "FrontendNode", "GraphBuilder", "HandlerRegistry", "SUFFIXES", "load_model"]
