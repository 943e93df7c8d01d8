"""The store's rooms keep their order: every import of the library points down or sideways, never up.

``layout`` (what the indexes look like) <- ``catalog`` (opening and committing) <- ``bulk``, ``apply``,
``upkeep`` and ``reads`` (the ways data gets in, stays fast and gets out; ``point_reads``, a served get's
files read directly, lies below ``reads``; ``apply`` shapes a large stream batch with ``bulk``'s SQL, decision
0044) <- ``store/__init__`` (the
``Store`` facade). ``errors`` (the store's exception classes) lies below them all: every room may raise
them, and it imports no room. ``export`` reads exports and knows nothing of the store. No module imports another's
private names. The rules are read from the code's own imports (``ast``), so a new module obeys them too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

LIB = REPO / "include" / "dynadex"

# room -> the store rooms it may import (besides itself and anything outside dynadex.store)
MAY_IMPORT = {
    "errors": set(),
    "layout": {"errors"},
    "catalog": {"errors", "layout"},
    "bulk": {"errors", "layout", "catalog"},
    "apply": {"errors", "layout", "catalog", "bulk"},  # the stream batch shaped with the bulk build's SQL (0044)
    "upkeep": {"errors", "layout", "catalog"},
    "point_reads": {"errors", "layout", "catalog"},
    "reads": {"errors", "layout", "catalog", "point_reads"},
}


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) for every ``import`` and ``from … import`` of dynadex in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dynadex"):
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("dynadex")]
    return out


def _room(module: str) -> str | None:
    """The store room of a dotted module name (``dynadex.store.bulk.publish`` -> ``bulk``), else None."""
    parts = module.split(".")
    if parts[:2] != ["dynadex", "store"] or len(parts) < 3:
        return None
    return parts[2]


def _targets(module: str, names: list[str]) -> list[str]:
    """What an import really names: ``from dynadex.store import reads`` names ``dynadex.store.reads``."""
    if module == "dynadex.store":
        return [f"dynadex.store.{n}" for n in names]
    return [module]


@pytest.mark.parametrize("path", sorted((LIB / "store").rglob("*.py")), ids=lambda p: p.relative_to(LIB).as_posix())
def test_store_modules_import_only_rooms_below_them(path):
    rel = path.relative_to(LIB / "store")
    if rel.as_posix() == "__init__.py":
        return  # the facade may use every room
    own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
    allowed = MAY_IMPORT[own] | {own}
    wrong = []
    for line, module, names in _imports(path):
        for target in _targets(module, names):
            room = _room(target)
            if target == "dynadex.store" or (room is not None and room not in allowed):
                wrong.append(f"{rel}:{line} imports {target} (room {room or 'facade'}; {own} may import {sorted(allowed)})")
    assert not wrong, "\n".join(wrong)


def test_export_reads_exports_and_knows_nothing_of_the_store():
    wrong = [f"{p.name}:{line} imports {module}" for p in sorted((LIB / "export").glob("*.py"))
             for line, module, _ in _imports(p) if module.startswith("dynadex.store")]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for path in sorted(LIB.rglob("*.py")):
        for line, module, names in _imports(path):
            wrong += [f"{path.relative_to(LIB)}:{line}: {module}.{n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
    assert not wrong, "make these public (no leading underscore) or keep their use inside their module:\n" + \
        "\n".join(wrong)


def test_the_rules_catch_an_upward_import(tmp_path):
    """The check can fail: a layout module that imports the catalog is named."""
    bad = tmp_path / "bad.py"
    bad.write_text("from dynadex.store.catalog.lake import Lake\nfrom dynadex.store import reads\n")
    found = [t for _, m, n in _imports(bad) for t in _targets(m, n)]
    assert [_room(t) for t in found] == ["catalog", "reads"]
    assert not ({_room(t) for t in found} <= MAY_IMPORT["layout"])
