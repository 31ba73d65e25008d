"""Imports run one way between snnc's packages (issue 10): ``ir`` imports only itself, the passes
import no target, and the packages ir, passes, compiler (the rest), frontends and targets form no
import cycle. Every module under the four folders is read with ``ast``, imports inside functions
and ``if TYPE_CHECKING:`` blocks included."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import networkx as nx
import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("ir", "passes", "compiler", "frontends", "targets")  # "compiler": snnc outside the other four


class Import(NamedTuple):
    where: str  # file:line
    module: str  # the importing module
    imported: str  # the snnc module it imports


def package_dirs(root: Path) -> dict[str, str]:
    """Folder -> package name, as pyproject.toml maps them (``compiler`` -> ``snnc``)."""
    with open(root / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {folder: package for package, folder in mapping.items()}


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file for every .py file under the mapped folders."""
    found = {}
    for folder, package in package_dirs(root).items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The absolute names of the modules an import statement imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    # ``from snnc.ir import semantics`` imports the module snnc.ir.semantics
    return list(dict.fromkeys(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names))


def snnc_imports(root: Path) -> list[Import]:
    """Every import of an snnc module by a module under the mapped folders."""
    found = modules(root)
    known = set(found)
    result = []
    for module, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for name in _imported(node, module, path.name == "__init__.py", known):
                if name == "snnc" or name.startswith("snnc."):
                    result.append(Import(f"{path.relative_to(root)}:{node.lineno}", module, name))
    return result


def layer(module: str) -> str:
    """The package (one of LAYERS) that ``module`` belongs to."""
    for name in ("ir", "passes", "frontends", "targets"):
        if module == f"snnc.{name}" or module.startswith(f"snnc.{name}."):
            return name
    return "compiler"


def ir_violations(imports: list[Import]) -> list[str]:
    """Modules under ir/ that import snnc outside snnc.ir."""
    return [
        f"{i.where}: {i.module} imports {i.imported}"
        for i in imports
        if layer(i.module) == "ir" and layer(i.imported) != "ir"
    ]


def pass_violations(imports: list[Import]) -> list[str]:
    """Modules under compiler/passes/ that import snnc.targets."""
    return [
        f"{i.where}: {i.module} imports {i.imported}"
        for i in imports
        if layer(i.module) == "passes" and layer(i.imported) == "targets"
    ]


def package_cycle(imports: list[Import]) -> list[str]:
    """One import cycle between LAYERS, each step with an import that makes it; [] when none."""
    graph = nx.DiGraph()
    graph.add_nodes_from(LAYERS)
    for i in imports:
        a, b = layer(i.module), layer(i.imported)
        if a != b and not graph.has_edge(a, b):
            graph.add_edge(a, b, example=i)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return []
    return [
        f"{a} -> {b} ({graph.edges[a, b]['example'].where}: imports {graph.edges[a, b]['example'].imported})"
        for a, b in cycle
    ]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return snnc_imports(ROOT)


def test_the_walk_sees_every_package_and_nested_imports(imports: list[Import]) -> None:
    found = modules(ROOT)
    assert {
        "snnc.api",
        "snnc.passes.quantize",
        "snnc.ir.semantics.simulator",
        "snnc.frontends.nir_frontend",
        "snnc.targets.sim.target",
    } <= set(found)
    assert {layer(m) for m in found} == set(LAYERS)
    # frontends/__init__.py reads .nir files through an import inside load_model
    assert any(i.module == "snnc.frontends" and i.imported == "snnc.frontends.nir_frontend" for i in imports)


def test_ir_imports_only_ir(imports: list[Import]) -> None:
    violations = ir_violations(imports)
    assert not violations, "\n".join(violations)


def test_passes_import_no_target(imports: list[Import]) -> None:
    violations = pass_violations(imports)
    assert not violations, "\n".join(violations)


def test_packages_form_no_import_cycle(imports: list[Import]) -> None:
    cycle = package_cycle(imports)
    assert not cycle, "an import cycle between packages:\n" + "\n".join(cycle)


def _tree(root: Path, files: dict[str, str]) -> Path:
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_checks_catch_each_violation(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {
            "ir/__init__.py": "",
            "ir/semantics/rates.py": "def f():\n    from snnc.targets.connectivity import projection_matrix\n",
            "compiler/__init__.py": "",
            "compiler/passes/__init__.py": "",
            "compiler/passes/quantize.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from snnc.targets.base import TargetSpec\n",
            "compiler/snn_rates.py": "from . import passes\n",
            "frontends/__init__.py": "from snnc import ir\n",
            "targets/__init__.py": "",
            "targets/mapping_report.py": "from ..snn_rates import rates\n",
        },
    )
    found = snnc_imports(tree)
    assert ir_violations(found) == [
        "ir/semantics/rates.py:2: snnc.ir.semantics.rates imports snnc.targets.connectivity"
    ]
    assert pass_violations(found) == ["compiler/passes/quantize.py:3: snnc.passes.quantize imports snnc.targets.base"]
    # relative imports and "from package import module" resolve to the module
    assert ("snnc.snn_rates", "snnc.passes") in {(i.module, i.imported) for i in found}
    assert ("snnc.targets.mapping_report", "snnc.snn_rates") in {(i.module, i.imported) for i in found}
    assert ("snnc.frontends", "snnc.ir") in {(i.module, i.imported) for i in found}
    cycle = package_cycle(found)  # targets -> compiler -> passes -> targets
    assert {step.split(" ")[0] for step in cycle} == {"targets", "compiler", "passes"}


def test_no_cycle_in_a_clean_tree(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {
            "ir/__init__.py": "from .graph import Graph\n",
            "ir/graph.py": "import numpy\n",
            "compiler/__init__.py": "from snnc.targets import get_target\nfrom snnc.frontends import load_model\n",
            "compiler/passes/__init__.py": "from snnc.ir import Graph\n",
            "frontends/__init__.py": "from snnc.ir import Graph\n",
            "targets/__init__.py": "from snnc.ir.graph import Graph\n",
        },
    )
    found = snnc_imports(tree)
    assert ir_violations(found) == pass_violations(found) == package_cycle(found) == []
    assert len(found) == 6
