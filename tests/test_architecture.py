"""The code keeps the shape docs/ARCHITECTURE.md draws: allowed imports, a pure core, small units."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYNCD = ROOT / "syncd"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGES = ("core", "cycle", "adapters", "app", "fakes")
IMPURE_MODULES = frozenset(
    {
        "asyncio",
        "sqlite3",
        "httpx",
        "httpcore",
        "socket",
        "time",
        "os",
        "threading",
        "subprocess",
        "random",
        "urllib.request",
        "msgraph",
        "kiota_abstractions",
        "kiota_http",
        "msgraph_core",
        "azure",
    }
)
CLOCK_CALLS = frozenset({"now", "utcnow", "today"})
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str | None:
    """The row of the import table a syncd module belongs to."""
    parts = module.split(".")
    if parts[0] != "syncd":
        return None
    if len(parts) == 1:
        return "syncd"
    return "syncd." + parts[1]


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SYNCD.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _package_of(path: Path) -> str:
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(tree: ast.Module, package: str) -> Iterator[str]:
    """Every module ``tree`` imports (relative to ``package``), wherever the import is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.module


def _allowed() -> dict[str, set[str]]:
    """The "What may import what" table of docs/ARCHITECTURE.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## What may import what", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str]] = {}
    for line in section.splitlines():
        match = re.match(r"^\|\s*`(syncd[\w.]*)`\s*\|(.*)\|\s*$", line)
        if match:
            table[match[1]] = set(re.findall(r"`(syncd[\w.]*)`", match[2]))
    return table


def test_the_import_table_names_every_part_of_syncd() -> None:
    allowed = _allowed()
    units = {_unit(_module_name(path)) for path, _ in _modules()}
    assert units - {"syncd"} <= set(allowed), sorted(units - set(allowed))
    assert set(allowed) - units == set()


def test_every_import_between_parts_of_syncd_is_one_the_architecture_allows() -> None:
    allowed = _allowed()
    allowed.setdefault("syncd", set())
    wrong = []
    for path, tree in _modules():
        module = _module_name(path)
        unit = _unit(module)
        assert unit is not None
        for imported in _imports(tree, _package_of(path)):
            target = _unit(imported)
            if target is None or target == unit:
                continue
            if target not in allowed[unit]:
                wrong.append(f"{module} imports {imported} ({unit} may not import {target})")
    assert wrong == []


def test_the_pure_core_does_no_io_and_asks_no_clock() -> None:
    offences = []
    for path, tree in _modules():
        module = _module_name(path)
        if not module.startswith("syncd.core"):
            continue
        for imported in _imports(tree, _package_of(path)):
            root = imported.split(".")[0]
            if imported in IMPURE_MODULES or root in IMPURE_MODULES:
                offences.append(f"{module} imports {imported}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in CLOCK_CALLS:
                offences.append(f"{module}:{node.lineno} asks the clock ({ast.unparse(node)})")
    assert offences == []


def test_the_architecture_check_sees_a_forbidden_import() -> None:
    """The checks above must be able to fail: a core module importing sqlite3 is caught."""
    tree = ast.parse("import sqlite3\nfrom datetime import datetime\nx = datetime.now()\n")
    imported = set(_imports(tree, "syncd.core"))
    assert "sqlite3" in imported
    assert any(isinstance(n, ast.Attribute) and n.attr in CLOCK_CALLS for n in ast.walk(tree))
    relative = ast.parse("from ..adapters import memory\n")
    assert list(_imports(relative, "syncd.cycle")) == ["syncd.adapters"]


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_no_function_is_longer_than_80_lines() -> None:
    long = [
        f"{_module_name(path)}.{fn.name}: {fn.end_lineno - fn.lineno + 1} lines"
        for path, tree in _modules()
        for fn in _functions(tree)
        if fn.end_lineno is not None and fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_longer_than_500_lines(package: str) -> None:
    paths = [*SYNCD.glob("*.py"), *(SYNCD / package).rglob("*.py")]
    long = {
        str(p.relative_to(ROOT)): n
        for p in paths
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
