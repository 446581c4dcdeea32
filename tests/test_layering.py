"""The layering of the distribution's packages, read from their sources.

* One direction: tcg -> rcu, tcg -> quiescent; rcu and quiescent never import
  each other nor tcg. ``_latency`` (the latency statistics rcu and quiescent
  share) is a leaf: it imports none of the others.
* No package imports another package's private modules or names (``rcu._stats``
  or ``from rcu import _native`` from tcg); a package whose own name is private
  (``_latency``) is internal to the distribution, and its public names are its
  interface to the other packages. tests/ and benchmarks/ may import privates.
* No import cycles between the packages' modules, counting every import
  statement: inside ``if TYPE_CHECKING:`` and inside functions too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "_latency": {"rcu", "quiescent", "tcg"},
    "rcu": {"quiescent", "tcg"},
    "quiescent": {"rcu", "tcg"},
    "tcg": set(),
}
PACKAGES = sorted(FORBIDDEN)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _modules() -> set[str]:
    """Every module of the packages, extension modules included (by their stubs)."""
    return {
        _module_name(path)
        for package in PACKAGES
        for path in [*_sources(package), *(ROOT / package).rglob("*.pyi")]
    }


MODULES = _modules()


def _imports(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every import in ``path``; name None for ``import m``.

    Relative imports are resolved against the module's package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                yield node.lineno, module, alias.name


def _target(module: str, name: str | None) -> str:
    """The module an import loads: ``from p import m`` loads ``p.m`` if that is a module."""
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module


def _is_private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_downward(package: str) -> None:
    files = _sources(package)
    assert files, f"no sources found for {package}"
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module, _ in _imports(path)
        if module.split(".")[0] in FORBIDDEN[package]
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_no_private_module_of_another(package: str) -> None:
    bad = []
    for path in _sources(package):
        for line, module, name in _imports(path):
            top, _, rest = module.partition(".")
            if top == package or top not in FORBIDDEN:
                continue
            imported = ".".join(p for p in (rest, name) if p and p != "*")
            if _is_private(imported):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} {name or ''}")
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    graph: dict[str, set[str]] = {}
    for other in PACKAGES:
        for path in _sources(other):
            source = _module_name(path)
            graph[source] = {
                target
                for _, module, name in _imports(path)
                if (target := _target(module, name)) in MODULES and target != source
            }
    mine = [c for c in _cycles(graph) if any(m.split(".")[0] == package for m in c)]
    assert not mine, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in mine)
