"""The passes. Each module holds one pass; ``ALL_PASSES`` lists them in pipeline order."""

from .base import Diagnostic, Pass, PassContext, PassError
from .bias import BiasToCurrent, RemoveBias
from .calibrate import CalibrateBias
from .canonicalize import Canonicalize
from .fold_batchnorm import FoldBatchnorm
from .lower_to_snn import LowerToSnn
from .normalize import Normalize
from .quantize import Quantize
from .quantize_mac import QuantizeMac
from .remove_softmax import RemoveSoftmax
from .replicate import Replicate
from .split_populations import SplitPopulations
from .split_signs import SplitSigns
from .tile_mac import TileMac

ALL_PASSES: list[type[Pass]] = [
    Canonicalize,
    FoldBatchnorm,
    RemoveSoftmax,
    QuantizeMac,
    TileMac,
    LowerToSnn,
    Normalize,
    BiasToCurrent,
    RemoveBias,
    CalibrateBias,
    SplitSigns,
    Quantize,
    SplitPopulations,
    Replicate,
]
PASSES: dict[str, type[Pass]] = {p.name: p for p in ALL_PASSES}

__all__ = ["ALL_PASSES", "PASSES", "Diagnostic", "Pass", "PassContext", "PassError"]
