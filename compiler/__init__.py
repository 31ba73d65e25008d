"""snnc: compile trained artificial neural networks into spiking neural networks.

import snnc
graph = snnc.load("model.onnx")
compiled = snnc.compile(graph, target="nest", calibration=x_calib)
compiled.emit("out/")
"""

from .api import Compiled, CompileError, __version__, compile, load

__all__ = ["CompileError", "Compiled", "__version__", "compile", "load"]
