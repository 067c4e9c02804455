"""The import graph: `problems ← derivatives ← rates ← experiments`, `proofs_check` beside them.

Every import statement of every library module (module level and inside functions) is
read from its source with `ast`, so an import hidden in a function body counts too.
Entry points (`__main__` modules) are programs, not library: they may import anything.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# What each package may import from the project (itself always allowed).
ALLOWED = {
    "problems": set(),
    "derivatives": {"problems"},
    "rates": {"problems", "derivatives", "proofs_check"},
    "experiments": {"problems", "derivatives", "rates", "proofs_check"},
    "proofs_check": set(),
}


def library_modules():
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "__main__.py":
                yield package, path


def project_imports(path: pathlib.Path):
    """`(line, dotted name)` of every import of a project package in the file."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in ALLOWED:
                yield node.lineno, name


def violations(package: str, path: pathlib.Path) -> list[str]:
    found = []
    for line, name in project_imports(path):
        target, *rest = name.split(".")
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
        if target != package and target not in ALLOWED[package]:
            found.append(f"{where}: {package} imports {name} (it may import {sorted(ALLOWED[package])})")
        if target != package and any(part.startswith("_") for part in rest):
            found.append(f"{where}: {name} is private to {target}")
    return found


@pytest.mark.parametrize(("package", "path"), list(library_modules()),
                         ids=[str(path.relative_to(ROOT)) for _, path in library_modules()])
def test_imports_point_down_and_stay_public(package, path):
    assert violations(package, path) == []


def test_the_checker_finds_an_upward_and_a_private_import(tmp_path):
    """Negative check: the rules above reject what they are meant to reject."""
    module = tmp_path / "bad.py"
    module.write_text("import rates\n"
                      "def f():\n"
                      "    from derivatives.sgd import minibatch\n"
                      "    from problems._base import static\n")
    found = violations("derivatives", module)
    assert any("derivatives imports rates" in message for message in found)
    assert any("problems._base is private" in message for message in found)
    assert not any("derivatives.sgd" in message for message in found)


# `rates` evaluates the certificates' sympy expressions (one source of truth for each
# bound), so sympy is loaded from `rates` up, and never below it.
NOT_LOADED = {
    "problems": ("sympy", "matplotlib", "proofs_check", "derivatives", "rates", "experiments"),
    "derivatives": ("sympy", "matplotlib", "proofs_check", "rates", "experiments"),
    "rates": ("matplotlib", "experiments"),
}


@pytest.mark.parametrize("package", list(NOT_LOADED))
def test_importing_a_package_loads_nothing_above_it(package):
    """Run in a fresh interpreter, so that no other test's imports count."""
    code = f"import sys, {package}; print(sorted(m for m in {NOT_LOADED[package]!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
