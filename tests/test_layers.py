"""The package's layers: no module imports one of a higher layer, no two subpackages of
one layer import each other, and no import circle exists between modules (imports inside
functions count; imports only for type checkers do not)."""

import ast
from pathlib import Path

import evomerge

PACKAGE = Path(evomerge.__file__).parent

#: low to high; a module may import its own subpackage and anything in a lower layer
LAYERS = [
    {"errors"},
    {"registry", "config_io", "records", "pareto"},
    {"checkpoint"},
    {"testing"},
    {"merge"},
    {"evaluate", "optim"},
    {"space"},
    {"execute"},
    {"campaign"},
    {"export", "zoo"},
    {"report"},  # reports show what export chooses
    {"cli"},
]
LEVEL = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def _module_name(path: Path) -> str:
    parts = ("evomerge", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def _imports() -> dict[str, set[str]]:
    """module -> the evomerge modules it imports anywhere in its body."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        found = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.update(n for n in names if n == "evomerge" or n.startswith("evomerge."))
        graph[_module_name(path)] = found
    return graph


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(m) for m in _imports()} - {""}
    assert parts <= set(LEVEL), f"give these a layer: {sorted(parts - set(LEVEL))}"


def test_no_module_imports_a_higher_layer_or_a_peer():
    wrong = []
    for module, imported in _imports().items():
        for target in imported:
            a, b = _part(module), _part(target)
            if a and b and a != b and LEVEL[b] >= LEVEL[a]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    graph = _imports()
    # a package's own __init__ importing its modules is how packages work, not a circle
    edges = {m: {t for t in ts if t in graph and not m.startswith(t + ".")}
             for m, ts in graph.items()}
    seen, on_path, circles = set(), [], []

    def visit(module):
        if module in on_path:
            circles.append(" -> ".join(on_path[on_path.index(module):] + [module]))
            return
        if module in seen:
            return
        seen.add(module)
        on_path.append(module)
        for target in sorted(edges.get(module, ())):
            visit(target)
        on_path.pop()

    for module in sorted(edges):
        visit(module)
    assert not circles, "\n".join(circles)


def test_the_architecture_facts_import_no_torch():
    import subprocess
    import sys

    probe = ("import sys, evomerge.checkpoint, evomerge.merge.params, evomerge.cli\n"
             "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
