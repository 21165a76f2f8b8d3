"""The import contracts of `pyproject.toml` hold on this tree, and they break on what they exist to stop: a new import
cycle (an import inside a function counts) or a package importing from above its layer."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("callbackd", "callbackd_simulator", "callbackd_operator", "callbackd_twilio")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}  # the copies below come before the installed packages
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(where / "pyproject.toml")], cwd=where,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of callbackd and its bundled plugins, with the project's contracts, to break on purpose."""
    for name in PACKAGES:
        source = Path(importlib.import_module(name).__file__ or "").parent
        shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_function(path: Path, body: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"\n\ndef _added() -> None:\n    {body}\n")


def test_the_contracts_hold_on_this_tree(tree):
    run = lint_imports(tree)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_an_import_inside_a_function_that_closes_a_cycle_breaks_the_build(tree):
    add_function(tree / "callbackd" / "core" / "errors.py", "from callbackd.core import clock  # noqa: F401")
    run = lint_imports(tree)
    assert run.returncode == 1
    assert "no import cycle between any two modules of callbackd BROKEN" in run.stdout


def test_a_package_importing_from_above_its_layer_breaks_the_build(tree):
    add_function(tree / "callbackd" / "store" / "audit.py", "from callbackd.measure import scoring  # noqa: F401")
    run = lint_imports(tree)
    assert run.returncode == 1
    assert "callbackd's layers: a package imports only the packages below it BROKEN" in run.stdout
    assert "callbackd.store.audit -> callbackd.measure.scoring" in run.stdout


def test_a_plugin_importing_past_the_api_breaks_the_build(tree):
    add_function(tree / "callbackd_simulator" / "__init__.py", "from callbackd.core import clock  # noqa: F401")
    run = lint_imports(tree)
    assert run.returncode == 1
    assert "callbackd_simulator -> callbackd.core.clock" in run.stdout
