"""Internal imports follow the layers of docs/architecture.md (lower layers never import higher)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dwi_toolkit"

L0 = {"errors", "units", "_typing", "_version"}
ALLOWED = {
    **{m: set() for m in L0},
    "core": L0,
    "models": L0 | {"core"},
    "roi": L0 | {"core"},
    "phantom": L0 | {"core"},
    "phantom_sessions": L0 | {"core", "phantom"},
    "analysis": L0 | {"core", "models", "roi"},
    "qc": L0 | {"core", "models", "roi"},
    "clinical": L0 | {"core", "analysis", "qc"},
    "io": L0 | {"core", "roi", "models"},
    "longitudinal": L0 | {"core", "models", "roi", "analysis", "qc", "io"},
    "sample_data": L0 | {"core", "roi", "io", "phantom", "models", "clinical"},
    "reporting": L0 | {"core", "models", "roi", "analysis", "qc", "clinical", "io"},
    "viz": L0 | {"core", "models", "roi", "analysis", "qc", "clinical", "io", "reporting"},
    "pipeline": L0 | {"core", "models", "roi", "analysis", "qc", "clinical", "io", "reporting", "phantom", "sample_data"},
    "cli": set(),  # may import anything but nothing imports it
}
ANYTHING = {"cli", "__init__", "__main__"}


def owner(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


#: Documented exception (docs/architecture.md): convenience ``save`` methods of containers and fits
#: may import ``io`` lazily, inside the method, to write themselves.
SAVE_METHODS_MAY_IMPORT = {"io"}


def _nodes(tree):
    """Import nodes with the name of the enclosing function (None at module level)."""
    stack = [(tree, None)]
    while stack:
        node, func = stack.pop()
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            yield child, func
            stack.append((child, name))


def internal_imports(path: Path, *, with_exceptions: bool = False):
    tree = ast.parse(path.read_text())
    pkg_parts = ["dwi_toolkit", *path.relative_to(PKG).parts[:-1]]
    for node, func in _nodes(tree):
        if with_exceptions and func == "save":
            targets = list(_targets(node, pkg_parts))
            yield from (t for t in targets if t not in SAVE_METHODS_MAY_IMPORT)
            continue
        yield from _targets(node, pkg_parts)


def _targets(node, pkg_parts):
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.name.startswith("dwi_toolkit."):
                yield a.name.split(".")[1]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = pkg_parts[: len(pkg_parts) - node.level + 1]
            mod = [*base, *(node.module.split(".") if node.module else [])]
            if len(mod) > 1:
                yield mod[1]
            else:
                for a in node.names:
                    yield a.name
        elif node.module and node.module.startswith("dwi_toolkit."):
            yield node.module.split(".")[1]


def test_internal_imports_follow_layers():
    problems = []
    for path in PKG.rglob("*.py"):
        own = owner(path)
        if own in ANYTHING:
            continue
        allowed = ALLOWED.get(own)
        assert allowed is not None, f"{path}: subpackage {own!r} has no layer in tests/test_architecture.py"
        for target in internal_imports(path, with_exceptions=True):
            if target != own and target not in allowed:
                problems.append(f"{path.relative_to(PKG)}: {own} must not import {target}")
    assert not problems, "\n".join(problems)


def test_nothing_imports_cli():
    for path in PKG.rglob("*.py"):
        if owner(path) in ("cli", "__main__"):
            continue
        assert "cli" not in set(internal_imports(path)), path


def test_no_print_in_library():
    for path in PKG.rglob("*.py"):
        if owner(path) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"print() in library module {path.relative_to(PKG)}")
