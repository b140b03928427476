"""evomerge.optim works on boxes, objectives and fitness records: it depends on no
higher layer, and its shared pieces exist once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import evomerge.optim

OPTIM = Path(evomerge.optim.__file__).parent
FORBIDDEN = ("merge", "evaluate", "zoo", "space", "execute", "campaign", "report", "export",
             "cli")


def imported_modules(path: Path) -> list[str]:
    """Every module an import statement in ``path`` names, at any depth (function-level
    imports included); relative imports resolved against evomerge.optim."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = "evomerge.optim".rsplit(".", node.level - 1)[0]
                base = f"{package}.{base}" if base else package
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def higher_layers(path: Path) -> list[str]:
    return [name for name in imported_modules(path)
            if any(name == f"evomerge.{layer}" or name.startswith(f"evomerge.{layer}.")
                   for layer in FORBIDDEN)]


@pytest.mark.parametrize("path", sorted(OPTIM.glob("*.py")), ids=lambda p: p.name)
def test_no_optim_module_imports_a_higher_layer(path):
    assert higher_layers(path) == []


def test_the_layer_check_sees_nested_and_relative_imports(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from evomerge.merge.recipe import Recipe\n"
                      "import evomerge.cli\nfrom .. import zoo\nfrom ..report import html\n")
    assert sorted(higher_layers(module)) == [
        "evomerge.cli", "evomerge.merge.recipe", "evomerge.merge.recipe.Recipe",
        "evomerge.report", "evomerge.report.html", "evomerge.zoo"]


@pytest.mark.parametrize("pattern,owners", [
    ("qmc.Sobol(", ["sobol.py"]),  # one Sobol' helper
    ("def as_losses", []),  # dominance and the front live in evomerge.pareto
    ("def dominance_matrix", []),
    ("def non_dominated_mask", []),
    ("class Capabilities", []),  # test metadata lives with the tests
])
def test_shared_pieces_are_defined_once(pattern, owners):
    assert [p.name for p in sorted(OPTIM.glob("*.py")) if pattern in p.read_text()] == owners
