"""The import graph of src/fedpeft reads as the data flow: no module imports a layer above its own, and no
two packages import each other (directly or around a loop). Dynamic imports count too (any ``import``
statement, also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "fedpeft"
LAYERS = [  # bottom first; a package may import its own layer and the layers below
    {"errors", "registry"},
    {"config"},
    {"data", "model"},
    {"methods", "pipeline", "privacy"},
    {"client"},
    {"strategy"},
    {"wrappers"},
    {"evaluation", "report"},
    {"fleet"},
    {"build"},
    {"runtime"},
    {"recipe"},
    {"apps", "cli", "__init__"},
]
LAYER = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def package_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def imports(path: Path) -> set[str]:
    """The fedpeft packages ``path`` imports (absolute imports only: the project uses no relative ones)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = (
            [node.module]
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "fedpeft" and len(parts) > 1:
                out.add(parts[1])
            elif parts[0] == "fedpeft" and isinstance(node, ast.ImportFrom):
                out.update(a.name for a in node.names)
    return out


def edges() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = package_of(path)
        for dst in imports(path) - {src}:
            found.setdefault((src, dst), []).append(str(path.relative_to(ROOT)))
    return found


def test_every_package_has_a_layer() -> None:
    packages = {package_of(p) for p in ROOT.rglob("*.py")}
    assert packages <= set(LAYER), f"give these packages a layer in tests/test_layers.py: {packages - set(LAYER)}"


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{where} ({src} -> {dst})"
        for (src, dst), files in edges().items()
        if dst in LAYER and LAYER[dst] > LAYER.get(src, 0)
        for where in files
    ]
    assert not upward, "imports that run up the layering:\n" + "\n".join(upward)


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in edges():
        graph.setdefault(src, set()).add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(p for p in graph if reaches(p, p, {p}))
    assert not cycles, f"packages on an import cycle: {cycles}"


@pytest.mark.parametrize("limit", [60])
def test_no_function_is_longer_than_the_limit(limit: int) -> None:
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)
