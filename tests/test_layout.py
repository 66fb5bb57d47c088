"""The package's shape: no module of advisor/ imports, directly or through others, a module that imports it."""

import ast
from pathlib import Path

from advisor.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "advisor"


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module's imports of the package's own modules: at the top, inside functions and for type checking
    alike (a type-only import still makes two modules each other's dependency)."""
    modules = {_module(path, package.parent): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    package_parts = name.split(".")[: None if path.name == "__init__.py" else -1]
                    package_parts = package_parts[: len(package_parts) - node.level + 1]
                    base = ".".join([*package_parts, base] if base else package_parts)
                imported |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {other for other in imported if other in modules and other != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle_through_a_function_level_and_a_type_only_import(tmp_path):
    package = tmp_path / "advisor"
    (package / "stores").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text("def load():\n    from advisor.stores import factory\n")
    (package / "stores" / "__init__.py").write_text("from .factory import make\n")
    (package / "stores" / "factory.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from advisor.config import Settings\ndef make(): ...\n"
    )
    (package / "plain.py").write_text("import advisor.config\n")
    assert cycles(import_graph(package)) == [["advisor.config", "advisor.stores", "advisor.stores.factory"]]


def test_no_module_imports_one_that_imports_it():
    assert cycles(import_graph()) == []
