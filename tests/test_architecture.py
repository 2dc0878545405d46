"""The layer order in pyproject.toml ([tool.importlinter]) holds: no back-edges, no import cycles.

Runs ``lint-imports`` (import-linter) from this interpreter's environment, so a lower layer importing a
higher one (function-local imports included) fails the test suite, not just ``make lint``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = Path(sys.executable).parent / ("lint-imports.exe" if os.name == "nt" else "lint-imports")
    if exe.is_file():
        return str(exe)
    found = shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports not found: install import-linter (requirements.txt pins it)")
    return found


def test_import_layers_and_contracts_are_kept() -> None:
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
