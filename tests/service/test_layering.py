"""service/ stays torch-free and never reaches into worker/: checked on the source of every module, lazy
imports inside functions included, so a forbidden import fails here before anything runs it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
FORBIDDEN = ("torch", "torchvision", "numpy", "optuna", "worker")


def imported_roots(source: str) -> set[str]:
    """The top-level packages a module imports anywhere in its body (relative imports are its own package)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])
    return roots


MODULES = sorted(SERVICE.rglob("*.py"))


def test_every_service_module_is_checked():
    assert len(MODULES) > 30 and SERVICE / "lifecycle.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SERVICE)))
def test_service_module_imports_nothing_forbidden(path):
    forbidden = imported_roots(path.read_text("utf-8")) & set(FORBIDDEN)
    assert not forbidden, f"service/{path.relative_to(SERVICE)} imports {', '.join(sorted(forbidden))}"


@pytest.mark.parametrize(("source", "found"), [
    ("import torch", {"torch"}),
    ("def f():\n    import numpy as np", {"numpy"}),
    ("from worker.app import main", {"worker"}),
    ("import importlib\nimportlib.import_module('optuna.samplers')", {"importlib", "optuna"}),
    ("from . import keys", set()),
    ("from service.store import keys", {"service"}),
])
def test_the_checker_sees_every_form_of_import(source, found):
    assert imported_roots(source) == found
