"""Target ``nir``: write the compiled spiking network as a NIR file (``network.nir``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from snnc.ir import Graph, graph_number
from snnc.targets.base import Target

from .convert import to_nir
from .spec import SPEC


class NirTarget(Target):
    spec = SPEC

    def emit(self, graph: Graph, out: Path, manifest: dict[str, Any]) -> None:
        import nir

        for key in ("dt", "presentation_time"):  # written into the NIR metadata: numbers only
            graph_number(graph, key)
        nir.write(out / "network.nir", to_nir(graph))
        (out / "README.md").write_text(
            "# snnc output for target `nir`\n\n`network.nir` holds the spiking network as a NIR graph "
            "(read it with `nir.read`). Time step, presentation time and reset mode are in its metadata "
            "under `snnc.*`, since NIR leaves them open. `model.snnir` is the same network in snnc's IR.\n"
        )
