"""The layout's import contracts (pyproject.toml, [tool.importlinter]) hold: core is pure, the domain never
imports an interface or the engine, no service imports DRF, and lower layers reach higher ones only through
the seams listed there."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
